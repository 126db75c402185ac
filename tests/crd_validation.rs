//! The CRDs against the real kube-apiserver of `tests/env`: they install, `kubectl explain` reads
//! them, the examples apply, invalid specs are refused at apply time with a message a person can act
//! on, and `kubectl get ferrocert -A` shows the printer columns.

mod common;

use common::{fresh_namespace, install_crds, kubectl, kubectl_ok, repo_root};
use serde_json::{Value, json};

fn certificate() -> Value {
    json!({
        "apiVersion": "ferrocert.dev/v1alpha1",
        "kind": "Certificate",
        "metadata": {"name": "case"},
        "spec": {
            "secretName": "case-tls",
            "dnsNames": ["app.example.test"],
            "issuerRef": {"name": "pebble"}
        }
    })
}

fn issuer(kind: &str) -> Value {
    json!({
        "apiVersion": "ferrocert.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": "case"},
        "spec": {"acme": {
            "server": "https://localhost:14000/dir",
            "privateKeySecretRef": {"name": "account"},
            "solvers": [{"http01": {"ingress": {}}}]
        }}
    })
}

/// Sets (or with `Value::Null`, removes) the field at a JSON pointer below `spec`.
fn with(mut doc: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer has a parent");
    let target = doc
        .pointer_mut(&format!("/spec{parent}"))
        .unwrap_or_else(|| panic!("no parent at /spec{parent}"));
    let map = target.as_object_mut().expect("parent is an object");
    if value.is_null() {
        map.remove(key);
    } else {
        map.insert(key.to_string(), value);
    }
    doc
}

fn apply(ns: &str, doc: &Value) -> std::process::Output {
    kubectl(
        &["apply", "-n", ns, "-f", "-"],
        Some(&serde_json::to_string(doc).expect("json")),
    )
}

#[test]
fn the_three_crds_install_and_are_listed() {
    install_crds();
    let out = kubectl_ok(&["get", "crd", "-o", "name"], None);
    for crd in ["certificates", "issuers", "clusterissuers"] {
        assert!(
            out.contains(&format!(
                "customresourcedefinition.apiextensions.k8s.io/{crd}.ferrocert.dev"
            )),
            "{crd} missing from: {out}"
        );
    }
}

#[test]
fn kubectl_explain_describes_the_private_key() {
    install_crds();
    // The API server publishes a new CRD's OpenAPI a moment after it is Established.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let out = loop {
        let out = kubectl(&["explain", "fcert.spec.privateKey"], None);
        if out.status.success() || std::time::Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = String::from_utf8_lossy(&out.stdout);
    for field in ["algorithm", "size", "encoding", "rotationPolicy"] {
        assert!(out.contains(field), "explain lacks {field}: {out}");
    }
    assert!(out.contains("ECDSA"), "explain lacks the field docs: {out}");
}

#[test]
fn the_examples_apply() {
    install_crds();
    let ns = fresh_namespace("examples");
    let dir = repo_root().join("examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("examples/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 4,
        "expected the example manifests, found {files:?}"
    );
    for file in files {
        let out = kubectl(&["apply", "-n", &ns, "-f", common::path_str(&file)], None);
        assert!(
            out.status.success(),
            "{} was refused: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    kubectl_ok(
        &[
            "delete",
            "clusterissuer",
            "letsencrypt-staging",
            "--ignore-not-found",
        ],
        None,
    );
}

#[test]
fn valid_edge_cases_are_accepted() {
    install_crds();
    let ns = fresh_namespace("valid");
    let cases = [
        with(
            issuer("ClusterIssuer"),
            "/policy",
            json!({
                "namespaces": {"names": ["team-a"], "selector": {"matchLabels": {"tenant": "yes"}}},
                "allowedDNSNames": ["*.{namespace}.apps.example.test", "{namespace}.example.test"],
                "allowedIPRanges": ["10.0.0.0/8", "2001:db8::/32"],
                "allowedUsages": ["server auth", "digital signature"],
                "maxDuration": "720h",
                "isCA": {"allowed": true, "maxPathLength": 0,
                         "permittedDNSDomains": ["{namespace}.svc"]},
                "allowHostsServedElsewhere": false,
                "budget": {"ordersPerHour": 100, "manualRenewalsPerHour": 3}
            }),
        ),
        with(
            issuer("Issuer"),
            "/policy",
            json!({"allowedDNSNames": ["*.example.test"], "maxDuration": "2160h"}),
        ),
        with(certificate(), "/dnsNames", Value::Null)
            .pipe(|d| with(d, "/ipAddresses", json!(["2001:db8::1", "192.0.2.7"]))),
        with(certificate(), "/dnsNames", Value::Null)
            .pipe(|d| with(d, "/commonName", json!("only-cn.example.test"))),
        with(certificate(), "/duration", json!("24h"))
            .pipe(|d| with(d, "/renewBefore", json!("1h30m"))),
        with(certificate(), "/profile", json!("shortlived"))
            .pipe(|d| with(d, "/revokeOnDelete", json!(true))),
        with(
            certificate(),
            "/dnsNames",
            json!(["*.example.test", "example.test"]),
        ),
        with(
            certificate(),
            "/privateKey",
            json!({"algorithm": "Ed25519", "encoding": "PKCS8"}),
        ),
        with(
            certificate(),
            "/privateKey",
            json!({"algorithm": "RSA", "size": 4096}),
        ),
        with(
            certificate(),
            "/issuerRef",
            json!({"name": "x", "kind": "ClusterIssuer", "group": "ferrocert.dev"}),
        ),
        // The same name as an Issuer and as a ClusterIssuer: two issuers.
        with(certificate(), "/issuerRef", Value::Null).pipe(|d| {
            with(
                d,
                "/issuerRefs",
                json!([{"name": "x"}, {"name": "x", "kind": "ClusterIssuer"}]),
            )
        }),
        with(
            certificate(),
            "/additionalOutputFormats",
            json!([{"type": "CombinedPEM"}, {"type": "DER"}]),
        )
        .pipe(|d| {
            with(
                d,
                "/keystores",
                json!({
                    "pkcs12": {"create": true, "profile": "Modern2023",
                        "passwordSecretRef": {"name": "keystore-password", "key": "password"}},
                    "jks": {"create": true, "alias": "web",
                        "passwordSecretRef": {"name": "keystore-password", "key": "jks.password"}}
                }),
            )
        }),
        // cert-manager's manifests keep a block with create: false and no password.
        with(
            certificate(),
            "/keystores",
            json!({"pkcs12": {"create": false}, "jks": {"create": false}}),
        ),
        with(
            issuer("Issuer"),
            "/acme/solvers",
            json!([{"dns01": {"rfc2136": {"nameserver": "127.0.0.1:5353"}}}]),
        ),
        with(
            issuer("Issuer"),
            "/acme/solvers",
            json!([{"http01": {
                "gatewayHTTPRoute": {"parentRefs": [{"name": "gw", "namespace": "infra"}], "serviceType": "NodePort"},
                "selfCheck": {"mode": "Delay", "delay": "45s"}
            }}]),
        ),
        with(
            issuer("Issuer"),
            "/acme/solvers",
            json!([{"dns01": {"cloudflare": {
                "email": "dns@example.com",
                "apiTokenSecretRef": {"name": "cloudflare", "key": "api-token"}
            }}}]),
        ),
        with(
            issuer("ClusterIssuer"),
            "/acme/solvers",
            json!([
                {"dns01": {"route53": {"region": "eu-west-1", "hostedZoneID": "Z123",
                    "accessKeyID": "AKIA", "secretAccessKeySecretRef": {"name": "aws"}}}},
                {"dns01": {"route53": {"accessKeyIDSecretRef": {"name": "aws"},
                    "secretAccessKeySecretRef": {"name": "aws"}}}},
                {"dns01": {"route53": {}}, "selector": {"dnsZones": ["ambient.example.com"]}},
                {"dns01": {"route53": {"role": "arn:aws:iam::123456789012:role/dns"}},
                    "selector": {"dnsZones": ["role.example.com"]}}
            ]),
        ),
        local_issuer("Issuer", "/selfSigned", json!({})),
        local_issuer("ClusterIssuer", "/ca", json!({"secretName": "root-ca"})),
        with(certificate(), "/dnsNames", Value::Null)
            .pipe(|d| with(d, "/commonName", json!("Example Root CA")))
            .pipe(|d| with(d, "/isCA", json!(true)))
            .pipe(|d| with(d, "/duration", json!("87600h")))
            .pipe(|d| {
                with(
                    d,
                    "/usages",
                    json!(["cert sign", "crl sign", "digital signature"]),
                )
            })
            .pipe(|d| {
                with(
                    d,
                    "/subject",
                    json!({"organizations": ["Example"], "countries": ["DE"],
                        "organizationalUnits": ["Ops"], "localities": ["Berlin"],
                        "provinces": ["Berlin"], "streetAddresses": ["Street 1"],
                        "postalCodes": ["10115"], "serialNumber": "42"}),
                )
            }),
        with(
            certificate(),
            "/usages",
            json!(["server auth", "client auth", "s/mime"]),
        ),
    ];
    for (i, doc) in cases.into_iter().enumerate() {
        let doc = with_name(doc, &format!("valid-{i}"));
        let out = apply(&ns, &doc);
        assert!(
            out.status.success(),
            "valid case {i} refused: {}\n{doc}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The ClusterIssuer case is cluster-wide: leave nothing for other tests' controllers.
    kubectl_ok(
        &["delete", "clusterissuer", "valid-0", "--ignore-not-found"],
        None,
    );
}

/// An issuer of `kind` with `value` at `field` instead of `acme`.
fn local_issuer(kind: &str, field: &str, value: Value) -> Value {
    with(with(issuer(kind), "/acme", Value::Null), field, value)
}

fn with_name(mut doc: Value, name: &str) -> Value {
    doc["metadata"]["name"] = json!(name);
    doc
}

trait Pipe: Sized {
    fn pipe(self, f: impl FnOnce(Self) -> Self) -> Self {
        f(self)
    }
}
impl Pipe for Value {}

#[test]
fn invalid_specs_are_refused_at_apply_time_with_a_clear_message() {
    install_crds();
    let ns = fresh_namespace("invalid");
    let cert = certificate;
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "no identifiers",
            with(cert(), "/dnsNames", Value::Null),
            "at least one of dnsNames, ipAddresses or commonName must be set",
        ),
        (
            "empty profile",
            with(cert(), "/profile", json!("")),
            "spec.profile",
        ),
        (
            "uppercase and underscore",
            with(cert(), "/dnsNames", json!(["Not_Valid.example.test"])),
            "each dnsNames entry must be a lowercase DNS name",
        ),
        (
            "wildcard not first",
            with(cert(), "/dnsNames", json!(["www.*.example.test"])),
            "a wildcard is allowed only as the whole first label",
        ),
        (
            "bad IP",
            with(cert(), "/ipAddresses", json!(["300.1.2.3"])),
            "each ipAddresses entry must be an IPv4 or IPv6 address",
        ),
        (
            "duration too short",
            with(cert(), "/duration", json!("30m")),
            "duration must be at least 1h",
        ),
        (
            "duration not a duration",
            with(cert(), "/duration", json!("ninety days")),
            "duration must be a duration such as 2160h",
        ),
        (
            "renewBefore beyond default duration",
            with(cert(), "/renewBefore", json!("3000h")),
            "renewBefore must be shorter than duration",
        ),
        (
            "renewBefore beyond duration",
            with(cert(), "/duration", json!("24h")).pipe(|d| with(d, "/renewBefore", json!("48h"))),
            "renewBefore must be shorter than duration",
        ),
        (
            "renewBefore and percentage",
            with(cert(), "/renewBefore", json!("24h"))
                .pipe(|d| with(d, "/renewBeforePercentage", json!(20))),
            "set renewBefore or renewBeforePercentage, not both",
        ),
        (
            "percentage out of range",
            with(cert(), "/renewBeforePercentage", json!(150)),
            "should be less than or equal to 99",
        ),
        (
            "RSA 1024",
            with(
                cert(),
                "/privateKey",
                json!({"algorithm": "RSA", "size": 1024}),
            ),
            "privateKey.size must match privateKey.algorithm",
        ),
        (
            "ECDSA 2048",
            with(
                cert(),
                "/privateKey",
                json!({"algorithm": "ECDSA", "size": 2048}),
            ),
            "privateKey.size must match privateKey.algorithm",
        ),
        (
            "Ed25519 with a size",
            with(
                cert(),
                "/privateKey",
                json!({"algorithm": "Ed25519", "size": 256}),
            ),
            "Ed25519 takes no size",
        ),
        (
            "Ed25519 as PKCS1",
            with(
                cert(),
                "/privateKey",
                json!({"algorithm": "Ed25519", "encoding": "PKCS1"}),
            ),
            "Ed25519 keys have no PKCS#1 form",
        ),
        (
            "unknown algorithm",
            with(cert(), "/privateKey", json!({"algorithm": "DSA"})),
            r#"supported values: "ECDSA", "RSA", "Ed25519""#,
        ),
        (
            "bad secret name",
            with(cert(), "/secretName", json!("Bad_Name")),
            "secretName must be a valid Kubernetes object name",
        ),
        (
            "unknown issuer kind",
            with(cert(), "/issuerRef", json!({"name": "x", "kind": "Foo"})),
            r#"supported values: "Issuer", "ClusterIssuer""#,
        ),
        (
            "cert-manager group",
            with(
                cert(),
                "/issuerRef",
                json!({"name": "x", "group": "cert-manager.io"}),
            ),
            "issuerRef.group must be ferrocert.dev",
        ),
        (
            "missing issuerRef",
            with(cert(), "/issuerRef", Value::Null),
            "set exactly one of issuerRef and issuerRefs",
        ),
        (
            "both issuerRef and issuerRefs",
            with(cert(), "/issuerRefs", json!([{"name": "other"}])),
            "set exactly one of issuerRef and issuerRefs",
        ),
        (
            "empty issuerRefs",
            with(cert(), "/issuerRef", Value::Null).pipe(|d| with(d, "/issuerRefs", json!([]))),
            "should have at least 1 items",
        ),
        (
            "the same issuer twice in issuerRefs",
            with(cert(), "/issuerRef", Value::Null).pipe(|d| {
                with(
                    d,
                    "/issuerRefs",
                    json!([{"name": "a"}, {"name": "b"}, {"name": "a", "kind": "Issuer"}]),
                )
            }),
            "issuerRefs must not name the same issuer twice",
        ),
        (
            "six issuerRefs",
            with(cert(), "/issuerRef", Value::Null).pipe(|d| {
                with(
                    d,
                    "/issuerRefs",
                    json!([{"name": "a"}, {"name": "b"}, {"name": "c"}, {"name": "d"},
                        {"name": "e"}, {"name": "f"}]),
                )
            }),
            "must have at most 5 items",
        ),
        (
            "plain http server",
            with(
                issuer("Issuer"),
                "/acme/server",
                json!("http://acme.example.test/dir"),
            ),
            "spec.acme.server must be an https:// URL",
        ),
        (
            "not a URL",
            with(
                issuer("ClusterIssuer"),
                "/acme/server",
                json!("letsencrypt"),
            ),
            "spec.acme.server must be an https:// URL",
        ),
        (
            "solver with two types",
            with(
                issuer("Issuer"),
                "/acme/solvers",
                json!([{"http01": {"ingress": {}}, "dns01": {"rfc2136": {"nameserver": "ns"}}}]),
            ),
            "each solver must set exactly one of: http01, dns01",
        ),
        (
            "solver with no type",
            with(issuer("Issuer"), "/acme/solvers", json!([{"selector": {}}])),
            "each solver must set exactly one of: http01, dns01",
        ),
        (
            "http01 with no route",
            with(issuer("Issuer"), "/acme/solvers", json!([{"http01": {}}])),
            "http01 must set exactly one of: ingress, gatewayHTTPRoute",
        ),
        (
            "class and ingressClassName",
            with(
                issuer("Issuer"),
                "/acme/solvers",
                json!([{"http01": {"ingress": {"class": "a", "ingressClassName": "b"}}}]),
            ),
            "http01.ingress may set at most one of: ingressClassName, class",
        ),
        (
            "edit-in-place Ingress that is no object name",
            with(
                issuer("Issuer"),
                "/acme/solvers",
                json!([{"http01": {"ingress": {"name": "My_Ingress"}}}]),
            ),
            "http01.ingress.name must be a valid Kubernetes object name",
        ),
        (
            "self-check delay without Delay mode",
            with(
                issuer("Issuer"),
                "/acme/solvers",
                json!([{"http01": {"ingress": {}, "selfCheck": {"delay": "30s"}}}]),
            ),
            "http01.selfCheck.delay is only used with mode: Delay",
        ),
        (
            "self-check delay too long",
            with(
                issuer("ClusterIssuer"),
                "/acme/solvers",
                json!([{"http01": {"ingress": {}, "selfCheck": {"mode": "Delay", "delay": "1h"}}}]),
            ),
            "selfCheck.delay must be at most 10m",
        ),
        (
            "unknown self-check mode",
            with(
                issuer("Issuer"),
                "/acme/solvers",
                json!([{"http01": {"ingress": {}, "selfCheck": {"mode": "Sometimes"}}}]),
            ),
            "Unsupported value",
        ),
        (
            "TSIG name without secret",
            with(
                issuer("Issuer"),
                "/acme/solvers",
                json!([{"dns01": {"rfc2136": {"nameserver": "ns", "tsigKeyName": "k"}}}]),
            ),
            "tsigKeyName and tsigSecretSecretRef must be set together",
        ),
        (
            "unknown TSIG algorithm",
            with(
                issuer("Issuer"),
                "/acme/solvers",
                json!([{"dns01": {"rfc2136": {"nameserver": "ns", "tsigAlgorithm": "SHA3"}}}]),
            ),
            r#"supported values: "HMACMD5", "HMACSHA1", "HMACSHA256", "HMACSHA512""#,
        ),
        (
            "dns01 with two providers",
            with(
                issuer("Issuer"),
                "/acme/solvers",
                json!([{"dns01": {"rfc2136": {"nameserver": "ns"},
                    "cloudflare": {"apiTokenSecretRef": {"name": "cf"}}}}]),
            ),
            "dns01 must set exactly one of: rfc2136, cloudflare, route53, acmeDNS",
        ),
        (
            "acme-dns host that is no URL",
            with(
                issuer("Issuer"),
                "/acme/solvers",
                json!([{"dns01": {"acmeDNS": {"host": "auth.acme-dns.io",
                    "accountSecretRef": {"name": "acme-dns"}}}}]),
            ),
            "acmeDNS.host must be an https:// (or http://) URL",
        ),
        (
            "webhook group that is no DNS name",
            with(
                issuer("Issuer"),
                "/acme/solvers",
                json!([{"dns01": {"webhook": {"groupName": "Acme_Example",
                    "solverName": "hetzner"}}}]),
            ),
            "webhook.groupName must be a lowercase DNS name",
        ),
        (
            "webhook solver name with a dot",
            with(
                issuer("Issuer"),
                "/acme/solvers",
                json!([{"dns01": {"webhook": {"groupName": "acme.example.com",
                    "solverName": "hetzner.v2"}}}]),
            ),
            "webhook.solverName must be lowercase letters, digits and dashes",
        ),
        (
            "webhook without a solver name",
            with(
                issuer("Issuer"),
                "/acme/solvers",
                json!([{"dns01": {"webhook": {"groupName": "acme.example.com"}}}]),
            ),
            "solverName: Required value",
        ),
        (
            "webhook config that is no object",
            with(
                issuer("Issuer"),
                "/acme/solvers",
                json!([{"dns01": {"webhook": {"groupName": "acme.example.com",
                    "solverName": "hetzner", "config": "apiKey=abc"}}}]),
            ),
            "config: Invalid value: \"string\"",
        ),
        (
            "dns01 with no provider",
            with(
                issuer("Issuer"),
                "/acme/solvers",
                json!([{"dns01": {"cnameStrategy": "Follow"}}]),
            ),
            "dns01 must set exactly one of: rfc2136, cloudflare, route53, acmeDNS",
        ),
        (
            "cloudflare global API key",
            with(
                issuer("Issuer"),
                "/acme/solvers",
                json!([{"dns01": {"cloudflare": {"email": "a@example.com",
                    "apiTokenSecretRef": {"name": "cf"}, "apiKeySecretRef": {"name": "cf"}}}}]),
            ),
            "apiKeySecretRef (the global API key) is not supported",
        ),
        (
            "cloudflare without token",
            with(
                issuer("Issuer"),
                "/acme/solvers",
                json!([{"dns01": {"cloudflare": {"email": "a@example.com"}}}]),
            ),
            "apiTokenSecretRef: Required value",
        ),
        (
            "route53 key id without secret",
            with(
                issuer("Issuer"),
                "/acme/solvers",
                json!([{"dns01": {"route53": {"accessKeyID": "AKIA"}}}]),
            ),
            "set an access key id (accessKeyID or accessKeyIDSecretRef) together with secretAccessKeySecretRef",
        ),
        (
            "route53 two key ids",
            with(
                issuer("Issuer"),
                "/acme/solvers",
                json!([{"dns01": {"route53": {"accessKeyID": "AKIA",
                    "accessKeyIDSecretRef": {"name": "aws"},
                    "secretAccessKeySecretRef": {"name": "aws"}}}}]),
            ),
            "dns01.route53 may set at most one of: accessKeyID, accessKeyIDSecretRef",
        ),
        (
            "bad email",
            with(issuer("Issuer"), "/acme/email", json!("not-an-address")),
            "spec.acme.email must be an e-mail address",
        ),
        (
            "missing account key ref",
            with(issuer("Issuer"), "/acme/privateKeySecretRef", Value::Null),
            "spec.acme.privateKeySecretRef: Required value",
        ),
        (
            "issuer with acme and ca",
            with(issuer("Issuer"), "/ca", json!({"secretName": "root-ca"})),
            "spec must set exactly one of: acme, selfSigned, ca",
        ),
        (
            "issuer of no type",
            with(issuer("Issuer"), "/acme", Value::Null),
            "spec must set exactly one of: acme, selfSigned, ca",
        ),
        (
            "cluster issuer both selfSigned and ca",
            local_issuer("ClusterIssuer", "/selfSigned", json!({}))
                .pipe(|d| with(d, "/ca", json!({"secretName": "root-ca"}))),
            "spec must set exactly one of: acme, selfSigned, ca",
        ),
        (
            "ca without secretName",
            local_issuer("Issuer", "/ca", json!({})),
            "spec.ca.secretName: Required value",
        ),
        (
            "ca secretName not an object name",
            local_issuer("Issuer", "/ca", json!({"secretName": "Root_CA"})),
            "ca.secretName must be a valid Kubernetes object name",
        ),
        (
            "unknown usage",
            with(cert(), "/usages", json!(["server-auth"])),
            "Unsupported value: \"server-auth\"",
        ),
        (
            "repeated usage",
            with(cert(), "/usages", json!(["server auth", "server auth"])),
            "usages must not list a value twice",
        ),
        (
            "CA without a subject name",
            with(cert(), "/isCA", json!(true)),
            "isCA: true needs a subject name (commonName or subject.organizations)",
        ),
        (
            "country not a two-letter code",
            with(cert(), "/subject", json!({"countries": ["Germany"]})),
            "each subject.countries entry must be a two-letter ISO 3166 code",
        ),
        (
            "two organizations",
            with(cert(), "/subject", json!({"organizations": ["A", "B"]})),
            "spec.subject.organizations: Too many: 2: must have at most 1 item",
        ),
        (
            "unknown output format",
            with(
                cert(),
                "/additionalOutputFormats",
                json!([{"type": "PKCS7"}]),
            ),
            r#"supported values: "DER", "CombinedPEM""#,
        ),
        (
            "duplicate output format",
            with(
                cert(),
                "/additionalOutputFormats",
                json!([{"type": "DER"}, {"type": "DER"}]),
            ),
            "each additionalOutputFormats type may appear only once",
        ),
        (
            "pkcs12 created without a password",
            with(cert(), "/keystores", json!({"pkcs12": {"create": true}})),
            "keystores.pkcs12.passwordSecretRef is required when create is true",
        ),
        (
            "jks created without a password",
            with(
                cert(),
                "/keystores",
                json!({"jks": {"create": true, "alias": "web"}}),
            ),
            "keystores.jks.passwordSecretRef is required when create is true",
        ),
        (
            "empty password key",
            with(
                cert(),
                "/keystores",
                json!({"pkcs12": {"create": true,
                    "passwordSecretRef": {"name": "keystore-password", "key": ""}}}),
            ),
            "spec.keystores.pkcs12.passwordSecretRef.key: Invalid value",
        ),
        (
            "password key that is no data key",
            with(
                cert(),
                "/keystores",
                json!({"jks": {"create": true,
                    "passwordSecretRef": {"name": "keystore-password", "key": "pass/word"}}}),
            ),
            "passwordSecretRef.key must be a Secret data key",
        ),
        (
            "password Secret without key",
            with(
                cert(),
                "/keystores",
                json!({"jks": {"create": true, "passwordSecretRef": {"name": "keystore-password"}}}),
            ),
            "spec.keystores.jks.passwordSecretRef.key: Required value",
        ),
        (
            "unknown PKCS#12 profile",
            with(
                cert(),
                "/keystores",
                json!({"pkcs12": {"create": true, "profile": "Modern2024",
                    "passwordSecretRef": {"name": "keystore-password", "key": "password"}}}),
            ),
            r#"supported values: "LegacyRC2", "LegacyDES", "Modern2023""#,
        ),
        (
            "profile on jks",
            with(
                cert(),
                "/keystores",
                json!({"jks": {"create": true, "profile": "Modern2023",
                    "passwordSecretRef": {"name": "keystore-password", "key": "password"}}}),
            ),
            "spec.keystores.jks.profile",
        ),
        (
            "password Secret name that is no object name",
            with(
                cert(),
                "/keystores",
                json!({"pkcs12": {"create": true,
                    "passwordSecretRef": {"name": "Keystore_Password", "key": "password"}}}),
            ),
            "passwordSecretRef.name must be a valid Kubernetes object name",
        ),
        (
            "keystore without create",
            with(
                cert(),
                "/keystores",
                json!({"pkcs12": {
                    "passwordSecretRef": {"name": "keystore-password", "key": "password"}}}),
            ),
            "spec.keystores.pkcs12.create: Required value",
        ),
        (
            "empty jks alias",
            with(
                cert(),
                "/keystores",
                json!({"jks": {"create": true, "alias": "",
                    "passwordSecretRef": {"name": "keystore-password", "key": "password"}}}),
            ),
            "spec.keystores.jks.alias",
        ),
        (
            "a policy that only a ClusterIssuer may have, on an Issuer",
            with(
                issuer("Issuer"),
                "/policy",
                json!({"namespaces": {"names": ["a"]}}),
            ),
            "are for ClusterIssuers only",
        ),
        (
            "a host exception an Issuer would grant itself",
            with(
                issuer("Issuer"),
                "/policy",
                json!({"allowHostsServedElsewhere": true}),
            ),
            "are for ClusterIssuers only",
        ),
        (
            "a name pattern with a wildcard inside a label",
            with(
                issuer("ClusterIssuer"),
                "/policy",
                json!({"allowedDNSNames": ["app*.example.test"]}),
            ),
            "must be a lowercase DNS name pattern",
        ),
        (
            "an IP range that is not CIDR",
            with(
                issuer("ClusterIssuer"),
                "/policy",
                json!({"allowedIPRanges": ["10.0.0.0/33"]}),
            ),
            "must be an IP range in CIDR notation",
        ),
        (
            "a namespace rule naming nothing",
            with(
                issuer("ClusterIssuer"),
                "/policy",
                json!({"namespaces": {}}),
            ),
            "policy.namespaces must set at least one of: names, selector",
        ),
        (
            "a policy max duration below an hour",
            with(
                issuer("ClusterIssuer"),
                "/policy",
                json!({"maxDuration": "10m"}),
            ),
            "policy.maxDuration must be at least 1h",
        ),
    ];
    assert!(cases.len() >= 15);
    let mut failures = Vec::new();
    for (what, doc, expected) in &cases {
        let out = apply(&ns, doc);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            failures.push(format!(
                "{what}: accepted, expected refusal with {expected:?}"
            ));
        } else if !stderr.contains(expected) {
            failures.push(format!(
                "{what}: refused, but without {expected:?}: {stderr}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Nothing of the refused specs was stored.
    let stored = kubectl_ok(&["get", "fcert,fissuer", "-n", &ns, "-o", "name"], None);
    assert!(
        stored.trim().is_empty(),
        "refused objects were stored: {stored}"
    );
}

#[test]
fn kubectl_get_shows_the_printer_columns() {
    install_crds();
    let ns = fresh_namespace("columns");
    let out = apply(&ns, &certificate());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = kubectl_ok(&["get", "ferrocert", "-n", &ns], None);
    let header: Vec<_> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "READY", "SECRET", "ISSUER", "EXPIRES", "AGE"],
        "{table}"
    );
    assert!(
        table.contains("case-tls") && table.contains("pebble"),
        "{table}"
    );
    let wide = kubectl_ok(&["get", "fcert", "-n", &ns, "-o", "wide"], None);
    assert!(
        wide.lines().next().unwrap_or_default().contains("RENEWAL"),
        "{wide}"
    );
    assert!(
        wide.lines()
            .next()
            .unwrap_or_default()
            .contains("USED ISSUER"),
        "{wide}"
    );
    let all = kubectl_ok(&["get", "ferrocert", "-A"], None);
    assert!(
        all.contains(&ns),
        "category lookup across namespaces misses {ns}: {all}"
    );
}

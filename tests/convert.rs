//! `ferrocert convert` on the cert-manager manifests of `tests/data/cert-manager/`: the exit code
//! and the notes expected of each file, then the converted output applied with
//! `kubectl apply --dry-run=server` to the local environment's API server, which has ferrocert's
//! CRDs (and their CEL rules). Fails, never skips, when the environment is not there.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{fresh_namespace, install_crds, kubectl, kubectl_ok, path_str, repo_root};
use serde::Deserialize as _;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_ferrocert");

/// One test manifest: the exit code expected, and lines (prefixes) that stderr must contain.
struct Case {
    file: &'static str,
    exit: i32,
    notes: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        file: "certificate-basic.yaml",
        exit: 0,
        notes: &[
            "note: Certificate shop/shop-web: spec.privateKey.algorithm changed: set to RSA",
            "note: Certificate shop/shop-web: spec.privateKey.rotationPolicy kept: unset, so Always",
            "note: Certificate shop/shop-web: spec.issuerRef.group cert-manager.io dropped",
        ],
    },
    Case {
        file: "certificate-wildcard.yaml",
        exit: 0,
        notes: &[],
    },
    Case {
        file: "certificate-rsa4096-renewbefore.yaml",
        exit: 0,
        notes: &[
            "note: Certificate billing/billing-api: spec.revisionHistoryLimit 3 dropped: ferrocert \
             makes no CertificateRequests, so there is no request history",
        ],
    },
    Case {
        file: "certificate-usages-subject.yaml",
        exit: 0,
        notes: &[
            "note: Certificate sandbox/portal: spec.privateKey.encoding PKCS1 kept",
            "note: Certificate sandbox/portal: spec.encodeUsagesInRequest false dropped",
        ],
    },
    Case {
        file: "certificate-mtls-keystore.yaml",
        exit: 0,
        notes: &[],
    },
    Case {
        file: "issuer-http01-ingress.yaml",
        exit: 0,
        notes: &[
            "note: Issuer shop/letsencrypt-prod: spec.acme.solvers[0].http01.ingress.serviceType \
             kept: unset, so ClusterIP",
            "note: Issuer shop/letsencrypt-prod: spec.acme.solvers[0].http01.ingress.podTemplate \
             dropped: ferrocert runs no solver pods",
        ],
    },
    Case {
        file: "clusterissuer-letsencrypt-staging.yaml",
        exit: 0,
        notes: &[
            "note: ClusterIssuer letsencrypt-staging: Secrets [letsencrypt-staging-account-key] \
             kept",
        ],
    },
    Case {
        file: "issuer-dns01-cloudflare.yaml",
        exit: 0,
        notes: &["note: Secret platform/cloudflare-api-token: passed through unchanged"],
    },
    Case {
        file: "clusterissuer-dns01-route53.yaml",
        exit: 0,
        notes: &[
            "note: ClusterIssuer letsencrypt-route53: Secrets [letsencrypt-route53-account-key, \
             route53-credentials] kept",
        ],
    },
    Case {
        file: "issuer-dns01-rfc2136.yaml",
        exit: 0,
        notes: &[
            "note: Issuer infra/internal-acme: spec.acme.solvers[0].dns01.rfc2136.tsigAlgorithm \
             hmacsha256 changed: to HMACSHA256",
        ],
    },
    Case {
        file: "issuer-dns01-rfc2136-md5.yaml",
        exit: 1,
        notes: &[
            "loss: Issuer infra/legacy-dns: spec.acme.solvers[0].dns01.rfc2136.tsigAlgorithm \
             kept: unset, so HMACMD5",
            "loss: Issuer infra/legacy-dns: spec.acme.solvers[0].dns01.rfc2136.protocol TCP \
             dropped",
        ],
    },
    Case {
        file: "clusterissuer-zerossl-eab.yaml",
        exit: 0,
        notes: &[
            "note: ClusterIssuer zerossl: spec.acme.externalAccountBinding.keyAlgorithm HS256 \
             dropped",
            "note: ClusterIssuer zerossl: Secrets [zerossl-account-key, zerossl-eab] kept",
        ],
    },
    Case {
        file: "issuer-gateway-httproute.yaml",
        exit: 0,
        notes: &[],
    },
    Case {
        file: "clusterissuer-multiple-solvers.yaml",
        exit: 0,
        notes: &[
            "note: ClusterIssuer letsencrypt-multi: Secrets [letsencrypt-multi-account-key, \
             cloudflare-token] kept",
        ],
    },
    Case {
        file: "clusterissuer-selfsigned.yaml",
        exit: 0,
        notes: &[],
    },
    Case {
        file: "issuer-ca.yaml",
        exit: 0,
        notes: &[],
    },
    Case {
        file: "issuer-dns01-acmedns.yaml",
        exit: 0,
        notes: &[],
    },
    Case {
        file: "issuer-dns01-webhook.yaml",
        exit: 0,
        notes: &[
            "note: Issuer edge/letsencrypt-webhook: spec.acme.solvers[0].dns01.webhook.groupName \
             acme.edge.example.com kept: ferrocert's controller needs RBAC create on ovh",
        ],
    },
    Case {
        file: "exported-from-cluster.yaml",
        exit: 0,
        notes: &[
            "note: Certificate blog/blog-tls: metadata.annotations[kubectl.kubernetes.io/\
             last-applied-configuration] dropped",
            "note: Certificate blog/blog-tls: metadata.uid, metadata.resourceVersion, \
             metadata.creationTimestamp, metadata.generation dropped: set by the API server",
            "note: Certificate blog/blog-tls: metadata.ownerReferences dropped: cert-manager's \
             shim made this Certificate for Ingress blog",
            "note: Certificate blog/blog-tls: status dropped",
        ],
    },
];

fn data_dir() -> PathBuf {
    repo_root().join("tests/data/cert-manager")
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `ferrocert convert ARGS` with `stdin`.
fn convert(args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(BIN)
        .arg("convert")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {BIN}: {e}"));
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("ferrocert finishes");
    Run {
        code: out.status.code().expect("exited"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The documents of a YAML stream; comment-only documents are skipped.
fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .filter_map(|doc| match Value::deserialize(doc) {
            Ok(Value::Null) => None,
            Ok(v) => Some(v),
            Err(e) if e.to_string().contains("EOF while parsing") => None,
            Err(e) => panic!("output is not YAML ({e}):\n{yaml}"),
        })
        .collect()
}

/// Applies objects with `--dry-run=server`, namespaced ones into `ns`; returns kubectl's stdout.
fn dry_run_apply(ns: &str, mut objects: Vec<Value>) -> Result<String, String> {
    for object in &mut objects {
        if object["kind"] != "ClusterIssuer" {
            object["metadata"]["namespace"] = json!(ns);
        }
    }
    let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
    let out = kubectl(
        &["apply", "--dry-run=server", "-f", "-"],
        Some(&list.to_string()),
    );
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn every_test_manifest_has_a_case() {
    let files: BTreeSet<String> = std::fs::read_dir(data_dir())
        .expect("tests/data/cert-manager")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".yaml"))
        .collect();
    let cases: BTreeSet<String> = CASES.iter().map(|c| c.file.to_string()).collect();
    assert_eq!(files, cases);
    assert!(files.len() >= 10);
}

#[test]
fn each_manifest_converts_with_its_exit_code_and_notes_and_applies() {
    install_crds();
    let ns = fresh_namespace("convert");
    let mut failures = Vec::new();
    for case in CASES {
        let path = data_dir().join(case.file);
        let run = convert(&[path_str(&path)], "");
        if run.code != case.exit {
            failures.push(format!(
                "{}: exit code {} (expected {}); stderr:\n{}",
                case.file, run.code, case.exit, run.stderr
            ));
            continue;
        }
        for expected in case.notes {
            if !run.stderr.lines().any(|l| l.starts_with(expected)) {
                failures.push(format!(
                    "{}: no line starting with {expected:?} in stderr:\n{}",
                    case.file, run.stderr
                ));
            }
        }
        // Exit 0 prints no loss line; exit 1 at least one.
        let losses = run
            .stderr
            .lines()
            .filter(|l| l.starts_with("loss: "))
            .count();
        if (losses > 0) != (case.exit == 1) {
            failures.push(format!(
                "{}: {losses} loss lines:\n{}",
                case.file, run.stderr
            ));
        }
        let objects = documents(&run.stdout);
        let converted = objects
            .iter()
            .filter(|o| o["apiVersion"] == "ferrocert.dev/v1alpha1")
            .count();
        // Every manifest here converts (selfSigned and ca issuers too); the comment that stands
        // in for an issuer ferrocert has no equivalent for is checked by
        // stdin_and_files_in_order_to_an_output_file.
        assert!(
            converted >= 1,
            "{}: nothing converted:\n{}",
            case.file,
            run.stdout
        );
        match dry_run_apply(&ns, objects.clone()) {
            Ok(out) => {
                let accepted = out
                    .lines()
                    .filter(|l| l.ends_with("(server dry run)"))
                    .count();
                if accepted != objects.len() {
                    failures.push(format!("{}: kubectl said:\n{out}", case.file));
                }
            }
            Err(err) => failures.push(format!(
                "{}: refused by the API server: {err}\noutput:\n{}",
                case.file, run.stdout
            )),
        }
    }
    kubectl_ok(&["delete", "namespace", &ns, "--wait=false"], None);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn converted_fields_reach_the_output() {
    let path = data_dir().join("clusterissuer-multiple-solvers.yaml");
    let run = convert(&[path_str(&path)], "");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let docs = documents(&run.stdout);
    let acme = &docs[0]["spec"]["acme"];
    assert_eq!(docs[0]["kind"], "ClusterIssuer");
    assert_eq!(docs[0]["metadata"]["labels"]["environment"], "production");
    assert_eq!(acme["solvers"].as_array().map(Vec::len), Some(4));
    assert_eq!(acme["solvers"][2]["dns01"]["cnameStrategy"], "Follow");
    assert_eq!(
        acme["solvers"][3],
        json!({"selector": {"dnsNames": ["legacy.example.com"]},
               "http01": {"ingress": {"name": "legacy-web", "serviceType": "NodePort"}}})
    );

    let path = data_dir().join("issuer-dns01-webhook.yaml");
    let run = convert(&[path_str(&path)], "");
    let docs = documents(&run.stdout);
    assert_eq!(
        docs[0]["spec"]["acme"]["solvers"][0]["dns01"],
        json!({"webhook": {"groupName": "acme.edge.example.com", "solverName": "ovh",
                           "config": {"endpoint": "ovh-eu"}}})
    );
    assert_eq!(
        docs[0]["spec"]["acme"]["solvers"][1],
        json!({"http01": {"ingress": {"ingressClassName": "haproxy", "serviceType": "ClusterIP"}}})
    );

    for (file, kind, spec) in [
        (
            "clusterissuer-selfsigned.yaml",
            "ClusterIssuer",
            json!({"selfSigned": {}}),
        ),
        (
            "issuer-ca.yaml",
            "Issuer",
            json!({"ca": {"secretName": "ca-key-pair"}}),
        ),
    ] {
        let run = convert(&[path_str(&data_dir().join(file))], "");
        assert_eq!(run.code, 0, "{file}: {}", run.stderr);
        let docs = documents(&run.stdout);
        assert_eq!(docs[0]["kind"], kind, "{file}");
        assert_eq!(docs[0]["spec"], spec, "{file}");
    }
}

#[test]
fn stdin_and_files_in_order_to_an_output_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = dir.path().join("out.yaml");
    let stdin = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n";
    let a = data_dir().join("certificate-basic.yaml");
    let b = data_dir().join("clusterissuer-selfsigned.yaml");
    let c = data_dir().join("issuer-http01-ingress.yaml");
    // An issuer type ferrocert has no equivalent for: a comment stands in for it.
    let d = dir.path().join("vault.yaml");
    std::fs::write(
        &d,
        "apiVersion: cert-manager.io/v1\nkind: ClusterIssuer\nmetadata: {name: vault-pki}\n\
         spec:\n  vault:\n    server: https://vault.example.com\n    path: pki_int/sign/example\n",
    )
    .expect("write");
    let run = convert(
        &[
            path_str(&a),
            "-",
            path_str(&b),
            path_str(&c),
            path_str(&d),
            "-o",
            path_str(&output),
        ],
        stdin,
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(
        run.stderr.ends_with(
            "ferrocert convert: 3 converted, 1 passed through, 1 not converted; 1 loss\n"
        ),
        "{}",
        run.stderr
    );
    let yaml = std::fs::read_to_string(&output).expect("output written");
    assert_eq!(yaml.matches("\n---\n").count(), 4, "{yaml}");
    let kinds: Vec<String> = documents(&yaml)
        .iter()
        .map(|d| d["kind"].as_str().unwrap_or("?").to_string())
        .collect();
    assert_eq!(
        kinds,
        ["Certificate", "Namespace", "ClusterIssuer", "Issuer"]
    );
    assert!(
        yaml.ends_with(
            "---\n# ClusterIssuer vault-pki: not converted\n# ClusterIssuer vault-pki: spec.vault \
             not converted: ferrocert issues through ACME CAs or signs itself (selfSigned, ca); an \
             issuer of certificates from HashiCorp Vault's PKI has no ferrocert equivalent (keep \
             cert-manager or another tool for it)\n"
        ),
        "{yaml}"
    );

    // No file at all reads stdin.
    let run = convert(&[], &std::fs::read_to_string(&c).expect("read"));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(documents(&run.stdout)[0]["kind"], "Issuer");
}

#[test]
fn unreadable_input_exits_2_naming_the_document_and_writes_nothing() {
    let good = data_dir().join("certificate-basic.yaml");
    let run = convert(
        &[path_str(&good), "-"],
        "apiVersion: v1\n---\nkind: [unclosed\n",
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(
        run.stderr
            .contains("error: <stdin>: document 1: kind: missing or not a string"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("error: <stdin>: document 2: not YAML: "),
        "{}",
        run.stderr
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: web}\n\
         spec: {secretName: web-tls, dnsNames: web.example.com, issuerRef: {name: le}}\n",
    )
    .expect("write");
    let run = convert(&[path_str(&bad)], "");
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains(&format!(
            "error: {}: document 1 (Certificate web): spec.dnsNames: expected a list, found a \
             string",
            bad.display()
        )),
        "{}",
        run.stderr
    );

    let missing = Path::new("/nonexistent/cert-manager.yaml");
    let run = convert(&[path_str(missing)], "");
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("error: /nonexistent/cert-manager.yaml: cannot read"),
        "{}",
        run.stderr
    );
}

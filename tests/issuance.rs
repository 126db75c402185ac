//! Issuance over ACME HTTP-01, end to end: the controller as a process against the real API
//! server, Pebble validating on 127.0.0.1 through BIND. Each test has its own namespace.

mod common;

use std::time::Duration;

use common::e2e::{
    apply, client, controller, event_count, metric, pebble_certificate as certificate,
    pebble_issuer, pebble_root, ready_condition, secret_field, secret_key, solver_objects,
    subject_cn, verify_chain, verify_chain_to, wait_cert_ready, wait_for, wait_issuer_ready,
};
use common::{env_var, fresh_namespace, kubectl, kubectl_ok};
use ferrocert::api::{Certificate, Issuer};
use futures::StreamExt;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

/// A namespace with a Ready Pebble Issuer named `pebble`.
async fn namespace_with_issuer(prefix: &str) -> String {
    controller();
    let ns = fresh_namespace(prefix);
    apply(&ns, &pebble_issuer("pebble", "pebble-account", json!({})));
    let issuers: Api<Issuer> = Api::namespaced(client().await, &ns);
    wait_issuer_ready(&issuers, "pebble").await;
    ns
}

fn zone() -> String {
    env_var("TEST_ZONE")
}

#[tokio::test]
async fn an_issuer_registers_and_a_second_issuer_with_the_same_key_reuses_the_account() {
    controller();
    let ns = fresh_namespace("account");
    apply(&ns, &pebble_issuer("first", "shared-account", json!({})));
    let issuers: Api<Issuer> = Api::namespaced(client().await, &ns);
    let first = wait_issuer_ready(&issuers, "first").await;
    let uri = first.status.unwrap().acme.unwrap().uri.unwrap();
    assert!(uri.starts_with("https://localhost:"), "account URI {uri}");
    let key_secret = kubectl_ok(
        &[
            "get",
            "secret",
            "-n",
            &ns,
            "shared-account",
            "-o",
            "jsonpath={.data.tls\\.key}",
        ],
        None,
    );
    assert!(!key_secret.is_empty(), "the account key was stored");

    apply(&ns, &pebble_issuer("second", "shared-account", json!({})));
    let second = wait_issuer_ready(&issuers, "second").await;
    assert_eq!(
        second.status.unwrap().acme.unwrap().uri.unwrap(),
        uri,
        "the existing account is reused"
    );
    let again = kubectl_ok(
        &[
            "get",
            "secret",
            "-n",
            &ns,
            "shared-account",
            "-o",
            "jsonpath={.data.tls\\.key}",
        ],
        None,
    );
    assert_eq!(again, key_secret, "the key Secret is untouched");
}

#[tokio::test]
async fn certificates_with_two_names_and_an_ip_verify_with_the_asked_key_types() {
    let ns = namespace_with_issuer("keys").await;
    let z = zone();
    let cases = [
        (
            "p256",
            json!({}),
            "id-ecPublicKey",
            "prime256v1",
            "-----BEGIN EC PRIVATE KEY-----",
        ),
        (
            "p384",
            json!({"algorithm": "ECDSA", "size": 384}),
            "id-ecPublicKey",
            "secp384r1",
            "-----BEGIN EC PRIVATE KEY-----",
        ),
        (
            "rsa3072",
            json!({"algorithm": "RSA", "size": 3072, "encoding": "PKCS8"}),
            "rsaEncryption",
            "(3072 bit)",
            "-----BEGIN PRIVATE KEY-----",
        ),
    ];
    for (name, key, ..) in &cases {
        let a = format!("{name}-a.{z}");
        let b = format!("{name}-b.{z}");
        let mut doc = certificate(name, &[&a, &b], json!({"ipAddresses": ["127.0.0.1"]}));
        if key.as_object().is_some_and(|k| !k.is_empty()) {
            doc["spec"]["privateKey"] = key.clone();
        }
        apply(&ns, &doc);
    }
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    for (name, _, alg, param, key_header) in &cases {
        let cert = wait_cert_ready(&certs, name, 1).await;
        let status = cert.status.unwrap();
        assert!(status.not_after.is_some() && status.renewal_time.is_some());
        let text = verify_chain(&ns, &format!("{name}-tls"));
        assert!(
            text.contains(&format!("DNS:{name}-a.{z}"))
                && text.contains(&format!("DNS:{name}-b.{z}")),
            "{text}"
        );
        assert!(text.contains("IP Address:127.0.0.1"), "{text}");
        assert_eq!(
            text.matches("DNS:").count(),
            2,
            "exactly the asked DNS names: {text}"
        );
        assert!(
            text.contains(alg) && text.contains(param),
            "{name}: key type {alg} {param} not in {text}"
        );
        let key = secret_key(&ns, &format!("{name}-tls"));
        assert!(
            key.starts_with(key_header),
            "{name}: tls.key is {}",
            key.lines().next().unwrap_or("")
        );
        let expiry = metric(
            controller(),
            &format!(
                "ferrocert_certificate_expiration_timestamp_seconds{{namespace=\"{ns}\",name=\"{name}\""
            ),
        );
        assert_eq!(
            expiry as i64,
            status.not_after.as_ref().unwrap().0.as_second(),
            "expiry gauge of {name}"
        );
        let labels = kubectl_ok(
            &[
                "get",
                "secret",
                "-n",
                &ns,
                &format!("{name}-tls"),
                "-o",
                "jsonpath={.metadata.labels}",
            ],
            None,
        );
        assert!(
            labels.contains("ferrocert.dev/certificate-name"),
            "{labels}"
        );
    }
    // The other metric families, with values for this namespace.
    let c = controller();
    let issuer_ready = format!(
        "ferrocert_issuer_ready_status{{kind=\"Issuer\",namespace=\"{ns}\",name=\"pebble\"}}"
    );
    assert_eq!(metric(c, &issuer_ready), 1.0, "issuer ready gauge");
    let ready = format!(
        "ferrocert_certificate_ready_status{{namespace=\"{ns}\",name=\"p256\",issuer_name=\"pebble\",issuer_kind=\"Issuer\",condition=\"True\"}}"
    );
    assert_eq!(metric(c, &ready), 1.0, "certificate ready gauge");
    assert!(
        metric(c, "ferrocert_acme_requests_total{endpoint=\"newOrder\"") >= 3.0,
        "newOrder requests counted"
    );
    assert!(
        metric(c, "ferrocert_acme_requests_total{endpoint=\"finalize\"") >= 3.0,
        "finalize requests counted"
    );
    assert!(
        metric(
            c,
            "ferrocert_reconcile_duration_seconds_count{kind=\"Certificate\"}"
        ) > 0.0,
        "reconcile durations"
    );
    assert!(
        metric(
            c,
            "ferrocert_reconciles_total{kind=\"Certificate\",outcome=\"ok\"}"
        ) > 0.0,
        "reconcile counts"
    );
}

#[tokio::test]
async fn temporary_ingress_and_service_exist_during_the_order_and_are_gone_after() {
    let ns = namespace_with_issuer("routing").await;
    let host = format!("routed.{}", zone());
    let ingresses: Api<Ingress> = Api::namespaced(client().await, &ns);
    // Record every Ingress that appears while the order runs.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Ingress>::new()));
    let sink = seen.clone();
    let watch = tokio::spawn(async move {
        let mut stream = watcher(ingresses, watcher::Config::default())
            .applied_objects()
            .boxed();
        while let Some(Ok(ing)) = stream.next().await {
            sink.lock().unwrap().push(ing);
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    apply(&ns, &certificate("routed", &[&host], json!({})));
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    wait_cert_ready(&certs, "routed", 1).await;
    watch.abort();
    let seen = seen.lock().unwrap().clone();
    let ing = seen
        .first()
        .unwrap_or_else(|| panic!("no temporary Ingress was made"));
    let spec = ing.spec.clone().unwrap();
    assert_eq!(
        spec.ingress_class_name.as_deref(),
        Some(env_var("INGRESS_CLASS").as_str())
    );
    let rule = &spec.rules.unwrap()[0];
    assert_eq!(rule.host.as_deref(), Some(host.as_str()));
    let path = &rule.http.as_ref().unwrap().paths[0];
    assert!(
        path.path
            .as_deref()
            .unwrap()
            .starts_with("/.well-known/acme-challenge/"),
        "{path:?}"
    );
    let backend = path.backend.service.as_ref().unwrap();
    let svc = ing.metadata.name.clone().unwrap();
    assert_eq!(backend.name, svc);
    assert_eq!(
        ing.metadata.owner_references.as_ref().unwrap()[0].kind,
        "Certificate"
    );
    // After the order: nothing left.
    let left = solver_objects(&ns);
    assert!(
        left.trim().is_empty(),
        "temporary objects left behind: {left}"
    );
}

#[tokio::test]
async fn only_real_changes_cause_new_orders() {
    let ns = namespace_with_issuer("reissue").await;
    let z = zone();
    let first = format!("one.{z}");
    apply(&ns, &certificate("app", &[&first], json!({})));
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    wait_cert_ready(&certs, "app", 1).await;
    assert_eq!(event_count(&ns, "app", "OrderCreated"), 1);

    // Unrelated changes: a label on the Certificate, a label on the Secret. No order.
    kubectl_ok(&["label", "fcert", "-n", &ns, "app", "team=web"], None);
    kubectl_ok(
        &["label", "secret", "-n", &ns, "app-tls", "touched=yes"],
        None,
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        event_count(&ns, "app", "OrderCreated"),
        1,
        "an unrelated change made an order"
    );

    // Deleting the Secret re-issues, with a new key (rotationPolicy defaults to Always).
    let first_key = secret_key(&ns, "app-tls");
    kubectl_ok(&["delete", "secret", "-n", &ns, "app-tls"], None);
    wait_cert_ready(&certs, "app", 2).await;
    assert_ne!(
        secret_key(&ns, "app-tls"),
        first_key,
        "the key was not rotated"
    );
    assert_eq!(event_count(&ns, "app", "OrderCreated"), 2);

    // Changing dnsNames re-issues with the new SANs.
    let second = format!("two.{z}");
    apply(&ns, &certificate("app", &[&first, &second], json!({})));
    wait_cert_ready(&certs, "app", 3).await;
    let text = verify_chain(&ns, "app-tls");
    assert!(text.contains(&format!("DNS:{second}")), "{text}");
    assert_eq!(event_count(&ns, "app", "OrderCreated"), 3);

    // Garbage in tls.crt re-issues.
    kubectl_ok(
        &[
            "patch",
            "secret",
            "-n",
            &ns,
            "app-tls",
            "--type=merge",
            "-p",
            r#"{"data":{"tls.crt":"Z2FyYmFnZQ=="}}"#,
        ],
        None,
    );
    wait_cert_ready(&certs, "app", 4).await;
    verify_chain(&ns, "app-tls");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        event_count(&ns, "app", "OrderCreated"),
        4,
        "exactly one order per change"
    );
}

#[tokio::test]
async fn rotation_policy_never_keeps_the_key_across_a_requested_renewal() {
    let ns = namespace_with_issuer("rotation").await;
    apply(
        &ns,
        &certificate(
            "kept",
            &[&format!("kept.{}", zone())],
            json!({"privateKey": {"rotationPolicy": "Never"}}),
        ),
    );
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    wait_cert_ready(&certs, "kept", 1).await;
    let key = secret_key(&ns, "kept-tls");
    let serial = verify_chain(&ns, "kept-tls");
    kubectl_ok(
        &[
            "annotate",
            "fcert",
            "-n",
            &ns,
            "kept",
            "ferrocert.dev/renew-requested=r1",
        ],
        None,
    );
    wait_cert_ready(&certs, "kept", 2).await;
    assert_eq!(
        secret_key(&ns, "kept-tls"),
        key,
        "rotationPolicy Never changed the key"
    );
    assert_ne!(
        verify_chain(&ns, "kept-tls"),
        serial,
        "no new certificate was issued"
    );
    // The request is handled once: no further orders.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(event_count(&ns, "kept", "OrderCreated"), 2);
}

#[tokio::test]
async fn a_short_lived_certificate_renews_by_itself() {
    controller();
    let ns = fresh_namespace("renew");
    // Pebble's `tenminutes` profile issues 600 s certificates; renewing at 98% of the lifetime
    // left means about 12 s after issuance.
    apply(
        &ns,
        &pebble_issuer("pebble", "pebble-account", json!({"profile": "tenminutes"})),
    );
    let issuers: Api<Issuer> = Api::namespaced(client().await, &ns);
    wait_issuer_ready(&issuers, "pebble").await;
    apply(
        &ns,
        &certificate(
            "short",
            &[&format!("short.{}", zone())],
            json!({"renewBeforePercentage": 98}),
        ),
    );
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    let first = wait_cert_ready(&certs, "short", 1).await.status.unwrap();
    let (nb, na) = (first.not_before.unwrap().0, first.not_after.unwrap().0);
    let lifetime = na.duration_since(nb).as_secs();
    assert!(
        (590..=610).contains(&lifetime),
        "profile validity not applied: {lifetime}s"
    );
    let renewed = wait_for("the renewal", Duration::from_secs(60), || async {
        let c = certs.get("short").await.ok()?;
        let st = c.status?;
        (st.revision? >= 2 && st.order.is_none()).then_some(st)
    })
    .await;
    assert!(
        renewed.not_after.unwrap().0 > na,
        "the renewed certificate expires later"
    );
    verify_chain(&ns, "short-tls");
}

#[tokio::test]
async fn a_name_that_cannot_validate_fails_clearly_and_backs_off() {
    controller();
    let ns = fresh_namespace("failing");
    // `Delay` instead of the self-check, which would catch this before the CA is told (see the
    // next test): here the CA itself fails the validation.
    apply(
        &ns,
        &pebble_issuer(
            "pebble",
            "pebble-account",
            json!({"solvers": [{"http01": {
                "ingress": {"ingressClassName": env_var("INGRESS_CLASS")},
                "selfCheck": {"mode": "Delay", "delay": "1s"}
            }}]}),
        ),
    );
    let issuers: Api<Issuer> = Api::namespaced(client().await, &ns);
    wait_issuer_ready(&issuers, "pebble").await;
    // Outside every zone BIND serves: Pebble cannot resolve it.
    apply(&ns, &certificate("broken", &["nowhere.invalid"], json!({})));
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    let failed = wait_for(
        "Ready=False with the CA's error",
        Duration::from_secs(30),
        || async {
            let c = certs.get("broken").await.ok()?;
            let (status, reason, message) = ready_condition(&c)?;
            (status == "False" && reason == "Failed").then_some((c, message))
        },
    )
    .await;
    let (cert, message) = failed;
    assert!(
        message.contains("urn:ietf:params:acme:error:"),
        "the CA's problem type is kept: {message}"
    );
    assert!(message.contains("nowhere.invalid"), "{message}");
    assert!(cert.status.as_ref().unwrap().last_failure_time.is_some());
    assert!(
        event_count(&ns, "broken", "Failed") > 0,
        "a Warning Event was recorded"
    );
    // Backoff 2 s doubling, capped at 16 s: after 12 s at most 4 attempts, not a tight loop.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let attempts = certs
        .get("broken")
        .await
        .unwrap()
        .status
        .unwrap()
        .failed_issuance_attempts
        .unwrap();
    assert!(
        (2..=4).contains(&attempts),
        "attempts after 12 s: {attempts}"
    );
    let orders = event_count(&ns, "broken", "OrderCreated") as i64;
    assert!(
        orders <= attempts + 1,
        "orders {orders} vs attempts {attempts}"
    );
    let left = solver_objects(&ns);
    assert!(
        left.trim().is_empty() || attempts < 4,
        "temporary objects kept after failure: {left}"
    );
}

#[tokio::test]
async fn a_route_that_does_not_work_is_caught_by_the_self_check_before_the_ca_is_told() {
    controller();
    let ns = fresh_namespace("selfcheck");
    // An IngressClass no controller serves: the route is never loaded, Traefik answers 404.
    apply(
        &ns,
        &pebble_issuer(
            "pebble",
            "pebble-account",
            json!({"solvers": [{"http01": {"ingress": {"ingressClassName": "nobody-serves-this"}}}]}),
        ),
    );
    let issuers: Api<Issuer> = Api::namespaced(client().await, &ns);
    wait_issuer_ready(&issuers, "pebble").await;
    let name = format!("unrouted.{ns}.{}", zone());
    apply(&ns, &certificate("unrouted", &[&name], json!({})));
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    let shown = wait_for(
        "the self-check's result in the challenge status",
        Duration::from_secs(20),
        || async {
            let c = certs.get("unrouted").await.ok()?;
            let authz = c.status?.order?.authorizations.first()?.clone();
            authz
                .error
                .filter(|e| e.starts_with("self-check:") && e.contains("404"))
                .map(|e| (authz.state, e))
        },
    )
    .await;
    assert_eq!(
        shown.0,
        Some(ferrocert::api::ChallengeState::Presented),
        "{shown:?}"
    );
    assert!(
        shown
            .1
            .contains(&format!("http://{name}:{}", env_var("HTTP01_PORT"))),
        "{shown:?}"
    );
    // The test controller gives up after --http01-self-check-timeout (10 s), without having told
    // the CA: the failure is ours, and Pebble never saw a validation request for the name.
    let failed = wait_for(
        "Ready=False after the self-check timeout",
        Duration::from_secs(30),
        || async {
            let c = certs.get("unrouted").await.ok()?;
            let (status, reason, message) = ready_condition(&c)?;
            (status == "False" && reason == "Failed").then_some(message)
        },
    )
    .await;
    assert!(
        failed.contains("self-check") && failed.contains("the CA was not told"),
        "{failed}"
    );
    assert!(!failed.contains("urn:ietf:params:acme:error:"), "{failed}");
    let from_ca = common::e2e::challenge_requests(&name)
        .into_iter()
        .filter(|(agent, _)| !agent.contains("ferrocert"))
        .count();
    assert_eq!(
        from_ca, 0,
        "the CA was asked to validate a route that did not work"
    );
    assert_eq!(event_count(&ns, "unrouted", "OrderCreated"), 1);
}

#[tokio::test]
async fn preferred_chain_picks_the_alternate_root() {
    controller();
    let ns = fresh_namespace("chain");
    let cn = subject_cn(&pebble_root(1));
    apply(
        &ns,
        &pebble_issuer("pebble", "pebble-account", json!({"preferredChain": cn})),
    );
    let issuers: Api<Issuer> = Api::namespaced(client().await, &ns);
    wait_issuer_ready(&issuers, "pebble").await;
    apply(
        &ns,
        &certificate("alt", &[&format!("alt.{}", zone())], json!({})),
    );
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    wait_cert_ready(&certs, "alt", 1).await;
    verify_chain_to(&ns, "alt-tls", 1);
    let crt = kubectl_ok(
        &[
            "get",
            "secret",
            "-n",
            &ns,
            "alt-tls",
            "-o",
            "jsonpath={.data.tls\\.crt}",
        ],
        None,
    );
    let pem =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, crt.trim()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let chain = dir.path().join("chain.pem");
    std::fs::write(&chain, &pem).unwrap();
    let default_root = dir.path().join("root0.pem");
    std::fs::write(&default_root, pebble_root(0)).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(&default_root)
        .arg("-untrusted")
        .arg(&chain)
        .arg(&chain)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the stored chain should lead to the alternate root, not the default one"
    );
}

#[tokio::test]
async fn a_missing_issuer_gives_a_clear_condition() {
    controller();
    let ns = fresh_namespace("noissuer");
    apply(
        &ns,
        &certificate(
            "orphan",
            &[&format!("orphan.{}", zone())],
            json!({"issuerRef": {"name": "absent"}}),
        ),
    );
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    let (_, reason, message) = wait_for("IssuerNotFound", Duration::from_secs(20), || async {
        let c = certs.get("orphan").await.ok()?;
        ready_condition(&c).filter(|(s, _, _)| s == "False")
    })
    .await;
    assert_eq!(reason, "IssuerNotFound");
    assert!(message.contains("absent"), "{message}");
}

#[tokio::test]
async fn eab_registration_uses_the_key_from_a_secret() {
    controller();
    let ns = fresh_namespace("eab");
    let eab = json!({
        "server": env_var("PEBBLE_EAB_DIRECTORY"),
        "externalAccountBinding": {"keyID": env_var("PEBBLE_EAB_KID"), "keySecretRef": {"name": "eab", "key": "secret"}}
    });
    kubectl_ok(
        &[
            "create",
            "secret",
            "generic",
            "eab",
            "-n",
            &ns,
            &format!("--from-literal=secret={}", env_var("PEBBLE_EAB_HMAC")),
        ],
        None,
    );
    apply(&ns, &pebble_issuer("with-eab", "eab-account", eab));
    // Without the binding the CA refuses, and says why.
    apply(
        &ns,
        &pebble_issuer(
            "without-eab",
            "plain-account",
            json!({"server": env_var("PEBBLE_EAB_DIRECTORY")}),
        ),
    );
    let issuers: Api<Issuer> = Api::namespaced(client().await, &ns);
    let ready = wait_issuer_ready(&issuers, "with-eab").await;
    assert!(ready.status.unwrap().acme.unwrap().uri.is_some());
    let message = wait_for("the EAB refusal", Duration::from_secs(30), || async {
        let i = issuers.get("without-eab").await.ok()?;
        let c = i
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Ready")?;
        (c.status == "False").then_some(c.message)
    })
    .await;
    assert!(message.contains("externalAccountRequired"), "{message}");
    let _ = kubectl(&["delete", "ns", &ns, "--wait=false"], None);
}

/// Waits until Certificate `name` is `Ready=False` with `reason`; returns the message.
async fn refused_with(ns: &str, name: &str, reason: &str) -> String {
    let certs: Api<Certificate> = Api::namespaced(client().await, ns);
    wait_for(
        &format!("{ns}/{name} Ready=False {reason}"),
        Duration::from_secs(30),
        || async {
            let c = certs.get(name).await.ok()?;
            ready_condition(&c)
                .filter(|(s, r, _)| s == "False" && r == reason)
                .map(|(_, _, m)| m)
        },
    )
    .await
}

#[tokio::test]
async fn a_secret_that_is_not_ours_is_never_taken_over() {
    let ns = namespace_with_issuer("claims").await;
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);

    // Two Certificates naming one Secret: the first has it, the second is refused and orders
    // nothing; the Secret keeps the first one's certificate.
    let first = format!("first.{}", zone());
    apply(
        &ns,
        &certificate("first", &[&first], json!({"secretName": "shared-tls"})),
    );
    wait_cert_ready(&certs, "first", 1).await;
    let before = secret_field(&ns, "shared-tls", "tls.crt");
    let second = format!("second.{}", zone());
    apply(
        &ns,
        &certificate("second", &[&second], json!({"secretName": "shared-tls"})),
    );
    let message = refused_with(&ns, "second", "SecretInUse").await;
    assert!(message.contains("Certificate first"), "{message}");
    assert_eq!(event_count(&ns, "second", "SecretInUse"), 1);
    assert_eq!(event_count(&ns, "second", "OrderCreated"), 0);

    // An Opaque Secret: its type cannot change, so say so instead of failing on every write.
    kubectl_ok(
        &[
            "create",
            "secret",
            "generic",
            "-n",
            &ns,
            "opaque-tls",
            "--from-literal=a=b",
        ],
        None,
    );
    let opaque = format!("opaque.{}", zone());
    apply(
        &ns,
        &certificate("opaque", &[&opaque], json!({"secretName": "opaque-tls"})),
    );
    let message = refused_with(&ns, "opaque", "SecretNotTLS").await;
    assert!(message.contains("type Opaque"), "{message}");

    // A TLS Secret someone else made is left alone until it is handed over by annotation.
    let dir = tempfile::tempdir().unwrap();
    let (crt, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args(["-subj", "/CN=someone-else", "-days", "1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    kubectl_ok(
        &[
            "create",
            "secret",
            "tls",
            "-n",
            &ns,
            "foreign-tls",
            &format!("--cert={}", crt.display()),
            &format!("--key={}", key.display()),
        ],
        None,
    );
    let foreign = format!("foreign.{}", zone());
    apply(
        &ns,
        &certificate("foreign", &[&foreign], json!({"secretName": "foreign-tls"})),
    );
    let message = refused_with(&ns, "foreign", "SecretNotOwned").await;
    assert!(
        message.contains("ferrocert.dev/certificate-name=foreign"),
        "{message}"
    );
    assert_eq!(
        subject_cn(secret_field(&ns, "foreign-tls", "tls.crt").as_bytes()),
        "someone-else"
    );
    kubectl_ok(
        &[
            "annotate",
            "secret",
            "-n",
            &ns,
            "foreign-tls",
            "ferrocert.dev/certificate-name=foreign",
        ],
        None,
    );
    // Looked at again within 30 s (jittered); then issued into the handed-over Secret.
    let certs_api = certs.clone();
    wait_for(
        "the handed-over Secret used",
        Duration::from_secs(60),
        || async {
            let c = certs_api.get("foreign").await.ok()?;
            ready_condition(&c).filter(|(s, _, _)| s == "True")
        },
    )
    .await;
    let text = verify_chain(&ns, "foreign-tls"); // asserts that it verifies against Pebble's root
    assert!(text.contains(&foreign), "{text}");

    // Nothing changed hands along the way.
    let after = secret_field(&ns, "shared-tls", "tls.crt");
    assert_eq!(
        before, after,
        "the first Certificate's Secret was overwritten"
    );
    assert_eq!(event_count(&ns, "opaque", "OrderCreated"), 0);
}

/// Issue 25, finding 13: two Certificates (different names) on one `secretName`, applied in one
/// `kubectl apply`, again and again to make the race likely. The API server decides the claim
/// (the Secret is created create-only, later writes carry the resourceVersion read): exactly one
/// ends Ready, the other says `SecretInUse`, and the Secret holds the winner's names. Both
/// through Pebble and through a selfSigned Issuer (no CA delay: the two writes come closest).
#[tokio::test]
async fn two_certificates_naming_one_secret_never_both_end_ready() {
    controller();
    for round in 0..8 {
        let ns = fresh_namespace("one-secret");
        let local = round % 2 == 1;
        if local {
            apply(
                &ns,
                &json!({"apiVersion": "ferrocert.dev/v1alpha1", "kind": "Issuer",
                        "metadata": {"name": "pebble"}, "spec": {"selfSigned": {}}}),
            );
        } else {
            apply(&ns, &pebble_issuer("pebble", "pebble-account", json!({})));
            wait_issuer_ready(&Api::<Issuer>::namespaced(client().await, &ns), "pebble").await;
        }
        let names: Vec<String> = ["a", "b"]
            .iter()
            .map(|n| format!("{n}.{ns}.{}", zone()))
            .collect();
        let list = json!({"apiVersion": "v1", "kind": "List", "items": [
            certificate("a", &[&names[0]], json!({"secretName": "shared-tls"})),
            certificate("b", &[&names[1]], json!({"secretName": "shared-tls"})),
        ]});
        apply(&ns, &list);
        let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
        let winner = wait_for(
            &format!("round {round}: one Ready, one SecretInUse"),
            Duration::from_secs(60),
            || async {
                let a = ready_condition(&certs.get("a").await.ok()?)?;
                let b = ready_condition(&certs.get("b").await.ok()?)?;
                assert!(
                    !(a.0 == "True" && b.0 == "True"),
                    "round {round}: both Certificates are Ready over one Secret"
                );
                match (a.0.as_str(), b.1.as_str(), b.0.as_str(), a.1.as_str()) {
                    ("True", "SecretInUse", _, _) => Some(0),
                    (_, _, "True", "SecretInUse") => Some(1),
                    _ => None,
                }
            },
        )
        .await;
        // Settled: it stays that way, and the Secret holds the winner's name only.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let a = ready_condition(&certs.get("a").await.unwrap()).unwrap();
        let b = ready_condition(&certs.get("b").await.unwrap()).unwrap();
        assert_ne!(a.0, b.0, "round {round}: {a:?} {b:?}");
        let pem = secret_field(&ns, "shared-tls", "tls.crt");
        let out = std::process::Command::new("openssl")
            .args(["x509", "-noout", "-ext", "subjectAltName"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(pem.as_bytes())?;
                child.wait_with_output()
            })
            .expect("openssl runs");
        let sans = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            sans.contains(&names[winner]),
            "round {round} ({local}): {sans}"
        );
        assert!(!sans.contains(&names[1 - winner]), "round {round}: {sans}");
    }
}

//! Switching from cert-manager re-issues nothing that is still good: a Secret that cert-manager
//! wrote (a Pebble certificate with cert-manager's annotations) and that satisfies the
//! Certificate's spec is adopted (no order, Ready, renewal time set, an `Adopted` Event), while
//! one that does not satisfy the spec is re-issued as before.

mod common;

use std::collections::BTreeMap;

use common::e2e::{
    apply, client, controller, event_count, event_fields, pebble_certificate, pebble_issuer,
    ready_condition, wait_cert_ready, wait_for, wait_issuer_ready,
};
use common::{env_var, fresh_namespace};
use ferrocert::api::{Certificate, Issuer};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use serde_json::json;
use std::time::Duration;

/// A namespace with Issuer `pebble` and a Secret `<name>` holding a Pebble certificate for
/// `names`, shaped as cert-manager leaves it (its annotations, none of ferrocert's); returns the
/// namespace and the certificate's serial as ferrocert's status reports serials.
async fn cert_manager_secret(prefix: &str, name: &str, names: &[String]) -> (String, Api<Secret>) {
    controller();
    let ns = fresh_namespace(prefix);
    apply(&ns, &pebble_issuer("pebble", "pebble-account", json!({})));
    wait_issuer_ready(&Api::<Issuer>::namespaced(client().await, &ns), "pebble").await;
    // Issue it with a Certificate of another name, then copy it as cert-manager would hold it.
    apply(&ns, &pebble_certificate("source", names, json!({})));
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    wait_cert_ready(&certs, "source", 1).await;
    let secrets: Api<Secret> = Api::namespaced(client().await, &ns);
    let source = secrets.get("source-tls").await.unwrap();
    let annotations = BTreeMap::from([
        (
            "cert-manager.io/certificate-name".to_string(),
            name.to_string(),
        ),
        (
            "cert-manager.io/issuer-name".to_string(),
            "letsencrypt".to_string(),
        ),
        (
            "cert-manager.io/issuer-kind".to_string(),
            "ClusterIssuer".to_string(),
        ),
        (
            "cert-manager.io/issuer-group".to_string(),
            "cert-manager.io".to_string(),
        ),
        ("cert-manager.io/alt-names".to_string(), names.join(",")),
    ]);
    let copy = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(format!("{name}-tls")),
            annotations: Some(annotations),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: source.data.clone(),
        ..Default::default()
    };
    secrets.create(&PostParams::default(), &copy).await.unwrap();
    (ns, secrets)
}

fn tls_crt(s: &Secret) -> Vec<u8> {
    s.data.as_ref().unwrap()["tls.crt"].0.clone()
}

#[tokio::test]
async fn a_valid_certificate_from_cert_manager_is_adopted_without_an_order() {
    let zone = env_var("TEST_ZONE");
    let names = vec![format!("adopt.{}.{zone}", std::process::id())];
    let (ns, secrets) = cert_manager_secret("adopt", "web", &names).await;
    let before = secrets.get("web-tls").await.unwrap();

    apply(&ns, &pebble_certificate("web", &names, json!({})));
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    let cert = wait_for("Certificate web Ready", Duration::from_secs(30), || async {
        let c = certs.get("web").await.ok()?;
        (ready_condition(&c)?.0 == "True").then_some(c)
    })
    .await;
    let status = cert.status.clone().unwrap();
    let adopted = status.adopted.clone().expect("status.adopted");
    assert!(status.renewal_time.is_some(), "renewal time set");
    assert!(status.revision.is_none(), "nothing issued: {status:?}");
    assert!(
        adopted
            .issuer
            .as_deref()
            .is_some_and(|i| i.contains("Pebble")),
        "{adopted:?}"
    );
    assert_eq!(
        adopted.previous_issuer_ref.as_deref(),
        Some("ClusterIssuer letsencrypt (cert-manager)")
    );
    let notes = event_fields(&ns, "web", "Adopted", "{.message}");
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].contains(&adopted.serial) && notes[0].contains("renewal at"),
        "{notes:?}"
    );

    // Nothing ordered for it, now or a little later, and the certificate is the same.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(event_count(&ns, "web", "OrderCreated"), 0);
    let after = secrets.get("web-tls").await.unwrap();
    assert_eq!(
        tls_crt(&after),
        tls_crt(&before),
        "the certificate was kept"
    );
    let a = after.metadata.annotations.unwrap();
    assert_eq!(
        a["cert-manager.io/issuer-name"], "letsencrypt",
        "cert-manager's stay"
    );
    assert_eq!(a["ferrocert.dev/adopted-serial"], adopted.serial);
    assert_eq!(
        after.metadata.labels.unwrap()["ferrocert.dev/certificate-name"],
        "web",
        "the Secret watch now sees it"
    );
    assert_eq!(event_count(&ns, "web", "Adopted"), 1, "adopted once");
}

#[tokio::test]
async fn a_certificate_that_does_not_satisfy_the_spec_is_reissued() {
    let zone = env_var("TEST_ZONE");
    let pid = std::process::id();
    let old = vec![format!("old.{pid}.{zone}")];
    let (ns, secrets) = cert_manager_secret("noadopt", "web", &old).await;
    let before = secrets.get("web-tls").await.unwrap();
    // The spec asks for one more name than the certificate has.
    let wanted = vec![old[0].clone(), format!("more.{pid}.{zone}")];
    apply(&ns, &pebble_certificate("web", &wanted, json!({})));
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    let cert = wait_cert_ready(&certs, "web", 1).await;
    assert!(cert.status.unwrap().adopted.is_none());
    assert_eq!(event_count(&ns, "web", "Adopted"), 0);
    assert!(event_count(&ns, "web", "OrderCreated") >= 1);
    let after = secrets.get("web-tls").await.unwrap();
    assert_ne!(tls_crt(&after), tls_crt(&before), "re-issued");
}

/// Issue 25, finding 14: a chart's self-signed placeholder for the same name (handed over to the
/// Certificate by annotation) has a key that matches and the right names, but no ACME CA issued
/// it: it is replaced by a certificate from Pebble, and the Event says why, instead of being
/// served until it expires.
#[tokio::test]
async fn a_self_signed_placeholder_is_replaced_not_adopted() {
    controller();
    let ns = fresh_namespace("placeholder");
    apply(&ns, &pebble_issuer("pebble", "pebble-account", json!({})));
    wait_issuer_ready(&Api::<Issuer>::namespaced(client().await, &ns), "pebble").await;
    let host = format!("site.{ns}.{}", env_var("TEST_ZONE"));
    let dir = tempfile::tempdir().unwrap();
    let (crt, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "365", "-subj", &format!("/CN={host}")])
        .args(["-addext", &format!("subjectAltName=DNS:{host}")])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    common::kubectl_ok(
        &[
            "create",
            "secret",
            "tls",
            "site-tls",
            "-n",
            &ns,
            "--cert",
            crt.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
        None,
    );
    common::kubectl_ok(
        &[
            "annotate",
            "secret",
            "site-tls",
            "-n",
            &ns,
            "ferrocert.dev/certificate-name=site",
        ],
        None,
    );
    apply(
        &ns,
        &pebble_certificate(
            "site",
            &[&host],
            json!({"privateKey": {"algorithm": "ECDSA", "size": 256}}),
        ),
    );
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    wait_cert_ready(&certs, "site", 1).await;
    let text = common::e2e::verify_chain(&ns, "site-tls");
    assert!(text.contains(&format!("DNS:{host}")), "{text}");
    let status = certs.get("site").await.unwrap().status.unwrap();
    assert!(status.adopted.is_none(), "the placeholder was adopted");
    assert_eq!(event_count(&ns, "site", "Adopted"), 0);
    let created = event_fields(&ns, "site", "OrderCreated", "{.message}");
    assert!(
        created.iter().any(|m| m.contains("self-signed")),
        "the order says why: {created:?}"
    );
}

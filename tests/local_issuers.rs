//! The `selfSigned` and `ca` issuers, end to end: the controller as a process against the real API
//! server, no ACME server involved. A selfSigned Issuer signs a CA Certificate, a `ca` Issuer on
//! its Secret signs a service Certificate whose chain openssl verifies against the CA's `ca.crt`;
//! rotating the CA re-issues the service Certificate; a CA Secret whose key is not its
//! certificate's is refused on the Issuer and on the Certificate.

mod common;

use std::process::Command;
use std::time::Duration;

use common::e2e::{
    apply, client, controller, event_count, ready_condition, secret_field, wait_cert_ready,
    wait_for, wait_issuer_ready,
};
use common::{fresh_namespace, kubectl_ok};
use ferrocert::api::{Certificate, Issuer};
use kube::api::Api;
use serde_json::{Value, json};

fn issuer(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "ferrocert.dev/v1alpha1",
        "kind": "Issuer",
        "metadata": {"name": name},
        "spec": spec
    })
}

fn certificate(name: &str, issuer: &str, spec: Value) -> Value {
    let mut doc = json!({
        "apiVersion": "ferrocert.dev/v1alpha1",
        "kind": "Certificate",
        "metadata": {"name": name},
        "spec": {"secretName": name, "issuerRef": {"name": issuer}}
    });
    common::e2e::merge_fields(&mut doc["spec"], &spec);
    doc
}

/// The root CA: a selfSigned Issuer and a CA Certificate `root-ca` through it, Ready.
async fn root_ca(ns: &str) -> Api<Certificate> {
    apply(ns, &issuer("selfsigned", json!({"selfSigned": {}})));
    apply(
        ns,
        &certificate(
            "root-ca",
            "selfsigned",
            json!({"isCA": true, "commonName": "Test Root CA",
                "subject": {"organizations": ["ferrocert tests"]},
                "privateKey": {"algorithm": "ECDSA", "size": 384}}),
        ),
    );
    let certs: Api<Certificate> = Api::namespaced(client().await, ns);
    wait_cert_ready(&certs, "root-ca", 1).await;
    certs
}

/// Writes `contents` into files of a temporary directory; returns it with the paths.
fn files(contents: &[(&str, &str)]) -> (tempfile::TempDir, Vec<std::path::PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let paths = contents
        .iter()
        .map(|(name, text)| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect();
    (dir, paths)
}

/// `openssl verify -CAfile ca.crt tls.crt` (the leaf, with the rest of tls.crt as untrusted).
fn openssl_verify(ca_pem: &str, chain_pem: &str) -> std::process::Output {
    let (_dir, paths) = files(&[("ca.crt", ca_pem), ("tls.crt", chain_pem)]);
    Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(&paths[0])
        .arg("-untrusted")
        .arg(&paths[1])
        .arg(&paths[1])
        .output()
        .unwrap()
}

fn openssl_text(pem: &str) -> String {
    let (_dir, paths) = files(&[("c.pem", pem)]);
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&paths[0])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn a_private_ca_bootstraps_signs_and_rotates() {
    controller();
    let ns = fresh_namespace("localca");
    let certs = root_ca(&ns).await;

    // The root: self-signed, a CA, its own ca.crt.
    let root_crt = secret_field(&ns, "root-ca", "tls.crt");
    let root_ca_crt = secret_field(&ns, "root-ca", "ca.crt");
    assert_eq!(
        root_crt, root_ca_crt,
        "a self-signed certificate is its own ca.crt"
    );
    let text = openssl_text(&root_crt);
    assert!(text.contains("CA:TRUE"), "{text}");
    assert!(text.contains("Certificate Sign"), "{text}");
    assert!(
        text.contains("Issuer: O=ferrocert tests, CN=Test Root CA")
            || text.contains("Issuer: O = ferrocert tests, CN = Test Root CA"),
        "{text}"
    );
    let out = openssl_verify(&root_ca_crt, &root_crt);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The CA issuer on its Secret, and a service certificate.
    apply(
        &ns,
        &issuer("root", json!({"ca": {"secretName": "root-ca"}})),
    );
    let issuers: Api<Issuer> = Api::namespaced(client().await, &ns);
    let ready = wait_issuer_ready(&issuers, "root").await;
    let first_fp = ready
        .status
        .and_then(|s| s.ca)
        .map(|ca| ca.fingerprint_sha256)
        .expect("status.ca");
    apply(
        &ns,
        &certificate(
            "web",
            "root",
            json!({"dnsNames": ["web.local.test"], "usages": ["digital signature", "server auth"]}),
        ),
    );
    wait_cert_ready(&certs, "web", 1).await;
    let web_crt = secret_field(&ns, "web", "tls.crt");
    let web_ca = secret_field(&ns, "web", "ca.crt");
    assert_eq!(web_ca, root_crt, "ca.crt is the signing CA");
    let out = openssl_verify(&web_ca, &web_crt);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = openssl_text(&web_crt);
    assert!(text.contains("DNS:web.local.test"), "{text}");
    assert!(text.contains("TLS Web Server Authentication"), "{text}");
    assert!(text.contains("CA:FALSE"), "{text}");
    assert_eq!(event_count(&ns, "web", "Issued"), 1);
    let annotations = kubectl_ok(
        &[
            "get",
            "secret",
            "-n",
            &ns,
            "web",
            "-o",
            "jsonpath={.metadata.annotations}",
        ],
        None,
    );
    assert!(annotations.contains(&first_fp), "{annotations}");

    // Rotate the CA (what `ferrocert renew root-ca` does): a new CA key and certificate.
    kubectl_ok(
        &[
            "annotate",
            "fcert",
            "-n",
            &ns,
            "root-ca",
            "ferrocert.dev/renew-requested=rotate-1",
        ],
        None,
    );
    wait_cert_ready(&certs, "root-ca", 2).await;
    let new_root = secret_field(&ns, "root-ca", "tls.crt");
    assert_ne!(new_root, root_crt);
    // The issuer notices (the CA Secret is ferrocert's, so at once) and the service certificate
    // is re-issued by the new CA.
    wait_cert_ready(&certs, "web", 2).await;
    let web_crt2 = secret_field(&ns, "web", "tls.crt");
    let web_ca2 = secret_field(&ns, "web", "ca.crt");
    assert_eq!(web_ca2, new_root);
    let out = openssl_verify(&web_ca2, &web_crt2);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = openssl_verify(&root_crt, &web_crt2);
    assert!(
        !out.status.success(),
        "the old CA must not verify the new certificate"
    );
    let issuer_fp = issuers
        .get("root")
        .await
        .unwrap()
        .status
        .and_then(|s| s.ca)
        .map(|ca| ca.fingerprint_sha256)
        .unwrap();
    assert_ne!(issuer_fp, first_fp, "the issuer records the new CA");
}

#[tokio::test]
async fn a_ca_secret_whose_key_does_not_match_is_refused() {
    controller();
    let ns = fresh_namespace("badca");
    root_ca(&ns).await;
    apply(&ns, &issuer("other", json!({"selfSigned": {}})));
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    apply(
        &ns,
        &certificate(
            "other-ca",
            "other",
            json!({"isCA": true, "commonName": "Other CA"}),
        ),
    );
    wait_cert_ready(&certs, "other-ca", 1).await;
    // root-ca's certificate with other-ca's key.
    let (_dir, paths) = files(&[
        ("tls.crt", &secret_field(&ns, "root-ca", "tls.crt")),
        ("tls.key", &secret_field(&ns, "other-ca", "tls.key")),
    ]);
    kubectl_ok(
        &[
            "create",
            "secret",
            "generic",
            "-n",
            &ns,
            "mixed-ca",
            &format!("--from-file=tls.crt={}", paths[0].display()),
            &format!("--from-file=tls.key={}", paths[1].display()),
        ],
        None,
    );
    apply(
        &ns,
        &issuer("mixed", json!({"ca": {"secretName": "mixed-ca"}})),
    );
    apply(
        &ns,
        &certificate("svc", "mixed", json!({"dnsNames": ["svc.local.test"]})),
    );

    let issuers: Api<Issuer> = Api::namespaced(client().await, &ns);
    let (reason, message) = wait_for(
        "Issuer mixed Ready=False",
        Duration::from_secs(30),
        || async {
            let i = issuers.get("mixed").await.ok()?;
            let c = i
                .status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == "Ready" && c.status == "False")?;
            Some((c.reason, c.message))
        },
    )
    .await;
    assert_eq!(reason, "CAKeyMismatch", "{message}");
    assert!(
        message.contains("mixed-ca") && message.contains("Test Root CA"),
        "{message}"
    );
    assert!(!message.contains("PRIVATE KEY"), "{message}");

    let (status, reason, message) = wait_for(
        "Certificate svc Ready=False",
        Duration::from_secs(30),
        || async {
            let c = certs.get("svc").await.ok()?;
            ready_condition(&c).filter(|(s, _, _)| s == "False")
        },
    )
    .await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "CAKeyMismatch"),
        "{message}"
    );
    assert!(message.contains("Issuer mixed cannot sign"), "{message}");
    assert!(event_count(&ns, "svc", "CAKeyMismatch") >= 1);
    let secret = kubectl_ok(
        &[
            "get",
            "secret",
            "-n",
            &ns,
            "svc",
            "--ignore-not-found",
            "-o",
            "name",
        ],
        None,
    );
    assert!(secret.trim().is_empty(), "nothing is signed: {secret}");
}

//! Additional outputs end to end (issue 16): a Certificate with `additionalOutputFormats`
//! (CombinedPEM, DER) and both keystores (PKCS#12 with cert-manager's default profile, JKS with an
//! alias) issued by Pebble over HTTP-01, with the controller as a process. The real tools open what
//! it wrote: `openssl pkcs12` and `keytool -list` with the password from the Secret, `openssl`
//! decodes `tls-combined.pem` and `key.der` and the key matches `tls.crt`. Changing the password
//! Secret rewrites the keystores without a new order (the old password no longer opens them);
//! deleting it makes the Certificate `Ready=False` (`KeystorePasswordMissing`) until it is back;
//! outputs asked for after issuance are written without a new order.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use common::e2e::{
    ControllerProcess, apply, backend_listen, client, event_count, pebble_certificate,
    pebble_issuer, ready_condition, start_controller_with, wait_cert_ready, wait_for,
    wait_issuer_ready,
};
use common::{env_var, fresh_namespace, kubectl_ok};
use ferrocert::api::{Certificate, Issuer};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use serde_json::json;

const FIRST: &str = "first-pass-1";
const SECOND: &str = "second-pass-2";
const FINGERPRINT: &str = "ferrocert.dev/keystores-fingerprint";

/// A controller of this binary that re-checks keystore passwords every 2 s (default 10 min), so
/// a changed or deleted password Secret is seen within the test.
fn controller() -> &'static ControllerProcess {
    static C: OnceLock<ControllerProcess> = OnceLock::new();
    C.get_or_init(|| {
        start_controller_with(
            "outputs",
            &backend_listen(),
            &["--keystore-password-recheck", "2s"],
            &[],
        )
    })
}

/// A namespace with a Ready Pebble Issuer named `pebble`.
async fn namespace_with_issuer(prefix: &str) -> String {
    controller();
    let ns = fresh_namespace(prefix);
    apply(&ns, &pebble_issuer("pebble", "pebble-account", json!({})));
    let issuers: Api<Issuer> = Api::namespaced(client().await, &ns);
    wait_issuer_ready(&issuers, "pebble").await;
    ns
}

fn password_secret(password: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "keystore-password"},
        "type": "Opaque",
        "stringData": {"password": password}
    })
}

/// The TLS Secret's data.
async fn secret_data(ns: &str, name: &str) -> BTreeMap<String, Vec<u8>> {
    let secrets: Api<Secret> = Api::namespaced(client().await, ns);
    let s = secrets.get(name).await.expect("the TLS Secret");
    s.data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect()
}

async fn secret_annotation(ns: &str, name: &str, key: &str) -> Option<String> {
    let secrets: Api<Secret> = Api::namespaced(client().await, ns);
    secrets
        .get(name)
        .await
        .ok()?
        .metadata
        .annotations?
        .get(key)
        .cloned()
}

/// Runs a tool; (success, stdout + stderr).
fn run(program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("{program} cannot run ({e}); tests/env/install-deps.sh installs it")
        });
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_string()
}

/// The public key (PEM) of tls.crt's leaf.
fn leaf_public_key(dir: &Path, data: &BTreeMap<String, Vec<u8>>) -> String {
    let crt = write(dir, "tls.crt", &data["tls.crt"]);
    let (ok, text) = run("openssl", &["x509", "-in", &crt, "-pubkey", "-noout"]);
    assert!(ok, "{text}");
    text
}

/// The public key (PEM) of a private key file, by `openssl pkey`.
fn public_key_of(file: &str, inform: &str) -> String {
    let (ok, text) = run(
        "openssl",
        &["pkey", "-inform", inform, "-in", file, "-pubout"],
    );
    assert!(ok, "{text}");
    text
}

/// The first private key block of OpenSSL's output.
fn first_private_key(text: &str) -> String {
    let start = text
        .find("-----BEGIN PRIVATE KEY-----")
        .expect("a private key");
    let end_marker = "-----END PRIVATE KEY-----";
    let end = text[start..].find(end_marker).expect("its end") + start + end_marker.len();
    format!("{}\n", &text[start..end])
}

/// The first certificate block of a PEM text.
fn first_certificate(text: &str) -> String {
    let start = text
        .find("-----BEGIN CERTIFICATE-----")
        .expect("a certificate");
    let end_marker = "-----END CERTIFICATE-----";
    let end = text[start..].find(end_marker).expect("its end") + start + end_marker.len();
    format!("{}\n", &text[start..end])
}

/// `openssl pkcs12 -info -legacy` (cert-manager's default profile is LegacyRC2, which OpenSSL 3
/// opens only with `-legacy`).
fn open_p12(file: &str, password: &str) -> (bool, String) {
    let pass = format!("pass:{password}");
    run(
        "openssl",
        &[
            "pkcs12", "-info", "-legacy", "-in", file, "-passin", &pass, "-noenc",
        ],
    )
}

fn keytool_list(file: &str, store_type: &str, password: &str) -> (bool, String) {
    run(
        "keytool",
        &[
            "-list",
            "-v",
            "-keystore",
            file,
            "-storetype",
            store_type,
            "-storepass",
            password,
        ],
    )
}

/// Asserts that every asked-for output is there and opens with `password`, with the key of
/// tls.crt.
fn assert_outputs_open(data: &BTreeMap<String, Vec<u8>>, host: &str, password: &str) {
    let dir = tempfile::tempdir().unwrap();
    let leaf_key = leaf_public_key(dir.path(), data);

    // tls-combined.pem: the key, then the chain.
    let combined = write(dir.path(), "tls-combined.pem", &data["tls-combined.pem"]);
    assert!(
        data["tls-combined.pem"].starts_with(&data["tls.key"]),
        "tls-combined.pem starts with tls.key"
    );
    assert_eq!(public_key_of(&combined, "PEM"), leaf_key, "CombinedPEM key");
    let (ok, text) = run(
        "openssl",
        &["x509", "-in", &combined, "-noout", "-ext", "subjectAltName"],
    );
    assert!(ok && text.contains(host), "{text}");

    // key.der: the DER of tls.key.
    let der = write(dir.path(), "key.der", &data["key.der"]);
    assert_eq!(
        public_key_of(&der, "DER"),
        leaf_key,
        "key.der is the leaf's key"
    );

    // keystore.p12 in OpenSSL and keytool.
    let p12 = write(dir.path(), "keystore.p12", &data["keystore.p12"]);
    let (ok, text) = open_p12(&p12, password);
    assert!(ok, "openssl pkcs12: {text}");
    // Pebble's leaves have an empty subject: compare the certificate itself.
    let leaf_pem = first_certificate(std::str::from_utf8(&data["tls.crt"]).unwrap());
    assert!(text.contains(leaf_pem.trim()), "the leaf is not in: {text}");
    let key = write(
        dir.path(),
        "from-p12.pem",
        first_private_key(&text).as_bytes(),
    );
    assert_eq!(public_key_of(&key, "PEM"), leaf_key, "keystore.p12 key");
    let (ok, text) = keytool_list(&p12, "PKCS12", password);
    assert!(ok, "keytool PKCS12: {text}");
    assert!(text.contains("Entry type: PrivateKeyEntry"), "{text}");

    // keystore.jks in keytool, under the alias asked for.
    let jks = write(dir.path(), "keystore.jks", &data["keystore.jks"]);
    let (ok, text) = keytool_list(&jks, "JKS", password);
    assert!(ok, "keytool JKS: {text}");
    assert!(text.contains("Alias name: web"), "{text}");
    assert!(text.contains("Entry type: PrivateKeyEntry"), "{text}");
    assert!(text.contains(host), "{text}");

    // Truststores exactly when there is a ca.crt (Pebble's chain stops below its root).
    let has_ca = data.contains_key("ca.crt");
    assert_eq!(data.contains_key("truststore.p12"), has_ca);
    assert_eq!(data.contains_key("truststore.jks"), has_ca);
    if has_ca {
        let ts = write(dir.path(), "truststore.jks", &data["truststore.jks"]);
        let (ok, text) = keytool_list(&ts, "JKS", password);
        assert!(ok && text.contains("trustedCertEntry"), "{text}");
    }
}

fn assert_password_fails(data: &BTreeMap<String, Vec<u8>>, password: &str) {
    let dir = tempfile::tempdir().unwrap();
    let p12 = write(dir.path(), "keystore.p12", &data["keystore.p12"]);
    let (ok, text) = open_p12(&p12, password);
    assert!(!ok, "keystore.p12 opened with the old password: {text}");
    let jks = write(dir.path(), "keystore.jks", &data["keystore.jks"]);
    let (ok, text) = keytool_list(&jks, "JKS", password);
    assert!(!ok, "keystore.jks opened with the old password: {text}");
}

#[tokio::test]
async fn keystores_and_formats_open_in_the_real_tools_and_follow_the_password() {
    let ns = namespace_with_issuer("outputs").await;
    let host = format!("keystores.{}", env_var("TEST_ZONE"));
    apply(&ns, &password_secret(FIRST));
    let pw_ref = json!({"name": "keystore-password", "key": "password"});
    apply(
        &ns,
        &pebble_certificate(
            "stores",
            &[&host],
            json!({
                "additionalOutputFormats": [{"type": "CombinedPEM"}, {"type": "DER"}],
                "keystores": {
                    "pkcs12": {"create": true, "passwordSecretRef": pw_ref},
                    "jks": {"create": true, "alias": "web", "passwordSecretRef": pw_ref}
                }
            }),
        ),
    );
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    wait_cert_ready(&certs, "stores", 1).await;
    let data = secret_data(&ns, "stores-tls").await;
    assert_outputs_open(&data, &host, FIRST);
    let fingerprint = secret_annotation(&ns, "stores-tls", FINGERPRINT)
        .await
        .expect("the keystores' fingerprint annotation");
    assert_eq!(fingerprint.len(), 64);
    for value in [FIRST.as_bytes(), SECOND.as_bytes()] {
        assert!(
            !fingerprint
                .as_bytes()
                .windows(value.len())
                .any(|w| w == value),
            "the annotation shows a password"
        );
    }

    // A new password: the keystores are rewritten with it, the certificate stays.
    apply(&ns, &password_secret(SECOND));
    wait_for(
        "the keystores rewritten with the new password",
        Duration::from_secs(60),
        || async {
            let now = secret_annotation(&ns, "stores-tls", FINGERPRINT).await?;
            (now != fingerprint).then_some(())
        },
    )
    .await;
    let after = secret_data(&ns, "stores-tls").await;
    assert_eq!(after["tls.crt"], data["tls.crt"], "no new certificate");
    assert_eq!(after["tls.key"], data["tls.key"], "no new key");
    assert_outputs_open(&after, &host, SECOND);
    assert_password_fails(&after, FIRST);
    let cert = certs.get("stores").await.unwrap();
    assert_eq!(cert.status.as_ref().and_then(|s| s.revision), Some(1));
    assert!(event_count(&ns, "stores", "OutputsWritten") >= 1);

    // The password Secret gone: Ready=False with a reason and a message naming it; back: Ready.
    kubectl_ok(&["delete", "secret", "-n", &ns, "keystore-password"], None);
    let (_, reason, message) = wait_for(
        "Ready=False for the missing password Secret",
        Duration::from_secs(60),
        || async {
            let c = certs.get("stores").await.ok()?;
            ready_condition(&c).filter(|(status, ..)| status == "False")
        },
    )
    .await;
    assert_eq!(reason, "KeystorePasswordMissing");
    assert!(message.contains("keystore-password"), "{message}");
    assert!(!message.contains(SECOND), "{message}");
    assert!(event_count(&ns, "stores", "KeystorePasswordMissing") >= 1);
    apply(&ns, &password_secret(SECOND));
    wait_for("Ready again", Duration::from_secs(60), || async {
        let c = certs.get("stores").await.ok()?;
        ready_condition(&c).filter(|(status, ..)| status == "True")
    })
    .await;
    let cert = certs.get("stores").await.unwrap();
    assert_eq!(cert.status.as_ref().and_then(|s| s.revision), Some(1));
}

#[tokio::test]
async fn outputs_asked_for_after_issuance_are_written_without_a_new_order() {
    let ns = namespace_with_issuer("outputs-late").await;
    let host = format!("late-outputs.{}", env_var("TEST_ZONE"));
    apply(&ns, &pebble_certificate("late", &[&host], json!({})));
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    wait_cert_ready(&certs, "late", 1).await;
    let before = secret_data(&ns, "late-tls").await;
    assert!(!before.contains_key("key.der"));

    apply(
        &ns,
        &pebble_certificate(
            "late",
            &[&host],
            json!({"additionalOutputFormats": [{"type": "DER"}]}),
        ),
    );
    let after = wait_for("key.der written", Duration::from_secs(60), || async {
        let data = secret_data(&ns, "late-tls").await;
        data.contains_key("key.der").then_some(data)
    })
    .await;
    assert_eq!(after["tls.crt"], before["tls.crt"], "no new certificate");
    let dir = tempfile::tempdir().unwrap();
    let der = write(dir.path(), "key.der", &after["key.der"]);
    assert_eq!(
        public_key_of(&der, "DER"),
        leaf_public_key(dir.path(), &after),
        "key.der is the key of tls.crt"
    );
    let cert = certs.get("late").await.unwrap();
    assert_eq!(cert.status.as_ref().and_then(|s| s.revision), Some(1));
    assert_eq!(
        event_count(&ns, "late", "OrderCreated"),
        1,
        "one order only"
    );
}

//! End-to-end: the life of a certificate after issuance, against the real API server and Pebble.
//! ARI windows (recorded, followed, moved into the past), `replaces`, profiles, revocation on
//! demand and on deletion (also with the CA unreachable).

mod common;

use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::e2e::{
    ControllerProcess, apply, backend_listen, client, event_count, event_fields,
    pebble_certificate, pebble_issuer, secret_field, start_controller_with, verify_chain,
    wait_cert_ready, wait_for, wait_issuer_ready,
};
use common::{env_var, fresh_namespace, kubectl, kubectl_ok};
use ferrocert::acme::lifecycle::certificate_id;
use ferrocert::api::{Certificate, Issuer};
use jiff::Timestamp;
use kube::api::Api;
use serde_json::{Value, json};

/// This binary's controller: re-checks ARI windows every 1–2 s (so a window moved at Pebble is
/// seen at once); failures back off from 2 s doubling to 16 s (the shared test defaults).
fn controller() -> &'static ControllerProcess {
    static C: OnceLock<ControllerProcess> = OnceLock::new();
    C.get_or_init(|| {
        start_controller_with(
            "lifecycle",
            &backend_listen(),
            &["--ari-recheck-min", "1s", "--ari-recheck-max", "2s"],
            &[],
        )
    })
}

fn zone() -> String {
    env_var("TEST_ZONE")
}

fn certificate(name: &str, dns: &str, extra: Value) -> Value {
    pebble_certificate(name, &[dns], extra)
}

async fn namespace_with_issuer(prefix: &str, issuer_extra: Value) -> String {
    controller();
    let ns = fresh_namespace(prefix);
    apply(
        &ns,
        &pebble_issuer("pebble", "pebble-account", issuer_extra),
    );
    let issuers: Api<Issuer> = Api::namespaced(client().await, &ns);
    wait_issuer_ready(&issuers, "pebble").await;
    ns
}

/// The leaf certificate (PEM and DER) in a TLS Secret.
fn leaf(ns: &str, secret: &str) -> (String, Vec<u8>) {
    let pem_text = secret_field(ns, secret, "tls.crt");
    let chain = ferrocert::pki::parse_chain(&pem_text).unwrap();
    let der = chain.certs_der[0].clone();
    let leaf_pem = pem_text
        .split_inclusive("-----END CERTIFICATE-----\n")
        .next()
        .unwrap()
        .to_string();
    (leaf_pem, der)
}

fn serial_of(der: &[u8]) -> String {
    ferrocert::pki::ParsedLeaf::from_der(der)
        .unwrap()
        .serial_hex
}

fn curl_pebble(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--cacert", &env_var("PEBBLE_CA_FILE")])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "curl {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Pebble's own view of a certificate: `{"Status": "Valid"|"Revoked", "Reason": n, ...}`.
fn pebble_cert_status(serial_hex: &str) -> Value {
    let url = format!(
        "{}/cert-status-by-serial/{serial_hex}",
        env_var("PEBBLE_MANAGEMENT")
    );
    serde_json::from_str(&curl_pebble(&[&url])).unwrap()
}

/// Pebble's ARI answer for a certificate, fetched directly.
fn pebble_window(cert_id: &str) -> (Timestamp, Timestamp) {
    let dir = env_var("PEBBLE_DIRECTORY");
    let base = dir.trim_end_matches("/dir");
    let body: Value = serde_json::from_str(&curl_pebble(&[&format!(
        "{base}/draft-ietf-acme-ari-03/renewalInfo/{cert_id}"
    )]))
    .unwrap();
    let w = &body["suggestedWindow"];
    (
        w["start"].as_str().unwrap().parse().unwrap(),
        w["end"].as_str().unwrap().parse().unwrap(),
    )
}

/// Makes Pebble answer ARI for this certificate with the given window.
fn set_pebble_window(leaf_pem: &str, start: Timestamp, end: Timestamp) {
    let ari = json!({"suggestedWindow": {"start": start.to_string(), "end": end.to_string()}});
    let body = json!({"Certificate": leaf_pem, "ARIResponse": ari.to_string()});
    let url = format!("{}/set-renewal-info/", env_var("PEBBLE_MANAGEMENT"));
    curl_pebble(&["-f", "-X", "POST", "--data-binary", &body.to_string(), &url]);
}

/// Messages of the Events with this reason on an object.
fn event_messages(ns: &str, name: &str, reason: &str) -> Vec<String> {
    event_fields(ns, name, reason, "{.message}")
}

async fn wait_gone(api: &Api<Certificate>, name: &str, timeout: Duration) {
    wait_for(&format!("Certificate {name} gone"), timeout, || async {
        matches!(api.get_opt(name).await, Ok(None)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn ari_window_is_recorded_and_followed_with_replaces() {
    let ns = namespace_with_issuer("ari", json!({})).await;
    apply(
        &ns,
        &certificate("ari", &format!("ari.{}", zone()), json!({})),
    );
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    wait_cert_ready(&certs, "ari", 1).await;
    let (pem1, der1) = leaf(&ns, "ari-tls");
    let id1 = certificate_id(&der1).unwrap();

    // The window in status is Pebble's, and the renewal time is inside it.
    let status = wait_for(
        "the ARI window in status",
        Duration::from_secs(20),
        || async {
            let st = certs.get("ari").await.ok()?.status?;
            let info = st.renewal_info.as_ref()?;
            (info.certificate_id == id1 && info.window_start.is_some()).then_some(st)
        },
    )
    .await;
    let info = status.renewal_info.clone().unwrap();
    let (start, end) = pebble_window(&id1);
    assert_eq!(info.window_start.unwrap().0, start);
    assert_eq!(info.window_end.unwrap().0, end);
    assert!(info.last_checked.is_some() && info.next_check.is_some());
    let renewal = status.renewal_time.unwrap().0;
    assert!(
        renewal >= start && renewal <= end,
        "renewal {renewal} outside [{start}, {end}]"
    );
    assert_eq!(status.profile.as_deref(), Some("default"));

    // The CA moves the window to a few seconds from now: the renewal happens inside it and the
    // new order names the certificate it replaces.
    let now = Timestamp::now();
    let (w_start, w_end) = (
        now + jiff::SignedDuration::from_secs(6),
        now + jiff::SignedDuration::from_secs(9),
    );
    set_pebble_window(&pem1, w_start, w_end);
    wait_cert_ready(&certs, "ari", 2).await;
    let renewed_at = Timestamp::now();
    assert!(
        renewed_at >= w_start,
        "renewed at {renewed_at}, before the window opened at {w_start}"
    );
    assert!(
        renewed_at <= w_end + jiff::SignedDuration::from_secs(15),
        "renewed at {renewed_at}, long after the window closed at {w_end}"
    );
    let issued = event_messages(&ns, "ari", "Issued");
    assert!(
        issued
            .iter()
            .any(|m| m.contains(&format!("replacing {id1}"))),
        "no Issued Event names the replaced certificate {id1}: {issued:?}"
    );
    assert!(event_count(&ns, "ari", "RenewalWindow") >= 1);
    assert!(
        issued
            .iter()
            .all(|m| m.contains("the CA suggests renewing between")),
        "each Issued Event names the CA's window: {issued:?}"
    );
    verify_chain(&ns, "ari-tls");

    // A window in the past (what a CA says after an incident): renewal at once.
    let (pem2, der2) = leaf(&ns, "ari-tls");
    assert_ne!(der1, der2);
    let moved = Instant::now();
    set_pebble_window(
        &pem2,
        now - jiff::SignedDuration::from_secs(7200),
        now - jiff::SignedDuration::from_secs(3600),
    );
    wait_cert_ready(&certs, "ari", 3).await;
    assert!(
        moved.elapsed() < Duration::from_secs(20),
        "renewal took {:?}",
        moved.elapsed()
    );
    let id2 = certificate_id(&der2).unwrap();
    assert!(
        event_messages(&ns, "ari", "Issued")
            .iter()
            .any(|m| m.contains(&format!("replacing {id2}"))),
    );
}

#[tokio::test]
async fn certificates_issued_together_are_spread_over_the_window() {
    let ns = namespace_with_issuer("spread", json!({})).await;
    let names: Vec<String> = (0..6).map(|i| format!("s{i}")).collect();
    for n in &names {
        apply(
            &ns,
            &certificate(n, &format!("{n}.spread.{}", zone()), json!({})),
        );
    }
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    let mut renewals = std::collections::BTreeSet::new();
    for n in &names {
        wait_cert_ready(&certs, n, 1).await;
        let st = wait_for("the ARI window", Duration::from_secs(20), || async {
            let st = certs.get(n).await.ok()?.status?;
            st.renewal_info.as_ref()?.window_start.as_ref()?;
            Some(st)
        })
        .await;
        let info = st.renewal_info.unwrap();
        let at = st.renewal_time.unwrap().0;
        assert!(at >= info.window_start.unwrap().0 && at <= info.window_end.unwrap().0);
        renewals.insert(at);
    }
    // Pebble gives all six the same two-day window; the renewal instants differ.
    assert!(renewals.len() >= 5, "renewals not spread: {renewals:?}");
}

#[tokio::test]
async fn profiles_are_applied_and_unknown_ones_are_refused_with_the_list() {
    let ns = namespace_with_issuer("profile", json!({})).await;
    apply(
        &ns,
        &certificate(
            "six-days",
            &format!("six.{}", zone()),
            json!({"profile": "shortlived"}),
        ),
    );
    apply(
        &ns,
        &certificate(
            "unknown",
            &format!("unknown.{}", zone()),
            json!({"profile": "nope"}),
        ),
    );
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    let c = wait_cert_ready(&certs, "six-days", 1).await;
    let st = c.status.unwrap();
    let lifetime = st
        .not_after
        .unwrap()
        .0
        .duration_since(st.not_before.unwrap().0)
        .as_secs();
    assert!(
        (518_399..=518_401).contains(&lifetime),
        "shortlived is six days, got {lifetime}s"
    );
    assert_eq!(st.profile.as_deref(), Some("shortlived"));

    let refused = wait_for("UnknownProfile", Duration::from_secs(20), || async {
        let c = certs.get("unknown").await.ok()?;
        let (status, reason, message) = common::e2e::ready_condition(&c)?;
        (status == "False" && reason == "UnknownProfile").then_some(message)
    })
    .await;
    assert!(
        refused.contains("valid profiles: default, shortlived, tenminutes"),
        "{refused}"
    );
    assert_eq!(event_count(&ns, "unknown", "OrderCreated"), 0);

    // The same check on an Issuer.
    apply(
        &ns,
        &pebble_issuer("bad-profile", "bad-account", json!({"profile": "nope"})),
    );
    let issuers: Api<Issuer> = Api::namespaced(client().await, &ns);
    let message = wait_for("Issuer UnknownProfile", Duration::from_secs(20), || async {
        let i = issuers.get("bad-profile").await.ok()?;
        let c = i
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Ready")?;
        (c.status == "False" && c.reason == "UnknownProfile").then_some(c.message)
    })
    .await;
    assert!(
        message.contains("valid profiles: default, shortlived, tenminutes"),
        "{message}"
    );
}

#[tokio::test]
async fn revoke_on_delete_revokes_then_lets_the_certificate_go() {
    let ns = namespace_with_issuer("revdel", json!({})).await;
    apply(
        &ns,
        &certificate(
            "gone",
            &format!("gone.{}", zone()),
            json!({"revokeOnDelete": true}),
        ),
    );
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    let c = wait_cert_ready(&certs, "gone", 1).await;
    assert!(
        c.metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"ferrocert.dev/revoke-on-delete".to_string())
    );
    let (_, der) = leaf(&ns, "gone-tls");
    let serial = serial_of(&der);
    assert_eq!(pebble_cert_status(&serial)["Status"], "Valid");
    kubectl_ok(
        &[
            "delete",
            "certificates.ferrocert.dev",
            "-n",
            &ns,
            "gone",
            "--wait=false",
        ],
        None,
    );
    wait_gone(&certs, "gone", Duration::from_secs(30)).await;
    let at_ca = pebble_cert_status(&serial);
    assert_eq!(at_ca["Status"], "Revoked", "{at_ca}");
    assert_eq!(at_ca["Reason"], 5, "cessationOfOperation: {at_ca}");
    assert_eq!(event_count(&ns, "gone", "Revoked"), 1);
}

/// A TCP relay to Pebble's ACME port that can be cut, to make the CA unreachable for one Issuer
/// without stopping the Pebble every other test uses.
struct Relay {
    port: u16,
    cut: std::sync::Arc<AtomicBool>,
}

impl Relay {
    fn start() -> Relay {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = format!(
            "127.0.0.1:{}",
            env_var("PEBBLE_DIRECTORY")
                .split(':')
                .nth(2)
                .unwrap()
                .split('/')
                .next()
                .unwrap()
        );
        let cut = std::sync::Arc::new(AtomicBool::new(false));
        let flag = cut.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if flag.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect(&upstream) else {
                    continue;
                };
                let flag = flag.clone();
                relay_pair(client, server, flag);
            }
        });
        Relay { port, cut }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }
}

/// Copies both ways until either side closes or the relay is cut (then both sockets close).
fn relay_pair(a: std::net::TcpStream, b: std::net::TcpStream, cut: std::sync::Arc<AtomicBool>) {
    use std::io::{Read, Write};
    for (mut from, mut to) in [(a.try_clone().unwrap(), b.try_clone().unwrap()), (b, a)] {
        let cut = cut.clone();
        std::thread::spawn(move || {
            from.set_read_timeout(Some(Duration::from_millis(200))).ok();
            let mut buf = [0u8; 16384];
            loop {
                if cut.load(Ordering::SeqCst) {
                    break;
                }
                match from.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => break,
                }
            }
            let _ = from.shutdown(std::net::Shutdown::Both);
            let _ = to.shutdown(std::net::Shutdown::Both);
        });
    }
}

#[tokio::test]
async fn revoke_on_delete_gives_up_after_bounded_attempts_when_the_ca_is_down() {
    let relay = Relay::start();
    let ns = namespace_with_issuer(
        "revdown",
        json!({"server": format!("https://localhost:{}/dir", relay.port)}),
    )
    .await;
    apply(
        &ns,
        &certificate(
            "stuck",
            &format!("stuck.{}", zone()),
            json!({"revokeOnDelete": true}),
        ),
    );
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    wait_cert_ready(&certs, "stuck", 1).await;
    let (_, der) = leaf(&ns, "stuck-tls");
    let serial = serial_of(&der);
    relay.cut();
    let deleted = Instant::now();
    kubectl_ok(
        &[
            "delete",
            "certificates.ferrocert.dev",
            "-n",
            &ns,
            "stuck",
            "--wait=false",
        ],
        None,
    );
    // Five attempts, 2 s, 4 s, 8 s, 16 s apart (the test controller's backoff).
    wait_gone(&certs, "stuck", Duration::from_secs(90)).await;
    assert!(deleted.elapsed() >= Duration::from_secs(5));
    assert_eq!(event_count(&ns, "stuck", "RevocationAbandoned"), 1);
    assert!(event_count(&ns, "stuck", "RevocationFailed") >= 1);
    assert_eq!(pebble_cert_status(&serial)["Status"], "Valid");
}

#[tokio::test]
async fn ferrocert_revoke_revokes_and_reissues_with_a_new_key() {
    let ns = namespace_with_issuer("revcli", json!({})).await;
    apply(
        &ns,
        &certificate(
            "compromised",
            &format!("compromised.{}", zone()),
            json!({"privateKey": {"rotationPolicy": "Never"}}),
        ),
    );
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    wait_cert_ready(&certs, "compromised", 1).await;
    let (_, der1) = leaf(&ns, "compromised-tls");
    let serial1 = serial_of(&der1);
    let key1 = ferrocert::pki::ParsedLeaf::from_der(&der1)
        .unwrap()
        .public_key_spki_der;

    let out = Command::new(env!("CARGO_BIN_EXE_ferrocert"))
        .args([
            "revoke",
            "compromised",
            "-n",
            &ns,
            "--reason",
            "keyCompromise",
            "--wait",
            "--timeout",
            "60s",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("reason keyCompromise"), "{stdout}");

    let at_ca = pebble_cert_status(&serial1);
    assert_eq!(at_ca["Status"], "Revoked", "{at_ca}");
    assert_eq!(at_ca["Reason"], 1, "keyCompromise: {at_ca}");
    let c = wait_cert_ready(&certs, "compromised", 2).await;
    let revocation = c.status.unwrap().revocation.unwrap();
    assert_eq!(revocation.serial, serial1);
    assert_eq!(revocation.reason, "keyCompromise");
    assert!(revocation.revoked_at.is_some() && revocation.request.is_some());
    let (_, der2) = leaf(&ns, "compromised-tls");
    let parsed2 = ferrocert::pki::ParsedLeaf::from_der(&der2).unwrap();
    assert_ne!(parsed2.serial_hex, serial1);
    assert_ne!(
        parsed2.public_key_spki_der, key1,
        "a compromised key must not be reused, even with rotationPolicy Never"
    );
    verify_chain(&ns, "compromised-tls");
    // Answered once: no further revocations or orders.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(event_count(&ns, "compromised", "Revoked"), 1);
    assert_eq!(event_count(&ns, "compromised", "OrderCreated"), 2);
    let _ = kubectl(&["delete", "namespace", &ns, "--wait=false"], None);
}

#[tokio::test]
async fn an_issuer_can_turn_ari_off() {
    let ns = namespace_with_issuer("noari", json!({"disableRenewalInfo": true})).await;
    apply(
        &ns,
        &certificate("plain", &format!("plain.{}", zone()), json!({})),
    );
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    wait_cert_ready(&certs, "plain", 1).await;
    // Give the controller time for the reconcile that would fetch a window.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let st = certs.get("plain").await.unwrap().status.unwrap();
    assert!(st.renewal_info.is_none(), "{:?}", st.renewal_info);
    // The spec's default: one third of the lifetime before notAfter.
    let (nb, na) = (st.not_before.unwrap().0, st.not_after.unwrap().0);
    let third = na.duration_since(nb) / 3;
    let expected = na - third;
    let renewal = st.renewal_time.unwrap().0;
    assert!(
        renewal.duration_since(expected).abs() <= jiff::SignedDuration::from_secs(1),
        "renewal {renewal}, expected {expected}"
    );
    assert_eq!(event_count(&ns, "plain", "RenewalWindow"), 0);
}

/// Issue 12, defect 1: a tenant copies another tenant's public certificate into a Secret of its
/// own, names the shared ClusterIssuer in the annotations, and asks its own Certificate to revoke
/// it (and to revoke on deletion). Without its private key nothing is revoked.
#[tokio::test]
async fn a_tenant_cannot_revoke_another_tenants_certificate_through_a_shared_cluster_issuer() {
    controller();
    let shared = format!("shared-{}", std::process::id());
    let mut cluster_issuer = pebble_issuer(&shared, &format!("{shared}-account"), json!({}));
    cluster_issuer["kind"] = json!("ClusterIssuer");
    kubectl_ok(&["apply", "-f", "-"], Some(&cluster_issuer.to_string()));
    let cluster_issuers: Api<ferrocert::api::ClusterIssuer> = Api::all(client().await);
    wait_for(
        "the shared ClusterIssuer Ready",
        Duration::from_secs(30),
        || async {
            let ci = cluster_issuers.get(&shared).await.ok()?;
            ci.status?
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
                .then_some(())
        },
    )
    .await;
    let issuer_ref = json!({"issuerRef": {"name": shared, "kind": "ClusterIssuer"}});

    // The victim's certificate.
    let victim_ns = fresh_namespace("victim");
    let name = format!("site.{victim_ns}.{}", zone());
    apply(&victim_ns, &certificate("site", &name, issuer_ref.clone()));
    let victim_certs: Api<Certificate> = Api::namespaced(client().await, &victim_ns);
    wait_cert_ready(&victim_certs, "site", 1).await;
    let (_, victim_der) = leaf(&victim_ns, "site-tls");
    let victim_serial = serial_of(&victim_der);
    let victim_chain = secret_field(&victim_ns, "site-tls", "tls.crt");

    // The thief: the victim's certificate next to a key of its own, annotated as ferrocert's.
    let thief_ns = fresh_namespace("thief");
    let own_key = ferrocert::pki::generate(&ferrocert::pki::KeySpec::from_spec(None).unwrap())
        .unwrap()
        .to_pem(ferrocert::api::PrivateKeyEncoding::PKCS8)
        .unwrap();
    let b64 = |s: &str| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, s);
    apply(
        &thief_ns,
        &json!({
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": "copy-tls", "annotations": {
                "ferrocert.dev/certificate-name": "copy",
                "ferrocert.dev/issuer-name": shared,
                "ferrocert.dev/issuer-kind": "ClusterIssuer"
            }},
            "data": {"tls.crt": b64(&victim_chain), "tls.key": b64(&own_key)}
        }),
    );
    let mut copy = certificate("copy", &name, issuer_ref);
    copy["metadata"]["annotations"] = json!({"ferrocert.dev/revoke-requested": "steal-1"});
    copy["spec"]["revokeOnDelete"] = json!(true);
    apply(&thief_ns, &copy);
    let thief_certs: Api<Certificate> = Api::namespaced(client().await, &thief_ns);
    let answered = wait_for(
        "the revoke request answered",
        Duration::from_secs(30),
        || async {
            let c = thief_certs.get("copy").await.ok()?;
            let r = c.status?.revocation?;
            (r.request.as_deref() == Some("steal-1")).then_some(r)
        },
    )
    .await;
    assert!(answered.revoked_at.is_none(), "{answered:?}");
    assert!(
        answered
            .error
            .as_deref()
            .is_some_and(|e| e.contains("tls.key is not the key")),
        "{answered:?}"
    );
    assert_eq!(event_count(&thief_ns, "copy", "RevocationSkipped"), 1);
    assert_eq!(pebble_cert_status(&victim_serial)["Status"], "Valid");

    // Deleting the thief's Certificate (revokeOnDelete) revokes only what it can prove is its own.
    kubectl_ok(
        &[
            "delete",
            "fcert",
            "-n",
            &thief_ns,
            "copy",
            "--wait=true",
            "--timeout=60s",
        ],
        None,
    );
    assert_eq!(pebble_cert_status(&victim_serial)["Status"], "Valid");
    let _ = kubectl(&["delete", "namespace", &thief_ns, "--wait=false"], None);
    let _ = kubectl(&["delete", "namespace", &victim_ns, "--wait=false"], None);
    let _ = kubectl(
        &[
            "delete",
            "clusterissuer.ferrocert.dev",
            &shared,
            "--wait=false",
        ],
        None,
    );
}

//! DNS-01 through acme-dns (cert-manager's `dns01.acmeDNS`), end to end: the domain's
//! `_acme-challenge` name is a CNAME (in BIND) to its acme-dns `fulldomain` in the other test
//! zone; the controller POSTs the value to the acme-dns API with the account's credentials; a
//! local stand-in for that API (acme-dns's own module is not served here) writes the TXT into BIND
//! with nsupdate, as acme-dns serves it from its own DNS; Pebble follows the CNAME and validates.

mod common;

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::e2e::{
    CLUSTER_RESOURCE_NAMESPACE, apply, backend_listen, client, nsupdate, pebble_certificate,
    pebble_issuer, ready_condition, start_controller_with, txt_records, verify_chain,
    wait_cert_ready, wait_for, wait_issuer_ready,
};
use common::{env_var, fresh_namespace, kubectl_ok};
use ferrocert::api::{Certificate, Issuer};
use kube::api::Api;
use serde_json::json;

/// What the stand-in acme-dns API received: (user, key, subdomain, txt).
type Seen = Arc<Mutex<Vec<(String, String, String, String)>>>;

/// The acme-dns `/update` API: checks the credentials of the one account it knows and writes
/// the TXT at `<subdomain>.<zone2>` into BIND. Returns its base URL.
fn acme_dns_api(user: &'static str, key: &'static str, zone2: String) -> (String, Seen) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let sink = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            conn.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let mut buf = vec![0u8; 16 * 1024];
            let mut len = 0;
            // Read the head and the body (Content-Length).
            while let Ok(n) = conn.read(&mut buf[len..]) {
                if n == 0 {
                    break;
                }
                len += n;
                let text = String::from_utf8_lossy(&buf[..len]).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let want = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if body.len() >= want {
                        break;
                    }
                }
            }
            let text = String::from_utf8_lossy(&buf[..len]).to_string();
            let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
            let header = |name: &str| {
                head.lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                    })
                    .unwrap_or_default()
            };
            let (u, k) = (header("x-api-user"), header("x-api-key"));
            let parsed: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
            let sub = parsed["subdomain"].as_str().unwrap_or_default().to_string();
            let txt = parsed["txt"].as_str().unwrap_or_default().to_string();
            sink.lock()
                .unwrap()
                .push((u.clone(), k.clone(), sub.clone(), txt.clone()));
            let ok = head.starts_with("POST /update ") && u == user && k == key;
            let (status, reply) = if ok {
                nsupdate(&format!("update add {sub}.{zone2} 5 TXT \"{txt}\""));
                ("200 OK", json!({"txt": txt}).to_string())
            } else {
                ("401 Unauthorized", r#"{"error": "forbidden"}"#.to_string())
            };
            let _ = conn.write_all(
                format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                    reply.len()
                )
                .as_bytes(),
            );
        }
    });
    (url, seen)
}

#[tokio::test]
async fn a_certificate_through_acme_dns_becomes_ready() {
    // The propagation check finds the zones through the test BIND.
    start_controller_with(
        "acme-dns",
        &backend_listen(),
        &["--dns01-recursive-nameservers", &env_var("DNS_SERVER")],
        &[],
    );
    let (zone, zone2) = (env_var("TEST_ZONE"), env_var("TEST_ZONE2"));
    let ns = fresh_namespace("acmedns");
    let domain = format!("{ns}.{zone}");
    let subdomain = format!("acme-{}", std::process::id());
    let fulldomain = format!("{subdomain}.{zone2}");
    // The one-time set-up a domain owner does for acme-dns: the CNAME.
    nsupdate(&format!(
        "update add _acme-challenge.{domain} 5 CNAME {fulldomain}."
    ));
    let (url, seen) = acme_dns_api("user-1", "key-1", zone2.clone());
    let accounts = json!({
        domain.clone(): {"username": "user-1", "password": "key-1",
            "fulldomain": fulldomain, "subdomain": subdomain, "allowfrom": []}
    });
    // A ClusterIssuer: plain http:// to acme-dns is for administrators only (its Secret lives in
    // the controller's namespace).
    let secret = format!("acme-dns-{}", std::process::id());
    kubectl_ok(
        &[
            "create",
            "secret",
            "generic",
            &secret,
            "-n",
            CLUSTER_RESOURCE_NAMESPACE,
            &format!("--from-literal=acmedns.json={accounts}"),
        ],
        None,
    );
    let issuer_name = format!("acme-dns-{}", std::process::id());
    let mut issuer = pebble_issuer(
        &issuer_name,
        &format!("{issuer_name}-account"),
        json!({"solvers": [{"dns01": {"acmeDNS": {
            "host": url,
            "accountSecretRef": {"name": secret, "key": "acmedns.json"}
        }}}]}),
    );
    issuer["kind"] = json!("ClusterIssuer");
    kubectl_ok(&["apply", "-f", "-"], Some(&issuer.to_string()));
    let mut cert = pebble_certificate("web", &[&domain], json!({}));
    cert["spec"]["issuerRef"] = json!({"name": issuer_name, "kind": "ClusterIssuer"});
    apply(&ns, &cert);

    // The same solver in a namespaced Issuer is refused: a tenant gets https:// only.
    kubectl_ok(
        &[
            "create",
            "secret",
            "generic",
            "acme-dns",
            "-n",
            &ns,
            &format!("--from-literal=acmedns.json={accounts}"),
        ],
        None,
    );
    apply(
        &ns,
        &pebble_issuer(
            "pebble",
            "pebble-account",
            json!({"solvers": [{"dns01": {"acmeDNS": {
                "host": url,
                "accountSecretRef": {"name": "acme-dns", "key": "acmedns.json"}
            }}}]}),
        ),
    );
    wait_issuer_ready(&Api::<Issuer>::namespaced(client().await, &ns), "pebble").await;
    apply(&ns, &pebble_certificate("tenant", &[&domain], json!({})));
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    wait_cert_ready(&certs, "web", 1).await;
    let refused = wait_for(
        "the tenant's Certificate to fail",
        Duration::from_secs(60),
        || async {
            let c = certs.get("tenant").await.ok()?;
            let (status, _, message) = ready_condition(&c)?;
            (status == "False" && message.contains("https://")).then_some(message)
        },
    )
    .await;
    assert!(refused.contains("ClusterIssuer"), "{refused}");
    assert!(verify_chain(&ns, "web-tls").contains(&format!("DNS:{domain}")));

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "one update: {seen:?}");
    let (user, key, sub, txt) = &seen[0];
    assert_eq!((user.as_str(), key.as_str()), ("user-1", "key-1"));
    assert_eq!(sub, &subdomain);
    assert_eq!(
        txt.len(),
        43,
        "a base64url SHA-256 key authorization digest"
    );
    assert!(
        txt_records(&fulldomain).contains(txt.as_str()),
        "the value was served at the fulldomain"
    );
    nsupdate(&format!("update delete _acme-challenge.{domain} CNAME"));
    nsupdate(&format!("update delete {fulldomain} TXT"));
}

//! Failover between the issuers of `spec.issuerRefs`, end to end: an Issuer whose CA is down
//! (its directory is behind a relay the test keeps closed) first in the list, the working Pebble
//! Issuer second. The Certificate becomes Ready through the second at once (no failure backoff),
//! a renewal tries the first again, and once the relay is open (the first CA back) the next
//! renewal is issued by the first.

mod common;

use std::time::Duration;

use common::e2e::{
    apply, client, controller, event_count, event_fields, pebble_certificate, pebble_issuer,
    verify_chain, wait_cert_ready, wait_for, wait_issuer_ready,
};
use common::{env_var, fresh_namespace, kubectl_ok};
use ferrocert::api::{Certificate, Issuer};
use kube::api::Api;
use serde_json::json;

/// A local port where nothing listens yet: the first CA's directory, until [`open_relay`].
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let port = listener.local_addr().expect("local address").port();
    drop(listener);
    port
}

/// The CA comes back: `port` now relays every connection to Pebble (TLS passes through; Pebble's
/// certificate names 127.0.0.1). Lives as long as the test's runtime.
async fn open_relay(port: u16) {
    let pebble = env_var("PEBBLE_DIRECTORY");
    let pebble_port: u16 = pebble
        .split(':')
        .nth(2)
        .and_then(|rest| rest.split('/').next())
        .and_then(|p| p.parse().ok())
        .expect("PEBBLE_DIRECTORY has a port");
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind the relay port");
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut outbound) =
                    tokio::net::TcpStream::connect(("127.0.0.1", pebble_port)).await
                {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
}

#[tokio::test]
async fn an_unreachable_first_issuer_fails_over_to_the_second_and_a_renewal_tries_the_first_again()
{
    controller();
    let ns = fresh_namespace("failover");
    apply(&ns, &pebble_issuer("pebble", "pebble-account", json!({})));
    let relay_port = closed_port();
    apply(
        &ns,
        &pebble_issuer(
            "pebble-down",
            "down-account",
            json!({"server": format!("https://127.0.0.1:{relay_port}/dir")}),
        ),
    );
    let issuers: Api<Issuer> = Api::namespaced(client().await, &ns);
    wait_issuer_ready(&issuers, "pebble").await;
    // The unreachable CA: the Issuer is not Ready because its account registration failed.
    wait_for(
        "Issuer pebble-down not Ready (ErrRegisterACMEAccount)",
        Duration::from_secs(30),
        || async {
            let i = issuers.get("pebble-down").await.ok()?;
            let st = i.status?;
            st.conditions
                .iter()
                .any(|c| {
                    c.type_ == "Ready"
                        && c.status == "False"
                        && c.reason == "ErrRegisterACMEAccount"
                })
                .then_some(())
        },
    )
    .await;

    let host = format!("failover.{}", env_var("TEST_ZONE"));
    let mut doc = pebble_certificate("site", &[&host], json!({}));
    let spec = doc["spec"].as_object_mut().expect("spec");
    spec.remove("issuerRef");
    spec.insert(
        "issuerRefs".into(),
        json!([{"name": "pebble-down"}, {"name": "pebble", "kind": "Issuer"}]),
    );
    apply(&ns, &doc);

    // Ready through the second issuer, well within the first failure backoff.
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    let started = std::time::Instant::now();
    let cert = wait_cert_ready(&certs, "site", 1).await;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "failover took {:?}: it waited out a backoff",
        started.elapsed()
    );
    let status = cert.status.clone().expect("status");
    assert_eq!(status.issuer_index, Some(1), "{status:?}");
    assert_eq!(
        status.issuer_ref.as_ref().map(|r| r.name.as_str()),
        Some("pebble"),
        "{status:?}"
    );
    let failovers = event_fields(&ns, "site", "IssuerFailover", "{.message}");
    assert!(
        failovers
            .iter()
            .any(|m| m.contains("Issuer pebble-down failed") && m.contains("trying Issuer pebble")),
        "{failovers:?}"
    );
    verify_chain(&ns, "site-tls");
    let annotation = kubectl_ok(
        &[
            "get",
            "secret",
            "-n",
            &ns,
            "site-tls",
            "-o",
            "jsonpath={.metadata.annotations.ferrocert\\.dev/issuer-name}",
        ],
        None,
    );
    assert_eq!(annotation, "pebble", "the Secret names the issuer used");
    let wide = kubectl_ok(&["get", "fcert", "-n", &ns, "site", "-o", "wide"], None);
    assert!(wide.contains("pebble"), "{wide}");

    // The certificate from the second issuer satisfies the spec: no re-issuance.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(event_count(&ns, "site", "OrderCreated"), 1);

    // A renewal starts again from the first issuer, fails over again, and succeeds.
    let failovers_before = event_count(&ns, "site", "IssuerFailover");
    kubectl_ok(
        &[
            "annotate",
            "fcert",
            "-n",
            &ns,
            "site",
            "ferrocert.dev/renew-requested=r1",
        ],
        None,
    );
    let renewed = wait_cert_ready(&certs, "site", 2).await;
    assert!(
        event_count(&ns, "site", "IssuerReset") >= 1,
        "the renewal did not start with the first issuer"
    );
    assert!(
        event_count(&ns, "site", "IssuerFailover") > failovers_before,
        "the renewal did not try the first issuer"
    );
    let status = renewed.status.expect("status");
    assert_eq!(status.issuer_index, Some(1), "{status:?}");
    assert_eq!(event_count(&ns, "site", "OrderCreated"), 2);

    // The first CA is back: its Issuer registers again (its retry), and the next renewal is
    // issued by it, with no failover.
    open_relay(relay_port).await;
    wait_for(
        "Issuer pebble-down Ready once its CA is back",
        Duration::from_secs(60),
        || async {
            let i = issuers.get("pebble-down").await.ok()?;
            i.status?
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
                .then_some(())
        },
    )
    .await;
    let failovers_before = event_count(&ns, "site", "IssuerFailover");
    kubectl_ok(
        &[
            "annotate",
            "fcert",
            "-n",
            &ns,
            "site",
            "--overwrite",
            "ferrocert.dev/renew-requested=r2",
        ],
        None,
    );
    let renewed = wait_cert_ready(&certs, "site", 3).await;
    let status = renewed.status.expect("status");
    assert_eq!(status.issuer_index, Some(0), "{status:?}");
    assert_eq!(
        status.issuer_ref.as_ref().map(|r| r.name.as_str()),
        Some("pebble-down"),
        "{status:?}"
    );
    assert_eq!(
        event_count(&ns, "site", "IssuerFailover"),
        failovers_before,
        "no failover once the first CA answers"
    );
    assert_eq!(event_count(&ns, "site", "OrderCreated"), 3);
    verify_chain(&ns, "site-tls");
    let annotation = kubectl_ok(
        &[
            "get",
            "secret",
            "-n",
            &ns,
            "site-tls",
            "-o",
            "jsonpath={.metadata.annotations.ferrocert\\.dev/issuer-name}",
        ],
        None,
    );
    assert_eq!(
        annotation, "pebble-down",
        "the Secret names the first issuer now"
    );
}

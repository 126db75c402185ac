//! Leader election: two controller processes, one Lease. Only the holder reconciles (the other
//! still answers HTTP-01 tokens); SIGKILL the holder and the other takes over within the lease
//! duration.

mod common;

use std::time::{Duration, Instant};

use common::e2e::{
    apply, backend_listen, backend_listen2, client, event_count, holder, metric, pebble_issuer,
    solver_objects, start_controller_with, verify_chain, wait_cert_ready, wait_holder,
    wait_issuer_ready,
};
use common::{env_var, fresh_namespace};
use ferrocert::api::{Certificate, Issuer};
use kube::api::Api;
use serde_json::json;

fn cert(name: &str) -> serde_json::Value {
    json!({
        "apiVersion": "ferrocert.dev/v1alpha1", "kind": "Certificate", "metadata": {"name": name},
        "spec": {"secretName": format!("{name}-tls"), "dnsNames": [format!("{name}.{}", env_var("TEST_ZONE"))], "issuerRef": {"name": "pebble"}}
    })
}

#[tokio::test]
async fn only_the_lease_holder_reconciles_and_a_follower_takes_over() {
    let lease = format!("ferrocert-e2e-{}", std::process::id());
    let flags = [
        "--leader-elect",
        "--lease-name",
        &lease,
        "--lease-duration",
        "4s",
    ];
    // `a` leads; `b` follows but owns the address in the HTTP-01 Service's EndpointSlice, where
    // Traefik sends Pebble's requests: followers answer tokens too.
    let a = start_controller_with(
        "leader-a",
        &backend_listen2(),
        &flags,
        &[("POD_NAME", "replica-a")],
    );
    wait_holder(&lease, "replica-a", Duration::from_secs(10));
    let b = start_controller_with(
        "leader-b",
        &backend_listen(),
        &flags,
        &[("POD_NAME", "replica-b")],
    );

    let ns = fresh_namespace("leader");
    apply(&ns, &pebble_issuer("pebble", "pebble-account", json!({})));
    let issuers: Api<Issuer> = Api::namespaced(client().await, &ns);
    wait_issuer_ready(&issuers, "pebble").await;
    apply(&ns, &cert("first"));
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    wait_cert_ready(&certs, "first", 1).await;
    verify_chain(&ns, "first-tls");
    // Other tests' Certificates exist in the cluster too, so the leader may have made more.
    assert!(
        metric(&a, "ferrocert_acme_orders_created_total") >= 1.0,
        "the leader made the order"
    );
    assert_eq!(event_count(&ns, "first", "OrderCreated"), 1);
    assert_eq!(
        metric(&b, "ferrocert_acme_orders_created_total"),
        0.0,
        "the follower made an order"
    );
    assert_eq!(
        metric(&b, "ferrocert_acme_requests_total"),
        0.0,
        "the follower talked to the CA"
    );
    assert_eq!(holder(&lease), "replica-a");

    // A batch, and the leader dies in the middle of it.
    let batch: Vec<String> = (1..=6).map(|i| format!("batch-{i}")).collect();
    for name in &batch {
        apply(&ns, &cert(name));
    }
    let started = Instant::now();
    loop {
        let any_order = certs
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .iter()
            .any(|c| c.status.as_ref().is_some_and(|s| s.order.is_some()));
        if any_order {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no order started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // SAFETY: kill(2) on our child.
    assert_eq!(unsafe { libc::kill(a.pid as i32, libc::SIGKILL) }, 0);
    let took = wait_holder(&lease, "replica-b", Duration::from_secs(12));
    eprintln!("follower took over {took:?} after the leader died (lease duration 4s)");
    assert!(
        took <= Duration::from_millis(4500),
        "takeover took {took:?}, longer than the 4 s lease"
    );
    for name in &batch {
        wait_cert_ready(&certs, name, 1).await;
        verify_chain(&ns, &format!("{name}-tls"));
        assert_eq!(
            event_count(&ns, name, "OrderCreated"),
            1,
            "{name} got a duplicate order"
        );
    }
    assert!(
        metric(&b, "ferrocert_acme_requests_total") > 0.0,
        "the new leader did the work"
    );
    let left = solver_objects(&ns);
    assert!(
        left.trim().is_empty(),
        "temporary objects left behind: {left}"
    );
}

//! Crash safety: SIGKILL the controller in the middle of an order; a new process resumes the same
//! order (no second one) and leaves no temporary objects behind.

mod common;

use std::time::{Duration, Instant};

use common::e2e::{
    apply, client, event_count, pebble_issuer, solver_objects, start_controller, verify_chain,
    wait_cert_ready, wait_issuer_ready,
};
use common::{env_var, fresh_namespace, kubectl_ok};
use ferrocert::api::{Certificate, Issuer};
use kube::api::Api;
use serde_json::json;

fn kill(pid: u32) {
    // SAFETY: plain kill(2) on a child we started.
    let rc = unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    assert_eq!(rc, 0, "kill failed");
}

#[tokio::test]
async fn a_killed_controller_resumes_the_same_order() {
    let first = start_controller("restart-a");
    let ns = fresh_namespace("restart");
    apply(&ns, &pebble_issuer("pebble", "pebble-account", json!({})));
    let issuers: Api<Issuer> = Api::namespaced(client().await, &ns);
    wait_issuer_ready(&issuers, "pebble").await;
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);

    apply(
        &ns,
        &json!({
            "apiVersion": "ferrocert.dev/v1alpha1", "kind": "Certificate", "metadata": {"name": "crash"},
            "spec": {"secretName": "crash-tls", "dnsNames": [format!("crash.{}", env_var("TEST_ZONE"))], "issuerRef": {"name": "pebble"}}
        }),
    );
    // Kill the moment the order URL is recorded.
    let started = Instant::now();
    let order_url = loop {
        let c = certs.get("crash").await.unwrap();
        if let Some(url) = c.status.and_then(|s| s.order).map(|o| o.url) {
            kill(first.pid);
            break url;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no order was recorded"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let at_kill = certs.get("crash").await.unwrap().status.unwrap();
    assert!(
        at_kill.order.is_some(),
        "the controller finished before it was killed; nothing was resumed"
    );
    assert!(
        at_kill.next_private_key_secret_name.is_some(),
        "the next key was recorded before the order"
    );

    let _second = start_controller("restart-b");
    wait_cert_ready(&certs, "crash", 1).await;
    verify_chain(&ns, "crash-tls");
    assert_eq!(
        event_count(&ns, "crash", "OrderCreated"),
        1,
        "a second order was created"
    );
    let issued = kubectl_ok(
        &[
            "get",
            "events",
            "-n",
            &ns,
            "--field-selector",
            "involvedObject.name=crash,reason=Issued",
            "-o",
            "jsonpath={.items[*].message}",
        ],
        None,
    );
    assert!(
        issued.contains(&order_url),
        "issued from another order than {order_url}: {issued}"
    );
    let left = solver_objects(&ns);
    assert!(
        left.trim().is_empty(),
        "temporary objects left behind: {left}"
    );
    let next_key = kubectl_ok(
        &[
            "get",
            "secret",
            "-n",
            &ns,
            "crash-next-key",
            "--ignore-not-found",
            "-o",
            "name",
        ],
        None,
    );
    assert!(
        next_key.trim().is_empty(),
        "the next-key Secret outlived the issuance"
    );
}

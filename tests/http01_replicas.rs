//! Two controller replicas on two addresses, both in the EndpointSlice of the HTTP-01 Service
//! (written here as the endpoints controller would in a cluster). The replica that does not hold
//! the Lease dies while a challenge is pending and its address leaves the HTTP-01 Service's
//! EndpointSlice: the leader removes it from the challenge's EndpointSlice, and the Certificate is
//! still issued through Traefik with one order and no failed attempt.

mod common;

use std::time::Duration;

use common::e2e::{
    apply, backend_listen, backend_listen2, client, event_count, pebble_certificate, pebble_issuer,
    solver_objects, start_controller_with, verify_chain, wait_cert_ready, wait_for, wait_holder,
    wait_issuer_ready,
};
use common::{env_var, fresh_namespace, kubectl_ok};
use ferrocert::api::{Certificate, Issuer};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams};
use serde_json::json;

/// Sets the ready addresses of the test environment's HTTP-01 Service.
fn set_http01_service_addresses(ips: &[String]) {
    let (ns, _) = env_var("HTTP01_SERVICE")
        .split_once('/')
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .unwrap();
    let endpoints: Vec<_> = ips
        .iter()
        .map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}}))
        .collect();
    kubectl_ok(
        &[
            "patch",
            "endpointslice",
            "-n",
            &ns,
            &env_var("HTTP01_SERVICE_SLICE"),
            "--type=merge",
            "-p",
            &json!({"endpoints": endpoints}).to_string(),
        ],
        None,
    );
}

/// Puts the HTTP-01 Service back as the test environment made it, whatever the test did.
struct RestoreSlice;

impl Drop for RestoreSlice {
    fn drop(&mut self) {
        set_http01_service_addresses(&[env_var("HTTP01_BACKEND_IP")]);
    }
}

/// The addresses in the EndpointSlices of the temporary challenge Services of a namespace.
async fn challenge_slice_addresses(ns: &str) -> Vec<Vec<String>> {
    let slices: Api<EndpointSlice> = Api::namespaced(client().await, ns);
    let list = slices
        .list(&ListParams::default().labels("ferrocert.dev/solver=http01"))
        .await
        .unwrap();
    list.items
        .iter()
        .map(|s| {
            let mut ips: Vec<String> = s
                .endpoints
                .iter()
                .flatten()
                .flat_map(|e| e.addresses.clone())
                .collect();
            ips.sort();
            ips
        })
        .collect()
}

#[tokio::test]
async fn a_replica_that_goes_away_mid_challenge_leaves_the_challenge_slice() {
    let ip1 = env_var("HTTP01_BACKEND_IP");
    let ip2 = env_var("HTTP01_BACKEND_IP2");
    let _restore = RestoreSlice;
    set_http01_service_addresses(&[ip1.clone(), ip2.clone()]);

    let lease = format!("ferrocert-replicas-{}", std::process::id());
    let flags = [
        "--leader-elect",
        "--lease-name",
        &lease,
        "--lease-duration",
        "4s",
    ];
    let _leader = start_controller_with(
        "replica-a",
        &backend_listen(),
        &flags,
        &[("POD_NAME", "replica-a")],
    );
    wait_holder(&lease, "replica-a", Duration::from_secs(10));
    let follower = start_controller_with(
        "replica-b",
        &backend_listen2(),
        &flags,
        &[("POD_NAME", "replica-b")],
    );

    // A fixed wait instead of the self-check keeps the challenge pending long enough to act.
    let ns = fresh_namespace("replicas");
    apply(
        &ns,
        &pebble_issuer(
            "pebble",
            "pebble-account",
            json!({"solvers": [{"http01": {
                "ingress": {"ingressClassName": env_var("INGRESS_CLASS")},
                "selfCheck": {"mode": "Delay", "delay": "12s"}
            }}]}),
        ),
    );
    let issuers: Api<Issuer> = Api::namespaced(client().await, &ns);
    wait_issuer_ready(&issuers, "pebble").await;
    let name = format!("www.{ns}.{}", env_var("TEST_ZONE"));
    apply(&ns, &pebble_certificate("web", &[&name], json!({})));

    let both = {
        let mut v = vec![ip1.clone(), ip2.clone()];
        v.sort();
        v
    };
    wait_for(
        "the challenge EndpointSlice to list both replicas",
        Duration::from_secs(10),
        || async { (challenge_slice_addresses(&ns).await == vec![both.clone()]).then_some(()) },
    )
    .await;

    // The follower dies; its address leaves the HTTP-01 Service (the endpoints controller's job).
    // SAFETY: kill(2) on our own child process.
    assert_eq!(unsafe { libc::kill(follower.pid as i32, libc::SIGKILL) }, 0);
    set_http01_service_addresses(std::slice::from_ref(&ip1));
    wait_for(
        "the challenge EndpointSlice to drop the dead replica",
        Duration::from_secs(5),
        || async {
            (challenge_slice_addresses(&ns).await == vec![vec![ip1.clone()]]).then_some(())
        },
    )
    .await;

    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    wait_cert_ready(&certs, "web", 1).await;
    verify_chain(&ns, "web-tls");
    assert_eq!(event_count(&ns, "web", "OrderCreated"), 1);
    assert_eq!(event_count(&ns, "web", "Failed"), 0);
    let left = solver_objects(&ns);
    assert!(left.trim().is_empty(), "temporary objects left: {left}");
}

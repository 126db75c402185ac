//! HTTP-01 through the Gateway API: a `gatewayHTTPRoute` solver makes a temporary HTTPRoute
//! attached to the test environment's Traefik Gateway. One test, in order, because it removes the
//! HTTPRoute CRD for a while: first a cluster without the Gateway API (the Certificate says so and
//! retries with backoff, the controller stays up), then the CRDs come back and both the waiting
//! Certificate and a new one are issued through the Gateway.

mod common;

use std::time::Duration;

use common::e2e::{
    apply, challenge_requests, client, controller, event_count, pebble_certificate, pebble_issuer,
    ready_condition, solver_objects, ureq_get, verify_chain, wait_cert_ready, wait_for,
    wait_issuer_ready,
};
use common::{env_var, fresh_namespace, kubectl, kubectl_ok};
use ferrocert::api::{Certificate, Issuer};
use kube::api::Api;
use serde_json::{Value, json};

const HTTPROUTE_CRD: &str = "httproutes.gateway.networking.k8s.io";

fn gateway_solver() -> Value {
    json!({"solvers": [{"http01": {"gatewayHTTPRoute": {
        "parentRefs": [{"name": env_var("GATEWAY_NAME"), "namespace": env_var("GATEWAY_NAMESPACE")}],
        "labels": {"team": "e2e"}
    }}}]})
}

async fn namespace_with_gateway_issuer(prefix: &str) -> String {
    let ns = fresh_namespace(prefix);
    apply(
        &ns,
        &pebble_issuer("pebble", "pebble-account", gateway_solver()),
    );
    let issuers: Api<Issuer> = Api::namespaced(client().await, &ns);
    wait_issuer_ready(&issuers, "pebble").await;
    ns
}

fn install_gateway_api() {
    kubectl_ok(
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            &env_var("GATEWAY_API_CRDS"),
        ],
        None,
    );
    kubectl_ok(
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            &format!("crd/{HTTPROUTE_CRD}"),
        ],
        None,
    );
}

#[tokio::test]
async fn gateway_solver_without_then_with_the_gateway_api() {
    let c = controller();
    let zone = env_var("TEST_ZONE");

    // 1. No Gateway API: a clear condition, bounded retries, no crash.
    kubectl_ok(
        &[
            "delete",
            "crd",
            HTTPROUTE_CRD,
            "--ignore-not-found",
            "--wait",
        ],
        None,
    );
    let waiting_ns = namespace_with_gateway_issuer("nogw").await;
    let waiting_name = format!("www.{waiting_ns}.{zone}");
    apply(
        &waiting_ns,
        &pebble_certificate("web", &[&waiting_name], json!({})),
    );
    let certs: Api<Certificate> = Api::namespaced(client().await, &waiting_ns);
    let (_, reason, message) = wait_for(
        "Ready=False naming the missing Gateway API",
        Duration::from_secs(30),
        || async {
            let cert = certs.get("web").await.ok()?;
            let ready = ready_condition(&cert)?;
            (ready.0 == "False" && ready.2.contains("Gateway API")).then_some(ready)
        },
    )
    .await;
    assert_eq!(reason, "Failed");
    assert!(
        message.contains("gateway.networking.k8s.io/v1") && message.contains("HTTPRoute"),
        "{message}"
    );
    tokio::time::sleep(Duration::from_secs(8)).await;
    let attempts = certs
        .get("web")
        .await
        .unwrap()
        .status
        .unwrap()
        .failed_issuance_attempts
        .unwrap_or(0);
    // Backoff from 2 s doubling (the test controller's flags): at most 3 attempts in ~10 s.
    assert!(
        (1..=3).contains(&attempts),
        "{attempts} failed attempts in ~10 s: retries must back off"
    );
    assert!(
        ureq_get(&format!("http://{}/healthz", c.metrics)).is_some(),
        "the controller is still up"
    );

    // 2. The Gateway API is installed: the waiting Certificate is issued on its next attempt,
    // through the Gateway.
    install_gateway_api();
    // Traefik's Gateway provider watches HTTPRoutes again once the CRD is back.
    let ready = wait_for(
        "the waiting Certificate to be issued",
        Duration::from_secs(90),
        || async {
            let cert = certs.get("web").await.ok()?;
            (ready_condition(&cert)?.0 == "True").then_some(cert)
        },
    )
    .await;
    assert!(ready.status.unwrap().order.is_none());
    verify_chain(&waiting_ns, "web-tls");

    // 3. A new Certificate through the Gateway: one order, no failed attempt, Pebble's GET
    // answered 200 by Traefik, nothing left behind.
    let ns = namespace_with_gateway_issuer("gw").await;
    let name = format!("www.{ns}.{zone}");
    apply(&ns, &pebble_certificate("web", &[&name], json!({})));
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    let issued = wait_cert_ready(&certs, "web", 1).await;
    assert_eq!(event_count(&ns, "web", "OrderCreated"), 1);
    assert_eq!(event_count(&ns, "web", "Failed"), 0);
    assert_eq!(issued.status.unwrap().failed_issuance_attempts, None);
    let text = verify_chain(&ns, "web-tls");
    assert!(text.contains(&format!("DNS:{name}")), "{text}");
    let requests = challenge_requests(&name);
    assert!(
        requests
            .iter()
            .any(|(agent, status)| *status == 200 && !agent.contains("ferrocert")),
        "no 200 answer to the CA's GET through the Gateway: {requests:?}"
    );
    for namespace in [&ns, &waiting_ns] {
        let left = solver_objects(namespace);
        assert!(left.trim().is_empty(), "temporary objects left: {left}");
    }
    // The HTTPRoute really was what routed it: Traefik names the router after it.
    let log = std::fs::read_to_string(env_var("TRAEFIK_ACCESS_LOG")).unwrap();
    assert!(
        log.lines().any(|l| l.contains(&name)
            && l.contains("\"DownstreamStatus\":200")
            && l.contains("@kubernetesgateway")),
        "no request for {name} was routed by the Gateway provider"
    );
    let _ = kubectl(&["delete", "namespace", &waiting_ns, "--wait=false"], None);
}

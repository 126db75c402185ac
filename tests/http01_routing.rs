//! HTTP-01 through a real ingress controller: Pebble's validation request goes to Traefik (default
//! settings: no ExternalName backends) on `HTTP01_PORT`, which routes it by the temporary Ingress
//! to the temporary selector-less Service and its EndpointSlice, which lists the address of the
//! controller's HTTP-01 listener. The controller self-checks the route the same way before it
//! tells the CA, so each Certificate takes exactly one order and no failed attempt.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::e2e::{
    apply, challenge_requests, client, controller, event_count, pebble_certificate, pebble_issuer,
    solver_objects, verify_chain, wait_cert_ready, wait_issuer_ready,
};
use common::{env_var, fresh_namespace};
use ferrocert::api::{Certificate, Issuer};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};

/// What was seen of the temporary objects while an order ran.
#[derive(Default)]
struct Seen {
    services: Vec<Service>,
    slices: Vec<EndpointSlice>,
}

/// Issues a Certificate for `<label>.<namespace>.<zone>` per label (names unique to this run, so
/// Traefik's access log speaks of this run only) through an Ingress solver with the `ingress`
/// fields given (besides the class); checks the outcome every test here shares and returns what
/// was seen.
async fn issue_through_traefik(prefix: &str, labels: &[&str], ingress: Value) -> (String, Seen) {
    controller();
    let ns = fresh_namespace(prefix);
    let zone = env_var("TEST_ZONE");
    let names: Vec<String> = labels.iter().map(|l| format!("{l}.{ns}.{zone}")).collect();
    let names = names.as_slice();
    let mut ingress_solver = json!({"ingressClassName": env_var("INGRESS_CLASS")});
    common::e2e::merge_fields(&mut ingress_solver, &ingress);
    apply(
        &ns,
        &pebble_issuer(
            "pebble",
            "pebble-account",
            json!({"solvers": [{"http01": {"ingress": ingress_solver}}]}),
        ),
    );
    let issuers: Api<Issuer> = Api::namespaced(client().await, &ns);
    wait_issuer_ready(&issuers, "pebble").await;

    let seen = Arc::new(Mutex::new(Seen::default()));
    let services: Api<Service> = Api::namespaced(client().await, &ns);
    let slices: Api<EndpointSlice> = Api::namespaced(client().await, &ns);
    let sink = seen.clone();
    let watch_services = tokio::spawn(async move {
        let mut s = watcher(services, watcher::Config::default())
            .applied_objects()
            .boxed();
        while let Some(event) = s.next().await {
            match event {
                Ok(o) => sink.lock().unwrap().services.push(o),
                Err(e) => eprintln!("watching Services: {e}"),
            }
        }
    });
    let sink = seen.clone();
    let watch_slices = tokio::spawn(async move {
        let mut s = watcher(slices, watcher::Config::default())
            .applied_objects()
            .boxed();
        while let Some(event) = s.next().await {
            match event {
                Ok(o) => sink.lock().unwrap().slices.push(o),
                Err(e) => eprintln!("watching EndpointSlices: {e}"),
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    apply(&ns, &pebble_certificate("web", names, json!({})));
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    let ready = wait_cert_ready(&certs, "web", 1).await;
    watch_services.abort();
    watch_slices.abort();

    // Exactly one order, no failed attempt.
    assert_eq!(event_count(&ns, "web", "OrderCreated"), 1, "orders made");
    assert_eq!(event_count(&ns, "web", "Failed"), 0, "failed attempts");
    let status = ready.status.unwrap();
    assert_eq!(status.failed_issuance_attempts, None);

    // The certificate verifies against Pebble's root and names exactly what was asked.
    let text = verify_chain(&ns, "web-tls");
    let sans: BTreeSet<String> = text
        .split("DNS:")
        .skip(1)
        .map(|s| s.split([',', '\n']).next().unwrap().trim().to_string())
        .collect();
    assert_eq!(sans, names.iter().cloned().collect::<BTreeSet<_>>());

    // Pebble's GET for each name went through Traefik and was answered 200 there, besides the
    // controller's own self-check.
    for name in names {
        let requests = challenge_requests(name);
        assert!(
            requests
                .iter()
                .any(|(agent, status)| *status == 200 && !agent.contains("ferrocert")),
            "Traefik's access log shows no 200 answer to the CA's GET for {name}: {requests:?}"
        );
    }

    let left = solver_objects(&ns);
    assert!(left.trim().is_empty(), "temporary objects left: {left}");
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    (ns, seen)
}

fn service_types(seen: &Seen) -> BTreeSet<String> {
    seen.services
        .iter()
        .map(|s| s.spec.clone().unwrap().type_.unwrap_or_default())
        .collect()
}

fn assert_routed_by_endpoint_slice(seen: &Seen, per_challenge: usize) {
    let names: BTreeSet<_> = seen
        .services
        .iter()
        .map(|s| s.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names.len(), per_challenge, "one Service per challenge");
    for svc in &seen.services {
        let spec = svc.spec.clone().unwrap();
        assert!(spec.selector.is_none(), "the Service has no selector");
        assert!(spec.external_name.is_none(), "no ExternalName anywhere");
    }
    let want = format!(
        "{}:{}",
        env_var("HTTP01_BACKEND_IP"),
        env_var("HTTP01_BACKEND_PORT")
    );
    for name in &names {
        let slice = seen
            .slices
            .iter()
            .find(|s| s.metadata.labels.as_ref().unwrap()["kubernetes.io/service-name"] == *name)
            .unwrap_or_else(|| panic!("no EndpointSlice for Service {name}"));
        let labels = slice.metadata.labels.as_ref().unwrap();
        assert_eq!(
            labels["endpointslice.kubernetes.io/managed-by"],
            "controller.ferrocert.dev"
        );
        let endpoints = slice.endpoints.clone().unwrap_or_default();
        let port = slice.ports.as_ref().unwrap()[0].port.unwrap();
        let listed: Vec<String> = endpoints
            .iter()
            .map(|e| format!("{}:{port}", e.addresses[0]))
            .collect();
        assert_eq!(
            listed,
            vec![want.clone()],
            "the slice mirrors the HTTP-01 Service"
        );
    }
}

#[tokio::test]
async fn an_ingress_solver_issues_through_traefik_with_one_order_and_no_failed_attempt() {
    let (_, seen) = issue_through_traefik("traefik", &["www"], json!({})).await;
    assert_eq!(
        service_types(&seen),
        BTreeSet::from(["ClusterIP".to_string()])
    );
    assert_routed_by_endpoint_slice(&seen, 1);
}

#[tokio::test]
async fn service_type_node_port_is_honoured() {
    let (_, seen) =
        issue_through_traefik("nodeport", &["www"], json!({"serviceType": "NodePort"})).await;
    assert_eq!(
        service_types(&seen),
        BTreeSet::from(["NodePort".to_string()])
    );
    let node_port = seen
        .services
        .iter()
        .find_map(|s| s.spec.clone()?.ports?.first()?.node_port);
    assert!(node_port.is_some(), "the API server allocated a node port");
    assert_routed_by_endpoint_slice(&seen, 1);
}

#[tokio::test]
async fn three_names_each_get_their_route() {
    let (_, seen) = issue_through_traefik("multi", &["one", "two", "three"], json!({})).await;
    assert_routed_by_endpoint_slice(&seen, 3);
}

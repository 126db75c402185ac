//! End to end, one reconcile at a time: a Certificate reconcile handed a view that the
//! controller's own write has replaced must not create an order. That view is what the watch
//! cache holds for a few milliseconds after our write, and what a reconcile queued behind that
//! write reads (CI's crash sweep once saw the abandoned order as a second `OrderCreated`). The
//! reconciles are driven by hand, in process, against the real API server and Pebble, so the
//! stale view is certain rather than a race.

mod common;

use std::sync::Arc;

use clap::Parser;
use common::e2e::{
    CLUSTER_RESOURCE_NAMESPACE, apply, client, event_count, pebble_certificate, pebble_issuer,
    ready_condition, wait_issuer_ready,
};
use common::{env_var, fresh_namespace, install_crds};
use ferrocert::api::{Certificate, ClusterIssuer, Issuer};
use ferrocert::controller::{Ctx, certificate, issuer, run};
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::reflector;
use serde_json::json;

/// `ferrocert controller`'s flags, parsed as its command line would be.
#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    args: ferrocert::controller::ControllerArgs,
}

/// The reconcilers' context with the test environment's settings and caches that are never fed
/// (the reconciles read their issuers from the API server).
async fn context() -> Ctx {
    let flags = Flags::parse_from([
        "ferrocert",
        "--cluster-resource-namespace",
        CLUSTER_RESOURCE_NAMESPACE,
        "--http01-service",
        &env_var("HTTP01_SERVICE"),
        "--http01-self-check-port",
        &env_var("HTTP01_PORT"),
        "--http01-self-check-nameservers",
        &env_var("DNS_SERVER"),
        "--http01-self-check-allow-internal=true",
    ]);
    let settings = run::settings_from(&flags.args).expect("settings");
    let (certificates, _) = reflector::store::<Certificate>();
    let (issuers, _) = reflector::store::<Issuer>();
    let (cluster_issuers, _) = reflector::store::<ClusterIssuer>();
    let ctx = run::context(
        client().await,
        settings,
        certificates,
        issuers,
        cluster_issuers,
    );
    // The host index is fed by watches that `run` starts; this test drives reconciles by hand
    // and is not about host ownership (tests/policy.rs is): no other namespace serves its host.
    ctx.served_hosts.assume_synced();
    ctx
}

#[tokio::test(flavor = "multi_thread")]
async fn a_view_our_own_write_replaced_creates_no_order() {
    install_crds();
    let ns = fresh_namespace("staleview");
    let name = format!("stale-{}.{}", std::process::id(), env_var("TEST_ZONE"));
    // No controller runs: the Issuer has no status yet, so it is not ready.
    apply(&ns, &pebble_issuer("pebble", "pebble-account", json!({})));
    apply(&ns, &pebble_certificate("web", &[name.as_str()], json!({})));
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    let issuers: Api<Issuer> = Api::namespaced(client().await, &ns);
    let ctx = context().await;
    let seen = certs.get("web").await.unwrap();

    // 1. The Issuer is not ready: the reconcile says so in status (a write of ours).
    certificate::reconcile(Arc::new(seen.clone()), ctx.clone())
        .await
        .unwrap();
    let written = certs.get("web").await.unwrap();
    assert_ne!(written.resource_version(), seen.resource_version());
    let (status, reason, _) = ready_condition(&written).unwrap();
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "IssuerNotReady")
    );

    // 2. The Issuer turns ready (its account registered at Pebble).
    issuer::reconcile_issuer(Arc::new(issuers.get("pebble").await.unwrap()), ctx.clone())
        .await
        .unwrap();
    wait_issuer_ready(&issuers, "pebble").await;

    // 3. A reconcile handed the view from before our write, as the watch cache still holds it
    //    when a reconcile queued behind that write starts: it waits, and orders nothing.
    let outcome = certificate::reconcile(Arc::new(seen.clone()), ctx.clone()).await;
    assert!(outcome.is_ok(), "{outcome:?}");
    assert_eq!(
        event_count(&ns, "web", "OrderCreated"),
        0,
        "an order was created from the stale view"
    );
    let unchanged = certs.get("web").await.unwrap();
    assert_eq!(unchanged.resource_version(), written.resource_version());

    // 4. The current view orders, once, and records it.
    certificate::reconcile(Arc::new(unchanged), ctx.clone())
        .await
        .unwrap();
    assert_eq!(event_count(&ns, "web", "OrderCreated"), 1);
    let recorded = certs.get("web").await.unwrap();
    let order = recorded
        .status
        .unwrap()
        .order
        .expect("the order is recorded");
    assert!(order.url.starts_with("https://localhost:"), "{}", order.url);

    // A controller of another test binary finishes or removes it; nothing here waits for that.
    common::kubectl(&["delete", "namespace", &ns, "--wait=false"], None);
}

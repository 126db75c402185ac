//! The protocol floor: a bare ACME client (instant-acme, over the same HTTP client ferrocert
//! uses) doing the same order against the same Pebble from this process, with a tiny HTTP-01
//! responder where the controller's listener would be. Pebble reaches it through Traefik, by a
//! wildcard Ingress made (and loaded by Traefik) before the first order: the floor pays Traefik's
//! proxy hop but never waits for a route to load. What the controller adds on top of this is
//! ours, plus Traefik loading each challenge's new route.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewOrder, RetryPolicy,
};
use tokio::sync::oneshot;

use ferrocert::acme::{AccountConfig, Accounts};
use ferrocert::api::CertificateSpec;
use ferrocert::metrics::Metrics;
use ferrocert::pki::{self, KeySpec};

use crate::cluster::Env;
use crate::controller::wait_port_free;

type Tokens = Arc<Mutex<HashMap<String, String>>>;

/// What the floor measured.
pub struct FloorRun {
    pub samples: Vec<Duration>,
    /// ACME requests over all runs (from the same counters the controller keeps).
    pub acme_requests: f64,
}

/// How the bare client polls: every 50 ms, the tightest reasonable client.
fn polling() -> RetryPolicy {
    RetryPolicy::new()
        .initial_delay(Duration::from_millis(50))
        .backoff(1.0)
        .timeout(Duration::from_secs(30))
}

/// Registers an account (not timed), then issues `runs` certificates one after another, each for
/// one new DNS name, timing order creation → certificate downloaded.
pub async fn run(client: &kube::Client, env: &Env, runs: usize, tag: &str) -> Result<FloorRun> {
    let tokens: Tokens = Arc::default();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let addr = env.http01_listen.clone();
    wait_port_free(&addr, Duration::from_secs(20)).await?;
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let app = Router::new()
        .route("/.well-known/acme-challenge/{token}", get(answer))
        .with_state(tokens.clone());
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .await
    });
    let route = FloorRoute::create(client, env, tag).await;
    let result = match route {
        Ok(route) => {
            let ready = route.wait_loaded(env, &tokens).await;
            let result = match ready {
                Ok(()) => issue_all(env, runs, tag, &tokens).await,
                Err(e) => Err(e),
            };
            route.delete().await;
            result
        }
        Err(e) => Err(e),
    };
    let _ = stop_tx.send(());
    let _ = server.await;
    result
}

async fn issue_all(env: &Env, runs: usize, tag: &str, tokens: &Tokens) -> Result<FloorRun> {
    let metrics = Metrics::default();
    let accounts = Accounts::new(metrics.clone());
    let config = AccountConfig {
        server: env.pebble_directory.clone(),
        ca_bundle: Some(std::fs::read(&env.pebble_ca_file)?),
        skip_tls_verify: false,
    };
    let registered = accounts
        .register("bench-floor", &config, None, None, false, None)
        .await
        .context("registering the floor's ACME account")?;
    let before = acme_total(&metrics);
    let mut samples = Vec::with_capacity(runs);
    for i in 0..runs {
        let name = format!("floor-{i:03}.{tag}.{}", env.zone);
        let started = Instant::now();
        issue_one(&registered.account, &name, tokens)
            .await
            .with_context(|| format!("floor issuance for {name}"))?;
        samples.push(started.elapsed());
    }
    Ok(FloorRun {
        samples,
        acme_requests: acme_total(&metrics) - before,
    })
}

fn acme_total(metrics: &Metrics) -> f64 {
    crate::prom::sum(&metrics.encode(), "ferrocert_acme_requests_total", |_| true)
}

/// One order end to end: new order, answer and tell each challenge, poll until ready, finalize
/// with a fresh key of the controller's default type, download the chain.
async fn issue_one(account: &Account, name: &str, tokens: &Tokens) -> Result<()> {
    let ids = [Identifier::Dns(name.to_string())];
    let mut order = account
        .new_order(&NewOrder::new(&ids).profile("default"))
        .await?;
    let mut authzs = order.authorizations();
    while let Some(authz) = authzs.next().await {
        let mut authz = authz?;
        if authz.status == AuthorizationStatus::Valid {
            continue;
        }
        let mut challenge = authz
            .challenge(ChallengeType::Http01)
            .context("no http-01 challenge offered")?;
        tokens.lock().unwrap_or_else(|e| e.into_inner()).insert(
            challenge.token.clone(),
            challenge.key_authorization().as_str().to_string(),
        );
        challenge.set_ready().await?;
    }
    let state = order.poll_ready(&polling()).await?;
    if state != instant_acme::OrderStatus::Ready {
        bail!("the order ended {state:?}");
    }
    let spec = CertificateSpec {
        dns_names: vec![name.to_string()],
        ..Default::default()
    };
    let key = pki::generate(&KeySpec::from_spec(None)?)?;
    let csr = pki::csr_for_spec(&key, &spec)?;
    order.finalize_csr(&csr).await?;
    let chain = order.poll_certificate(&polling()).await?;
    pki::parse_chain(&chain)?;
    Ok(())
}

/// The HTTP-01 responder: the key authorization of a known token, else 404.
async fn answer(
    State(tokens): State<Tokens>,
    Path(token): Path<String>,
) -> std::result::Result<String, axum::http::StatusCode> {
    tokens
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&token)
        .cloned()
        .ok_or(axum::http::StatusCode::NOT_FOUND)
}

/// The floor's route through Traefik: a wildcard Ingress for `*.<tag>.<zone>` and the path prefix
/// of HTTP-01, to a selector-less Service whose EndpointSlice lists the floor's listener.
struct FloorRoute {
    client: kube::Client,
    name: String,
}

/// The namespace of the floor's route.
const FLOOR_NAMESPACE: &str = "ferrocert-bench";

impl FloorRoute {
    async fn create(client: &kube::Client, env: &Env, tag: &str) -> Result<Self> {
        use k8s_openapi::api::core::v1::Service;
        use k8s_openapi::api::discovery::v1::EndpointSlice;
        use k8s_openapi::api::networking::v1::Ingress;
        use kube::api::{Api, Patch, PatchParams};
        let name = format!("floor-{tag}");
        let (ip, port) = env
            .http01_listen
            .rsplit_once(':')
            .context("HTTP01 listen address without a port")?;
        let port: u16 = port.parse().context("HTTP01 listen port")?;
        let pp = PatchParams::apply("ferrocert-bench").force();
        let service = serde_json::json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name},
            "spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
        });
        Api::<Service>::namespaced(client.clone(), FLOOR_NAMESPACE)
            .patch(&name, &pp, &Patch::Apply(&service))
            .await
            .context("creating the floor's Service")?;
        let slice = serde_json::json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "labels": {
                "kubernetes.io/service-name": name,
                "endpointslice.kubernetes.io/managed-by": "bench.ferrocert.dev"
            }},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ip], "conditions": {"ready": true}}],
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}]
        });
        Api::<EndpointSlice>::namespaced(client.clone(), FLOOR_NAMESPACE)
            .patch(&name, &pp, &Patch::Apply(&slice))
            .await
            .context("creating the floor's EndpointSlice")?;
        let ingress = serde_json::json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name},
            "spec": {
                "ingressClassName": env.ingress_class,
                "rules": [{"host": format!("*.{tag}.{}", env.zone), "http": {"paths": [{
                    "path": "/.well-known/acme-challenge/", "pathType": "Prefix",
                    "backend": {"service": {"name": name, "port": {"number": 80}}}
                }]}}]
            }
        });
        Api::<Ingress>::namespaced(client.clone(), FLOOR_NAMESPACE)
            .patch(&name, &pp, &Patch::Apply(&ingress))
            .await
            .context("creating the floor's Ingress")?;
        Ok(FloorRoute {
            client: client.clone(),
            name,
        })
    }

    /// Waits until Traefik routes the floor's names to the floor's responder.
    async fn wait_loaded(&self, env: &Env, tokens: &Tokens) -> Result<()> {
        use ferrocert::solver::http01::self_check::{SelfCheckConfig, probe};
        let token = "floor-route-ready";
        tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token.into(), "ready".into());
        let tag = self.name.trim_start_matches("floor-");
        let host = format!("probe.{tag}.{}", env.zone);
        let config = SelfCheckConfig {
            port: env.http01_port,
            nameservers: vec![env.dns_server.clone()],
            // The test names resolve to 127.0.0.1.
            allow_internal: true,
            ..SelfCheckConfig::default()
        };
        let started = Instant::now();
        loop {
            match probe(&config, &host, token, "ready").await {
                Ok(()) => return Ok(()),
                Err(e) if started.elapsed() > Duration::from_secs(30) => {
                    bail!("Traefik did not route the floor's Ingress within 30 s: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    async fn delete(&self) {
        use k8s_openapi::api::core::v1::Service;
        use k8s_openapi::api::discovery::v1::EndpointSlice;
        use k8s_openapi::api::networking::v1::Ingress;
        use kube::api::{Api, DeleteParams};
        let dp = DeleteParams::default();
        let _ = Api::<Ingress>::namespaced(self.client.clone(), FLOOR_NAMESPACE)
            .delete(&self.name, &dp)
            .await;
        let _ = Api::<EndpointSlice>::namespaced(self.client.clone(), FLOOR_NAMESPACE)
            .delete(&self.name, &dp)
            .await;
        let _ = Api::<Service>::namespaced(self.client.clone(), FLOOR_NAMESPACE)
            .delete(&self.name, &dp)
            .await;
    }
}

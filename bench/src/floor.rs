//! The protocol floor: a bare ACME client (instant-acme, over the same HTTP client ferrocert
//! uses) doing the same order against the same Pebble from this process, with a tiny HTTP-01
//! responder on the port Pebble validates. What the controller adds on top of this is ours.

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
pub async fn run(env: &Env, runs: usize, tag: &str) -> Result<FloorRun> {
    let tokens: Tokens = Arc::default();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let addr = format!("127.0.0.1:{}", env.http01_port);
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
    let result = issue_all(env, runs, tag, &tokens).await;
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

//! The scenarios of issue 7: latency against the protocol floor, throughput at N Certificates,
//! the same with many unrelated Secrets, idle cost, and restart cost. Each makes its own
//! namespace(s) and removes what it made.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use kube::Client;
use kube::api::{Api, ListParams, PostParams};
use serde::Serialize;

use ferrocert::api::Certificate;

use crate::cluster::{self, Env};
use crate::controller::{Controller, Launch};
use crate::floor;
use crate::procstat::ProcStats;
use crate::prom;

/// Everything a scenario needs.
pub struct Bench {
    pub client: Client,
    pub env: Env,
    pub launch: Launch,
    /// Requests in flight when creating Certificates or Secrets.
    pub create_concurrency: usize,
    /// Longest wait for all Certificates of a run to be Ready.
    pub run_timeout: Duration,
    /// Distinguishes this invocation's names from earlier ones (Pebble keeps authorizations).
    pub run_id: String,
}

impl Bench {
    fn tag(&self, what: &str) -> String {
        format!("{what}-{}", self.run_id)
    }
}

/// Median, 95th percentile and the samples, in seconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Distribution {
    pub runs: usize,
    pub median_s: f64,
    pub p95_s: f64,
    pub min_s: f64,
    pub max_s: f64,
    pub samples_s: Vec<f64>,
}

impl Distribution {
    pub fn of(samples: &[Duration]) -> Self {
        let mut s: Vec<f64> = samples.iter().map(Duration::as_secs_f64).collect();
        let samples_s = s.clone();
        s.sort_by(f64::total_cmp);
        Distribution {
            runs: s.len(),
            median_s: percentile(&s, 50.0),
            p95_s: percentile(&s, 95.0),
            min_s: s.first().copied().unwrap_or(0.0),
            max_s: s.last().copied().unwrap_or(0.0),
            samples_s,
        }
    }
}

/// Nearest-rank percentile of sorted values (the median of an even count is the mean of the two
/// middle values).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    if p == 50.0 && sorted.len().is_multiple_of(2) {
        let m = sorted.len() / 2;
        return (sorted[m - 1] + sorted[m]) / 2.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Scenario 1.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Latency {
    pub controller: Distribution,
    pub floor: Distribution,
    /// Controller median / floor median.
    pub median_ratio: f64,
    pub acme_requests_per_issuance_controller: f64,
    pub acme_requests_per_issuance_floor: f64,
    pub api_requests_per_issuance: BTreeMap<String, f64>,
    /// Mean time from applying a challenge's route to the self-check's first success: Traefik
    /// loading the route, seen in probe steps (0.25 s, 0.5 s, 1 s, ...).
    pub route_ready_mean_s: f64,
    /// Self-check probes that did not yet get the key authorization, per issuance.
    pub self_check_failures_per_issuance: f64,
}

/// Scenarios 2 and 3: one run of N Certificates applied at once.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Throughput {
    pub n: usize,
    pub unrelated_secrets: usize,
    /// Time to create the unrelated Secrets (before the controller starts).
    pub unrelated_secrets_create_s: Option<f64>,
    /// Controller spawn → `/readyz` 200.
    pub startup_s: f64,
    /// First create → last create answered.
    pub create_s: f64,
    /// How many were Ready at the end (less than `n` when the run timed out).
    pub ready: usize,
    pub half_ready_s: f64,
    /// First create → every Certificate Ready (or the time-out).
    pub all_ready_s: f64,
    pub certificates_per_s: f64,
    pub timed_out: bool,
    /// Controller CPU during the run (first create → all Ready).
    pub cpu_s: f64,
    /// Controller CPU from its start to all Ready.
    pub cpu_total_s: f64,
    /// kube-apiserver's CPU during the run (first create → all Ready): the controller's requests,
    /// and also the harness's creates and watch and the other watchers (Traefik).
    pub apiserver_cpu_s: Option<f64>,
    /// The same per Ready Certificate, in milliseconds.
    pub apiserver_cpu_ms_per_certificate: Option<f64>,
    pub rss_before_mib: f64,
    pub peak_rss_mib: f64,
    pub rss_at_ready_mib: f64,
    /// The controller's API requests by verb (see `cluster::apiserver_requests`).
    pub api_requests: BTreeMap<String, f64>,
    pub api_writes: f64,
    /// Per issued Certificate, by resource and verb (see `cluster::apiserver_requests_by_resource`).
    pub api_requests_per_certificate_by_resource: BTreeMap<String, f64>,
    pub acme_requests: BTreeMap<String, f64>,
    pub acme_requests_total: f64,
    pub orders_created: f64,
    pub reconciles: f64,
}

/// Scenario 4.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Idle {
    pub n: usize,
    /// All Ready → the controller stopped reconciling (its trailing clean-up done).
    pub settle_s: f64,
    pub window_s: f64,
    pub acme_requests: f64,
    pub api_requests: BTreeMap<String, f64>,
    pub api_writes: f64,
    pub cpu_s: f64,
    pub cpu_percent_of_one_core: f64,
    pub reconciles: f64,
}

/// Scenario 5.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Restart {
    pub n: usize,
    pub startup_s: f64,
    /// Spawn → N Certificate reconciles completed (every Certificate re-checked once).
    pub recheck_s: Option<f64>,
    /// Spawn → reconciles stopped.
    pub settle_s: f64,
    pub reconciles: f64,
    /// Orders the restarted controller created, anywhere in the cluster (its metric).
    pub orders_created: f64,
    /// The benchmark's own Certificates that started a new issuance across the restart (revision
    /// changed or an order in status): what the target "0 new orders" is about, whatever else a
    /// shared cluster holds.
    pub bench_reissued: usize,
    pub acme_requests: BTreeMap<String, f64>,
    pub api_requests: BTreeMap<String, f64>,
    pub api_writes: f64,
    pub cpu_s: f64,
    pub peak_rss_mib: f64,
    pub ready_after: usize,
}

/// What to do after the Certificates of a throughput run are all Ready.
#[derive(Clone, Copy, Debug, Default)]
pub struct FollowUp {
    pub idle: Option<Duration>,
    pub restart: bool,
}

/// A throughput run and what followed it.
#[derive(Debug, Default)]
pub struct RunOutcome {
    pub throughput: Throughput,
    pub idle: Option<Idle>,
    pub restart: Option<Restart>,
}

/// One point in time of the controller and the API server.
struct Snapshot {
    at: Instant,
    proc: ProcStats,
    /// kube-apiserver's CPU seconds so far, where the environment's pid file names it.
    apiserver_cpu_s: Option<f64>,
    api: BTreeMap<String, f64>,
    api_by_resource: BTreeMap<String, f64>,
    metrics: String,
}

async fn snapshot(bench: &Bench, controller: &Controller) -> Result<Snapshot> {
    // CPU first: the scrapes below cost the controller a little CPU themselves.
    let proc = controller.stats()?;
    let apiserver_cpu_s = apiserver_cpu_seconds();
    let at = Instant::now();
    let api = cluster::apiserver_requests(&bench.client).await?;
    let api_by_resource = cluster::apiserver_requests_by_resource(&bench.client).await?;
    let metrics = controller.metrics().await?;
    Ok(Snapshot {
        at,
        proc,
        apiserver_cpu_s,
        api,
        api_by_resource,
        metrics,
    })
}

/// kube-apiserver's CPU seconds from `/proc`, found through the test environment's pid file
/// (`$FERROCERT_TESTENV/run/kube-apiserver.pid`); `None` when that is not at hand.
fn apiserver_cpu_seconds() -> Option<f64> {
    let dir = std::env::var("FERROCERT_TESTENV").ok()?;
    let pid = std::fs::read_to_string(format!("{dir}/run/kube-apiserver.pid")).ok()?;
    let pid: u32 = pid.trim().parse().ok()?;
    crate::procstat::read(pid).ok().map(|s| s.cpu_seconds)
}

fn acme_by_endpoint(metrics: &str) -> BTreeMap<String, f64> {
    prom::by_label(metrics, "ferrocert_acme_requests_total", "endpoint", |_| {
        true
    })
}

fn orders_created(metrics: &str) -> f64 {
    prom::sum(metrics, "ferrocert_acme_orders_created_total", |_| true)
}

fn cert_reconciles(metrics: &str) -> f64 {
    prom::sum(metrics, "ferrocert_reconciles_total", |s| {
        s.label("kind") == "Certificate"
    })
}

fn writes(api: &BTreeMap<String, f64>) -> f64 {
    api.iter()
        .filter(|(verb, _)| cluster::is_write(verb))
        .map(|(_, n)| n)
        .fold(0.0, |a, b| a + b)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Scenario 1: the floor first (it needs the HTTP-01 port the controller would hold), then the
/// controller, one Certificate at a time.
pub async fn latency(bench: &Bench, runs: usize) -> Result<Latency> {
    let tag = bench.tag("lat");
    eprintln!("[bench] latency: floor, {runs} orders");
    let floor = floor::run(&bench.client, &bench.env, runs, &tag).await?;
    eprintln!("[bench] latency: controller, {runs} Certificates one at a time");
    let ns = format!("bench-{tag}");
    cluster::create_namespace(&bench.client, &ns).await?;
    cluster::create_issuer(&bench.client, &bench.env, &ns).await?;
    let controller = Controller::start(&bench.launch, &tag).await?;
    let result = latency_runs(bench, &controller, &ns, &tag, runs).await;
    cleanup(bench, controller, &ns).await?;
    let (samples, acme, api, route) = result?;
    let controller = Distribution::of(&samples);
    let floor_dist = Distribution::of(&floor.samples);
    let per = |x: f64| if runs > 0 { x / runs as f64 } else { 0.0 };
    Ok(Latency {
        median_ratio: if floor_dist.median_s > 0.0 {
            controller.median_s / floor_dist.median_s
        } else {
            0.0
        },
        controller,
        floor: floor_dist,
        acme_requests_per_issuance_controller: per(acme),
        acme_requests_per_issuance_floor: per(floor.acme_requests),
        api_requests_per_issuance: api.into_iter().map(|(k, v)| (k, per(v))).collect(),
        route_ready_mean_s: route.ready_mean_s,
        self_check_failures_per_issuance: per(route.failed_probes),
    })
}

/// What the controller's metrics say about route loading over the latency runs.
#[derive(Default)]
struct RouteLoading {
    ready_mean_s: f64,
    failed_probes: f64,
}

type LatencySamples = (Vec<Duration>, f64, BTreeMap<String, f64>, RouteLoading);

async fn latency_runs(
    bench: &Bench,
    controller: &Controller,
    ns: &str,
    tag: &str,
    runs: usize,
) -> Result<LatencySamples> {
    cluster::wait_issuer_ready(&bench.client, ns, Duration::from_secs(60)).await?;
    // Let the start-up reconciles finish so they are not timed.
    settle(controller, Duration::from_secs(1), Duration::from_secs(20)).await?;
    let before = snapshot(bench, controller).await?;
    let api: Api<Certificate> = Api::namespaced(bench.client.clone(), ns);
    let mut samples = Vec::with_capacity(runs);
    for i in 0..runs {
        let name = format!("lat-{i:03}");
        let cert = cluster::certificate(&name, &format!("{name}.{tag}.{}", bench.env.zone))?;
        let started = Instant::now();
        api.create(&PostParams::default(), &cert).await?;
        let ready =
            kube::runtime::wait::await_condition(api.clone(), &name, |c: Option<&Certificate>| {
                c.is_some_and(cluster::is_ready)
            });
        tokio::time::timeout(Duration::from_secs(60), ready)
            .await
            .with_context(|| format!("Certificate {name} not Ready after 60 s"))??;
        samples.push(started.elapsed());
        // The controller's trailing writes of this issuance (finalizer, next-key Secret, Event)
        // must not overlap the next one.
        settle(
            controller,
            Duration::from_millis(300),
            Duration::from_secs(10),
        )
        .await?;
    }
    let after = snapshot(bench, controller).await?;
    let acme = prom::sum(&after.metrics, "ferrocert_acme_requests_total", |_| true)
        - prom::sum(&before.metrics, "ferrocert_acme_requests_total", |_| true);
    let mut api_diff = prom::diff(&before.api, &after.api);
    // The harness's own waits (one watch per Certificate) are not the controller's.
    api_diff.remove("WATCH");
    let moved = |name: &str, filter: fn(&prom::Sample) -> bool| {
        prom::sum(&after.metrics, name, filter) - prom::sum(&before.metrics, name, filter)
    };
    let ready_sum = moved("ferrocert_http01_route_ready_seconds_sum", |_| true);
    let ready_count = moved("ferrocert_http01_route_ready_seconds_count", |_| true);
    let route = RouteLoading {
        ready_mean_s: if ready_count > 0.0 {
            ready_sum / ready_count
        } else {
            0.0
        },
        failed_probes: moved("ferrocert_http01_self_checks_total", |s| {
            s.labels.get("outcome").map(String::as_str) == Some("failed")
        }),
    };
    Ok((samples, acme, api_diff, route))
}

/// Scenarios 2–5: N Certificates at once (with `unrelated` Secrets already in the cluster), and
/// optionally the idle window and the restart after all are Ready.
pub async fn throughput(
    bench: &Bench,
    n: usize,
    unrelated: usize,
    unrelated_bytes: usize,
    follow: FollowUp,
) -> Result<RunOutcome> {
    let tag = bench.tag(&format!("tp{n}{}", if unrelated > 0 { "s" } else { "" }));
    let ns = format!("bench-{tag}");
    let unrelated_ns = format!("bench-{tag}-unrelated");
    let mut outcome = RunOutcome::default();
    if unrelated > 0 {
        eprintln!("[bench] creating {unrelated} unrelated Secrets of {unrelated_bytes} bytes");
        cluster::create_namespace(&bench.client, &unrelated_ns).await?;
        let started = Instant::now();
        cluster::create_unrelated_secrets(
            &bench.client,
            &unrelated_ns,
            unrelated,
            unrelated_bytes,
            bench.create_concurrency,
        )
        .await?;
        outcome.throughput.unrelated_secrets_create_s = Some(started.elapsed().as_secs_f64());
    }
    cluster::create_namespace(&bench.client, &ns).await?;
    cluster::create_issuer(&bench.client, &bench.env, &ns).await?;
    eprintln!("[bench] throughput: {n} Certificates (unrelated Secrets: {unrelated})");
    let mut controller = Controller::start(&bench.launch, &tag).await?;
    let run = run_certificates(bench, &mut controller, &ns, &tag, n, follow, &mut outcome).await;
    let (controller, run) = match run {
        Ok(Some(restarted)) => (restarted, Ok(())),
        Ok(None) => (controller, Ok(())),
        Err(e) => (controller, Err(e)),
    };
    cleanup(bench, controller, &ns).await?;
    if unrelated > 0 {
        cluster::delete_namespace_contents(&bench.client, &unrelated_ns).await?;
    }
    run?;
    outcome.throughput.n = n;
    outcome.throughput.unrelated_secrets = unrelated;
    Ok(outcome)
}

/// The measured part of a throughput run. Returns the restarted controller when there was a
/// restart (the first one is stopped then).
async fn run_certificates(
    bench: &Bench,
    controller: &mut Controller,
    ns: &str,
    tag: &str,
    n: usize,
    follow: FollowUp,
    outcome: &mut RunOutcome,
) -> Result<Option<Controller>> {
    let names = cluster::cert_names(n);
    let (record, times, at_ready) =
        create_and_wait(bench, controller, ns, tag, &names, cluster::is_ready).await?;
    outcome.throughput = Throughput {
        unrelated_secrets_create_s: outcome.throughput.unrelated_secrets_create_s,
        ..record
    };
    if times.len() < n {
        eprintln!(
            "[bench] only {} of {n} Ready before the time-out",
            times.len()
        );
        return Ok(None);
    }
    if let Some(window) = follow.idle {
        outcome.idle = Some(idle(bench, controller, n, at_ready.at, window).await?);
    }
    if !follow.restart {
        return Ok(None);
    }
    Ok(Some(restart(bench, controller, ns, tag, n, outcome).await?))
}

/// The measured core of a run: with the issuer Ready and the controller settled, creates the
/// Certificates `names` and waits until each is `ready_when` (or the run's time-out); returns the
/// record, each Certificate's time to ready, and the snapshot at the end.
async fn create_and_wait(
    bench: &Bench,
    controller: &Controller,
    ns: &str,
    tag: &str,
    names: &[String],
    ready_when: fn(&Certificate) -> bool,
) -> Result<(Throughput, Vec<Duration>, Snapshot)> {
    cluster::wait_issuer_ready(&bench.client, ns, Duration::from_secs(60)).await?;
    settle(controller, Duration::from_secs(1), Duration::from_secs(20)).await?;
    let before = snapshot(bench, controller).await?;
    let started = Instant::now();
    let create = async {
        cluster::create_certificates(
            &bench.client,
            ns,
            names,
            tag,
            &bench.env.zone,
            bench.create_concurrency,
        )
        .await?;
        Ok::<_, anyhow::Error>(started.elapsed())
    };
    let wait = cluster::wait_all_ready(
        &bench.client,
        ns,
        names.len(),
        started,
        bench.run_timeout,
        ready_when,
    );
    let (created, times) = tokio::join!(create, wait);
    let (create_s, times) = (created?, times?);
    let at_ready = snapshot(bench, controller).await?;
    let record = throughput_record(
        controller,
        &before,
        &at_ready,
        create_s,
        &times,
        names.len(),
    );
    Ok((record, times, at_ready))
}

fn throughput_record(
    controller: &Controller,
    before: &Snapshot,
    at_ready: &Snapshot,
    create: Duration,
    times: &[Duration],
    n: usize,
) -> Throughput {
    let mut sorted: Vec<f64> = times.iter().map(Duration::as_secs_f64).collect();
    sorted.sort_by(f64::total_cmp);
    let all_ready_s = at_ready.at.duration_since(before.at).as_secs_f64();
    let all_ready_s = sorted
        .last()
        .copied()
        .unwrap_or(all_ready_s)
        .min(all_ready_s);
    let api = prom::diff(&before.api, &at_ready.api);
    let apiserver_cpu_s = at_ready
        .apiserver_cpu_s
        .zip(before.apiserver_cpu_s)
        .map(|(after, before)| after - before);
    let acme = prom::diff(
        &acme_by_endpoint(&before.metrics),
        &acme_by_endpoint(&at_ready.metrics),
    );
    Throughput {
        startup_s: controller.startup.as_secs_f64(),
        create_s: create.as_secs_f64(),
        ready: times.len(),
        half_ready_s: sorted
            .get(n.div_ceil(2).saturating_sub(1))
            .copied()
            .unwrap_or(0.0),
        all_ready_s,
        certificates_per_s: if all_ready_s > 0.0 {
            times.len() as f64 / all_ready_s
        } else {
            0.0
        },
        timed_out: times.len() < n,
        cpu_s: at_ready.proc.cpu_seconds - before.proc.cpu_seconds,
        cpu_total_s: at_ready.proc.cpu_seconds,
        apiserver_cpu_s,
        apiserver_cpu_ms_per_certificate: apiserver_cpu_s
            .filter(|_| !times.is_empty())
            .map(|cpu| 1000.0 * cpu / times.len() as f64),
        rss_before_mib: mib(before.proc.rss_kib),
        peak_rss_mib: mib(at_ready.proc.peak_rss_kib),
        rss_at_ready_mib: mib(at_ready.proc.rss_kib),
        api_writes: writes(&api),
        api_requests: api,
        api_requests_per_certificate_by_resource: prom::diff(
            &before.api_by_resource,
            &at_ready.api_by_resource,
        )
        .into_iter()
        .map(|(k, v)| (k, v / times.len().max(1) as f64))
        .collect(),
        acme_requests_total: acme.values().fold(0.0, |a, b| a + b),
        acme_requests: acme,
        orders_created: orders_created(&at_ready.metrics) - orders_created(&before.metrics),
        reconciles: cert_reconciles(&at_ready.metrics) - cert_reconciles(&before.metrics),
        ..Default::default()
    }
}

/// Waits until the controller's Certificate reconcile count has not moved for `quiet` (its
/// trailing writes after the last Ready: finalizer removal, next-key Secret deletion, Event).
async fn settle(controller: &Controller, quiet: Duration, limit: Duration) -> Result<Duration> {
    let started = Instant::now();
    let mut last = cert_reconciles(&controller.metrics().await?);
    let mut since = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100).min(quiet)).await;
        let now = cert_reconciles(&controller.metrics().await?);
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet || started.elapsed() >= limit {
            return Ok(started.elapsed());
        }
    }
}

/// Scenario 4: nothing is due; what does the controller do in `window`?
async fn idle(
    bench: &Bench,
    controller: &Controller,
    n: usize,
    all_ready: Instant,
    window: Duration,
) -> Result<Idle> {
    settle(controller, Duration::from_secs(3), Duration::from_secs(60)).await?;
    let settle_s = all_ready.elapsed().as_secs_f64();
    eprintln!("[bench] idle: {} s window", window.as_secs());
    let before = snapshot(bench, controller).await?;
    tokio::time::sleep(window).await;
    let after = snapshot(bench, controller).await?;
    let seconds = after.at.duration_since(before.at).as_secs_f64();
    let cpu = after.proc.cpu_seconds - before.proc.cpu_seconds;
    let api = prom::diff(&before.api, &after.api);
    Ok(Idle {
        n,
        settle_s,
        window_s: seconds,
        acme_requests: prom::sum(&after.metrics, "ferrocert_acme_requests_total", |_| true)
            - prom::sum(&before.metrics, "ferrocert_acme_requests_total", |_| true),
        api_writes: writes(&api),
        api_requests: api,
        cpu_s: cpu,
        cpu_percent_of_one_core: 100.0 * cpu / seconds.max(f64::EPSILON),
        reconciles: cert_reconciles(&after.metrics) - cert_reconciles(&before.metrics),
    })
}

/// Scenario 5: stop the controller with N Ready Certificates, start a new one, and watch it
/// re-check them all without ordering anything.
async fn restart(
    bench: &Bench,
    old: &mut Controller,
    ns: &str,
    tag: &str,
    n: usize,
    outcome: &mut RunOutcome,
) -> Result<Controller> {
    eprintln!("[bench] restart with {n} Ready Certificates");
    let certs: Api<Certificate> = Api::namespaced(bench.client.clone(), ns);
    let revisions: BTreeMap<String, Option<i64>> = certs
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .map(|c| {
            let revision = c.status.as_ref().and_then(|s| s.revision);
            (c.metadata.name.unwrap_or_default(), revision)
        })
        .collect();
    old.terminate().await?;
    let api_before = cluster::apiserver_requests(&bench.client).await?;
    let spawned = Instant::now();
    let controller = Controller::start(&bench.launch, &format!("{tag}-restart")).await?;
    let mut recheck = None;
    let mut last = -1.0;
    let mut since = Instant::now();
    let mut metrics;
    loop {
        // CPU sampled at each poll; the last sample is before the final scrape.
        metrics = controller.metrics().await?;
        let count = cert_reconciles(&metrics);
        if recheck.is_none() && count >= n as f64 {
            recheck = Some(spawned.elapsed().as_secs_f64());
        }
        if count != last {
            last = count;
            since = Instant::now();
        } else if since.elapsed() >= Duration::from_secs(3) && recheck.is_some() {
            break;
        }
        if spawned.elapsed() > Duration::from_secs(120) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let settle_s = since.duration_since(spawned).as_secs_f64();
    let stats = controller.stats()?;
    let api = prom::diff(
        &api_before,
        &cluster::apiserver_requests(&bench.client).await?,
    );
    let after = certs.list(&ListParams::default()).await?.items;
    let ready_after = after.iter().filter(|c| cluster::is_ready(c)).count();
    let bench_reissued = after
        .iter()
        .filter(|c| {
            let status = c.status.as_ref();
            let name = c.metadata.name.clone().unwrap_or_default();
            status.is_some_and(|s| s.order.is_some())
                || revisions.get(&name).copied().flatten() != status.and_then(|s| s.revision)
        })
        .count();
    outcome.restart = Some(Restart {
        n,
        startup_s: controller.startup.as_secs_f64(),
        recheck_s: recheck,
        settle_s,
        reconciles: cert_reconciles(&metrics),
        orders_created: orders_created(&metrics),
        bench_reissued,
        acme_requests: acme_by_endpoint(&metrics),
        api_writes: writes(&api),
        api_requests: api,
        cpu_s: stats.cpu_seconds,
        peak_rss_mib: mib(stats.peak_rss_kib),
        ready_after,
    });
    Ok(controller)
}

/// Scenario 6 (issue 15): N Secrets as cert-manager left them, then N Certificates naming them:
/// each is adopted (Ready without an order). Recorded like a throughput run; `orders_created`
/// is the figure that matters (0).
pub async fn adopt(bench: &Bench, n: usize) -> Result<Throughput> {
    let tag = bench.tag(&format!("adopt{n}"));
    let ns = format!("bench-{tag}");
    cluster::create_namespace(&bench.client, &ns).await?;
    cluster::create_issuer(&bench.client, &bench.env, &ns).await?;
    let names = cluster::cert_names(n);
    eprintln!("[bench] adopt: {n} Secrets as cert-manager left them, then {n} Certificates");
    cluster::create_cert_manager_secrets(
        &bench.client,
        &ns,
        &names,
        &tag,
        &bench.env.zone,
        bench.create_concurrency,
    )
    .await?;
    let controller = Controller::start(&bench.launch, &tag).await?;
    let run = create_and_wait(bench, &controller, &ns, &tag, &names, cluster::is_adopted)
        .await
        .map(|(mut record, _, _)| {
            record.n = n;
            record
        });
    cleanup(bench, controller, &ns).await?;
    run
}

/// Removes a scenario's objects: Certificates first while the controller runs (so it neither
/// re-issues for a deleted Secret nor leaves a finalizer), then the controller, then the rest.
async fn cleanup(bench: &Bench, controller: Controller, ns: &str) -> Result<()> {
    let certs = cluster::delete_certificates(&bench.client, ns).await;
    controller.stop().await?;
    certs?;
    cluster::delete_namespace_contents(&bench.client, ns).await
}

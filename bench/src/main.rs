//! `ferrocert-bench`: measures the controller on the local environment (`tests/env/up.sh`):
//! apply→Ready latency against a bare ACME client, throughput and cost at N Certificates, the
//! effect of unrelated Secrets, idle cost, and restart cost. It is a benchmark, not a test: it
//! asserts nothing about timings; it prints a table and writes JSON. `bench/run.sh` runs it at
//! full size; the smoke test (`tests/bench_smoke.rs`) at N = 10.

mod cluster;
mod controller;
mod floor;
mod procstat;
mod prom;
mod report;
mod scenarios;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;

use crate::cluster::Env;
use crate::controller::Launch;
use crate::report::{Machine, Report};
use crate::scenarios::{Bench, FollowUp};

/// The scenarios, by name.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    Latency,
    Throughput,
    Secrets,
    Idle,
    Restart,
    Adopt,
}

#[derive(Parser, Debug)]
#[command(about = "Benchmarks the ferrocert controller against the local environment")]
struct Args {
    /// The controller binary (a release build for real numbers).
    #[arg(long)]
    controller_bin: Option<PathBuf>,
    /// Scenarios to run (comma-separated); all by default.
    #[arg(long, value_enum, value_delimiter = ',')]
    scenarios: Vec<Scenario>,
    /// Latency: Certificates issued one at a time (and orders of the bare client).
    #[arg(long, default_value_t = 20)]
    latency_runs: usize,
    /// Throughput: N Certificates applied at once, one run per N.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,5000")]
    sizes: Vec<usize>,
    /// The N after which the idle window and the restart are measured (run on its own if it is
    /// not among --sizes).
    #[arg(long, default_value_t = 1000)]
    follow_up_size: usize,
    /// The N repeated with unrelated Secrets in the cluster.
    #[arg(long, default_value_t = 1000)]
    secrets_size: usize,
    /// How many unrelated Secrets.
    #[arg(long, default_value_t = 20_000)]
    unrelated_secrets: usize,
    /// Size of each unrelated Secret's data, bytes.
    #[arg(long, default_value_t = 10 * 1024)]
    unrelated_secret_bytes: usize,
    /// Idle window (Go duration).
    #[arg(long, default_value = "60s")]
    idle: String,
    /// Longest wait for one run's Certificates to be Ready (Go duration); the run is recorded as
    /// timed out with what it reached.
    #[arg(long, default_value = "15m")]
    run_timeout: String,
    /// Requests in flight when creating Certificates and Secrets.
    #[arg(long, default_value_t = 32)]
    create_concurrency: usize,
    /// Extra flag for the controller (repeatable), e.g. `--controller-arg=--concurrency=16`.
    #[arg(long = "controller-arg", allow_hyphen_values = true)]
    controller_args: Vec<String>,
    /// Directory for the JSON, the table and the controllers' logs.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
}

fn main() -> Result<()> {
    ferrocert::tls::install_crypto_provider();
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let env = Env::from_environment()?;
    let client = kube::Client::try_default()
        .await
        .context("connecting to the API server")?;
    cluster::install_crds(&client).await?;
    let started = jiff::Timestamp::now();
    let stem = format!("bench-{}", started.strftime("%Y%m%dT%H%M%SZ"));
    let log_dir = args.out.join(format!("{stem}-logs"));
    std::fs::create_dir_all(&log_dir)?;
    let binary = args
        .controller_bin
        .clone()
        .unwrap_or_else(controller::default_binary);
    if !binary.exists() {
        bail!(
            "controller binary {} not found: `cargo build --release` or pass --controller-bin",
            binary.display()
        );
    }
    let bench = Bench {
        client: client.clone(),
        launch: Launch {
            binary: binary.clone(),
            kubeconfig: env.kubeconfig.clone(),
            http01_listen: env.http01_listen.clone(),
            http01_service: env.http01_service.clone(),
            self_check_port: env.http01_port,
            dns_server: env.dns_server.clone(),
            cluster_resource_namespace: "ferrocert-bench".into(),
            extra_args: args.controller_args.clone(),
            log_dir,
        },
        env,
        create_concurrency: args.create_concurrency,
        run_timeout: duration(&args.run_timeout)?,
        run_id: format!("{:x}", started.as_second() % 0x100000),
    };
    cluster::create_namespace(&client, "ferrocert-bench").await?;
    let mut report = Report {
        started_at: started.to_string(),
        machine: Machine::detect(),
        config: config(&args, &binary),
        ..Default::default()
    };
    run_scenarios(&args, &bench, &mut report, &stem).await?;
    report.finished_at = Some(jiff::Timestamp::now().to_string());
    let json = report.write(&args.out, &stem)?;
    print!("{}", report.table());
    println!("\nJSON: {}", json.display());
    if !report.errors.is_empty() {
        bail!("{} scenario(s) failed", report.errors.len());
    }
    Ok(())
}

/// Runs the chosen scenarios in order (latency, the sizes ascending with idle and restart after
/// the follow-up size and the unrelated-Secrets run right after the run of the same size),
/// writing the report after each so a long run that is interrupted keeps what it measured.
async fn run_scenarios(args: &Args, bench: &Bench, report: &mut Report, stem: &str) -> Result<()> {
    let wants = |s: Scenario| args.scenarios.is_empty() || args.scenarios.contains(&s);
    if wants(Scenario::Latency) {
        match scenarios::latency(bench, args.latency_runs).await {
            Ok(l) => report.latency = Some(l),
            Err(e) => report.errors.push(format!("latency: {e:#}")),
        }
        report.write(&args.out, stem)?;
    }
    if wants(Scenario::Adopt) {
        match scenarios::adopt(bench, args.follow_up_size).await {
            Ok(a) => report.adopt = Some(a),
            Err(e) => report.errors.push(format!("adopt: {e:#}")),
        }
        report.write(&args.out, stem)?;
    }
    let follow = FollowUp {
        idle: wants(Scenario::Idle)
            .then(|| duration(&args.idle))
            .transpose()?,
        restart: wants(Scenario::Restart),
    };
    let mut sizes: Vec<usize> = if wants(Scenario::Throughput) {
        args.sizes.clone()
    } else {
        Vec::new()
    };
    if (follow.idle.is_some() || follow.restart) && !sizes.contains(&args.follow_up_size) {
        sizes.push(args.follow_up_size);
    }
    if wants(Scenario::Secrets) && !sizes.contains(&args.secrets_size) {
        sizes.push(args.secrets_size);
    }
    sizes.sort_unstable();
    sizes.dedup();
    for n in sizes {
        let this_follow = if n == args.follow_up_size {
            follow
        } else {
            FollowUp::default()
        };
        match scenarios::throughput(bench, n, 0, 0, this_follow).await {
            Ok(outcome) => {
                report.throughput.push(outcome.throughput);
                report.idle = outcome.idle.or(report.idle.take());
                report.restart = outcome.restart.or(report.restart.take());
            }
            Err(e) => report.errors.push(format!("throughput N={n}: {e:#}")),
        }
        report.write(&args.out, stem)?;
        if wants(Scenario::Secrets) && n == args.secrets_size {
            match scenarios::throughput(
                bench,
                n,
                args.unrelated_secrets,
                args.unrelated_secret_bytes,
                FollowUp::default(),
            )
            .await
            {
                Ok(outcome) => report.unrelated_secrets = Some(outcome.throughput),
                Err(e) => report
                    .errors
                    .push(format!("unrelated Secrets N={n}: {e:#}")),
            }
            report.write(&args.out, stem)?;
        }
    }
    Ok(())
}

fn duration(text: &str) -> Result<Duration> {
    Ok(ferrocert::pki::parse_go_duration(text)
        .with_context(|| format!("{text:?} is not a duration like 60s or 5m"))?
        .unsigned_abs())
}

fn config(args: &Args, binary: &std::path::Path) -> BTreeMap<String, String> {
    let var = |n: &str| std::env::var(n).unwrap_or_else(|_| "(unset)".into());
    BTreeMap::from([
        ("controller_bin".into(), binary.display().to_string()),
        ("controller_args".into(), args.controller_args.join(" ")),
        ("latency_runs".into(), args.latency_runs.to_string()),
        ("sizes".into(), format!("{:?}", args.sizes)),
        (
            "unrelated_secrets".into(),
            args.unrelated_secrets.to_string(),
        ),
        (
            "unrelated_secret_bytes".into(),
            args.unrelated_secret_bytes.to_string(),
        ),
        ("idle".into(), args.idle.clone()),
        (
            "create_concurrency".into(),
            args.create_concurrency.to_string(),
        ),
        ("pebble_directory".into(), var("PEBBLE_DIRECTORY")),
        ("PEBBLE_VA_NOSLEEP".into(), var("PEBBLE_VA_NOSLEEP")),
        ("PEBBLE_AUTHZREUSE".into(), var("PEBBLE_AUTHZREUSE")),
        (
            "PEBBLE_WFE_NONCEREJECT".into(),
            var("PEBBLE_WFE_NONCEREJECT"),
        ),
    ])
}

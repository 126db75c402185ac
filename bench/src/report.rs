//! The results: one JSON document (written after every scenario, so an interrupted run keeps what
//! it measured) and one text table.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::scenarios::{Idle, Latency, Restart, Throughput};

/// Where and with what the benchmark ran.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Machine {
    pub hostname: String,
    pub cpus: usize,
    pub memory_gib: f64,
    pub os: String,
    pub kernel: String,
    pub load_average_at_start: String,
}

impl Machine {
    pub fn detect() -> Self {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let mem_kib = crate::procstat::status_kib(&read("/proc/meminfo"), "MemTotal").unwrap_or(0);
        let os = read("/etc/os-release")
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_default();
        Machine {
            hostname: read("/proc/sys/kernel/hostname").trim().to_string(),
            cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0),
            memory_gib: mem_kib as f64 / 1024.0 / 1024.0,
            os,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            load_average_at_start: read("/proc/loadavg").trim().to_string(),
        }
    }
}

/// The whole result document.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub started_at: String,
    pub finished_at: Option<String>,
    pub machine: Machine,
    pub config: BTreeMap<String, String>,
    pub latency: Option<Latency>,
    pub throughput: Vec<Throughput>,
    /// The run with unrelated Secrets (scenario 3); compare with the `throughput` entry of the
    /// same N.
    pub unrelated_secrets: Option<Throughput>,
    pub idle: Option<Idle>,
    pub restart: Option<Restart>,
    /// Certificates adopting the Secrets cert-manager left (issue 15): no orders expected.
    pub adopt: Option<Throughput>,
    /// Scenarios that failed, with the error.
    pub errors: Vec<String>,
}

impl Report {
    /// Writes `<dir>/<stem>.json` and `<dir>/<stem>.txt` (the table), and returns the JSON path.
    pub fn write(&self, dir: &Path, stem: &str) -> Result<PathBuf> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let json = dir.join(format!("{stem}.json"));
        std::fs::write(&json, serde_json::to_string_pretty(self)?)
            .with_context(|| format!("writing {}", json.display()))?;
        std::fs::write(dir.join(format!("{stem}.txt")), self.table())?;
        Ok(json)
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let _ = writeln!(
            out,
            "ferrocert benchmark, {} ({} CPUs, {:.0} GiB, {}, load at start {})",
            self.started_at, m.cpus, m.memory_gib, m.os, m.load_average_at_start
        );
        if let Some(l) = &self.latency {
            latency_table(&mut out, l);
        }
        if !self.throughput.is_empty() || self.unrelated_secrets.is_some() {
            throughput_table(&mut out, self);
        }
        if let Some(i) = &self.idle {
            let _ = writeln!(
                out,
                "\nIdle ({} Ready, {:.0} s window, starting {:.1} s after all Ready): ACME requests {}, API writes {}, CPU {:.3} s ({:.3}% of one core), reconciles {}",
                i.n,
                i.window_s,
                i.settle_s,
                i.acme_requests,
                i.api_writes,
                i.cpu_s,
                i.cpu_percent_of_one_core,
                i.reconciles
            );
        }
        if let Some(r) = &self.restart {
            let _ = writeln!(
                out,
                "\nRestart ({} Ready): orders created {} (benchmark Certificates re-issued {}), every Certificate re-checked after {} (start-up {:.2} s, reconciles {} until quiet at {:.1} s), ACME requests {}, API writes {}, API {}, CPU {:.2} s, peak RSS {:.1} MiB, Ready after {}",
                r.n,
                r.orders_created,
                r.bench_reissued,
                r.recheck_s
                    .map(|s| format!("{s:.2} s"))
                    .unwrap_or_else(|| "never".into()),
                r.startup_s,
                r.reconciles,
                r.settle_s,
                r.acme_requests.values().fold(0.0, |a, b| a + b),
                r.api_writes,
                verbs(&r.api_requests),
                r.cpu_s,
                r.peak_rss_mib,
                r.ready_after
            );
        }
        if let Some(a) = &self.adopt {
            let _ = writeln!(
                out,
                "\nAdopt ({} Secrets left by cert-manager): {} of {} adopted in {:.1} s, orders created {}, ACME requests {}, API writes {}, API {}, CPU {:.2} s, peak RSS {:.1} MiB",
                a.n,
                a.ready,
                a.n,
                a.all_ready_s,
                a.orders_created,
                a.acme_requests_total,
                a.api_writes,
                verbs(&a.api_requests),
                a.cpu_s,
                a.peak_rss_mib
            );
        }
        for e in &self.errors {
            let _ = writeln!(out, "\nERROR: {e}");
        }
        out
    }
}

fn latency_table(out: &mut String, l: &Latency) {
    let _ = writeln!(
        out,
        "\nLatency, apply→Ready one at a time ({} runs)   median    p95      min      max   ACME req/issuance",
        l.controller.runs
    );
    for (what, d, acme) in [
        (
            "ferrocert controller",
            &l.controller,
            l.acme_requests_per_issuance_controller,
        ),
        (
            "bare instant-acme (floor)",
            &l.floor,
            l.acme_requests_per_issuance_floor,
        ),
    ] {
        let _ = writeln!(
            out,
            "  {what:<42} {:>6.3} s {:>6.3} s {:>6.3} s {:>6.3} s {acme:>6.1}",
            d.median_s, d.p95_s, d.min_s, d.max_s
        );
    }
    let _ = writeln!(
        out,
        "  controller/floor (median) {:.2}x; controller API requests per issuance: {}",
        l.median_ratio,
        verbs(&l.api_requests_per_issuance)
    );
    let _ = writeln!(
        out,
        "  both through Traefik; the controller's route waits (apply → self-check 200): mean {:.3} s, {:.1} failed probes per issuance",
        l.route_ready_mean_s, l.self_check_failures_per_issuance
    );
}

fn throughput_table(out: &mut String, report: &Report) {
    let _ = writeln!(
        out,
        "\nThroughput     N  unrelated  all Ready   cert/s  CPU s  peak RSS  start-up  API writes  ACME req  orders"
    );
    let rows = report
        .throughput
        .iter()
        .chain(report.unrelated_secrets.iter());
    for t in rows.clone() {
        let _ = writeln!(
            out,
            "  {:>13} {:>10} {:>8.1} s{} {:>7.1} {:>6.1} {:>5.1} MiB {:>7.3} s {:>11} {:>9} {:>7}",
            t.n,
            t.unrelated_secrets,
            t.all_ready_s,
            if t.timed_out {
                format!(" ({} Ready, timed out)", t.ready)
            } else {
                String::new()
            },
            t.certificates_per_s,
            t.cpu_s,
            t.peak_rss_mib,
            t.startup_s,
            t.api_writes,
            t.acme_requests_total,
            t.orders_created
        );
    }
    let _ = writeln!(out, "  kube-apiserver CPU (first create to all Ready):");
    for t in rows.clone() {
        if let (Some(cpu), Some(per)) = (t.apiserver_cpu_s, t.apiserver_cpu_ms_per_certificate) {
            let _ = writeln!(
                out,
                "    N={} unrelated={}: {cpu:.1} s, {per:.1} ms per Certificate",
                t.n, t.unrelated_secrets
            );
        }
    }
    let _ = writeln!(out, "  API requests by verb (controller's, per run):");
    for t in rows.clone() {
        let _ = writeln!(
            out,
            "    N={} unrelated={}: {}",
            t.n,
            t.unrelated_secrets,
            verbs(&t.api_requests)
        );
    }
    let _ = writeln!(out, "  ACME requests by endpoint:");
    for t in rows {
        let _ = writeln!(
            out,
            "    N={} unrelated={}: {}",
            t.n,
            t.unrelated_secrets,
            verbs(&t.acme_requests)
        );
    }
}

fn verbs(map: &BTreeMap<String, f64>) -> String {
    if map.is_empty() {
        return "none".into();
    }
    map.iter()
        .map(|(k, v)| {
            if v.fract() == 0.0 {
                format!("{k} {v}")
            } else {
                format!("{k} {v:.1}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

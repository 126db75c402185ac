//! Keeps the benchmark harness working: runs `ferrocert-bench` at a smoke size (N = 10) against the
//! local environment with this build's controller, and checks that it produced a complete JSON
//! document: every scenario present, every Certificate Ready, no order on restart. No timing is
//! asserted (CI machines vary; `bench/run.sh` is for numbers).

mod common;

use std::process::Command;

use common::env_var;
use serde_json::Value;

#[test]
fn the_benchmark_harness_runs_every_scenario_at_smoke_size() {
    let _ = env_var("KUBECONFIG");
    let out = tempfile::tempdir().unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_ferrocert-bench"))
        .args([
            "--controller-bin",
            env!("CARGO_BIN_EXE_ferrocert"),
            "--latency-runs",
            "2",
            "--sizes",
            "10",
            "--follow-up-size",
            "10",
            "--secrets-size",
            "10",
            "--unrelated-secrets",
            "50",
            "--idle",
            "2s",
            "--run-timeout",
            "2m",
            // Pebble v2.10.3 can deadlock under concurrent orders (see bench/pebble.sh, which the
            // full benchmark uses); two reconciles at a time keep the smoke run clear of it.
            "--controller-arg=--concurrency=2",
            "--out",
        ])
        .arg(out.path())
        .output()
        .expect("run ferrocert-bench");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "ferrocert-bench failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("Latency")
            && stdout.contains("Throughput")
            && stdout.contains("Restart")
            && stdout.contains("Adopt"),
        "no table printed:\n{stdout}"
    );
    let json = std::fs::read_dir(out.path())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .expect("a JSON report");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();

    assert_eq!(
        report["errors"].as_array().map(Vec::len),
        Some(0),
        "{report:#}"
    );
    assert_eq!(report["latency"]["controller"]["runs"], 2, "{report:#}");
    assert_eq!(report["latency"]["floor"]["runs"], 2, "{report:#}");
    let runs = report["throughput"].as_array().expect("throughput runs");
    assert_eq!(runs.len(), 1, "{report:#}");
    for run in runs.iter().chain([&report["unrelated_secrets"]]) {
        assert_eq!(run["n"], 10, "{report:#}");
        assert_eq!(run["ready"], 10, "not all Ready: {run:#}");
        assert_eq!(run["timed_out"], false, "{run:#}");
        assert!(run["orders_created"].as_f64().unwrap() >= 10.0, "{run:#}");
        assert!(run["peak_rss_mib"].as_f64().unwrap() > 0.0, "{run:#}");
        assert!(run["cpu_s"].as_f64().is_some(), "{run:#}");
        assert!(run["api_writes"].as_f64().unwrap() > 0.0, "{run:#}");
    }
    assert_eq!(report["unrelated_secrets"]["unrelated_secrets"], 50);
    assert!(
        report["unrelated_secrets"]["unrelated_secrets_create_s"]
            .as_f64()
            .is_some(),
        "{report:#}"
    );
    let idle = &report["idle"];
    assert_eq!(idle["n"], 10, "{report:#}");
    for key in ["acme_requests", "api_writes", "cpu_percent_of_one_core"] {
        assert!(idle[key].as_f64().is_some(), "idle lacks {key}: {idle:#}");
    }
    // Secrets as cert-manager left them: every Certificate adopts its own (status.adopted and
    // Ready, so without an order).
    let adopt = &report["adopt"];
    assert_eq!(adopt["n"], 10, "{report:#}");
    assert_eq!(adopt["ready"], 10, "not all adopted: {adopt:#}");
    let restart = &report["restart"];
    assert_eq!(restart["n"], 10, "{report:#}");
    // Only the benchmark's own Certificates: the README's test command may run on an environment
    // that still holds other tests' Certificates (some due for a retry), which the restarted
    // controller rightly orders for.
    assert_eq!(
        restart["bench_reissued"], 0,
        "a restart re-issued the benchmark's Certificates: {restart:#}"
    );
    assert!(restart["orders_created"].as_f64().is_some(), "{restart:#}");
    assert_eq!(restart["ready_after"], 10, "{restart:#}");
    assert!(
        restart["recheck_s"].as_f64().is_some(),
        "not every Certificate re-checked: {restart:#}"
    );
}

//! The CLI (`ferrocert status|renew|inspect`, and the same binary as the kubectl plugin
//! `kubectl-ferrocert`) against the local environment: a real API server, Pebble, and the
//! controller as a process. Fails, never skips, when the environment is not there.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::e2e::{apply, client, controller, pebble_issuer, wait_cert_ready, wait_issuer_ready};
use common::{env_var, fresh_namespace, kubectl_ok};
use ferrocert::api::{Certificate, Issuer};
use kube::api::Api;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_ferrocert");

/// Runs a program with the test environment's KUBECONFIG.
fn run(program: &Path, args: &[&str], path: Option<&str>) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args).env("KUBECONFIG", env_var("KUBECONFIG"));
    if let Some(path) = path {
        cmd.env("PATH", path);
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("running {}: {e}", program.display()))
}

/// Runs `ferrocert ARGS`, asserts success and returns stdout.
fn ferrocert_ok(args: &[&str]) -> String {
    let out = run(Path::new(BIN), args, None);
    assert!(
        out.status.success(),
        "ferrocert {} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// The value of a `Key:  value` line of the text output, at the given indentation.
fn field<'a>(text: &'a str, indent: &str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        l.strip_prefix(indent)
            .and_then(|rest| rest.strip_prefix(key))
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::trim)
    })
}

/// The Events section of `status` text.
fn events_section(text: &str) -> &str {
    text.split_once("\nEvents:")
        .map(|(_, events)| events)
        .unwrap_or("")
}

#[tokio::test]
async fn status_inspect_renew_and_the_kubectl_plugin() {
    controller();
    let ns = fresh_namespace("cli");
    apply(&ns, &pebble_issuer("pebble", "pebble-account", json!({})));
    let issuers: Api<Issuer> = Api::namespaced(client().await, &ns);
    wait_issuer_ready(&issuers, "pebble").await;
    let zone = env_var("TEST_ZONE");
    let a = format!("cli-a.{zone}");
    let b = format!("cli-b.{zone}");
    apply(
        &ns,
        &json!({
            "apiVersion": "ferrocert.dev/v1alpha1",
            "kind": "Certificate",
            "metadata": {"name": "web"},
            "spec": {"secretName": "web-tls", "dnsNames": [a, b], "issuerRef": {"name": "pebble"}}
        }),
    );
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    wait_cert_ready(&certs, "web", 1).await;

    // status: Ready True, the Secret's SANs, and the Issued event (published just after the
    // status update, so allow it a moment to appear).
    let started = Instant::now();
    let status = loop {
        let text = ferrocert_ok(&["status", "web", "-n", &ns]);
        if events_section(&text).contains("Issued") {
            break text;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no Issued event in status output:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(
        field(&status, "", "Ready"),
        Some("True (Ready)"),
        "{status}"
    );
    assert_eq!(field(&status, "", "Revision"), Some("1"), "{status}");
    assert_eq!(
        field(&status, "", "Issuer"),
        Some("pebble (Issuer)"),
        "{status}"
    );
    assert_eq!(field(&status, "  ", "Exists"), Some("yes"), "{status}");
    let sans = field(&status, "  ", "DNS Names").unwrap_or_default();
    assert!(sans.contains(&a) && sans.contains(&b), "{status}");
    assert_eq!(
        field(&status, "  ", "Matches Spec"),
        Some("yes"),
        "{status}"
    );
    assert!(
        field(&status, "  ", "Key Matches").is_some_and(|v| v.starts_with("yes")),
        "{status}"
    );
    assert_eq!(field(&status, "", "Order"), Some("<none>"), "{status}");
    let issued_line = events_section(&status)
        .lines()
        .find(|l| l.contains("Issued"))
        .unwrap_or_default();
    assert!(
        issued_line.trim_start().starts_with("Normal") && issued_line.contains("ferrocert"),
        "{status}"
    );

    let status_json = json_of(&ferrocert_ok(&["status", "web", "-n", &ns, "-o", "json"]));
    assert_eq!(status_json["revision"], 1);
    let ready = status_json["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(ready["status"], "True", "{status_json}");
    assert!(
        status_json["events"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["reason"] == "Issued")),
        "{status_json}"
    );

    // inspect secret: SANs, the key matches, no key material.
    let inspect = ferrocert_ok(&["inspect", "secret", "web-tls", "-n", &ns]);
    assert!(inspect.contains(&a) && inspect.contains(&b), "{inspect}");
    assert!(
        inspect.contains("Matches Leaf:  yes: tls.key matches the certificate"),
        "{inspect}"
    );
    assert!(
        inspect.contains("signed by certificate #1 (verified)"),
        "{inspect}"
    );
    assert!(inspect.contains("ferrocert.dev/issuer-name:"), "{inspect}");
    assert!(!inspect.contains("PRIVATE KEY"), "{inspect}");
    let serial_before = json_of(&ferrocert_ok(&[
        "inspect", "secret", "web-tls", "-n", &ns, "-o", "json",
    ]))["certificates"][0]["serial"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_default();
    assert!(!serial_before.is_empty());

    // renew --wait: a new revision with a different serial.
    let renew = ferrocert_ok(&["renew", "web", "-n", &ns, "--wait", "--timeout", "90s"]);
    assert!(
        renew.contains("renewal requested (ferrocert.dev/renew-requested="),
        "{renew}"
    );
    assert!(renew.contains("re-issued: revision 2"), "{renew}");
    let cert = certs.get("web").await.unwrap_or_else(|e| panic!("{e}"));
    let status = cert.status.unwrap_or_default();
    assert_eq!(status.revision, Some(2));
    let request = cert
        .metadata
        .annotations
        .unwrap_or_default()
        .get("ferrocert.dev/renew-requested")
        .cloned()
        .unwrap_or_default();
    assert!(renew.contains(&request), "{renew}");
    let after = json_of(&ferrocert_ok(&[
        "inspect", "secret", "web-tls", "-n", &ns, "-o", "json",
    ]));
    let serial_after = after["certificates"][0]["serial"]
        .as_str()
        .unwrap_or_default();
    assert!(!serial_after.is_empty());
    assert_ne!(
        serial_after, serial_before,
        "renew issued a new certificate"
    );
    assert_eq!(
        after["annotations"]["ferrocert.dev/renew-handled"], request,
        "{after}"
    );
    let status = ferrocert_ok(&["status", "web", "-n", &ns]);
    assert_eq!(
        field(&status, "", "Renew Requested"),
        Some(format!("{request} (handled)").as_str()),
        "{status}"
    );

    // The kubectl plugin: the binary through a symlink named kubectl-ferrocert.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let plugin = dir.path().join("kubectl-ferrocert");
    std::os::unix::fs::symlink(BIN, &plugin).unwrap_or_else(|e| panic!("{e}"));
    let version = run(&plugin, &["version"], None);
    assert!(version.status.success());
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("ferrocert {}", env!("CARGO_PKG_VERSION"))
    );
    let help = run(&plugin, &["--help"], None);
    assert!(
        String::from_utf8_lossy(&help.stdout).contains("Usage: kubectl ferrocert <COMMAND>"),
        "{}",
        String::from_utf8_lossy(&help.stdout)
    );
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let listed = run(Path::new("kubectl"), &["plugin", "list"], Some(&path));
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("kubectl-ferrocert"),
        "kubectl plugin list: {}{}",
        String::from_utf8_lossy(&listed.stdout),
        String::from_utf8_lossy(&listed.stderr)
    );
    let out = run(
        Path::new("kubectl"),
        &["ferrocert", "status", "web", "-n", &ns],
        Some(&path),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kubectl ferrocert status failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(field(&text, "", "Ready"), Some("True (Ready)"), "{text}");
    assert_eq!(field(&text, "", "Revision"), Some("2"), "{text}");

    // --kubeconfig, and the namespace from the kubeconfig context when -n is not given.
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::copy(env_var("KUBECONFIG"), &kubeconfig).unwrap_or_else(|e| panic!("{e}"));
    let kubeconfig = kubeconfig.to_str().unwrap_or_default().to_string();
    kubectl_ok(
        &[
            "config",
            "set-context",
            "--current",
            "--namespace",
            &ns,
            "--kubeconfig",
            &kubeconfig,
        ],
        None,
    );
    let text = ferrocert_ok(&["status", "web", "--kubeconfig", &kubeconfig]);
    assert_eq!(field(&text, "", "Namespace"), Some(ns.as_str()), "{text}");

    // Passed: remove the namespace, so its short-lived certificate is not renewed forever by
    // later controller runs. (A failure keeps it for inspection.)
    kubectl_ok(&["delete", "namespace", &ns, "--wait=false"], None);
}

#[tokio::test]
async fn errors_name_the_object_and_exit_non_zero() {
    common::install_crds();
    let ns = fresh_namespace("cli-err");
    let cases: [(&[&str], String); 4] = [
        (
            &["status", "missing", "-n", &ns],
            format!("error: Certificate {ns}/missing not found"),
        ),
        (
            &["renew", "missing", "-n", &ns],
            format!("error: Certificate {ns}/missing not found"),
        ),
        (
            &["inspect", "secret", "missing", "-n", &ns],
            format!("error: Secret {ns}/missing not found"),
        ),
        (
            &["renew", "missing", "-n", &ns, "--timeout", "soon"],
            "error: invalid --timeout: invalid duration \"soon\"".to_string(),
        ),
    ];
    for (args, expected) in cases {
        let out = run(Path::new(BIN), args, None);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.starts_with(&expected), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    kubectl_ok(&["delete", "namespace", &ns, "--wait=false"], None);
}

/// `policy check --issuer-file`: no API server needed. One allowed and one refused Certificate
/// in one file: both lines, and exit code 1; the allowed one alone: exit code 0.
#[test]
fn policy_check_from_an_issuer_file_says_allowed_or_refused_by_which_rule() {
    let data = common::repo_root().join("tests/data/policy");
    let issuers = data.join("clusterissuer-shared.yaml");
    let certs = data.join("certificates.yaml");
    let check = |file: &Path| {
        Command::new(BIN)
            .args(["policy", "check", "-f"])
            .arg(file)
            .arg("--issuer-file")
            .arg(&issuers)
            .env("KUBECONFIG", "/nonexistent")
            .output()
            .expect("ferrocert runs")
    };
    let out = check(&certs);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0],
        "Certificate team-a/web: allowed by ClusterIssuer shared: within its policy; the \
         certificate gets lifetime at most 720h (policy.maxDuration)"
    );
    assert!(
        lines[1].starts_with(
            "Certificate team-a/steal: refused by ClusterIssuer shared (rule \
             policy.allowedDNSNames): "
        ),
        "{stdout}"
    );
    assert_eq!(lines.len(), 2, "{stdout}");

    let dir = tempfile::tempdir().expect("tempdir");
    let one = dir.path().join("web.yaml");
    let text = std::fs::read_to_string(&certs).expect("read");
    std::fs::write(&one, text.split("---").next().expect("first document")).expect("write");
    let out = check(&one);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // An issuer the file does not hold: an error, exit code 2.
    let out = Command::new(BIN)
        .args(["policy", "check", "-f"])
        .arg(&certs)
        .arg("--issuer-file")
        .arg(&certs)
        .output()
        .expect("ferrocert runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no ferrocert.dev Issuer or ClusterIssuer"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

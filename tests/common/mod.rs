//! Shared helpers for tests that run against the local environment started by `tests/env/up.sh`
//! (real kube-apiserver + etcd, Pebble, BIND). Such tests fail, never skip, when it is not running.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Reads a variable written by `tests/env/up.sh` into `.testenv/env.sh`; panics with the fix when
/// the environment is not there.
pub fn env_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: this test needs the local environment. Run `tests/env/up.sh` and \
             `source .testenv/env.sh` (tests/run.sh does both)"
        )
    })
}

/// Runs kubectl against the test API server with optional stdin.
pub fn kubectl(args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new("kubectl");
    cmd.env("KUBECONFIG", env_var("KUBECONFIG"))
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("kubectl runs");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(input.as_bytes())
            .expect("write kubectl stdin");
    }
    child.wait_with_output().expect("kubectl finishes")
}

/// Runs kubectl and panics with its stderr if it fails; returns stdout.
pub fn kubectl_ok(args: &[&str], stdin: Option<&str>) -> String {
    let out = kubectl(args, stdin);
    assert!(
        out.status.success(),
        "kubectl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs helm from the repository root against the test API server.
pub fn helm(args: &[&str]) -> Output {
    Command::new("helm")
        .current_dir(repo_root())
        .env("KUBECONFIG", env_var("KUBECONFIG"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| {
            panic!(
                "cannot run helm ({err}): this test needs the local environment's helm on PATH. \
                 Run `tests/env/up.sh` and `source .testenv/env.sh` (tests/run.sh does both)"
            )
        })
}

/// Runs helm and panics with its output if it fails; returns stdout.
pub fn helm_ok(args: &[&str]) -> String {
    let out = helm(args);
    assert!(
        out.status.success(),
        "helm {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Installs the CRDs from `crds/` once per test process and waits until they are Established.
pub fn install_crds() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let dir = repo_root().join("crds");
        kubectl_ok(
            &[
                "apply",
                "--server-side",
                "--force-conflicts",
                "-f",
                path_str(&dir),
            ],
            None,
        );
        kubectl_ok(
            &[
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                "crd/certificates.ferrocert.dev",
                "crd/issuers.ferrocert.dev",
                "crd/clusterissuers.ferrocert.dev",
            ],
            None,
        );
    });
}

/// Creates a namespace with a unique name for one test.
pub fn fresh_namespace(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .subsec_nanos();
    let name = format!("{prefix}-{}-{nanos:x}", std::process::id());
    kubectl_ok(&["create", "namespace", &name], None);
    name
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

pub mod e2e;

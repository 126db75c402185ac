//! End-to-end helpers: a controller process against the local API server and Pebble, Issuers
//! pointing at Pebble, and waiting for conditions.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine;
use ferrocert::api::{Certificate, Issuer};
use kube::Client;
use kube::api::Api;
use serde_json::json;

use super::{env_var, install_crds, kubectl, kubectl_ok};

/// The namespace the controller keeps ClusterIssuer Secrets in, during tests.
pub const CLUSTER_RESOURCE_NAMESPACE: &str = "ferrocert-e2e";

/// A running controller process.
pub struct ControllerProcess {
    pub pid: u32,
    pub metrics: String,
    pub log: std::path::PathBuf,
}

/// Starts `ferrocert controller` with its HTTP-01 listener on the address the test environment's
/// HTTP-01 Service lists ([`backend_listen`]): Pebble's requests reach it through Traefik. The
/// process dies with the test process (PR_SET_PDEATHSIG, set from a thread that lives as long as
/// the process).
pub fn start_controller(tag: &str) -> ControllerProcess {
    start_controller_with(tag, &backend_listen(), &[], &[])
}

/// The HTTP-01 listen address in the EndpointSlice of the test environment's HTTP-01 Service.
pub fn backend_listen() -> String {
    format!(
        "{}:{}",
        env_var("HTTP01_BACKEND_IP"),
        env_var("HTTP01_BACKEND_PORT")
    )
}

/// A second local address, not in that EndpointSlice until a test puts it there.
pub fn backend_listen2() -> String {
    format!(
        "{}:{}",
        env_var("HTTP01_BACKEND_IP2"),
        env_var("HTTP01_BACKEND_PORT")
    )
}

/// Starts a controller with its HTTP-01 listener on `http01_listen`, extra flags and environment.
/// The self-check goes where Pebble goes: Traefik on `HTTP01_PORT`, names resolved by the test BIND.
pub fn start_controller_with(
    tag: &str,
    http01_listen: &str,
    extra_args: &[&str],
    extra_env: &[(&str, &str)],
) -> ControllerProcess {
    install_crds();
    let _ = super::kubectl(&["create", "namespace", CLUSTER_RESOURCE_NAMESPACE], None);
    let metrics_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = std::env::temp_dir().join(format!("ferrocert-{tag}-{}.log", std::process::id()));
    let log_file = std::fs::File::create(&log).unwrap();
    let http01 = http01_listen.to_string();
    // The controller of the previous test binary dies with it, a moment after: wait for its port.
    let freed = Instant::now();
    while TcpListener::bind(&http01).is_err() {
        assert!(
            freed.elapsed() < Duration::from_secs(15),
            "{http01} stays busy"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let metrics = format!("127.0.0.1:{metrics_port}");
    let (tx, rx) = std::sync::mpsc::channel();
    let env: Vec<(String, String)> = extra_env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut args = vec![
        "controller".to_string(),
        "--http01-listen".into(),
        http01,
        "--metrics-listen".into(),
        metrics.clone(),
        "--backoff-base".into(),
        "2s".into(),
        "--backoff-cap".into(),
        "16s".into(),
        "--cluster-resource-namespace".into(),
        CLUSTER_RESOURCE_NAMESPACE.into(),
        // The test zones' NS records say port 53; BIND listens elsewhere: check there.
        "--dns01-check-nameservers".into(),
        env_var("DNS_SERVER"),
        "--http01-service".into(),
        env_var("HTTP01_SERVICE"),
        "--http01-self-check-port".into(),
        env_var("HTTP01_PORT"),
        // Every test name resolves to 127.0.0.1, which a cluster's self-check refuses.
        "--http01-self-check-allow-internal=true".into(),
        "--http01-self-check-nameservers".into(),
        env_var("DNS_SERVER"),
        // Routes through Traefik load within 2 s; a test of a broken route should not wait 5 min.
        "--http01-self-check-timeout".into(),
        "10s".into(),
    ];
    args.extend(extra_args.iter().map(|a| a.to_string()));
    std::thread::spawn(move || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrocert"));
        cmd.args(&args)
            .env("KUBECONFIG", env_var("KUBECONFIG"))
            .env(
                "RUST_LOG",
                std::env::var("FERROCERT_TEST_LOG")
                    .unwrap_or_else(|_| "info,ferrocert=debug".into()),
            )
            .envs(env)
            .stdout(Stdio::from(log_file.try_clone().unwrap()))
            .stderr(Stdio::from(log_file));
        // SAFETY: prctl is async-signal-safe; it only sets a flag on the child.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child: Child = cmd.spawn().expect("start the controller");
        tx.send(child.id()).unwrap();
        // Reap the child when it ends, then keep this thread (the child's parent thread, whose
        // exit would fire PDEATHSIG) alive for the life of the test process.
        let _ = child.wait();
        loop {
            std::thread::park();
        }
    });
    let pid = rx.recv().unwrap();
    let started = Instant::now();
    while ureq_get(&format!("http://{metrics}/healthz")).is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "controller did not start; log: {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    ControllerProcess { pid, metrics, log }
}

/// The shared controller of one test binary.
pub fn controller() -> &'static ControllerProcess {
    static C: OnceLock<ControllerProcess> = OnceLock::new();
    C.get_or_init(|| start_controller("shared"))
}

/// A counter's value from a controller's /metrics (0 when absent).
pub fn metric(c: &ControllerProcess, name: &str) -> f64 {
    let text = ureq_get(&format!("http://{}/metrics", c.metrics)).unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A minimal HTTP GET over loopback (no client crate needed for /metrics).
pub fn ureq_get(url: &str) -> Option<String> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let mut stream = std::net::TcpStream::connect(host).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

pub async fn client() -> Client {
    let _ = env_var("KUBECONFIG");
    Client::try_default().await.expect("kube client")
}

pub fn pebble_ca_bundle() -> String {
    let pem = std::fs::read(env_var("PEBBLE_CA_FILE")).expect("Pebble CA file");
    base64::engine::general_purpose::STANDARD.encode(pem)
}

/// An Issuer for the local Pebble with an HTTP-01 solver. Its profile is Pebble's `default`
/// (90 days) unless `extra` says otherwise: without one, Pebble picks a random profile, and a
/// ten-minute certificate could renew (by ARI) in the middle of a test that counts orders.
pub fn pebble_issuer(
    name: &str,
    account_secret: &str,
    extra: serde_json::Value,
) -> serde_json::Value {
    let mut acme = json!({
        "server": env_var("PEBBLE_DIRECTORY"),
        "email": "e2e@example.test",
        "caBundle": pebble_ca_bundle(),
        "privateKeySecretRef": {"name": account_secret},
        "profile": "default",
        "solvers": [{"http01": {"ingress": {"ingressClassName": env_var("INGRESS_CLASS")}}}]
    });
    merge_fields(&mut acme, &extra);
    json!({
        "apiVersion": "ferrocert.dev/v1alpha1",
        "kind": "Issuer",
        "metadata": {"name": name},
        "spec": {"acme": acme}
    })
}

/// A Certificate for the Issuer `pebble` of its namespace, secret `<name>-tls`, with the fields of
/// `extra` set on its spec.
pub fn pebble_certificate<S: AsRef<str>>(
    name: &str,
    dns: &[S],
    extra: serde_json::Value,
) -> serde_json::Value {
    let dns: Vec<&str> = dns.iter().map(AsRef::as_ref).collect();
    let mut spec = json!({
        "secretName": format!("{name}-tls"),
        "dnsNames": dns,
        "issuerRef": {"name": "pebble"}
    });
    merge_fields(&mut spec, &extra);
    json!({"apiVersion": "ferrocert.dev/v1alpha1", "kind": "Certificate", "metadata": {"name": name}, "spec": spec})
}

/// The TXT values at `name`, as the test BIND answers (`dig +short`).
pub fn txt_records(name: &str) -> String {
    let (host, port) = env_var("DNS_SERVER")
        .rsplit_once(':')
        .map(|(h, p)| (h.to_string(), p.to_string()))
        .expect("DNS_SERVER is host:port");
    let out = Command::new("dig")
        .args(["+short", "-p", &port, &format!("@{host}"), "TXT", name])
        .output()
        .expect("dig runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Applies RFC 2136 update commands (`update add ...`, one per line, one zone) to the test BIND,
/// signed with the environment's TSIG key; panics with nsupdate's words if it fails.
pub fn nsupdate(commands: &str) {
    use std::io::Write;
    let (host, port) = env_var("DNS_SERVER")
        .rsplit_once(':')
        .map(|(h, p)| (h.to_string(), p.to_string()))
        .expect("DNS_SERVER is host:port");
    let key = format!(
        "hmac-sha256:{}:{}",
        env_var("TSIG_KEY_NAME"),
        env_var("TSIG_SECRET")
    );
    let mut child = Command::new("nsupdate")
        .args(["-y", &key])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nsupdate runs");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(format!("server {host} {port}\n{commands}\nsend\n").as_bytes())
        .expect("write nsupdate's commands");
    let out = child.wait_with_output().expect("nsupdate finishes");
    assert!(
        out.status.success(),
        "nsupdate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sets every top-level field of `extra` (an object) on `target` (an object).
pub fn merge_fields(target: &mut serde_json::Value, extra: &serde_json::Value) {
    if let (Some(t), Some(e)) = (target.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            t.insert(k.clone(), v.clone());
        }
    }
}

pub fn apply(ns: &str, doc: &serde_json::Value) {
    kubectl_ok(&["apply", "-n", ns, "-f", "-"], Some(&doc.to_string()));
}

/// Polls until `check` returns Some, or panics with `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            started.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn condition(
    conds: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    t: &str,
) -> Option<(String, String, String)> {
    conds
        .iter()
        .find(|c| c.type_ == t)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

pub async fn wait_issuer_ready(api: &Api<Issuer>, name: &str) -> Issuer {
    wait_for(
        &format!("Issuer {name} Ready"),
        Duration::from_secs(30),
        || async {
            let i = api.get(name).await.ok()?;
            let st = i.status.as_ref()?;
            (condition(&st.conditions, "Ready")?.0 == "True").then_some(i.clone())
        },
    )
    .await
}

/// Waits until the Certificate is Ready at `revision` or later.
pub async fn wait_cert_ready(api: &Api<Certificate>, name: &str, revision: i64) -> Certificate {
    wait_for(
        &format!("Certificate {name} Ready at revision {revision}"),
        Duration::from_secs(60),
        || async {
            let c = api.get(name).await.ok()?;
            let st = c.status.as_ref()?;
            (condition(&st.conditions, "Ready")?.0 == "True"
                && st.revision.unwrap_or(0) >= revision
                && st.order.is_none())
            .then_some(c.clone())
        },
    )
    .await
}

/// Waits until the Certificate's attempt failed (`Ready=False`, reason `Failed`); its message.
pub async fn wait_cert_failed(api: &Api<Certificate>, name: &str) -> String {
    wait_for(
        &format!("Certificate {name} Ready=False (Failed)"),
        Duration::from_secs(30),
        || async {
            let c = api.get(name).await.ok()?;
            ready_condition(&c)
                .filter(|(s, r, _)| s == "False" && r == "Failed")
                .map(|(_, _, m)| m)
        },
    )
    .await
}

pub fn ready_condition(c: &Certificate) -> Option<(String, String, String)> {
    condition(&c.status.as_ref()?.conditions, "Ready")
}

/// How many times an Event with this reason was recorded on an object. The recorder folds
/// repeats into one Event with a series count, so this sums the counts.
pub fn event_count(ns: &str, name: &str, reason: &str) -> usize {
    event_fields(ns, name, reason, "{.series.count}")
        .iter()
        .map(|l| l.trim().parse::<usize>().unwrap_or(0).max(1))
        .sum()
}

/// One line per Event with this reason on an object: `template` (kubectl jsonpath) of each.
pub fn event_fields(ns: &str, name: &str, reason: &str, template: &str) -> Vec<String> {
    kubectl_ok(
        &[
            "get",
            "events",
            "-n",
            ns,
            "--field-selector",
            &format!("involvedObject.name={name},reason={reason}"),
            "-o",
            &format!("jsonpath={{range .items[*]}}{template}{{\"\\n\"}}{{end}}"),
        ],
        None,
    )
    .lines()
    .map(str::to_string)
    .collect()
}

/// Verifies `tls.crt` of a Secret with openssl against Pebble's current issuance root; returns
/// openssl's text dump of the leaf.
pub fn verify_chain(ns: &str, secret: &str) -> String {
    verify_chain_to(ns, secret, 0)
}

/// Like [`verify_chain`], against Pebble's root number `root`.
pub fn verify_chain_to(ns: &str, secret: &str, root: usize) -> String {
    let dir = tempfile::tempdir().unwrap();
    let chain = secret_field(ns, secret, "tls.crt");
    let chain_path = dir.path().join("chain.pem");
    std::fs::write(&chain_path, &chain).unwrap();
    let root = pebble_root(root);
    let root_path = dir.path().join("root.pem");
    std::fs::write(&root_path, root).unwrap();
    let out = Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(&root_path)
        .arg("-untrusted")
        .arg(&chain_path)
        .arg(&chain_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chain does not verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&chain_path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&text.stdout).into_owned()
}

/// Pebble's issuance root, fetched from its management interface now.
pub fn pebble_root(index: usize) -> Vec<u8> {
    let out = Command::new("curl")
        .args([
            "-sf",
            "--cacert",
            &env_var("PEBBLE_CA_FILE"),
            &format!("{}/roots/{index}", env_var("PEBBLE_MANAGEMENT")),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "fetching Pebble's root failed");
    out.stdout
}

/// The temporary solver objects (Ingress, HTTPRoute, Service, EndpointSlice, Secret labelled
/// `ferrocert.dev/solver`) left in a namespace, by name; empty when the controller cleaned up.
pub fn solver_objects(ns: &str) -> String {
    kubectl_ok(
        &[
            "get",
            "ingress,service,endpointslices.discovery.k8s.io,httproutes.gateway.networking.k8s.io,secret",
            "-n",
            ns,
            "-l",
            "ferrocert.dev/solver",
            "-o",
            "name",
        ],
        None,
    )
}

/// The subject common name of a PEM certificate.
pub fn subject_cn(pem: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.pem");
    std::fs::write(&path, pem).unwrap();
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-nameopt", "multiline", "-in"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("commonName")
                .map(|v| v.trim().trim_start_matches('=').trim().to_string())
        })
        .unwrap_or_else(|| panic!("no CN in {text}"))
}

/// Decoded `tls.key` of a Secret.
pub fn secret_key(ns: &str, secret: &str) -> String {
    secret_field(ns, secret, "tls.key")
}

/// One decoded data field of a Secret, as text.
pub fn secret_field(ns: &str, secret: &str, field: &str) -> String {
    let b64 = kubectl_ok(
        &[
            "get",
            "secret",
            "-n",
            ns,
            secret,
            "-o",
            &format!("jsonpath={{.data.{}}}", field.replace('.', "\\.")),
        ],
        None,
    );
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .unwrap(),
    )
    .unwrap()
}

/// The Traefik access-log entries (JSON lines) for requests to `host` under the ACME challenge
/// path, as `(user agent, status)`.
pub fn challenge_requests(host: &str) -> Vec<(String, u64)> {
    let log = std::fs::read_to_string(env_var("TRAEFIK_ACCESS_LOG")).unwrap_or_default();
    log.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|e| {
            let req_host = e["RequestHost"].as_str().unwrap_or_default();
            req_host.split(':').next() == Some(host)
                && e["RequestPath"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("/.well-known/acme-challenge/"))
        })
        .map(|e| {
            (
                e["request_User-Agent"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                e["DownstreamStatus"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// The holder of a Lease in the cluster resource namespace ("" when none).
pub fn holder(lease: &str) -> String {
    let out = kubectl(
        &[
            "get",
            "lease",
            "-n",
            CLUSTER_RESOURCE_NAMESPACE,
            lease,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ],
        None,
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Waits until `who` holds `lease`; returns how long that took.
pub fn wait_holder(lease: &str, who: &str, within: Duration) -> Duration {
    let started = Instant::now();
    while holder(lease) != who {
        assert!(
            started.elapsed() < within,
            "{who} did not hold {lease} within {within:?} (holder: {:?})",
            holder(lease)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    started.elapsed()
}

/// Creates the Secret `tsig` (key `secret`) with the test BIND's TSIG secret in `ns`, for Issuers
/// with an RFC 2136 solver.
pub fn create_tsig_secret(ns: &str) {
    kubectl_ok(
        &[
            "create",
            "secret",
            "generic",
            "tsig",
            "-n",
            ns,
            &format!("--from-literal=secret={}", env_var("TSIG_SECRET")),
        ],
        None,
    );
}

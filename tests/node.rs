//! The chart runs for real: `helm install` of `charts/ferrocert` onto the test environment's node
//! (kubelet + containerd, kube-controller-manager, kube-scheduler; `tests/env/node.sh`), with the
//! image built from the binary under test by `tests/env/image.sh` and imported into the node's
//! containerd. Two Running, Ready pods; one holds the Lease; the chart's HTTP-01 Service's
//! EndpointSlice, written by the real kube-controller-manager, lists both pod IPs; Certificates
//! are issued by the pods, by DNS-01 against BIND and by HTTP-01 with Pebble → Traefik → the
//! per-challenge Service and EndpointSlice → a pod IP (no host network).
//!
//! Fails when the node is missing, unless `tests/env/up.sh` was told to leave it out
//! (`TESTENV_NODE=0` in `.testenv/env.sh`): then it says so and passes. CI never does that.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::e2e::{
    apply, challenge_requests, client, event_count, pebble_certificate, pebble_issuer,
    ready_condition, solver_objects, verify_chain, wait_cert_failed, wait_cert_ready,
    wait_issuer_ready,
};
use common::{
    env_var, fresh_namespace, helm, helm_ok, install_crds, kubectl, kubectl_ok, repo_root,
};
use ferrocert::api::{Certificate, Issuer};
use futures::StreamExt;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};

const CHART: &str = "charts/ferrocert";
const RELEASE: &str = "fc";
const FULLNAME: &str = "fc-ferrocert";

/// False when up.sh left the node out on purpose; panics when it should be there and is not.
fn node_expected() -> bool {
    if std::env::var("TESTENV_NODE").as_deref() == Ok("0") {
        eprintln!(
            "the test environment was started with TESTENV_NODE=0 (no node): not running the \
             pods test. CI and tests/run.sh start the node."
        );
        return false;
    }
    let node = std::env::var("NODE_NAME").unwrap_or_else(|_| {
        panic!(
            "NODE_NAME is not set: this test needs the local environment with its node. Run \
             `tests/env/up.sh` and `source .testenv/env.sh` (tests/run.sh does both)"
        )
    });
    let out = kubectl(
        &[
            "get",
            "node",
            &node,
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ],
        None,
    );
    let ready = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        ready == "True",
        "the test environment's node {node} is not Ready ({ready:?}, {}): tests/env/up.sh \
         starts it (see .testenv/logs/kubelet.log); set TESTENV_NODE=0 before up.sh only to \
         leave it out on purpose",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    true
}

/// Builds the image from the binary Cargo built for this test and imports it into the node.
fn build_and_import_image() {
    let started = Instant::now();
    let out = Command::new(repo_root().join("tests/env/image.sh"))
        .args(["--binary", env!("CARGO_BIN_EXE_ferrocert"), "--import"])
        .output()
        .expect("tests/env/image.sh runs");
    assert!(
        out.status.success(),
        "tests/env/image.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "{}image built and imported in {:?}",
        String::from_utf8_lossy(&out.stderr),
        started.elapsed()
    );
}

/// The values this test sets, each because the test environment differs from a real cluster:
/// - the image: built here, imported into the node, never pulled;
/// - `dns01Webhooks`: the test environment's webhook solver (its APIService), so the pods may call it;
/// - three flags, since there is no cluster DNS and the CA's ports are not the real ones: the
///   test zones' NS records say port 53 of 127.0.0.1 (`--dns01-check-nameservers`: BIND at the
///   node IP instead), the pod's resolver knows no test name (`--http01-self-check-nameservers`),
///   and Traefik takes HTTP-01 on `HTTP01_PORT`, not 80 (`--http01-self-check-port`).
fn release_values() -> Vec<String> {
    let extra_args = json!([
        format!("--dns01-check-nameservers={}", env_var("NODE_DNS_SERVER")),
        format!(
            "--http01-self-check-nameservers={}",
            env_var("NODE_DNS_SERVER")
        ),
        format!("--http01-self-check-port={}", env_var("HTTP01_PORT")),
        // Test names resolve to 127.0.0.1 (DNAT to the node's Traefik).
        "--http01-self-check-allow-internal=true".to_string(),
    ]);
    vec![
        "--set".into(),
        format!("image.repository={}", env_var("FERROCERT_IMAGE_REPOSITORY")),
        "--set".into(),
        format!("image.tag={}", env_var("FERROCERT_IMAGE_TAG")),
        "--set".into(),
        "image.pullPolicy=Never".into(),
        "--set-json".into(),
        format!("controller.extraArgs={extra_args}"),
        "--set-json".into(),
        format!(
            "dns01Webhooks={}",
            json!([{"groupName": env_var("WEBHOOK_GROUP"), "solverNames": [env_var("WEBHOOK_SOLVER")]}])
        ),
    ]
}

/// The release's pods as `kubectl get -o json` items.
fn pods(ns: &str) -> Vec<Value> {
    let out = kubectl_ok(
        &[
            "get",
            "pods",
            "-n",
            ns,
            "-l",
            &format!("app.kubernetes.io/instance={RELEASE}"),
            "-o",
            "json",
        ],
        None,
    );
    let list: Value = serde_json::from_str(&out).expect("pod list JSON");
    list["items"].as_array().cloned().unwrap_or_default()
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running"
        && pod["metadata"]["deletionTimestamp"].is_null()
        && pod["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// Waits for exactly `n` Running, Ready pods (and no others); returns (name, IP) of each.
fn wait_ready_pods(ns: &str, n: usize, within: Duration) -> Vec<(String, String)> {
    let started = Instant::now();
    loop {
        let pods = pods(ns);
        if pods.len() == n && pods.iter().all(is_ready) {
            return pods
                .iter()
                .map(|p| {
                    (
                        p["metadata"]["name"].as_str().unwrap().to_string(),
                        p["status"]["podIP"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
        }
        if started.elapsed() > within {
            let describe = kubectl(&["describe", "pods", "-n", ns], None);
            panic!(
                "not {n} Ready pods within {within:?}: {}",
                String::from_utf8_lossy(&describe.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The holder of the release's Lease ("" when none).
fn lease_holder(ns: &str) -> String {
    let out = kubectl(
        &[
            "get",
            "lease",
            "-n",
            ns,
            FULLNAME,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ],
        None,
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The ready addresses in the EndpointSlices of the chart's HTTP-01 Service, with the
/// managed-by label of each slice.
fn http01_slice_addresses(ns: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let out = kubectl_ok(
        &[
            "get",
            "endpointslices.discovery.k8s.io",
            "-n",
            ns,
            "-l",
            &format!("kubernetes.io/service-name={FULLNAME}-http01"),
            "-o",
            "json",
        ],
        None,
    );
    let list: Value = serde_json::from_str(&out).expect("slice list JSON");
    let mut addresses = BTreeSet::new();
    let mut managers = BTreeSet::new();
    for slice in list["items"].as_array().cloned().unwrap_or_default() {
        managers.insert(
            slice["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
        for e in slice["endpoints"].as_array().cloned().unwrap_or_default() {
            if e["conditions"]["ready"] == true {
                for a in e["addresses"].as_array().cloned().unwrap_or_default() {
                    addresses.insert(a.as_str().unwrap_or_default().to_string());
                }
            }
        }
    }
    (addresses, managers)
}

/// Points `name` at the node IP in the test BIND: Pebble (on the host) and the pods' self-check
/// then reach Traefik there.
fn a_record_to_node(name: &str) {
    common::e2e::nsupdate(&format!(
        "update delete {name} A\nupdate add {name} 5 A {}",
        env_var("NODE_IP")
    ));
}

fn sans(text: &str) -> BTreeSet<String> {
    text.split("DNS:")
        .skip(1)
        .map(|s| s.split([',', '\n']).next().unwrap().trim().to_string())
        .collect()
}

/// The log of every ferrocert pod of the release, concatenated.
fn pod_logs(ns: &str) -> String {
    let mut all = String::new();
    for pod in pods(ns) {
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        let out = kubectl(&["logs", "-n", ns, name], None);
        all.push_str(&String::from_utf8_lossy(&out.stdout));
        all.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    all
}

const CRD_NAMES: [&str; 3] = [
    "certificates.ferrocert.dev",
    "issuers.ferrocert.dev",
    "clusterissuers.ferrocert.dev",
];

/// Every test binary shares the CRDs (`install_crds`); marking them as the release's lets the
/// chart install them as it would (crds.install defaults to true) instead of refusing objects
/// it does not own.
fn adopt_crds(ns: &str) {
    for crd in CRD_NAMES {
        kubectl_ok(
            &[
                "label",
                "crd",
                crd,
                "--overwrite",
                "app.kubernetes.io/managed-by=Helm",
            ],
            None,
        );
        kubectl_ok(
            &[
                "annotate",
                "crd",
                crd,
                "--overwrite",
                &format!("meta.helm.sh/release-name={RELEASE}"),
                &format!("meta.helm.sh/release-namespace={ns}"),
            ],
            None,
        );
    }
}

/// The release, uninstalled (and its pods gone) on drop, so no pod of it reconciles while later
/// test binaries run their own controller.
struct Release {
    namespace: String,
}

impl Drop for Release {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // What the pods saw, before they go: the test failed.
            let logs = pod_logs(&self.namespace);
            let tail: Vec<&str> = logs.lines().rev().take(80).collect();
            eprintln!("--- the release's pod logs (last 80 lines) ---");
            for line in tail.iter().rev() {
                eprintln!("{}", line.chars().take(400).collect::<String>());
            }
            let out = kubectl(
                &[
                    "describe",
                    "certificates.ferrocert.dev",
                    "-n",
                    &self.namespace,
                ],
                None,
            );
            eprintln!("{}", String::from_utf8_lossy(&out.stdout));
        }
        let _ = helm(&[
            "uninstall",
            RELEASE,
            "--namespace",
            &self.namespace,
            "--wait",
        ]);
        let _ = kubectl(
            &[
                "delete",
                "pods",
                "-n",
                &self.namespace,
                "-l",
                &format!("app.kubernetes.io/instance={RELEASE}"),
                "--force",
                "--grace-period=0",
                "--wait=true",
            ],
            None,
        );
    }
}

#[tokio::test]
async fn the_chart_runs_on_the_node_and_its_pods_issue_by_dns01_and_http01() {
    if !node_expected() {
        return;
    }
    install_crds();
    build_and_import_image();
    let ns = fresh_namespace("node");
    // The chart's pods meet the restricted Pod Security Standard.
    kubectl_ok(
        &[
            "label",
            "namespace",
            &ns,
            "pod-security.kubernetes.io/enforce=restricted",
        ],
        None,
    );

    // ---- helm install: two Running, Ready pods ----
    let started = Instant::now();
    let values = release_values();
    let mut args = vec![
        "install",
        RELEASE,
        CHART,
        "--namespace",
        &ns,
        "--wait",
        "--timeout",
        "180s",
    ];
    args.extend(values.iter().map(String::as_str));
    adopt_crds(&ns);
    let _release = Release {
        namespace: ns.clone(),
    };
    let out = helm_ok(&args);
    assert!(out.contains("STATUS: deployed"), "{out}");
    let pods = wait_ready_pods(&ns, 2, Duration::from_secs(120));
    eprintln!("helm install: 2 Ready pods in {:?}", started.elapsed());
    let pod_names: BTreeSet<String> = pods.iter().map(|(n, _)| n.clone()).collect();
    let pod_ips: BTreeSet<String> = pods.iter().map(|(_, ip)| ip.clone()).collect();
    assert_eq!(pod_ips.len(), 2, "two pod IPs: {pods:?}");
    let pod_cidr_prefix = env_var("NODE_IP")
        .rsplitn(3, '.')
        .nth(2)
        .expect("NODE_IP is IPv4")
        .to_string();
    for ip in &pod_ips {
        assert!(
            ip.starts_with(&format!("{pod_cidr_prefix}.")) && *ip != env_var("NODE_IP"),
            "pod IP {ip} is on the pod bridge, not the host network"
        );
    }

    // ---- one pod holds the Lease ----
    let started = Instant::now();
    let leader = loop {
        let h = lease_holder(&ns);
        if pod_names.contains(&h) {
            break h;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no pod holds Lease {ns}/{FULLNAME} (holder {h:?}, pods {pod_names:?})"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    eprintln!("leader: {leader}");

    // ---- the HTTP-01 Service's EndpointSlice (kube-controller-manager's) lists both pods ----
    let started = Instant::now();
    loop {
        let (addresses, managers) = http01_slice_addresses(&ns);
        if addresses == pod_ips {
            assert_eq!(
                managers,
                BTreeSet::from(["endpointslice-controller.k8s.io".to_string()]),
                "the slice is the controller-manager's"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the EndpointSlice of {FULLNAME}-http01 lists {addresses:?}, not the pods {pod_ips:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // ---- DNS-01 against BIND, through the pods ----
    let zone = env_var("TEST_ZONE");
    common::e2e::create_tsig_secret(&ns);
    apply(
        &ns,
        &pebble_issuer(
            "pebble-dns",
            "pebble-account-dns",
            json!({
                "server": env_var("NODE_PEBBLE_DIRECTORY"),
                "solvers": [{"dns01": {"rfc2136": {
                    "nameserver": env_var("NODE_DNS_SERVER"),
                    "tsigKeyName": env_var("TSIG_KEY_NAME"),
                    "tsigAlgorithm": "HMACSHA256",
                    "tsigSecretSecretRef": {"name": "tsig", "key": "secret"}
                }}}]
            }),
        ),
    );
    let issuers: Api<Issuer> = Api::namespaced(client().await, &ns);
    wait_issuer_ready(&issuers, "pebble-dns").await;
    let dns_names = [format!("dns.{ns}.{zone}"), format!("*.dns.{ns}.{zone}")];
    let mut cert = pebble_certificate("dns", &dns_names, json!({}));
    cert["spec"]["issuerRef"]["name"] = json!("pebble-dns");
    apply(&ns, &cert);
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    let started = Instant::now();
    wait_cert_ready(&certs, "dns", 1).await;
    eprintln!("DNS-01 issuance through the pods: {:?}", started.elapsed());
    let text = verify_chain(&ns, "dns-tls");
    assert_eq!(sans(&text), dns_names.iter().cloned().collect());
    assert_eq!(event_count(&ns, "dns", "OrderCreated"), 1, "DNS-01 orders");

    // ---- DNS-01 through the webhook solver, with the chart's RBAC ----
    webhook_solver_with_the_charts_rbac(&ns, &certs).await;

    // ---- HTTP-01: Pebble → Traefik → per-challenge Service + EndpointSlice → a pod IP ----
    apply(
        &ns,
        &pebble_issuer(
            "pebble",
            "pebble-account",
            json!({"server": env_var("NODE_PEBBLE_DIRECTORY")}),
        ),
    );
    wait_issuer_ready(&issuers, "pebble").await;
    let web = format!("web.{ns}.{zone}");
    a_record_to_node(&web);
    let seen: Arc<Mutex<Vec<EndpointSlice>>> = Arc::default();
    let sink = seen.clone();
    let slices: Api<EndpointSlice> = Api::namespaced(client().await, &ns);
    let watch = tokio::spawn(async move {
        let mut s = watcher(
            slices,
            watcher::Config::default().labels("ferrocert.dev/solver"),
        )
        .applied_objects()
        .boxed();
        while let Some(event) = s.next().await {
            if let Ok(o) = event {
                sink.lock().unwrap().push(o);
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    apply(&ns, &pebble_certificate("web", &[&web], json!({})));
    let started = Instant::now();
    wait_cert_ready(&certs, "web", 1).await;
    eprintln!(
        "HTTP-01 issuance through Traefik and the pods: {:?}",
        started.elapsed()
    );
    watch.abort();
    let text = verify_chain(&ns, "web-tls");
    assert_eq!(sans(&text), BTreeSet::from([web.clone()]));
    assert_eq!(event_count(&ns, "web", "OrderCreated"), 1, "HTTP-01 orders");
    assert_eq!(event_count(&ns, "web", "Failed"), 0, "failed attempts");
    // The per-challenge EndpointSlice listed the pods' IPs on their HTTP-01 port.
    let seen = seen.lock().unwrap().clone();
    let listed: BTreeSet<String> = seen
        .iter()
        .flat_map(|s| s.endpoints.clone().unwrap_or_default())
        .flat_map(|e| e.addresses)
        .collect();
    assert!(
        !listed.is_empty() && listed.is_subset(&pod_ips),
        "the per-challenge EndpointSlices listed {listed:?}, not pod IPs {pod_ips:?}"
    );
    assert!(
        seen.iter()
            .all(|s| s.ports.as_ref().and_then(|p| p[0].port) == Some(8089)),
        "per-challenge slices point at the pods' HTTP-01 port"
    );
    // Pebble's GET (not the pods' self-check) was answered 200 through Traefik.
    let requests = challenge_requests(&web);
    assert!(
        requests
            .iter()
            .any(|(agent, status)| *status == 200 && !agent.contains("ferrocert")),
        "Traefik's access log shows no 200 answer to the CA's GET for {web}: {requests:?}"
    );
    assert!(
        requests
            .iter()
            .any(|(agent, _)| agent.contains("ferrocert")),
        "the pods' self-check went through Traefik too: {requests:?}"
    );
    let left = solver_objects(&ns);
    assert!(left.trim().is_empty(), "temporary objects left: {left}");

    // The pods did it (no controller runs on the host in this test binary): the leader's log
    // speaks of both Certificates.
    let logs = pod_logs(&ns);
    for name in ["dns", "web"] {
        assert!(
            logs.contains(&format!("{ns}/{name}")) || logs.contains(&format!("name={name}")),
            "the pods' logs do not mention Certificate {ns}/{name}:\n{logs}"
        );
    }

    leader_killed_while_fifty_issue(&ns, &certs, &leader).await;
    upgrade_keeps_every_certificate_ready(&ns, &certs).await;
    uninstall_keeps_crds_certificates_and_secrets(&ns);
}

/// A webhook solver's Issuer, its solver named `solver_name` (the environment's solver group).
fn webhook_issuer(name: &str, solver_name: &str) -> Value {
    pebble_issuer(
        name,
        &format!("{name}-account"),
        json!({
            "server": env_var("NODE_PEBBLE_DIRECTORY"),
            "solvers": [{"dns01": {"webhook": {
                "groupName": env_var("WEBHOOK_GROUP"),
                "solverName": solver_name,
                "config": {
                    "nameserver": env_var("DNS_SERVER"),
                    "tsigKeyName": env_var("TSIG_KEY_NAME"),
                    "tsigAlgorithm": "hmac-sha256",
                    "tsigSecret": env_var("TSIG_SECRET")
                }
            }}}]
        }),
    )
}

/// The pods call the webhook solver through the API server with the rights the chart's
/// `dns01Webhooks` value grants (create on that one solver), and nothing more: a solver the
/// value does not list is refused by RBAC, and the Certificate says which value to set.
async fn webhook_solver_with_the_charts_rbac(ns: &str, certs: &Api<Certificate>) {
    let zone = env_var("TEST_ZONE");
    let issuers: Api<Issuer> = Api::namespaced(client().await, ns);
    apply(
        ns,
        &webhook_issuer("pebble-hook", &env_var("WEBHOOK_SOLVER")),
    );
    apply(ns, &webhook_issuer("pebble-unlisted", "unlisted"));
    wait_issuer_ready(&issuers, "pebble-hook").await;
    wait_issuer_ready(&issuers, "pebble-unlisted").await;

    let hook = format!("hook.{ns}.{zone}");
    let mut cert = pebble_certificate("hook", &[&hook], json!({}));
    cert["spec"]["issuerRef"]["name"] = json!("pebble-hook");
    apply(ns, &cert);
    let started = Instant::now();
    wait_cert_ready(certs, "hook", 1).await;
    eprintln!(
        "DNS-01 through the webhook solver, from the pods: {:?}",
        started.elapsed()
    );
    assert_eq!(
        sans(&verify_chain(ns, "hook-tls")),
        BTreeSet::from([hook.clone()])
    );
    let log = std::fs::read_to_string(env_var("WEBHOOK_SOLVER_LOG")).unwrap_or_default();
    assert!(
        log.contains(&format!("_acme-challenge.{hook}")),
        "the solver's log does not mention _acme-challenge.{hook}"
    );

    let mut refused = pebble_certificate("unlisted", &[format!("unlisted.{ns}.{zone}")], json!({}));
    refused["spec"]["issuerRef"]["name"] = json!("pebble-unlisted");
    apply(ns, &refused);
    let message = wait_cert_failed(certs, "unlisted").await;
    assert!(
        message.contains("forbidden") && message.contains("dns01Webhooks"),
        "{message}"
    );
    kubectl_ok(
        &["delete", "certificate", "-n", ns, "unlisted", "--wait"],
        None,
    );
}

const BULK: usize = 50;

/// The OrderCreated Events of the bulk Certificates in `ns`, summed over their series counts.
fn bulk_orders(ns: &str) -> usize {
    kubectl_ok(
        &[
            "get",
            "events",
            "-n",
            ns,
            "--field-selector",
            "reason=OrderCreated",
            "-o",
            "jsonpath={range .items[*]}{.involvedObject.name} {.series.count}{\"\\n\"}{end}",
        ],
        None,
    )
    .lines()
    .filter_map(|l| {
        let (name, count) = l.split_once(' ').unwrap_or((l, ""));
        name.starts_with("bulk-")
            .then(|| count.trim().parse::<usize>().unwrap_or(0).max(1))
    })
    .sum()
}

/// The ACME orders each bulk Certificate's `reason` Events name (`OrderCreated` and `Issued` both
/// carry the order URL).
fn bulk_order_urls(ns: &str, reason: &str) -> BTreeMap<String, BTreeSet<String>> {
    let out = kubectl_ok(
        &[
            "get",
            "events",
            "-n",
            ns,
            "--field-selector",
            &format!("reason={reason}"),
            "-o",
            "jsonpath={range .items[*]}{.involvedObject.name} {.message}{\"\\n\"}{end}",
        ],
        None,
    );
    let mut urls: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in out.lines() {
        let (name, message) = line.split_once(' ').unwrap_or((line, ""));
        if !name.starts_with("bulk-") {
            continue;
        }
        let url = message
            .split_whitespace()
            .find(|w| w.starts_with("https://") && w.contains("/my-order/"))
            .map(|w| w.trim_end_matches([',', ')', '(']).to_string());
        urls.entry(name.to_string()).or_default().extend(url);
    }
    urls
}

/// Every order URL each bulk Certificate's status records, as a watch sees them, from before
/// the Certificates exist until the returned task is aborted.
async fn watch_recorded_orders(
    certs: &Api<Certificate>,
) -> (
    Arc<Mutex<BTreeMap<String, BTreeSet<String>>>>,
    tokio::task::JoinHandle<()>,
) {
    let recorded: Arc<Mutex<BTreeMap<String, BTreeSet<String>>>> = Arc::default();
    let sink = recorded.clone();
    let (init_tx, init_rx) = tokio::sync::oneshot::channel();
    let api = certs.clone();
    let task = tokio::spawn(async move {
        let mut init_tx = Some(init_tx);
        let mut s = watcher(api, watcher::Config::default()).boxed();
        while let Some(event) = s.next().await {
            match event {
                Ok(watcher::Event::InitDone) => {
                    if let Some(tx) = init_tx.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(watcher::Event::Apply(c) | watcher::Event::InitApply(c)) => {
                    let name = c.metadata.name.clone().unwrap_or_default();
                    if let Some(url) = c.status.and_then(|s| s.order).map(|o| o.url)
                        && name.starts_with("bulk-")
                    {
                        sink.lock().unwrap().entry(name).or_default().insert(url);
                    }
                }
                _ => {}
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(30), init_rx)
        .await
        .expect("the Certificate watch did not start within 30 s")
        .expect("the Certificate watch ended");
    (recorded, task)
}

/// `kubectl delete pod --force --grace-period=0` on the Lease holder while 50 Certificates are
/// being issued (DNS-01): the other pod takes over within the lease duration (15 s), all 50
/// become Ready, each from the one order its status recorded.
async fn leader_killed_while_fifty_issue(ns: &str, certs: &Api<Certificate>, leader: &str) {
    let zone = env_var("TEST_ZONE");
    let (recorded, watch) = watch_recorded_orders(certs).await;
    let items: Vec<Value> = (0..BULK)
        .map(|i| {
            let mut c = pebble_certificate(
                &format!("bulk-{i}"),
                &[format!("bulk-{i}.{ns}.{zone}")],
                json!({}),
            );
            c["spec"]["issuerRef"]["name"] = json!("pebble-dns");
            c
        })
        .collect();
    let started = Instant::now();
    apply(
        ns,
        &json!({"apiVersion": "v1", "kind": "List", "items": items}),
    );
    // Kill the leader once its orders are under way.
    while bulk_orders(ns) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no bulk order within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let before_kill = bulk_orders(ns);
    kubectl_ok(
        &[
            "delete",
            "pod",
            "-n",
            ns,
            leader,
            "--force",
            "--grace-period=0",
        ],
        None,
    );
    let killed = Instant::now();
    let new_leader = loop {
        let h = lease_holder(ns);
        if !h.is_empty() && h != leader {
            break h;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(25),
            "no other pod took Lease {ns}/{FULLNAME} within 25 s of the leader's death (holder {h:?})"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let takeover = killed.elapsed();
    eprintln!(
        "leader {leader} killed after {before_kill} of {BULK} orders; {new_leader} took over in \
         {takeover:?}"
    );
    assert!(
        takeover <= Duration::from_secs(17),
        "takeover took {takeover:?}, more than the 15 s lease duration (and polling)"
    );
    for i in 0..BULK {
        wait_cert_ready(certs, &format!("bulk-{i}"), 1).await;
    }
    eprintln!(
        "{BULK} Certificates Ready {:?} after apply",
        started.elapsed()
    );
    watch.abort();
    // Each Certificate recorded exactly one order and issued from it: the new leader resumed
    // every order the dead one had recorded. An order announced but never recorded (the leader
    // died between its `OrderCreated` Event and the status write) is left pending at the CA;
    // that is the one extra order a crash may cost.
    let recorded = recorded.lock().unwrap().clone();
    let issued = bulk_order_urls(ns, "Issued");
    let announced = bulk_order_urls(ns, "OrderCreated");
    assert_eq!(issued.len(), BULK, "Certificates issued: {issued:?}");
    assert_eq!(
        recorded, issued,
        "each of {BULK} Certificates issued from the one order its status recorded"
    );
    for (name, urls) in &issued {
        assert!(
            announced.get(name).is_some_and(|a| a.is_superset(urls)),
            "{name}: its order {urls:?} has no OrderCreated Event ({:?})",
            announced.get(name)
        );
    }
    let abandoned: usize = announced
        .iter()
        .map(|(name, urls)| {
            urls.difference(issued.get(name).unwrap_or(&BTreeSet::new()))
                .count()
        })
        .sum();
    eprintln!("{abandoned} order(s) announced but never recorded (the kill)");
    for i in [0, BULK / 2, BULK - 1] {
        let text = verify_chain(ns, &format!("bulk-{i}-tls"));
        assert_eq!(
            sans(&text),
            BTreeSet::from([format!("bulk-{i}.{ns}.{zone}")])
        );
    }
    // The Deployment replaced the dead pod.
    wait_ready_pods(ns, 2, Duration::from_secs(120));
}

/// `helm upgrade` with a changed value rolls both pods; meanwhile no Certificate leaves Ready.
async fn upgrade_keeps_every_certificate_ready(ns: &str, certs: &Api<Certificate>) {
    let before: BTreeSet<String> = wait_ready_pods(ns, 2, Duration::from_secs(60))
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let not_ready: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = not_ready.clone();
    let api = certs.clone();
    let watch = tokio::spawn(async move {
        let mut s = watcher(api, watcher::Config::default())
            .applied_objects()
            .boxed();
        while let Some(event) = s.next().await {
            if let Ok(c) = event
                && ready_condition(&c).map(|r| r.0).as_deref() != Some("True")
            {
                sink.lock()
                    .unwrap()
                    .push(c.metadata.name.unwrap_or_default());
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let args = [
        "upgrade",
        RELEASE,
        CHART,
        "--namespace",
        ns,
        "--reuse-values",
        "--set",
        "controller.concurrency=3",
        "--wait",
        "--timeout",
        "180s",
    ];
    let started = Instant::now();
    helm_ok(&args);
    kubectl_ok(
        &[
            "rollout",
            "status",
            "-n",
            ns,
            &format!("deployment/{FULLNAME}"),
            "--timeout=120s",
        ],
        None,
    );
    let after: BTreeSet<String> = wait_ready_pods(ns, 2, Duration::from_secs(120))
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    eprintln!("helm upgrade rolled the pods in {:?}", started.elapsed());
    assert!(
        before.is_disjoint(&after),
        "the upgrade replaced the pods: {before:?} → {after:?}"
    );
    let deploy = kubectl_ok(
        &["get", "deployment", "-n", ns, FULLNAME, "-o", "json"],
        None,
    );
    assert!(
        deploy.contains("--concurrency=3"),
        "the new value is in the pods' args"
    );
    let started = Instant::now();
    while !after.contains(&lease_holder(ns)) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no new pod holds the Lease"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // A few more seconds for a new leader's first reconciles to show.
    tokio::time::sleep(Duration::from_secs(5)).await;
    watch.abort();
    let not_ready = not_ready.lock().unwrap().clone();
    assert!(
        not_ready.is_empty(),
        "Certificates left Ready during the upgrade: {not_ready:?}"
    );
}

/// `helm uninstall` removes the pods and the chart's objects but leaves the CRDs (keep policy),
/// the Certificates and their Secrets.
fn uninstall_keeps_crds_certificates_and_secrets(ns: &str) {
    helm_ok(&["uninstall", RELEASE, "--namespace", ns, "--wait"]);
    let started = Instant::now();
    while !pods(ns).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "pods left after helm uninstall"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let gone = kubectl(&["get", "deployment", "-n", ns, FULLNAME], None);
    assert!(!gone.status.success(), "the Deployment is gone");
    for crd in CRD_NAMES {
        kubectl_ok(&["get", "crd", crd], None);
    }
    let certs = kubectl_ok(
        &["get", "certificates.ferrocert.dev", "-n", ns, "-o", "name"],
        None,
    );
    let secrets = kubectl_ok(&["get", "secrets", "-n", ns, "-o", "name"], None);
    let mut names: Vec<String> = vec!["dns".into(), "web".into()];
    names.extend((0..BULK).map(|i| format!("bulk-{i}")));
    for name in &names {
        assert!(
            certs
                .lines()
                .any(|l| l == format!("certificate.ferrocert.dev/{name}")),
            "Certificate {name} is gone after helm uninstall: {certs}"
        );
        assert!(
            secrets.lines().any(|l| l == format!("secret/{name}-tls")),
            "Secret {name}-tls is gone after helm uninstall"
        );
    }
}

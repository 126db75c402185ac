//! DNS-01 through a cert-manager webhook solver: a real solver built on cert-manager's own webhook
//! server library (tests/env/webhook-solver/), run as an aggregated API server behind an
//! APIService; the controller POSTs its ChallengePayloads to the Kubernetes API server, whose
//! aggregator proxies them to the solver, which writes the TXT records into BIND over RFC 2136.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::e2e::{
    apply, client, controller, pebble_certificate, pebble_issuer, txt_records, verify_chain,
    wait_cert_failed, wait_cert_ready, wait_for, wait_issuer_ready,
};
use common::{env_var, fresh_namespace, kubectl, kubectl_ok};
use ferrocert::api::{Certificate, Issuer};
use kube::api::Api;
use serde_json::{Value, json};

/// The webhook solver of the test environment, with the TSIG secret it signs its updates with.
fn webhook_solver(tsig_secret: &str) -> Value {
    json!({"dns01": {"webhook": {
        "groupName": env_var("WEBHOOK_GROUP"),
        "solverName": env_var("WEBHOOK_SOLVER"),
        "config": {
            "nameserver": env_var("DNS_SERVER"),
            "tsigKeyName": env_var("TSIG_KEY_NAME"),
            "tsigAlgorithm": "hmac-sha256",
            "tsigSecret": tsig_secret
        }
    }}})
}

async fn namespace(prefix: &str, tsig_secret: &str) -> String {
    controller();
    let ns = fresh_namespace(prefix);
    apply(
        &ns,
        &pebble_issuer(
            "pebble",
            "pebble-account",
            json!({"solvers": [webhook_solver(tsig_secret)]}),
        ),
    );
    let issuers: Api<Issuer> = Api::namespaced(client().await, &ns);
    wait_issuer_ready(&issuers, "pebble").await;
    ns
}

fn label() -> String {
    format!("h{}", std::process::id())
}

#[tokio::test]
async fn a_wildcard_and_its_apex_through_the_aggregator_and_no_txt_left() {
    let ns = namespace("whwild", &env_var("TSIG_SECRET")).await;
    let apex = format!("w{}.{}", label(), env_var("TEST_ZONE"));
    apply(
        &ns,
        &pebble_certificate("wild", &[format!("*.{apex}"), apex.clone()], json!({})),
    );
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    wait_cert_ready(&certs, "wild", 1).await;
    let text = verify_chain(&ns, "wild-tls");
    assert!(
        text.contains(&format!("DNS:*.{apex}")) && text.contains(&format!("DNS:{apex}")),
        "{text}"
    );
    // The solver's clean-up removed both values.
    wait_for(
        "the TXT records removed",
        Duration::from_secs(10),
        || async {
            txt_records(&format!("_acme-challenge.{apex}"))
                .is_empty()
                .then_some(())
        },
    )
    .await;
    // The solver really was called through the aggregator: the API server's audit of the
    // APIService is not on here, so ask the solver's own log.
    let log = std::fs::read_to_string(env_var("WEBHOOK_SOLVER_LOG")).unwrap_or_default();
    assert!(
        log.contains(&format!("_acme-challenge.{apex}")),
        "the solver's log does not mention _acme-challenge.{apex}:\n{log}"
    );
}

#[tokio::test]
async fn a_solver_error_gives_ready_false_with_its_message() {
    // A valid-looking but wrong TSIG secret: BIND refuses the solver's update.
    let ns = namespace("whbad", "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=").await;
    let name = format!("bad{}.{}", label(), env_var("TEST_ZONE"));
    apply(&ns, &pebble_certificate("refused", &[name], json!({})));
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    let message = wait_cert_failed(&certs, "refused").await;
    assert!(
        message.contains("DNS webhook solver /apis/")
            && message.contains("failed the present")
            && message.contains("NOTAUTH, TSIG error BADSIG"),
        "{message}"
    );
}

#[tokio::test]
async fn an_unknown_solver_says_which_apiservice_is_missing() {
    controller();
    let ns = fresh_namespace("whmissing");
    let mut solver = webhook_solver(&env_var("TSIG_SECRET"));
    solver["dns01"]["webhook"]["groupName"] = json!("acme.nowhere.test");
    apply(
        &ns,
        &pebble_issuer("pebble", "pebble-account", json!({"solvers": [solver]})),
    );
    let issuers: Api<Issuer> = Api::namespaced(client().await, &ns);
    wait_issuer_ready(&issuers, "pebble").await;
    let name = format!("miss{}.{}", label(), env_var("TEST_ZONE"));
    apply(&ns, &pebble_certificate("missing", &[name], json!({})));
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    let message = wait_cert_failed(&certs, "missing").await;
    assert!(
        message.contains("APIService for acme.nowhere.test/v1alpha1"),
        "{message}"
    );
}

/// A hostile webhook solver behind its own APIService: discovery answers as a solver's does, so
/// the aggregator marks it Available; then `POST .../flood` streams an endless body and
/// `POST .../hang` never answers. TLS with a self-signed certificate (the APIService skips
/// verification); one thread per connection; every answer closes its connection.
struct HostileSolver {
    group: String,
    streamed: Arc<AtomicU64>,
    posts: Arc<Mutex<Vec<String>>>,
}

/// The discovery document of the hostile group.
fn hostile_discovery(group: &str) -> String {
    let resource = |name: &str| {
        json!({"name": name, "singularName": name, "namespaced": false,
               "kind": "ChallengePayload", "verbs": ["create"]})
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1",
           "groupVersion": format!("{group}/v1alpha1"),
           "resources": [resource("flood"), resource("hang")]})
    .to_string()
}

impl HostileSolver {
    async fn start() -> HostileSolver {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let ip = env_var("HTTP01_BACKEND_IP");
        let key = rcgen::generate_simple_self_signed(vec![ip.clone()]).unwrap();
        let config = Arc::new(
            rustls::ServerConfig::builder()
                .with_no_client_auth()
                .with_single_cert(
                    vec![key.cert.der().clone()],
                    rustls_pki_types::PrivateKeyDer::Pkcs8(key.signing_key.serialize_der().into()),
                )
                .unwrap(),
        );
        let listener = TcpListener::bind(format!("{ip}:0")).unwrap();
        let port = listener.local_addr().unwrap().port();
        let group = format!("acme{}.hostile.test", std::process::id());
        let streamed = Arc::new(AtomicU64::new(0));
        let posts = Arc::new(Mutex::new(Vec::new()));
        let (discovery, s, p) = (hostile_discovery(&group), streamed.clone(), posts.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (config, discovery, s, p) =
                    (config.clone(), discovery.clone(), s.clone(), p.clone());
                std::thread::spawn(move || {
                    let conn = rustls::ServerConnection::new(config).unwrap();
                    serve_hostile(rustls::StreamOwned::new(conn, stream), &discovery, &s, &p);
                });
            }
        });

        let namespace = fresh_namespace("whhostile");
        apply(
            &namespace,
            &json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hostile"},
                    "spec": {"ports": [{"name": "https", "port": 443, "targetPort": port}]}}),
        );
        apply(
            &namespace,
            &json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": {"name": "hostile", "labels": {"kubernetes.io/service-name": "hostile"}},
                    "addressType": "IPv4",
                    "endpoints": [{"addresses": [ip], "conditions": {"ready": true}}],
                    "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}),
        );
        let solver = HostileSolver {
            group: group.clone(),
            streamed,
            posts,
        };
        kubectl_ok(
            &["apply", "-f", "-"],
            Some(
                &json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
                        "metadata": {"name": format!("v1alpha1.{group}")},
                        "spec": {"group": group, "version": "v1alpha1",
                                 "service": {"name": "hostile", "namespace": namespace, "port": 443},
                                 "insecureSkipTLSVerify": true,
                                 "groupPriorityMinimum": 1000, "versionPriority": 15}})
                .to_string(),
            ),
        );
        wait_for(
            "the hostile APIService Available",
            Duration::from_secs(60),
            || async {
                let out = kubectl_ok(
                    &[
                        "get",
                        "apiservice",
                        &format!("v1alpha1.{group}"),
                        "-o",
                        "jsonpath={.status.conditions[?(@.type==\"Available\")].status}",
                    ],
                    None,
                );
                (out.trim() == "True").then_some(())
            },
        )
        .await;
        solver
    }
}

impl Drop for HostileSolver {
    fn drop(&mut self) {
        // An APIService left unavailable would trouble every later client's discovery.
        let _ = kubectl(
            &[
                "delete",
                "apiservice",
                &format!("v1alpha1.{}", self.group),
                "--ignore-not-found",
            ],
            None,
        );
    }
}

/// One connection: discovery is answered, `flood` streams up to 1 GiB, `hang` holds the
/// connection for two minutes.
fn serve_hostile(
    tls: rustls::StreamOwned<rustls::ServerConnection, TcpStream>,
    discovery: &str,
    streamed: &AtomicU64,
    posts: &Mutex<Vec<String>>,
) {
    let mut reader = BufReader::new(tls);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let out = reader.get_mut();
    let reply = |out: &mut rustls::StreamOwned<_, _>, status: &str, body: &str| {
        let _ = write!(
            out,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nConnection: close\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let _ = out.flush();
    };
    match method {
        "GET" if path.ends_with("/v1alpha1") => reply(out, "200 OK", discovery),
        "POST" if path.ends_with("/flood") => {
            posts.lock().unwrap().push("flood".into());
            // No length: the body runs until the connection closes.
            let _ = write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
            );
            let chunk = vec![b' '; 64 * 1024];
            for _ in 0..(1 << 14) {
                if out.write_all(&chunk).is_err() {
                    break;
                }
                streamed.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
        }
        "POST" if path.ends_with("/hang") => {
            posts.lock().unwrap().push("hang".into());
            std::thread::sleep(Duration::from_secs(120));
        }
        _ => reply(out, "404 Not Found", r#"{"kind":"Status","code":404}"#),
    }
}

/// The error recorded on a Certificate's order authorizations, once one mentions `needle`.
async fn authorization_error(certs: &Api<Certificate>, name: &str, needle: &str) -> String {
    wait_for(
        &format!("Certificate {name}: an authorization error with {needle:?}"),
        Duration::from_secs(60),
        || async {
            let c = certs.get(name).await.ok()?;
            c.status?
                .order?
                .authorizations
                .into_iter()
                .filter_map(|a| a.error)
                .find(|e| e.contains(needle))
        },
    )
    .await
}

/// A solver that floods its answer or never answers, reached through the aggregator: the flood
/// is cut at the 1 MiB body limit, the silence at the 30 s timeout; each is said on the
/// Certificate and tried again later, never read on or waited for without end.
#[tokio::test]
async fn a_flooding_or_silent_solver_is_cut_off_at_its_limits() {
    controller();
    let hostile = HostileSolver::start().await;
    let ns = fresh_namespace("whlimits");
    let issuers: Api<Issuer> = Api::namespaced(client().await, &ns);
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    for behaviour in ["flood", "hang"] {
        let mut solver = webhook_solver(&env_var("TSIG_SECRET"));
        solver["dns01"]["webhook"]["groupName"] = json!(hostile.group);
        solver["dns01"]["webhook"]["solverName"] = json!(behaviour);
        apply(
            &ns,
            &pebble_issuer(
                behaviour,
                &format!("{behaviour}-account"),
                json!({"solvers": [solver]}),
            ),
        );
        wait_issuer_ready(&issuers, behaviour).await;
        let mut cert = pebble_certificate(
            behaviour,
            &[format!("{behaviour}{}.{}", label(), env_var("TEST_ZONE"))],
            json!({}),
        );
        cert["spec"]["issuerRef"]["name"] = json!(behaviour);
        apply(&ns, &cert);
    }

    let flood = authorization_error(&certs, "flood", "larger than the limit").await;
    assert!(
        flood.contains("DNS webhook solver /apis/")
            && flood.contains("1 MiB")
            && flood.contains("trying again"),
        "{flood}"
    );
    let streamed = hostile.streamed.load(Ordering::Relaxed);
    eprintln!("flood: {streamed} bytes streamed before the controller hung up; {flood}");
    assert!(
        streamed < 256 << 20,
        "the controller read on: {streamed} bytes streamed of 1 GiB offered"
    );
    // Tried again within the attempt, backing off: about 2 s, then 4 s (±20%).
    let first_seen = std::time::Instant::now();
    let third = authorization_error(&certs, "flood", "(try 3 of 12)").await;
    let waited = first_seen.elapsed();
    assert!(
        waited >= Duration::from_secs(4),
        "three tries within {waited:?} of the first: {third}"
    );
    let floods = hostile
        .posts
        .lock()
        .unwrap()
        .iter()
        .filter(|p| *p == "flood")
        .count();
    assert!((3..=4).contains(&floods), "{floods} tries to write");

    let hang = authorization_error(&certs, "hang", "did not answer within 30s").await;
    assert!(
        hang.contains("DNS webhook solver /apis/") && hang.contains("trying again"),
        "{hang}"
    );
    eprintln!("hang: {hang}");
    let posts = hostile.posts.lock().unwrap().clone();
    assert!(
        posts.contains(&"flood".to_string()) && posts.contains(&"hang".to_string()),
        "the solver saw {posts:?}"
    );
    drop(hostile);
}

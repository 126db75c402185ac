//! End-to-end: tenants whose Issuers point at hostile ACME servers (issue 12). The hostile servers
//! are our own, small and deliberately broken: they register accounts like a CA, then answer
//! `newOrder` by hanging, by streaming a body that never ends, with 429 and `Retry-After`, or with
//! garbage. Each case checks a clear status, bounded memory, no tight loop (requests counted at the
//! hostile server) and that another tenant's Certificate, on Pebble, still issues in its normal
//! time through the same controller (the real API server, Pebble and Traefik as everywhere).

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine;
use common::e2e::{
    ControllerProcess, apply, backend_listen, client, pebble_certificate, pebble_issuer,
    ready_condition, start_controller_with, verify_chain, wait_cert_ready, wait_for,
    wait_issuer_ready,
};
use common::{env_var, fresh_namespace};
use ferrocert::api::{Certificate, Issuer};
use kube::api::Api;
use serde_json::{Value, json};

/// Two reconcile workers: as many as the hung CAs of the first test.
const CONCURRENCY: &str = "2";

/// This binary's controller: two workers, failures back off from 2 s doubling to 16 s.
fn controller() -> &'static ControllerProcess {
    static C: OnceLock<ControllerProcess> = OnceLock::new();
    C.get_or_init(|| {
        start_controller_with(
            "hostile",
            &backend_listen(),
            &["--concurrency", CONCURRENCY],
            &[],
        )
    })
}

/// How a hostile server answers `newOrder` (everything before it is a plausible CA).
#[derive(Clone, Copy, Debug)]
enum Misbehaviour {
    /// Reads the request and never answers.
    Hang,
    /// Answers 200 and streams a JSON-looking body that never ends.
    Stream,
    /// 429 `rateLimited` with `Retry-After: 120`.
    RateLimited,
    /// 200 with a body that is not JSON.
    Garbage,
    /// 429 with `Retry-After: 120` for the first account registered; the others get garbage.
    RateLimitFirstAccount,
    /// A pending order whose authorizations are for the name asked and [`FOREIGN_NAMES`] others
    /// (names of another tenant, say), each with an HTTP-01 challenge.
    ForeignAuthorizations,
    /// A ready order for the name asked (its authorization valid); finalized, a certificate for
    /// the key of the CSR but for [`FOREIGN_NAME`] instead of the name asked.
    ForeignCertificate,
}

/// How many names never asked [`Misbehaviour::ForeignAuthorizations`] adds to an order.
const FOREIGN_NAMES: usize = 50;

/// The name [`Misbehaviour::ForeignCertificate`] issues for.
const FOREIGN_NAME: &str = "victim.other-tenant.example";

/// What a hostile server remembers of its order: the names asked, the chain issued.
#[derive(Default)]
struct OrderMemo {
    asked: Vec<String>,
    chain: Option<String>,
}

/// A hostile ACME server on 127.0.0.1: TLS with its own self-signed certificate, one thread per
/// connection, counting requests by path and the body bytes it streamed.
struct HostileCa {
    port: u16,
    ca_bundle: String,
    requests: Arc<Mutex<HashMap<String, usize>>>,
    streamed: Arc<AtomicU64>,
    /// When the requests of `requests` came, by path (for the order tests' timing).
    times: Arc<Mutex<Vec<(String, Instant)>>>,
}

impl HostileCa {
    fn start(misbehaviour: Misbehaviour) -> HostileCa {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let cert_pem = key.cert.pem();
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![key.cert.der().clone()],
                rustls_pki_types::PrivateKeyDer::Pkcs8(key.signing_key.serialize_der().into()),
            )
            .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(HashMap::new()));
        let streamed = Arc::new(AtomicU64::new(0));
        let times = Arc::new(Mutex::new(Vec::new()));
        let memo = Arc::new(Mutex::new(Vec::new()));
        let (r, s, t) = (requests.clone(), streamed.clone(), times.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (config, r, s, t, m) = (
                    config.clone(),
                    r.clone(),
                    s.clone(),
                    t.clone(),
                    memo.clone(),
                );
                std::thread::spawn(move || {
                    let conn = rustls::ServerConnection::new(config).unwrap();
                    let tls = rustls::StreamOwned::new(conn, stream);
                    let counters = Counters {
                        requests: &r,
                        streamed: &s,
                        times: &t,
                        memo: &m,
                    };
                    serve(tls, port, misbehaviour, &counters);
                });
            }
        });
        HostileCa {
            port,
            ca_bundle: base64::engine::general_purpose::STANDARD.encode(cert_pem),
            requests,
            streamed,
            times,
        }
    }

    /// Requests whose path starts with `prefix`.
    fn count_prefix(&self, prefix: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(path, _)| path.starts_with(prefix))
            .map(|(_, n)| n)
            .sum()
    }

    /// When the orders for `names` (comma-separated, as asked) were created.
    fn orders_for(&self, names: &str) -> Vec<Instant> {
        let key = format!("newOrder {names}");
        let times = self.times.lock().unwrap();
        times
            .iter()
            .filter(|(p, _)| *p == key)
            .map(|(_, t)| *t)
            .collect()
    }

    fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.port)
    }

    fn count(&self, path: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

/// The protected header of a JWS request body.
fn protected_header(body: &[u8]) -> Value {
    let jws: Value = serde_json::from_slice(body).unwrap_or_default();
    let protected = jws["protected"].as_str().unwrap_or_default();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(protected)
        .unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or_default()
}

/// The account (`kid`) that signed a request.
fn signed_by(body: &[u8]) -> String {
    protected_header(body)["kid"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A stable number per account key (its JWK's `x` coordinate) at the server on `port`, in order
/// of first registration there.
fn account_number(port: u16, body: &[u8]) -> usize {
    static KEYS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    let x = format!(
        "{port} {}",
        protected_header(body)["jwk"]["x"]
            .as_str()
            .unwrap_or_default()
    );
    let mut keys = KEYS.get_or_init(Default::default).lock().unwrap();
    if !keys.contains(&x) {
        keys.push(x.clone());
    }
    let here = format!("{port} ");
    keys.iter()
        .filter(|k| k.starts_with(&here))
        .position(|k| *k == x)
        .map_or(0, |i| i + 1)
}

/// The JSON payload of a JWS request body.
fn payload(body: &[u8]) -> Value {
    let jws: Value = serde_json::from_slice(body).unwrap_or_default();
    let payload = jws["payload"].as_str().unwrap_or_default();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or_default()
}

/// What one connection of a hostile server updates.
struct Counters<'a> {
    requests: &'a Mutex<HashMap<String, usize>>,
    streamed: &'a AtomicU64,
    times: &'a Mutex<Vec<(String, Instant)>>,
    memo: &'a Mutex<Vec<OrderMemo>>,
}

/// Order `n` of [`Misbehaviour::ForeignAuthorizations`] or [`Misbehaviour::ForeignCertificate`]
/// (its URLs are `{base}/order/{n}`, `{base}/authz/{n}/{i}`, `{base}/finalize/{n}`...).
fn order_json(base: &str, misbehaviour: Misbehaviour, memo: &OrderMemo, n: usize) -> Value {
    let (authz, finalize) = (format!("{base}/authz/{n}"), format!("{base}/finalize/{n}"));
    match misbehaviour {
        Misbehaviour::ForeignAuthorizations => json!({
            "status": "pending",
            "authorizations": (0..=FOREIGN_NAMES).map(|i| format!("{authz}/{i}")).collect::<Vec<_>>(),
            "finalize": finalize,
        }),
        _ => match &memo.chain {
            Some(_) => json!({
                "status": "valid",
                "authorizations": [format!("{authz}/0")],
                "finalize": finalize,
                "certificate": format!("{base}/cert/{n}"),
            }),
            None => json!({
                "status": "ready",
                "authorizations": [format!("{authz}/0")],
                "finalize": finalize,
            }),
        },
    }
}

/// The order number and the rest of a path `{prefix}{n}` or `{prefix}{n}/{rest}`.
fn numbered<'p>(path: &'p str, prefix: &str) -> Option<(usize, &'p str)> {
    let rest = path.strip_prefix(prefix)?;
    let (n, rest) = rest.split_once('/').unwrap_or((rest, ""));
    Some((n.parse().ok()?, rest))
}

/// Authorization `i`: the first name asked for 0, a name never asked for the others.
fn authz_json(base: &str, misbehaviour: Misbehaviour, memo: &OrderMemo, i: usize) -> Value {
    let name = match i {
        0 => memo.asked.first().cloned().unwrap_or_default(),
        _ => format!("victim{i}.other-tenant.example"),
    };
    let status = match misbehaviour {
        Misbehaviour::ForeignCertificate => "valid",
        _ => "pending",
    };
    json!({
        "identifier": {"type": "dns", "value": name},
        "status": status,
        "challenges": [{
            "type": "http-01",
            "url": format!("{base}/chall/{i}"),
            "token": format!("hostiletoken{i:04}abcdefghijklmnopqrstuvwxyz"),
            "status": if status == "valid" { "valid" } else { "pending" },
        }],
    })
}

/// A certificate chain (leaf, then a CA of its own) for the public key of `csr_der` but for
/// [`FOREIGN_NAME`] alone.
fn foreign_chain(csr_der: &[u8]) -> String {
    let mut csr = rcgen::CertificateSigningRequestParams::from_der(&csr_der.to_vec().into())
        .expect("a CSR that parses");
    csr.params.subject_alt_names = vec![rcgen::SanType::DnsName(FOREIGN_NAME.try_into().unwrap())];
    csr.params.distinguished_name = rcgen::DistinguishedName::new();
    csr.params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    csr.params.not_after = rcgen::date_time_ymd(2035, 1, 1);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "Hostile Test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let leaf = csr.signed_by(&issuer).unwrap();
    format!("{}{}", leaf.pem(), ca_cert.pem())
}

/// Serves one keep-alive connection.
fn serve(
    tls: rustls::StreamOwned<rustls::ServerConnection, TcpStream>,
    port: u16,
    misbehaviour: Misbehaviour,
    counters: &Counters<'_>,
) {
    let Counters {
        requests,
        streamed,
        times,
        memo,
    } = counters;
    let mut reader = BufReader::new(tls);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            if header == "\r\n" {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        *requests.lock().unwrap().entry(path.clone()).or_insert(0) += 1;
        times.lock().unwrap().push((path.clone(), Instant::now()));
        let base = format!("https://127.0.0.1:{port}");
        let nonce = format!("n{}", rand::random::<u64>());
        let out = reader.get_mut();
        let reply = |out: &mut rustls::StreamOwned<_, _>, status: &str, extra: &str, body: &str| {
            let _ = write!(
                out,
                "HTTP/1.1 {status}\r\nReplay-Nonce: {nonce}\r\nCache-Control: no-store\r\n{extra}Content-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = out.flush();
        };
        match (method.as_str(), path.as_str()) {
            ("GET", "/dir") => {
                let dir = json!({
                    "newNonce": format!("{base}/nonce"),
                    "newAccount": format!("{base}/acct"),
                    "newOrder": format!("{base}/order"),
                    "revokeCert": format!("{base}/revoke"),
                    "keyChange": format!("{base}/key-change"),
                });
                reply(
                    out,
                    "200 OK",
                    "Content-Type: application/json\r\n",
                    &dir.to_string(),
                );
            }
            (_, "/nonce") => reply(out, "200 OK", "", ""),
            ("POST", "/acct") => reply(
                out,
                "201 Created",
                &format!(
                    "Content-Type: application/json\r\nLocation: {base}/acct/{}\r\n",
                    account_number(port, &body)
                ),
                r#"{"status":"valid","contact":[]}"#,
            ),
            ("POST", "/order")
                if matches!(
                    misbehaviour,
                    Misbehaviour::ForeignAuthorizations | Misbehaviour::ForeignCertificate
                ) =>
            {
                let asked: Vec<String> = payload(&body)["identifiers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|id| id["value"].as_str().map(str::to_string))
                    .collect();
                times
                    .lock()
                    .unwrap()
                    .push((format!("newOrder {}", asked.join(",")), Instant::now()));
                let mut memo = memo.lock().unwrap();
                memo.push(OrderMemo { asked, chain: None });
                let n = memo.len() - 1;
                let order = order_json(&base, misbehaviour, &memo[n], n);
                reply(
                    out,
                    "201 Created",
                    &format!("Content-Type: application/json\r\nLocation: {base}/order/{n}\r\n"),
                    &order.to_string(),
                );
            }
            ("POST", p) if numbered(p, "/order/").is_some() => {
                let (n, _) = numbered(p, "/order/").unwrap_or_default();
                let memo = memo.lock().unwrap();
                let order = order_json(&base, misbehaviour, &memo[n], n);
                reply(
                    out,
                    "200 OK",
                    "Content-Type: application/json\r\n",
                    &order.to_string(),
                );
            }
            ("POST", p) if numbered(p, "/authz/").is_some() => {
                let (n, i) = numbered(p, "/authz/").unwrap_or_default();
                let memo = memo.lock().unwrap();
                let authz = authz_json(&base, misbehaviour, &memo[n], i.parse().unwrap_or(0));
                reply(
                    out,
                    "200 OK",
                    "Content-Type: application/json\r\n",
                    &authz.to_string(),
                );
            }
            ("POST", p) if numbered(p, "/finalize/").is_some() => {
                let (n, _) = numbered(p, "/finalize/").unwrap_or_default();
                let csr = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(payload(&body)["csr"].as_str().unwrap_or_default())
                    .unwrap_or_default();
                let mut memo = memo.lock().unwrap();
                memo[n].chain = Some(foreign_chain(&csr));
                let order = order_json(&base, misbehaviour, &memo[n], n);
                reply(
                    out,
                    "200 OK",
                    &format!("Content-Type: application/json\r\nLocation: {base}/order/{n}\r\n"),
                    &order.to_string(),
                );
            }
            ("POST", p) if numbered(p, "/cert/").is_some() => {
                let (n, _) = numbered(p, "/cert/").unwrap_or_default();
                let chain = memo.lock().unwrap()[n].chain.clone().unwrap_or_default();
                reply(
                    out,
                    "200 OK",
                    "Content-Type: application/pem-certificate-chain\r\n",
                    &chain,
                );
            }
            ("POST", "/order") => match misbehaviour {
                Misbehaviour::Hang => loop {
                    std::thread::park();
                },
                Misbehaviour::Stream => {
                    let _ = write!(
                        out,
                        "HTTP/1.1 200 OK\r\nReplay-Nonce: {nonce}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                    );
                    let chunk = vec![b' '; 64 * 1024];
                    loop {
                        let head = format!("{:x}\r\n", chunk.len());
                        if out.write_all(head.as_bytes()).is_err()
                            || out.write_all(&chunk).is_err()
                            || out.write_all(b"\r\n").is_err()
                        {
                            return;
                        }
                        streamed.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    }
                }
                Misbehaviour::RateLimitFirstAccount if signed_by(&body).ends_with("/acct/1") => {
                    reply(
                        out,
                        "429 Too Many Requests",
                        "Content-Type: application/problem+json\r\nRetry-After: 120\r\n",
                        r#"{"type":"urn:ietf:params:acme:error:rateLimited","detail":"too many new orders for this account (hostile test CA)","status":429}"#,
                    )
                }
                Misbehaviour::RateLimitFirstAccount => reply(
                    out,
                    "200 OK",
                    "Content-Type: application/json\r\n",
                    "not an order",
                ),
                Misbehaviour::RateLimited => reply(
                    out,
                    "429 Too Many Requests",
                    "Content-Type: application/problem+json\r\nRetry-After: 120\r\n",
                    r#"{"type":"urn:ietf:params:acme:error:rateLimited","detail":"too many new orders for this account (hostile test CA)","status":429}"#,
                ),
                Misbehaviour::Garbage
                | Misbehaviour::ForeignAuthorizations
                | Misbehaviour::ForeignCertificate => reply(
                    out,
                    "200 OK",
                    "Content-Type: application/json\r\n",
                    "<html><body>surprise</body></html>",
                ),
            },
            _ => reply(out, "404 Not Found", "", ""),
        }
    }
}

/// A namespace whose Issuer `hostile` registers at `ca` and is Ready.
async fn tenant_of(prefix: &str, ca: &HostileCa) -> String {
    controller();
    let ns = fresh_namespace(prefix);
    apply(
        &ns,
        &json!({
            "apiVersion": "ferrocert.dev/v1alpha1",
            "kind": "Issuer",
            "metadata": {"name": "hostile"},
            "spec": {"acme": {
                "server": ca.directory(),
                "caBundle": ca.ca_bundle,
                "privateKeySecretRef": {"name": "hostile-account"},
                "solvers": [{"http01": {"ingress": {"ingressClassName": env_var("INGRESS_CLASS")}}}]
            }}
        }),
    );
    let issuers: Api<Issuer> = Api::namespaced(client().await, &ns);
    wait_issuer_ready(&issuers, "hostile").await;
    ns
}

fn hostile_certificate(name: &str) -> Value {
    let mut doc = pebble_certificate(
        name,
        &[format!("{name}.{}", env_var("TEST_ZONE"))],
        json!({}),
    );
    doc["spec"]["issuerRef"]["name"] = json!("hostile");
    doc
}

/// The Issuing condition's message once it mentions `text`.
async fn issuing_message_with(ns: &str, name: &str, text: &str, within: Duration) -> String {
    let api: Api<Certificate> = Api::namespaced(client().await, ns);
    wait_for(
        &format!("Certificate {ns}/{name} to say {text:?}"),
        within,
        || async {
            let cert = api.get(name).await.ok()?;
            let conditions = cert.status.as_ref()?.conditions.clone();
            conditions
                .iter()
                .find(|c| c.type_ == "Issuing" && c.status == "False")
                .map(|c| c.message.clone())
                .filter(|m| m.contains(text))
        },
    )
    .await
}

/// Another tenant's Certificate on Pebble: issued, verified against Pebble's root, and how long it
/// took from creation to Ready.
async fn an_unrelated_tenant_issues(prefix: &str) -> Duration {
    let ns = fresh_namespace(prefix);
    apply(&ns, &pebble_issuer("pebble", "pebble-account", json!({})));
    let issuers: Api<Issuer> = Api::namespaced(client().await, &ns);
    wait_issuer_ready(&issuers, "pebble").await;
    let host = format!("{prefix}.{}", env_var("TEST_ZONE"));
    let started = Instant::now();
    apply(&ns, &pebble_certificate("web", &[host.as_str()], json!({})));
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    wait_cert_ready(&certs, "web", 1).await;
    let took = started.elapsed();
    verify_chain(&ns, "web-tls"); // asserts that it verifies against Pebble's root
    delete_namespace(&ns);
    took
}

/// Deletes a test namespace without waiting (its Certificates point at servers that die with the
/// test process).
fn delete_namespace(ns: &str) {
    common::kubectl(&["delete", "namespace", ns, "--wait=false"], None);
}

/// Runs the tests of this binary one at a time: they share two workers, and a hung CA holds one
/// for the whole request timeout the first time it is met, which would skew the others' counts.
async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: OnceLock<tokio::sync::Mutex<()>> = OnceLock::new();
    LOCK.get_or_init(|| tokio::sync::Mutex::new(()))
        .lock()
        .await
}

/// The controller's peak resident memory (VmHWM), in MiB.
fn peak_rss_mib(c: &ControllerProcess) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", c.pid)).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib / 1024.0
}

#[tokio::test(flavor = "multi_thread")]
async fn hung_cas_do_not_stop_another_tenants_issuance() {
    let _serial = one_at_a_time().await;
    // As many hung CAs (distinct servers) as the controller has workers.
    let hung: Vec<HostileCa> = (0..2)
        .map(|_| HostileCa::start(Misbehaviour::Hang))
        .collect();
    let mut tenants = Vec::new();
    for (i, ca) in hung.iter().enumerate() {
        let ns = tenant_of(&format!("hang{i}"), ca).await;
        apply(&ns, &hostile_certificate("stuck"));
        tenants.push(ns);
    }
    // Each hung request ends at the total timeout (30 s) with a message that says so.
    for ns in &tenants {
        let message = issuing_message_with(
            ns,
            "stuck",
            "no complete answer within 30s",
            Duration::from_secs(60),
        )
        .await;
        assert!(message.contains("creating the order failed"), "{message}");
        assert!(message.contains("POST /order"), "{message}");
    }
    // From now on the hung servers are rested: another Certificate of theirs fails at once
    // without holding a worker, and the unrelated tenant issues in its normal time.
    let started = Instant::now();
    apply(&tenants[0], &hostile_certificate("second"));
    let message =
        issuing_message_with(&tenants[0], "second", "not asked", Duration::from_secs(10)).await;
    assert!(message.contains("127.0.0.1"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let took = an_unrelated_tenant_issues("calm").await;
    eprintln!("with two hung CAs resting, another tenant issued in {took:?}");
    assert!(took < Duration::from_secs(20), "issuance took {took:?}");
    // No tight loop: each hung server was asked for one order, then rested (1 min).
    for ca in &hung {
        assert_eq!(ca.count("/order"), 1, "newOrder requests");
    }
    tenants.iter().for_each(|ns| delete_namespace(ns));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ca_streaming_forever_is_cut_off_and_memory_stays_bounded() {
    let _serial = one_at_a_time().await;
    let ca = HostileCa::start(Misbehaviour::Stream);
    let ns = tenant_of("stream", &ca).await;
    apply(&ns, &hostile_certificate("flooded"));
    let message = issuing_message_with(
        &ns,
        "flooded",
        "larger than the limit of 1 MiB",
        Duration::from_secs(30),
    )
    .await;
    assert!(message.contains("POST /order"), "{message}");
    // Let it retry (backoff 2 s, 4 s, 8 s...) for a while.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let orders = ca.count("/order");
    assert!(
        (2..=5).contains(&orders),
        "newOrder requests in ~14 s: {orders}"
    );
    // Each attempt reads at most the limit plus a chunk (the rest stays in socket buffers).
    let streamed = ca.streamed.load(Ordering::Relaxed) as f64 / 1024.0 / 1024.0;
    assert!(
        streamed < orders as f64 * 16.0,
        "{streamed:.1} MiB streamed over {orders} attempts"
    );
    let rss = peak_rss_mib(controller());
    eprintln!(
        "streaming CA: {orders} newOrder requests, {streamed:.1} MiB sent, peak RSS {rss:.1} MiB"
    );
    assert!(rss < 100.0, "peak RSS {rss:.1} MiB");
    let cert: Api<Certificate> = Api::namespaced(client().await, &ns);
    let ready = ready_condition(&cert.get("flooded").await.unwrap()).unwrap();
    assert_eq!(ready.0, "False", "{ready:?}");
    delete_namespace(&ns);
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limits_and_garbage_get_a_clear_status_and_back_off() {
    let _serial = one_at_a_time().await;
    let limited = HostileCa::start(Misbehaviour::RateLimited);
    let garbage = HostileCa::start(Misbehaviour::Garbage);
    let ns_limited = tenant_of("limited", &limited).await;
    let ns_garbage = tenant_of("garbage", &garbage).await;
    apply(&ns_limited, &hostile_certificate("limited"));
    apply(&ns_garbage, &hostile_certificate("garbage"));

    let message = issuing_message_with(
        &ns_limited,
        "limited",
        "too many new orders for this account",
        Duration::from_secs(20),
    )
    .await;
    // A rate limit waits the CA's Retry-After (120 s) and at least 5 min (plus up to 20%
    // jitter), not the 2 s test backoff; the conditions say RateLimited.
    let next = message
        .split("next try at ")
        .nth(1)
        .and_then(|t| t.trim_end_matches(')').parse::<jiff::Timestamp>().ok())
        .unwrap_or_else(|| panic!("no next try in {message}"));
    let wait = next.duration_since(jiff::Timestamp::now()).as_secs();
    assert!(
        (290..=365).contains(&wait),
        "next try in {wait} s: {message}"
    );
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns_limited);
    let ready = ready_condition(&certs.get("limited").await.unwrap()).unwrap();
    assert_eq!(ready.1, "RateLimited", "{ready:?}");

    let message = issuing_message_with(
        &ns_garbage,
        "garbage",
        "creating the order failed",
        Duration::from_secs(20),
    )
    .await;
    assert!(!message.is_empty());
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        limited.count("/order"),
        1,
        "the rate-limited CA was asked again"
    );
    let garbage_orders = garbage.count("/order");
    assert!(
        (2..=5).contains(&garbage_orders),
        "newOrder requests to the garbage CA in ~12 s: {garbage_orders}"
    );
    delete_namespace(&ns_limited);
    delete_namespace(&ns_garbage);
}

/// A DNS server on 127.0.0.1 that answers every UDP query with the query's id followed by
/// garbage, and every TCP connection with a length prefix promising 64 KiB it never sends.
/// Returns its address and the number of UDP queries it received.
fn garbage_nameserver() -> (String, Arc<AtomicU64>) {
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = udp.local_addr().unwrap();
    let tcp = TcpListener::bind(addr).unwrap();
    let queries = Arc::new(AtomicU64::new(0));
    let counted = queries.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok((n, from)) = udp.recv_from(&mut buf) {
            counted.fetch_add(1, Ordering::Relaxed);
            let mut answer = buf[..n.min(2)].to_vec();
            // QR set, then counts that promise far more records than follow.
            answer.extend_from_slice(&[0x80, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00, 0x01]);
            answer.extend(std::iter::repeat_n(0xc0, 40));
            let _ = udp.send_to(&answer, from);
        }
    });
    std::thread::spawn(move || {
        for stream in tcp.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let _ = stream.write_all(&[0xff, 0xff, 0xc0, 0x0c]);
                std::thread::sleep(Duration::from_secs(300));
            });
        }
    });
    (addr.to_string(), queries)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_nameserver_answering_garbage_gets_a_clear_status_and_no_tight_loop() {
    let _serial = one_at_a_time().await;
    controller();
    let (server, queries) = garbage_nameserver();
    let ns = fresh_namespace("baddns");
    common::e2e::create_tsig_secret(&ns);
    apply(
        &ns,
        &pebble_issuer(
            "pebble",
            "pebble-account",
            json!({"solvers": [{"dns01": {"rfc2136": {
                "nameserver": server,
                "tsigKeyName": env_var("TSIG_KEY_NAME"),
                "tsigAlgorithm": "HMACSHA256",
                "tsigSecretSecretRef": {"name": "tsig", "key": "secret"}
            }}}]}),
        ),
    );
    let issuers: Api<Issuer> = Api::namespaced(client().await, &ns);
    wait_issuer_ready(&issuers, "pebble").await;
    let name = format!("baddns-{}.{}", std::process::id(), env_var("TEST_ZONE"));
    apply(&ns, &pebble_certificate("web", &[name.as_str()], json!({})));
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    let message = wait_for("Ready=False", Duration::from_secs(60), || async {
        let c = certs.get("web").await.ok()?;
        ready_condition(&c)
            .filter(|(s, _, _)| s == "False")
            .map(|(_, _, m)| m)
            .filter(|m| m.contains(&server))
    })
    .await;
    eprintln!("garbage nameserver: {message}");
    tokio::time::sleep(Duration::from_secs(10)).await;
    let asked = queries.load(Ordering::Relaxed);
    assert!(asked < 60, "{asked} queries to the garbage nameserver");
    assert!(
        common::e2e::ureq_get(&format!("http://{}/healthz", controller().metrics)).is_some(),
        "the controller is not healthy"
    );
    delete_namespace(&ns);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_accounts_rate_limit_does_not_hold_back_another_account_on_the_same_ca() {
    let _serial = one_at_a_time().await;
    let ca = HostileCa::start(Misbehaviour::RateLimitFirstAccount);
    let limited = tenant_of("acct1", &ca).await;
    apply(&limited, &hostile_certificate("limited"));
    let message = issuing_message_with(
        &limited,
        "limited",
        "too many new orders",
        Duration::from_secs(20),
    )
    .await;
    assert!(message.contains("next try at"), "{message}");
    // Another tenant's account on the same CA host: its failures back off on their own schedule
    // (2 s in the tests), not the first account's Retry-After.
    let other = tenant_of("acct2", &ca).await;
    apply(&other, &hostile_certificate("other"));
    let first = issuing_message_with(&other, "other", "attempt 1;", Duration::from_secs(20)).await;
    assert!(!first.contains("rateLimited"), "{first}");
    issuing_message_with(&other, "other", "attempt 2;", Duration::from_secs(20)).await;
    assert!(ca.count("/order") >= 3, "orders: {}", ca.count("/order"));
    delete_namespace(&limited);
    delete_namespace(&other);
}

/// The Certificate `name` of `ns` once its `Ready` and `Issuing` conditions have the reason
/// `CAMisbehaved` (`Ready` only when `ready_too`), with the Issuing message.
async fn misbehaved(ns: &str, name: &str, ready_too: bool) -> (Certificate, String) {
    let api: Api<Certificate> = Api::namespaced(client().await, ns);
    wait_for(
        &format!("Certificate {ns}/{name} to say CAMisbehaved"),
        Duration::from_secs(40),
        || async {
            let cert = api.get(name).await.ok()?;
            let status = cert.status.as_ref()?;
            let issuing = status
                .conditions
                .iter()
                .find(|c| c.type_ == "Issuing" && c.status == "False")?;
            let ready = ready_condition(&cert)?;
            let ready_ok = !ready_too || (ready.0 == "False" && ready.1 == "CAMisbehaved");
            (issuing.reason == "CAMisbehaved" && ready_ok)
                .then(|| (cert.clone(), issuing.message.clone()))
        },
    )
    .await
}

/// The Secret `name` of `ns` as `(resourceVersion, tls.crt)`, `None` when it does not exist.
async fn secret_state(ns: &str, name: &str) -> Option<(String, Vec<u8>)> {
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client().await, ns);
    let secret = secrets.get_opt(name).await.unwrap()?;
    let crt = secret
        .data
        .as_ref()
        .and_then(|d| d.get("tls.crt"))
        .map(|b| b.0.clone())
        .unwrap_or_default();
    Some((secret.metadata.resource_version.unwrap_or_default(), crt))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ca_listing_authorizations_for_names_never_asked_gets_nothing_presented() {
    let _serial = one_at_a_time().await;
    // An order for one name with authorizations for 50 more, never asked.
    let greedy = HostileCa::start(Misbehaviour::ForeignAuthorizations);
    let ns = tenant_of("greedy", &greedy).await;
    apply(&ns, &hostile_certificate("greedy"));
    let (_, message) = misbehaved(&ns, "greedy", true).await;
    eprintln!("order with foreign authorizations: {message}");
    assert!(
        message.contains("lists 51 authorization(s) for the 1 name(s) asked"),
        "{message}"
    );
    // Let it retry (backoff 2 s, 4 s, 8 s...) for a while.
    tokio::time::sleep(Duration::from_secs(12)).await;
    // No authorization was even fetched, nothing presented for any name.
    assert_eq!(greedy.count_prefix("/authz/"), 0, "authorizations fetched");
    assert_eq!(greedy.count_prefix("/chall/"), 0, "challenges answered");
    let objects = common::e2e::solver_objects(&ns);
    assert!(objects.trim().is_empty(), "solver objects: {objects}");
    let ingresses = common::kubectl_ok(&["get", "ingress", "-n", &ns, "-o", "name"], None);
    assert!(ingresses.trim().is_empty(), "ingresses: {ingresses}");
    assert_eq!(secret_state(&ns, "greedy-tls").await, None);
    backs_off(&greedy, &format!("greedy.{}", env_var("TEST_ZONE")));
    delete_namespace(&ns);
}

/// No tight loop: each failure backs off (2 s, doubling): a few orders for `name` in the ~15 s
/// since the first, seconds apart.
fn backs_off(ca: &HostileCa, name: &str) {
    let orders = ca.orders_for(name);
    let gaps: Vec<Duration> = orders.windows(2).map(|w| w[1] - w[0]).collect();
    eprintln!("{name}: {} orders, {gaps:?} apart", orders.len());
    assert!(
        (2..=5).contains(&orders.len()),
        "{name}: {} orders",
        orders.len()
    );
    // The test controller's backoff (2 s, doubling, ±20%) counts from the failure time as
    // status keeps it (whole seconds), so the first wait can look as short as 0.6 s: never back
    // to back, and growing.
    assert!(
        gaps.iter().all(|g| *g > Duration::from_millis(500)),
        "{name}: orders {gaps:?} apart"
    );
    assert!(
        gaps.windows(2).all(|w| w[1] > w[0]),
        "{name}: the waits between orders grow: {gaps:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_for_names_never_asked_is_a_failure_and_never_stored() {
    let _serial = one_at_a_time().await;
    // The order is ready at once; the certificate is for our key but for another tenant's name.
    let forger = HostileCa::start(Misbehaviour::ForeignCertificate);
    let ns = tenant_of("forger", &forger).await;
    apply(&ns, &hostile_certificate("forger"));
    let (_, message) = misbehaved(&ns, "forger", true).await;
    eprintln!("certificate for foreign names: {message}");
    assert!(
        message.contains(&format!("names never asked: {FOREIGN_NAME}")),
        "{message}"
    );
    let asked = format!("forger.{}", env_var("TEST_ZONE"));
    assert!(
        message.contains(&format!("names missing: {asked}")),
        "{message}"
    );
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert!(
        forger.count_prefix("/cert/") >= 1,
        "the chain was downloaded"
    );
    // Never stored: no Secret (the key waits in the next-key Secret), and no success recorded.
    assert_eq!(secret_state(&ns, "forger-tls").await, None);
    let api: Api<Certificate> = Api::namespaced(client().await, &ns);
    let cert = api.get("forger").await.unwrap();
    let status = cert.status.unwrap_or_default();
    assert!(
        status.not_after.is_none(),
        "no certificate recorded: {:?}",
        status.not_after
    );
    assert!(
        status.failed_issuance_attempts.unwrap_or(0) >= 2,
        "failures keep counting"
    );
    backs_off(&forger, &asked);
    delete_namespace(&ns);
}

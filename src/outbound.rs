//! Limits on every request ferrocert makes to a server outside the cluster: the ACME CA
//! (directory, nonces, orders, certificates, ARI renewal windows, alternate chains), the
//! Cloudflare API, Route53 and STS.
//!
//! Those servers are chosen by tenants (an Issuer's `server` may point anywhere) or are simply
//! out of our hands, and without limits one of them can take the controller down for everyone:
//! a server that accepts the connection and never answers holds a reconcile worker forever (as
//! many of them as `--concurrency` stop every issuance in the cluster), and one that streams an
//! endless body grows the process until it is OOM-killed (and with it every tenant's HTTP-01
//! answers). So every request goes through [`send`], which
//!
//! - connects within [`CONNECT_TIMEOUT`] (10 s: a TCP handshake to a live server takes
//!   milliseconds, even across continents; longer means the address is dead or filtered);
//! - gets the whole answer, headers and body, within [`REQUEST_TIMEOUT`] (30 s, as cert-manager's
//!   ACME client: Let's Encrypt answers in well under a second, a finalize that signs
//!   synchronously in a few seconds, and the time is bounded so that a worker is free again soon);
//! - reads at most [`BODY_LIMIT`] bytes of body (1 MiB: the largest answers ferrocert reads are a
//!   Cloudflare or Route53 listing page and an order with many identifiers, tens of KiB), or
//!   [`CHAIN_BODY_LIMIT`] (4 MiB) when the answer is a PEM certificate chain
//!   (`application/pem-certificate-chain`; a chain is a few KiB, but private CAs with long chains
//!   and many names exist). A `Content-Length` above the limit is refused before any of the body
//!   is read, and a streamed body is cut off at the first chunk that crosses it, so a hostile server
//!   costs at most the limit plus one read buffer.
//!
//! A failure is an [`OutboundError`] that names the server and the request and says which limit
//! was hit. The callers' existing error paths treat it like any other network failure: the step is
//! retried later with backoff (an Issuer stays `Ready=False` with the message, an order is tried
//! again, a DNS-01 write counts as transient); nothing panics.

use std::error::Error as StdError;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::{Request, Response};
use http_body_util::BodyExt as _;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connect, HttpConnector};

/// How long the TCP connection to a server may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one request may take, from connecting to the last byte of the body.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest body read from a JSON or XML API answer.
pub const BODY_LIMIT: usize = 1024 * 1024;
/// The largest body read when the answer is a PEM certificate chain.
pub const CHAIN_BODY_LIMIT: usize = 4 * 1024 * 1024;

/// The media type of a certificate chain download (RFC 8555 §7.4.2).
const PEM_CHAIN: &str = "application/pem-certificate-chain";

/// The limits of one request; [`Limits::DEFAULT`] everywhere except in tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub body_limit: usize,
    pub chain_body_limit: usize,
}

impl Limits {
    /// The limits documented in the module docs and the README.
    pub const DEFAULT: Limits = Limits {
        connect_timeout: CONNECT_TIMEOUT,
        timeout: REQUEST_TIMEOUT,
        body_limit: BODY_LIMIT,
        chain_body_limit: CHAIN_BODY_LIMIT,
    };

    /// The same limits with another total timeout.
    pub fn with_timeout(self, timeout: Duration) -> Limits {
        Limits { timeout, ..self }
    }

    /// The body limit for an answer with these headers.
    pub fn body_limit_for(&self, headers: &http::HeaderMap) -> usize {
        let is_chain = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().to_ascii_lowercase().starts_with(PEM_CHAIN));
        if is_chain {
            self.chain_body_limit.max(self.body_limit)
        } else {
            self.body_limit
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// The plain TCP connector under every outbound client (TLS wraps it): it gives up connecting
/// after the connect timeout, and leaves the scheme check to the TLS layer.
pub fn http_connector(limits: &Limits) -> HttpConnector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(limits.connect_timeout));
    http.set_nodelay(true);
    http
}

/// A request that did not get a usable answer within the limits. The message names the service,
/// the server and the request; it contains nothing that changes from one try to the next (no byte
/// counts or times measured), because it goes into status, and a status that changes on every
/// failure would wake the reconcile again at once.
#[derive(Debug, thiserror::Error)]
#[error("{service} at {server}: {method} {path}: {failure}")]
pub struct OutboundError {
    /// What kind of server: `ACME server`, `Cloudflare API`, `Route53`, `STS`.
    pub service: &'static str,
    /// `host[:port]` of the server.
    pub server: String,
    pub method: String,
    /// The path and query of the request.
    pub path: String,
    pub failure: Failure,
}

/// Which limit was hit, or what else went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// No complete answer (connection, headers and body) in time.
    #[error("no complete answer within {0:?}")]
    Timeout(Duration),
    /// The body is larger than the limit; reading stopped there.
    #[error("the answer's body is larger than the limit of {}; stopped reading", size(*.limit))]
    TooLarge {
        limit: usize,
        /// How many body bytes had been read when reading stopped (at most the limit plus one
        /// chunk; zero when `Content-Length` already said too much). Not in the message.
        read: usize,
    },
    /// Connecting, TLS, or the HTTP exchange failed (the whole cause chain).
    #[error("{0}")]
    Transport(String),
    /// Not sent: the server did not answer in time on an earlier request and is rested (see
    /// [`Breaker`]).
    #[error(
        "not asked: it did not answer within the time limit on an earlier request, and is given \
         a rest before it is asked again"
    )]
    Resting,
}

impl OutboundError {
    /// The error `failure` for the request `req` to a `service`.
    fn of<B>(req: &Request<B>, service: &'static str, failure: Failure) -> OutboundError {
        let uri = req.uri();
        OutboundError {
            service,
            server: uri.authority().map(|a| a.to_string()).unwrap_or_default(),
            method: req.method().to_string(),
            path: uri
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_else(|| "/".into()),
            failure,
        }
    }

    /// A short label for metrics: `timeout`, `too_large` or `error`.
    pub fn metric_label(&self) -> &'static str {
        match self.failure {
            Failure::Timeout(_) => "timeout",
            Failure::TooLarge { .. } => "too_large",
            Failure::Transport(_) => "error",
            Failure::Resting => "resting",
        }
    }
}

/// Sends `req` and reads its whole answer within `limits` (see the module docs). `service` names
/// the kind of server in errors.
pub async fn send<C, B>(
    client: &Client<C, B>,
    req: Request<B>,
    limits: &Limits,
    service: &'static str,
) -> Result<Response<Bytes>, OutboundError>
where
    C: Connect + Clone + Send + Sync + 'static,
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let error = {
        let unanswered = OutboundError::of(&req, service, Failure::Resting);
        move |failure| OutboundError {
            failure,
            ..unanswered
        }
    };
    let exchange = async {
        let response = client.request(req).await.map_err(|e| {
            if timed_out(&e) {
                Failure::Timeout(limits.connect_timeout)
            } else {
                Failure::Transport(chain_text(&e))
            }
        })?;
        let (parts, body) = response.into_parts();
        let limit = limits.body_limit_for(&parts.headers);
        let bytes = read_body(body, limit).await?;
        Ok(Response::from_parts(parts, bytes))
    };
    match tokio::time::timeout(limits.timeout, exchange).await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(failure)) => Err(error(failure)),
        Err(_) => Err(error(Failure::Timeout(limits.timeout))),
    }
}

/// Whether a connection error is a connect timeout (an `io::Error` of kind `TimedOut` somewhere in
/// its sources).
fn timed_out(e: &(dyn StdError + 'static)) -> bool {
    let mut source: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(s) = source {
        if s.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        source = s.source();
    }
    false
}

/// Servers that did not answer in time, rested before they are asked again.
///
/// The timeouts bound one request, but a reconcile worker still waits out the whole timeout: a
/// tenant who points `--concurrency` Issuers at servers that never answer would hold every worker
/// for 30 s, again and again. So a server (`host[:port]`) that timed out is not asked again for a
/// while (1 min, doubling with each further timeout up to 10 min, jittered): requests to it fail at
/// once with [`Failure::Resting`], and the workers stay free for everyone else. One answer within
/// the limits ends the rest. In memory only; a restart starts afresh.
#[derive(Debug, Default)]
pub struct Breaker(std::sync::Mutex<std::collections::HashMap<String, Rest>>);

/// How long a server is rested, and after how many timeouts in a row.
#[derive(Debug, Clone, Copy)]
struct Rest {
    timeouts: u32,
    until: std::time::Instant,
}

/// The first rest of a server that timed out.
pub const REST_BASE: Duration = Duration::from_secs(60);
/// The longest rest.
pub const REST_CAP: Duration = Duration::from_secs(600);

impl Breaker {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Rest>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `server` is resting now.
    pub fn resting(&self, server: &str, now: std::time::Instant) -> bool {
        self.lock().get(server).is_some_and(|r| r.until > now)
    }

    /// Records how a request to `server` ended: a timeout rests it (longer each time in a row),
    /// an answer ends its rest. Other failures (refused connection, bad TLS) say the server is
    /// there and answer fast; they change nothing.
    pub fn record(&self, server: &str, failure: Option<&Failure>, now: std::time::Instant) {
        let mut map = self.lock();
        match failure {
            None => {
                map.remove(server);
            }
            Some(Failure::Timeout(_)) => {
                let timeouts = map.get(server).map_or(0, |r| r.timeouts).saturating_add(1);
                let rest = crate::retry::jittered_after(crate::pki::backoff(
                    timeouts, REST_BASE, REST_CAP,
                ));
                map.insert(
                    server.to_string(),
                    Rest {
                        timeouts,
                        until: now + rest,
                    },
                );
                // Forget servers whose rest ended long ago, so the map stays small.
                map.retain(|_, r| r.until + REST_CAP > now);
            }
            Some(_) => {}
        }
    }
}

/// [`send`], unless `server` is resting; the outcome is recorded in `breaker`.
pub async fn send_unless_resting<C, B>(
    client: &Client<C, B>,
    req: Request<B>,
    limits: &Limits,
    service: &'static str,
    breaker: &Breaker,
) -> Result<Response<Bytes>, OutboundError>
where
    C: Connect + Clone + Send + Sync + 'static,
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let server = req
        .uri()
        .authority()
        .map(|a| a.to_string())
        .unwrap_or_default();
    if breaker.resting(&server, std::time::Instant::now()) {
        return Err(OutboundError::of(&req, service, Failure::Resting));
    }
    let result = send(client, req, limits, service).await;
    breaker.record(
        &server,
        result.as_ref().err().map(|e| &e.failure),
        std::time::Instant::now(),
    );
    result
}

/// Reads a body up to `limit` bytes. A declared length above the limit is refused before reading;
/// otherwise reading stops at the first chunk that crosses it, so at most `limit` plus one chunk
/// is ever held.
pub async fn read_body<B>(body: B, limit: usize) -> Result<Bytes, Failure>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    if body
        .size_hint()
        .exact()
        .is_some_and(|len| len > limit as u64)
    {
        return Err(Failure::TooLarge { limit, read: 0 });
    }
    let mut body = std::pin::pin!(body);
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            let e: Box<dyn StdError + Send + Sync> = e.into();
            Failure::Transport(format!("reading the answer: {}", chain_text(e.as_ref())))
        })?;
        let Ok(mut data) = frame.into_data() else {
            continue; // trailers
        };
        let read = buf.len() + data.remaining();
        if read > limit {
            return Err(Failure::TooLarge { limit, read });
        }
        while data.has_remaining() {
            let chunk = data.chunk();
            let n = chunk.len();
            buf.extend_from_slice(chunk);
            data.advance(n);
        }
    }
    Ok(buf.freeze())
}

/// An error and its sources, `: `-joined (hyper's top-level errors alone say little, e.g.
/// "client error (Connect)").
pub fn chain_text(e: &(dyn StdError + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.ends_with(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// A byte count as people write limits: `1 MiB`, `64 KiB`, `100 bytes`.
fn size(bytes: usize) -> String {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes.is_multiple_of(KIB) {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use futures::stream;
    use http_body_util::{Full, StreamBody};
    use hyper::body::Frame;

    use super::*;

    fn endless(
        chunk: usize,
    ) -> StreamBody<impl futures::Stream<Item = Result<Frame<Bytes>, Infallible>>> {
        let data = Bytes::from(vec![b'x'; chunk]);
        StreamBody::new(stream::repeat_with(move || Ok(Frame::data(data.clone()))))
    }

    #[tokio::test]
    async fn an_endless_body_stops_at_the_first_chunk_past_the_limit() {
        let err = read_body(endless(1000), 10_000).await.unwrap_err();
        match err {
            Failure::TooLarge { limit, read } => {
                assert_eq!(limit, 10_000);
                // Ten chunks fit; the eleventh crosses the limit and is the last one read.
                assert_eq!(read, 11_000);
            }
            other => panic!("{other}"),
        }
    }

    #[tokio::test]
    async fn a_body_at_the_limit_is_read_whole() {
        let body = Full::new(Bytes::from(vec![b'y'; 4096]));
        assert_eq!(read_body(body, 4096).await.unwrap().len(), 4096);
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_unread() {
        let body = Full::new(Bytes::from(vec![b'y'; 4097]));
        assert!(matches!(
            read_body(body, 4096).await,
            Err(Failure::TooLarge {
                limit: 4096,
                read: 0
            })
        ));
    }

    #[test]
    fn chains_get_the_larger_limit() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(Limits::DEFAULT.body_limit_for(&headers), BODY_LIMIT);
        headers.insert(
            http::header::CONTENT_TYPE,
            "application/pem-certificate-chain; charset=utf-8"
                .parse()
                .unwrap(),
        );
        assert_eq!(Limits::DEFAULT.body_limit_for(&headers), CHAIN_BODY_LIMIT);
        headers.insert(
            http::header::CONTENT_TYPE,
            "application/json".parse().unwrap(),
        );
        assert_eq!(Limits::DEFAULT.body_limit_for(&headers), BODY_LIMIT);
    }

    #[test]
    fn messages_name_the_server_the_request_and_the_limit() {
        let e = OutboundError {
            service: "ACME server",
            server: "ca.test:443".into(),
            method: "GET".into(),
            path: "/directory".into(),
            failure: Failure::TooLarge {
                limit: BODY_LIMIT,
                read: 1_234_567,
            },
        };
        assert_eq!(
            e.to_string(),
            "ACME server at ca.test:443: GET /directory: the answer's body is larger than the \
             limit of 1 MiB; stopped reading"
        );
        let e = OutboundError {
            failure: Failure::Timeout(REQUEST_TIMEOUT),
            ..e
        };
        assert_eq!(
            e.to_string(),
            "ACME server at ca.test:443: GET /directory: no complete answer within 30s"
        );
        assert_eq!(e.metric_label(), "timeout");
        assert_eq!(size(64 * 1024), "64 KiB");
        assert_eq!(size(1000), "1000 bytes");
    }

    #[test]
    fn a_server_that_timed_out_rests_longer_each_time_until_it_answers() {
        let b = Breaker::default();
        let t0 = std::time::Instant::now();
        let timeout = Failure::Timeout(REQUEST_TIMEOUT);
        assert!(!b.resting("ca.test", t0));
        b.record("ca.test", Some(&timeout), t0);
        assert!(b.resting("ca.test", t0 + Duration::from_secs(59)));
        assert!(!b.resting("ca.test", t0 + Duration::from_secs(73)));
        assert!(
            !b.resting("other.test", t0),
            "only the server that timed out rests"
        );
        // A second timeout in a row: two minutes.
        let t1 = t0 + Duration::from_secs(80);
        b.record("ca.test", Some(&timeout), t1);
        assert!(b.resting("ca.test", t1 + Duration::from_secs(119)));
        // A fast failure changes nothing; an answer ends the rest.
        b.record("ca.test", Some(&Failure::Transport("refused".into())), t1);
        assert!(b.resting("ca.test", t1 + Duration::from_secs(1)));
        b.record("ca.test", None, t1);
        assert!(!b.resting("ca.test", t1 + Duration::from_secs(1)));
    }

    #[test]
    fn a_connect_timeout_is_recognised_in_the_sources() {
        #[derive(Debug, thiserror::Error)]
        #[error("client error (Connect)")]
        struct Outer(#[source] std::io::Error);
        assert!(timed_out(&Outer(std::io::Error::from(
            std::io::ErrorKind::TimedOut
        ))));
        assert!(!timed_out(&Outer(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused
        ))));
    }
}

//! The HTTP-01 self-check: before telling the CA, GET the challenge URL the way the CA will and
//! compare the body with the key authorization. Ingress controllers take from under a second to
//! several seconds to load a new route; a CA told too early gets a 404, fails the authorization
//! and counts it against the account's failed-validation limit.
//!
//! One call makes one bounded probe (connect timeout, total timeout, body limit) and says what it
//! saw; the caller paces the probes and decides when to give up.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::routing::challenge_path;
use crate::solver::dns01::ServerAddr;

/// Longest body read: a key authorization is under 200 bytes.
const BODY_LIMIT: usize = 4096;
/// Redirects followed (the CA follows a few, too).
const MAX_REDIRECTS: usize = 5;

/// Where and how the probe connects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelfCheckConfig {
    /// The port of `http://` URLs (80 in a cluster; test environments change it).
    pub port: u16,
    /// Resolvers (`host[:port]`) for the challenge name; empty: the system's resolver.
    pub nameservers: Vec<String>,
    /// Connect timeout of each connection.
    pub connect_timeout: Duration,
    /// Total time of one probe, redirects included.
    pub timeout: Duration,
    /// Whether loopback, link-local and cloud metadata addresses may be probed (test
    /// environments, where every name resolves to 127.0.0.1). Off in a cluster: a tenant's name
    /// (or its own CA's identifier) resolving there would make the probe a request forgery.
    pub allow_internal: bool,
}

impl Default for SelfCheckConfig {
    fn default() -> Self {
        SelfCheckConfig {
            port: 80,
            nameservers: Vec::new(),
            connect_timeout: Duration::from_secs(3),
            timeout: Duration::from_secs(8),
            allow_internal: false,
        }
    }
}

/// What one probe saw when it did not get the key authorization; the text goes to the tenant's
/// status, so it is classified and never carries what the server sent (body bytes, a redirect's
/// target): the probe must not be a way to read other servers. Every URL named is the challenge
/// URL of the tenant's own identifier.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProbeFailure {
    #[error("DNS: {0}")]
    Dns(String),
    #[error("connecting to {address}: {reason}")]
    Connect { address: String, reason: String },
    #[error("GET {url}: {reason}")]
    Http { url: String, reason: String },
    #[error("GET {url} returned HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("GET {url} returned 200 with a wrong body (not the key authorization)")]
    WrongBody { url: String },
    #[error(
        "GET {url} redirected; redirect refused (followed like the CA: http:// to a host name, \
         port {port})"
    )]
    Redirect { url: String, port: u16 },
    #[error(
        "{host} resolves only to loopback, link-local or metadata addresses, which the \
         self-check does not probe"
    )]
    Internal { host: String },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// Addresses a probe never connects to unless allowed: loopback, link-local (cloud metadata
/// services live there: 169.254.169.254), unspecified, multicast, broadcast, and the metadata
/// addresses outside link-local (AWS's IPv6 fd00:ec2::254, Alibaba's 100.100.100.200). Pure.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4 == std::net::Ipv4Addr::new(100, 100, 100, 200)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6 == std::net::Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
        }
    }
}

/// Probes `http://host/.well-known/acme-challenge/<token>` once; `Ok` when the body is
/// `expected` (surrounding whitespace ignored, as the CA does).
pub async fn probe(
    config: &SelfCheckConfig,
    host: &str,
    token: &str,
    expected: &str,
) -> Result<(), ProbeFailure> {
    match tokio::time::timeout(config.timeout, probe_inner(config, host, token, expected)).await {
        Ok(result) => result,
        Err(_) => Err(ProbeFailure::Timeout(config.timeout)),
    }
}

async fn probe_inner(
    config: &SelfCheckConfig,
    host: &str,
    token: &str,
    expected: &str,
) -> Result<(), ProbeFailure> {
    let port = config.port;
    let mut host = host.to_string();
    let mut path = challenge_path(token);
    // Every message names the challenge URL itself, never where a redirect led.
    let url = display_url(&host, port, &path);
    for _ in 0..=MAX_REDIRECTS {
        let mut addresses = resolve(config, &host).await?;
        if !config.allow_internal {
            addresses.retain(|ip| !is_internal(*ip));
            if addresses.is_empty() {
                return Err(ProbeFailure::Internal { host });
            }
        }
        let (status, location, body) = get(config, &addresses, port, &host, &path, &url).await?;
        if status.is_redirection() {
            let location = location.unwrap_or_default();
            match follow(&location, &host, port, config.allow_internal) {
                Some((h, next)) => {
                    (host, path) = (h, next);
                    continue;
                }
                None => return Err(ProbeFailure::Redirect { url, port }),
            }
        }
        if status != http::StatusCode::OK {
            return Err(ProbeFailure::Status {
                url,
                status: status.as_u16(),
            });
        }
        if String::from_utf8_lossy(&body).trim() == expected {
            return Ok(());
        }
        return Err(ProbeFailure::WrongBody { url });
    }
    Err(ProbeFailure::Http {
        url,
        reason: format!("more than {MAX_REDIRECTS} redirects"),
    })
}

fn display_url(host: &str, port: u16, path: &str) -> String {
    let host = match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) => format!("[{host}]"),
        _ => host.to_string(),
    };
    if port == 80 {
        format!("http://{host}{path}")
    } else {
        format!("http://{host}:{port}{path}")
    }
}

/// Where an `http://` redirect goes: `(host, path)`, followed as a CA follows it. Relative
/// locations stay on the same host. Only `http://` on the probe's own port (80 in a cluster) to a
/// host name is followed: another port, `https://` (the probe does not speak TLS), another scheme
/// or an IP literal (unless `allow_internal`, for test environments) is refused (`None`). Pure.
pub fn follow(
    location: &str,
    host: &str,
    port: u16,
    allow_internal: bool,
) -> Option<(String, String)> {
    if location.starts_with('/') && !location.starts_with("//") {
        return Some((host.to_string(), location.to_string()));
    }
    let uri: http::Uri = location.parse().ok()?;
    if uri.scheme_str() != Some("http") {
        return None;
    }
    let next_host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
    if uri.port_u16().is_some_and(|p| p != port) {
        return None;
    }
    if !allow_internal && next_host.parse::<IpAddr>().is_ok() {
        return None;
    }
    let path = uri
        .path_and_query()
        .map_or("/".to_string(), |p| p.as_str().to_string());
    Some((next_host.to_string(), path))
}

/// The addresses of `host`: the literal, or from the configured resolvers, or the system's.
async fn resolve(config: &SelfCheckConfig, host: &str) -> Result<Vec<IpAddr>, ProbeFailure> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    if config.nameservers.is_empty() {
        let found = tokio::net::lookup_host((host, 0))
            .await
            .map_err(|e| ProbeFailure::Dns(format!("resolving {host}: {e}")))?;
        let ips: Vec<IpAddr> = found.map(|a| a.ip()).collect();
        if ips.is_empty() {
            return Err(ProbeFailure::Dns(format!("{host} has no address")));
        }
        return Ok(ips);
    }
    let mut servers = Vec::new();
    for ns in &config.nameservers {
        let server = ServerAddr::parse(ns, 53).map_err(|e| ProbeFailure::Dns(e.to_string()))?;
        servers.extend(
            server
                .resolve()
                .await
                .map_err(|e| ProbeFailure::Dns(e.to_string()))?,
        );
    }
    crate::solver::dns01::resolve_addresses(&servers, host, config.connect_timeout)
        .await
        .map_err(ProbeFailure::Dns)
}

/// One GET on the first address that accepts a connection.
async fn get(
    config: &SelfCheckConfig,
    addresses: &[IpAddr],
    port: u16,
    host: &str,
    path: &str,
    url: &str,
) -> Result<(http::StatusCode, Option<String>, Bytes), ProbeFailure> {
    let mut last = None;
    let mut stream = None;
    for ip in addresses {
        let address = SocketAddr::new(*ip, port);
        match tokio::time::timeout(config.connect_timeout, TcpStream::connect(address)).await {
            Ok(Ok(s)) => {
                stream = Some(s);
                break;
            }
            Ok(Err(e)) => {
                last = Some(ProbeFailure::Connect {
                    address: address.to_string(),
                    reason: e.to_string(),
                })
            }
            Err(_) => {
                last = Some(ProbeFailure::Connect {
                    address: address.to_string(),
                    reason: format!("no connection within {:?}", config.connect_timeout),
                })
            }
        }
    }
    let Some(stream) = stream else {
        return Err(last.unwrap_or_else(|| ProbeFailure::Dns(format!("{host} has no address"))));
    };
    let http_err = |reason: String| ProbeFailure::Http {
        url: url.to_string(),
        reason,
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| http_err(e.to_string()))?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let host_header = if port == 80 {
        display_host(host)
    } else {
        format!("{}:{port}", display_host(host))
    };
    let request = http::Request::get(path)
        .header(http::header::HOST, host_header)
        .header(http::header::USER_AGENT, "ferrocert-self-check")
        .header(http::header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| http_err(e.to_string()))?;
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| http_err(e.to_string()))?;
        let status = response.status();
        let location = response
            .headers()
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = Limited::new(response.into_body(), BODY_LIMIT)
            .collect()
            .await
            .map_err(|e| http_err(format!("reading the body: {e}")))?
            .to_bytes();
        Ok((status, location, body))
    }
    .await;
    driver.abort();
    result
}

fn display_host(host: &str) -> String {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) => format!("[{host}]"),
        _ => host.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A one-shot HTTP server answering every connection with `response`; returns its port and
    /// the request heads it saw.
    async fn serve(responses: Vec<String>) -> (u16, tokio::task::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let mut heads = Vec::new();
            for response in responses {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).await.unwrap();
                heads.push(String::from_utf8_lossy(&buf[..n]).to_string());
                s.write_all(response.as_bytes()).await.unwrap();
                let _ = s.shutdown().await;
            }
            heads
        });
        (port, task)
    }

    fn config(port: u16) -> SelfCheckConfig {
        SelfCheckConfig {
            port,
            allow_internal: true,
            ..SelfCheckConfig::default()
        }
    }

    fn ok(body: &str) -> String {
        format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    #[tokio::test]
    async fn the_key_authorization_passes_and_the_request_looks_like_the_cas() {
        let (port, seen) = serve(vec![ok("tok.thumb\n")]).await;
        probe(&config(port), "127.0.0.1", "tok", "tok.thumb")
            .await
            .unwrap();
        let heads = seen.await.unwrap();
        assert!(heads[0].starts_with("GET /.well-known/acme-challenge/tok HTTP/1.1\r\n"));
        assert!(
            heads[0]
                .to_ascii_lowercase()
                .contains(&format!("host: 127.0.0.1:{port}"))
        );
    }

    #[tokio::test]
    async fn a_404_and_a_wrong_body_say_what_came_back() {
        let (port, _) = serve(vec![
            "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".into(),
            ok("something else"),
        ])
        .await;
        let e = probe(&config(port), "127.0.0.1", "tok", "tok.thumb")
            .await
            .unwrap_err();
        assert!(matches!(&e, ProbeFailure::Status { status: 404, .. }));
        assert!(e.to_string().contains("returned HTTP 404"), "{e}");
        let e = probe(&config(port), "127.0.0.1", "tok", "tok.thumb")
            .await
            .unwrap_err();
        assert!(matches!(e, ProbeFailure::WrongBody { .. }));
        assert!(
            !e.to_string().contains("something else"),
            "no body in the message: {e}"
        );
    }

    #[tokio::test]
    async fn an_http_redirect_is_followed_and_https_is_not() {
        let (port, seen) = serve(vec![
            "HTTP/1.1 302 Found\r\nlocation: /elsewhere\r\ncontent-length: 0\r\n\r\n".into(),
            ok("tok.thumb"),
            "HTTP/1.1 301 Moved\r\nlocation: https://a.example/x\r\ncontent-length: 0\r\n\r\n"
                .into(),
        ])
        .await;
        probe(&config(port), "127.0.0.1", "tok", "tok.thumb")
            .await
            .unwrap();
        let e = probe(&config(port), "127.0.0.1", "tok", "tok.thumb")
            .await
            .unwrap_err();
        assert!(matches!(e, ProbeFailure::Redirect { .. }), "{e}");
        let heads = seen.await.unwrap();
        assert!(heads[1].starts_with("GET /elsewhere "));
    }

    #[tokio::test]
    async fn connection_refused_is_reported() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let e = probe(&config(port), "127.0.0.1", "tok", "x")
            .await
            .unwrap_err();
        assert!(matches!(e, ProbeFailure::Connect { .. }), "{e}");
    }

    #[tokio::test]
    async fn a_server_that_never_answers_times_out_and_a_huge_body_is_cut() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let _hold = tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                let (s, _) = listener.accept().await.unwrap();
                held.push(s);
            }
        });
        let cfg = SelfCheckConfig {
            timeout: Duration::from_millis(300),
            ..config(port)
        };
        let e = probe(&cfg, "127.0.0.1", "tok", "x").await.unwrap_err();
        assert_eq!(e, ProbeFailure::Timeout(Duration::from_millis(300)));

        let big = "a".repeat(BODY_LIMIT * 4);
        let (port, _) = serve(vec![ok(&big)]).await;
        let e = probe(&config(port), "127.0.0.1", "tok", "x")
            .await
            .unwrap_err();
        assert!(matches!(e, ProbeFailure::Http { .. }), "{e}");
    }

    #[test]
    fn redirects_are_followed_only_as_the_ca_follows_them() {
        assert_eq!(
            follow("/p", "a.example", 5002, false),
            Some(("a.example".into(), "/p".into()))
        );
        assert_eq!(
            follow("http://b.example/q?x=1", "a.example", 80, false),
            Some(("b.example".into(), "/q?x=1".into()))
        );
        assert_eq!(
            follow("http://b.example:80/q", "a.example", 80, false),
            Some(("b.example".into(), "/q".into()))
        );
        // Another port: a port scan through the probe.
        assert_eq!(
            follow("http://b.example:8080/q", "a.example", 80, false),
            None
        );
        assert_eq!(
            follow("http://10.0.0.5/admin", "a.example", 80, false),
            None
        );
        assert_eq!(
            follow(
                "http://169.254.169.254/latest/meta-data/",
                "a.example",
                80,
                false
            ),
            None
        );
        assert_eq!(follow("https://b.example/q", "a.example", 80, false), None);
        assert_eq!(follow("ftp://b.example/q", "a.example", 80, false), None);
        assert_eq!(follow("//evil.example:22/", "a.example", 80, false), None);
    }

    #[test]
    fn internal_addresses_are_recognized() {
        for ip in [
            "127.0.0.1",
            "127.9.9.9",
            "169.254.169.254",
            "0.0.0.0",
            "100.100.100.200",
            "::1",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "224.0.0.1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "192.0.2.1",
            "10.1.2.3",
            "198.18.0.1",
            "2001:db8::1",
            "fd00::1",
        ] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn loopback_and_metadata_are_not_probed_and_redirect_targets_are_not_told() {
        let (port, seen) = serve(vec![ok("tok.thumb")]).await;
        let strict = SelfCheckConfig {
            allow_internal: false,
            ..config(port)
        };
        let e = probe(&strict, "127.0.0.1", "tok", "tok.thumb")
            .await
            .unwrap_err();
        assert!(matches!(e, ProbeFailure::Internal { .. }), "{e}");
        let e = probe(&strict, "169.254.169.254", "tok", "x")
            .await
            .unwrap_err();
        assert!(matches!(e, ProbeFailure::Internal { .. }), "{e}");
        // The listener saw nothing from those.
        probe(&config(port), "127.0.0.1", "tok", "tok.thumb")
            .await
            .unwrap();
        assert_eq!(seen.await.unwrap().len(), 1);

        let (port, _) = serve(vec![
            "HTTP/1.1 302 Found\r\nlocation: http://secret.internal.example:6443/api?token=s3cr3t\r\ncontent-length: 0\r\n\r\n".into(),
        ])
        .await;
        let e = probe(&config(port), "127.0.0.1", "tok", "x")
            .await
            .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("redirect refused"), "{text}");
        assert!(!text.contains("s3cr3t") && !text.contains("6443"), "{text}");
    }

    #[test]
    fn urls_read_like_the_cas() {
        assert_eq!(display_url("a.example", 80, "/x"), "http://a.example/x");
        assert_eq!(
            display_url("a.example", 5002, "/x"),
            "http://a.example:5002/x"
        );
        assert_eq!(display_url("::1", 80, "/x"), "http://[::1]/x");
    }
}

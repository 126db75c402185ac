//! The HTTP-01 challenge server. It answers only tokens of challenges in flight (read from the
//! Certificates' status in the shared cache), only for the host the challenge is for, and 404 to
//! everything else. Requests are bounded: GET/HEAD only, small headers, no body.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kube::runtime::reflector::Store;
use tokio::net::TcpListener;

use crate::api::Certificate;

/// Where key authorizations are looked up.
pub trait TokenSource: Send + Sync + 'static {
    /// The key authorization for `token`, if a challenge for `host` in flight has it.
    fn key_authorization(&self, token: &str, host: Option<&str>) -> Option<String>;
}

impl TokenSource for Store<Certificate> {
    fn key_authorization(&self, token: &str, host: Option<&str>) -> Option<String> {
        self.state().iter().find_map(|cert| {
            let order = cert.status.as_ref()?.order.as_ref()?;
            order.authorizations.iter().find_map(|authz| {
                let matches_host = host.is_none_or(|h| h.eq_ignore_ascii_case(&authz.identifier));
                (authz.token.as_deref() == Some(token)
                    && authz.challenge_type == Some(crate::api::ChallengeKind::Http01)
                    && matches_host)
                    .then(|| authz.key_authorization.clone())
                    .flatten()
            })
        })
    }
}

/// ACME tokens are base64url, 43 characters at Let's Encrypt; anything else is not ours.
fn plausible_token(token: &str) -> bool {
    (16..=256).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The host of a `Host` header, without port, for comparison with the identifier.
fn host_only(headers: &HeaderMap) -> Option<String> {
    let raw = headers.get(header::HOST)?.to_str().ok()?;
    let host = if let Some(rest) = raw.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        raw.rsplit_once(':').map_or(raw, |(h, _)| h)
    };
    Some(host.trim_end_matches('.').to_ascii_lowercase())
}

async fn challenge(
    State(tokens): State<Arc<dyn TokenSource>>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !plausible_token(&token) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let host = host_only(&headers);
    match tokens.key_authorization(&token, host.as_deref()) {
        Some(key_authorization) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain")],
            key_authorization,
        )
            .into_response(),
        None => {
            tracing::debug!(token, host, "unknown HTTP-01 token requested");
            StatusCode::NOT_FOUND.into_response()
        }
    }
}

/// The router: the challenge path only; everything else is 404.
pub fn router(tokens: Arc<dyn TokenSource>) -> Router {
    Router::new()
        .route("/.well-known/acme-challenge/{token}", get(challenge))
        .with_state(tokens)
}

/// Serves the challenge router on `listener` until `shutdown` resolves, with at most
/// `max_connections` open at once. Headers are capped at 8 KiB per connection.
pub async fn serve(
    listener: TcpListener,
    tokens: Arc<dyn TokenSource>,
    max_connections: usize,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    crate::http_server::serve(listener, router(tokens), max_connections, shutdown).await
}

/// Binds the HTTP-01 listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    struct Fixed;
    impl TokenSource for Fixed {
        fn key_authorization(&self, token: &str, host: Option<&str>) -> Option<String> {
            (token == "abcdefghijklmnopqrstuvwxyz012345" && host == Some("a.example.test"))
                .then(|| format!("{token}.thumb"))
        }
    }

    async fn get_status(path: &str, host: &str) -> (StatusCode, String) {
        let rsp = router(Arc::new(Fixed))
            .oneshot(
                Request::get(path)
                    .header("host", host)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = rsp.status();
        let body = axum::body::to_bytes(rsp.into_body(), 1024).await.unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn a_known_token_for_its_host_gets_the_key_authorization() {
        let (status, body) = get_status(
            "/.well-known/acme-challenge/abcdefghijklmnopqrstuvwxyz012345",
            "a.example.test:5002",
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "abcdefghijklmnopqrstuvwxyz012345.thumb");
    }

    #[tokio::test]
    async fn everything_else_is_404() {
        for (path, host) in [
            (
                "/.well-known/acme-challenge/abcdefghijklmnopqrstuvwxyz012345",
                "b.example.test",
            ),
            (
                "/.well-known/acme-challenge/unknowntokenunknowntoken",
                "a.example.test",
            ),
            (
                "/.well-known/acme-challenge/..%2F..%2Fetc%2Fpasswd",
                "a.example.test",
            ),
            ("/.well-known/acme-challenge/short", "a.example.test"),
            ("/", "a.example.test"),
            ("/metrics", "a.example.test"),
        ] {
            assert_eq!(
                get_status(path, host).await.0,
                StatusCode::NOT_FOUND,
                "{path} {host}"
            );
        }
    }

    #[test]
    fn host_header_parsing() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "A.Example.Test:80".parse().unwrap());
        assert_eq!(host_only(&h).as_deref(), Some("a.example.test"));
        h.insert(header::HOST, "[2001:db8::1]:80".parse().unwrap());
        assert_eq!(host_only(&h).as_deref(), Some("2001:db8::1"));
    }
}

//! The HTTP client instant-acme talks through: rustls with aws-lc-rs, trusting either the system
//! roots or an Issuer's `caBundle` (every certificate of the bundle, which instant-acme's own
//! `builder_with_root` does not do), bounded by the limits of [`crate::outbound`] (connect and
//! total timeouts, body limit: instant-acme itself reads whole bodies with no limit and has no
//! timeout), counting every request in the metrics, and remembering each account's `Retry-After`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::Request;
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};
use rustls::RootCertStore;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject};

use crate::metrics::{AcmeRequestLabels, Metrics};
use crate::outbound::{self, Limits};

/// How ACME servers are named in errors.
pub const ACME_SERVICE: &str = "ACME server";

/// Why the ACME HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum HttpClientError {
    #[error("caBundle holds no PEM certificate")]
    EmptyBundle,
    #[error("caBundle certificate {index} is not usable: {reason}")]
    BadBundleCert { index: usize, reason: String },
    #[error("loading the system's trusted roots failed: {0}")]
    SystemRoots(String),
}

/// Where the client's trust comes from.
pub enum Trust<'a> {
    /// The machine's trusted roots.
    System,
    /// Every certificate in this PEM bundle.
    Bundle(&'a [u8]),
    /// No verification at all (`skipTLSVerify`, development only).
    Insecure,
}

/// An instant-acme HTTP client for one ACME account that records metrics.
pub struct AcmeHttpClient {
    inner: HyperClient<hyper_rustls::HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>,
    limits: Limits,
    metrics: Metrics,
    retry_after: RetryAfterLog,
    /// Whose `Retry-After`s this client records (see [`RetryAfterLog`]).
    account: String,
    /// CA servers that timed out, shared by every account (see [`outbound::Breaker`]).
    breaker: Arc<outbound::Breaker>,
}

/// The latest `Retry-After` each ACME account was sent with an error: instant-acme does not expose
/// response headers, so the HTTP layer records them for the failure backoff to honour.
///
/// Kept per account, not per CA host: a CA rate-limits an account (Let's Encrypt's new orders
/// per account, failed validations per account and name), and one tenant's limit must not delay
/// every other tenant on the same CA. The account is named by the key of the issuer's client in
/// [`super::Accounts`] (`Issuer/<namespace>/<name>`, `ClusterIssuer/<ns>/<name>`: one ACME account
/// per issuer), together with the host that sent it, so that an issuer that moves to another CA
/// does not inherit the old CA's wait.
#[derive(Clone, Default, Debug)]
pub struct RetryAfterLog(
    Arc<std::sync::Mutex<std::collections::HashMap<(String, String), jiff::Timestamp>>>,
);

impl RetryAfterLog {
    /// Records that `host` told `account` to wait until `until` (waits already over are dropped).
    pub fn record(&self, account: &str, host: &str, until: jiff::Timestamp) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = jiff::Timestamp::now();
        map.retain(|_, t| *t > now);
        map.insert((account.to_string(), host.to_string()), until);
    }

    /// How long the ACME server at `server` (a URL) asked `account` to wait, if that time is still
    /// ahead.
    pub fn remaining(
        &self,
        account: &str,
        server: &str,
        now: jiff::Timestamp,
    ) -> Option<std::time::Duration> {
        let host = url_host(server)?;
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let until = *map.get(&(account.to_string(), host))?;
        (until > now).then(|| until.duration_since(now).unsigned_abs())
    }
}

/// `host[:port]` of a URL.
fn url_host(url: &str) -> Option<String> {
    Some(url.parse::<http::Uri>().ok()?.authority()?.to_string())
}

/// Parses a `Retry-After` value: delta-seconds or an HTTP-date.
pub fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<jiff::Timestamp> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return now
            .checked_add(jiff::SignedDuration::from_secs(
                seconds.min(7 * 24 * 3600) as i64
            ))
            .ok();
    }
    jiff::fmt::rfc2822::parse(value).ok().map(|z| z.timestamp())
}

/// The rustls client configuration for a trust choice.
pub fn tls_config(trust: Trust<'_>) -> Result<rustls::ClientConfig, HttpClientError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| HttpClientError::SystemRoots(e.to_string()))?;
    let config = match trust {
        Trust::System => {
            let mut roots = RootCertStore::empty();
            let loaded = rustls_native_roots()?;
            roots.add_parsable_certificates(loaded);
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::Bundle(pem) => builder
            .with_root_certificates(roots_from_pem(pem)?)
            .with_no_client_auth(),
        Trust::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth(),
    };
    Ok(config)
}

/// An HTTPS connector over a trust choice (HTTP/1 and HTTP/2), connecting within the default
/// connect timeout of [`crate::outbound`].
pub fn connector(
    trust: Trust<'_>,
) -> Result<hyper_rustls::HttpsConnector<HttpConnector>, HttpClientError> {
    connector_with(trust, &Limits::DEFAULT)
}

/// An HTTPS connector over a trust choice, connecting within `limits.connect_timeout`.
pub fn connector_with(
    trust: Trust<'_>,
    limits: &Limits,
) -> Result<hyper_rustls::HttpsConnector<HttpConnector>, HttpClientError> {
    Ok(HttpsConnectorBuilder::new()
        .with_tls_config(tls_config(trust)?)
        .https_only()
        .enable_http1()
        .enable_http2()
        .wrap_connector(outbound::http_connector(limits)))
}

impl AcmeHttpClient {
    /// A client for the ACME account `account` (the issuer's key in [`super::Accounts`]), within
    /// the default limits.
    pub fn new(
        trust: Trust<'_>,
        metrics: Metrics,
        retry_after: RetryAfterLog,
        account: &str,
        breaker: Arc<outbound::Breaker>,
    ) -> Result<Self, HttpClientError> {
        Self::with_limits(
            trust,
            metrics,
            retry_after,
            account,
            breaker,
            Limits::DEFAULT,
        )
    }

    /// The same with other limits (tests use short ones).
    pub fn with_limits(
        trust: Trust<'_>,
        metrics: Metrics,
        retry_after: RetryAfterLog,
        account: &str,
        breaker: Arc<outbound::Breaker>,
        limits: Limits,
    ) -> Result<Self, HttpClientError> {
        Ok(Self {
            inner: HyperClient::builder(TokioExecutor::new())
                .build(connector_with(trust, &limits)?),
            limits,
            metrics,
            retry_after,
            account: account.to_string(),
            breaker,
        })
    }
}

impl HttpClient for AcmeHttpClient {
    fn request(
        &self,
        req: Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let method = req.method().to_string();
        let endpoint = crate::metrics::acme_endpoint(&method, req.uri().path()).to_string();
        let host = req
            .uri()
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let client = self.inner.clone();
        let limits = self.limits;
        let metrics = self.metrics.clone();
        let retry_after = self.retry_after.clone();
        let account = self.account.clone();
        let breaker = self.breaker.clone();
        Box::pin(async move {
            let started = Instant::now();
            let result =
                outbound::send_unless_resting(&client, req, &limits, ACME_SERVICE, &breaker).await;
            let status = match &result {
                Ok(rsp) => {
                    if !rsp.status().is_success()
                        && let Some(until) = rsp
                            .headers()
                            .get(http::header::RETRY_AFTER)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| parse_retry_after(v, jiff::Timestamp::now()))
                    {
                        retry_after.record(&account, &host, until);
                    }
                    rsp.status().as_u16().to_string()
                }
                Err(e) => e.metric_label().to_string(),
            };
            let labels = AcmeRequestLabels {
                endpoint,
                method,
                status,
            };
            metrics.acme_requests.get_or_create(&labels).inc();
            metrics
                .acme_request_seconds
                .get_or_create(&labels)
                .observe(started.elapsed().as_secs_f64());
            match result {
                Ok(rsp) => {
                    // The body is already read (within the limit): instant-acme gets it as is.
                    let (parts, body) = rsp.into_parts();
                    Ok(BytesResponse {
                        parts,
                        body: Box::new(body),
                    })
                }
                Err(err) => Err(instant_acme::Error::Other(Box::new(err))),
            }
        })
    }
}

/// Every certificate of a PEM bundle as a root.
pub fn roots_from_pem(pem: &[u8]) -> Result<RootCertStore, HttpClientError> {
    let mut roots = RootCertStore::empty();
    for (index, cert) in CertificateDer::pem_slice_iter(pem).enumerate() {
        let cert = cert.map_err(|e| HttpClientError::BadBundleCert {
            index,
            reason: e.to_string(),
        })?;
        roots
            .add(cert)
            .map_err(|e| HttpClientError::BadBundleCert {
                index,
                reason: e.to_string(),
            })?;
    }
    if roots.is_empty() {
        return Err(HttpClientError::EmptyBundle);
    }
    Ok(roots)
}

/// The system roots from the usual Debian/RHEL/Alpine bundle paths (the container image ships
/// `ca-certificates`); `SSL_CERT_FILE` overrides.
fn rustls_native_roots() -> Result<Vec<CertificateDer<'static>>, HttpClientError> {
    let candidates = std::env::var("SSL_CERT_FILE").into_iter().chain(
        [
            "/etc/ssl/certs/ca-certificates.crt",
            "/etc/pki/tls/certs/ca-bundle.crt",
            "/etc/ssl/cert.pem",
        ]
        .map(String::from),
    );
    for path in candidates {
        if let Ok(pem) = std::fs::read(&path) {
            let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
                .filter_map(Result::ok)
                .collect();
            if !certs.is_empty() {
                return Ok(certs);
            }
        }
    }
    Err(HttpClientError::SystemRoots(
        "no CA bundle found (set SSL_CERT_FILE or install ca-certificates)".into(),
    ))
}

/// Accepts any server certificate; only for `skipTLSVerify`.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_and_as_a_date() {
        let now = jiff::Timestamp::from_second(1_000_000).unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(jiff::Timestamp::from_second(1_000_120).unwrap())
        );
        let date = parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now).unwrap();
        assert_eq!(date, jiff::Timestamp::from_second(784111777).unwrap());
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn retry_after_is_kept_per_account_and_host() {
        let now = jiff::Timestamp::now();
        let log = RetryAfterLog::default();
        log.record(
            "Issuer/a/le",
            "ca.test:443",
            now + jiff::SignedDuration::from_secs(60),
        );
        let left = log
            .remaining("Issuer/a/le", "https://ca.test:443/acme/new-order", now)
            .unwrap();
        assert_eq!(left, std::time::Duration::from_secs(60));
        // Another tenant's account on the same CA is not held back.
        assert_eq!(
            log.remaining("Issuer/b/le", "https://ca.test:443/x", now),
            None
        );
        // Nor is the same issuer at another CA.
        assert_eq!(
            log.remaining("Issuer/a/le", "https://other.test/x", now),
            None
        );
        // And the wait ends.
        assert_eq!(
            log.remaining(
                "Issuer/a/le",
                "https://ca.test:443/x",
                now + jiff::SignedDuration::from_secs(61)
            ),
            None
        );
    }

    #[test]
    fn an_empty_bundle_is_refused() {
        assert!(matches!(
            roots_from_pem(b"not pem"),
            Err(HttpClientError::EmptyBundle)
        ));
    }

    #[test]
    fn every_certificate_of_a_bundle_is_trusted() {
        let a = rcgen::generate_simple_self_signed(vec!["a.test".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["b.test".into()]).unwrap();
        let bundle = format!("{}{}", a.cert.pem(), b.cert.pem());
        assert_eq!(roots_from_pem(bundle.as_bytes()).unwrap().len(), 2);
    }
}

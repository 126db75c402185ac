//! Alternate certificate chains (RFC 8555 §7.4.2): the CA links them from the certificate
//! download with `Link: <url>;rel="alternate"`. instant-acme downloads only the default chain and
//! does not expose those headers, so for `preferredChain` the chains are fetched here with
//! POST-as-GET requests signed by the account key (ES256 JWS, `kid` = account URL).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, header};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::http::{ACME_SERVICE, HttpClientError, Trust, connector};
use crate::outbound::{self, Limits, OutboundError};

/// Why the chains could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum ChainFetchError {
    #[error(transparent)]
    Client(#[from] HttpClientError),
    /// The CA did not answer within the limits of [`crate::outbound`] (or not at all).
    #[error(transparent)]
    Outbound(#[from] OutboundError),
    #[error("{0}")]
    Request(String),
    #[error("the account key cannot sign: {0}")]
    Key(String),
}

fn req_err(e: impl std::fmt::Display) -> ChainFetchError {
    ChainFetchError::Request(e.to_string())
}

/// Every chain the CA offers for a certificate: the default first, then the alternates.
pub async fn fetch_chains(
    trust: Trust<'_>,
    directory_url: &str,
    account_url: &str,
    account_key_pkcs8: &[u8],
    certificate_url: &str,
) -> Result<Vec<String>, ChainFetchError> {
    let client: Client<_, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(connector(trust)?);
    let signer = Signer::new(account_key_pkcs8, account_url)?;

    let (status, _, body) = send(&client, Method::GET, directory_url, None).await?;
    let directory: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
        req_err(format!(
            "the directory at {directory_url} (HTTP {status}) is not JSON (at line {} column \
             {}): {}",
            e.line(),
            e.column(),
            body_summary(&body)
        ))
    })?;
    let new_nonce = directory
        .get("newNonce")
        .and_then(|v| v.as_str())
        .ok_or_else(|| {
            req_err(format!(
                "the directory at {directory_url} (HTTP {status}) has no newNonce ({} bytes)",
                body.len()
            ))
        })?;
    let (_, headers, _) = send(&client, Method::HEAD, new_nonce, None).await?;
    let mut nonce = replay_nonce(&headers)?;

    let mut chains = Vec::new();
    let mut queue = vec![certificate_url.to_string()];
    let mut index = 0;
    while index < queue.len() && index < 8 {
        let url = queue[index].clone();
        // A CA may reject a nonce (RFC 8555 §6.5, badNonce; Pebble does it to 5% on purpose): retry
        // with the fresh nonce it sent along, a few times.
        let mut attempts = 0;
        let (status, headers, bytes) = loop {
            let body = signer.post_as_get(&nonce, &url)?;
            let (status, headers, bytes) = send(&client, Method::POST, &url, Some(body)).await?;
            nonce = replay_nonce(&headers)?;
            attempts += 1;
            if attempts < 4 && is_bad_nonce(status, &bytes) {
                continue;
            }
            break (status, headers, bytes);
        };
        if !status.is_success() {
            return Err(req_err(format!(
                "downloading {url}: HTTP {status}: {}",
                body_summary(&bytes)
            )));
        }
        if index == 0 {
            queue.extend(alternate_links(&headers));
        }
        chains.push(String::from_utf8(bytes.to_vec()).map_err(req_err)?);
        index += 1;
    }
    Ok(chains)
}

async fn send<C>(
    client: &Client<C, Full<Bytes>>,
    method: Method,
    url: &str,
    body: Option<String>,
) -> Result<(http::StatusCode, HeaderMap, Bytes), ChainFetchError>
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    // RFC 8555 §6.1: every request carries a User-Agent.
    let mut req = Request::builder().method(method).uri(url).header(
        header::USER_AGENT,
        concat!("ferrocert/", env!("CARGO_PKG_VERSION")),
    );
    if body.is_some() {
        req = req.header(header::CONTENT_TYPE, "application/jose+json");
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(req_err)?;
    let (parts, bytes) = outbound::send(client, req, &Limits::DEFAULT, ACME_SERVICE)
        .await?
        .into_parts();
    Ok((parts.status, parts.headers, bytes))
}

/// The longest CA detail an error quotes.
const MAX_DETAIL: usize = 200;

/// A CA's error answer in one bounded line: its problem document's type and detail (RFC 7807,
/// truncated), else only its size. The body is the CA's; it may be megabytes (the download
/// limit) of anything, including what a certificate chain or key looks like, so it is never
/// quoted whole. Pure.
fn body_summary(body: &[u8]) -> String {
    let problem = serde_json::from_slice::<serde_json::Value>(body).ok();
    let field = |name: &str| {
        problem
            .as_ref()
            .and_then(|p| p.get(name))
            .and_then(|v| v.as_str())
            .map(|v| {
                let clean: String = v.chars().filter(|c| !c.is_control()).collect();
                truncate(&clean, MAX_DETAIL)
            })
    };
    match (field("type"), field("detail")) {
        (Some(t), Some(d)) => format!("{t}: {d}"),
        (Some(t), None) => t,
        (None, Some(d)) => d,
        (None, None) => format!("{} bytes, not a problem document", body.len()),
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Whether the answer is a `badNonce` problem.
fn is_bad_nonce(status: http::StatusCode, body: &[u8]) -> bool {
    status == http::StatusCode::BAD_REQUEST
        && serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| {
                v.get("type")
                    .and_then(|t| t.as_str())
                    .map(|t| t.ends_with(":badNonce"))
            })
            .unwrap_or(false)
}

fn replay_nonce(headers: &HeaderMap) -> Result<String, ChainFetchError> {
    headers
        .get("replay-nonce")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| req_err("the CA sent no Replay-Nonce"))
}

/// URLs of `Link: <url>;rel="alternate"` headers.
pub fn alternate_links(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|link| {
            let (target, params) = link.trim().split_once(';')?;
            let is_alternate = params.split(';').any(|p| {
                p.trim()
                    .replace(' ', "")
                    .eq_ignore_ascii_case("rel=\"alternate\"")
            });
            let url = target.trim().strip_prefix('<')?.strip_suffix('>')?;
            is_alternate.then(|| url.to_string())
        })
        .collect()
}

/// Signs POST-as-GET requests with the account key.
struct Signer {
    key: aws_lc_rs::signature::EcdsaKeyPair,
    kid: String,
}

impl Signer {
    fn new(pkcs8: &[u8], kid: &str) -> Result<Self, ChainFetchError> {
        let key = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8,
        )
        .map_err(|e| ChainFetchError::Key(e.to_string()))?;
        Ok(Self {
            key,
            kid: kid.to_string(),
        })
    }

    fn post_as_get(&self, nonce: &str, url: &str) -> Result<String, ChainFetchError> {
        let protected =
            serde_json::json!({"alg": "ES256", "kid": self.kid, "nonce": nonce, "url": url});
        let protected = URL_SAFE_NO_PAD.encode(protected.to_string());
        let signing_input = format!("{protected}.");
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let signature = self
            .key
            .sign(&rng, signing_input.as_bytes())
            .map_err(|e| ChainFetchError::Key(e.to_string()))?;
        Ok(serde_json::json!({
            "protected": protected,
            "payload": "",
            "signature": URL_SAFE_NO_PAD.encode(signature.as_ref()),
        })
        .to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_nonce_problems_are_recognised() {
        let body = br#"{"type":"urn:ietf:params:acme:error:badNonce","detail":"JWS has an invalid anti-replay nonce"}"#;
        assert!(is_bad_nonce(http::StatusCode::BAD_REQUEST, body));
        assert!(!is_bad_nonce(
            http::StatusCode::BAD_REQUEST,
            br#"{"type":"urn:ietf:params:acme:error:malformed"}"#
        ));
        assert!(!is_bad_nonce(http::StatusCode::OK, body));
    }

    /// A CA's error bodies: a problem document gives its type and (truncated) detail; anything
    /// else (a page, a key-looking PEM, megabytes) only its size.
    #[test]
    fn error_bodies_are_summarized_not_quoted() {
        let problem = br#"{"type":"urn:ietf:params:acme:error:unauthorized","detail":"no"}"#;
        assert_eq!(
            body_summary(problem),
            "urn:ietf:params:acme:error:unauthorized: no"
        );
        let secret =
            "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n";
        let page = format!("<html>{secret}{}</html>", "x".repeat(2 << 20));
        let summary = body_summary(page.as_bytes());
        assert_eq!(
            summary,
            format!("{} bytes, not a problem document", page.len())
        );
        let long =
            serde_json::json!({"type": "t", "detail": format!("{}\n{secret}", "d".repeat(5_000))});
        let summary = body_summary(long.to_string().as_bytes());
        assert!(
            summary.len() <= MAX_DETAIL + 10 && summary.starts_with("t: ddd"),
            "{summary}"
        );
        assert!(
            !summary.contains("PRIVATE KEY") && !summary.contains('\n'),
            "{summary}"
        );
    }

    #[test]
    fn alternate_links_are_parsed() {
        let mut h = HeaderMap::new();
        h.append(
            header::LINK,
            "<https://ca/cert/1/alt/1>;rel=\"alternate\""
                .parse()
                .unwrap(),
        );
        h.append(
            header::LINK,
            "<https://ca/dir>;rel=\"index\", <https://ca/cert/1/alt/2>; rel=\"alternate\""
                .parse()
                .unwrap(),
        );
        assert_eq!(
            alternate_links(&h),
            vec!["https://ca/cert/1/alt/1", "https://ca/cert/1/alt/2"]
        );
    }

    #[test]
    fn post_as_get_is_a_verifiable_es256_jws() {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, KeyPair, UnparsedPublicKey};
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &rng,
        )
        .unwrap();
        let signer = Signer::new(pkcs8.as_ref(), "https://ca/acct/1").unwrap();
        let jws: serde_json::Value =
            serde_json::from_str(&signer.post_as_get("n1", "https://ca/cert/1").unwrap()).unwrap();
        assert_eq!(jws["payload"], "");
        let protected = jws["protected"].as_str().unwrap();
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(protected).unwrap()).unwrap();
        assert_eq!(header["kid"], "https://ca/acct/1");
        assert_eq!(header["nonce"], "n1");
        assert_eq!(header["url"], "https://ca/cert/1");
        let sig = URL_SAFE_NO_PAD
            .decode(jws["signature"].as_str().unwrap())
            .unwrap();
        let public = signer.key.public_key().as_ref().to_vec();
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, public)
            .verify(format!("{protected}.").as_bytes(), &sig)
            .unwrap();
    }
}

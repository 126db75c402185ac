//! Cloudflare: TXT records created and deleted through the Cloudflare v4 REST API.
//!
//! - Auth: an API token (`Authorization: Bearer <token>`), as cert-manager's `apiTokenSecretRef`.
//!   The token needs `Zone:Read` and `DNS:Edit` on the zone. cert-manager's `email` field is
//!   accepted but not sent: tokens carry no email.
//! - Zone: found by name with `GET /zones?name=<candidate>`, walking up the labels of the record
//!   name (`_acme-challenge.a.b.example.com` tries `_acme-challenge.a.b.example.com`,
//!   `a.b.example.com`, `b.example.com`, `example.com`) until Cloudflare knows one. The zone
//!   found is remembered in memory for the record name.
//! - `present`: `POST /zones/{id}/dns_records` with `{"type":"TXT","name":..,"content":..,"ttl":60}`;
//!   Cloudflare's "identical record already exists" (81058, and 81057 "record already exists")
//!   counts as success.
//! - `clean_up`: `GET /zones/{id}/dns_records?type=TXT&name=<fqdn>&page=N&per_page=100` over all
//!   pages, then `DELETE /zones/{id}/dns_records/{record_id}` for each record whose content is the
//!   value (Cloudflare may return TXT content wrapped in quotes; both forms match). No such
//!   record, or "record does not exist" (81044) on delete, is success.
//! - Errors: a non-2xx status or `"success": false` becomes [`Dns01Error::Api`] with Cloudflare's
//!   `errors[].code` and `message`, naming the zone or record involved; an API that cannot be
//!   reached is [`Dns01Error::Io`] / [`Dns01Error::Timeout`].
//! - The API base URL is configurable ([`DEFAULT_BASE_URL`] by default); `http://` URLs are
//!   allowed so that the provider can be pointed at a local test server.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{Method, Request, StatusCode, header};
use http_body_util::Full;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use serde_json::json;

use super::{Dns01Error, DnsProvider, normalize_name};
use crate::acme::http::{Trust, connector};
use crate::outbound;

/// Cloudflare's v4 API.
pub const DEFAULT_BASE_URL: &str = "https://api.cloudflare.com/client/v4";

/// The TTL of the TXT records we create (cert-manager uses the same; Cloudflare's minimum).
pub const DEFAULT_TTL: u32 = 60;

/// How long one API request (including reading the answer) may take.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How the Cloudflare API is named in errors.
const SERVICE: &str = "Cloudflare API";

/// Records asked for per page when listing (Cloudflare's maximum for DNS records is larger;
/// a server may still answer with smaller pages, which are followed).
pub const PER_PAGE: u32 = 100;

/// Upper bound on pages followed when listing, so a misbehaving server cannot loop us forever.
const MAX_PAGES: u32 = 1000;

/// Cloudflare error codes that mean the record we create is already there.
const ALREADY_EXISTS: [i64; 2] = [81057, 81058];

/// Cloudflare error code for deleting a record that is gone.
const RECORD_DOES_NOT_EXIST: i64 = 81044;

pub(crate) const USER_AGENT: &str = concat!("ferrocert/", env!("CARGO_PKG_VERSION"));

/// How to reach a Cloudflare account.
#[derive(Clone)]
pub struct CloudflareConfig {
    /// The API token (from `apiTokenSecretRef`).
    pub api_token: String,
    /// cert-manager's `email`; accepted but unused with API tokens.
    pub email: Option<String>,
    /// The API base URL without a trailing slash, e.g. [`DEFAULT_BASE_URL`].
    pub base_url: String,
}

impl CloudflareConfig {
    /// A token for the public Cloudflare API.
    pub fn new(api_token: impl Into<String>) -> Self {
        CloudflareConfig {
            api_token: api_token.into(),
            email: None,
            base_url: DEFAULT_BASE_URL.to_string(),
        }
    }
}

impl std::fmt::Debug for CloudflareConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudflareConfig")
            .field("api_token", &"<redacted>")
            .field("email", &self.email)
            .field("base_url", &self.base_url)
            .finish()
    }
}

/// A Cloudflare zone: its id and name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zone {
    pub id: String,
    pub name: String,
}

enum Client {
    Https(HyperClient<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>),
    Http(HyperClient<HttpConnector, Full<Bytes>>),
}

/// The Cloudflare DNS provider.
pub struct Cloudflare {
    config: CloudflareConfig,
    client: Client,
    timeout: Duration,
    /// Record name → the zone that holds it.
    zones: Mutex<HashMap<String, Zone>>,
}

impl std::fmt::Debug for Cloudflare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cloudflare")
            .field("config", &self.config)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The envelope of every Cloudflare v4 answer.
#[derive(Debug, Deserialize)]
struct Envelope<T> {
    #[serde(default)]
    success: bool,
    #[serde(default)]
    errors: Vec<ApiMessage>,
    result: Option<T>,
    result_info: Option<ResultInfo>,
}

#[derive(Debug, Deserialize)]
struct ApiMessage {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    message: String,
}

#[derive(Debug, Deserialize)]
struct ResultInfo {
    #[serde(default)]
    total_pages: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct ZoneResult {
    id: String,
    name: String,
}

#[derive(Debug, Deserialize)]
struct RecordResult {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    content: String,
}

/// An API answer that was not a success: the HTTP status and Cloudflare's errors.
struct Failure {
    status: StatusCode,
    errors: Vec<ApiMessage>,
    /// The body, when it was not a Cloudflare envelope.
    raw: Option<String>,
}

impl Failure {
    fn has_code(&self, codes: &[i64]) -> bool {
        self.errors.iter().any(|e| codes.contains(&e.code))
    }

    fn into_error(self, op: String, endpoint: &str) -> Dns01Error {
        let detail = if self.errors.is_empty() {
            match self.raw {
                Some(raw) if !raw.trim().is_empty() => truncate(raw.trim(), 300),
                _ => "no error details in the answer".to_string(),
            }
        } else {
            self.errors
                .iter()
                .map(|e| format!("{}: {}", e.code, e.message))
                .collect::<Vec<_>>()
                .join("; ")
        };
        Dns01Error::Api {
            provider: "Cloudflare",
            endpoint: endpoint.to_string(),
            op,
            status: self.status.as_u16(),
            code: self.errors.first().map(|e| e.code.to_string()),
            detail,
        }
    }
}

impl Cloudflare {
    /// A provider trusting the machine's root certificates for `https://` base URLs.
    pub fn new(config: CloudflareConfig) -> Result<Self, Dns01Error> {
        Self::with_trust(config, Trust::System)
    }

    /// A provider with an explicit TLS trust choice for `https://` base URLs (ignored for
    /// `http://`).
    pub fn with_trust(mut config: CloudflareConfig, trust: Trust<'_>) -> Result<Self, Dns01Error> {
        config.api_token = config.api_token.trim().to_string();
        if config.api_token.is_empty() {
            return Err(Dns01Error::Config(
                "Cloudflare: the API token is empty (check apiTokenSecretRef)".into(),
            ));
        }
        if config.api_token.contains(|c: char| c.is_control()) {
            return Err(Dns01Error::Config(
                "Cloudflare: the API token contains control characters".into(),
            ));
        }
        config.base_url = config.base_url.trim().trim_end_matches('/').to_string();
        let client = if config.base_url.starts_with("https://") {
            let https = connector(trust)
                .map_err(|e| Dns01Error::Config(format!("Cloudflare: TLS setup: {e}")))?;
            Client::Https(HyperClient::builder(TokioExecutor::new()).build(https))
        } else if config.base_url.starts_with("http://") {
            Client::Http(
                HyperClient::builder(TokioExecutor::new())
                    .build(outbound::http_connector(&outbound::Limits::DEFAULT)),
            )
        } else {
            return Err(Dns01Error::Config(format!(
                "Cloudflare: API base URL {:?} must start with https:// (or http:// for tests)",
                config.base_url
            )));
        };
        if config.base_url.parse::<http::Uri>().is_err() {
            return Err(Dns01Error::Config(format!(
                "Cloudflare: API base URL {:?} is not a valid URL",
                config.base_url
            )));
        }
        Ok(Cloudflare {
            config,
            client,
            timeout: DEFAULT_REQUEST_TIMEOUT,
            zones: Mutex::new(HashMap::new()),
        })
    }

    /// Changes how long one API request may take.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The configuration in use (token redacted in `Debug`).
    pub fn config(&self) -> &CloudflareConfig {
        &self.config
    }

    /// The zone cache, tolerant of a poisoned lock (the map stays usable).
    fn zone_cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Zone>> {
        self.zones.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The Cloudflare zone holding `fqdn`: the longest suffix of it that Cloudflare knows as a
    /// zone. Remembered per record name.
    pub async fn zone_for(&self, fqdn: &str) -> Result<Zone, Dns01Error> {
        let name = checked_name(fqdn)?;
        if let Some(zone) = self.zone_cache().get(&name) {
            return Ok(zone.clone());
        }
        let mut tried = Vec::new();
        let mut candidate = name.as_str();
        loop {
            let path = format!("/zones?name={}", query_escape(candidate));
            let op = format!("looking up zone {candidate} (for {name})");
            let (envelope, _) = self
                .call::<Vec<ZoneResult>>(Method::GET, &path, None)
                .await
                .map_err(|f| self.fail(f, op))?;
            let found = envelope
                .result
                .unwrap_or_default()
                .into_iter()
                .find(|z| normalize_name(&z.name) == candidate);
            if let Some(z) = found {
                let zone = Zone {
                    id: z.id,
                    name: normalize_name(&z.name),
                };
                self.zone_cache().insert(name.clone(), zone.clone());
                return Ok(zone);
            }
            tried.push(candidate.to_string());
            match candidate.split_once('.') {
                Some((_, parent)) if parent.contains('.') => candidate = parent,
                _ => break,
            }
        }
        Err(Dns01Error::ZoneNotFound {
            name,
            server: self.config.base_url.clone(),
            detail: format!(
                "the API token sees none of the zones {}; check the token's zone permissions",
                tried.join(", ")
            ),
        })
    }

    async fn present_inner(&self, fqdn: &str, value: &str) -> Result<(), Dns01Error> {
        let name = checked_name(fqdn)?;
        let zone = self.zone_for(&name).await?;
        let body = json!({
            "type": "TXT",
            "name": name,
            "content": value,
            "ttl": DEFAULT_TTL,
        });
        let path = format!("/zones/{}/dns_records", path_escape(&zone.id));
        match self
            .call::<serde_json::Value>(Method::POST, &path, Some(body))
            .await
        {
            Ok(_) => Ok(()),
            Err(Ok(f)) if f.has_code(&ALREADY_EXISTS) => Ok(()),
            Err(f) => Err(self.fail(
                f,
                format!(
                    "creating TXT record {name} = {value:?} in zone {} (id {})",
                    zone.name, zone.id
                ),
            )),
        }
    }

    async fn clean_up_inner(&self, fqdn: &str, value: &str) -> Result<(), Dns01Error> {
        let name = checked_name(fqdn)?;
        let zone = self.zone_for(&name).await?;
        let quoted = format!("\"{value}\"");
        let mut matching = Vec::new();
        let mut page = 1u32;
        loop {
            let path = format!(
                "/zones/{}/dns_records?type=TXT&name={}&page={page}&per_page={PER_PAGE}",
                path_escape(&zone.id),
                query_escape(&name)
            );
            let (envelope, _) = self
                .call::<Vec<RecordResult>>(Method::GET, &path, None)
                .await
                .map_err(|f| {
                    self.fail(
                        f,
                        format!(
                            "listing TXT records {name} in zone {} (id {}), page {page}",
                            zone.name, zone.id
                        ),
                    )
                })?;
            let records = envelope.result.unwrap_or_default();
            let empty = records.is_empty();
            matching.extend(records.into_iter().filter(|r| {
                let content = r.content.trim();
                (r.name.is_empty() || normalize_name(&r.name) == name)
                    && (content == value || content == quoted)
            }));
            let total_pages = envelope
                .result_info
                .and_then(|i| i.total_pages)
                .unwrap_or(1);
            if empty || page >= total_pages || page >= MAX_PAGES {
                break;
            }
            page += 1;
        }
        for record in matching {
            let path = format!(
                "/zones/{}/dns_records/{}",
                path_escape(&zone.id),
                path_escape(&record.id)
            );
            match self
                .call::<serde_json::Value>(Method::DELETE, &path, None)
                .await
            {
                Ok(_) => {}
                Err(Ok(f)) if f.has_code(&[RECORD_DOES_NOT_EXIST]) => {}
                Err(f) => {
                    return Err(self.fail(
                        f,
                        format!(
                            "deleting TXT record {name} = {value:?} (id {}) in zone {} (id {})",
                            record.id, zone.name, zone.id
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn fail(&self, failure: Result<Failure, Dns01Error>, op: String) -> Dns01Error {
        match failure {
            Ok(f) => f.into_error(op, &self.config.base_url),
            Err(Dns01Error::Io { server, source, .. }) => Dns01Error::Io { server, op, source },
            Err(Dns01Error::Timeout {
                server, timeout, ..
            }) => Dns01Error::Timeout {
                server,
                op,
                timeout,
            },
            Err(Dns01Error::Protocol { server, detail, .. }) => {
                Dns01Error::Protocol { server, op, detail }
            }
            Err(other) => other,
        }
    }

    /// One API request. `Ok` is a 2xx answer with `"success": true`; `Err(Ok(failure))` is an
    /// answer that says no; `Err(Err(_))` is a transport or parse problem (its `op` is filled in
    /// by [`Cloudflare::fail`]).
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(Envelope<T>, StatusCode), Result<Failure, Dns01Error>> {
        let server = self.config.base_url.clone();
        let uri = format!("{}{}", self.config.base_url, path_and_query);
        let body = match body {
            // A `Value` always serializes; an empty body would be refused by the API anyway.
            Some(v) => Bytes::from(serde_json::to_vec(&v).unwrap_or_default()),
            None => Bytes::new(),
        };
        let request = Request::builder()
            .method(method)
            .uri(&uri)
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", self.config.api_token),
            )
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .header(header::USER_AGENT, USER_AGENT)
            .body(Full::new(body))
            .map_err(|e| {
                Err(Dns01Error::Config(format!(
                    "Cloudflare: cannot build a request to {uri}: {e}"
                )))
            })?;
        // Connect timeout, total timeout and body limit: see crate::outbound.
        let limits = outbound::Limits::DEFAULT.with_timeout(self.timeout);
        let sent = match &self.client {
            Client::Https(c) => outbound::send(c, request, &limits, SERVICE).await,
            Client::Http(c) => outbound::send(c, request, &limits, SERVICE).await,
        };
        let (status, bytes) = match sent {
            Ok(response) => (response.status(), response.into_body()),
            Err(e) => {
                return Err(Err(super::outbound_error(
                    &format!("Cloudflare API {server}"),
                    "",
                    e,
                )));
            }
        };
        match serde_json::from_slice::<Envelope<T>>(&bytes) {
            Ok(envelope) if status.is_success() && envelope.success => Ok((envelope, status)),
            Ok(envelope) => Err(Ok(Failure {
                status,
                errors: envelope.errors,
                raw: None,
            })),
            Err(_) if !status.is_success() => {
                // Not an envelope we can read; it may still carry Cloudflare's errors.
                let errors = serde_json::from_slice::<Envelope<serde_json::Value>>(&bytes)
                    .map(|e| e.errors)
                    .unwrap_or_default();
                Err(Ok(Failure {
                    status,
                    errors,
                    raw: Some(String::from_utf8_lossy(&bytes).into_owned()),
                }))
            }
            Err(e) => Err(Err(Dns01Error::Protocol {
                server,
                op: String::new(),
                detail: format!(
                    "HTTP {}: unexpected JSON ({e}): {}",
                    status.as_u16(),
                    truncate(&String::from_utf8_lossy(&bytes), 300)
                ),
            })),
        }
    }
}

impl DnsProvider for Cloudflare {
    fn present<'a>(
        &'a self,
        fqdn: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<(), Dns01Error>> {
        Box::pin(self.present_inner(fqdn, value))
    }

    fn clean_up<'a>(
        &'a self,
        fqdn: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<(), Dns01Error>> {
        Box::pin(self.clean_up_inner(fqdn, value))
    }
}

fn checked_name(fqdn: &str) -> Result<String, Dns01Error> {
    let name = normalize_name(fqdn);
    let bad = |reason: &str| Dns01Error::InvalidName {
        name: fqdn.to_string(),
        reason: reason.to_string(),
    };
    if name.is_empty() {
        return Err(bad("empty"));
    }
    if name.split('.').any(str::is_empty) {
        return Err(bad("empty label"));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("contains whitespace"));
    }
    Ok(name)
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn path_escape(s: &str) -> String {
    query_escape(s)
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use axum::Router;
    use axum::extract::{Request, State};
    use axum::response::{IntoResponse, Response};
    use serde_json::Value;

    use super::*;

    const TOKEN: &str = "test-token-123";

    /// One request as the fake API saw it.
    #[derive(Clone, Debug)]
    struct Seen {
        method: String,
        path: String,
        query: Vec<(String, String)>,
        headers: http::HeaderMap,
        body: Option<Value>,
    }

    impl Seen {
        fn q(&self, key: &str) -> Option<&str> {
            self.query
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        }
    }

    #[derive(Clone, Debug)]
    struct Rec {
        id: String,
        zone_id: String,
        name: String,
        content: String,
    }

    /// A fake Cloudflare v4 API, answering as the documented one does.
    struct Fake {
        zones: Vec<(String, String)>,
        /// The largest page the server hands out, whatever `per_page` asks for.
        max_per_page: usize,
        /// Return TXT content wrapped in quotes (as Cloudflare does for some records).
        quote_content: bool,
        records: Mutex<Vec<Rec>>,
        seen: Mutex<Vec<Seen>>,
        next_id: AtomicU32,
    }

    impl Fake {
        fn new(zones: &[(&str, &str)]) -> Self {
            Fake {
                zones: zones
                    .iter()
                    .map(|(i, n)| (i.to_string(), n.to_string()))
                    .collect(),
                max_per_page: 100,
                quote_content: false,
                records: Mutex::new(Vec::new()),
                seen: Mutex::new(Vec::new()),
                next_id: AtomicU32::new(1),
            }
        }

        fn add(&self, zone_id: &str, name: &str, content: &str) -> String {
            let id = format!("rec{}", self.next_id.fetch_add(1, Ordering::SeqCst));
            self.records.lock().unwrap().push(Rec {
                id: id.clone(),
                zone_id: zone_id.into(),
                name: name.into(),
                content: content.into(),
            });
            id
        }

        fn contents(&self, name: &str) -> Vec<String> {
            let mut v: Vec<_> = self
                .records
                .lock()
                .unwrap()
                .iter()
                .filter(|r| r.name == name)
                .map(|r| r.content.clone())
                .collect();
            v.sort();
            v
        }

        fn seen(&self) -> Vec<Seen> {
            self.seen.lock().unwrap().clone()
        }

        fn clear_seen(&self) {
            self.seen.lock().unwrap().clear();
        }
    }

    fn pct_decode(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' && i + 2 < b.len() {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            } else {
                out.push(if b[i] == b'+' { b' ' } else { b[i] });
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }

    fn reply(status: StatusCode, body: Value) -> Response {
        (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    }

    fn cf_error(status: StatusCode, code: i64, message: &str) -> Response {
        reply(
            status,
            json!({"success": false, "errors": [{"code": code, "message": message}],
                   "messages": [], "result": null}),
        )
    }

    async fn handle(State(fake): State<Arc<Fake>>, req: Request) -> Response {
        let (parts, body) = req.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        let query: Vec<(String, String)> = parts
            .uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|s| !s.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (pct_decode(k), pct_decode(v))
            })
            .collect();
        let seen = Seen {
            method: parts.method.to_string(),
            path: parts.uri.path().to_string(),
            query,
            headers: parts.headers.clone(),
            body: (!bytes.is_empty()).then(|| serde_json::from_slice(&bytes).unwrap()),
        };
        fake.seen.lock().unwrap().push(seen.clone());

        if parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            != Some(&format!("Bearer {TOKEN}"))
        {
            return cf_error(StatusCode::FORBIDDEN, 10000, "Authentication error");
        }
        let Some(path) = seen.path.strip_prefix("/client/v4") else {
            return cf_error(StatusCode::NOT_FOUND, 7000, "No route for that URI");
        };
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (seen.method.as_str(), segments.as_slice()) {
            ("GET", ["zones"]) => {
                let name = seen.q("name").unwrap_or_default();
                let result: Vec<Value> = fake
                    .zones
                    .iter()
                    .filter(|(_, n)| n == name)
                    .map(|(id, n)| json!({"id": id, "name": n, "status": "active"}))
                    .collect();
                let count = result.len();
                reply(
                    StatusCode::OK,
                    json!({"success": true, "errors": [], "messages": [], "result": result,
                           "result_info": {"page": 1, "per_page": 20, "count": count,
                                           "total_count": count, "total_pages": 1}}),
                )
            }
            ("POST", ["zones", zone_id, "dns_records"]) => {
                let body = seen.body.clone().unwrap();
                let (name, content) = (
                    body["name"].as_str().unwrap().to_string(),
                    body["content"].as_str().unwrap().to_string(),
                );
                let exists = fake
                    .records
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|r| r.zone_id == *zone_id && r.name == name && r.content == content);
                if exists {
                    return cf_error(
                        StatusCode::BAD_REQUEST,
                        81058,
                        "An identical record already exists.",
                    );
                }
                let id = fake.add(zone_id, &name, &content);
                reply(
                    StatusCode::OK,
                    json!({"success": true, "errors": [], "messages": [],
                           "result": {"id": id, "type": "TXT", "name": name,
                                      "content": content, "ttl": body["ttl"]}}),
                )
            }
            ("GET", ["zones", zone_id, "dns_records"]) => {
                let name = seen.q("name").unwrap_or_default();
                let page: usize = seen.q("page").map_or(1, |p| p.parse().unwrap());
                let per_page: usize = seen
                    .q("per_page")
                    .map_or(100, |p| p.parse().unwrap())
                    .min(fake.max_per_page);
                let all: Vec<Rec> = fake
                    .records
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|r| r.zone_id == *zone_id && r.name == name)
                    .cloned()
                    .collect();
                let total_pages = all.len().div_ceil(per_page).max(1);
                let result: Vec<Value> = all
                    .iter()
                    .skip((page - 1) * per_page)
                    .take(per_page)
                    .map(|r| {
                        let content = if fake.quote_content {
                            format!("\"{}\"", r.content)
                        } else {
                            r.content.clone()
                        };
                        json!({"id": r.id, "type": "TXT", "name": r.name,
                               "content": content, "ttl": 60})
                    })
                    .collect();
                let count = result.len();
                reply(
                    StatusCode::OK,
                    json!({"success": true, "errors": [], "messages": [], "result": result,
                           "result_info": {"page": page, "per_page": per_page, "count": count,
                                           "total_count": all.len(),
                                           "total_pages": total_pages}}),
                )
            }
            ("DELETE", ["zones", zone_id, "dns_records", record_id]) => {
                let mut records = fake.records.lock().unwrap();
                let before = records.len();
                records.retain(|r| !(r.zone_id == *zone_id && r.id == *record_id));
                if records.len() == before {
                    return cf_error(StatusCode::NOT_FOUND, 81044, "Record does not exist.");
                }
                reply(
                    StatusCode::OK,
                    json!({"success": true, "errors": [], "messages": [],
                           "result": {"id": record_id}}),
                )
            }
            _ => cf_error(StatusCode::NOT_FOUND, 7000, "No route for that URI"),
        }
    }

    async fn serve(fake: Fake) -> (Arc<Fake>, String) {
        let fake = Arc::new(fake);
        let app = Router::new().fallback(handle).with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (fake, format!("http://{addr}/client/v4"))
    }

    fn provider(base_url: &str, token: &str) -> Cloudflare {
        Cloudflare::new(CloudflareConfig {
            api_token: token.into(),
            email: Some("admin@example.com".into()),
            base_url: base_url.into(),
        })
        .unwrap()
        .with_timeout(Duration::from_secs(5))
    }

    fn zones() -> Fake {
        Fake::new(&[("zone-ex", "example.com"), ("zone-other", "other.org")])
    }

    const NAME: &str = "_acme-challenge.a.b.example.com";

    #[tokio::test]
    async fn present_walks_up_to_the_zone_and_posts_the_record() {
        let (fake, url) = serve(zones()).await;
        let cf = provider(&url, TOKEN);
        cf.present("_acme-challenge.A.b.Example.com.", "v1")
            .await
            .unwrap();

        let seen = fake.seen();
        let lookups: Vec<_> = seen
            .iter()
            .filter(|s| s.path == "/client/v4/zones")
            .map(|s| {
                assert_eq!(s.method, "GET");
                assert_eq!(s.query.len(), 1, "{:?}", s.query);
                s.q("name").unwrap().to_string()
            })
            .collect();
        assert_eq!(
            lookups,
            [
                "_acme-challenge.a.b.example.com",
                "a.b.example.com",
                "b.example.com",
                "example.com"
            ]
        );
        assert_eq!(seen.len(), 5);
        let post = &seen[4];
        assert_eq!(post.method, "POST");
        assert_eq!(post.path, "/client/v4/zones/zone-ex/dns_records");
        assert!(post.query.is_empty());
        assert_eq!(
            post.body.as_ref().unwrap(),
            &json!({"type": "TXT", "name": NAME, "content": "v1", "ttl": 60})
        );
        for s in &seen {
            assert_eq!(s.headers[header::AUTHORIZATION], "Bearer test-token-123");
            assert_eq!(s.headers[header::CONTENT_TYPE], "application/json");
            let ua = s.headers[header::USER_AGENT].to_str().unwrap();
            assert!(ua.starts_with("ferrocert/"), "{ua}");
            // The email is not sent with a token.
            assert!(!s.headers.contains_key("x-auth-email"));
        }
        assert_eq!(fake.contents(NAME), ["v1"]);

        // The zone is remembered: a second value at the same name goes straight to the POST.
        fake.clear_seen();
        cf.present(NAME, "v2").await.unwrap();
        let seen = fake.seen();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].method, "POST");
        assert_eq!(fake.contents(NAME), ["v1", "v2"]);
        assert_eq!(
            cf.zone_for(NAME).await.unwrap(),
            Zone {
                id: "zone-ex".into(),
                name: "example.com".into()
            }
        );
    }

    #[tokio::test]
    async fn clean_up_removes_only_the_matching_value() {
        let (fake, url) = serve(zones()).await;
        let cf = provider(&url, TOKEN);
        cf.present(NAME, "wildcard-value").await.unwrap();
        cf.present(NAME, "apex-value").await.unwrap();
        fake.add("zone-ex", "_acme-challenge.example.com", "wildcard-value");
        fake.clear_seen();

        cf.clean_up(NAME, "wildcard-value").await.unwrap();
        assert_eq!(fake.contents(NAME), ["apex-value"]);
        assert_eq!(
            fake.contents("_acme-challenge.example.com"),
            ["wildcard-value"]
        );

        let seen = fake.seen();
        assert_eq!(seen.len(), 2, "{seen:?}");
        let list = &seen[0];
        assert_eq!(list.method, "GET");
        assert_eq!(list.path, "/client/v4/zones/zone-ex/dns_records");
        assert_eq!(list.q("type"), Some("TXT"));
        assert_eq!(list.q("name"), Some(NAME));
        assert_eq!(list.q("page"), Some("1"));
        assert_eq!(list.q("per_page"), Some("100"));
        assert!(list.body.is_none());
        let delete = &seen[1];
        assert_eq!(delete.method, "DELETE");
        assert_eq!(delete.path, "/client/v4/zones/zone-ex/dns_records/rec1");
        assert_eq!(
            delete.headers[header::AUTHORIZATION],
            "Bearer test-token-123"
        );

        // Cleaning up a value that is gone succeeds without deleting anything.
        fake.clear_seen();
        cf.clean_up(NAME, "wildcard-value").await.unwrap();
        assert!(fake.seen().iter().all(|s| s.method == "GET"));
        assert_eq!(fake.contents(NAME), ["apex-value"]);

        cf.clean_up(NAME, "apex-value").await.unwrap();
        assert!(fake.contents(NAME).is_empty());
    }

    #[tokio::test]
    async fn clean_up_follows_pages_and_matches_quoted_content() {
        let mut f = zones();
        f.max_per_page = 2;
        f.quote_content = true;
        let (fake, url) = serve(f).await;
        fake.add("zone-ex", NAME, "first");
        fake.add("zone-ex", NAME, "second");
        let target = fake.add("zone-ex", NAME, "third");
        let cf = provider(&url, TOKEN);
        cf.zone_for(NAME).await.unwrap();
        fake.clear_seen();

        cf.clean_up(NAME, "third").await.unwrap();
        assert_eq!(fake.contents(NAME), ["first", "second"]);
        let seen = fake.seen();
        let pages: Vec<_> = seen
            .iter()
            .filter(|s| s.method == "GET")
            .map(|s| s.q("page").unwrap().to_string())
            .collect();
        assert_eq!(pages, ["1", "2"]);
        let deletes: Vec<_> = seen.iter().filter(|s| s.method == "DELETE").collect();
        assert_eq!(deletes.len(), 1);
        assert_eq!(
            deletes[0].path,
            format!("/client/v4/zones/zone-ex/dns_records/{target}")
        );
    }

    #[tokio::test]
    async fn identical_record_counts_as_success() {
        let (fake, url) = serve(zones()).await;
        let cf = provider(&url, TOKEN);
        cf.present(NAME, "v").await.unwrap();
        fake.clear_seen();
        cf.present(NAME, "v").await.unwrap();
        let seen = fake.seen();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].method, "POST");
        assert_eq!(fake.contents(NAME), ["v"]);
    }

    #[tokio::test]
    async fn auth_error_surfaces_code_and_message() {
        let (_fake, url) = serve(zones()).await;
        let cf = provider(&url, "wrong-token");
        let err = cf.present(NAME, "v").await.unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(
                err,
                Dns01Error::Api {
                    status: 403,
                    provider: "Cloudflare",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(text.contains("10000"), "{text}");
        assert!(text.contains("Authentication error"), "{text}");
        assert!(text.contains("HTTP 403"), "{text}");
        assert!(text.contains(NAME), "{text}");
        assert!(
            text.starts_with(&format!("Cloudflare API at {url} refused ")),
            "{text}"
        );
        assert!(!err.is_transient());
        assert_eq!(err.metric_label(), "api");

        let err = cf.clean_up(NAME, "v").await.unwrap_err();
        assert!(err.to_string().contains("Authentication error"), "{err}");
    }

    #[tokio::test]
    async fn errors_on_record_requests_name_the_zone_and_record() {
        let (fake, url) = serve(zones()).await;
        let cf = provider(&url, TOKEN);
        cf.zone_for(NAME).await.unwrap();
        // Same cache, different token: the POST is refused.
        let refused = Cloudflare {
            config: CloudflareConfig {
                api_token: "revoked".into(),
                ..cf.config().clone()
            },
            ..provider(&url, TOKEN)
        };
        *refused.zones.lock().unwrap() = cf.zones.lock().unwrap().clone();
        fake.clear_seen();
        let text = refused.present(NAME, "v").await.unwrap_err().to_string();
        assert_eq!(
            text,
            format!(
                "Cloudflare API at {url} refused creating TXT record {NAME} = \"v\" in zone \
                 example.com (id zone-ex): HTTP 403: 10000: Authentication error"
            )
        );
        assert_eq!(fake.seen().len(), 1);
    }

    #[tokio::test]
    async fn unknown_zone_is_zone_not_found() {
        let (_fake, url) = serve(zones()).await;
        let cf = provider(&url, TOKEN);
        let err = cf
            .present("_acme-challenge.example.net", "v")
            .await
            .unwrap_err();
        assert!(matches!(err, Dns01Error::ZoneNotFound { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("_acme-challenge.example.net, example.net"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn unreachable_api_is_a_transient_io_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let cf = provider(&format!("http://{addr}/client/v4"), TOKEN);
        let err = cf.present(NAME, "v").await.unwrap_err();
        assert!(matches!(err, Dns01Error::Io { .. }), "{err:?}");
        assert!(err.is_transient());
        assert!(err.to_string().contains("looking up zone"), "{err}");
    }

    #[test]
    fn config_checks() {
        assert!(matches!(
            Cloudflare::new(CloudflareConfig::new("  ")),
            Err(Dns01Error::Config(_))
        ));
        let bad_url = CloudflareConfig {
            base_url: "ftp://x".into(),
            ..CloudflareConfig::new("t")
        };
        assert!(matches!(
            Cloudflare::new(bad_url),
            Err(Dns01Error::Config(_))
        ));
        let cfg = CloudflareConfig::new("secret-token");
        assert_eq!(cfg.base_url, DEFAULT_BASE_URL);
        assert!(!format!("{cfg:?}").contains("secret-token"));
        let cf = Cloudflare::with_trust(cfg, Trust::Insecure).unwrap();
        assert!(!format!("{cf:?}").contains("secret-token"));
        assert_eq!(query_escape("_a-b.c~d*e f"), "_a-b.c~d%2Ae%20f");
    }
}

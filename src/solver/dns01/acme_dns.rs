//! acme-dns (github.com/joohoi/acme-dns): a small DNS server with an HTTP API that serves only
//! ACME challenge TXT records. Each domain is registered once (`/register`), which gives a
//! `subdomain` of the acme-dns zone plus credentials; the domain's owner points
//! `_acme-challenge.<domain>` at `<subdomain>.<acme-dns zone>` (the `fulldomain`) with a CNAME,
//! once. From then on a challenge is a `POST /update` with `{"subdomain", "txt"}` and the
//! `X-Api-User` / `X-Api-Key` headers.
//!
//! - Accounts: cert-manager's `dns01.acmeDNS.accountSecretRef` format, a JSON object from domain
//!   (without `*.`) to `{username, password, fulldomain, subdomain, allowfrom}`, as acme-dns's
//!   `/register` answers and its clients store it.
//! - The record is written at the account's `fulldomain`, not at `_acme-challenge.<domain>`:
//!   [`AcmeDns::record_name`] tells the caller, which records that name in status (write-ahead)
//!   and checks propagation there.
//! - `clean_up` sends nothing: acme-dns has no delete; it keeps the two most recent values per
//!   subdomain (a wildcard and its apex fit), and old values do no harm.
//! - Every request goes through [`crate::outbound`] (connect and total timeouts, body limit).

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{Method, Request, header};
use http_body_util::Full;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

use super::{CHALLENGE_LABEL, Dns01Error, DnsProvider, normalize_name};
use crate::acme::http::{Trust, connector};
use crate::outbound;

/// How the acme-dns API is named in errors.
const SERVICE: &str = "acme-dns API";

/// How long one API request (including reading the answer) may take.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// One registered domain, as acme-dns's `/register` answers.
#[derive(Clone, Deserialize, PartialEq, Eq)]
pub struct Account {
    pub username: String,
    pub password: String,
    pub fulldomain: String,
    pub subdomain: String,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.debug_struct("Account")
            .field("username", &self.username)
            .field("fulldomain", &self.fulldomain)
            .field("subdomain", &self.subdomain)
            .finish_non_exhaustive()
    }
}

/// Reads the account Secret's JSON: domain → account. Domains are normalized (lowercase, no
/// trailing dot, no `*.`). Pure.
///
/// A parse error says where and what kind of problem, never serde's own words: those quote the
/// offending value (`invalid type: string "hunter2"`), which may be a password or username.
pub fn parse_accounts(json: &str) -> Result<BTreeMap<String, Account>, Dns01Error> {
    let raw: BTreeMap<String, Account> = serde_json::from_str(json).map_err(|e| {
        Dns01Error::Config(format!(
            "acme-dns: the account Secret is not acme-dns account JSON (domain → {{username, \
             password, fulldomain, subdomain}}): {}",
            json_error_without_values(&e)
        ))
    })?;
    let mut accounts = BTreeMap::new();
    for (domain, account) in raw {
        let domain = normalize_name(domain.trim_start_matches("*."));
        if account.username.is_empty()
            || account.password.is_empty()
            || account.subdomain.is_empty()
            || account.fulldomain.is_empty()
        {
            return Err(Dns01Error::Config(format!(
                "acme-dns: the account for {domain} lacks username, password, subdomain or \
                 fulldomain"
            )));
        }
        if [&account.username, &account.password, &account.subdomain]
            .iter()
            .any(|v| v.contains(|c: char| c.is_control()))
        {
            return Err(Dns01Error::Config(format!(
                "acme-dns: the account for {domain} has control characters in its credentials"
            )));
        }
        accounts.insert(domain, account);
    }
    Ok(accounts)
}

/// Where and what kind of problem a JSON parse error is, without the values it may quote.
/// Pure.
fn json_error_without_values(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Syntax => "not valid JSON",
        Category::Eof => "the JSON ends early",
        Category::Io => "unreadable",
        Category::Data => {
            // The only serde message that quotes no value and helps: a field is missing (the
            // field names are ours).
            let text = e.to_string();
            if let Some(field) = ["username", "password", "fulldomain", "subdomain"]
                .into_iter()
                .find(|f| text.starts_with(&format!("missing field `{f}`")))
            {
                return format!(
                    "missing field `{field}` at line {} column {}",
                    e.line(),
                    e.column()
                );
            }
            "a value of the wrong type or shape"
        }
    };
    format!("{what} at line {} column {}", e.line(), e.column())
}

/// The domain whose account serves the challenge name `_acme-challenge.<domain>`. Pure.
fn domain_of(challenge_name: &str) -> String {
    let name = normalize_name(challenge_name);
    name.strip_prefix(&format!("{CHALLENGE_LABEL}."))
        .map(str::to_string)
        .unwrap_or(name)
}

enum Client {
    Https(HyperClient<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>),
    Http(HyperClient<HttpConnector, Full<Bytes>>),
}

/// The acme-dns provider.
pub struct AcmeDns {
    host: String,
    accounts: BTreeMap<String, Account>,
    client: Client,
    timeout: Duration,
}

impl AcmeDns {
    /// A provider for the acme-dns server at `host` (`https://...`, or `http://` for a server on
    /// a trusted network) with the given accounts, trusting the machine's roots.
    pub fn new(host: &str, accounts: BTreeMap<String, Account>) -> Result<Self, Dns01Error> {
        Self::with_trust(host, accounts, Trust::System)
    }

    pub fn with_trust(
        host: &str,
        accounts: BTreeMap<String, Account>,
        trust: Trust<'_>,
    ) -> Result<Self, Dns01Error> {
        let host = host.trim().trim_end_matches('/').to_string();
        if host.parse::<http::Uri>().is_err() {
            return Err(Dns01Error::Config(format!(
                "acme-dns: host {host:?} is not a valid URL"
            )));
        }
        let client = if host.starts_with("https://") {
            let https = connector(trust)
                .map_err(|e| Dns01Error::Config(format!("acme-dns: TLS setup: {e}")))?;
            Client::Https(HyperClient::builder(TokioExecutor::new()).build(https))
        } else if host.starts_with("http://") {
            Client::Http(
                HyperClient::builder(TokioExecutor::new())
                    .build(outbound::http_connector(&outbound::Limits::DEFAULT)),
            )
        } else {
            return Err(Dns01Error::Config(format!(
                "acme-dns: host {host:?} must start with https:// (or http://)"
            )));
        };
        Ok(AcmeDns {
            host,
            accounts,
            client,
            timeout: DEFAULT_REQUEST_TIMEOUT,
        })
    }

    /// Changes how long one API request may take.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The account serving `name`: by domain for `_acme-challenge.<domain>`, or by `fulldomain`
    /// (the name [`AcmeDns::record_name`] gave).
    fn account_for(&self, name: &str) -> Result<&Account, Dns01Error> {
        let name = normalize_name(name);
        self.accounts
            .get(&domain_of(&name))
            .or_else(|| {
                self.accounts
                    .values()
                    .find(|a| normalize_name(&a.fulldomain) == name)
            })
            .ok_or_else(|| {
                Dns01Error::Config(format!(
                    "acme-dns: the account Secret has no account for {} (it has: {})",
                    domain_of(&name),
                    self.accounts.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
            })
    }

    async fn update(&self, name: &str, value: &str) -> Result<(), Dns01Error> {
        let account = self.account_for(name)?;
        let uri = format!("{}/update", self.host);
        let body = serde_json::json!({"subdomain": account.subdomain, "txt": value});
        let request = Request::builder()
            .method(Method::POST)
            .uri(&uri)
            .header("X-Api-User", &account.username)
            .header("X-Api-Key", &account.password)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .header(header::USER_AGENT, super::cloudflare::USER_AGENT)
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| Dns01Error::Config(format!("acme-dns: cannot build a request: {e}")))?;
        let limits = outbound::Limits::DEFAULT.with_timeout(self.timeout);
        let sent = match &self.client {
            Client::Https(c) => outbound::send(c, request, &limits, SERVICE).await,
            Client::Http(c) => outbound::send(c, request, &limits, SERVICE).await,
        };
        let op = format!("updating the TXT record at {}", account.fulldomain);
        let response = sent.map_err(|e| {
            super::outbound_error(&format!("acme-dns server {}", self.host), &op, e)
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let detail = String::from_utf8_lossy(response.body());
        let detail: String = detail.chars().take(300).collect();
        Err(Dns01Error::Api {
            provider: "acme-dns",
            endpoint: self.host.clone(),
            op,
            status: status.as_u16(),
            code: None,
            detail: redact(&detail, &[&account.password, &account.username]),
        })
    }
}

/// `text` with every occurrence of each secret replaced by `<redacted>` (a server may echo the
/// request's `X-Api-User` / `X-Api-Key`). Pure.
fn redact(text: &str, secrets: &[&str]) -> String {
    let mut text = text.to_string();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        text = text.replace(secret, "<redacted>");
    }
    text
}

impl DnsProvider for AcmeDns {
    fn present<'a>(
        &'a self,
        fqdn: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<(), Dns01Error>> {
        Box::pin(self.update(fqdn, value))
    }

    fn clean_up<'a>(
        &'a self,
        _fqdn: &'a str,
        _value: &'a str,
    ) -> BoxFuture<'a, Result<(), Dns01Error>> {
        // acme-dns has no delete: it keeps the last two values per subdomain.
        Box::pin(async { Ok(()) })
    }

    fn record_name(&self, challenge_name: &str) -> Option<String> {
        self.account_for(challenge_name)
            .ok()
            .map(|a| normalize_name(&a.fulldomain))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    const ACCOUNTS: &str = r#"{
        "example.test": {"username": "u1", "password": "p1",
            "fulldomain": "abc.acme-dns.test.", "subdomain": "abc", "allowfrom": []},
        "*.Other.Test": {"username": "u2", "password": "p2",
            "fulldomain": "def.acme-dns.test", "subdomain": "def"}
    }"#;

    #[test]
    fn accounts_are_read_by_domain_without_the_wildcard() {
        let a = parse_accounts(ACCOUNTS).unwrap();
        assert_eq!(a["example.test"].subdomain, "abc");
        assert_eq!(a["other.test"].username, "u2");
        assert!(
            !format!("{:?}", a["other.test"]).contains("p2"),
            "no password in Debug"
        );
    }

    #[test]
    fn bad_account_json_says_what_is_expected() {
        let e = parse_accounts("[1,2]").unwrap_err().to_string();
        assert!(e.contains("domain →"), "{e}");
        let e = parse_accounts(
            r#"{"a.test": {"username": "", "password": "p", "fulldomain": "f", "subdomain": "s"}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("a.test"), "{e}");
    }

    /// Malformed account JSON of every kind, with a password and username in it: the error
    /// says where and what, and quotes neither.
    #[test]
    fn malformed_account_json_does_not_echo_credentials() {
        const PASSWORD: &str = "hunter2-Secret-Key-XYZ";
        const USER: &str = "user-eb3c-41d7";
        for json in [
            // One account without its domain key: serde quotes the first value.
            format!(r#"{{"username": "{USER}", "password": "{PASSWORD}"}}"#),
            format!(r#"{{"a.test": "{PASSWORD}"}}"#),
            format!(r#"{{"a.test": {{"username": 5, "password": "{PASSWORD}"}}}}"#),
            format!(r#"{{"a.test": {{"username": "{USER}", "password": ["{PASSWORD}"]}}}}"#),
            format!(r#"{{"a.test": {{"username": "{USER}", "password": "{PASSWORD}""#),
            format!(r#"{{"a.test": {{"username": "{USER}", "password": {PASSWORD}}}}}"#),
            format!(r#"["{USER}", "{PASSWORD}"]"#),
            format!(r#""{PASSWORD}""#),
            format!(
                "{{\"a.test\": {{\"username\": \"{USER}\", \"password\": \"{PASSWORD}\u{1}\", \
                 \"fulldomain\": \"f\", \"subdomain\": \"s\"}}}}"
            ),
        ] {
            let e = parse_accounts(&json).unwrap_err().to_string();
            assert!(
                !e.contains(PASSWORD) && !e.contains("hunter2"),
                "{json}: {e}"
            );
            assert!(!e.contains(USER), "{json}: {e}");
            assert!(e.contains("acme-dns"), "{e}");
        }
        let e = parse_accounts(r#"{"a.test": {"username": "u", "password": "p"}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing field `fulldomain` at line 1"), "{e}");
        let e = parse_accounts("{\n \"a.test\": 7}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("wrong type or shape at line 2"), "{e}");
    }

    #[test]
    fn credentials_echoed_by_the_server_are_redacted() {
        assert_eq!(
            redact("bad key p1 for user u1", &["p1", "u1", ""]),
            "bad key <redacted> for user <redacted>"
        );
    }

    #[test]
    fn the_record_goes_to_the_accounts_fulldomain() {
        let p = AcmeDns::new("http://127.0.0.1:1", parse_accounts(ACCOUNTS).unwrap()).unwrap();
        assert_eq!(
            p.record_name("_acme-challenge.example.test").as_deref(),
            Some("abc.acme-dns.test")
        );
        assert_eq!(
            p.record_name("_acme-challenge.other.test.").as_deref(),
            Some("def.acme-dns.test")
        );
        assert_eq!(p.record_name("_acme-challenge.unknown.test"), None);
        // The recorded name finds its account again (present after write-ahead).
        assert_eq!(p.account_for("abc.acme-dns.test").unwrap().username, "u1");
    }

    #[test]
    fn hosts_must_be_http_urls() {
        assert!(AcmeDns::new("ftp://x", BTreeMap::new()).is_err());
        assert!(AcmeDns::new("https://auth.acme-dns.io/", BTreeMap::new()).is_ok());
    }

    /// A one-request-at-a-time fake acme-dns `/update` endpoint: records what it got, answers
    /// `status`.
    async fn fake(status: u16) -> (String, Arc<Mutex<Vec<String>>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = vec![0u8; 8192];
                let n = s.read(&mut buf).await.unwrap_or(0);
                sink.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                let body = r#"{"txt": "ok"}"#;
                let _ = s
                    .write_all(
                        format!(
                            "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            }
        });
        (format!("http://{addr}"), seen)
    }

    #[tokio::test]
    async fn present_posts_the_subdomain_and_value_with_the_credentials() {
        let (host, seen) = fake(200).await;
        let p = AcmeDns::new(&host, parse_accounts(ACCOUNTS).unwrap()).unwrap();
        p.present("abc.acme-dns.test", "VALUE-43-chars")
            .await
            .unwrap();
        p.clean_up("abc.acme-dns.test", "VALUE-43-chars")
            .await
            .unwrap();
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1, "clean-up sends nothing");
        let req = seen[0].to_ascii_lowercase();
        assert!(req.starts_with("post /update "), "{req}");
        assert!(
            req.contains("x-api-user: u1") && req.contains("x-api-key: p1"),
            "{req}"
        );
        assert!(
            seen[0].contains(r#""subdomain":"abc""#)
                && seen[0].contains(r#""txt":"VALUE-43-chars""#),
            "{}",
            seen[0]
        );
    }

    #[tokio::test]
    async fn a_refusal_carries_the_status_and_body() {
        let (host, _) = fake(401).await;
        let p = AcmeDns::new(&host, parse_accounts(ACCOUNTS).unwrap()).unwrap();
        let e = p
            .present("_acme-challenge.example.test", "v")
            .await
            .unwrap_err();
        assert!(!e.is_transient());
        let text = e.to_string();
        assert!(
            text.contains("HTTP 401") && text.contains("acme-dns"),
            "{text}"
        );
    }

    /// A hostile server that accepts and never answers: the request ends at the timeout as a
    /// transient error (retried within the attempt, paced), never holding the worker longer.
    #[tokio::test]
    async fn a_server_that_never_answers_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = format!("http://{}", listener.local_addr().unwrap());
        let hold = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                open.push(s);
            }
        });
        let p = AcmeDns::new(&host, parse_accounts(ACCOUNTS).unwrap())
            .unwrap()
            .with_timeout(Duration::from_millis(300));
        let started = std::time::Instant::now();
        let e = p
            .present("_acme-challenge.example.test", "v")
            .await
            .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert!(e.is_transient(), "{e}");
        hold.abort();
    }
}

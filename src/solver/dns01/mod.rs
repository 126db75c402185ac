//! DNS-01: put a TXT value at `_acme-challenge.<name>` through a DNS provider, check that the
//! zone's authoritative nameservers serve it, and remove it again.
//!
//! - [`DnsProvider`] is the trait every provider implements (RFC 2136 in [`rfc2136`], Cloudflare
//!   in [`cloudflare`], Route53 in [`route53`], acme-dns in [`acme_dns`], cert-manager webhook solvers in
//!   [`webhook`]). `present` *adds* one value and `clean_up` removes exactly that value, so a
//!   wildcard and its apex (two values at one name) can be in flight at the same time.
//! - [`propagation`] is the self-check run before telling the CA: one round of queries per call,
//!   never a sleep; the caller schedules the next round.
//! - [`challenge_name`] and [`txt_value`] are the pure RFC 8555 §8.4 parts.
//!
//! Names: every function here accepts names with or without the trailing dot, in any case, and
//! returns them lowercase without the trailing dot (`_acme-challenge.example.test`).
//!
//! DNS messages are built, signed (TSIG) and parsed with `hickory-proto`; this module only moves
//! the encoded bytes over UDP (falling back to TCP when an answer comes back truncated).

use std::fmt;
use std::time::Duration;

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::future::BoxFuture;

pub mod acme_dns;
pub mod aws_credentials;
pub mod cloudflare;
pub mod propagation;
pub mod rfc2136;
pub mod route53;
pub mod sts;
pub mod webhook;
mod wire;

/// How long one DNS exchange (one query or one update, including a TCP retry) may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// The label under which ACME DNS-01 expects the TXT record (RFC 8555 §8.4).
pub const CHALLENGE_LABEL: &str = "_acme-challenge";

/// A DNS provider that can publish and withdraw ACME challenge TXT values.
///
/// Both operations are idempotent: presenting a value that is already there, or cleaning up a
/// value that is gone, succeeds. They never touch other TXT values at the same name.
///
/// The methods return boxed futures so that providers can be used as `dyn DnsProvider`.
pub trait DnsProvider: Send + Sync {
    /// Adds the TXT value `value` at `fqdn` (e.g. `_acme-challenge.example.test`), keeping any
    /// other values already there.
    fn present<'a>(
        &'a self,
        fqdn: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<(), Dns01Error>>;

    /// Removes the TXT value `value` at `fqdn`, and only that value.
    fn clean_up<'a>(
        &'a self,
        fqdn: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<(), Dns01Error>>;

    /// Like [`DnsProvider::present`], and returns the id of a change the provider applies
    /// asynchronously (Route53's change id), to be asked about with
    /// [`DnsProvider::change_applied`]. Providers that apply at once return `None`.
    fn present_change<'a>(
        &'a self,
        fqdn: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, Dns01Error>> {
        Box::pin(async move { self.present(fqdn, value).await.map(|()| None) })
    }

    /// Where the provider writes the record for `challenge_name` (`_acme-challenge.<domain>`) when
    /// it is not that name itself: acme-dns writes at the account's `fulldomain`, which the
    /// domain's `_acme-challenge` CNAME points to. The caller records the name in status before
    /// presenting and checks propagation there. Default: the challenge name itself.
    fn record_name(&self, challenge_name: &str) -> Option<String> {
        let _ = challenge_name;
        None
    }

    /// Whether the change `id` returned by [`DnsProvider::present_change`] is applied on the
    /// provider's side (Route53: `INSYNC`). Asks once and never waits, so a reconcile can poll it
    /// on its own schedule.
    fn change_applied<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, Dns01Error>> {
        let _ = id;
        Box::pin(async { Ok(true) })
    }
}

/// What went wrong in a DNS-01 step. The messages name the server, zone and name involved and
/// carry the server's own answer (its RCODE, and the TSIG error when there is one), so they can go
/// into a Certificate's status as they are.
#[derive(Debug, thiserror::Error)]
pub enum Dns01Error {
    /// A name that is not a valid DNS name.
    #[error("invalid DNS name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    /// The provider's configuration cannot work (bad nameserver address, bad TSIG secret...).
    #[error("invalid DNS-01 configuration: {0}")]
    Config(String),
    /// A TSIG algorithm we cannot sign with.
    #[error(
        "TSIG algorithm {algorithm} is not supported (supported: HMACSHA256, HMACSHA512); \
         set tsigAlgorithm to one of them and use a key of that algorithm"
    )]
    UnsupportedAlgorithm { algorithm: String },
    /// The network failed while talking to a server. `server` names who was asked, as the
    /// message says it: `DNS server 192.0.2.1:53`, `Route53 API https://…`, `DNS webhook solver
    /// /apis/…`.
    #[error("{server}: {op}: {source}")]
    Io {
        server: String,
        op: String,
        #[source]
        source: std::io::Error,
    },
    /// A server did not answer in time (`server` as for [`Dns01Error::Io`]).
    #[error("{server} did not answer within {timeout:?} ({op})")]
    Timeout {
        server: String,
        op: String,
        timeout: Duration,
    },
    /// The server answered a dynamic update with an error RCODE.
    #[error(
        "DNS server {server} rejected the update of zone {zone} ({op}): {rcode}{}",
        tsig_error.as_ref().map(|e| format!(", TSIG error {e}")).unwrap_or_default()
    )]
    UpdateRejected {
        server: String,
        zone: String,
        op: String,
        /// The RCODE as `dig` prints it: `REFUSED`, `NOTAUTH`, `NOTZONE`, `SERVFAIL`...
        rcode: String,
        /// The TSIG error of the answer (`BADSIG`, `BADKEY`, `BADTIME`), if any.
        tsig_error: Option<String>,
    },
    /// A query was answered with an error RCODE (other than NXDOMAIN, which is an answer).
    #[error("DNS server {server} answered {rcode} to the {rtype} query for {name}")]
    QueryFailed {
        server: String,
        name: String,
        rtype: String,
        rcode: String,
    },
    /// No zone containing the name could be found.
    #[error("no zone containing {name} found at {server}: {detail}")]
    ZoneNotFound {
        name: String,
        server: String,
        detail: String,
    },
    /// A DNS provider's HTTP API answered with an error (non-2xx, or Cloudflare's
    /// `"success": false`). One shape for every cloud provider, so status messages, metrics and
    /// retry decisions treat them alike; a provider that cannot be reached is [`Dns01Error::Io`]
    /// or [`Dns01Error::Timeout`] instead.
    #[error("{provider} API at {endpoint} refused {op}: HTTP {status}: {detail}")]
    Api {
        /// `Cloudflare`, `Route53`.
        provider: &'static str,
        /// The API base URL or endpoint asked.
        endpoint: String,
        /// What was being done, naming the zone and record.
        op: String,
        status: u16,
        /// The provider's own error code (Route53's `Code`, Cloudflare's first `errors[].code`),
        /// used to tell throttling from refusal.
        code: Option<String>,
        /// The provider's words: `Code: Message` pairs, or the body when it had no error list.
        detail: String,
    },
    /// A DNS webhook solver answered that it could not do what was asked, in its own words.
    #[error("DNS webhook solver {endpoint} failed the {op}: {message}")]
    SolverFailed {
        endpoint: String,
        op: String,
        message: String,
    },
    /// A server's answer could not be used (unparseable, bad TSIG signature, ...).
    #[error("unusable answer from {server} ({op}): {detail}")]
    Protocol {
        server: String,
        op: String,
        detail: String,
    },
}

impl Dns01Error {
    /// Whether retrying the same step soon may succeed (network trouble, timeouts, SERVFAIL),
    /// as opposed to a configuration or authorization problem that needs a change first.
    pub fn is_transient(&self) -> bool {
        match self {
            Dns01Error::Io { .. } | Dns01Error::Timeout { .. } | Dns01Error::Protocol { .. } => {
                true
            }
            Dns01Error::Api { status, code, .. } => {
                *status >= 500
                    || *status == 408
                    || *status == 429
                    || matches!(
                        code.as_deref(),
                        Some("Throttling" | "ThrottlingException" | "PriorRequestNotComplete")
                    )
            }
            Dns01Error::QueryFailed { rcode, .. } | Dns01Error::UpdateRejected { rcode, .. } => {
                rcode == "SERVFAIL"
            }
            Dns01Error::InvalidName { .. }
            | Dns01Error::SolverFailed { .. }
            | Dns01Error::Config(_)
            | Dns01Error::UnsupportedAlgorithm { .. }
            | Dns01Error::ZoneNotFound { .. } => false,
        }
    }

    /// A short label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Dns01Error::InvalidName { .. } => "invalid_name",
            Dns01Error::Config(_) | Dns01Error::UnsupportedAlgorithm { .. } => "config",
            Dns01Error::Io { .. } => "io",
            Dns01Error::Timeout { .. } => "timeout",
            Dns01Error::UpdateRejected { .. } => "update_rejected",
            Dns01Error::QueryFailed { .. } => "query_failed",
            Dns01Error::ZoneNotFound { .. } => "zone_not_found",
            Dns01Error::Protocol { .. } => "protocol",
            Dns01Error::Api { .. } => "api",
            Dns01Error::SolverFailed { .. } => "solver_failed",
        }
    }
}

/// The name where the TXT record for `identifier` goes: `_acme-challenge.<name>`, with a leading
/// `*.` removed (a wildcard is validated at its base name), lowercase, without a trailing dot.
///
/// ```
/// use ferrocert::solver::dns01::challenge_name;
/// assert_eq!(challenge_name("*.Example.TEST."), "_acme-challenge.example.test");
/// ```
pub fn challenge_name(identifier: &str) -> String {
    let name = normalize_name(identifier);
    let name = name.strip_prefix("*.").unwrap_or(&name);
    format!("{CHALLENGE_LABEL}.{name}")
}

/// The TXT value for a key authorization (`<token>.<account key thumbprint>`): the unpadded
/// base64url SHA-256 digest of it (RFC 8555 §8.4; instant-acme's `KeyAuthorization::dns_value`).
pub fn txt_value(key_authorization: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(
        &digest::SHA256,
        key_authorization.as_bytes(),
    ))
}

/// Lowercase, without surrounding whitespace or the trailing dot.
pub fn normalize_name(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// A DNS server address as written in a spec: `host`, `host:port`, `[v6]`, `[v6]:port` or a bare
/// IPv6 address; the port defaults to 53 (or whatever default the caller passes).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServerAddr {
    /// An IP address literal (IPv6 without brackets) or a host name.
    pub host: String,
    pub port: u16,
}

impl ServerAddr {
    /// Parses `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address.
    pub fn parse(s: &str, default_port: u16) -> Result<Self, Dns01Error> {
        let s = s.trim();
        let bad = |why: &str| Dns01Error::Config(format!("nameserver {s:?}: {why}"));
        if s.is_empty() {
            return Err(bad("empty"));
        }
        let parse_port = |p: &str| {
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("the port must be a number from 1 to 65535"))
        };
        if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| bad("missing ']' after the IPv6 address"))?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad("not an IPv6 address inside [ ]"));
            }
            let port = match after {
                "" => default_port,
                _ => parse_port(
                    after
                        .strip_prefix(':')
                        .ok_or_else(|| bad("expected ':port' after ']'"))?,
                )?,
            };
            return Ok(ServerAddr {
                host: host.to_string(),
                port,
            });
        }
        if s.parse::<std::net::Ipv6Addr>().is_ok() {
            return Ok(ServerAddr {
                host: s.to_string(),
                port: default_port,
            });
        }
        let (host, port) = match s.rsplit_once(':') {
            Some((host, port)) => {
                if host.contains(':') {
                    return Err(bad("write an IPv6 address with a port as [address]:port"));
                }
                (host, parse_port(port)?)
            }
            None => (s, default_port),
        };
        if host.is_empty() || host.contains(['/', ' ', '[', ']']) {
            return Err(bad("not a host name or IP address"));
        }
        Ok(ServerAddr {
            host: host.trim_end_matches('.').to_string(),
            port,
        })
    }

    /// The socket addresses to try: the literal address, or the host name resolved by the
    /// system resolver.
    pub async fn resolve(&self) -> Result<Vec<std::net::SocketAddr>, Dns01Error> {
        if let Ok(ip) = self.host.parse::<std::net::IpAddr>() {
            return Ok(vec![std::net::SocketAddr::new(ip, self.port)]);
        }
        let addrs: Vec<_> = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|source| Dns01Error::Io {
                server: format!("DNS server {self}"),
                op: "resolving the server's host name".into(),
                source,
            })?
            .collect();
        if addrs.is_empty() {
            return Err(Dns01Error::Config(format!(
                "nameserver {self}: the host name has no addresses"
            )));
        }
        Ok(addrs)
    }
}

impl fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// The addresses of `host` as the given resolvers answer (recursion desired, so CNAME chains are
/// resolved by the server): its A records, else its AAAA records. The HTTP-01 self-check uses it
/// where the system resolver is not the one the CA's view should be checked with.
pub async fn resolve_addresses(
    servers: &[std::net::SocketAddr],
    host: &str,
    timeout: Duration,
) -> Result<Vec<std::net::IpAddr>, String> {
    use hickory_proto::rr::RecordType;
    let name = wire::parse_name(host).map_err(|e| e.to_string())?;
    let mut last = None;
    for rtype in [RecordType::A, RecordType::AAAA] {
        match wire::query_any(servers, &name, rtype, true, timeout).await {
            Ok((_, answer)) => {
                let ips: Vec<_> = answer
                    .answers
                    .iter()
                    .filter(|r| r.record_type() == rtype)
                    .filter_map(|r| r.data.ip_addr())
                    .collect();
                if !ips.is_empty() {
                    return Ok(ips);
                }
                last = Some(format!(
                    "{host} has no {rtype} record ({})",
                    wire::rcode_name(answer.response_code)
                ));
            }
            Err(e) => last = Some(format!("resolving {host}: {e}")),
        }
    }
    Err(last.unwrap_or_else(|| format!("{host} has no address")))
}

/// A request to a DNS provider's API that got no usable answer within the limits of
/// [`crate::outbound`], as a DNS-01 error: a timeout stays a timeout, anything else (connection,
/// body over the limit) is a network failure carrying the limit's message. Both are transient.
/// `server` names the API as a message should (`Cloudflare API https://…`).
pub(crate) fn outbound_error(
    server: &str,
    op: &str,
    e: crate::outbound::OutboundError,
) -> Dns01Error {
    match e.failure {
        crate::outbound::Failure::Timeout(timeout) => Dns01Error::Timeout {
            server: server.to_string(),
            op: op.to_string(),
            timeout,
        },
        _ => Dns01Error::Io {
            server: server.to_string(),
            op: op.to_string(),
            source: std::io::Error::other(e.to_string()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_names() {
        assert_eq!(
            challenge_name("example.test"),
            "_acme-challenge.example.test"
        );
        assert_eq!(
            challenge_name("*.example.test"),
            "_acme-challenge.example.test"
        );
        assert_eq!(
            challenge_name("WWW.Example.Test."),
            "_acme-challenge.www.example.test"
        );
        assert_eq!(challenge_name(" *.a.b.test. "), "_acme-challenge.a.b.test");
        // Only a leading wildcard label is removed.
        assert_eq!(challenge_name("a.*.test"), "_acme-challenge.a.*.test");
    }

    #[test]
    fn txt_value_known_vectors() {
        // Computed independently:
        //   printf %s "$KA" | openssl dgst -sha256 -binary | base64 | tr '+/' '-_' | tr -d =
        assert_eq!(
            txt_value(
                "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.nP1qzpXGymHBrUEepNY9HCsQk7K8KhOypzEt62jcerQ"
            ),
            "NGwKoXBgCT8JhEa0bK7AwfSqHyu_ZWeugV07fLGIVq0"
        );
        // SHA-256 of the empty string, base64url without padding.
        assert_eq!(txt_value(""), "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU");
        assert_eq!(txt_value("x").len(), 43);
    }

    #[test]
    fn server_addresses() {
        let p = |s: &str| ServerAddr::parse(s, 53);
        let sa = |h: &str, port| ServerAddr {
            host: h.into(),
            port,
        };
        assert_eq!(p("127.0.0.1").unwrap(), sa("127.0.0.1", 53));
        assert_eq!(p("127.0.0.1:5353").unwrap(), sa("127.0.0.1", 5353));
        assert_eq!(p("ns1.example.test.").unwrap(), sa("ns1.example.test", 53));
        assert_eq!(
            p("ns1.example.test:1053").unwrap(),
            sa("ns1.example.test", 1053)
        );
        assert_eq!(p("[::1]:5353").unwrap(), sa("::1", 5353));
        assert_eq!(p("[2001:db8::1]").unwrap(), sa("2001:db8::1", 53));
        assert_eq!(p("2001:db8::1").unwrap(), sa("2001:db8::1", 53));
        assert_eq!(ServerAddr::parse("10.0.0.1", 5353).unwrap().port, 5353);
        for bad in [
            "",
            "host:",
            "host:0",
            "host:70000",
            "[::1",
            "[::1]x",
            "[nothost]:53",
            "1::2::3:53",
            "a b",
        ] {
            let err = p(bad).expect_err(bad);
            assert!(matches!(err, Dns01Error::Config(_)), "{bad}: {err}");
        }
        assert_eq!(sa("::1", 53).to_string(), "[::1]:53");
        assert_eq!(sa("ns.example.test", 53).to_string(), "ns.example.test:53");
    }

    #[test]
    fn error_messages_carry_the_answer() {
        let e = Dns01Error::UpdateRejected {
            server: "127.0.0.1:5353".into(),
            zone: "example.test".into(),
            op: "add TXT \"v\" at _acme-challenge.example.test".into(),
            rcode: "NOTAUTH".into(),
            tsig_error: Some("BADSIG".into()),
        };
        assert_eq!(
            e.to_string(),
            "DNS server 127.0.0.1:5353 rejected the update of zone example.test \
             (add TXT \"v\" at _acme-challenge.example.test): NOTAUTH, TSIG error BADSIG"
        );
        assert!(!e.is_transient());
    }
}

//! The DNS-01 self-check: is the TXT value served by every authoritative nameserver of its zone?
//!
//! Each call does one round of queries, each bounded by a short timeout (2 s by default), and
//! returns what it saw; it never sleeps or loops waiting for propagation. The caller decides when
//! to ask again, and reads [`ZoneInfo::negative_ttl`] to know how long a resolver may keep an
//! earlier "no such record" answer.
//!
//! Two kinds of servers are involved:
//! - *resolvers* ([`PropagationConfig::resolvers`]) answer the lookups that locate things: the
//!   zone's SOA, its NS set, the nameservers' addresses, and `_acme-challenge` CNAMEs. They are
//!   asked with RD set, so a recursive resolver works, and so does an authoritative server that
//!   serves every zone involved (such as the RFC 2136 primary).
//! - the servers checked for the TXT: by default the zone's authoritative nameservers (its NS
//!   records), asked without recursion at [`PropagationConfig::authoritative_port`] (53; the tests
//!   run BIND on another port). With [`PropagationConfig::nameservers`] set (split-horizon DNS),
//!   exactly those servers are checked instead, with RD set.
//!
//! CNAMEs (cert-manager's `cnameStrategy: Follow`): [`PropagationChecker::resolve_challenge_name`]
//! follows `_acme-challenge.<name>` to the name that finally holds the TXT. Present there, and
//! check there: [`PropagationChecker::check`] does not follow CNAMEs itself.

use std::net::SocketAddr;
use std::time::Duration;

use std::net::IpAddr;

use futures::StreamExt;
use futures::stream;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

use super::wire::{self, name_str, parse_name, query_any, rcode_name};
use super::{DEFAULT_TIMEOUT, Dns01Error, ServerAddr};

/// How many CNAMEs `resolve_challenge_name` follows before giving up.
pub const MAX_CNAME_HOPS: usize = 8;

/// How many NS names of a zone are looked up and checked (the first in name order). The zone's
/// NS set is the tenant's to choose (it is their domain, or a zone they delegated): one that
/// lists thousands of names must not cost thousands of lookups, sockets and buffers. Real zones
/// have 2 to 6 (the largest public ones 8 to 13), so 8 checks all of a sensible set; a zone with
/// more is checked on its first 8, and the summary says how many were not checked.
pub const MAX_NAMESERVERS: usize = 8;

/// How many addresses of one nameserver are tried (its first IPv4 and its first IPv6 address,
/// in that order): together with [`MAX_NAMESERVERS`] at most 16 addresses are checked, whatever
/// the glue or the A/AAAA answers hold.
pub const MAX_ADDRESSES_PER_NAMESERVER: usize = 2;

/// How many lookups or checks of one round are in flight at once (each holds a socket and a
/// [`wire::UDP_BUFFER`]).
pub const MAX_CONCURRENT_QUERIES: usize = 8;

/// Where the checker asks. See the module docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PropagationConfig {
    /// Servers (`host[:port]`, `[v6]:port`; port 53 by default) for the SOA, NS, address and
    /// CNAME lookups. Empty: the `nameservers` below if any, else the `nameserver` lines of
    /// `/etc/resolv.conf`.
    pub resolvers: Vec<String>,
    /// When not empty, the servers checked for the TXT instead of the zone's NS (split horizon).
    pub nameservers: Vec<String>,
    /// The port used with the addresses of the zone's NS records.
    pub authoritative_port: u16,
    /// The time one exchange may take.
    pub timeout: Duration,
}

impl Default for PropagationConfig {
    fn default() -> Self {
        PropagationConfig {
            resolvers: Vec::new(),
            nameservers: Vec::new(),
            authoritative_port: 53,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// The zone a name is in, and its negative-caching parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneInfo {
    pub zone: String,
    /// The SOA MINIMUM field (RFC 2308: the TTL of negative answers).
    pub soa_minimum: u32,
    /// How long a resolver may cache a negative answer: min(SOA MINIMUM, the SOA's own TTL).
    pub negative_ttl: u32,
    /// The SOA MNAME (the primary nameserver's name).
    pub primary: String,
}

/// One authoritative nameserver of a zone and its addresses (with the checker's port).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nameserver {
    pub name: String,
    pub addresses: Vec<SocketAddr>,
}

/// What one server said about the TXT value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckResult {
    /// The value is there.
    Visible,
    /// The server answered, without the value.
    NotVisible {
        /// `NOERROR` (other values, or none) or `NXDOMAIN`.
        rcode: String,
        /// How many other TXT values the name has there.
        other_values: usize,
    },
    /// No usable answer (timeout, refusal, not authoritative, no address...).
    Failed(String),
}

/// The result for one server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerCheck {
    /// The NS name, or the configured server as written.
    pub server: String,
    /// The address that gave the answer (or was tried last).
    pub address: Option<SocketAddr>,
    pub result: CheckResult,
}

/// One round of the self-check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PropagationReport {
    pub name: String,
    pub value: String,
    pub zone: ZoneInfo,
    pub servers: Vec<ServerCheck>,
    /// NS names of the zone beyond [`MAX_NAMESERVERS`], not checked.
    pub unchecked_nameservers: usize,
}

impl PropagationReport {
    /// True when every server checked serves the value (and there was at least one).
    pub fn all_visible(&self) -> bool {
        !self.servers.is_empty()
            && self
                .servers
                .iter()
                .all(|s| s.result == CheckResult::Visible)
    }

    /// One line for a status message or an Event.
    pub fn summary(&self) -> String {
        let visible = self
            .servers
            .iter()
            .filter(|s| s.result == CheckResult::Visible)
            .count();
        let mut line = format!(
            "TXT at {} visible at {visible}/{} nameservers of zone {}",
            self.name,
            self.servers.len(),
            self.zone.zone
        );
        let missing: Vec<String> = self
            .servers
            .iter()
            .filter_map(|s| {
                let at = match s.address {
                    Some(a) => format!("{} ({a})", s.server),
                    None => s.server.clone(),
                };
                match &s.result {
                    CheckResult::Visible => None,
                    CheckResult::NotVisible {
                        rcode,
                        other_values,
                    } => Some(format!("{at}: {rcode}, {other_values} other value(s)")),
                    CheckResult::Failed(why) => Some(format!("{at}: {why}")),
                }
            })
            .collect();
        if !missing.is_empty() {
            line.push_str("; not yet at ");
            line.push_str(&missing.join("; "));
        }
        if self.unchecked_nameservers > 0 {
            line.push_str(&format!(
                "; {} more NS not checked (at most {MAX_NAMESERVERS} are)",
                self.unchecked_nameservers
            ));
        }
        line
    }
}

/// The NS names of `zone` in an NS answer: lowercase, sorted, without duplicates, at most
/// [`MAX_NAMESERVERS`]; and how many more there were. Pure.
fn nameserver_names(answer: &Message, zone: &Name) -> (Vec<Name>, usize) {
    let mut names: Vec<Name> = answer
        .answers
        .iter()
        .filter(|r| &r.name == zone)
        .filter_map(|r| match &r.data {
            RData::NS(ns) => Some(ns.0.to_lowercase()),
            _ => None,
        })
        .collect();
    names.sort();
    names.dedup();
    let more = names.len().saturating_sub(MAX_NAMESERVERS);
    names.truncate(MAX_NAMESERVERS);
    (names, more)
}

/// The addresses to try for one nameserver, from glue or an A/AAAA answer: the first IPv4 and
/// the first IPv6 address (IPv4 first: a host without IPv6 still reaches the server on its
/// first try), at most [`MAX_ADDRESSES_PER_NAMESERVER`]. Pure.
fn pick_addresses(ips: impl IntoIterator<Item = IpAddr>, port: u16) -> Vec<SocketAddr> {
    let mut v4 = None;
    let mut v6 = None;
    for ip in ips {
        match ip {
            IpAddr::V4(_) if v4.is_none() => v4 = Some(ip),
            IpAddr::V6(_) if v6.is_none() => v6 = Some(ip),
            _ => {}
        }
        if v4.is_some() && v6.is_some() {
            break;
        }
    }
    let mut picked: Vec<SocketAddr> = v4
        .into_iter()
        .chain(v6)
        .map(|ip| SocketAddr::new(ip, port))
        .collect();
    picked.truncate(MAX_ADDRESSES_PER_NAMESERVER);
    picked
}

/// Runs the self-check queries. Cheap to clone; holds no sockets.
#[derive(Clone, Debug)]
pub struct PropagationChecker {
    resolvers: Vec<ServerAddr>,
    nameservers: Vec<ServerAddr>,
    authoritative_port: u16,
    timeout: Duration,
}

impl PropagationChecker {
    /// Checks the configuration (addresses are parsed now; host names resolved at each call).
    pub fn new(config: PropagationConfig) -> Result<Self, Dns01Error> {
        let parse = |list: &[String]| -> Result<Vec<ServerAddr>, Dns01Error> {
            list.iter().map(|s| ServerAddr::parse(s, 53)).collect()
        };
        let nameservers = parse(&config.nameservers)?;
        let mut resolvers = parse(&config.resolvers)?;
        if resolvers.is_empty() {
            resolvers = if nameservers.is_empty() {
                let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
                parse(&parse_resolv_conf(&text))?
            } else {
                nameservers.clone()
            };
        }
        if resolvers.is_empty() {
            return Err(Dns01Error::Config(
                "no DNS resolver configured and none in /etc/resolv.conf".into(),
            ));
        }
        if config.authoritative_port == 0 {
            return Err(Dns01Error::Config(
                "the authoritative port cannot be 0".into(),
            ));
        }
        Ok(PropagationChecker {
            resolvers,
            nameservers,
            authoritative_port: config.authoritative_port,
            timeout: config.timeout,
        })
    }

    async fn resolver_addrs(&self) -> Result<Vec<SocketAddr>, Dns01Error> {
        let mut addrs = Vec::new();
        let mut last = None;
        for r in &self.resolvers {
            match r.resolve().await {
                Ok(a) => addrs.extend(a),
                Err(e) => last = Some(e),
            }
        }
        match (addrs.is_empty(), last) {
            (true, Some(e)) => Err(e),
            _ => Ok(addrs),
        }
    }

    /// Follows CNAMEs from `name` (normally `_acme-challenge.<identifier>`) and returns the name
    /// that holds the TXT record: `name` itself when it is not a CNAME. A server that refuses
    /// to say anything about a CNAME target (not its zone) ends the chain there.
    pub async fn resolve_challenge_name(&self, name: &str) -> Result<String, Dns01Error> {
        let resolvers = self.resolver_addrs().await?;
        let mut current = parse_name(name)?;
        let mut seen = vec![current.clone()];
        for hop in 0..=MAX_CNAME_HOPS {
            let answer = match query_any(
                &resolvers,
                &current,
                RecordType::CNAME,
                true,
                self.timeout,
            )
            .await
            {
                Ok((_, answer)) => answer,
                Err(Dns01Error::QueryFailed { rcode, .. }) if hop > 0 => {
                    tracing::debug!(
                        name = %name_str(&current),
                        %rcode,
                        "CNAME target not served by the resolvers; stopping there"
                    );
                    return Ok(name_str(&current));
                }
                Err(e) => return Err(e),
            };
            let target = answer.answers.iter().find_map(|r| match &r.data {
                RData::CNAME(cname) if r.name == current => Some(cname.0.clone()),
                _ => None,
            });
            let Some(target) = target else {
                return Ok(name_str(&current));
            };
            if seen.contains(&target) {
                return Err(Dns01Error::Config(format!(
                    "CNAME loop from {} at {}",
                    normalize(name),
                    name_str(&target)
                )));
            }
            seen.push(target.clone());
            current = target;
        }
        Err(Dns01Error::Config(format!(
            "more than {MAX_CNAME_HOPS} CNAMEs from {}",
            normalize(name)
        )))
    }

    /// The zone `name` is in (by SOA at the resolvers) and its negative-caching TTL.
    pub async fn zone_info(&self, name: &str) -> Result<ZoneInfo, Dns01Error> {
        let name = parse_name(name)?;
        self.zone_of(&name).await
    }

    async fn zone_of(&self, name: &Name) -> Result<ZoneInfo, Dns01Error> {
        let resolvers = self.resolver_addrs().await?;
        let found = wire::find_zone(&resolvers, name, true, self.timeout).await?;
        Ok(ZoneInfo {
            zone: name_str(&found.zone),
            soa_minimum: found.soa.minimum,
            negative_ttl: found.soa.minimum.min(found.ttl),
            primary: name_str(&found.soa.mname),
        })
    }

    /// The NS set of `zone` and each nameserver's addresses (glue first, else A and AAAA
    /// lookups at the resolvers), with the configured authoritative port. A nameserver whose
    /// addresses cannot be found is listed with none.
    ///
    /// At most [`MAX_NAMESERVERS`] names, each with at most [`MAX_ADDRESSES_PER_NAMESERVER`]
    /// addresses, looked up [`MAX_CONCURRENT_QUERIES`] at a time.
    pub async fn authoritative_nameservers(
        &self,
        zone: &str,
    ) -> Result<Vec<Nameserver>, Dns01Error> {
        Ok(self.nameserver_set(zone).await?.0)
    }

    /// [`Self::authoritative_nameservers`], and how many NS names were left out.
    async fn nameserver_set(&self, zone: &str) -> Result<(Vec<Nameserver>, usize), Dns01Error> {
        let resolvers = self.resolver_addrs().await?;
        let zone = parse_name(zone)?;
        let (server, answer) =
            query_any(&resolvers, &zone, RecordType::NS, true, self.timeout).await?;
        let (names, more) = nameserver_names(&answer, &zone);
        if names.is_empty() {
            return Err(Dns01Error::QueryFailed {
                server: server.to_string(),
                name: name_str(&zone),
                rtype: "NS".into(),
                rcode: format!("{} without NS records", rcode_name(answer.response_code)),
            });
        }
        let port = self.authoritative_port;
        let glue = |ns: &Name| -> Vec<SocketAddr> {
            pick_addresses(
                answer
                    .additionals
                    .iter()
                    .filter(|r| &r.name == ns)
                    .filter_map(|r| r.data.ip_addr()),
                port,
            )
        };
        // Collected first: a lazy `map` in `buffered` trips the compiler's `Send` inference.
        let lookups: Vec<_> = names
            .iter()
            .map(|ns| {
                let glue = glue(ns);
                let resolvers = &resolvers;
                async move {
                    let mut addresses = glue;
                    if addresses.is_empty() {
                        let mut ips = Vec::new();
                        for rtype in [RecordType::A, RecordType::AAAA] {
                            if let Ok((_, a)) =
                                query_any(resolvers, ns, rtype, true, self.timeout).await
                            {
                                ips.extend(
                                    a.answers
                                        .iter()
                                        .filter(|r| r.record_type() == rtype)
                                        .filter_map(|r| r.data.ip_addr())
                                        .take(1),
                                );
                            }
                        }
                        addresses = pick_addresses(ips, port);
                    }
                    Nameserver {
                        name: name_str(ns),
                        addresses,
                    }
                }
            })
            .collect();
        let nameservers = stream::iter(lookups)
            .buffered(MAX_CONCURRENT_QUERIES)
            .collect()
            .await;
        Ok((nameservers, more))
    }

    /// One round: finds the zone of `name`, then asks every server to check (the zone's
    /// authoritative nameservers, or the configured ones) for the TXT at `name`, concurrently.
    /// `Err` only when the zone or its nameservers cannot be found; per-server trouble is in
    /// the report.
    pub async fn check(&self, name: &str, value: &str) -> Result<PropagationReport, Dns01Error> {
        let owner = parse_name(name)?;
        let zone = self.zone_of(&owner).await?;
        let mut unchecked_nameservers = 0;
        let targets: Vec<(String, Result<Vec<SocketAddr>, String>, bool)> =
            if self.nameservers.is_empty() {
                let (nameservers, more) = self.nameserver_set(&zone.zone).await?;
                unchecked_nameservers = more;
                nameservers
                    .into_iter()
                    .map(|ns| {
                        let addrs = if ns.addresses.is_empty() {
                            Err("no address found for this nameserver".to_string())
                        } else {
                            Ok(ns.addresses)
                        };
                        (ns.name, addrs, false)
                    })
                    .collect()
            } else {
                let mut targets = Vec::new();
                for ns in &self.nameservers {
                    let addrs = ns.resolve().await.map_err(|e| e.to_string());
                    targets.push((ns.to_string(), addrs, true));
                }
                targets
            };
        let checks: Vec<_> = targets
            .into_iter()
            .map(|(server, addrs, recursion)| {
                let owner = &owner;
                async move {
                    match addrs {
                        Err(why) => ServerCheck {
                            server,
                            address: None,
                            result: CheckResult::Failed(why),
                        },
                        Ok(addrs) => {
                            let (address, result) =
                                self.check_server(&addrs, owner, value, recursion).await;
                            ServerCheck {
                                server,
                                address,
                                result,
                            }
                        }
                    }
                }
            })
            .collect();
        let servers = stream::iter(checks)
            .buffered(MAX_CONCURRENT_QUERIES)
            .collect()
            .await;
        Ok(PropagationReport {
            name: name_str(&owner),
            value: value.to_string(),
            zone,
            servers,
            unchecked_nameservers,
        })
    }

    /// Asks one server (its addresses in turn until one answers) for the TXT at `owner`.
    async fn check_server(
        &self,
        addrs: &[SocketAddr],
        owner: &Name,
        value: &str,
        recursion: bool,
    ) -> (Option<SocketAddr>, CheckResult) {
        let mut last = (None, CheckResult::Failed("no address".into()));
        for &addr in addrs {
            let answer =
                match wire::query(addr, owner, RecordType::TXT, recursion, self.timeout).await {
                    Ok(answer) => answer,
                    Err(e) => {
                        last = (Some(addr), CheckResult::Failed(e.to_string()));
                        continue;
                    }
                };
            return (Some(addr), judge(&answer, owner, value, recursion));
        }
        last
    }
}

/// Fuzzing entry (`fuzz/`): decodes `bytes` as a DNS answer and judges it as the TXT check does
/// for `owner` = `value`; `None` when the bytes are not a DNS message. Never panics.
#[doc(hidden)]
pub fn judge_raw_txt_answer(bytes: &[u8], owner: &str, value: &str) -> Option<String> {
    let message = hickory_proto::op::Message::from_vec(bytes).ok()?;
    let owner = super::wire::parse_name(owner).ok()?;
    Some(format!("{:?}", judge(&message, &owner, value, false)))
}

/// What a TXT answer says about `value` at `owner`.
fn judge(
    answer: &hickory_proto::op::Message,
    owner: &Name,
    value: &str,
    recursion: bool,
) -> CheckResult {
    let rcode = answer.response_code;
    if !matches!(rcode, ResponseCode::NoError | ResponseCode::NXDomain) {
        return CheckResult::Failed(format!("answered {}", rcode_name(rcode)));
    }
    if !recursion && !answer.authoritative {
        return CheckResult::Failed(format!(
            "answered {} without authority (not authoritative for the zone)",
            rcode_name(rcode)
        ));
    }
    let values: Vec<String> = answer
        .answers
        .iter()
        .filter(|r| &r.name == owner)
        .filter_map(|r| match &r.data {
            RData::TXT(txt) => Some(
                txt.txt_data
                    .iter()
                    .map(|s| String::from_utf8_lossy(s))
                    .collect::<String>(),
            ),
            _ => None,
        })
        .collect();
    if values.iter().any(|v| v == value) {
        return CheckResult::Visible;
    }
    if let Some(target) = answer.answers.iter().find_map(|r| match &r.data {
        RData::CNAME(c) if &r.name == owner => Some(name_str(&c.0)),
        _ => None,
    }) {
        return CheckResult::Failed(format!(
            "the name is a CNAME to {target}: present and check the TXT there"
        ));
    }
    CheckResult::NotVisible {
        rcode: rcode_name(rcode),
        other_values: values.len(),
    }
}

fn normalize(name: &str) -> String {
    super::normalize_name(name)
}

/// The `nameserver` addresses of a resolv.conf, in order (IPv6 zone suffixes dropped).
pub fn parse_resolv_conf(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let line = line.split(['#', ';']).next().unwrap_or_default();
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some("nameserver"), Some(addr)) => {
                    let addr = addr.split('%').next().unwrap_or(addr);
                    addr.parse::<std::net::IpAddr>().ok().map(|ip| match ip {
                        std::net::IpAddr::V4(v4) => v4.to_string(),
                        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
                    })
                }
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Message, OpCode};
    use hickory_proto::rr::Record;
    use hickory_proto::rr::rdata::{CNAME, TXT};

    #[test]
    fn resolv_conf() {
        let text = "# generated\nsearch default.svc.cluster.local\nnameserver 10.96.0.10\n\
                    nameserver fe80::1%eth0 # link-local\noptions ndots:5\nnameserver bogus\n";
        assert_eq!(parse_resolv_conf(text), ["10.96.0.10", "[fe80::1]"]);
    }

    fn answer(owner: &Name, aa: bool, rcode: ResponseCode, data: Vec<RData>) -> Message {
        let mut m = Message::response(1, OpCode::Query);
        m.metadata.authoritative = aa;
        m.metadata.response_code = rcode;
        for d in data {
            m.add_answer(Record::from_rdata(owner.clone(), 5, d));
        }
        m
    }

    #[test]
    fn judging_answers() {
        let owner = parse_name("_acme-challenge.a.example.test").unwrap();
        let txt = |v: &[&str]| RData::TXT(TXT::new(v.iter().map(|s| s.to_string()).collect()));
        let ok = ResponseCode::NoError;
        assert_eq!(
            judge(
                &answer(&owner, true, ok, vec![txt(&["other"]), txt(&["v"])]),
                &owner,
                "v",
                false
            ),
            CheckResult::Visible
        );
        // A value split in several character-strings is compared whole.
        assert_eq!(
            judge(
                &answer(&owner, true, ok, vec![txt(&["ab", "cd"])]),
                &owner,
                "abcd",
                false
            ),
            CheckResult::Visible
        );
        assert_eq!(
            judge(
                &answer(&owner, true, ok, vec![txt(&["other"])]),
                &owner,
                "v",
                false
            ),
            CheckResult::NotVisible {
                rcode: "NOERROR".into(),
                other_values: 1
            }
        );
        assert_eq!(
            judge(
                &answer(&owner, true, ResponseCode::NXDomain, vec![]),
                &owner,
                "v",
                false
            ),
            CheckResult::NotVisible {
                rcode: "NXDOMAIN".into(),
                other_values: 0
            }
        );
        // A lame server (no AA bit) does not count, unless it was asked as a resolver.
        assert!(matches!(
            judge(
                &answer(&owner, false, ok, vec![txt(&["v"])]),
                &owner,
                "v",
                false
            ),
            CheckResult::Failed(_)
        ));
        assert_eq!(
            judge(
                &answer(&owner, false, ok, vec![txt(&["v"])]),
                &owner,
                "v",
                true
            ),
            CheckResult::Visible
        );
        assert_eq!(
            judge(
                &answer(&owner, true, ResponseCode::Refused, vec![]),
                &owner,
                "v",
                false
            ),
            CheckResult::Failed("answered REFUSED".into())
        );
        let cname = RData::CNAME(CNAME(parse_name("x.delegated.test").unwrap()));
        match judge(&answer(&owner, true, ok, vec![cname]), &owner, "v", false) {
            CheckResult::Failed(why) => assert!(why.contains("CNAME to x.delegated.test"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn report_summary() {
        let zone = ZoneInfo {
            zone: "example.test".into(),
            soa_minimum: 5,
            negative_ttl: 5,
            primary: "ns.example.test".into(),
        };
        let mut report = PropagationReport {
            name: "_acme-challenge.example.test".into(),
            value: "v".into(),
            zone,
            servers: vec![
                ServerCheck {
                    server: "ns1.example.test".into(),
                    address: Some(([192, 0, 2, 1], 53).into()),
                    result: CheckResult::Visible,
                },
                ServerCheck {
                    server: "ns2.example.test".into(),
                    address: Some(([192, 0, 2, 2], 53).into()),
                    result: CheckResult::NotVisible {
                        rcode: "NXDOMAIN".into(),
                        other_values: 0,
                    },
                },
            ],
            unchecked_nameservers: 0,
        };
        assert!(!report.all_visible());
        assert_eq!(
            report.summary(),
            "TXT at _acme-challenge.example.test visible at 1/2 nameservers of zone example.test; \
             not yet at ns2.example.test (192.0.2.2:53): NXDOMAIN, 0 other value(s)"
        );
        report.servers[1].result = CheckResult::Visible;
        assert!(report.all_visible());
        report.servers.clear();
        assert!(!report.all_visible(), "no server checked is not success");
    }

    fn ns_name(i: usize) -> Name {
        parse_name(&format!("ns{i:04}.hostile.test")).unwrap()
    }

    /// A hand-built NS answer with thousands of NS names and thousands of glue addresses
    /// (what a tenant's nameserver may send): 8 names checked, each with at most 2 addresses.
    #[test]
    fn thousands_of_ns_records_are_capped() {
        use hickory_proto::rr::rdata::{A, AAAA, NS};
        let zone = parse_name("hostile.test").unwrap();
        let mut m = Message::response(1, OpCode::Query);
        for i in (0..5_000).rev() {
            m.add_answer(Record::from_rdata(
                zone.clone(),
                5,
                RData::NS(NS(ns_name(i))),
            ));
        }
        // A duplicate and another owner's NS do not count.
        m.add_answer(Record::from_rdata(
            zone.clone(),
            5,
            RData::NS(NS(ns_name(0))),
        ));
        m.add_answer(Record::from_rdata(
            parse_name("other.test").unwrap(),
            5,
            RData::NS(NS(ns_name(9_999))),
        ));
        for j in 0..2_000u32 {
            m.add_additional(Record::from_rdata(
                ns_name(0),
                5,
                RData::A(A(std::net::Ipv4Addr::from(0xC612_0000 + j))),
            ));
            m.add_additional(Record::from_rdata(
                ns_name(0),
                5,
                RData::AAAA(AAAA(std::net::Ipv6Addr::from(u128::from(j) + 1))),
            ));
        }
        // More than one DNS message can hold (the hostile server below sends them over the wire).
        let (names, more) = nameserver_names(&m, &zone);
        assert_eq!(names.len(), MAX_NAMESERVERS);
        assert_eq!(more, 5_000 - MAX_NAMESERVERS);
        assert_eq!(names[0], ns_name(0));
        assert_eq!(names[7], ns_name(7));
        let glue = pick_addresses(
            m.additionals
                .iter()
                .filter(|r| r.name == ns_name(0))
                .filter_map(|r| r.data.ip_addr()),
            53,
        );
        assert_eq!(
            glue,
            vec![
                SocketAddr::from(([198, 18, 0, 0], 53)),
                SocketAddr::new(std::net::Ipv6Addr::from(1u128).into(), 53),
            ]
        );
    }

    #[test]
    fn addresses_prefer_one_ipv4_then_one_ipv6() {
        let v4 = |d: u8| IpAddr::from([198, 18, 0, d]);
        let v6 = |d: u16| IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, d]);
        assert_eq!(
            pick_addresses([v6(1), v6(2), v4(1), v4(2), v4(1)], 5353),
            vec![SocketAddr::new(v4(1), 5353), SocketAddr::new(v6(1), 5353)]
        );
        assert_eq!(
            pick_addresses([v4(3), v4(4)], 53),
            vec![SocketAddr::new(v4(3), 53)]
        );
        assert!(pick_addresses([], 53).is_empty());
    }

    /// What the hostile nameserver saw.
    #[derive(Default)]
    struct Seen {
        address_queries: std::sync::atomic::AtomicUsize,
        txt_queries: std::sync::atomic::AtomicUsize,
        in_flight: std::sync::atomic::AtomicUsize,
        most_in_flight: std::sync::atomic::AtomicUsize,
    }

    /// Our own hostile nameserver on 127.0.0.1 (UDP and TCP on one port), authoritative for
    /// `hostile.test`: its NS set has 1,000 names (a 45 KB answer, over TCP after the UDP one
    /// does not fit), each name has 50 A records (127.0.0.1 first, that is itself), and each
    /// A/AAAA and TXT answer waits 100 ms so that concurrent lookups overlap.
    async fn hostile_nameserver(seen: std::sync::Arc<Seen>) -> u16 {
        use hickory_proto::rr::rdata::{A, NS, SOA};
        use std::sync::atomic::Ordering::SeqCst;
        let udp = std::sync::Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let port = udp.local_addr().unwrap().port();
        let tcp = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let zone = parse_name("hostile.test").unwrap();
        let counts = seen.clone();
        let answer = move |request: &[u8]| -> (Vec<u8>, bool) {
            let request = Message::from_vec(request).unwrap();
            let q = request.queries[0].clone();
            let mut m = Message::response(request.id, request.op_code);
            m.metadata.authoritative = true;
            m.add_queries(request.queries.clone());
            let name = q.name().to_lowercase();
            let mut slow = false;
            match q.query_type() {
                RecordType::SOA if name == zone => {
                    let soa = SOA::new(ns_name(0), ns_name(1), 1, 60, 60, 600, 5);
                    m.add_answer(Record::from_rdata(zone.clone(), 5, RData::SOA(soa)));
                }
                RecordType::NS if name == zone => {
                    for i in 0..1_000 {
                        m.add_answer(Record::from_rdata(
                            zone.clone(),
                            5,
                            RData::NS(NS(ns_name(i))),
                        ));
                    }
                }
                RecordType::A => {
                    counts.address_queries.fetch_add(1, SeqCst);
                    slow = true;
                    for j in 0..50u32 {
                        let ip = std::net::Ipv4Addr::from(0x7F00_0001 + j);
                        m.add_answer(Record::from_rdata(name.clone(), 5, RData::A(A(ip))));
                    }
                }
                RecordType::AAAA => {
                    counts.address_queries.fetch_add(1, SeqCst);
                    slow = true;
                }
                RecordType::TXT => {
                    counts.txt_queries.fetch_add(1, SeqCst);
                    slow = true;
                    m.add_answer(Record::from_rdata(
                        name.clone(),
                        5,
                        RData::TXT(TXT::new(vec!["the-value".into()])),
                    ));
                }
                _ => {}
            }
            let bytes = m.to_vec().unwrap();
            assert!(bytes.len() < 65_000, "{} bytes", bytes.len());
            (bytes, slow)
        };
        let answer = std::sync::Arc::new(answer);
        let (udp_answer, udp_seen) = (answer.clone(), seen.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            loop {
                let (n, peer) = udp.recv_from(&mut buf).await.unwrap();
                let (bytes, slow) = udp_answer(&buf[..n]);
                let (udp, seen) = (udp.clone(), udp_seen.clone());
                tokio::spawn(async move {
                    if slow {
                        let now = seen.in_flight.fetch_add(1, SeqCst) + 1;
                        seen.most_in_flight.fetch_max(now, SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        seen.in_flight.fetch_sub(1, SeqCst);
                    }
                    let _ = udp.send_to(&bytes, peer).await;
                });
            }
        });
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut stream, _)) = tcp.accept().await {
                let answer = answer.clone();
                tokio::spawn(async move {
                    let len = stream.read_u16().await.unwrap();
                    let mut request = vec![0u8; usize::from(len)];
                    stream.read_exact(&mut request).await.unwrap();
                    let (bytes, _) = answer(&request);
                    stream.write_u16(bytes.len() as u16).await.unwrap();
                    stream.write_all(&bytes).await.unwrap();
                });
            }
        });
        port
    }

    fn hostile_checker(port: u16) -> PropagationChecker {
        PropagationChecker::new(PropagationConfig {
            resolvers: vec![format!("127.0.0.1:{port}")],
            authoritative_port: port,
            timeout: Duration::from_secs(2),
            ..Default::default()
        })
        .unwrap()
    }

    /// The hostile nameserver's 1,000 NS names cost 8 names' lookups (16 A/AAAA queries), never
    /// more than [`MAX_CONCURRENT_QUERIES`] at once, and each name keeps one address of its 50.
    #[tokio::test]
    async fn a_hostile_nameserver_with_thousands_of_ns_names_costs_eight_lookups() {
        use std::sync::atomic::Ordering::SeqCst;
        let seen = std::sync::Arc::new(Seen::default());
        let port = hostile_nameserver(seen.clone()).await;
        let nameservers = hostile_checker(port)
            .authoritative_nameservers("hostile.test")
            .await
            .unwrap();
        assert_eq!(nameservers.len(), MAX_NAMESERVERS);
        for ns in &nameservers {
            assert_eq!(
                ns.addresses,
                vec![SocketAddr::from(([127, 0, 0, 1], port))],
                "{ns:?}"
            );
        }
        assert_eq!(seen.address_queries.load(SeqCst), 2 * MAX_NAMESERVERS);
        let most = seen.most_in_flight.load(SeqCst);
        assert!(
            most <= MAX_CONCURRENT_QUERIES && most > 1,
            "{most} in flight at once"
        );
    }

    /// A whole round against it: 8 nameservers checked (the TXT is there at each), the rest
    /// counted in the summary.
    #[tokio::test]
    async fn a_round_against_thousands_of_ns_names_checks_eight() {
        use std::sync::atomic::Ordering::SeqCst;
        let seen = std::sync::Arc::new(Seen::default());
        let port = hostile_nameserver(seen.clone()).await;
        let report = hostile_checker(port)
            .check("_acme-challenge.hostile.test", "the-value")
            .await
            .unwrap();
        assert_eq!(report.servers.len(), MAX_NAMESERVERS);
        assert!(report.all_visible(), "{}", report.summary());
        assert_eq!(report.unchecked_nameservers, 1_000 - MAX_NAMESERVERS);
        assert!(
            report
                .summary()
                .ends_with("; 992 more NS not checked (at most 8 are)"),
            "{}",
            report.summary()
        );
        assert_eq!(seen.txt_queries.load(SeqCst), MAX_NAMESERVERS);
        assert!(seen.most_in_flight.load(SeqCst) <= MAX_CONCURRENT_QUERIES);
    }

    #[test]
    fn config() {
        let err = PropagationChecker::new(PropagationConfig {
            resolvers: vec!["127.0.0.1:x".into()],
            ..Default::default()
        })
        .unwrap_err();
        assert!(matches!(err, Dns01Error::Config(_)));
        // Split horizon without resolvers: the configured nameservers do the lookups too.
        let c = PropagationChecker::new(PropagationConfig {
            nameservers: vec!["192.0.2.53".into()],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.resolvers, c.nameservers);
    }
}

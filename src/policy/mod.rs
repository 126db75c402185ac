//! The tenant boundary: whether a Certificate may use an issuer as it asks, decided from the
//! issuer's `spec.policy` ([`crate::api::IssuerPolicy`]) before any order, solver object or
//! signature. Pure: the caller brings the namespace's labels when the policy selects by label.
//!
//! Defaults, when an issuer has no policy (or leaves a field unset): an Issuer allows anything
//! to Certificates of its namespace; a ClusterIssuer allows every namespace and any name
//! (cert-manager's behaviour) unless the controller runs with
//! `--unrestricted-cluster-issuers=false`, which makes a ClusterIssuer without a policy usable
//! only from the controller's own namespace. `isCA: true` through a ClusterIssuer needs
//! `policy.isCA.allowed`, except for Certificates of the controller's own namespace.

pub mod budget;
pub mod hosts;

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use jiff::SignedDuration;

use crate::api::{CertificateSpec, IssuerKind, IssuerPolicy, KeyUsage};
use crate::pki::{self, Identifier};

/// The condition reason of a refused Certificate.
pub const POLICY_DENIED: &str = "PolicyDenied";

/// Who asks: the Certificate's namespace, and what the policy needs to know about it.
#[derive(Clone, Copy, Debug)]
pub struct Requester<'a> {
    pub namespace: &'a str,
    /// The namespace's labels; `None` when not read (only a `namespaces.selector` needs them).
    pub namespace_labels: Option<&'a BTreeMap<String, String>>,
    /// The controller's own namespace (ClusterIssuers' Secrets): the administrator's.
    pub cluster_resource_namespace: &'a str,
}

/// The issuer asked, as the policy sees it.
#[derive(Clone, Copy, Debug)]
pub struct Issuer<'a> {
    pub kind: IssuerKind,
    pub name: &'a str,
    pub policy: Option<&'a IssuerPolicy>,
    /// `--unrestricted-cluster-issuers`: whether a ClusterIssuer without a policy is open to
    /// every namespace.
    pub unrestricted_default: bool,
}

/// Why a Certificate is refused: the rule (a field path of the issuer's spec) and a message a
/// person can act on, naming the identifier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    pub rule: &'static str,
    pub message: String,
}

/// What an allowed Certificate gets from the policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grant {
    /// For `isCA: true` under a policy: the constraints to write into the CA.
    pub ca_constraints: Option<CaConstraints>,
    /// The longest lifetime the policy allows (caps a `ca`/`selfSigned` default).
    pub max_duration: Option<SignedDuration>,
}

pub use crate::pki::sign::CaConstraints;

impl Grant {
    /// The limits a local signature honours.
    pub fn signing_limits(&self) -> crate::pki::sign::SigningLimits {
        crate::pki::sign::SigningLimits {
            max_duration: self.max_duration,
            ca: self.ca_constraints.clone(),
        }
    }
}

/// Whether evaluating `policy` needs the namespace's labels (a selector that the namespace's
/// name alone does not settle).
pub fn needs_namespace_labels(policy: Option<&IssuerPolicy>, namespace: &str) -> bool {
    policy
        .and_then(|p| p.namespaces.as_ref())
        .is_some_and(|n| n.selector.is_some() && !n.names.iter().any(|x| x == namespace))
}

/// Decides whether a Certificate of `who` may ask `issuer` for `spec`.
pub fn evaluate(
    issuer: Issuer<'_>,
    who: Requester<'_>,
    spec: &CertificateSpec,
) -> Result<Grant, Denial> {
    let own_namespace = who.namespace == who.cluster_resource_namespace;
    let cluster = issuer.kind == IssuerKind::ClusterIssuer;
    let describe = match issuer.kind {
        IssuerKind::Issuer => format!("Issuer {}", issuer.name),
        IssuerKind::ClusterIssuer => format!("ClusterIssuer {}", issuer.name),
    };
    let Some(policy) = issuer.policy else {
        if cluster && !issuer.unrestricted_default && !own_namespace {
            return Err(Denial {
                rule: "policy",
                message: format!(
                    "{describe} has no policy, and this controller allows ClusterIssuers without \
                     one only to namespace {} (--unrestricted-cluster-issuers=false); ask the \
                     cluster administrator to add spec.policy.namespaces for namespace {}",
                    who.cluster_resource_namespace, who.namespace
                ),
            });
        }
        if cluster && spec.is_ca == Some(true) && !own_namespace {
            return Err(ca_refused(&describe));
        }
        return Ok(Grant::default());
    };
    if cluster && !own_namespace {
        check_namespace(policy, who, &describe)?;
    }
    let identifiers = pki::identifiers(spec).map_err(|e| Denial {
        rule: "spec",
        message: e.to_string(),
    })?;
    for id in &identifiers {
        check_identifier(policy, who.namespace, id, &describe)?;
    }
    check_usages(policy, spec, &describe)?;
    let max_duration = check_duration(policy, spec, &describe)?;
    let ca_constraints = if spec.is_ca == Some(true) {
        let ca = policy.is_ca.as_ref();
        let allowed = match ca {
            Some(ca) => ca.allowed,
            // An Issuer without an isCA rule allows CAs (they are trusted by nobody but its own
            // namespace); a ClusterIssuer's CA is trusted cluster-wide.
            None => !cluster || own_namespace,
        };
        if !allowed {
            return Err(ca_refused(&describe));
        }
        ca.map(|ca| ca_constraints(ca, who.namespace)).transpose()?
    } else {
        None
    };
    Ok(Grant {
        ca_constraints,
        max_duration,
    })
}

fn ca_refused(describe: &str) -> Denial {
    Denial {
        rule: "policy.isCA.allowed",
        message: format!(
            "{describe} does not allow CA certificates (isCA: true); its policy must set \
             isCA.allowed: true"
        ),
    }
}

fn check_namespace(
    policy: &IssuerPolicy,
    who: Requester<'_>,
    describe: &str,
) -> Result<(), Denial> {
    let Some(namespaces) = policy.namespaces.as_ref() else {
        return Ok(());
    };
    if namespaces.names.iter().any(|n| n == who.namespace) {
        return Ok(());
    }
    let by_label = namespaces.selector.as_ref().is_some_and(|sel| {
        who.namespace_labels.is_some_and(|labels| {
            sel.match_labels
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v))
        })
    });
    if by_label {
        return Ok(());
    }
    Err(Denial {
        rule: "policy.namespaces",
        message: format!(
            "{describe} may not be used from namespace {}: it is neither listed in \
             policy.namespaces.names nor matched by policy.namespaces.selector",
            who.namespace
        ),
    })
}

fn check_identifier(
    policy: &IssuerPolicy,
    namespace: &str,
    id: &Identifier,
    describe: &str,
) -> Result<(), Denial> {
    match id {
        Identifier::Dns(name) => {
            let Some(patterns) = policy.allowed_dns_names.as_ref() else {
                return Ok(());
            };
            if patterns.iter().any(|p| name_matches(p, namespace, name)) {
                return Ok(());
            }
            Err(Denial {
                rule: "policy.allowedDNSNames",
                message: format!(
                    "{describe} does not allow the DNS name {name} to namespace {namespace}: it \
                     matches none of policy.allowedDNSNames ({})",
                    summarize(patterns)
                ),
            })
        }
        Identifier::Ip(ip) => {
            let Some(ranges) = policy.allowed_ip_ranges.as_ref() else {
                return Ok(());
            };
            if ranges.iter().any(|r| ip_in_range(r, *ip)) {
                return Ok(());
            }
            Err(Denial {
                rule: "policy.allowedIPRanges",
                message: format!(
                    "{describe} does not allow the IP address {ip}: it is in none of \
                     policy.allowedIPRanges ({})",
                    summarize(ranges)
                ),
            })
        }
    }
}

/// The first few entries of a list, for a message of bounded length.
fn summarize(items: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut text = items
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > SHOWN {
        text.push_str(&format!(", and {} more", items.len() - SHOWN));
    }
    if text.is_empty() {
        text.push_str("an empty list");
    }
    text
}

/// Whether `name` matches `pattern` for `namespace`: `{namespace}` replaced, then label by
/// label, `*` standing for exactly one label (which may itself be a requested wildcard `*`).
/// Case-insensitive; a trailing dot is ignored.
pub fn name_matches(pattern: &str, namespace: &str, name: &str) -> bool {
    let pattern = pattern
        .replace("{namespace}", namespace)
        .to_ascii_lowercase();
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let pattern = pattern.trim_end_matches('.');
    let mut want = pattern.split('.');
    let mut have = name.split('.');
    loop {
        match (want.next(), have.next()) {
            (None, None) => return true,
            (Some("*"), Some(label)) if !label.is_empty() => {}
            (Some(w), Some(h)) if w == h && !w.is_empty() => {}
            _ => return false,
        }
    }
}

fn ip_in_range(range: &str, ip: IpAddr) -> bool {
    range
        .trim()
        .parse::<IpNet>()
        .is_ok_and(|net| net.contains(&ip))
}

fn check_usages(
    policy: &IssuerPolicy,
    spec: &CertificateSpec,
    describe: &str,
) -> Result<(), Denial> {
    let Some(allowed) = policy.allowed_usages.as_ref() else {
        return Ok(());
    };
    // `cert sign` comes with isCA and is judged by the isCA rule.
    let implied = |u: &KeyUsage| spec.is_ca == Some(true) && *u == KeyUsage::CertSign;
    match spec
        .usages
        .iter()
        .find(|u| !allowed.contains(u) && !implied(u))
    {
        None => Ok(()),
        Some(usage) => Err(Denial {
            rule: "policy.allowedUsages",
            message: format!(
                "{describe} does not allow the usage {:?}: it is not in policy.allowedUsages",
                usage_name(usage)
            ),
        }),
    }
}

/// cert-manager's spelling of a usage, as in the manifest.
fn usage_name(usage: &KeyUsage) -> String {
    serde_json::to_value(usage)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{usage:?}"))
}

fn check_duration(
    policy: &IssuerPolicy,
    spec: &CertificateSpec,
    describe: &str,
) -> Result<Option<SignedDuration>, Denial> {
    let Some(max_text) = policy.max_duration.as_deref() else {
        return Ok(None);
    };
    let max = pki::parse_go_duration(max_text).map_err(|e| Denial {
        rule: "policy.maxDuration",
        message: format!("{describe} has an invalid policy.maxDuration {max_text:?}: {e}"),
    })?;
    if let Some(asked_text) = spec.duration.as_deref() {
        let asked = pki::parse_go_duration(asked_text).map_err(|e| Denial {
            rule: "spec.duration",
            message: format!("duration {asked_text:?}: {e}"),
        })?;
        if asked > max {
            return Err(Denial {
                rule: "policy.maxDuration",
                message: format!(
                    "{describe} allows at most {max_text} (policy.maxDuration); the Certificate \
                     asks for duration {asked_text}"
                ),
            });
        }
    }
    Ok(Some(max))
}

fn ca_constraints(ca: &crate::api::CaPolicy, namespace: &str) -> Result<CaConstraints, Denial> {
    let domain = |d: &String| d.replace("{namespace}", namespace).to_ascii_lowercase();
    let permitted_ip_ranges = ca
        .permitted_ip_ranges
        .iter()
        .map(|r| {
            r.trim().parse::<IpNet>().map_err(|_| Denial {
                rule: "policy.isCA.permittedIPRanges",
                message: format!("policy.isCA.permittedIPRanges has an invalid range {r:?}"),
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(CaConstraints {
        path_length: ca.max_path_length.unwrap_or(0),
        permitted_dns_domains: ca.permitted_dns_domains.iter().map(domain).collect(),
        excluded_dns_domains: ca.excluded_dns_domains.iter().map(domain).collect(),
        permitted_ip_ranges,
    })
}

#[cfg(test)]
mod tests;

//! `spec.policy` of an Issuer or ClusterIssuer: who may use it, for which names, with which
//! certificate properties, and at what pace. The tenant boundary of a shared cluster, built in
//! (cert-manager leaves it to the approver-policy add-on), enforced by the controller before any
//! order, solver object or signature, and validated at apply time by the CRD schema.
//!
//! Types only; the decisions are in [`crate::policy`].

use std::collections::BTreeMap;

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use super::certificate::KeyUsage;
use super::validation as v;

/// What an issuer allows. Every field is optional; an unset field allows anything for that
/// aspect (cert-manager's behaviour), except `isCA` through a ClusterIssuer, which needs
/// `isCA.allowed` (see [`CaPolicy`]).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct IssuerPolicy {
    /// ClusterIssuer only: the namespaces whose Certificates may use it (by name or by label);
    /// unset, every namespace may.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<NamespacePolicy>,

    /// The DNS names a Certificate may ask for, as patterns: exact names, `*` standing for
    /// exactly one label (so `*.{namespace}.apps.example.com` allows `web.team-a.apps.example.com`
    /// and `*.team-a.apps.example.com` to namespace `team-a`), and `{namespace}` replaced by the
    /// Certificate's namespace. Unset: any name. Empty: no DNS name at all.
    #[serde(
        default,
        rename = "allowedDNSNames",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(length(max = 64), inner(length(min = 1, max = 253)))]
    #[x_kube(validation = v::dns_name_patterns_rule())]
    pub allowed_dns_names: Option<Vec<String>>,

    /// The IP ranges (CIDR, e.g. `10.0.0.0/8`, `2001:db8::/32`) the IP addresses a Certificate
    /// asks for must fall in. Unset: any address. Empty: no IP address at all.
    #[serde(
        default,
        rename = "allowedIPRanges",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(length(max = 64), inner(length(min = 1, max = 49)))]
    #[x_kube(validation = v::cidrs_rule("policy.allowedIPRanges"))]
    pub allowed_ip_ranges: Option<Vec<String>>,

    /// The usages a Certificate may list in `usages` (cert-manager's names). Unset: any. A
    /// Certificate that lists none gets the defaults (`digital signature`, `key encipherment`),
    /// which are always allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 23))]
    pub allowed_usages: Option<Vec<KeyUsage>>,

    /// The longest `duration` a Certificate may ask for (Go duration, e.g. `720h`). A longer one
    /// is refused; a Certificate without `duration` signed by a `ca` or `selfSigned` issuer gets
    /// at most this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(
        validation = v::go_duration_rule("policy.maxDuration"),
        validation = v::min_duration_rule("policy.maxDuration", "1h")
    )]
    pub max_duration: Option<String>,

    /// Whether and how Certificates may be CAs (`isCA: true`).
    #[serde(default, rename = "isCA", skip_serializing_if = "Option::is_none")]
    pub is_ca: Option<CaPolicy>,

    /// ClusterIssuer only: HTTP-01 may create a challenge route for a host that an Ingress or
    /// HTTPRoute of another namespace already serves. Off by default: without it such a
    /// Certificate is refused (`PolicyDenied`), since ingress controllers merge one host's rules
    /// across namespaces and the CA's request would reach our solver for another tenant's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_hosts_served_elsewhere: Option<bool>,

    /// ClusterIssuer only: how much of the shared account each namespace may spend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetPolicy>,
}

/// Which namespaces may use a ClusterIssuer: a namespace is allowed when its name is listed or
/// its labels match the selector.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = v::at_least_one_rule(&["names", "selector"], "policy.namespaces"))]
pub struct NamespacePolicy {
    /// Namespace names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 63)))]
    pub names: Vec<String>,
    /// Namespace labels, all of which must be present with these values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<NamespaceSelector>,
}

/// A label selector on namespaces (equality only).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceSelector {
    /// Labels the namespace must carry, with these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32))]
    pub match_labels: BTreeMap<String, String>,
}

/// CA certificates (`isCA: true`). Through a ClusterIssuer they are refused unless `allowed`
/// (Certificates of the controller's own namespace excepted: that is the administrator's);
/// through an Issuer they are allowed unless this says otherwise. Allowed CAs get the path
/// length and name constraints given here written into them.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CaPolicy {
    /// Whether Certificates may ask for `isCA: true`.
    #[serde(default)]
    pub allowed: bool,
    /// The basicConstraints path length of the CA (default 0: it may sign leaves only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 8))]
    pub max_path_length: Option<u8>,
    /// Name constraints (RFC 5280) written into the CA: the DNS domains it may sign for, with
    /// `{namespace}` replaced by the Certificate's namespace (e.g. `{namespace}.svc`).
    #[serde(
        default,
        rename = "permittedDNSDomains",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(length(max = 32), inner(length(min = 1, max = 253)))]
    pub permitted_dns_domains: Vec<String>,
    /// DNS domains the CA may not sign for.
    #[serde(
        default,
        rename = "excludedDNSDomains",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(length(max = 32), inner(length(min = 1, max = 253)))]
    pub excluded_dns_domains: Vec<String>,
    /// IP ranges (CIDR) the CA may sign for.
    #[serde(
        default,
        rename = "permittedIPRanges",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(length(max = 32), inner(length(min = 1, max = 49)))]
    #[x_kube(validation = v::cidrs_rule("policy.isCA.permittedIPRanges"))]
    pub permitted_ip_ranges: Vec<String>,
}

/// Per-namespace limits on a shared ClusterIssuer, so one tenant cannot spend the account's CA
/// rate limits (orders per account, certificates per domain) for everyone. Counted by the
/// controller in memory (a restart or a new leader starts the count again).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BudgetPolicy {
    /// Issuances (ACME orders, or signatures of a `ca`/`selfSigned` issuer) each namespace may
    /// start in any hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub orders_per_hour: Option<u32>,
    /// Re-issuances requested by hand (`ferrocert.dev/renew-requested`, `ferrocert renew`,
    /// `cmctl renew`) each Certificate may have in any hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub manual_renewals_per_hour: Option<u32>,
}

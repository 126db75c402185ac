//! `Issuer` (namespaced) and `ClusterIssuer` (cluster-scoped): an ACME account and how to solve its
//! challenges, a private CA whose key pair is in a Secret (`ca`), or self-signing (`selfSigned`).
//! Both share [`IssuerSpec`]; a ClusterIssuer's Secrets live in the controller's namespace (the
//! `--cluster-resource-namespace` flag), as with cert-manager.

// Several `printcolumn(...)` entries repeat `type_ = ...`; clippy reads them as duplicates.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::policy::IssuerPolicy;
use super::validation as v;

/// What an Issuer or ClusterIssuer signs with: exactly one of `acme`, `selfSigned` or `ca`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "ferrocert.dev",
    version = "v1alpha1",
    kind = "Issuer",
    namespaced,
    status = "IssuerStatus",
    shortname = "fissuer",
    category = "ferrocert",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].reason"#
    ),
    printcolumn(
        name = "Server",
        type_ = "string",
        json_path = ".spec.acme.server",
        priority = "1"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = v::exactly_one_rule(&["acme", "selfSigned", "ca"], "spec"),
    validation = v::cluster_only_policy_rule()
)]
pub struct IssuerSpec {
    /// Obtain certificates from an ACME server (RFC 8555).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acme: Option<AcmeIssuer>,
    /// Sign each certificate with its own private key (issuer = subject), e.g. to bootstrap a
    /// private CA: a Certificate with `isCA: true` through this issuer, then a `ca` issuer on its
    /// Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_signed: Option<SelfSignedIssuer>,
    /// Sign with the CA key pair in a Secret (`tls.crt`, `tls.key`) of the Issuer's namespace
    /// (for a ClusterIssuer, of the controller's cluster resource namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<CaIssuer>,
    /// What Certificates may ask of this issuer: names, IP ranges, usages, duration, CAs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<IssuerPolicy>,
}

/// The kind of a self-signing issuer has no settings (cert-manager's `selfSigned: {}`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SelfSignedIssuer {}

/// A private CA: the key pair that signs, in a `kubernetes.io/tls`-shaped Secret.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CaIssuer {
    /// The Secret holding the CA certificate (`tls.crt`, the CA first, then its own chain if it
    /// is an intermediate) and its private key (`tls.key`). The certificate must be a CA
    /// (basicConstraints CA:TRUE, keyUsage keyCertSign) and the key must be its key.
    #[x_kube(validation = v::object_name_rule("ca.secretName"))]
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
}

/// A cluster-wide Issuer: the same spec, usable from every namespace. Its Secrets (account key, EAB
/// and DNS credentials) are read from the controller's namespace.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "ferrocert.dev",
    version = "v1alpha1",
    kind = "ClusterIssuer",
    status = "IssuerStatus",
    shortname = "fclusterissuer",
    category = "ferrocert",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].reason"#
    ),
    printcolumn(
        name = "Server",
        type_ = "string",
        json_path = ".spec.acme.server",
        priority = "1"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = v::exactly_one_rule(&["acme", "selfSigned", "ca"], "spec"))]
pub struct ClusterIssuerSpec {
    /// Obtain certificates from an ACME server (RFC 8555).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acme: Option<AcmeIssuer>,
    /// Sign each certificate with its own private key (issuer = subject).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_signed: Option<SelfSignedIssuer>,
    /// Sign with the CA key pair in a Secret of the controller's cluster resource namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<CaIssuer>,
    /// Which namespaces may use this ClusterIssuer, for which names, with which certificate
    /// properties and at what pace. Unset: every namespace, any name (cert-manager's behaviour),
    /// unless the controller runs with `--unrestricted-cluster-issuers=false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<IssuerPolicy>,
}

impl ClusterIssuerSpec {
    /// The shared spec, so both kinds go through the same code.
    pub fn as_issuer_spec(&self) -> IssuerSpec {
        IssuerSpec {
            acme: self.acme.clone(),
            self_signed: self.self_signed.clone(),
            ca: self.ca.clone(),
            policy: self.policy.clone(),
        }
    }
}

/// Which kind of issuer a spec is, borrowed from it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum IssuerType<'a> {
    Acme(&'a AcmeIssuer),
    SelfSigned,
    Ca(&'a CaIssuer),
}

impl IssuerSpec {
    /// The issuer's kind. `None` only for a spec the CRD's rule refuses (none set); when several
    /// are set (likewise refused), ACME wins, then `ca`.
    pub fn issuer_type(&self) -> Option<IssuerType<'_>> {
        match (&self.acme, &self.ca, &self.self_signed) {
            (Some(acme), _, _) => Some(IssuerType::Acme(acme)),
            (None, Some(ca), _) => Some(IssuerType::Ca(ca)),
            (None, None, Some(_)) => Some(IssuerType::SelfSigned),
            (None, None, None) => None,
        }
    }
}

/// An ACME account at one server.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AcmeIssuer {
    /// The ACME directory URL, e.g. `https://acme-v02.api.letsencrypt.org/directory`.
    #[x_kube(validation = v::https_url_rule("spec.acme.server"))]
    #[schemars(length(max = 2048))]
    pub server: String,

    /// Contact address registered with the account; the CA sends expiry notices here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = v::email_rule())]
    #[schemars(length(max = 254))]
    pub email: Option<String>,

    /// The Secret holding the account's private key. Generated if it does not exist.
    pub private_key_secret_ref: SecretKeySelector,

    /// External Account Binding, required by some CAs (ZeroSSL, Google Trust Services).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_account_binding: Option<ExternalAccountBinding>,

    /// Base64-encoded PEM bundle of CAs to trust for the ACME server's TLS (private CAs such as
    /// step-ca or Pebble). The system roots are used when unset.
    #[serde(default, rename = "caBundle", skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,

    /// Skip TLS verification of the ACME server. For development only.
    #[serde(
        default,
        rename = "skipTLSVerify",
        skip_serializing_if = "Option::is_none"
    )]
    pub skip_tls_verify: Option<bool>,

    /// Prefer the alternate chain whose topmost certificate has this issuer Common Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub preferred_chain: Option<String>,

    /// The ACME certificate profile to request (e.g. `tlsserver`, `shortlived`). Must be one the
    /// CA's directory advertises; a Certificate's own `profile` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub profile: Option<String>,

    /// Turn off ACME Renewal Information (RFC 9773). By default, when the CA's directory offers
    /// `renewalInfo`, certificates renew at a random instant inside the CA's suggested window
    /// and new orders name the certificate they replace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_renewal_info: Option<bool>,

    /// How to prove control of each name; the most specific matching solver wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub solvers: Vec<AcmeSolver>,
}

/// A key in a Secret.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeySelector {
    /// Name of the Secret (in the Issuer's namespace; the controller's for a ClusterIssuer).
    #[x_kube(validation = v::object_name_rule("the Secret name"))]
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret; each use has its own default (`tls.key` for account keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub key: Option<String>,
}

/// External Account Binding credentials.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ExternalAccountBinding {
    /// The key identifier the CA gave you.
    #[serde(rename = "keyID")]
    #[schemars(length(min = 1, max = 256))]
    pub key_id: String,
    /// The Secret key holding the base64url-encoded HMAC key the CA gave you.
    pub key_secret_ref: SecretKeySelector,
}

/// One way of solving challenges, for the identifiers its selector matches.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = v::exactly_one_rule(&["http01", "dns01"], "each solver"))]
pub struct AcmeSolver {
    /// Which identifiers this solver is for; an empty selector matches every identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<SolverSelector>,
    /// Solve with HTTP-01: the controller serves the token and routes the CA to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http01: Option<Http01Solver>,
    /// Solve with DNS-01: the controller writes a TXT record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns01: Option<Dns01Solver>,
}

/// Selects identifiers for a solver, with cert-manager's precedence: a `dnsNames` match beats a
/// `dnsZones` match (the longest zone wins), which beats `matchLabels` (the most labels win).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SolverSelector {
    /// Exact names (e.g. `app.example.com`, `*.example.com`) this solver takes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50), inner(length(max = 253)))]
    #[x_kube(validation = v::dns_names_rule())]
    pub dns_names: Vec<String>,
    /// Zones: the solver takes each name equal to or under one of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(length(max = 253)))]
    pub dns_zones: Vec<String>,
    /// Labels the Certificate must carry.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
}

/// HTTP-01 solving: how the CA's request reaches the controller's challenge server.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = v::exactly_one_rule(&["ingress", "gatewayHTTPRoute"], "http01"))]
pub struct Http01Solver {
    /// Route through a temporary Ingress for exactly the challenge host and path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Http01Ingress>,
    /// Route through a temporary Gateway API HTTPRoute attached to these parents.
    #[serde(
        default,
        rename = "gatewayHTTPRoute",
        skip_serializing_if = "Option::is_none"
    )]
    pub gateway_http_route: Option<Http01GatewayRoute>,
    /// How the controller makes sure the route works before it tells the CA. Default: probe the
    /// challenge URL itself until it answers with the key authorization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_check: Option<Http01SelfCheck>,
}

/// The check made between creating a challenge's route and telling the CA.
///
/// `Probe` (the default) GETs `http://<name>/.well-known/acme-challenge/<token>` as the CA will
/// (the name resolved by DNS, port 80) until the key authorization comes back, so no CA attempt
/// is spent on a route the ingress controller has not loaded yet. `Delay` is for clusters whose
/// controller cannot reach its own public address (no hairpin NAT): it waits `delay` after the
/// route is created and then tells the CA without probing.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = v::self_check_delay_rule())]
pub struct Http01SelfCheck {
    /// `Probe` (default) or `Delay`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<SelfCheckMode>,
    /// With `mode: Delay`: how long to wait after the route is created (Go duration, default
    /// `30s`, at most `10m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(
        validation = v::go_duration_rule("selfCheck.delay"),
        validation = v::max_duration_rule("selfCheck.delay", "10m")
    )]
    #[schemars(length(max = 32))]
    pub delay: Option<String>,
}

/// See [`Http01SelfCheck`].
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default,
)]
pub enum SelfCheckMode {
    #[default]
    Probe,
    Delay,
}

/// The temporary Ingress made for each HTTP-01 challenge.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = v::at_most_one_rule(&["ingressClassName", "class"], "http01.ingress"))]
pub struct Http01Ingress {
    /// `spec.ingressClassName` of the temporary Ingress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub ingress_class_name: Option<String>,
    /// The legacy `kubernetes.io/ingress.class` annotation of the temporary Ingress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub class: Option<String>,
    /// Type of the temporary Service: `ClusterIP` (default) or `NodePort`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_type: Option<ServiceType>,
    /// Edit this existing Ingress of the Certificate's namespace instead of creating a temporary
    /// one: the challenge path is added to it as a rule, and removed when the order ends. For
    /// ingress controllers that give every Ingress its own address (cert-manager's field; its
    /// `http01-edit-in-place` annotation sets it through the ingress-shim). `ingressClassName`
    /// and `class` are then unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = v::object_name_rule("http01.ingress.name"))]
    pub name: Option<String>,
}

/// Kubernetes Service types usable behind a challenge route.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default,
)]
pub enum ServiceType {
    #[default]
    ClusterIP,
    NodePort,
}

/// The temporary HTTPRoute made for each HTTP-01 challenge.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Http01GatewayRoute {
    /// The Gateways (or listeners) the route attaches to.
    #[schemars(length(min = 1, max = 32))]
    pub parent_refs: Vec<ParentReference>,
    /// Type of the temporary Service: `ClusterIP` (default) or `NodePort`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_type: Option<ServiceType>,
    /// Extra labels on the temporary HTTPRoute (some Gateways select routes by label).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// A Gateway API `ParentReference`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ParentReference {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
}

/// DNS-01 solving: which DNS provider writes the TXT record.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = v::exactly_one_rule(&["rfc2136", "cloudflare", "route53", "acmeDNS", "webhook"], "dns01"))]
pub struct Dns01Solver {
    /// `Follow`: when `_acme-challenge.<name>` is a CNAME (delegation to another zone), write the
    /// TXT record at its target. `None` (default): write at `_acme-challenge.<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cname_strategy: Option<CnameStrategy>,
    /// RFC 2136 dynamic updates signed with TSIG (BIND, PowerDNS, Knot, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rfc2136: Option<Rfc2136Provider>,
    /// The Cloudflare v4 API, with an API token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloudflare: Option<CloudflareProvider>,
    /// Amazon Route53, with static keys or the controller's ambient AWS credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route53: Option<Route53Provider>,
    /// An acme-dns server (cert-manager's `dns01.acmeDNS`).
    #[serde(default, rename = "acmeDNS", skip_serializing_if = "Option::is_none")]
    pub acme_dns: Option<AcmeDnsProvider>,
    /// A cert-manager DNS webhook solver, reached through the API server's aggregation layer
    /// (cert-manager's `dns01.webhook`). The controller needs RBAC `create` on the solver's
    /// resource: the chart's `dns01Webhooks` value grants it per group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookProvider>,
}

/// A cert-manager DNS webhook solver (cert-manager's `dns01.webhook`): an APIService serving
/// `<groupName>/v1alpha1`, to whose `<solverName>` resource the controller POSTs a
/// `ChallengePayload` to present and to clean up each TXT record. Community solvers (Hetzner, OVH,
/// Gandi, ...) work unchanged.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct WebhookProvider {
    /// The API group the solver's APIService serves, e.g. `acme.example.com`.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = v::dns_subdomain_rule("webhook.groupName"))]
    pub group_name: String,
    /// The solver's name within that group (the resource the payload is POSTed to).
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = v::dns_label_rule("webhook.solverName"))]
    pub solver_name: String,
    /// Solver-specific configuration, passed to the solver as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::api::validation::any_object_schema")]
    pub config: Option<serde_json::Value>,
}

/// acme-dns (cert-manager's `dns01.acmeDNS`): each domain's `_acme-challenge` is a CNAME to its
/// acme-dns `fulldomain`, and the TXT value is set there through the acme-dns HTTP API.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AcmeDnsProvider {
    /// The acme-dns API, e.g. `https://auth.acme-dns.io` (`http://` only on a trusted network).
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = v::http_url_rule("acmeDNS.host"))]
    pub host: String,
    /// The Secret key (default `acmedns.json`) holding the accounts JSON that acme-dns's
    /// `/register` returned, by domain: `{"example.com": {"username", "password",
    /// "fulldomain", "subdomain", "allowfrom"}}`.
    pub account_secret_ref: SecretKeySelector,
}

/// Cloudflare (cert-manager's `dns01.cloudflare`). Only API tokens are supported: the legacy
/// global API key (`apiKeySecretRef`) is refused at admission with a message saying so, because
/// it grants the whole account and tokens can be limited to `Zone:Read` + `DNS:Edit`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = v::unsupported_field_rule(
    "apiKeySecretRef",
    "dns01.cloudflare.apiKeySecretRef (the global API key) is not supported: create an API token \
     with Zone:Read and DNS:Edit and set apiTokenSecretRef"
))]
pub struct CloudflareProvider {
    /// The account e-mail. Accepted for ported manifests; API tokens need no e-mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 254))]
    pub email: Option<String>,
    /// The Secret key holding the API token (key `api-token` by default).
    pub api_token_secret_ref: SecretKeySelector,
    /// Not supported (see the type's doc); present only so the refusal can say why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_secret_ref: Option<SecretKeySelector>,
}

/// Amazon Route53 (cert-manager's `dns01.route53`). Without static keys the controller's ambient
/// credentials are used: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`, then the
/// shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, `~/.aws/credentials`, profile
/// `AWS_PROFILE`), then web identity (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`, EKS IRSA).
/// With `role`, that role is assumed with those credentials.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = v::at_most_one_rule(&["accessKeyID", "accessKeyIDSecretRef"], "dns01.route53"),
    validation = v::route53_keys_rule()
)]
pub struct Route53Provider {
    /// The AWS region. Route53 is global (requests are signed for us-east-1); kept for ported
    /// manifests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub region: Option<String>,
    /// The hosted zone to write to; when unset, the longest public hosted zone containing the
    /// name is found with ListHostedZonesByName.
    #[serde(
        default,
        rename = "hostedZoneID",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(length(min = 1, max = 64))]
    pub hosted_zone_id: Option<String>,
    /// The access key id, inline (it is not a secret on its own).
    #[serde(
        default,
        rename = "accessKeyID",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(length(min = 1, max = 128))]
    pub access_key_id: Option<String>,
    /// The Secret key holding the access key id (key `access-key-id` by default).
    #[serde(
        default,
        rename = "accessKeyIDSecretRef",
        skip_serializing_if = "Option::is_none"
    )]
    pub access_key_id_secret_ref: Option<SecretKeySelector>,
    /// The Secret key holding the secret access key (key `secret-access-key` by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key_secret_ref: Option<SecretKeySelector>,
    /// A role ARN to assume (STS AssumeRole, session name `ferrocert`) with the credentials
    /// above; the temporary credentials are cached until shortly before they expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 20, max = 2048))]
    pub role: Option<String>,
}

/// Whether to follow `_acme-challenge` CNAMEs (cert-manager's `cnameStrategy`).
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default,
)]
pub enum CnameStrategy {
    #[default]
    None,
    Follow,
}

/// RFC 2136 dynamic DNS updates.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = v::both_or_neither_rule("tsigKeyName", "tsigSecretSecretRef", "dns01.rfc2136"))]
pub struct Rfc2136Provider {
    /// The primary nameserver: `host`, `host:port`, `[v6]:port` (port 53 by default).
    #[schemars(length(min = 1, max = 261))]
    pub nameserver: String,
    /// The TSIG key name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub tsig_key_name: Option<String>,
    /// The TSIG algorithm (default `HMACMD5`, as in cert-manager; prefer `HMACSHA256`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsig_algorithm: Option<TsigAlgorithm>,
    /// The Secret key holding the base64 TSIG secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsig_secret_secret_ref: Option<SecretKeySelector>,
}

/// TSIG algorithms, spelled as cert-manager spells them.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default,
)]
#[allow(clippy::upper_case_acronyms)]
pub enum TsigAlgorithm {
    #[default]
    HMACMD5,
    HMACSHA1,
    HMACSHA256,
    HMACSHA512,
}

/// Observed state of an Issuer or ClusterIssuer.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct IssuerStatus {
    /// `Ready`: the account is registered and usable (ACME), the CA key pair is valid (`ca`), or
    /// at once (`selfSigned`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The ACME account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acme: Option<AcmeIssuerStatus>,
    /// The signing CA of a `ca` issuer, as last verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<CaIssuerStatus>,
}

/// The CA certificate a `ca` issuer signs with. A change here (the CA Secret was rotated) wakes
/// the Certificates of the issuer, which re-issue what the previous CA signed.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CaIssuerStatus {
    /// SHA-256 of the CA certificate's DER, lowercase hex.
    #[serde(rename = "fingerprintSHA256")]
    pub fingerprint_sha256: String,
    /// The CA certificate's subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The end of the CA certificate's validity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
}

/// The registered ACME account.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AcmeIssuerStatus {
    /// The account URL at the CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// The e-mail last registered with the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_registered_email: Option<String>,
}

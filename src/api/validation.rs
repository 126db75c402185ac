//! CEL rules and patterns shared by the CRD schemas. One definition of "a DNS name" or "a Go
//! duration" is used everywhere; each rule carries a message a person can act on, because the API
//! server shows it verbatim when `kubectl apply` is refused.

use kube::core::Rule;

/// A lowercase DNS name; `*.` is allowed only as the whole first label.
pub const DNS_NAME_RE: &str =
    r"^(\*\.)?([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)*[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$";

/// A DNS-1123 subdomain: what Kubernetes accepts as an object name (Secrets included).
pub const OBJECT_NAME_RE: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// A DNS-1123 label: a resource name such as a DNS webhook's solver name.
pub const DNS_LABEL_RE: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// A Go duration string as cert-manager accepts it (`2160h`, `90m`, `1h30m`).
pub const GO_DURATION_RE: &str = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$";

/// The lifetime asked of the CA when `duration` is not set (cert-manager's default, 90 days).
pub const DEFAULT_DURATION: &str = "2160h";

/// Escapes a regular expression for a single-quoted CEL string literal.
fn cel_str(re: &str) -> String {
    format!("'{}'", re.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// A key of a Secret's `data`, as Kubernetes accepts it.
pub const SECRET_DATA_KEY_RE: &str = r"^[-._a-zA-Z0-9]+$";

pub fn secret_data_key_rule(field: &str) -> Rule {
    Rule::new(format!("self.matches({})", cel_str(SECRET_DATA_KEY_RE))).message(&*format!(
        "{field} must be a Secret data key: letters, digits, '-', '_' and '.'"
    ))
}

/// `additionalOutputFormats`: each type once.
pub fn unique_output_formats_rule() -> Rule {
    Rule::new("self.all(f, self.exists_one(g, g.type == f.type))")
        .message("each additionalOutputFormats type may appear only once")
}

/// A keystore that is created needs the Secret its password is in.
pub fn keystore_password_required_rule(kind: &str) -> Rule {
    Rule::new("!self.create || has(self.passwordSecretRef)").message(&*format!(
        "keystores.{kind}.passwordSecretRef is required when create is true: name a Secret of \
         this namespace and the key holding the keystore password"
    ))
}

pub fn dns_names_rule() -> Rule {
    Rule::new(format!("self.all(n, n.matches({}))", cel_str(DNS_NAME_RE))).message(
        "each dnsNames entry must be a lowercase DNS name such as app.example.com; \
         a wildcard is allowed only as the whole first label (*.example.com)",
    )
}

pub fn ip_addresses_rule() -> Rule {
    Rule::new("self.all(ip, isIP(ip))")
        .message("each ipAddresses entry must be an IPv4 or IPv6 address such as 192.0.2.10")
}

pub fn object_name_rule(field: &str) -> Rule {
    Rule::new(format!("self.matches({})", cel_str(OBJECT_NAME_RE))).message(&*format!(
        "{field} must be a valid Kubernetes object name: lowercase letters, digits, '-' and '.', \
         starting and ending with a letter or digit"
    ))
}

pub fn go_duration_rule(field: &str) -> Rule {
    Rule::new(format!("self.matches({})", cel_str(GO_DURATION_RE))).message(&*format!(
        "{field} must be a duration such as 2160h, 90m or 1h30m (units h, m, s)"
    ))
}

/// `min` must itself be a valid Go duration literal. Errors on an unparsable value are absorbed by
/// `||`, so only the format rule reports those.
pub fn min_duration_rule(field: &str, min: &str) -> Rule {
    Rule::new(format!(
        "!self.matches({}) || duration(self) >= duration('{min}')",
        cel_str(GO_DURATION_RE)
    ))
    .message(&*format!("{field} must be at least {min}"))
}

/// The counterpart of [`min_duration_rule`].
pub fn max_duration_rule(field: &str, max: &str) -> Rule {
    Rule::new(format!(
        "!self.matches({}) || duration(self) <= duration('{max}')",
        cel_str(GO_DURATION_RE)
    ))
    .message(&*format!("{field} must be at most {max}"))
}

/// `selfCheck.delay` means something only with `mode: Delay`.
pub fn self_check_delay_rule() -> Rule {
    Rule::new("!has(self.delay) || (has(self.mode) && self.mode == 'Delay')")
        .message("http01.selfCheck.delay is only used with mode: Delay")
}

pub fn renew_before_shorter_than_duration_rule() -> Rule {
    let re = cel_str(GO_DURATION_RE);
    Rule::new(format!(
        "!has(self.renewBefore) || !self.renewBefore.matches({re}) || \
         (has(self.duration) ? (!self.duration.matches({re}) || \
         duration(self.renewBefore) < duration(self.duration)) : \
         duration(self.renewBefore) < duration('{DEFAULT_DURATION}'))"
    ))
    .message(&*format!(
        "renewBefore must be shorter than duration (which defaults to {DEFAULT_DURATION})"
    ))
    .field_path(".renewBefore")
}

pub fn renew_before_exclusive_rule() -> Rule {
    Rule::new("!(has(self.renewBefore) && has(self.renewBeforePercentage))")
        .message("set renewBefore or renewBeforePercentage, not both")
}

/// A CA certificate's subject becomes the issuer name of everything it signs, and RFC 5280
/// (4.1.2.4) forbids an empty issuer name.
pub fn ca_needs_subject_rule() -> Rule {
    Rule::new(
        "!has(self.isCA) || !self.isCA || \
         (has(self.commonName) && size(self.commonName) > 0) || \
         (has(self.subject) && has(self.subject.organizations) && \
         size(self.subject.organizations) > 0)",
    )
    .message(
        "isCA: true needs a subject name (commonName or subject.organizations): the certificates \
         this CA signs name it as their issuer, which may not be empty",
    )
}

pub fn unique_items_rule(field: &str) -> Rule {
    Rule::new("self.all(x, self.exists_one(y, y == x))")
        .message(&*format!("{field} must not list a value twice"))
}

/// X.509 countryName is a two-letter ISO 3166 code (RFC 5280, X.520).
pub fn countries_rule() -> Rule {
    Rule::new("self.all(c, c.matches('^[A-Z]{2}$'))")
        .message("each subject.countries entry must be a two-letter ISO 3166 code such as DE")
}

/// `issuerRef` or `issuerRefs`: exactly one.
pub fn one_issuer_field_rule() -> Rule {
    Rule::new("has(self.issuerRef) != has(self.issuerRefs)")
        .message("set exactly one of issuerRef and issuerRefs")
}

/// `issuerRefs`: no issuer twice (`kind` defaults to `Issuer`; `group` has one value).
pub fn unique_issuer_refs_rule() -> Rule {
    Rule::new(
        "self.all(x, self.exists_one(y, y.name == x.name && \
         (has(y.kind) ? y.kind : 'Issuer') == (has(x.kind) ? x.kind : 'Issuer')))",
    )
    .message("issuerRefs must not name the same issuer twice")
}

pub fn has_identifier_rule() -> Rule {
    Rule::new(
        "(has(self.dnsNames) && size(self.dnsNames) > 0) || \
         (has(self.ipAddresses) && size(self.ipAddresses) > 0) || \
         (has(self.commonName) && size(self.commonName) > 0)",
    )
    .message("at least one of dnsNames, ipAddresses or commonName must be set")
}

pub fn key_size_rule() -> Rule {
    Rule::new(
        "!has(self.size) || \
         ((!has(self.algorithm) || self.algorithm == 'ECDSA') ? self.size in [256, 384] : \
         (self.algorithm == 'RSA' ? self.size in [2048, 3072, 4096] : false))",
    )
    .message(
        "privateKey.size must match privateKey.algorithm: RSA takes 2048, 3072 or 4096; \
         ECDSA takes 256 or 384; Ed25519 takes no size",
    )
    .field_path(".size")
}

pub fn ed25519_encoding_rule() -> Rule {
    Rule::new("!(has(self.algorithm) && self.algorithm == 'Ed25519' && has(self.encoding) && self.encoding == 'PKCS1')")
        .message("Ed25519 keys have no PKCS#1 form: use encoding PKCS8")
        .field_path(".encoding")
}

pub fn https_url_rule(field: &str) -> Rule {
    Rule::new("isURL(self) && url(self).getScheme() == 'https' && url(self).getHostname() != ''")
        .message(&*format!(
            "{field} must be an https:// URL of an ACME directory, such as \
             https://acme-v02.api.letsencrypt.org/directory"
        ))
}

pub fn http_url_rule(field: &str) -> Rule {
    Rule::new(
        "isURL(self) && url(self).getScheme() in ['https', 'http'] && url(self).getHostname() != ''",
    )
    .message(&*format!(
        "{field} must be an https:// (or http://) URL such as https://auth.acme-dns.io"
    ))
}

pub fn email_rule() -> Rule {
    Rule::new(r"self.matches('^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$')")
        .message("spec.acme.email must be an e-mail address such as ops@example.com")
}

pub fn issuer_group_rule() -> Rule {
    Rule::new("self == 'ferrocert.dev'").message(
        "issuerRef.group must be ferrocert.dev (or left out): ferrocert uses its own Issuers",
    )
}

/// A DNS-1123 subdomain (lowercase labels joined by dots), such as an API group name.
pub fn dns_subdomain_rule(field: &str) -> Rule {
    Rule::new(format!("self.matches({})", cel_str(OBJECT_NAME_RE))).message(&*format!(
        "{field} must be a lowercase DNS name such as acme.example.com"
    ))
}

/// A DNS-1123 label (lowercase letters, digits and dashes), such as a resource name.
pub fn dns_label_rule(field: &str) -> Rule {
    Rule::new(format!("self.matches({})", cel_str(DNS_LABEL_RE))).message(&*format!(
        "{field} must be lowercase letters, digits and dashes, such as hetzner"
    ))
}

/// Any JSON object, kept as it is (`x-kubernetes-preserve-unknown-fields`): solver configuration
/// that only the solver reads.
pub fn any_object_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

pub fn exactly_one_rule(fields: &[&str], what: &str) -> Rule {
    let sum = fields
        .iter()
        .map(|f| format!("(has(self.{f}) ? 1 : 0)"))
        .collect::<Vec<_>>()
        .join(" + ");
    Rule::new(format!("{sum} == 1")).message(&*format!(
        "{what} must set exactly one of: {}",
        fields.join(", ")
    ))
}

pub fn at_most_one_rule(fields: &[&str], what: &str) -> Rule {
    let sum = fields
        .iter()
        .map(|f| format!("(has(self.{f}) ? 1 : 0)"))
        .collect::<Vec<_>>()
        .join(" + ");
    Rule::new(format!("{sum} <= 1")).message(&*format!(
        "{what} may set at most one of: {}",
        fields.join(", ")
    ))
}

/// Refuses a field that exists only for ported cert-manager manifests, with the reason.
pub fn unsupported_field_rule(field: &str, message: &str) -> Rule {
    Rule::new(format!("!has(self.{field})")).message(message)
}

/// Route53 static keys come as a pair: an access key id (inline or from a Secret) and a secret
/// access key; neither means the controller's ambient credentials.
pub fn route53_keys_rule() -> Rule {
    Rule::new(
        "(has(self.accessKeyID) || has(self.accessKeyIDSecretRef)) == \
         has(self.secretAccessKeySecretRef)",
    )
    .message(
        "dns01.route53: set an access key id (accessKeyID or accessKeyIDSecretRef) together with \
         secretAccessKeySecretRef, or neither to use the controller's ambient AWS credentials",
    )
}

pub fn both_or_neither_rule(a: &str, b: &str, what: &str) -> Rule {
    Rule::new(format!("has(self.{a}) == has(self.{b})"))
        .message(&*format!("{what}: {a} and {b} must be set together"))
}

/// A DNS name pattern of an issuer policy: labels of lowercase letters, digits, `-` and the
/// placeholder `{namespace}`, or a whole label `*` (one label).
pub const DNS_NAME_PATTERN_RE: &str = r"^(\*|([a-z0-9]|\{namespace\})([-a-z0-9]|\{namespace\})*)(\.(\*|([a-z0-9]|\{namespace\})([-a-z0-9]|\{namespace\})*))*$";

pub fn dns_name_patterns_rule() -> Rule {
    Rule::new(format!(
        "self.all(p, p.matches({}))",
        cel_str(DNS_NAME_PATTERN_RE)
    ))
    .message(
        "each policy.allowedDNSNames entry must be a lowercase DNS name pattern such as \
         *.{namespace}.apps.example.com: `*` stands for one whole label and {namespace} for the \
         Certificate's namespace",
    )
}

pub fn cidrs_rule(field: &str) -> Rule {
    Rule::new("self.all(c, isCIDR(c))").message(&*format!(
        "each {field} entry must be an IP range in CIDR notation, e.g. 10.0.0.0/8 or 2001:db8::/32"
    ))
}

pub fn at_least_one_rule(fields: &[&str], what: &str) -> Rule {
    let any = fields
        .iter()
        .map(|f| format!("has(self.{f})"))
        .collect::<Vec<_>>()
        .join(" || ");
    Rule::new(any).message(&*format!(
        "{what} must set at least one of: {}",
        fields.join(", ")
    ))
}

/// Policy fields that mean something only on a ClusterIssuer (an Issuer serves its own
/// namespace, and a tenant's own Issuer cannot grant itself exceptions to the tenant boundary).
pub fn cluster_only_policy_rule() -> Rule {
    Rule::new(
        "!has(self.policy) || (!has(self.policy.namespaces) && \
         !has(self.policy.allowHostsServedElsewhere) && !has(self.policy.budget))",
    )
    .message(
        "policy.namespaces, policy.allowHostsServedElsewhere and policy.budget are for \
         ClusterIssuers only: an Issuer is used only from its own namespace",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cel_string_literal_escapes_backslashes_and_quotes() {
        assert_eq!(cel_str(r"a\.b'c"), r"'a\\.b\'c'");
    }

    #[test]
    fn exactly_one_counts_every_field() {
        let rule = exactly_one_rule(&["http01", "dns01"], "a solver");
        assert_eq!(
            rule.rule,
            "(has(self.http01) ? 1 : 0) + (has(self.dns01) ? 1 : 0) == 1"
        );
    }
}

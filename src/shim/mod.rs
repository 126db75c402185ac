//! ingress-shim and gateway-shim: an Ingress or a Gateway annotated with an issuer gets one
//! Certificate per TLS Secret it names, owned by it and kept in step with its hosts. This module
//! is the pure part: which Certificates an object asks for. The controller side (watching,
//! applying, deleting, Events) is `controller::shim`.
//!
//! Decisions (cert-manager's where it made one):
//! - The Certificate is named after the Secret and lives in the object's namespace.
//! - Entries naming the same Secret share one Certificate with the union of their hosts.
//! - An entry without hosts (or a Gateway listener without a hostname) asks for nothing.
//! - Removing the annotation or the entry deletes the Certificate; the Secret stays.

pub mod annotations;

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde::Deserialize;

use crate::api::{Certificate, CertificateSpec};
pub use annotations::{AnnotationError, Prefixes, ShimSettings};

/// Label on a shim's Certificates: the kind of object that asked for it (`Ingress`, `Gateway`).
pub const SHIM_LABEL: &str = "ferrocert.dev/shim";
/// Annotation on a Certificate: the IngressClass of its temporary HTTP-01 Ingress, overriding the
/// solver's (from `http01-ingress-class` on the Ingress).
pub const ANN_HTTP01_INGRESS_CLASS: &str = "ferrocert.dev/http01-ingress-class";
/// Annotation on a Certificate (`"true"`): solve HTTP-01 by adding the challenge rule to the
/// Ingress that controls the Certificate (from `http01-edit-in-place` on the Ingress).
pub const ANN_HTTP01_EDIT_IN_PLACE: &str = "ferrocert.dev/http01-edit-in-place";

/// One Certificate an object asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    /// The Secret, which is also the Certificate's name.
    pub secret_name: String,
    pub dns_names: Vec<String>,
}

/// Something in the object the shim could not use, for a Warning Event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped(pub String);

/// Whether `name` is a valid Kubernetes object name (DNS-1123 subdomain).
pub fn is_object_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Adds `hosts` to the Certificate for `secret`, keeping the first-seen order of both.
fn merge(wanted: &mut Vec<Wanted>, secret: &str, hosts: impl IntoIterator<Item = String>) {
    let idx = match wanted.iter().position(|w| w.secret_name == secret) {
        Some(i) => i,
        None => {
            wanted.push(Wanted {
                secret_name: secret.to_string(),
                dns_names: Vec::new(),
            });
            wanted.len() - 1
        }
    };
    for host in hosts {
        let host = host.trim().to_ascii_lowercase();
        if !host.is_empty() && !wanted[idx].dns_names.contains(&host) {
            wanted[idx].dns_names.push(host);
        }
    }
}

/// The Certificates an Ingress's `spec.tls` asks for.
pub fn from_ingress(ingress: &Ingress) -> (Vec<Wanted>, Vec<Skipped>) {
    let mut wanted = Vec::new();
    let mut skipped = Vec::new();
    let tls = ingress
        .spec
        .as_ref()
        .and_then(|s| s.tls.as_ref())
        .cloned()
        .unwrap_or_default();
    for (i, entry) in tls.into_iter().enumerate() {
        let hosts = entry.hosts.unwrap_or_default();
        match entry.secret_name.as_deref().map(str::trim) {
            None | Some("") => skipped.push(Skipped(format!(
                "spec.tls[{i}] has no secretName: no Certificate for it"
            ))),
            Some(secret) if !is_object_name(secret) => skipped.push(Skipped(format!(
                "spec.tls[{i}].secretName {secret:?} is not a valid Secret name"
            ))),
            Some(_) if hosts.is_empty() => skipped.push(Skipped(format!(
                "spec.tls[{i}] lists no hosts: no Certificate for it"
            ))),
            Some(secret) => merge(&mut wanted, secret, hosts),
        }
    }
    (wanted, skipped)
}

/// The parts of a `gateway.networking.k8s.io/v1` Gateway the shim reads.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewaySpec {
    #[serde(default)]
    pub listeners: Vec<Listener>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Listener {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub protocol: String,
    #[serde(default)]
    pub tls: Option<ListenerTls>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerTls {
    /// `Terminate` (the default) or `Passthrough`.
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub certificate_refs: Vec<SecretObjectReference>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretObjectReference {
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
}

/// The Certificates a Gateway's listeners ask for: each HTTPS or TLS listener that terminates
/// TLS, has a hostname, and names a Secret of the Gateway's own namespace.
pub fn from_gateway(namespace: &str, spec: &GatewaySpec) -> (Vec<Wanted>, Vec<Skipped>) {
    let mut wanted = Vec::new();
    let mut skipped = Vec::new();
    for l in &spec.listeners {
        if l.protocol != "HTTPS" && l.protocol != "TLS" {
            continue;
        }
        let Some(tls) = &l.tls else { continue };
        if tls.mode.as_deref().is_some_and(|m| m != "Terminate") {
            continue;
        }
        let Some(host) = l.hostname.as_deref().filter(|h| !h.is_empty()) else {
            skipped.push(Skipped(format!(
                "listener {:?} has no hostname: no Certificate for it",
                l.name
            )));
            continue;
        };
        for r in &tls.certificate_refs {
            let is_secret = r.group.as_deref().unwrap_or("").is_empty()
                && r.kind.as_deref().unwrap_or("Secret") == "Secret";
            if !is_secret {
                skipped.push(Skipped(format!(
                    "listener {:?}: certificateRef {:?} is not a core Secret",
                    l.name, r.name
                )));
            } else if r.namespace.as_deref().is_some_and(|ns| ns != namespace) {
                // A Certificate writes only Secrets of its own namespace.
                skipped.push(Skipped(format!(
                    "listener {:?}: Secret {:?} is in another namespace ({}): no Certificate for it",
                    l.name,
                    r.name,
                    r.namespace.as_deref().unwrap_or_default()
                )));
            } else if !is_object_name(&r.name) {
                skipped.push(Skipped(format!(
                    "listener {:?}: {:?} is not a valid Secret name",
                    l.name, r.name
                )));
            } else {
                merge(&mut wanted, &r.name, [host.to_string()]);
            }
        }
    }
    (wanted, skipped)
}

/// The Certificate a shim applies for `wanted`, owned by `owner` (the Ingress or Gateway).
pub fn certificate(
    namespace: &str,
    owner: OwnerReference,
    wanted: &Wanted,
    settings: &ShimSettings,
) -> Certificate {
    let mut annotations = BTreeMap::new();
    if let Some(class) = &settings.http01_ingress_class {
        annotations.insert(ANN_HTTP01_INGRESS_CLASS.to_string(), class.clone());
    }
    if settings.http01_edit_in_place && owner.kind == "Ingress" {
        annotations.insert(ANN_HTTP01_EDIT_IN_PLACE.to_string(), "true".to_string());
    }
    let labels = BTreeMap::from([
        (SHIM_LABEL.to_string(), owner.kind.clone()),
        (
            crate::labels::MANAGED_BY.to_string(),
            crate::labels::MANAGED_BY_VALUE.to_string(),
        ),
    ]);
    Certificate {
        metadata: ObjectMeta {
            name: Some(wanted.secret_name.clone()),
            namespace: Some(namespace.to_string()),
            owner_references: Some(vec![owner]),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            ..Default::default()
        },
        spec: CertificateSpec {
            secret_name: wanted.secret_name.clone(),
            dns_names: wanted.dns_names.clone(),
            common_name: settings.common_name.clone(),
            duration: settings.duration.clone(),
            renew_before: settings.renew_before.clone(),
            renew_before_percentage: settings.renew_before_percentage,
            private_key: settings.private_key.clone(),
            issuer_ref: Some(settings.issuer_ref.clone()),
            ..Default::default()
        },
        status: None,
    }
}

/// Whether `cert` is controlled by the object with `uid`.
pub fn controlled_by(cert: &Certificate, uid: &str) -> bool {
    cert.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && o.uid == uid)
}

/// What a shim does with one wanted Certificate, given the one that exists under its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Create it, or bring it in step.
    Apply,
    /// Another object (or a person) owns a Certificate of that name: leave it, and say so.
    TakenBy(String),
    /// cert-manager manages that Secret: make nothing, and say so.
    CertManagerManages(String),
}

/// Decides for one wanted Certificate: `existing` is the Certificate of that name (if any),
/// `cert_manager_certificate` the cert-manager Certificate writing that Secret (if any).
pub fn decide(
    owner_uid: &str,
    existing: Option<&Certificate>,
    cert_manager_certificate: Option<&str>,
) -> Decision {
    if let Some(other) = cert_manager_certificate {
        return Decision::CertManagerManages(other.to_string());
    }
    match existing {
        Some(c) if !controlled_by(c, owner_uid) => {
            let by = c
                .metadata
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true))
                .map(|o| format!("{} {}", o.kind, o.name))
                .unwrap_or_else(|| "no shim (created directly)".to_string());
            Decision::TakenBy(by)
        }
        _ => Decision::Apply,
    }
}

/// The HTTP-01 solver as `cert` uses it: with the IngressClass its annotation names, or editing
/// in place the Ingress that controls it (only that one: the annotation cannot point the
/// controller at any other Ingress).
pub fn solver_for(
    solver: &crate::api::Http01Solver,
    cert: &Certificate,
) -> crate::api::Http01Solver {
    crate::solver::select::with_ingress_overrides(
        solver,
        http01_ingress_class(cert),
        http01_edit_in_place(cert),
    )
}

/// The Ingress to edit in place for `cert`: its controlling Ingress, when the annotation asks.
pub fn http01_edit_in_place(cert: &Certificate) -> Option<&str> {
    let asked = cert
        .metadata
        .annotations
        .as_ref()?
        .get(ANN_HTTP01_EDIT_IN_PLACE)
        .is_some_and(|v| v == "true");
    if !asked {
        return None;
    }
    cert.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| {
            o.controller == Some(true)
                && o.kind == "Ingress"
                && o.api_version == "networking.k8s.io/v1"
        })
        .map(|o| o.name.as_str())
}

/// The ferrocert annotation an HTTP-01 ingress solver is overridden by on `cert`, if any: the
/// solver's Ingress then uses that class (and not the legacy `class`).
pub fn http01_ingress_class(cert: &Certificate) -> Option<&str> {
    cert.metadata
        .annotations
        .as_ref()?
        .get(ANN_HTTP01_INGRESS_CLASS)
        .map(String::as_str)
        .filter(|c| is_object_name(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::networking::v1::{IngressSpec, IngressTLS};

    fn ingress(tls: Vec<(Option<&str>, Vec<&str>)>) -> Ingress {
        Ingress {
            spec: Some(IngressSpec {
                tls: Some(
                    tls.into_iter()
                        .map(|(s, h)| IngressTLS {
                            secret_name: s.map(String::from),
                            hosts: Some(h.into_iter().map(String::from).collect()),
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn one_certificate_per_secret_with_the_union_of_hosts() {
        let (w, s) = from_ingress(&ingress(vec![
            (Some("a-tls"), vec!["a.example.com", "www.a.example.com"]),
            (Some("b-tls"), vec!["b.example.com"]),
            (Some("a-tls"), vec!["A.example.com", "c.example.com"]),
        ]));
        assert!(s.is_empty());
        assert_eq!(
            w,
            [
                Wanted {
                    secret_name: "a-tls".into(),
                    dns_names: vec![
                        "a.example.com".into(),
                        "www.a.example.com".into(),
                        "c.example.com".into()
                    ]
                },
                Wanted {
                    secret_name: "b-tls".into(),
                    dns_names: vec!["b.example.com".into()]
                }
            ]
        );
    }

    #[test]
    fn entries_without_secret_or_hosts_are_skipped_with_a_reason() {
        let (w, s) = from_ingress(&ingress(vec![
            (None, vec!["a.example.com"]),
            (Some("b-tls"), vec![]),
            (Some("Bad_Name"), vec!["c.example.com"]),
        ]));
        assert!(w.is_empty());
        assert_eq!(s.len(), 3);
        assert!(s[0].0.contains("no secretName"), "{s:?}");
        assert!(s[1].0.contains("no hosts"), "{s:?}");
        assert!(s[2].0.contains("not a valid Secret name"), "{s:?}");
    }

    #[test]
    fn an_ingress_without_tls_wants_nothing() {
        assert_eq!(from_ingress(&Ingress::default()), (vec![], vec![]));
    }

    fn gateway(json: serde_json::Value) -> GatewaySpec {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn gateway_listeners_sharing_a_secret_share_a_certificate() {
        let spec = gateway(serde_json::json!({"listeners": [
            {"name": "http", "protocol": "HTTP", "port": 80, "hostname": "x.example.com"},
            {"name": "a", "protocol": "HTTPS", "port": 443, "hostname": "a.example.com",
             "tls": {"certificateRefs": [{"name": "shared-tls"}]}},
            {"name": "b", "protocol": "HTTPS", "port": 443, "hostname": "b.example.com",
             "tls": {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "group": "", "name": "shared-tls"}]}},
            {"name": "p", "protocol": "TLS", "port": 443, "hostname": "p.example.com",
             "tls": {"mode": "Passthrough"}},
        ]}));
        let (w, s) = from_gateway("ns", &spec);
        assert!(s.is_empty(), "{s:?}");
        assert_eq!(
            w,
            [Wanted {
                secret_name: "shared-tls".into(),
                dns_names: vec!["a.example.com".into(), "b.example.com".into()]
            }]
        );
    }

    #[test]
    fn gateway_listeners_the_shim_cannot_serve_are_skipped() {
        let spec = gateway(serde_json::json!({"listeners": [
            {"name": "nohost", "protocol": "HTTPS", "port": 443,
             "tls": {"certificateRefs": [{"name": "x-tls"}]}},
            {"name": "elsewhere", "protocol": "HTTPS", "port": 443, "hostname": "e.example.com",
             "tls": {"certificateRefs": [{"name": "x-tls", "namespace": "other"}]}},
            {"name": "notsecret", "protocol": "HTTPS", "port": 443, "hostname": "n.example.com",
             "tls": {"certificateRefs": [{"name": "x", "group": "example.com", "kind": "Vault"}]}},
        ]}));
        let (w, s) = from_gateway("ns", &spec);
        assert!(w.is_empty());
        assert_eq!(s.len(), 3, "{s:?}");
    }

    fn owner(uid: &str) -> OwnerReference {
        OwnerReference {
            api_version: "networking.k8s.io/v1".into(),
            kind: "Ingress".into(),
            name: "web".into(),
            uid: uid.into(),
            controller: Some(true),
            block_owner_deletion: Some(false),
        }
    }

    #[test]
    fn the_certificate_carries_the_settings_and_its_owner() {
        let settings = annotations::read(
            &BTreeMap::from([
                (
                    "cert-manager.io/cluster-issuer".to_string(),
                    "le".to_string(),
                ),
                ("cert-manager.io/duration".to_string(), "48h".to_string()),
                (
                    "acme.cert-manager.io/http01-ingress-class".to_string(),
                    "nginx".to_string(),
                ),
            ]),
            Prefixes::default(),
        )
        .unwrap()
        .unwrap();
        let wanted = Wanted {
            secret_name: "web-tls".into(),
            dns_names: vec!["web.example.com".into()],
        };
        let c = certificate("ns", owner("u1"), &wanted, &settings);
        assert_eq!(c.metadata.name.as_deref(), Some("web-tls"));
        assert_eq!(c.spec.secret_name, "web-tls");
        assert_eq!(c.spec.dns_names, ["web.example.com"]);
        assert_eq!(c.spec.duration.as_deref(), Some("48h"));
        assert_eq!(
            c.spec.issuer_ref.as_ref().map(|r| r.name.as_str()),
            Some("le")
        );
        assert!(controlled_by(&c, "u1") && !controlled_by(&c, "u2"));
        assert_eq!(http01_ingress_class(&c), Some("nginx"));
        assert_eq!(c.metadata.labels.unwrap()[SHIM_LABEL], "Ingress");
    }

    #[test]
    fn decisions() {
        let mine = certificate(
            "ns",
            owner("u1"),
            &Wanted {
                secret_name: "s".into(),
                dns_names: vec![],
            },
            &ShimSettings::default(),
        );
        assert_eq!(decide("u1", None, None), Decision::Apply);
        assert_eq!(decide("u1", Some(&mine), None), Decision::Apply);
        assert_eq!(
            decide("u2", Some(&mine), None),
            Decision::TakenBy("Ingress web".into())
        );
        let mut direct = mine.clone();
        direct.metadata.owner_references = None;
        assert!(matches!(
            decide("u1", Some(&direct), None),
            Decision::TakenBy(by) if by.contains("directly")
        ));
        assert_eq!(
            decide("u1", Some(&mine), Some("web-cert")),
            Decision::CertManagerManages("web-cert".into())
        );
    }

    #[test]
    fn object_names() {
        assert!(is_object_name("web-tls"));
        assert!(is_object_name("a.b-c"));
        assert!(!is_object_name("Web"));
        assert!(!is_object_name("-a"));
        assert!(!is_object_name(""));
        assert!(!is_object_name("a..b"));
    }

    #[test]
    fn edit_in_place_points_only_at_the_controlling_ingress() {
        let settings = ShimSettings {
            http01_edit_in_place: true,
            ..Default::default()
        };
        let wanted = Wanted {
            secret_name: "s".into(),
            dns_names: vec!["a.example.com".into()],
        };
        let c = certificate("ns", owner("u1"), &wanted, &settings);
        assert_eq!(http01_edit_in_place(&c), Some("web"));
        let mut not_controller = c.clone();
        not_controller.metadata.owner_references.as_mut().unwrap()[0].controller = None;
        assert_eq!(http01_edit_in_place(&not_controller), None);
        let plain = certificate("ns", owner("u1"), &wanted, &ShimSettings::default());
        assert_eq!(http01_edit_in_place(&plain), None);
        let mut gw_owner = owner("u2");
        gw_owner.kind = "Gateway".into();
        let from_gateway = certificate("ns", gw_owner, &wanted, &settings);
        assert_eq!(http01_edit_in_place(&from_gateway), None);
    }
}

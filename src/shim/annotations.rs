//! The annotations an Ingress or a Gateway carries to ask for certificates, read into the parts
//! of a Certificate spec they set. Pure: no I/O, every decision unit-tested.
//!
//! Two prefixes mean the same thing: ferrocert's own (`ferrocert.dev/issuer`, ...) and
//! cert-manager's (`cert-manager.io/issuer`, ..., and `acme.cert-manager.io/http01-*`), so an
//! Ingress annotated for cert-manager keeps working unchanged. Where both prefixes set the same
//! annotation, ferrocert's wins. Which prefixes are read is a controller flag
//! (`--shim-annotation-prefixes`).

use std::collections::BTreeMap;

use crate::api::{IssuerKind, IssuerRef, PrivateKeyAlgorithm, PrivateKeySpec, RotationPolicy};
use crate::pki::parse_go_duration;

/// ferrocert's own annotation prefix.
pub const FERROCERT_PREFIX: &str = "ferrocert.dev";
/// cert-manager's prefix (its ACME annotations use `acme.cert-manager.io`).
pub const CERT_MANAGER_PREFIX: &str = "cert-manager.io";

/// The annotation prefixes the shims honour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefixes {
    pub ferrocert: bool,
    pub cert_manager: bool,
}

impl Default for Prefixes {
    fn default() -> Self {
        Prefixes {
            ferrocert: true,
            cert_manager: true,
        }
    }
}

impl Prefixes {
    /// Reads `--shim-annotation-prefixes` values (`ferrocert.dev`, `cert-manager.io`).
    pub fn parse(values: &[String]) -> Result<Self, String> {
        let mut p = Prefixes {
            ferrocert: false,
            cert_manager: false,
        };
        for v in values.iter().map(|v| v.trim()).filter(|v| !v.is_empty()) {
            match v {
                FERROCERT_PREFIX => p.ferrocert = true,
                CERT_MANAGER_PREFIX => p.cert_manager = true,
                other => {
                    return Err(format!(
                        "--shim-annotation-prefixes: unknown prefix {other:?} (expected \
                         {FERROCERT_PREFIX} or {CERT_MANAGER_PREFIX})"
                    ));
                }
            }
        }
        Ok(p)
    }

    /// The full annotation keys for `name` in the honoured prefixes, ferrocert's first.
    /// `acme` annotations live under `acme.cert-manager.io` for cert-manager.
    fn keys(&self, name: &str, acme: bool) -> Vec<String> {
        let mut keys = Vec::new();
        if self.ferrocert {
            keys.push(format!("{FERROCERT_PREFIX}/{name}"));
        }
        if self.cert_manager {
            let prefix = if acme {
                format!("acme.{CERT_MANAGER_PREFIX}")
            } else {
                CERT_MANAGER_PREFIX.to_string()
            };
            keys.push(format!("{prefix}/{name}"));
        }
        keys
    }
}

/// One annotation whose value cannot be used, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnotationError {
    pub annotation: String,
    pub reason: String,
}

impl std::fmt::Display for AnnotationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "annotation {}: {}", self.annotation, self.reason)
    }
}

/// What the annotations ask for: the issuer and the per-certificate settings shared by every
/// Certificate made from the object.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ShimSettings {
    pub issuer_ref: IssuerRef,
    pub common_name: Option<String>,
    pub duration: Option<String>,
    pub renew_before: Option<String>,
    pub renew_before_percentage: Option<i32>,
    pub private_key: Option<PrivateKeySpec>,
    /// `http01-ingress-class`: the class of the temporary HTTP-01 Ingress, instead of the solver's.
    pub http01_ingress_class: Option<String>,
    /// `http01-edit-in-place`: asked for; not supported (see [`read`]).
    pub http01_edit_in_place: bool,
}

/// The object's annotations read with `prefixes`:
/// - `Ok(None)`: no issuer annotation: the object is not for the shim (its Certificates, if
///   any, are removed).
/// - `Ok(Some(settings))`: every annotation that was given is valid.
/// - `Err(errors)`: an issuer annotation is there but some value is not usable; nothing is
///   created or changed from it.
pub fn read(
    annotations: &BTreeMap<String, String>,
    prefixes: Prefixes,
) -> Result<Option<ShimSettings>, Vec<AnnotationError>> {
    let mut r = Reader {
        annotations,
        prefixes,
        errors: Vec::new(),
    };
    let issuer = r.get("issuer", false);
    let cluster_issuer = r.get("cluster-issuer", false);
    if issuer.is_none() && cluster_issuer.is_none() {
        return Ok(None);
    }
    let issuer_ref = r.issuer_ref(issuer, cluster_issuer);
    let common_name = r.get("common-name", false).and_then(|(key, cn)| {
        if cn.is_empty() || cn.len() > 64 {
            r.err(&key, "must be 1 to 64 characters".into());
            None
        } else {
            Some(cn)
        }
    });
    let timing = r.timing();
    let private_key = r.private_key();
    if let Some((key, v)) = r.get("revision-history-limit", false) {
        // ferrocert keeps no CertificateRequest history, so there is nothing to limit: accepted
        // (a ported Ingress keeps working) and otherwise ignored.
        if !matches!(v.parse::<i32>(), Ok(n) if n >= 1) {
            r.err(&key, format!("{v:?} is not a whole number of at least 1"));
        }
    }
    let (http01_ingress_class, http01_edit_in_place) = r.http01();

    match issuer_ref {
        Some(issuer_ref) if r.errors.is_empty() => Ok(Some(ShimSettings {
            issuer_ref,
            common_name,
            duration: timing.duration,
            renew_before: timing.renew_before,
            renew_before_percentage: timing.renew_before_percentage,
            private_key,
            http01_ingress_class,
            http01_edit_in_place,
        })),
        _ => Err(r.errors),
    }
}

/// The annotations being read, and the errors found so far.
struct Reader<'a> {
    annotations: &'a BTreeMap<String, String>,
    prefixes: Prefixes,
    errors: Vec<AnnotationError>,
}

/// `duration`, `renew-before` and `renew-before-percentage`, each valid alone and together.
struct Timing {
    duration: Option<String>,
    renew_before: Option<String>,
    renew_before_percentage: Option<i32>,
}

impl Reader<'_> {
    /// The first honoured key set for `name`, with its trimmed value.
    fn get(&self, name: &str, acme: bool) -> Option<(String, String)> {
        self.prefixes.keys(name, acme).into_iter().find_map(|k| {
            self.annotations
                .get(&k)
                .map(|v| (k.clone(), v.trim().to_string()))
        })
    }

    fn err(&mut self, annotation: &str, reason: String) {
        self.errors.push(AnnotationError {
            annotation: annotation.to_string(),
            reason,
        });
    }

    /// The Issuer or ClusterIssuer named (`issuer-kind` picks between them), and
    /// `issuer-group` checked: only ferrocert's and cert-manager's own groups.
    fn issuer_ref(
        &mut self,
        issuer: Option<(String, String)>,
        cluster_issuer: Option<(String, String)>,
    ) -> Option<IssuerRef> {
        let issuer_ref = match (issuer, cluster_issuer) {
            (Some((ik, _)), Some((ck, _))) => {
                self.err(
                    &ik,
                    format!("set together with {ck}: name either an Issuer or a ClusterIssuer"),
                );
                None
            }
            (Some((key, name)), None) => {
                let kind = match self.get("issuer-kind", false) {
                    None => Some(IssuerKind::Issuer),
                    Some((_, k)) if k == "Issuer" => Some(IssuerKind::Issuer),
                    Some((_, k)) if k == "ClusterIssuer" => Some(IssuerKind::ClusterIssuer),
                    Some((kk, k)) => {
                        self.err(
                            &kk,
                            format!("{k:?} is not a kind ferrocert has (Issuer or ClusterIssuer)"),
                        );
                        None
                    }
                };
                kind.and_then(|kind| issuer_ref(&key, name, kind, &mut |k, why| self.err(k, why)))
            }
            (None, Some((key, name))) => {
                issuer_ref(&key, name, IssuerKind::ClusterIssuer, &mut |k, why| {
                    self.err(k, why)
                })
            }
            (None, None) => None,
        };
        if let Some((key, group)) = self.get("issuer-group", false) {
            // cert-manager's own issuers are ferrocert's after a port (same names); any other
            // group is an external issuer ferrocert cannot drive.
            if !group.is_empty() && group != FERROCERT_PREFIX && group != CERT_MANAGER_PREFIX {
                self.err(
                    &key,
                    format!(
                        "{group:?} is an external issuer's API group; ferrocert issues only with \
                         its own Issuers and ClusterIssuers ({FERROCERT_PREFIX})"
                    ),
                );
            }
        }
        issuer_ref
    }

    fn timing(&mut self) -> Timing {
        let duration = self
            .get("duration", false)
            .and_then(|(key, d)| self.duration(&key, d, MIN_DURATION));
        let renew_before_key = self.get("renew-before", false);
        let renew_before = renew_before_key
            .clone()
            .and_then(|(key, d)| self.duration(&key, d, MIN_RENEW_BEFORE));
        if let (Some(d), Some(rb)) = (&duration, &renew_before)
            && let (Ok(d), Ok(rb)) = (parse_go_duration(d), parse_go_duration(rb))
            && rb >= d
        {
            let key = renew_before_key.map(|(k, _)| k).unwrap_or_default();
            self.err(&key, "must be shorter than the duration".into());
        }
        let percentage = self.get("renew-before-percentage", false);
        let renew_before_percentage = percentage.clone().and_then(|(key, p)| match p.parse() {
            Ok(p) if (1..=99).contains(&p) => Some(p),
            _ => {
                self.err(&key, format!("{p:?} is not a whole number from 1 to 99"));
                None
            }
        });
        if renew_before.is_some() && renew_before_percentage.is_some() {
            let key = percentage.map(|(k, _)| k).unwrap_or_default();
            self.err(
                &key,
                "set together with renew-before: give one of the two".into(),
            );
        }
        Timing {
            duration,
            renew_before,
            renew_before_percentage,
        }
    }

    fn duration(&mut self, key: &str, value: String, min: (&str, i64)) -> Option<String> {
        checked_duration(key, value, min, &mut |k, why| self.err(k, why))
    }

    /// `http01-ingress-class` and `http01-edit-in-place` (under `acme.cert-manager.io`).
    fn http01(&mut self) -> (Option<String>, bool) {
        let class = self
            .get("http01-ingress-class", true)
            .and_then(|(key, class)| {
                if crate::shim::is_object_name(&class) {
                    Some(class)
                } else {
                    self.err(&key, format!("{class:?} is not a valid IngressClass name"));
                    None
                }
            });
        let edit_in_place = match self.get("http01-edit-in-place", true) {
            None => false,
            Some((key, v)) => match v.as_str() {
                "true" => true,
                "false" => false,
                _ => {
                    self.err(&key, format!("{v:?} is not true or false"));
                    false
                }
            },
        };
        (class, edit_in_place)
    }

    /// `private-key-algorithm`, `-size` and `-rotation-policy`, checked together as the schema does.
    fn private_key(&mut self) -> Option<PrivateKeySpec> {
        let algorithm = self
            .get("private-key-algorithm", false)
            .and_then(|(key, a)| match a.to_ascii_lowercase().as_str() {
                "rsa" => Some(PrivateKeyAlgorithm::RSA),
                "ecdsa" => Some(PrivateKeyAlgorithm::ECDSA),
                "ed25519" => Some(PrivateKeyAlgorithm::Ed25519),
                _ => {
                    self.err(&key, format!("{a:?} is not RSA, ECDSA or Ed25519"));
                    None
                }
            });
        let size = self.get("private-key-size", false).and_then(|(key, s)| {
            let allowed: &[i32] = match algorithm.unwrap_or_default() {
                PrivateKeyAlgorithm::RSA => &[2048, 3072, 4096],
                PrivateKeyAlgorithm::ECDSA => &[256, 384],
                PrivateKeyAlgorithm::Ed25519 => &[],
            };
            match s.parse::<i32>() {
                Ok(n) if allowed.contains(&n) => Some(n),
                _ if allowed.is_empty() => {
                    self.err(&key, "Ed25519 keys take no size".into());
                    None
                }
                _ => {
                    let allowed: Vec<String> = allowed.iter().map(i32::to_string).collect();
                    self.err(
                        &key,
                        format!(
                            "{s:?} is not a size for {:?} keys (one of {})",
                            algorithm.unwrap_or_default(),
                            allowed.join(", ")
                        ),
                    );
                    None
                }
            }
        });
        let rotation_policy =
            self.get("private-key-rotation-policy", false)
                .and_then(|(key, p)| match p.as_str() {
                    "Always" => Some(RotationPolicy::Always),
                    "Never" => Some(RotationPolicy::Never),
                    _ => {
                        self.err(&key, format!("{p:?} is not Always or Never"));
                        None
                    }
                });
        let encoding = algorithm
            .filter(|a| *a == PrivateKeyAlgorithm::Ed25519)
            .map(|_| crate::api::PrivateKeyEncoding::PKCS8);
        (algorithm.is_some() || size.is_some() || rotation_policy.is_some()).then_some(
            PrivateKeySpec {
                algorithm,
                size,
                encoding,
                rotation_policy,
            },
        )
    }
}

const MIN_DURATION: (&str, i64) = ("1h", 3600);
const MIN_RENEW_BEFORE: (&str, i64) = ("5m", 300);

fn issuer_ref(
    key: &str,
    name: String,
    kind: IssuerKind,
    err: &mut impl FnMut(&str, String),
) -> Option<IssuerRef> {
    if crate::shim::is_object_name(&name) {
        Some(IssuerRef {
            name,
            kind: Some(kind),
            group: None,
        })
    } else {
        err(key, format!("{name:?} is not a valid object name"));
        None
    }
}

/// A Go duration of at least `min`, as the Certificate schema requires.
fn checked_duration(
    key: &str,
    value: String,
    (min_text, min_secs): (&str, i64),
    err: &mut impl FnMut(&str, String),
) -> Option<String> {
    match parse_go_duration(&value) {
        Ok(d) if d.as_secs() >= min_secs => Some(value),
        Ok(_) => {
            err(
                key,
                format!("{value:?} is shorter than the minimum {min_text}"),
            );
            None
        }
        Err(e) => {
            err(
                key,
                format!("{value:?} is not a duration such as 2160h or 90m: {e}"),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn ok(pairs: &[(&str, &str)]) -> ShimSettings {
        read(&ann(pairs), Prefixes::default())
            .expect("valid")
            .expect("for the shim")
    }

    fn errors(pairs: &[(&str, &str)]) -> Vec<String> {
        read(&ann(pairs), Prefixes::default())
            .expect_err("invalid")
            .into_iter()
            .map(|e| e.annotation)
            .collect()
    }

    #[test]
    fn no_issuer_annotation_is_not_for_the_shim() {
        let a = ann(&[("cert-manager.io/duration", "nonsense")]);
        assert_eq!(read(&a, Prefixes::default()), Ok(None));
    }

    #[test]
    fn both_prefixes_name_the_issuer() {
        let s = ok(&[("ferrocert.dev/cluster-issuer", "le")]);
        assert_eq!(s.issuer_ref.name, "le");
        assert_eq!(s.issuer_ref.kind, Some(IssuerKind::ClusterIssuer));
        let s = ok(&[("cert-manager.io/issuer", "ca")]);
        assert_eq!(s.issuer_ref.kind, Some(IssuerKind::Issuer));
        let s = ok(&[
            ("cert-manager.io/issuer", "x"),
            ("cert-manager.io/issuer-kind", "ClusterIssuer"),
            ("cert-manager.io/issuer-group", "cert-manager.io"),
        ]);
        assert_eq!(s.issuer_ref.kind, Some(IssuerKind::ClusterIssuer));
    }

    #[test]
    fn ferrocert_prefix_wins_over_cert_managers() {
        let s = ok(&[
            ("cert-manager.io/issuer", "old"),
            ("ferrocert.dev/issuer", "new"),
            ("cert-manager.io/duration", "2h"),
            ("ferrocert.dev/duration", "3h"),
        ]);
        assert_eq!(s.issuer_ref.name, "new");
        assert_eq!(s.duration.as_deref(), Some("3h"));
    }

    #[test]
    fn a_prefix_that_is_off_is_not_read() {
        let only_ours = Prefixes {
            ferrocert: true,
            cert_manager: false,
        };
        let a = ann(&[("cert-manager.io/cluster-issuer", "le")]);
        assert_eq!(read(&a, only_ours), Ok(None));
        assert!(Prefixes::parse(&["cert-manager.io".into()]).is_ok_and(|p| !p.ferrocert));
        assert!(Prefixes::parse(&["example.com".into()]).is_err());
    }

    #[test]
    fn per_certificate_settings_are_read() {
        let s = ok(&[
            ("cert-manager.io/cluster-issuer", "le"),
            ("cert-manager.io/common-name", "app.example.com"),
            ("cert-manager.io/duration", "2160h"),
            ("cert-manager.io/renew-before", "360h"),
            ("cert-manager.io/private-key-algorithm", "RSA"),
            ("cert-manager.io/private-key-size", "4096"),
            ("cert-manager.io/private-key-rotation-policy", "Never"),
            ("cert-manager.io/revision-history-limit", "3"),
            ("acme.cert-manager.io/http01-ingress-class", "nginx"),
        ]);
        assert_eq!(s.common_name.as_deref(), Some("app.example.com"));
        assert_eq!(s.renew_before.as_deref(), Some("360h"));
        let key = s.private_key.unwrap();
        assert_eq!(key.algorithm, Some(PrivateKeyAlgorithm::RSA));
        assert_eq!(key.size, Some(4096));
        assert_eq!(key.rotation_policy, Some(RotationPolicy::Never));
        assert_eq!(s.http01_ingress_class.as_deref(), Some("nginx"));
        assert!(!s.http01_edit_in_place);
    }

    #[test]
    fn ed25519_keys_get_pkcs8() {
        let s = ok(&[
            ("ferrocert.dev/issuer", "x"),
            ("ferrocert.dev/private-key-algorithm", "Ed25519"),
        ]);
        assert_eq!(
            s.private_key.unwrap().encoding,
            Some(crate::api::PrivateKeyEncoding::PKCS8)
        );
    }

    #[test]
    fn invalid_values_name_their_annotation() {
        assert_eq!(
            errors(&[
                ("cert-manager.io/cluster-issuer", "le"),
                ("cert-manager.io/duration", "ninety days"),
            ]),
            ["cert-manager.io/duration"]
        );
        assert_eq!(
            errors(&[
                ("cert-manager.io/cluster-issuer", "le"),
                ("cert-manager.io/duration", "30m"),
            ]),
            ["cert-manager.io/duration"]
        );
        assert_eq!(
            errors(&[
                ("ferrocert.dev/issuer", "a"),
                ("ferrocert.dev/cluster-issuer", "b"),
            ]),
            ["ferrocert.dev/issuer"]
        );
        assert_eq!(
            errors(&[
                ("cert-manager.io/issuer", "a"),
                ("cert-manager.io/issuer-group", "awspca.cert-manager.io"),
            ]),
            ["cert-manager.io/issuer-group"]
        );
        assert_eq!(
            errors(&[
                ("cert-manager.io/issuer", "a"),
                ("cert-manager.io/private-key-algorithm", "ECDSA"),
                ("cert-manager.io/private-key-size", "2048"),
            ]),
            ["cert-manager.io/private-key-size"]
        );
        assert_eq!(
            errors(&[
                ("cert-manager.io/issuer", "a"),
                ("cert-manager.io/duration", "2h"),
                ("cert-manager.io/renew-before", "3h"),
            ]),
            ["cert-manager.io/renew-before"]
        );
        assert_eq!(
            errors(&[
                ("cert-manager.io/issuer", "Not_A_Name"),
                ("acme.cert-manager.io/http01-edit-in-place", "yes"),
            ]),
            [
                "cert-manager.io/issuer",
                "acme.cert-manager.io/http01-edit-in-place"
            ]
        );
        assert_eq!(
            errors(&[
                ("cert-manager.io/issuer", "a"),
                ("cert-manager.io/issuer-kind", "AWSPCAIssuer"),
            ]),
            ["cert-manager.io/issuer-kind"]
        );
    }

    #[test]
    fn error_text_names_annotation_and_reason() {
        let e = read(
            &ann(&[
                ("cert-manager.io/cluster-issuer", "le"),
                ("cert-manager.io/private-key-rotation-policy", "Sometimes"),
            ]),
            Prefixes::default(),
        )
        .unwrap_err();
        assert_eq!(
            e[0].to_string(),
            "annotation cert-manager.io/private-key-rotation-policy: \"Sometimes\" is not Always or Never"
        );
    }
}

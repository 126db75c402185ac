//! Prometheus metrics. One registry per process; collectors are cheap handles shared through
//! [`Metrics`] (cloned into every part that records).

use std::sync::Arc;

use kube::ResourceExt;
use kube::runtime::reflector::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::api::Certificate;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AcmeRequestLabels {
    /// What the request was for (see [`acme_endpoint`]).
    pub endpoint: String,
    pub method: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IssuerLabels {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    pub kind: String,
    pub outcome: String,
}

/// The process's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub acme_requests: Family<AcmeRequestLabels, Counter>,
    pub acme_request_seconds: Family<AcmeRequestLabels, Histogram>,
    pub acme_orders_created: Counter,
    pub reconciles: Family<ReconcileLabels, Counter>,
    pub reconcile_seconds: Family<KindLabels, Histogram>,
    pub issuer_ready: Family<IssuerLabels, prometheus_client::metrics::gauge::Gauge>,
    pub http01_self_checks: Family<OutcomeLabels, Counter>,
    pub http01_route_ready_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(None)
    }
}

impl Metrics {
    /// The registry; with a Certificate cache, per-Certificate gauges are read from it at scrape
    /// time (nothing to keep in sync, nothing left behind when a Certificate goes).
    pub fn new(certificates: Option<Store<Certificate>>) -> Self {
        let mut registry = Registry::with_prefix("ferrocert");
        if let Some(store) = certificates {
            registry.register_collector(Box::new(CertificateCollector { store }));
        }
        let acme_requests = Family::<AcmeRequestLabels, Counter>::default();
        registry.register(
            "acme_requests",
            "HTTP requests sent to ACME servers, by method and response status",
            acme_requests.clone(),
        );
        let acme_request_seconds =
            Family::<AcmeRequestLabels, Histogram>::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.005, 2.0, 12))
            });
        registry.register(
            "acme_request_duration_seconds",
            "Latency of HTTP requests to ACME servers",
            acme_request_seconds.clone(),
        );
        let acme_orders_created = Counter::default();
        registry.register(
            "acme_orders_created",
            "ACME orders created (newOrder requests that succeeded)",
            acme_orders_created.clone(),
        );
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles by resource kind and outcome",
            reconciles.clone(),
        );
        let reconcile_seconds = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 14))
        });
        registry.register(
            "reconcile_duration_seconds",
            "How long reconciles take, by resource kind",
            reconcile_seconds.clone(),
        );
        let issuer_ready =
            Family::<IssuerLabels, prometheus_client::metrics::gauge::Gauge>::default();
        registry.register(
            "issuer_ready_status",
            "1 when the Issuer or ClusterIssuer is Ready, 0 when not (set by the leader's reconciles)",
            issuer_ready.clone(),
        );
        let http01_self_checks = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "http01_self_checks",
            "HTTP-01 self-check probes of challenge routes, by outcome (ok, failed)",
            http01_self_checks.clone(),
        );
        let http01_route_ready_seconds = Histogram::new(exponential_buckets(0.05, 2.0, 12));
        registry.register(
            "http01_route_ready_seconds",
            "From applying an HTTP-01 challenge's route to the self-check's first success (the \
             ingress controller's route-loading time, as seen in probe steps)",
            http01_route_ready_seconds.clone(),
        );
        Self {
            registry: Arc::new(registry),
            http01_self_checks,
            http01_route_ready_seconds,
            reconcile_seconds,
            issuer_ready,
            acme_requests,
            acme_request_seconds,
            acme_orders_created,
            reconciles,
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Records one reconcile's outcome and duration.
    pub fn observe_reconcile(&self, kind: &str, outcome: &str, seconds: f64) {
        self.reconciled(kind, outcome);
        self.reconcile_seconds
            .get_or_create(&KindLabels { kind: kind.into() })
            .observe(seconds);
    }

    pub fn reconciled(&self, kind: &str, outcome: &str) {
        self.reconciles
            .get_or_create(&ReconcileLabels {
                kind: kind.into(),
                outcome: outcome.into(),
            })
            .inc();
    }
}

/// What an ACME request was for, from its method and URL path. ACME URLs are the CA's own, so
/// this reads the words CAs use in them (Let's Encrypt `/acme/new-order`, `/acme/order/`,
/// `/acme/authz/`, `/acme/chall/`, `/acme/finalize/`, `/acme/cert/`; Pebble `order-plz`, `authZ`,
/// `chalZ`, `finalize-order`, `certZ`); anything else is `other`.
pub fn acme_endpoint(method: &str, path: &str) -> &'static str {
    let p = path.to_ascii_lowercase();
    if method == "HEAD" || p.contains("nonce") {
        "newNonce"
    } else if method == "GET" && (p.ends_with("/directory") || p.ends_with("/dir")) {
        "directory"
    } else if p.contains("renewalinfo") || p.contains("renewal-info") {
        "renewalInfo"
    } else if p.contains("finalize") {
        "finalize"
    } else if p.contains("new-order") || p.contains("neworder") || p.contains("order-plz") {
        "newOrder"
    } else if p.contains("authz") {
        "authorization"
    } else if p.contains("chal") {
        "challenge"
    } else if p.contains("revoke") {
        "revokeCert"
    } else if p.contains("cert") {
        "certificate"
    } else if p.contains("order") {
        "order"
    } else if p.contains("new-acct") || p.contains("newaccount") || p.contains("sign-me-up") {
        "newAccount"
    } else if p.contains("acct") || p.contains("account") {
        "account"
    } else {
        "other"
    }
}

/// Per-Certificate gauges, computed from the cache at scrape time.
#[derive(Debug)]
struct CertificateCollector {
    store: Store<Certificate>,
}

type CertLabels = [(&'static str, String); 4];

fn cert_labels(cert: &Certificate) -> CertLabels {
    let issuer_ref = cert.current_issuer_ref();
    let kind = issuer_ref.and_then(|r| r.kind).unwrap_or_default();
    [
        ("namespace", cert.namespace().unwrap_or_default()),
        ("name", cert.name_any()),
        (
            "issuer_name",
            issuer_ref.map(|r| r.name.clone()).unwrap_or_default(),
        ),
        ("issuer_kind", crate::secret::kind_str(kind).to_string()),
    ]
}

impl Collector for CertificateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let certs = self.store.state();
        type Pick = fn(&crate::api::CertificateStatus) -> Option<i64>;
        let times: [(&str, &str, Pick); 3] = [
            (
                "certificate_expiration_timestamp_seconds",
                "notAfter of the current certificate",
                |s| s.not_after.as_ref().map(|t| t.0.as_second()),
            ),
            (
                "certificate_not_before_timestamp_seconds",
                "notBefore of the current certificate",
                |s| s.not_before.as_ref().map(|t| t.0.as_second()),
            ),
            (
                "certificate_renewal_timestamp_seconds",
                "When the controller will renew",
                |s| s.renewal_time.as_ref().map(|t| t.0.as_second()),
            ),
        ];
        for (name, help, pick) in times {
            let mut family = encoder.encode_descriptor(
                name,
                help,
                None,
                ConstGauge::<i64>::new(0).metric_type(),
            )?;
            for cert in &certs {
                if let Some(v) = cert.status.as_ref().and_then(pick) {
                    let labels = cert_labels(cert);
                    ConstGauge::new(v).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        let mut ready = encoder.encode_descriptor(
            "certificate_ready_status",
            "1 for the Ready condition's current status (True, False or Unknown)",
            None,
            ConstGauge::<i64>::new(0).metric_type(),
        )?;
        for cert in &certs {
            let current = cert
                .status
                .as_ref()
                .and_then(|s| {
                    crate::api::conditions::find(&s.conditions, crate::api::conditions::READY)
                })
                .map(|c| c.status.clone())
                .unwrap_or_else(|| "Unknown".into());
            let [ns, name, issuer, kind] = cert_labels(cert);
            for condition in ["True", "False", "Unknown"] {
                let labels = [
                    ns.clone(),
                    name.clone(),
                    issuer.clone(),
                    kind.clone(),
                    ("condition", condition.to_string()),
                ];
                ConstGauge::new(i64::from(current == condition))
                    .encode(ready.encode_family(&labels)?)?;
            }
        }
        let mut challenges = encoder.encode_descriptor(
            "challenges",
            "Challenges of orders in flight, by type and state",
            None,
            ConstGauge::<i64>::new(0).metric_type(),
        )?;
        let mut counts = std::collections::BTreeMap::<(String, String), i64>::new();
        for cert in &certs {
            for authz in cert
                .status
                .as_ref()
                .and_then(|s| s.order.as_ref())
                .map(|o| o.authorizations.as_slice())
                .unwrap_or_default()
            {
                let key = (
                    authz
                        .challenge_type
                        .map_or("none", crate::api::ChallengeKind::as_str)
                        .to_string(),
                    authz
                        .state
                        .map_or("unknown", crate::api::ChallengeState::as_str)
                        .to_string(),
                );
                *counts.entry(key).or_default() += 1;
            }
        }
        for ((kind, state), n) in counts {
            let labels = [("type", kind), ("state", state)];
            ConstGauge::new(n).encode(challenges.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{CertificateSpec, CertificateStatus, IssuerRef};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use kube::runtime::reflector::store;
    use kube::runtime::watcher::Event;

    #[test]
    fn acme_endpoints_of_lets_encrypt_and_pebble() {
        for (method, path, want) in [
            ("HEAD", "/acme/new-nonce", "newNonce"),
            ("GET", "/directory", "directory"),
            ("GET", "/dir", "directory"),
            ("POST", "/acme/new-order", "newOrder"),
            ("POST", "/order-plz", "newOrder"),
            ("POST", "/acme/order/1/2", "order"),
            ("POST", "/my-order/abc", "order"),
            ("POST", "/acme/authz/1/2", "authorization"),
            ("POST", "/authZ/abc", "authorization"),
            ("POST", "/acme/chall/1/2/x", "challenge"),
            ("POST", "/chalZ/abc", "challenge"),
            ("POST", "/acme/finalize/1/2", "finalize"),
            ("POST", "/finalize-order/abc", "finalize"),
            ("POST", "/acme/cert/abc", "certificate"),
            ("POST", "/certZ/abc", "certificate"),
            ("POST", "/acme/new-acct", "newAccount"),
            ("POST", "/sign-me-up", "newAccount"),
            ("POST", "/my-account/1", "account"),
            ("POST", "/acme/revoke-cert", "revokeCert"),
            ("POST", "/whatever", "other"),
        ] {
            assert_eq!(acme_endpoint(method, path), want, "{method} {path}");
        }
    }

    #[test]
    fn certificate_gauges_come_from_the_cache() {
        let (reader, mut writer) = store::<Certificate>();
        let mut cert = Certificate::new(
            "web",
            CertificateSpec {
                secret_name: "web-tls".into(),
                issuer_ref: Some(IssuerRef {
                    name: "le".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        );
        cert.metadata.namespace = Some("shop".into());
        cert.status = Some(CertificateStatus {
            not_after: Some(Time(jiff::Timestamp::from_second(2_000_000_000).unwrap())),
            ..Default::default()
        });
        writer.apply_watcher_event(&Event::Apply(cert));
        let text = Metrics::new(Some(reader)).encode();
        assert!(
            text.contains(r#"ferrocert_certificate_expiration_timestamp_seconds{namespace="shop",name="web",issuer_name="le",issuer_kind="Issuer"} 2000000000"#),
            "{text}"
        );
        assert!(text.contains(r#"ferrocert_certificate_ready_status{namespace="shop",name="web",issuer_name="le",issuer_kind="Issuer",condition="Unknown"} 1"#), "{text}");
    }
}

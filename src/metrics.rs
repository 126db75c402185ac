//! Prometheus metrics. One registry per process; collectors are cheap handles shared through
//! [`Metrics`] (cloned into every part that records).

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AcmeRequestLabels {
    pub method: String,
    pub status: String,
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
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ferrocert");
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
        Self {
            registry: Arc::new(registry),
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

    pub fn reconciled(&self, kind: &str, outcome: &str) {
        self.reconciles
            .get_or_create(&ReconcileLabels {
                kind: kind.into(),
                outcome: outcome.into(),
            })
            .inc();
    }
}

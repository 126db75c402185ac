//! The controller: one reconciler per kind, sharing a [`Context`].
//!
//! Reconciles are level-triggered and never wait on the CA: each does the next step of an
//! issuance, records it in status, and requeues. Status writes carry the resourceVersion the
//! reconcile read, so a reconcile working from a stale cache is refused (409) instead of acting
//! twice (for example creating a second order).

pub mod backoff;
pub mod certificate;
pub mod dns01;
pub mod events;
pub mod failover;
pub mod http01;
pub mod issuer;
pub mod issuer_ident;
pub mod issuer_ref;
pub mod leader;
pub mod local_issuer;
pub mod order;
pub mod order_handles;
pub mod outputs;
pub mod renewal_info;
pub mod revocation;
pub mod run;
pub mod shim;
pub mod superseded;
pub mod tenancy;
pub mod tls_secret;
pub mod verdict;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::acme::Accounts;
use crate::api::conditions::{self, READY};
use crate::api::{Certificate, CertificateStatus};
use crate::error::{Error, KubeContext};
use crate::metrics::Metrics;

pub use run::{ControllerArgs, run};

/// The field manager of every write the controller makes.
pub const FIELD_MANAGER: &str = "ferrocert";

/// Settings from the command line.
#[derive(Clone, Debug)]
pub struct Settings {
    /// First retry delay after a failed issuance; doubles per failure.
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_cap: Duration,
    /// Where ClusterIssuers' Secrets live.
    pub cluster_resource_namespace: String,
    /// HTTP-01: the controller's own Service and the self-check.
    pub http01: http01::Http01Settings,
    /// DNS-01 propagation: check the TXT record at these servers instead of the zone's
    /// authoritative nameservers (split-horizon DNS). Empty: the authoritative ones.
    pub dns01_check_nameservers: Vec<String>,
    /// DNS-01 with a cloud provider: resolvers for the SOA/NS/CNAME lookups of the propagation
    /// check. Empty: the system's (`/etc/resolv.conf`).
    pub dns01_recursive_nameservers: Vec<String>,
    /// The Cloudflare v4 API base URL (tests and API-compatible gateways change it).
    pub dns01_cloudflare_api_url: String,
    /// The Route53 API endpoint (tests and API-compatible gateways change it).
    pub dns01_route53_endpoint: String,
    /// Whether namespaced Issuers may use the controller's ambient cloud credentials.
    pub issuer_ambient_credentials: bool,
    /// Whether ClusterIssuers may.
    pub cluster_issuer_ambient_credentials: bool,
    /// Whether a ClusterIssuer without a policy is open to every namespace.
    pub unrestricted_cluster_issuers: bool,
    /// Whether HTTP-01 is refused for hosts other namespaces serve.
    pub http01_host_ownership: bool,
    /// ARI: bounds on how often a certificate's renewal window is fetched again.
    pub ari_recheck: crate::pki::renewal_info::RecheckBounds,
    /// How often a Certificate with keystores is looked at again for a changed password.
    pub keystore_password_recheck: Duration,
    /// ingress-shim and gateway-shim.
    pub shims: shim::ShimConfig,
}

/// Shared state of all reconcilers.
pub struct Context {
    pub client: Client,
    pub accounts: Accounts,
    pub metrics: Metrics,
    pub settings: Settings,
    pub events: events::EventPublisher,
    /// The Certificate cache (also read by the HTTP-01 server).
    pub certificates: Store<Certificate>,
    /// The Issuer and ClusterIssuer caches: a reconcile reads its issuer here, and asks the API
    /// server only when the cache does not (yet) show it ready.
    pub issuers: Store<crate::api::Issuer>,
    pub cluster_issuers: Store<crate::api::ClusterIssuer>,
    /// When each order's challenges were handed to the CA, to pace polling (in memory only: a
    /// restart simply polls promptly once).
    pub polling_since: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
    /// Consecutive failures to reach the CA about each order (by URL), so that an outage is
    /// retried with backoff rather than every few seconds.
    pub ca_trouble: crate::retry::Backoffs,
    /// The handles (and nonces) of orders in flight, between reconciles of the same order.
    pub orders: order_handles::OrderHandles,
    /// DNS-01 changes a provider applies asynchronously (Route53 change ids), by
    /// [`dns01::change_key`]: the propagation check waits for them first. In memory only: after
    /// a restart the check of the authoritative nameservers alone decides, as for any provider.
    pub dns01_changes: std::sync::Mutex<std::collections::HashMap<String, String>>,
    /// When each DNS-01 record (by [`dns01::change_key`]) was last checked, so that checks are
    /// [`dns01::CHECK_INTERVAL`] apart even though every status write wakes the reconciler at
    /// once; when a challenge whose record failed to be written (by `present <token>`) may be
    /// tried again ([`dns01::write_retry_delay`]); and which records this process wrote (by
    /// `written <name> <value>`). Emptied of an order's entries by its clean-up. In memory only:
    /// after a restart the first check or try simply comes early.
    pub dns01_checked: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
    /// The ready addresses of the controller's HTTP-01 Service (see [`http01::mirror_backends`]).
    pub http01_backends:
        tokio::sync::watch::Sender<Option<crate::solver::http01::backends::Http01Backends>>,
    /// The HTTP-01 self-check's pacing per challenge.
    pub http01_clocks: http01::SelfCheckClocks,
    /// Whether the Gateway API is installed, as last seen.
    pub gateway_api: http01::GatewayApiPresence,
    /// The resourceVersions our writes replaced: a reconcile that sees one waits for the watch.
    pub superseded: superseded::Superseded,
    /// Shared ClusterIssuers' budgets (`policy.budget`), spent per namespace and Certificate.
    pub budgets: crate::policy::budget::Budgets,
    /// The hosts other namespaces' Ingresses and HTTPRoutes serve (HTTP-01 host ownership).
    pub served_hosts: Arc<tenancy::ServedHosts>,
}

impl Context {
    /// The order-polling clock, tolerant of a poisoned lock (a panicked task leaves a usable map).
    pub fn polling_lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, std::time::Instant>> {
        self.polling_since.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The pending DNS-01 provider changes, tolerant of a poisoned lock.
    pub fn dns01_changes_lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, String>> {
        self.dns01_changes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The DNS-01 check clock, tolerant of a poisoned lock.
    pub fn dns01_checked_lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, std::time::Instant>> {
        self.dns01_checked.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes an Event on `obj`. Failures are logged, never fatal: Events are a courtesy.
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        warning: bool,
        reason: &str,
        action: &str,
        note: String,
    ) {
        self.event_on(&obj.object_ref(&()), warning, reason, action, note)
            .await;
    }

    /// Publishes an Event on the object `reference` names (see [`Context::event`]).
    pub async fn event_on(
        &self,
        reference: &k8s_openapi::api::core::v1::ObjectReference,
        warning: bool,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let spec = events::EventSpec {
            warning,
            reason,
            action,
            note: truncate(&note, 1000),
        };
        if let Err(err) = self.events.publish(&spec, reference).await {
            tracing::warn!(%err, reason, "publishing an Event failed");
        }
    }
}

/// Writes `status` with server-side apply, on condition that the object is still at the
/// resourceVersion we read (else 409, see [`Error::is_conflict`]). Returns the updated object;
/// the version it replaced is noted in [`Context::superseded`].
pub async fn apply_status<K, S>(
    ctx: &Context,
    api: &Api<K>,
    obj: &K,
    status: &S,
) -> Result<K, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize,
{
    let name = obj.name_any();
    let body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": { "name": name, "resourceVersion": obj.resource_version() },
        "status": status,
    });
    let updated = api
        .patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .context(|| format!("writing status of {} {}", K::kind(&()), describe(obj)))?;
    note_replaced(ctx, obj, &updated);
    Ok(updated)
}

/// Notes that our write moved `before` to `after` (see [`superseded`]).
fn note_replaced<K: Resource>(ctx: &Context, before: &K, after: &K) {
    if let (Some(uid), Some(read)) = (before.meta().uid.as_deref(), before.resource_version())
        && after.resource_version().as_deref() != Some(read.as_str())
    {
        ctx.superseded.wrote(uid, &read);
    }
}

/// The Event `action` of one issuance attempt. The event recorder folds Events with the same
/// reason and action into one series and keeps the first message, so each attempt gets its own
/// action: `kubectl describe` then shows every order, issuance and failure with its own text.
pub fn attempt_action(status: &crate::api::CertificateStatus) -> String {
    format!(
        "IssueRevision{}Attempt{}",
        next_count(status.revision),
        next_count(status.failed_issuance_attempts)
    )
}

/// A counter kept in status (revision, failed attempts, checks).
pub trait StatusCounter: Copy {
    /// One more than `self`, at least 1, never overflowing.
    fn next(self) -> Self;
}

impl StatusCounter for i32 {
    fn next(self) -> Self {
        self.max(0).saturating_add(1)
    }
}

impl StatusCounter for i64 {
    fn next(self) -> Self {
        self.max(0).saturating_add(1)
    }
}

/// The next value of a status counter (`None` counts as 0): saturating, because status is
/// anyone's to write who may update the status subresource, and a counter at `i32::MAX` must
/// not panic (overflow checks) or wrap to a negative count (release build) in the controller.
/// A negative count, which we never write, counts as 0.
pub fn next_count<T: StatusCounter + Default>(counter: Option<T>) -> T {
    counter.unwrap_or_default().next()
}

/// An object as a server-side apply body (which needs `apiVersion` and `kind`).
pub fn apply_body<K: Resource<DynamicType = ()> + Serialize>(obj: &K) -> serde_json::Value {
    let mut v = serde_json::to_value(obj).unwrap_or_default();
    v["apiVersion"] = K::api_version(&()).into();
    v["kind"] = K::kind(&()).into();
    v
}

/// Held by a Certificate while an order is in flight, so that deleting it mid-order still removes
/// the temporary objects and DNS records first. Removed when the order ends, so an uninstalled
/// controller never leaves Certificates stuck.
pub const ORDER_FINALIZER: &str = "ferrocert.dev/order-cleanup";

/// Adds or removes [`ORDER_FINALIZER`]; see [`set_finalizer`].
pub async fn set_order_finalizer(
    ctx: &Context,
    api: &Api<crate::api::Certificate>,
    cert: &crate::api::Certificate,
    present: bool,
) -> Result<crate::api::Certificate, Error> {
    set_finalizer(ctx, api, cert, ORDER_FINALIZER, present).await
}

/// Adds or removes one finalizer (a merge patch of the whole list, guarded by the
/// resourceVersion read); returns the updated Certificate. No write when nothing changes.
pub async fn set_finalizer(
    ctx: &Context,
    api: &Api<crate::api::Certificate>,
    cert: &crate::api::Certificate,
    finalizer: &str,
    present: bool,
) -> Result<crate::api::Certificate, Error> {
    let mut finalizers = cert.finalizers().to_vec();
    let has = finalizers.iter().any(|f| f == finalizer);
    if has == present {
        return Ok(cert.clone());
    }
    if present {
        finalizers.push(finalizer.to_string());
    } else {
        finalizers.retain(|f| f != finalizer);
    }
    let patch = serde_json::json!({
        "metadata": { "resourceVersion": cert.resource_version(), "finalizers": finalizers }
    });
    let updated = api
        .patch(
            &cert.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .context(|| format!("updating the finalizers of Certificate {}", describe(cert)))?;
    note_replaced(ctx, cert, &updated);
    Ok(updated)
}

/// `namespace/name` (or `name` for cluster-scoped objects).
pub fn describe<K: Resource>(obj: &K) -> String {
    match obj.meta().namespace.as_deref() {
        Some(ns) => format!("{ns}/{}", obj.meta().name.as_deref().unwrap_or("")),
        None => obj.meta().name.clone().unwrap_or_default(),
    }
}

pub use crate::api::certificate::owner_reference;

pub fn now() -> Time {
    Time(jiff::Timestamp::now())
}

pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The shared context handle reconcilers receive.
pub type Ctx = Arc<Context>;

/// Sets `Ready`, keeping its transition time when the status does not change.
pub fn set_ready(
    status: &mut CertificateStatus,
    cert: &Certificate,
    ready: bool,
    reason: &str,
    message: &str,
) {
    conditions::set(
        &mut status.conditions,
        READY,
        ready,
        reason,
        message,
        cert.meta().generation,
        now(),
    );
}

/// Whether the Certificate `other` of namespace `ns` exists (and is not being deleted) and names
/// the Secret `secret_name`, as the controller's cache has it.
pub fn still_claims(ctx: &Ctx, ns: &str, other: &str, secret_name: &str) -> bool {
    ctx.certificates
        .get(&kube::runtime::reflector::ObjectRef::new(other).within(ns))
        .is_some_and(|c| c.meta().deletion_timestamp.is_none() && c.spec.secret_name == secret_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_counters_saturate_instead_of_overflowing() {
        assert_eq!(next_count::<i32>(None), 1);
        assert_eq!(next_count(Some(4_i32)), 5);
        assert_eq!(next_count(Some(i32::MAX)), i32::MAX);
        assert_eq!(next_count(Some(i64::MAX)), i64::MAX);
        assert_eq!(next_count(Some(-7_i64)), 1);
        let status = crate::api::CertificateStatus {
            revision: Some(i64::MAX),
            failed_issuance_attempts: Some(i64::MAX),
            ..Default::default()
        };
        assert_eq!(
            attempt_action(&status),
            format!("IssueRevision{}Attempt{}", i64::MAX, i64::MAX)
        );
    }
}

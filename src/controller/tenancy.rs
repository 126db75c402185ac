//! The tenant boundary at the Certificate reconcile's door: the issuer's policy
//! ([`crate::policy`]), HTTP-01 host ownership (a host another namespace's Ingress or HTTPRoute
//! serves) and a shared ClusterIssuer's budgets. Checked before any key, order, solver object or
//! signature; a refusal is `Ready=False` with the reason and an Event, and nothing else happens.
//!
//! The I/O edges only: the namespace's labels (one GET, only for a policy that selects
//! namespaces by label), and the watches that feed [`ServedHosts`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use super::Ctx;
use crate::api::{AcmeSolver, Certificate, IssuerKind, IssuerPolicy};
use crate::error::{Error, KubeContext};
use crate::pki::Identifier;
use crate::policy::budget::Receipt;
use crate::policy::hosts::{HostIndex, RouteKind};
use crate::policy::{self, Denial, Grant, Requester};
use crate::solver::select::{Target, select};

/// The condition reason of a spent budget.
pub const BUDGET_EXHAUSTED: &str = "BudgetExhausted";

/// How soon a refused Certificate is looked at again without any change (an edit of it or of
/// its issuer wakes it at once; a namespace's labels do not).
pub const DENIED_RECHECK: Duration = Duration::from_secs(300);

/// The issuer as the tenant boundary sees it.
#[derive(Clone, Copy, Debug)]
pub struct Gate<'a> {
    pub kind: IssuerKind,
    pub name: &'a str,
    pub policy: Option<&'a IssuerPolicy>,
}

/// Whether `cert` may use the issuer as it asks: its policy's grant, or the denial to show.
pub(super) async fn check_policy(
    ctx: &Ctx,
    cert: &Certificate,
    gate: Gate<'_>,
) -> Result<Result<Grant, Denial>, Error> {
    let namespace = cert.namespace().unwrap_or_default();
    let labels = if policy::needs_namespace_labels(gate.policy, &namespace) {
        Some(namespace_labels(ctx, &namespace).await?)
    } else {
        None
    };
    let who = Requester {
        namespace: &namespace,
        namespace_labels: labels.as_ref(),
        cluster_resource_namespace: &ctx.settings.cluster_resource_namespace,
    };
    let issuer = policy::Issuer {
        kind: gate.kind,
        name: gate.name,
        policy: gate.policy,
        unrestricted_default: ctx.settings.unrestricted_cluster_issuers,
    };
    Ok(policy::evaluate(issuer, who, &cert.spec))
}

async fn namespace_labels(ctx: &Ctx, namespace: &str) -> Result<BTreeMap<String, String>, Error> {
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    Ok(api
        .get_metadata_opt(namespace)
        .await
        .context(|| format!("reading the labels of namespace {namespace}"))?
        .map(|ns| ns.labels().clone())
        .unwrap_or_default())
}

/// What the host-ownership check found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum HostCheck {
    Allowed,
    /// The index has not seen every Ingress and HTTPRoute yet: ask again shortly.
    NotYetKnown,
    Denied(Denial),
}

/// HTTP-01 host ownership: every name that HTTP-01 would solve must not be served by an Ingress
/// or HTTPRoute of another namespace, unless a ClusterIssuer's policy allows it. Names solved by
/// DNS-01 prove control of the zone and are not judged here.
pub(super) fn check_hosts(
    ctx: &Ctx,
    cert: &Certificate,
    gate: Gate<'_>,
    solvers: &[AcmeSolver],
    identifiers: &[Identifier],
) -> HostCheck {
    if !ctx.settings.http01_host_ownership {
        return HostCheck::Allowed;
    }
    let exempt = gate.kind == IssuerKind::ClusterIssuer
        && gate
            .policy
            .and_then(|p| p.allow_hosts_served_elsewhere)
            .unwrap_or(false);
    if exempt {
        return HostCheck::Allowed;
    }
    let namespace = cert.namespace().unwrap_or_default();
    let http01_names: Vec<&str> = identifiers
        .iter()
        .filter_map(|id| match id {
            Identifier::Dns(name) if !name.starts_with("*.") => Some(name.as_str()),
            _ => None,
        })
        .filter(|name| {
            let target = Target {
                name,
                wildcard: false,
                is_ip: false,
            };
            select(solvers, target, cert.labels()).is_some_and(|s| s.http01.is_some())
        })
        .collect();
    if http01_names.is_empty() {
        return HostCheck::Allowed;
    }
    if !ctx.served_hosts.synced() {
        return HostCheck::NotYetKnown;
    }
    for name in http01_names {
        if let Some(kind) = ctx.served_hosts.served_elsewhere(name, &namespace) {
            return HostCheck::Denied(Denial {
                rule: "hostOwnership",
                message: format!(
                    "{name} is already served by an {} of another namespace, so HTTP-01 for it \
                     from namespace {namespace} is refused (the CA's request would reach a route \
                     merged with that namespace's); use DNS-01 for this name, or ask the cluster \
                     administrator for a ClusterIssuer whose policy sets \
                     allowHostsServedElsewhere",
                    kind.as_str()
                ),
            });
        }
    }
    HostCheck::Allowed
}

/// Spends one issuance of a ClusterIssuer's budgets for `cert` (per namespace, and per
/// Certificate when requested by hand): what was spent, to refund if the CA was not asked after
/// all; `Err` is the message to show and when to look again (nothing is spent then).
pub(super) fn take_budget(
    ctx: &Ctx,
    cert: &Certificate,
    gate: Gate<'_>,
    manual: bool,
) -> Result<Receipt, (String, Duration)> {
    let mut receipt = Receipt::default();
    let Some(budget) = gate.policy.and_then(|p| p.budget.as_ref()) else {
        return Ok(receipt);
    };
    let namespace = cert.namespace().unwrap_or_default();
    if gate.kind != IssuerKind::ClusterIssuer
        || namespace == ctx.settings.cluster_resource_namespace
    {
        return Ok(receipt);
    }
    let now = Instant::now();
    let refill_at = |wait: Duration| {
        jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::from_secs(
                i64::try_from(wait.as_secs()).unwrap_or(i64::MAX),
            ))
            .map(|t| t.round(jiff::Unit::Second).unwrap_or(t).to_string())
            .unwrap_or_else(|_| format!("in {}s", wait.as_secs()))
    };
    if manual && let Some(limit) = budget.manual_renewals_per_hour {
        let key = format!("manual/{}/{namespace}/{}", gate.name, cert.name_any());
        if let Err(wait) = ctx.budgets.take(&key, limit, now) {
            return Err((
                format!(
                    "ClusterIssuer {} allows each Certificate {limit} re-issuance(s) requested by \
                     hand per hour (policy.budget.manualRenewalsPerHour); this one has used them. \
                     The next is possible at {}",
                    gate.name,
                    refill_at(wait)
                ),
                wait,
            ));
        }
        receipt.spent.push((key, now));
    }
    if let Some(limit) = budget.orders_per_hour {
        let key = format!("orders/{}/{namespace}", gate.name);
        if let Err(wait) = ctx.budgets.take(&key, limit, now) {
            ctx.budgets.refund(std::mem::take(&mut receipt));
            return Err((
                format!(
                    "ClusterIssuer {} allows namespace {namespace} {limit} issuance(s) per hour \
                     (policy.budget.ordersPerHour), and they are spent. The budget refills at {}",
                    gate.name,
                    refill_at(wait)
                ),
                wait,
            ));
        }
        receipt.spent.push((key, now));
    }
    Ok(receipt)
}

/// The hosts that Ingresses and HTTPRoutes serve, by namespace, for [`check_hosts`]: fed by two
/// watches (every replica keeps it, so a new leader has it ready), holding only the hosts.
#[derive(Default)]
pub struct ServedHosts {
    index: RwLock<HostIndex>,
    ingresses_synced: AtomicBool,
    routes_synced: AtomicBool,
}

impl ServedHosts {
    /// Whether both watches have listed everything once.
    pub fn synced(&self) -> bool {
        self.ingresses_synced.load(Ordering::Relaxed) && self.routes_synced.load(Ordering::Relaxed)
    }

    /// See [`HostIndex::served_elsewhere`].
    pub fn served_elsewhere(&self, host: &str, namespace: &str) -> Option<RouteKind> {
        self.index
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .served_elsewhere(host, namespace)
    }

    /// Marks both as listed, for a controller that does not check host ownership, and for tests.
    pub fn assume_synced(&self) {
        self.ingresses_synced.store(true, Ordering::Relaxed);
        self.routes_synced.store(true, Ordering::Relaxed);
    }

    fn apply(&self, kind: RouteKind, event: watcher::Event<(String, String, Vec<String>)>) {
        let mut index = self
            .index
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match event {
            watcher::Event::Init => index.clear(kind),
            watcher::Event::InitApply((ns, name, hosts))
            | watcher::Event::Apply((ns, name, hosts)) => index.set(kind, &ns, &name, hosts),
            watcher::Event::Delete((ns, name, _)) => index.remove(kind, &ns, &name),
            watcher::Event::InitDone => {
                let flag = match kind {
                    RouteKind::Ingress => &self.ingresses_synced,
                    RouteKind::HttpRoute => &self.routes_synced,
                };
                flag.store(true, Ordering::Relaxed);
            }
        }
    }
}

/// A watch event with each object reduced to what the index keeps.
fn project<K, T>(event: watcher::Event<K>, f: impl Fn(&K) -> T) -> watcher::Event<T> {
    match event {
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(o) => watcher::Event::InitApply(f(&o)),
        watcher::Event::Apply(o) => watcher::Event::Apply(f(&o)),
        watcher::Event::Delete(o) => watcher::Event::Delete(f(&o)),
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

fn http_route_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "gateway.networking.k8s.io",
        "v1",
        "HTTPRoute",
    ))
}

/// The hosts an Ingress's rules name.
fn ingress_hosts(ingress: &Ingress) -> Vec<String> {
    ingress
        .spec
        .iter()
        .flat_map(|s| s.rules.iter().flatten())
        .filter_map(|r| r.host.clone())
        .collect()
}

/// The hostnames an HTTPRoute names.
fn route_hosts(route: &DynamicObject) -> Vec<String> {
    route.data["spec"]["hostnames"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|h| h.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Feeds `hosts` from watches of Ingresses and HTTPRoutes (not the controller's own temporary
/// solver objects) until `stop` turns true. Without the Gateway API's HTTPRoute resource, routes
/// count as listed (none).
pub async fn watch_served_hosts(
    client: Client,
    hosts: Arc<ServedHosts>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let not_ours = watcher::Config::default()
        .labels(&format!("!{}", crate::labels::SOLVER))
        .any_semantic();
    let ingresses = {
        let hosts = hosts.clone();
        watcher(Api::<Ingress>::all(client.clone()), not_ours.clone())
            .default_backoff()
            .for_each(move |event| {
                match event {
                    Ok(event) => hosts.apply(
                        RouteKind::Ingress,
                        project(event, |i| {
                            (
                                i.namespace().unwrap_or_default(),
                                i.name_any(),
                                ingress_hosts(i),
                            )
                        }),
                    ),
                    Err(err) => tracing::debug!(%err, "Ingress watch for host ownership"),
                }
                std::future::ready(())
            })
    };
    let routes = {
        let hosts = hosts.clone();
        let resource = http_route_resource();
        watcher(Api::<DynamicObject>::all_with(client, &resource), not_ours)
            .default_backoff()
            .for_each(move |event| {
                match event {
                    Ok(event) => hosts.apply(
                        RouteKind::HttpRoute,
                        project(event, |r| {
                            (
                                r.namespace().unwrap_or_default(),
                                r.name_any(),
                                route_hosts(r),
                            )
                        }),
                    ),
                    Err(watcher::Error::InitialListFailed(kube::Error::Api(s)))
                        if s.code == 404 =>
                    {
                        // No Gateway API in this cluster: no HTTPRoute serves anything.
                        hosts.routes_synced.store(true, Ordering::Relaxed);
                    }
                    Err(err) => tracing::debug!(%err, "HTTPRoute watch for host ownership"),
                }
                std::future::ready(())
            })
    };
    tokio::select! {
        _ = ingresses => {}
        _ = routes => {}
        _ = stop.wait_for(|s| *s) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_events_keep_the_index_and_say_when_it_is_complete() {
        let hosts = ServedHosts::default();
        assert!(!hosts.synced());
        let item =
            |ns: &str, host: &str| (ns.to_string(), "web".to_string(), vec![host.to_string()]);
        hosts.apply(RouteKind::Ingress, watcher::Event::Init);
        hosts.apply(
            RouteKind::Ingress,
            watcher::Event::InitApply(item("victim", "app.test")),
        );
        hosts.apply(RouteKind::Ingress, watcher::Event::InitDone);
        assert!(!hosts.synced(), "HTTPRoutes not listed yet");
        hosts.apply(RouteKind::HttpRoute, watcher::Event::InitDone);
        assert!(hosts.synced());
        assert_eq!(
            hosts.served_elsewhere("app.test", "attacker"),
            Some(RouteKind::Ingress)
        );
        hosts.apply(
            RouteKind::Ingress,
            watcher::Event::Delete(item("victim", "app.test")),
        );
        assert_eq!(hosts.served_elsewhere("app.test", "attacker"), None);
    }

    #[test]
    fn an_ingress_serves_the_hosts_of_its_rules() {
        let ingress: Ingress = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "victim"},
            "spec": {"rules": [{"host": "app.test"}, {"http": {"paths": []}}],
                     "tls": [{"hosts": ["tls-only.test"]}]}
        }))
        .unwrap();
        assert_eq!(ingress_hosts(&ingress), vec!["app.test".to_string()]);
        let route: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "r", "namespace": "victim"},
            "spec": {"hostnames": ["a.test", "*.b.test"]}
        }))
        .unwrap();
        assert_eq!(
            route_hosts(&route),
            vec!["a.test".to_string(), "*.b.test".to_string()]
        );
    }
}

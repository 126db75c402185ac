//! HTTP-01 in the controller: where the listeners are (the EndpointSlices of the controller's own
//! HTTP-01 Service, mirrored into every per-challenge EndpointSlice), presenting a challenge
//! (Service, EndpointSlice, Ingress or HTTPRoute), the self-check before the CA is told, and
//! removing what was made.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Resource, ResourceExt};
use tokio::sync::watch;

use super::{Ctx, FIELD_MANAGER, apply_body, describe};
use crate::api::Certificate;
use crate::api::issuer::{Http01Solver, SelfCheckMode};
use crate::error::{Error, KubeContext, is_not_found};
use crate::labels;
use crate::pki::parse_go_duration;
use crate::solver::http01::backends::{self, Http01Backends};
use crate::solver::http01::routing::{self, Route};
use crate::solver::http01::self_check::{self, SelfCheckConfig};

/// `--http01-*` settings.
#[derive(Clone, Debug)]
pub struct Http01Settings {
    /// Namespace of the controller's HTTP-01 Service.
    pub service_namespace: String,
    /// Name of the controller's HTTP-01 Service, whose EndpointSlices are mirrored.
    pub service_name: String,
    /// How the self-check connects.
    pub self_check: SelfCheckConfig,
    /// How long the self-check may fail before the attempt is given up (without telling the CA).
    pub self_check_timeout: Duration,
}

impl Http01Settings {
    /// Reads `--http01-service`: `NAME`, `NAMESPACE/NAME`, or the older DNS form
    /// `NAME.NAMESPACE.svc[.cluster.local]`; a bare name is in `default_namespace`.
    pub fn parse_service(value: &str, default_namespace: &str) -> Result<(String, String), String> {
        let value = value.trim().trim_end_matches('.');
        let valid = |s: &str| {
            !s.is_empty()
                && s.len() <= 63
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        let (ns, name) = if let Some((ns, name)) = value.split_once('/') {
            (ns.to_string(), name.to_string())
        } else if let Some((front, _)) = value.split_once(".svc") {
            match front.split_once('.') {
                Some((name, ns)) => (ns.to_string(), name.to_string()),
                None => (default_namespace.to_string(), front.to_string()),
            }
        } else {
            (default_namespace.to_string(), value.to_string())
        };
        if valid(&ns) && valid(&name) {
            Ok((ns, name))
        } else {
            Err(format!(
                "--http01-service {value:?}: expected NAME or NAMESPACE/NAME of a Service"
            ))
        }
    }
}

/// The self-check's clock per challenge token. In memory only: after a restart the clock starts
/// again, which only delays giving up.
#[derive(Default)]
pub struct SelfCheckClocks(Mutex<HashMap<String, Clock>>);

#[derive(Clone, Copy, Debug)]
struct Clock {
    presented: Instant,
    next_probe: Instant,
    probes: u32,
    /// A probe passed in [`check_without_telling`]; the next [`check`] says `Tell` at once.
    passed: bool,
}

impl Clock {
    /// A clock for a route applied at `now`, probed at once.
    fn new(now: Instant) -> Clock {
        Clock {
            presented: now,
            next_probe: now,
            probes: 0,
            passed: false,
        }
    }
}

impl SelfCheckClocks {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Clock>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a challenge's clock when its route has just been applied.
    fn start(&self, token: &str) {
        let now = Instant::now();
        self.lock().insert(token.to_string(), Clock::new(now));
    }

    /// Forgets a challenge (it was told to the CA, or its attempt ended).
    pub fn forget(&self, token: &str) {
        self.lock().remove(token);
    }

    /// How long ago this process applied the challenge's route; `None` if it has not (or the
    /// challenge was told to the CA since).
    pub fn age(&self, token: &str) -> Option<Duration> {
        self.lock().get(token).map(|c| c.presented.elapsed())
    }
}

/// A route younger than this is expected not to answer yet (ingress controllers load routes
/// within a second or two; Traefik throttles reloads to 2 s): its self-check messages are not
/// worth a status write.
pub const QUIET_WAIT: Duration = Duration::from_secs(5);

/// Whether a self-check's waiting message is worth recording in status: the route has waited past
/// [`QUIET_WAIT`] (or this process did not apply it).
pub fn wait_worth_reporting(ctx: &Ctx, token: &str) -> bool {
    ctx.http01_clocks
        .age(token)
        .is_none_or(|age| age >= QUIET_WAIT)
}

/// How long to wait before the next probe after `probes` failed ones: quick at first (ingress
/// controllers load routes within a second or two), then every 5 s.
pub fn probe_interval(probes: u32) -> Duration {
    let ms = 250u64.saturating_mul(1 << probes.min(5));
    Duration::from_millis(ms).min(Duration::from_secs(5))
}

/// Why a challenge could not be presented.
#[derive(Debug, thiserror::Error)]
pub enum PresentError {
    /// The controller's HTTP-01 Service has no ready address yet: nothing to route to.
    #[error(
        "waiting for a ready address in the EndpointSlices of the controller's HTTP-01 Service \
         {0}: no replica can answer the CA yet"
    )]
    NoBackends(String),
    /// The Gateway API is not installed: the solver cannot work until it is.
    #[error(
        "the solver uses http01.gatewayHTTPRoute, but the Gateway API (HTTPRoute, \
         {api}) is not installed in this cluster: install the Gateway API CRDs or use \
         http01.ingress"
    )]
    GatewayApiMissing { api: &'static str },
    /// `http01.ingress.name` names an Ingress that is not there.
    #[error(
        "the solver edits Ingress {namespace}/{name} in place (http01.ingress.name), but it does \
         not exist"
    )]
    EditedIngressMissing { namespace: String, name: String },
    #[error(transparent)]
    Kube(#[from] Error),
}

/// The API resource of HTTPRoutes.
fn http_route_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "gateway.networking.k8s.io",
        "v1",
        "HTTPRoute",
    ))
}

/// Applies the Service, its EndpointSlice, and the Ingress or HTTPRoute of one challenge.
pub async fn present(
    ctx: &Ctx,
    route: &Route<'_>,
    solver: &Http01Solver,
) -> Result<(), PresentError> {
    let backends = ctx.http01_backends.borrow().clone();
    let Some(backends) = backends else {
        let s = &ctx.settings.http01;
        return Err(PresentError::NoBackends(format!(
            "{}/{}",
            s.service_namespace, s.service_name
        )));
    };
    let name = route.object_name();
    let ns = route.namespace;
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    let service_type = solver
        .ingress
        .as_ref()
        .and_then(|i| i.service_type)
        .or(solver
            .gateway_http_route
            .as_ref()
            .and_then(|g| g.service_type))
        .unwrap_or_default();
    if let Some(gateway) = &solver.gateway_http_route {
        // First, so that a cluster without the Gateway API gets no Service to clean up.
        let routes: Api<DynamicObject> =
            Api::namespaced_with(ctx.client.clone(), ns, &http_route_resource());
        match routes
            .patch(&name, &pp, &Patch::Apply(&route.http_route(gateway)))
            .await
        {
            Ok(_) => ctx.gateway_api.seen(true),
            Err(e) if is_not_found(&e) => {
                ctx.gateway_api.seen(false);
                return Err(PresentError::GatewayApiMissing {
                    api: routing::GATEWAY_API_VERSION,
                });
            }
            Err(source) => {
                return Err(Error::Kube {
                    action: format!("creating HTTPRoute {ns}/{name}"),
                    source,
                }
                .into());
            }
        }
    }
    let edited_ingress = solver.ingress.as_ref().and_then(|i| i.name.as_deref());
    let mut service = route.service(service_type, &backends);
    if let Some(target) = edited_ingress {
        // Before the edit, so clean-up knows which Ingress to restore (write-ahead).
        service.metadata.annotations = Some(std::collections::BTreeMap::from([(
            routing::ANN_EDITED_INGRESS.to_string(),
            target.to_string(),
        )]));
    }
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), ns);
    services
        .patch(&name, &pp, &Patch::Apply(&apply_body(&service)))
        .await
        .context(|| format!("creating Service {ns}/{name}"))?;
    let slices: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), ns);
    slices
        .patch(
            &name,
            &pp,
            &Patch::Apply(&apply_body(&route.endpoint_slice(&backends))),
        )
        .await
        .context(|| format!("creating EndpointSlice {ns}/{name}"))?;
    if let Some(target) = edited_ingress {
        add_rule_in_place(ctx, ns, target, route).await?;
    } else if let Some(ingress) = &solver.ingress {
        let ingresses: Api<Ingress> = Api::namespaced(ctx.client.clone(), ns);
        ingresses
            .patch(
                &name,
                &pp,
                &Patch::Apply(&apply_body(&route.ingress(ingress))),
            )
            .await
            .context(|| format!("creating Ingress {ns}/{name}"))?;
    }
    ctx.http01_clocks.start(route.token);
    Ok(())
}

/// Adds the challenge's rule to the existing Ingress `target` (`http01.ingress.name`), unless it
/// is there already. A merge patch of the rules guarded by the resourceVersion read, so a
/// concurrent edit (the user's, or another challenge's) is never overwritten: it is a 409, and
/// the next reconcile reads again.
async fn add_rule_in_place(
    ctx: &Ctx,
    ns: &str,
    target: &str,
    route: &Route<'_>,
) -> Result<(), PresentError> {
    let api: Api<Ingress> = Api::namespaced(ctx.client.clone(), ns);
    let ingress = match api.get_opt(target).await {
        Ok(Some(i)) => i,
        Ok(None) => {
            return Err(PresentError::EditedIngressMissing {
                namespace: ns.to_string(),
                name: target.to_string(),
            });
        }
        Err(e) => return Err(e).context(|| format!("reading Ingress {ns}/{target}"))?,
    };
    let mut rules = ingress
        .spec
        .as_ref()
        .and_then(|s| s.rules.clone())
        .unwrap_or_default();
    let rule = route.ingress_rule();
    if rules.contains(&rule) {
        return Ok(());
    }
    rules.push(rule);
    let patch = serde_json::json!({
        "metadata": {"resourceVersion": ingress.resource_version()},
        "spec": {"rules": rules},
    });
    api.patch(target, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .context(|| format!("adding the challenge rule to Ingress {ns}/{target}"))?;
    Ok(())
}

/// Removes from an Ingress edited in place the rules routed to `services` (the challenge
/// Services of one Certificate). Gone already, or no such rule: nothing to do.
async fn remove_rules_in_place(
    ctx: &Ctx,
    ns: &str,
    target: &str,
    services: &[String],
) -> Result<(), Error> {
    let api: Api<Ingress> = Api::namespaced(ctx.client.clone(), ns);
    let Some(ingress) = api
        .get_opt(target)
        .await
        .context(|| format!("reading Ingress {ns}/{target}"))?
    else {
        return Ok(());
    };
    let rules = ingress
        .spec
        .as_ref()
        .and_then(|s| s.rules.clone())
        .unwrap_or_default();
    let Some(kept) = routing::rules_without(&rules, services) else {
        return Ok(());
    };
    let patch = serde_json::json!({
        "metadata": {"resourceVersion": ingress.resource_version()},
        "spec": {"rules": if kept.is_empty() { serde_json::Value::Null } else { serde_json::json!(kept) }},
    });
    api.patch(target, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .context(|| format!("removing the challenge rules from Ingress {ns}/{target}"))?;
    Ok(())
}

/// What to do with a presented challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckStep {
    /// The route works (or the fixed delay is over): tell the CA.
    Tell,
    /// Not yet: `message` goes to the challenge's status; look again after `retry_in`.
    Wait { message: String, retry_in: Duration },
    /// The self-check failed for too long: end the attempt without telling the CA.
    GiveUp(String),
}

/// Decides whether the CA may be told about a presented challenge, probing the route when due.
/// `Tell` ends the challenge's clock: the caller tells the CA.
pub async fn check(
    ctx: &Ctx,
    route: &Route<'_>,
    solver: &Http01Solver,
    key_authorization: &str,
    previous_message: Option<&str>,
) -> CheckStep {
    decide(
        ctx,
        route,
        solver,
        key_authorization,
        previous_message,
        true,
    )
    .await
}

/// The same decision, for a caller that will not tell the CA itself (it only saves the CA requests
/// of a reconcile that would find nothing to do): a `Tell` or `GiveUp` leaves the clock as it is,
/// so that the [`check`] of the full step that follows comes to the same answer.
pub async fn check_without_telling(
    ctx: &Ctx,
    route: &Route<'_>,
    solver: &Http01Solver,
    key_authorization: &str,
    previous_message: Option<&str>,
) -> CheckStep {
    decide(
        ctx,
        route,
        solver,
        key_authorization,
        previous_message,
        false,
    )
    .await
}

async fn decide(
    ctx: &Ctx,
    route: &Route<'_>,
    solver: &Http01Solver,
    key_authorization: &str,
    previous_message: Option<&str>,
    telling: bool,
) -> CheckStep {
    let now = Instant::now();
    let clock = *ctx
        .http01_clocks
        .lock()
        .entry(route.token.to_string())
        .or_insert(Clock::new(now));
    if clock.passed {
        if telling {
            ctx.http01_clocks.forget(route.token);
        }
        return CheckStep::Tell;
    }
    let mode = solver
        .self_check
        .as_ref()
        .and_then(|s| s.mode)
        .unwrap_or_default();
    if mode == SelfCheckMode::Delay {
        let delay = solver
            .self_check
            .as_ref()
            .and_then(|s| s.delay.as_deref())
            .and_then(|d| parse_go_duration(d).ok())
            .map(|d| d.unsigned_abs())
            .unwrap_or(Duration::from_secs(30));
        let elapsed = now.duration_since(clock.presented);
        if elapsed >= delay {
            if telling {
                ctx.http01_clocks.forget(route.token);
            }
            return CheckStep::Tell;
        }
        return CheckStep::Wait {
            message: format!(
                "selfCheck mode Delay: telling the CA {delay:?} after the route was created"
            ),
            retry_in: delay - elapsed,
        };
    }
    if now < clock.next_probe {
        return CheckStep::Wait {
            message: previous_message.unwrap_or_default().to_string(),
            retry_in: clock.next_probe - now,
        };
    }
    let outcome = self_check::probe(
        &ctx.settings.http01.self_check,
        route.host,
        route.token,
        key_authorization,
    )
    .await;
    ctx.metrics
        .http01_self_checks
        .get_or_create(&crate::metrics::OutcomeLabels {
            outcome: if outcome.is_ok() { "ok" } else { "failed" }.into(),
        })
        .inc();
    let failure = match outcome {
        Ok(()) => {
            if telling {
                ctx.http01_clocks.forget(route.token);
            } else if let Some(c) = ctx.http01_clocks.lock().get_mut(route.token) {
                c.passed = true;
            }
            ctx.metrics
                .http01_route_ready_seconds
                .observe(now.duration_since(clock.presented).as_secs_f64());
            return CheckStep::Tell;
        }
        Err(failure) => failure,
    };
    let elapsed = now.duration_since(clock.presented);
    let mut message = format!("self-check: {failure}");
    if let Some(gateway) = &solver.gateway_http_route
        && let Some(why) = route_not_accepted(ctx, route, gateway).await
    {
        message.push_str(&format!("; {why}"));
    }
    if elapsed >= ctx.settings.http01.self_check_timeout {
        if telling {
            ctx.http01_clocks.forget(route.token);
        }
        return CheckStep::GiveUp(format!(
            "the HTTP-01 self-check for {} failed for {:?}, so the CA was not told: {message}",
            route.host, ctx.settings.http01.self_check_timeout
        ));
    }
    let retry_in = probe_interval(clock.probes);
    if let Some(c) = ctx.http01_clocks.lock().get_mut(route.token) {
        c.probes = c.probes.saturating_add(1);
        c.next_probe = now + retry_in;
    }
    CheckStep::Wait { message, retry_in }
}

/// Why the HTTPRoute of a challenge is not (yet) in use, from its parents' status: a parent
/// that refused it (`Accepted` or `ResolvedRefs` false), or no parent status at all.
async fn route_not_accepted(
    ctx: &Ctx,
    route: &Route<'_>,
    gateway: &crate::api::issuer::Http01GatewayRoute,
) -> Option<String> {
    let routes: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), route.namespace, &http_route_resource());
    let object = routes.get_opt(&route.object_name()).await.ok()??;
    let status = object.data.get("status").cloned().unwrap_or_default();
    route_status_problem(&status, gateway.parent_refs.len())
}

/// The parents' complaints in an HTTPRoute status, `None` when every parent accepted it.
pub fn route_status_problem(status: &serde_json::Value, parents_expected: usize) -> Option<String> {
    let parents = status
        .get("parents")
        .and_then(|p| p.as_array())
        .cloned()
        .unwrap_or_default();
    if parents.is_empty() && parents_expected > 0 {
        return Some(
            "no Gateway has reported on the HTTPRoute yet (is the parentRef right?)".into(),
        );
    }
    let mut problems = Vec::new();
    for parent in &parents {
        let who = parent
            .pointer("/parentRef/name")
            .and_then(|n| n.as_str())
            .unwrap_or("?");
        for condition in parent
            .get("conditions")
            .and_then(|c| c.as_array())
            .into_iter()
            .flatten()
        {
            let kind = condition.get("type").and_then(|t| t.as_str()).unwrap_or("");
            let state = condition
                .get("status")
                .and_then(|s| s.as_str())
                .unwrap_or("");
            if matches!(kind, "Accepted" | "ResolvedRefs") && state != "True" {
                problems.push(format!(
                    "HTTPRoute parent {who}: {kind}={state} ({}: {})",
                    condition
                        .get("reason")
                        .and_then(|r| r.as_str())
                        .unwrap_or(""),
                    condition
                        .get("message")
                        .and_then(|m| m.as_str())
                        .unwrap_or("")
                ));
            }
        }
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

/// Whether the Gateway API is installed, as last seen. A cluster without it is asked again only
/// every few minutes when cleaning up, so Ingress users pay no extra request per issuance.
#[derive(Default)]
pub struct GatewayApiPresence(Mutex<Option<(bool, Instant)>>);

impl GatewayApiPresence {
    const RECHECK: Duration = Duration::from_secs(300);

    fn seen(&self, present: bool) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((present, Instant::now()));
    }

    fn known_absent(&self) -> bool {
        matches!(*self.0.lock().unwrap_or_else(|e| e.into_inner()),
            Some((false, at)) if at.elapsed() < Self::RECHECK)
    }
}

/// Removes every temporary HTTP-01 object of a Certificate (found by label).
pub async fn cleanup(ctx: &Ctx, cert: &Certificate) -> Result<(), Error> {
    let ns = cert.namespace().unwrap_or_default();
    let selector = format!(
        "{}={},{}",
        labels::CERTIFICATE_NAME,
        labels::label_value(&cert.name_any()),
        labels::SOLVER
    );
    let lp = ListParams::default().labels(&selector);
    // The Services first, listed once: their annotations say which Ingresses were edited in
    // place (the only record of the edit), so those are restored before anything is deleted.
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &ns);
    let listed = services
        .list_metadata(&lp)
        .await
        .context(|| format!("listing solver Services in {ns}"))?
        .items;
    restore_edited_ingresses(ctx, &ns, &listed).await?;
    delete_listed(&Api::<Ingress>::namespaced(ctx.client.clone(), &ns), &lp).await?;
    delete_listed(
        &Api::<EndpointSlice>::namespaced(ctx.client.clone(), &ns),
        &lp,
    )
    .await?;
    delete_named(&services, listed.iter().map(|s| s.name_any())).await?;
    if !ctx.gateway_api.known_absent() {
        let routes: Api<DynamicObject> =
            Api::namespaced_with(ctx.client.clone(), &ns, &http_route_resource());
        match routes.list_metadata(&lp).await {
            Ok(list) => {
                ctx.gateway_api.seen(true);
                for r in list {
                    match routes.delete(&r.name_any(), &Default::default()).await {
                        Ok(_) => {}
                        Err(e) if is_not_found(&e) => {}
                        Err(e) => {
                            return Err(e)
                                .context(|| format!("deleting HTTPRoute {ns}/{}", r.name_any()));
                        }
                    }
                }
            }
            Err(e) if is_not_found(&e) => ctx.gateway_api.seen(false),
            Err(e) => return Err(e).context(|| format!("listing solver HTTPRoutes in {ns}")),
        }
    }
    for authz in cert
        .status
        .as_ref()
        .and_then(|s| s.order.as_ref())
        .map(|o| o.authorizations.as_slice())
        .unwrap_or_default()
    {
        if let Some(token) = &authz.token {
            ctx.http01_clocks.forget(token);
        }
    }
    Ok(())
}

/// Removes one challenge's temporary objects by name (no LIST): the rule added to an Ingress edited
/// in place, the HTTPRoute or Ingress, the EndpointSlice and the Service. `solver` is the one the
/// challenge was presented with; objects already gone are fine.
pub async fn delete_route_objects(
    ctx: &Ctx,
    ns: &str,
    name: &str,
    solver: &Http01Solver,
) -> Result<(), Error> {
    let names = || std::iter::once(name.to_string());
    if let Some(ingress) = solver.ingress.as_ref() {
        match ingress.name.as_deref() {
            Some(target) => remove_rules_in_place(ctx, ns, target, &[name.to_string()]).await?,
            None => {
                delete_named(&Api::<Ingress>::namespaced(ctx.client.clone(), ns), names()).await?
            }
        }
    }
    if solver.gateway_http_route.is_some() && !ctx.gateway_api.known_absent() {
        let routes: Api<DynamicObject> =
            Api::namespaced_with(ctx.client.clone(), ns, &http_route_resource());
        match routes.delete(name, &Default::default()).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e).context(|| format!("deleting HTTPRoute {ns}/{name}")),
        }
    }
    delete_named(
        &Api::<EndpointSlice>::namespaced(ctx.client.clone(), ns),
        names(),
    )
    .await?;
    delete_named(&Api::<Service>::namespaced(ctx.client.clone(), ns), names()).await
}

/// Takes the challenge rules out of the Ingresses edited in place for the challenge `services`
/// (their [`routing::ANN_EDITED_INGRESS`] annotation names the Ingress).
async fn restore_edited_ingresses(
    ctx: &Ctx,
    ns: &str,
    services: &[kube::core::PartialObjectMeta<Service>],
) -> Result<(), Error> {
    let mut by_ingress: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for s in services {
        if let Some(target) = s.annotations().get(routing::ANN_EDITED_INGRESS) {
            by_ingress
                .entry(target.clone())
                .or_default()
                .push(s.name_any());
        }
    }
    for (target, names) in by_ingress {
        remove_rules_in_place(ctx, ns, &target, &names).await?;
    }
    Ok(())
}

async fn delete_listed<K>(api: &Api<K>, lp: &ListParams) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let kind = K::kind(&());
    let listed = api
        .list_metadata(lp)
        .await
        .context(|| format!("listing solver {kind}s"))?;
    delete_named(api, listed.iter().map(|o| o.name_any())).await
}

/// Deletes the objects `names`; one already gone is fine.
async fn delete_named<K>(api: &Api<K>, names: impl Iterator<Item = String>) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let kind = K::kind(&());
    for name in names {
        match api.delete(&name, &Default::default()).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e).context(|| format!("deleting {kind} {name}")),
        }
    }
    Ok(())
}

/// Watches the EndpointSlices of the controller's HTTP-01 Service until `stop`: publishes the
/// ready addresses in [`super::Context::http01_backends`] and, when they change, rewrites the
/// EndpointSlice of every challenge in flight, so a replica that goes away stops receiving the
/// CA's requests and a new one starts.
pub async fn mirror_backends(ctx: Ctx, mut stop: watch::Receiver<bool>) {
    let s = &ctx.settings.http01;
    let api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), &s.service_namespace);
    let config = watcher::Config::default().labels(&format!(
        "{}={}",
        routing::SERVICE_NAME_LABEL,
        s.service_name
    ));
    let (store, writer) = reflector::store();
    let mut events =
        std::pin::pin!(reflector::reflector(writer, watcher(api, config)).default_backoff());
    loop {
        tokio::select! {
            event = events.next() => match event {
                // The store swaps in a relist only at InitDone: judge it then, not item by item.
                Some(Ok(watcher::Event::Init | watcher::Event::InitApply(_))) => continue,
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "watching the HTTP-01 Service's EndpointSlices");
                    continue;
                }
                None => return,
            },
            _ = stop.wait_for(|s| *s) => return,
        }
        let slices = store.state();
        let now = backends::from_slices(slices.iter().map(|s| s.as_ref()), Some("http"));
        let changed = ctx.http01_backends.send_if_modified(|current| {
            if *current == now {
                return false;
            }
            *current = now.clone();
            true
        });
        if changed {
            tracing::info!(backends = ?now, "HTTP-01 backends changed");
            if let Some(backends) = now {
                resync_challenge_slices(&ctx, &backends).await;
            }
        }
    }
}

/// Rewrites the endpoints of the EndpointSlice of every HTTP-01 challenge in flight (from the
/// Certificate cache; no list). A challenge whose objects are already gone is skipped.
async fn resync_challenge_slices(ctx: &Ctx, backends: &Http01Backends) {
    let patch = serde_json::json!({
        "addressType": backends.address_type(),
        "endpoints": routing::endpoints(backends),
        "ports": [{"name": routing::PORT_NAME, "port": backends.port, "protocol": "TCP"}],
    });
    for cert in ctx.certificates.state() {
        let Some(order) = cert.status.as_ref().and_then(|s| s.order.as_ref()) else {
            continue;
        };
        let ns = cert.namespace().unwrap_or_default();
        let slices: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), &ns);
        for authz in &order.authorizations {
            if authz.challenge_type != Some(crate::api::ChallengeKind::Http01) {
                continue;
            }
            let Some(token) = authz.token.as_deref() else {
                continue;
            };
            let host = authz.identifier.trim_start_matches("*.");
            let name = routing::object_name(&cert.name_any(), host, token);
            match slices
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    tracing::debug!(cert = %describe(cert.as_ref()), slice = %name, "re-synced challenge EndpointSlice")
                }
                Err(e) if is_not_found(&e) => {}
                Err(e) => {
                    tracing::warn!(cert = %describe(cert.as_ref()), slice = %name, error = %e, "re-syncing a challenge EndpointSlice failed")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn service_flag_forms() {
        let p = |v| Http01Settings::parse_service(v, "ferrocert");
        assert_eq!(
            p("ferrocert-http01"),
            Ok(("ferrocert".into(), "ferrocert-http01".into()))
        );
        assert_eq!(
            p("infra/acme-http01"),
            Ok(("infra".into(), "acme-http01".into()))
        );
        assert_eq!(
            p("ferrocert-http01.certs.svc.cluster.local"),
            Ok(("certs".into(), "ferrocert-http01".into()))
        );
        assert_eq!(p("x.y.svc"), Ok(("y".into(), "x".into())));
        assert!(p("").is_err());
        assert!(p("a/b/c").is_err());
        assert!(p("Upper").is_err());
    }

    #[test]
    fn probes_start_quick_and_settle_at_five_seconds() {
        assert_eq!(probe_interval(0), Duration::from_millis(250));
        assert_eq!(probe_interval(1), Duration::from_millis(500));
        assert_eq!(probe_interval(3), Duration::from_secs(2));
        assert_eq!(probe_interval(5), Duration::from_secs(5));
        assert_eq!(probe_interval(500), Duration::from_secs(5));
    }

    #[test]
    fn route_status_names_the_refusing_parent() {
        let status = json!({"parents": [{
            "parentRef": {"name": "gw"},
            "conditions": [
                {"type": "Accepted", "status": "False", "reason": "NotAllowedByListeners", "message": "no listener allows it"},
                {"type": "ResolvedRefs", "status": "True", "reason": "ResolvedRefs", "message": ""}
            ]
        }]});
        let why = route_status_problem(&status, 1).unwrap();
        assert!(
            why.contains("gw: Accepted=False (NotAllowedByListeners"),
            "{why}"
        );
        assert!(!why.contains("ResolvedRefs"));
    }

    #[test]
    fn accepted_routes_have_no_problem_and_silent_gateways_do() {
        let ok = json!({"parents": [{"parentRef": {"name": "gw"}, "conditions": [
            {"type": "Accepted", "status": "True"}, {"type": "ResolvedRefs", "status": "True"}]}]});
        assert_eq!(route_status_problem(&ok, 1), None);
        assert!(
            route_status_problem(&json!({}), 1)
                .unwrap()
                .contains("no Gateway")
        );
    }
}

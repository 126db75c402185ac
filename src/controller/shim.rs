//! ingress-shim and gateway-shim in the controller: for each annotated Ingress or Gateway, apply
//! the Certificates it asks for ([`crate::shim`]), delete the ones it no longer asks for, and say
//! on the object (Events) what was made, skipped or refused.
//!
//! The shims read Certificates from the controller's shared cache, so they keep no second copy.
//! A deleted Certificate is put back at the object's next resync ([`RESYNC`]) or change.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use tokio::sync::watch;

use super::{Ctx, apply_body, describe};
use crate::api::Certificate;
use crate::error::{Error, KubeContext, is_not_found};
use crate::shim::{self, Decision, Prefixes, ShimSettings, Skipped, Wanted};

/// The field manager of the shims' Certificate writes (the reconciler's status writes are
/// `ferrocert`'s).
pub const SHIM_FIELD_MANAGER: &str = "ferrocert-shim";

/// How often an annotated object is looked at again without a change of its own, so that a
/// Certificate deleted by hand comes back.
const RESYNC: Duration = Duration::from_secs(600);

/// `--ingress-shim`, `--gateway-shim`, `--shim-annotation-prefixes`.
#[derive(Clone, Debug)]
pub struct ShimConfig {
    pub ingress: bool,
    pub gateway: bool,
    pub prefixes: Prefixes,
}

impl Default for ShimConfig {
    fn default() -> Self {
        ShimConfig {
            ingress: true,
            gateway: true,
            prefixes: Prefixes::default(),
        }
    }
}

/// The object a shim reconciles, reduced to what the shared part needs.
struct Source<'a> {
    kind: &'static str,
    api_version: &'static str,
    namespace: String,
    name: String,
    uid: String,
    annotations: &'a BTreeMap<String, String>,
    /// For Events.
    reference: k8s_openapi::api::core::v1::ObjectReference,
}

impl Source<'_> {
    fn owner(&self) -> OwnerReference {
        OwnerReference {
            api_version: self.api_version.to_string(),
            kind: self.kind.to_string(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(false),
        }
    }
}

/// The Gateway API's Gateway.
pub fn gateway_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "gateway.networking.k8s.io",
        "v1",
        "Gateway",
    ))
}

/// cert-manager's Certificate, read only to stay out of its way.
fn cert_manager_certificate_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "cert-manager.io",
        "v1",
        "Certificate",
    ))
}

pub async fn reconcile_ingress(ing: Arc<Ingress>, ctx: Ctx) -> Result<Action, Error> {
    if ing.meta().deletion_timestamp.is_some() {
        // The garbage collector removes the Certificates it owns.
        return Ok(Action::await_change());
    }
    let Some(source) = source_of(ing.as_ref(), "networking.k8s.io/v1") else {
        return Ok(Action::await_change());
    };
    let wanted = shim::from_ingress(&ing);
    sync(&ctx, &source, wanted).await
}

pub async fn reconcile_gateway(gw: Arc<DynamicObject>, ctx: Ctx) -> Result<Action, Error> {
    if gw.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let Some(source) = source_of(gw.as_ref(), "gateway.networking.k8s.io/v1") else {
        return Ok(Action::await_change());
    };
    let spec: shim::GatewaySpec =
        serde_json::from_value(gw.data.get("spec").cloned().unwrap_or_default())
            .unwrap_or_default();
    let wanted = shim::from_gateway(&source.namespace, &spec);
    sync(&ctx, &source, wanted).await
}

fn source_of<'a, K: ResourceExt>(obj: &'a K, api_version: &'static str) -> Option<Source<'a>> {
    let kind = if api_version.starts_with("gateway.") {
        "Gateway"
    } else {
        "Ingress"
    };
    let namespace = obj.namespace()?;
    let uid = obj.uid()?;
    let reference = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some(api_version.to_string()),
        kind: Some(kind.to_string()),
        name: Some(obj.name_any()),
        namespace: Some(namespace.clone()),
        uid: Some(uid.clone()),
        resource_version: obj.resource_version(),
        field_path: None,
    };
    Some(Source {
        kind,
        api_version,
        namespace,
        name: obj.name_any(),
        uid,
        annotations: obj.meta().annotations.as_ref().unwrap_or(&EMPTY),
        reference,
    })
}

static EMPTY: BTreeMap<String, String> = BTreeMap::new();

/// Brings the Certificates owned by `source` in step with its annotations and `wanted`.
async fn sync(
    ctx: &Ctx,
    source: &Source<'_>,
    (wanted, skipped): (Vec<Wanted>, Vec<Skipped>),
) -> Result<Action, Error> {
    let settings = match shim::annotations::read(source.annotations, ctx.settings.shims.prefixes) {
        Ok(Some(settings)) => Some(settings),
        Ok(None) => None,
        Err(errors) => {
            // Nothing is created or changed from an annotation that does not hold; what exists
            // stays until the annotations are fixed or removed.
            let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
            warn(ctx, source, "BadAnnotation", text.join("; ")).await;
            return Ok(Action::await_change());
        }
    };
    let owned: Vec<Arc<Certificate>> = ctx
        .certificates
        .state()
        .into_iter()
        .filter(|c| {
            c.namespace().as_deref() == Some(&source.namespace)
                && shim::controlled_by(c, &source.uid)
        })
        .collect();
    let Some(settings) = settings else {
        // Not (or no longer) annotated: remove what it had.
        for cert in &owned {
            delete(ctx, source, cert, "the issuer annotation was removed").await?;
        }
        return Ok(Action::await_change());
    };
    for s in &skipped {
        warn(ctx, source, "TLSEntrySkipped", s.0.clone()).await;
    }
    let cert_manager = cert_manager_secrets(ctx, &source.namespace).await;
    for w in &wanted {
        let existing = ctx
            .certificates
            .get(&ObjectRef::new(&w.secret_name).within(&source.namespace));
        match shim::decide(
            &source.uid,
            existing.as_deref(),
            cert_manager.get(&w.secret_name).map(String::as_str),
        ) {
            Decision::Apply => apply(ctx, source, w, &settings, existing.as_deref()).await?,
            Decision::TakenBy(by) => {
                warn(
                    ctx,
                    source,
                    "CertificateNameTaken",
                    format!(
                        "Certificate {}/{} for Secret {} exists and is managed by {by}: left alone",
                        source.namespace, w.secret_name, w.secret_name
                    ),
                )
                .await;
            }
            Decision::CertManagerManages(cm) => {
                if let Some(mine) = existing.filter(|c| shim::controlled_by(c, &source.uid)) {
                    delete(ctx, source, &mine, "cert-manager manages its Secret").await?;
                }
                ctx.event_on(
                    &source.reference,
                    false,
                    "ManagedByCertManager",
                    "Skip",
                    format!(
                        "Secret {} is written by cert-manager's Certificate {}/{cm}: no ferrocert \
                         Certificate is made for it",
                        w.secret_name, source.namespace
                    ),
                )
                .await;
            }
        }
    }
    for cert in owned
        .iter()
        .filter(|c| !wanted.iter().any(|w| w.secret_name == c.name_any()))
    {
        delete(ctx, source, cert, "no TLS entry names its Secret any more").await?;
    }
    Ok(Action::requeue(crate::retry::jittered(RESYNC)))
}

/// Applies the Certificate for `w` unless the cached one already says the same.
async fn apply(
    ctx: &Ctx,
    source: &Source<'_>,
    w: &Wanted,
    settings: &ShimSettings,
    existing: Option<&Certificate>,
) -> Result<(), Error> {
    let desired = shim::certificate(&source.namespace, source.owner(), w, settings);
    if existing.is_some_and(|c| {
        c.spec == desired.spec
            && shim::http01_ingress_class(c) == shim::http01_ingress_class(&desired)
            && shim::http01_edit_in_place(c) == shim::http01_edit_in_place(&desired)
    }) {
        return Ok(());
    }
    let api: Api<Certificate> = Api::namespaced(ctx.client.clone(), &source.namespace);
    let result = api
        .patch(
            &w.secret_name,
            &PatchParams::apply(SHIM_FIELD_MANAGER).force(),
            &Patch::Apply(&apply_body(&desired)),
        )
        .await;
    match result {
        Ok(_) => {
            let verb = if existing.is_some() {
                "Updated"
            } else {
                "Created"
            };
            ctx.event_on(
                &source.reference,
                false,
                "CertificateApplied",
                "Apply",
                format!(
                    "{verb} Certificate {}/{} for {} (issuer {:?} {})",
                    source.namespace,
                    w.secret_name,
                    w.dns_names.join(", "),
                    settings.issuer_ref.kind.unwrap_or_default(),
                    settings.issuer_ref.name
                ),
            )
            .await;
            Ok(())
        }
        // The schema refused it (a value the annotation check let through): say why, on the
        // object whose annotations made it, and do not retry until the object changes.
        Err(kube::Error::Api(resp)) if resp.code == 422 || resp.code == 400 => {
            warn(
                ctx,
                source,
                "BadAnnotation",
                format!(
                    "Certificate {}/{} was refused: {}",
                    source.namespace, w.secret_name, resp.message
                ),
            )
            .await;
            Ok(())
        }
        Err(source_err) => Err(Error::Kube {
            action: format!(
                "applying Certificate {}/{} for {} {}",
                source.namespace, w.secret_name, source.kind, source.name
            ),
            source: source_err,
        }),
    }
}

async fn delete(
    ctx: &Ctx,
    source: &Source<'_>,
    cert: &Certificate,
    why: &str,
) -> Result<(), Error> {
    let api: Api<Certificate> = Api::namespaced(ctx.client.clone(), &source.namespace);
    let name = cert.name_any();
    // Only the one this object owns (uid precondition): never one made since by someone else.
    let dp = DeleteParams {
        preconditions: cert.uid().map(|uid| kube::api::Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&name, &dp).await {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => return Ok(()),
        Err(kube::Error::Api(resp)) if resp.code == 409 => return Ok(()),
        Err(e) => {
            return Err(e).context(|| format!("deleting Certificate {}", describe(cert)));
        }
    }
    ctx.event_on(
        &source.reference,
        false,
        "CertificateRemoved",
        "Delete",
        format!(
            "Deleted Certificate {}/{name}: {why} (Secret {} is kept)",
            source.namespace, cert.spec.secret_name
        ),
    )
    .await;
    Ok(())
}

async fn warn(ctx: &Ctx, source: &Source<'_>, reason: &str, note: String) {
    tracing::warn!(
        object = format!("{} {}/{}", source.kind, source.namespace, source.name),
        reason,
        "{note}"
    );
    ctx.event_on(&source.reference, true, reason, "Shim", note)
        .await;
}

/// The Secrets of `namespace` that cert-manager Certificates write, by Secret name → that
/// Certificate's name. Empty when cert-manager is not installed (or not readable).
async fn cert_manager_secrets(ctx: &Ctx, namespace: &str) -> BTreeMap<String, String> {
    let api: Api<DynamicObject> = Api::namespaced_with(
        ctx.client.clone(),
        namespace,
        &cert_manager_certificate_resource(),
    );
    match api.list(&ListParams::default()).await {
        Ok(list) => list
            .items
            .into_iter()
            .filter_map(|c| {
                let secret = c.data["spec"]["secretName"].as_str()?.to_string();
                Some((secret, c.name_any()))
            })
            .collect(),
        Err(e) if is_not_found(&e) => BTreeMap::new(),
        Err(e) => {
            tracing::debug!(%e, namespace, "cannot list cert-manager Certificates");
            BTreeMap::new()
        }
    }
}

/// The ingress-shim, until `stop` turns true.
pub async fn run_ingress_shim(ctx: Ctx, stop: watch::Receiver<bool>) {
    if !ctx.settings.shims.ingress {
        return;
    }
    let mut stop_rx = stop.clone();
    // Not the controller's own temporary HTTP-01 Ingresses (one per challenge in flight): they
    // carry no issuer annotation, and caching them would cost memory and reconciles.
    let not_ours = format!("!{}", crate::labels::SOLVER);
    Controller::new(
        Api::<Ingress>::all(ctx.client.clone()),
        watcher::Config::default().labels(&not_ours).any_semantic(),
    )
    .graceful_shutdown_on(async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    })
    .run(reconcile_ingress, error_policy, ctx.clone())
    .for_each(|_| async {})
    .await;
}

/// The gateway-shim, until `stop` turns true. Without the Gateway API installed it looks again
/// every five minutes.
pub async fn run_gateway_shim(ctx: Ctx, mut stop: watch::Receiver<bool>) {
    if !ctx.settings.shims.gateway {
        return;
    }
    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "Gateway");
    loop {
        match kube::discovery::pinned_kind(&ctx.client, &gvk).await {
            Ok(_) => break,
            Err(e) => {
                tracing::info!(%e, "gateway-shim: the Gateway API is not installed; looking again in 5 minutes");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(300)) => {},
            _ = stop.wait_for(|s| *s) => return,
        }
    }
    let mut stop_rx = stop.clone();
    Controller::new_with(
        Api::<DynamicObject>::all_with(ctx.client.clone(), &gateway_resource()),
        watcher::Config::default().any_semantic(),
        gateway_resource(),
    )
    .graceful_shutdown_on(async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    })
    .run(reconcile_gateway, error_policy_dynamic, ctx.clone())
    .for_each(|_| async {})
    .await;
}

fn error_policy(obj: Arc<Ingress>, err: &Error, _ctx: Ctx) -> Action {
    tracing::warn!(object = %describe(obj.as_ref()), error = %err, "ingress-shim failed");
    Action::requeue(crate::retry::jittered(Duration::from_secs(30)))
}

fn error_policy_dynamic(obj: Arc<DynamicObject>, err: &Error, _ctx: Ctx) -> Action {
    tracing::warn!(object = %describe(obj.as_ref()), error = %err, "gateway-shim failed");
    Action::requeue(crate::retry::jittered(Duration::from_secs(30)))
}

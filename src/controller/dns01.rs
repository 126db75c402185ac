//! DNS-01 in the issuance path: build the issuer's DNS provider, present and check TXT records,
//! and remove exactly the records an order wrote (tracked in status, so a restart still cleans
//! up).

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

use super::Ctx;
use super::certificate::ResolvedIssuer;
use crate::api::OrderStatus;
use crate::api::issuer::Rfc2136Provider;
use crate::secret::data_str;
use crate::solver::dns01::DnsProvider;
use crate::solver::dns01::propagation::{PropagationChecker, PropagationConfig};
use crate::solver::dns01::rfc2136::Rfc2136;

/// How many propagation checks (about 2 s apart) before the attempt fails.
pub const MAX_PROPAGATION_CHECKS: i32 = 90;

/// The RFC 2136 provider of a solver, with its TSIG secret read from the issuer's Secrets.
pub async fn provider(
    ctx: &Ctx,
    issuer: &ResolvedIssuer,
    spec: &Rfc2136Provider,
) -> Result<Rfc2136, String> {
    let secret = match &spec.tsig_secret_secret_ref {
        None => None,
        Some(sref) => {
            let ns = &issuer.ident.secret_namespace;
            let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
            let secret = api
                .get_opt(&sref.name)
                .await
                .map_err(|e| format!("reading the TSIG Secret {ns}/{}: {e}", sref.name))?
                .ok_or_else(|| format!("the TSIG Secret {ns}/{} does not exist", sref.name))?;
            let key = sref.key.as_deref().unwrap_or("secret");
            let value = data_str(&secret, key)
                .ok_or_else(|| format!("the TSIG Secret {ns}/{} has no key {key:?}", sref.name))?;
            Some(value.trim().as_bytes().to_vec())
        }
    };
    Rfc2136::from_spec(spec, secret.as_deref()).map_err(|e| e.to_string())
}

/// The propagation checker for a solver: lookups go to the solver's nameserver; the TXT is checked
/// at the zone's authoritative nameservers or at `--dns01-check-nameservers`.
pub fn checker(ctx: &Ctx, spec: &Rfc2136Provider) -> Result<PropagationChecker, String> {
    PropagationChecker::new(PropagationConfig {
        resolvers: vec![spec.nameserver.clone()],
        nameservers: ctx.settings.dns01_check_nameservers.clone(),
        ..PropagationConfig::default()
    })
    .map_err(|e| e.to_string())
}

/// Removes every TXT record the order wrote. Best effort: a failure is logged and reported in the
/// returned list, never fatal (the record does no harm once the order is over).
pub async fn cleanup(
    ctx: &Ctx,
    issuer: &ResolvedIssuer,
    cert_labels: &std::collections::BTreeMap<String, String>,
    order: &OrderStatus,
) -> Vec<String> {
    let mut problems = Vec::new();
    for authz in &order.authorizations {
        let (Some(name), Some(value)) = (&authz.record_name, &authz.record_value) else {
            continue;
        };
        let bare = authz.identifier.trim_start_matches("*.");
        let target = crate::solver::select::Target {
            name: bare,
            wildcard: authz.wildcard.unwrap_or(false),
            is_ip: false,
        };
        // The solver that wrote it (same selection), else any DNS-01 solver of the issuer.
        let Some(spec) = crate::solver::select::select(&issuer.acme.solvers, target, cert_labels)
            .and_then(|s| s.dns01.as_ref())
            .or_else(|| issuer.acme.solvers.iter().find_map(|s| s.dns01.as_ref()))
            .and_then(|d| d.rfc2136.as_ref())
        else {
            problems.push(format!(
                "no DNS-01 solver left to remove {name} TXT {value}"
            ));
            continue;
        };
        let result = match provider(ctx, issuer, spec).await {
            Ok(p) => p.clean_up(name, value).await.map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(record = %name, error = %e, "removing a DNS-01 TXT record failed");
            problems.push(format!("removing TXT {name}: {e}"));
        }
    }
    problems
}

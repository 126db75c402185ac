//! Removing the temporary solver objects of an order.

// The order module's imports and shared items (states, helpers).
use super::*;

/// Removes every temporary solver object of a Certificate.
pub async fn cleanup_temporaries(ctx: &Ctx, cert: &Certificate) -> Result<(), Error> {
    http01::cleanup(ctx, cert).await
}

/// Removes the temporary solver objects an order may have made: none when it has no HTTP-01
/// challenge; by name when every one is recorded with its token (tokens are written before their
/// routes are applied) and the issuer still says which solver presented it; else found by label.
pub async fn cleanup_temporaries_of(
    ctx: &Ctx,
    cert: &Certificate,
    order: Option<&OrderStatus>,
    issuer: &ResolvedIssuer,
) -> Result<(), Error> {
    if !may_have_http01_objects(order) {
        return Ok(());
    }
    let Some(named) = order.and_then(|o| presented_routes(cert, o, issuer)) else {
        return http01::cleanup(ctx, cert).await;
    };
    let ns = cert.namespace().unwrap_or_default();
    for (name, token, solver) in named {
        http01::delete_route_objects(ctx, &ns, &name, &solver).await?;
        ctx.http01_clocks.forget(&token);
        ctx.orders.forget_told(&token);
    }
    Ok(())
}

/// The objects' name, token and solver of each HTTP-01 challenge recorded in `order`; `None` when
/// one cannot be told (an authorization without a recorded type, or no solver for it now).
fn presented_routes(
    cert: &Certificate,
    order: &OrderStatus,
    issuer: &ResolvedIssuer,
) -> Option<Vec<(String, String, crate::api::issuer::Http01Solver)>> {
    let cert_name = cert.name_any();
    let mut routes = Vec::new();
    for a in &order.authorizations {
        match (a.challenge_type, a.token.as_deref()) {
            (Some(ChallengeKind::Http01), Some(token)) => {
                let bare = a.identifier.trim_start_matches("*.");
                let target = Target {
                    name: bare,
                    wildcard: a.wildcard.unwrap_or(false),
                    is_ip: bare.parse::<std::net::IpAddr>().is_ok(),
                };
                let solver = select(&issuer.acme.solvers, target, cert.labels())?
                    .http01
                    .as_ref()?;
                routes.push((
                    crate::solver::http01::routing::object_name(&cert_name, bare, token),
                    token.to_string(),
                    crate::shim::solver_for(solver, cert),
                ));
            }
            // Another type, or no token (nothing presented): no objects.
            (Some(_), _) => {}
            // Valid from the start (an authorization the CA reused): nothing was presented.
            (None, None) if a.state == Some(ChallengeState::Valid) => {}
            (None, _) => return None,
        }
    }
    Some(routes)
}

/// Whether an order (as recorded in status) may have HTTP-01 objects: not when there is no order,
/// nor when every authorization is recorded with another challenge type. Pure.
pub fn may_have_http01_objects(order: Option<&OrderStatus>) -> bool {
    let Some(order) = order else {
        return false;
    };
    order.authorizations.is_empty()
        || order
            .authorizations
            .iter()
            .any(|a| a.challenge_type.is_none_or(|t| t == ChallengeKind::Http01))
}

//! Removing the temporary solver objects of an order.

// The order module's imports and shared items (states, helpers).
use super::*;

/// Removes every temporary solver object of a Certificate.
pub async fn cleanup_temporaries(ctx: &Ctx, cert: &Certificate) -> Result<(), Error> {
    http01::cleanup(ctx, cert).await
}

/// Removes the temporary solver objects an order may have made: none (and no LIST requests) when
/// it has no HTTP-01 challenge.
pub async fn cleanup_temporaries_of(
    ctx: &Ctx,
    cert: &Certificate,
    order: Option<&OrderStatus>,
) -> Result<(), Error> {
    if may_have_http01_objects(order) {
        http01::cleanup(ctx, cert).await?;
    }
    Ok(())
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

//! Telling the CA a challenge is ready, and how soon to poll it afterwards.

// The order module's imports and shared items (states, helpers).
use super::*;

/// Why the CA was not told a challenge is ready.
pub(super) enum TellFailure {
    /// Worth repeating at once (see [`AcmeError::is_bad_nonce`]).
    Transient(String),
    /// The attempt failed; the message to record.
    Failed(String),
}

/// Tells the CA a challenge is ready to be validated.
pub(super) async fn tell_ca<'a>(
    authz: &'a mut instant_acme::AuthorizationHandle<'a>,
    kind: ChallengeType,
    identifier: &str,
    namespace: &str,
) -> Result<(), TellFailure> {
    let Some(mut handle) = authz.challenge(kind) else {
        return Err(TellFailure::Failed(format!(
            "the CA's authorization for {identifier} lost its challenge"
        )));
    };
    let told = handle.set_ready().await;
    if told.is_ok() {
        crate::crash::point("challenge-told", namespace, &identifier);
    }
    told.map_err(AcmeError::from).map_err(|e| {
        let text = format!(
            "telling the CA the challenge for {identifier} is ready failed: {}",
            e.problem()
                .map(problem_text)
                .unwrap_or_else(|| e.to_string())
        );
        if e.is_bad_nonce() {
            TellFailure::Transient(text)
        } else {
            TellFailure::Failed(text)
        }
    })
}

/// How long to wait before polling an order whose challenges the CA is validating.
pub fn poll_delay(elapsed: Duration) -> Duration {
    match elapsed.as_secs() {
        0..=1 => Duration::from_millis(200),
        2..=29 => Duration::from_secs(1),
        30..=299 => Duration::from_secs(5),
        _ => Duration::from_secs(30),
    }
}

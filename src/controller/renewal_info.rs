//! ARI in the reconcile of a Ready Certificate: fetch the CA's renewal window when it is due
//! (never more often than the re-check bounds), record it in status, and turn it into the renewal
//! instant. Any failure falls back to the spec's renewal time: never to no renewal.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use super::Ctx;
use super::issuer_ref::{ResolvedIssuer, account_for};
use crate::acme::lifecycle::{self, WindowError};
use crate::api::{Certificate, CertificateStatus, RenewalInfoStatus};
use crate::pki::renewal_info::{self, Window};

/// The current certificate, as the renewal decision needs it.
pub struct Current<'a> {
    pub leaf_der: &'a [u8],
    pub not_before: Timestamp,
    pub not_after: Timestamp,
    /// The renewal time from the spec (`renewBefore`, `renewBeforePercentage`, one third).
    pub spec_renewal: Timestamp,
    /// Whether the spec sets `renewBefore` or `renewBeforePercentage` itself.
    pub spec_is_explicit: bool,
    /// Whether a new or moved window gets its own `RenewalWindow` Event; not when the caller
    /// reports the window in its own (the `Issued` Event), which saves an Event per issuance.
    pub announce_window: bool,
}

/// The renewal decision: when to renew, and when to look at the window again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub renewal: Timestamp,
    pub next_check: Option<Timestamp>,
}

/// Whether ARI is on for an issuer (it is unless the issuer turns it off).
pub fn enabled(issuer: &ResolvedIssuer) -> bool {
    issuer.acme.disable_renewal_info != Some(true)
}

/// Brings `status.renewal_info` up to date (fetching only when due) and returns the schedule.
/// Emits an Event when the CA's window for this certificate is new or has moved.
pub async fn schedule(
    ctx: &Ctx,
    cert: &Certificate,
    issuer: &ResolvedIssuer,
    status: &mut CertificateStatus,
    current: &Current<'_>,
    now: Timestamp,
) -> Schedule {
    let fallback = Schedule {
        renewal: current.spec_renewal,
        next_check: None,
    };
    if !enabled(issuer) {
        status.renewal_info = None;
        return fallback;
    }
    let Ok(id) = lifecycle::certificate_id(current.leaf_der) else {
        // No AKI: the CA cannot be asked about it (and cannot be told it is replaced).
        status.renewal_info = None;
        return fallback;
    };
    let seed = renewal_info::seed(&[&cert.namespace().unwrap_or_default(), &cert.name_any(), &id]);
    let known = status
        .renewal_info
        .take()
        .filter(|info| info.certificate_id == id);
    let due = known
        .as_ref()
        .and_then(|i| i.next_check.as_ref())
        .is_none_or(|t| t.0 <= now);
    let info = if due {
        match fetch(ctx, issuer, current.leaf_der).await {
            Ok(fetched) => {
                let moved = known.as_ref().and_then(window_of) != Some(fetched.window);
                let info = RenewalInfoStatus {
                    certificate_id: id,
                    window_start: Some(Time(fetched.window.start)),
                    window_end: Some(Time(fetched.window.end)),
                    explanation_url: fetched.explanation_url,
                    last_checked: Some(Time(now)),
                    next_check: Some(Time(renewal_info::next_check(
                        now,
                        Some(fetched.retry_after),
                        ctx.settings.ari_recheck,
                        seed,
                    ))),
                    error: None,
                };
                if moved && current.announce_window {
                    let at = pick(&info, current, seed);
                    ctx.event(
                        cert,
                        false,
                        "RenewalWindow",
                        "CheckRenewalInfo",
                        format!(
                            "The CA suggests renewing between {} and {}; renewal at {}",
                            fetched.window.start, fetched.window.end, at.renewal
                        ),
                    )
                    .await;
                }
                info
            }
            Err(WindowError::Unsupported) => return fallback,
            Err(e) => {
                tracing::warn!(cert = %super::describe(cert), error = %e, "fetching the ARI window failed");
                // Keep a window already known for this certificate: it is still the CA's word.
                let mut info = known.unwrap_or(RenewalInfoStatus {
                    certificate_id: id,
                    ..RenewalInfoStatus::default()
                });
                info.error = Some(e.to_string());
                info.last_checked = Some(Time(now));
                info.next_check = Some(Time(renewal_info::next_check(
                    now,
                    None,
                    ctx.settings.ari_recheck,
                    seed,
                )));
                info
            }
        }
    } else {
        // `known` is Some here: `due` is true without it.
        match known {
            Some(info) => info,
            None => return fallback,
        }
    };
    let schedule = pick(&info, current, seed);
    status.renewal_info = Some(info);
    schedule
}

fn window_of(info: &RenewalInfoStatus) -> Option<Window> {
    Some(Window {
        start: info.window_start.as_ref()?.0,
        end: info.window_end.as_ref()?.0,
    })
}

/// The renewal instant from a recorded window. An explicit `renewBefore` /
/// `renewBeforePercentage` in the spec still holds as the latest renewal (the CA may pull it
/// earlier, never later); without one, the CA's window decides.
fn pick(info: &RenewalInfoStatus, current: &Current<'_>, seed: u64) -> Schedule {
    let next_check = info.next_check.as_ref().map(|t| t.0);
    let Some(window) = window_of(info) else {
        return Schedule {
            renewal: current.spec_renewal,
            next_check,
        };
    };
    let chosen = renewal_info::choose_renewal_time(
        window,
        current.not_before,
        current.not_after,
        current.spec_renewal,
        seed,
    );
    Schedule {
        renewal: if current.spec_is_explicit {
            chosen.min(current.spec_renewal)
        } else {
            chosen
        },
        next_check,
    }
}

async fn fetch(
    ctx: &Ctx,
    issuer: &ResolvedIssuer,
    leaf_der: &[u8],
) -> Result<lifecycle::FetchedWindow, WindowError> {
    let account = account_for(ctx, issuer)
        .await
        .map_err(|e| WindowError::Account(e.to_string()))?;
    lifecycle::fetch_window(&account, leaf_der).await
}

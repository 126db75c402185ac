//! Leader election on a `coordination.k8s.io/v1` Lease. One replica reconciles; the others keep
//! serving HTTP-01 tokens and metrics and take over once the lease has not been renewed for its
//! duration. No published crate supports kube 5 yet, hence this small loop.
//!
//! The decision of each round is a pure function ([`decide`]); the loop only reads and writes the
//! Lease with resourceVersion preconditions, so two replicas can never both win one round.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;

/// What this replica should do with the Lease it just read.
#[derive(Debug, PartialEq, Eq)]
pub enum Round {
    /// Ours: renew it.
    Renew,
    /// Free or expired: take it.
    Acquire,
    /// Someone else holds a live lease.
    Follow,
}

/// Decides from the Lease as read. Pure.
pub fn decide(spec: Option<&LeaseSpec>, me: &str, now: Timestamp, duration: Duration) -> Round {
    let Some(spec) = spec else {
        return Round::Acquire;
    };
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder == me {
        return Round::Renew;
    }
    if holder.is_empty() {
        return Round::Acquire;
    }
    let lease_for = spec
        .lease_duration_seconds
        .map(|s| Duration::from_secs(s.max(1) as u64))
        .unwrap_or(duration);
    let renewed = spec.renew_time.as_ref().map(|t| t.0);
    match renewed {
        Some(at) if now.duration_since(at).unsigned_abs() < lease_for || at > now => Round::Follow,
        _ => Round::Acquire,
    }
}

/// How long a follower should wait before its next round: until the holder's lease would expire
/// (so a dead leader is replaced within the lease duration), but at most `every`.
pub fn follow_wait(
    spec: &LeaseSpec,
    now: Timestamp,
    duration: Duration,
    every: Duration,
) -> Duration {
    let lease_for = spec
        .lease_duration_seconds
        .map(|s| Duration::from_secs(s.max(1) as u64))
        .unwrap_or(duration);
    let Some(renewed) = spec.renew_time.as_ref().map(|t| t.0) else {
        return every;
    };
    let expires = renewed
        .checked_add(jiff::SignedDuration::try_from(lease_for).unwrap_or_default())
        .unwrap_or(renewed);
    let until = expires.duration_since(now);
    if until.is_negative() {
        return Duration::from_millis(100);
    }
    (until.unsigned_abs() + Duration::from_millis(50)).min(every)
}

/// Lease settings.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    pub duration: Duration,
}

/// Runs the election until `stop` turns true, publishing leadership on `leader`. On stop, a held
/// lease is released so another replica takes over at once.
pub async fn run(
    client: Client,
    settings: LeaseSettings,
    leader: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let api: Api<Lease> = Api::namespaced(client, &settings.namespace);
    let renew_every = settings.duration / 3;
    let mut last_renewed: Option<std::time::Instant> = None;
    loop {
        let mut wait = renew_every;
        let held = match round(&api, &settings).await {
            Ok(Outcome::Held) => {
                last_renewed = Some(std::time::Instant::now());
                true
            }
            Ok(Outcome::Following(until_expiry)) => {
                wait = until_expiry;
                false
            }
            Err(err) => {
                tracing::warn!(%err, lease = %settings.name, "lease round failed");
                // Keep leading only while our last renewal is still within the lease.
                last_renewed.is_some_and(|t| t.elapsed() < settings.duration)
            }
        };
        if !held {
            last_renewed = None;
        }
        if *leader.borrow() != held {
            tracing::info!(identity = %settings.identity, leader = held, "leadership changed");
            let _ = leader.send(held);
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {},
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    if *leader.borrow() {
        let _ = leader.send(false);
        if let Err(err) = release(&api, &settings).await {
            tracing::warn!(%err, "releasing the lease failed");
        }
    }
}

/// The result of one round.
enum Outcome {
    Held,
    /// Someone else holds it; try again after this long.
    Following(Duration),
}

/// One round: read the Lease and renew, take or follow it.
async fn round(api: &Api<Lease>, s: &LeaseSettings) -> Result<Outcome, kube::Error> {
    let every = s.duration / 3;
    let now = Timestamp::now();
    let current = api.get_opt(&s.name).await?;
    let decision = decide(
        current.as_ref().and_then(|l| l.spec.as_ref()),
        &s.identity,
        now,
        s.duration,
    );
    let micro = MicroTime(now);
    match (decision, current) {
        (Round::Follow, current) => Ok(Outcome::Following(
            current
                .as_ref()
                .and_then(|l| l.spec.as_ref())
                .map_or(every, |spec| follow_wait(spec, now, s.duration, every)),
        )),
        (Round::Acquire | Round::Renew, None) => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(s.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(s.identity.clone()),
                    lease_duration_seconds: Some(s.duration.as_secs().max(1) as i32),
                    acquire_time: Some(micro.clone()),
                    renew_time: Some(micro),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Outcome::Held),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(Outcome::Following(every)),
                Err(e) => Err(e),
            }
        }
        (decision, Some(mut lease)) => {
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            if decision == Round::Acquire {
                spec.holder_identity = Some(s.identity.clone());
                spec.acquire_time = Some(micro.clone());
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            }
            spec.lease_duration_seconds = Some(s.duration.as_secs().max(1) as i32);
            spec.renew_time = Some(micro);
            // replace carries the resourceVersion we read: a concurrent writer makes this 409.
            match api.replace(&s.name, &PostParams::default(), &lease).await {
                Ok(_) => Ok(Outcome::Held),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(Outcome::Following(every)),
                Err(e) => Err(e),
            }
        }
    }
}

/// Gives the lease up (holder cleared) so a follower acquires it on its next round.
async fn release(api: &Api<Lease>, s: &LeaseSettings) -> Result<(), kube::Error> {
    if let Some(mut lease) = api.get_opt(&s.name).await?
        && let Some(spec) = lease.spec.as_mut()
        && spec.holder_identity.as_deref() == Some(s.identity.as_str())
    {
        spec.holder_identity = None;
        api.replace(&s.name, &PostParams::default(), &lease).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, renewed_secs_ago: i64, duration: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            renew_time: Some(MicroTime(
                Timestamp::from_second(1_000_000 - renewed_secs_ago).unwrap(),
            )),
            lease_duration_seconds: Some(duration),
            ..Default::default()
        }
    }
    fn now() -> Timestamp {
        Timestamp::from_second(1_000_000).unwrap()
    }
    const D: Duration = Duration::from_secs(15);

    #[test]
    fn no_lease_or_no_holder_is_acquired() {
        assert_eq!(decide(None, "a", now(), D), Round::Acquire);
        let mut s = spec("a", 0, 15);
        s.holder_identity = None;
        assert_eq!(decide(Some(&s), "b", now(), D), Round::Acquire);
    }

    #[test]
    fn a_follower_wakes_when_the_lease_would_expire() {
        let every = Duration::from_secs(5);
        // Renewed 13 s ago for 15 s: expires in 2 s.
        let wait = follow_wait(&spec("a", 13, 15), now(), D, every);
        assert_eq!(wait, Duration::from_millis(2050));
        // Fresh lease: capped at the round interval.
        assert_eq!(follow_wait(&spec("a", 0, 15), now(), D, every), every);
        // Already expired: soon.
        assert_eq!(
            follow_wait(&spec("a", 20, 15), now(), D, every),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn our_lease_is_renewed() {
        assert_eq!(
            decide(Some(&spec("a", 100, 15)), "a", now(), D),
            Round::Renew
        );
    }

    #[test]
    fn a_live_lease_of_another_is_followed_and_an_expired_one_taken() {
        assert_eq!(
            decide(Some(&spec("a", 5, 15)), "b", now(), D),
            Round::Follow
        );
        assert_eq!(
            decide(Some(&spec("a", 16, 15)), "b", now(), D),
            Round::Acquire
        );
        // A renew time in the future (clock skew) is respected.
        assert_eq!(
            decide(Some(&spec("a", -30, 15)), "b", now(), D),
            Round::Follow
        );
    }
}

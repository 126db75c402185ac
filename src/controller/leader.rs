//! Leader election on a `coordination.k8s.io/v1` Lease. One replica reconciles; the others keep
//! serving HTTP-01 tokens and metrics and take over once the lease has not changed for its
//! duration. No published crate supports kube 5 yet, hence this small loop.
//!
//! Two rules keep two replicas from leading at once, whatever the network or the clocks do:
//!
//! - A leader leads only until its *renew deadline* (two thirds of the lease) has passed since
//!   the start of its last successful renewal, measured on its own monotonic clock. Every round
//!   runs under a timeout that ends no later than that deadline, so a stalled Lease request
//!   cannot keep it leading: when the deadline passes, leadership is dropped at that instant
//!   (the reconcilers are aborted by `run_while_leading`).
//! - A follower judges another holder's lease by when *it* last saw the Lease change (a new
//!   resourceVersion, holder or renewTime), on its own monotonic clock, never by comparing the
//!   holder's `renewTime` with its own wall clock: skewed clocks cannot make it take over early.
//!
//! The holder's renewal starts before any follower can see it, so a follower takes over at least
//! the lease duration after the start of the holder's last renewal, and the holder stopped a third
//! of the lease before that. Each decision is a pure function ([`decide`], [`leading`],
//! [`round_deadline`], [`follow_wait`]) of the Lease and of instants, unit-tested with a fake
//! clock; the loop only reads and writes the Lease with resourceVersion preconditions, so two
//! replicas can never both win one round.

use std::time::{Duration, Instant};

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
    /// Free, or unchanged for its whole duration since we first saw it so: take it.
    Acquire,
    /// Someone else holds a live lease.
    Follow,
}

/// What a follower last saw of the Lease, and when (its own monotonic clock).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// resourceVersion, holder and renewTime as read: any change means the holder is alive.
    key: (Option<String>, Option<String>, Option<Timestamp>),
    /// When we first read this key.
    pub since: Instant,
}

/// Records a read of the Lease: `since` moves to `now` only when the Lease changed. Pure.
pub fn observe(previous: Option<&Observed>, lease: Option<&Lease>, now: Instant) -> Observed {
    let spec = lease.and_then(|l| l.spec.as_ref());
    let key = (
        lease.and_then(|l| l.metadata.resource_version.clone()),
        spec.and_then(|s| s.holder_identity.clone()),
        spec.and_then(|s| s.renew_time.as_ref().map(|t| t.0)),
    );
    match previous {
        Some(p) if p.key == key => p.clone(),
        _ => Observed { key, since: now },
    }
}

/// How long the holder's lease lasts: its own `leaseDurationSeconds`, else ours.
fn lease_for(spec: &LeaseSpec, duration: Duration) -> Duration {
    spec.lease_duration_seconds
        .map(|s| Duration::from_secs(s.max(1) as u64))
        .unwrap_or(duration)
}

/// Decides from the Lease as read, and since when it has looked like this (`observed`). Pure.
pub fn decide(
    spec: Option<&LeaseSpec>,
    me: &str,
    observed: &Observed,
    now: Instant,
    duration: Duration,
) -> Round {
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
    if now.saturating_duration_since(observed.since) < lease_for(spec, duration) {
        Round::Follow
    } else {
        Round::Acquire
    }
}

/// How long a follower waits before its next round: until the holder's lease would expire if it
/// does not change (so a dead leader is replaced within the lease duration), but at most `every`.
pub fn follow_wait(
    spec: &LeaseSpec,
    observed: &Observed,
    now: Instant,
    duration: Duration,
    every: Duration,
) -> Duration {
    let expires = observed.since + lease_for(spec, duration);
    match expires.checked_duration_since(now) {
        Some(left) if !left.is_zero() => (left + Duration::from_millis(50)).min(every),
        _ => Duration::from_millis(100),
    }
}

/// The renew deadline: two thirds of the lease. A leader that has not renewed successfully
/// within it since the start of its last successful renewal stops leading.
pub fn renew_deadline(duration: Duration) -> Duration {
    duration * 2 / 3
}

/// How often the leader renews and a follower looks at the Lease: an eighth of the lease, so a
/// leader gets several tries before its renew deadline and a follower sees the last change of a
/// dead leader soon after it happened.
pub fn retry_period(duration: Duration) -> Duration {
    (duration / 8).max(Duration::from_millis(100))
}

/// Whether we still lead: our last successful renewal started less than the renew deadline ago.
pub fn leading(last_renewal_started: Option<Instant>, now: Instant, duration: Duration) -> bool {
    last_renewal_started
        .is_some_and(|t| now.saturating_duration_since(t) < renew_deadline(duration))
}

/// When a round started at `now` must be given up: after a renew deadline's worth of time at the
/// most, and, while leading, no later than the moment leadership ends, so that a stalled request
/// cannot keep us leading past it.
pub fn round_deadline(
    last_renewal_started: Option<Instant>,
    now: Instant,
    duration: Duration,
) -> Instant {
    let own = now + renew_deadline(duration).max(Duration::from_millis(100));
    match last_renewal_started {
        Some(t) if leading(Some(t), now, duration) => own.min(t + renew_deadline(duration)),
        _ => own,
    }
}

/// Lease settings.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    pub duration: Duration,
}

/// Runs the election until `stop` turns true, publishing leadership on `leader`: true after a
/// successful acquisition or renewal, false the instant the renew deadline passes without one.
/// On stop, a held lease is released so another replica takes over at once.
pub async fn run(
    client: Client,
    settings: LeaseSettings,
    leader: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let api: Api<Lease> = Api::namespaced(client, &settings.namespace);
    let every = retry_period(settings.duration);
    let mut last_renewal_started: Option<Instant> = None;
    let mut observed: Option<Observed> = None;
    let publish = |held: bool| {
        if *leader.borrow() != held {
            tracing::info!(identity = %settings.identity, leader = held, "leadership changed");
            let _ = leader.send(held);
        }
    };
    loop {
        let started = Instant::now();
        if !leading(last_renewal_started, started, settings.duration) {
            last_renewal_started = None;
            publish(false);
        }
        let deadline = round_deadline(last_renewal_started, started, settings.duration);
        let outcome = tokio::select! {
            outcome = tokio::time::timeout_at(
                deadline.into(),
                round(&api, &settings, &mut observed),
            ) => outcome,
            _ = stop.wait_for(|s| *s) => break,
        };
        let mut wait = every;
        match outcome {
            Ok(Ok(Outcome::Held)) => last_renewal_started = Some(started),
            Ok(Ok(Outcome::Following(until_expiry))) => {
                wait = until_expiry;
                last_renewal_started = None;
            }
            Ok(Err(err)) => tracing::warn!(%err, lease = %settings.name, "lease round failed"),
            Err(_) => tracing::warn!(
                lease = %settings.name,
                took = ?started.elapsed(),
                "lease round timed out"
            ),
        }
        let now = Instant::now();
        let held = leading(last_renewal_started, now, settings.duration);
        publish(held);
        match last_renewal_started {
            // Wake when leadership would end, to drop it then if no renewal succeeded.
            Some(t) if held => {
                wait = wait
                    .min((t + renew_deadline(settings.duration)).saturating_duration_since(now));
            }
            _ => last_renewal_started = None,
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {},
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    if *leader.borrow() {
        let _ = leader.send(false);
        let released =
            tokio::time::timeout(renew_deadline(settings.duration), release(&api, &settings));
        match released.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(%err, "releasing the lease failed"),
            Err(_) => tracing::warn!("releasing the lease timed out"),
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
async fn round(
    api: &Api<Lease>,
    s: &LeaseSettings,
    observed: &mut Option<Observed>,
) -> Result<Outcome, kube::Error> {
    let every = retry_period(s.duration);
    let current = api.get_opt(&s.name).await?;
    let now = Instant::now();
    let seen = observe(observed.as_ref(), current.as_ref(), now);
    *observed = Some(seen.clone());
    let spec = current.as_ref().and_then(|l| l.spec.as_ref());
    let decision = decide(spec, &s.identity, &seen, now, s.duration);
    let micro = MicroTime(Timestamp::now());
    match (decision, current) {
        (Round::Follow, current) => Ok(Outcome::Following(
            current
                .as_ref()
                .and_then(|l| l.spec.as_ref())
                .map_or(every, |spec| {
                    follow_wait(spec, &seen, now, s.duration, every)
                }),
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

    const D: Duration = Duration::from_secs(15);

    /// A fake clock: instants as offsets from one base.
    struct Clock(Instant);
    impl Clock {
        fn at(&self, secs: f64) -> Instant {
            self.0 + Duration::from_secs_f64(secs)
        }
    }
    fn clock() -> Clock {
        Clock(Instant::now())
    }

    fn lease(holder: Option<&str>, version: &str, renewed: Timestamp) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some("l".into()),
                resource_version: Some(version.into()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: holder.map(String::from),
                renew_time: Some(MicroTime(renewed)),
                lease_duration_seconds: Some(15),
                ..LeaseSpec::default()
            }),
        }
    }
    fn wall(secs: i64) -> Timestamp {
        Timestamp::from_second(1_000_000 + secs).unwrap()
    }

    #[test]
    fn no_lease_or_no_holder_is_acquired() {
        let c = clock();
        let seen = observe(None, None, c.at(0.0));
        assert_eq!(decide(None, "a", &seen, c.at(0.0), D), Round::Acquire);
        let free = lease(None, "1", wall(0));
        let seen = observe(None, Some(&free), c.at(0.0));
        assert_eq!(
            decide(free.spec.as_ref(), "b", &seen, c.at(0.0), D),
            Round::Acquire
        );
    }

    #[test]
    fn our_lease_is_renewed() {
        let c = clock();
        let ours = lease(Some("a"), "1", wall(-100));
        let seen = observe(None, Some(&ours), c.at(0.0));
        assert_eq!(
            decide(ours.spec.as_ref(), "a", &seen, c.at(0.0), D),
            Round::Renew
        );
    }

    #[test]
    fn another_holder_is_judged_by_when_we_saw_its_lease_change() {
        let c = clock();
        // Its renewTime says an hour ago (its clock is behind ours): still followed for a whole
        // lease after we first saw it.
        let theirs = lease(Some("a"), "1", wall(-3600));
        let seen = observe(None, Some(&theirs), c.at(0.0));
        let spec = theirs.spec.as_ref();
        assert_eq!(decide(spec, "b", &seen, c.at(0.0), D), Round::Follow);
        assert_eq!(decide(spec, "b", &seen, c.at(14.9), D), Round::Follow);
        // Unchanged for the whole lease: taken.
        let same = observe(Some(&seen), Some(&theirs), c.at(15.0));
        assert_eq!(same.since, c.at(0.0));
        assert_eq!(decide(spec, "b", &same, c.at(15.0), D), Round::Acquire);
    }

    #[test]
    fn a_renewal_we_see_restarts_the_wait_whatever_its_renew_time_says() {
        let c = clock();
        let first = lease(Some("a"), "1", wall(0));
        let seen = observe(None, Some(&first), c.at(0.0));
        // Renewed at 10 s with a renewTime far in the future (its clock is ahead): counts from
        // when we saw it, no longer.
        let renewed = lease(Some("a"), "2", wall(7200));
        let seen = observe(Some(&seen), Some(&renewed), c.at(10.0));
        assert_eq!(seen.since, c.at(10.0));
        let spec = renewed.spec.as_ref();
        assert_eq!(decide(spec, "b", &seen, c.at(24.9), D), Round::Follow);
        assert_eq!(decide(spec, "b", &seen, c.at(25.0), D), Round::Acquire);
    }

    #[test]
    fn a_follower_wakes_when_the_lease_would_expire() {
        let c = clock();
        let every = Duration::from_secs(5);
        let theirs = lease(Some("a"), "1", wall(0));
        let spec = theirs.spec.as_ref().unwrap();
        let seen = observe(None, Some(&theirs), c.at(0.0));
        // Seen 13 s ago, lasting 15 s: expires in 2 s.
        assert_eq!(
            follow_wait(spec, &seen, c.at(13.0), D, every),
            Duration::from_millis(2050)
        );
        // Freshly seen: capped at the round interval.
        assert_eq!(follow_wait(spec, &seen, c.at(0.0), D, every), every);
        // Already expired: soon.
        assert_eq!(
            follow_wait(spec, &seen, c.at(20.0), D, every),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn a_leader_stops_leading_at_the_renew_deadline() {
        let c = clock();
        let renewed = Some(c.at(0.0));
        assert_eq!(renew_deadline(D), Duration::from_secs(10));
        assert!(leading(renewed, c.at(9.99), D));
        assert!(!leading(renewed, c.at(10.0), D));
        assert!(!leading(None, c.at(0.0), D));
    }

    #[test]
    fn a_round_ends_no_later_than_leadership() {
        let c = clock();
        // Leading, renewed at 0: a round started at 8 s is cut at 10 s, when leadership ends.
        assert_eq!(round_deadline(Some(c.at(0.0)), c.at(8.0), D), c.at(10.0));
        // Just renewed: the round's own bound.
        assert_eq!(round_deadline(Some(c.at(8.0)), c.at(8.0), D), c.at(18.0));
        // Not leading: the round's own bound.
        assert_eq!(round_deadline(None, c.at(8.0), D), c.at(18.0));
    }

    /// The safety argument as a check: a follower that takes over on `decide`'s say-so does so
    /// only after the old leader's `leading` turned false, whenever the follower saw the change.
    #[test]
    fn a_takeover_never_overlaps_the_old_leadership() {
        let c = clock();
        let lease_read = lease(Some("a"), "7", wall(0));
        let spec = lease_read.spec.as_ref();
        // The leader's renewal starts at 0; the follower sees its result at some later moment.
        for seen_at in [0.0, 0.01, 1.0, 5.0] {
            let seen = observe(None, Some(&lease_read), c.at(seen_at));
            let mut t = seen_at;
            while decide(spec, "b", &seen, c.at(t), D) == Round::Follow {
                t += 0.01;
            }
            assert!(
                !leading(Some(c.at(0.0)), c.at(t), D),
                "follower took over at {t} s while the leader still led"
            );
            let margin = t - renew_deadline(D).as_secs_f64();
            assert!(margin >= 4.99, "margin {margin} s");
        }
    }

    #[test]
    fn renewal_cadence_leaves_several_tries_before_the_deadline() {
        assert_eq!(retry_period(D), Duration::from_millis(1875));
        assert!(retry_period(D) * 5 < renew_deadline(D));
        assert_eq!(
            retry_period(Duration::from_millis(400)),
            Duration::from_millis(100)
        );
    }
}

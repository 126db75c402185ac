//! Presenting a pending order's challenges. Each authorization takes one step per reconcile
//! ([`step_authorization`]): present the challenge (apply the HTTP-01 route, write the DNS-01
//! record, written ahead in status), check it as the CA will, tell the CA. The step's outcome is a
//! typed [`AuthzStep`]; what to do with a challenge is the pure [`challenge_action`].

use std::borrow::Cow;

use instant_acme::{AuthorizationHandle, ChallengeStatus};

// The order module's imports and shared items (states, helpers).
use super::authz_check;
use super::*;

/// What to do with a challenge, from the CA's state of it and ours.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ChallengeAction {
    /// Make it answerable (apply the route, write the record).
    Present,
    /// Our side is ready (recorded `presented` for this very token): check it as the CA will,
    /// then tell the CA.
    CheckThenTell,
    /// The CA found it invalid: record its error.
    Invalid,
    /// Nothing for us to do (the CA is processing it, or it is valid): record this state.
    Record(ChallengeState),
}

/// The next thing to do with a challenge the CA reports in `ca`, recorded by us as
/// `recorded_state`; `same_token` when the recorded token is the CA's. Pure.
pub(super) fn challenge_action(
    ca: ChallengeStatus,
    recorded_state: Option<ChallengeState>,
    same_token: bool,
) -> ChallengeAction {
    match (ca, recorded_state) {
        (ChallengeStatus::Pending, Some(ChallengeState::Presented)) if same_token => {
            ChallengeAction::CheckThenTell
        }
        (ChallengeStatus::Pending, _) => ChallengeAction::Present,
        (ChallengeStatus::Invalid, _) => ChallengeAction::Invalid,
        (other, _) => ChallengeAction::Record(challenge_state(other)),
    }
}

/// What one authorization's step came to.
#[derive(Debug)]
pub(super) enum AuthzStep {
    /// Recorded as it now stands; look again within `wake` at the latest (`None`: the fallback).
    Recorded {
        entry: OrderAuthorization,
        wake: Option<Duration>,
    },
    /// The CA was told; it validates now.
    Told(OrderAuthorization),
    /// Repeat the whole step soon (the CA refused a nonce).
    Transient(String),
    /// The attempt failed; `entry` is recorded with the failure when it carries news.
    Failed {
        entry: Option<OrderAuthorization>,
        message: String,
    },
}

impl AuthzStep {
    fn recorded(entry: OrderAuthorization) -> Self {
        AuthzStep::Recorded { entry, wake: None }
    }

    fn waking(entry: OrderAuthorization, wake: Duration) -> Self {
        AuthzStep::Recorded {
            entry,
            wake: Some(wake),
        }
    }

    fn failed(message: String) -> Self {
        AuthzStep::Failed {
            entry: None,
            message,
        }
    }
}

/// One round over a pending order's authorizations: what they share, and what the round has
/// recorded so far.
struct Round<'c> {
    ctx: &'c Ctx,
    api: &'c Api<Certificate>,
    cert: &'c Certificate,
    issuer: &'c ResolvedIssuer,
    thumbprint: String,
    status: CertificateStatus,
    recorded: OrderStatus,
    /// The authorizations as recorded before this round.
    previous: Vec<OrderAuthorization>,
    /// Those this round has processed.
    current: Vec<OrderAuthorization>,
    /// The Certificate as last written here: a write-ahead status write moves its resourceVersion.
    latest: Cow<'c, Certificate>,
    /// An order not yet in status: the round's first write records it.
    new_order: Option<NewOrder>,
    /// HTTP-01 routes to apply once the round's status write has recorded their tokens.
    deferred: Vec<Deferred>,
    /// Whether the new order's `OrderCreated` Event has been published.
    announced: bool,
}

/// An HTTP-01 route whose token is recorded in this round's status write; applied after it.
struct Deferred {
    host: String,
    token: String,
    solver: crate::api::issuer::Http01Solver,
}

impl Round<'_> {
    /// Writes status with `order` (guarded by the resourceVersion last seen); the first write of a
    /// new order is its record: the `OrderCreated` Event precedes it, the in-memory memos follow.
    async fn write(&mut self, order: OrderStatus) -> Result<(), Error> {
        self.announce().await;
        self.status.order = Some(order);
        self.latest =
            Cow::Owned(apply_status(self.ctx, self.api, &self.latest, &self.status).await?);
        self.note_recorded();
        Ok(())
    }

    /// Says `OrderCreated` once, before the order's first status write. The order exists at the
    /// CA from its creation; Event first means a process killed just after the write (whose
    /// successor resumes the recorded order and never announces it) still leaves the Event, and
    /// an order whose record never lands (a conflict, a crash) is still told of.
    async fn announce(&mut self) {
        let Some(created) = self.new_order.as_ref().filter(|_| !self.announced) else {
            return;
        };
        self.announced = true;
        self.ctx
            .event(
                self.cert,
                false,
                "OrderCreated",
                &crate::controller::attempt_action(&self.status),
                created.event.clone(),
            )
            .await;
    }

    /// After the new order is in status (or, for a failure, about to be): its next private key
    /// kept, which spares finalizing a Secret read.
    fn note_recorded(&mut self) {
        if let Some(created) = self.new_order.take() {
            self.ctx.orders.keep_key(&self.recorded.url, created.key);
        }
    }

    /// Applies the routes whose tokens the round's write recorded, starting their self-check
    /// clocks. One that cannot be applied now is left to the next round, which presents any
    /// recorded route this process has not applied (see [`step_http01`]).
    async fn apply_deferred(&mut self) -> Result<Option<Duration>, Error> {
        let mut retry = None;
        let (ns, name) = (
            self.cert.namespace().unwrap_or_default(),
            self.cert.name_any(),
        );
        let owner = owner_reference(self.cert)
            .ok_or_else(|| Error::Invalid("Certificate has no uid".into()))?;
        for d in std::mem::take(&mut self.deferred) {
            let route = Route {
                namespace: &ns,
                certificate: &name,
                owner: owner.clone(),
                host: &d.host,
                token: &d.token,
            };
            match http01::present(self.ctx, &route, &d.solver).await {
                Ok(()) => crate::crash::point("challenge-presented", &ns, &d.host),
                Err(PresentError::Kube(e)) => return Err(e),
                Err(e) => {
                    tracing::debug!(cert = %describe(self.cert), error = %e, "presenting after the write failed; the next round says why");
                    retry = Some(Duration::from_millis(200));
                }
            }
        }
        Ok(retry)
    }
}

/// Pending order: make each pending challenge answerable, then (next reconcile, once the status
/// that the challenge servers read carries the token) check it and tell the CA.
#[allow(clippy::too_many_arguments)]
pub async fn present_challenges(
    ctx: &Ctx,
    api: &Api<Certificate>,
    cert: &Certificate,
    status: CertificateStatus,
    recorded: OrderStatus,
    issuer: &ResolvedIssuer,
    account: &Account,
    order: &mut instant_acme::Order,
    new_order: Option<NewOrder>,
) -> Result<Action, Error> {
    let mut round = Round {
        ctx,
        api,
        cert,
        issuer,
        thumbprint: account.key_thumbprint().to_string(),
        status,
        previous: recorded.authorizations.clone(),
        recorded,
        current: Vec::new(),
        latest: Cow::Borrowed(cert),
        new_order,
        deferred: Vec::new(),
        announced: false,
    };
    // The CA's authorizations must be for exactly the names asked, before any is presented.
    match check_authorizations(&mut round, order).await? {
        Ok(()) => {}
        Err(Checked::Failed(message)) => {
            let failure = Some((message, FailureKind::CaMisbehaved));
            return finish_round(round, false, None, failure, None).await;
        }
        Err(Checked::Stop(action)) => return Ok(action),
    }
    let mut told_ca = false;
    // Sooner than the usual 2 s fallback, when a wait ends before that.
    let mut wake_in: Option<Duration> = None;
    let mut failure: Option<(String, FailureKind)> = None;
    let mut transient: Option<String> = None;
    let mut authzs = order.authorizations();
    while let Some(next) = authzs.next().await {
        let authz = match next {
            Ok(a) => a,
            Err(e) => return fetch_failed(&mut round, e).await,
        };
        match step_authorization(&mut round, authz).await? {
            AuthzStep::Recorded { entry, wake } => {
                round.current.push(entry);
                if let Some(w) = wake {
                    wake_in = Some(wake_in.map_or(w, |x| x.min(w)));
                }
            }
            AuthzStep::Told(entry) => {
                told_ca = true;
                round.current.push(entry);
            }
            AuthzStep::Transient(why) => {
                transient = Some(why);
                break;
            }
            AuthzStep::Failed { entry, message } => {
                round.current.extend(entry);
                failure = Some((message, FailureKind::NotTheCa));
                break;
            }
        }
    }
    finish_round(round, told_ca, wake_in, failure, transient).await
}

/// Why [`check_authorizations`] stops the round.
enum Checked {
    /// The order is not for the names asked: the attempt fails with this message.
    Failed(String),
    /// An authorization could not be fetched: come back as this says.
    Stop(Action),
}

/// Checks the order's authorizations against the Certificate's names: first their count (no
/// request for a CA listing thousands), then, having fetched them all (the round reuses what is
/// fetched), their names. See [`authz_check`].
async fn check_authorizations(
    round: &mut Round<'_>,
    order: &mut instant_acme::Order,
) -> Result<Result<(), Checked>, Error> {
    let requested = pki::identifiers(&round.cert.spec).map_err(|source| Error::Pki {
        context: format!("the names of Certificate {}", describe(round.cert)),
        source,
    })?;
    let count = order.state().authorizations.len();
    if let Err(message) = authz_check::count_matches(requested.len(), count) {
        return Ok(Err(Checked::Failed(message)));
    }
    let mut found = Vec::with_capacity(count);
    let mut fetched = order.identifiers();
    while let Some(next) = fetched.next().await {
        match next {
            Ok(id) => match authz_check::authorized_name(id.identifier, id.wildcard) {
                Ok(name) => found.push(name),
                Err(message) => return Ok(Err(Checked::Failed(message))),
            },
            Err(e) => return Ok(Err(Checked::Stop(fetch_failed(round, e).await?))),
        }
    }
    Ok(authz_check::names_match(&requested, &found).map_err(Checked::Failed))
}

/// Fetching an authorization failed: record a new order first, then retry soon after a refused
/// nonce, or when the CA's trouble backoff says.
async fn fetch_failed(round: &mut Round<'_>, e: instant_acme::Error) -> Result<Action, Error> {
    let e = AcmeError::from(e);
    let (ctx, cert) = (round.ctx, round.cert);
    if round.new_order.is_some() {
        // Not yet recorded: record the order before anything else.
        let mut recorded = round.recorded.clone();
        recorded.authorizations = round.current.clone();
        round.write(recorded).await?;
    }
    if e.is_bad_nonce() {
        tracing::debug!(cert = %describe(cert), error = %e, "fetching an authorization: nonce refused; retrying");
        return Ok(Action::requeue(crate::retry::jittered(TRANSIENT_RETRY)));
    }
    let wait = ctx.ca_trouble.failed(&round.recorded.url);
    tracing::warn!(cert = %describe(cert), error = %e, ?wait, "fetching an authorization failed");
    Ok(Action::requeue(wait))
}

/// Records what the round did and decides when to come back: at once after a refused nonce, the
/// failure path after a failure, soon after telling the CA, else when the first wait ends.
async fn finish_round(
    round: Round<'_>,
    told_ca: bool,
    wake_in: Option<Duration>,
    failure: Option<(String, FailureKind)>,
    transient: Option<String>,
) -> Result<Action, Error> {
    let mut round = round;
    let (ctx, api, cert, issuer) = (round.ctx, round.api, round.cert, round.issuer);
    let mut recorded = round.recorded.clone();
    let mut current = std::mem::take(&mut round.current);
    if failure.is_some() || transient.is_some() {
        // Keep what this round wrote (DNS records) so the failure path removes it too.
        for p in &round.previous {
            if !current.iter().any(|a| a.url == p.url) {
                current.push(p.clone());
            }
        }
    }
    recorded.authorizations = current;
    // The first round of a new order always writes: that write is the order's record.
    let write = round.new_order.is_some()
        || record::worth_recording(round.status.order.as_ref(), &recorded);
    if let Some(why) = transient {
        // Record what this round did (presented records included), then repeat the step.
        tracing::debug!(cert = %describe(cert), "telling the CA failed transiently ({why}); retrying");
        if write {
            round.write(recorded).await?;
        }
        round.apply_deferred().await?;
        return Ok(Action::requeue(crate::retry::jittered(TRANSIENT_RETRY)));
    }
    if let Some((message, kind)) = failure {
        round.announce().await;
        round.note_recorded();
        let mut status = round.status.clone();
        status.order = Some(recorded);
        return record_failure(ctx, api, issuer, &round.latest, status, &message, kind).await;
    }
    if told_ca {
        ctx.polling_lock()
            .insert(recorded.url.clone(), Instant::now());
    }
    ctx.orders.set_authorizations_current(
        &recorded.url,
        record::work_left_for_us(&recorded.authorizations, |t| ctx.orders.was_told(t)),
    );
    let all_processing = recorded.authorizations.iter().all(|a| {
        matches!(
            a.state,
            Some(ChallengeState::Processing | ChallengeState::Valid)
        )
    });
    if write {
        round.write(recorded.clone()).await?;
    }
    if let Some(retry) = round.apply_deferred().await? {
        return Ok(Action::requeue(retry));
    }
    if all_processing {
        // Waiting for the CA's validation: poll soon after telling it, then less often.
        let since = ctx
            .polling_lock()
            .get(&recorded.url)
            .copied()
            .unwrap_or_else(Instant::now);
        Ok(Action::requeue(poll_delay(since.elapsed())))
    } else {
        // The status write just made wakes us up; this is only a fallback.
        let fallback = Duration::from_secs(2);
        Ok(Action::requeue(wake_in.map_or(fallback, |w| {
            w.clamp(Duration::from_millis(100), fallback)
        })))
    }
}

/// One authorization's step: valid ones are recorded, pending ones go to their solver, any other
/// state fails the attempt with the CA's words.
async fn step_authorization(
    round: &mut Round<'_>,
    authz: AuthorizationHandle<'_>,
) -> Result<AuthzStep, Error> {
    let (cert, issuer) = (round.cert, round.issuer);
    let url = authz.url().to_string();
    let identifier = authz.identifier().to_string();
    let was = round
        .previous
        .iter()
        .find(|a| a.url.as_deref() == Some(url.as_str()))
        .cloned();
    let mut entry = was.clone().unwrap_or(OrderAuthorization {
        identifier: identifier.clone(),
        wildcard: authz.wildcard.then_some(true),
        url: Some(url),
        ..OrderAuthorization::default()
    });
    match authz.status {
        AuthorizationStatus::Valid => {
            entry.state = Some(ChallengeState::Valid);
            Ok(AuthzStep::recorded(entry))
        }
        AuthorizationStatus::Pending => {
            let bare = identifier.trim_start_matches("*.").to_string();
            let target = Target {
                name: &bare,
                wildcard: authz.wildcard,
                is_ip: matches!(
                    authz.identifier().identifier,
                    instant_acme::Identifier::Ip(_)
                ),
            };
            let Some(solver) = select(&issuer.acme.solvers, target, cert.labels()) else {
                return Ok(AuthzStep::failed(format!(
                    "no solver of {} {} can take {identifier}",
                    issuer.ident.kind, issuer.ident.name
                )));
            };
            if let Some(dns01) = &solver.dns01 {
                return step_dns01(round, authz, entry, was.as_ref(), &bare, dns01).await;
            }
            let Some(http01) = solver.http01.as_ref() else {
                return Ok(AuthzStep::failed(format!(
                    "the solver chosen for {identifier} has neither http01 nor dns01"
                )));
            };
            let http01 = crate::shim::solver_for(http01, cert);
            step_http01(round, authz, entry, was.as_ref(), &bare, &http01).await
        }
        other => {
            entry.state = Some(authz_state(other));
            let why = authz
                .challenges
                .iter()
                .find_map(|c| c.error.as_ref().map(problem_text));
            let message = format!(
                "the authorization for {identifier} is {}{}",
                authz_state(other).as_str(),
                why.map(|w| format!(": {w}")).unwrap_or_default()
            );
            Ok(AuthzStep::Failed {
                entry: Some(entry),
                message,
            })
        }
    }
}

/// The challenge recorded as the CA found it: invalid with its error, or in the CA's state.
fn recorded_as_found(
    mut entry: OrderAuthorization,
    action: ChallengeAction,
    challenges: &[instant_acme::Challenge],
) -> AuthzStep {
    match action {
        ChallengeAction::Invalid => {
            entry.state = Some(ChallengeState::Invalid);
            entry.error = Some(challenge_error(challenges));
        }
        ChallengeAction::Record(state) => entry.state = Some(state),
        ChallengeAction::Present | ChallengeAction::CheckThenTell => {}
    }
    AuthzStep::recorded(entry)
}

/// Tells the CA; the step that follows.
async fn tell(
    ctx: &Ctx,
    cert: &Certificate,
    authz: AuthorizationHandle<'_>,
    mut entry: OrderAuthorization,
    kind: ChallengeType,
) -> AuthzStep {
    let mut authz = authz;
    let namespace = cert.namespace().unwrap_or_default();
    let identifier = entry.identifier.clone();
    match tell_ca(&mut authz, kind, &identifier, &namespace).await {
        Ok(()) => {
            if let Some(token) = entry.token.as_deref() {
                ctx.orders.told(token);
            }
            entry.error = None;
            entry.state = Some(ChallengeState::Processing);
            AuthzStep::Told(entry)
        }
        Err(TellFailure::Transient(why)) => AuthzStep::Transient(why),
        Err(TellFailure::Failed(message)) => AuthzStep::failed(message),
    }
}

/// How long is left of a [`dns01::CHECK_INTERVAL`] that began `since` ago; `None` once it is over.
fn left_of_check_interval(since: Option<Duration>) -> Option<Duration> {
    since
        .filter(|s| *s < dns01::CHECK_INTERVAL)
        .map(|s| dns01::CHECK_INTERVAL - s)
}

/// How long is left until `until`, seen at `now`; `None` once it has passed. Pure.
fn left_until(until: Option<Instant>, now: Instant) -> Option<Duration> {
    until
        .and_then(|u| u.checked_duration_since(now))
        .filter(|left| !left.is_zero())
}

/// DNS-01: write the TXT record (written ahead in status), or check it is visible and tell the CA.
async fn step_dns01(
    round: &mut Round<'_>,
    authz: AuthorizationHandle<'_>,
    mut entry: OrderAuthorization,
    was: Option<&OrderAuthorization>,
    bare: &str,
    solver: &crate::api::issuer::Dns01Solver,
) -> Result<AuthzStep, Error> {
    let challenge = match offered(&authz.challenges, &ChallengeType::Dns01) {
        Ok(c) => c,
        Err(kind) => {
            return Ok(AuthzStep::failed(format!(
                "the CA offered no {kind} challenge for {}",
                entry.identifier
            )));
        }
    };
    let token = challenge.token.clone();
    let value = dns01_txt_value(&format!("{token}.{}", round.thumbprint));
    entry.challenge_type = Some(ChallengeKind::Dns01);
    entry.challenge_url = Some(challenge.url.clone());
    let same_token = was.and_then(|w| w.token.as_deref()) == Some(token.as_str());
    let action = challenge_action(challenge.status, was.and_then(|w| w.state), same_token);
    entry.token = Some(token);
    match action {
        ChallengeAction::CheckThenTell => {
            check_dns01_record(round, authz, entry, solver, &value).await
        }
        ChallengeAction::Present => {
            present_dns01_record(round, entry, was, bare, solver, &value).await
        }
        other => Ok(recorded_as_found(entry, other, &authz.challenges)),
    }
}

/// DNS-01, record written: once it is visible at every nameserver (and a resolver's cached "no
/// such record" from a failed attempt has expired), tell the CA.
async fn check_dns01_record(
    round: &mut Round<'_>,
    authz: AuthorizationHandle<'_>,
    mut entry: OrderAuthorization,
    solver: &crate::api::issuer::Dns01Solver,
    value: &str,
) -> Result<AuthzStep, Error> {
    let ctx = round.ctx;
    let name = entry.record_name.clone().unwrap_or_default();
    // Every status write wakes us at once: pace the checks of a record.
    let key = dns01::change_key(&name, value);
    let since = ctx.dns01_checked_lock().get(&key).map(|t| t.elapsed());
    if let Some(left) = left_of_check_interval(since) {
        return Ok(AuthzStep::waking(entry, left));
    }
    ctx.dns01_checked_lock().insert(key.clone(), Instant::now());
    let report = match provider_change_pending(ctx, round.issuer, solver, &name, value).await {
        Some(waiting) => Err(waiting),
        None => match dns01::checker(ctx, solver) {
            Ok(checker) => checker.check(&name, value).await.map_err(|e| e.to_string()),
            Err(e) => Err(e),
        },
    };
    let status = &round.status;
    let negative_cache = report.as_ref().ok().and_then(|r| {
        let deadline = dns01::negative_cache_deadline(
            status.last_failure_time.as_ref().map(|t| t.0),
            status.failed_issuance_attempts.unwrap_or(0),
            r.zone.negative_ttl,
            Timestamp::now(),
        )?;
        Some((deadline, r.zone.zone.clone(), r.zone.negative_ttl))
    });
    match (report, negative_cache) {
        (Ok(r), Some((deadline, zone, ttl))) if r.all_visible() => {
            // A stable message (no countdown), so waiting writes no status.
            entry.error = Some(format!(
                "the TXT record is visible at every nameserver; telling the CA at {deadline}: \
                 the previous attempt failed, and a resolver may still cache its \"no such \
                 record\" answer for zone {zone}'s negative-caching TTL ({ttl}s)"
            ));
            // Visible already: check again right at the deadline.
            ctx.dns01_checked_lock().remove(&key);
            let left = Timestamp::now().duration_until(deadline);
            Ok(AuthzStep::waking(
                entry,
                Duration::try_from(left).unwrap_or_default(),
            ))
        }
        (Ok(r), _) if r.all_visible() => {
            Ok(tell(round.ctx, round.cert, authz, entry, ChallengeType::Dns01).await)
        }
        (other, _) => {
            let checks = entry.propagation_checks.unwrap_or(0) + 1;
            entry.propagation_checks = Some(checks);
            let why = match other {
                Ok(r) => r.summary(),
                Err(e) => e,
            };
            if checks >= dns01::MAX_PROPAGATION_CHECKS {
                return Ok(AuthzStep::failed(format!(
                    "the TXT record for {} at {name} did not become visible after {checks} checks: {why}",
                    entry.identifier
                )));
            }
            entry.error = Some(format!(
                "waiting for DNS propagation (check {checks}): {why}"
            ));
            Ok(AuthzStep::recorded(entry))
        }
    }
}

/// How long this process remembers a TXT record it wrote (see `present_dns01_record`).
const WRITTEN_MEMORY: Duration = Duration::from_secs(3600);

/// DNS-01, nothing written yet (or a write to repeat): find the record's name (following a CNAME
/// when asked), record it in status, then write it.
async fn present_dns01_record(
    round: &mut Round<'_>,
    mut entry: OrderAuthorization,
    was: Option<&OrderAuthorization>,
    bare: &str,
    solver: &crate::api::issuer::Dns01Solver,
    value: &str,
) -> Result<AuthzStep, Error> {
    let (ctx, cert, issuer) = (round.ctx, round.cert, round.issuer);
    let identifier = entry.identifier.clone();
    // After a transient failure to write, try again no sooner than the backoff said (the memo
    // holds the time of the next try, so a reconcile on a status older than that failure's
    // record waits as well).
    let present_key = format!("present {}", entry.token.as_deref().unwrap_or_default());
    let next_try = ctx.dns01_checked_lock().get(&present_key).copied();
    if let Some(left) = left_until(next_try, Instant::now()) {
        return Ok(AuthzStep::waking(entry, left));
    }
    let provider = match dns01::provider(ctx, issuer, solver).await {
        Ok(p) => p,
        Err(e) => {
            return Ok(AuthzStep::failed(format!(
                "the DNS-01 solver for {identifier}: {e}"
            )));
        }
    };
    let mut name = crate::solver::dns01::challenge_name(bare);
    if solver.cname_strategy == Some(crate::api::issuer::CnameStrategy::Follow) {
        let checker = match dns01::checker(ctx, solver) {
            Ok(checker) => checker,
            Err(e) => return Ok(AuthzStep::failed(e)),
        };
        match checker.resolve_challenge_name(&name).await {
            Ok(target) => name = target,
            Err(e) => {
                return Ok(AuthzStep::failed(format!(
                    "following the CNAME at {name}: {e}"
                )));
            }
        }
    }
    // acme-dns writes at the account's own name, which the challenge name is a CNAME to.
    if let Some(target) = provider.record_name(&name) {
        name = target;
    }
    // Write-ahead: the record is in status before the provider is called, so clean-up (which
    // reads status only) finds it even if the controller dies right after writing it.
    entry.record_name = Some(name.clone());
    entry.record_value = Some(value.to_string());
    let named = |a: &OrderAuthorization| {
        a.record_name.as_deref() == Some(name.as_str()) && a.record_value.as_deref() == Some(value)
    };
    if !was.is_some_and(named) {
        let mut ahead = round.recorded.clone();
        ahead.authorizations = written_ahead(&round.current, &entry, &round.previous);
        round.write(ahead).await?;
    }
    // Written by this process already: a reconcile on a status older than our last write (the
    // watch has not brought it yet) must not call the provider again.
    let written_key = format!("written {name} {value}");
    let written = ctx
        .dns01_checked_lock()
        .get(&written_key)
        .is_some_and(|t| t.elapsed() < WRITTEN_MEMORY);
    let presented = if written {
        Ok(None)
    } else {
        provider.present_change(&name, value).await
    };
    match presented {
        Ok(Some(change)) => {
            ctx.dns01_changes_lock()
                .insert(dns01::change_key(&name, value), change);
        }
        Ok(None) => {}
        // Throttling, a 5xx, the network: try again within the attempt, backing off.
        Err(e)
            if e.is_transient()
                && entry.propagation_checks.unwrap_or(0) + 1 < dns01::MAX_WRITE_TRIES =>
        {
            let tries = entry.propagation_checks.unwrap_or(0) + 1;
            entry.propagation_checks = Some(tries);
            let wait = dns01::write_retry_delay(&present_key, u32::try_from(tries).unwrap_or(0));
            entry.error = Some(format!(
                "writing the TXT record at {name} failed, trying again in {:.0}s (try {tries} of \
                 {}): {e}",
                wait.as_secs_f64(),
                dns01::MAX_WRITE_TRIES
            ));
            ctx.dns01_checked_lock()
                .insert(present_key, Instant::now() + wait);
            return Ok(AuthzStep::waking(entry, wait));
        }
        Err(e) => {
            return Ok(AuthzStep::Failed {
                entry: Some(entry),
                message: format!("writing the TXT record for {identifier} at {name}: {e}"),
            });
        }
    }
    crate::crash::point(
        "record-presented",
        &cert.namespace().unwrap_or_default(),
        &name,
    );
    {
        let mut memo = ctx.dns01_checked_lock();
        memo.remove(&present_key);
        memo.retain(|k, t| !k.starts_with("written ") || t.elapsed() < WRITTEN_MEMORY);
        memo.insert(written_key, Instant::now());
    }
    entry.error = None;
    entry.propagation_checks = Some(0);
    entry.state = Some(ChallengeState::Presented);
    Ok(AuthzStep::recorded(entry))
}

/// HTTP-01: apply the route, or check it answers as the CA will and tell the CA.
async fn step_http01(
    round: &mut Round<'_>,
    authz: AuthorizationHandle<'_>,
    mut entry: OrderAuthorization,
    was: Option<&OrderAuthorization>,
    bare: &str,
    solver: &crate::api::issuer::Http01Solver,
) -> Result<AuthzStep, Error> {
    let (ctx, cert) = (round.ctx, round.cert);
    let identifier = entry.identifier.clone();
    let challenge = match offered(&authz.challenges, &ChallengeType::Http01) {
        Ok(c) => c,
        Err(kind) => {
            return Ok(AuthzStep::failed(format!(
                "the CA offered no {kind} challenge for {identifier}"
            )));
        }
    };
    let token = challenge.token.clone();
    let key_authorization = format!("{token}.{}", round.thumbprint);
    entry.challenge_type = Some(ChallengeKind::Http01);
    entry.challenge_url = Some(challenge.url.clone());
    entry.key_authorization = Some(key_authorization.clone());
    let action = challenge_action(
        challenge.status,
        was.and_then(|w| w.state),
        was.and_then(|w| w.token.as_deref()) == Some(token.as_str()),
    );
    entry.token = Some(token.clone());
    let (cert_ns, cert_name) = (cert.namespace().unwrap_or_default(), cert.name_any());
    let route = Route {
        namespace: &cert_ns,
        certificate: &cert_name,
        owner: owner_reference(cert)
            .ok_or_else(|| Error::Invalid("Certificate has no uid".into()))?,
        host: bare,
        token: &token,
    };
    match action {
        ChallengeAction::CheckThenTell if ctx.orders.was_told(&token) => {
            // Told already; the CA has not started yet. Wait for it.
            Ok(AuthzStep::waking(entry, Duration::from_millis(500)))
        }
        ChallengeAction::CheckThenTell => {
            // `presented` is recorded before the route is applied: apply it if this process has
            // not (a restart, or an apply that failed after the write), then check it works, then
            // tell the CA.
            if ctx.http01_clocks.age(&token).is_none() {
                match http01::present(ctx, &route, solver).await {
                    Ok(()) => crate::crash::point("challenge-presented", &cert_ns, &identifier),
                    Err(PresentError::NoBackends(why)) => {
                        entry.error = Some(PresentError::NoBackends(why).to_string());
                        return Ok(AuthzStep::waking(entry, Duration::from_secs(2)));
                    }
                    Err(
                        e @ (PresentError::GatewayApiMissing { .. }
                        | PresentError::EditedIngressMissing { .. }),
                    ) => return Ok(AuthzStep::failed(e.to_string())),
                    Err(PresentError::Kube(e)) => return Err(e),
                }
            }
            let previous_message = was.and_then(|w| w.error.as_deref());
            match http01::check(ctx, &route, solver, &key_authorization, previous_message).await {
                CheckStep::Tell => Ok(tell(ctx, cert, authz, entry, ChallengeType::Http01).await),
                CheckStep::Wait { message, retry_in } => {
                    if http01::wait_worth_reporting(ctx, &token) {
                        entry.error = Some(message);
                    }
                    Ok(AuthzStep::waking(entry, retry_in))
                }
                CheckStep::GiveUp(message) => {
                    entry.error = Some(message.clone());
                    Ok(AuthzStep::Failed {
                        entry: Some(entry),
                        message,
                    })
                }
            }
        }
        ChallengeAction::Present => {
            // Write-ahead: the token goes into the round's status write (which the challenge
            // servers read), and the route is applied after it (`Round::apply_deferred`).
            entry.error = None;
            entry.state = Some(ChallengeState::Presented);
            round.deferred.push(Deferred {
                host: bare.to_string(),
                token: token.clone(),
                solver: solver.clone(),
            });
            Ok(AuthzStep::recorded(entry))
        }
        other => Ok(recorded_as_found(entry, other, &authz.challenges)),
    }
}

/// The authorizations to record ahead of writing `entry`'s DNS record: those processed this round,
/// `entry`, and the rest as recorded before. Pure.
pub(super) fn written_ahead(
    current: &[OrderAuthorization],
    entry: &OrderAuthorization,
    previous: &[OrderAuthorization],
) -> Vec<OrderAuthorization> {
    let mut all = current.to_vec();
    all.push(entry.clone());
    for p in previous {
        if !all.iter().any(|a| a.url == p.url) {
            all.push(p.clone());
        }
    }
    all
}

/// `Some(why)` while the provider still applies the change that wrote `name` = `value`
/// (Route53: not yet `INSYNC`); `None` when there is none to wait for (any more). Asks once.
pub(super) async fn provider_change_pending(
    ctx: &Ctx,
    issuer: &ResolvedIssuer,
    solver: &crate::api::issuer::Dns01Solver,
    name: &str,
    value: &str,
) -> Option<String> {
    let key = dns01::change_key(name, value);
    let change = ctx.dns01_changes_lock().get(&key).cloned()?;
    let applied = match dns01::provider(ctx, issuer, solver).await {
        Ok(p) => p.change_applied(&change).await.map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    match applied {
        Ok(true) => {
            ctx.dns01_changes_lock().remove(&key);
            None
        }
        Ok(false) => Some(format!(
            "the DNS provider is still applying change {change} (not yet INSYNC)"
        )),
        Err(e) => Some(format!(
            "asking the DNS provider about change {change}: {e}"
        )),
    }
}

/// The challenge of `kind` the CA offered in an authorization; `Err` names the missing type.
pub(super) fn offered<'a>(
    challenges: &'a [instant_acme::Challenge],
    kind: &ChallengeType,
) -> Result<&'a instant_acme::Challenge, &'static str> {
    challenges
        .iter()
        .find(|c| c.r#type == *kind)
        .ok_or(match kind {
            ChallengeType::Dns01 => "dns-01",
            ChallengeType::Http01 => "http-01",
            _ => "such a",
        })
}

/// The CA's error text of an invalid challenge.
pub(super) fn challenge_error(challenges: &[instant_acme::Challenge]) -> String {
    challenges
        .iter()
        .find_map(|c| c.error.as_ref().map(problem_text))
        .unwrap_or_else(|| "the challenge is invalid".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_challenge_is_checked_only_when_we_presented_this_very_token() {
        use ChallengeState::{Presented, Processing as WeToldIt};
        use ChallengeStatus::*;
        assert_eq!(
            challenge_action(Pending, Some(Presented), true),
            ChallengeAction::CheckThenTell
        );
        assert_eq!(
            challenge_action(Pending, Some(Presented), false),
            ChallengeAction::Present,
            "a new token (a new order) is presented again"
        );
        assert_eq!(
            challenge_action(Pending, None, false),
            ChallengeAction::Present
        );
        assert_eq!(
            challenge_action(Pending, Some(WeToldIt), true),
            ChallengeAction::Present,
            "the CA says pending although we told it: present again (idempotent) and tell again"
        );
        assert_eq!(
            challenge_action(Invalid, Some(WeToldIt), true),
            ChallengeAction::Invalid
        );
        assert_eq!(
            challenge_action(Processing, Some(WeToldIt), true),
            ChallengeAction::Record(ChallengeState::Processing)
        );
        assert_eq!(
            challenge_action(Valid, Some(Presented), true),
            ChallengeAction::Record(ChallengeState::Valid)
        );
    }

    #[test]
    fn what_is_left_until_the_next_try() {
        let now = Instant::now();
        assert_eq!(left_until(None, now), None);
        assert_eq!(
            left_until(Some(now + Duration::from_secs(5)), now),
            Some(Duration::from_secs(5))
        );
        assert_eq!(left_until(Some(now), now), None);
        assert_eq!(left_until(Some(now), now + Duration::from_secs(1)), None);
    }

    #[test]
    fn what_is_left_of_a_check_interval() {
        assert_eq!(left_of_check_interval(None), None);
        assert_eq!(
            left_of_check_interval(Some(Duration::ZERO)),
            Some(dns01::CHECK_INTERVAL)
        );
        assert_eq!(
            left_of_check_interval(Some(dns01::CHECK_INTERVAL - Duration::from_millis(500))),
            Some(Duration::from_millis(500))
        );
        assert_eq!(left_of_check_interval(Some(dns01::CHECK_INTERVAL)), None);
    }

    #[test]
    fn an_invalid_challenge_is_recorded_with_the_cas_error_and_others_with_their_state() {
        let entry = OrderAuthorization::default();
        let AuthzStep::Recorded {
            entry: invalid,
            wake,
        } = recorded_as_found(entry.clone(), ChallengeAction::Invalid, &[])
        else {
            panic!("recorded");
        };
        assert_eq!(invalid.state, Some(ChallengeState::Invalid));
        assert_eq!(invalid.error.as_deref(), Some("the challenge is invalid"));
        assert_eq!(wake, None);
        let AuthzStep::Recorded { entry: valid, .. } =
            recorded_as_found(entry, ChallengeAction::Record(ChallengeState::Valid), &[])
        else {
            panic!("recorded");
        };
        assert_eq!(valid.state, Some(ChallengeState::Valid));
    }
}

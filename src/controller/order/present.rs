//! Presenting a pending order's challenges: each authorization's step (present, check, tell the CA), written ahead where a side effect needs it.

// The order module's imports and shared items (states, helpers).
use super::*;

/// Pending order: make each pending challenge answerable, then (next reconcile, once the status
/// that the challenge servers read carries the token) tell the CA.
#[allow(clippy::too_many_arguments)]
pub async fn present_challenges(
    ctx: &Ctx,
    api: &Api<Certificate>,
    cert: &Certificate,
    mut status: CertificateStatus,
    mut recorded: OrderStatus,
    issuer: &ResolvedIssuer,
    account: &Account,
    order: &mut instant_acme::Order,
) -> Result<Action, Error> {
    let previous = recorded.authorizations.clone();
    // The Certificate as last written here: a write-ahead status write moves its resourceVersion.
    let mut latest = std::borrow::Cow::Borrowed(cert);
    let cert_ns = cert.namespace().unwrap_or_default();
    let cert_name = cert.name_any();
    let thumbprint = account.key_thumbprint().to_string();
    let mut current = Vec::new();
    let mut told_ca = false;
    // Sooner than the usual 2 s fallback, when a wait ends before that.
    let mut wake_in: Option<Duration> = None;
    let mut failure: Option<String> = None;
    let mut transient: Option<String> = None;
    let mut authzs = order.authorizations();
    while let Some(next) = authzs.next().await {
        let mut authz = match next {
            Ok(a) => a,
            Err(e) => {
                let e = AcmeError::from(e);
                if e.is_bad_nonce() {
                    tracing::debug!(cert = %describe(cert), error = %e, "fetching an authorization: nonce refused; retrying");
                    return Ok(Action::requeue(crate::retry::jittered(TRANSIENT_RETRY)));
                }
                let wait = ctx.ca_trouble.failed(&recorded.url);
                tracing::warn!(cert = %describe(cert), error = %e, ?wait, "fetching an authorization failed");
                return Ok(Action::requeue(wait));
            }
        };
        let url = authz.url().to_string();
        let identifier = authz.identifier().to_string();
        let bare = identifier.trim_start_matches("*.").to_string();
        let was = previous
            .iter()
            .find(|a| a.url.as_deref() == Some(url.as_str()))
            .cloned();
        let mut entry = was.clone().unwrap_or(OrderAuthorization {
            identifier: identifier.clone(),
            wildcard: authz.wildcard.then_some(true),
            url: Some(url.clone()),
            ..OrderAuthorization::default()
        });
        match authz.status {
            AuthorizationStatus::Valid => {
                entry.state = Some("valid".into());
            }
            AuthorizationStatus::Pending => {
                let target = Target {
                    name: &bare,
                    wildcard: authz.wildcard,
                    is_ip: matches!(
                        authz.identifier().identifier,
                        instant_acme::Identifier::Ip(_)
                    ),
                };
                let Some(solver) = select(&issuer.acme.solvers, target, cert.labels()) else {
                    failure = Some(format!(
                        "no solver of {} {} can take {identifier}",
                        issuer.ident.kind, issuer.ident.name
                    ));
                    break;
                };
                if let Some(dns01) = &solver.dns01 {
                    let challenge = match offered(&authz.challenges, &ChallengeType::Dns01) {
                        Ok(c) => c,
                        Err(kind) => {
                            failure = Some(format!(
                                "the CA offered no {kind} challenge for {identifier}"
                            ));
                            break;
                        }
                    };
                    let token = challenge.token.clone();
                    let challenge_state = challenge.status;
                    let value = dns01_txt_value(&format!("{token}.{thumbprint}"));
                    entry.challenge_type = Some("dns-01".into());
                    entry.challenge_url = Some(challenge.url.clone());
                    let same_token =
                        was.as_ref().and_then(|w| w.token.as_deref()) == Some(token.as_str());
                    entry.token = Some(token);
                    let recorded_state = was.as_ref().and_then(|w| w.state.clone());
                    match (challenge_state, recorded_state.as_deref()) {
                        (instant_acme::ChallengeStatus::Pending, Some(PRESENTED)) if same_token => {
                            let name = entry.record_name.clone().unwrap_or_default();
                            // Every status write wakes us at once: pace the checks of a record.
                            let key = dns01::change_key(&name, &value);
                            let since = ctx.dns01_checked_lock().get(&key).map(|t| t.elapsed());
                            if let Some(since) = since
                                && since < dns01::CHECK_INTERVAL
                            {
                                let left = dns01::CHECK_INTERVAL - since;
                                wake_in = Some(wake_in.map_or(left, |w: Duration| w.min(left)));
                                current.push(entry);
                                continue;
                            }
                            ctx.dns01_checked_lock().insert(key.clone(), Instant::now());
                            let report =
                                match provider_change_pending(ctx, issuer, dns01, &name, &value)
                                    .await
                                {
                                    Some(waiting) => Err(waiting),
                                    None => match dns01::checker(ctx, dns01) {
                                        Ok(checker) => checker
                                            .check(&name, &value)
                                            .await
                                            .map_err(|e| e.to_string()),
                                        Err(e) => Err(e),
                                    },
                                };
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
                                        "the TXT record is visible at every nameserver; telling \
                                         the CA at {deadline}: the previous attempt failed, and \
                                         a resolver may still cache its \"no such record\" \
                                         answer for zone {zone}'s negative-caching TTL ({ttl}s)"
                                    ));
                                    // Visible already: check again right at the deadline.
                                    ctx.dns01_checked_lock().remove(&key);
                                    let left = Timestamp::now().duration_until(deadline);
                                    let left = Duration::try_from(left).unwrap_or_default();
                                    wake_in = Some(wake_in.map_or(left, |w: Duration| w.min(left)));
                                }
                                (Ok(r), _) if r.all_visible() => {
                                    match tell_ca(
                                        &mut authz,
                                        ChallengeType::Dns01,
                                        &identifier,
                                        &cert.namespace().unwrap_or_default(),
                                    )
                                    .await
                                    {
                                        Ok(()) => {}
                                        Err(TellFailure::Transient(why)) => {
                                            transient = Some(why);
                                            break;
                                        }
                                        Err(TellFailure::Failed(e)) => {
                                            failure = Some(e);
                                            break;
                                        }
                                    }
                                    told_ca = true;
                                    entry.error = None;
                                    entry.state = Some(PROCESSING.into());
                                }
                                (other, _) => {
                                    let checks = entry.propagation_checks.unwrap_or(0) + 1;
                                    entry.propagation_checks = Some(checks);
                                    let why = match other {
                                        Ok(r) => r.summary(),
                                        Err(e) => e,
                                    };
                                    if checks >= dns01::MAX_PROPAGATION_CHECKS {
                                        failure = Some(format!(
                                            "the TXT record for {identifier} at {name} did not become visible after {checks} checks: {why}"
                                        ));
                                        break;
                                    }
                                    entry.error = Some(format!(
                                        "waiting for DNS propagation (check {checks}): {why}"
                                    ));
                                }
                            }
                        }
                        (instant_acme::ChallengeStatus::Pending, _) => {
                            // After a transient failure to write, try again no sooner than this.
                            let present_key =
                                format!("present {}", entry.token.as_deref().unwrap_or_default());
                            let since = ctx
                                .dns01_checked_lock()
                                .get(&present_key)
                                .map(|t| t.elapsed());
                            if let Some(since) = since
                                && since < dns01::CHECK_INTERVAL
                            {
                                let left = dns01::CHECK_INTERVAL - since;
                                wake_in = Some(wake_in.map_or(left, |w: Duration| w.min(left)));
                                current.push(entry);
                                continue;
                            }
                            let provider = match dns01::provider(ctx, issuer, dns01).await {
                                Ok(p) => p,
                                Err(e) => {
                                    failure =
                                        Some(format!("the DNS-01 solver for {identifier}: {e}"));
                                    break;
                                }
                            };
                            let mut name = crate::solver::dns01::challenge_name(&bare);
                            if dns01.cname_strategy
                                == Some(crate::api::issuer::CnameStrategy::Follow)
                            {
                                match dns01::checker(ctx, dns01) {
                                    Ok(checker) => {
                                        match checker.resolve_challenge_name(&name).await {
                                            Ok(target) => name = target,
                                            Err(e) => {
                                                failure = Some(format!(
                                                    "following the CNAME at {name}: {e}"
                                                ));
                                                break;
                                            }
                                        }
                                    }
                                    Err(e) => {
                                        failure = Some(e);
                                        break;
                                    }
                                }
                            }
                            // Write-ahead: the record is in status before the provider is
                            // called, so clean-up (which reads status only) finds it even if the
                            // controller dies right after writing it.
                            entry.record_name = Some(name.clone());
                            entry.record_value = Some(value.clone());
                            let named = |a: &OrderAuthorization| {
                                a.record_name.as_deref() == Some(name.as_str())
                                    && a.record_value.as_deref() == Some(value.as_str())
                            };
                            if !was.as_ref().is_some_and(named) {
                                let mut ahead = recorded.clone();
                                ahead.authorizations = written_ahead(&current, &entry, &previous);
                                status.order = Some(ahead);
                                latest = std::borrow::Cow::Owned(
                                    apply_status(api, &latest, &status).await?,
                                );
                            }
                            match provider.present_change(&name, &value).await {
                                Ok(Some(change)) => {
                                    ctx.dns01_changes_lock()
                                        .insert(dns01::change_key(&name, &value), change);
                                }
                                Ok(None) => {}
                                // Throttling, a 5xx, the network: try again within the attempt.
                                Err(e)
                                    if e.is_transient()
                                        && entry.propagation_checks.unwrap_or(0) + 1
                                            < dns01::MAX_PROPAGATION_CHECKS =>
                                {
                                    let tries = entry.propagation_checks.unwrap_or(0) + 1;
                                    entry.propagation_checks = Some(tries);
                                    entry.error = Some(format!(
                                        "writing the TXT record at {name} failed, trying again \
                                         (try {tries}): {e}"
                                    ));
                                    ctx.dns01_checked_lock().insert(present_key, Instant::now());
                                    let left = dns01::CHECK_INTERVAL;
                                    wake_in = Some(wake_in.map_or(left, |w: Duration| w.min(left)));
                                    current.push(entry);
                                    continue;
                                }
                                Err(e) => {
                                    current.push(entry);
                                    failure = Some(format!(
                                        "writing the TXT record for {identifier} at {name}: {e}"
                                    ));
                                    break;
                                }
                            }
                            crate::crash::point(
                                "record-presented",
                                &cert.namespace().unwrap_or_default(),
                                &name,
                            );
                            ctx.dns01_checked_lock().remove(&present_key);
                            entry.error = None;
                            entry.propagation_checks = Some(0);
                            entry.state = Some(PRESENTED.into());
                        }
                        (instant_acme::ChallengeStatus::Invalid, _) => {
                            let why = challenge_error(&authz.challenges);
                            entry.state = Some("invalid".into());
                            entry.error = Some(why);
                        }
                        (other, _) => entry.state = Some(format!("{other:?}").to_lowercase()),
                    }
                    current.push(entry);
                    continue;
                }
                let Some(http01) = solver.http01.as_ref() else {
                    failure = Some(format!(
                        "the solver chosen for {identifier} has neither http01 nor dns01"
                    ));
                    break;
                };
                let challenge = match offered(&authz.challenges, &ChallengeType::Http01) {
                    Ok(c) => c,
                    Err(kind) => {
                        failure = Some(format!(
                            "the CA offered no {kind} challenge for {identifier}"
                        ));
                        break;
                    }
                };
                let token = challenge.token.clone();
                let challenge_state = challenge.status;
                let key_authorization = format!("{token}.{thumbprint}");
                entry.challenge_type = Some("http-01".into());
                entry.challenge_url = Some(challenge.url.clone());
                entry.key_authorization = Some(key_authorization.clone());
                let route = Route {
                    namespace: &cert_ns,
                    certificate: &cert_name,
                    owner: owner_reference(cert)
                        .ok_or_else(|| Error::Invalid("Certificate has no uid".into()))?,
                    host: &bare,
                    token: &token,
                };
                entry.token = Some(token.clone());
                let recorded_state = was.as_ref().and_then(|w| w.state.clone());
                match (challenge_state, recorded_state.as_deref()) {
                    (instant_acme::ChallengeStatus::Pending, Some(PRESENTED))
                        if was.as_ref().and_then(|w| w.token.as_deref())
                            == Some(token.as_str()) =>
                    {
                        // The route was applied before `presented` was recorded (and is removed
                        // only when the attempt ends): check it works, then tell the CA.
                        let previous_message = was.as_ref().and_then(|w| w.error.as_deref());
                        match http01::check(
                            ctx,
                            &route,
                            http01,
                            &key_authorization,
                            previous_message,
                        )
                        .await
                        {
                            CheckStep::Tell => {}
                            CheckStep::Wait { message, retry_in } => {
                                entry.error = Some(message);
                                wake_in = Some(wake_in.map_or(retry_in, |w| w.min(retry_in)));
                                current.push(entry);
                                continue;
                            }
                            CheckStep::GiveUp(message) => {
                                entry.error = Some(message.clone());
                                current.push(entry);
                                failure = Some(message);
                                break;
                            }
                        }
                        match tell_ca(
                            &mut authz,
                            ChallengeType::Http01,
                            &identifier,
                            &cert.namespace().unwrap_or_default(),
                        )
                        .await
                        {
                            Ok(()) => {}
                            Err(TellFailure::Transient(why)) => {
                                transient = Some(why);
                                break;
                            }
                            Err(TellFailure::Failed(e)) => {
                                failure = Some(e);
                                break;
                            }
                        }
                        told_ca = true;
                        entry.error = None;
                        entry.state = Some(PROCESSING.into());
                    }
                    (instant_acme::ChallengeStatus::Pending, _) => {
                        match http01::present(ctx, &route, http01).await {
                            Ok(()) => {
                                crate::crash::point(
                                    "challenge-presented",
                                    &cert.namespace().unwrap_or_default(),
                                    &identifier,
                                );
                                entry.error = None;
                                entry.state = Some(PRESENTED.into());
                            }
                            Err(PresentError::NoBackends(why)) => {
                                entry.error = Some(PresentError::NoBackends(why).to_string());
                                let left = Duration::from_secs(2);
                                wake_in = Some(wake_in.map_or(left, |w| w.min(left)));
                            }
                            Err(e @ PresentError::GatewayApiMissing { .. }) => {
                                failure = Some(e.to_string());
                                break;
                            }
                            Err(PresentError::Kube(e)) => return Err(e),
                        }
                    }
                    (instant_acme::ChallengeStatus::Invalid, _) => {
                        let why = challenge_error(&authz.challenges);
                        entry.state = Some("invalid".into());
                        entry.error = Some(why);
                    }
                    (other, _) => entry.state = Some(format!("{other:?}").to_lowercase()),
                }
            }
            other => {
                entry.state = Some(authz_state_str(other).into());
                let why = authz
                    .challenges
                    .iter()
                    .find_map(|c| c.error.as_ref().map(problem_text));
                failure = Some(format!(
                    "the authorization for {identifier} is {}{}",
                    authz_state_str(other),
                    why.map(|w| format!(": {w}")).unwrap_or_default()
                ));
            }
        }
        current.push(entry);
    }
    if failure.is_some() || transient.is_some() {
        // Keep what this round wrote (DNS records) so the failure path removes it too.
        for p in &previous {
            if !current.iter().any(|a| a.url == p.url) {
                current.push(p.clone());
            }
        }
    }
    if let Some(why) = transient {
        // Record what this round did (presented records included), then repeat the step.
        tracing::debug!(cert = %describe(cert), "telling the CA failed transiently ({why}); retrying");
        recorded.authorizations = current;
        if status.order.as_ref() != Some(&recorded) {
            status.order = Some(recorded);
            apply_status(api, &latest, &status).await?;
        }
        return Ok(Action::requeue(crate::retry::jittered(TRANSIENT_RETRY)));
    }
    if let Some(message) = failure {
        recorded.authorizations = current;
        status.order = Some(recorded);
        return record_failure(ctx, api, issuer, &latest, status, &message, false).await;
    }
    if told_ca {
        ctx.polling_lock()
            .insert(recorded.url.clone(), Instant::now());
    }
    recorded.authorizations = current;
    let all_processing = recorded
        .authorizations
        .iter()
        .all(|a| matches!(a.state.as_deref(), Some(PROCESSING) | Some("valid")));
    if status.order.as_ref() != Some(&recorded) {
        status.order = Some(recorded.clone());
        apply_status(api, &latest, &status).await?;
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

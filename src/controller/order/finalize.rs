//! A valid order: finalize with the persisted key, download the chain, write the Secret, record success.

// The order module's imports and shared items (states, helpers).
use super::*;
use crate::controller::tls_secret::write_tls_secret;

/// The key the CSR is made from.
pub(super) async fn next_key(
    ctx: &Ctx,
    cert: &Certificate,
    status: &CertificateStatus,
) -> Result<pki::PrivateKey, Error> {
    // Kept since the order was created in this process: no Secret read.
    if let Some(key) = status.order.as_ref().and_then(|o| ctx.orders.key(&o.url)) {
        return Ok(key);
    }
    let name = status
        .next_private_key_secret_name
        .clone()
        .unwrap_or_else(|| secret::next_key_secret_name(&cert.name_any()));
    let secrets: Api<Secret> =
        Api::namespaced(ctx.client.clone(), &cert.namespace().unwrap_or_default());
    let secret = secrets
        .get(&name)
        .await
        .context(|| format!("reading the next private key Secret {name}"))?;
    let pem = data_str(&secret, TLS_KEY)
        .ok_or_else(|| Error::Invalid(format!("Secret {name} lacks {TLS_KEY}")))?;
    pki::parse_pem(pem).map_err(|source| Error::Pki {
        context: format!("Secret {name}"),
        source,
    })
}

/// Valid order: store the certificate, clean up, record success.
pub(super) async fn complete(
    ctx: &Ctx,
    api: &Api<Certificate>,
    cert: &Certificate,
    status: CertificateStatus,
    order: &mut instant_acme::Order,
    issuer: &ResolvedIssuer,
    key: pki::PrivateKey,
) -> Result<Action, Error> {
    let chain_pem = match download_chain(ctx, cert, order, issuer).await {
        Ok(pem) => pem,
        Err(wait) => return Ok(Action::requeue(wait)),
    };
    let chain = match pki::parse_chain(&chain_pem) {
        Ok(c) => c,
        Err(e) => {
            let message = format!("the CA returned an unusable certificate chain: {e}");
            return record_failure(
                ctx,
                api,
                issuer,
                cert,
                status,
                &message,
                FailureKind::NotTheCa,
            )
            .await;
        }
    };
    if !pki::key_matches_leaf(&key, &chain.leaf) {
        let message = "the CA's certificate is not for the key we sent";
        return record_failure(
            ctx,
            api,
            issuer,
            cert,
            status,
            message,
            FailureKind::NotTheCa,
        )
        .await;
    }
    // The CA chose what it signed: names, validity and links are checked before it replaces
    // whatever the Secret holds.
    let requested = pki::identifiers(&cert.spec).map_err(|source| Error::Pki {
        context: format!("the names of Certificate {}", describe(cert)),
        source,
    })?;
    if let Err(why) = pki::issued::check_issued(&requested, &chain, jiff::Timestamp::now()) {
        return record_failure(
            ctx,
            api,
            issuer,
            cert,
            status,
            &why,
            FailureKind::CaMisbehaved,
        )
        .await;
    }
    let secret_rv = match write_secret(ctx, cert, issuer, &chain, &key).await? {
        Ok(rv) => rv,
        Err(refusal) => {
            return record_failure(
                ctx,
                api,
                issuer,
                cert,
                status,
                &refusal,
                FailureKind::NotTheCa,
            )
            .await;
        }
    };
    cleanup_temporaries_of(ctx, cert, status.order.as_ref(), issuer).await?;
    if let Some(order) = status.order.as_ref() {
        let problems = dns01::cleanup(ctx, issuer, cert.labels(), order).await;
        if !problems.is_empty() {
            ctx.event(cert, true, "CleanupFailed", "Cleanup", problems.join("; "))
                .await;
        }
    }
    record_issued(ctx, api, cert, status, issuer, &chain, &secret_rv).await
}

/// The certificate chain of a valid order (the preferred one where the issuer names one), or how
/// long to wait before asking again.
async fn download_chain(
    ctx: &Ctx,
    cert: &Certificate,
    order: &mut instant_acme::Order,
    issuer: &ResolvedIssuer,
) -> Result<String, Duration> {
    let chain_pem = match order.certificate().await.map_err(AcmeError::from) {
        Ok(Some(pem)) => pem,
        Ok(None) => return Err(Duration::from_millis(500)),
        Err(e) => {
            let wait = ctx.ca_trouble.failed(order.url());
            tracing::warn!(cert = %describe(cert), error = %e, ?wait, "downloading the certificate failed");
            return Err(wait);
        }
    };
    let Some(preferred) = issuer.acme.preferred_chain.as_deref() else {
        return Ok(chain_pem);
    };
    match preferred_chain(ctx, order, issuer, preferred).await {
        Ok(Some(pem)) => Ok(pem),
        Ok(None) => Ok(chain_pem),
        Err(e) => {
            // The default chain is still a valid certificate: keep it, say why.
            tracing::warn!(cert = %describe(cert), error = %e, "fetching alternate chains failed; using the default chain");
            Ok(chain_pem)
        }
    }
}

/// Writes the certificate and key into the Certificate's Secret (`Ok(resourceVersion)`), unless
/// the Secret has changed hands while the order ran (another Certificate wrote it first, or someone
/// created one): then nothing is written and the refusal is returned. The key stays in its Secret
/// for the next attempt.
async fn write_secret(
    ctx: &Ctx,
    cert: &Certificate,
    issuer: &ResolvedIssuer,
    chain: &pki::IssuedChain,
    key: &pki::PrivateKey,
) -> Result<Result<String, String>, Error> {
    let key_pem = secret::encode_key(cert, key).map_err(|source| Error::Pki {
        context: "encoding tls.key".into(),
        source,
    })?;
    let ca_pem = chain.root_pem();
    let renew_request = cert.annotations().get(labels::ANN_RENEW_REQUESTED).cloned();
    let outputs = crate::controller::outputs::for_issuance(
        ctx,
        cert,
        &chain.pem,
        &key_pem,
        ca_pem.as_deref(),
    )
    .await?;
    let tls = secret::tls_secret(
        cert,
        &TlsContents {
            chain_pem: &chain.pem,
            key_pem: &key_pem,
            ca_pem: ca_pem.as_deref(),
            issuer_name: &issuer.ident.name,
            issuer_kind: issuer.kind,
            renew_handled: renew_request.as_deref(),
            outputs: outputs.as_ref(),
        },
    );
    let ns = cert.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let existing = secrets
        .get_opt(&cert.spec.secret_name)
        .await
        .context(|| format!("reading Secret {ns}/{}", cert.spec.secret_name))?;
    let claim = secret::claim(existing.as_ref(), &cert.name_any(), |other| {
        crate::controller::still_claims(ctx, &ns, other, &cert.spec.secret_name)
    });
    if let Some((_, message)) = claim.refusal(&cert.spec.secret_name, &cert.name_any()) {
        return Ok(Err(message));
    }
    let written = match write_tls_secret(&secrets, &tls, existing.as_ref()).await? {
        Ok(written) => written,
        Err(lost) => return Ok(Err(lost)),
    };
    crate::crash::point("secret-written", &ns, &cert.spec.secret_name);
    Ok(Ok(written.resource_version().unwrap_or_default()))
}

/// The certificate is in its Secret: schedule its renewal (with the CA's ARI window, fetched now so
/// it goes into the same status write and Event as the certificate), record success in one status
/// write (said first in an Event), then drop the order finalizer and the next-key Secret.
async fn record_issued(
    ctx: &Ctx,
    api: &Api<Certificate>,
    cert: &Certificate,
    mut status: CertificateStatus,
    issuer: &ResolvedIssuer,
    chain: &pki::IssuedChain,
    secret_rv: &str,
) -> Result<Action, Error> {
    let spec_renewal =
        pki::renewal_time_for_spec(&cert.spec, chain.leaf.not_before, chain.leaf.not_after)
            .unwrap_or(chain.leaf.not_after);
    status.renewal_info = None;
    let leaf_der = chain.certs_der.first().cloned().unwrap_or_default();
    let current = crate::controller::renewal_info::Current {
        leaf_der: &leaf_der,
        not_before: chain.leaf.not_before,
        not_after: chain.leaf.not_after,
        spec_renewal,
        spec_is_explicit: cert.spec.renew_before.is_some()
            || cert.spec.renew_before_percentage.is_some(),
        announce_window: false,
    };
    let schedule = crate::controller::renewal_info::schedule(
        ctx,
        cert,
        issuer,
        &mut status,
        &current,
        Timestamp::now(),
    )
    .await;
    let renewal = schedule.renewal;
    let next_key_name = status.next_private_key_secret_name.take();
    let (order_url, about) = status
        .order
        .as_ref()
        .map_or_else(Default::default, order_summary);
    status.profile = status.order.as_ref().and_then(|o| o.profile.clone());
    if let Some(url) = status.order.as_ref().map(|o| o.url.clone()) {
        ctx.polling_lock().remove(&url);
        ctx.ca_trouble.succeeded(&url);
        ctx.orders.forget(&url);
    }
    status.order = None;
    status.not_before = Some(Time(chain.leaf.not_before));
    status.not_after = Some(Time(chain.leaf.not_after));
    status.renewal_time = Some(Time(renewal));
    status.revision = Some(status.revision.unwrap_or(0) + 1);
    // A certificate of its own now: no longer the adopted one.
    status.adopted = None;
    status.failed_issuance_attempts = None;
    status.last_failure_time = None;
    conditions::remove(&mut status.conditions, ISSUING);
    set_ready(
        &mut status,
        cert,
        true,
        "Ready",
        &format!("The certificate is valid until {}", chain.leaf.not_after),
    );
    let window = status
        .renewal_info
        .as_ref()
        .and_then(|i| Some((i.window_start.as_ref()?, i.window_end.as_ref()?)))
        .map(|(start, end)| {
            format!(
                " (the CA suggests renewing between {} and {})",
                start.0, end.0
            )
        })
        .unwrap_or_default();
    // The Event precedes the write that makes the Certificate Ready: whoever sees Ready finds it,
    // and a process killed between the two leaves its successor to finish (and say it again)
    // rather than a Ready Certificate with no word of its issuance.
    tracing::info!(cert = %describe(cert), serial = %chain.leaf.serial_hex, not_after = %chain.leaf.not_after, "certificate issued");
    ctx.event(
        cert,
        false,
        "Issued",
        &format!("IssueRevision{}", status.revision.unwrap_or(0)),
        format!(
            "Certificate issued from order {order_url} (serial {}, valid until {}{about}), stored in Secret {}; renewal at {renewal}{window}",
            chain.leaf.serial_hex, chain.leaf.not_after, cert.spec.secret_name
        ),
    )
    .await;
    let updated = apply_status(ctx, api, cert, &status).await?;
    let updated = crate::controller::set_order_finalizer(ctx, api, &updated, false).await?;
    let wake = schedule
        .next_check
        .map_or(renewal, |check| check.min(renewal));
    let wake = secret::outputs::recheck_by(
        &cert.spec,
        wake,
        Timestamp::now(),
        ctx.settings.keystore_password_recheck,
    );
    // The echoes of these writes (status, Secret) need no Secret read: see `echo_of_issuance`.
    if let Some(rv) = updated.resource_version() {
        ctx.orders.issued(&echo_key(cert), &rv, secret_rv, wake);
    }
    if let Some(name) = next_key_name {
        let secrets: Api<Secret> =
            Api::namespaced(ctx.client.clone(), &cert.namespace().unwrap_or_default());
        match secrets.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e).context(|| format!("deleting Secret {name}")),
        }
    }
    Ok(requeue_at(wake, Timestamp::now()))
}

/// The key of a Certificate in [`super::super::order_handles::OrderHandles::issued`].
pub fn echo_key(cert: &Certificate) -> String {
    format!(
        "{}/{}",
        cert.namespace().unwrap_or_default(),
        cert.name_any()
    )
}

/// The order's URL and, for the Issued Event, its profile and the certificate it replaces.
fn order_summary(order: &OrderStatus) -> (String, String) {
    let mut about = String::new();
    if let Some(p) = order.profile.as_deref() {
        about.push_str(&format!(", profile {p}"));
    }
    if let Some(r) = order.replaces.as_deref() {
        about.push_str(&format!(", replacing {r}"));
    }
    (order.url.clone(), about)
}

/// The chain matching `preferredChain` among the default and alternate chains, if any matches.
pub(super) async fn preferred_chain(
    ctx: &Ctx,
    order: &mut instant_acme::Order,
    issuer: &ResolvedIssuer,
    preferred: &str,
) -> Result<Option<String>, Error> {
    let Some(cert_url) = order.state().certificate.clone() else {
        return Ok(None);
    };
    let config = issuer_account_config(issuer)?;
    let key = account_key_der(ctx, issuer).await?;
    let chains = crate::acme::alternates::fetch_chains(
        config.trust(),
        &config.server,
        &issuer.account_uri,
        &key,
        &cert_url,
    )
    .await
    .map_err(|e| Error::Invalid(format!("fetching alternate chains: {e}")))?;
    let index = pki::choose_preferred_chain(&chains, Some(preferred));
    Ok(chains.into_iter().nth(index))
}

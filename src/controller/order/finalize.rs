//! A valid order: finalize with the persisted key, download the chain, write the Secret, record success.

// The order module's imports and shared items (states, helpers).
use super::*;

/// The key the CSR is made from.
pub(super) async fn next_key(
    ctx: &Ctx,
    cert: &Certificate,
    status: &CertificateStatus,
) -> Result<pki::PrivateKey, Error> {
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
    mut status: CertificateStatus,
    order: &mut instant_acme::Order,
    issuer: &ResolvedIssuer,
    key: pki::PrivateKey,
) -> Result<Action, Error> {
    let chain_pem = match order.certificate().await.map_err(AcmeError::from) {
        Ok(Some(pem)) => pem,
        Ok(None) => return Ok(Action::requeue(Duration::from_millis(500))),
        Err(e) => {
            let wait = ctx.ca_trouble.failed(order.url());
            tracing::warn!(cert = %describe(cert), error = %e, ?wait, "downloading the certificate failed");
            return Ok(Action::requeue(wait));
        }
    };
    let chain_pem = match issuer.acme.preferred_chain.as_deref() {
        None => chain_pem,
        Some(preferred) => match preferred_chain(ctx, order, issuer, preferred).await {
            Ok(Some(pem)) => pem,
            Ok(None) => chain_pem,
            Err(e) => {
                // The default chain is still a valid certificate: keep it, say why.
                tracing::warn!(cert = %describe(cert), error = %e, "fetching alternate chains failed; using the default chain");
                chain_pem
            }
        },
    };
    let chain = match pki::parse_chain(&chain_pem) {
        Ok(c) => c,
        Err(e) => {
            return record_failure(
                ctx,
                api,
                issuer,
                cert,
                status,
                &format!("the CA returned an unusable certificate chain: {e}"),
                false,
            )
            .await;
        }
    };
    if !pki::key_matches_leaf(&key, &chain.leaf) {
        return record_failure(
            ctx,
            api,
            issuer,
            cert,
            status,
            "the CA's certificate is not for the key we sent",
            false,
        )
        .await;
    }
    let key_pem = secret::encode_key(cert, &key).map_err(|source| Error::Pki {
        context: "encoding tls.key".into(),
        source,
    })?;
    let ca_pem = chain.root_pem();
    let renew_request = cert.annotations().get(labels::ANN_RENEW_REQUESTED).cloned();
    let tls = secret::tls_secret(
        cert,
        &TlsContents {
            chain_pem: &chain.pem,
            key_pem: &key_pem,
            ca_pem: ca_pem.as_deref(),
            issuer_name: &issuer.ident.name,
            issuer_kind: issuer.kind,
            renew_handled: renew_request.as_deref(),
        },
    );
    let ns = cert.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    // The Secret may have changed hands while the order ran (another Certificate wrote it first,
    // or someone created one): never overwrite what is not ours. The key stays in its Secret for
    // the next attempt.
    let existing = secrets
        .get_opt(&cert.spec.secret_name)
        .await
        .context(|| format!("reading Secret {ns}/{}", cert.spec.secret_name))?;
    let claim = secret::claim(existing.as_ref(), &cert.name_any(), |other| {
        crate::controller::still_claims(ctx, &ns, other, &cert.spec.secret_name)
    });
    if let Some((_, message)) = claim.refusal(&cert.spec.secret_name, &cert.name_any()) {
        return record_failure(ctx, api, issuer, cert, status, &message, false).await;
    }
    secrets
        .patch(
            &cert.spec.secret_name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&apply_body(&tls)),
        )
        .await
        .context(|| format!("writing Secret {ns}/{}", cert.spec.secret_name))?;
    crate::crash::point("secret-written", &ns, &cert.spec.secret_name);
    cleanup_temporaries_of(ctx, cert, status.order.as_ref()).await?;
    if let Some(order) = status.order.as_ref() {
        let problems = dns01::cleanup(ctx, issuer, cert.labels(), order).await;
        if !problems.is_empty() {
            ctx.event(cert, true, "CleanupFailed", "Cleanup", problems.join("; "))
                .await;
        }
    }

    let renewal =
        pki::renewal_time_for_spec(&cert.spec, chain.leaf.not_before, chain.leaf.not_after)
            .unwrap_or(chain.leaf.not_after);
    let next_key_name = status.next_private_key_secret_name.take();
    let order_url = status
        .order
        .as_ref()
        .map(|o| o.url.clone())
        .unwrap_or_default();
    let mut about = String::new();
    if let Some(order) = status.order.as_ref() {
        if let Some(p) = order.profile.as_deref() {
            about.push_str(&format!(", profile {p}"));
        }
        if let Some(r) = order.replaces.as_deref() {
            about.push_str(&format!(", replacing {r}"));
        }
    }
    status.profile = status.order.as_ref().and_then(|o| o.profile.clone());
    // A new certificate: its ARI window is fetched in the next reconcile.
    status.renewal_info = None;
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
    let updated = apply_status(api, cert, &status).await?;
    crate::controller::set_order_finalizer(api, &updated, false).await?;
    if let Some(name) = next_key_name {
        match secrets.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e).context(|| format!("deleting Secret {name}")),
        }
    }
    tracing::info!(cert = %describe(cert), serial = %chain.leaf.serial_hex, not_after = %chain.leaf.not_after, "certificate issued");
    ctx.event(
        cert,
        false,
        "Issued",
        &format!("IssueRevision{}", status.revision.unwrap_or(0)),
        format!(
            "Certificate issued from order {order_url} (serial {}, valid until {}{about}), stored in Secret {}; renewal at {renewal}",
            chain.leaf.serial_hex, chain.leaf.not_after, cert.spec.secret_name
        ),
    )
    .await;
    Ok(requeue_at(renewal, Timestamp::now()))
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

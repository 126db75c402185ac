//! The issuer a Certificate names, resolved from the caches (or the API server) into what an
//! issuance needs: the ACME settings, the account's URI, its key and its client; or, for the
//! `selfSigned` and `ca` issuers, where their CA Secret is ([`LocalIssuer`]).

use instant_acme::Account;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;

use super::Ctx;
use super::issuer_ident::{ACCOUNT_KEY, IssuerIdent, account_config};
use crate::api::IssuerPolicy;
use crate::api::conditions::{self, READY};
use crate::api::issuer::{AcmeIssuer, IssuerSpec, IssuerType};
use crate::api::{Certificate, ClusterIssuer, Issuer, IssuerKind, IssuerRef};
use crate::error::{Error, KubeContext};
use crate::pki;
use crate::secret::data_str;

/// The issuer a Certificate uses, resolved and ready.
pub struct ResolvedIssuer {
    pub ident: IssuerIdent,
    pub kind: IssuerKind,
    pub acme: AcmeIssuer,
    pub account_uri: String,
    /// What the issuer allows (`spec.policy`).
    pub policy: Option<IssuerPolicy>,
}

impl ResolvedIssuer {
    /// The issuer as the tenant boundary sees it.
    pub fn gate(&self) -> super::tenancy::Gate<'_> {
        super::tenancy::Gate {
            kind: self.kind,
            name: &self.ident.name,
            policy: self.policy.as_ref(),
        }
    }
}

impl LocalIssuer {
    /// The issuer as the tenant boundary sees it.
    pub fn gate(&self) -> super::tenancy::Gate<'_> {
        super::tenancy::Gate {
            kind: self.kind,
            name: &self.ident.name,
            policy: self.policy.as_ref(),
        }
    }
}

/// The issuer a Certificate uses: an ACME account, or one that signs here (`selfSigned`, `ca`).
pub enum Resolved {
    Acme(Box<ResolvedIssuer>),
    Local(Box<LocalIssuer>),
}

/// A `selfSigned` or `ca` issuer: no account, no order.
#[derive(Clone, Debug)]
pub struct LocalIssuer {
    pub ident: IssuerIdent,
    pub kind: IssuerKind,
    /// `None` for `selfSigned`; for `ca`, the Secret (in `ident.secret_namespace`) holding the
    /// CA key pair.
    pub ca_secret: Option<String>,
    /// What the issuer allows (`spec.policy`).
    pub policy: Option<IssuerPolicy>,
}

/// Finds the Certificate's ACME issuer; `Ok(Err(..))` is a condition to show, not an error. A
/// `selfSigned` or `ca` issuer is such a condition here (`IssuerNotACME`): callers that can
/// handle those use [`resolve`].
pub(super) async fn resolve_issuer(
    ctx: &Ctx,
    cert: &Certificate,
) -> Result<Result<ResolvedIssuer, (&'static str, String)>, Error> {
    Ok(match resolve(ctx, cert).await? {
        Ok(Resolved::Acme(issuer)) => Ok(*issuer),
        Ok(Resolved::Local(local)) => Err((
            "IssuerNotACME",
            format!(
                "{} {} signs certificates itself; it has no ACME account",
                local.ident.kind, local.ident.name
            ),
        )),
        Err(e) => Err(e),
    })
}

/// As [`resolve_issuer`], for the issuer `r` of the Certificate's list.
pub(super) async fn resolve_issuer_ref(
    ctx: &Ctx,
    cert: &Certificate,
    r: &IssuerRef,
) -> Result<Result<ResolvedIssuer, (&'static str, String)>, Error> {
    Ok(match resolve_ref(ctx, cert, r).await? {
        Ok(Resolved::Acme(issuer)) => Ok(*issuer),
        Ok(Resolved::Local(local)) => Err((
            "IssuerNotACME",
            format!(
                "{} {} signs certificates itself; it has no ACME account",
                local.ident.kind, local.ident.name
            ),
        )),
        Err(e) => Err(e),
    })
}

/// Finds the Certificate's issuer in use ([`Certificate::current_issuer_ref`]), of any type;
/// `Ok(Err(..))` is a condition to show.
pub(super) async fn resolve(
    ctx: &Ctx,
    cert: &Certificate,
) -> Result<Result<Resolved, (&'static str, String)>, Error> {
    match cert.current_issuer_ref() {
        Some(r) => resolve_ref(ctx, cert, r).await,
        None => Ok(Err((
            "IssuerNotFound",
            "the Certificate names no issuer (set issuerRef or issuerRefs)".to_string(),
        ))),
    }
}

/// Whether the issuer `r` is not Ready because its ACME account registration failed at the CA
/// (unreachable, refusing): a reason to try the next of `issuerRefs`. From the cache.
pub(super) fn registration_failed(ctx: &Ctx, cert: &Certificate, r: &IssuerRef) -> bool {
    let ns = cert.namespace().unwrap_or_default();
    let status = match r.kind.unwrap_or_default() {
        IssuerKind::Issuer => ctx
            .issuers
            .get(&ObjectRef::new(&r.name).within(&ns))
            .and_then(|i| i.status.clone()),
        IssuerKind::ClusterIssuer => ctx
            .cluster_issuers
            .get(&ObjectRef::new(&r.name))
            .and_then(|i| i.status.clone()),
    };
    status.is_some_and(|s| {
        conditions::find(&s.conditions, READY)
            .is_some_and(|c| c.status != "True" && c.reason == super::failover::REGISTRATION_FAILED)
    })
}

/// Finds the issuer `r` names for the Certificate (an Issuer in the Certificate's namespace, or
/// a ClusterIssuer), of any type; `Ok(Err(..))` is a condition to show.
pub(super) async fn resolve_ref(
    ctx: &Ctx,
    cert: &Certificate,
    r: &IssuerRef,
) -> Result<Result<Resolved, (&'static str, String)>, Error> {
    let ns = cert.namespace().unwrap_or_default();
    // The cache first: no API request on the common path. It may lag an Issuer that has just
    // become ready (its change also wakes this reconcile), so anything but a ready issuer is
    // confirmed with a GET before it is reported.
    let cached = match r.kind.unwrap_or_default() {
        IssuerKind::Issuer => ctx
            .issuers
            .get(&ObjectRef::new(&r.name).within(&ns))
            .map(|i| (i.spec.clone(), i.status.clone())),
        IssuerKind::ClusterIssuer => ctx
            .cluster_issuers
            .get(&ObjectRef::new(&r.name))
            .map(|i| (i.spec.as_issuer_spec(), i.status.clone())),
    };
    if let Some((spec, status)) = cached
        && let Ok(resolved) = issuer_from(ctx, cert, r, spec, status)
    {
        return Ok(Ok(resolved));
    }
    let fetched = match r.kind.unwrap_or_default() {
        IssuerKind::Issuer => {
            let api: Api<Issuer> = Api::namespaced(ctx.client.clone(), &ns);
            api.get_opt(&r.name)
                .await
                .context(|| format!("reading Issuer {ns}/{}", r.name))?
                .map(|i| (i.spec, i.status))
                .ok_or_else(|| format!("Issuer {ns}/{} does not exist", r.name))
        }
        IssuerKind::ClusterIssuer => {
            let api: Api<ClusterIssuer> = Api::all(ctx.client.clone());
            api.get_opt(&r.name)
                .await
                .context(|| format!("reading ClusterIssuer {}", r.name))?
                .map(|i| (i.spec.as_issuer_spec(), i.status))
                .ok_or_else(|| format!("ClusterIssuer {} does not exist", r.name))
        }
    };
    Ok(match fetched {
        Err(missing) => Err(("IssuerNotFound", missing)),
        Ok((spec, status)) => issuer_from(ctx, cert, r, spec, status),
    })
}

/// The issuer a Certificate uses, from its spec and status: ready with an account, or why not. A
/// local issuer needs no status: the Certificate's reconcile checks its CA itself.
fn issuer_from(
    ctx: &Ctx,
    cert: &Certificate,
    r: &IssuerRef,
    spec: IssuerSpec,
    status: Option<crate::api::issuer::IssuerStatus>,
) -> Result<Resolved, (&'static str, String)> {
    let kind = r.kind.unwrap_or_default();
    let ident = match kind {
        IssuerKind::Issuer => IssuerIdent {
            kind: "Issuer",
            name: r.name.clone(),
            secret_namespace: cert.namespace().unwrap_or_default(),
        },
        IssuerKind::ClusterIssuer => IssuerIdent {
            kind: "ClusterIssuer",
            name: r.name.clone(),
            secret_namespace: ctx.settings.cluster_resource_namespace.clone(),
        },
    };
    let acme = match spec.issuer_type() {
        Some(IssuerType::Acme(acme)) => acme.clone(),
        Some(IssuerType::SelfSigned) => {
            return Ok(Resolved::Local(Box::new(LocalIssuer {
                ident,
                kind,
                ca_secret: None,
                policy: spec.policy.clone(),
            })));
        }
        Some(IssuerType::Ca(ca)) => {
            return Ok(Resolved::Local(Box::new(LocalIssuer {
                ident,
                kind,
                ca_secret: Some(ca.secret_name.clone()),
                policy: spec.policy.clone(),
            })));
        }
        None => {
            return Err((
                "IssuerNotReady",
                format!("{} {} sets no issuer type", ident.kind, r.name),
            ));
        }
    };
    let status = status.unwrap_or_default();
    let uri = status.acme.and_then(|a| a.uri);
    match (conditions::is_true(&status.conditions, READY), uri) {
        (true, Some(account_uri)) => Ok(Resolved::Acme(Box::new(ResolvedIssuer {
            ident,
            kind,
            acme,
            account_uri,
            policy: spec.policy.clone(),
        }))),
        _ => {
            let why = conditions::find(&status.conditions, READY)
                .map(|c| format!(": {}", c.message))
                .unwrap_or_default();
            Err((
                "IssuerNotReady",
                format!("{} {} is not ready{why}", ident.kind, r.name),
            ))
        }
    }
}

/// Loads the account key of an issuer (for restoring its account client after a restart).
pub async fn account_key_der(ctx: &Ctx, issuer: &ResolvedIssuer) -> Result<Vec<u8>, Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &issuer.ident.secret_namespace);
    let sref = &issuer.acme.private_key_secret_ref;
    let data_key = sref.key.as_deref().unwrap_or(ACCOUNT_KEY);
    let secret = secrets.get(&sref.name).await.context(|| {
        format!(
            "reading account key Secret {}/{}",
            issuer.ident.secret_namespace, sref.name
        )
    })?;
    let pem = data_str(&secret, data_key).ok_or_else(|| {
        Error::Invalid(format!(
            "account key Secret {} lacks {data_key:?}",
            sref.name
        ))
    })?;
    let key = pki::parse_pem(pem).map_err(|source| Error::Pki {
        context: format!("account key Secret {}", sref.name),
        source,
    })?;
    Ok(key.pkcs8_der().to_vec())
}

/// The account configuration of an issuer, or an `Invalid` error.
pub fn issuer_account_config(issuer: &ResolvedIssuer) -> Result<crate::acme::AccountConfig, Error> {
    account_config(&issuer.acme).map_err(Error::Invalid)
}

/// The account client for an issuer: the cached one, or restored from its key.
pub async fn account_for(ctx: &Ctx, issuer: &ResolvedIssuer) -> Result<Account, Error> {
    let config = issuer_account_config(issuer)?;
    let key = issuer.ident.cache_key();
    if let Some(account) = ctx.accounts.cached(&key, &config, &issuer.account_uri) {
        return Ok(account);
    }
    let der = account_key_der(ctx, issuer).await?;
    ctx.accounts
        .get(&key, &config, &issuer.account_uri, &der)
        .await
        .map_err(|source| Error::Acme {
            context: format!("restoring the ACME account of {key}"),
            source,
        })
}

//! DNS-01 in the issuance path: build the issuer's DNS provider (RFC 2136, Cloudflare, Route53,
//! acme-dns or a cert-manager webhook solver), present and check TXT records, and remove exactly the records an order wrote (tracked in
//! status, so a restart still cleans up).
//!
//! Errors are plain strings meant for a Certificate's `Ready`/`Issuing` message: they name the
//! Secret, key, zone or API involved and carry the provider's own words.

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

use super::Ctx;
use super::issuer_ref::ResolvedIssuer;
use crate::api::issuer::{
    CloudflareProvider, Dns01Solver, Rfc2136Provider, Route53Provider, SecretKeySelector,
};
use crate::api::{IssuerKind, OrderStatus};
use crate::secret::data_str;
use crate::solver::dns01::DnsProvider;
use crate::solver::dns01::acme_dns::{self, AcmeDns};
use crate::solver::dns01::aws_credentials::{self, AwsCredentials};
use crate::solver::dns01::cloudflare::{Cloudflare, CloudflareConfig};
use crate::solver::dns01::propagation::{PropagationChecker, PropagationConfig};
use crate::solver::dns01::rfc2136::Rfc2136;
use crate::solver::dns01::route53::{Route53, Route53Config};
use crate::solver::dns01::sts::Sts;
use crate::solver::dns01::webhook::{Webhook, WebhookConfig};

/// How many propagation checks, [`CHECK_INTERVAL`] apart, before the attempt fails (tries to
/// write the record count towards them too; see [`MAX_WRITE_TRIES`]).
pub const MAX_PROPAGATION_CHECKS: i32 = 90;

/// The least time between two propagation checks of one record (checks that see the record
/// everywhere end the wait at once; this paces the ones that do not, and Route53's GetChange).
pub const CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// Tries to write a record after transient errors (throttling, a 5xx, the network, a silent
/// webhook solver) before the attempt fails. The waits between them double from
/// [`CHECK_INTERVAL`] up to [`MAX_WRITE_RETRY`] ([`write_retry_delay`]): about 7 minutes in all,
/// enough for a provider's brief outage without hammering one that is down.
pub const MAX_WRITE_TRIES: i32 = 12;

/// The longest wait between two tries to write a record.
pub const MAX_WRITE_RETRY: std::time::Duration = std::time::Duration::from_secs(60);

/// The wait before the next try to write the record `name` after `failed` transient failures:
/// `CHECK_INTERVAL * 2^(failed-1)` up to [`MAX_WRITE_RETRY`], moved by up to ±20% by a jitter fixed
/// per record and try (so that records failing together drift apart, and each reconcile computes
/// the same wait). No failure, no wait. Pure.
pub fn write_retry_delay(name: &str, failed: u32) -> std::time::Duration {
    crate::retry::backoff_for(name, failed, CHECK_INTERVAL, MAX_WRITE_RETRY)
}

/// Default Secret keys, as in cert-manager's documentation examples.
pub const TSIG_SECRET_KEY: &str = "secret";
pub const CLOUDFLARE_TOKEN_KEY: &str = "api-token";
pub const ROUTE53_ACCESS_KEY_ID_KEY: &str = "access-key-id";
pub const ROUTE53_SECRET_ACCESS_KEY_KEY: &str = "secret-access-key";
pub const ACME_DNS_ACCOUNTS_KEY: &str = "acmedns.json";

/// The provider of a DNS-01 solver, with its credentials read from the issuer's Secrets.
pub async fn provider(
    ctx: &Ctx,
    issuer: &ResolvedIssuer,
    solver: &Dns01Solver,
) -> Result<Box<dyn DnsProvider>, String> {
    if let Some(spec) = &solver.rfc2136 {
        return Ok(Box::new(rfc2136(ctx, issuer, spec).await?));
    }
    if let Some(spec) = &solver.cloudflare {
        return Ok(Box::new(cloudflare(ctx, issuer, spec).await?));
    }
    if let Some(spec) = &solver.route53 {
        return Ok(Box::new(route53(ctx, issuer, spec).await?));
    }
    if let Some(spec) = &solver.acme_dns {
        acme_dns_host_allowed(&spec.host, issuer.kind)?;
        let json = secret_value(
            ctx,
            issuer,
            &spec.account_secret_ref,
            ACME_DNS_ACCOUNTS_KEY,
            "the acme-dns account Secret",
        )
        .await?;
        let accounts = acme_dns::parse_accounts(&json).map_err(|e| e.to_string())?;
        return AcmeDns::new(&spec.host, accounts)
            .map(|p| Box::new(p) as Box<dyn DnsProvider>)
            .map_err(|e| e.to_string());
    }
    if let Some(spec) = &solver.webhook {
        let zones = checker(ctx, solver)?;
        return Ok(Box::new(Webhook::new(
            ctx.client.clone(),
            zones,
            WebhookConfig {
                group: spec.group_name.clone(),
                solver: spec.solver_name.clone(),
                config: spec.config.clone(),
                resource_namespace: issuer.ident.secret_namespace.clone(),
                allow_ambient_credentials: may_use_ambient(&ctx.settings, issuer.kind).is_ok(),
            },
        )));
    }
    Err(
        "the DNS-01 solver names no provider (rfc2136, cloudflare, route53, acmeDNS or webhook)"
            .into(),
    )
}

/// One key of a Secret in the issuer's Secret namespace, trimmed. `what` names the use
/// ("the TSIG Secret") in the messages.
async fn secret_value(
    ctx: &Ctx,
    issuer: &ResolvedIssuer,
    sref: &SecretKeySelector,
    default_key: &str,
    what: &str,
) -> Result<String, String> {
    let ns = &issuer.ident.secret_namespace;
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let secret = api
        .get_opt(&sref.name)
        .await
        .map_err(|e| format!("reading {what} {ns}/{}: {e}", sref.name))?
        .ok_or_else(|| format!("{what} {ns}/{} does not exist", sref.name))?;
    let key = sref.key.as_deref().unwrap_or(default_key);
    let value = data_str(&secret, key)
        .ok_or_else(|| format!("{what} {ns}/{} has no key {key:?}", sref.name))?;
    let value = value.trim();
    if value.is_empty() {
        return Err(format!("{what} {ns}/{} has an empty {key:?}", sref.name));
    }
    Ok(value.to_string())
}

async fn rfc2136(
    ctx: &Ctx,
    issuer: &ResolvedIssuer,
    spec: &Rfc2136Provider,
) -> Result<Rfc2136, String> {
    let secret = match &spec.tsig_secret_secret_ref {
        None => None,
        Some(sref) => {
            Some(secret_value(ctx, issuer, sref, TSIG_SECRET_KEY, "the TSIG Secret").await?)
        }
    };
    Rfc2136::from_spec(spec, secret.as_deref().map(str::as_bytes)).map_err(|e| e.to_string())
}

async fn cloudflare(
    ctx: &Ctx,
    issuer: &ResolvedIssuer,
    spec: &CloudflareProvider,
) -> Result<Cloudflare, String> {
    let token = secret_value(
        ctx,
        issuer,
        &spec.api_token_secret_ref,
        CLOUDFLARE_TOKEN_KEY,
        "the Cloudflare API token Secret",
    )
    .await?;
    Cloudflare::new(CloudflareConfig {
        api_token: token,
        email: spec.email.clone(),
        base_url: ctx.settings.dns01_cloudflare_api_url.clone(),
    })
    .map_err(|e| e.to_string())
}

async fn route53(
    ctx: &Ctx,
    issuer: &ResolvedIssuer,
    spec: &Route53Provider,
) -> Result<Route53, String> {
    let (access_key_id, secret_access_key, session_token) = match &spec.secret_access_key_secret_ref
    {
        Some(secret_ref) => {
            let id = match (&spec.access_key_id, &spec.access_key_id_secret_ref) {
                (Some(id), _) => id.trim().to_string(),
                (None, Some(sref)) => {
                    secret_value(
                        ctx,
                        issuer,
                        sref,
                        ROUTE53_ACCESS_KEY_ID_KEY,
                        "the Route53 access key id Secret",
                    )
                    .await?
                }
                (None, None) => {
                    return Err("dns01.route53: secretAccessKeySecretRef is set without \
                                    accessKeyID or accessKeyIDSecretRef"
                        .into());
                }
            };
            let secret = secret_value(
                ctx,
                issuer,
                secret_ref,
                ROUTE53_SECRET_ACCESS_KEY_KEY,
                "the Route53 secret access key Secret",
            )
            .await?;
            (id, secret, None)
        }
        None => {
            may_use_ambient(&ctx.settings, issuer.kind)?;
            let c = aws_credentials::ambient()
                .await
                .map_err(|e| e.to_string())?;
            (c.access_key_id, c.secret_access_key, c.session_token)
        }
    };
    let mut credentials = AwsCredentials {
        access_key_id,
        secret_access_key,
        session_token,
    };
    if let Some(role) = &spec.role {
        credentials = Sts::from_env()
            .map_err(|e| e.to_string())?
            .assume_role(&credentials, role)
            .await
            .map_err(|e| format!("assuming role {role} for Route53: {e}"))?;
    }
    let mut config = Route53Config::new(credentials.access_key_id, credentials.secret_access_key);
    config.session_token = credentials.session_token;
    config.hosted_zone_id = spec.hosted_zone_id.clone();
    if let Some(region) = &spec.region {
        config.region = region.clone();
    }
    config.endpoint = ctx.settings.dns01_route53_endpoint.clone();
    Route53::new(config).map_err(|e| e.to_string())
}

/// Whether an issuer of `kind` may send acme-dns requests to `host`: a namespaced Issuer (a
/// tenant's) only over https, like its ACME server, so a tenant cannot make the controller speak
/// plain HTTP to whatever its network reaches; a ClusterIssuer (an administrator's) also over
/// http, for an acme-dns inside the cluster. Pure.
pub fn acme_dns_host_allowed(host: &str, kind: IssuerKind) -> Result<(), String> {
    if kind == IssuerKind::Issuer && !host.trim().starts_with("https://") {
        return Err(format!(
            "acmeDNS.host {host:?}: an Issuer must reach acme-dns over https://; plain http:// \
             is allowed only for a ClusterIssuer"
        ));
    }
    Ok(())
}

/// Whether an issuer of `kind` may sign with the controller's own (ambient) cloud credentials;
/// the refusal says what to do instead. Pure.
pub fn may_use_ambient(settings: &super::Settings, kind: IssuerKind) -> Result<(), String> {
    ambient_allowed(
        settings.issuer_ambient_credentials,
        settings.cluster_issuer_ambient_credentials,
        kind,
    )
}

fn ambient_allowed(
    for_issuers: bool,
    for_cluster_issuers: bool,
    kind: IssuerKind,
) -> Result<(), String> {
    let (allowed, flag) = match kind {
        IssuerKind::Issuer => (for_issuers, "--issuer-ambient-credentials"),
        IssuerKind::ClusterIssuer => (for_cluster_issuers, "--cluster-issuer-ambient-credentials"),
    };
    if allowed {
        Ok(())
    } else {
        Err(format!(
            "dns01.route53 names no access key, and this controller does not let {kind:?}s use \
             its own AWS credentials ({flag}=false): put the keys in a Secret \
             (accessKeyIDSecretRef, secretAccessKeySecretRef){}",
            if kind == IssuerKind::Issuer {
                ", or use a ClusterIssuer"
            } else {
                ""
            }
        ))
    }
}

/// The propagation checker for a solver. Lookups (SOA, NS, CNAME) go to the RFC 2136 nameserver,
/// or for the cloud providers to `--dns01-recursive-nameservers` (else the system resolvers);
/// the TXT is checked at the zone's authoritative nameservers or at `--dns01-check-nameservers`.
pub fn checker(ctx: &Ctx, solver: &Dns01Solver) -> Result<PropagationChecker, String> {
    let resolvers = match &solver.rfc2136 {
        Some(spec) => vec![spec.nameserver.clone()],
        None => ctx.settings.dns01_recursive_nameservers.clone(),
    };
    PropagationChecker::new(PropagationConfig {
        resolvers,
        nameservers: ctx.settings.dns01_check_nameservers.clone(),
        ..PropagationConfig::default()
    })
    .map_err(|e| e.to_string())
}

/// DESIGN §3's negative-caching rule: the CA's resolver may have asked for the challenge name in a
/// previous attempt that failed, and may keep that "no such record" answer for the zone's
/// negative-caching TTL (min(SOA MINIMUM, SOA TTL), RFC 2308). So after a failed attempt, the CA
/// is told only once `negative_ttl` has passed since that failure; the answer was cached before
/// the failure, so it has expired by then. Returns when to tell the CA, if that is still ahead.
///
/// Status keeps no per-name history of failed orders, so any earlier failed attempt of the
/// Certificate counts; with the default backoff (1h) the wait has long passed and nothing is
/// delayed. Without a failed attempt nobody asked for the name: no wait at all.
pub fn negative_cache_deadline(
    last_failure: Option<jiff::Timestamp>,
    failed_attempts: i64,
    negative_ttl: u32,
    now: jiff::Timestamp,
) -> Option<jiff::Timestamp> {
    if failed_attempts <= 0 {
        return None;
    }
    let deadline = last_failure?
        .checked_add(jiff::SignedDuration::from_secs(i64::from(negative_ttl)))
        .ok()?;
    (deadline > now).then_some(deadline)
}

/// The key under which a provider-side change of one record is remembered in
/// [`super::Context::dns01_changes`].
pub fn change_key(record_name: &str, value: &str) -> String {
    format!("{record_name} {value}")
}

/// Removes every TXT record the order wrote. Best effort: a failure is logged and reported in the
/// returned list, never fatal (the record does no harm once the order is over).
pub async fn cleanup(
    ctx: &Ctx,
    issuer: &ResolvedIssuer,
    cert_labels: &std::collections::BTreeMap<String, String>,
    order: &OrderStatus,
) -> Vec<String> {
    let mut problems = Vec::new();
    // One provider per solver for the whole clean-up: one Secret read, and Cloudflare's zone
    // lookups and Route53's serialized set edits shared by a wildcard and its apex.
    let mut providers: Vec<(&Dns01Solver, Box<dyn DnsProvider>)> = Vec::new();
    for authz in &order.authorizations {
        let (Some(name), Some(value)) = (&authz.record_name, &authz.record_value) else {
            continue;
        };
        ctx.dns01_changes_lock().remove(&change_key(name, value));
        ctx.dns01_checked_lock().remove(&change_key(name, value));
        if let Some(token) = &authz.token {
            ctx.dns01_checked_lock().remove(&format!("present {token}"));
        }
        let bare = authz.identifier.trim_start_matches("*.");
        let target = crate::solver::select::Target {
            name: bare,
            wildcard: authz.wildcard.unwrap_or(false),
            is_ip: false,
        };
        // The solver that wrote it (same selection), else any DNS-01 solver of the issuer.
        let Some(spec) = crate::solver::select::select(&issuer.acme.solvers, target, cert_labels)
            .and_then(|s| s.dns01.as_ref())
            .or_else(|| issuer.acme.solvers.iter().find_map(|s| s.dns01.as_ref()))
        else {
            problems.push(format!(
                "no DNS-01 solver left to remove {name} TXT {value}"
            ));
            continue;
        };
        if !providers.iter().any(|(s, _)| *s == spec) {
            match provider(ctx, issuer, spec).await {
                Ok(p) => providers.push((spec, p)),
                Err(e) => {
                    tracing::warn!(record = %name, error = %e, "removing a DNS-01 TXT record failed");
                    problems.push(format!("removing TXT {name}: {e}"));
                    continue;
                }
            }
        }
        let result = match providers.iter().find(|(s, _)| *s == spec) {
            Some((_, p)) => p.clean_up(name, value).await.map_err(|e| e.to_string()),
            None => Err("the DNS provider could not be built".to_string()),
        };
        if let Err(e) = result {
            tracing::warn!(record = %name, error = %e, "removing a DNS-01 TXT record failed");
            problems.push(format!("removing TXT {name}: {e}"));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_retries_back_off_with_jitter_and_end_within_minutes() {
        use std::time::Duration;
        assert_eq!(write_retry_delay("r", 0), Duration::ZERO);
        for name in ["a", "b", "c", "d"] {
            let first = write_retry_delay(name, 1);
            assert!(
                (Duration::from_millis(1600)..=Duration::from_millis(2400)).contains(&first),
                "{first:?}"
            );
            let second = write_retry_delay(name, 2);
            assert!(second > first, "{first:?} then {second:?}");
            assert_eq!(
                write_retry_delay(name, 5),
                write_retry_delay(name, 5),
                "one wait per record and try"
            );
            assert!(write_retry_delay(name, 30) <= MAX_WRITE_RETRY.mul_f64(1.2));
            let all: Duration = (1..MAX_WRITE_TRIES as u32)
                .map(|t| write_retry_delay(name, t))
                .sum();
            assert!(
                (Duration::from_secs(5 * 60)..=Duration::from_secs(9 * 60)).contains(&all),
                "{all:?} from the first failure to the last try"
            );
        }
        // Records that fail together do not retry together.
        let spread: std::collections::BTreeSet<_> = (0..20)
            .map(|i| write_retry_delay(&format!("r{i}"), 3))
            .collect();
        assert!(spread.len() > 10, "{spread:?}");
    }

    #[test]
    fn only_cluster_issuers_use_ambient_credentials_by_default() {
        assert!(ambient_allowed(false, true, IssuerKind::ClusterIssuer).is_ok());
        let refusal = ambient_allowed(false, true, IssuerKind::Issuer).unwrap_err();
        assert!(
            refusal.contains("--issuer-ambient-credentials=false"),
            "{refusal}"
        );
        assert!(refusal.contains("use a ClusterIssuer"), "{refusal}");
        assert!(ambient_allowed(true, true, IssuerKind::Issuer).is_ok());
        let refusal = ambient_allowed(true, false, IssuerKind::ClusterIssuer).unwrap_err();
        assert!(!refusal.contains("use a ClusterIssuer"), "{refusal}");
    }

    #[test]
    fn negative_caching_waits_only_after_a_recent_failure() {
        let t = |s: i64| jiff::Timestamp::from_second(1_800_000_000 + s).unwrap();
        // No failed attempt: nobody asked for the name before.
        assert_eq!(negative_cache_deadline(None, 0, 300, t(0)), None);
        assert_eq!(negative_cache_deadline(Some(t(0)), 0, 300, t(1)), None);
        // Failed 10 s ago, negative TTL 300 s: wait until 300 s after the failure.
        assert_eq!(
            negative_cache_deadline(Some(t(0)), 1, 300, t(10)),
            Some(t(300))
        );
        // Long enough ago (the usual case with the 1h backoff): no wait.
        assert_eq!(negative_cache_deadline(Some(t(0)), 3, 300, t(300)), None);
        assert_eq!(negative_cache_deadline(Some(t(0)), 3, 300, t(3600)), None);
        // A zone with no negative caching.
        assert_eq!(negative_cache_deadline(Some(t(0)), 1, 0, t(0)), None);
    }

    #[test]
    fn only_cluster_issuers_reach_acme_dns_over_plain_http() {
        assert!(acme_dns_host_allowed("https://auth.acme-dns.io", IssuerKind::Issuer).is_ok());
        let e = acme_dns_host_allowed("http://10.0.0.5", IssuerKind::Issuer).unwrap_err();
        assert!(e.contains("ClusterIssuer"), "{e}");
        assert!(acme_dns_host_allowed("http://acme-dns.infra", IssuerKind::ClusterIssuer).is_ok());
    }
}

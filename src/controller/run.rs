//! `ferrocert controller`: wires the reconcilers, the HTTP-01 server and the metrics server, and
//! shuts all down on SIGTERM/SIGINT.

use crate::pki::renewal_info::RecheckBounds;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};

use super::http01::Http01Settings;
use super::leader::{self, LeaseSettings};
use super::{Context, Ctx, Settings, certificate, issuer};
use crate::acme::Accounts;
use crate::api::{Certificate, ClusterIssuer, Issuer, IssuerKind};
use crate::error::Error;
use crate::labels;
use crate::metrics::Metrics;
use crate::pki::parse_go_duration;
use crate::solver::http01::self_check::SelfCheckConfig;

/// Flags of `ferrocert controller`.
#[derive(clap::Args, Debug, Clone)]
pub struct ControllerArgs {
    /// Kubeconfig to use outside a cluster (default: in-cluster config, then $KUBECONFIG).
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Where the HTTP-01 challenge server listens.
    #[arg(long, default_value = "0.0.0.0:8089")]
    pub http01_listen: SocketAddr,
    /// Most connections the HTTP-01 listener keeps open at once; more wait in the kernel's
    /// backlog until one closes (a silent connection is cut after 10 s).
    #[arg(long, default_value_t = 1024)]
    pub http01_max_connections: usize,
    /// Where /metrics, /healthz and /readyz are served.
    #[arg(long, default_value = "0.0.0.0:9402")]
    pub metrics_listen: SocketAddr,
    /// Certificates reconciled at once (bounds the load on the CA and the API server).
    #[arg(long, default_value_t = 8)]
    pub concurrency: u16,
    /// First retry delay after a failed issuance (Go duration); doubles per failure.
    #[arg(long, default_value = "1h")]
    pub backoff_base: String,
    /// Longest retry delay (Go duration).
    #[arg(long, default_value = "32h")]
    pub backoff_cap: String,
    /// ARI: the shortest time between two fetches of a certificate's renewal window, whatever
    /// the CA's `Retry-After` says (Go duration).
    #[arg(long, default_value = "1h")]
    pub ari_recheck_min: String,
    /// ARI: the longest time between two fetches of a certificate's renewal window (Go duration).
    #[arg(long, default_value = "24h")]
    pub ari_recheck_max: String,
    /// How often a Certificate with keystores is looked at again to find a changed keystore
    /// password (the password Secrets are not watched) when nothing else is due (Go duration;
    /// jittered by up to 20%).
    #[arg(long, default_value = "10m")]
    pub keystore_password_recheck: String,
    /// Namespace holding ClusterIssuers' Secrets (default: $POD_NAMESPACE, else `ferrocert`).
    #[arg(long, env = "POD_NAMESPACE", default_value = "ferrocert")]
    pub cluster_resource_namespace: String,
    /// The controller's HTTP-01 Service (`NAME` in the cluster resource namespace, or
    /// `NAMESPACE/NAME`): the ready addresses of its EndpointSlices are mirrored into each
    /// challenge's EndpointSlice, so the ingress controller routes the CA to every replica.
    #[arg(long, default_value = "ferrocert-http01")]
    pub http01_service: String,
    /// The port the HTTP-01 self-check connects to (the CA uses 80; test environments change it).
    #[arg(long, default_value_t = 80)]
    pub http01_self_check_port: u16,
    /// Resolvers (`host[:port]`, comma-separated) for the HTTP-01 self-check's lookup of the
    /// challenge name (default: the system's resolver).
    #[arg(long, value_delimiter = ',')]
    pub http01_self_check_nameservers: Vec<String>,
    /// How long the HTTP-01 self-check may keep failing before the attempt is given up without
    /// telling the CA (Go duration).
    #[arg(long, default_value = "5m")]
    pub http01_self_check_timeout: String,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// DNS-01: check propagation at these nameservers (`host[:port]`, comma-separated) instead of
    /// the zone's authoritative ones, e.g. for split-horizon DNS.
    #[arg(long, value_delimiter = ',')]
    pub dns01_check_nameservers: Vec<String>,
    /// DNS-01 with Cloudflare or Route53: resolvers (`host[:port]`, comma-separated) for the
    /// propagation check's SOA, NS and CNAME lookups (default: /etc/resolv.conf).
    #[arg(long, value_delimiter = ',')]
    pub dns01_recursive_nameservers: Vec<String>,
    /// The Cloudflare v4 API base URL (for API-compatible gateways and tests).
    #[arg(long, default_value = crate::solver::dns01::cloudflare::DEFAULT_BASE_URL)]
    pub dns01_cloudflare_api_url: String,
    /// The Route53 API endpoint (for API-compatible gateways, VPC endpoints and tests).
    #[arg(long, default_value = crate::solver::dns01::route53::DEFAULT_ENDPOINT)]
    pub dns01_route53_endpoint: String,
    /// Let namespaced Issuers use the controller's own cloud credentials (a Route53 solver without
    /// keys). Off by default, as in cert-manager: whoever can create an Issuer in any namespace
    /// could otherwise change DNS in every hosted zone the controller's identity may change.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    pub issuer_ambient_credentials: bool,
    /// Let ClusterIssuers (created by cluster administrators) use the controller's own cloud
    /// credentials.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub cluster_issuer_ambient_credentials: bool,
    /// Whether a ClusterIssuer without `spec.policy` may be used from every namespace (true,
    /// cert-manager's behaviour) or only from the cluster resource namespace (false: each
    /// ClusterIssuer must say which namespaces may use it).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub unrestricted_cluster_issuers: bool,
    /// Refuse HTTP-01 for a host that an Ingress or HTTPRoute of another namespace serves
    /// (unless a ClusterIssuer's policy sets `allowHostsServedElsewhere`). Needs list/watch on
    /// Ingresses and HTTPRoutes.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub http01_host_ownership: bool,
    /// Let the HTTP-01 self-check probe loopback, link-local and cloud metadata addresses (for
    /// test environments where every name resolves to 127.0.0.1). Off in a cluster: a tenant's
    /// name resolving there must not make the controller fetch from them.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    pub http01_self_check_allow_internal: bool,
    /// ingress-shim: an Ingress annotated with an issuer (`ferrocert.dev/cluster-issuer`,
    /// `cert-manager.io/cluster-issuer`, ...) gets a Certificate per `spec.tls` Secret.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub ingress_shim: bool,
    /// gateway-shim: the same for Gateway API Gateways (HTTPS/TLS listeners that terminate TLS).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub gateway_shim: bool,
    /// The annotation prefixes the shims honour (comma-separated): `ferrocert.dev` and
    /// `cert-manager.io` (which includes `acme.cert-manager.io`). Leave out `cert-manager.io`
    /// while cert-manager still runs in the cluster.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "ferrocert.dev,cert-manager.io"
    )]
    pub shim_annotation_prefixes: Vec<String>,
    /// Elect a leader on a Lease: only the holder reconciles; every replica serves HTTP-01 tokens
    /// and metrics.
    #[arg(long)]
    pub leader_elect: bool,
    /// Name of the Lease.
    #[arg(long, default_value = "ferrocert")]
    pub lease_name: String,
    /// Namespace of the Lease (default: the cluster resource namespace).
    #[arg(long)]
    pub lease_namespace: Option<String>,
    /// How long a follower waits, from the last change it saw of the Lease, before taking it over
    /// (Go duration). The leader renews every eighth of it and stops reconciling at once when two
    /// thirds of it have passed since its last successful renewal began.
    #[arg(long, default_value = "15s")]
    pub lease_duration: String,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,kube_runtime=warn,kube_client=warn")
    });
    // Colour codes only on a terminal: pod logs and files get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

async fn client(args: &ControllerArgs) -> anyhow::Result<Client> {
    let config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)?;
            kube::Config::from_custom_kubeconfig(
                kubeconfig,
                &kube::config::KubeConfigOptions::default(),
            )
            .await?
        }
        None => kube::Config::infer().await?,
    };
    Ok(Client::try_from(config)?)
}

/// Resolves when SIGTERM or SIGINT arrives.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        () = term => {},
    }
}

/// The shared state of the reconcilers, reading the given caches. A cache that is never fed (in
/// a test driving one reconcile by hand) only means every issuer is read from the API server.
pub fn context(
    client: Client,
    settings: Settings,
    certificates: Store<Certificate>,
    issuers: Store<Issuer>,
    cluster_issuers: Store<ClusterIssuer>,
) -> Ctx {
    let metrics = Metrics::new(Some(certificates.clone()));
    Arc::new(Context {
        client: client.clone(),
        accounts: Accounts::new(metrics.clone()),
        metrics,
        settings,
        events: super::events::EventPublisher::new(
            client,
            "ferrocert",
            std::env::var("POD_NAME").ok(),
        ),
        certificates,
        issuers,
        cluster_issuers,
        polling_since: Default::default(),
        ca_trouble: Default::default(),
        orders: Default::default(),
        dns01_changes: Default::default(),
        dns01_checked: Default::default(),
        http01_backends: watch::channel(None).0,
        http01_clocks: Default::default(),
        gateway_api: Default::default(),
        superseded: Default::default(),
        budgets: Default::default(),
        served_hosts: Default::default(),
    })
}

/// The controller's settings from its command line.
pub fn settings_from(args: &ControllerArgs) -> anyhow::Result<Settings> {
    let (service_namespace, service_name) =
        Http01Settings::parse_service(&args.http01_service, &args.cluster_resource_namespace)
            .map_err(anyhow::Error::msg)?;
    let self_check_timeout = parse_go_duration(&args.http01_self_check_timeout)?.unsigned_abs();
    Ok(Settings {
        backoff_base: parse_go_duration(&args.backoff_base)?.unsigned_abs(),
        backoff_cap: parse_go_duration(&args.backoff_cap)?.unsigned_abs(),
        cluster_resource_namespace: args.cluster_resource_namespace.clone(),
        http01: Http01Settings {
            service_namespace,
            service_name,
            self_check: SelfCheckConfig {
                port: args.http01_self_check_port,
                nameservers: args.http01_self_check_nameservers.clone(),
                allow_internal: args.http01_self_check_allow_internal,
                ..SelfCheckConfig::default()
            },
            self_check_timeout,
        },
        dns01_check_nameservers: args.dns01_check_nameservers.clone(),
        dns01_recursive_nameservers: args.dns01_recursive_nameservers.clone(),
        dns01_cloudflare_api_url: args.dns01_cloudflare_api_url.clone(),
        dns01_route53_endpoint: args.dns01_route53_endpoint.clone(),
        issuer_ambient_credentials: args.issuer_ambient_credentials,
        cluster_issuer_ambient_credentials: args.cluster_issuer_ambient_credentials,
        unrestricted_cluster_issuers: args.unrestricted_cluster_issuers,
        http01_host_ownership: args.http01_host_ownership,
        ari_recheck: RecheckBounds {
            min: parse_go_duration(&args.ari_recheck_min)?.unsigned_abs(),
            max: parse_go_duration(&args.ari_recheck_max)?.unsigned_abs(),
        },
        keystore_password_recheck: parse_go_duration(&args.keystore_password_recheck)?
            .unsigned_abs(),
        shims: super::shim::ShimConfig {
            ingress: args.ingress_shim,
            gateway: args.gateway_shim,
            prefixes: crate::shim::Prefixes::parse(&args.shim_annotation_prefixes)
                .map_err(anyhow::Error::msg)?,
        },
    })
}

/// The reflector caches every replica keeps: Certificates (the HTTP-01 server answers from them,
/// and the Certificate reconciler reads and is woken from the same cache: one copy of each
/// Certificate in memory; managed fields stripped), Issuers and ClusterIssuers (a reconcile reads
/// its issuer from memory).
struct Caches {
    certificates: Store<Certificate>,
    /// Every Certificate the cache applies, by reference, and whether it has synced, for the
    /// reconciler of the current leadership term (`certificate_triggers`) and /readyz.
    certificate_feed: CertificateFeed,
    issuers: Store<Issuer>,
    cluster_issuers: Store<ClusterIssuer>,
    /// The watches, until `stop` turns true.
    task: tokio::task::JoinHandle<()>,
}

/// Changes a reconciler may fall behind by before it is sent every Certificate instead.
const CERTIFICATE_CHANGES_BUFFER: usize = 4096;

/// What the shared Certificate cache tells its readers.
///
/// Readiness is a `tokio::sync::watch` of its own rather than the store's `wait_until_ready`:
/// kube-runtime's store readiness (5.0) keeps only the waker of the last task that polled it, so
/// with two waiters (the reconciler's runner and this feed, or /readyz) one is never woken: the
/// Certificate reconciler then never started (found by the shim end-to-end test).
#[derive(Clone)]
struct CertificateFeed {
    changes: broadcast::Sender<ObjectRef<Certificate>>,
    synced: watch::Receiver<bool>,
}

impl CertificateFeed {
    /// Whether the cache has completed its first list.
    fn synced(&self) -> bool {
        *self.synced.borrow()
    }
}

impl Caches {
    fn start(client: &Client, stop: watch::Receiver<bool>) -> Self {
        let (certificates, writer) = reflector::store::<Certificate>();
        let (certificate_changes, _) = broadcast::channel(CERTIFICATE_CHANGES_BUFFER);
        let (synced_tx, synced) = watch::channel(false);
        let changes = certificate_changes.clone();
        let cert_cache = reflected(client, writer).for_each(move |event| {
            match &event {
                Ok(watcher::Event::Apply(cert) | watcher::Event::InitApply(cert)) => {
                    // No receiver while this replica does not lead: nothing to wake.
                    let _ = changes.send(ObjectRef::from_obj(cert));
                }
                // The reflector has swapped in the full list by now.
                Ok(watcher::Event::InitDone) => {
                    synced_tx.send_replace(true);
                }
                _ => {}
            }
            futures::future::ready(())
        });
        let (issuers, issuer_writer) = reflector::store::<Issuer>();
        let issuer_cache = reflected(client, issuer_writer).for_each(|_| async {});
        let (cluster_issuers, cluster_issuer_writer) = reflector::store::<ClusterIssuer>();
        let cluster_issuer_cache = reflected(client, cluster_issuer_writer).for_each(|_| async {});
        let cache_stop = stopped_once(stop);
        let task = tokio::spawn(async move {
            tokio::select! {
                _ = futures::future::join3(cert_cache, issuer_cache, cluster_issuer_cache) => {},
                () = cache_stop => {},
            }
        });
        Caches {
            certificates,
            certificate_feed: CertificateFeed {
                changes: certificate_changes,
                synced,
            },
            issuers,
            cluster_issuers,
            task,
        }
    }
}

/// What wakes the Certificate reconciler during one leadership term: every Certificate once the
/// shared cache has synced (a new term may have missed changes), then each Certificate the cache
/// applies; every Certificate again if the term fell more than the buffer behind, since a lagging
/// receiver loses changes rather than stalling the cache the HTTP-01 server answers from.
fn certificate_triggers(
    store: Store<Certificate>,
    feed: &CertificateFeed,
) -> impl futures::Stream<Item = Arc<Certificate>> + Send + 'static {
    // Subscribed now: changes from here on are not missed while waiting for the sync.
    let changes = feed.changes.subscribe();
    let mut synced_rx = feed.synced.clone();
    // `None`: every Certificate in the cache.
    let synced = futures::stream::once(async move {
        let _ = synced_rx.wait_for(|s| *s).await;
        None
    });
    let live = futures::stream::unfold(changes, |mut rx| async move {
        match rx.recv().await {
            Ok(changed) => Some((Some(changed), rx)),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::debug!(
                    missed,
                    "fell behind the Certificate cache; waking every Certificate"
                );
                Some((None, rx))
            }
            Err(broadcast::error::RecvError::Closed) => None,
        }
    });
    synced.chain(live).flat_map(move |changed| {
        let woken = match changed {
            Some(obj_ref) => store.get(&obj_ref).into_iter().collect(),
            None => store.state(),
        };
        futures::stream::iter(woken)
    })
}

/// Runs the reconcilers whenever this replica holds the Lease, until asked to stop; stops them at
/// once when the Lease is lost, so that two replicas never write at the same time.
async fn run_while_leading(
    args: &ControllerArgs,
    client: Client,
    ctx: Ctx,
    lease_duration: Duration,
    certificate_feed: &CertificateFeed,
    stop_rx: watch::Receiver<bool>,
) {
    let identity = std::env::var("POD_NAME")
        .unwrap_or_else(|_| format!("{}-{}", hostname(), std::process::id()));
    let lease = LeaseSettings {
        name: args.lease_name.clone(),
        namespace: args
            .lease_namespace
            .clone()
            .unwrap_or_else(|| args.cluster_resource_namespace.clone()),
        identity,
        duration: lease_duration,
    };
    let (leader_tx, mut leader_rx) = watch::channel(false);
    let election = tokio::spawn(leader::run(
        client.clone(),
        lease,
        leader_tx,
        stop_rx.clone(),
    ));
    let mut stop = stop_rx.clone();
    loop {
        tokio::select! {
            _ = leader_rx.wait_for(|l| *l) => {},
            _ = stop.wait_for(|s| *s) => break,
        }
        tracing::info!("leading: starting the reconcilers");
        let (lead_stop_tx, lead_stop_rx) = watch::channel(false);
        let mut reconcilers = tokio::spawn(run_controllers(
            ctx.clone(),
            args.concurrency,
            certificate_feed.clone(),
            lead_stop_rx,
        ));
        tokio::select! {
            _ = leader_rx.wait_for(|l| !*l) => {
                // Lost the lease (or its renew deadline passed): stop writing at once. The
                // reconcilers run no task of their own, so aborting this one drops every
                // reconcile in flight, with its API server and CA requests, at its next await.
                reconcilers.abort();
                let _ = (&mut reconcilers).await;
                tracing::warn!("lost the lease: reconcilers stopped");
            }
            _ = stop.wait_for(|s| *s) => {
                let _ = lead_stop_tx.send(true);
                let _ = (&mut reconcilers).await;
                break;
            }
            _ = &mut reconcilers => {}
        }
    }
    let _ = election.await;
}

pub async fn run(args: ControllerArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let settings = settings_from(&args)?;
    let lease_duration = parse_go_duration(&args.lease_duration)?.unsigned_abs();
    let client = client(&args).await?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = {
        let stop_rx = stop_rx.clone();
        move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        }
    };

    // Every replica keeps a Certificate cache: the HTTP-01 server answers from it.
    let caches = Caches::start(&client, stop_rx.clone());
    let store = caches.certificates.clone();
    let ctx = context(
        client.clone(),
        settings,
        store.clone(),
        caches.issuers.clone(),
        caches.cluster_issuers.clone(),
    );
    let metrics = ctx.metrics.clone();
    if ctx.settings.http01_host_ownership {
        tokio::spawn(super::tenancy::watch_served_hosts(
            client.clone(),
            ctx.served_hosts.clone(),
            stop_rx.clone(),
        ));
    } else {
        ctx.served_hosts.assume_synced();
    }

    // Listeners first: a port clash fails start-up loudly.
    let http01 = TcpListener::bind(args.http01_listen).await?;
    let metrics_listener = TcpListener::bind(args.metrics_listen).await?;
    tracing::info!(http01 = %http01.local_addr()?, metrics = %metrics_listener.local_addr()?, "listening");
    // Whether the HTTP-01 server still runs: /healthz and /readyz fail once it has stopped, so
    // the pod leaves the HTTP-01 Service's endpoints and is restarted.
    let http01_serving = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let http01_task = {
        let serving = http01_serving.clone();
        let server = crate::solver::http01::server::serve(
            http01,
            Arc::new(store.clone()),
            args.http01_max_connections,
            stopped(),
        );
        tokio::spawn(async move {
            if let Err(err) = server.await {
                tracing::error!(%err, "the HTTP-01 server stopped");
            }
            serving.store(false, std::sync::atomic::Ordering::Relaxed);
        })
    };
    let metrics_task = tokio::spawn(crate::http_server::serve(
        metrics_listener,
        metrics_router(
            metrics.clone(),
            caches.certificate_feed.clone(),
            http01_serving,
        ),
        METRICS_MAX_CONNECTIONS,
        stopped(),
    ));

    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });

    if args.leader_elect {
        run_while_leading(
            &args,
            client,
            ctx,
            lease_duration,
            &caches.certificate_feed,
            stop_rx,
        )
        .await;
    } else {
        run_controllers(
            ctx.clone(),
            args.concurrency,
            caches.certificate_feed.clone(),
            stop_rx.clone(),
        )
        .await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = http01_task.await;
        let _ = metrics_task.await;
        let _ = caches.task.await;
    })
    .await;
    Ok(())
}

async fn stopped_once(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "ferrocert".into())
}

/// Connections the metrics and health listener keeps open at once (Prometheus and the kubelet).
const METRICS_MAX_CONNECTIONS: usize = 64;

/// /metrics, /healthz (alive while the HTTP-01 server runs), and /readyz (also once the
/// Certificate cache has synced, so a replica only takes HTTP-01 traffic when it can answer).
fn metrics_router(
    metrics: Metrics,
    certificates: CertificateFeed,
    http01_serving: Arc<std::sync::atomic::AtomicBool>,
) -> Router {
    let serving = move || http01_serving.load(std::sync::atomic::Ordering::Relaxed);
    let serving_for_ready = serving.clone();
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let m = metrics.clone();
                async move { m.encode() }
            }),
        )
        .route(
            "/healthz",
            get(move || {
                let up = serving();
                async move {
                    if up {
                        (axum::http::StatusCode::OK, "ok")
                    } else {
                        (
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            "HTTP-01 server stopped",
                        )
                    }
                }
            }),
        )
        .route(
            "/readyz",
            get(move || {
                let synced = certificates.synced();
                let up = serving_for_ready();
                async move {
                    if !up {
                        (
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            "HTTP-01 server stopped",
                        )
                    } else if synced {
                        (axum::http::StatusCode::OK, "ok")
                    } else {
                        (
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            "cache not synced",
                        )
                    }
                }
            }),
        )
}

/// Drops what the controller never reads from a cached object: its managed fields and kubectl's
/// last-applied copy of the whole object (together often more than half of a Certificate's size),
/// so the caches grow by less per Certificate.
/// Every `K` in the cluster, watched and reflected into `writer` without the metadata nothing
/// here reads (`strip_unused_metadata`), with the default backoff. Poll the stream to keep it up.
fn reflected<K>(
    client: &Client,
    writer: reflector::store::Writer<K>,
) -> impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + use<K>
where
    K: kube::Resource
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    reflector(
        writer,
        watcher(
            Api::<K>::all(client.clone()),
            watcher::Config::default().any_semantic(),
        )
        .modify(strip_unused_metadata),
    )
    .default_backoff()
}

fn strip_unused_metadata<K: ResourceExt>(obj: &mut K) {
    obj.managed_fields_mut().clear();
    obj.annotations_mut()
        .remove("kubectl.kubernetes.io/last-applied-configuration");
}

/// The three reconcilers, until `stop` turns true. The Certificate reconciler is woken from the
/// shared Certificate cache (`certificate_triggers`), so no second copy of every Certificate is
/// kept for it.
async fn run_controllers(
    ctx: Ctx,
    concurrency: u16,
    certificate_feed: CertificateFeed,
    stop: watch::Receiver<bool>,
) {
    let client = ctx.client.clone();
    let stop_for_mirror = stop.clone();
    let stopped = move || stopped_once(stop.clone());
    let store = ctx.certificates.clone();
    let cert_controller = Controller::for_shared_stream(
        certificate_triggers(store.clone(), &certificate_feed),
        store.clone(),
    );
    // Secrets: only ours (by label), metadata only; map back to their Certificate.
    let secrets: Api<PartialObjectMeta<Secret>> = Api::all(client.clone());
    let secret_events = watcher(
        secrets,
        watcher::Config::default()
            .labels(labels::CERTIFICATE_NAME)
            .any_semantic(),
    )
    .touched_objects();
    let issuer_store = store.clone();
    let cluster_issuer_store = store.clone();
    let echo_ctx = ctx.clone();
    let cert_task = cert_controller
        .with_config(ControllerConfig::default().concurrency(concurrency))
        .watches_stream(secret_events, move |secret| {
            let ns = secret.namespace()?;
            let name = secret
                .annotations()
                .get(labels::ANN_CERTIFICATE_NAME)
                .or_else(|| secret.labels().get(labels::CERTIFICATE_NAME))?
                .clone();
            // The TLS Secret exactly as our issuance wrote it: nothing to reconcile.
            if secret.labels().get(labels::SECRET_ROLE).map(String::as_str) == Some("tls")
                && secret
                    .resource_version()
                    .is_some_and(|rv| echo_ctx.orders.secret_seen(&format!("{ns}/{name}"), &rv))
            {
                return None;
            }
            Some(ObjectRef::<Certificate>::new(&name).within(&ns))
        })
        .watches(
            Api::<Issuer>::all(client.clone()),
            watcher::Config::default().any_semantic(),
            move |issuer| {
                let ns = issuer.namespace().unwrap_or_default();
                users_of(
                    &issuer_store,
                    IssuerKind::Issuer,
                    Some(&ns),
                    &issuer.name_any(),
                )
            },
        )
        .watches(
            Api::<ClusterIssuer>::all(client.clone()),
            watcher::Config::default().any_semantic(),
            move |issuer| {
                users_of(
                    &cluster_issuer_store,
                    IssuerKind::ClusterIssuer,
                    None,
                    &issuer.name_any(),
                )
            },
        )
        .graceful_shutdown_on(stopped())
        .run(
            |c, ctx| timed("Certificate", certificate::reconcile(c, ctx.clone()), ctx),
            error_policy,
            ctx.clone(),
        )
        .for_each(|_| async {});
    let issuers = issuer_controllers(ctx.clone(), stop_for_mirror.clone());
    let ingress_shim = super::shim::run_ingress_shim(ctx.clone(), stop_for_mirror.clone());
    let gateway_shim = super::shim::run_gateway_shim(ctx.clone(), stop_for_mirror.clone());
    let mirror = super::http01::mirror_backends(ctx.clone(), stop_for_mirror);
    tokio::join!(cert_task, issuers, mirror, ingress_shim, gateway_shim);
}

/// The Issuer and ClusterIssuer reconcilers, until `stop` turns true.
async fn issuer_controllers(ctx: Ctx, stop: watch::Receiver<bool>) {
    let client = ctx.client.clone();
    let stopped = move || stopped_once(stop.clone());
    // A `ca` issuer's Secret written by ferrocert (a CA Certificate's) wakes the issuer at once;
    // other CA Secrets are looked at every few minutes (`local_issuer::CA_RECHECK`).
    let issuers_store = ctx.issuers.clone();
    let cluster_issuers_store = ctx.cluster_issuers.clone();
    let cluster_ns = ctx.settings.cluster_resource_namespace.clone();
    let issuer_task = Controller::new(
        Api::<Issuer>::all(client.clone()),
        watcher::Config::default().any_semantic(),
    )
    .watches_stream(labelled_secrets(&client), move |secret| {
        let ns = secret.namespace().unwrap_or_default();
        let name = secret.name_any();
        issuers_store
            .state()
            .iter()
            .filter(|i| {
                i.namespace().as_deref() == Some(ns.as_str())
                    && i.spec.ca.as_ref().is_some_and(|ca| ca.secret_name == name)
            })
            .map(|i| ObjectRef::from_obj(i.as_ref()))
            .collect::<Vec<_>>()
    })
    .graceful_shutdown_on(stopped())
    .run(
        |i, ctx| timed("Issuer", issuer::reconcile_issuer(i, ctx.clone()), ctx),
        error_policy,
        ctx.clone(),
    )
    .for_each(|_| async {});
    let cluster_issuer_task = Controller::new(
        Api::<ClusterIssuer>::all(client.clone()),
        watcher::Config::default().any_semantic(),
    )
    .watches_stream(labelled_secrets(&client), move |secret| {
        let name = secret.name_any();
        let in_ns = secret.namespace().as_deref() == Some(cluster_ns.as_str());
        cluster_issuers_store
            .state()
            .iter()
            .filter(|i| in_ns && i.spec.ca.as_ref().is_some_and(|ca| ca.secret_name == name))
            .map(|i| ObjectRef::from_obj(i.as_ref()))
            .collect::<Vec<_>>()
    })
    .graceful_shutdown_on(stopped())
    .run(
        |i, ctx| {
            timed(
                "ClusterIssuer",
                issuer::reconcile_cluster_issuer(i, ctx.clone()),
                ctx,
            )
        },
        error_policy,
        ctx.clone(),
    )
    .for_each(|_| async {});
    tokio::join!(issuer_task, cluster_issuer_task);
}

/// Changes to the Secrets ferrocert writes (label-selected, metadata only).
fn labelled_secrets(
    client: &Client,
) -> impl futures::Stream<Item = Result<PartialObjectMeta<Secret>, watcher::Error>> + Send + 'static
{
    watcher(
        Api::<PartialObjectMeta<Secret>>::all(client.clone()),
        watcher::Config::default()
            .labels(labels::CERTIFICATE_NAME)
            .any_semantic(),
    )
    .touched_objects()
}

/// The Certificates that use an issuer.
fn users_of(
    store: &Store<Certificate>,
    kind: IssuerKind,
    namespace: Option<&str>,
    name: &str,
) -> Vec<ObjectRef<Certificate>> {
    store
        .state()
        .iter()
        .filter(|c| {
            c.spec.issuer_list().iter().any(|r| r.names(kind, name))
                && namespace.is_none_or(|ns| c.namespace().as_deref() == Some(ns))
        })
        .map(|c| ObjectRef::from_obj(c.as_ref()))
        .collect()
}

/// Runs a reconcile and records its outcome and duration.
async fn timed(
    kind: &'static str,
    reconcile: impl std::future::Future<Output = Result<Action, Error>>,
    ctx: Ctx,
) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let result = reconcile.await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => e.metric_label(),
    };
    ctx.metrics
        .observe_reconcile(kind, outcome, started.elapsed().as_secs_f64());
    if let Ok(action) = &result {
        tracing::trace!(?action, elapsed = ?started.elapsed(), "reconciled");
    }
    result
}

/// Retry after an error: soon for a stale view (409), otherwise after a pause (30 s, jittered so
/// that objects failing together do not retry together); never a tight loop.
fn error_policy<K>(obj: Arc<K>, err: &Error, _ctx: Ctx) -> Action
where
    K: kube::Resource<DynamicType = ()>,
{
    if err.is_conflict() {
        tracing::debug!(object = %super::describe(obj.as_ref()), "stale view; retrying");
        return Action::requeue(Duration::from_secs(1));
    }
    tracing::warn!(object = %super::describe(obj.as_ref()), error = %err, "reconcile failed");
    Action::requeue(crate::retry::jittered(Duration::from_secs(30)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    fn cert(name: &str) -> Certificate {
        let mut c = Certificate::new(name, Default::default());
        c.metadata.namespace = Some("ns".into());
        c
    }

    /// A synced cache holding `names`, as the shared reflector leaves it, and its feed.
    fn synced_cache(
        names: &[&str],
        buffer: usize,
    ) -> (
        Store<Certificate>,
        reflector::store::Writer<Certificate>,
        CertificateFeed,
    ) {
        let (store, mut writer) = reflector::store::<Certificate>();
        writer.apply_watcher_event(&watcher::Event::Init);
        for name in names {
            writer.apply_watcher_event(&watcher::Event::InitApply(cert(name)));
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
        let feed = CertificateFeed {
            changes: broadcast::channel(buffer).0,
            synced: watch::channel(true).1,
        };
        (store, writer, feed)
    }

    fn names(woken: &[Arc<Certificate>]) -> Vec<String> {
        let mut n: Vec<String> = woken.iter().map(|c| c.name_any()).collect();
        n.sort();
        n
    }

    /// Everything the stream has ready now, without waiting.
    fn ready_items(
        stream: &mut (impl futures::Stream<Item = Arc<Certificate>> + Unpin),
    ) -> Vec<Arc<Certificate>> {
        let mut out = Vec::new();
        while let Some(Some(item)) = stream.next().now_or_never() {
            out.push(item);
        }
        out
    }

    #[tokio::test]
    async fn a_new_term_wakes_every_certificate_then_each_change() {
        let (store, mut writer, feed) = synced_cache(&["a", "b"], 8);
        let mut triggers = Box::pin(certificate_triggers(store, &feed));
        assert_eq!(names(&ready_items(&mut triggers)), ["a", "b"]);

        writer.apply_watcher_event(&watcher::Event::Apply(cert("c")));
        feed.changes.send(ObjectRef::from_obj(&cert("c"))).unwrap();
        assert_eq!(names(&ready_items(&mut triggers)), ["c"]);
    }

    #[tokio::test]
    async fn a_change_to_a_certificate_gone_since_wakes_nothing() {
        let (store, _writer, feed) = synced_cache(&["a"], 8);
        let mut triggers = Box::pin(certificate_triggers(store, &feed));
        ready_items(&mut triggers);
        feed.changes
            .send(ObjectRef::from_obj(&cert("deleted")))
            .unwrap();
        assert!(ready_items(&mut triggers).is_empty());
    }

    #[tokio::test]
    async fn a_term_that_falls_behind_wakes_every_certificate() {
        let (store, _writer, feed) = synced_cache(&["a", "b", "c"], 2);
        let mut triggers = Box::pin(certificate_triggers(store, &feed));
        ready_items(&mut triggers);
        for _ in 0..5 {
            feed.changes.send(ObjectRef::from_obj(&cert("a"))).unwrap();
        }
        // Lagged: all three, then the two changes still buffered.
        let woken = names(&ready_items(&mut triggers));
        assert_eq!(woken, ["a", "a", "a", "b", "c"]);
    }

    /// The sync must wake the trigger stream by itself, while other tasks wait on the store's
    /// own readiness (kube's runner does): the stream is driven by a task and only woken, never
    /// polled by hand after the sync.
    #[tokio::test]
    async fn the_sync_wakes_the_reconciler_while_others_wait_on_the_store() {
        let (store, mut writer) = reflector::store::<Certificate>();
        let (synced_tx, synced) = watch::channel(false);
        let feed = CertificateFeed {
            changes: broadcast::channel(8).0,
            synced,
        };
        let (woken_tx, mut woken_rx) = tokio::sync::mpsc::unbounded_channel();
        let mut triggers = Box::pin(certificate_triggers(store.clone(), &feed));
        let driver = tokio::spawn(async move {
            while let Some(c) = triggers.next().await {
                let _ = woken_tx.send(c.name_any());
            }
        });
        // Two more waiters on the store's readiness, registered after the stream's.
        let other_waiters: Vec<_> = (0..2)
            .map(|_| {
                let s = store.clone();
                tokio::spawn(async move { s.wait_until_ready().await.is_ok() })
            })
            .collect();
        tokio::task::yield_now().await;
        assert!(woken_rx.try_recv().is_err(), "nothing before the sync");
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitApply(cert("a")));
        writer.apply_watcher_event(&watcher::Event::InitDone);
        synced_tx.send_replace(true);
        let first = tokio::time::timeout(Duration::from_secs(5), woken_rx.recv())
            .await
            .expect("the reconciler is woken after the sync");
        assert_eq!(first.as_deref(), Some("a"));
        driver.abort();
        for w in other_waiters {
            w.abort();
        }
    }

    #[tokio::test]
    async fn nothing_is_woken_before_the_cache_has_synced() {
        let (store, mut writer) = reflector::store::<Certificate>();
        let (synced_tx, synced) = watch::channel(false);
        let feed = CertificateFeed {
            changes: broadcast::channel(8).0,
            synced,
        };
        let mut triggers = Box::pin(certificate_triggers(store, &feed));
        assert!(ready_items(&mut triggers).is_empty());
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitApply(cert("a")));
        writer.apply_watcher_event(&watcher::Event::InitDone);
        synced_tx.send_replace(true);
        tokio::task::yield_now().await;
        assert_eq!(names(&ready_items(&mut triggers)), ["a"]);
    }
}

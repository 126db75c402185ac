//! What the harness does to the API server: namespaces, an Issuer for Pebble, Certificates and
//! unrelated Secrets in bulk (bounded concurrency), waiting for Ready, reading the API server's
//! request counters, and removing everything a scenario made (the local environment runs no
//! kube-controller-manager, so nothing is garbage-collected for us).

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;

use ferrocert::api::conditions::{self, READY};
use ferrocert::api::{Certificate, Issuer};

use crate::prom;

/// Where the local environment is (from `.testenv/env.sh`).
#[derive(Clone, Debug)]
pub struct Env {
    pub kubeconfig: String,
    pub pebble_directory: String,
    pub pebble_ca_file: String,
    /// Where Traefik takes Pebble's HTTP-01 requests (and the self-check's).
    pub http01_port: u16,
    /// Where the controller's (or the floor's) HTTP-01 listener goes: the address the HTTP-01
    /// Service's EndpointSlice lists.
    pub http01_listen: String,
    /// `NAMESPACE/NAME` of that Service.
    pub http01_service: String,
    pub ingress_class: String,
    pub dns_server: String,
    pub zone: String,
}

impl Env {
    pub fn from_environment() -> Result<Self> {
        let var = |name: &str| {
            std::env::var(name).with_context(|| {
                format!("{name} is not set: start the environment (tests/env/up.sh) and `source .testenv/env.sh`")
            })
        };
        Ok(Env {
            kubeconfig: var("KUBECONFIG")?,
            pebble_directory: var("PEBBLE_DIRECTORY")?,
            pebble_ca_file: var("PEBBLE_CA_FILE")?,
            http01_port: var("HTTP01_PORT")?.parse().context("HTTP01_PORT")?,
            http01_listen: format!(
                "{}:{}",
                var("HTTP01_BACKEND_IP")?,
                var("HTTP01_BACKEND_PORT")?
            ),
            http01_service: var("HTTP01_SERVICE")?,
            ingress_class: var("INGRESS_CLASS")?,
            dns_server: var("DNS_SERVER")?,
            zone: std::env::var("TEST_ZONE").unwrap_or_else(|_| "example.test".into()),
        })
    }
}

/// Installs (or updates) the CRDs and waits until the API server serves them.
pub async fn install_crds(client: &Client) -> Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (_, crd) in ferrocert::crds::all() {
        let name = crd.name_any();
        let mut body = serde_json::to_value(&crd)?;
        body["apiVersion"] = "apiextensions.k8s.io/v1".into();
        body["kind"] = "CustomResourceDefinition".into();
        api.patch(
            &name,
            &PatchParams::apply("ferrocert-bench").force(),
            &Patch::Apply(&body),
        )
        .await
        .with_context(|| format!("applying CRD {name}"))?;
    }
    let certs: Api<Certificate> = Api::all(client.clone());
    let started = Instant::now();
    while certs.list(&ListParams::default().limit(1)).await.is_err() {
        if started.elapsed() > Duration::from_secs(30) {
            bail!("the Certificate CRD is not served after 30 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// Creates a namespace (ignoring "already exists").
pub async fn create_namespace(client: &Client, name: &str) -> Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating namespace {name}")),
    }
}

/// The Issuer every scenario uses: the local Pebble, HTTP-01 through Traefik (served by the
/// controller itself).
pub async fn create_issuer(client: &Client, env: &Env, ns: &str) -> Result<()> {
    let ca = std::fs::read(&env.pebble_ca_file)
        .with_context(|| format!("reading {}", env.pebble_ca_file))?;
    let issuer: Issuer = serde_json::from_value(json!({
        "apiVersion": "ferrocert.dev/v1alpha1",
        "kind": "Issuer",
        "metadata": {"name": ISSUER},
        "spec": {"acme": {
            "server": env.pebble_directory,
            "email": "bench@example.test",
            "caBundle": base64::engine::general_purpose::STANDARD.encode(ca),
            "privateKeySecretRef": {"name": "pebble-account"},
            // Without a profile Pebble picks one at random, and a third of the certificates would
            // get the environment's 10-minute profile and renew during a long run.
            "profile": "default",
            "solvers": [{"http01": {"ingress": {"ingressClassName": env.ingress_class}}}]
        }}
    }))?;
    Api::<Issuer>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &issuer)
        .await
        .with_context(|| format!("creating Issuer {ns}/{ISSUER}"))?;
    Ok(())
}

/// The name of the Issuer of every scenario.
pub const ISSUER: &str = "pebble";

/// Waits until the Issuer has its account.
pub async fn wait_issuer_ready(client: &Client, ns: &str, limit: Duration) -> Result<()> {
    let api: Api<Issuer> = Api::namespaced(client.clone(), ns);
    let started = Instant::now();
    loop {
        let issuer = api.get(ISSUER).await?;
        if issuer
            .status
            .as_ref()
            .is_some_and(|s| conditions::is_true(&s.conditions, READY))
        {
            return Ok(());
        }
        if started.elapsed() > limit {
            bail!("Issuer {ns}/{ISSUER} not Ready after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A Certificate for one DNS name, HTTP-01.
pub fn certificate(name: &str, dns_name: &str) -> Result<Certificate> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "ferrocert.dev/v1alpha1",
        "kind": "Certificate",
        "metadata": {"name": name},
        "spec": {
            "secretName": format!("{name}-tls"),
            "dnsNames": [dns_name],
            "issuerRef": {"name": ISSUER}
        }
    }))?)
}

/// Names of the `n` Certificates of a run: `c-00000` ... (the DNS name adds the run's tag).
pub fn cert_names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("c-{i:05}")).collect()
}

/// Creates the Certificates with at most `concurrency` requests in flight.
pub async fn create_certificates(
    client: &Client,
    ns: &str,
    names: &[String],
    tag: &str,
    zone: &str,
    concurrency: usize,
) -> Result<()> {
    let certs = names
        .iter()
        .map(|name| certificate(name, &format!("{name}.{tag}.{zone}")))
        .collect::<Result<Vec<_>>>()?;
    create_all(client, ns, certs, concurrency).await
}

/// Creates `objects` in `ns` with at most `concurrency` requests in flight.
async fn create_all<K>(client: &Client, ns: &str, objects: Vec<K>, concurrency: usize) -> Result<()>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    futures::stream::iter(objects.into_iter().map(|object| {
        let api = api.clone();
        async move {
            api.create(&PostParams::default(), &object)
                .await
                .with_context(|| format!("creating {} {}", K::kind(&()), object.name_any()))?;
            Ok::<_, anyhow::Error>(())
        }
    }))
    .buffer_unordered(concurrency.max(1))
    .try_collect::<()>()
    .await
}

/// Whether a Certificate has its certificate: Ready, revision ≥ 1, no order in flight.
pub fn is_ready(cert: &Certificate) -> bool {
    cert.status.as_ref().is_some_and(|s| {
        conditions::is_true(&s.conditions, READY)
            && s.revision.unwrap_or(0) >= 1
            && s.order.is_none()
    })
}

/// Whether a Certificate kept the certificate it found: Ready, adopted, no order in flight.
pub fn is_adopted(cert: &Certificate) -> bool {
    cert.status.as_ref().is_some_and(|s| {
        conditions::is_true(&s.conditions, READY) && s.adopted.is_some() && s.order.is_none()
    })
}

/// Creates, for each name, a `kubernetes.io/tls` Secret `<name>-tls` as cert-manager leaves it:
/// a certificate for `<name>.<tag>.<zone>` (90 days from yesterday, ECDSA P-256, from a CA made
/// here, chain leaf + CA), its key in SEC1 (ferrocert's default encoding), and cert-manager's
/// annotations naming the Certificate `<name>`. What a cluster switching from cert-manager has.
pub async fn create_cert_manager_secrets(
    client: &Client,
    ns: &str,
    names: &[String],
    tag: &str,
    zone: &str,
    concurrency: usize,
) -> Result<()> {
    use ferrocert::pki::{KeySpec, generate};
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    let now = jiff::Timestamp::now().as_second().max(86_400) as u64;
    let validity = |params: &mut rcgen::CertificateParams| {
        params.not_before = epoch + Duration::from_secs(now - 86_400);
        params.not_after = epoch + Duration::from_secs(now + 89 * 86_400);
    };
    let ca_key = generate(&KeySpec::default())?.to_rcgen_key_pair()?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "bench cert-manager CA");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    validity(&mut ca_params);
    let ca_pem = ca_params.self_signed(&ca_key)?.pem();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let mut secrets = Vec::with_capacity(names.len());
    for name in names {
        let key = generate(&KeySpec::default())?;
        let mut params = rcgen::CertificateParams::new(vec![format!("{name}.{tag}.{zone}")])?;
        validity(&mut params);
        let leaf = params.signed_by(&key.to_rcgen_key_pair()?, &issuer)?.pem();
        let key_pem = key.to_pem(ferrocert::api::PrivateKeyEncoding::PKCS1)?;
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {
                "name": format!("{name}-tls"),
                "annotations": {
                    "cert-manager.io/certificate-name": name,
                    "cert-manager.io/issuer-name": "letsencrypt",
                    "cert-manager.io/issuer-kind": "ClusterIssuer",
                    "cert-manager.io/issuer-group": "cert-manager.io",
                }
            },
            "type": "kubernetes.io/tls",
            "data": {
                "tls.crt": base64::engine::general_purpose::STANDARD.encode(format!("{leaf}{ca_pem}")),
                "tls.key": base64::engine::general_purpose::STANDARD.encode(key_pem),
            }
        }))?;
        secrets.push(secret);
    }
    create_all(client, ns, secrets, concurrency).await
}

/// Watches the namespace until `n` Certificates are ready; returns, per Certificate, when it was
/// first seen ready (measured from `since`). After `limit` it returns what it has (fewer than
/// `n`): a run that does not finish is still a measurement.
pub async fn wait_all_ready(
    client: &Client,
    ns: &str,
    n: usize,
    since: Instant,
    limit: Duration,
    ready_when: fn(&Certificate) -> bool,
) -> Result<Vec<Duration>> {
    let api: Api<Certificate> = Api::namespaced(client.clone(), ns);
    let mut ready: HashSet<String> = HashSet::new();
    let mut times = Vec::with_capacity(n);
    let stream = watcher(api, watcher::Config::default().any_semantic());
    futures::pin_mut!(stream);
    let deadline = since + limit;
    while ready.len() < n {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let event = match tokio::time::timeout(remaining, stream.next()).await {
            Err(_) => return Ok(times),
            Ok(None) => bail!("the Certificate watch ended"),
            Ok(Some(Err(e))) => {
                tracing_free_warn(&format!("watch error (retrying): {e}"));
                continue;
            }
            Ok(Some(Ok(event))) => event,
        };
        let (watcher::Event::Apply(cert) | watcher::Event::InitApply(cert)) = event else {
            continue;
        };
        if ready_when(&cert) && ready.insert(cert.name_any()) {
            times.push(since.elapsed());
        }
    }
    Ok(times)
}

fn tracing_free_warn(message: &str) {
    eprintln!("[bench] {message}");
}

/// Creates `n` Secrets of `bytes` random-looking bytes each that have nothing to do with
/// ferrocert (no label), with at most `concurrency` requests in flight.
pub async fn create_unrelated_secrets(
    client: &Client,
    ns: &str,
    n: usize,
    bytes: usize,
    concurrency: usize,
) -> Result<()> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    futures::stream::iter((0..n).map(|i| {
        let api = api.clone();
        async move {
            let mut secret = Secret::default();
            secret.metadata.name = Some(format!("unrelated-{i:05}"));
            secret.data = Some(BTreeMap::from([(
                "blob".to_string(),
                ByteString(filler(i, bytes)),
            )]));
            api.create(&PostParams::default(), &secret)
                .await
                .with_context(|| format!("creating unrelated Secret {i}"))?;
            Ok::<_, anyhow::Error>(())
        }
    }))
    .buffer_unordered(concurrency.max(1))
    .try_collect::<()>()
    .await
}

/// Deterministic, incompressible-enough filler (etcd and the API server do not compress, but
/// the data should not be all zeroes anyway).
fn filler(seed: usize, bytes: usize) -> Vec<u8> {
    let mut x = (seed as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..bytes)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Deletes every Certificate of the namespace and waits until they are gone (the controller,
/// if running, removes its order finalizer from any still issuing; without one it is stripped).
pub async fn delete_certificates(client: &Client, ns: &str) -> Result<()> {
    let api: Api<Certificate> = Api::namespaced(client.clone(), ns);
    api.delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .with_context(|| format!("deleting the Certificates of {ns}"))?;
    let started = Instant::now();
    loop {
        let left = api.list_metadata(&ListParams::default()).await?;
        if left.items.is_empty() {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(30) {
            // No controller to release the finalizers: drop them.
            for cert in left.items.iter().filter(|c| !c.finalizers().is_empty()) {
                let patch = json!({"metadata": {"finalizers": null}});
                let _ = api
                    .patch(
                        &cert.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await;
            }
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("{} Certificates in {ns} are not gone", left.items.len());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Deletes everything else a scenario made in its namespace, then the namespace (which stays
/// `Terminating` without a namespace controller, empty and harmless).
pub async fn delete_namespace_contents(client: &Client, ns: &str) -> Result<()> {
    delete_all::<Secret>(client, ns).await?;
    delete_all::<Service>(client, ns).await?;
    delete_all::<Ingress>(client, ns).await?;
    delete_all::<Event>(client, ns).await?;
    delete_all::<Issuer>(client, ns).await?;
    let _ = Api::<Namespace>::all(client.clone())
        .delete(ns, &DeleteParams::default())
        .await;
    Ok(())
}

/// `deletecollection` until none is left (a very large collection may time out server-side and
/// be finished by the next call).
async fn delete_all<K>(client: &Client, ns: &str) -> Result<()>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    for _ in 0..20 {
        let _ = api
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await;
        if api
            .list_metadata(&ListParams::default().limit(1))
            .await?
            .items
            .is_empty()
        {
            return Ok(());
        }
    }
    bail!("could not empty {} in {ns}", K::plural(&()))
}

/// The API server's request counters by verb, for the resources the controller works with.
///
/// Excluded, because they are not the controller's: Certificate CREATE, LIST and WATCH (the
/// harness creates the Certificates and watches them; the controller never creates one and its
/// own list and watch start before a measurement), leases (the API server renews its own
/// identity lease every 10 s), and every other resource (namespaces, the API server's internal
/// loops).
pub async fn apiserver_requests(client: &Client) -> Result<BTreeMap<String, f64>> {
    let text = apiserver_metrics(client).await?;
    Ok(prom::by_label(
        &text,
        "apiserver_request_total",
        "verb",
        controller_request,
    ))
}

/// The same requests by resource (with its subresource) and verb, e.g. `certificates/status
/// APPLY`, plus the EndpointSlices of the HTTP-01 solver, which [`apiserver_requests`] leaves out
/// to stay comparable with the earlier runs. Shows where each issuance's requests go.
pub async fn apiserver_requests_by_resource(client: &Client) -> Result<BTreeMap<String, f64>> {
    let text = apiserver_metrics(client).await?;
    let mut out = BTreeMap::new();
    for s in prom::samples(&text, "apiserver_request_total") {
        if !(controller_request(&s) || s.label("resource") == "endpointslices") {
            continue;
        }
        let resource = match s.label("subresource") {
            "" => s.label("resource").to_string(),
            sub => format!("{}/{sub}", s.label("resource")),
        };
        *out.entry(format!("{resource} {}", s.label("verb")))
            .or_insert(0.0) += s.value;
    }
    Ok(out)
}

/// Which API server requests count as the controller's (see [`apiserver_requests`]).
pub fn controller_request(s: &prom::Sample) -> bool {
    let resource = s.label("resource");
    let verb = s.label("verb");
    match resource {
        "certificates" => {
            !(s.label("subresource").is_empty()
                && matches!(verb, "POST" | "CREATE" | "LIST" | "WATCH"))
        }
        "issuers" | "clusterissuers" | "secrets" | "services" | "ingresses" | "events" => true,
        _ => false,
    }
}

/// The API server's `/metrics`.
pub async fn apiserver_metrics(client: &Client) -> Result<String> {
    let request = http::Request::get("/metrics")
        .body(Vec::new())
        .context("building the /metrics request")?;
    client
        .request_text(request)
        .await
        .context("reading the API server's /metrics")
}

/// The write verbs of `apiserver_request_total`.
pub fn is_write(verb: &str) -> bool {
    matches!(
        verb,
        "CREATE" | "POST" | "UPDATE" | "PUT" | "PATCH" | "APPLY" | "DELETE" | "DELETECOLLECTION"
    )
}

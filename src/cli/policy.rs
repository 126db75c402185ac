//! `ferrocert policy check`: whether a Certificate would be allowed by its issuer's
//! `spec.policy`, and by which rule, without creating anything. The decision is the controller's
//! own ([`crate::policy::evaluate`]); this module only finds its inputs (the Certificates of a
//! file, the issuer from the cluster or from `--issuer-file`, the namespace's labels) and
//! formats the verdict (pure, [`verdict_line`]).
//!
//! Exit codes: 0 every check allowed; 1 some check refused; 2 an error (unreadable file, issuer
//! not found, API server unreachable). Not judged here: HTTP-01 host ownership and budgets,
//! which depend on the cluster's routes and the controller's counts at issuance.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use kube::{Client, ResourceExt};
use serde_json::Value;

use super::{CliError, KubeArgs};
use crate::api::{Certificate, ClusterIssuer, Issuer, IssuerKind, IssuerPolicy, IssuerRef};
use crate::policy::{self, Denial, Grant, Requester};

#[derive(clap::Args, Debug, Clone)]
pub struct PolicyArgs {
    #[command(subcommand)]
    pub command: PolicyCommand,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum PolicyCommand {
    /// Say whether the Certificates of a file would be allowed by their issuers' policies, and
    /// by which rule (exit code 0: allowed; 1: refused; 2: error). Creates nothing.
    Check(CheckArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct CheckArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// The Certificate(s) to check (multi-document YAML; `-` reads stdin).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
    /// Read the Issuer/ClusterIssuer(s) from this file instead of the cluster (no API server is
    /// needed then).
    #[arg(long, value_name = "FILE")]
    pub issuer_file: Option<PathBuf>,
    /// With `--issuer-file`: the labels of the Certificate's namespace (`k=v,k2=v2`), for a
    /// policy that selects namespaces by label.
    #[arg(long, value_name = "LABELS")]
    pub namespace_labels: Option<String>,
    /// The controller's namespace (its `--cluster-resource-namespace`): the administrator's.
    #[arg(long, default_value = "ferrocert")]
    pub cluster_resource_namespace: String,
    /// The controller's `--unrestricted-cluster-issuers`.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub unrestricted_cluster_issuers: bool,
}

/// An issuer as the check sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct IssuerView {
    pub kind: IssuerKind,
    pub name: String,
    /// The namespace of an Issuer; `None` for a ClusterIssuer.
    pub namespace: Option<String>,
    pub policy: Option<IssuerPolicy>,
    /// Whether it is an ACME issuer (HTTP-01 host ownership may apply).
    pub acme: bool,
}

fn describe(kind: IssuerKind, name: &str) -> String {
    match kind {
        IssuerKind::Issuer => format!("Issuer {name}"),
        IssuerKind::ClusterIssuer => format!("ClusterIssuer {name}"),
    }
}

/// What the grant adds, in words: the duration cap (as the policy spells it, when given) and
/// the CA constraints.
pub fn grant_summary(grant: &Grant, max_duration_text: Option<&str>) -> Vec<String> {
    let mut parts = Vec::new();
    if let Some(max) = grant.max_duration {
        let text = max_duration_text.map_or_else(|| super::human_duration(max), str::to_string);
        parts.push(format!("lifetime at most {text} (policy.maxDuration)"));
    }
    if let Some(ca) = &grant.ca_constraints {
        let mut text = format!("CA path length {}", ca.path_length);
        if !ca.permitted_dns_domains.is_empty() {
            text.push_str(&format!(
                ", permitted DNS domains {}",
                ca.permitted_dns_domains.join(", ")
            ));
        }
        if !ca.excluded_dns_domains.is_empty() {
            text.push_str(&format!(
                ", excluded DNS domains {}",
                ca.excluded_dns_domains.join(", ")
            ));
        }
        if !ca.permitted_ip_ranges.is_empty() {
            let ranges: Vec<String> = ca
                .permitted_ip_ranges
                .iter()
                .map(|r| r.to_string())
                .collect();
            text.push_str(&format!(", permitted IP ranges {}", ranges.join(", ")));
        }
        parts.push(text);
    }
    parts
}

/// The line for one check: `Certificate ns/name: allowed by ...` or `...: refused by ...`.
pub fn verdict_line(
    cert: &str,
    issuer: &IssuerView,
    namespace: &str,
    result: &Result<Grant, Denial>,
    unrestricted_default: bool,
    cluster_resource_namespace: &str,
) -> String {
    let who = describe(issuer.kind, &issuer.name);
    match result {
        Err(denial) => format!(
            "Certificate {cert}: refused by {who} (rule {}): {}",
            denial.rule, denial.message
        ),
        Ok(grant) => {
            let why = if namespace == cluster_resource_namespace
                && issuer.kind == IssuerKind::ClusterIssuer
            {
                format!(
                    "namespace {namespace} is the controller's own (--cluster-resource-namespace)"
                )
            } else if issuer.policy.is_none() {
                match issuer.kind {
                    IssuerKind::Issuer => {
                        "it has no policy (an Issuer serves its own namespace)".to_string()
                    }
                    IssuerKind::ClusterIssuer => format!(
                        "it has no policy (open to every namespace: \
                         --unrestricted-cluster-issuers={unrestricted_default})"
                    ),
                }
            } else {
                "within its policy".to_string()
            };
            let mut line = format!("Certificate {cert}: allowed by {who}: {why}");
            let max_text = issuer
                .policy
                .as_ref()
                .and_then(|p| p.max_duration.as_deref());
            let adds = grant_summary(grant, max_text);
            if !adds.is_empty() {
                line.push_str("; the certificate gets ");
                line.push_str(&adds.join("; "));
            }
            line
        }
    }
}

/// What the controller judges at issuance that this check cannot: a line or none.
pub fn not_checked_here(issuer: &IssuerView) -> Vec<String> {
    let mut lines = Vec::new();
    let exempt = issuer.kind == IssuerKind::ClusterIssuer
        && issuer
            .policy
            .as_ref()
            .and_then(|p| p.allow_hosts_served_elsewhere)
            .unwrap_or(false);
    if issuer.acme && !exempt {
        lines.push(
            "  not checked here: HTTP-01 names that an Ingress or HTTPRoute of another namespace \
             serves are refused by the controller at issuance"
                .to_string(),
        );
    }
    if issuer.policy.as_ref().is_some_and(|p| p.budget.is_some()) {
        lines.push(
            "  not checked here: policy.budget is counted by the controller at issuance"
                .to_string(),
        );
    }
    lines
}

/// `k=v,k2=v2` to labels.
pub fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                Ok((k.trim().to_string(), v.trim().to_string()))
            }
            _ => Err(format!(
                "invalid --namespace-labels entry {pair:?}: expected key=value"
            )),
        })
        .collect()
}

/// The objects of a multi-document YAML text, as JSON.
fn documents(text: &str, source: &str) -> Result<Vec<Value>, String> {
    use serde::Deserialize as _;
    let mut out = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = match serde_yaml::Value::deserialize(doc) {
            Ok(v) => v,
            Err(e) if e.to_string().contains("EOF while parsing") => continue,
            Err(e) => return Err(format!("{source}: document {}: not YAML: {e}", i + 1)),
        };
        if value.is_null() {
            continue;
        }
        let json = serde_json::to_value(&value)
            .map_err(|e| format!("{source}: document {}: {e}", i + 1))?;
        out.push(json);
    }
    Ok(out)
}

fn kind_of(doc: &Value) -> (String, String) {
    let field = |key: &str| {
        doc.get(key)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    (field("apiVersion"), field("kind"))
}

fn is_ferrocert(api_version: &str) -> bool {
    api_version.split('/').next() == Some(crate::api::GROUP)
}

/// The ferrocert Certificates of a file; other documents are skipped, a cert-manager
/// Certificate is an error that says to convert it first.
pub fn certificates(text: &str, source: &str) -> Result<Vec<Certificate>, String> {
    let mut certs = Vec::new();
    for (i, doc) in documents(text, source)?.into_iter().enumerate() {
        let (api_version, kind) = kind_of(&doc);
        if kind != "Certificate" {
            continue;
        }
        if !is_ferrocert(&api_version) {
            return Err(format!(
                "{source}: document {}: a {api_version} Certificate; convert it first \
                 (ferrocert convert)",
                i + 1
            ));
        }
        let cert: Certificate = serde_json::from_value(doc).map_err(|e| {
            format!(
                "{source}: document {}: not a ferrocert Certificate: {e}",
                i + 1
            )
        })?;
        certs.push(cert);
    }
    if certs.is_empty() {
        return Err(format!("{source}: no ferrocert.dev Certificate in it"));
    }
    Ok(certs)
}

/// The Issuers and ClusterIssuers of an issuer file.
pub fn issuers(text: &str, source: &str) -> Result<Vec<IssuerView>, String> {
    let mut out = Vec::new();
    for (i, doc) in documents(text, source)?.into_iter().enumerate() {
        let (api_version, kind) = kind_of(&doc);
        if !is_ferrocert(&api_version) || !matches!(kind.as_str(), "Issuer" | "ClusterIssuer") {
            continue;
        }
        let bad = |e: serde_json::Error| {
            format!("{source}: document {}: not a ferrocert {kind}: {e}", i + 1)
        };
        out.push(if kind == "Issuer" {
            let issuer: Issuer = serde_json::from_value(doc).map_err(bad)?;
            IssuerView {
                kind: IssuerKind::Issuer,
                name: issuer.name_any(),
                namespace: issuer.namespace(),
                acme: issuer.spec.acme.is_some(),
                policy: issuer.spec.policy,
            }
        } else {
            let issuer: ClusterIssuer = serde_json::from_value(doc).map_err(bad)?;
            IssuerView {
                kind: IssuerKind::ClusterIssuer,
                name: issuer.name_any(),
                namespace: None,
                acme: issuer.spec.acme.is_some(),
                policy: issuer.spec.policy,
            }
        });
    }
    if out.is_empty() {
        return Err(format!(
            "{source}: no ferrocert.dev Issuer or ClusterIssuer in it"
        ));
    }
    Ok(out)
}

/// The issuer of `file` a reference from namespace `namespace` names (an Issuer without a
/// namespace in the file counts as the Certificate's).
pub fn find_issuer<'a>(
    file: &'a [IssuerView],
    reference: &IssuerRef,
    namespace: &str,
) -> Option<&'a IssuerView> {
    let kind = reference.kind.unwrap_or_default();
    file.iter().find(|i| {
        i.kind == kind
            && i.name == reference.name
            && (kind == IssuerKind::ClusterIssuer
                || i.namespace.as_deref().is_none_or(|ns| ns == namespace))
    })
}

/// The Certificate's namespace: its own, else `-n`/the context's; both and different is an
/// error, as with kubectl.
pub fn namespace_of(cert: &Certificate, default: &str, explicit: bool) -> Result<String, String> {
    match cert.namespace() {
        Some(ns) if explicit && ns != default => Err(format!(
            "Certificate {}: its namespace {ns} differs from -n {default}",
            cert.name_any()
        )),
        Some(ns) => Ok(ns),
        None => Ok(default.to_string()),
    }
}

fn read_file(path: &Path) -> Result<String, String> {
    let mut text = String::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin().lock().read_to_string(&mut text).map(drop)
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut text).map(drop))
    };
    read.map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    Ok(text)
}

/// Where issuers and namespace labels come from.
enum Source {
    File {
        issuers: Vec<IssuerView>,
        labels: Option<BTreeMap<String, String>>,
    },
    Cluster(Client),
}

async fn issuer_from_cluster(
    client: &Client,
    reference: &IssuerRef,
    namespace: &str,
) -> Result<IssuerView, CliError> {
    let name = reference.name.as_str();
    match reference.kind.unwrap_or_default() {
        IssuerKind::Issuer => {
            let api: Api<Issuer> = Api::namespaced(client.clone(), namespace);
            let issuer = api
                .get(name)
                .await
                .map_err(|e| CliError::from_kube("Issuer", namespace, name, e))?;
            Ok(IssuerView {
                kind: IssuerKind::Issuer,
                name: name.to_string(),
                namespace: Some(namespace.to_string()),
                acme: issuer.spec.acme.is_some(),
                policy: issuer.spec.policy,
            })
        }
        IssuerKind::ClusterIssuer => {
            let api: Api<ClusterIssuer> = Api::all(client.clone());
            let issuer = api
                .get(name)
                .await
                .map_err(|e| CliError::from_kube("ClusterIssuer", "", name, e))?;
            Ok(IssuerView {
                kind: IssuerKind::ClusterIssuer,
                name: name.to_string(),
                namespace: None,
                acme: issuer.spec.acme.is_some(),
                policy: issuer.spec.policy,
            })
        }
    }
}

async fn labels_from_cluster(
    client: &Client,
    namespace: &str,
) -> Result<BTreeMap<String, String>, CliError> {
    let api: Api<Namespace> = Api::all(client.clone());
    let meta = api
        .get_metadata_opt(namespace)
        .await
        .map_err(|source| CliError::Kube {
            action: format!("reading the labels of namespace {namespace}"),
            source,
        })?;
    Ok(meta.map(|m| m.labels().clone()).unwrap_or_default())
}

/// Checks every Certificate against every issuer it names; prints a line each. `Ok(true)`
/// when all were allowed.
async fn check(args: &CheckArgs) -> Result<bool, CliError> {
    let text = read_file(&args.file).map_err(CliError::Config)?;
    let source_name = args.file.display().to_string();
    let certs = certificates(&text, &source_name).map_err(CliError::Config)?;
    let (source, default_namespace) = match &args.issuer_file {
        Some(path) => {
            let text = read_file(path).map_err(CliError::Config)?;
            let issuers = issuers(&text, &path.display().to_string()).map_err(CliError::Config)?;
            let labels = args
                .namespace_labels
                .as_deref()
                .map(parse_labels)
                .transpose()
                .map_err(CliError::Config)?;
            let ns = args
                .kube
                .namespace
                .clone()
                .unwrap_or_else(|| "default".to_string());
            (Source::File { issuers, labels }, ns)
        }
        None => {
            let (client, ns) = super::connect(&args.kube).await?;
            (Source::Cluster(client), ns)
        }
    };
    let mut all_allowed = true;
    let mut out = String::new();
    for cert in &certs {
        let namespace = namespace_of(cert, &default_namespace, args.kube.namespace.is_some())
            .map_err(CliError::Config)?;
        let label = format!("{namespace}/{}", cert.name_any());
        let refs = cert.spec.issuer_list();
        if refs.is_empty() {
            return Err(CliError::Config(format!(
                "Certificate {label} names no issuer (issuerRef or issuerRefs)"
            )));
        }
        for reference in refs {
            let (issuer, labels) = match &source {
                Source::File { issuers, labels } => {
                    let issuer = find_issuer(issuers, reference, &namespace).ok_or_else(|| {
                        CliError::Config(format!(
                            "Certificate {label}: {} is not in {}",
                            describe(reference.kind.unwrap_or_default(), &reference.name),
                            args.issuer_file
                                .as_deref()
                                .map(|p| p.display().to_string())
                                .unwrap_or_default()
                        ))
                    })?;
                    (issuer.clone(), labels.clone())
                }
                Source::Cluster(client) => {
                    let issuer = issuer_from_cluster(client, reference, &namespace).await?;
                    let labels =
                        if policy::needs_namespace_labels(issuer.policy.as_ref(), &namespace) {
                            Some(labels_from_cluster(client, &namespace).await?)
                        } else {
                            None
                        };
                    (issuer, labels)
                }
            };
            let result = policy::evaluate(
                policy::Issuer {
                    kind: issuer.kind,
                    name: &issuer.name,
                    policy: issuer.policy.as_ref(),
                    unrestricted_default: args.unrestricted_cluster_issuers,
                },
                Requester {
                    namespace: &namespace,
                    namespace_labels: labels.as_ref(),
                    cluster_resource_namespace: &args.cluster_resource_namespace,
                },
                &cert.spec,
            );
            all_allowed &= result.is_ok();
            out.push_str(&verdict_line(
                &label,
                &issuer,
                &namespace,
                &result,
                args.unrestricted_cluster_issuers,
                &args.cluster_resource_namespace,
            ));
            out.push('\n');
            if result.is_ok() {
                for line in not_checked_here(&issuer) {
                    out.push_str(&line);
                    out.push('\n');
                }
            }
        }
    }
    super::print(&out)?;
    Ok(all_allowed)
}

/// `ferrocert policy ...`: exit code 0 (allowed), 1 (refused) or 2 (error).
pub fn run(args: &PolicyArgs) -> ExitCode {
    let PolicyCommand::Check(check_args) = &args.command;
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(check(check_args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests;

//! `ferrocert status CERT`: the whole story of one Certificate in one view: its conditions and
//! status, the Secret it is kept in (decoded), the ACME order in flight with each authorization
//! and the CA's errors, and the Certificate's recent Events.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use serde::Serialize;

use super::inspect::{SecretReport, key_rows, validity_line};
use super::{
    CliError, KubeArgs, OutputFormat, connect, human_duration, list_or_none, or_none, print,
    push_fields, push_table, to_json, when,
};
use crate::api::conditions::{ISSUING, READY};
use crate::api::{
    Certificate, ChallengeKind, ChallengeState, OrderState, OrderStatus, RenewalInfoStatus,
    RevocationStatus,
};
use crate::labels::{ANN_RENEW_HANDLED, ANN_RENEW_REQUESTED};
use crate::pki::{parse_chain, parse_pem, secret_satisfies};
use crate::secret::{CA_CRT, TLS_CRT, TLS_KEY, data_str, kind_str};

/// At most this many Events are shown, the most recent ones.
pub const MAX_EVENTS: usize = 20;

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// Name of the Certificate.
    pub certificate: String,
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

pub async fn run(args: StatusArgs) -> Result<(), CliError> {
    let (client, namespace) = connect(&args.kube).await?;
    let name = &args.certificate;
    let cert = Api::<Certificate>::namespaced(client.clone(), &namespace)
        .get(name)
        .await
        .map_err(|e| CliError::from_kube("Certificate", &namespace, name, e))?;

    // The Secret and the Events are best effort: a user without rights to read Secrets still
    // gets the rest of the view, with the reason in place of the Secret.
    let secret_name = &cert.spec.secret_name;
    let secret = match Api::<Secret>::namespaced(client.clone(), &namespace)
        .get_opt(secret_name)
        .await
    {
        Ok(secret) => Ok(secret),
        Err(e) => Err(format!("reading Secret {namespace}/{secret_name}: {e}")),
    };
    let events = Api::<Event>::namespaced(client, &namespace)
        .list(&ListParams::default().fields(&format!(
            "involvedObject.name={name},involvedObject.kind=Certificate"
        )))
        .await
        .map(|list| list.items)
        .map_err(|e| format!("listing Events of Certificate {namespace}/{name}: {e}"));

    let now = Timestamp::now();
    let report = StatusReport::build(&cert, secret.as_ref().map(Option::as_ref), events, now);
    let text = match args.output {
        OutputFormat::Text => format_status(&report, now),
        OutputFormat::Json => to_json(&report)?,
    };
    print(&text)
}

/// Everything `status` shows, as data (the `-o json` form).
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    pub namespace: String,
    pub name: String,
    pub secret_name: String,
    pub issuer_name: String,
    pub issuer_kind: String,
    /// With `issuerRefs`: the issuer in use's place in the list and the list's length.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer_position: Option<IssuerPosition>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub common_name: Option<String>,
    pub conditions: Vec<Condition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_before: Option<Time>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_after: Option<Time>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renewal_time: Option<Time>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    pub failed_issuance_attempts: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure_time: Option<Time>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_private_key_secret_name: Option<String>,
    /// The pending or last renew request (`ferrocert.dev/renew-requested` on the Certificate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renew_requested: Option<String>,
    /// The renew request the current certificate answered (`ferrocert.dev/renew-handled` on the
    /// Secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renew_handled: Option<String>,
    /// The ACME profile of the current certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The CA's ARI renewal window for the current certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renewal_info: Option<RenewalInfoStatus>,
    /// The last revocation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revocation: Option<RevocationStatus>,
    pub secret: SecretReport,
    /// Whether the Secret's certificate and key satisfy the spec; the reason when not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec_check: Option<SpecCheck>,
    /// Additional outputs the spec asks for that the Secret lacks (`additionalOutputFormats`,
    /// `keystores`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing_outputs: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<OrderStatus>,
    pub events: Vec<EventReport>,
    /// Events older than the [`MAX_EVENTS`] shown.
    pub events_omitted: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_error: Option<String>,
}

/// The outcome of [`secret_satisfies`] for the Secret's contents.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SpecCheck {
    pub satisfied: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One Event (repeats folded into `count`).
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EventReport {
    #[serde(rename = "type")]
    pub type_: String,
    pub reason: String,
    pub message: String,
    pub count: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<Time>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<Time>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

impl EventReport {
    pub fn from_event(event: &Event) -> Self {
        let created = event.metadata.creation_timestamp.as_ref().map(|t| t.0);
        let event_time = event.event_time.as_ref().map(|t| t.0);
        let first_seen = event
            .first_timestamp
            .as_ref()
            .map(|t| t.0)
            .or(event_time)
            .or(created);
        let last_seen = event
            .series
            .as_ref()
            .and_then(|s| s.last_observed_time.as_ref())
            .map(|t| t.0)
            .or(event.last_timestamp.as_ref().map(|t| t.0))
            .or(event_time)
            .or(first_seen);
        let count = event
            .series
            .as_ref()
            .and_then(|s| s.count)
            .or(event.count)
            .unwrap_or(1)
            .max(1);
        let from = event
            .reporting_component
            .clone()
            .filter(|c| !c.is_empty())
            .or_else(|| event.source.as_ref().and_then(|s| s.component.clone()));
        EventReport {
            type_: event.type_.clone().unwrap_or_else(|| "Normal".into()),
            reason: event.reason.clone().unwrap_or_default(),
            message: event.message.clone().unwrap_or_default(),
            count,
            first_seen: first_seen.map(Time),
            last_seen: last_seen.map(Time),
            from,
        }
    }
}

impl StatusReport {
    /// Builds the report from what was read. `secret` is `Ok(None)` when the Secret does not
    /// exist and `Err` when it could not be read; `events` likewise.
    pub fn build(
        cert: &Certificate,
        secret: Result<Option<&Secret>, &String>,
        events: Result<Vec<Event>, String>,
        now: Timestamp,
    ) -> Self {
        let namespace = cert.namespace().unwrap_or_default();
        let name = cert.name_any();
        let status = cert.status.clone().unwrap_or_default();
        let spec = &cert.spec;
        let issuer_ref = cert.current_issuer_ref();

        let (secret_report, spec_check, renew_handled) = match secret {
            Ok(secret) => (
                SecretReport::from_secret(&namespace, &spec.secret_name, secret),
                secret.and_then(|s| spec_check(cert, s, now)),
                secret.and_then(|s| s.annotations().get(ANN_RENEW_HANDLED).cloned()),
            ),
            Err(e) => (
                SecretReport::missing(&namespace, &spec.secret_name, Some(e.clone())),
                None,
                None,
            ),
        };

        let missing_outputs = match secret {
            Ok(Some(s)) => {
                let data = s.data.clone().unwrap_or_default();
                crate::secret::outputs::wanted_keys(spec, data.contains_key(CA_CRT))
                    .into_iter()
                    .filter(|k| !data.contains_key(*k))
                    .map(str::to_string)
                    .collect()
            }
            _ => Vec::new(),
        };

        let (events, events_omitted, events_error) = match events {
            Ok(list) => {
                let uid = cert.uid();
                let mut reports: Vec<EventReport> = list
                    .iter()
                    // Events of an earlier object with the same name (or another API's
                    // Certificate kind) carry a different uid.
                    .filter(|e| match (&uid, &e.involved_object.uid) {
                        (Some(want), Some(have)) => want == have,
                        _ => true,
                    })
                    .map(EventReport::from_event)
                    .collect();
                reports.sort_by_key(|e| e.last_seen.as_ref().map(|t| t.0));
                let omitted = reports.len().saturating_sub(MAX_EVENTS);
                (reports.split_off(omitted), omitted, None)
            }
            Err(e) => (Vec::new(), 0, Some(e)),
        };

        StatusReport {
            namespace,
            secret_name: spec.secret_name.clone(),
            issuer_name: issuer_ref.map(|r| r.name.clone()).unwrap_or_default(),
            issuer_kind: kind_str(issuer_ref.and_then(|r| r.kind).unwrap_or_default()).to_string(),
            issuer_position: (cert.spec.issuer_list().len() > 1).then(|| IssuerPosition {
                index: cert.issuer_index(),
                of: cert.spec.issuer_list().len(),
            }),
            dns_names: spec.dns_names.clone(),
            ip_addresses: spec.ip_addresses.clone(),
            common_name: spec.common_name.clone(),
            conditions: status.conditions,
            not_before: status.not_before,
            not_after: status.not_after,
            renewal_time: status.renewal_time,
            revision: status.revision,
            failed_issuance_attempts: status.failed_issuance_attempts.unwrap_or(0),
            last_failure_time: status.last_failure_time,
            next_private_key_secret_name: status.next_private_key_secret_name,
            renew_requested: cert.annotations().get(ANN_RENEW_REQUESTED).cloned(),
            renew_handled,
            profile: status.profile,
            renewal_info: status.renewal_info,
            revocation: status.revocation,
            secret: secret_report,
            spec_check,
            missing_outputs,
            order: status.order,
            events,
            events_omitted,
            events_error,
            name,
        }
    }
}

/// Whether the Secret's certificate and key satisfy the spec, with the controller's own rules.
/// `None` when the Secret has no parseable certificate or key (the Secret section says why).
fn spec_check(cert: &Certificate, secret: &Secret, now: Timestamp) -> Option<SpecCheck> {
    let chain = parse_chain(data_str(secret, TLS_CRT)?).ok()?;
    let key = parse_pem(data_str(secret, TLS_KEY)?).ok()?;
    Some(match secret_satisfies(&cert.spec, &chain.leaf, &key, now) {
        Ok(()) => SpecCheck {
            satisfied: true,
            reason: None,
            message: None,
        },
        Err(mismatch) => SpecCheck {
            satisfied: false,
            reason: Some(mismatch.reason().to_string()),
            message: Some(mismatch.to_string()),
        },
    })
}

/// The ARI window in one line: where it is, when it was and will be checked, the last error.
fn renewal_window_summary(info: &RenewalInfoStatus, now: Timestamp) -> String {
    let mut text = match (&info.window_start, &info.window_end) {
        (Some(start), Some(end)) => format!("{} to {} (ARI)", start.0, end.0),
        _ => "unknown (ARI)".to_string(),
    };
    if let Some(checked) = &info.last_checked {
        text.push_str(&format!("; checked {}", when(checked.0, now)));
    }
    if let Some(next) = &info.next_check {
        text.push_str(&format!("; next check {}", when(next.0, now)));
    }
    if let Some(e) = &info.error {
        text.push_str(&format!("; last error: {e}"));
    }
    text
}

/// The last revocation in one line.
fn revocation_summary(rev: &RevocationStatus, now: Timestamp) -> String {
    let serial = if rev.serial.is_empty() {
        "no certificate".to_string()
    } else {
        format!("serial {}", rev.serial)
    };
    let mut text = match &rev.revoked_at {
        Some(at) => format!(
            "{serial} revoked {} (reason {})",
            when(at.0, now),
            rev.reason
        ),
        None => format!("{serial} not revoked (reason {})", rev.reason),
    };
    if let Some(n) = rev.failed_attempts {
        text.push_str(&format!("; {n} failed attempt(s)"));
    }
    if let Some(e) = &rev.error {
        text.push_str(&format!("; {e}"));
    }
    text
}

/// The report as aligned text, like `kubectl describe`.
/// Where the issuer in use stands in `issuerRefs` (0-based `index` of `of`).
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssuerPosition {
    pub index: usize,
    pub of: usize,
}

/// `pebble (Issuer)`, and with `issuerRefs` which of them is in use: the first, or a failover.
fn issuer_line(r: &StatusReport) -> String {
    let base = format!("{} ({})", r.issuer_name, r.issuer_kind);
    match r.issuer_position {
        Some(IssuerPosition { index: 0, of }) => format!("{base}, 1st of {of} in issuerRefs"),
        Some(IssuerPosition { index, of }) => format!(
            "{base}, #{} of {of} in issuerRefs (failed over; the next renewal starts again from \
             the first)",
            index + 1
        ),
        None => base,
    }
}

pub fn format_status(r: &StatusReport, now: Timestamp) -> String {
    let mut out = String::new();
    let time = |t: &Option<Time>| or_none(t.as_ref().map(|t| when(t.0, now)));
    let mut rows = vec![
        ("Name", r.name.clone()),
        ("Namespace", r.namespace.clone()),
        ("Secret", r.secret_name.clone()),
        ("Issuer", issuer_line(r)),
    ];
    if let Some(cn) = &r.common_name {
        rows.push(("Common Name", cn.clone()));
    }
    rows.push(("DNS Names", list_or_none(&r.dns_names)));
    if !r.ip_addresses.is_empty() {
        rows.push(("IP Addresses", list_or_none(&r.ip_addresses)));
    }
    rows.extend([
        ("Ready", condition_summary(&r.conditions, READY)),
        ("Issuing", condition_summary(&r.conditions, ISSUING)),
        ("Revision", or_none(r.revision)),
        ("Not Before", time(&r.not_before)),
        ("Not After", time(&r.not_after)),
        ("Renewal Time", time(&r.renewal_time)),
        ("Failed Attempts", r.failed_issuance_attempts.to_string()),
    ]);
    if r.last_failure_time.is_some() {
        rows.push(("Last Failure", time(&r.last_failure_time)));
    }
    if let Some(p) = &r.profile {
        rows.push(("Profile", p.clone()));
    }
    if let Some(info) = &r.renewal_info {
        rows.push(("Renewal Window", renewal_window_summary(info, now)));
    }
    if let Some(rev) = &r.revocation {
        rows.push(("Revocation", revocation_summary(rev, now)));
    }
    if let Some(next) = &r.next_private_key_secret_name {
        rows.push(("Next Key Secret", next.clone()));
    }
    if let Some(id) = &r.renew_requested {
        let state = if r.renew_handled.as_ref() == Some(id) {
            "handled"
        } else {
            "pending"
        };
        rows.push(("Renew Requested", format!("{id} ({state})")));
    }
    push_fields(&mut out, 0, &rows);

    out.push_str("Conditions:");
    if r.conditions.is_empty() {
        out.push_str(" <none>\n");
    } else {
        out.push('\n');
        let rows: Vec<Vec<String>> = r
            .conditions
            .iter()
            .map(|c| {
                vec![
                    c.type_.clone(),
                    c.status.clone(),
                    c.reason.clone(),
                    human_duration(now.duration_since(c.last_transition_time.0)),
                    c.message.clone(),
                ]
            })
            .collect();
        push_table(
            &mut out,
            2,
            &["Type", "Status", "Reason", "Age", "Message"],
            &rows,
        );
    }

    push_secret_summary(&mut out, r, now);
    push_order(&mut out, r.order.as_ref());
    push_events(&mut out, r, now);
    out
}

/// `True (Ready): message`, or `<none>`.
fn condition_summary(conditions: &[Condition], type_: &str) -> String {
    conditions.iter().find(|c| c.type_ == type_).map_or_else(
        || "<none>".to_string(),
        |c| {
            if c.reason.is_empty() {
                c.status.clone()
            } else {
                format!("{} ({})", c.status, c.reason)
            }
        },
    )
}

fn push_secret_summary(out: &mut String, r: &StatusReport, now: Timestamp) {
    let s = &r.secret;
    out.push_str(&format!("Secret {}:\n", s.name));
    let mut rows = Vec::new();
    if let Some(error) = &s.error {
        rows.push(("Error", error.clone()));
    } else {
        rows.push(("Exists", if s.exists { "yes" } else { "no" }.to_string()));
    }
    if !s.exists {
        push_fields(out, 2, &rows);
        return;
    }
    if s.type_.as_deref() != Some("kubernetes.io/tls") {
        rows.push(("Type", or_none(s.type_.as_deref())));
    }
    if let Some(error) = &s.certificates_error {
        rows.push(("Certificate", error.clone()));
    }
    if let Some(leaf) = s.leaf() {
        rows.extend([
            ("Subject CN", or_none(leaf.subject_cn.as_deref())),
            ("DNS Names", list_or_none(&leaf.dns_names)),
        ]);
        if !leaf.ip_addresses.is_empty() {
            rows.push(("IP Addresses", list_or_none(&leaf.ip_addresses)));
        }
        rows.extend([
            ("Issuer CN", or_none(leaf.issuer_cn.as_deref())),
            ("Serial", leaf.serial.clone()),
            ("Not Before", validity_line(leaf.not_before.0, now, false)),
            ("Not After", validity_line(leaf.not_after.0, now, true)),
            (
                "Chain",
                match (s.certificates.len(), s.chain_links) {
                    (1, _) => "1 certificate".to_string(),
                    (n, true) => format!("{n} certificates, signatures link"),
                    (n, false) => format!("BROKEN: {n} certificates, signatures do not link"),
                },
            ),
        ]);
    }
    for (key, value) in key_rows(s) {
        let label = match key {
            "Algorithm" => "Key",
            "Encoding" => "Key Encoding",
            "Matches Leaf" => "Key Matches",
            "Error" => "Key Error",
            other => other,
        };
        rows.push((label, value));
    }
    if !s.outputs.is_empty() || !r.missing_outputs.is_empty() {
        let mut line = crate::cli::inspect::outputs_line(&s.outputs);
        if !r.missing_outputs.is_empty() {
            line = format!("{line}; MISSING {}", r.missing_outputs.join(", "));
        }
        rows.push(("Outputs", line));
    }
    if let Some(check) = &r.spec_check {
        rows.push((
            "Matches Spec",
            if check.satisfied {
                "yes".to_string()
            } else {
                format!(
                    "no ({}): {}",
                    check.reason.as_deref().unwrap_or(""),
                    check.message.as_deref().unwrap_or("")
                )
            },
        ));
    }
    push_fields(out, 2, &rows);
}

fn push_order(out: &mut String, order: Option<&OrderStatus>) {
    let Some(order) = order else {
        out.push_str("Order: <none>\n");
        return;
    };
    out.push_str("Order:\n");
    let mut rows = vec![
        ("URL", order.url.clone()),
        ("State", or_none(order.state.map(OrderState::as_str))),
    ];
    if let Some(error) = &order.error {
        rows.push(("Error", error.clone()));
    }
    push_fields(out, 2, &rows);
    out.push_str("  Authorizations:");
    if order.authorizations.is_empty() {
        out.push_str(" <none>\n");
        return;
    }
    out.push('\n');
    for authz in &order.authorizations {
        let wildcard = if authz.wildcard == Some(true) {
            " (wildcard)"
        } else {
            ""
        };
        out.push_str(&format!("    {}{wildcard}:\n", authz.identifier));
        let mut rows = vec![
            ("State", or_none(authz.state.map(ChallengeState::as_str))),
            (
                "Challenge",
                or_none(authz.challenge_type.map(ChallengeKind::as_str)),
            ),
        ];
        if let Some(token) = &authz.token {
            rows.push(("Token", token.clone()));
        }
        if let Some(url) = &authz.challenge_url {
            rows.push(("Challenge URL", url.clone()));
        }
        if let Some(url) = &authz.url {
            rows.push(("Authorization", url.clone()));
        }
        if let Some(error) = &authz.error {
            rows.push(("Error", error.clone()));
        }
        push_fields(out, 6, &rows);
    }
}

fn push_events(out: &mut String, r: &StatusReport, now: Timestamp) {
    out.push_str("Events:");
    if let Some(error) = &r.events_error {
        out.push_str(&format!(" <unavailable: {error}>\n"));
        return;
    }
    if r.events.is_empty() {
        out.push_str(" <none>\n");
        return;
    }
    out.push('\n');
    if r.events_omitted > 0 {
        out.push_str(&format!(
            "  ({} older events not shown)\n",
            r.events_omitted
        ));
    }
    let rows: Vec<Vec<String>> = r
        .events
        .iter()
        .map(|e| {
            let age = |t: &Option<Time>| {
                t.as_ref().map_or_else(
                    || "<unknown>".to_string(),
                    |t| human_duration(now.duration_since(t.0)),
                )
            };
            let mut when = age(&e.last_seen);
            if e.count > 1 {
                when = format!("{when} (x{} over {})", e.count, age(&e.first_seen));
            }
            vec![
                e.type_.clone(),
                e.reason.clone(),
                when,
                e.from.clone().unwrap_or_default(),
                e.message.clone(),
            ]
        })
        .collect();
    push_table(out, 2, &["Type", "Reason", "Age", "From", "Message"], &rows);
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::{EventSeries, EventSource, ObjectReference};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};

    use super::*;
    use crate::api::{CertificateSpec, CertificateStatus, IssuerRef, OrderAuthorization};
    use crate::cli::test_support::{time, ts};
    use crate::pki::test_support::{LeafOptions, TestCa};
    use crate::pki::{KeySpec, generate};

    const NOW: &str = "2025-02-01T00:00:00Z";

    fn condition(type_: &str, status: &str, reason: &str, message: &str, at: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            last_transition_time: time(at),
            observed_generation: Some(1),
        }
    }

    fn certificate() -> Certificate {
        let mut c = Certificate::new(
            "web",
            CertificateSpec {
                secret_name: "web-tls".into(),
                dns_names: vec!["a.example".into(), "b.example".into()],
                issuer_ref: Some(IssuerRef {
                    name: "pebble".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        );
        c.metadata.namespace = Some("shop".into());
        c.metadata.uid = Some("uid-1".into());
        c
    }

    fn ready_certificate() -> Certificate {
        let mut c = certificate();
        c.metadata.annotations = Some(BTreeMap::from([(
            ANN_RENEW_REQUESTED.to_string(),
            "r1".to_string(),
        )]));
        c.status = Some(CertificateStatus {
            conditions: vec![condition(
                "Ready",
                "True",
                "Ready",
                "The certificate is valid until 2025-04-01T00:00:00Z",
                "2025-01-31T23:55:00Z",
            )],
            not_before: Some(time("2025-01-01T00:00:00Z")),
            not_after: Some(time("2025-04-01T00:00:00Z")),
            renewal_time: Some(time("2025-03-02T00:00:00Z")),
            revision: Some(2),
            ..Default::default()
        });
        c
    }

    fn issued_secret(dns: &[&str]) -> Secret {
        let ca = TestCa::root("Pebble Intermediate CA");
        let key = generate(&KeySpec::default()).unwrap();
        let leaf = ca.issue(
            &key,
            &LeafOptions {
                serial: Some(&[0x01, 0x23]),
                ..LeafOptions::dns(dns)
            },
        );
        Secret {
            metadata: ObjectMeta {
                annotations: Some(BTreeMap::from([(
                    ANN_RENEW_HANDLED.to_string(),
                    "r1".to_string(),
                )])),
                ..Default::default()
            },
            type_: Some("kubernetes.io/tls".into()),
            data: Some(BTreeMap::from([
                (TLS_CRT.to_string(), ByteString(leaf.into_bytes())),
                (
                    TLS_KEY.to_string(),
                    ByteString(
                        key.to_pem(crate::api::PrivateKeyEncoding::PKCS1)
                            .unwrap()
                            .into_bytes(),
                    ),
                ),
            ])),
            ..Default::default()
        }
    }

    fn event(reason: &str, message: &str, uid: &str, last: &str, series: Option<i32>) -> Event {
        Event {
            involved_object: ObjectReference {
                kind: Some("Certificate".into()),
                name: Some("web".into()),
                uid: Some(uid.into()),
                ..Default::default()
            },
            reason: Some(reason.into()),
            message: Some(message.into()),
            type_: Some("Normal".into()),
            event_time: Some(MicroTime(ts("2025-01-31T23:50:00Z"))),
            series: series.map(|count| EventSeries {
                count: Some(count),
                last_observed_time: Some(MicroTime(ts(last))),
            }),
            reporting_component: Some("ferrocert".into()),
            ..Default::default()
        }
    }

    #[test]
    fn the_issuer_line_says_which_of_issuer_refs_is_in_use() {
        let mut cert = ready_certificate();
        let first = cert.spec.issuer_ref.take().unwrap();
        let second = IssuerRef {
            name: "zerossl".into(),
            ..first.clone()
        };
        cert.spec.issuer_refs = vec![first, second];
        let report = StatusReport::build(&cert, Ok(None), Ok(Vec::new()), ts(NOW));
        assert_eq!(
            issuer_line(&report),
            "pebble (Issuer), 1st of 2 in issuerRefs"
        );
        cert.status.as_mut().unwrap().issuer_index = Some(1);
        let report = StatusReport::build(&cert, Ok(None), Ok(Vec::new()), ts(NOW));
        assert_eq!(
            issuer_line(&report),
            "zerossl (Issuer), #2 of 2 in issuerRefs (failed over; the next renewal starts again \
             from the first)"
        );
        assert!(to_json(&report).unwrap().contains(r#""issuerPosition""#));
    }

    #[test]
    fn outputs_the_spec_asks_for_are_listed_and_missing_ones_flagged() {
        use crate::api::{
            AdditionalOutputFormat, CertificateKeystores, JksKeystore, KeystorePasswordSecretRef,
            OutputFormatType,
        };
        let mut cert = ready_certificate();
        cert.spec.additional_output_formats = vec![AdditionalOutputFormat {
            type_: OutputFormatType::CombinedPEM,
        }];
        cert.spec.keystores = Some(CertificateKeystores {
            jks: Some(JksKeystore {
                create: true,
                password_secret_ref: Some(KeystorePasswordSecretRef {
                    name: "pw".into(),
                    key: "password".into(),
                }),
                alias: None,
            }),
            pkcs12: None,
        });
        let mut secret = issued_secret(&["a.example", "b.example"]);
        secret
            .data
            .as_mut()
            .unwrap()
            .insert("tls-combined.pem".into(), ByteString(vec![b'x'; 10]));
        let report = StatusReport::build(&cert, Ok(Some(&secret)), Ok(Vec::new()), ts(NOW));
        assert_eq!(report.missing_outputs, vec!["keystore.jks".to_string()]);
        let text = format_status(&report, ts(NOW));
        assert!(
            text.contains("  Outputs:       tls-combined.pem (10 bytes); MISSING keystore.jks\n"),
            "{text}"
        );
        // All there: no MISSING.
        secret
            .data
            .as_mut()
            .unwrap()
            .insert("keystore.jks".into(), ByteString(vec![0xfe; 32]));
        let report = StatusReport::build(&cert, Ok(Some(&secret)), Ok(Vec::new()), ts(NOW));
        assert!(report.missing_outputs.is_empty());
        let text = format_status(&report, ts(NOW));
        assert!(
            text.contains(
                "  Outputs:       tls-combined.pem (10 bytes), keystore.jks (32 bytes)\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn ready_certificate_view() {
        let cert = ready_certificate();
        let secret = issued_secret(&["a.example", "b.example"]);
        let events = vec![
            event(
                "Issued",
                "Certificate issued",
                "uid-1",
                "2025-01-31T23:55:00Z",
                None,
            ),
            event(
                "Old",
                "from a deleted object",
                "uid-0",
                "2025-01-31T23:56:00Z",
                None,
            ),
            event(
                "Failed",
                "retrying",
                "uid-1",
                "2025-01-31T23:58:00Z",
                Some(3),
            ),
        ];
        let report = StatusReport::build(&cert, Ok(Some(&secret)), Ok(events), ts(NOW));
        assert_eq!(
            report.spec_check,
            Some(SpecCheck {
                satisfied: true,
                reason: None,
                message: None
            })
        );
        assert_eq!(report.events.len(), 2);
        let text = format_status(&report, ts(NOW));
        let expected = "\
Name:             web
Namespace:        shop
Secret:           web-tls
Issuer:           pebble (Issuer)
DNS Names:        a.example, b.example
Ready:            True (Ready)
Issuing:          <none>
Revision:         2
Not Before:       2025-01-01T00:00:00Z (31d ago)
Not After:        2025-04-01T00:00:00Z (in 59d)
Renewal Time:     2025-03-02T00:00:00Z (in 29d)
Failed Attempts:  0
Renew Requested:  r1 (handled)
Conditions:
  Type   Status  Reason  Age  Message
  ----   ------  ------  ---  -------
  Ready  True    Ready   5m   The certificate is valid until 2025-04-01T00:00:00Z
Secret web-tls:
  Exists:        yes
  Subject CN:    <none>
  DNS Names:     a.example, b.example
  Issuer CN:     Pebble Intermediate CA
  Serial:        0123
  Not Before:    2025-01-01T00:00:00Z (31d ago)
  Not After:     2025-04-01T00:00:00Z (in 59d)
  Chain:         1 certificate
  Key:           ECDSA P-256
  Key Encoding:  PKCS1
  Key Matches:   yes: tls.key matches the certificate
  Matches Spec:  yes
Order: <none>
Events:
  Type    Reason  Age               From       Message
  ----    ------  ---               ----       -------
  Normal  Issued  10m               ferrocert  Certificate issued
  Normal  Failed  2m (x3 over 10m)  ferrocert  retrying
";
        assert_eq!(text, expected, "\n{text}");
    }

    #[test]
    fn issuing_certificate_shows_the_order_and_errors() {
        let mut cert = certificate();
        cert.status = Some(CertificateStatus {
            conditions: vec![
                condition(
                    "Ready",
                    "False",
                    "DoesNotExist",
                    "Issuing certificate as Secret does not exist",
                    "2025-01-31T23:00:00Z",
                ),
                condition(
                    "Issuing",
                    "True",
                    "Failed",
                    "authorization for a.example failed",
                    "2025-01-31T23:00:00Z",
                ),
            ],
            failed_issuance_attempts: Some(2),
            last_failure_time: Some(time("2025-01-31T23:59:00Z")),
            next_private_key_secret_name: Some("web-next-key".into()),
            order: Some(OrderStatus {
                url: "https://ca.example/order/1".into(),
                profile: None,
                replaces: None,
                state: Some(OrderState::Invalid),
                authorizations: vec![
                    OrderAuthorization {
                        identifier: "a.example".into(),
                        challenge_type: Some(ChallengeKind::Http01),
                        challenge_url: Some("https://ca.example/chall/1".into()),
                        token: Some("tok1".into()),
                        state: Some(ChallengeState::Invalid),
                        error: Some(
                            "urn:ietf:params:acme:error:connection: connection refused".into(),
                        ),
                        ..Default::default()
                    },
                    OrderAuthorization {
                        identifier: "b.example".into(),
                        challenge_type: Some(ChallengeKind::Http01),
                        state: Some(ChallengeState::Valid),
                        ..Default::default()
                    },
                ],
                error: Some("urn:ietf:params:acme:error:unauthorized: order failed".into()),
            }),
            ..Default::default()
        });
        let report = StatusReport::build(&cert, Ok(None), Ok(vec![]), ts(NOW));
        let text = format_status(&report, ts(NOW));
        for expected in [
            "Ready:            False (DoesNotExist)\n",
            "Issuing:          True (Failed)\n",
            "Revision:         <none>\n",
            "Failed Attempts:  2\n",
            "Last Failure:     2025-01-31T23:59:00Z (60s ago)\n",
            "Next Key Secret:  web-next-key\n",
            "  Issuing  True    Failed        60m  authorization for a.example failed\n",
            "Secret web-tls:\n  Exists:  no\n",
            "Order:\n  URL:    https://ca.example/order/1\n  State:  invalid\n  Error:  urn:ietf:params:acme:error:unauthorized: order failed\n",
            "  Authorizations:\n    a.example:\n      State:          invalid\n      Challenge:      http-01\n      Token:          tok1\n      Challenge URL:  https://ca.example/chall/1\n      Error:          urn:ietf:params:acme:error:connection: connection refused\n",
            "    b.example:\n      State:      valid\n      Challenge:  http-01\n",
            "Events: <none>\n",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
        assert!(!text.contains("Renew Requested"), "{text}");
    }

    #[test]
    fn profile_renewal_window_and_revocation_are_shown() {
        let mut cert = ready_certificate();
        let status = cert.status.as_mut().unwrap();
        status.profile = Some("shortlived".into());
        status.renewal_info = Some(RenewalInfoStatus {
            certificate_id: "aki.serial".into(),
            window_start: Some(time("2025-03-01T00:00:00Z")),
            window_end: Some(time("2025-03-03T00:00:00Z")),
            last_checked: Some(time("2025-01-31T23:00:00Z")),
            next_check: Some(time("2025-02-01T05:00:00Z")),
            error: Some("fetching the renewal window: timed out".into()),
            ..RenewalInfoStatus::default()
        });
        status.revocation = Some(RevocationStatus {
            serial: "0abc".into(),
            reason: "keyCompromise".into(),
            revoked_at: Some(time("2025-01-31T23:59:00Z")),
            ..RevocationStatus::default()
        });
        let report = StatusReport::build(&cert, Ok(None), Ok(vec![]), ts(NOW));
        let text = format_status(&report, ts(NOW));
        for expected in [
            "Profile:          shortlived\n",
            "Renewal Window:   2025-03-01T00:00:00Z to 2025-03-03T00:00:00Z (ARI); checked 2025-01-31T23:00:00Z (60m ago); next check 2025-02-01T05:00:00Z (in 5h); last error: fetching the renewal window: timed out\n",
            "Revocation:       serial 0abc revoked 2025-01-31T23:59:00Z (60s ago) (reason keyCompromise)\n",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["renewalInfo"]["windowStart"], "2025-03-01T00:00:00Z");
        assert_eq!(json["revocation"]["reason"], "keyCompromise");
    }

    #[test]
    fn mismatched_secret_and_pending_renewal() {
        let mut cert = ready_certificate();
        cert.metadata.annotations = Some(BTreeMap::from([(
            ANN_RENEW_REQUESTED.to_string(),
            "r2".to_string(),
        )]));
        let secret = issued_secret(&["a.example"]);
        let report = StatusReport::build(&cert, Ok(Some(&secret)), Ok(vec![]), ts(NOW));
        let check = report.spec_check.clone().unwrap();
        assert!(!check.satisfied);
        assert_eq!(check.reason.as_deref(), Some("SecretMismatch"));
        let text = format_status(&report, ts(NOW));
        assert!(text.contains("Renew Requested:  r2 (pending)\n"), "{text}");
        assert!(
            text.contains("Matches Spec:  no (SecretMismatch): the certificate's names differ"),
            "{text}"
        );
    }

    #[test]
    fn unreadable_secret_and_events_do_not_hide_the_rest() {
        let cert = ready_certificate();
        let err = "reading Secret shop/web-tls: secrets \"web-tls\" is forbidden".to_string();
        let report = StatusReport::build(
            &cert,
            Err(&err),
            Err("listing Events: forbidden".into()),
            ts(NOW),
        );
        let text = format_status(&report, ts(NOW));
        assert!(
            text.contains("Secret web-tls:\n  Error:  reading Secret shop/web-tls: secrets \"web-tls\" is forbidden\n"),
            "{text}"
        );
        assert!(
            text.contains("Events: <unavailable: listing Events: forbidden>\n"),
            "{text}"
        );
        assert!(text.contains("Ready:            True (Ready)\n"), "{text}");
    }

    #[test]
    fn json_form() {
        let cert = ready_certificate();
        let secret = issued_secret(&["a.example", "b.example"]);
        let events = vec![event(
            "Issued",
            "done",
            "uid-1",
            "2025-01-31T23:55:00Z",
            Some(2),
        )];
        let report = StatusReport::build(&cert, Ok(Some(&secret)), Ok(events), ts(NOW));
        let v: serde_json::Value = serde_json::from_str(&to_json(&report).unwrap()).unwrap();
        assert_eq!(v["name"], "web");
        assert_eq!(v["revision"], 2);
        assert_eq!(v["conditions"][0]["type"], "Ready");
        assert_eq!(v["conditions"][0]["status"], "True");
        assert_eq!(v["notAfter"], "2025-04-01T00:00:00Z");
        assert_eq!(v["secret"]["exists"], true);
        assert_eq!(v["secret"]["certificates"][0]["dnsNames"][1], "b.example");
        assert_eq!(v["secret"]["privateKey"]["matchesCertificate"], true);
        assert_eq!(v["specCheck"]["satisfied"], true);
        assert_eq!(v["events"][0]["reason"], "Issued");
        assert_eq!(v["events"][0]["count"], 2);
        assert_eq!(v["events"][0]["lastSeen"], "2025-01-31T23:55:00Z");
        assert_eq!(v["renewHandled"], "r1");
        assert!(v.get("order").is_none());
    }

    #[test]
    fn old_style_events_and_the_event_cap() {
        let old = Event {
            reason: Some("Issued".into()),
            count: Some(4),
            first_timestamp: Some(time("2025-01-31T22:00:00Z")),
            last_timestamp: Some(time("2025-01-31T23:00:00Z")),
            source: Some(EventSource {
                component: Some("ferrocert".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let e = EventReport::from_event(&old);
        assert_eq!(e.count, 4);
        assert_eq!(e.first_seen, Some(time("2025-01-31T22:00:00Z")));
        assert_eq!(e.last_seen, Some(time("2025-01-31T23:00:00Z")));
        assert_eq!(e.from.as_deref(), Some("ferrocert"));
        assert_eq!(e.type_, "Normal");

        let many: Vec<Event> = (0..25)
            .map(|i| {
                event(
                    &format!("R{i:02}"),
                    "m",
                    "uid-1",
                    &format!("2025-01-31T23:{i:02}:00Z"),
                    Some(1),
                )
            })
            .rev()
            .collect();
        let report = StatusReport::build(&certificate(), Ok(None), Ok(many), ts(NOW));
        assert_eq!(report.events.len(), MAX_EVENTS);
        assert_eq!(report.events_omitted, 5);
        assert_eq!(report.events[0].reason, "R05");
        assert_eq!(report.events[MAX_EVENTS - 1].reason, "R24");
        let text = format_status(&report, ts(NOW));
        assert!(text.contains("  (5 older events not shown)\n"), "{text}");
    }
}

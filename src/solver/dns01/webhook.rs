//! cert-manager's DNS webhook solver protocol: a solver is an aggregated API server (an
//! APIService for `<groupName>/v1alpha1`) and each TXT record is presented or cleaned up by POSTing
//! a `ChallengePayload` to `/apis/<groupName>/v1alpha1/<solverName>` on the Kubernetes API server,
//! which proxies it to the solver. The solver answers with the same kind, its `response` saying
//! whether it worked and, if not, why. Community solvers (Hetzner, OVH, Gandi, ...) work unchanged.
//!
//! - The request goes through the controller's own Kubernetes client (its credentials; RBAC must
//!   allow `create` on the solver's resource), bounded by a total timeout and a body limit like
//!   every other outside request ([`crate::outbound`]).
//! - `resolvedZone` is the zone found by SOA at the controller's resolvers, as cert-manager does.
//! - `allowAmbientCredentials` is true only for a ClusterIssuer allowed ambient credentials by the
//!   controller's settings, as for Route53.

use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::propagation::PropagationChecker;
use super::{CHALLENGE_LABEL, Dns01Error, DnsProvider, normalize_name};
use crate::outbound;

/// How the solver is named in errors.
const PROVIDER: &str = "DNS webhook solver";

/// The payload's API version and kind, as cert-manager's webhook library registers them.
pub const PAYLOAD_API_VERSION: &str = "webhook.acme.cert-manager.io/v1alpha1";
pub const PAYLOAD_KIND: &str = "ChallengePayload";

/// How long one call (through the API server to the solver and back) may take.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What the solver is asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Action {
    Present,
    CleanUp,
}

impl Action {
    /// For messages: `present` / `clean-up`.
    fn verb(self) -> &'static str {
        match self {
            Action::Present => "present",
            Action::CleanUp => "clean-up",
        }
    }
}

/// cert-manager's `ChallengeRequest`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChallengeRequest {
    pub uid: String,
    pub action: Action,
    #[serde(rename = "type")]
    pub challenge_type: String,
    pub dns_name: String,
    pub key: String,
    pub resource_namespace: String,
    #[serde(rename = "resolvedFQDN")]
    pub resolved_fqdn: String,
    pub resolved_zone: String,
    pub allow_ambient_credentials: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
}

/// cert-manager's `ChallengePayload` as sent: the request only.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PayloadOut<'a> {
    api_version: &'static str,
    kind: &'static str,
    request: &'a ChallengeRequest,
}

/// The part of the solver's answer we read.
#[derive(Debug, Default, Deserialize)]
struct PayloadIn {
    #[serde(default)]
    response: Option<ChallengeResponse>,
}

#[derive(Debug, Default, Deserialize)]
struct ChallengeResponse {
    #[serde(default)]
    success: bool,
    #[serde(default)]
    status: Option<ApiStatus>,
}

/// A Kubernetes `Status`: the solver's error, or the API server's own refusal.
#[derive(Debug, Default, Deserialize)]
struct ApiStatus {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

/// A webhook solver, as an issuer's `dns01.webhook` names it.
pub struct Webhook {
    client: kube::Client,
    group: String,
    solver: String,
    config: Option<serde_json::Value>,
    resource_namespace: String,
    allow_ambient_credentials: bool,
    zones: PropagationChecker,
    timeout: Duration,
}

/// What a [`Webhook`] needs besides the Kubernetes client and the zone finder.
pub struct WebhookConfig {
    pub group: String,
    pub solver: String,
    pub config: Option<serde_json::Value>,
    /// Where the solver may read Secrets the config names: the issuer's Secret namespace.
    pub resource_namespace: String,
    pub allow_ambient_credentials: bool,
}

impl Webhook {
    pub fn new(client: kube::Client, zones: PropagationChecker, config: WebhookConfig) -> Self {
        Webhook {
            client,
            group: config.group,
            solver: config.solver,
            config: config.config,
            resource_namespace: config.resource_namespace,
            allow_ambient_credentials: config.allow_ambient_credentials,
            zones,
            timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The path the payload is POSTed to.
    pub fn path(&self) -> String {
        solver_path(&self.group, &self.solver)
    }

    async fn call(&self, action: Action, fqdn: &str, value: &str) -> Result<(), Dns01Error> {
        let name = normalize_name(fqdn);
        let zone = self.zones.zone_info(&name).await?.zone;
        let request = ChallengeRequest {
            uid: request_uid(action, &name, value),
            action,
            challenge_type: "dns-01".into(),
            dns_name: dns_name_of(&name),
            key: value.to_string(),
            resource_namespace: self.resource_namespace.clone(),
            resolved_fqdn: format!("{name}."),
            resolved_zone: format!("{zone}."),
            allow_ambient_credentials: self.allow_ambient_credentials,
            config: self.config.clone(),
        };
        let op = format!("{} of TXT {value:?} at {name}", action.verb());
        let body = serde_json::to_vec(&PayloadOut {
            api_version: PAYLOAD_API_VERSION,
            kind: PAYLOAD_KIND,
            request: &request,
        })
        .map_err(|e| Dns01Error::Config(format!("encoding the challenge payload: {e}")))?;
        let path = self.path();
        let req = http::Request::post(&path)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json")
            .body(body)
            .map_err(|e| Dns01Error::Config(format!("building the request to {path}: {e}")))?;
        let exchange = async {
            let rsp = self
                .client
                .send(req.map(Into::into))
                .await
                .map_err(|e| format!("sending: {}", outbound::chain_text(&e)))?;
            let status = rsp.status().as_u16();
            let bytes = outbound::read_body(rsp.into_body(), outbound::BODY_LIMIT)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((status, bytes))
        };
        let (status, bytes) = match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => {
                return Err(Dns01Error::Timeout {
                    server: format!("DNS webhook solver {path}"),
                    op,
                    timeout: self.timeout,
                });
            }
            Ok(Err(detail)) => {
                return Err(Dns01Error::Io {
                    server: format!("DNS webhook solver {path}"),
                    op,
                    source: std::io::Error::other(detail),
                });
            }
            Ok(Ok(answer)) => answer,
        };
        judge_answer(&self.group, &self.solver, &op, status, &bytes)
    }
}

impl DnsProvider for Webhook {
    fn present<'a>(
        &'a self,
        fqdn: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<(), Dns01Error>> {
        Box::pin(self.call(Action::Present, fqdn, value))
    }

    fn clean_up<'a>(
        &'a self,
        fqdn: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<(), Dns01Error>> {
        Box::pin(self.call(Action::CleanUp, fqdn, value))
    }
}

/// `/apis/<group>/v1alpha1/<solver>`. Pure.
pub fn solver_path(group: &str, solver: &str) -> String {
    format!("/apis/{group}/v1alpha1/{solver}")
}

/// The domain a challenge name is for: `_acme-challenge.` removed (a name reached through a CNAME
/// is passed as it is). Pure.
pub fn dns_name_of(challenge_name: &str) -> String {
    let name = normalize_name(challenge_name);
    name.strip_prefix(CHALLENGE_LABEL)
        .and_then(|rest| rest.strip_prefix('.'))
        .map(str::to_string)
        .unwrap_or(name)
}

/// A stable id for one action on one record, so that a retry is recognisably the same request in
/// the solver's logs. Pure.
pub fn request_uid(action: Action, name: &str, value: &str) -> String {
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        format!("{action:?}\n{name}\n{value}").as_bytes(),
    );
    let hex: String = digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// What the API server (or the solver behind it) answered, as a result: `success: true` is done;
/// the solver's own failure carries its message; the API server's refusals say what to fix
/// (404: no APIService for the group; 403: RBAC). Pure.
pub fn judge_answer(
    group: &str,
    solver: &str,
    op: &str,
    status: u16,
    body: &[u8],
) -> Result<(), Dns01Error> {
    let endpoint = solver_path(group, solver);
    let error = |status: u16, code: Option<String>, detail: String| Dns01Error::Api {
        provider: PROVIDER,
        endpoint: endpoint.clone(),
        op: op.to_string(),
        status,
        code,
        detail,
    };
    if !(200..300).contains(&status) {
        let api: ApiStatus = serde_json::from_slice(body).unwrap_or_default();
        let words = api.message.unwrap_or_else(|| {
            String::from_utf8_lossy(body)
                .trim()
                .chars()
                .take(300)
                .collect()
        });
        let hint = match status {
            404 => format!(
                "; is an APIService for {group}/v1alpha1 installed and is {solver} its solver's name?"
            ),
            403 => format!(
                "; the controller needs RBAC create on {solver} in API group {group} (the chart's \
                 dns01Webhooks value)"
            ),
            _ => String::new(),
        };
        return Err(error(status, api.reason, format!("{words}{hint}")));
    }
    let payload: PayloadIn = serde_json::from_slice(body).map_err(|e| {
        error(
            status,
            None,
            format!("the answer is not a ChallengePayload: {e}"),
        )
    })?;
    let Some(response) = payload.response else {
        return Err(error(status, None, "the answer carries no response".into()));
    };
    if response.success {
        return Ok(());
    }
    // The solver's refusal is not a transport problem: not retried within the attempt; the
    // attempt fails with the solver's words.
    Err(Dns01Error::SolverFailed {
        endpoint,
        op: op.to_string(),
        message: response
            .status
            .and_then(|s| s.message)
            .unwrap_or_else(|| "it reported failure without a message".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_and_the_domain() {
        assert_eq!(
            solver_path("acme.example.com", "hetzner"),
            "/apis/acme.example.com/v1alpha1/hetzner"
        );
        assert_eq!(dns_name_of("_acme-challenge.Example.TEST."), "example.test");
        assert_eq!(dns_name_of("abc.acme-dns.test"), "abc.acme-dns.test");
    }

    #[test]
    fn the_request_has_cert_managers_field_names() {
        let request = ChallengeRequest {
            uid: request_uid(Action::Present, "_acme-challenge.a.test", "v"),
            action: Action::Present,
            challenge_type: "dns-01".into(),
            dns_name: "a.test".into(),
            key: "v".into(),
            resource_namespace: "ns".into(),
            resolved_fqdn: "_acme-challenge.a.test.".into(),
            resolved_zone: "a.test.".into(),
            allow_ambient_credentials: false,
            config: Some(serde_json::json!({"k": 1})),
        };
        let json = serde_json::to_value(PayloadOut {
            api_version: PAYLOAD_API_VERSION,
            kind: PAYLOAD_KIND,
            request: &request,
        })
        .unwrap();
        assert_eq!(json["apiVersion"], "webhook.acme.cert-manager.io/v1alpha1");
        assert_eq!(json["kind"], "ChallengePayload");
        let r = &json["request"];
        for field in [
            "uid",
            "action",
            "type",
            "dnsName",
            "key",
            "resourceNamespace",
            "resolvedFQDN",
            "resolvedZone",
            "allowAmbientCredentials",
            "config",
        ] {
            assert!(r.get(field).is_some(), "{field} missing: {r}");
        }
        assert_eq!(r["action"], "Present");
        assert_eq!(serde_json::to_value(Action::CleanUp).unwrap(), "CleanUp");
        assert_eq!(r["uid"].as_str().unwrap().len(), 36);
    }

    #[test]
    fn uids_are_stable_per_action_and_record() {
        let a = request_uid(Action::Present, "n", "v");
        assert_eq!(a, request_uid(Action::Present, "n", "v"));
        assert_ne!(a, request_uid(Action::CleanUp, "n", "v"));
        assert_ne!(a, request_uid(Action::Present, "n", "w"));
    }

    #[test]
    fn answers_are_judged() {
        let ok = br#"{"apiVersion":"x","kind":"ChallengePayload","response":{"uid":"u","success":true}}"#;
        assert!(judge_answer("g.test", "s", "op", 201, ok).is_ok());

        let refused = br#"{"response":{"success":false,"status":{"status":"Failure","message":"BADSIG from 127.0.0.1:5353","reason":"InternalError"}}}"#;
        let e = judge_answer("g.test", "s", "op", 201, refused).unwrap_err();
        assert_eq!(
            e.to_string(),
            "DNS webhook solver /apis/g.test/v1alpha1/s failed the op: BADSIG from 127.0.0.1:5353"
        );
        assert!(!e.is_transient(), "the solver's refusal fails the attempt");

        let missing = br#"{"kind":"Status","message":"the server could not find the requested resource","reason":"NotFound","code":404}"#;
        let e = judge_answer("g.test", "s", "op", 404, missing).unwrap_err();
        assert!(
            e.to_string().contains("APIService for g.test/v1alpha1"),
            "{e}"
        );
        assert!(!e.is_transient());

        let forbidden =
            br#"{"kind":"Status","message":"forbidden","reason":"Forbidden","code":403}"#;
        let e = judge_answer("g.test", "s", "op", 403, forbidden).unwrap_err();
        assert!(e.to_string().contains("dns01Webhooks"), "{e}");

        let unavailable = b"service unavailable";
        let e = judge_answer("g.test", "s", "op", 404, b"404 page not found\n").unwrap_err();
        assert!(
            e.to_string()
                .contains("404 page not found; is an APIService"),
            "{e}"
        );
        let e = judge_answer("g.test", "s", "op", 503, unavailable).unwrap_err();
        assert!(e.is_transient(), "an APIService not ready yet is retried");
        assert!(e.to_string().contains("service unavailable"), "{e}");

        let e = judge_answer("g.test", "s", "op", 200, b"{}").unwrap_err();
        assert!(e.to_string().contains("no response"), "{e}");
        let e = judge_answer("g.test", "s", "op", 200, b"<html>").unwrap_err();
        assert!(e.to_string().contains("not a ChallengePayload"), "{e}");
    }
}

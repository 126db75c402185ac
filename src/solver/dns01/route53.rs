//! Amazon Route53, through its REST/XML API (version 2013-04-01), signed with AWS SigV4.
//!
//! - Credentials: given in [`Route53Config`] (static keys from the Issuer, or the controller's
//!   ambient ones found by [`super::aws_credentials::ambient`]).
//! - Signing: the `aws-sigv4` crate (smithy-rs) with service `route53` and region `us-east-1`,
//!   whatever `region` says (Route53 is a global service signed in us-east-1). The signed
//!   headers are `host`, `x-amz-date`, `x-amz-content-sha256` and, with a session token,
//!   `x-amz-security-token`.
//! - Zone: unless `hosted_zone_id` is set, the hosted zone is found with `ListHostedZonesByName`,
//!   walking up the labels of the record's name until a zone of exactly that name is listed.
//!   Like cert-manager, only *public* zones are taken; private zones of the same name are skipped.
//! - Records: Route53 replaces a whole record set at once, so [`Route53::present`] reads the
//!   current TXT set and UPSERTs the union with the new value, and [`Route53::clean_up`] UPSERTs
//!   the set without the value, or DELETEs the set (with its exact current values and TTL) when
//!   it would become empty. Calls on one [`Route53`] value are serialized, so a wildcard and its
//!   apex presented at once do not lose each other's value; two *processes* writing the same name
//!   at the same moment can still race (Route53 has no conditional writes).
//! - Propagation inside Route53: a change starts `PENDING`; [`Route53::change_status`] asks once
//!   whether it is `INSYNC` and never waits, so the controller can poll on its own schedule
//!   (through [`DnsProvider::present_change`] / [`DnsProvider::change_applied`]).
//! - Errors: a non-2xx answer becomes [`Dns01Error::Api`] with Route53's error `Code` and
//!   `Message` (from `<ErrorResponse>`, or from `<InvalidChangeBatch><Messages>`); an endpoint
//!   that cannot be reached is [`Dns01Error::Io`].

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

use super::{Dns01Error, DnsProvider, normalize_name};
use crate::outbound::Limits;

/// The Route53 API endpoint (global).
pub const DEFAULT_ENDPOINT: &str = "https://route53.amazonaws.com";
/// The region used when none is configured.
pub const DEFAULT_REGION: &str = "us-east-1";
/// The region every Route53 request is signed for.
pub const SIGNING_REGION: &str = "us-east-1";
/// The SigV4 service name of Route53.
pub const SIGNING_SERVICE: &str = "route53";
/// The TTL of a TXT set we create (an existing set keeps its TTL).
pub const DEFAULT_TTL: u32 = 60;
/// The XML namespace of the 2013-04-01 API.
pub const XMLNS: &str = "https://route53.amazonaws.com/doc/2013-04-01/";

const PROVIDER: &str = "Route53";

/// Upper bound on ListHostedZonesByName pages for one name (100 zones each).
const MAX_ZONE_PAGES: u32 = 100;

/// Where and how to reach Route53 (cert-manager's `route53` solver fields, with the secrets
/// already read from their Secrets).
#[derive(Clone)]
pub struct Route53Config {
    /// `region`; Route53 is global and requests are signed for us-east-1 anyway.
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// For temporary credentials (sent as `x-amz-security-token`).
    pub session_token: Option<String>,
    /// `hostedZoneID`: `Z123...` or `/hostedzone/Z123...`; discovered from the name when unset.
    pub hosted_zone_id: Option<String>,
    /// `https://route53.amazonaws.com` by default; `http://` is accepted (tests).
    pub endpoint: String,
}

impl Route53Config {
    /// A configuration with the default region and endpoint and no zone id.
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        Route53Config {
            region: DEFAULT_REGION.to_string(),
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: None,
            hosted_zone_id: None,
            endpoint: DEFAULT_ENDPOINT.to_string(),
        }
    }
}

impl std::fmt::Debug for Route53Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route53Config")
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("hosted_zone_id", &self.hosted_zone_id)
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

/// A TXT record set as Route53 holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxtSet {
    /// Lowercase, without the trailing dot.
    pub name: String,
    pub ttl: u32,
    /// The values exactly as Route53 returns them (quoted character strings: `"abc"`).
    pub values: Vec<String>,
}

/// The Route53 DNS-01 provider.
pub struct Route53 {
    config: Route53Config,
    /// The endpoint without a trailing slash.
    endpoint: String,
    /// HTTPS (or plain HTTP for a local endpoint), HTTP/1.1.
    client: AwsHttpClient,
    /// Serializes the read-modify-write of record sets.
    lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Route53 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route53")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

type Op<'a> = &'a str;

impl Route53 {
    /// A provider for this configuration. `https://` endpoints are verified against the system's
    /// trusted roots.
    pub fn new(config: Route53Config) -> Result<Self, Dns01Error> {
        let (endpoint, client) = aws_client(&config.endpoint, PROVIDER)?;
        if config.access_key_id.trim().is_empty() || config.secret_access_key.is_empty() {
            return Err(Dns01Error::Config(
                "Route53: the access key id and the secret access key must be set".into(),
            ));
        }
        Ok(Route53 {
            config,
            endpoint,
            client,
            lock: tokio::sync::Mutex::new(()),
        })
    }

    /// Adds `value` to the TXT set at `fqdn` (keeping the other values) and returns the id of
    /// the submitted change (`C...`), or `None` when the value was already there.
    pub async fn present_value(
        &self,
        fqdn: &str,
        value: &str,
    ) -> Result<Option<String>, Dns01Error> {
        let _guard = self.lock.lock().await;
        let name = normalize_name(fqdn);
        let zone = self.zone_id(&name).await?;
        let wanted = quote_txt(value);
        let current = self.txt_set(&zone, &name).await?;
        let (ttl, mut values) = match current {
            Some(set) => (set.ttl, set.values),
            None => (DEFAULT_TTL, Vec::new()),
        };
        if values.contains(&wanted) {
            return Ok(None);
        }
        values.push(wanted);
        let id = self
            .change(&zone, "UPSERT", &name, ttl, &values, &format!("add {name}"))
            .await?;
        Ok(Some(id))
    }

    /// Removes `value` from the TXT set at `fqdn` (deleting the set when it was the last value)
    /// and returns the id of the submitted change, or `None` when the value was not there.
    pub async fn clean_up_value(
        &self,
        fqdn: &str,
        value: &str,
    ) -> Result<Option<String>, Dns01Error> {
        let _guard = self.lock.lock().await;
        let name = normalize_name(fqdn);
        let zone = self.zone_id(&name).await?;
        let unwanted = quote_txt(value);
        let Some(set) = self.txt_set(&zone, &name).await? else {
            return Ok(None);
        };
        if !set.values.contains(&unwanted) {
            return Ok(None);
        }
        let rest: Vec<String> = set
            .values
            .iter()
            .filter(|v| **v != unwanted)
            .cloned()
            .collect();
        let op = format!("remove from {name}");
        let id = if rest.is_empty() {
            self.change(&zone, "DELETE", &name, set.ttl, &set.values, &op)
                .await?
        } else {
            self.change(&zone, "UPSERT", &name, set.ttl, &rest, &op)
                .await?
        };
        Ok(Some(id))
    }

    /// Whether the change `id` (`C...` or `/change/C...`) is `INSYNC` (true) or still
    /// `PENDING` (false). Asks once; never waits.
    pub async fn change_status(&self, id: &str) -> Result<bool, Dns01Error> {
        let id = id.trim().trim_start_matches("/change/");
        check_id(id, "change id")?;
        let op = format!("GetChange {id}");
        let body = self
            .call("GET", &format!("/2013-04-01/change/{id}"), &[], None, &op)
            .await?;
        let resp: GetChangeResponse = self.parse(&body, &op)?;
        match resp.change_info.status.as_str() {
            "INSYNC" => Ok(true),
            "PENDING" => Ok(false),
            other => Err(self.protocol(&op, format!("unknown change status {other:?}"))),
        }
    }

    /// The hosted zone id (`Z...`) holding `name`: the configured one, or the public zone found
    /// by walking up the labels of `name`.
    pub async fn zone_id(&self, name: &str) -> Result<String, Dns01Error> {
        if let Some(id) = &self.config.hosted_zone_id {
            let id = id.trim().trim_start_matches("/hostedzone/").to_string();
            check_id(&id, "hosted zone id")?;
            return Ok(id);
        }
        let name = normalize_name(name);
        if name.is_empty() {
            return Err(Dns01Error::InvalidName {
                name,
                reason: "empty".into(),
            });
        }
        let mut candidate = name.as_str();
        loop {
            if let Some(id) = self.public_zone_named(candidate).await? {
                return Ok(id);
            }
            match candidate.split_once('.') {
                Some((_, parent)) if !parent.is_empty() => candidate = parent,
                _ => {
                    return Err(Dns01Error::ZoneNotFound {
                        name,
                        server: self.endpoint.clone(),
                        detail: "no public hosted zone of this name or any parent name \
                                 (set hostedZoneID to choose one)"
                            .into(),
                    });
                }
            }
        }
    }

    /// The id of the public hosted zone named exactly `zone`, if there is one. The listing starts
    /// at `zone` and is ordered by name, so every zone of that name (an account may hold many
    /// private ones) comes first; pages are followed while they still hold that name.
    async fn public_zone_named(&self, zone: &str) -> Result<Option<String>, Dns01Error> {
        let mut next_id: Option<String> = None;
        for page in 1..=MAX_ZONE_PAGES {
            let op = format!("ListHostedZonesByName {zone} (page {page})");
            let mut query = vec![("dnsname", zone)];
            if let Some(id) = next_id.as_deref() {
                query.push(("hostedzoneid", id));
            }
            let body = self
                .call("GET", "/2013-04-01/hostedzonesbyname", &query, None, &op)
                .await?;
            let resp: ListHostedZonesByNameResponse = self.parse(&body, &op)?;
            let mut passed = false;
            for z in &resp.hosted_zones.zones {
                if normalize_name(&z.name) != zone {
                    passed = true;
                    break;
                }
                if !z.config.as_ref().is_some_and(|c| c.private_zone) {
                    let id = z.id.trim_start_matches("/hostedzone/").to_string();
                    check_id(&id, "hosted zone id")?;
                    return Ok(Some(id));
                }
            }
            let more = resp.is_truncated
                && resp
                    .next_dns_name
                    .as_deref()
                    .is_some_and(|n| normalize_name(n) == zone);
            if passed || !more {
                return Ok(None);
            }
            next_id = resp
                .next_hosted_zone_id
                .map(|id| id.trim_start_matches("/hostedzone/").to_string());
            if next_id.is_none() {
                return Err(self.protocol(&op, "truncated listing without NextHostedZoneId".into()));
            }
        }
        Err(self.protocol(
            &format!("ListHostedZonesByName {zone}"),
            format!("more than {MAX_ZONE_PAGES} pages of zones named {zone}"),
        ))
    }

    /// The TXT set at `name` in zone `zone`, if there is one.
    pub async fn txt_set(&self, zone: &str, name: &str) -> Result<Option<TxtSet>, Dns01Error> {
        let name = normalize_name(name);
        let op = format!("ListResourceRecordSets {name} TXT in zone {zone}");
        let body = self
            .call(
                "GET",
                &format!("/2013-04-01/hostedzone/{zone}/rrset"),
                &[("name", &name), ("type", "TXT"), ("maxitems", "1")],
                None,
                &op,
            )
            .await?;
        let resp: ListResourceRecordSetsResponse = self.parse(&body, &op)?;
        // The listing *starts* at the name: the first set may be a later one.
        let Some(set) = resp.sets.sets.into_iter().find(|s| {
            s.rtype == "TXT" && normalize_name(&s.name) == name && s.set_identifier.is_none()
        }) else {
            return Ok(None);
        };
        let values: Vec<String> = set
            .records
            .map(|r| r.records.into_iter().map(|r| r.value).collect())
            .unwrap_or_default();
        if values.is_empty() {
            return Ok(None);
        }
        Ok(Some(TxtSet {
            name,
            ttl: set.ttl.unwrap_or(DEFAULT_TTL),
            values,
        }))
    }

    async fn change(
        &self,
        zone: &str,
        action: &str,
        name: &str,
        ttl: u32,
        values: &[String],
        what: &str,
    ) -> Result<String, Dns01Error> {
        let op = format!("ChangeResourceRecordSets {action} ({what}) in zone {zone}");
        let xml = change_batch_xml(action, name, ttl, values);
        let body = self
            .call(
                "POST",
                &format!("/2013-04-01/hostedzone/{zone}/rrset"),
                &[],
                Some(xml),
                &op,
            )
            .await?;
        let resp: ChangeResourceRecordSetsResponse = self.parse(&body, &op)?;
        let id = resp
            .change_info
            .id
            .trim()
            .trim_start_matches("/change/")
            .to_string();
        check_id(&id, "change id")?;
        tracing::debug!(%zone, %name, %action, change = %id, status = %resp.change_info.status, "Route53 change submitted");
        Ok(id)
    }

    /// Sends one signed request and returns the body of a 2xx answer.
    async fn call(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<String>,
        op: Op<'_>,
    ) -> Result<Bytes, Dns01Error> {
        let mut uri = format!("{}{path}", self.endpoint);
        if !query.is_empty() {
            uri.push('?');
            uri.push_str(&encode_pairs(query));
        }
        let body = Bytes::from(body.unwrap_or_default());
        let mut request = http::Request::builder()
            .method(method)
            .uri(&uri)
            .body(Full::new(body.clone()))
            .map_err(|e| Dns01Error::Config(format!("Route53 request {uri}: {e}")))?;
        if method == "POST" {
            request.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/xml"),
            );
        }
        let host = request
            .uri()
            .authority()
            .map(|a| a.as_str().to_string())
            .unwrap_or_default();
        request.headers_mut().insert(
            http::header::HOST,
            http::HeaderValue::from_str(&host)
                .map_err(|e| Dns01Error::Config(format!("Route53 endpoint host: {e}")))?,
        );
        sign_request(
            &mut request,
            &body,
            &self.config.access_key_id,
            &self.config.secret_access_key,
            self.config.session_token.as_deref(),
            SystemTime::now(),
        )?;
        let response = crate::outbound::send(&self.client, request, &Limits::DEFAULT, PROVIDER)
            .await
            .map_err(|e| super::outbound_error(&format!("Route53 API {}", self.endpoint), op, e))?;
        let status = response.status();
        let body = response.into_body();
        if status.is_success() {
            return Ok(body);
        }
        let (code, message) = parse_error(&body).unwrap_or_else(|| {
            (
                status.canonical_reason().unwrap_or("error").to_string(),
                String::from_utf8_lossy(&body).chars().take(500).collect(),
            )
        });
        Err(Dns01Error::Api {
            provider: PROVIDER,
            endpoint: self.endpoint.clone(),
            op: op.to_string(),
            status: status.as_u16(),
            detail: aws_error_detail(&code, &message),
            code: Some(code),
        })
    }

    fn parse<T: serde::de::DeserializeOwned>(
        &self,
        body: &[u8],
        op: Op<'_>,
    ) -> Result<T, Dns01Error> {
        let text = std::str::from_utf8(body)
            .map_err(|_| self.protocol(op, "the answer is not UTF-8".into()))?;
        quick_xml::de::from_str(text)
            .map_err(|e| self.protocol(op, format!("unexpected XML answer: {e}")))
    }

    fn protocol(&self, op: Op<'_>, detail: String) -> Dns01Error {
        Dns01Error::Protocol {
            server: format!("Route53 API {}", self.endpoint),
            op: op.to_string(),
            detail,
        }
    }
}

impl DnsProvider for Route53 {
    fn present<'a>(
        &'a self,
        fqdn: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<(), Dns01Error>> {
        Box::pin(async move { self.present_value(fqdn, value).await.map(|_| ()) })
    }

    fn clean_up<'a>(
        &'a self,
        fqdn: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<(), Dns01Error>> {
        Box::pin(async move { self.clean_up_value(fqdn, value).await.map(|_| ()) })
    }

    fn present_change<'a>(
        &'a self,
        fqdn: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, Dns01Error>> {
        Box::pin(self.present_value(fqdn, value))
    }

    fn change_applied<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, Dns01Error>> {
        Box::pin(self.change_status(id))
    }
}

/// An HTTP/1.1 client for an AWS endpoint (`scheme://host[:port]`, https verified against the
/// system roots, or plain http for local tests), and the endpoint without a trailing slash.
pub(super) fn aws_client(
    endpoint: &str,
    service: &str,
) -> Result<(String, AwsHttpClient), Dns01Error> {
    let endpoint = endpoint.trim().trim_end_matches('/').to_string();
    let uri: http::Uri = endpoint
        .parse()
        .map_err(|e| Dns01Error::Config(format!("{service} endpoint {endpoint:?}: {e}")))?;
    let tls = match uri.scheme_str() {
        Some("https") => crate::acme::http::tls_config(crate::acme::http::Trust::System)
            .map_err(|e| Dns01Error::Config(format!("{service} endpoint {endpoint}: {e}")))?,
        Some("http") => {
            let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| Dns01Error::Config(e.to_string()))?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
        }
        _ => {
            return Err(Dns01Error::Config(format!(
                "{service} endpoint {endpoint:?}: must start with https:// (or http://)"
            )));
        }
    };
    if uri.host().is_none() || !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(Dns01Error::Config(format!(
            "{service} endpoint {endpoint:?}: expected scheme://host[:port] only"
        )));
    }
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(crate::outbound::http_connector(&Limits::DEFAULT));
    Ok((
        endpoint,
        Client::builder(TokioExecutor::new()).build(connector),
    ))
}

/// The HTTP client type of [`aws_client`].
pub(super) type AwsHttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Signs `request` in place for Route53 (service `route53`, region us-east-1): adds
/// `x-amz-date`, `x-amz-content-sha256`, `x-amz-security-token` (with a session token) and
/// `Authorization`. The request must already carry its `host` header.
pub fn sign_request<B>(
    request: &mut http::Request<B>,
    body: &[u8],
    access_key_id: &str,
    secret_access_key: &str,
    session_token: Option<&str>,
    time: SystemTime,
) -> Result<(), Dns01Error> {
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    sign_with(
        request,
        body,
        Credentials::new(
            access_key_id,
            secret_access_key,
            session_token.map(str::to_string),
            None,
            "ferrocert-route53",
        ),
        SIGNING_REGION,
        SIGNING_SERVICE,
        settings,
        time,
    )
}

pub(super) fn sign_with<B>(
    request: &mut http::Request<B>,
    body: &[u8],
    credentials: Credentials,
    region: &str,
    service: &str,
    settings: SigningSettings,
    time: SystemTime,
) -> Result<(), Dns01Error> {
    let bad = |e: &dyn std::fmt::Display| Dns01Error::Config(format!("SigV4 signing: {e}"));
    let identity: Identity = credentials.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| bad(&e))?
        .into();
    let uri = request.uri().to_string();
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(k, v)| {
            v.to_str()
                .map(|v| (k.as_str().to_string(), v.to_string()))
                .map_err(|e| bad(&e))
        })
        .collect::<Result<_, _>>()?;
    let signable = SignableRequest::new(
        request.method().as_str(),
        &uri,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .map_err(|e| bad(&e))?;
    let (instructions, _signature) = sign(signable, &params).map_err(|e| bad(&e))?.into_parts();
    instructions.apply_to_request_http1x(request);
    Ok(())
}

/// The ChangeResourceRecordSets request body for one change of one TXT set.
pub fn change_batch_xml(action: &str, name: &str, ttl: u32, values: &[String]) -> String {
    use quick_xml::escape::escape;
    let mut records = String::new();
    for v in values {
        records.push_str(&format!(
            "<ResourceRecord><Value>{}</Value></ResourceRecord>",
            escape(v.as_str())
        ));
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <ChangeResourceRecordSetsRequest xmlns=\"{XMLNS}\">\
         <ChangeBatch><Comment>ferrocert ACME DNS-01 challenge</Comment><Changes><Change>\
         <Action>{}</Action>\
         <ResourceRecordSet><Name>{}.</Name><Type>TXT</Type><TTL>{ttl}</TTL>\
         <ResourceRecords>{records}</ResourceRecords></ResourceRecordSet>\
         </Change></Changes></ChangeBatch></ChangeResourceRecordSetsRequest>",
        escape(action),
        escape(normalize_name(name).as_str()),
    )
}

/// A TXT value as one quoted character string, as Route53 writes them (`"abc"`).
pub fn quote_txt(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The `Code` and `Message` of a Route53 error body: `<ErrorResponse><Error><Code>` /
/// `<Message>`, or `<InvalidChangeBatch><Messages><Message>...` (code = the root element).
pub fn parse_error(body: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(body).ok()?;
    if let Ok(e) = quick_xml::de::from_str::<ErrorResponse>(text)
        && let Some(err) = e.error
    {
        return Some((err.code, err.message.unwrap_or_default()));
    }
    let root = root_element(text)?;
    let messages: MessagesBody = quick_xml::de::from_str(text).ok()?;
    let mut all = messages.messages.map(|m| m.messages).unwrap_or_default();
    all.extend(messages.message);
    if all.is_empty() {
        return None;
    }
    Some((root, all.join("; ")))
}

/// The `Code: Message` of an AWS error (Route53, STS) as a tenant may see it, in status and
/// Events. AWS's messages name the caller (`User: arn:aws:sts::123456789012:assumed-role/...
/// is not authorized to perform ...`), and the caller is often the controller's own identity
/// (ambient credentials, IRSA): refusals of the caller or its credentials are classified into a
/// fixed text, and any other message has ARNs, account ids and access key ids replaced. AWS's
/// own words are logged at debug level only. Pure but for that log line.
pub(super) fn aws_error_detail(code: &str, message: &str) -> String {
    let code: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '_')
        .take(64)
        .collect();
    tracing::debug!(%code, %message, "AWS error answer");
    let denied = matches!(
        code.as_str(),
        "AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation" | "Forbidden"
    ) || message.contains("is not authorized to perform")
        || message.contains("not authorized to perform");
    if denied {
        return format!(
            "{code}: AWS refused the action: the credentials used lack the permission (IAM \
             policy), or the role's trust policy does not let them assume it (AWS's message \
             names an identity and is in the controller's log at debug level only)"
        );
    }
    if matches!(
        code.as_str(),
        "InvalidClientTokenId"
            | "UnrecognizedClientException"
            | "SignatureDoesNotMatch"
            | "IncompleteSignature"
            | "InvalidAccessKeyId"
            | "ExpiredToken"
            | "ExpiredTokenException"
            | "MissingAuthenticationToken"
            | "InvalidSignatureException"
    ) {
        return format!(
            "{code}: AWS did not accept the credentials (unknown access key, wrong secret, or \
             an expired session token)"
        );
    }
    let scrubbed: String = scrub_aws_identities(message).chars().take(300).collect();
    format!("{code}: {scrubbed}")
}

/// `text` with ARNs, 12-digit account ids and AWS access key ids replaced by `<arn>`,
/// `<account>` and `<key id>`. Pure.
fn scrub_aws_identities(text: &str) -> String {
    const KEY_PREFIXES: [&str; 11] = [
        "AKIA", "ASIA", "AROA", "AIDA", "AGPA", "ANPA", "ANVA", "AIPA", "APKA", "ABIA", "ACCA",
    ];
    let mut out = String::with_capacity(text.len());
    for piece in text.split_inclusive(|c: char| c.is_whitespace()) {
        let word = piece.trim_end_matches(|c: char| c.is_whitespace());
        let tail = &piece[word.len()..];
        let is_edge = |c: char| "\"'`()[]{}<>,;.!?".contains(c);
        let start = word.len() - word.trim_start_matches(is_edge).len();
        let core = word[start..].trim_end_matches(is_edge);
        let (before, after) = (&word[..start], &word[start + core.len()..]);
        let lower = core.to_ascii_lowercase();
        let replacement = if let Some(at) = lower.find("arn:") {
            Some(format!("{}<arn>", &core[..at]))
        } else if core.len() == 12 && core.bytes().all(|b| b.is_ascii_digit()) {
            Some("<account>".to_string())
        } else if core.len() >= 16
            && KEY_PREFIXES.iter().any(|p| core.starts_with(p))
            && core
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            Some("<key id>".to_string())
        } else {
            None
        };
        match replacement {
            Some(r) => {
                out.push_str(before);
                out.push_str(&r);
                out.push_str(after);
            }
            None => out.push_str(word),
        }
        out.push_str(tail);
    }
    out
}

fn root_element(text: &str) -> Option<String> {
    let mut reader = quick_xml::Reader::from_str(text);
    loop {
        match reader.read_event().ok()? {
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e) => {
                return Some(e.local_name().into_inner().to_string());
            }
            quick_xml::events::Event::Eof => return None,
            _ => {}
        }
    }
}

/// Ids go into URL paths: only letters, digits and `_`/`-`.
fn check_id(id: &str, what: &str) -> Result<(), Dns01Error> {
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(Dns01Error::Config(format!("invalid Route53 {what} {id:?}")));
    }
    Ok(())
}

/// `k=v&k=v` with [`uri_encode`]: Route53's query strings and STS's form bodies (the AWS SDKs
/// escape both this way).
pub(super) fn encode_pairs(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", uri_encode(k), uri_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// RFC 3986 percent-encoding of everything but the unreserved characters (SigV4's rule).
fn uri_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---- the API's XML answers (only the parts we read) ----

#[derive(Deserialize)]
struct ListHostedZonesByNameResponse {
    #[serde(rename = "HostedZones", default)]
    hosted_zones: HostedZones,
    #[serde(rename = "IsTruncated", default)]
    is_truncated: bool,
    #[serde(rename = "NextDNSName")]
    next_dns_name: Option<String>,
    #[serde(rename = "NextHostedZoneId")]
    next_hosted_zone_id: Option<String>,
}

#[derive(Deserialize, Default)]
struct HostedZones {
    #[serde(rename = "HostedZone", default)]
    zones: Vec<HostedZone>,
}

#[derive(Deserialize)]
struct HostedZone {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Config")]
    config: Option<HostedZoneConfig>,
}

#[derive(Deserialize)]
struct HostedZoneConfig {
    #[serde(rename = "PrivateZone", default)]
    private_zone: bool,
}

#[derive(Deserialize)]
struct ListResourceRecordSetsResponse {
    #[serde(rename = "ResourceRecordSets", default)]
    sets: ResourceRecordSets,
}

#[derive(Deserialize, Default)]
struct ResourceRecordSets {
    #[serde(rename = "ResourceRecordSet", default)]
    sets: Vec<ResourceRecordSet>,
}

#[derive(Deserialize)]
struct ResourceRecordSet {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Type")]
    rtype: String,
    #[serde(rename = "SetIdentifier")]
    set_identifier: Option<String>,
    #[serde(rename = "TTL")]
    ttl: Option<u32>,
    #[serde(rename = "ResourceRecords")]
    records: Option<ResourceRecords>,
}

#[derive(Deserialize)]
struct ResourceRecords {
    #[serde(rename = "ResourceRecord", default)]
    records: Vec<ResourceRecord>,
}

#[derive(Deserialize)]
struct ResourceRecord {
    #[serde(rename = "Value")]
    value: String,
}

#[derive(Deserialize)]
struct ChangeResourceRecordSetsResponse {
    #[serde(rename = "ChangeInfo")]
    change_info: ChangeInfo,
}

#[derive(Deserialize)]
struct GetChangeResponse {
    #[serde(rename = "ChangeInfo")]
    change_info: ChangeInfo,
}

#[derive(Deserialize)]
struct ChangeInfo {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Status")]
    status: String,
}

#[derive(Deserialize)]
struct ErrorResponse {
    #[serde(rename = "Error")]
    error: Option<ErrorBody>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(rename = "Code")]
    code: String,
    #[serde(rename = "Message")]
    message: Option<String>,
}

#[derive(Deserialize)]
struct MessagesBody {
    #[serde(rename = "Messages")]
    messages: Option<Messages>,
    #[serde(rename = "Message", default)]
    message: Vec<String>,
}

#[derive(Deserialize)]
struct Messages {
    #[serde(rename = "Message", default)]
    messages: Vec<String>,
}

/// One set of AWS credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests;

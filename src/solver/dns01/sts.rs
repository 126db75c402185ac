//! AWS STS, for Route53 credentials that are a role: `AssumeRole` (cert-manager's `route53.role`,
//! signed with the base credentials) and `AssumeRoleWithWebIdentity` (EKS IRSA: the projected
//! service-account token in `AWS_WEB_IDENTITY_TOKEN_FILE` for `AWS_ROLE_ARN`, unsigned).
//!
//! - Endpoint: `AWS_ENDPOINT_URL_STS`, else `AWS_ENDPOINT_URL`, else the regional
//!   `https://sts.<AWS_REGION>.amazonaws.com` when `AWS_REGION` (or `AWS_DEFAULT_REGION`) is set,
//!   else the global `https://sts.amazonaws.com` (signed for us-east-1).
//! - Query API (version 2011-06-15): a form-encoded POST; the answer's
//!   `<Credentials>` carry `AccessKeyId`, `SecretAccessKey`, `SessionToken`, `Expiration`.
//! - The temporary credentials are cached in the process by (endpoint, role, caller) until five
//!   minutes before they expire, so reconciles do not call STS each time.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::SigningSettings;
use bytes::Bytes;
use http_body_util::Full;
use serde::Deserialize;

use super::Dns01Error;
use super::route53::{AwsCredentials, AwsHttpClient, aws_client, parse_error, sign_with};

/// The global STS endpoint.
pub const GLOBAL_ENDPOINT: &str = "https://sts.amazonaws.com";
/// The session name given to STS (it shows in CloudTrail).
pub const SESSION_NAME: &str = "ferrocert";
const PROVIDER: &str = "STS";
const API_VERSION: &str = "2011-06-15";
/// Cached credentials are renewed this long before they expire.
const REFRESH_MARGIN: jiff::SignedDuration = jiff::SignedDuration::from_secs(300);

/// Where STS is and which region its requests are signed for, from the environment (see the
/// module docs). `get` reads a variable.
pub fn endpoint_from_env(get: impl Fn(&str) -> Option<String>) -> (String, String) {
    let non_empty = |k: &str| get(k).filter(|v| !v.trim().is_empty());
    let region = non_empty("AWS_REGION").or_else(|| non_empty("AWS_DEFAULT_REGION"));
    let endpoint = non_empty("AWS_ENDPOINT_URL_STS")
        .or_else(|| non_empty("AWS_ENDPOINT_URL"))
        .or_else(|| {
            region
                .as_ref()
                .map(|r| format!("https://sts.{r}.amazonaws.com"))
        })
        .unwrap_or_else(|| GLOBAL_ENDPOINT.to_string());
    (endpoint, region.unwrap_or_else(|| "us-east-1".to_string()))
}

/// An STS client for one endpoint.
pub struct Sts {
    endpoint: String,
    region: String,
    client: AwsHttpClient,
}

impl Sts {
    pub fn new(endpoint: &str, region: &str) -> Result<Self, Dns01Error> {
        let (endpoint, client) = aws_client(endpoint, PROVIDER)?;
        Ok(Sts {
            endpoint,
            region: region.to_string(),
            client,
        })
    }

    /// The client for the process's environment.
    pub fn from_env() -> Result<Self, Dns01Error> {
        let (endpoint, region) = endpoint_from_env(|k| std::env::var(k).ok());
        Sts::new(&endpoint, &region)
    }

    /// Temporary credentials for `role_arn`, assumed with `base` (cached).
    pub async fn assume_role(
        &self,
        base: &AwsCredentials,
        role_arn: &str,
    ) -> Result<AwsCredentials, Dns01Error> {
        let key = format!("{}|{role_arn}|{}", self.endpoint, base.access_key_id);
        if let Some(c) = cached(&key) {
            return Ok(c);
        }
        let form = [
            ("Action", "AssumeRole"),
            ("Version", API_VERSION),
            ("RoleArn", role_arn),
            ("RoleSessionName", SESSION_NAME),
        ];
        let op = format!("AssumeRole {role_arn}");
        let (creds, expires) = self.call(&form, Some(base), &op).await?;
        remember(key, &creds, expires);
        Ok(creds)
    }

    /// Temporary credentials for `role_arn` from a web identity token (cached by role).
    pub async fn assume_role_with_web_identity(
        &self,
        role_arn: &str,
        token: &str,
    ) -> Result<AwsCredentials, Dns01Error> {
        let key = format!("{}|{role_arn}|web-identity", self.endpoint);
        if let Some(c) = cached(&key) {
            return Ok(c);
        }
        let form = [
            ("Action", "AssumeRoleWithWebIdentity"),
            ("Version", API_VERSION),
            ("RoleArn", role_arn),
            ("RoleSessionName", SESSION_NAME),
            ("WebIdentityToken", token.trim()),
        ];
        // The role is the controller's own (AWS_ROLE_ARN, IRSA): not in the error's words, which
        // may reach a tenant's status.
        tracing::debug!(role = %role_arn, "AssumeRoleWithWebIdentity");
        let op = "AssumeRoleWithWebIdentity for the controller's service account".to_string();
        let (creds, expires) = self.call(&form, None, &op).await?;
        remember(key, &creds, expires);
        Ok(creds)
    }

    async fn call(
        &self,
        form: &[(&str, &str)],
        signer: Option<&AwsCredentials>,
        op: &str,
    ) -> Result<(AwsCredentials, Option<jiff::Timestamp>), Dns01Error> {
        let body = Bytes::from(super::route53::encode_pairs(form));
        let uri = format!("{}/", self.endpoint);
        let mut request = http::Request::builder()
            .method("POST")
            .uri(&uri)
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .body(Full::new(body.clone()))
            .map_err(|e| Dns01Error::Config(format!("STS request {uri}: {e}")))?;
        let host = request
            .uri()
            .authority()
            .map(|a| a.as_str().to_string())
            .unwrap_or_default();
        request.headers_mut().insert(
            http::header::HOST,
            http::HeaderValue::from_str(&host)
                .map_err(|e| Dns01Error::Config(format!("STS endpoint host: {e}")))?,
        );
        if let Some(base) = signer {
            sign_with(
                &mut request,
                &body,
                Credentials::new(
                    &base.access_key_id,
                    &base.secret_access_key,
                    base.session_token.clone(),
                    None,
                    "ferrocert-sts",
                ),
                &self.region,
                "sts",
                SigningSettings::default(),
                SystemTime::now(),
            )?;
        }
        let response = crate::outbound::send(
            &self.client,
            request,
            &crate::outbound::Limits::DEFAULT,
            PROVIDER,
        )
        .await
        .map_err(|e| super::outbound_error(&format!("AWS STS {}", self.endpoint), op, e))?;
        let status = response.status();
        let bytes = response.into_body();
        if !status.is_success() {
            let (code, message) = parse_error(&bytes).unwrap_or_else(|| {
                (
                    status.canonical_reason().unwrap_or("error").to_string(),
                    String::from_utf8_lossy(&bytes).chars().take(500).collect(),
                )
            });
            return Err(Dns01Error::Api {
                provider: PROVIDER,
                endpoint: self.endpoint.clone(),
                op: op.to_string(),
                status: status.as_u16(),
                detail: super::route53::aws_error_detail(&code, &message),
                code: Some(code),
            });
        }
        let protocol = |detail: String| Dns01Error::Protocol {
            server: format!("AWS STS {}", self.endpoint),
            op: op.to_string(),
            detail,
        };
        let text =
            std::str::from_utf8(&bytes).map_err(|_| protocol("the answer is not UTF-8".into()))?;
        let answer: AssumeResponse = quick_xml::de::from_str(text)
            .map_err(|e| protocol(format!("unexpected XML answer: {e}")))?;
        let c = answer
            .assume_role
            .or(answer.web_identity)
            .map(|r| r.credentials)
            .ok_or_else(|| protocol("no credentials in the answer".into()))?;
        let expires = c.expiration.as_deref().and_then(|e| e.parse().ok());
        Ok((
            AwsCredentials {
                access_key_id: c.access_key_id,
                secret_access_key: c.secret_access_key,
                session_token: Some(c.session_token),
            },
            expires,
        ))
    }
}

fn cache() -> std::sync::MutexGuard<'static, HashMap<String, (AwsCredentials, jiff::Timestamp)>> {
    static CACHE: OnceLock<Mutex<HashMap<String, (AwsCredentials, jiff::Timestamp)>>> =
        OnceLock::new();
    CACHE
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

fn cached(key: &str) -> Option<AwsCredentials> {
    let now = jiff::Timestamp::now();
    let cache = cache();
    let (creds, expires) = cache.get(key)?;
    (expires.checked_sub(REFRESH_MARGIN).ok()? > now).then(|| creds.clone())
}

fn remember(key: String, creds: &AwsCredentials, expires: Option<jiff::Timestamp>) {
    if let Some(expires) = expires {
        cache().insert(key, (creds.clone(), expires));
    }
}

#[derive(Deserialize)]
struct AssumeResponse {
    #[serde(rename = "AssumeRoleResult")]
    assume_role: Option<AssumeResult>,
    #[serde(rename = "AssumeRoleWithWebIdentityResult")]
    web_identity: Option<AssumeResult>,
}

#[derive(Deserialize)]
struct AssumeResult {
    #[serde(rename = "Credentials")]
    credentials: StsCredentials,
}

#[derive(Deserialize)]
struct StsCredentials {
    #[serde(rename = "AccessKeyId")]
    access_key_id: String,
    #[serde(rename = "SecretAccessKey")]
    secret_access_key: String,
    #[serde(rename = "SessionToken")]
    session_token: String,
    #[serde(rename = "Expiration")]
    expiration: Option<String>,
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn endpoints_from_the_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            endpoint_from_env(env(&[])),
            (GLOBAL_ENDPOINT.to_string(), "us-east-1".to_string())
        );
        assert_eq!(
            endpoint_from_env(env(&[("AWS_REGION", "eu-west-1")])),
            (
                "https://sts.eu-west-1.amazonaws.com".to_string(),
                "eu-west-1".to_string()
            )
        );
        assert_eq!(
            endpoint_from_env(env(&[
                ("AWS_DEFAULT_REGION", "ap-south-1"),
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
                ("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:2"),
            ])),
            ("http://127.0.0.1:2".to_string(), "ap-south-1".to_string())
        );
    }

    #[derive(Default)]
    struct Seen {
        requests: Vec<(String, BTreeMapHeaders, String)>,
    }
    type BTreeMapHeaders = std::collections::BTreeMap<String, String>;

    /// A fake STS: answers AssumeRole / AssumeRoleWithWebIdentity as documented, or refuses.
    async fn serve(seen: Arc<Mutex<Seen>>) -> String {
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let seen = seen.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = axum::body::to_bytes(body, 1 << 16).await.unwrap();
                let body = String::from_utf8(body.to_vec()).unwrap();
                let headers = parts
                    .headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
                    .collect();
                seen.lock().unwrap().requests.push((
                    parts.uri.path().to_string(),
                    headers,
                    body.clone(),
                ));
                let xml = |status: u16, s: String| {
                    axum::response::Response::builder()
                        .status(status)
                        .header("content-type", "text/xml")
                        .body(axum::body::Body::from(s))
                        .unwrap()
                };
                if body.contains("denied") {
                    return xml(
                        403,
                        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
                             <Error><Type>Sender</Type><Code>AccessDenied</Code>\
                             <Message>User: arn:aws:sts::123456789012:assumed-role/ferrocert/\
                             botocore-session-1 is not authorized to perform: sts:AssumeRole on \
                             resource: arn:aws:iam::999999999999:role/denied</Message></Error>\
                             <RequestId>r</RequestId></ErrorResponse>"
                            .into(),
                    );
                }
                if body.contains("WebIdentityToken=bad") {
                    return xml(
                        400,
                        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
                             <Error><Type>Sender</Type><Code>InvalidIdentityToken</Code>\
                             <Message>Couldn't retrieve verification key from your identity \
                             provider</Message></Error><RequestId>r</RequestId></ErrorResponse>"
                            .into(),
                    );
                }
                let action = if body.contains("Action=AssumeRoleWithWebIdentity") {
                    "AssumeRoleWithWebIdentity"
                } else {
                    "AssumeRole"
                };
                xml(
                    200,
                    format!(
                        "<{action}Response xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
                             <{action}Result><Credentials>\
                             <SessionToken>tok-{action}</SessionToken>\
                             <SecretAccessKey>secret-{action}</SecretAccessKey>\
                             <Expiration>2099-01-01T00:00:00Z</Expiration>\
                             <AccessKeyId>ASIA{action}</AccessKeyId></Credentials>\
                             <AssumedRoleUser><Arn>arn:aws:sts::1:assumed-role/dns/ferrocert</Arn>\
                             <AssumedRoleId>AROA:ferrocert</AssumedRoleId></AssumedRoleUser>\
                             </{action}Result><ResponseMetadata><RequestId>r</RequestId>\
                             </ResponseMetadata></{action}Response>"
                    ),
                )
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn assume_role_is_signed_for_sts_and_cached() {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let endpoint = serve(seen.clone()).await;
        let sts = Sts::new(&endpoint, "eu-west-1").unwrap();
        let base = AwsCredentials {
            access_key_id: "AKIDBASE".into(),
            secret_access_key: "s".into(),
            session_token: None,
        };
        let role = "arn:aws:iam::123456789012:role/dns-manager";
        let creds = sts.assume_role(&base, role).await.unwrap();
        assert_eq!(creds.access_key_id, "ASIAAssumeRole");
        assert_eq!(creds.secret_access_key, "secret-AssumeRole");
        assert_eq!(creds.session_token.as_deref(), Some("tok-AssumeRole"));
        // Cached: no second call.
        assert_eq!(sts.assume_role(&base, role).await.unwrap(), creds);
        let requests = std::mem::take(&mut seen.lock().unwrap().requests);
        assert_eq!(requests.len(), 1);
        let (path, headers, body) = &requests[0];
        assert_eq!(path, "/");
        assert_eq!(
            body,
            "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3A\
             role%2Fdns-manager&RoleSessionName=ferrocert"
        );
        assert_eq!(
            headers["content-type"],
            "application/x-www-form-urlencoded; charset=utf-8"
        );
        let auth = &headers["authorization"];
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDBASE/")
                && auth.contains("/eu-west-1/sts/aws4_request"),
            "{auth}"
        );
    }

    /// STS refuses the controller's identity (IRSA role `ferrocert` in account 123456789012) with
    /// AWS's usual words, which name it: the error (a tenant's status and Events) does not.
    #[tokio::test]
    async fn an_sts_refusal_does_not_name_the_controllers_identity() {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let endpoint = serve(seen.clone()).await;
        let sts = Sts::new(&endpoint, "us-east-1").unwrap();
        let controller_role = "arn:aws:iam::123456789012:role/ferrocert";
        let base = AwsCredentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        };
        let errors = [
            sts.assume_role(&base, "arn:aws:iam::999999999999:role/denied")
                .await
                .unwrap_err(),
            sts.assume_role_with_web_identity(controller_role, "denied")
                .await
                .unwrap_err(),
        ];
        for err in errors {
            let text = err.to_string();
            for identity in [
                "123456789012",
                "assumed-role",
                "ferrocert/",
                "role/ferrocert",
                "AKIAIOSFODNN7EXAMPLE",
                "wJalrXUtnFEMI",
            ] {
                assert!(!text.contains(identity), "{identity} in {text}");
            }
            assert!(
                text.contains("HTTP 403: AccessDenied: AWS refused"),
                "{text}"
            );
            assert!(!err.is_transient());
        }
    }

    #[tokio::test]
    async fn web_identity_is_unsigned_and_errors_carry_stss_words() {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let endpoint = serve(seen.clone()).await;
        let sts = Sts::new(&endpoint, "us-east-1").unwrap();
        let role = "arn:aws:iam::123456789012:role/irsa";
        let creds = sts
            .assume_role_with_web_identity(role, "eyJ.token.sig\n")
            .await
            .unwrap();
        assert_eq!(creds.access_key_id, "ASIAAssumeRoleWithWebIdentity");
        let (_, headers, body) = seen.lock().unwrap().requests[0].clone();
        assert!(!headers.contains_key("authorization"));
        assert!(
            body.starts_with("Action=AssumeRoleWithWebIdentity&Version=2011-06-15&")
                && body.ends_with("&WebIdentityToken=eyJ.token.sig"),
            "{body}"
        );

        let err = sts
            .assume_role_with_web_identity("arn:aws:iam::1:role/other", "bad")
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("STS API at")
                && text.contains("HTTP 400: InvalidIdentityToken: Couldn't retrieve"),
            "{text}"
        );
        assert!(!err.is_transient());
    }
}

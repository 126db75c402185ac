//! A local stand-in for the Cloudflare v4 API (under `/client/v4`) and the Route53 2013-04-01 API
//! (under `/2013-04-01`), on one 127.0.0.1 port. It answers as the documented APIs do (envelopes,
//! XML bodies, error shapes) and really writes and deletes the TXT records in the local BIND
//! through our RFC 2136 provider, so that Pebble validates what the controller asked for.
//!
//! It runs on a thread of its own with its own runtime, for the life of the test process: the
//! controller (shared by the tests of this binary) is pointed at it once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use ferrocert::api::issuer::TsigAlgorithm;
use ferrocert::solver::dns01::rfc2136::{Rfc2136, TsigKey};
use serde::Deserialize;
use serde_json::{Value, json};

use super::common::env_var;

pub const CF_TOKEN: &str = "cf-good-token";
/// A token the fake refuses with 403 and Cloudflare's error body.
pub const CF_FORBIDDEN_TOKEN: &str = "cf-forbidden-token";
pub const AWS_KEY_ID: &str = "AKIDFERROCERTE2E";
/// The temporary key id the fake STS hands out for an assumed role.
pub const AWS_ROLE_KEY_ID: &str = "ASIAFERROCERTROLE";
/// The role the fake STS lets `AWS_KEY_ID` assume.
pub const AWS_ROLE_ARN: &str = "arn:aws:iam::123456789012:role/ferrocert-e2e-dns";
/// The Route53 zone id of `TEST_ZONE` (a private zone of the same name sorts before it).
pub const R53_ZONE_ID: &str = "ZPUBLICE2E";
/// How long a Route53 change stays PENDING.
pub const R53_PENDING_FOR: std::time::Duration = std::time::Duration::from_millis(1500);
const XMLNS: &str = "https://route53.amazonaws.com/doc/2013-04-01/";

/// One API call the fake answered.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: String,
    pub status: u16,
    /// The `Authorization` header.
    pub auth: String,
}

struct CfRecord {
    id: String,
    zone_id: String,
    name: String,
    content: String,
}

#[derive(Default)]
struct State0 {
    calls: Vec<Call>,
    cf_records: Vec<CfRecord>,
    next_id: u32,
    /// Route53 TXT sets: name (no trailing dot) -> (ttl, quoted values).
    r53_sets: BTreeMap<String, (u32, Vec<String>)>,
    /// Route53 change id -> when it was submitted.
    r53_changes: BTreeMap<String, std::time::Instant>,
}

pub struct Fake {
    pub base: String,
    state: Mutex<State0>,
    dns: Rfc2136,
}

impl Fake {
    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    pub fn cloudflare_url(&self) -> String {
        format!("{}/client/v4", self.base)
    }
}

/// The process-wide fake, started on first use.
pub fn fake() -> Arc<Fake> {
    static FAKE: OnceLock<Arc<Fake>> = OnceLock::new();
    FAKE.get_or_init(|| {
        let key = TsigKey::from_base64(
            &env_var("TSIG_KEY_NAME"),
            TsigAlgorithm::HMACSHA256,
            env_var("TSIG_SECRET").as_bytes(),
        )
        .unwrap();
        let dns = Rfc2136::new(&env_var("DNS_SERVER"), Some(key)).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let fake = Arc::new(Fake {
            base: format!("http://{}", listener.local_addr().unwrap()),
            state: Mutex::default(),
            dns,
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(fake.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        fake
    })
    .clone()
}

async fn handle(State(fake): State<Arc<Fake>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let body = String::from_utf8_lossy(&body).into_owned();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or("").to_string();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let method = parts.method.to_string();
    let auth = header("authorization");
    let response = if let Some(rest) = path.strip_prefix("/client/v4") {
        cloudflare(
            &fake,
            &method,
            rest,
            &query,
            &body,
            &header("authorization"),
        )
        .await
    } else if path == "/" && method == "POST" {
        sts(&body, &header("authorization"))
    } else if path.starts_with("/2013-04-01/") {
        route53(
            &fake,
            &method,
            &path,
            &query,
            &body,
            &header("authorization"),
        )
        .await
    } else {
        json_response(404, json!({"error": "no such API"}))
    };
    fake.state.lock().unwrap().calls.push(Call {
        method,
        path,
        query,
        body,
        status: response.status().as_u16(),
        auth,
    });
    response
}

fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap(), 16).unwrap(),
            );
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn json_response(status: u16, body: Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn cf_ok(result: Value, info: Option<Value>) -> Response {
    let mut body = json!({"success": true, "errors": [], "messages": [], "result": result});
    if let Some(info) = info {
        body["result_info"] = info;
    }
    json_response(200, body)
}

fn cf_error(status: u16, code: i64, message: &str) -> Response {
    json_response(
        status,
        json!({"success": false, "errors": [{"code": code, "message": message}], "messages": [], "result": null}),
    )
}

/// The Cloudflare zones: the two test zones.
fn cf_zones() -> Vec<(String, String)> {
    vec![
        ("cf-zone-1".to_string(), env_var("TEST_ZONE")),
        ("cf-zone-2".to_string(), env_var("TEST_ZONE2")),
    ]
}

async fn cloudflare(
    fake: &Fake,
    method: &str,
    path: &str,
    query: &str,
    body: &str,
    auth: &str,
) -> Response {
    match auth.strip_prefix("Bearer ") {
        Some(CF_TOKEN) => {}
        Some(CF_FORBIDDEN_TOKEN) => {
            return cf_error(403, 10000, "Authentication error");
        }
        _ => return cf_error(400, 6003, "Invalid request headers"),
    }
    let segs: Vec<&str> = path.split('/').collect();
    match (method, &segs[..]) {
        ("GET", ["", "zones"]) => {
            let name = query_param(query, "name").unwrap_or_default();
            let zones: Vec<Value> = cf_zones()
                .into_iter()
                .filter(|(_, n)| *n == name)
                .map(|(id, n)| json!({"id": id, "name": n, "status": "active"}))
                .collect();
            let count = zones.len();
            cf_ok(
                json!(zones),
                Some(
                    json!({"page": 1, "per_page": 20, "count": count, "total_count": count, "total_pages": 1}),
                ),
            )
        }
        ("POST", ["", "zones", zone, "dns_records"]) => {
            let Some((zone_id, zone_name)) = cf_zones().into_iter().find(|(id, _)| id == zone)
            else {
                return cf_error(404, 7003, "Could not route to /zones/x/dns_records");
            };
            let v: Value = serde_json::from_str(body).unwrap();
            let name = v["name"].as_str().unwrap().to_string();
            let content = v["content"].as_str().unwrap().to_string();
            assert_eq!(v["type"], "TXT");
            if !name.ends_with(&zone_name) {
                return cf_error(400, 9007, "Content for TXT record is invalid");
            }
            // Names starting with "flaky" are throttled once, as Cloudflare's rate limit does.
            let first_try = !fake.calls().iter().any(|c| c.body.contains(&name));
            if name.starts_with("_acme-challenge.flaky") && first_try {
                return cf_error(
                    429,
                    971,
                    "Please wait and consider throttling your request speed",
                );
            }
            let exists = fake
                .state
                .lock()
                .unwrap()
                .cf_records
                .iter()
                .any(|r| r.name == name && r.content == content);
            if exists {
                return cf_error(400, 81058, "An identical record already exists.");
            }
            fake.dns.add_txt(&name, &content).await.unwrap();
            let mut st = fake.state.lock().unwrap();
            st.next_id += 1;
            let id = format!("rec{}", st.next_id);
            st.cf_records.push(CfRecord {
                id: id.clone(),
                zone_id,
                name: name.clone(),
                content: content.clone(),
            });
            cf_ok(
                json!({"id": id, "type": "TXT", "name": name, "content": content, "ttl": v["ttl"]}),
                None,
            )
        }
        ("GET", ["", "zones", zone, "dns_records"]) => {
            let name = query_param(query, "name").unwrap_or_default();
            let st = fake.state.lock().unwrap();
            let found: Vec<Value> = st
                .cf_records
                .iter()
                .filter(|r| r.zone_id == *zone && r.name == name)
                .map(|r| json!({"id": r.id, "type": "TXT", "name": r.name, "content": r.content, "ttl": 60}))
                .collect();
            let count = found.len();
            cf_ok(
                json!(found),
                Some(
                    json!({"page": 1, "per_page": 100, "count": count, "total_count": count, "total_pages": 1}),
                ),
            )
        }
        ("DELETE", ["", "zones", zone, "dns_records", id]) => {
            let record = {
                let mut st = fake.state.lock().unwrap();
                let at = st
                    .cf_records
                    .iter()
                    .position(|r| r.zone_id == *zone && r.id == *id);
                at.map(|i| st.cf_records.remove(i))
            };
            let Some(record) = record else {
                return cf_error(404, 81044, "Record does not exist.");
            };
            fake.dns
                .delete_txt(&record.name, &record.content)
                .await
                .unwrap();
            cf_ok(json!({"id": record.id}), None)
        }
        _ => cf_error(404, 7000, "No route for that URI"),
    }
}

fn xml_response(status: u16, body: String) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "text/xml")
        .body(Body::from(format!("<?xml version=\"1.0\"?>\n{body}")))
        .unwrap()
}

fn r53_error(status: u16, code: &str, message: &str) -> Response {
    xml_response(
        status,
        format!(
            "<ErrorResponse xmlns=\"{XMLNS}\"><Error><Type>Sender</Type><Code>{code}</Code>\
             <Message>{message}</Message></Error><RequestId>e2e</RequestId></ErrorResponse>"
        ),
    )
}

#[derive(Deserialize)]
struct ChangeRequest {
    #[serde(rename = "ChangeBatch")]
    batch: ChangeBatch,
}
#[derive(Deserialize)]
struct ChangeBatch {
    #[serde(rename = "Changes")]
    changes: Changes,
}
#[derive(Deserialize)]
struct Changes {
    #[serde(rename = "Change")]
    change: Vec<Change>,
}
#[derive(Deserialize)]
struct Change {
    #[serde(rename = "Action")]
    action: String,
    #[serde(rename = "ResourceRecordSet")]
    set: RecordSet,
}
#[derive(Deserialize)]
struct RecordSet {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "TTL")]
    ttl: u32,
    #[serde(rename = "ResourceRecords")]
    records: Records,
}
#[derive(Deserialize)]
struct Records {
    #[serde(rename = "ResourceRecord")]
    record: Vec<Record>,
}
#[derive(Deserialize)]
struct Record {
    #[serde(rename = "Value")]
    value: String,
}

fn unquote(v: &str) -> String {
    v.trim_matches('"').to_string()
}

/// The parsed form of one change, as the tests look at it: (action, name, values).
pub fn r53_change(body: &str) -> (String, String, Vec<String>) {
    let req: ChangeRequest = quick_xml::de::from_str(body).unwrap();
    let c = &req.batch.changes.change[0];
    (
        c.action.clone(),
        c.set.name.trim_end_matches('.').to_string(),
        c.set
            .records
            .record
            .iter()
            .map(|r| r.value.clone())
            .collect(),
    )
}

async fn route53(
    fake: &Fake,
    method: &str,
    path: &str,
    query: &str,
    body: &str,
    auth: &str,
) -> Response {
    // Signature checks are the unit tests' business (AWS's published vectors); here the key id
    // and the scope must be right.
    let known = [AWS_KEY_ID, AWS_ROLE_KEY_ID]
        .iter()
        .any(|k| auth.starts_with(&format!("AWS4-HMAC-SHA256 Credential={k}/")));
    if !known || !auth.contains("/us-east-1/route53/aws4_request") {
        return r53_error(
            403,
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        );
    }
    let zone = env_var("TEST_ZONE");
    let segs: Vec<&str> = path.split('/').collect();
    match (method, &segs[..]) {
        ("GET", ["", "2013-04-01", "hostedzonesbyname"]) => {
            let dns = query_param(query, "dnsname").unwrap_or_default();
            let mut out = String::new();
            if format!("{}.", dns.trim_end_matches('.')) <= format!("{zone}.") {
                // A private zone of the same name first, as an account with a split view has.
                for (id, private) in [("ZPRIVATEE2E", true), (R53_ZONE_ID, false)] {
                    out.push_str(&format!(
                        "<HostedZone><Id>/hostedzone/{id}</Id><Name>{zone}.</Name>\
                         <CallerReference>e2e</CallerReference><Config>\
                         <PrivateZone>{private}</PrivateZone></Config>\
                         <ResourceRecordSetCount>3</ResourceRecordSetCount></HostedZone>"
                    ));
                }
            }
            xml_response(
                200,
                format!(
                    "<ListHostedZonesByNameResponse xmlns=\"{XMLNS}\"><HostedZones>{out}\
                     </HostedZones><DNSName>{dns}</DNSName><IsTruncated>false</IsTruncated>\
                     <MaxItems>100</MaxItems></ListHostedZonesByNameResponse>"
                ),
            )
        }
        ("GET", ["", "2013-04-01", "hostedzone", id, "rrset"]) => {
            if *id != R53_ZONE_ID {
                return r53_error(
                    404,
                    "NoSuchHostedZone",
                    &format!("No hosted zone found with ID: {id}"),
                );
            }
            let name = query_param(query, "name").unwrap_or_default();
            let name = name.trim_end_matches('.').to_string();
            let st = fake.state.lock().unwrap();
            let mut out = String::new();
            if let Some((n, (ttl, values))) = st.r53_sets.range(name..).next() {
                out.push_str(&format!(
                    "<ResourceRecordSet><Name>{n}.</Name><Type>TXT</Type><TTL>{ttl}</TTL><ResourceRecords>"
                ));
                for v in values {
                    out.push_str(&format!(
                        "<ResourceRecord><Value>{}</Value></ResourceRecord>",
                        quick_xml::escape::escape(v.as_str())
                    ));
                }
                out.push_str("</ResourceRecords></ResourceRecordSet>");
            }
            xml_response(
                200,
                format!(
                    "<ListResourceRecordSetsResponse xmlns=\"{XMLNS}\"><ResourceRecordSets>{out}\
                     </ResourceRecordSets><IsTruncated>false</IsTruncated><MaxItems>1</MaxItems>\
                     </ListResourceRecordSetsResponse>"
                ),
            )
        }
        ("POST", ["", "2013-04-01", "hostedzone", id, "rrset"]) => {
            if *id != R53_ZONE_ID {
                return r53_error(
                    404,
                    "NoSuchHostedZone",
                    &format!("No hosted zone found with ID: {id}"),
                );
            }
            let (action, name, values) = r53_change(body);
            let ttl = quick_xml::de::from_str::<ChangeRequest>(body)
                .unwrap()
                .batch
                .changes
                .change[0]
                .set
                .ttl;
            let old = fake
                .state
                .lock()
                .unwrap()
                .r53_sets
                .get(&name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            let (add, remove): (Vec<String>, Vec<String>) = match action.as_str() {
                "UPSERT" => (
                    values
                        .iter()
                        .filter(|v| !old.contains(v))
                        .cloned()
                        .collect(),
                    old.iter()
                        .filter(|v| !values.contains(v))
                        .cloned()
                        .collect(),
                ),
                "DELETE" => {
                    if old != values {
                        return xml_response(
                            400,
                            format!(
                                "<InvalidChangeBatch xmlns=\"{XMLNS}\"><Messages><Message>\
                                 Tried to delete resource record set [name='{name}.', type='TXT'] \
                                 but the values provided do not match the current values\
                                 </Message></Messages></InvalidChangeBatch>"
                            ),
                        );
                    }
                    (Vec::new(), old.clone())
                }
                other => return r53_error(400, "InvalidInput", &format!("unknown action {other}")),
            };
            for v in &add {
                fake.dns.add_txt(&name, &unquote(v)).await.unwrap();
            }
            for v in &remove {
                fake.dns.delete_txt(&name, &unquote(v)).await.unwrap();
            }
            let mut st = fake.state.lock().unwrap();
            if action == "DELETE" {
                st.r53_sets.remove(&name);
            } else {
                st.r53_sets.insert(name, (ttl, values));
            }
            let change = format!("C{:04}E2E", st.r53_changes.len() + 1);
            st.r53_changes
                .insert(change.clone(), std::time::Instant::now());
            xml_response(
                200,
                format!(
                    "<ChangeResourceRecordSetsResponse xmlns=\"{XMLNS}\"><ChangeInfo>\
                     <Id>/change/{change}</Id><Status>PENDING</Status>\
                     <SubmittedAt>2026-11-28T00:00:00.000Z</SubmittedAt></ChangeInfo>\
                     </ChangeResourceRecordSetsResponse>"
                ),
            )
        }
        ("GET", ["", "2013-04-01", "change", id]) => {
            let st = fake.state.lock().unwrap();
            let Some(submitted) = st.r53_changes.get(*id) else {
                return r53_error(
                    404,
                    "NoSuchChange",
                    &format!("A change with the specified change ID does not exist: {id}"),
                );
            };
            // PENDING for a while after the change, as Route53 is (for seconds to a minute).
            let status = if submitted.elapsed() >= R53_PENDING_FOR {
                "INSYNC"
            } else {
                "PENDING"
            };
            xml_response(
                200,
                format!(
                    "<GetChangeResponse xmlns=\"{XMLNS}\"><ChangeInfo><Id>/change/{id}</Id>\
                     <Status>{status}</Status><SubmittedAt>2026-11-28T00:00:00.000Z</SubmittedAt>\
                     </ChangeInfo></GetChangeResponse>"
                ),
            )
        }
        _ => r53_error(404, "NotFound", "no such route"),
    }
}

/// The STS Query API's AssumeRole, for `AWS_ROLE_ARN` assumed with `AWS_KEY_ID` (signed for
/// STS); anything else is refused as STS refuses it.
fn sts(body: &str, auth: &str) -> Response {
    let signed_by_base = auth.starts_with(&format!("AWS4-HMAC-SHA256 Credential={AWS_KEY_ID}/"))
        && auth.contains("/sts/aws4_request");
    let role = query_param(body, "RoleArn").unwrap_or_default();
    if !signed_by_base || query_param(body, "Action").as_deref() != Some("AssumeRole") {
        return r53_error(
            403,
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        );
    }
    if role != AWS_ROLE_ARN {
        return r53_error(
            403,
            "AccessDenied",
            &format!(
                "User: arn:aws:iam::123456789012:user/e2e is not authorized to perform: sts:AssumeRole on resource: {role}"
            ),
        );
    }
    xml_response(
        200,
        format!(
            "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
             <AssumeRoleResult><Credentials><AccessKeyId>{AWS_ROLE_KEY_ID}</AccessKeyId>\
             <SecretAccessKey>role-secret</SecretAccessKey><SessionToken>role-session</SessionToken>\
             <Expiration>2099-01-01T00:00:00Z</Expiration></Credentials>\
             <AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/ferrocert-e2e-dns/ferrocert</Arn>\
             <AssumedRoleId>AROAE2E:ferrocert</AssumedRoleId></AssumedRoleUser></AssumeRoleResult>\
             </AssumeRoleResponse>"
        ),
    )
}

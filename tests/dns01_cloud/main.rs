//! DNS-01 end to end through the cloud providers: Issuers with `dns01.cloudflare` and
//! `dns01.route53`, the controller pointed (`--dns01-cloudflare-api-url`,
//! `--dns01-route53-endpoint`) at a local fake of both APIs ([`fake`]) that writes the TXT records
//! into the local BIND, where Pebble validates them. Needs `tests/env/up.sh`.

#[path = "../common/mod.rs"]
mod common;
mod fake;

use std::sync::OnceLock;
use std::time::Duration;

use common::e2e::{
    ControllerProcess, apply, backend_listen, client, pebble_certificate, pebble_issuer,
    ready_condition, start_controller_with, txt_records, verify_chain, wait_cert_failed,
    wait_cert_ready, wait_for, wait_issuer_ready,
};
use common::{env_var, fresh_namespace, kubectl_ok};
use ferrocert::api::{Certificate, Issuer};
use kube::api::Api;
use serde_json::{Value, json};

/// The controller of this binary, pointed at the fake APIs.
fn controller() -> &'static ControllerProcess {
    static C: OnceLock<ControllerProcess> = OnceLock::new();
    C.get_or_init(|| {
        let fake = fake::fake();
        let cf = fake.cloudflare_url();
        let dns = env_var("DNS_SERVER");
        start_controller_with(
            "dns01-cloud",
            &backend_listen(),
            &[
                "--dns01-cloudflare-api-url",
                &cf,
                "--dns01-route53-endpoint",
                &fake.base,
                "--dns01-recursive-nameservers",
                &dns,
            ],
            // STS for `route53.role` is the same fake; the controller's own (ambient) AWS
            // credentials are keys the fake accepts.
            &[
                ("AWS_ENDPOINT_URL_STS", fake.base.as_str()),
                ("AWS_ACCESS_KEY_ID", fake::AWS_KEY_ID),
                ("AWS_SECRET_ACCESS_KEY", "e2e-secret"),
            ],
        )
    })
}

/// A namespace with the given Secrets (name, key, value) and a Ready Issuer.
/// A Certificate for the Issuer `pebble` with these DNS names.
fn certificate(name: &str, dns: &[String]) -> Value {
    pebble_certificate(name, dns, json!({}))
}

async fn namespace(prefix: &str, secrets: &[(&str, &str, &str)], dns01: Value) -> String {
    controller();
    let ns = fresh_namespace(prefix);
    for (name, key, value) in secrets {
        kubectl_ok(
            &[
                "create",
                "secret",
                "generic",
                name,
                "-n",
                &ns,
                &format!("--from-literal={key}={value}"),
            ],
            None,
        );
    }
    apply(
        &ns,
        &pebble_issuer(
            "pebble",
            "pebble-account",
            json!({"solvers": [{"dns01": dns01}]}),
        ),
    );
    let issuers: Api<Issuer> = Api::namespaced(client().await, &ns);
    wait_issuer_ready(&issuers, "pebble").await;
    ns
}

/// Issues `*.apex` + `apex` and checks the chain, the SANs and that BIND holds no TXT after.
async fn issue_wildcard_and_apex(ns: &str, apex: &str) {
    apply(
        ns,
        &certificate("wild", &[format!("*.{apex}"), apex.to_string()]),
    );
    let certs: Api<Certificate> = Api::namespaced(client().await, ns);
    wait_cert_ready(&certs, "wild", 1).await;
    let text = verify_chain(ns, "wild-tls");
    assert!(
        text.contains(&format!("DNS:*.{apex}")) && text.contains(&format!("DNS:{apex}")),
        "{text}"
    );
    assert_eq!(
        txt_records(&format!("_acme-challenge.{apex}")),
        "",
        "TXT records left behind in BIND"
    );
}

#[tokio::test]
async fn a_wildcard_and_its_apex_via_cloudflare() {
    let ns = namespace(
        "cfwild",
        &[("cloudflare", "api-token", fake::CF_TOKEN)],
        json!({"cloudflare": {
            "email": "dns@example.test",
            "apiTokenSecretRef": {"name": "cloudflare", "key": "api-token"}
        }}),
    )
    .await;
    let apex = format!("cf{}.{}", std::process::id(), env_var("TEST_ZONE"));
    let record = format!("_acme-challenge.{apex}");
    issue_wildcard_and_apex(&ns, &apex).await;

    let calls: Vec<_> = fake::fake()
        .calls()
        .into_iter()
        .filter(|c| c.path.starts_with("/client/v4/"))
        .collect();
    let posts: Vec<_> = calls
        .iter()
        .filter(|c| c.method == "POST" && c.body.contains(&record))
        .collect();
    // A reconcile that loses a status write to a newer one presents again: Cloudflare answers
    // 81058 "identical record", which counts as success.
    let created = posts.iter().filter(|p| p.status == 200).count();
    assert_eq!(created, 2, "one create per value: {posts:#?}");
    for p in &posts {
        assert_eq!(p.path, "/client/v4/zones/cf-zone-1/dns_records");
        let body: Value = serde_json::from_str(&p.body).unwrap();
        assert_eq!(
            (body["type"].as_str(), body["ttl"].as_u64()),
            (Some("TXT"), Some(60))
        );
    }
    let deletes = calls
        .iter()
        .filter(|c| c.method == "DELETE" && c.status == 200)
        .filter(|c| {
            c.path
                .starts_with("/client/v4/zones/cf-zone-1/dns_records/")
        })
        .count();
    assert!(deletes >= 2, "both values deleted: {calls:#?}");
    assert!(
        calls.iter().any(|c| c.method == "GET"
            && c.path == "/client/v4/zones"
            && c.query == format!("name={}", env_var("TEST_ZONE"))),
        "zone found by name: {calls:#?}"
    );
}

#[tokio::test]
async fn a_throttled_write_is_tried_again_within_the_attempt() {
    let ns = namespace(
        "cfflaky",
        &[("cloudflare", "api-token", fake::CF_TOKEN)],
        json!({"cloudflare": {"apiTokenSecretRef": {"name": "cloudflare"}}}),
    )
    .await;
    let name = format!("flaky{}.{}", std::process::id(), env_var("TEST_ZONE"));
    apply(&ns, &certificate("flaky", std::slice::from_ref(&name)));
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    let cert = wait_cert_ready(&certs, "flaky", 1).await;
    let status = cert.status.unwrap();
    assert_eq!(
        status.failed_issuance_attempts, None,
        "no failed attempt: {status:?}"
    );
    let posts: Vec<u16> = fake::fake()
        .calls()
        .iter()
        .filter(|c| c.method == "POST" && c.body.contains(&name))
        .map(|c| c.status)
        .collect();
    assert_eq!(&posts[..2], [429, 200], "{posts:?}");
}

#[tokio::test]
async fn a_wildcard_and_its_apex_via_route53() {
    let ns = namespace(
        "r53wild",
        &[("route53", "secret-access-key", "e2e-secret")],
        json!({"route53": {
            "region": "eu-west-1",
            "accessKeyID": fake::AWS_KEY_ID,
            "secretAccessKeySecretRef": {"name": "route53", "key": "secret-access-key"}
        }}),
    )
    .await;
    let apex = format!("r53{}.{}", std::process::id(), env_var("TEST_ZONE"));
    let record = format!("_acme-challenge.{apex}");
    issue_wildcard_and_apex(&ns, &apex).await;

    let calls = fake::fake().calls();
    let changes: Vec<(String, String, Vec<String>)> = calls
        .iter()
        .filter(|c| c.method == "POST" && c.body.contains(&record))
        .map(|c| {
            assert_eq!(
                c.path,
                format!("/2013-04-01/hostedzone/{}/rrset", fake::R53_ZONE_ID)
            );
            assert_eq!(c.status, 200, "{c:?}");
            fake::r53_change(&c.body)
        })
        .collect();
    // Two values added one by one (the second UPSERT keeps the first), removed one by one (an
    // UPSERT keeping the other value, then a DELETE of the last).
    let shape: Vec<(&str, usize)> = changes
        .iter()
        .map(|(a, _, v)| (a.as_str(), v.len()))
        .collect();
    assert_eq!(
        shape,
        [("UPSERT", 1), ("UPSERT", 2), ("UPSERT", 1), ("DELETE", 1)],
        "{changes:#?}"
    );
    // Each change is PENDING for 1.5 s: polled, but paced (checks 2 s apart), not hammered.
    let mut polls = std::collections::BTreeMap::<String, usize>::new();
    for c in calls
        .iter()
        .filter(|c| c.method == "GET" && c.path.starts_with("/2013-04-01/change/"))
    {
        *polls.entry(c.path.clone()).or_default() += 1;
    }
    assert!(
        !polls.is_empty(),
        "the changes were polled for INSYNC: {calls:#?}"
    );
    assert!(
        polls.values().all(|n| *n <= 2),
        "GetChange is paced: {polls:?}"
    );
}

#[tokio::test]
async fn route53_with_a_role_uses_the_assumed_credentials() {
    let ns = namespace(
        "r53role",
        &[("route53", "secret-access-key", "e2e-secret")],
        json!({"route53": {
            "accessKeyID": fake::AWS_KEY_ID,
            "secretAccessKeySecretRef": {"name": "route53", "key": "secret-access-key"},
            "role": fake::AWS_ROLE_ARN
        }}),
    )
    .await;
    let name = format!("role{}.{}", std::process::id(), env_var("TEST_ZONE"));
    apply(&ns, &certificate("role", std::slice::from_ref(&name)));
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    wait_cert_ready(&certs, "role", 1).await;
    verify_chain(&ns, "role-tls");
    let calls = fake::fake().calls();
    assert!(
        calls
            .iter()
            .any(|c| c.path == "/" && c.status == 200 && c.body.contains("Action=AssumeRole")),
        "the role was assumed at STS: {calls:#?}"
    );
    let role_key = format!("Credential={}/", fake::AWS_ROLE_KEY_ID);
    assert!(
        calls
            .iter()
            .filter(|c| c.method == "POST" && c.body.contains(&name))
            .all(|c| c.auth.contains(&role_key) && c.status == 200),
        "Route53 changes signed with the role's credentials: {calls:#?}"
    );
    assert_eq!(txt_records(&format!("_acme-challenge.{name}")), "");
}

#[tokio::test]
async fn a_cloudflare_refusal_and_a_missing_token_secret_show_in_ready() {
    let forbidden = namespace(
        "cf403",
        &[("cloudflare", "api-token", fake::CF_FORBIDDEN_TOKEN)],
        json!({"cloudflare": {"apiTokenSecretRef": {"name": "cloudflare"}}}),
    )
    .await;
    let missing = namespace(
        "cfnosecret",
        &[],
        json!({"cloudflare": {"apiTokenSecretRef": {"name": "nope", "key": "token"}}}),
    )
    .await;
    for ns in [&forbidden, &missing] {
        let name = format!("x{}.{}", std::process::id(), env_var("TEST_ZONE"));
        apply(ns, &certificate("refused", &[name]));
    }
    let failed = |ns: String| async move {
        let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
        wait_cert_failed(&certs, "refused").await
    };
    let message = failed(forbidden.clone()).await;
    assert!(
        message.contains("Cloudflare API at")
            && message.contains("HTTP 403: 10000: Authentication error"),
        "{message}"
    );
    let message = failed(missing.clone()).await;
    assert!(
        message.contains(&format!(
            "the Cloudflare API token Secret {missing}/nope does not exist"
        )),
        "{message}"
    );
    fixed_after_a_failure_waits_out_negative_caching(&forbidden).await;
}

/// DESIGN §3: once the token is fixed, the retry (made at once by a spec change) writes the
/// record, sees it at the nameserver, and still waits until the negative-caching TTL of the zone
/// (SOA minimum 5 s in the test zones) has passed since the failure before telling the CA,
/// saying so in the challenge's status.
async fn fixed_after_a_failure_waits_out_negative_caching(ns: &str) {
    let certs: Api<Certificate> = Api::namespaced(client().await, ns);
    let good = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, fake::CF_TOKEN);
    kubectl_ok(
        &[
            "patch",
            "secret",
            "cloudflare",
            "-n",
            ns,
            "--type",
            "merge",
            "-p",
            &json!({"data": {"api-token": good}}).to_string(),
        ],
        None,
    );
    kubectl_ok(
        &[
            "patch",
            "fcert",
            "refused",
            "-n",
            ns,
            "--type",
            "merge",
            "-p",
            r#"{"spec": {"renewBefore": "720h"}}"#,
        ],
        None,
    );
    let failed_at = certs
        .get("refused")
        .await
        .unwrap()
        .status
        .and_then(|s| s.last_failure_time)
        .expect("the failure time is in status")
        .0;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
    let ready = wait_for(
        "Ready=True after the token is fixed",
        Duration::from_secs(30),
        || {
            let certs = certs.clone();
            let seen = seen.clone();
            async move {
                let c = certs.get("refused").await.ok()?;
                let waiting = c
                    .status
                    .as_ref()
                    .and_then(|s| s.order.as_ref())
                    .into_iter()
                    .flat_map(|o| o.authorizations.iter())
                    .filter_map(|a| a.error.clone())
                    .find(|e| e.contains("negative-caching TTL"));
                if let Some(w) = waiting {
                    *seen.lock().unwrap() = Some(w);
                }
                ready_condition(&c)
                    .filter(|(s, _, _)| s == "True")
                    .map(|_| jiff::Timestamp::now())
            }
        },
    )
    .await;
    let seen = seen.lock().unwrap().clone();
    let seen = seen.expect("the wait for negative caching was shown in the challenge's status");
    assert!(
        seen.contains("the previous attempt failed") && seen.contains("(5s)"),
        "{seen}"
    );
    assert!(
        ready.duration_since(failed_at) >= jiff::SignedDuration::from_secs(5),
        "Ready {ready} less than the negative TTL after the failure at {failed_at}"
    );
}

#[tokio::test]
async fn only_a_cluster_issuer_may_use_the_controllers_own_aws_credentials() {
    // A tenant's Issuer naming no keys is refused (cert-manager's default), and Route53 never
    // hears of its name.
    let ns = namespace("r53ambient", &[], json!({"route53": {}})).await;
    let tenant_name = format!("ambient{}.{}", std::process::id(), env_var("TEST_ZONE"));
    apply(
        &ns,
        &certificate("borrowed", std::slice::from_ref(&tenant_name)),
    );
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    let message = wait_for("Ready=False", Duration::from_secs(30), || async {
        let c = certs.get("borrowed").await.ok()?;
        ready_condition(&c)
            .filter(|(s, _, _)| s == "False")
            .map(|(_, _, m)| m)
            .filter(|m| m.contains("ambient-credentials"))
    })
    .await;
    assert!(
        message.contains("--issuer-ambient-credentials=false") && message.contains("ClusterIssuer"),
        "{message}"
    );
    assert!(
        !fake::fake()
            .calls()
            .iter()
            .any(|c| c.body.contains(&tenant_name)),
        "Route53 was asked to change the tenant's name"
    );

    // A ClusterIssuer (made by a cluster administrator) may.
    let issuer = format!("ambient-{}", std::process::id());
    let mut doc = pebble_issuer(
        &issuer,
        &format!("{issuer}-account"),
        json!({"solvers": [{"dns01": {"route53": {}}}]}),
    );
    doc["kind"] = json!("ClusterIssuer");
    kubectl_ok(&["apply", "-f", "-"], Some(&doc.to_string()));
    let ns = fresh_namespace("r53cluster");
    let admin_name = format!("cluster{}.{}", std::process::id(), env_var("TEST_ZONE"));
    apply(
        &ns,
        &pebble_certificate(
            "admin",
            std::slice::from_ref(&admin_name),
            json!({"issuerRef": {"name": issuer, "kind": "ClusterIssuer"}}),
        ),
    );
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    wait_cert_ready(&certs, "admin", 1).await;
    verify_chain(&ns, "admin-tls");
    let ambient_key = format!("Credential={}/", fake::AWS_KEY_ID);
    assert!(
        fake::fake()
            .calls()
            .iter()
            .any(|c| c.body.contains(&admin_name)
                && c.auth.contains(&ambient_key)
                && c.status == 200),
        "the change was signed with the controller's own keys"
    );
    kubectl_ok(&["delete", "clusterissuer", &issuer], None);
}

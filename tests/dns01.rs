//! DNS-01 end to end: RFC 2136 updates to the local BIND, Pebble resolving through it.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::e2e::{
    apply, client, controller, pebble_certificate, pebble_issuer, txt_records, verify_chain,
    wait_cert_failed, wait_cert_ready, wait_for, wait_issuer_ready,
};
use common::{env_var, fresh_namespace, kubectl_ok};
use ferrocert::api::issuer::TsigAlgorithm;
use ferrocert::api::{Certificate, Issuer};
use ferrocert::solver::dns01::rfc2136::{Rfc2136, TsigKey};
use futures::StreamExt;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};

fn rfc2136_solver(selector: Value, follow: bool) -> Value {
    let mut dns01 = json!({"rfc2136": {
        "nameserver": env_var("DNS_SERVER"),
        "tsigKeyName": env_var("TSIG_KEY_NAME"),
        "tsigAlgorithm": "HMACSHA256",
        "tsigSecretSecretRef": {"name": "tsig", "key": "secret"}
    }});
    if follow {
        dns01["cnameStrategy"] = json!("Follow");
    }
    let mut solver = json!({"dns01": dns01});
    if !selector.is_null() {
        solver["selector"] = selector;
    }
    solver
}

/// A Certificate for the Issuer `pebble` with these DNS names.
fn certificate(name: &str, dns: &[String]) -> Value {
    pebble_certificate(name, dns, json!({}))
}

async fn namespace(prefix: &str, tsig_secret: &str, solvers: Value) -> String {
    controller();
    let ns = fresh_namespace(prefix);
    kubectl_ok(
        &[
            "create",
            "secret",
            "generic",
            "tsig",
            "-n",
            &ns,
            &format!("--from-literal=secret={tsig_secret}"),
        ],
        None,
    );
    apply(
        &ns,
        &pebble_issuer("pebble", "pebble-account", json!({"solvers": solvers})),
    );
    let issuers: Api<Issuer> = Api::namespaced(client().await, &ns);
    wait_issuer_ready(&issuers, "pebble").await;
    ns
}

fn label() -> String {
    format!("p{}", std::process::id())
}

#[tokio::test]
async fn a_wildcard_and_its_apex_via_rfc2136_and_no_txt_left() {
    let ns = namespace(
        "dnswild",
        &env_var("TSIG_SECRET"),
        json!([rfc2136_solver(Value::Null, false)]),
    )
    .await;
    let apex = format!("w{}.{}", label(), env_var("TEST_ZONE"));
    apply(
        &ns,
        &certificate("wild", &[format!("*.{apex}"), apex.clone()]),
    );
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    wait_cert_ready(&certs, "wild", 1).await;
    let text = verify_chain(&ns, "wild-tls");
    assert!(
        text.contains(&format!("DNS:*.{apex}")) && text.contains(&format!("DNS:{apex}")),
        "{text}"
    );
    assert_eq!(
        txt_records(&format!("_acme-challenge.{apex}")),
        "",
        "TXT records left behind"
    );
}

#[tokio::test]
async fn each_name_gets_the_solver_its_selector_picks() {
    let zone = format!("dz{}.{}", label(), env_var("TEST_ZONE"));
    let solvers = json!([
        rfc2136_solver(json!({"dnsZones": [zone.clone()]}), false),
        {"http01": {"ingress": {"ingressClassName": env_var("INGRESS_CLASS")}}}
    ]);
    let ns = namespace("dnsmix", &env_var("TSIG_SECRET"), solvers).await;
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(BTreeSet::<(String, String)>::new()));
    let sink = seen.clone();
    let api = certs.clone();
    let watch = tokio::spawn(async move {
        let mut stream = watcher(api, watcher::Config::default())
            .applied_objects()
            .boxed();
        while let Some(Ok(c)) = stream.next().await {
            for a in c
                .status
                .and_then(|s| s.order)
                .map(|o| o.authorizations)
                .unwrap_or_default()
            {
                if let Some(t) = a.challenge_type {
                    sink.lock().unwrap().insert((a.identifier, t.to_string()));
                }
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let web = format!("web{}.{}", label(), env_var("TEST_ZONE"));
    let inner = format!("api.{zone}");
    apply(&ns, &certificate("mixed", &[web.clone(), inner.clone()]));
    wait_cert_ready(&certs, "mixed", 1).await;
    watch.abort();
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.contains(&(web.clone(), "http-01".to_string())),
        "{seen:?}"
    );
    assert!(
        seen.contains(&(inner.clone(), "dns-01".to_string())),
        "{seen:?}"
    );
    verify_chain(&ns, "mixed-tls");
}

#[tokio::test]
async fn a_cname_delegation_to_another_zone_is_followed() {
    let name = format!("c{}.{}", label(), env_var("TEST_ZONE"));
    let target = format!("c{}.{}", label(), env_var("TEST_ZONE2"));
    let key = TsigKey::from_base64(
        &env_var("TSIG_KEY_NAME"),
        TsigAlgorithm::HMACSHA256,
        env_var("TSIG_SECRET").as_bytes(),
    )
    .unwrap();
    let dns = Rfc2136::new(&env_var("DNS_SERVER"), Some(key)).unwrap();
    dns.add_cname(&format!("_acme-challenge.{name}"), &target)
        .await
        .unwrap();
    let ns = namespace(
        "dnscname",
        &env_var("TSIG_SECRET"),
        json!([rfc2136_solver(Value::Null, true)]),
    )
    .await;
    apply(&ns, &certificate("delegated", std::slice::from_ref(&name)));
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    wait_cert_ready(&certs, "delegated", 1).await;
    verify_chain(&ns, "delegated-tls");
    assert_eq!(txt_records(&target), "", "TXT left at the CNAME target");
    dns.delete_cname(&format!("_acme-challenge.{name}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_wrong_tsig_key_gives_the_servers_refusal() {
    // A valid-looking but wrong secret.
    let ns = namespace(
        "dnsbadkey",
        "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=",
        json!([rfc2136_solver(Value::Null, false)]),
    )
    .await;
    let name = format!("bad{}.{}", label(), env_var("TEST_ZONE"));
    apply(&ns, &certificate("refused", &[name]));
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    let message = wait_cert_failed(&certs, "refused").await;
    assert!(message.contains("NOTAUTH"), "{message}");
}

#[tokio::test]
async fn deleting_a_certificate_mid_order_removes_its_records() {
    let ns = namespace(
        "dnsdelete",
        &env_var("TSIG_SECRET"),
        json!([rfc2136_solver(Value::Null, false)]),
    )
    .await;
    let name = format!("del{}.{}", label(), env_var("TEST_ZONE"));
    apply(&ns, &certificate("gone", std::slice::from_ref(&name)));
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    let started = std::time::Instant::now();
    loop {
        let c = certs.get("gone").await.unwrap();
        if c.status.and_then(|s| s.order).is_some() {
            kubectl_ok(
                &["delete", "fcert", "-n", &ns, "gone", "--wait=false"],
                None,
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no order started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    wait_for(
        "the Certificate to be deleted",
        Duration::from_secs(20),
        || async {
            certs
                .get_opt("gone")
                .await
                .ok()
                .and_then(|c| c.is_none().then_some(()))
        },
    )
    .await;
    assert_eq!(
        txt_records(&format!("_acme-challenge.{name}")),
        "",
        "TXT record left behind"
    );
}

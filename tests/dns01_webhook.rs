//! DNS-01 through a cert-manager webhook solver: a real solver built on cert-manager's own webhook
//! server library (tests/env/webhook-solver/), run as an aggregated API server behind an
//! APIService; the controller POSTs its ChallengePayloads to the Kubernetes API server, whose
//! aggregator proxies them to the solver, which writes the TXT records into BIND over RFC 2136.

mod common;

use std::time::Duration;

use common::e2e::{
    apply, client, controller, pebble_certificate, pebble_issuer, txt_records, verify_chain,
    wait_cert_failed, wait_cert_ready, wait_for, wait_issuer_ready,
};
use common::{env_var, fresh_namespace};
use ferrocert::api::{Certificate, Issuer};
use kube::api::Api;
use serde_json::{Value, json};

/// The webhook solver of the test environment, with the TSIG secret it signs its updates with.
fn webhook_solver(tsig_secret: &str) -> Value {
    json!({"dns01": {"webhook": {
        "groupName": env_var("WEBHOOK_GROUP"),
        "solverName": env_var("WEBHOOK_SOLVER"),
        "config": {
            "nameserver": env_var("DNS_SERVER"),
            "tsigKeyName": env_var("TSIG_KEY_NAME"),
            "tsigAlgorithm": "hmac-sha256",
            "tsigSecret": tsig_secret
        }
    }}})
}

async fn namespace(prefix: &str, tsig_secret: &str) -> String {
    controller();
    let ns = fresh_namespace(prefix);
    apply(
        &ns,
        &pebble_issuer(
            "pebble",
            "pebble-account",
            json!({"solvers": [webhook_solver(tsig_secret)]}),
        ),
    );
    let issuers: Api<Issuer> = Api::namespaced(client().await, &ns);
    wait_issuer_ready(&issuers, "pebble").await;
    ns
}

fn label() -> String {
    format!("h{}", std::process::id())
}

#[tokio::test]
async fn a_wildcard_and_its_apex_through_the_aggregator_and_no_txt_left() {
    let ns = namespace("whwild", &env_var("TSIG_SECRET")).await;
    let apex = format!("w{}.{}", label(), env_var("TEST_ZONE"));
    apply(
        &ns,
        &pebble_certificate("wild", &[format!("*.{apex}"), apex.clone()], json!({})),
    );
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    wait_cert_ready(&certs, "wild", 1).await;
    let text = verify_chain(&ns, "wild-tls");
    assert!(
        text.contains(&format!("DNS:*.{apex}")) && text.contains(&format!("DNS:{apex}")),
        "{text}"
    );
    // The solver's clean-up removed both values.
    wait_for(
        "the TXT records removed",
        Duration::from_secs(10),
        || async {
            txt_records(&format!("_acme-challenge.{apex}"))
                .is_empty()
                .then_some(())
        },
    )
    .await;
    // The solver really was called through the aggregator: the API server's audit of the
    // APIService is not on here, so ask the solver's own log.
    let log = std::fs::read_to_string(env_var("WEBHOOK_SOLVER_LOG")).unwrap_or_default();
    assert!(
        log.contains(&format!("_acme-challenge.{apex}")),
        "the solver's log does not mention _acme-challenge.{apex}:\n{log}"
    );
}

#[tokio::test]
async fn a_solver_error_gives_ready_false_with_its_message() {
    // A valid-looking but wrong TSIG secret: BIND refuses the solver's update.
    let ns = namespace("whbad", "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=").await;
    let name = format!("bad{}.{}", label(), env_var("TEST_ZONE"));
    apply(&ns, &pebble_certificate("refused", &[name], json!({})));
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    let message = wait_cert_failed(&certs, "refused").await;
    assert!(
        message.contains("DNS webhook solver /apis/")
            && message.contains("failed the present")
            && message.contains("NOTAUTH, TSIG error BADSIG"),
        "{message}"
    );
}

#[tokio::test]
async fn an_unknown_solver_says_which_apiservice_is_missing() {
    controller();
    let ns = fresh_namespace("whmissing");
    let mut solver = webhook_solver(&env_var("TSIG_SECRET"));
    solver["dns01"]["webhook"]["groupName"] = json!("acme.nowhere.test");
    apply(
        &ns,
        &pebble_issuer("pebble", "pebble-account", json!({"solvers": [solver]})),
    );
    let issuers: Api<Issuer> = Api::namespaced(client().await, &ns);
    wait_issuer_ready(&issuers, "pebble").await;
    let name = format!("miss{}.{}", label(), env_var("TEST_ZONE"));
    apply(&ns, &pebble_certificate("missing", &[name], json!({})));
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    let message = wait_cert_failed(&certs, "missing").await;
    assert!(
        message.contains("APIService for acme.nowhere.test/v1alpha1"),
        "{message}"
    );
}

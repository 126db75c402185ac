//! Issue 26, the tenant boundary, end to end against the real API server, Pebble and Traefik: a
//! tenant cannot take a host another namespace serves, a shared ClusterIssuer gives each tenant
//! only its own names and namespaces, a tenant's sub-CA needs the policy and carries its
//! constraints, and one tenant spending a shared issuer's budget does not stop another.

mod common;

use std::process::Command;
use std::time::Duration;

use common::e2e::{
    CLUSTER_RESOURCE_NAMESPACE, apply, client, controller, event_count, pebble_issuer,
    ready_condition, secret_field, solver_objects, verify_chain, wait_cert_ready, wait_for,
};
use common::{env_var, fresh_namespace, kubectl_ok};
use ferrocert::api::{Certificate, ClusterIssuer};
use kube::api::Api;
use serde_json::{Value, json};

fn zone() -> String {
    env_var("TEST_ZONE")
}

fn certificate(name: &str, spec: Value) -> Value {
    let mut doc = json!({
        "apiVersion": "ferrocert.dev/v1alpha1",
        "kind": "Certificate",
        "metadata": {"name": name},
        "spec": {"secretName": format!("{name}-tls")}
    });
    common::e2e::merge_fields(&mut doc["spec"], &spec);
    doc
}

/// A Pebble ClusterIssuer (HTTP-01 through Traefik) with `policy`, Ready.
async fn pebble_cluster_issuer(name: &str, policy: Value) {
    let mut doc = pebble_issuer(name, &format!("{name}-account"), json!({}));
    doc["kind"] = json!("ClusterIssuer");
    if !policy.is_null() {
        doc["spec"]["policy"] = policy;
    }
    kubectl_ok(&["apply", "-f", "-"], Some(&doc.to_string()));
    wait_cluster_issuer_ready(name).await;
}

async fn wait_cluster_issuer_ready(name: &str) {
    let api: Api<ClusterIssuer> = Api::all(client().await);
    wait_for(
        &format!("ClusterIssuer {name} Ready"),
        Duration::from_secs(30),
        || async {
            let ci = api.get(name).await.ok()?;
            ci.status?
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
                .then_some(())
        },
    )
    .await;
}

/// Waits for `Ready=False` with `reason`; the message.
async fn wait_refused(ns: &str, name: &str, reason: &str) -> String {
    let api: Api<Certificate> = Api::namespaced(client().await, ns);
    wait_for(
        &format!("Certificate {ns}/{name} Ready=False ({reason})"),
        Duration::from_secs(30),
        || async {
            let c = api.get(name).await.ok()?;
            ready_condition(&c)
                .filter(|(s, r, _)| s == "False" && r == reason)
                .map(|(_, _, m)| m)
        },
    )
    .await
}

/// No order was ever recorded or created for the Certificate, and no solver object exists.
async fn assert_nothing_ordered(ns: &str, name: &str) {
    // Give a wrongly allowed issuance the time to start.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let api: Api<Certificate> = Api::namespaced(client().await, ns);
    let cert = api.get(name).await.unwrap();
    let status = cert.status.unwrap_or_default();
    assert!(
        status.order.is_none(),
        "an order was recorded: {:?}",
        status.order
    );
    assert!(status.revision.is_none(), "a certificate was issued");
    assert_eq!(
        event_count(ns, name, "OrderCreated"),
        0,
        "an order was created"
    );
    assert_eq!(solver_objects(ns).trim(), "", "solver objects in {ns}");
    assert!(
        kubectl_ok(&["get", "secret", "-n", ns, "-o", "name"], None)
            .lines()
            .all(|l| !l.contains(&format!("{name}-next-key"))),
        "a next key was generated for a refused Certificate"
    );
}

/// Test 1: namespace `victim` serves `app.<zone>` through an Ingress; `attacker`, with its own
/// Pebble Issuer, asks for that host: refused with the reason, no solver object, no order.
#[tokio::test]
async fn a_tenant_cannot_take_a_host_another_namespace_serves_through_http01() {
    controller();
    let victim = fresh_namespace("victim");
    let attacker = fresh_namespace("attacker");
    let host = format!("app-{}.{}", std::process::id(), zone());
    let ingress = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "shop"},
        "spec": {
            "ingressClassName": env_var("INGRESS_CLASS"),
            "rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "shop", "port": {"number": 80}}}}]}}]
        }
    });
    apply(&victim, &ingress);
    apply(
        &attacker,
        &pebble_issuer("pebble", "pebble-account", json!({})),
    );
    apply(
        &attacker,
        &certificate(
            "steal",
            json!({"dnsNames": [host], "issuerRef": {"name": "pebble"}}),
        ),
    );
    let message = wait_refused(&attacker, "steal", "PolicyDenied").await;
    assert!(message.contains("hostOwnership"), "{message}");
    assert!(message.contains(&host), "{message}");
    assert!(
        message.contains("an Ingress of another namespace"),
        "{message}"
    );
    assert!(
        !message.contains(&victim),
        "the other namespace is not named: {message}"
    );
    assert_nothing_ordered(&attacker, "steal").await;
    assert_eq!(event_count(&attacker, "steal", "PolicyDenied"), 1);

    // The victim itself may: the Ingress is its own.
    apply(
        &victim,
        &pebble_issuer("pebble", "pebble-account", json!({})),
    );
    apply(
        &victim,
        &certificate(
            "own",
            json!({"dnsNames": [host], "issuerRef": {"name": "pebble"}}),
        ),
    );
    let victim_certs: Api<Certificate> = Api::namespaced(client().await, &victim);
    wait_cert_ready(&victim_certs, "own", 1).await;
    verify_chain(&victim, "own-tls");
}

/// Tests 2 and 3: a shared ClusterIssuer with `*.{namespace}.<zone>` for namespaces labelled
/// `tenant=yes`: team-a gets its own name, is refused team-b's (also one team-b already
/// validated through the same account, which the CA would otherwise reuse), and a namespace
/// outside the selector is refused entirely.
#[tokio::test]
async fn a_shared_cluster_issuer_gives_each_tenant_only_its_own_names() {
    controller();
    let shared = format!("tenants-{}", std::process::id());
    pebble_cluster_issuer(
        &shared,
        json!({
            "namespaces": {"selector": {"matchLabels": {"tenant": "yes"}}},
            "allowedDNSNames": [format!("*.{{namespace}}.{}", zone())]
        }),
    )
    .await;
    let team_a = fresh_namespace("team-a");
    let team_b = fresh_namespace("team-b");
    let outsider = fresh_namespace("outsider");
    for ns in [&team_a, &team_b] {
        kubectl_ok(&["label", "namespace", ns, "tenant=yes"], None);
    }
    let issuer_ref = json!({"name": shared, "kind": "ClusterIssuer"});

    // team-b validates its name through the shared account.
    let shared_name = format!("shared.{team_b}.{}", zone());
    apply(
        &team_b,
        &certificate(
            "b",
            json!({"dnsNames": [shared_name], "issuerRef": issuer_ref}),
        ),
    );
    let b_certs: Api<Certificate> = Api::namespaced(client().await, &team_b);
    wait_cert_ready(&b_certs, "b", 1).await;

    // team-a: its own name is issued.
    let own = format!("x.{team_a}.{}", zone());
    apply(
        &team_a,
        &certificate("own", json!({"dnsNames": [own], "issuerRef": issuer_ref})),
    );
    let a_certs: Api<Certificate> = Api::namespaced(client().await, &team_a);
    wait_cert_ready(&a_certs, "own", 1).await;
    let text = verify_chain(&team_a, "own-tls");
    assert!(text.contains(&format!("DNS:{own}")), "{text}");

    // team-a asking for team-b's names, including the one just validated: refused.
    for (name, dns) in [
        ("theirs", format!("x.{team_b}.{}", zone())),
        ("reused", shared_name.clone()),
    ] {
        apply(
            &team_a,
            &certificate(name, json!({"dnsNames": [dns], "issuerRef": issuer_ref})),
        );
        let message = wait_refused(&team_a, name, "PolicyDenied").await;
        assert!(message.contains("policy.allowedDNSNames"), "{message}");
        assert!(message.contains(&dns), "{message}");
        assert_nothing_ordered(&team_a, name).await;
    }

    // A namespace outside the selector: refused, whatever the name.
    let outsider_name = format!("x.{outsider}.{}", zone());
    apply(
        &outsider,
        &certificate(
            "mine",
            json!({"dnsNames": [outsider_name], "issuerRef": issuer_ref}),
        ),
    );
    let message = wait_refused(&outsider, "mine", "PolicyDenied").await;
    assert!(message.contains("policy.namespaces"), "{message}");
    assert_nothing_ordered(&outsider, "mine").await;

    // Labelling the namespace lets it in (the refusal is looked at again on its next reconcile:
    // an edit of the Certificate wakes it at once).
    kubectl_ok(&["label", "namespace", &outsider, "tenant=yes"], None);
    kubectl_ok(
        &[
            "annotate",
            "-n",
            &outsider,
            "certificate",
            "mine",
            "touched=1",
        ],
        None,
    );
    let outsider_certs: Api<Certificate> = Api::namespaced(client().await, &outsider);
    wait_cert_ready(&outsider_certs, "mine", 1).await;
}

/// Runs openssl with `args`; its output.
fn openssl(args: &[&str]) -> std::process::Output {
    Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs")
}

/// Test 4: a `ca` ClusterIssuer refuses a tenant's `isCA: true` by default; one whose policy
/// allows it signs a sub-CA with `pathlen:0` and the policy's name constraints, and a leaf the
/// tenant signs with that sub-CA outside them does not verify.
#[tokio::test]
async fn a_tenant_sub_ca_needs_the_policy_and_carries_its_constraints() {
    controller();
    let dir = tempfile::tempdir().unwrap();
    let path = |f: &str| dir.path().join(f).to_str().unwrap().to_string();
    // The cluster's CA, in the controller's namespace.
    let out = openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "30",
        "-subj",
        "/CN=Cluster Root CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout",
        &path("root.key"),
        "-out",
        &path("root.crt"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secret = format!("cluster-root-{}", std::process::id());
    let _ = common::kubectl(
        &[
            "delete",
            "secret",
            "-n",
            CLUSTER_RESOURCE_NAMESPACE,
            &secret,
        ],
        None,
    );
    kubectl_ok(
        &[
            "create",
            "secret",
            "tls",
            "-n",
            CLUSTER_RESOURCE_NAMESPACE,
            &secret,
            "--cert",
            &path("root.crt"),
            "--key",
            &path("root.key"),
        ],
        None,
    );
    let strict = format!("cluster-ca-{}", std::process::id());
    let allowing = format!("tenant-ca-{}", std::process::id());
    for (name, policy) in [
        (&strict, Value::Null),
        (
            &allowing,
            json!({"isCA": {"allowed": true, "permittedDNSDomains": ["{namespace}.svc"]}}),
        ),
    ] {
        let mut doc = json!({
            "apiVersion": "ferrocert.dev/v1alpha1",
            "kind": "ClusterIssuer",
            "metadata": {"name": name},
            "spec": {"ca": {"secretName": secret}}
        });
        if !policy.is_null() {
            doc["spec"]["policy"] = policy;
        }
        kubectl_ok(&["apply", "-f", "-"], Some(&doc.to_string()));
        wait_cluster_issuer_ready(name).await;
    }
    let tenant = fresh_namespace("tenant");
    let sub_ca = |issuer: &str| {
        json!({"isCA": true, "commonName": "Tenant CA",
               "issuerRef": {"name": issuer, "kind": "ClusterIssuer"}})
    };
    apply(&tenant, &certificate("refused", sub_ca(&strict)));
    let message = wait_refused(&tenant, "refused", "PolicyDenied").await;
    assert!(message.contains("policy.isCA.allowed"), "{message}");
    assert_nothing_ordered(&tenant, "refused").await;

    apply(&tenant, &certificate("sub", sub_ca(&allowing)));
    let certs: Api<Certificate> = Api::namespaced(client().await, &tenant);
    wait_cert_ready(&certs, "sub", 1).await;
    std::fs::write(path("sub.crt"), secret_field(&tenant, "sub-tls", "tls.crt")).unwrap();
    std::fs::write(path("sub.key"), secret_field(&tenant, "sub-tls", "tls.key")).unwrap();
    let text = String::from_utf8_lossy(
        &openssl(&["x509", "-in", &path("sub.crt"), "-noout", "-text"]).stdout,
    )
    .into_owned();
    assert!(text.contains("CA:TRUE, pathlen:0"), "{text}");
    assert!(text.contains("X509v3 Name Constraints"), "{text}");
    assert!(text.contains(&format!("DNS:{tenant}.svc")), "{text}");

    // What the tenant can do with its sub-CA's key: sign leaves. Inside the constraints they
    // verify against the cluster's root; outside they do not.
    let sign_leaf = |name: &str, dns: &str| {
        let out = openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            &format!("/CN={dns}"),
            "-keyout",
            &path(&format!("{name}.key")),
            "-out",
            &path(&format!("{name}.csr")),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(
            path(&format!("{name}.ext")),
            format!("subjectAltName=DNS:{dns}\n"),
        )
        .unwrap();
        let out = openssl(&[
            "x509",
            "-req",
            "-in",
            &path(&format!("{name}.csr")),
            "-CA",
            &path("sub.crt"),
            "-CAkey",
            &path("sub.key"),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            &path(&format!("{name}.ext")),
            "-out",
            &path(&format!("{name}.crt")),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        openssl(&[
            "verify",
            "-CAfile",
            &path("root.crt"),
            "-untrusted",
            &path("sub.crt"),
            &path(&format!("{name}.crt")),
        ])
    };
    let inside = sign_leaf("inside", &format!("web.{tenant}.svc"));
    assert!(
        inside.status.success(),
        "{}",
        String::from_utf8_lossy(&inside.stdout)
    );
    let outside = sign_leaf("outside", "api.kube-system.svc");
    assert!(
        !outside.status.success(),
        "a leaf outside the constraints verified"
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&outside.stdout),
        String::from_utf8_lossy(&outside.stderr)
    );
    assert!(said.contains("permitted subtree violation"), "{said}");
}

/// Test 5: tenant A loops `renew-requested` on a shared ClusterIssuer with a budget; after it is
/// spent A is `Ready=False`, `BudgetExhausted`, saying when it refills, while tenant B on the same
/// ClusterIssuer still issues.
#[tokio::test]
async fn a_tenant_spending_its_budget_does_not_stop_another_tenant() {
    controller();
    let shared = format!("budget-{}", std::process::id());
    pebble_cluster_issuer(
        &shared,
        json!({"budget": {"manualRenewalsPerHour": 2, "ordersPerHour": 10}}),
    )
    .await;
    let issuer_ref = json!({"name": shared, "kind": "ClusterIssuer"});
    let a = fresh_namespace("tenant-a");
    let b = fresh_namespace("tenant-b");
    apply(
        &a,
        &certificate(
            "loop",
            json!({"dnsNames": [format!("loop.{a}.{}", zone())], "issuerRef": issuer_ref}),
        ),
    );
    let a_certs: Api<Certificate> = Api::namespaced(client().await, &a);
    wait_cert_ready(&a_certs, "loop", 1).await;
    for (i, revision) in [(1, 2), (2, 3)] {
        kubectl_ok(
            &[
                "annotate",
                "--overwrite",
                "-n",
                &a,
                "certificate",
                "loop",
                &format!("ferrocert.dev/renew-requested=r{i}"),
            ],
            None,
        );
        wait_cert_ready(&a_certs, "loop", revision).await;
    }
    kubectl_ok(
        &[
            "annotate",
            "--overwrite",
            "-n",
            &a,
            "certificate",
            "loop",
            "ferrocert.dev/renew-requested=r3",
        ],
        None,
    );
    let message = wait_refused(&a, "loop", "BudgetExhausted").await;
    assert!(message.contains("manualRenewalsPerHour"), "{message}");
    assert!(message.contains("The next is possible at 20"), "{message}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status = a_certs.get("loop").await.unwrap().status.unwrap();
    assert_eq!(status.revision, Some(3), "no fourth issuance");
    assert!(status.order.is_none());

    // Tenant B on the same ClusterIssuer is not held back.
    apply(
        &b,
        &certificate(
            "fresh",
            json!({"dnsNames": [format!("fresh.{b}.{}", zone())], "issuerRef": issuer_ref}),
        ),
    );
    let b_certs: Api<Certificate> = Api::namespaced(client().await, &b);
    wait_cert_ready(&b_certs, "fresh", 1).await;
    verify_chain(&b, "fresh-tls");
}

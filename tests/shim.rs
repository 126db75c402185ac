//! ingress-shim and gateway-shim end to end: an Ingress or a Gateway annotated with a
//! ClusterIssuer gets its Certificate, the Secret its TLS section names is filled, and Traefik
//! (its `websecure` entry point, `HTTPS_PORT`) serves that certificate in front of a small backend
//! this test runs, reached through a Service and an EndpointSlice: `curl --cacert <Pebble's root>`
//! gets the backend's body. Then the Ingress changes (new host → re-issued; annotation removed →
//! Certificate gone, Secret kept), and an invalid annotation value gives a Warning Event and no
//! Certificate.

mod common;

use std::process::Command;
use std::time::Duration;

use common::e2e::{
    apply, client, controller, event_count, event_fields, pebble_issuer, pebble_root, verify_chain,
    wait_cert_ready, wait_for,
};
use common::{env_var, fresh_namespace, kubectl, kubectl_ok};
use ferrocert::api::{Certificate, ClusterIssuer};
use kube::api::Api;
use serde_json::{Value, json};

/// A ClusterIssuer for the local Pebble with the Traefik Ingress solver; returns its name.
async fn cluster_issuer(tag: &str) -> String {
    controller();
    let name = format!("shim-{tag}-{}", std::process::id());
    let mut issuer = pebble_issuer(&name, &format!("{name}-account"), json!({}));
    issuer["kind"] = json!("ClusterIssuer");
    kubectl_ok(&["apply", "-f", "-"], Some(&issuer.to_string()));
    let api: Api<ClusterIssuer> = Api::all(client().await);
    wait_for(
        &format!("ClusterIssuer {name} Ready"),
        Duration::from_secs(30),
        || async {
            let i = api.get(&name).await.ok()?;
            let ready = i
                .status
                .as_ref()?
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            ready.then_some(())
        },
    )
    .await;
    name
}

/// Starts an HTTP backend on the second local address (which the API server accepts in
/// EndpointSlices) answering every request with `body`, and makes Service `app` of `ns` route
/// to it. Runs for the rest of the test process.
async fn backend(ns: &str, body: &str) {
    // Its own thread: the test's runtime is blocked while curl runs.
    let listener =
        std::net::TcpListener::bind((env_var("HTTP01_BACKEND_IP2"), 0)).expect("bind the backend");
    let port = listener.local_addr().unwrap().port();
    let body = body.to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let body = body.clone();
            std::thread::spawn(move || {
                use std::io::{Read, Write};
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf);
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(response.as_bytes());
            });
        }
    });
    let service = json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "app"},
        "spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
    });
    apply(ns, &service);
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "app-1", "labels": {"kubernetes.io/service-name": "app"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [env_var("HTTP01_BACKEND_IP2")], "conditions": {"ready": true}}],
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}]
    });
    apply(ns, &slice);
}

/// `https://<host>/` through Traefik's websecure entry point, verified against Pebble's root only
/// (Traefik's own default certificate would fail): the body, once it answers.
async fn curl_through_traefik(host: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pebble-root.pem");
    std::fs::write(&root, pebble_root(0)).unwrap();
    let port = env_var("HTTPS_PORT");
    let mut last = String::new();
    for _ in 0..50 {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "3", "--resolve"])
            .arg(format!("{host}:{port}:127.0.0.1"))
            .arg("--cacert")
            .arg(&root)
            .arg(format!("https://{host}:{port}/"))
            .output()
            .expect("curl runs");
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        // Traefik loads a new Secret or route within a couple of seconds.
        last = String::from_utf8_lossy(&out.stderr).into_owned();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("https://{host}:{port}/ never verified against Pebble's root: {last}");
}

fn ingress(name: &str, annotations: Value, hosts: &[&str], secret: &str) -> Value {
    let rules: Vec<Value> = hosts
        .iter()
        .map(|h| {
            json!({"host": h, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "app", "port": {"number": 80}}}}]}})
        })
        .collect();
    json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {
            "ingressClassName": env_var("INGRESS_CLASS"),
            "rules": rules,
            "tls": [{"hosts": hosts, "secretName": secret}]
        }
    })
}

fn san_dns_names(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter_map(|t| t.strip_prefix("DNS:"))
        .map(str::to_string)
        .collect();
    names.sort();
    names
}

/// The whole ingress path with one annotation prefix.
async fn ingress_round_trip(prefix: &str, issuer_annotation: &str) {
    let issuer = cluster_issuer(prefix).await;
    let ns = fresh_namespace(&format!("shim-{prefix}"));
    let zone = env_var("TEST_ZONE");
    let app = format!("app.{ns}.{zone}");
    backend(&ns, &format!("hello from {ns}")).await;
    apply(
        &ns,
        &ingress(
            "web",
            json!({issuer_annotation: issuer}),
            &[&app],
            "web-tls",
        ),
    );

    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    let cert = wait_cert_ready(&certs, "web-tls", 1).await;
    assert_eq!(cert.spec.dns_names, std::slice::from_ref(&app));
    assert_eq!(
        cert.spec.issuer_ref.as_ref().map(|r| r.name.as_str()),
        Some(issuer.as_str())
    );
    let owner = &cert.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Ingress", "web")
    );
    assert_eq!(owner.controller, Some(true));
    assert_eq!(
        san_dns_names(&verify_chain(&ns, "web-tls")),
        std::slice::from_ref(&app)
    );
    assert_eq!(
        curl_through_traefik(&app).await,
        format!("hello from {ns}"),
        "the backend's body through Traefik, over the certificate ferrocert issued"
    );
    assert!(event_count(&ns, "web", "CertificateApplied") >= 1);

    // A second host: the Certificate follows and is issued again with both names.
    let www = format!("www.{ns}.{zone}");
    apply(
        &ns,
        &ingress(
            "web",
            json!({issuer_annotation: issuer}),
            &[&app, &www],
            "web-tls",
        ),
    );
    let cert = wait_cert_ready(&certs, "web-tls", 2).await;
    let mut want = vec![app.clone(), www.clone()];
    want.sort();
    let mut got = cert.spec.dns_names.clone();
    got.sort();
    assert_eq!(got, want);
    assert_eq!(san_dns_names(&verify_chain(&ns, "web-tls")), want);
    assert_eq!(curl_through_traefik(&www).await, format!("hello from {ns}"));

    // The annotation removed: the Certificate goes, the Secret stays (as with cert-manager).
    kubectl_ok(
        &[
            "annotate",
            "-n",
            &ns,
            "ingress/web",
            &format!("{issuer_annotation}-"),
        ],
        None,
    );
    wait_for(
        "the shim's Certificate to be deleted",
        Duration::from_secs(30),
        || async { certs.get_opt("web-tls").await.ok()?.is_none().then_some(()) },
    )
    .await;
    let secret = kubectl(&["get", "secret", "-n", &ns, "web-tls", "-o", "name"], None);
    assert!(
        secret.status.success(),
        "the Secret must outlive the shim's Certificate"
    );
    assert!(event_count(&ns, "web", "CertificateRemoved") >= 1);
}

#[tokio::test]
async fn an_ingress_annotated_for_ferrocert_is_served_over_its_certificate() {
    ingress_round_trip("fc", "ferrocert.dev/cluster-issuer").await;
}

#[tokio::test]
async fn an_ingress_annotated_for_cert_manager_works_unchanged() {
    ingress_round_trip("cm", "cert-manager.io/cluster-issuer").await;
}

#[tokio::test]
async fn an_invalid_annotation_value_is_a_warning_and_makes_nothing() {
    let issuer = cluster_issuer("bad").await;
    let ns = fresh_namespace("shim-bad");
    let host = format!("bad.{ns}.{}", env_var("TEST_ZONE"));
    apply(
        &ns,
        &ingress(
            "bad",
            json!({"cert-manager.io/cluster-issuer": issuer, "cert-manager.io/duration": "ten days"}),
            &[&host],
            "bad-tls",
        ),
    );
    let notes = wait_for(
        "a BadAnnotation Warning on the Ingress",
        Duration::from_secs(30),
        || async {
            let notes = event_fields(&ns, "bad", "BadAnnotation", "{.type} {.message}");
            (!notes.is_empty()).then_some(notes)
        },
    )
    .await;
    assert!(
        notes[0].starts_with("Warning ") && notes[0].contains("cert-manager.io/duration"),
        "{notes:?}"
    );
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    // The Event comes from the reconcile that decided; nothing was created by it, nor since.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(certs.get_opt("bad-tls").await.unwrap().is_none());
}

#[tokio::test]
async fn a_gateway_annotated_with_an_issuer_is_served_over_its_certificate() {
    let issuer = cluster_issuer("gw").await;
    let ns = fresh_namespace("shim-gw");
    let host = format!("gw.{ns}.{}", env_var("TEST_ZONE"));
    backend(&ns, &format!("gateway says hello from {ns}")).await;
    let port: u16 = env_var("HTTPS_PORT").parse().unwrap();
    let gateway = json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "gw", "annotations": {"ferrocert.dev/cluster-issuer": issuer}},
        "spec": {
            "gatewayClassName": env_var("INGRESS_CLASS"),
            "listeners": [{
                "name": "https", "protocol": "HTTPS", "port": port, "hostname": host,
                "tls": {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "name": "gw-tls"}]},
                "allowedRoutes": {"namespaces": {"from": "Same"}}
            }]
        }
    });
    apply(&ns, &gateway);
    let route = json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "app"},
        "spec": {
            "parentRefs": [{"name": "gw", "sectionName": "https"}],
            "hostnames": [host],
            "rules": [{"backendRefs": [{"name": "app", "port": 80}]}]
        }
    });
    apply(&ns, &route);

    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    let cert = wait_cert_ready(&certs, "gw-tls", 1).await;
    assert_eq!(cert.spec.dns_names, std::slice::from_ref(&host));
    let owner = &cert.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Gateway", "gw")
    );
    assert_eq!(
        san_dns_names(&verify_chain(&ns, "gw-tls")),
        std::slice::from_ref(&host)
    );
    assert_eq!(
        curl_through_traefik(&host).await,
        format!("gateway says hello from {ns}")
    );
}

#[tokio::test]
async fn edit_in_place_adds_the_challenge_to_the_users_ingress_and_takes_it_out_after() {
    use futures::StreamExt;
    use k8s_openapi::api::networking::v1::Ingress;
    use kube::runtime::{WatchStreamExt, watcher};

    let issuer = cluster_issuer("eip").await;
    let ns = fresh_namespace("shim-eip");
    let host = format!("eip.{ns}.{}", env_var("TEST_ZONE"));
    backend(&ns, "edited in place").await;
    // Every version of every Ingress in the namespace while the order runs.
    let ingresses: Api<Ingress> = Api::namespaced(client().await, &ns);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Ingress>::new()));
    let sink = seen.clone();
    let watch = tokio::spawn(async move {
        let mut s = watcher(ingresses, watcher::Config::default())
            .applied_objects()
            .boxed();
        while let Some(Ok(i)) = s.next().await {
            sink.lock().unwrap().push(i);
        }
    });
    apply(
        &ns,
        &ingress(
            "web",
            json!({
                "cert-manager.io/cluster-issuer": issuer,
                "acme.cert-manager.io/http01-edit-in-place": "true",
            }),
            &[&host],
            "web-tls",
        ),
    );
    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    wait_cert_ready(&certs, "web-tls", 1).await;
    let rules = |i: &Ingress| {
        i.spec
            .as_ref()
            .and_then(|s| s.rules.clone())
            .unwrap_or_default()
    };
    let challenge_rule_seen = || {
        seen.lock().unwrap().iter().any(|i| {
            i.metadata.name.as_deref() == Some("web")
                && rules(i).iter().any(|r| {
                    r.host.as_deref() == Some(host.as_str())
                        && r.http.as_ref().is_some_and(|h| {
                            h.paths.iter().any(|p| {
                                p.path
                                    .as_deref()
                                    .is_some_and(|p| p.starts_with("/.well-known/acme-challenge/"))
                            })
                        })
                })
        })
    };
    assert!(
        challenge_rule_seen(),
        "the challenge rule was never added to the user's Ingress"
    );
    let names: std::collections::BTreeSet<String> = seen
        .lock()
        .unwrap()
        .iter()
        .filter_map(|i| i.metadata.name.clone())
        .collect();
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["web"],
        "no temporary Ingress is made when editing in place"
    );
    // After the order: the user's Ingress has exactly its own rule again.
    let api: Api<Ingress> = Api::namespaced(client().await, &ns);
    wait_for(
        "the challenge rule to be removed",
        Duration::from_secs(20),
        || async {
            let i = api.get("web").await.ok()?;
            (rules(&i).len() == 1).then_some(())
        },
    )
    .await;
    watch.abort();
    assert_eq!(curl_through_traefik(&host).await, "edited in place");
}

/// Removes cert-manager's CRD again when dropped (also after a failed assertion): with it
/// installed, `kubectl get certificate` means cert-manager's in every other test.
struct CertManagerCrd;

impl Drop for CertManagerCrd {
    fn drop(&mut self) {
        let _ = kubectl(
            &[
                "delete",
                "crd",
                "certificates.cert-manager.io",
                "--ignore-not-found",
            ],
            None,
        );
    }
}

#[tokio::test]
async fn a_secret_that_a_cert_manager_certificate_writes_is_left_to_cert_manager() {
    let issuer = cluster_issuer("yield").await;
    let _crd_installed = CertManagerCrd;
    let crd = common::repo_root().join("tests/data/cert-manager-certificate-crd.yaml");
    kubectl_ok(
        &["apply", "--server-side", "-f", common::path_str(&crd)],
        None,
    );
    kubectl_ok(
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=30s",
            "crd/certificates.cert-manager.io",
        ],
        None,
    );
    let ns = fresh_namespace("shim-yield");
    let zone = env_var("TEST_ZONE");
    let (old, new) = (format!("old.{ns}.{zone}"), format!("new.{ns}.{zone}"));
    apply(
        &ns,
        &json!({
            "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": {"name": "legacy"},
            "spec": {"secretName": "old-tls", "dnsNames": [old],
                     "issuerRef": {"name": "letsencrypt", "kind": "ClusterIssuer"}}
        }),
    );
    let mut ing = ingress(
        "mixed",
        json!({"ferrocert.dev/cluster-issuer": issuer}),
        &[&old],
        "old-tls",
    );
    ing["spec"]["tls"]
        .as_array_mut()
        .unwrap()
        .push(json!({"hosts": [new], "secretName": "new-tls"}));
    apply(&ns, &ing);

    let certs: Api<Certificate> = Api::namespaced(client().await, &ns);
    // The entry cert-manager does not manage gets its Certificate...
    wait_cert_ready(&certs, "new-tls", 1).await;
    // ...the other one an Event saying why it got none.
    let notes = wait_for(
        "a ManagedByCertManager Event on the Ingress",
        Duration::from_secs(30),
        || async {
            let notes = event_fields(&ns, "mixed", "ManagedByCertManager", "{.message}");
            (!notes.is_empty()).then_some(notes)
        },
    )
    .await;
    assert!(
        notes[0].contains("old-tls") && notes[0].contains("legacy"),
        "{notes:?}"
    );
    assert!(certs.get_opt("old-tls").await.unwrap().is_none());
}

//! Tests of the document and metadata handling; the spec rules are tested in their modules.

use serde_json::{Value, json};

use super::notes::show;
use super::*;

fn cert_doc(metadata: Value) -> Value {
    json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": metadata,
        "spec": {
            "secretName": "web-tls",
            "dnsNames": ["web.example.com"],
            "issuerRef": {"name": "le", "kind": "ClusterIssuer"},
            "privateKey": {"algorithm": "ECDSA", "rotationPolicy": "Always"},
        },
    })
}

fn converted(c: &Converted) -> &Value {
    match &c.output {
        Output::Converted(v) => v,
        other => panic!("not converted: {other:?}"),
    }
}

/// The note on `field` (shared by the spec modules' tests).
pub(super) fn note<'a>(notes: &'a [Note], field: &str) -> &'a Note {
    notes
        .iter()
        .find(|n| n.field == field)
        .unwrap_or_else(|| panic!("no note on {field}: {notes:#?}"))
}

const ISSUER_YAML: &str = "\
apiVersion: cert-manager.io/v1
kind: Issuer
metadata:
  name: le
spec:
  acme:
    server: https://acme-staging-v02.api.letsencrypt.org/directory
    privateKeySecretRef:
      name: le-account
    solvers:
      - http01:
          ingress:
            ingressClassName: nginx
            serviceType: ClusterIP
";

#[test]
fn metadata_keeps_name_namespace_labels_and_annotations_only() {
    let doc = cert_doc(json!({
        "name": "web",
        "namespace": "shop",
        "labels": {"app": "web"},
        "annotations": {
            "team": "payments",
            "kubectl.kubernetes.io/last-applied-configuration": "{\"big\": \"json\"}",
            "cert-manager.io/issue-temporary-certificate": "true",
        },
        "uid": "6e0c5b0e-0000-4000-8000-000000000000",
        "resourceVersion": "4711",
        "creationTimestamp": "2025-01-01T00:00:00Z",
        "generation": 3,
        "managedFields": [{"manager": "kubectl"}],
        "finalizers": ["example.com/x"],
    }));
    let mut doc = doc;
    doc["status"] = json!({"conditions": [{"type": "Ready", "status": "True"}]});
    let c = convert_document(doc).expect("readable");
    let out = converted(&c);
    assert_eq!(out["apiVersion"], FERROCERT_API_VERSION);
    assert_eq!(
        out["metadata"],
        json!({
            "name": "web",
            "namespace": "shop",
            "labels": {"app": "web"},
            "annotations": {
                "team": "payments",
                "cert-manager.io/issue-temporary-certificate": "true",
            },
        })
    );
    assert!(out.get("status").is_none());
    let n = note(
        &c.notes,
        "metadata.annotations[kubectl.kubernetes.io/last-applied-configuration]",
    );
    assert_eq!(n.action, Action::Dropped);
    let n = note(
        &c.notes,
        "metadata.annotations[cert-manager.io/issue-temporary-certificate]",
    );
    assert_eq!(n.action, Action::Kept);
    let n = note(
        &c.notes,
        "metadata.uid, metadata.resourceVersion, metadata.creationTimestamp, \
         metadata.generation, metadata.managedFields",
    );
    assert_eq!(n.reason, "set by the API server");
    assert_eq!(note(&c.notes, "status").action, Action::Dropped);
    assert_eq!(
        note(&c.notes, "metadata.finalizers").action,
        Action::Dropped
    );
    assert!(!c.has_loss(), "{:#?}", c.notes);
    assert_eq!(c.object, "Certificate shop/web");
}

#[test]
fn a_shim_owner_is_named() {
    let c = convert_document(cert_doc(json!({
        "name": "web-tls",
        "ownerReferences": [{"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                             "name": "web", "uid": "u", "controller": true}],
    })))
    .expect("readable");
    let n = note(&c.notes, "metadata.ownerReferences");
    assert!(n.reason.contains("for Ingress web"), "{n}");
    assert!(!n.is_loss());
    assert_eq!(c.object, "Certificate web-tls");
}

#[test]
fn the_output_deserializes_as_ferrocert_types() {
    let c = convert_document(cert_doc(json!({"name": "web"}))).expect("readable");
    let cert: Certificate = serde_json::from_value(converted(&c).clone()).expect("Certificate");
    assert_eq!(cert.spec.secret_name, "web-tls");
    assert_eq!(
        cert.spec.issuer_ref.as_ref().and_then(|r| r.kind),
        Some(crate::api::IssuerKind::ClusterIssuer)
    );
    let docs = convert_str(ISSUER_YAML, "issuer.yaml").expect("readable");
    let issuer: Issuer = serde_json::from_value(converted(&docs[0]).clone()).expect("Issuer");
    assert_eq!(
        issuer
            .spec
            .acme
            .as_ref()
            .expect("acme")
            .private_key_secret_ref
            .name,
        "le-account"
    );
}

#[test]
fn validation_failures_are_reported_as_a_loss() {
    // A value our types refuse, slipped past the rules: the integer is out of i32's range.
    let mut doc = cert_doc(json!({"name": "web"}));
    doc["spec"]["renewBeforePercentage"] = json!(1_i64 << 40);
    let c = convert_document(doc).expect("readable");
    let n = c
        .notes
        .iter()
        .find(|n| n.reason.contains("internal error"))
        .expect("a validation note");
    assert!(n.is_loss());
    assert!(n.reason.contains("ferrocert's Certificate"), "{n}");
}

#[test]
fn other_documents_are_passed_through() {
    let secret = json!({"apiVersion": "v1", "kind": "Secret",
                        "metadata": {"name": "tsig", "namespace": "shop"},
                        "stringData": {"secret": "x"}});
    let c = convert_document(secret.clone()).expect("readable");
    assert_eq!(c.output, Output::PassedThrough(secret));
    assert_eq!(c.notes[0].action, Action::PassedThrough);
    assert!(!c.has_loss());
    assert_eq!(
        c.notes[0].to_string(),
        "Secret shop/tsig: passed through unchanged: not a cert-manager.io/v1 Issuer, \
         ClusterIssuer or Certificate"
    );

    // An older cert-manager version of a converted kind: passed through, a loss.
    let mut old = cert_doc(json!({"name": "web"}));
    old["apiVersion"] = json!("cert-manager.io/v1alpha2");
    let c = convert_document(old).expect("readable");
    assert!(matches!(c.output, Output::PassedThrough(_)));
    assert!(c.has_loss());
    assert!(
        c.notes[0].reason.contains("cmctl convert"),
        "{}",
        c.notes[0]
    );

    // cert-manager's working objects: passed through, harmless.
    let cr = json!({"apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
                    "metadata": {"name": "web-1"}, "spec": {}});
    let c = convert_document(cr).expect("readable");
    assert!(!c.has_loss());
    assert!(
        c.notes[0].reason.contains("working objects"),
        "{}",
        c.notes[0]
    );

    // Already ferrocert.
    let fc = json!({"apiVersion": "ferrocert.dev/v1alpha1", "kind": "Certificate",
                    "metadata": {"name": "web"}, "spec": {}});
    let c = convert_document(fc).expect("readable");
    assert_eq!(c.notes[0].reason, "already a ferrocert object");
}

#[test]
fn non_objects_are_unreadable() {
    let err = convert_document(json!("just text")).unwrap_err();
    assert!(err.message.contains("not a Kubernetes object"), "{err}");
    let err = convert_document(json!({"kind": "Certificate"})).unwrap_err();
    assert_eq!(err.field, "apiVersion");
    let err = convert_document(json!({"apiVersion": "cert-manager.io/v1"})).unwrap_err();
    assert_eq!(err.field, "kind");
    let err = convert_document(json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
                                      "metadata": {"name": "x"}}))
    .unwrap_err();
    assert_eq!(err.to_string(), "spec: missing");
    let err = convert_document(json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
                                      "spec": {}}))
    .unwrap_err();
    assert_eq!(err.field, "metadata");
    let err = convert_document(cert_doc(json!({"namespace": "shop"}))).unwrap_err();
    assert_eq!(err.field, "metadata.name");
    let err = convert_document(cert_doc(json!({"name": "web", "labels": {"n": 1}}))).unwrap_err();
    assert_eq!(err.field, "metadata.labels[n]");
}

#[test]
fn streams_keep_order_and_skip_empty_documents() {
    let text = format!(
        "---\n{ISSUER_YAML}---\n# only a comment\n---\napiVersion: v1\nkind: ConfigMap\n\
         metadata: {{name: c}}\n---\n"
    );
    let docs = convert_str(&text, "in.yaml").expect("readable");
    let objects: Vec<&str> = docs.iter().map(|d| d.object.as_str()).collect();
    assert_eq!(objects, ["Issuer le", "ConfigMap c"]);
    let yaml = render(&docs).expect("renders");
    let back: Vec<Value> = serde_yaml::Deserializer::from_str(&yaml)
        .map(|d| {
            use serde::Deserialize as _;
            Value::deserialize(d).expect("yaml")
        })
        .collect();
    assert_eq!(back.len(), 2);
    assert_eq!(back[0]["apiVersion"], FERROCERT_API_VERSION);
    assert_eq!(back[1]["kind"], "ConfigMap");
    assert!(yaml.contains("\n---\n"), "{yaml}");
}

#[test]
fn empty_input_is_no_documents() {
    assert_eq!(convert_str("", "-").expect("readable"), Vec::new());
    assert_eq!(convert_str("---\n", "-").expect("readable"), Vec::new());
}

#[test]
fn yaml_errors_name_the_source_and_document() {
    let text = format!("{ISSUER_YAML}---\nkind: [unclosed\n");
    let errors = convert_str(&text, "bad.yaml").unwrap_err();
    assert_eq!(errors.len(), 1);
    let e = errors[0].to_string();
    assert!(e.starts_with("bad.yaml: document 2: not YAML: "), "{e}");
    assert!(e.contains("line 16 column 7"), "{e}");

    let text = format!("{ISSUER_YAML}---\n- a\n- b\n---\n{ISSUER_YAML}");
    let errors = convert_str(&text, "list.yaml").unwrap_err();
    assert_eq!(
        errors[0].to_string(),
        "list.yaml: document 2: not a Kubernetes object: expected a mapping with apiVersion \
         and kind, found a list"
    );

    let text = "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: web, \
                namespace: shop}\nspec: {secretName: web-tls}\n";
    let errors = convert_str(text, "<stdin>").unwrap_err();
    assert_eq!(
        errors[0].to_string(),
        "<stdin>: document 1 (Certificate shop/web): spec.issuerRef: required, but missing"
    );
}

#[test]
fn every_unreadable_document_is_reported() {
    let text = "apiVersion: v1\n---\nkind: x\n---\n42\n";
    let errors = convert_str(text, "f").unwrap_err();
    assert_eq!(errors.len(), 3);
    assert!(errors[2].to_string().starts_with("f: document 3: "));
}

#[test]
fn yaml_merge_keys_and_anchors_are_resolved() {
    let text = "\
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: web}
spec:
  secretName: web-tls
  dnsNames: &names [a.example.com]
  issuerRef:
    <<: {name: le, kind: ClusterIssuer}
  privateKey: {algorithm: ECDSA, rotationPolicy: Always}
";
    let docs = convert_str(text, "f").expect("readable");
    let out = converted(&docs[0]);
    assert_eq!(
        out["spec"]["issuerRef"],
        json!({"name": "le", "kind": "ClusterIssuer"})
    );
    assert_eq!(out["spec"]["dnsNames"], json!(["a.example.com"]));
}

#[test]
fn lists_are_converted_item_by_item() {
    let list = json!({
        "apiVersion": "v1",
        "kind": "List",
        "metadata": {"resourceVersion": ""},
        "items": [
            cert_doc(json!({"name": "web", "namespace": "shop"})),
            {"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
             "metadata": {"name": "self", "namespace": "shop"}, "spec": {"selfSigned": {}}},
            {"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
             "metadata": {"name": "vault", "namespace": "shop"},
             "spec": {"vault": {"server": "https://vault.example.com"}}},
        ],
    });
    let c = convert_document(list).expect("readable");
    let out = converted(&c);
    assert_eq!(out["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(out["items"][0]["apiVersion"], FERROCERT_API_VERSION);
    assert_eq!(out["items"][1]["spec"], json!({"selfSigned": {}}));
    assert!(c.has_loss());
    assert_eq!(note(&c.notes, "spec.vault").object, "Issuer shop/vault");

    let bad = json!({"apiVersion": "v1", "kind": "List", "items": [{"kind": "x"}]});
    assert_eq!(
        convert_document(bad).unwrap_err().field,
        "items[0].apiVersion"
    );
}

#[test]
fn objects_not_converted_become_comments() {
    let text = "\
apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata: {name: vault}
spec: {vault: {server: https://vault.example.com, path: pki/sign/example}}
---
apiVersion: v1
kind: Namespace
metadata: {name: shop}
";
    let docs = convert_str(text, "f").expect("readable");
    assert_eq!(docs[0].output, Output::NotConverted);
    let yaml = render(&docs).expect("renders");
    assert!(
        yaml.starts_with(
            "# ClusterIssuer vault: not converted\n# ClusterIssuer vault: spec.vault not \
             converted: ferrocert issues through ACME CAs or signs itself"
        ),
        "{yaml}"
    );
    assert!(
        yaml.contains("---\napiVersion: v1\nkind: Namespace\n"),
        "{yaml}"
    );
    assert_eq!(
        summary(&docs),
        "ferrocert convert: 0 converted, 1 passed through, 1 not converted; 1 loss"
    );
}

#[test]
fn notes_show_short_values_only() {
    assert_eq!(show(&json!("x")).as_deref(), Some("x"));
    assert_eq!(show(&json!(4096)).as_deref(), Some("4096"));
    assert_eq!(show(&json!(["a", true])).as_deref(), Some("[a, true]"));
    assert_eq!(show(&json!({"a": 1})), None);
    assert_eq!(show(&json!([{"a": 1}])), None);
    assert_eq!(show(&json!("y".repeat(81))), None);
    assert_eq!(show(&json!("a\nb")), None);
    let note = Note {
        object: "Issuer shop/le".into(),
        field: String::new(),
        value: None,
        action: Action::PassedThrough,
        reason: String::new(),
        loss: false,
    };
    assert_eq!(note.to_string(), "Issuer shop/le: passed through unchanged");
}

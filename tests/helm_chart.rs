//! The Helm chart (`charts/ferrocert`) and the plain manifests rendered from it
//! (`deploy/ferrocert.yaml`): the chart lints strictly, every value is in its schema, its CRD copies
//! equal the generated `crds/`, the plain manifests equal `helm template` and the API server accepts
//! them, `helm install` into the real kube-apiserver of `tests/env` creates every object (pods that
//! pass the restricted Pod Security Standard), the ServiceAccount's rights are exactly the listed
//! ones, and `helm uninstall` removes everything but the CRDs.
//!
//! Needs `helm` and `KUBECONFIG` from `source .testenv/env.sh`; fails, never skips, without them.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};

use common::{
    env_var, fresh_namespace, helm, helm_ok, install_crds, kubectl, kubectl_ok, repo_root,
};
use serde::Deserialize;
use serde_json::{Value, json};

const CHART: &str = "charts/ferrocert";
const CRD_NAMES: [&str; 3] = [
    "certificates.ferrocert.dev",
    "issuers.ferrocert.dev",
    "clusterissuers.ferrocert.dev",
];

/// The YAML documents of a multi-document stream, as JSON values; empty documents are dropped.
fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|doc| Value::deserialize(doc).expect("valid YAML document"))
        .filter(|doc| !doc.is_null())
        .collect()
}

/// The value with every number as a float: helm's `fromYaml | toYaml` writes `minimum: 1.0` as
/// `minimum: 1`, the same number to the API server.
fn numbers_as_floats(value: Value) -> Value {
    match value {
        Value::Number(n) => json!(n.as_f64().expect("finite number")),
        Value::Array(items) => Value::Array(items.into_iter().map(numbers_as_floats).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, numbers_as_floats(v)))
                .collect(),
        ),
        other => other,
    }
}

fn kind_and_name(doc: &Value) -> (String, String) {
    (
        doc["kind"].as_str().unwrap_or_default().to_string(),
        doc["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

/// A name unique to this test run, usable as a release name (helm allows 53 characters).
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .subsec_nanos();
    format!("{prefix}-{}-{nanos:x}", std::process::id())
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| panic!("read {}: {err}", path.display()))
}

/// The `*.yaml` file names of a directory, sorted.
fn yaml_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|err| panic!("read {}: {err}", dir.display()))
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .into_string()
                .expect("utf-8")
        })
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    names.sort();
    names
}

#[test]
fn chart_lints_strictly() {
    for extra in [
        &[][..],
        &["--set", "metrics.serviceMonitor.enabled=true"][..],
        &["--set", "replicaCount=1", "--set", "crds.install=false"][..],
    ] {
        let mut args = vec!["lint", "--strict", CHART];
        args.extend_from_slice(extra);
        let out = helm_ok(&args);
        assert!(
            out.contains("1 chart(s) linted, 0 chart(s) failed"),
            "helm {}: {out}",
            args.join(" ")
        );
    }
}

#[test]
fn values_schema_rejects_unknown_and_invalid_values() {
    for (set, expect) in [
        ("replicas=3", "additional properties 'replicas' not allowed"),
        ("controller.logFormat=yaml", "/controller/logFormat"),
        ("controller.backoffBase=soon", "/controller/backoffBase"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
    ] {
        let out = helm(&["template", "x", CHART, "--set", set]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(expect),
            "--set {set} should be refused by values.schema.json with `{expect}`, got: {stderr}"
        );
    }
}

/// Every key of values.yaml has a description in values.schema.json (at itself or at the nearest
/// schema node that takes the whole value, like `resources`).
#[test]
fn every_value_is_described_in_the_schema() {
    let root = repo_root().join(CHART);
    let values: Value =
        serde_yaml::from_str(&read(&root.join("values.yaml"))).expect("values.yaml parses");
    let schema: Value = serde_json::from_str(&read(&root.join("values.schema.json")))
        .expect("values.schema.json parses");

    fn resolve<'a>(schema: &'a Value, node: &'a Value) -> &'a Value {
        match node["$ref"].as_str() {
            Some(r) => {
                let pointer = r.strip_prefix('#').expect("local $ref");
                schema.pointer(pointer).expect("$ref resolves")
            }
            None => node,
        }
    }
    fn walk(schema: &Value, node: &Value, value: &Value, path: &str, missing: &mut Vec<String>) {
        let Some(map) = value.as_object() else {
            return;
        };
        for (key, child) in map {
            let here = format!("{path}.{key}");
            let Some(prop) = node["properties"].get(key) else {
                missing.push(format!("{here} (not in the schema)"));
                continue;
            };
            let described = prop.get("description").is_some();
            let prop = resolve(schema, prop);
            if described || prop.get("description").is_some() {
                continue;
            }
            if child.is_object() {
                walk(schema, prop, child, &here, missing);
            } else {
                missing.push(format!("{here} (no description)"));
            }
        }
    }
    let mut missing = Vec::new();
    walk(&schema, &schema, &values, "", &mut missing);
    assert!(
        missing.is_empty(),
        "values.schema.json does not describe: {missing:?}"
    );
}

#[test]
fn chart_crd_copies_equal_the_generated_crds() {
    let generated = repo_root().join("crds");
    let copies = repo_root().join(CHART).join("files/crds");
    assert_eq!(
        yaml_files(&copies),
        yaml_files(&generated),
        "charts/ferrocert/files/crds/ holds other files than crds/: run deploy/render.sh"
    );
    for file in yaml_files(&generated) {
        assert!(
            read(&copies.join(&file)) == read(&generated.join(&file)),
            "charts/ferrocert/files/crds/{file} differs from crds/{file}: run deploy/render.sh \
             (it copies crds/ into the chart and re-renders deploy/ferrocert.yaml)"
        );
    }
}

/// With `crds.install=true` (the default) the chart renders exactly the generated CRDs, each
/// annotated `helm.sh/resource-policy: keep` so `helm uninstall` leaves them; with
/// `crds.install=false` none; with `crds.keep=false` no keep annotation.
#[test]
fn chart_renders_the_crds_with_the_keep_annotation() {
    let rendered = documents(&helm_ok(&[
        "template",
        "ferrocert",
        CHART,
        "--namespace",
        "ferrocert",
        "--show-only",
        "templates/crds.yaml",
    ]));
    let mut names: Vec<_> = rendered.iter().map(|d| kind_and_name(d).1).collect();
    names.sort();
    let mut want: Vec<_> = CRD_NAMES.iter().map(|n| n.to_string()).collect();
    want.sort();
    assert_eq!(names, want, "the chart renders other CRDs than crds/");
    for mut crd in rendered {
        let (kind, name) = kind_and_name(&crd);
        assert_eq!(kind, "CustomResourceDefinition");
        assert_eq!(
            crd["metadata"]["annotations"]["helm.sh/resource-policy"], "keep",
            "{name} lacks the helm.sh/resource-policy: keep annotation"
        );
        // Apart from the labels and annotations the chart adds, the CRD is the generated file.
        let meta = crd["metadata"].as_object_mut().expect("metadata");
        meta.remove("labels");
        meta.remove("annotations");
        let file = repo_root().join("crds").join(format!("{name}.yaml"));
        let generated: Value = serde_yaml::from_str(&read(&file)).expect("generated CRD parses");
        assert!(
            numbers_as_floats(crd) == numbers_as_floats(generated),
            "the chart's rendering of {name} differs from crds/{name}.yaml"
        );
    }

    let out = helm(&[
        "template",
        "x",
        CHART,
        "--set",
        "crds.install=false",
        "--show-only",
        "templates/crds.yaml",
    ]);
    assert!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("could not find template"),
        "crds.install=false still renders CRDs: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let unkept = documents(&helm_ok(&[
        "template",
        "x",
        CHART,
        "--set",
        "crds.keep=false",
        "--show-only",
        "templates/crds.yaml",
    ]));
    assert_eq!(unkept.len(), 3);
    for crd in unkept {
        assert!(
            crd["metadata"]["annotations"]["helm.sh/resource-policy"].is_null(),
            "crds.keep=false still annotates {:?}",
            kind_and_name(&crd)
        );
    }
}

#[test]
fn optional_objects_follow_their_values() {
    let kinds = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["template", "x", CHART];
        all.extend_from_slice(args);
        documents(&helm_ok(&all))
            .iter()
            .map(|d| kind_and_name(d).0)
            .collect()
    };
    let default = kinds(&[]);
    assert!(!default.contains(&"ServiceMonitor".to_string()));
    assert!(default.contains(&"PodDisruptionBudget".to_string()));
    let monitored = kinds(&["--set", "metrics.serviceMonitor.enabled=true"]);
    assert!(monitored.contains(&"ServiceMonitor".to_string()));
    let single = kinds(&["--set", "replicaCount=1"]);
    assert!(
        !single.contains(&"PodDisruptionBudget".to_string()),
        "a PDB with minAvailable 1 and one replica would block node drains"
    );
    assert!(default.contains(&"NetworkPolicy".to_string()));
    let open = kinds(&["--set", "networkPolicy.enabled=false"]);
    assert!(!open.contains(&"NetworkPolicy".to_string()));
    let external_sa = kinds(&[
        "--set",
        "serviceAccount.create=false",
        "--set",
        "serviceAccount.name=mine",
    ]);
    assert!(!external_sa.contains(&"ServiceAccount".to_string()));
}

/// The exact command deploy/render.sh runs for the chart part.
fn helm_template_defaults() -> String {
    helm_ok(&["template", "ferrocert", CHART, "--namespace", "ferrocert"])
}

#[test]
fn plain_manifests_equal_helm_template() {
    let file = read(&repo_root().join("deploy/ferrocert.yaml"));
    let out = Command::new(repo_root().join("deploy/render.sh"))
        .arg("--stdout")
        .env("KUBECONFIG", env_var("KUBECONFIG"))
        .output()
        .expect("deploy/render.sh runs");
    assert!(
        out.status.success(),
        "deploy/render.sh --stdout failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = String::from_utf8(out.stdout).expect("UTF-8");
    assert!(
        file == rendered,
        "deploy/ferrocert.yaml is out of date with charts/ferrocert: run deploy/render.sh"
    );
    assert!(
        file.ends_with(&helm_template_defaults()),
        "deploy/ferrocert.yaml does not end with `helm template ferrocert charts/ferrocert \
         --namespace ferrocert`: run deploy/render.sh"
    );

    let docs = documents(&file);
    assert_eq!(
        kind_and_name(&docs[0]),
        ("Namespace".to_string(), "ferrocert".to_string()),
        "deploy/ferrocert.yaml must create its namespace first"
    );
    let mut kinds: Vec<_> = docs.iter().map(|d| kind_and_name(d).0).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "Deployment",
            "Namespace",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Service",
            "Service",
            "ServiceAccount",
        ]
    );
}

/// `kubectl apply -f deploy/ferrocert.yaml` is accepted by the API server (dry run, strict field
/// validation), moved into a fresh namespace so the test never touches a `ferrocert` namespace.
#[test]
fn plain_manifests_pass_server_side_validation() {
    let ns = fresh_namespace("plain");
    let docs: Vec<Value> = documents(&read(&repo_root().join("deploy/ferrocert.yaml")))
        .into_iter()
        .map(|mut doc| {
            if doc["kind"] == "Namespace" {
                doc["metadata"]["name"] = json!(ns);
            } else if doc["metadata"].get("namespace").is_some() {
                doc["metadata"]["namespace"] = json!(ns);
            }
            doc
        })
        .collect();
    // A stream of documents, as `kubectl apply -f` reads the file (a `List` would be validated
    // client-side, where kubectl 1.32 trips over the CRDs' `null` enum members).
    let stream: String = docs.iter().map(|d| format!("---\n{d}\n")).collect();
    let out = kubectl_ok(
        &["apply", "--dry-run=server", "--validate=strict", "-f", "-"],
        Some(&stream),
    );
    assert!(
        out.contains("deployment.apps/ferrocert created (server dry run)"),
        "{out}"
    );
}

/// NOTES.txt tells the user what to apply next; its examples are accepted by the API server.
#[test]
fn notes_examples_pass_server_side_validation() {
    install_crds();
    let ns = fresh_namespace("notes");
    let out = helm_ok(&[
        "install",
        "notes",
        CHART,
        "--namespace",
        &ns,
        "--dry-run=client",
        "--set",
        "crds.install=false",
    ]);
    let notes = out.split_once("NOTES:").expect("helm prints NOTES").1;
    assert!(notes.contains("kubectl get ferrocert -A"), "{notes}");
    // The heredocs: from `kubectl apply ... <<'YAML'` to `YAML`.
    let mut manifests = Vec::new();
    let mut current: Option<String> = None;
    for line in notes.lines() {
        match current.as_mut() {
            None if line.starts_with("kubectl apply") && line.ends_with("<<'YAML'") => {
                current = Some(String::new())
            }
            None => {}
            Some(_) if line == "YAML" => manifests.extend(current.take()),
            Some(doc) => {
                doc.push_str(line);
                doc.push('\n');
            }
        }
    }
    let kinds: Vec<_> = manifests
        .iter()
        .flat_map(|m| documents(m))
        .map(|d| kind_and_name(&d).0)
        .collect();
    assert_eq!(kinds, ["ClusterIssuer", "Certificate"], "{notes}");
    for manifest in &manifests {
        kubectl_ok(
            &["apply", "--dry-run=server", "-n", &ns, "-f", "-"],
            Some(manifest),
        );
    }
}

/// A release installed into a fresh namespace, uninstalled on drop if the test did not.
struct Release {
    name: String,
    namespace: String,
    installed: bool,
}

impl Release {
    fn install(extra: &[&str]) -> Release {
        let namespace = fresh_namespace("helm");
        // Pods of this namespace must meet the restricted Pod Security Standard.
        kubectl_ok(
            &[
                "label",
                "namespace",
                &namespace,
                "pod-security.kubernetes.io/enforce=restricted",
            ],
            None,
        );
        let name = unique("fc");
        let mut args = vec!["install", &name, CHART, "--namespace", &namespace];
        args.extend_from_slice(extra);
        let out = helm_ok(&args);
        assert!(out.contains("STATUS: deployed"), "{out}");
        Release {
            name,
            namespace,
            installed: true,
        }
    }

    /// The chart's full name for this release (release name + "-ferrocert").
    fn fullname(&self) -> String {
        format!("{}-ferrocert", self.name)
    }

    fn uninstall(&mut self) {
        helm_ok(&["uninstall", &self.name, "--namespace", &self.namespace]);
        self.installed = false;
    }

    fn service_account(&self) -> String {
        format!(
            "system:serviceaccount:{}:{}",
            self.namespace,
            self.fullname()
        )
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        if self.installed {
            let _ = helm(&["uninstall", &self.name, "--namespace", &self.namespace]);
        }
    }
}

/// `kubectl get` of every object the chart makes for `release`: (resource, name, namespaced).
fn chart_objects(release: &Release) -> Vec<(&'static str, String, bool)> {
    let full = release.fullname();
    vec![
        ("deployment", full.clone(), true),
        ("serviceaccount", full.clone(), true),
        ("clusterrole", full.clone(), false),
        ("clusterrolebinding", full.clone(), false),
        ("role", format!("{full}-leader-election"), true),
        ("rolebinding", format!("{full}-leader-election"), true),
        ("service", format!("{full}-http01"), true),
        ("service", format!("{full}-metrics"), true),
        ("poddisruptionbudget", full.clone(), true),
    ]
}

fn get_object(release: &Release, resource: &str, name: &str, namespaced: bool) -> Output {
    let mut args = vec!["get", resource, name, "-o", "json"];
    if namespaced {
        args.extend_from_slice(&["-n", &release.namespace]);
    }
    kubectl(&args, None)
}

#[test]
fn helm_install_creates_every_object_and_uninstall_keeps_the_crds() {
    install_crds();
    // The CRDs are shared with every other test (tests/common installs them), so this release
    // does not own them; `chart_renders_the_crds_with_the_keep_annotation` checks the keep policy.
    let mut release = Release::install(&["--set", "crds.install=false"]);
    let full = release.fullname();
    assert!(full.contains(&release.name));

    for (resource, name, namespaced) in chart_objects(&release) {
        let out = get_object(&release, resource, &name, namespaced);
        assert!(
            out.status.success(),
            "{resource}/{name} was not created: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The Deployment as the API server stored it.
    let deploy: Value = serde_json::from_str(&kubectl_ok(
        &[
            "get",
            "deployment",
            &full,
            "-n",
            &release.namespace,
            "-o",
            "json",
        ],
        None,
    ))
    .expect("deployment JSON");
    assert_eq!(deploy["spec"]["replicas"], 2);
    let pod_spec = &deploy["spec"]["template"]["spec"];
    let container = &pod_spec["containers"][0];
    assert_eq!(container["image"], "ghcr.io/ferrocert/ferrocert:0.1.0");
    assert_eq!(container["imagePullPolicy"], "IfNotPresent");
    let args: Vec<&str> = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string arg"))
        .collect();
    let ns = &release.namespace;
    let want_args = [
        "controller".to_string(),
        "--http01-listen=0.0.0.0:8089".to_string(),
        "--metrics-listen=0.0.0.0:9402".to_string(),
        "--concurrency=4".to_string(),
        "--backoff-base=1h".to_string(),
        "--backoff-cap=32h".to_string(),
        "--issuer-ambient-credentials=false".to_string(),
        "--cluster-issuer-ambient-credentials=true".to_string(),
        "--unrestricted-cluster-issuers=true".to_string(),
        "--http01-host-ownership=true".to_string(),
        format!("--cluster-resource-namespace={ns}"),
        format!("--http01-service={ns}/{full}-http01"),
        "--log-format=text".to_string(),
        "--ingress-shim=true".to_string(),
        "--gateway-shim=true".to_string(),
        "--shim-annotation-prefixes=ferrocert.dev,cert-manager.io".to_string(),
        "--leader-elect".to_string(),
        format!("--lease-namespace={ns}"),
        format!("--lease-name={full}"),
    ];
    assert_eq!(args, want_args);
    assert_eq!(pod_spec["serviceAccountName"], json!(full));

    // The HTTP-01 Service reaches the pods' HTTP-01 port on port 80.
    let http01: Value = serde_json::from_str(&kubectl_ok(
        &[
            "get",
            "service",
            &format!("{full}-http01"),
            "-n",
            ns,
            "-o",
            "json",
        ],
        None,
    ))
    .expect("service JSON");
    assert_eq!(http01["spec"]["ports"][0]["port"], 80);
    assert_eq!(http01["spec"]["ports"][0]["targetPort"], "http01");
    assert_eq!(
        http01["spec"]["selector"],
        deploy["spec"]["selector"]["matchLabels"]
    );

    // The pods the Deployment would make pass the namespace's restricted Pod Security admission
    // (no kubelet or controller-manager here, so ask the API server with a dry-run Pod). A pod
    // without the security contexts is refused: the check is live.
    let pod = |spec: &Value| {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": format!("{full}-psa-check")},
            "spec": spec,
        })
        .to_string()
    };
    kubectl_ok(
        &["create", "--dry-run=server", "-n", ns, "-f", "-"],
        Some(&pod(pod_spec)),
    );
    let mut insecure = pod_spec.clone();
    insecure
        .as_object_mut()
        .expect("spec")
        .remove("securityContext");
    insecure["containers"][0]
        .as_object_mut()
        .expect("container")
        .remove("securityContext");
    let refused = kubectl(
        &["create", "--dry-run=server", "-n", ns, "-f", "-"],
        Some(&pod(&insecure)),
    );
    assert!(
        !refused.status.success()
            && String::from_utf8_lossy(&refused.stderr).contains("violates PodSecurity"),
        "Pod Security admission did not refuse a pod without security contexts: {}",
        String::from_utf8_lossy(&refused.stderr)
    );

    release.uninstall();
    for (resource, name, namespaced) in chart_objects(&release) {
        let out = get_object(&release, resource, &name, namespaced);
        assert!(
            !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("NotFound"),
            "{resource}/{name} is still there after helm uninstall"
        );
    }
    for crd in CRD_NAMES {
        kubectl_ok(&["get", "crd", crd], None);
    }
}

/// Rights as `kubectl auth can-i --list` shows them: resource (with group and subresource) to verbs.
type Rights = BTreeMap<String, BTreeSet<String>>;

/// Parses the table `kubectl auth can-i --list` prints (no machine-readable output in kubectl
/// 1.32). Rows without a resource (non-resource URLs) are dropped; rows naming resourceNames are
/// refused, since the chart grants none.
fn can_i_list(user: &str, namespace: &str) -> Vec<(String, BTreeSet<String>)> {
    let out = kubectl_ok(
        &["auth", "can-i", "--list", "--as", user, "-n", namespace],
        None,
    );
    let mut lines = out.lines();
    let header = lines.next().expect("a header line");
    let col = |title: &str| {
        header
            .find(title)
            .unwrap_or_else(|| panic!("no `{title}` column in: {header}"))
    };
    let (urls, names, verbs) = (
        col("Non-Resource URLs"),
        col("Resource Names"),
        col("Verbs"),
    );
    let mut rows = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let field =
            |from: usize, to: usize| line.get(from..to.min(line.len())).unwrap_or("").trim();
        let resource = field(0, urls);
        if resource.is_empty() {
            continue;
        }
        assert_eq!(
            field(names, verbs),
            "[]",
            "unexpected resourceNames in: {line}"
        );
        let verbs: BTreeSet<String> = field(verbs, line.len())
            .trim_start_matches('[')
            .trim_end_matches(']')
            .split_whitespace()
            .map(str::to_string)
            .collect();
        rows.push((resource.to_string(), verbs));
    }
    rows
}

/// The rights of `user` in `namespace`, minus the rows every authenticated ServiceAccount has
/// (self reviews), measured with a ServiceAccount that has no bindings.
fn granted_rights(user: &str, namespace: &str) -> Rights {
    let baseline = can_i_list(
        &format!("system:serviceaccount:{namespace}:nobody-without-bindings"),
        namespace,
    );
    let mut rights = Rights::new();
    for row in can_i_list(user, namespace) {
        if baseline.contains(&row) {
            continue;
        }
        rights.entry(row.0).or_default().extend(row.1);
    }
    rights
}

fn rights(rows: &[(&str, &str)]) -> Rights {
    rows.iter()
        .map(|(resource, verbs)| {
            (
                resource.to_string(),
                verbs.split_whitespace().map(str::to_string).collect(),
            )
        })
        .collect()
}

#[test]
fn service_account_has_exactly_the_listed_rights() {
    install_crds();
    let release = Release::install(&["--set", "crds.install=false"]);
    let sa = release.service_account();
    let cluster_wide = [
        // Create and delete for the shims' Certificates.
        (
            "certificates.ferrocert.dev",
            "get list watch patch create delete",
        ),
        ("issuers.ferrocert.dev", "get list watch patch"),
        ("clusterissuers.ferrocert.dev", "get list watch patch"),
        ("certificates.ferrocert.dev/status", "get patch"),
        ("issuers.ferrocert.dev/status", "get patch"),
        ("clusterissuers.ferrocert.dev/status", "get patch"),
        ("certificates.ferrocert.dev/finalizers", "update"),
        ("secrets", "get list watch create patch delete"),
        ("services", "list create patch delete"),
        (
            "endpointslices.discovery.k8s.io",
            "list create patch delete",
        ),
        (
            "ingresses.networking.k8s.io",
            "list create patch delete watch",
        ),
        (
            "httproutes.gateway.networking.k8s.io",
            "get list create patch delete watch",
        ),
        ("namespaces", "get"),
        ("gateways.gateway.networking.k8s.io", "get list watch"),
        ("certificates.cert-manager.io", "list"),
        ("events.events.k8s.io", "create patch"),
    ];
    let mut in_release_ns = cluster_wide.to_vec();
    in_release_ns.push(("leases.coordination.k8s.io", "get create update"));
    in_release_ns.retain(|(r, _)| *r != "endpointslices.discovery.k8s.io");
    in_release_ns.push((
        "endpointslices.discovery.k8s.io",
        "list create patch delete watch",
    ));

    assert_eq!(
        granted_rights(&sa, &release.namespace),
        rights(&in_release_ns),
        "rights of {sa} in its own namespace"
    );
    // Elsewhere only the ClusterRole applies: the Lease rights stay in the release namespace.
    assert_eq!(
        granted_rights(&sa, "default"),
        rights(&cluster_wide),
        "rights of {sa} in another namespace"
    );

    for (verb, resource, namespace) in [
        ("create", "pods", release.namespace.as_str()),
        ("get", "pods", "default"),
        ("create", "leases.coordination.k8s.io", "default"),
        (
            "delete",
            "leases.coordination.k8s.io",
            release.namespace.as_str(),
        ),
        ("update", "services", "default"),
        ("update", "secrets", "default"),
        ("update", "certificates.ferrocert.dev", "default"),
        ("watch", "endpointslices.discovery.k8s.io", "default"),
        ("get", "services", "default"),
        ("create", "events", "default"),
        ("list", "nodes", "default"),
        ("delete", "issuers.ferrocert.dev", "default"),
        ("get", "certificates.cert-manager.io", "default"),
        ("patch", "gateways.gateway.networking.k8s.io", "default"),
        ("update", "ingresses.networking.k8s.io", "default"),
    ] {
        let out = kubectl(
            &[
                "auth", "can-i", verb, resource, "--as", &sa, "-n", namespace,
            ],
            None,
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "no",
            "{sa} may {verb} {resource} in {namespace}"
        );
    }

    // With both shims and the host-ownership check off, the rights they need are not granted.
    let no_shims = helm_ok(&[
        "template",
        "x",
        CHART,
        "--show-only",
        "templates/rbac.yaml",
        "--set",
        "controller.ingressShim=false",
        "--set",
        "controller.gatewayShim=false",
        "--set",
        "controller.http01HostOwnership=false",
    ]);
    for doc in documents(&no_shims) {
        for rule in doc["rules"].as_array().into_iter().flatten() {
            let has = |field: &str, v: &str| {
                rule[field]
                    .as_array()
                    .is_some_and(|a| a.contains(&json!(v)))
            };
            assert!(
                !(has("resources", "certificates") && has("verbs", "delete")),
                "without the shims no Certificate may be deleted: {rule}"
            );
            assert!(
                !has("resources", "gateways") && !has("apiGroups", "cert-manager.io"),
                "without the shims: {rule}"
            );
            assert!(
                !((has("resources", "ingresses") || has("resources", "httproutes"))
                    && has("verbs", "watch")),
                "without the shims and host ownership no Ingress or HTTPRoute watch: {rule}"
            );
        }
    }

    // And the rendered rules name no `*`.
    let rendered = helm_ok(&["template", "x", CHART, "--show-only", "templates/rbac.yaml"]);
    for doc in documents(&rendered) {
        for rule in doc["rules"].as_array().into_iter().flatten() {
            for field in ["apiGroups", "resources", "verbs"] {
                assert!(
                    !rule[field]
                        .as_array()
                        .expect("rule field is a list")
                        .contains(&json!("*")),
                    "`*` in {field} of {:?}",
                    kind_and_name(&doc)
                );
            }
        }
    }
}

/// A DNS webhook solver is callable only when the chart's `dns01Webhooks` names it: `create` on
/// exactly those solver names in that group, nothing by default, and a malformed group refused.
#[test]
fn dns01_webhooks_grant_create_on_the_named_solvers_only() {
    let webhook_rules = |args: &[&str]| -> Vec<Value> {
        let mut all = vec!["template", "x", CHART, "--show-only", "templates/rbac.yaml"];
        all.extend_from_slice(args);
        documents(&helm_ok(&all))
            .into_iter()
            .flat_map(|d| d["rules"].as_array().cloned().unwrap_or_default())
            .filter(|r| r["apiGroups"] == json!(["acme.example.test"]))
            .collect()
    };
    assert!(webhook_rules(&[]).is_empty(), "none by default");
    let rules = webhook_rules(&[
        "--set-json",
        r#"dns01Webhooks=[{"groupName":"acme.example.test","solverNames":["hetzner","ovh"]}]"#,
    ]);
    assert_eq!(
        rules,
        vec![
            json!({"apiGroups": ["acme.example.test"], "resources": ["hetzner", "ovh"],
                    "verbs": ["create"]})
        ]
    );
    let out = helm(&[
        "template",
        "x",
        CHART,
        "--set-json",
        r#"dns01Webhooks=[{"groupName":"Acme_Example","solverNames":["hetzner"]}]"#,
    ]);
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("dns01Webhooks"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The NetworkPolicy admits only the HTTP-01 and metrics ports (from the configured peers), and
/// with egress restricted, only DNS, HTTP, HTTPS and the API server's ports.
#[test]
fn network_policy_admits_only_the_two_ports() {
    let policy = |args: &[&str]| -> Value {
        let mut all = vec!["template", "x", CHART];
        all.extend_from_slice(args);
        documents(&helm_ok(&all))
            .into_iter()
            .find(|d| kind_and_name(d).0 == "NetworkPolicy")
            .expect("a NetworkPolicy")
    };
    let default = policy(&[]);
    assert_eq!(default["spec"]["policyTypes"], json!(["Ingress"]));
    assert_eq!(
        default["spec"]["ingress"],
        json!([
            {"ports": [{"port": "http01", "protocol": "TCP"}]},
            {"ports": [{"port": "metrics", "protocol": "TCP"}]}
        ])
    );
    assert_eq!(
        default["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
        json!("ferrocert")
    );
    let strict = policy(&[
        "--set",
        "networkPolicy.egress.enabled=true",
        "--set-json",
        r#"networkPolicy.http01.from=[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"traefik"}}}]"#,
    ]);
    assert_eq!(strict["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(
        strict["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        json!("traefik")
    );
    let ports: Vec<String> = strict["spec"]["egress"][0]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| format!("{}/{}", p["protocol"].as_str().unwrap(), p["port"]))
        .collect();
    assert_eq!(
        ports,
        [
            "UDP/53", "TCP/53", "TCP/80", "TCP/443", "TCP/443", "TCP/6443"
        ]
    );
}

use super::*;

const ISSUERS: &str = include_str!("../../../tests/data/policy/clusterissuer-shared.yaml");
const CERTS: &str = include_str!("../../../tests/data/policy/certificates.yaml");

fn check_all(ns_default: &str) -> Vec<(String, bool)> {
    let issuers = issuers(ISSUERS, "i.yaml").unwrap();
    let certs = certificates(CERTS, "c.yaml").unwrap();
    certs
        .iter()
        .map(|cert| {
            let ns = namespace_of(cert, ns_default, false).unwrap();
            let issuer = find_issuer(&issuers, &cert.spec.issuer_list()[0], &ns).unwrap();
            let result = policy::evaluate(
                policy::Issuer {
                    kind: issuer.kind,
                    name: &issuer.name,
                    policy: issuer.policy.as_ref(),
                    unrestricted_default: true,
                },
                Requester {
                    namespace: &ns,
                    namespace_labels: None,
                    cluster_resource_namespace: "ferrocert",
                },
                &cert.spec,
            );
            let line = verdict_line(
                &format!("{ns}/{}", cert.name_any()),
                issuer,
                &ns,
                &result,
                true,
                "ferrocert",
            );
            (line, result.is_ok())
        })
        .collect()
}

#[test]
fn allowed_and_refused_lines_name_the_issuer_and_rule() {
    let lines = check_all("default");
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].1);
    assert_eq!(
        lines[0].0,
        "Certificate team-a/web: allowed by ClusterIssuer shared: within its policy; the \
         certificate gets lifetime at most 720h (policy.maxDuration)"
    );
    assert!(!lines[1].1);
    assert!(
        lines[1].0.starts_with(
            "Certificate team-a/steal: refused by ClusterIssuer shared (rule \
             policy.allowedDNSNames): ClusterIssuer shared does not allow the DNS name \
             web.team-b.apps.example.test"
        ),
        "{}",
        lines[1].0
    );
}

#[test]
fn ca_grants_list_their_constraints() {
    let issuers = issuers(ISSUERS, "i.yaml").unwrap();
    let mut cert = certificates(CERTS, "c.yaml").unwrap().remove(0);
    cert.spec.is_ca = Some(true);
    let result = policy::evaluate(
        policy::Issuer {
            kind: IssuerKind::ClusterIssuer,
            name: "shared",
            policy: issuers[0].policy.as_ref(),
            unrestricted_default: true,
        },
        Requester {
            namespace: "team-a",
            namespace_labels: None,
            cluster_resource_namespace: "ferrocert",
        },
        &cert.spec,
    );
    let line = verdict_line(
        "team-a/web",
        &issuers[0],
        "team-a",
        &result,
        true,
        "ferrocert",
    );
    assert!(
        line.ends_with("; CA path length 0, permitted DNS domains team-a.svc"),
        "{line}"
    );
}

#[test]
fn issuers_without_policy_say_why_they_allow() {
    let issuer = IssuerView {
        kind: IssuerKind::ClusterIssuer,
        name: "open".into(),
        namespace: None,
        policy: None,
        acme: true,
    };
    let line = verdict_line(
        "a/w",
        &issuer,
        "a",
        &Ok(Grant::default()),
        true,
        "ferrocert",
    );
    assert_eq!(
        line,
        "Certificate a/w: allowed by ClusterIssuer open: it has no policy (open to every \
         namespace: --unrestricted-cluster-issuers=true)"
    );
    assert_eq!(not_checked_here(&issuer).len(), 1);
    let own = verdict_line(
        "ferrocert/w",
        &issuer,
        "ferrocert",
        &Ok(Grant::default()),
        false,
        "ferrocert",
    );
    assert!(own.contains("the controller's own"), "{own}");
}

#[test]
fn issuers_are_found_by_kind_name_and_namespace() {
    let text = "apiVersion: ferrocert.dev/v1alpha1\nkind: Issuer\nmetadata: {name: local, \
                namespace: shop}\nspec: {selfSigned: {}}\n";
    let file = issuers(text, "f").unwrap();
    let local = IssuerRef {
        name: "local".into(),
        kind: None,
        group: None,
    };
    assert!(find_issuer(&file, &local, "shop").is_some());
    assert!(find_issuer(&file, &local, "other").is_none());
    let cluster = IssuerRef {
        kind: Some(IssuerKind::ClusterIssuer),
        ..local
    };
    assert!(find_issuer(&file, &cluster, "shop").is_none());
}

#[test]
fn bad_inputs_are_errors_that_name_the_source() {
    let cm = "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: w}\nspec: {}\n";
    let err = certificates(cm, "c.yaml").unwrap_err();
    assert!(err.contains("ferrocert convert"), "{err}");
    let err = certificates("apiVersion: v1\nkind: ConfigMap\n", "c.yaml").unwrap_err();
    assert_eq!(err, "c.yaml: no ferrocert.dev Certificate in it");
    let err = issuers(CERTS, "i.yaml").unwrap_err();
    assert!(err.contains("no ferrocert.dev Issuer"), "{err}");
    assert!(certificates("a: [", "x").unwrap_err().contains("not YAML"));
    let cert = certificates(CERTS, "c").unwrap().remove(0);
    assert!(namespace_of(&cert, "other", true).is_err());
    assert_eq!(namespace_of(&cert, "other", false).unwrap(), "team-a");
}

#[test]
fn namespace_labels_parse() {
    let labels = parse_labels("tenant=yes, tier=gold").unwrap();
    assert_eq!(labels.get("tier").map(String::as_str), Some("gold"));
    assert!(parse_labels("oops").is_err());
    assert!(parse_labels("").unwrap().is_empty());
}

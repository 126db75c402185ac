use super::*;
use crate::api::{CaPolicy, NamespacePolicy, NamespaceSelector};

fn spec(names: &[&str]) -> CertificateSpec {
    CertificateSpec {
        secret_name: "tls".into(),
        dns_names: names.iter().map(|n| n.to_string()).collect(),
        ..serde_json::from_value(serde_json::json!({"secretName": "tls"})).unwrap()
    }
}

fn cluster<'a>(policy: Option<&'a IssuerPolicy>) -> Issuer<'a> {
    Issuer {
        kind: IssuerKind::ClusterIssuer,
        name: "shared",
        policy,
        unrestricted_default: true,
    }
}

fn from(namespace: &str) -> Requester<'_> {
    Requester {
        namespace,
        namespace_labels: None,
        cluster_resource_namespace: "ferrocert",
    }
}

fn tenant_policy() -> IssuerPolicy {
    IssuerPolicy {
        allowed_dns_names: Some(vec!["*.{namespace}.apps.example.test".into()]),
        ..Default::default()
    }
}

#[test]
fn a_namespace_pattern_allows_a_tenant_its_own_names_only() {
    let policy = tenant_policy();
    let ok = evaluate(
        cluster(Some(&policy)),
        from("team-a"),
        &spec(&["x.team-a.apps.example.test"]),
    );
    assert_eq!(ok, Ok(Grant::default()));
    let wildcard = evaluate(
        cluster(Some(&policy)),
        from("team-a"),
        &spec(&["*.team-a.apps.example.test"]),
    );
    assert!(wildcard.is_ok());
    let denied = evaluate(
        cluster(Some(&policy)),
        from("team-a"),
        &spec(&["x.team-b.apps.example.test"]),
    )
    .unwrap_err();
    assert_eq!(denied.rule, "policy.allowedDNSNames");
    assert!(
        denied.message.contains("x.team-b.apps.example.test"),
        "{}",
        denied.message
    );
    assert!(denied.message.contains("team-a"), "{}", denied.message);
    // Two labels where the pattern has one `*`.
    assert!(
        evaluate(
            cluster(Some(&policy)),
            from("team-a"),
            &spec(&["a.b.team-a.apps.example.test"])
        )
        .is_err()
    );
}

#[test]
fn the_common_name_is_judged_like_the_dns_names() {
    let policy = tenant_policy();
    let mut s = spec(&["x.team-a.apps.example.test"]);
    s.common_name = Some("bank.example.test".into());
    let denied = evaluate(cluster(Some(&policy)), from("team-a"), &s).unwrap_err();
    assert!(denied.message.contains("bank.example.test"));
}

#[test]
fn name_patterns_match_label_by_label() {
    assert!(name_matches("app.example.test", "n", "APP.example.test."));
    assert!(name_matches(
        "*.{namespace}.example.test",
        "n",
        "w.n.example.test"
    ));
    assert!(!name_matches(
        "*.{namespace}.example.test",
        "n",
        "n.example.test"
    ));
    assert!(!name_matches(
        "*.{namespace}.example.test",
        "n",
        "w.nn.example.test"
    ));
    assert!(!name_matches(
        "{namespace}.example.test",
        "n",
        "evil-n.example.test"
    ));
    assert!(!name_matches("example.test", "n", "example.test.evil"));
    assert!(!name_matches("*", "n", ""));
}

#[test]
fn namespaces_are_allowed_by_name_or_by_label_and_others_refused() {
    let labels: BTreeMap<String, String> = [("tenant".to_string(), "yes".to_string())].into();
    let policy = IssuerPolicy {
        namespaces: Some(NamespacePolicy {
            names: vec!["team-a".into()],
            selector: Some(NamespaceSelector {
                match_labels: labels.clone(),
            }),
        }),
        ..Default::default()
    };
    assert!(evaluate(cluster(Some(&policy)), from("team-a"), &spec(&["a.test"])).is_ok());
    assert!(needs_namespace_labels(Some(&policy), "team-b"));
    assert!(!needs_namespace_labels(Some(&policy), "team-a"));
    let labelled = Requester {
        namespace_labels: Some(&labels),
        ..from("team-b")
    };
    assert!(evaluate(cluster(Some(&policy)), labelled, &spec(&["a.test"])).is_ok());
    let denied =
        evaluate(cluster(Some(&policy)), from("outsider"), &spec(&["a.test"])).unwrap_err();
    assert_eq!(denied.rule, "policy.namespaces");
    assert!(denied.message.contains("outsider"));
    // The controller's own namespace is the administrator's.
    assert!(
        evaluate(
            cluster(Some(&policy)),
            from("ferrocert"),
            &spec(&["a.test"])
        )
        .is_ok()
    );
}

#[test]
fn a_cluster_issuer_without_policy_is_open_unless_the_flag_closes_it() {
    assert!(evaluate(cluster(None), from("anyone"), &spec(&["a.test"])).is_ok());
    let closed = Issuer {
        unrestricted_default: false,
        ..cluster(None)
    };
    let denied = evaluate(closed, from("anyone"), &spec(&["a.test"])).unwrap_err();
    assert!(
        denied
            .message
            .contains("--unrestricted-cluster-issuers=false")
    );
    assert!(evaluate(closed, from("ferrocert"), &spec(&["a.test"])).is_ok());
    // A namespaced Issuer without policy is its namespace's own: open.
    let issuer = Issuer {
        kind: IssuerKind::Issuer,
        ..closed
    };
    assert!(evaluate(issuer, from("anyone"), &spec(&["a.test"])).is_ok());
}

#[test]
fn ca_certificates_through_a_cluster_issuer_need_the_policy() {
    let mut ca = spec(&[]);
    ca.is_ca = Some(true);
    ca.common_name = Some("tenant ca".into());
    let denied = evaluate(cluster(None), from("attacker"), &ca).unwrap_err();
    assert_eq!(denied.rule, "policy.isCA.allowed");
    let open = IssuerPolicy::default();
    assert!(evaluate(cluster(Some(&open)), from("attacker"), &ca).is_err());
    // The administrator's namespace may bootstrap a CA.
    assert_eq!(
        evaluate(cluster(None), from("ferrocert"), &ca),
        Ok(Grant::default())
    );
    let allowing = IssuerPolicy {
        is_ca: Some(CaPolicy {
            allowed: true,
            permitted_dns_domains: vec!["{namespace}.svc".into()],
            permitted_ip_ranges: vec!["10.1.0.0/16".into()],
            ..Default::default()
        }),
        ..Default::default()
    };
    let grant = evaluate(cluster(Some(&allowing)), from("team-a"), &ca).unwrap();
    let constraints = grant.ca_constraints.unwrap();
    assert_eq!(constraints.path_length, 0);
    assert_eq!(
        constraints.permitted_dns_domains,
        vec!["team-a.svc".to_string()]
    );
    assert_eq!(constraints.permitted_ip_ranges.len(), 1);
    // A namespaced Issuer: allowed without a rule, unconstrained as before.
    let own = Issuer {
        kind: IssuerKind::Issuer,
        ..cluster(Some(&open))
    };
    assert_eq!(evaluate(own, from("team-a"), &ca), Ok(Grant::default()));
}

#[test]
fn ip_addresses_must_fall_in_the_allowed_ranges() {
    let policy = IssuerPolicy {
        allowed_ip_ranges: Some(vec!["10.0.0.0/8".into(), "2001:db8::/32".into()]),
        ..Default::default()
    };
    let mut s = spec(&[]);
    s.ip_addresses = vec!["10.2.3.4".into(), "2001:db8::1".into()];
    assert!(evaluate(cluster(Some(&policy)), from("a"), &s).is_ok());
    s.ip_addresses.push("192.0.2.1".into());
    let denied = evaluate(cluster(Some(&policy)), from("a"), &s).unwrap_err();
    assert_eq!(denied.rule, "policy.allowedIPRanges");
    assert!(denied.message.contains("192.0.2.1"));
    // An empty list allows no address at all.
    let none = IssuerPolicy {
        allowed_ip_ranges: Some(vec![]),
        ..Default::default()
    };
    let denied = evaluate(cluster(Some(&none)), from("a"), &s).unwrap_err();
    assert!(
        denied.message.contains("an empty list"),
        "{}",
        denied.message
    );
}

#[test]
fn usages_and_duration_are_bounded() {
    let policy = IssuerPolicy {
        allowed_usages: Some(vec![KeyUsage::ServerAuth, KeyUsage::DigitalSignature]),
        max_duration: Some("720h".into()),
        ..Default::default()
    };
    let mut s = spec(&["a.test"]);
    let grant = evaluate(cluster(Some(&policy)), from("a"), &s).unwrap();
    assert_eq!(grant.max_duration, Some(SignedDuration::from_hours(720)));
    s.usages = vec![KeyUsage::ServerAuth, KeyUsage::ClientAuth];
    let denied = evaluate(cluster(Some(&policy)), from("a"), &s).unwrap_err();
    assert_eq!(denied.rule, "policy.allowedUsages");
    assert!(denied.message.contains("client auth"), "{}", denied.message);
    s.usages = vec![KeyUsage::ServerAuth];
    s.duration = Some("2160h".into());
    let denied = evaluate(cluster(Some(&policy)), from("a"), &s).unwrap_err();
    assert_eq!(denied.rule, "policy.maxDuration");
    s.duration = Some("24h".into());
    assert!(evaluate(cluster(Some(&policy)), from("a"), &s).is_ok());
}

#[test]
fn long_pattern_lists_are_summarized_in_the_message() {
    let patterns: Vec<String> = (0..50).map(|i| format!("n{i}.test")).collect();
    let policy = IssuerPolicy {
        allowed_dns_names: Some(patterns),
        ..Default::default()
    };
    let denied = evaluate(cluster(Some(&policy)), from("a"), &spec(&["x.test"])).unwrap_err();
    assert!(denied.message.contains("and 45 more"), "{}", denied.message);
    assert!(denied.message.len() < 400);
}

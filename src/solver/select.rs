//! Which solver takes which identifier, with cert-manager's precedence: a solver whose
//! `selector.dnsNames` names the identifier beats one whose `dnsZones` contains it (the longest
//! zone wins), which beats one selected by `matchLabels` alone (the most labels win), which beats
//! an empty selector; ties go to the first in the list. A selector's parts all have to match.
//! HTTP-01 never takes a wildcard, and DNS-01 never takes an IP address.

use std::collections::BTreeMap;

use crate::api::AcmeSolver;

/// One identifier of an order as the solver sees it.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// The name without `*.` (or the IP address).
    pub name: &'a str,
    pub wildcard: bool,
    pub is_ip: bool,
}

/// The best solver for `target`, or `None` when no solver can take it.
pub fn select<'s>(
    solvers: &'s [AcmeSolver],
    target: Target<'_>,
    cert_labels: &BTreeMap<String, String>,
) -> Option<&'s AcmeSolver> {
    let mut best: Option<((bool, usize, usize), &AcmeSolver)> = None;
    for solver in solvers {
        if !can_solve(solver, target) {
            continue;
        }
        let Some(score) = score(solver, target, cert_labels) else {
            continue;
        };
        if best.as_ref().is_none_or(|(b, _)| score > *b) {
            best = Some((score, solver));
        }
    }
    best.map(|(_, s)| s)
}

fn can_solve(solver: &AcmeSolver, target: Target<'_>) -> bool {
    if solver.http01.is_some() {
        !target.wildcard
    } else if solver.dns01.is_some() {
        !target.is_ip
    } else {
        false
    }
}

/// `(named exactly, zone length, label count)`, or `None` when the selector excludes the target.
fn score(
    solver: &AcmeSolver,
    target: Target<'_>,
    cert_labels: &BTreeMap<String, String>,
) -> Option<(bool, usize, usize)> {
    let Some(sel) = &solver.selector else {
        return Some((false, 0, 0));
    };
    if !sel
        .match_labels
        .iter()
        .all(|(k, v)| cert_labels.get(k) == Some(v))
    {
        return None;
    }
    let full = if target.wildcard {
        format!("*.{}", target.name)
    } else {
        target.name.to_string()
    };
    let named = sel.dns_names.iter().any(|n| n.eq_ignore_ascii_case(&full));
    let zone = sel
        .dns_zones
        .iter()
        .map(|z| z.trim_end_matches('.'))
        .filter(|z| in_zone(target.name, z))
        .map(str::len)
        .max();
    let has_name_rules = !sel.dns_names.is_empty() || !sel.dns_zones.is_empty();
    if has_name_rules && !named && zone.is_none() {
        return None;
    }
    Some((named, zone.unwrap_or(0), sel.match_labels.len()))
}

fn in_zone(name: &str, zone: &str) -> bool {
    let (name, zone) = (name.to_ascii_lowercase(), zone.to_ascii_lowercase());
    name == zone || name.ends_with(&format!(".{zone}"))
}

/// Whether an order for these identifiers may leave behind something that deleting the
/// Certificate would not remove by itself, so the Certificate must hold the order finalizer
/// while the order is in flight: a DNS-01 record (an identifier whose solver is DNS-01, or that
/// no solver takes), or a rule added to an existing Ingress (`http01.ingress.name`, or
/// `edit_in_place` from the shim). Temporary HTTP-01 objects are owned by the Certificate, so
/// the garbage collector removes them without a finalizer, which spares the two writes of
/// setting and releasing it on every HTTP-01 issuance. Pure.
pub fn needs_order_finalizer(
    solvers: &[AcmeSolver],
    identifiers: &[crate::pki::Identifier],
    cert_labels: &BTreeMap<String, String>,
    edit_in_place: bool,
) -> bool {
    identifiers.iter().any(|id| {
        let (name, is_ip) = match id {
            crate::pki::Identifier::Dns(n) => (n.clone(), false),
            crate::pki::Identifier::Ip(ip) => (ip.to_string(), true),
        };
        let wildcard = name.starts_with("*.");
        let target = Target {
            name: name.trim_start_matches("*."),
            wildcard,
            is_ip,
        };
        match select(solvers, target, cert_labels) {
            None => true,
            Some(s) if s.dns01.is_some() => true,
            Some(s) => {
                edit_in_place
                    || s.http01
                        .as_ref()
                        .and_then(|h| h.ingress.as_ref())
                        .is_some_and(|i| i.name.is_some())
            }
        }
    })
}

/// The HTTP-01 solver as a Certificate uses it (pure). `ingress_class`: its temporary Ingress
/// takes that class instead of the solver's. `edit_in_place`: the challenge rule goes into that
/// existing Ingress instead (`http01.ingress.name`). Both come from the ingress-shim (see
/// [`crate::shim::solver_for`]). A solver without an Ingress (an HTTPRoute) is unchanged.
pub fn with_ingress_overrides(
    solver: &crate::api::Http01Solver,
    ingress_class: Option<&str>,
    edit_in_place: Option<&str>,
) -> crate::api::Http01Solver {
    let mut solver = solver.clone();
    if let Some(ingress) = solver.ingress.as_mut() {
        if let Some(class) = ingress_class {
            ingress.ingress_class_name = Some(class.to_string());
            ingress.class = None;
        }
        if let Some(name) = edit_in_place {
            ingress.name = Some(name.to_string());
        }
    }
    solver
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::SolverSelector;
    use crate::api::issuer::{Dns01Solver, Http01Ingress, Http01Solver, Rfc2136Provider};

    fn http(sel: Option<SolverSelector>) -> AcmeSolver {
        AcmeSolver {
            selector: sel,
            http01: Some(Http01Solver {
                ingress: Some(Http01Ingress::default()),
                gateway_http_route: None,
                self_check: None,
            }),
            dns01: None,
        }
    }
    fn dns(sel: Option<SolverSelector>, ns: &str) -> AcmeSolver {
        AcmeSolver {
            selector: sel,
            http01: None,
            dns01: Some(Dns01Solver {
                cname_strategy: None,
                rfc2136: Some(Rfc2136Provider {
                    nameserver: ns.into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }
    }
    fn zones(z: &[&str]) -> Option<SolverSelector> {
        Some(SolverSelector {
            dns_zones: z.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
    }
    fn names(n: &[&str]) -> Option<SolverSelector> {
        Some(SolverSelector {
            dns_names: n.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
    }
    fn labels(l: &[(&str, &str)]) -> Option<SolverSelector> {
        Some(SolverSelector {
            match_labels: l
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        })
    }
    fn dns_target(name: &str) -> Target<'_> {
        Target {
            name,
            wildcard: false,
            is_ip: false,
        }
    }
    fn which(solvers: &[AcmeSolver], t: Target<'_>, l: &BTreeMap<String, String>) -> Option<usize> {
        select(solvers, t, l).map(|s| solvers.iter().position(|x| std::ptr::eq(x, s)).unwrap())
    }

    #[test]
    fn dns_names_beat_zones_beat_labels_beat_empty() {
        let l = BTreeMap::from([("team".to_string(), "a".to_string())]);
        let solvers = vec![
            http(None),
            http(labels(&[("team", "a")])),
            dns(zones(&["example.test"]), "ns1"),
            dns(names(&["www.example.test"]), "ns2"),
        ];
        assert_eq!(which(&solvers, dns_target("www.example.test"), &l), Some(3));
        assert_eq!(which(&solvers, dns_target("api.example.test"), &l), Some(2));
        assert_eq!(which(&solvers, dns_target("other.test"), &l), Some(1));
        assert_eq!(
            which(&solvers, dns_target("other.test"), &BTreeMap::new()),
            Some(0)
        );
    }

    #[test]
    fn longest_zone_wins_and_ties_go_to_the_first() {
        let solvers = vec![
            dns(zones(&["example.test"]), "a"),
            dns(zones(&["sub.example.test"]), "b"),
            dns(zones(&["sub.example.test"]), "c"),
        ];
        assert_eq!(
            which(&solvers, dns_target("x.sub.example.test"), &BTreeMap::new()),
            Some(1)
        );
        assert_eq!(
            which(&solvers, dns_target("x.example.test"), &BTreeMap::new()),
            Some(0)
        );
        assert_eq!(
            which(&solvers, dns_target("example.test"), &BTreeMap::new()),
            Some(0)
        );
        assert_eq!(
            which(&solvers, dns_target("notexample.test"), &BTreeMap::new()),
            None
        );
    }

    #[test]
    fn more_labels_win() {
        let l = BTreeMap::from([
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "2".to_string()),
        ]);
        let solvers = vec![
            http(labels(&[("a", "1")])),
            http(labels(&[("a", "1"), ("b", "2")])),
        ];
        assert_eq!(which(&solvers, dns_target("x.test"), &l), Some(1));
    }

    #[test]
    fn labels_and_zones_must_both_match() {
        let sel = Some(SolverSelector {
            dns_zones: vec!["example.test".into()],
            match_labels: BTreeMap::from([("env".to_string(), "prod".to_string())]),
            ..Default::default()
        });
        let solvers = vec![dns(sel, "a")];
        assert_eq!(
            which(&solvers, dns_target("www.example.test"), &BTreeMap::new()),
            None
        );
    }

    #[test]
    fn http01_never_takes_wildcards_and_dns01_never_takes_ips() {
        let solvers = vec![http(None)];
        let wild = Target {
            name: "example.test",
            wildcard: true,
            is_ip: false,
        };
        assert_eq!(which(&solvers, wild, &BTreeMap::new()), None);
        let solvers = vec![dns(None, "a"), http(None)];
        assert_eq!(which(&solvers, wild, &BTreeMap::new()), Some(0));
        let ip = Target {
            name: "192.0.2.1",
            wildcard: false,
            is_ip: true,
        };
        assert_eq!(which(&solvers, ip, &BTreeMap::new()), Some(1));
        let exact_wild = vec![http(None), dns(names(&["*.example.test"]), "a")];
        assert_eq!(which(&exact_wild, wild, &BTreeMap::new()), Some(1));
    }

    #[test]
    fn a_certificate_ingress_class_overrides_the_solvers() {
        use crate::api::Http01Solver;
        use crate::api::issuer::Http01Ingress;
        let solver = Http01Solver {
            ingress: Some(Http01Ingress {
                class: Some("legacy".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let s = with_ingress_overrides(&solver, Some("nginx"), None);
        let ing = s.ingress.unwrap();
        assert_eq!(ing.ingress_class_name.as_deref(), Some("nginx"));
        assert!(ing.class.is_none() && ing.name.is_none());
        assert_eq!(with_ingress_overrides(&solver, None, None), solver);
        let s = with_ingress_overrides(&solver, None, Some("web"));
        assert_eq!(s.ingress.unwrap().name.as_deref(), Some("web"));
        let route_only = Http01Solver::default();
        assert_eq!(
            with_ingress_overrides(&route_only, Some("nginx"), Some("web")),
            route_only
        );
    }

    #[test]
    fn only_orders_that_may_leave_something_behind_need_the_finalizer() {
        use crate::pki::Identifier;
        let solvers: Vec<AcmeSolver> = serde_json::from_value(serde_json::json!([
            {"http01": {"ingress": {}}},
            {"dns01": {"rfc2136": {"nameserver": "ns"}}, "selector": {"dnsZones": ["dns.example"]}}
        ]))
        .unwrap();
        let none = BTreeMap::new();
        let http = [
            Identifier::dns("a.example"),
            Identifier::Ip("192.0.2.1".parse().unwrap()),
        ];
        assert!(!needs_order_finalizer(&solvers, &http, &none, false));
        assert!(
            needs_order_finalizer(&solvers, &http, &none, true),
            "edit in place"
        );
        assert!(needs_order_finalizer(
            &solvers,
            &[Identifier::dns("x.dns.example")],
            &none,
            false
        ));
        assert!(needs_order_finalizer(
            &solvers,
            &[Identifier::dns("*.a.example")],
            &none,
            false
        ));
        let in_place: Vec<AcmeSolver> =
            serde_json::from_value(serde_json::json!([{"http01": {"ingress": {"name": "web"}}}]))
                .unwrap();
        assert!(needs_order_finalizer(
            &in_place,
            &[Identifier::dns("a.example")],
            &none,
            false
        ));
        assert!(
            needs_order_finalizer(&[], &[Identifier::dns("a.example")], &none, false),
            "no solver"
        );
    }
}

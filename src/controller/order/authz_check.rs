//! Checking an order's authorizations against the names asked for, before anything is presented.
//!
//! The CA decides which authorizations an order carries; each one becomes a solver object (an
//! Ingress, Service and EndpointSlice) or a TXT record. A CA that answers an order for one name
//! with authorizations for 2,000 others (or for names of another tenant) must not make us create
//! them. RFC 8555 §7.1.3: an order has one authorization per identifier it asked for, so the set
//! must be exactly the set requested; anything else is the CA misbehaving, and the attempt fails
//! (with backoff) before any solver object or record exists.
//!
//! A wildcard `*.example.com` is authorized by an authorization whose identifier is
//! `example.com` with `wildcard: true` (RFC 8555 §7.1.4); it is compared here as `*.example.com`.

use std::collections::BTreeSet;

use crate::pki::Identifier;

/// Whether an order's `count` authorizations can be for the `requested` identifiers: never more
/// (nor fewer) than one per identifier. Checked before any authorization is fetched, so a CA
/// listing thousands costs no request. Pure.
pub(super) fn count_matches(requested: usize, count: usize) -> Result<(), String> {
    if count == requested {
        return Ok(());
    }
    Err(format!(
        "the CA's order lists {count} authorization(s) for the {requested} name(s) asked; \
         nothing was presented"
    ))
}

/// The name an authorization is for, as [`crate::pki::identifiers`] spells it: a wildcard DNS
/// identifier as `*.name`. `Err` for an identifier ferrocert never asks for (another type, or a
/// wildcard IP). Pure.
pub(super) fn authorized_name(
    identifier: &instant_acme::Identifier,
    wildcard: bool,
) -> Result<Identifier, String> {
    match identifier {
        instant_acme::Identifier::Dns(name) if wildcard => {
            Ok(Identifier::dns(&format!("*.{name}")))
        }
        instant_acme::Identifier::Dns(name) => Ok(Identifier::dns(name)),
        instant_acme::Identifier::Ip(ip) if !wildcard => Ok(Identifier::Ip(*ip)),
        instant_acme::Identifier::Ip(ip) => Err(format!(
            "the CA's order has a wildcard authorization for IP address {ip}"
        )),
        other => Err(format!(
            "the CA's order has an authorization for an identifier of a type never asked ({})",
            crate::controller::truncate(&format!("{other:?}"), 80)
        )),
    }
}

/// Whether the authorizations' names (`found`, one per authorization) are exactly the `requested`
/// identifiers: none missing, none extra, none twice. `Err` says which differ (a few, then a
/// count). Pure.
pub(super) fn names_match(requested: &[Identifier], found: &[Identifier]) -> Result<(), String> {
    let wanted: BTreeSet<&Identifier> = requested.iter().collect();
    let mut seen = BTreeSet::new();
    let mut twice = Vec::new();
    for name in found {
        if !seen.insert(name) {
            twice.push(name.clone());
        }
    }
    let extra: Vec<Identifier> = seen
        .iter()
        .filter(|n| !wanted.contains(*n))
        .map(|n| (*n).clone())
        .collect();
    let missing: Vec<Identifier> = wanted
        .iter()
        .filter(|n| !seen.contains(*n))
        .map(|n| (*n).clone())
        .collect();
    let mut problems = Vec::new();
    if !extra.is_empty() {
        problems.push(format!(
            "for names never asked: {}",
            crate::pki::issued::listed(&extra.iter().collect::<Vec<_>>())
        ));
    }
    if !missing.is_empty() {
        problems.push(format!(
            "none for {}",
            crate::pki::issued::listed(&missing.iter().collect::<Vec<_>>())
        ));
    }
    if !twice.is_empty() {
        problems.push(format!(
            "more than one for {}",
            crate::pki::issued::listed(&twice.iter().collect::<Vec<_>>())
        ));
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(format!(
        "the CA's order does not match the names asked (authorizations {}); nothing was presented",
        problems.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dns(name: &str) -> Identifier {
        Identifier::dns(name)
    }

    fn acme_dns(name: &str) -> instant_acme::Identifier {
        instant_acme::Identifier::Dns(name.into())
    }

    #[test]
    fn the_count_must_be_one_authorization_per_name_asked() {
        assert_eq!(count_matches(2, 2), Ok(()));
        let many = count_matches(1, 2000).unwrap_err();
        assert!(many.contains("2000 authorization(s)"), "{many}");
        assert!(many.contains("1 name(s)"), "{many}");
        assert!(count_matches(2, 1).is_err(), "fewer is not the order asked");
        assert!(count_matches(1, 0).is_err());
    }

    #[test]
    fn a_wildcard_authorization_is_for_the_star_name() {
        assert_eq!(
            authorized_name(&acme_dns("example.com"), true),
            Ok(dns("*.example.com"))
        );
        assert_eq!(
            authorized_name(&acme_dns("Example.COM"), false),
            Ok(dns("example.com")),
            "DNS names compare lowercased, as requested ones are"
        );
        let ip: std::net::IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            authorized_name(&instant_acme::Identifier::Ip(ip), false),
            Ok(Identifier::Ip(ip))
        );
        assert!(authorized_name(&instant_acme::Identifier::Ip(ip), true).is_err());
        let other = instant_acme::Identifier::PermanentIdentifier("x".into());
        assert!(authorized_name(&other, false).is_err());
    }

    #[test]
    fn a_wildcard_and_its_apex_are_two_authorizations_for_one_bare_name() {
        // `*.example.com` and `example.com`: both authorizations say `example.com`, one with
        // `wildcard: true`.
        let requested = [dns("*.example.com"), dns("example.com")];
        let found = [
            authorized_name(&acme_dns("example.com"), false).unwrap(),
            authorized_name(&acme_dns("example.com"), true).unwrap(),
        ];
        assert_eq!(names_match(&requested, &found), Ok(()));
        // Two non-wildcard authorizations for the apex are not the wildcard's.
        let twice = [dns("example.com"), dns("example.com")];
        let message = names_match(&requested, &twice).unwrap_err();
        assert!(message.contains("none for *.example.com"), "{message}");
        assert!(
            message.contains("more than one for example.com"),
            "{message}"
        );
    }

    #[test]
    fn names_never_asked_fail_and_are_listed_within_bounds() {
        let requested = [dns("a.example")];
        let found: Vec<Identifier> = std::iter::once(dns("a.example"))
            .chain((0..2000).map(|i| dns(&format!("victim{i:04}.other.example"))))
            .collect();
        let message = names_match(&requested, &found).unwrap_err();
        assert!(
            message.contains("for names never asked: victim0000.other.example"),
            "{message}"
        );
        assert!(message.contains("and 1995 more"), "{message}");
        assert!(message.len() < 400, "{} bytes: {message}", message.len());
        assert!(!message.contains("victim0005"), "{message}");
    }

    #[test]
    fn the_same_count_for_other_names_fails() {
        let requested = [dns("a.example"), dns("b.example")];
        let message = names_match(&requested, &[dns("a.example"), dns("c.example")]).unwrap_err();
        assert!(message.contains("never asked: c.example"), "{message}");
        assert!(message.contains("none for b.example"), "{message}");
        assert_eq!(
            names_match(&requested, &[dns("b.example"), dns("a.example")]),
            Ok(()),
            "order does not matter"
        );
    }
}

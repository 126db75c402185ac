//! Whether a certificate a CA hands back is the one asked for, before it replaces a working one.
//!
//! An ACME CA (a tenant's own, through an Issuer it controls) decides what it signs. Its answer
//! overwrites the Secret a workload serves, so a certificate for other names, or one not valid
//! now, must be a failure (with backoff) and never a success: the Secret keeps what it had.
//! The key is checked by [`super::key_matches_leaf`], the chain's links by
//! [`super::chain_links`].

use jiff::{SignedDuration, Timestamp};

use super::{Identifier, IssuedChain};

/// How far in the future `notBefore` may be: CAs backdate, but clocks drift a little either way.
pub const CLOCK_SKEW: SignedDuration = SignedDuration::from_mins(5);

/// The shortest validity left that is worth storing: a certificate expiring sooner would be
/// renewed at once, a loop against the CA. One minute, since CAs offer profiles of ten minutes
/// (Pebble's `tenminutes`) and a few hours.
pub const MIN_LIFETIME_LEFT: SignedDuration = SignedDuration::from_mins(1);

/// At most this many names are listed in a message; the rest are counted.
const LISTED: usize = 5;

/// Whether the issued `chain` is for exactly the `requested` identifiers (sorted, deduplicated,
/// as [`super::identifiers`] returns them), valid `now` for at least [`MIN_LIFETIME_LEFT`], and
/// its certificates link. `Err` says what is wrong, within bounds (names a CA chose are listed
/// a few at a time, each truncated). Pure.
pub fn check_issued(
    requested: &[Identifier],
    chain: &IssuedChain,
    now: Timestamp,
) -> Result<(), String> {
    let leaf = &chain.leaf;
    let issued = leaf.identifiers();
    let extra: Vec<&Identifier> = issued.iter().filter(|i| !requested.contains(i)).collect();
    let missing: Vec<&Identifier> = requested.iter().filter(|i| !issued.contains(i)).collect();
    if !extra.is_empty() || !missing.is_empty() {
        let mut parts = Vec::new();
        if !extra.is_empty() {
            parts.push(format!("names never asked: {}", listed(&extra)));
        }
        if !missing.is_empty() {
            parts.push(format!("names missing: {}", listed(&missing)));
        }
        return Err(format!(
            "the CA's certificate is not for the names asked ({})",
            parts.join("; ")
        ));
    }
    if leaf.not_after <= leaf.not_before {
        return Err(format!(
            "the CA's certificate ends ({}) before it begins ({})",
            leaf.not_after, leaf.not_before
        ));
    }
    if leaf.not_before > now + CLOCK_SKEW {
        return Err(format!(
            "the CA's certificate is not valid before {}, later than now ({now})",
            leaf.not_before
        ));
    }
    if leaf.not_after < now + MIN_LIFETIME_LEFT {
        return Err(format!(
            "the CA's certificate expires at {}, less than {} minute(s) from now",
            leaf.not_after,
            MIN_LIFETIME_LEFT.as_mins()
        ));
    }
    super::chain_links(chain).map_err(|why| format!("the CA's chain does not link: {why}"))
}

/// `a, b, c` or `a, b, c, d, e and 12 more`, each name cut at 80 characters: names a CA or a
/// tenant chose, in a message of bounded size.
pub(crate) fn listed(names: &[&Identifier]) -> String {
    let shown: Vec<String> = names
        .iter()
        .take(LISTED)
        .map(|n| {
            let text = n.to_string();
            match text.char_indices().nth(80) {
                Some((cut, _)) => format!("{}…", &text[..cut]),
                None => text,
            }
        })
        .collect();
    match names.len().saturating_sub(LISTED) {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed leaf for `names` valid from `from` to `to` (seconds from now), parsed.
    fn chain_for(names: &[&str], from: i64, to: i64) -> IssuedChain {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let at = |offset: i64| {
            rcgen::date_time_ymd(1970, 1, 1)
                + std::time::Duration::from_secs(
                    u64::try_from(Timestamp::now().as_second() + offset).unwrap(),
                )
        };
        params.not_before = at(from);
        params.not_after = at(to);
        let cert = params.self_signed(&key).unwrap();
        super::super::parse_chain(&cert.pem()).unwrap()
    }

    fn ids(names: &[&str]) -> Vec<Identifier> {
        let mut ids: Vec<Identifier> = names.iter().map(|n| Identifier::dns(n)).collect();
        ids.sort();
        ids
    }

    #[test]
    fn the_certificate_asked_for_passes() {
        let chain = chain_for(&["a.example", "b.example"], -60, 6 * 86_400);
        let asked = ids(&["b.example", "a.example"]);
        assert_eq!(check_issued(&asked, &chain, Timestamp::now()), Ok(()));
    }

    #[test]
    fn names_never_asked_or_missing_fail_and_say_which() {
        let chain = chain_for(&["a.example", "victim.other.example"], -60, 86_400);
        let why = check_issued(&ids(&["a.example"]), &chain, Timestamp::now()).unwrap_err();
        assert!(
            why.contains("names never asked: victim.other.example"),
            "{why}"
        );
        let why =
            check_issued(&ids(&["a.example", "c.example"]), &chain, Timestamp::now()).unwrap_err();
        assert!(why.contains("names missing: c.example"), "{why}");
    }

    #[test]
    fn many_foreign_names_are_listed_within_bounds() {
        let names: Vec<String> = (0..200).map(|i| format!("v{i:03}.other.example")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let chain = chain_for(&refs, -60, 86_400);
        let why = check_issued(&ids(&["a.example"]), &chain, Timestamp::now()).unwrap_err();
        assert!(why.contains("and 195 more"), "{why}");
        assert!(why.len() < 400, "{} bytes", why.len());
    }

    #[test]
    fn a_certificate_not_valid_now_or_about_to_expire_fails() {
        let asked = ids(&["a.example"]);
        let now = Timestamp::now();
        let future = chain_for(&["a.example"], 3_600, 86_400);
        assert!(
            check_issued(&asked, &future, now)
                .unwrap_err()
                .contains("not valid before")
        );
        let expiring = chain_for(&["a.example"], -3_600, 30);
        assert!(
            check_issued(&asked, &expiring, now)
                .unwrap_err()
                .contains("expires at")
        );
        let expired = chain_for(&["a.example"], -7_200, -3_600);
        assert!(check_issued(&asked, &expired, now).is_err());
        // A little clock skew is fine.
        let skewed = chain_for(&["a.example"], 120, 86_400);
        assert_eq!(check_issued(&asked, &skewed, now), Ok(()));
    }
}

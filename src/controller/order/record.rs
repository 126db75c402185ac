//! What of an order's progress is worth a status write. Status is the record a restarted
//! controller resumes from and what clean-up reads, so everything it needs is written before the
//! step that depends on it: the order URL, each challenge's token and key authorization, each
//! DNS record's name and value, the propagation checks counted. The CA's own progress
//! (presented → processing → valid, the order pending → ready → processing) is not: the CA
//! reports it again on the next fetch, and writing it cost a status write (a full Certificate
//! write fanned out to every watcher) per step. Messages a person should see are written when
//! they say something new.

use crate::api::{ChallengeState, OrderAuthorization, OrderStatus};

/// Whether `new` differs from what status holds (`old`) in anything but the CA's progress. Pure.
pub(super) fn worth_recording(old: Option<&OrderStatus>, new: &OrderStatus) -> bool {
    let Some(old) = old else {
        return true;
    };
    if old.url != new.url
        || old.error != new.error
        || old.profile != new.profile
        || old.replaces != new.replaces
        || old.authorizations.len() != new.authorizations.len()
    {
        return true;
    }
    old.authorizations
        .iter()
        .zip(&new.authorizations)
        .any(|(o, n)| authorization_news(o, n))
}

/// Whether `new` says something about one authorization that `old` does not. Pure.
fn authorization_news(old: &OrderAuthorization, new: &OrderAuthorization) -> bool {
    let progress = |s: Option<ChallengeState>| {
        matches!(
            s,
            Some(ChallengeState::Presented | ChallengeState::Processing | ChallengeState::Valid)
        )
    };
    let record_changed = old.url != new.url
        || old.identifier != new.identifier
        || old.wildcard != new.wildcard
        || old.challenge_type != new.challenge_type
        || old.challenge_url != new.challenge_url
        || old.token != new.token
        || old.key_authorization != new.key_authorization
        || old.record_name != new.record_name
        || old.record_value != new.record_value
        || old.propagation_checks != new.propagation_checks;
    let state_news = old.state != new.state && !(progress(old.state) && progress(new.state));
    // A message cleared is not news (it goes with the next write); a new one is.
    let message_news = new.error.is_some() && new.error != old.error;
    record_changed || state_news || message_news
}

/// Whether every challenge still open in `recorded` is the CA's to validate: told to the CA in
/// this process (`told`, by token) or recorded as processing. Polling the order is then all there
/// is to do, without fetching each authorization. Pure.
pub(super) fn only_the_ca_is_working(recorded: &OrderStatus, told: impl Fn(&str) -> bool) -> bool {
    let open: Vec<&OrderAuthorization> = recorded
        .authorizations
        .iter()
        .filter(|a| a.state != Some(ChallengeState::Valid))
        .collect();
    !open.is_empty() && open.iter().all(|a| !ours_to_do(a, &told))
}

/// Whether a round that saw `current` left a challenge for us to present or tell: then the next
/// round may use the order handle's authorizations as they are (only we move those on), else the
/// handle is refreshed first so the CA's progress shows. Pure.
pub(super) fn work_left_for_us(
    current: &[OrderAuthorization],
    told: impl Fn(&str) -> bool,
) -> bool {
    current.iter().any(|a| ours_to_do(a, &told))
}

/// Whether a recorded challenge waits on us: not yet presented, or presented and not told (in this
/// process; after a restart a presented one is checked and told again). Pure.
fn ours_to_do(a: &OrderAuthorization, told: &impl Fn(&str) -> bool) -> bool {
    match a.state {
        None | Some(ChallengeState::Pending) => true,
        Some(ChallengeState::Presented) => !a.token.as_deref().is_some_and(told),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ChallengeKind;

    fn presented(token: &str) -> OrderAuthorization {
        OrderAuthorization {
            identifier: "a.example.test".into(),
            url: Some("https://ca.test/authz/1".into()),
            challenge_type: Some(ChallengeKind::Http01),
            challenge_url: Some("https://ca.test/chall/1".into()),
            token: Some(token.into()),
            key_authorization: Some(format!("{token}.thumb")),
            state: Some(ChallengeState::Presented),
            ..OrderAuthorization::default()
        }
    }

    fn order(authorizations: Vec<OrderAuthorization>) -> OrderStatus {
        OrderStatus {
            url: "https://ca.test/order/1".into(),
            authorizations,
            ..OrderStatus::default()
        }
    }

    #[test]
    fn a_new_order_and_new_tokens_are_recorded() {
        let new = order(vec![presented("t1")]);
        assert!(worth_recording(None, &new), "nothing recorded yet");
        assert!(
            worth_recording(Some(&order(vec![])), &new),
            "a token appears"
        );
        assert!(
            worth_recording(Some(&order(vec![presented("t0")])), &new),
            "another token"
        );
        let mut other_url = new.clone();
        other_url.url = "https://ca.test/order/2".into();
        assert!(worth_recording(Some(&new), &other_url));
    }

    #[test]
    fn the_cas_progress_alone_is_not_written() {
        let old = order(vec![presented("t1")]);
        let mut new = old.clone();
        new.state = Some(crate::api::OrderState::Ready);
        new.authorizations[0].state = Some(ChallengeState::Processing);
        assert!(!worth_recording(Some(&old), &new), "told: processing");
        new.authorizations[0].state = Some(ChallengeState::Valid);
        assert!(!worth_recording(Some(&old), &new), "valid");
        assert!(!worth_recording(Some(&old), &old), "nothing changed");
    }

    #[test]
    fn failures_records_and_new_messages_are_written() {
        let old = order(vec![presented("t1")]);
        let mut invalid = old.clone();
        invalid.authorizations[0].state = Some(ChallengeState::Invalid);
        assert!(worth_recording(Some(&old), &invalid));
        let mut record = old.clone();
        record.authorizations[0].record_name = Some("_acme-challenge.a.example.test".into());
        assert!(
            worth_recording(Some(&old), &record),
            "write-ahead of a DNS record"
        );
        let mut checks = old.clone();
        checks.authorizations[0].propagation_checks = Some(3);
        assert!(worth_recording(Some(&old), &checks));
        let mut message = old.clone();
        message.authorizations[0].error = Some("self-check: 404".into());
        assert!(worth_recording(Some(&old), &message), "a new message");
        assert!(
            !worth_recording(Some(&message), &old),
            "a message cleared waits for the next write"
        );
        let mut failed = old.clone();
        failed.error = Some("the order failed".into());
        assert!(worth_recording(Some(&old), &failed));
    }

    #[test]
    fn polling_only_when_every_open_challenge_was_told_here() {
        let told = |t: &str| t == "t1" || t == "t2";
        assert!(only_the_ca_is_working(
            &order(vec![presented("t1"), presented("t2")]),
            told
        ));
        assert!(
            !only_the_ca_is_working(&order(vec![presented("t1"), presented("t3")]), told),
            "t3 still to tell"
        );
        let mut valid = presented("t9");
        valid.state = Some(ChallengeState::Valid);
        assert!(
            only_the_ca_is_working(&order(vec![presented("t1"), valid.clone()]), told),
            "a valid authorization needs nothing"
        );
        assert!(
            !only_the_ca_is_working(&order(vec![valid]), told),
            "nothing open: the order is not waiting on a challenge"
        );
        assert!(!only_the_ca_is_working(&order(vec![]), told));
        let mut pending = presented("t1");
        pending.state = Some(ChallengeState::Pending);
        assert!(!only_the_ca_is_working(&order(vec![pending]), told));
        let mut processing = presented("t7");
        processing.state = Some(ChallengeState::Processing);
        assert!(
            only_the_ca_is_working(&order(vec![processing, presented("t1")]), told),
            "processing: told by an earlier round or process"
        );
    }

    #[test]
    fn only_a_round_that_left_work_for_us_reuses_the_handle_as_it_is() {
        let told = |t: &str| t == "t1";
        assert!(work_left_for_us(&[presented("t2")], told), "t2 to tell");
        assert!(
            !work_left_for_us(&[presented("t1")], told),
            "told: the CA works"
        );
        let mut processing = presented("t3");
        processing.state = Some(ChallengeState::Processing);
        let mut valid = presented("t4");
        valid.state = Some(ChallengeState::Valid);
        // The wildcard-and-apex order that stalled on stale authorizations.
        assert!(!work_left_for_us(&[processing, valid], told));
        let mut pending = presented("t5");
        pending.state = Some(ChallengeState::Pending);
        assert!(work_left_for_us(&[pending], told), "to present");
    }
}

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

/// Whether every challenge still open in `recorded` was told to the CA in this process (`told`,
/// by token): the CA is validating, so polling the order is all there is to do, without fetching
/// each authorization. Pure.
pub(super) fn only_the_ca_is_working(recorded: &OrderStatus, told: impl Fn(&str) -> bool) -> bool {
    let open: Vec<&OrderAuthorization> = recorded
        .authorizations
        .iter()
        .filter(|a| a.state != Some(ChallengeState::Valid))
        .collect();
    !open.is_empty()
        && open.iter().all(|a| {
            a.state == Some(ChallengeState::Presented) && a.token.as_deref().is_some_and(&told)
        })
}

/// Whether a kept order handle must be refreshed from the CA before this step. Not while it was
/// pending with a challenge still to present or tell: the step fetches the authorizations anyway,
/// and they show whatever changed (an order can only become ready after we tell the CA, and
/// an expired or invalid one has its authorizations say so). Pure.
pub(super) fn refresh_needed(
    kept: instant_acme::OrderStatus,
    recorded: &OrderStatus,
    told: impl Fn(&str) -> bool,
) -> bool {
    kept != instant_acme::OrderStatus::Pending || only_the_ca_is_working(recorded, told)
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
    }

    #[test]
    fn a_pending_order_with_work_left_is_not_refetched_before_its_authorizations() {
        use instant_acme::OrderStatus as Ca;
        let told = |t: &str| t == "t1";
        let to_tell = order(vec![presented("t2")]);
        assert!(!refresh_needed(Ca::Pending, &to_tell, told));
        assert!(
            refresh_needed(Ca::Pending, &order(vec![presented("t1")]), told),
            "only the CA works: polling is the step"
        );
        assert!(refresh_needed(Ca::Ready, &to_tell, told));
        assert!(refresh_needed(Ca::Processing, &to_tell, told));
    }
}

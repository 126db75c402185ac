//! `metav1.Condition` helpers: set a condition keeping `lastTransitionTime` when the status does not
//! change, and look conditions up. Pure functions over the condition list.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

pub const READY: &str = "Ready";
pub const ISSUING: &str = "Issuing";

/// Finds a condition by type.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of this type has status `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
}

/// Sets (inserts or replaces) a condition. `lastTransitionTime` moves only when the status changes,
/// as the Kubernetes API conventions require.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    observed_generation: Option<i64>,
    now: Time,
) {
    let status = if status { "True" } else { "False" }.to_string();
    let fresh = Condition {
        type_: type_.to_string(),
        status,
        reason: reason.to_string(),
        message: message.to_string(),
        observed_generation,
        last_transition_time: now,
    };
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) if existing.status == fresh.status => {
            let since = existing.last_transition_time.clone();
            *existing = Condition {
                last_transition_time: since,
                ..fresh
            };
        }
        Some(existing) => *existing = fresh,
        None => conditions.push(fresh),
    }
}

/// Removes a condition by type.
pub fn remove(conditions: &mut Vec<Condition>, type_: &str) {
    conditions.retain(|c| c.type_ != type_);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let mut list = Vec::new();
        set(
            &mut list,
            READY,
            false,
            "Pending",
            "waiting",
            Some(1),
            at(10),
        );
        set(
            &mut list,
            READY,
            false,
            "Pending",
            "still waiting",
            Some(2),
            at(20),
        );
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].last_transition_time, at(10));
        assert_eq!(list[0].message, "still waiting");
        assert_eq!(list[0].observed_generation, Some(2));
        set(&mut list, READY, true, "Issued", "done", Some(2), at(30));
        assert_eq!(list[0].last_transition_time, at(30));
        assert!(is_true(&list, READY));
    }

    #[test]
    fn remove_and_find() {
        let mut list = Vec::new();
        set(&mut list, READY, true, "Issued", "", None, at(1));
        set(&mut list, ISSUING, true, "Renewing", "", None, at(1));
        remove(&mut list, ISSUING);
        assert!(find(&list, ISSUING).is_none());
        assert!(find(&list, READY).is_some());
    }
}

//! Publishing `events.k8s.io/v1` Events with a bounded memory.
//!
//! kube-runtime's `Recorder` keeps every Event it published in the last six minutes, whole (note
//! included), to fold repeats into a series: with thousands of Certificates issuing at once that
//! is tens of thousands of Events in memory, and each publish scans them all under one lock. Here
//! only the last [`SERIES_CAPACITY`] keys are remembered, each as the Event's name and count:
//! a repeat within [`SERIES_TTL`] of the same (type, reason, action, object) still becomes a
//! series on the first Event (its note is the first one's, as with the `Recorder`, which is why
//! each issuance attempt has an action of its own); beyond that a repeat is a new Event.

use std::collections::HashMap;
use std::sync::Mutex;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};

/// How long a published Event can still be continued as a series.
pub const SERIES_TTL: SignedDuration = SignedDuration::from_mins(6);
/// How many Event keys are remembered for series at most.
pub const SERIES_CAPACITY: usize = 1024;

/// One Event to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventSpec<'a> {
    pub warning: bool,
    pub reason: &'a str,
    pub action: &'a str,
    pub note: String,
}

/// What is remembered of a published Event.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Published {
    namespace: String,
    name: String,
    count: i32,
    last: Timestamp,
}

/// The series memory: pure, bounded.
#[derive(Debug, Default)]
struct SeriesCache {
    entries: HashMap<String, Published>,
}

/// What to do for one publish.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    /// Continue the Event `name` in `namespace` as a series of `count`.
    Continue {
        namespace: String,
        name: String,
        count: i32,
    },
    /// A new Event.
    Create,
}

impl SeriesCache {
    fn step(&self, key: &str, now: Timestamp) -> Step {
        match self.entries.get(key) {
            Some(p) if p.last + SERIES_TTL > now => Step::Continue {
                namespace: p.namespace.clone(),
                name: p.name.clone(),
                count: p.count.saturating_add(1),
            },
            _ => Step::Create,
        }
    }

    /// Remembers `published` under `key`, dropping expired entries, then the oldest, to stay
    /// within the capacity.
    fn remember(&mut self, key: String, published: Published, now: Timestamp) {
        if !self.entries.contains_key(&key) && self.entries.len() >= SERIES_CAPACITY {
            self.entries.retain(|_, p| p.last + SERIES_TTL > now);
            if self.entries.len() >= SERIES_CAPACITY
                && let Some(oldest) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, p)| p.last)
                    .map(|(k, _)| k.clone())
            {
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert(key, published);
    }
}

/// Publishes Events as the controller (`reportingController`) and this replica
/// (`reportingInstance`).
pub struct EventPublisher {
    client: Client,
    controller: String,
    instance: String,
    series: Mutex<SeriesCache>,
}

fn key(spec: &EventSpec<'_>, regarding: &ObjectReference) -> String {
    format!(
        "{}|{}|{}|{}|{}|{}|{}",
        spec.warning,
        spec.reason,
        spec.action,
        regarding.kind.as_deref().unwrap_or_default(),
        regarding.namespace.as_deref().unwrap_or_default(),
        regarding.name.as_deref().unwrap_or_default(),
        regarding.uid.as_deref().unwrap_or_default(),
    )
}

impl EventPublisher {
    pub fn new(client: Client, controller: &str, instance: Option<String>) -> Self {
        EventPublisher {
            client,
            controller: controller.to_string(),
            instance: instance.unwrap_or_else(|| controller.to_string()),
            series: Mutex::default(),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, SeriesCache> {
        self.series.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes `spec` on the object `regarding` (in its namespace, `default` for a
    /// cluster-scoped one).
    pub async fn publish(
        &self,
        spec: &EventSpec<'_>,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let key = key(spec, regarding);
        let step = self.cache().step(&key, now);
        if let Step::Continue {
            namespace,
            name,
            count,
        } = step
        {
            let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), &namespace);
            let patch = serde_json::json!({
                "series": {"count": count, "lastObservedTime": MicroTime(now)}
            });
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    self.cache().remember(
                        key,
                        Published {
                            namespace,
                            name,
                            count,
                            last: now,
                        },
                        now,
                    );
                    return Ok(());
                }
                // Gone (its TTL in the API server, or deleted): a new one.
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string());
        let event = self.event(spec, regarding, &namespace, now);
        let name = event.metadata.name.clone().unwrap_or_default();
        Api::<K8sEvent>::namespaced(self.client.clone(), &namespace)
            .create(&PostParams::default(), &event)
            .await?;
        self.cache().remember(
            key,
            Published {
                namespace,
                name,
                count: 1,
                last: now,
            },
            now,
        );
        Ok(())
    }

    fn event(
        &self,
        spec: &EventSpec<'_>,
        regarding: &ObjectReference,
        namespace: &str,
        now: Timestamp,
    ) -> K8sEvent {
        K8sEvent {
            action: Some(spec.action.to_string()),
            reason: Some(spec.reason.to_string()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            note: Some(spec.note.clone()),
            metadata: ObjectMeta {
                namespace: Some(namespace.to_string()),
                name: Some(format!(
                    "{}.{:x}",
                    regarding.name.as_deref().unwrap_or(&self.controller),
                    now.as_nanosecond()
                )),
                ..Default::default()
            },
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            type_: Some(if spec.warning { "Warning" } else { "Normal" }.to_string()),
            series: None::<EventSeries>,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn published(name: &str, last: Timestamp) -> Published {
        Published {
            namespace: "ns".into(),
            name: name.into(),
            count: 1,
            last,
        }
    }

    #[test]
    fn a_repeat_within_the_ttl_continues_the_series() {
        let mut c = SeriesCache::default();
        assert_eq!(c.step("k", at(0)), Step::Create);
        c.remember("k".into(), published("e1", at(0)), at(0));
        assert_eq!(
            c.step("k", at(60)),
            Step::Continue {
                namespace: "ns".into(),
                name: "e1".into(),
                count: 2
            }
        );
        assert_eq!(c.step("k", at(6 * 60 + 1)), Step::Create, "past the TTL");
        assert_eq!(c.step("other", at(60)), Step::Create);
    }

    #[test]
    fn memory_stays_within_the_capacity_dropping_expired_then_oldest() {
        let mut c = SeriesCache::default();
        for i in 0..SERIES_CAPACITY {
            c.remember(format!("k{i}"), published("e", at(i as i64)), at(i as i64));
        }
        assert_eq!(c.entries.len(), SERIES_CAPACITY);
        let now = at(SERIES_CAPACITY as i64);
        c.remember("new".into(), published("e", now), now);
        assert!(c.entries.len() <= SERIES_CAPACITY);
        assert!(c.entries.contains_key("new"));
        // Everything older than six minutes went; the rest stayed.
        assert!(!c.entries.contains_key("k0"));
        assert!(c.entries.contains_key(&format!("k{}", SERIES_CAPACITY - 1)));
        // None expired: the oldest goes.
        let mut fresh = SeriesCache::default();
        for i in 0..SERIES_CAPACITY {
            let t = at(i64::from(i > 0));
            fresh.remember(format!("k{i}"), published("e", t), t);
        }
        let now = at(2);
        fresh.remember("new".into(), published("e", now), now);
        assert_eq!(fresh.entries.len(), SERIES_CAPACITY);
        assert!(!fresh.entries.contains_key("k0"));
    }

    #[test]
    fn keys_tell_objects_reasons_and_actions_apart() {
        let spec = |reason, action| EventSpec {
            warning: false,
            reason,
            action,
            note: "n".into(),
        };
        let obj = |name: &str| ObjectReference {
            kind: Some("Certificate".into()),
            namespace: Some("ns".into()),
            name: Some(name.into()),
            ..Default::default()
        };
        let base = key(&spec("Issued", "A1"), &obj("a"));
        assert_ne!(base, key(&spec("Issued", "A2"), &obj("a")));
        assert_ne!(base, key(&spec("Failed", "A1"), &obj("a")));
        assert_ne!(base, key(&spec("Issued", "A1"), &obj("b")));
        let mut other_note = spec("Issued", "A1");
        other_note.note = "other".into();
        assert_eq!(
            base,
            key(&other_note, &obj("a")),
            "the note is not part of the key"
        );
    }
}

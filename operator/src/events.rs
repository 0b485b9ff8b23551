//! Kubernetes Events (`events.k8s.io/v1`), published with a compact series
//! cache.
//!
//! An Event repeated within [`SERIES_TTL`] (same object, type, reason,
//! action and related object) is not created again: the first one's
//! `series` (count, last observed time) is patched, as kube's `Recorder`
//! and client-go do. kube's `Recorder` keeps every Event it published in
//! the last minutes whole, and walks all of them on every publish; with
//! 10k objects that cache led the operator's memory. Here a series is
//! remembered by a hash of its key, the Event's name and its count, and
//! the expired ones are dropped at most once per [`PRUNE_EVERY`].

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType};

/// How long a published Event can still become a series (kube's and
/// client-go's six minutes).
pub const SERIES_TTL: Duration = Duration::from_secs(6 * 60);

/// The shortest time between two sweeps of the expired series.
const PRUNE_EVERY: Duration = Duration::from_secs(10);

/// At most this many series are remembered; past it, an Event that would
/// start one is created without being remembered (a repeat then becomes an
/// Event of its own rather than a series).
const MAX_SERIES: usize = 200_000;

/// A series: the Event first created, in its namespace, and how often it
/// was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Series {
    /// The Event's name (its namespace is the object's, part of the key).
    name: Box<str>,
    namespace: Box<str>,
    count: i32,
    last: Instant,
}

/// What to do with an Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Publish {
    /// Create it (named `name`).
    Create { name: String },
    /// Patch the series of the Event `name` in `namespace` to `count`.
    Repeat {
        name: String,
        namespace: String,
        count: i32,
    },
}

/// The series of the Events published lately, by key hash.
#[derive(Debug, Default)]
pub struct SeriesCache {
    series: HashMap<u64, Series>,
    pruned: Option<Instant>,
}

impl SeriesCache {
    /// How many series are remembered.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// What publishing the Event of key `key` means at `now`; `fresh` is the
    /// name a new Event gets. A new Event is remembered as the start of a
    /// series (call [`SeriesCache::forget`] if creating it fails).
    pub fn observe(&mut self, key: u64, namespace: &str, fresh: String, now: Instant) -> Publish {
        if self
            .pruned
            .is_none_or(|p| now.duration_since(p) >= PRUNE_EVERY)
        {
            self.series
                .retain(|_, s| now.duration_since(s.last) < SERIES_TTL);
            self.pruned = Some(now);
        }
        match self.series.get_mut(&key) {
            Some(s) if now.duration_since(s.last) < SERIES_TTL => {
                s.count = s.count.saturating_add(1);
                s.last = now;
                Publish::Repeat {
                    name: s.name.to_string(),
                    namespace: s.namespace.to_string(),
                    count: s.count,
                }
            }
            _ => {
                if self.series.len() < MAX_SERIES || self.series.contains_key(&key) {
                    self.series.insert(
                        key,
                        Series {
                            name: fresh.as_str().into(),
                            namespace: namespace.into(),
                            count: 1,
                            last: now,
                        },
                    );
                }
                Publish::Create { name: fresh }
            }
        }
    }

    /// Drops the series of `key` (its Event could not be written, or is
    /// gone from the API server).
    pub fn forget(&mut self, key: u64) {
        self.series.remove(&key);
    }
}

/// The key of an Event's series: what kube's `Recorder` keys by (the
/// reporting controller and instance are the publisher's own).
pub fn series_key(ev: &Event, regarding: &ObjectReference) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let type_ = matches!(ev.type_, EventType::Warning);
    let r = |o: &ObjectReference, h: &mut std::collections::hash_map::DefaultHasher| {
        (&o.api_version, &o.kind, &o.namespace, &o.name, &o.uid).hash(h);
    };
    (type_, &ev.action, &ev.reason).hash(&mut h);
    r(regarding, &mut h);
    if let Some(s) = &ev.secondary {
        r(s, &mut h);
    }
    h.finish()
}

/// Publishes Events as one reporting controller and instance.
pub struct Publisher {
    client: kube::Client,
    controller: String,
    instance: String,
    cache: Mutex<SeriesCache>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("controller", &self.controller)
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    pub fn new(client: kube::Client, controller: &str, instance: &str) -> Self {
        Publisher {
            client,
            controller: controller.to_string(),
            instance: instance.to_string(),
            cache: Mutex::default(),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, SeriesCache> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many series are remembered.
    pub fn series(&self) -> usize {
        self.cache().len()
    }

    /// Publishes `ev` about `regarding`: a new Event, or the next count of
    /// its series. Cluster-scoped objects' Events go to `default`.
    pub async fn publish(&self, ev: &Event, regarding: &ObjectReference) -> kube::Result<()> {
        let key = series_key(ev, regarding);
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let now = Timestamp::now();
        let fresh = || {
            format!(
                "{}.{:x}",
                regarding.name.as_deref().unwrap_or(&self.controller),
                now.as_nanosecond()
            )
        };
        let action = self
            .cache()
            .observe(key, namespace, fresh(), Instant::now());
        let result = match action {
            Publish::Create { name } => self.create(ev, regarding, namespace, name, now).await,
            Publish::Repeat {
                name,
                namespace: ns,
                count,
            } => {
                let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), &ns);
                let patch = serde_json::json!({
                    "series": EventSeries { count, last_observed_time: MicroTime(now) },
                });
                match api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    // Gone from the API server (Events expire there too):
                    // a new series.
                    Err(kube::Error::Api(s)) if s.is_not_found() => {
                        let name = fresh();
                        {
                            let mut cache = self.cache();
                            cache.forget(key);
                            cache.observe(key, namespace, name.clone(), Instant::now());
                        }
                        self.create(ev, regarding, namespace, name, now).await
                    }
                    other => other.map(drop),
                }
            }
        };
        if result.is_err() {
            self.cache().forget(key);
        }
        result
    }

    async fn create(
        &self,
        ev: &Event,
        regarding: &ObjectReference,
        namespace: &str,
        name: String,
        now: Timestamp,
    ) -> kube::Result<()> {
        let event = K8sEvent {
            action: Some(ev.action.clone()),
            reason: Some(ev.reason.clone()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            related: ev.secondary.clone(),
            note: ev.note.clone(),
            metadata: ObjectMeta {
                namespace: Some(namespace.to_string()),
                name: Some(name),
                ..Default::default()
            },
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            type_: Some(
                match ev.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .into(),
            ),
            ..Default::default()
        };
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), namespace);
        api.create(&PostParams::default(), &event).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(name: &str) -> ObjectReference {
        ObjectReference {
            api_version: Some("lvs.lvs-operator.io/v1alpha1".into()),
            kind: Some("VirtualService".into()),
            namespace: Some("ns".into()),
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            ..Default::default()
        }
    }

    fn event(reason: &str, note: &str) -> Event {
        Event {
            type_: EventType::Normal,
            reason: reason.into(),
            note: Some(note.into()),
            action: "Reconcile".into(),
            secondary: None,
        }
    }

    #[test]
    fn a_repeat_within_the_ttl_counts_in_the_first_events_series() {
        let mut c = SeriesCache::default();
        let t0 = Instant::now();
        let k = series_key(&event("Programmed", "a"), &reference("a"));
        assert_eq!(
            c.observe(k, "ns", "a.1".into(), t0),
            Publish::Create { name: "a.1".into() }
        );
        // Another note, same reason: the same series (kube's key has no note).
        let k2 = series_key(&event("Programmed", "other note"), &reference("a"));
        assert_eq!(k, k2);
        assert_eq!(
            c.observe(k, "ns", "a.2".into(), t0 + Duration::from_secs(60)),
            Publish::Repeat {
                name: "a.1".into(),
                namespace: "ns".into(),
                count: 2
            }
        );
        // The TTL counts from the last repeat.
        assert_eq!(
            c.observe(
                k,
                "ns",
                "a.3".into(),
                t0 + Duration::from_secs(60) + SERIES_TTL - Duration::from_secs(1)
            ),
            Publish::Repeat {
                name: "a.1".into(),
                namespace: "ns".into(),
                count: 3
            }
        );
        assert_eq!(
            c.observe(
                k,
                "ns",
                "a.4".into(),
                t0 + Duration::from_secs(60) + SERIES_TTL * 3
            ),
            Publish::Create { name: "a.4".into() }
        );
    }

    #[test]
    fn other_objects_reasons_types_and_related_objects_are_other_series() {
        let base = series_key(&event("Programmed", "a"), &reference("a"));
        assert_ne!(base, series_key(&event("Programmed", "a"), &reference("b")));
        assert_ne!(base, series_key(&event("Ready", "a"), &reference("a")));
        let mut warning = event("Programmed", "a");
        warning.type_ = EventType::Warning;
        assert_ne!(base, series_key(&warning, &reference("a")));
        let mut related = event("Programmed", "a");
        related.secondary = Some(ObjectReference {
            kind: Some("Node".into()),
            name: Some("n1".into()),
            ..Default::default()
        });
        assert_ne!(base, series_key(&related, &reference("a")));
    }

    #[test]
    fn expired_series_are_dropped_and_forget_drops_one() {
        let mut c = SeriesCache::default();
        let t0 = Instant::now();
        for i in 0..100u64 {
            c.observe(i, "ns", format!("e{i}"), t0);
        }
        assert_eq!(c.len(), 100);
        c.forget(7);
        assert_eq!(c.len(), 99);
        // After the TTL the next publish sweeps the others away.
        c.observe(1000, "ns", "late".into(), t0 + SERIES_TTL + PRUNE_EVERY);
        assert_eq!(c.len(), 1);
    }
}

//! Watches of VirtualServices, RealServers (all namespaces) and Nodes,
//! turned into snapshots for the agent loop.
//!
//! Leading edge: a change goes out as a snapshot at once when the agent loop
//! is idle. What arrives while a snapshot is being synced (or is already
//! queued in the watch stream when the first item is read) is gathered and
//! goes out as one snapshot when that sync ends, so a burst of many objects
//! costs a few syncs, not one per object. A snapshot goes out only when every
//! kind has a complete list (see [`super::cache`]), so a relist is one
//! snapshot once it is complete, never a partial one; and only when the
//! objects changed. While the API server is away the watches retry with
//! backoff and the agent keeps programming what it has.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, Stream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use lvs_api::{LvsAddressPool, LvsNodeProfile, NodeInfo, Object, RealServer, VirtualService};
use serde::de::DeserializeOwned;

use super::cache::{Cache, Kind, PoolView, Update, WatchEvent};
use crate::agent::AgentStatus;
use crate::metrics::Metrics;
use crate::quiet::Repeated;
use crate::source::{SnapshotSink, Source};

/// How long a sent snapshot counts as "being synced" when the source has no
/// word from the agent loop (see [`run_watches`]): changes arriving in that
/// window are gathered into the next snapshot.
pub const DEBOUNCE: Duration = Duration::from_millis(150);

/// With word from the agent loop ([`run_watches_fed`]): how long to wait for
/// the end of a sync before sending gathered changes anyway (a safety net;
/// the loop takes only the latest of the snapshots queued for it).
pub const SYNC_WAIT_MAX: Duration = Duration::from_secs(30);

/// At most this many items already waiting in the watch stream are applied
/// before a snapshot is considered (the rest follow with the next one).
const DRAIN_MAX: usize = 4096;

/// One item of the merged watches: an event, or why a watch failed.
pub type WatchItem = (Kind, Result<Update, String>);

/// Snapshots from the API server.
#[derive(Clone)]
pub struct KubeSource {
    client: Client,
    debounce: Duration,
    metrics: Arc<Metrics>,
    synced: Option<tokio::sync::watch::Receiver<AgentStatus>>,
    unreadable: Unreadable,
}

/// The VirtualServices and RealServers the watches could not read, as
/// `"<Kind> <namespace>/<name>"` -> why.
///
/// The agent reads these kinds strictly: a field it does not know (an
/// object written against a newer CRD) may change what the user means, so
/// programming the rest of the object could do something the user did not
/// ask for. Such an object is skipped as if it did not exist, logged and
/// reported on the node's LvsNode (`status.unreadable`); every other object
/// is read as usual, so one odd object never stops the agent.
#[derive(Debug, Clone)]
pub struct Unreadable(Arc<tokio::sync::watch::Sender<BTreeMap<String, String>>>);

impl Default for Unreadable {
    fn default() -> Self {
        Unreadable(Arc::new(tokio::sync::watch::Sender::new(BTreeMap::new())))
    }
}

impl Unreadable {
    fn id(kind: Kind, key: &str) -> String {
        format!("{} {key}", kind.as_str())
    }

    /// Records that `key` of `kind` cannot be read.
    pub fn set(&self, kind: Kind, key: &str, why: String) {
        let id = Self::id(kind, key);
        self.0.send_if_modified(|m| {
            if m.get(&id) == Some(&why) {
                return false;
            }
            tracing::warn!(object = %id, error = %why, "cannot read this object; skipping it (acting as if it did not exist) until it is readable");
            m.insert(id.clone(), why.clone());
            true
        });
    }

    /// Records that `key` of `kind` was read (or deleted).
    pub fn clear(&self, kind: Kind, key: &str) {
        let id = Self::id(kind, key);
        self.0.send_if_modified(|m| {
            let was = m.remove(&id).is_some();
            if was {
                tracing::info!(object = %id, "the object is readable again (or gone)");
            }
            was
        });
    }

    /// After a complete list of `kind`: exactly `bad` (key -> why) of that
    /// kind are unreadable.
    pub fn replace(&self, kind: Kind, bad: BTreeMap<String, String>) {
        let prefix = format!("{} ", kind.as_str());
        let stale: Vec<String> = self
            .0
            .borrow()
            .keys()
            .filter(|id| id.starts_with(&prefix))
            .filter(|id| !bad.contains_key(&id[prefix.len()..]))
            .cloned()
            .collect();
        for id in stale {
            self.clear(kind, &id[prefix.len()..]);
        }
        for (key, why) in bad {
            self.set(kind, &key, why);
        }
    }

    /// `"<Kind> <namespace>/<name>: <why>"`, sorted.
    pub fn list(&self) -> Vec<String> {
        self.0
            .borrow()
            .iter()
            .map(|(id, why)| format!("{id}: {why}"))
            .collect()
    }

    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<BTreeMap<String, String>> {
        self.0.subscribe()
    }
}

impl std::fmt::Debug for KubeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeSource")
            .field("debounce", &self.debounce)
            .finish_non_exhaustive()
    }
}

impl KubeSource {
    pub fn new(client: Client, debounce: Duration, metrics: Arc<Metrics>) -> Self {
        KubeSource {
            client,
            debounce,
            metrics,
            synced: None,
            unreadable: Unreadable::default(),
        }
    }

    /// The objects the watches could not read (see [`Unreadable`]).
    pub fn unreadable(&self) -> Unreadable {
        self.unreadable.clone()
    }

    /// The agent loop's status, which changes after every sync: a snapshot
    /// counts as synced then (instead of after the debounce), so changes
    /// made while the loop is idle go out at once and those made during a
    /// sync go out together right after it.
    pub fn with_sync_feedback(mut self, status: tokio::sync::watch::Receiver<AgentStatus>) -> Self {
        self.synced = Some(status);
        self
    }
}

/// Converts a watch event. An object being deleted (deletionTimestamp set,
/// waiting for finalizers) counts as gone: the user asked for its removal,
/// and the operator's finalizer must not keep it programmed.
fn change<K: Resource, T>(
    ev: watcher::Event<K>,
    key: fn(&K) -> String,
    view: fn(&K) -> T,
) -> Option<WatchEvent<T>> {
    let terminating = |o: &K| o.meta().deletion_timestamp.is_some();
    Some(match ev {
        watcher::Event::Init => WatchEvent::Init,
        watcher::Event::InitApply(o) if terminating(&o) => return None,
        watcher::Event::InitApply(o) => WatchEvent::InitApply(key(&o), view(&o)),
        watcher::Event::InitDone => WatchEvent::InitDone,
        watcher::Event::Apply(o) if terminating(&o) => WatchEvent::Delete(key(&o)),
        watcher::Event::Apply(o) => WatchEvent::Apply(key(&o), view(&o)),
        watcher::Event::Delete(o) => WatchEvent::Delete(key(&o)),
    })
}

fn watch<K, T>(
    api: Api<K>,
    kind: Kind,
    key: fn(&K) -> String,
    view: fn(&K) -> T,
    wrap: fn(WatchEvent<T>) -> Update,
) -> impl Stream<Item = WatchItem> + Send + 'static
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default,
    T: 'static,
{
    watcher(api, super::watch_config())
        .backoff(reconnect_backoff())
        .filter_map(move |r| {
            let item = match r {
                Ok(ev) => change(ev, key, view).map(|c| (kind, Ok(wrap(c)))),
                Err(e) => Some((kind, Err(e.to_string()))),
            };
            std::future::ready(item)
        })
}

/// What a strictly read watch keeps between events.
struct ReadState {
    kind: Kind,
    unreadable: Unreadable,
    /// The objects of the list in progress that could not be read.
    relist: Option<BTreeMap<String, String>>,
}

/// Converts a watch event of a kind read per object (see [`Unreadable`]):
/// an object that cannot be read is left out of a list, and counts as
/// deleted when it changes; an object being deleted counts as gone.
fn read_change<K: DeserializeOwned, T>(
    ev: watcher::Event<DynamicObject>,
    view: fn(&K) -> T,
    st: &mut ReadState,
) -> Option<WatchEvent<T>> {
    let terminating = |o: &DynamicObject| o.metadata.deletion_timestamp.is_some();
    Some(match ev {
        watcher::Event::Init => {
            st.relist = Some(BTreeMap::new());
            WatchEvent::Init
        }
        watcher::Event::InitApply(o) if terminating(&o) => return None,
        watcher::Event::InitApply(o) => {
            let key = namespaced_key(&o);
            match lvs_api::read_strict::<K>(o) {
                Ok(k) => WatchEvent::InitApply(key, view(&k)),
                Err(why) => {
                    st.relist.get_or_insert_default().insert(key, why);
                    return None;
                }
            }
        }
        watcher::Event::InitDone => {
            st.unreadable
                .replace(st.kind, st.relist.take().unwrap_or_default());
            WatchEvent::InitDone
        }
        watcher::Event::Apply(o) => {
            let key = namespaced_key(&o);
            if terminating(&o) {
                st.unreadable.clear(st.kind, &key);
                return Some(WatchEvent::Delete(key));
            }
            match lvs_api::read_strict::<K>(o) {
                Ok(k) => {
                    st.unreadable.clear(st.kind, &key);
                    WatchEvent::Apply(key, view(&k))
                }
                Err(why) => {
                    st.unreadable.set(st.kind, &key, why);
                    WatchEvent::Delete(key)
                }
            }
        }
        watcher::Event::Delete(o) => {
            let key = namespaced_key(&o);
            st.unreadable.clear(st.kind, &key);
            WatchEvent::Delete(key)
        }
    })
}

/// A watch of a strictly typed kind, read object by object (see
/// [`Unreadable`]): the API server's list is taken as untyped objects, so
/// one object this agent cannot read never fails the list of the others.
fn read_watch<K, T>(
    client: &Client,
    kind: Kind,
    view: fn(&K) -> T,
    wrap: fn(WatchEvent<T>) -> Update,
    unreadable: Unreadable,
) -> impl Stream<Item = WatchItem> + Send + 'static
where
    K: Resource<DynamicType = ()> + DeserializeOwned + 'static,
    T: 'static,
{
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ApiResource::erase::<K>(&()));
    let mut st = ReadState {
        kind,
        unreadable,
        relist: None,
    };
    watcher(api, super::watch_config())
        .backoff(reconnect_backoff())
        .filter_map(move |r| {
            let item = match r {
                Ok(ev) => read_change(ev, view, &mut st).map(|c| (kind, Ok(wrap(c)))),
                Err(e) => Some((kind, Err(e.to_string()))),
            };
            std::future::ready(item)
        })
}

/// Watch retry delays: 0.4 s doubling to at most 5 s, each plus a random
/// share of up to itself (so 0.4 to 0.8 s first, at most 10 s), and back to
/// the start once a watch delivers again.
///
/// kube-runtime's default grows to 30 s and only resets after two quiet
/// minutes, so after an API server restart (where every watch also sees
/// "410 Gone" once) an agent could wait most of a minute before it sees a
/// change made meanwhile. A short cap keeps reconnects prompt; the jitter
/// spreads a fleet of agents so they don't relist in lockstep.
pub(crate) fn reconnect_backoff() -> kube::runtime::watcher::ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(std::time::Duration::from_millis(400))
        .with_max_delay(std::time::Duration::from_secs(5))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .into()
}

fn namespaced_key<K: Resource>(o: &K) -> String {
    format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any())
}

fn node_key(n: &Node) -> String {
    n.name_any()
}

/// The watches, merged: the planner's kinds, the LvsNodeProfiles, and the
/// address pools with the namespaces' labels they select by.
/// VirtualServices, RealServers, LvsNodeProfiles and LvsAddressPools are
/// read object by object; the ones that cannot be read
/// go to `unreadable`.
pub fn watches(
    client: &Client,
    unreadable: &Unreadable,
) -> impl Stream<Item = WatchItem> + Send + 'static {
    futures::stream::select_all([
        read_watch(
            client,
            Kind::AddressPool,
            |o: &LvsAddressPool| PoolView {
                name: o.name_any(),
                spec: o.spec.clone(),
                index: o.status.as_ref().and_then(|s| s.index.clone()),
            },
            Update::AddressPool,
            unreadable.clone(),
        )
        .boxed(),
        watch(
            Api::<Namespace>::all(client.clone()),
            Kind::Namespace,
            |n: &Namespace| n.name_any(),
            |n: &Namespace| n.labels().clone(),
            Update::Namespace,
        )
        .boxed(),
        read_watch(
            client,
            Kind::NodeProfile,
            |o: &LvsNodeProfile| Object::from(o),
            Update::NodeProfile,
            unreadable.clone(),
        )
        .boxed(),
        read_watch(
            client,
            Kind::VirtualService,
            |o: &VirtualService| std::sync::Arc::new(Object::from(o)),
            Update::VirtualService,
            unreadable.clone(),
        )
        .boxed(),
        read_watch(
            client,
            Kind::RealServer,
            |o: &RealServer| Object::from(o),
            Update::RealServer,
            unreadable.clone(),
        )
        .boxed(),
        watch(
            Api::<Node>::all(client.clone()),
            Kind::Node,
            node_key,
            |n: &Node| NodeInfo::from(n),
            Update::Node,
        )
        .boxed(),
    ])
}

/// Feeds watch items into a [`Cache`] and sends complete, changed snapshots
/// to `sink`, leading edge: at once when no snapshot is being synced, else
/// when the sync in progress is over (here: when `hold` has passed since the
/// last snapshot went out, as there is no word from the agent loop; see
/// [`run_watches_fed`]). Returns when the items end or the agent loop is
/// gone.
pub async fn run_watches<S>(items: S, hold: Duration, metrics: &Metrics, sink: SnapshotSink)
where
    S: Stream<Item = WatchItem>,
{
    run_watches_fed::<S, ()>(items, hold, metrics, sink, None).await;
}

/// [`run_watches`] with word from the agent loop: `synced` changes after
/// every sync it runs. A snapshot sent counts as being synced until then
/// (at most [`SYNC_WAIT_MAX`]); `hold` only applies without `synced`.
pub async fn run_watches_fed<S, T>(
    items: S,
    hold: Duration,
    metrics: &Metrics,
    sink: SnapshotSink,
    synced: Option<tokio::sync::watch::Receiver<T>>,
) where
    S: Stream<Item = WatchItem>,
{
    run_watches_into(Cache::default(), items, hold, metrics, sink, synced).await;
}

/// [`run_watches_fed`] into a given cache (one that enforces address pools
/// waits for their list too).
pub async fn run_watches_into<S, T>(
    mut cache: Cache,
    items: S,
    hold: Duration,
    metrics: &Metrics,
    sink: SnapshotSink,
    mut synced: Option<tokio::sync::watch::Receiver<T>>,
) where
    S: Stream<Item = WatchItem>,
{
    let mut items = std::pin::pin!(items);
    // Objects changed since the last snapshot sent (held back while a list
    // is incomplete or a sync is in progress).
    let mut dirty = false;
    // A snapshot is being synced until then.
    let mut busy_until: Option<tokio::time::Instant> = None;
    // Per watch: its failures are logged once, then at most once a minute.
    let mut failing: BTreeMap<&'static str, Repeated> = BTreeMap::new();
    let mut sent_any = false;
    let mut said_incomplete = false;
    let mut was_complete = false;
    let wait = if synced.is_some() {
        SYNC_WAIT_MAX
    } else {
        hold
    };
    if let Some(rx) = synced.as_mut() {
        rx.borrow_and_update();
    }
    metrics.set_api_synced(false);
    loop {
        // What wakes us: a watch item, the end of a sync, or the wait for
        // it running out (only while something is held back for it).
        let timer = match (dirty, busy_until) {
            (true, Some(t)) => Some(t),
            _ => None,
        };
        let sync_done = async {
            match synced.as_mut() {
                Some(rx) if busy_until.is_some() => {
                    if rx.changed().await.is_err() {
                        // The loop is gone; the sink will say so.
                        std::future::pending::<()>().await;
                    }
                }
                _ => std::future::pending::<()>().await,
            }
        };
        let sleep = async {
            match timer {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            item = items.next() => {
                let Some(item) = item else { return };
                let mut ended = false;
                dirty |= handle(&mut cache, item, &mut failing, sent_any, metrics);
                // Everything already waiting goes into the same snapshot.
                for _ in 0..DRAIN_MAX {
                    match items.next().now_or_never() {
                        Some(Some(item)) => {
                            dirty |= handle(&mut cache, item, &mut failing, sent_any, metrics);
                        }
                        Some(None) => {
                            ended = true;
                            break;
                        }
                        None => break,
                    }
                }
                if ended {
                    return;
                }
            }
            () = sync_done => busy_until = None,
            () = sleep => busy_until = None,
        }
        let complete = cache.incomplete().is_empty();
        metrics.set_api_synced(complete);
        if complete && !was_complete && sent_any {
            tracing::info!("every list complete again");
        }
        was_complete = complete;
        if busy_until.is_some_and(|t| tokio::time::Instant::now() >= t) {
            busy_until = None;
        }
        if !dirty || busy_until.is_some() {
            continue;
        }
        match cache.take_changes() {
            Some(c) => {
                said_incomplete = false;
                tracing::info!(
                    virtual_services = cache.virtual_services.len(),
                    real_servers = cache.real_servers.len(),
                    nodes = cache.nodes.len(),
                    changes = c.len(),
                    "changes from the API server"
                );
                if let Some(rx) = synced.as_mut() {
                    // Only syncs that end from now on count.
                    rx.borrow_and_update();
                }
                if !sink.send_changes(c, super::cache::ORIGIN.to_string()) {
                    return;
                }
                dirty = false;
                sent_any = true;
                busy_until = Some(tokio::time::Instant::now() + wait);
            }
            None => {
                if !said_incomplete {
                    let waiting: Vec<&str> =
                        cache.incomplete().iter().map(|k| k.as_str()).collect();
                    tracing::info!(
                        waiting = ?waiting,
                        "lists incomplete; not syncing (the last programmed state stays)"
                    );
                    said_incomplete = true;
                }
            }
        }
    }
}

/// Applies one watch item to the cache; returns whether objects changed.
fn handle(
    cache: &mut Cache,
    (kind, item): WatchItem,
    failing: &mut BTreeMap<&'static str, Repeated>,
    sent_any: bool,
    metrics: &Metrics,
) -> bool {
    let log = failing.entry(kind.as_str()).or_default();
    match item {
        Ok(update) => {
            if let Some(d) = log.ok(std::time::Instant::now()) {
                tracing::info!(
                    kind = kind.as_str(),
                    failed_for_s = d.as_secs(),
                    "watch working again"
                );
            }
            if matches!(
                update,
                Update::VirtualService(WatchEvent::Init)
                    | Update::RealServer(WatchEvent::Init)
                    | Update::Node(WatchEvent::Init)
                    | Update::AddressPool(WatchEvent::Init)
                    | Update::Namespace(WatchEvent::Init)
                    | Update::NodeProfile(WatchEvent::Init)
            ) && sent_any
            {
                tracing::info!(
                    kind = kind.as_str(),
                    "relisting; no snapshot until the list is complete"
                );
            }
            cache.apply(update)
        }
        Err(e) => {
            metrics.watch_error(kind.as_str());
            if let Some(f) = log.fail(std::time::Instant::now()) {
                tracing::warn!(
                    kind = kind.as_str(),
                    error = %e,
                    failing_for_s = f.for_.as_secs(),
                    not_logged = f.unlogged,
                    "watch failed; keeping the programmed state and retrying with backoff (logged again at most once a minute while it fails)"
                );
            }
            false
        }
    }
}

impl Source for KubeSource {
    async fn run(self, sink: SnapshotSink) {
        run_watches_into(
            Cache::with_pools().with_profiles(),
            watches(&self.client, &self.unreadable),
            self.debounce,
            &self.metrics,
            sink,
            self.synced,
        )
        .await;
    }
}

#[cfg(test)]
mod tests;

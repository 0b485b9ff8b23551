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
use k8s_openapi::api::core::v1::Node;
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use lvs_api::{NodeInfo, Object, RealServer, VirtualService};
use serde::de::DeserializeOwned;

use super::cache::{Cache, Kind, Update, WatchEvent};
use crate::agent::AgentStatus;
use crate::metrics::Metrics;
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
    watcher(api, watcher::Config::default())
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
    watcher(api, watcher::Config::default())
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

/// The three watches, merged. VirtualServices and RealServers are read
/// object by object; the ones that cannot be read go to `unreadable`.
pub fn watches(
    client: &Client,
    unreadable: &Unreadable,
) -> impl Stream<Item = WatchItem> + Send + 'static {
    futures::stream::select_all([
        read_watch(
            client,
            Kind::VirtualService,
            |o: &VirtualService| Object::from(o),
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
    mut synced: Option<tokio::sync::watch::Receiver<T>>,
) where
    S: Stream<Item = WatchItem>,
{
    let mut items = std::pin::pin!(items);
    let mut cache = Cache::default();
    // Objects changed since the last snapshot sent (held back while a list
    // is incomplete or a sync is in progress).
    let mut dirty = false;
    // A snapshot is being synced until then.
    let mut busy_until: Option<tokio::time::Instant> = None;
    let mut failing = false;
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
    failing: &mut bool,
    sent_any: bool,
    metrics: &Metrics,
) -> bool {
    match item {
        Ok(update) => {
            if *failing {
                tracing::info!(kind = kind.as_str(), "watch working again");
                *failing = false;
            }
            if matches!(
                update,
                Update::VirtualService(WatchEvent::Init)
                    | Update::RealServer(WatchEvent::Init)
                    | Update::Node(WatchEvent::Init)
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
            *failing = true;
            metrics.watch_error(kind.as_str());
            tracing::warn!(
                kind = kind.as_str(),
                error = %e,
                "watch failed; keeping the programmed state and retrying with backoff"
            );
            false
        }
    }
}

impl Source for KubeSource {
    async fn run(self, sink: SnapshotSink) {
        run_watches_fed(
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
mod tests {
    use super::*;
    use crate::source::Event;
    use lvs_api::Meta;
    use std::sync::mpsc;

    fn node(name: &str, ip: &str) -> WatchEvent<NodeInfo> {
        WatchEvent::InitApply(
            name.into(),
            NodeInfo {
                name: name.into(),
                internal_ips: vec![ip.parse().unwrap()],
                ..NodeInfo::default()
            },
        )
    }

    fn rs(name: &str) -> WatchEvent<Object<lvs_api::RealServerSpec>> {
        let mut m = lvs_api::manifest::ManifestSet::default();
        m.extend(lvs_api::manifest::parse(&format!(
            "apiVersion: lvs.lvs-operator.io/v1alpha1\nkind: RealServer\nmetadata: {{name: {name}, namespace: default}}\nspec: {{address: 10.1.0.1}}\n"
        ))
        .unwrap());
        let o = m.real_servers[0].clone();
        WatchEvent::Apply(o.meta.key(), o)
    }

    fn ok(u: Update) -> WatchItem {
        let kind = match &u {
            Update::VirtualService(_) => Kind::VirtualService,
            Update::RealServer(_) => Kind::RealServer,
            Update::Node(_) => Kind::Node,
        };
        (kind, Ok(u))
    }

    fn full_lists() -> Vec<WatchItem> {
        vec![
            ok(Update::VirtualService(WatchEvent::Init)),
            ok(Update::VirtualService(WatchEvent::InitDone)),
            ok(Update::RealServer(WatchEvent::Init)),
            ok(Update::RealServer(WatchEvent::InitDone)),
            ok(Update::Node(WatchEvent::Init)),
            ok(Update::Node(node("n1", "10.0.0.1"))),
            ok(Update::Node(WatchEvent::InitDone)),
        ]
    }

    type Folded = (
        std::collections::BTreeMap<String, Object<lvs_api::VirtualServiceSpec>>,
        std::collections::BTreeMap<String, Object<lvs_api::RealServerSpec>>,
        std::collections::BTreeMap<String, NodeInfo>,
    );

    thread_local! {
        /// What each receiver's changes added up to so far.
        static FOLDED: std::cell::RefCell<std::collections::HashMap<usize, Folded>> =
            Default::default();
    }

    /// The states the agent loop would see: each batch of changes applied
    /// to the previous state (of the same receiver).
    fn received(rx: &mpsc::Receiver<Event>) -> Vec<crate::source::Snapshot> {
        use std::collections::BTreeMap;
        fn fold<T: Clone>(
            state: &mut BTreeMap<String, T>,
            changes: Vec<lvs_planner::Change<T>>,
            key: impl Fn(&T) -> String,
        ) -> Vec<T> {
            for c in changes {
                match c {
                    lvs_planner::Change::Upsert(o) => {
                        state.insert(key(&o), o);
                    }
                    lvs_planner::Change::Delete(k) => {
                        state.remove(&k);
                    }
                }
            }
            state.values().cloned().collect()
        }
        let id = rx as *const _ as usize;
        FOLDED.with(|f| {
            let mut f = f.borrow_mut();
            let (vss, rss, nodes) = f.entry(id).or_default();
            rx.try_iter()
                .map(|e| match e {
                    Event::Changes(c, origin) => crate::source::Snapshot {
                        virtual_services: fold(vss, c.virtual_services, |o| o.meta.key()),
                        real_servers: fold(rss, c.real_servers, |o| o.meta.key()),
                        nodes: fold(nodes, c.nodes, |n| n.name.clone()),
                        origin,
                    },
                    other => panic!("{other:?}"),
                })
                .collect()
        })
    }

    /// Items arrive through a channel, so the test decides when.
    fn feed() -> (
        futures::channel::mpsc::UnboundedSender<WatchItem>,
        futures::channel::mpsc::UnboundedReceiver<WatchItem>,
    ) {
        futures::channel::mpsc::unbounded()
    }

    /// A source with word from the loop: the watch feed, what it sends,
    /// the loop's "sync done" signal, and the task to run.
    #[allow(clippy::type_complexity)]
    fn fed_source(
        metrics: &Metrics,
    ) -> (
        futures::channel::mpsc::UnboundedSender<WatchItem>,
        mpsc::Receiver<Event>,
        tokio::sync::watch::Sender<u32>,
        impl std::future::Future<Output = ()> + '_,
    ) {
        let (tx, items) = feed();
        let (stx, srx) = mpsc::channel();
        let (status_tx, status_rx) = tokio::sync::watch::channel(0u32);
        let task = async move {
            run_watches_fed(
                items,
                DEBOUNCE,
                metrics,
                SnapshotSink::new(stx),
                Some(status_rx),
            )
            .await;
        };
        (tx, srx, status_tx, task)
    }

    /// Lets the source run (1 ms of paused time: far below the debounce,
    /// so whatever it sent by then went out "at once").
    async fn settle() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    fn dynamic(name: &str, extra: Option<(&str, serde_json::Value)>) -> DynamicObject {
        let mut spec = serde_json::json!({
            "address": "192.0.2.1", "port": 80,
            "directors": {"nodeSelector": {}},
            "realServerSelector": {"matchLabels": {"app": "web"}},
        });
        if let Some((k, v)) = extra {
            spec[k] = v;
        }
        serde_json::from_value(serde_json::json!({
            "apiVersion": "lvs.lvs-operator.io/v1alpha1", "kind": "VirtualService",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn an_unreadable_object_is_skipped_and_reported_alone() {
        let unreadable = Unreadable::default();
        let mut st = ReadState {
            kind: Kind::VirtualService,
            unreadable: unreadable.clone(),
            relist: None,
        };
        let view = |o: &VirtualService| Object::from(o);
        let mut read = |ev| read_change::<VirtualService, _>(ev, view, &mut st);
        let newer = || dynamic("newer", Some(("futureField", serde_json::json!(1))));
        // A list: the odd object is left out, the others are read.
        assert_eq!(read(watcher::Event::Init), Some(WatchEvent::Init));
        assert_eq!(read(watcher::Event::InitApply(newer())), None);
        assert!(matches!(
            read(watcher::Event::InitApply(dynamic("web", None))),
            Some(WatchEvent::InitApply(k, _)) if k == "ns/web"
        ));
        assert!(
            unreadable.list().is_empty(),
            "reported once the list is complete"
        );
        assert_eq!(read(watcher::Event::InitDone), Some(WatchEvent::InitDone));
        let bad = unreadable.list();
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert!(
            bad[0].starts_with(
                "VirtualService ns/newer: spec.futureField: unknown field `futureField`"
            ),
            "{bad:?}"
        );
        // A readable object turning unreadable counts as deleted; fixed, it
        // is back and no longer reported.
        assert_eq!(
            read(watcher::Event::Apply(dynamic(
                "web",
                Some(("x", serde_json::json!(true)))
            ))),
            Some(WatchEvent::Delete("ns/web".into()))
        );
        assert_eq!(unreadable.list().len(), 2);
        assert!(matches!(
            read(watcher::Event::Apply(dynamic("web", None))),
            Some(WatchEvent::Apply(k, _)) if k == "ns/web"
        ));
        assert_eq!(unreadable.list().len(), 1);
        // A relist without it: nothing unreadable any more.
        read(watcher::Event::Init);
        read(watcher::Event::InitApply(dynamic("web", None)));
        read(watcher::Event::InitDone);
        assert!(unreadable.list().is_empty());
        // Deleted: gone from the report too.
        read(watcher::Event::Apply(newer()));
        assert_eq!(unreadable.list().len(), 1);
        assert_eq!(
            read(watcher::Event::Delete(newer())),
            Some(WatchEvent::Delete("ns/newer".into()))
        );
        assert!(unreadable.list().is_empty());
    }

    #[test]
    fn objects_being_deleted_count_as_gone() {
        let vs: VirtualService = serde_json::from_value(serde_json::json!({
            "apiVersion": "lvs.lvs-operator.io/v1alpha1", "kind": "VirtualService",
            "metadata": {"name": "web", "namespace": "default", "generation": 2},
            "spec": {"address": "192.0.2.1", "port": 80,
                     "directors": {"nodeSelector": {}},
                     "realServerSelector": {"matchLabels": {"app": "web"}}},
        }))
        .unwrap();
        let conv = |ev| {
            change(
                ev,
                namespaced_key::<VirtualService>,
                |o: &VirtualService| Object::from(o),
            )
        };
        match conv(watcher::Event::Apply(vs.clone())) {
            Some(WatchEvent::Apply(k, o)) => {
                assert_eq!(k, "default/web");
                assert_eq!(o.meta.generation, Some(2));
            }
            other => panic!("{other:?}"),
        }
        let mut gone = vs.clone();
        gone.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        gone.metadata.finalizers = Some(vec!["lvs.lvs-operator.io/cleanup".into()]);
        assert_eq!(
            conv(watcher::Event::Apply(gone.clone())),
            Some(WatchEvent::Delete("default/web".into()))
        );
        assert_eq!(conv(watcher::Event::InitApply(gone)), None);
        assert_eq!(
            conv(watcher::Event::Delete(vs)),
            Some(WatchEvent::Delete("default/web".into()))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_queued_burst_becomes_one_snapshot_at_once() {
        let (tx, items) = feed();
        let (stx, srx) = mpsc::channel();
        let metrics = Metrics::default();
        let task = async {
            run_watches(items, DEBOUNCE, &metrics, SnapshotSink::new(stx)).await;
        };
        let script = async {
            for i in full_lists() {
                tx.unbounded_send(i).unwrap();
            }
            for n in 0..50 {
                tx.unbounded_send(ok(Update::RealServer(rs(&format!("rs-{n}")))))
                    .unwrap();
            }
            // No waiting: the loop was idle, so the snapshot is sent as
            // soon as the source runs, with everything that was queued.
            settle().await;
            let got = received(&srx);
            assert_eq!(got.len(), 1, "one snapshot for the burst");
            assert_eq!(got[0].real_servers.len(), 50);
            assert_eq!(got[0].nodes.len(), 1);
            assert!(metrics.render().contains("lvs_agent_api_synced 1"));

            // The same content again (a relist that found nothing new): no
            // snapshot, so no sync.
            tokio::time::sleep(DEBOUNCE * 2).await;
            for i in full_lists() {
                let done = matches!(i.1, Ok(Update::RealServer(WatchEvent::InitDone)));
                if done {
                    // The RealServer relist holds the same 50 objects.
                    for n in 0..50 {
                        let WatchEvent::Apply(k, o) = rs(&format!("rs-{n}")) else {
                            unreachable!()
                        };
                        tx.unbounded_send(ok(Update::RealServer(WatchEvent::InitApply(k, o))))
                            .unwrap();
                    }
                }
                tx.unbounded_send(i).unwrap();
            }
            tokio::time::sleep(DEBOUNCE * 3).await;
            assert!(
                received(&srx).is_empty(),
                "unchanged content was sent again"
            );
            drop(tx);
        };
        tokio::join!(task, script);
    }

    #[tokio::test(start_paused = true)]
    async fn changes_during_a_sync_wait_for_its_end_then_go_out_together() {
        let metrics = Metrics::default();
        let (tx, srx, status_tx, task) = fed_source(&metrics);
        let script = async {
            for i in full_lists() {
                tx.unbounded_send(i).unwrap();
            }
            settle().await;
            assert_eq!(received(&srx).len(), 1, "the first complete list");
            // The loop is syncing that snapshot: changes are held, for as
            // long as it takes (longer than the debounce).
            for n in 0..3 {
                tx.unbounded_send(ok(Update::RealServer(rs(&format!("rs-{n}")))))
                    .unwrap();
                tokio::time::sleep(DEBOUNCE * 2).await;
            }
            assert!(received(&srx).is_empty(), "sent while a sync was running");
            // The sync ends: the three changes go out as one snapshot.
            status_tx.send(1).unwrap();
            settle().await;
            let got = received(&srx);
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].real_servers.len(), 3);
            // That one is synced too; the loop is idle now, and the next
            // change goes out at once, without any debounce.
            status_tx.send(2).unwrap();
            settle().await;
            tx.unbounded_send(ok(Update::RealServer(rs("rs-9"))))
                .unwrap();
            settle().await;
            let got = received(&srx);
            assert_eq!(got.len(), 1, "an idle loop gets a change at once");
            assert_eq!(got[0].real_servers.len(), 4);
            // No word from the loop at all: the gathered change goes out
            // after SYNC_WAIT_MAX anyway.
            tx.unbounded_send(ok(Update::RealServer(rs("rs-10"))))
                .unwrap();
            tokio::time::sleep(SYNC_WAIT_MAX / 2).await;
            assert!(received(&srx).is_empty());
            tokio::time::sleep(SYNC_WAIT_MAX).await;
            assert_eq!(received(&srx).len(), 1);
            drop(tx);
        };
        tokio::join!(task, script);
    }

    #[tokio::test(start_paused = true)]
    async fn a_relist_is_one_snapshot_once_complete_and_none_if_unchanged() {
        let metrics = Metrics::default();
        let (tx, srx, status_tx, task) = fed_source(&metrics);
        let script = async {
            for i in full_lists() {
                tx.unbounded_send(i).unwrap();
            }
            settle().await;
            assert_eq!(received(&srx).len(), 1);
            status_tx.send(1).unwrap();
            settle().await;
            // A RealServer relist arrives item by item, with the loop idle:
            // nothing goes out until it is complete.
            tx.unbounded_send(ok(Update::RealServer(WatchEvent::Init)))
                .unwrap();
            settle().await;
            for n in 0..5 {
                let WatchEvent::Apply(k, o) = rs(&format!("rs-{n}")) else {
                    unreachable!()
                };
                tx.unbounded_send(ok(Update::RealServer(WatchEvent::InitApply(k, o))))
                    .unwrap();
                settle().await;
                assert!(received(&srx).is_empty(), "a partial list was sent");
            }
            assert!(metrics.render().contains("lvs_agent_api_synced 0"));
            tx.unbounded_send(ok(Update::RealServer(WatchEvent::InitDone)))
                .unwrap();
            settle().await;
            let got = received(&srx);
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].real_servers.len(), 5);
            assert!(metrics.render().contains("lvs_agent_api_synced 1"));
            status_tx.send(2).unwrap();
            settle().await;
            // The same relist again: nothing to sync.
            tx.unbounded_send(ok(Update::RealServer(WatchEvent::Init)))
                .unwrap();
            for n in 0..5 {
                let WatchEvent::Apply(k, o) = rs(&format!("rs-{n}")) else {
                    unreachable!()
                };
                tx.unbounded_send(ok(Update::RealServer(WatchEvent::InitApply(k, o))))
                    .unwrap();
            }
            tx.unbounded_send(ok(Update::RealServer(WatchEvent::InitDone)))
                .unwrap();
            tokio::time::sleep(DEBOUNCE * 3).await;
            assert!(received(&srx).is_empty());
            drop(tx);
        };
        tokio::join!(task, script);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_and_incomplete_lists_send_nothing() {
        let (tx, items) = feed();
        let (stx, srx) = mpsc::channel();
        let metrics = Metrics::default();
        let task = async {
            run_watches(items, DEBOUNCE, &metrics, SnapshotSink::new(stx)).await;
        };
        let script = async {
            // Only two kinds listed, the third keeps failing.
            for i in full_lists().into_iter().filter(|(k, _)| *k != Kind::Node) {
                tx.unbounded_send(i).unwrap();
            }
            for _ in 0..3 {
                tx.unbounded_send((Kind::Node, Err("connection refused".into())))
                    .unwrap();
            }
            tokio::time::sleep(DEBOUNCE * 4).await;
            assert!(received(&srx).is_empty());
            let text = metrics.render();
            assert!(text.contains("lvs_agent_api_synced 0"), "{text}");
            assert!(
                text.contains("lvs_agent_watch_errors_total{kind=\"Node\"} 3"),
                "{text}"
            );
            // The Node list completes: now the snapshot goes out.
            tx.unbounded_send(ok(Update::Node(WatchEvent::Init)))
                .unwrap();
            tx.unbounded_send(ok(Update::Node(WatchEvent::InitDone)))
                .unwrap();
            tokio::time::sleep(DEBOUNCE * 2).await;
            assert_eq!(received(&srx).len(), 1);

            // A VirtualService relist starts and the API server goes away
            // in the middle: nothing is sent, whatever else changes.
            tx.unbounded_send(ok(Update::VirtualService(WatchEvent::Init)))
                .unwrap();
            tx.unbounded_send((Kind::VirtualService, Err("eof".into())))
                .unwrap();
            tx.unbounded_send(ok(Update::RealServer(rs("late"))))
                .unwrap();
            tokio::time::sleep(DEBOUNCE * 4).await;
            assert!(received(&srx).is_empty());
            // Back: the relist completes and the held-back change goes out.
            tx.unbounded_send(ok(Update::VirtualService(WatchEvent::Init)))
                .unwrap();
            tx.unbounded_send(ok(Update::VirtualService(WatchEvent::InitDone)))
                .unwrap();
            tokio::time::sleep(DEBOUNCE * 2).await;
            let got = received(&srx);
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].real_servers.len(), 1);
            assert_eq!(
                got[0].real_servers[0].meta,
                Meta {
                    namespace: "default".into(),
                    name: "late".into(),
                    ..Meta::default()
                }
            );
            drop(tx);
        };
        tokio::join!(task, script);
    }

    #[test]
    fn reconnect_backoff_is_capped_jittered_and_resets() {
        use kube::runtime::utils::Backoff;
        use std::time::Duration;
        let ms = Duration::from_millis;
        let mut b = super::reconnect_backoff();
        let delays: Vec<_> = (&mut b).take(10).collect();
        assert!(delays[0] >= ms(400) && delays[0] < ms(800), "{delays:?}");
        assert!(delays.iter().all(|d| *d < ms(10_000)), "{delays:?}");
        assert!(delays[9] >= ms(5_000), "{delays:?}");
        // Jittered: a fleet of agents does not retry in lockstep.
        let other: Vec<_> = super::reconnect_backoff().take(10).collect();
        assert_ne!(delays, other);
        b.reset();
        assert!(b.next().unwrap() < ms(800));
    }
}

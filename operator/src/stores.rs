//! One reflector per kind, shared by every controller.
//!
//! The reflectors run from startup on every replica, so a follower has warm
//! caches (and is ready) when it becomes leader. Each watch event, once
//! applied to its store, is fanned out to the controllers' trigger streams
//! and, when it changed what the analysis reads, counted in [`ChangeCounters`]. The
//! loops report to [`Health`] for `/healthz`.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::channel::mpsc;
use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use lvs_api::{LvsNode, NodeInfo, RealServer, VirtualService};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::http::Health;
use crate::metrics::KindLabel;

/// Broadcasts each touched object to every subscribed trigger stream.
#[derive(Debug)]
pub struct Fanout<K> {
    subscribers: Arc<Mutex<Vec<mpsc::UnboundedSender<K>>>>,
}

impl<K> Clone for Fanout<K> {
    fn clone(&self) -> Self {
        Fanout {
            subscribers: self.subscribers.clone(),
        }
    }
}

impl<K> Default for Fanout<K> {
    fn default() -> Self {
        Fanout {
            subscribers: Arc::default(),
        }
    }
}

impl<K: Clone + Send + 'static> Fanout<K> {
    /// A stream of every object touched from now on, shaped as a controller
    /// trigger stream.
    pub fn subscribe(&self) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static {
        let (tx, rx) = mpsc::unbounded();
        self.lock().push(tx);
        rx.map(Ok)
    }

    fn send(&self, obj: &K) {
        // Drop subscribers whose controller has stopped.
        self.lock()
            .retain(|tx| tx.unbounded_send(obj.clone()).is_ok());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<mpsc::UnboundedSender<K>>> {
        self.subscribers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The VirtualServices and RealServers the watches could not read, as
/// `"<Kind> <namespace>/<name>"` -> why (the field path and the error).
///
/// These kinds are read strictly (`deny_unknown_fields`): a field this
/// operator does not know (an object written against a newer CRD) may change
/// what the object means, so it is left out of the analysis as if it did not
/// exist. The watches take the API server's list as untyped objects and read
/// them one by one, so one such object never fails the list of the others.
/// Each is logged once (again when the reason changes) and counted in the
/// `lvs_operator_unreadable_objects` gauge, by kind.
#[derive(Debug, Clone, Default)]
pub struct Unreadable {
    objects: Arc<Mutex<BTreeMap<String, String>>>,
    gauge: Family<KindLabel, Gauge>,
}

impl Unreadable {
    /// Counts into `gauge` (the metric [`crate::metrics::Metrics::unreadable`]).
    pub fn new(gauge: Family<KindLabel, Gauge>) -> Self {
        Unreadable {
            objects: Arc::default(),
            gauge,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.objects
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn count(&self, m: &BTreeMap<String, String>, kind: &'static str) {
        let prefix = format!("{kind} ");
        let n = m.keys().filter(|id| id.starts_with(&prefix)).count();
        self.gauge
            .get_or_create(&KindLabel { kind })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Records that `key` (namespace/name) of `kind` cannot be read.
    pub fn set(&self, kind: &'static str, key: &str, why: String) {
        let id = format!("{kind} {key}");
        let mut m = self.lock();
        if m.get(&id) == Some(&why) {
            return;
        }
        warn!(object = %id, error = %why, "cannot read this object; leaving it out of the analysis (as if it did not exist) until it is readable");
        m.insert(id, why);
        self.count(&m, kind);
    }

    /// Records that `key` of `kind` was read, or is gone.
    pub fn clear(&self, kind: &'static str, key: &str) {
        let id = format!("{kind} {key}");
        let mut m = self.lock();
        if m.remove(&id).is_some() {
            info!(object = %id, "the object is readable again (or gone)");
            self.count(&m, kind);
        }
    }

    /// After a complete list of `kind`: exactly `bad` (key -> why) of that
    /// kind are unreadable.
    pub fn replace(&self, kind: &'static str, bad: BTreeMap<String, String>) {
        let prefix = format!("{kind} ");
        let stale: Vec<String> = self
            .lock()
            .keys()
            .filter_map(|id| id.strip_prefix(&prefix))
            .filter(|key| !bad.contains_key(*key))
            .map(str::to_owned)
            .collect();
        for key in stale {
            self.clear(kind, &key);
        }
        for (key, why) in bad {
            self.set(kind, &key, why);
        }
        self.count(&self.lock(), kind);
    }

    /// `"<Kind> <namespace>/<name>: <why>"`, sorted.
    pub fn list(&self) -> Vec<String> {
        self.lock()
            .iter()
            .map(|(id, why)| format!("{id}: {why}"))
            .collect()
    }
}

fn key_of(o: &DynamicObject) -> String {
    format!(
        "{}/{}",
        o.metadata.namespace.as_deref().unwrap_or_default(),
        o.metadata.name.as_deref().unwrap_or_default()
    )
}

/// What a strictly read watch keeps between events.
#[derive(Debug)]
pub struct ReadState<K: Resource<DynamicType = ()> + 'static> {
    kind: &'static str,
    unreadable: Unreadable,
    store: Store<K>,
    /// The objects of the list in progress that could not be read.
    relist: Option<BTreeMap<String, String>>,
}

impl<K: Resource<DynamicType = ()> + 'static> ReadState<K> {
    /// `store` is the reflector's own store, where an object that turns
    /// unreadable is found to be deleted.
    pub fn new(kind: &'static str, unreadable: Unreadable, store: Store<K>) -> Self {
        ReadState {
            kind,
            unreadable,
            store,
            relist: None,
        }
    }
}

/// Converts one event of an untyped watch into the typed one: an object that
/// cannot be read is left out of a list, and when it changes it counts as
/// deleted (removed from the store if an earlier version was read).
pub fn read_event<K>(
    ev: watcher::Event<DynamicObject>,
    st: &mut ReadState<K>,
) -> Option<watcher::Event<K>>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + 'static,
{
    let stored = |st: &ReadState<K>, o: &DynamicObject| {
        let mut r = ObjectRef::<K>::new(o.metadata.name.as_deref().unwrap_or_default());
        if let Some(ns) = o.metadata.namespace.as_deref() {
            r = r.within(ns);
        }
        st.store.get(&r).map(|k| K::clone(&k))
    };
    Some(match ev {
        watcher::Event::Init => {
            st.relist = Some(BTreeMap::new());
            watcher::Event::Init
        }
        watcher::Event::InitApply(o) => {
            let key = key_of(&o);
            match lvs_api::read_strict::<K>(o) {
                Ok(k) => watcher::Event::InitApply(k),
                Err(why) => {
                    st.relist.get_or_insert_default().insert(key, why);
                    return None;
                }
            }
        }
        watcher::Event::InitDone => {
            st.unreadable
                .replace(st.kind, st.relist.take().unwrap_or_default());
            watcher::Event::InitDone
        }
        watcher::Event::Apply(o) => {
            let key = key_of(&o);
            let old = stored(st, &o);
            match lvs_api::read_strict::<K>(o) {
                Ok(k) => {
                    st.unreadable.clear(st.kind, &key);
                    watcher::Event::Apply(k)
                }
                Err(why) => {
                    st.unreadable.set(st.kind, &key, why);
                    watcher::Event::Delete(old?)
                }
            }
        }
        watcher::Event::Delete(o) => {
            let key = key_of(&o);
            st.unreadable.clear(st.kind, &key);
            let old = stored(st, &o);
            match lvs_api::read_strict::<K>(o) {
                Ok(k) => watcher::Event::Delete(k),
                Err(_) => watcher::Event::Delete(old?),
            }
        }
    })
}

/// The read side of every reflector.
#[derive(Debug, Clone)]
pub struct Stores {
    pub vs: Store<VirtualService>,
    pub rs: Store<RealServer>,
    pub nodes: Store<Node>,
    pub lvsnodes: Store<LvsNode>,
    /// Services (LoadBalancer Services and the ones `spec.backends` names).
    pub services: Store<Service>,
    /// EndpointSlices that belong to a Service (label
    /// `kubernetes.io/service-name`).
    pub slices: Store<EndpointSlice>,
    /// Bumped by the watch tasks after a store took a change of what the
    /// analysis reads.
    pub changes: ChangeCounters,
    /// The VirtualServices and RealServers left out because they cannot be
    /// read.
    pub unreadable: Unreadable,
}

/// Change counters, one per derived value: the planner's analysis (of
/// VirtualServices, RealServers and Nodes) and the agents' reports (of
/// LvsNodes). A watch task bumps one after its store holds the change, so a
/// reader that takes the count before it reads the stores never pairs a
/// count with older objects.
#[derive(Debug, Clone, Default)]
pub struct ChangeCounters {
    planner: Arc<AtomicU64>,
    reports: Arc<AtomicU64>,
}

/// Which counter a kind's changes bump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    Planner,
    Reports,
    /// Read by no derived value (Services and EndpointSlices, which only
    /// the Service controller reads).
    Neither,
}

impl ChangeCounters {
    /// Changes of the planner's inputs so far.
    pub fn planner(&self) -> u64 {
        self.planner.load(Ordering::Acquire)
    }

    /// Changes of the agents' reports so far.
    pub fn reports(&self) -> u64 {
        self.reports.load(Ordering::Acquire)
    }

    /// Counts one change of `input`.
    pub fn bump(&self, input: Input) {
        let c = match input {
            Input::Planner => &self.planner,
            Input::Reports => &self.reports,
            Input::Neither => return,
        };
        c.fetch_add(1, Ordering::AcqRel);
    }
}

/// A watched kind, as far as the derived values go: which counter its changes
/// bump and whether an update changes anything they read.
pub trait Watched: Resource + Sized {
    const INPUT: Input;
    /// `false` when `new` differs from `old` only where no derived value looks
    /// (a status the operator wrote, a heartbeat, a resourceVersion).
    fn changed(old: &Self, new: &Self) -> bool;
}

/// The planner reads a VirtualService's or RealServer's identity, labels,
/// age and spec; the API server bumps `generation` on every spec change and
/// only then (status writes leave it alone). Without a generation (never for
/// an object read from an API server) the specs are compared.
fn object_changed<K: Resource, S: PartialEq>(old: &K, old_spec: &S, new: &K, new_spec: &S) -> bool {
    let (o, n) = (old.meta(), new.meta());
    o.uid != n.uid
        || o.labels != n.labels
        || o.generation != n.generation
        || o.creation_timestamp != n.creation_timestamp
        || (n.generation.is_none() && old_spec != new_spec)
}

impl Watched for VirtualService {
    const INPUT: Input = Input::Planner;
    fn changed(old: &Self, new: &Self) -> bool {
        object_changed(old, &old.spec, new, &new.spec)
    }
}

impl Watched for RealServer {
    const INPUT: Input = Input::Planner;
    fn changed(old: &Self, new: &Self) -> bool {
        object_changed(old, &old.spec, new, &new.spec)
    }
}

impl Watched for Node {
    const INPUT: Input = Input::Planner;
    fn changed(old: &Self, new: &Self) -> bool {
        NodeInfo::from(old) != NodeInfo::from(new)
    }
}

/// Services and EndpointSlices feed the Service controller only; the
/// analysis never reads them.
impl Watched for Service {
    const INPUT: Input = Input::Neither;
    fn changed(_: &Self, _: &Self) -> bool {
        false
    }
}

impl Watched for EndpointSlice {
    const INPUT: Input = Input::Neither;
    fn changed(_: &Self, _: &Self) -> bool {
        false
    }
}

impl Watched for LvsNode {
    const INPUT: Input = Input::Reports;
    fn changed(old: &Self, new: &Self) -> bool {
        old.meta().uid != new.meta().uid
            || old.status.as_ref().map(|s| (&s.services, &s.vips))
                != new.status.as_ref().map(|s| (&s.services, &s.vips))
    }
}

/// Whether `event`, about to be applied to `store`, changes a derived value.
/// A relist replaces the whole store when it is done, so its end counts as a
/// change (objects may have gone while the watch was down).
pub fn changes_derived<K>(store: &Store<K>, event: &watcher::Event<K>) -> bool
where
    K: Watched + Clone + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    match event {
        watcher::Event::Apply(new) => store
            .get(&ObjectRef::from_obj(new))
            .is_none_or(|old| K::changed(&old, new)),
        watcher::Event::Delete(_) | watcher::Event::InitDone => true,
        watcher::Event::Init | watcher::Event::InitApply(_) => false,
    }
}

/// The trigger side of every reflector.
#[derive(Debug, Clone, Default)]
pub struct Feeds {
    pub vs: Fanout<VirtualService>,
    pub rs: Fanout<RealServer>,
    pub nodes: Fanout<Node>,
    pub lvsnodes: Fanout<LvsNode>,
    pub services: Fanout<Service>,
    pub slices: Fanout<EndpointSlice>,
}

impl Stores {
    /// Waits until every store holds its initial list.
    pub async fn wait_until_ready(&self) -> Result<(), reflector::store::WriterDropped> {
        self.vs.wait_until_ready().await?;
        self.rs.wait_until_ready().await?;
        self.nodes.wait_until_ready().await?;
        self.services.wait_until_ready().await?;
        self.slices.wait_until_ready().await?;
        self.lvsnodes.wait_until_ready().await
    }
}

/// Marks the watch of `kind` ended when its loop returns, panics or is aborted.
struct Ended {
    health: Arc<Health>,
    kind: &'static str,
}

impl Drop for Ended {
    fn drop(&mut self) {
        self.health.watch_ended(self.kind);
    }
}

fn drive<K, S>(
    source: impl FnOnce(Store<K>) -> S,
    kind: &'static str,
    feed: Fanout<K>,
    trim: fn(&mut K),
    health: Arc<Health>,
    changes: ChangeCounters,
) -> (Store<K>, JoinHandle<()>)
where
    K: Watched + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
    S: Stream<Item = watcher::Result<watcher::Event<K>>> + Send + 'static,
{
    let (reader, writer) = reflector::store::<K>();
    let source = source(reader.clone());
    let store = reader.clone();
    health.watch_started(kind);
    let task = tokio::spawn(async move {
        let _ended = Ended {
            health: health.clone(),
            kind,
        };
        // Judged before the store takes the event (it still holds the old
        // object), counted after (readers must find the change there). The
        // stream hands on one event at a time, so one flag is enough.
        let pending = Arc::new(AtomicBool::new(false));
        let judged = pending.clone();
        let stream = source
            .modify(trim)
            .inspect_ok(move |event| {
                if changes_derived(&store, event) {
                    judged.store(true, Ordering::Relaxed);
                }
            })
            .reflect(writer);
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            if pending.swap(false, Ordering::Relaxed) {
                changes.bump(K::INPUT);
            }
            match item {
                Ok(event) => {
                    // Init and InitDone count too: a relist of an empty kind
                    // is a working watch.
                    health.watch_event(kind);
                    match event {
                        watcher::Event::Apply(obj)
                        | watcher::Event::InitApply(obj)
                        | watcher::Event::Delete(obj) => {
                            debug!(kind, name = %obj.name_any(), namespace = ?obj.namespace(), "watch event");
                            feed.send(&obj);
                        }
                        watcher::Event::Init | watcher::Event::InitDone => {}
                    }
                }
                Err(e) => {
                    health.watch_error(kind, Instant::now(), &e.to_string());
                    warn!(kind, error = %e, "watch failed; retrying with backoff");
                }
            }
        }
        warn!(kind, "the watch stream ended");
    });
    (reader, task)
}

fn drop_managed_fields<K: Resource>(o: &mut K) {
    o.meta_mut().managed_fields = None;
}

/// Nodes carry image lists and much else the planner never reads.
fn trim_node(n: &mut Node) {
    n.metadata.managed_fields = None;
    n.metadata.annotations = None;
    n.spec = None;
    if let Some(s) = n.status.as_mut() {
        s.images = None;
        s.volumes_attached = None;
        s.volumes_in_use = None;
        s.config = None;
        s.conditions = None;
        s.node_info = None;
    }
}

/// A typed watch of `K`, cluster-wide.
fn typed<K>(client: &Client) -> impl FnOnce(Store<K>) -> BoxWatch<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let api = Api::<K>::all(client.clone());
    move |_| {
        watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed()
    }
}

/// A watch of the EndpointSlices that belong to a Service (those with the
/// label `kubernetes.io/service-name`), cluster-wide. Events of slices no
/// VirtualService refers to are dropped by the trigger mapper, so they cost
/// no reconcile.
fn service_slices(client: &Client) -> impl FnOnce(Store<EndpointSlice>) -> BoxWatch<EndpointSlice> {
    let api = Api::<EndpointSlice>::all(client.clone());
    move |_| {
        watcher(
            api,
            watcher::Config::default().labels(crate::backends::SERVICE_NAME_LABEL),
        )
        .default_backoff()
        .boxed()
    }
}

type BoxWatch<K> = futures::stream::BoxStream<'static, watcher::Result<watcher::Event<K>>>;

/// A watch of a strictly typed kind, read object by object (see
/// [`Unreadable`]): the API server's list is taken as untyped objects, so
/// one object this operator cannot read never fails the list of the others.
fn strict<K>(
    client: &Client,
    kind: &'static str,
    unreadable: Unreadable,
) -> impl FnOnce(Store<K>) -> BoxWatch<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ApiResource::erase::<K>(&()));
    move |store| {
        let mut st = ReadState::new(kind, unreadable, store);
        watcher(api, watcher::Config::default())
            .default_backoff()
            .filter_map(move |r| {
                std::future::ready(match r {
                    Ok(ev) => read_event(ev, &mut st).map(Ok),
                    Err(e) => Some(Err(e)),
                })
            })
            .boxed()
    }
}

/// Starts the reflectors (cluster-wide); `health` follows their loops.
/// Unreadable objects are only logged; see [`start_with`].
pub fn start(client: &Client, health: &Arc<Health>) -> (Stores, Feeds, Vec<JoinHandle<()>>) {
    start_with(client, health, Unreadable::default())
}

/// Starts the reflectors (cluster-wide); `health` follows their loops,
/// `unreadable` records the objects left out.
pub fn start_with(
    client: &Client,
    health: &Arc<Health>,
    unreadable: Unreadable,
) -> (Stores, Feeds, Vec<JoinHandle<()>>) {
    let feeds = Feeds::default();
    let changes = ChangeCounters::default();
    let (vs, t1) = drive(
        strict::<VirtualService>(client, "VirtualService", unreadable.clone()),
        "VirtualService",
        feeds.vs.clone(),
        drop_managed_fields,
        health.clone(),
        changes.clone(),
    );
    let (rs, t2) = drive(
        strict::<RealServer>(client, "RealServer", unreadable.clone()),
        "RealServer",
        feeds.rs.clone(),
        drop_managed_fields,
        health.clone(),
        changes.clone(),
    );
    let (nodes, t3) = drive(
        typed::<Node>(client),
        "Node",
        feeds.nodes.clone(),
        trim_node,
        health.clone(),
        changes.clone(),
    );
    let (lvsnodes, t4) = drive(
        typed::<LvsNode>(client),
        "LvsNode",
        feeds.lvsnodes.clone(),
        drop_managed_fields,
        health.clone(),
        changes.clone(),
    );
    let (services, t5) = drive(
        typed::<Service>(client),
        "Service",
        feeds.services.clone(),
        drop_managed_fields,
        health.clone(),
        changes.clone(),
    );
    let (slices, t6) = drive(
        service_slices(client),
        "EndpointSlice",
        feeds.slices.clone(),
        drop_managed_fields,
        health.clone(),
        changes.clone(),
    );
    (
        Stores {
            vs,
            rs,
            nodes,
            lvsnodes,
            services,
            slices,
            changes,
            unreadable,
        },
        feeds,
        vec![t1, t2, t3, t4, t5, t6],
    )
}

#[cfg(test)]
mod tests;

//! One reflector per kind, shared by every controller.
//!
//! The reflectors run from startup on every replica, so a follower has warm
//! caches (and is ready) when it becomes leader. Each watch event, once
//! applied to its store, is fanned out to the controllers' trigger streams
//! and, when it changed what the analysis reads, counted in [`Changes`]. The
//! loops report to [`Health`] for `/healthz`.

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::channel::mpsc;
use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Node;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use lvs_api::{LvsNode, NodeInfo, RealServer, VirtualService};
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::http::Health;

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

/// The read side of every reflector.
#[derive(Debug, Clone)]
pub struct Stores {
    pub vs: Store<VirtualService>,
    pub rs: Store<RealServer>,
    pub nodes: Store<Node>,
    pub lvsnodes: Store<LvsNode>,
    /// Bumped by the watch tasks after a store took a change of what the
    /// analysis reads.
    pub changes: Changes,
}

/// Change counters, one per derived value: the planner's analysis (of
/// VirtualServices, RealServers and Nodes) and the agents' reports (of
/// LvsNodes). A watch task bumps one after its store holds the change, so a
/// reader that takes the count before it reads the stores never pairs a
/// count with older objects.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    planner: Arc<AtomicU64>,
    reports: Arc<AtomicU64>,
}

/// Which counter a kind's changes bump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    Planner,
    Reports,
}

impl Changes {
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

impl Watched for LvsNode {
    const INPUT: Input = Input::Reports;
    fn changed(old: &Self, new: &Self) -> bool {
        old.meta().uid != new.meta().uid
            || old.status.as_ref().map(|s| &s.services) != new.status.as_ref().map(|s| &s.services)
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
}

impl Stores {
    /// Waits until every store holds its initial list.
    pub async fn wait_until_ready(&self) -> Result<(), reflector::store::WriterDropped> {
        self.vs.wait_until_ready().await?;
        self.rs.wait_until_ready().await?;
        self.nodes.wait_until_ready().await?;
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

fn drive<K>(
    api: Api<K>,
    kind: &'static str,
    feed: Fanout<K>,
    trim: fn(&mut K),
    health: Arc<Health>,
    changes: Changes,
) -> (Store<K>, JoinHandle<()>)
where
    K: Watched + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    let (reader, writer) = reflector::store::<K>();
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
        let stream = watcher(api, watcher::Config::default())
            .default_backoff()
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

/// Starts the four reflectors (cluster-wide); `health` follows their loops.
pub fn start(client: &Client, health: &Arc<Health>) -> (Stores, Feeds, Vec<JoinHandle<()>>) {
    let feeds = Feeds::default();
    let changes = Changes::default();
    let (vs, t1) = drive(
        Api::<VirtualService>::all(client.clone()),
        "VirtualService",
        feeds.vs.clone(),
        drop_managed_fields,
        health.clone(),
        changes.clone(),
    );
    let (rs, t2) = drive(
        Api::<RealServer>::all(client.clone()),
        "RealServer",
        feeds.rs.clone(),
        drop_managed_fields,
        health.clone(),
        changes.clone(),
    );
    let (nodes, t3) = drive(
        Api::<Node>::all(client.clone()),
        "Node",
        feeds.nodes.clone(),
        trim_node,
        health.clone(),
        changes.clone(),
    );
    let (lvsnodes, t4) = drive(
        Api::<LvsNode>::all(client.clone()),
        "LvsNode",
        feeds.lvsnodes.clone(),
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
            changes,
        },
        feeds,
        vec![t1, t2, t3, t4],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(labels: &[(&str, &str)], rv: &str) -> Node {
        let mut n = Node::default();
        n.metadata.name = Some("n1".into());
        n.metadata.resource_version = Some(rv.into());
        n.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        n
    }

    #[test]
    fn only_what_the_analysis_reads_counts_as_a_change() {
        let (store, mut writer) = reflector::store::<Node>();
        let first = watcher::Event::Apply(node(&[("role", "director")], "1"));
        assert!(changes_derived(&store, &first), "a new object");
        writer.apply_watcher_event(&first);
        let heartbeat = watcher::Event::Apply(node(&[("role", "director")], "2"));
        assert!(!changes_derived(&store, &heartbeat));
        let relabelled = watcher::Event::Apply(node(&[("role", "spare")], "3"));
        assert!(changes_derived(&store, &relabelled));
        assert!(changes_derived(
            &store,
            &watcher::Event::Delete(node(&[], "4"))
        ));
        // A relist counts once, when the store takes it whole.
        assert!(!changes_derived(&store, &watcher::Event::Init));
        assert!(!changes_derived(
            &store,
            &watcher::Event::InitApply(node(&[("role", "spare")], "5"))
        ));
        assert!(changes_derived(&store, &watcher::Event::InitDone));
    }

    #[test]
    fn counters_are_separate() {
        let c = Changes::default();
        c.bump(Input::Planner);
        c.bump(Input::Planner);
        c.bump(Input::Reports);
        assert_eq!((c.planner(), c.reports()), (2, 1));
    }
}

//! One reflector per kind, shared by every controller.
//!
//! The reflectors run from startup on every replica, so a follower has warm
//! caches (and is ready) when it becomes leader. Each watch event, once
//! applied to its store, is fanned out to the controllers' trigger streams.

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use futures::channel::mpsc;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Node;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use lvs_api::{LvsNode, RealServer, VirtualService};
use serde::de::DeserializeOwned;
use std::time::Instant;
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
) -> (Store<K>, JoinHandle<()>)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    let (reader, writer) = reflector::store::<K>();
    health.watch_started(kind);
    let task = tokio::spawn(async move {
        let _ended = Ended {
            health: health.clone(),
            kind,
        };
        let stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(trim)
            .reflect(writer);
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
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
    let (vs, t1) = drive(
        Api::<VirtualService>::all(client.clone()),
        "VirtualService",
        feeds.vs.clone(),
        drop_managed_fields,
        health.clone(),
    );
    let (rs, t2) = drive(
        Api::<RealServer>::all(client.clone()),
        "RealServer",
        feeds.rs.clone(),
        drop_managed_fields,
        health.clone(),
    );
    let (nodes, t3) = drive(
        Api::<Node>::all(client.clone()),
        "Node",
        feeds.nodes.clone(),
        trim_node,
        health.clone(),
    );
    let (lvsnodes, t4) = drive(
        Api::<LvsNode>::all(client.clone()),
        "LvsNode",
        feeds.lvsnodes.clone(),
        drop_managed_fields,
        health.clone(),
    );
    (
        Stores {
            vs,
            rs,
            nodes,
            lvsnodes,
        },
        feeds,
        vec![t1, t2, t3, t4],
    )
}

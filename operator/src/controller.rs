//! The VirtualService and RealServer controllers.
//!
//! Both reconcile the same way: take the analysis of the whole store (the
//! planner is deterministic; the analysis is computed again only when its
//! inputs changed, see [`crate::derived`]), compute this object's status, and
//! write it with server-side apply only when it differs from what the object
//! has.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, ObjectReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, Patch, PatchParams};
use kube::runtime::controller::{Action, Config, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};
use lvs_api::{
    LabelSelector, LvsNode, NodeInfo, RealServer, ServiceReport, VipRole, VirtualService,
    VirtualServiceSpec,
};
use serde::Serialize;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::derived::{Analyzed, DerivedState};
use crate::error::{Error, Result, backoff_delay};
use crate::mapping::{self, LastSeen};
use crate::metrics::Metrics;
use crate::status::{self, EventSpec, NodeReports};
use crate::stores::{Feeds, Stores};

/// The finalizer that earlier operators put on every VirtualService. It had no
/// job (agents drop a service as soon as the object is terminating, and the
/// operator owns nothing outside the object), yet it held every deletion
/// while no operator ran. The operator adds no finalizer now and removes this
/// one wherever it finds it, so objects from an older release do not stay
/// stuck after an upgrade.
pub const LEGACY_FINALIZER: &str = "lvs.lvs-operator.io/cleanup";

/// How often every object is reconciled even when nothing triggered it.
const RESYNC: Duration = Duration::from_secs(300);

/// Reconciles in flight per controller. A reconcile is mostly waiting for
/// the API server (a status write and its Events, one after the other), so
/// the objects' statuses are written as fast as this many round trips in
/// parallel allow; the analysis they read is shared (see
/// [`crate::derived`]).
const CONCURRENCY: u16 = 32;

const VS_CONTROLLER: &str = "virtualservice";
const RS_CONTROLLER: &str = "realserver";

/// What every reconcile needs.
pub struct Context {
    pub client: Client,
    pub stores: Stores,
    /// Publishes the Events (see [`crate::events`]).
    pub events: crate::events::Publisher,
    pub metrics: Arc<Metrics>,
    /// Consecutive failures per object, for the error backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// The analysis and reports of the stores, kept while they are current.
    derived: DerivedState,
    /// Rate limit of the realserver health Events.
    health_events: Mutex<status::EventLimiter>,
    /// Addresses given to LoadBalancer Services (see
    /// [`crate::services::Allocations`]).
    pub allocations: crate::services::Allocations,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").finish_non_exhaustive()
    }
}

/// Now, to the second, as conditions carry it.
pub fn now_rfc3339() -> String {
    let secs = Timestamp::now().as_second();
    Timestamp::from_second(secs)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| Timestamp::now().to_string())
}

impl Context {
    pub fn new(client: Client, stores: Stores, metrics: Arc<Metrics>, instance: &str) -> Self {
        Context {
            events: crate::events::Publisher::new(client.clone(), crate::FIELD_MANAGER, instance),
            client,
            stores,
            metrics,
            failures: Mutex::new(HashMap::new()),
            derived: DerivedState::default(),
            health_events: Mutex::new(status::EventLimiter::default()),
            allocations: Default::default(),
        }
    }

    /// The planner's analysis of every object in the stores (computed again
    /// only after one of its inputs changed).
    pub fn planned(&self) -> Arc<Analyzed> {
        self.derived.planned(&self.stores)
    }

    /// The agents' reports (computed again only after one changed).
    pub fn reports(&self) -> Arc<NodeReports> {
        self.derived.reports(&self.stores)
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn failed(&self, key: &str) -> u32 {
        let mut f = self.failures();
        let n = f.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    pub(crate) fn succeeded(&self, key: &str) {
        self.failures().remove(key);
    }

    /// The health Events the rate limit lets out now (see
    /// [`status::EventLimiter`]); the others are logged at debug level.
    fn limit_health_events(&self, object: &str, events: Vec<EventSpec>) -> Vec<EventSpec> {
        let mut limiter = self
            .health_events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = std::time::Instant::now();
        events
            .into_iter()
            .filter(|e| {
                let ok = limiter.allow(object, e.reason, now);
                if !ok {
                    debug!(object, reason = e.reason, note = %e.note, suppressed = limiter.suppressed, "health Event suppressed by the rate limit");
                }
                ok
            })
            .collect()
    }

    async fn publish<K: Resource<DynamicType = ()>>(&self, obj: &K, events: &[EventSpec]) {
        for e in events {
            let ev = Event {
                type_: if e.warning {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: e.reason.to_string(),
                note: Some(truncate(&e.note, 1000)),
                action: "Reconcile".into(),
                secondary: e.node.as_deref().map(node_ref),
            };
            let reference = obj.object_ref(&());
            match self.events.publish(&ev, &reference).await {
                Ok(()) => {
                    self.metrics.events.inc();
                }
                Err(err) => {
                    warn!(reason = e.reason, name = %obj.meta().name.clone().unwrap_or_default(), error = %err, "publishing an Event failed");
                }
            }
        }
    }
}

/// A reference to the Node `name`, an Event's related object.
fn node_ref(name: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Node".into()),
        name: Some(name.into()),
        ..Default::default()
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn namespaced_key<K: Resource>(obj: &K, kind: &'static str) -> Result<(String, String)> {
    let name = obj.meta().name.clone().unwrap_or_default();
    let ns = obj
        .meta()
        .namespace
        .clone()
        .ok_or_else(|| Error::MissingNamespace {
            kind,
            name: name.clone(),
        })?;
    Ok((ns, name))
}

/// The server-side apply body for a status.
pub fn status_patch<K: Resource<DynamicType = ()>, S: Serialize>(status: &S) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    })
}

async fn apply_status<K, S>(api: &Api<K>, namespace: &str, name: &str, status: &S) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: Serialize,
{
    let params = PatchParams::apply(crate::FIELD_MANAGER).force();
    let body = status_patch::<K, S>(status);
    api.patch_status(name, &params, &Patch::Apply(&body))
        .await
        .map_err(Error::kube(format!(
            "apply status of {} {namespace}/{name}",
            K::kind(&())
        )))?;
    Ok(())
}

/// The merge patch that removes [`LEGACY_FINALIZER`] and keeps any other
/// finalizer; `None` when the object does not carry it. The resourceVersion
/// makes it conditional: if someone changed the list meanwhile, the API server
/// answers 409 and the next reconcile reads the list again.
pub fn legacy_finalizer_patch(meta: &ObjectMeta) -> Option<serde_json::Value> {
    let finalizers = meta.finalizers.as_deref().unwrap_or_default();
    if !finalizers.iter().any(|f| f == LEGACY_FINALIZER) {
        return None;
    }
    let keep: Vec<&String> = finalizers
        .iter()
        .filter(|f| *f != LEGACY_FINALIZER)
        .collect();
    Some(serde_json::json!({
        "metadata": {
            "finalizers": keep,
            "resourceVersion": meta.resource_version,
        }
    }))
}

/// Reconciles one VirtualService: drops the legacy finalizer if it is there,
/// then writes the status (none for an object being deleted).
pub async fn reconcile_vs(vs: Arc<VirtualService>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.start(VS_CONTROLLER);
    let (ns, name) = namespaced_key(vs.as_ref(), "VirtualService")?;
    let api: Api<VirtualService> = Api::namespaced(ctx.client.clone(), &ns);
    if let Some(patch) = legacy_finalizer_patch(vs.meta()) {
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(Error::kube(format!(
                "remove finalizer {LEGACY_FINALIZER} from VirtualService {ns}/{name}"
            )))?;
        info!(vs = %format!("{ns}/{name}"), finalizer = LEGACY_FINALIZER, "removed the finalizer an earlier operator added");
    }
    let action = if vs.meta().deletion_timestamp.is_some() {
        debug!(vs = %format!("{ns}/{name}"), "being deleted: no status to write");
        Action::await_change()
    } else {
        apply_vs(&vs, &api, &ctx).await?
    };
    ctx.succeeded(&format!("VirtualService/{ns}/{name}"));
    Ok(action)
}

async fn apply_vs(vs: &VirtualService, api: &Api<VirtualService>, ctx: &Context) -> Result<Action> {
    let (ns, name) = namespaced_key(vs, "VirtualService")?;
    let key = format!("{ns}/{name}");
    let planned = ctx.planned();
    let Some(verdict) = planned.analysis.get(&key) else {
        // Deleted since it was queued; the delete event triggers what follows.
        return Ok(Action::await_change());
    };
    let old = vs.status.as_ref();
    if let Some(b) = crate::services::missing_service(vs, &ctx.stores.services)
        && old.and_then(|s| s.backends.as_ref()) != Some(&b)
    {
        crate::services::write_backends(&ctx.client, &ns, &name, Some(&b)).await?;
        info!(vs = %key, message = %b.message, "status.backends written");
    }
    let new = status::vs_status(old, &vs.spec, &ns, verdict, &ctx.reports(), &now_rfc3339());
    if !status::needs_write(old, &new) {
        ctx.metrics.status_write("VirtualService", false);
        debug!(vs = %key, "status unchanged");
        return Ok(Action::requeue(RESYNC));
    }
    // status.backends belongs to the Service controller's field manager.
    let mut body = new.clone();
    body.backends = None;
    apply_status(api, &ns, &name, &body).await?;
    ctx.metrics.status_write("VirtualService", true);
    info!(
        vs = %key,
        state = ?verdict.state,
        real_servers = %new.real_servers.as_ref().map(|r| r.summary.clone()).unwrap_or_default(),
        nodes = ?new.nodes,
        "status written"
    );
    let old_conditions = old.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let mut events = status::folded(status::vs_events(old_conditions, &new.conditions));
    events.extend(status::director_events(old, &new, &vs.spec));
    events.extend(status::drift_events(old, &new));
    events.extend(ctx.limit_health_events(
        &format!("VirtualService/{key}"),
        status::vs_health_events(old, &new),
    ));
    ctx.publish(vs, &events).await;
    Ok(Action::requeue(RESYNC))
}

/// Reconciles one RealServer's status.
pub async fn reconcile_rs(rs: Arc<RealServer>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.start(RS_CONTROLLER);
    let (ns, name) = namespaced_key(rs.as_ref(), "RealServer")?;
    let key = format!("{ns}/{name}");
    let planned = ctx.planned();
    let old = rs.status.as_ref();
    let mut new = status::rs_status_of(
        old,
        &rs.spec,
        rs.meta().generation,
        planned.selecting(&key),
        &now_rfc3339(),
    );
    (new.health_summary, new.health) = status::rs_health(
        &key,
        planned.selecting(&key).map(|(v, _)| v),
        &ctx.reports(),
    );
    if status::needs_write(old, &new) {
        let api: Api<RealServer> = Api::namespaced(ctx.client.clone(), &ns);
        apply_status(&api, &ns, &name, &new).await?;
        ctx.metrics.status_write("RealServer", true);
        info!(rs = %key, address = ?new.address, selected_by = ?new.selected_by, "status written");
        let old_conditions = old.map(|s| s.conditions.as_slice()).unwrap_or_default();
        let mut events = status::rs_events(old_conditions, &new.conditions);
        let old_health = old.map(|s| s.health.as_slice()).unwrap_or_default();
        events.extend(ctx.limit_health_events(
            &format!("RealServer/{key}"),
            status::rs_health_events(old_health, &new.health),
        ));
        ctx.publish(rs.as_ref(), &events).await;
    } else {
        ctx.metrics.status_write("RealServer", false);
    }
    ctx.succeeded(&format!("RealServer/{key}"));
    Ok(Action::requeue(RESYNC))
}

fn error_policy<K: Resource<DynamicType = ()>>(
    controller: &'static str,
    obj: &K,
    err: &Error,
    ctx: &Context,
) -> Action {
    let key = format!(
        "{}/{}/{}",
        K::kind(&()),
        obj.meta().namespace.clone().unwrap_or_default(),
        obj.meta().name.clone().unwrap_or_default()
    );
    let failures = ctx.failed(&key);
    let delay = backoff_delay(failures);
    ctx.metrics.error(controller, err.metric_label());
    warn!(object = %key, error = %err, failures, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

fn exists<K>(store: &Store<K>, obj: &K) -> bool
where
    K: Resource + Clone + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    store.get(&ObjectRef::from_obj(obj)).is_some()
}

fn key_of<K: Resource>(o: &K) -> String {
    format!(
        "{}/{}",
        o.meta().namespace.clone().unwrap_or_default(),
        o.meta().name.clone().unwrap_or_default()
    )
}

/// A node's planner view, remembered so that heartbeat-only updates trigger nothing.
fn node_change(
    memory: &LastSeen<NodeInfo>,
    store: &Store<Node>,
    node: &Node,
) -> Option<Vec<BTreeMap<String, String>>> {
    let info = NodeInfo::from(node);
    let present = exists(store, node);
    let old = memory.swap(&info.name, present.then(|| info.clone()));
    if present && old.as_ref() == Some(&info) {
        return None;
    }
    let mut sets = vec![info.labels];
    sets.extend(old.map(|o| o.labels));
    Some(sets)
}

/// The VirtualService controller: triggered by its own objects, by
/// RealServers, Nodes and LvsNodes, and by other VirtualServices with the
/// same address.
pub fn vs_controller(
    ctx: Arc<Context>,
    feeds: &Feeds,
    shutdown: watch::Receiver<bool>,
) -> impl Future<Output = ()> + Send + 'static {
    let stores = ctx.stores.clone();

    let (vs_store, rs_store) = (stores.vs.clone(), stores.rs.clone());
    let rs_labels: LastSeen<BTreeMap<String, String>> = LastSeen::default();
    let on_rs = move |rs: RealServer| {
        let key = key_of(&rs);
        let old = rs_labels.swap(&key, exists(&rs_store, &rs).then(|| rs.labels().clone()));
        let mut sets = vec![rs.labels()];
        sets.extend(old.as_ref());
        let selected_by = rs
            .status
            .as_ref()
            .map(|s| s.selected_by.clone())
            .unwrap_or_default();
        mapping::vss_for_realserver(
            &vs_store.state(),
            &rs.namespace().unwrap_or_default(),
            &sets,
            &selected_by,
        )
    };

    let (vs_store, rs_store, node_store) =
        (stores.vs.clone(), stores.rs.clone(), stores.nodes.clone());
    let nodes_seen: LastSeen<NodeInfo> = LastSeen::default();
    let on_node = move |node: Node| {
        let Some(sets) = node_change(&nodes_seen, &node_store, &node) else {
            return Vec::new();
        };
        let sets: Vec<&BTreeMap<String, String>> = sets.iter().collect();
        mapping::vss_for_node(
            &vs_store.state(),
            &rs_store.state(),
            &node.name_any(),
            &sets,
            &[],
        )
    };

    let (vs_store, rs_store, node_store, ln_store) = (
        stores.vs.clone(),
        stores.rs.clone(),
        stores.nodes.clone(),
        stores.lvsnodes.clone(),
    );
    let reports_seen: LastSeen<(Vec<ServiceReport>, Vec<VipRole>)> = LastSeen::default();
    let on_lvsnode = move |ln: LvsNode| {
        let node = ln.name_any();
        let seen = ln
            .status
            .as_ref()
            .map(|s| (s.services.clone(), s.vips.clone()))
            .unwrap_or_default();
        let present = exists(&ln_store, &ln);
        let old = reports_seen.swap(&node, present.then(|| seen.clone()));
        if present && old.as_ref() == Some(&seen) {
            // Only lastSyncTime or counters moved.
            return Vec::new();
        }
        // A changed VIP role reaches the services the node directs (below).
        let mut reported = mapping::reported_services(&ln);
        reported.extend(old.unwrap_or_default().0.into_iter().map(|r| r.name));
        let labels = node_store
            .get(&ObjectRef::new(&node))
            .map(|n| n.labels().clone());
        let sets: Vec<&BTreeMap<String, String>> = labels.iter().collect();
        mapping::vss_for_node(
            &vs_store.state(),
            &rs_store.state(),
            &node,
            &sets,
            &reported,
        )
    };

    let vs_store = stores.vs.clone();
    let vs_index = mapping::VsIndex::default();
    let on_vs = move |vs: VirtualService| {
        vs_index
            .update(&vs, exists(&vs_store, &vs))
            .into_iter()
            // Objects the index still holds after a relist dropped them.
            .filter(|r| vs_store.get(r).is_some())
            .collect::<Vec<_>>()
    };

    // The address policy can refuse or admit any VirtualService: a pool
    // or the API server's addresses touch all of them, a namespace's labels
    // those of the namespace.
    let vs_store = stores.vs.clone();
    let all_vss = move || -> Vec<ObjectRef<VirtualService>> {
        vs_store
            .state()
            .iter()
            .map(|v| ObjectRef::from_obj(v.as_ref()))
            .collect()
    };
    let (on_pool, on_api_service, on_api_endpoints) = (all_vss.clone(), all_vss.clone(), all_vss);
    let vs_store = stores.vs.clone();
    let on_namespace = move |ns: k8s_openapi::api::core::v1::Namespace| {
        let name = ns.name_any();
        vs_store
            .state()
            .iter()
            .filter(|v| v.namespace().as_deref() == Some(name.as_str()))
            .map(|v| ObjectRef::from_obj(v.as_ref()))
            .collect::<Vec<_>>()
    };

    let controller = Controller::for_stream(feeds.vs.subscribe(), stores.vs.clone())
        .with_config(
            Config::default()
                .debounce(Duration::from_millis(200))
                .concurrency(CONCURRENCY),
        )
        .watches_stream(feeds.pools.subscribe(), move |_| on_pool())
        .watches_stream(feeds.namespaces.subscribe(), on_namespace)
        .watches_stream(feeds.api_service.subscribe(), move |_| on_api_service())
        .watches_stream(feeds.api_endpoints.subscribe(), move |_| on_api_endpoints())
        .watches_stream(feeds.rs.subscribe(), on_rs)
        .watches_stream(feeds.nodes.subscribe(), on_node)
        .watches_stream(feeds.lvsnodes.subscribe(), on_lvsnode)
        .watches_stream(feeds.vs.subscribe(), on_vs)
        .reconcile_all_on(futures::stream::once(async {}))
        .graceful_shutdown_on(async move {
            let mut shutdown = shutdown;
            crate::stopped(&mut shutdown).await;
        });
    let run = controller.run(
        reconcile_vs,
        |vs, err, ctx| error_policy(VS_CONTROLLER, vs.as_ref(), err, &ctx),
        ctx,
    );
    run.for_each(|res| async move {
        if let Err(e) = res {
            debug!(error = %e, "virtualservice controller");
        }
    })
}

/// The RealServer controller: triggered by its own objects, by
/// VirtualServices whose spec changed, by Nodes the RealServers name, and
/// by LvsNodes whose destination entries about them changed (health).
pub fn rs_controller(
    ctx: Arc<Context>,
    feeds: &Feeds,
    shutdown: watch::Receiver<bool>,
) -> impl Future<Output = ()> + Send + 'static {
    let stores = ctx.stores.clone();

    let (vs_store, rs_store) = (stores.vs.clone(), stores.rs.clone());
    let specs_seen: LastSeen<VirtualServiceSpec> = LastSeen::default();
    let on_vs = move |vs: VirtualService| {
        let key = key_of(&vs);
        let present = exists(&vs_store, &vs);
        let old = specs_seen.swap(&key, present.then(|| vs.spec.clone()));
        if present && old.as_ref() == Some(&vs.spec) {
            // A status or metadata update: nothing a RealServer depends on.
            return Vec::new();
        }
        let mut owned: Vec<LabelSelector> = vec![vs.spec.selector().into_owned()];
        owned.extend(old.as_ref().map(|s| s.selector().into_owned()));
        let selectors: Vec<&LabelSelector> = owned.iter().collect();
        mapping::rss_for_virtualservice(
            &rs_store.state(),
            &vs.namespace().unwrap_or_default(),
            &key,
            &selectors,
        )
    };

    let (rs_store, node_store) = (stores.rs.clone(), stores.nodes.clone());
    let nodes_seen: LastSeen<NodeInfo> = LastSeen::default();
    let on_node = move |node: Node| {
        if node_change(&nodes_seen, &node_store, &node).is_none() {
            return Vec::new();
        }
        mapping::rss_for_node(&rs_store.state(), &node.name_any())
    };

    let (rs_store, ln_store) = (stores.rs.clone(), stores.lvsnodes.clone());
    let health_seen: LastSeen<mapping::HealthSeen> = LastSeen::default();
    let on_lvsnode = move |ln: LvsNode| {
        let present = exists(&ln_store, &ln);
        let now = mapping::HealthSeen::of(&ln);
        let old = health_seen
            .swap(&ln.name_any(), present.then(|| now.clone()))
            .unwrap_or_default();
        let now = if present { now } else { Default::default() };
        mapping::rss_with_changed_health(&rs_store.state(), &old, &now)
    };

    let controller = Controller::for_stream(feeds.rs.subscribe(), stores.rs.clone())
        .with_config(
            Config::default()
                .debounce(Duration::from_millis(200))
                .concurrency(CONCURRENCY),
        )
        .watches_stream(feeds.vs.subscribe(), on_vs)
        .watches_stream(feeds.nodes.subscribe(), on_node)
        .watches_stream(feeds.lvsnodes.subscribe(), on_lvsnode)
        .reconcile_all_on(futures::stream::once(async {}))
        .graceful_shutdown_on(async move {
            let mut shutdown = shutdown;
            crate::stopped(&mut shutdown).await;
        });
    let run = controller.run(
        reconcile_rs,
        |rs, err, ctx| error_policy(RS_CONTROLLER, rs.as_ref(), err, &ctx),
        ctx,
    );
    run.for_each(|res| async move {
        if let Err(e) = res {
            debug!(error = %e, "realserver controller");
        }
    })
}

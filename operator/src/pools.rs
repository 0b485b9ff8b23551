//! Address pools on the operator's side: the policy every analysis runs
//! under, and each LvsAddressPool's status (its CIDRs, how many addresses
//! are in use, Ready/Overlaps, and the index the admission policy reads).
//!
//! The operator runs in Kubernetes mode, where pools are always enforced:
//! with no pool, no VIP is allowed. The addresses no pool may hand out are
//! the built-in ones ([`lvs_planner::pools::builtin_denied`]), every
//! address of every Node, and the `default/kubernetes` Service's ClusterIPs
//! and endpoints.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Config, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use lvs_api::status::types;
use lvs_api::{
    AddressOwner, ConditionUpdate, LvsAddressPool, LvsAddressPoolStatus, Object,
    VirtualServiceSpec, compute_conditions,
};
use lvs_planner::pools::{AddressPolicy, Claim, Pool, decide_owners};
use lvs_planner::{Analysis, ServiceKey};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::controller::{Context, now_rfc3339};
use crate::error::{Error, Result, backoff_delay};
use crate::stores::{Feeds, PoolStores};

/// The address policy of one analysis, with what the pools' status needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolDecision {
    pub policy: AddressPolicy,
    /// The owners of addresses of non-shared pools (see
    /// [`lvs_planner::pools`] for the rule).
    pub owners: Vec<AddressOwner>,
    /// Pools whose addresses do not parse (left out of the policy): name ->
    /// why.
    pub invalid: BTreeMap<String, String>,
}

/// Every address of every node, and of the API server.
pub fn denied_addresses(
    nodes: &[Arc<Node>],
    api_service: &[Arc<Service>],
    api_endpoints: &[Arc<EndpointSlice>],
) -> BTreeMap<IpAddr, String> {
    let mut out = BTreeMap::new();
    for n in nodes {
        for a in n
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .into_iter()
            .flatten()
        {
            if let Ok(ip) = a.address.parse::<IpAddr>() {
                out.entry(ip)
                    .or_insert_with(|| format!("an address of node {}", n.name_any()));
            }
        }
    }
    for s in api_service {
        let spec = s.spec.as_ref();
        let ips = spec
            .and_then(|s| s.cluster_ips.clone())
            .unwrap_or_default()
            .into_iter()
            .chain(spec.and_then(|s| s.cluster_ip.clone()));
        for ip in ips.filter_map(|a| a.parse::<IpAddr>().ok()) {
            out.entry(ip)
                .or_insert_with(|| "the ClusterIP of the kubernetes Service".into());
        }
    }
    for e in api_endpoints {
        for ep in &e.endpoints {
            for ip in ep.addresses.iter().filter_map(|a| a.parse::<IpAddr>().ok()) {
                out.entry(ip).or_insert_with(|| {
                    "an API server address (kubernetes Service endpoint)".into()
                });
            }
        }
    }
    out
}

/// The policy for these objects; `previous` are the owners the pools'
/// status holds, `now` the time (RFC 3339) a released address is stamped
/// with.
pub fn decide(
    pools: &[Arc<LvsAddressPool>],
    namespaces: &[Arc<Namespace>],
    denied: BTreeMap<IpAddr, String>,
    vss: &[Object<VirtualServiceSpec>],
    now: &str,
) -> PoolDecision {
    let mut parsed = Vec::new();
    let mut invalid = BTreeMap::new();
    for p in pools {
        match Pool::from_spec(&p.name_any(), &p.spec) {
            Ok(pool) => parsed.push(pool),
            Err(e) => {
                invalid.insert(p.name_any(), e);
            }
        }
    }
    let mut policy = AddressPolicy::new(parsed);
    for (ip, why) in denied {
        policy.deny(ip, why);
    }
    let ns_labels: BTreeMap<String, BTreeMap<String, String>> = namespaces
        .iter()
        .map(|n| (n.name_any(), n.labels().clone()))
        .collect();
    policy.set_namespaces(ns_labels);
    // Every pool carries the same index; the first one by name that has
    // one speaks for all.
    let mut sorted: Vec<&Arc<LvsAddressPool>> = pools.iter().collect();
    sorted.sort_by_key(|p| p.name_any());
    let previous: Vec<AddressOwner> = sorted
        .iter()
        .find_map(|p| p.status.as_ref()?.index.as_ref())
        .map(|i| i.owners.clone())
        .unwrap_or_default();
    let claims: Vec<Claim> = vss
        .iter()
        .filter(|v| v.spec.validate().is_ok())
        .flat_map(|v| {
            v.spec.vips().into_iter().map(|address| Claim {
                namespace: v.meta.namespace.clone(),
                address,
                created: v.meta.creation_timestamp.clone(),
            })
        })
        .collect();
    let labels = |ns: &str| policy.namespace_labels(ns).cloned();
    let owners = decide_owners(&policy, &claims, &labels, &previous, now);
    for o in &owners {
        if let Ok(ip) = o.address.parse() {
            policy.set_owner(ip, o.namespace.clone());
        }
    }
    PoolDecision {
        policy,
        owners,
        invalid,
    }
}

/// The decision for what the stores hold now.
pub fn decide_from(
    stores: &PoolStores,
    nodes: &Store<Node>,
    vss: &[Object<VirtualServiceSpec>],
) -> PoolDecision {
    let denied = denied_addresses(
        &nodes.state(),
        &stores.api_service.state(),
        &stores.api_endpoints.state(),
    );
    decide(
        &stores.pools.state(),
        &stores.namespaces.state(),
        denied,
        vss,
        &now_rfc3339(),
    )
}

/// The status of one pool: its CIDRs, the addresses of accepted
/// VirtualServices it contains, Ready and Overlaps, and the shared index.
pub fn pool_status(
    pool: &LvsAddressPool,
    decision: &PoolDecision,
    analysis: &Analysis,
    now: &str,
) -> LvsAddressPoolStatus {
    let name = pool.name_any();
    let old = pool.status.clone().unwrap_or_default();
    let parsed = decision.policy.pool(&name);
    let ready = match (decision.invalid.get(&name), parsed) {
        (Some(why), _) => ConditionUpdate {
            type_: types::READY,
            status: false,
            reason: "InvalidAddresses".into(),
            message: why.clone(),
        },
        (None, Some(p)) => ConditionUpdate {
            type_: types::READY,
            status: true,
            reason: "Ready".into(),
            message: format!("{} CIDRs", p.cidrs.len()),
        },
        (None, None) => ConditionUpdate {
            type_: types::READY,
            status: false,
            reason: "Pending".into(),
            message: "not analysed yet".into(),
        },
    };
    let others: Vec<String> = decision
        .policy
        .overlaps()
        .into_iter()
        .filter_map(|(a, b)| {
            if a == name {
                Some(b)
            } else if b == name {
                Some(a)
            } else {
                None
            }
        })
        .collect();
    let overlaps = if others.is_empty() {
        ConditionUpdate {
            type_: types::OVERLAPS,
            status: false,
            reason: "NoOverlap".into(),
            message: String::new(),
        }
    } else {
        ConditionUpdate {
            type_: types::OVERLAPS,
            status: true,
            reason: "Overlaps".into(),
            message: format!(
                "shares addresses with LvsAddressPool {}; a VIP in both uses the first that admits its namespace (shared pools first, then by name)",
                others.join(", ")
            ),
        }
    };
    let in_use: BTreeSet<IpAddr> = match parsed {
        Some(p) => analysis
            .accepted()
            .filter_map(|v| match v.key {
                Some(ServiceKey::Tuple { addr, .. }) => Some(addr),
                _ => None,
            })
            .filter(|a| p.contains(*a))
            .collect(),
        None => BTreeSet::new(),
    };
    LvsAddressPoolStatus {
        conditions: compute_conditions(
            &old.conditions,
            &[ready, overlaps],
            now,
            pool.metadata.generation,
        ),
        cidrs: parsed
            .map(|p| p.cidrs.iter().map(ToString::to_string).collect())
            .unwrap_or_default(),
        in_use: u32::try_from(in_use.len()).unwrap_or(u32::MAX),
        index: Some(decision.policy.index(&decision.owners)),
    }
}

/// Reconciles one pool's status.
pub async fn reconcile_pool(pool: Arc<LvsAddressPool>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.start(POOL_CONTROLLER);
    let name = pool.name_any();
    let planned = ctx.planned();
    let new = pool_status(&pool, &planned.pools, &planned.analysis, &now_rfc3339());
    if pool.status.as_ref() == Some(&new) {
        ctx.metrics.status_write("LvsAddressPool", false);
        return Ok(Action::requeue(RESYNC));
    }
    let api: Api<LvsAddressPool> = Api::all(ctx.client.clone());
    let body = crate::controller::status_patch::<LvsAddressPool, _>(&new);
    api.patch_status(
        &name,
        &PatchParams::apply(crate::FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(Error::kube(format!(
        "apply status of LvsAddressPool {name}"
    )))?;
    ctx.metrics.status_write("LvsAddressPool", true);
    info!(pool = %name, cidrs = new.cidrs.len(), in_use = new.in_use, owners = new.index.as_ref().map_or(0, |i| i.owners.len()), "status written");
    Ok(Action::requeue(RESYNC))
}

const POOL_CONTROLLER: &str = "lvsaddresspool";
const RESYNC: Duration = Duration::from_secs(300);

fn all_pools(store: &Store<LvsAddressPool>) -> Vec<ObjectRef<LvsAddressPool>> {
    store
        .state()
        .iter()
        .map(|p| ObjectRef::from_obj(p.as_ref()))
        .collect()
}

/// The pool status controller: every pool is reconciled on any change of
/// what the index shows (pools, VirtualServices, Nodes, Namespaces, the
/// API server's addresses), since every pool carries the same index.
pub fn pool_controller(
    ctx: Arc<Context>,
    feeds: &Feeds,
    shutdown: watch::Receiver<bool>,
) -> impl Future<Output = ()> + Send + 'static {
    let store = ctx.stores.pools.pools.clone();
    let s1 = store.clone();
    let s2 = store.clone();
    let s3 = store.clone();
    let s4 = store.clone();
    let s5 = store.clone();
    let s6 = store.clone();
    let controller = Controller::for_stream(feeds.pools.subscribe(), store)
        .with_config(
            Config::default()
                .debounce(Duration::from_millis(500))
                .concurrency(2),
        )
        .watches_stream(feeds.pools.subscribe(), move |_| all_pools(&s1))
        .watches_stream(feeds.vs.subscribe(), move |_| all_pools(&s2))
        .watches_stream(feeds.nodes.subscribe(), move |_| all_pools(&s3))
        .watches_stream(feeds.namespaces.subscribe(), move |_| all_pools(&s4))
        .watches_stream(feeds.api_service.subscribe(), move |_| all_pools(&s5))
        .watches_stream(feeds.api_endpoints.subscribe(), move |_| all_pools(&s6))
        .reconcile_all_on(futures::stream::once(async {}))
        .graceful_shutdown_on(async move {
            let mut shutdown = shutdown;
            crate::stopped(&mut shutdown).await;
        });
    let run = controller.run(
        reconcile_pool,
        |pool, err, ctx| {
            let delay = backoff_delay(1);
            ctx.metrics.error(POOL_CONTROLLER, err.metric_label());
            warn!(pool = %pool.name_any(), error = %err, retry_in = ?delay, "reconcile failed");
            Action::requeue(delay)
        },
        ctx,
    );
    run.for_each(|res| async move {
        if let Err(e) = res {
            debug!(error = %e, "lvsaddresspool controller");
        }
    })
}

#[cfg(test)]
mod tests;

//! The Service controller: LoadBalancer Services of our class become
//! VirtualServices ([`crate::loadbalancer`]), and the endpoints of every
//! Service a VirtualService names in `spec.backends` become mirror
//! RealServers ([`crate::backends`]).
//!
//! It reconciles Services, triggered by the Service itself, by its
//! EndpointSlices (only while some VirtualService refers to the Service),
//! by the VirtualServices that refer to it or that it owns, and by its
//! mirror RealServers (someone else changed or deleted one). Every write is
//! a server-side apply of what differs from the store, or a delete of what
//! is no longer wanted; an unchanged world writes nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Config, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use lvs_api::{BackendsStatus, LvsAddressPool, RealServer, ServiceBackend, VirtualService};
use lvs_planner::pools::{AddressPolicy, Pool};
use serde_json::json;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::backends::{self, Mirror, SERVICE_NAME_LABEL};
use crate::controller::Context;
use crate::error::{Error, Result};
use crate::loadbalancer;
use crate::mapping::LastSeen;

const SERVICE_CONTROLLER: &str = "service";
/// The field manager of `status.backends` of VirtualServices: the
/// VirtualService controller applies the rest of the status as
/// [`crate::FIELD_MANAGER`], and an apply drops the fields its manager
/// leaves out, so each part has its own manager.
pub const BACKENDS_MANAGER: &str = "lvs-operator-backends";
/// Requeue after an allocation or annotation problem (the Service does not
/// change by itself, but pools may).
const RETRY: Duration = Duration::from_secs(60);
const RESYNC: Duration = Duration::from_secs(300);

/// Addresses this operator gave to LoadBalancer Services (address ->
/// namespace/name), held while allocating. Reconciles of different Services
/// run concurrently and the VirtualService just applied for one may not be in
/// the store yet when another allocates: the lock makes allocations one at a
/// time, and the map counts an address as in use until the store shows it
/// (or the Service is gone).
#[derive(Debug, Default)]
pub struct Allocations(tokio::sync::Mutex<BTreeMap<IpAddr, String>>);

fn svc_ref(namespace: &str, name: &str) -> ObjectRef<Service> {
    ObjectRef::new(name).within(namespace)
}

/// The (namespace, Service) a VirtualService refers to in `spec.backends`.
fn backend_of(vs: &VirtualService) -> Option<(String, String)> {
    let b = vs.spec.backends.as_ref()?;
    Some((vs.namespace()?, b.service.name.clone()))
}

/// Reconciles one Service: its LoadBalancer VirtualServices and address,
/// then the mirrors of its endpoints.
pub async fn reconcile_service(svc: Arc<Service>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.start(SERVICE_CONTROLLER);
    let ns = svc.namespace().ok_or_else(|| Error::MissingNamespace {
        kind: "Service",
        name: svc.name_any(),
    })?;
    let name = svc.name_any();
    if svc.meta().deletion_timestamp.is_some() {
        // Garbage collection removes what it owns.
        return Ok(Action::await_change());
    }
    let mut action = Action::requeue(RESYNC);
    if loadbalancer::is_ours(&svc) {
        if let Some(why) = load_balance(&svc, &ns, &ctx).await? {
            warn!(service = %format!("{ns}/{name}"), problem = %why, "LoadBalancer Service not served");
            publish(&ctx, &svc, "AddressNotAllocated", &why).await;
            action = Action::requeue(RETRY);
        }
    } else {
        remove_lb_vss(&svc, &ns, &ctx).await?;
    }
    mirror(&svc, &ns, &ctx).await?;
    Ok(action)
}

async fn publish(ctx: &Context, svc: &Service, reason: &str, note: &str) {
    let ev = Event {
        type_: EventType::Warning,
        reason: reason.into(),
        note: Some(note.chars().take(1000).collect()),
        action: "Reconcile".into(),
        secondary: None,
    };
    let reference = svc.object_ref(&());
    match ctx.events.publish(&ev, &reference).await {
        Ok(()) => {
            ctx.metrics.events.inc();
        }
        Err(e) => warn!(reason, error = %e, "publishing an Event failed"),
    }
}

/// The VirtualServices in the store that the operator made for `svc`.
fn lb_vss(ctx: &Context, svc: &Service, ns: &str) -> Vec<Arc<VirtualService>> {
    let uid = svc.uid();
    ctx.stores
        .vs
        .state()
        .into_iter()
        .filter(|v| {
            v.namespace().as_deref() == Some(ns)
                && loadbalancer::is_lb_vs_of(v.labels(), &svc.name_any())
                && v.owner_references()
                    .iter()
                    .any(|o| Some(&o.uid) == uid.as_ref())
        })
        .collect()
}

/// A Service that is not (or no longer) ours: delete the VirtualServices we
/// made for it, if any (its type changed away from LoadBalancer).
async fn remove_lb_vss(svc: &Service, ns: &str, ctx: &Context) -> Result<()> {
    let api: Api<VirtualService> = Api::namespaced(ctx.client.clone(), ns);
    for vs in lb_vss(ctx, svc, ns) {
        delete(&api, &vs.name_any(), "VirtualService", ns).await?;
        info!(service = %format!("{ns}/{}", svc.name_any()), vs = %vs.name_any(), "deleted: the Service is no longer a LoadBalancer of class lvs-operator.io/ipvs");
    }
    Ok(())
}

async fn delete<K>(api: &Api<K>, name: &str, kind: &str, ns: &str) -> Result<()>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(Error::Kube {
            action: format!("delete {kind} {ns}/{name}"),
            source: e,
        }),
    }
}

/// The address policy for allocation: every pool, with the denied addresses
/// and owners the pool controller publishes in each pool's `status.index`.
async fn policy(ctx: &Context) -> Result<AddressPolicy> {
    let pools = Api::<LvsAddressPool>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await
        .map_err(Error::kube("list LvsAddressPools"))?;
    let parsed: Vec<Pool> = pools
        .items
        .iter()
        .filter_map(|p| Pool::from_spec(&p.name_any(), &p.spec).ok())
        .collect();
    let index = pools
        .items
        .iter()
        .find_map(|p| p.status.as_ref().and_then(|s| s.index.clone()));
    let policy = AddressPolicy::new(parsed);
    Ok(match index {
        Some(i) => policy.with_index(&i),
        None => policy,
    })
}

/// Makes a LoadBalancer Service's VirtualServices and status match; `Some`
/// with the reason when it cannot be served (no address, bad annotation).
async fn load_balance(svc: &Service, ns: &str, ctx: &Context) -> Result<Option<String>> {
    let name = svc.name_any();
    let owned = lb_vss(ctx, svc, ns);
    let requested = match loadbalancer::requested_address(svc) {
        Ok(r) => r,
        Err(why) => return Ok(Some(why)),
    };
    // Keep the address in use: the first of our VirtualServices' own, else
    // what the status says.
    let current: Option<IpAddr> = owned
        .iter()
        .find_map(|v| v.spec.address.as_deref()?.parse().ok())
        .or_else(|| {
            svc.status
                .as_ref()?
                .load_balancer
                .as_ref()?
                .ingress
                .as_ref()?
                .iter()
                .find_map(|i| i.ip.as_deref()?.parse().ok())
        });
    let address = match (requested, current) {
        (Some(r), Some(c)) if r == c => c,
        (None, Some(c)) => c,
        (r, _) => {
            let mut given = ctx.allocations.0.lock().await;
            let policy = policy(ctx).await?;
            let ns_labels = Api::<Namespace>::all(ctx.client.clone())
                .get_opt(ns)
                .await
                .map_err(Error::kube(format!("get Namespace {ns}")))?
                .map(|n| n.labels().clone());
            let mut in_use: BTreeSet<IpAddr> = ctx
                .stores
                .vs
                .state()
                .iter()
                .filter_map(|v| v.spec.address.as_deref()?.parse().ok())
                .collect();
            let key = format!("{ns}/{name}");
            let services = &ctx.stores.services;
            given.retain(|a, owner| {
                let (o_ns, o_name) = owner.split_once('/').unwrap_or_default();
                !in_use.contains(a) && services.get(&svc_ref(o_ns, o_name)).is_some()
            });
            in_use.extend(given.iter().filter(|(_, o)| **o != key).map(|(a, _)| *a));
            match policy.allocate(ns, ns_labels.as_ref(), &in_use, r) {
                Ok(a) => {
                    info!(service = %key, address = %a, requested = ?r, "address allocated");
                    given.insert(a, key);
                    a
                }
                Err(e) => return Ok(Some(format!("Service {ns}/{name}: {e}"))),
            }
        }
    };
    let want = match loadbalancer::desired_vss(svc, address) {
        Ok(w) => w,
        Err(why) => return Ok(Some(format!("Service {ns}/{name}: {why}"))),
    };
    let Some(owner) = backends::owner_of(svc) else {
        return Ok(None);
    };
    let api: Api<VirtualService> = Api::namespaced(ctx.client.clone(), ns);
    let have: HashMap<String, &Arc<VirtualService>> =
        owned.iter().map(|v| (v.name_any(), v)).collect();
    for loadbalancer::LbVirtualService {
        name: vs_name,
        labels,
        spec,
    } in &want
    {
        let same = have.get(vs_name).is_some_and(|v| {
            &v.spec == spec
                && labels.iter().all(|(k, val)| v.labels().get(k) == Some(val))
                && v.owner_references().contains(&owner)
        });
        if same {
            continue;
        }
        let body = json!({
            "apiVersion": VirtualService::api_version(&()),
            "kind": VirtualService::kind(&()),
            "metadata": {"name": vs_name, "namespace": ns, "labels": labels, "ownerReferences": [owner]},
            "spec": spec,
        });
        api.patch(
            vs_name,
            &PatchParams::apply(crate::FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(Error::kube(format!("apply VirtualService {ns}/{vs_name}")))?;
        info!(service = %format!("{ns}/{name}"), vs = %vs_name, %address, "VirtualService applied");
    }
    let wanted: BTreeSet<&String> = want.iter().map(|v| &v.name).collect();
    for v in &owned {
        if !wanted.contains(&v.name_any()) {
            delete(&api, &v.name_any(), "VirtualService", ns).await?;
            info!(service = %format!("{ns}/{name}"), vs = %v.name_any(), "deleted: the Service no longer has that port");
        }
    }
    let ingress: Vec<String> = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.as_ref())
        .map(|i| i.iter().filter_map(|i| i.ip.clone()).collect())
        .unwrap_or_default();
    if ingress != [address.to_string()] {
        let body = json!({
            "apiVersion": "v1",
            "kind": "Service",
            "status": {"loadBalancer": {"ingress": [{"ip": address.to_string(), "ipMode": "VIP"}]}},
        });
        Api::<Service>::namespaced(ctx.client.clone(), ns)
            .patch_status(
                &name,
                &PatchParams::apply(crate::FIELD_MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await
            .map_err(Error::kube(format!("apply status of Service {ns}/{name}")))?;
        info!(service = %format!("{ns}/{name}"), %address, "status.loadBalancer.ingress written");
    }
    Ok(None)
}

/// Writes the mirror RealServers of every port of `svc` that some
/// VirtualService names, deletes the others, and each such VirtualService's
/// `status.backends`.
async fn mirror(svc: &Service, ns: &str, ctx: &Context) -> Result<()> {
    let name = svc.name_any();
    let vss: Vec<Arc<VirtualService>> = ctx
        .stores
        .vs
        .state()
        .into_iter()
        .filter(|v| {
            v.meta().deletion_timestamp.is_none()
                && backend_of(v).is_some_and(|(n, s)| n == ns && s == name)
        })
        .collect();
    let slices: Vec<Arc<EndpointSlice>> = ctx
        .stores
        .slices
        .state()
        .into_iter()
        .filter(|s| {
            s.namespace().as_deref() == Some(ns)
                && s.labels().get(SERVICE_NAME_LABEL) == Some(&name)
        })
        .collect();
    let slices: Vec<&EndpointSlice> = slices.iter().map(AsRef::as_ref).collect();

    // Per port label: the backend and the families asking for it.
    let mut ports: BTreeMap<String, (ServiceBackend, BTreeSet<bool>)> = BTreeMap::new();
    for v in &vss {
        let b = &v
            .spec
            .backends
            .as_ref()
            .expect("filtered on backends")
            .service;
        ports
            .entry(b.port_label())
            .or_insert_with(|| (b.clone(), BTreeSet::new()))
            .1
            .insert(v.spec.is_ipv6());
    }
    let mut want: BTreeMap<String, Mirror> = BTreeMap::new();
    let mut statuses: BTreeMap<String, BackendsStatus> = BTreeMap::new();
    for (label, (backend, families)) in &ports {
        let got = backends::desired(svc, backend, &slices, families);
        want.extend(got.mirrors.into_iter().map(|m| (m.name.clone(), m)));
        statuses.insert(label.clone(), got.status);
    }

    let have: HashMap<String, Arc<RealServer>> = ctx
        .stores
        .rs
        .state()
        .into_iter()
        .filter(|r| {
            r.namespace().as_deref() == Some(ns) && backends::is_mirror_of(r.labels(), &name)
        })
        .map(|r| (r.name_any(), r))
        .collect();
    let owner = backends::owner_of(svc);
    let api: Api<RealServer> = Api::namespaced(ctx.client.clone(), ns);
    let (mut applied, mut deleted) = (0u32, 0u32);
    for m in want.values() {
        let same = have.get(&m.name).is_some_and(|r| {
            r.spec == m.spec
                && m.labels.iter().all(|(k, v)| r.labels().get(k) == Some(v))
                && owner
                    .as_ref()
                    .is_none_or(|o| r.owner_references().contains(o))
        });
        if same {
            continue;
        }
        let body = json!({
            "apiVersion": RealServer::api_version(&()),
            "kind": RealServer::kind(&()),
            "metadata": {"name": m.name, "namespace": ns, "labels": m.labels, "ownerReferences": owner.iter().collect::<Vec<_>>()},
            "spec": m.spec,
        });
        api.patch(
            &m.name,
            &PatchParams::apply(crate::FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(Error::kube(format!("apply RealServer {ns}/{}", m.name)))?;
        applied += 1;
    }
    for n in have.keys().filter(|n| !want.contains_key(*n)) {
        delete(&api, n, "RealServer", ns).await?;
        deleted += 1;
    }
    if applied + deleted > 0 {
        info!(service = %format!("{ns}/{name}"), applied, deleted, mirrors = want.len(), "mirror RealServers written");
    }

    for v in &vss {
        let label = v
            .spec
            .backends
            .as_ref()
            .map(|b| b.service.port_label())
            .unwrap_or_default();
        let new = statuses.get(&label);
        if v.status.as_ref().and_then(|s| s.backends.as_ref()) == new {
            continue;
        }
        write_backends(&ctx.client, ns, &v.name_any(), new).await?;
        debug!(vs = %format!("{ns}/{}", v.name_any()), "status.backends written");
    }
    Ok(())
}

/// `status.backends` for a VirtualService whose `spec.backends` names a
/// Service that is not in the store: the Service controller, keyed by
/// Service, never runs for it, so the VirtualService controller writes this
/// (with [`write_backends`]). `None` when the Service exists or the
/// VirtualService has no `spec.backends`.
pub fn missing_service(vs: &VirtualService, services: &Store<Service>) -> Option<BackendsStatus> {
    let (ns, name) = backend_of(vs)?;
    if services.get(&svc_ref(&ns, &name)).is_some() {
        return None;
    }
    Some(BackendsStatus {
        service: name.clone(),
        message: format!("Service {ns}/{name} not found"),
        ..Default::default()
    })
}

/// Applies `status.backends` of a VirtualService as [`BACKENDS_MANAGER`].
pub async fn write_backends(
    client: &kube::Client,
    ns: &str,
    name: &str,
    backends: Option<&BackendsStatus>,
) -> Result<()> {
    let body = json!({
        "apiVersion": VirtualService::api_version(&()),
        "kind": VirtualService::kind(&()),
        "status": {"backends": backends},
    });
    Api::<VirtualService>::namespaced(client.clone(), ns)
        .patch_status(
            name,
            &PatchParams::apply(BACKENDS_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(Error::kube(format!(
            "apply status.backends of VirtualService {ns}/{name}"
        )))?;
    Ok(())
}

fn error_policy(svc: &Service, err: &Error, ctx: &Context) -> Action {
    let key = format!(
        "Service/{}/{}",
        svc.namespace().unwrap_or_default(),
        svc.name_any()
    );
    let delay = crate::error::backoff_delay(ctx.failed(&key));
    ctx.metrics.error(SERVICE_CONTROLLER, err.metric_label());
    warn!(object = %key, error = %err, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// The Service controller (see the module's description).
pub fn service_controller(
    ctx: Arc<Context>,
    feeds: &crate::stores::Feeds,
    shutdown: watch::Receiver<bool>,
) -> impl Future<Output = ()> + Send + 'static {
    let stores = ctx.stores.clone();

    // A slice matters only while some VirtualService names its Service.
    let vs_store = stores.vs.clone();
    let on_slice = move |s: EndpointSlice| {
        let (Some(ns), Some(svc)) = (s.namespace(), s.labels().get(SERVICE_NAME_LABEL).cloned())
        else {
            return None;
        };
        let referenced = vs_store
            .state()
            .iter()
            .any(|v| backend_of(v).is_some_and(|(n, s)| n == ns && s == svc));
        referenced.then(|| svc_ref(&ns, &svc))
    };

    // VirtualServices: the Service they name now and before, and the
    // Service that owns them.
    let seen: LastSeen<Option<(String, String)>> = LastSeen::default();
    let on_vs = move |vs: VirtualService| {
        let key = format!("{}/{}", vs.namespace().unwrap_or_default(), vs.name_any());
        let now = backend_of(&vs);
        let before = seen.swap(&key, Some(now.clone())).flatten();
        let ns = vs.namespace().unwrap_or_default();
        let mut refs: Vec<ObjectRef<Service>> = now
            .into_iter()
            .chain(before)
            .map(|(n, s)| svc_ref(&n, &s))
            .collect();
        refs.extend(
            vs.owner_references()
                .iter()
                .filter(|o| o.kind == "Service" && o.api_version == "v1")
                .map(|o| svc_ref(&ns, &o.name)),
        );
        refs
    };

    // A mirror changed or deleted by someone else.
    let on_rs = move |rs: RealServer| {
        let ns = rs.namespace()?;
        let svc = rs.labels().get(lvs_api::BACKEND_SERVICE_LABEL)?;
        backends::is_mirror_of(rs.labels(), svc).then(|| svc_ref(&ns, svc))
    };

    let controller = Controller::for_stream(feeds.services.subscribe(), stores.services.clone())
        .with_config(
            Config::default()
                .debounce(Duration::from_millis(200))
                .concurrency(4),
        )
        .watches_stream(feeds.slices.subscribe(), on_slice)
        .watches_stream(feeds.vs.subscribe(), on_vs)
        .watches_stream(feeds.rs.subscribe(), on_rs)
        .reconcile_all_on(futures::stream::once(async {}))
        .graceful_shutdown_on(async move {
            let mut shutdown = shutdown;
            crate::stopped(&mut shutdown).await;
        });
    let run = controller.run(
        |svc, ctx| async move {
            let key = format!(
                "Service/{}/{}",
                svc.namespace().unwrap_or_default(),
                svc.name_any()
            );
            let r = reconcile_service(svc, ctx.clone()).await;
            if r.is_ok() {
                ctx.succeeded(&key);
            }
            r
        },
        |svc, err, ctx| error_policy(svc.as_ref(), err, &ctx),
        ctx,
    );
    run.for_each(|res| async move {
        if let Err(e) = res {
            debug!(error = %e, "service controller");
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::watcher;

    fn vs(backends: Option<&str>) -> VirtualService {
        let mut spec = serde_json::json!({
            "address": "192.0.2.10", "port": 80, "directors": {"nodeSelector": {}},
        });
        match backends {
            Some(s) => spec["backends"] = json!({"service": {"name": s}}),
            None => spec["realServerSelector"] = json!({}),
        }
        serde_json::from_value(json!({
            "apiVersion": "lvs.lvs-operator.io/v1alpha1", "kind": "VirtualService",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn a_missing_backend_service_is_reported() {
        let (store, mut w) = kube::runtime::reflector::store::<Service>();
        let svc: Service = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "here", "namespace": "shop"},
        }))
        .unwrap();
        w.apply_watcher_event(&watcher::Event::Apply(svc));
        let got = missing_service(&vs(Some("gone")), &store).expect("reported");
        assert_eq!(got.service, "gone");
        assert_eq!(got.message, "Service shop/gone not found");
        assert_eq!((got.ready, got.terminating, got.not_ready), (0, 0, 0));
        assert_eq!(missing_service(&vs(Some("here")), &store), None);
        assert_eq!(missing_service(&vs(None), &store), None);
    }
}

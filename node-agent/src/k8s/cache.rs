//! The objects seen through the watches, and the rule for when they form a
//! snapshot the agent may act on.
//!
//! Each kind keeps the last complete list plus the changes watched since. A
//! relist (after a watch expired or the API server was away) is collected
//! aside and replaces the kind's objects only once it is complete, so a list
//! that fails halfway never looks like "these objects were deleted". A
//! snapshot exists only when every kind has completed a list and none is in
//! the middle of a relist.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use lvs_api::{
    LvsAddressPoolSpec, LvsNodeProfileSpec, NodeInfo, Object, PoolIndex, RealServerSpec,
    VirtualServiceSpec,
};
use lvs_planner::AddressPolicy;

use crate::source::Snapshot;

/// A watch event, already converted to the planner's view. Mirrors
/// `kube::runtime::watcher::Event` without its types.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent<T> {
    /// A (re)list starts.
    Init,
    /// An object of the list in progress.
    InitApply(String, T),
    /// The list is complete: objects it did not contain are gone.
    InitDone,
    /// An object was added or modified.
    Apply(String, T),
    /// An object was deleted.
    Delete(String),
}

/// One kind's objects, by namespace/name (or name for Nodes).
#[derive(Debug, Clone)]
pub struct KindCache<T> {
    objects: BTreeMap<String, T>,
    /// The relist in progress, if any.
    relist: Option<BTreeMap<String, T>>,
    listed: bool,
    /// Keys changed since the last [`take_changes`](Self::take_changes).
    dirty: BTreeSet<String>,
}

impl<T> Default for KindCache<T> {
    fn default() -> Self {
        KindCache {
            objects: BTreeMap::new(),
            relist: None,
            listed: false,
            dirty: BTreeSet::new(),
        }
    }
}

impl<T: Clone + PartialEq> KindCache<T> {
    /// Applies one event. Returns whether the kind's objects changed: the
    /// first completed list always counts; a relist only when its content
    /// differs from what the kind held; an Apply only when the object's view
    /// differs (a status write by the operator leaves the view as it was).
    /// Changes held back during a relist are the caller's to remember (see
    /// [`super::source::run_watches`]).
    pub fn apply(&mut self, change: WatchEvent<T>) -> bool
    where
        T: PartialEq,
    {
        match change {
            WatchEvent::Init => {
                self.relist = Some(BTreeMap::new());
                false
            }
            WatchEvent::InitApply(k, v) => {
                self.relist.get_or_insert_default().insert(k, v);
                false
            }
            WatchEvent::InitDone => {
                let listed = self.relist.take().unwrap_or_default();
                let changed = !self.listed || listed != self.objects;
                if changed {
                    for (k, v) in &listed {
                        if self.objects.get(k) != Some(v) {
                            self.dirty.insert(k.clone());
                        }
                    }
                    for k in self.objects.keys() {
                        if !listed.contains_key(k) {
                            self.dirty.insert(k.clone());
                        }
                    }
                }
                self.objects = listed;
                self.listed = true;
                changed
            }
            WatchEvent::Apply(k, v) => {
                if self.objects.get(&k) == Some(&v) {
                    return false;
                }
                self.dirty.insert(k.clone());
                self.objects.insert(k, v);
                true
            }
            WatchEvent::Delete(k) => {
                let gone = self.objects.remove(&k).is_some();
                if gone {
                    self.dirty.insert(k);
                }
                gone
            }
        }
    }

    /// A list has completed and no relist is in progress.
    pub fn complete(&self) -> bool {
        self.listed && self.relist.is_none()
    }

    /// Whether a relist is in progress after an earlier complete list.
    pub fn relisting(&self) -> bool {
        self.listed && self.relist.is_some()
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    fn values(&self) -> Vec<T> {
        self.objects.values().cloned().collect()
    }

    /// The objects changed since the last call, as the planner takes them.
    fn take_changes(&mut self) -> Vec<lvs_planner::Change<T>> {
        std::mem::take(&mut self.dirty)
            .into_iter()
            .map(|k| match self.objects.get(&k) {
                Some(v) => lvs_planner::Change::Upsert(v.clone()),
                None => lvs_planner::Change::Delete(k),
            })
            .collect()
    }
}

/// Which kind an event or an error belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    VirtualService,
    RealServer,
    Node,
    AddressPool,
    Namespace,
    NodeProfile,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::VirtualService => "VirtualService",
            Kind::RealServer => "RealServer",
            Kind::Node => "Node",
            Kind::AddressPool => "LvsAddressPool",
            Kind::Namespace => "Namespace",
            Kind::NodeProfile => "LvsNodeProfile",
        }
    }
}

/// What the agent reads of an LvsAddressPool: its spec, and the index the
/// operator wrote (denied addresses and owners).
#[derive(Debug, Clone, PartialEq)]
pub struct PoolView {
    pub name: String,
    pub spec: LvsAddressPoolSpec,
    pub index: Option<PoolIndex>,
}

/// An event of one of the three watches.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// Shared with the planner, which keeps the objects it is handed.
    VirtualService(WatchEvent<Arc<Object<VirtualServiceSpec>>>),
    RealServer(WatchEvent<Object<RealServerSpec>>),
    Node(WatchEvent<NodeInfo>),
    AddressPool(WatchEvent<PoolView>),
    /// A namespace's labels (pools select namespaces by them).
    Namespace(WatchEvent<BTreeMap<String, String>>),
    NodeProfile(WatchEvent<Object<LvsNodeProfileSpec>>),
}

/// The kinds the planner needs.
#[derive(Debug, Clone, Default)]
pub struct Cache {
    pub virtual_services: KindCache<Arc<Object<VirtualServiceSpec>>>,
    pub real_servers: KindCache<Object<RealServerSpec>>,
    pub nodes: KindCache<NodeInfo>,
    /// The address pools, when enforced (Kubernetes mode): then no
    /// snapshot goes out before their list is complete.
    pub pools: Option<KindCache<PoolView>>,
    /// Every namespace's labels, watched with the pools.
    pub namespaces: Option<KindCache<BTreeMap<String, String>>>,
    /// The LvsNodeProfiles (Kubernetes mode): then no
    /// snapshot goes out before their list is complete.
    pub profiles: Option<KindCache<Object<LvsNodeProfileSpec>>>,
    /// The policy last handed to the planner.
    policy: Option<AddressPolicy>,
}

/// The origin of snapshots from the API server, for logs and `/status`.
pub const ORIGIN: &str = "kubernetes";

impl Cache {
    /// A cache that enforces address pools.
    pub fn with_pools() -> Self {
        Cache {
            pools: Some(KindCache::default()),
            namespaces: Some(KindCache::default()),
            ..Cache::default()
        }
    }

    /// This cache also holding the LvsNodeProfiles (and waiting for their
    /// list).
    pub fn with_profiles(self) -> Self {
        Cache {
            profiles: Some(KindCache::default()),
            ..self
        }
    }

    /// Applies one event; returns whether the snapshot may have changed.
    pub fn apply(&mut self, u: Update) -> bool {
        match u {
            Update::VirtualService(c) => self.virtual_services.apply(c),
            Update::RealServer(c) => self.real_servers.apply(c),
            Update::Node(c) => self.nodes.apply(c),
            Update::AddressPool(c) => self.pools.as_mut().is_some_and(|p| p.apply(c)),
            Update::Namespace(c) => self.namespaces.as_mut().is_some_and(|n| n.apply(c)),
            Update::NodeProfile(c) => self.profiles.as_mut().is_some_and(|p| p.apply(c)),
        }
    }

    /// The address policy of the pools and nodes held (`None` when pools
    /// are not enforced): the pools that parse, the denied addresses and
    /// owners of the operator's index (the first pool by name that has
    /// one), every node's InternalIPs, and every namespace's labels.
    pub fn policy(&self) -> Option<AddressPolicy> {
        let pools = self.pools.as_ref()?;
        let mut parsed = Vec::new();
        for v in pools.objects.values() {
            match lvs_planner::Pool::from_spec(&v.name, &v.spec) {
                Ok(p) => parsed.push(p),
                Err(e) => {
                    tracing::debug!(pool = %v.name, error = %e, "pool left out: its addresses do not parse");
                }
            }
        }
        let mut policy = AddressPolicy::new(parsed);
        if let Some(index) = pools.objects.values().find_map(|v| v.index.as_ref()) {
            policy = policy.with_index(index);
        }
        for n in self.nodes.objects.values() {
            for ip in &n.internal_ips {
                policy.deny(*ip, format!("an address of node {}", n.name));
            }
        }
        if let Some(ns) = &self.namespaces {
            policy.set_namespaces(ns.objects.clone());
        }
        Some(policy)
    }

    /// The kinds without a complete list (never listed, or relisting).
    pub fn incomplete(&self) -> Vec<Kind> {
        let mut out = Vec::new();
        if !self.virtual_services.complete() {
            out.push(Kind::VirtualService);
        }
        if !self.real_servers.complete() {
            out.push(Kind::RealServer);
        }
        if !self.nodes.complete() {
            out.push(Kind::Node);
        }
        if self.pools.as_ref().is_some_and(|p| !p.complete()) {
            out.push(Kind::AddressPool);
        }
        if self.profiles.as_ref().is_some_and(|p| !p.complete()) {
            out.push(Kind::NodeProfile);
        }
        if self.namespaces.as_ref().is_some_and(|n| !n.complete()) {
            out.push(Kind::Namespace);
        }
        out
    }

    /// Every object, if every kind is complete; `None` otherwise, and then
    /// the agent keeps programming the last snapshot it got.
    pub fn snapshot(&self) -> Option<Snapshot> {
        if !self.incomplete().is_empty() {
            return None;
        }
        Some(Snapshot {
            virtual_services: self
                .virtual_services
                .values()
                .into_iter()
                .map(Arc::unwrap_or_clone)
                .collect(),
            real_servers: self.real_servers.values(),
            nodes: self.nodes.values(),
            node_profiles: self
                .profiles
                .as_ref()
                .map(|p| p.values())
                .unwrap_or_default(),
            origin: ORIGIN.to_string(),
        })
    }

    /// What changed since the last call (the first call: everything), if
    /// every kind is complete; `None` otherwise (the changes wait). Costs
    /// in proportion to the changes, where a snapshot copies every object.
    pub fn take_changes(&mut self) -> Option<lvs_planner::Changes> {
        if !self.incomplete().is_empty() {
            return None;
        }
        if let Some(p) = self.pools.as_mut() {
            p.dirty.clear();
        }
        if let Some(n) = self.namespaces.as_mut() {
            n.dirty.clear();
        }
        let policy = self.policy();
        let policy_changed = policy != self.policy;
        if policy_changed {
            self.policy.clone_from(&policy);
        }
        Some(lvs_planner::Changes {
            virtual_services: self.virtual_services.take_changes(),
            real_servers: self.real_servers.take_changes(),
            nodes: self.nodes.take_changes(),
            policy: policy_changed.then_some(policy),
            node_profiles: self
                .profiles
                .as_mut()
                .map(|p| p.take_changes())
                .unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvs_api::Meta;

    fn spec() -> VirtualServiceSpec {
        let mut m = lvs_api::manifest::ManifestSet::default();
        m.extend(
            lvs_api::manifest::parse(
                r#"
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: VirtualService
metadata: {name: x, namespace: default}
spec:
  address: 10.0.0.1
  port: 80
  directors: {nodeSelector: {}}
  realServerSelector: {matchLabels: {app: web}}
"#,
            )
            .unwrap(),
        );
        m.virtual_services[0].spec.clone()
    }

    fn vs(name: &str, generation: i64) -> (String, Arc<Object<VirtualServiceSpec>>) {
        (
            format!("default/{name}"),
            Arc::new(Object {
                meta: Meta {
                    namespace: "default".into(),
                    name: name.into(),
                    generation: Some(generation),
                    ..Meta::default()
                },
                spec: spec(),
            }),
        )
    }

    fn node(name: &str) -> (String, NodeInfo) {
        (
            name.into(),
            NodeInfo {
                name: name.into(),
                ..NodeInfo::default()
            },
        )
    }

    fn listed(cache: &mut Cache) {
        for u in [
            Update::VirtualService(WatchEvent::Init),
            Update::RealServer(WatchEvent::Init),
            Update::Node(WatchEvent::Init),
        ] {
            cache.apply(u);
        }
        let (k, v) = vs("a", 1);
        cache.apply(Update::VirtualService(WatchEvent::InitApply(k, v)));
        let (k, v) = vs("b", 1);
        cache.apply(Update::VirtualService(WatchEvent::InitApply(k, v)));
        let (k, n) = node("n1");
        cache.apply(Update::Node(WatchEvent::InitApply(k, n)));
        for u in [
            Update::VirtualService(WatchEvent::InitDone),
            Update::RealServer(WatchEvent::InitDone),
            Update::Node(WatchEvent::InitDone),
        ] {
            assert!(cache.apply(u));
        }
    }

    fn names(s: &Snapshot) -> Vec<String> {
        s.virtual_services.iter().map(|o| o.meta.key()).collect()
    }

    #[test]
    fn no_snapshot_until_every_kind_has_listed() {
        let mut c = Cache::default();
        assert!(c.snapshot().is_none());
        c.apply(Update::VirtualService(WatchEvent::Init));
        let (k, v) = vs("a", 1);
        c.apply(Update::VirtualService(WatchEvent::InitApply(k, v)));
        c.apply(Update::VirtualService(WatchEvent::InitDone));
        c.apply(Update::Node(WatchEvent::Init));
        c.apply(Update::Node(WatchEvent::InitDone));
        assert!(c.snapshot().is_none(), "RealServers never listed");
        assert_eq!(c.incomplete(), [Kind::RealServer]);
        c.apply(Update::RealServer(WatchEvent::Init));
        assert!(c.snapshot().is_none(), "RealServer list in progress");
        c.apply(Update::RealServer(WatchEvent::InitDone));
        let s = c.snapshot().expect("complete");
        assert_eq!(names(&s), ["default/a"]);
        assert!(s.real_servers.is_empty());
        assert!(s.nodes.is_empty(), "the Node list was empty");
    }

    #[test]
    fn a_relist_replaces_only_once_complete() {
        let mut c = Cache::default();
        listed(&mut c);
        let before = c.snapshot().unwrap();
        assert_eq!(names(&before), ["default/a", "default/b"]);

        // The watch expired: a relist starts and fails halfway (the API
        // server went away). Nothing is deleted meanwhile: no snapshot at
        // all, and the kind keeps its last complete objects.
        c.apply(Update::VirtualService(WatchEvent::Init));
        let (k, v) = vs("a", 1);
        c.apply(Update::VirtualService(WatchEvent::InitApply(k, v)));
        assert!(c.virtual_services.relisting());
        assert!(c.snapshot().is_none());
        assert_eq!(c.virtual_services.len(), 2);
        // The watcher starts over, and this time the list completes, with
        // "b" deleted and "a" edited while the agent could not see.
        c.apply(Update::VirtualService(WatchEvent::Init));
        let (k, v) = vs("a", 2);
        c.apply(Update::VirtualService(WatchEvent::InitApply(k, v)));
        assert!(c.snapshot().is_none());
        assert!(c.apply(Update::VirtualService(WatchEvent::InitDone)));
        let after = c.snapshot().unwrap();
        assert_eq!(names(&after), ["default/a"]);
        assert_eq!(after.virtual_services[0].meta.generation, Some(2));
    }

    #[test]
    fn a_relist_of_one_kind_holds_back_changes_of_the_others() {
        let mut c = Cache::default();
        listed(&mut c);
        c.apply(Update::Node(WatchEvent::Init));
        let (k, v) = vs("c", 1);
        assert!(c.apply(Update::VirtualService(WatchEvent::Apply(k, v))));
        assert!(c.snapshot().is_none(), "Nodes are relisting");
        // The Node relist brings the same content: no change of its own
        // (the source remembers the held-back VirtualService and sends it
        // now that every list is complete).
        let (k, n) = node("n1");
        c.apply(Update::Node(WatchEvent::InitApply(k, n)));
        assert!(!c.apply(Update::Node(WatchEvent::InitDone)));
        assert_eq!(
            names(&c.snapshot().unwrap()),
            ["default/a", "default/b", "default/c"]
        );
    }

    #[test]
    fn watched_changes_apply_in_place() {
        let mut c = Cache::default();
        listed(&mut c);
        let (k, v) = vs("a", 5);
        assert!(c.apply(Update::VirtualService(WatchEvent::Apply(
            k.clone(),
            v.clone()
        ))));
        assert!(
            !c.apply(Update::VirtualService(WatchEvent::Apply(k.clone(), v))),
            "the same view again (e.g. a status write) changes nothing"
        );
        assert!(c.apply(Update::VirtualService(WatchEvent::Delete(
            "default/b".into()
        ))));
        assert!(
            !c.apply(Update::VirtualService(WatchEvent::Delete(
                "default/zz".into()
            ))),
            "deleting an unknown object changes nothing"
        );
        let s = c.snapshot().unwrap();
        assert_eq!(names(&s), ["default/a"]);
        assert_eq!(s.virtual_services[0].meta.generation, Some(5));
        assert_eq!(s.origin, ORIGIN);
    }

    fn change_names(c: &lvs_planner::Changes) -> Vec<String> {
        c.virtual_services
            .iter()
            .map(|c| match c {
                lvs_planner::Change::Upsert(o) => format!("+{}", o.meta.key()),
                lvs_planner::Change::Delete(k) => format!("-{k}"),
            })
            .collect()
    }

    #[test]
    fn changes_name_only_what_changed_since_the_last_take() {
        let mut cache = Cache::default();
        assert_eq!(cache.take_changes(), None, "incomplete lists: nothing");
        listed(&mut cache);
        let first = cache.take_changes().unwrap();
        assert_eq!(change_names(&first), ["+default/a", "+default/b"]);
        assert_eq!(first.nodes.len(), 1);
        assert!(cache.take_changes().unwrap().is_empty());
        // A watched update and a relist that drops b and changes nothing else.
        let (k, v) = vs("a", 2);
        cache.apply(Update::VirtualService(WatchEvent::Apply(k, v)));
        assert_eq!(change_names(&cache.take_changes().unwrap()), ["+default/a"]);
        cache.apply(Update::VirtualService(WatchEvent::Init));
        let (k, v) = vs("a", 2);
        cache.apply(Update::VirtualService(WatchEvent::InitApply(k, v)));
        assert_eq!(cache.take_changes(), None, "relisting: held back");
        assert!(cache.apply(Update::VirtualService(WatchEvent::InitDone)));
        assert_eq!(change_names(&cache.take_changes().unwrap()), ["-default/b"]);
    }

    fn pool(name: &str, addrs: &[&str], owners: &[(&str, &str)]) -> (String, PoolView) {
        (
            name.into(),
            PoolView {
                name: name.into(),
                spec: LvsAddressPoolSpec {
                    addresses: addrs.iter().map(|a| a.to_string()).collect(),
                    allow_all_directors: true,
                    auto_assign: true,
                    ..Default::default()
                },
                index: Some(PoolIndex {
                    owners: owners
                        .iter()
                        .map(|(a, ns)| lvs_api::AddressOwner {
                            address: a.to_string(),
                            namespace: ns.to_string(),
                            released: None,
                        })
                        .collect(),
                    denied_addresses: vec!["10.0.0.9".into()],
                    ..Default::default()
                }),
            },
        )
    }

    #[test]
    fn pools_hold_back_snapshots_and_become_the_policy() {
        let mut c = Cache::with_pools();
        listed(&mut c);
        assert_eq!(c.incomplete(), [Kind::AddressPool, Kind::Namespace]);
        c.apply(Update::Namespace(WatchEvent::Init));
        c.apply(Update::Namespace(WatchEvent::InitApply(
            "team-a".into(),
            BTreeMap::from([("tier".to_string(), "gold".to_string())]),
        )));
        c.apply(Update::Namespace(WatchEvent::InitDone));
        assert_eq!(c.incomplete(), [Kind::AddressPool]);
        assert_eq!(c.take_changes(), None, "no plan before the pools are known");
        c.apply(Update::AddressPool(WatchEvent::Init));
        let (k, p) = pool("lab", &["10.0.0.0/24"], &[("10.0.0.1", "team-a")]);
        c.apply(Update::AddressPool(WatchEvent::InitApply(k, p)));
        c.apply(Update::Node(WatchEvent::Apply(
            "n1".into(),
            NodeInfo {
                name: "n1".into(),
                internal_ips: vec!["10.0.0.2".parse().unwrap()],
                ..NodeInfo::default()
            },
        )));
        assert!(c.apply(Update::AddressPool(WatchEvent::InitDone)));
        let first = c.take_changes().unwrap();
        let policy = first.policy.clone().flatten().expect("a policy");
        assert_eq!(
            policy
                .namespace_labels("team-a")
                .and_then(|l| l.get("tier"))
                .map(String::as_str),
            Some("gold")
        );
        assert_eq!(policy.namespace_labels("team-b"), Some(&BTreeMap::new()));
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert_eq!(
            policy
                .vip_allowed("team-a", None, ip("10.0.0.1"))
                .unwrap()
                .name,
            "lab"
        );
        let held = policy
            .vip_allowed("team-b", None, ip("10.0.0.1"))
            .unwrap_err();
        assert!(
            held.to_string().contains("held by namespace team-a"),
            "{held}"
        );
        let node = policy
            .vip_allowed("team-b", None, ip("10.0.0.2"))
            .unwrap_err();
        assert!(node.to_string().contains("node n1"), "{node}");
        assert!(
            policy.vip_allowed("team-b", None, ip("10.0.0.9")).is_err(),
            "index deny list"
        );
        assert!(
            policy.vip_allowed("team-b", None, ip("192.0.2.1")).is_err(),
            "outside"
        );
        // Unchanged pools: no policy in the next changes.
        assert_eq!(c.take_changes().unwrap().policy, None);
        let (k, p) = pool("lab", &["10.0.0.0/24"], &[]);
        assert!(c.apply(Update::AddressPool(WatchEvent::Apply(k, p))));
        let next = c.take_changes().unwrap().policy.flatten().unwrap();
        assert!(
            next.vip_allowed("team-b", None, ip("10.0.0.1")).is_ok(),
            "owner gone"
        );
    }

    #[test]
    fn without_pools_no_policy() {
        let mut c = Cache::default();
        listed(&mut c);
        assert_eq!(c.take_changes().unwrap().policy, None);
        assert!(!c.apply(Update::AddressPool(WatchEvent::Init)));
    }

    #[test]
    fn profiles_hold_back_snapshots_and_arrive_as_changes() {
        let mut c = Cache::default().with_profiles();
        listed(&mut c);
        assert_eq!(c.incomplete(), [Kind::NodeProfile]);
        assert_eq!(
            c.take_changes(),
            None,
            "no plan before the profiles are known"
        );
        let profile = lvs_api::manifest::parse(
            "apiVersion: lvs.lvs-operator.io/v1alpha1\nkind: LvsNodeProfile\nmetadata: {name: edge}\nspec: {ipvsTimeouts: {udpSeconds: 7}}\n",
        )
        .unwrap()
        .remove(0);
        let lvs_api::manifest::Manifest::NodeProfile(p) = profile else {
            panic!("not a profile: {profile:?}");
        };
        c.apply(Update::NodeProfile(WatchEvent::Init));
        c.apply(Update::NodeProfile(WatchEvent::InitApply(
            p.meta.key(),
            p.clone(),
        )));
        assert!(c.apply(Update::NodeProfile(WatchEvent::InitDone)));
        let first = c.take_changes().expect("complete");
        assert_eq!(
            first.node_profiles,
            vec![lvs_planner::Change::Upsert(p.clone())]
        );
        assert_eq!(c.snapshot().unwrap().node_profiles, vec![p.clone()]);
        assert!(c.apply(Update::NodeProfile(WatchEvent::Delete(p.meta.key()))));
        assert_eq!(
            c.take_changes().unwrap().node_profiles,
            vec![lvs_planner::Change::Delete("/edge".into())]
        );
    }
}

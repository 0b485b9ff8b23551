//! One node's plan, kept up to date object by object.
//!
//! [`Incremental`] holds every VirtualService, RealServer and Node, indexed
//! so that a change finds the VirtualServices it can affect without looking
//! at the others:
//!
//! - a VirtualService change affects itself and the services contending for
//!   its old and new kernel key (the conflict winner may change);
//! - a RealServer change affects the services of its namespace whose
//!   selector matches its old or its new labels (found through a label
//!   index: each service is filed under one of its `matchLabels` pairs, the
//!   ones without `matchLabels` are checked one by one);
//! - a Node change can move directors and nodeName realservers anywhere, so
//!   everything is re-planned.
//!
//! Each affected service gets a fresh [`Verdict`] and [`Fragment`], computed
//! by the same functions as [`analyze`](crate::analyze) and
//! [`plan`](crate::plan); the fragments are summed up in an [`Aggregate`].
//! The result is always the plan that planning from scratch would give (a
//! property test checks this after random changes).

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use lvs_api::{LvsNodeProfileSpec, NodeInfo, Object, RealServerSpec, VirtualServiceSpec};

use crate::analyze::{
    RsChecks, Selected, Verdict, contending_key, narrowest_label, service_state, verdict_for,
};
use crate::plan::{NodePlan, ServiceKey};
use crate::planner::{Aggregate, Fragment, fragment};
use crate::pools::AddressPolicy;
use crate::profiles::{ProfileChoice, choose, overlay};

/// One change of an object: the new version, or the removal of the object
/// with this key (namespace/name; a Node's name).
#[derive(Debug, Clone, PartialEq)]
pub enum Change<T> {
    Upsert(T),
    Delete(String),
}

impl<T> Change<T> {
    /// The same change with the object converted.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Change<U> {
        match self {
            Change::Upsert(o) => Change::Upsert(f(o)),
            Change::Delete(k) => Change::Delete(k),
        }
    }
}

/// What a change touched on this node: the IPVS services and director VIP
/// addresses whose desired state may differ now. Tunnels, loopback VIPs and
/// sysctls are few and always handed over whole (so are the source-NATed
/// services: the agent replaces their table whole).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanScope {
    pub services: BTreeSet<ServiceKey>,
    pub vips: BTreeSet<IpAddr>,
}

impl PlanScope {
    fn cover(&mut self, f: &Fragment) {
        if let Some(s) = &f.service {
            self.services.insert(s.key);
        }
        for v in &f.vips {
            self.vips.insert(v.addr);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.services.is_empty() && self.vips.is_empty()
    }
}

/// The outcome of [`Incremental::apply`].
#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// Every VirtualService was re-planned (a Node changed, or the first load).
    pub all: bool,
    /// The re-planned VirtualServices (namespace/name) with their new verdict;
    /// `None` for one that no longer exists.
    pub verdicts: Vec<(String, Option<Verdict>)>,
    /// What the re-planned services touched on this node (left empty with
    /// `all`: everything is to be synced).
    pub scope: PlanScope,
    /// The node follows another LvsNodeProfile, or its profile changed.
    pub profile_changed: bool,
}

impl Applied {
    pub fn is_empty(&self) -> bool {
        !self.all && !self.profile_changed && self.verdicts.is_empty()
    }
}

/// Position of a contending VirtualService: older first (creationTimestamp,
/// absent last), then namespace/name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct AgeKey {
    no_timestamp: bool,
    timestamp: Option<String>,
    name: String,
}

impl AgeKey {
    /// `name`: the VirtualService's namespace/name.
    fn of(name: &str, vs: &Object<VirtualServiceSpec>) -> Self {
        AgeKey {
            no_timestamp: vs.meta.creation_timestamp.is_none(),
            timestamp: vs.meta.creation_timestamp.clone(),
            name: name.to_string(),
        }
    }
}

/// A RealServer with its namespace/name, which every destination planned
/// from it shares (one string per RealServer, not one per destination and
/// copy of the plan), and its own checks, done once.
#[derive(Debug, Clone, PartialEq)]
struct NamedRs {
    name: Arc<str>,
    rs: Object<RealServerSpec>,
    checks: RsChecks,
}

impl From<Object<RealServerSpec>> for NamedRs {
    fn from(rs: Object<RealServerSpec>) -> Self {
        NamedRs {
            name: rs.meta.key().into(),
            checks: RsChecks::of(&rs.spec),
            rs,
        }
    }
}

impl Borrow<Object<RealServerSpec>> for NamedRs {
    fn borrow(&self) -> &Object<RealServerSpec> {
        &self.rs
    }
}

/// Applies one change to a map of objects by namespace/name. `None` when it
/// changes nothing; otherwise the key and the version it replaced.
fn replace<S: PartialEq, C: Borrow<Object<S>>, V: From<C> + Borrow<Object<S>>>(
    map: &mut BTreeMap<String, V>,
    c: Change<C>,
) -> Option<(String, Option<V>)> {
    let (key, new) = match c {
        Change::Upsert(o) => (o.borrow().meta.key(), Some(o)),
        Change::Delete(k) => (k, None),
    };
    if map.get(&key).map(Borrow::borrow) == new.as_ref().map(Borrow::borrow) {
        return None;
    }
    let old = match new {
        Some(o) => map.insert(key.clone(), o.into()),
        None => map.remove(&key),
    };
    Some((key, old))
}

fn label_key(ns: &str, k: &str, v: &str) -> String {
    let mut key = String::with_capacity(ns.len() + k.len() + v.len() + 2);
    for (i, part) in [ns, k, v].into_iter().enumerate() {
        if i > 0 {
            key.push('\0');
        }
        key.push_str(part);
    }
    key
}

/// The label pair a VirtualService is filed under (its first `matchLabels`
/// pair), or `None` when it has no `matchLabels`.
fn filed_under(vs: &Object<VirtualServiceSpec>) -> Option<String> {
    vs.spec
        .selector()
        .match_labels
        .iter()
        .next()
        .map(|(k, v)| label_key(&vs.meta.namespace, k, v))
}

/// Where each VirtualService is filed: under a label pair (or its
/// namespace), and by the kernel key it contends for.
#[derive(Debug, Clone, Default)]
struct VsIndex {
    /// VirtualService keys by the label pair they are filed under.
    by_label: HashMap<String, BTreeSet<String>>,
    /// VirtualServices without `matchLabels`, by namespace.
    unfiled: BTreeMap<String, BTreeSet<String>>,
    /// Valid VirtualServices by kernel key, oldest first (sorted; nearly
    /// always one: a set per key would cost a B-tree node each).
    contenders: HashMap<ServiceKey, Vec<AgeKey>>,
}

impl VsIndex {
    /// Files a VirtualService; returns its contending key.
    fn file(
        &mut self,
        name: &str,
        o: &Object<VirtualServiceSpec>,
        policy: Option<&AddressPolicy>,
    ) -> Option<ServiceKey> {
        match filed_under(o) {
            Some(lk) => self.by_label.entry(lk).or_default(),
            None => self.unfiled.entry(o.meta.namespace.clone()).or_default(),
        }
        .insert(name.to_string());
        let key = contending_key(o, policy)?;
        let c = self.contenders.entry(key).or_default();
        let a = AgeKey::of(name, o);
        if let Err(i) = c.binary_search(&a) {
            c.insert(i, a);
        }
        Some(key)
    }

    fn unfile(
        &mut self,
        name: &str,
        o: &Object<VirtualServiceSpec>,
        policy: Option<&AddressPolicy>,
    ) -> Option<ServiceKey> {
        match filed_under(o) {
            Some(lk) => {
                if let Some(s) = self.by_label.get_mut(&lk) {
                    s.remove(name);
                    if s.is_empty() {
                        self.by_label.remove(&lk);
                    }
                }
            }
            None => {
                if let Some(s) = self.unfiled.get_mut(&o.meta.namespace) {
                    s.remove(name);
                    if s.is_empty() {
                        self.unfiled.remove(&o.meta.namespace);
                    }
                }
            }
        }
        let key = contending_key(o, policy)?;
        if let Some(c) = self.contenders.get_mut(&key) {
            if let Ok(i) = c.binary_search(&AgeKey::of(name, o)) {
                c.remove(i);
            }
            if c.is_empty() {
                self.contenders.remove(&key);
            }
        }
        Some(key)
    }
}

/// Files a RealServer under each of its labels.
fn file_rs(index: &mut HashMap<String, BTreeSet<String>>, key: &str, o: &Object<RealServerSpec>) {
    for (k, v) in &o.meta.labels {
        index
            .entry(label_key(&o.meta.namespace, k, v))
            .or_default()
            .insert(key.to_string());
    }
}

/// One node's plan over a changing set of objects.
#[derive(Debug, Clone)]
pub struct Incremental {
    node: String,
    /// Shared with whoever handed them in (the Kubernetes source keeps the
    /// same objects to compare what the watches send): a VirtualService is
    /// large, and a B-tree filled in key order leaves its nodes half empty.
    vss: BTreeMap<String, Arc<Object<VirtualServiceSpec>>>,
    rss: BTreeMap<String, NamedRs>,
    nodes: BTreeMap<String, NodeInfo>,
    /// RealServer keys by (namespace, label, value).
    rs_by_label: HashMap<String, BTreeSet<String>>,
    /// The VirtualServices by label pair and by kernel key.
    vs_index: VsIndex,
    /// Boxed for the same reason as `vss`.
    fragments: BTreeMap<String, Box<Fragment>>,
    aggregate: Aggregate,
    loaded: bool,
    /// The address pools, when enforced.
    policy: Option<std::sync::Arc<AddressPolicy>>,
    /// LvsNodeProfiles by key (`/name`: cluster-scoped).
    profiles: BTreeMap<String, Object<LvsNodeProfileSpec>>,
    /// The profile this node follows, kept with the nodes and profiles.
    profile: ProfileChoice,
    /// Re-plans of at least this many VirtualServices use several threads.
    parallel_min: usize,
}

/// The most threads one re-plan uses.
const MAX_PLAN_THREADS: usize = 4;
/// Below this many VirtualServices a re-plan stays on the calling thread.
const PARALLEL_MIN: usize = 1000;

impl Default for Incremental {
    fn default() -> Self {
        Incremental {
            node: String::new(),
            vss: BTreeMap::new(),
            rss: BTreeMap::new(),
            nodes: BTreeMap::new(),
            rs_by_label: HashMap::new(),
            vs_index: VsIndex::default(),
            fragments: BTreeMap::new(),
            aggregate: Aggregate::default(),
            loaded: false,
            policy: None,
            profiles: BTreeMap::new(),
            profile: ProfileChoice::None,
            parallel_min: PARALLEL_MIN,
        }
    }
}

impl Incremental {
    pub fn new(node: impl Into<String>) -> Self {
        Incremental {
            node: node.into(),
            ..Incremental::default()
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn virtual_services(&self) -> &BTreeMap<String, Arc<Object<VirtualServiceSpec>>> {
        &self.vss
    }

    pub fn nodes(&self) -> &BTreeMap<String, NodeInfo> {
        &self.nodes
    }

    pub fn node_profiles(&self) -> &BTreeMap<String, Object<LvsNodeProfileSpec>> {
        &self.profiles
    }

    /// The LvsNodeProfile this node follows; its settings are in every plan.
    pub fn profile(&self) -> &ProfileChoice {
        &self.profile
    }

    /// Whether this node directs any VirtualService (has an IPVS service
    /// in its plan).
    pub fn directs(&self) -> bool {
        self.fragments.values().any(|f| f.service.is_some())
    }

    /// The changes that turn the current objects into these (a full
    /// snapshot): upserts for new and changed objects, deletes for the rest.
    /// Later duplicates of a name win.
    pub fn diff(
        &self,
        vss: Vec<Object<VirtualServiceSpec>>,
        rss: Vec<Object<RealServerSpec>>,
        nodes: Vec<NodeInfo>,
    ) -> Changes {
        fn diff_map<T: PartialEq, V: Borrow<T>>(
            cur: &BTreeMap<String, V>,
            new: Vec<T>,
            key: impl Fn(&T) -> String,
        ) -> Vec<Change<T>> {
            if cur.is_empty() {
                // Nothing held yet (the first load): every object is new.
                // Duplicates stay in order, so applied in turn the later one
                // wins here too.
                return new.into_iter().map(Change::Upsert).collect();
            }
            let mut by_key: BTreeMap<String, T> = BTreeMap::new();
            for o in new {
                by_key.insert(key(&o), o);
            }
            let mut out: Vec<Change<T>> = cur
                .keys()
                .filter(|k| !by_key.contains_key(*k))
                .map(|k| Change::Delete(k.clone()))
                .collect();
            out.extend(
                by_key
                    .into_iter()
                    .filter(|(k, o)| cur.get(k).map(Borrow::borrow) != Some(o))
                    .map(|(_, o)| Change::Upsert(o)),
            );
            out
        }
        Changes {
            virtual_services: diff_map(&self.vss, vss.into_iter().map(Arc::new).collect(), |o| {
                o.meta.key()
            }),
            real_servers: diff_map(&self.rss, rss, |o| o.meta.key()),
            nodes: diff_map(&self.nodes, nodes, |n| n.name.clone()),
            policy: None,
            node_profiles: Vec::new(),
        }
    }

    /// The changes that turn the LvsNodeProfiles held into these.
    pub fn diff_profiles(
        &self,
        profiles: Vec<Object<LvsNodeProfileSpec>>,
    ) -> Vec<Change<Object<LvsNodeProfileSpec>>> {
        let by_name: BTreeMap<String, Object<LvsNodeProfileSpec>> =
            profiles.into_iter().map(|p| (p.meta.key(), p)).collect();
        let mut out: Vec<_> = self
            .profiles
            .keys()
            .filter(|k| !by_name.contains_key(*k))
            .map(|k| Change::Delete(k.clone()))
            .collect();
        out.extend(
            by_name
                .into_iter()
                .filter(|(k, p)| self.profiles.get(k) != Some(p))
                .map(|(_, p)| Change::Upsert(p)),
        );
        out
    }

    /// The address policy in force (`None`: pools are not enforced).
    pub fn policy(&self) -> Option<&AddressPolicy> {
        self.policy.as_deref()
    }

    /// Replaces the address policy and re-plans the services it judges
    /// differently (with the services contending for their keys).
    pub fn set_policy(&mut self, policy: Option<AddressPolicy>) -> Applied {
        self.apply(Changes {
            policy: Some(policy),
            ..Changes::default()
        })
    }

    /// Puts a different policy in force; returns the VirtualServices whose
    /// verdict it may change: those it judges differently (refused or not,
    /// another pool), and the services contending for their keys (the
    /// winner may change). Every service is filed again, since which ones
    /// contend depends on the policy.
    fn replace_policy(&mut self, policy: Option<AddressPolicy>) -> BTreeSet<String> {
        if self.policy.as_deref() == policy.as_ref() {
            return BTreeSet::new();
        }
        let names: Vec<String> = self.vss.keys().cloned().collect();
        let judged = |p: Option<&AddressPolicy>, vs: &Object<VirtualServiceSpec>| {
            p.map(|p| p.check(vs).map(|pool| pool.cloned()))
        };
        let mut changed: BTreeSet<String> = BTreeSet::new();
        let mut keys: BTreeSet<ServiceKey> = BTreeSet::new();
        for n in &names {
            if let Some(o) = self.vss.get(n) {
                if judged(self.policy.as_deref(), o) != judged(policy.as_ref(), o) {
                    changed.insert(n.clone());
                    keys.extend(crate::analyze::service_key(&o.spec));
                }
                self.vs_index.unfile(n, o, self.policy.as_deref());
            }
        }
        self.policy = policy.map(std::sync::Arc::new);
        for n in &names {
            if let Some(o) = self.vss.get(n) {
                self.vs_index.file(n, o, self.policy.as_deref());
            }
        }
        for k in &keys {
            if let Some(c) = self.vs_index.contenders.get(k) {
                changed.extend(c.iter().map(|a| a.name.clone()));
            }
        }
        changed
    }

    /// Applies changes and re-plans what they affect.
    pub fn apply(&mut self, changes: Changes) -> Applied {
        let mut affected: BTreeSet<String> = BTreeSet::new();
        let mut all = !self.loaded;
        self.loaded = true;
        if let Some(p) = changes.policy {
            affected.extend(self.replace_policy(p));
        }

        for c in changes.nodes {
            let changed = match c {
                Change::Upsert(n) => {
                    let name = n.name.clone();
                    self.nodes.insert(name, n.clone()) != Some(n)
                }
                Change::Delete(name) => self.nodes.remove(&name).is_some(),
            };
            all |= changed;
        }

        let mut profiles_changed = false;
        for c in changes.node_profiles {
            profiles_changed |= replace(&mut self.profiles, c).is_some();
        }
        let mut profile_changed = false;
        if profiles_changed || all {
            let choice = choose(self.nodes.get(&self.node), &self.profiles);
            profile_changed = choice != self.profile;
            self.profile = choice;
        }

        for c in changes.real_servers {
            let Some((key, old)) = replace(&mut self.rss, c) else {
                continue;
            };
            let old = old.map(|o| o.rs);
            if let Some(o) = &old {
                self.unfile_rs(&key, o);
            }
            if let Some(o) = self.rss.get(&key) {
                file_rs(&mut self.rs_by_label, &key, &o.rs);
            }
            if !all {
                let new = self.rss.get(&key).map(|o| &o.rs);
                for o in old.iter().chain(new) {
                    affected.extend(self.selecting(o, old.as_ref(), new));
                }
            }
        }

        let mut keys_touched: BTreeSet<ServiceKey> = BTreeSet::new();
        for c in changes.virtual_services {
            let Some((name, old)) = replace(&mut self.vss, c) else {
                continue;
            };
            let policy = self.policy.as_deref();
            if let Some(o) = &old {
                keys_touched.extend(self.vs_index.unfile(&name, o, policy));
            }
            if let Some(o) = self.vss.get(&name) {
                keys_touched.extend(self.vs_index.file(&name, o, policy));
            }
            if !all {
                affected.insert(name);
            }
        }
        let affected: Vec<String> = if all {
            // Every service, and those that are gone but still have a
            // fragment; both maps give their names in order.
            let mut names: Vec<String> = self.vss.keys().cloned().collect();
            let present = names.len();
            names.extend(
                self.fragments
                    .keys()
                    .filter(|k| !self.vss.contains_key(*k))
                    .cloned(),
            );
            if names.len() > present {
                // Two sorted runs: merged.
                names.sort();
            }
            names
        } else {
            for k in &keys_touched {
                if let Some(c) = self.vs_index.contenders.get(k) {
                    affected.extend(c.iter().map(|a| a.name.clone()));
                }
            }
            affected.into_iter().collect()
        };
        let mut out = Applied {
            all,
            profile_changed,
            ..Applied::default()
        };
        let planned = self.verdicts(&affected);
        for (name, v) in affected.into_iter().zip(planned) {
            let scope = (!all).then_some(&mut out.scope);
            let v = self.replace_fragment(&name, v, scope);
            out.verdicts.push((name, v));
        }
        out
    }

    /// The verdict and fragment of each named VirtualService (`None`: it no
    /// longer exists). Each depends only on the objects held, so a long
    /// list (the first load, a Node change) is split among threads.
    fn verdicts(&self, names: &[String]) -> Vec<Option<(Verdict, Fragment)>> {
        let threads = if names.len() < self.parallel_min {
            1
        } else {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(MAX_PLAN_THREADS)
        };
        if threads < 2 {
            return names.iter().map(|n| self.verdict(n)).collect();
        }
        let chunk = names.len().div_ceil(threads);
        std::thread::scope(|s| {
            let handles: Vec<_> = names
                .chunks(chunk)
                .map(|part| {
                    s.spawn(move || part.iter().map(|n| self.verdict(n)).collect::<Vec<_>>())
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        })
    }

    /// The verdict and fragment of one VirtualService.
    fn verdict(&self, name: &str) -> Option<(Verdict, Fragment)> {
        let vs = self.vss.get(name)?;
        let state = service_state(vs, name, self.policy.as_deref(), |k| {
            self.vs_index
                .contenders
                .get(&k)
                .and_then(|c| c.first())
                .map(|a| a.name.clone())
        });
        let verdict = verdict_for(vs, name.to_string(), state, self.select(vs), &self.nodes);
        let f = fragment(&self.node, &verdict, &vs.spec);
        Some((verdict, f))
    }

    /// Puts a VirtualService's new fragment in place of its old one; returns
    /// its verdict.
    fn replace_fragment(
        &mut self,
        name: &str,
        planned: Option<(Verdict, Fragment)>,
        mut scope: Option<&mut PlanScope>,
    ) -> Option<Verdict> {
        if let Some(old) = self.fragments.remove(name) {
            self.aggregate.remove(&old);
            if let Some(s) = scope.as_deref_mut() {
                s.cover(&old);
            }
        }
        let (verdict, f) = planned?;
        if !f.is_empty() {
            self.aggregate.add(&f);
            if let Some(s) = scope {
                s.cover(&f);
            }
            self.fragments.insert(name.to_string(), Box::new(f));
        }
        Some(verdict)
    }

    /// The RealServers `vs` selects, sorted by namespace/name.
    fn select<'a>(
        &'a self,
        vs: &'a Object<VirtualServiceSpec>,
    ) -> impl Iterator<Item = Selected<'a>> + 'a {
        let ns = vs.meta.namespace.as_str();
        let sel = vs.spec.selector();
        let posting = narrowest_label(&sel, |k, v| {
            self.rs_by_label
                .get(&label_key(ns, k, v))
                .map_or(0, BTreeSet::len)
        })
        .map(|(k, v)| self.rs_by_label.get(&label_key(ns, k, v)));
        let candidates: Box<dyn Iterator<Item = &'a NamedRs> + 'a> = match posting {
            Some(Some(keys)) => Box::new(keys.iter().filter_map(|k| self.rss.get(k))),
            Some(None) => Box::new(std::iter::empty()),
            None => {
                let lo = format!("{ns}/");
                let hi = format!("{ns}0");
                Box::new(self.rss.range(lo..hi).map(|(_, o)| o))
            }
        };
        candidates
            .filter(move |r| r.rs.meta.namespace == ns && sel.matches(&r.rs.meta.labels))
            .map(|r| (r.name.clone(), &r.rs, &r.checks))
    }

    /// VirtualServices that select `rs` as it was (`old`) or is (`new`).
    fn selecting(
        &self,
        rs: &Object<RealServerSpec>,
        old: Option<&Object<RealServerSpec>>,
        new: Option<&Object<RealServerSpec>>,
    ) -> Vec<String> {
        let ns = rs.meta.namespace.as_str();
        let mut names: BTreeSet<&String> = BTreeSet::new();
        for (k, v) in &rs.meta.labels {
            if let Some(s) = self.vs_index.by_label.get(&label_key(ns, k, v)) {
                names.extend(s);
            }
        }
        if let Some(s) = self.vs_index.unfiled.get(ns) {
            names.extend(s);
        }
        names
            .into_iter()
            .filter(|n| {
                self.vss.get(*n).is_some_and(|vs| {
                    vs.meta.namespace == ns
                        && [old, new]
                            .into_iter()
                            .flatten()
                            .any(|r| vs.spec.selector().matches(&r.meta.labels))
                })
            })
            .cloned()
            .collect()
    }

    fn unfile_rs(&mut self, key: &str, o: &Object<RealServerSpec>) {
        for (k, v) in &o.meta.labels {
            let lk = label_key(&o.meta.namespace, k, v);
            if let Some(s) = self.rs_by_label.get_mut(&lk) {
                s.remove(key);
                if s.is_empty() {
                    self.rs_by_label.remove(&lk);
                }
            }
        }
    }

    /// The whole plan of this node.
    pub fn plan(&self) -> NodePlan {
        let mut plan = self.aggregate.plan(
            &self.node,
            self.fragments
                .values()
                .filter_map(|f| f.service.clone())
                .collect(),
        );
        overlay(&mut plan, &self.profile);
        plan
    }

    /// The part of the plan a scope covers: the services of the re-planned
    /// VirtualServices, every VIP at the scope's addresses, and all tunnels,
    /// loopback VIPs, sysctls and source-NATed services.
    pub fn partial_plan<'a>(
        &self,
        names: impl IntoIterator<Item = &'a String>,
        scope: &PlanScope,
    ) -> NodePlan {
        let services = names
            .into_iter()
            .filter_map(|name| self.fragments.get(name))
            .filter_map(|f| f.service.clone())
            .collect();
        let vips = self.aggregate.vips_at(&scope.vips).collect();
        let mut plan = self.aggregate.plan_with_vips(&self.node, services, vips);
        overlay(&mut plan, &self.profile);
        plan
    }

    /// The services and VIPs these VirtualServices hold on this node now.
    pub fn scope_of<'a>(&self, names: impl IntoIterator<Item = &'a String>) -> PlanScope {
        let mut scope = PlanScope::default();
        for f in names.into_iter().filter_map(|n| self.fragments.get(n)) {
            scope.cover(f);
        }
        scope
    }
}

/// Changes of every kind, applied together.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    /// Shared: the planner keeps the objects it is handed.
    pub virtual_services: Vec<Change<Arc<Object<VirtualServiceSpec>>>>,
    pub real_servers: Vec<Change<Object<RealServerSpec>>>,
    pub nodes: Vec<Change<NodeInfo>>,
    /// A new address policy (`Some(None)`: pools no longer enforced); `None`
    /// leaves the one in force.
    pub policy: Option<Option<AddressPolicy>>,
    /// LvsNodeProfiles (cluster-scoped: the key of a deleted one is
    /// `/name`).
    pub node_profiles: Vec<Change<Object<LvsNodeProfileSpec>>>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.virtual_services.is_empty()
            && self.real_servers.is_empty()
            && self.nodes.is_empty()
            && self.policy.is_none()
            && self.node_profiles.is_empty()
    }

    pub fn len(&self) -> usize {
        self.virtual_services.len()
            + self.real_servers.len()
            + self.nodes.len()
            + usize::from(self.policy.is_some())
            + self.node_profiles.len()
    }
}

#[cfg(test)]
mod tests;

//! The whole-store analysis that every reconcile starts from, computed again
//! only when one of its inputs changed.
//!
//! A VirtualService's verdict depends on the other objects (conflicts on the
//! same address, age order, the RealServers it selects), so a reconcile
//! needs the analysis of every object. Computing it in every reconcile made
//! a burst of N new objects cost N whole-store analyses: at 10k
//! VirtualServices most of the operator's CPU. The analysis is kept with a
//! fingerprint of its inputs, the planner's view of each object (identity,
//! labels, spec generation) and of each Node, so a reconcile pays for a fold
//! over the stores, not for planning them; its own status writes change
//! nothing the fingerprint covers.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use kube::Resource;
use kube::ResourceExt;
use lvs_api::{LvsNode, NodeInfo, Object, ServiceReport, VirtualServiceSpec};
use lvs_planner::{Analysis, RealServerVerdict, Verdict, analyze};
use serde::Serialize;
use tracing::debug;

use crate::status::{NodeReports, SelectionIndex};
use crate::stores::Stores;

/// The planner's inputs, taken from the stores.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub vss: Vec<Object<VirtualServiceSpec>>,
    pub rss: Vec<Object<lvs_api::RealServerSpec>>,
    pub nodes: Vec<NodeInfo>,
    pub reports: NodeReports,
}

impl Snapshot {
    pub fn from_stores(stores: &Stores) -> Self {
        Snapshot {
            vss: stores
                .vs
                .state()
                .iter()
                .map(|o| Object::from(o.as_ref()))
                .collect(),
            rss: stores
                .rs
                .state()
                .iter()
                .map(|o| Object::from(o.as_ref()))
                .collect(),
            nodes: stores
                .nodes
                .state()
                .iter()
                .map(|n| NodeInfo::from(n.as_ref()))
                .collect(),
            reports: reports_of(&stores.lvsnodes.state()),
        }
    }

    pub fn analyze(&self) -> Analysis {
        analyze(&self.vss, &self.rss, &self.nodes)
    }
}

/// The LvsNode reports, keyed by node (the LvsNode's name).
pub fn reports_of(lvsnodes: &[Arc<LvsNode>]) -> NodeReports {
    NodeReports::new(lvsnodes.iter().map(|l| {
        let services: Vec<ServiceReport> = l
            .status
            .as_ref()
            .map(|s| s.services.clone())
            .unwrap_or_default();
        (l.name_any(), services)
    }))
}

/// The last value computed, with the fingerprint of what it came from.
#[derive(Debug)]
struct Memo<T>(Mutex<Option<(u64, Arc<T>)>>);

impl<T> Default for Memo<T> {
    fn default() -> Self {
        Memo(Mutex::new(None))
    }
}

impl<T> Memo<T> {
    /// The value for `key`, computed (once, under the lock: concurrent
    /// reconciles wait for it instead of computing it again) when the
    /// remembered one has another key.
    fn get(&self, key: u64, compute: impl FnOnce() -> T) -> Arc<T> {
        let mut last = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match last.as_ref() {
            Some((k, v)) if *k == key => Arc::clone(v),
            _ => {
                let v = Arc::new(compute());
                *last = Some((key, Arc::clone(&v)));
                v
            }
        }
    }
}

/// The planner's analysis of every object, with the RealServers' view of
/// it.
#[derive(Debug)]
pub struct Planned {
    pub analysis: Analysis,
    pub selections: SelectionIndex,
}

impl Planned {
    pub fn new(analysis: Analysis) -> Self {
        let selections = SelectionIndex::new(&analysis);
        Planned {
            analysis,
            selections,
        }
    }

    /// The verdicts selecting the RealServer `key` (namespace/name).
    pub fn selecting<'a>(
        &'a self,
        key: &str,
    ) -> impl Iterator<Item = (&'a Verdict, &'a RealServerVerdict)> + 'a {
        self.selections.selecting(&self.analysis, key)
    }
}

/// The analysis and the agents' reports, each remembered until its inputs
/// change.
#[derive(Debug, Default)]
pub struct Inputs {
    planned: Memo<Planned>,
    reports: Memo<NodeReports>,
}

impl Inputs {
    /// The planner's analysis of everything in the stores.
    pub fn planned(&self, stores: &Stores) -> Arc<Planned> {
        self.planned.get(analysis_key(stores), || {
            let t0 = Instant::now();
            let snapshot = Snapshot::from_stores(stores);
            let analysis = snapshot.analyze();
            debug!(
                virtual_services = snapshot.vss.len(),
                real_servers = snapshot.rss.len(),
                nodes = snapshot.nodes.len(),
                elapsed_ms = t0.elapsed().as_millis() as u64,
                "analysis computed"
            );
            Planned::new(analysis)
        })
    }

    /// What each node's agent last reported (its LvsNode status).
    pub fn reports(&self, stores: &Stores) -> Arc<NodeReports> {
        let lvsnodes = stores.lvsnodes.state();
        let mut fold = Fold::default();
        for l in &lvsnodes {
            let m = l.meta();
            fold.add(&(&m.name, &m.uid, &m.resource_version));
        }
        self.reports.get(fold.finish(), || reports_of(&lvsnodes))
    }
}

/// An order-independent hash of a set of items (the stores list objects in
/// no particular order).
#[derive(Debug, Default)]
struct Fold {
    sum: u64,
    xor: u64,
    count: u64,
}

impl Fold {
    fn add(&mut self, item: &impl Hash) {
        let mut h = DefaultHasher::new();
        item.hash(&mut h);
        let v = h.finish();
        self.sum = self.sum.wrapping_add(v);
        self.xor ^= v.rotate_left(17).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.count += 1;
    }

    fn finish(&self) -> u64 {
        let mut h = DefaultHasher::new();
        (self.sum, self.xor, self.count).hash(&mut h);
        h.finish()
    }
}

/// What the planner sees of an object: identity, labels and the spec's
/// generation (bumped by the API server on every spec change, and only
/// then: status writes leave it alone). An object without a generation
/// (never the case for one read from an API server) counts with its whole
/// spec.
fn object_view<K: Resource, S: Serialize>(o: &K, spec: &S) -> u64 {
    let m = o.meta();
    let mut h = DefaultHasher::new();
    (&m.namespace, &m.name, &m.uid, &m.labels, &m.generation).hash(&mut h);
    if m.generation.is_none() {
        m.creation_timestamp
            .as_ref()
            .map(|t| t.0.as_nanosecond())
            .hash(&mut h);
        serde_json::to_string(spec).unwrap_or_default().hash(&mut h);
    }
    h.finish()
}

/// The fingerprint of everything [`Snapshot::analyze`] reads.
fn analysis_key(stores: &Stores) -> u64 {
    let mut vs = Fold::default();
    for o in stores.vs.state() {
        vs.add(&object_view(o.as_ref(), &o.spec));
    }
    let mut rs = Fold::default();
    for o in stores.rs.state() {
        rs.add(&object_view(o.as_ref(), &o.spec));
    }
    let mut nodes = Fold::default();
    for n in stores.nodes.state() {
        nodes.add(&NodeInfo::from(n.as_ref()));
    }
    let mut h = DefaultHasher::new();
    (vs.finish(), rs.finish(), nodes.finish()).hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_ignores_order_and_counts_repeats() {
        let mut a = Fold::default();
        let mut b = Fold::default();
        for x in [1u32, 2, 3] {
            a.add(&x);
        }
        for x in [3u32, 1, 2] {
            b.add(&x);
        }
        assert_eq!(a.finish(), b.finish());
        let mut c = Fold::default();
        for x in [1u32, 2, 3, 3] {
            c.add(&x);
        }
        assert_ne!(a.finish(), c.finish());
        let mut d = Fold::default();
        for x in [1u32, 2, 4] {
            d.add(&x);
        }
        assert_ne!(a.finish(), d.finish());
    }

    #[test]
    fn memo_computes_once_per_key() {
        let memo = Memo::<u32>::default();
        let mut calls = 0;
        assert_eq!(
            *memo.get(1, || {
                calls += 1;
                10
            }),
            10
        );
        assert_eq!(*memo.get(1, || unreachable!("same key")), 10);
        assert_eq!(
            *memo.get(2, || {
                calls += 1;
                20
            }),
            20
        );
        assert_eq!(calls, 2);
    }
}

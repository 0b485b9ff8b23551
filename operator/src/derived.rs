//! The whole-store analysis that every reconcile starts from, computed again
//! only when one of its inputs changed.
//!
//! A VirtualService's verdict depends on the other objects (conflicts on the
//! same address, age order, the RealServers it selects), so a reconcile
//! needs the analysis of every object, and computing it in every reconcile
//! would make a burst of N new objects cost N whole-store analyses. The
//! analysis is kept with the change count it was computed at
//! ([`crate::stores::ChangeCounters`], bumped by the watch tasks when the planner's
//! view of an object changes), so a reconcile pays for one atomic load; the
//! operator's own status writes change nothing the count covers. While
//! changes keep coming (N objects created one after the other), a reconcile
//! takes any analysis at least as new as the count it read, so the
//! reconciles waiting meanwhile share one computation.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use kube::ResourceExt;
use lvs_api::{LvsNode, NodeInfo, Object, ServiceReport, VirtualServiceSpec};
use lvs_planner::{Analysis, RealServerVerdict, Verdict, analyze_with};

use crate::pools::{PoolDecision, decide_from};
use tracing::debug;

use crate::status::{NodeReports, SelectionIndex};
use crate::stores::Stores;

/// The planner's inputs, taken from the stores.
#[derive(Debug, Clone, Default)]
pub struct StoreSnapshot {
    pub vss: Vec<Object<VirtualServiceSpec>>,
    pub rss: Vec<Object<lvs_api::RealServerSpec>>,
    pub nodes: Vec<NodeInfo>,
    pub reports: NodeReports,
    /// The address policy; `None` when pools are not enforced (stores
    /// without an API server behind them).
    pub pools: Option<PoolDecision>,
}

impl StoreSnapshot {
    pub fn from_stores(stores: &Stores) -> Self {
        let vss: Vec<Object<VirtualServiceSpec>> = stores
            .vs
            .state()
            .iter()
            .map(|o| Object::from(o.as_ref()))
            .collect();
        let pools = stores
            .pools
            .enforced
            .then(|| decide_from(&stores.pools, &stores.nodes, &vss));
        StoreSnapshot {
            pools,
            vss,
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
        analyze_with(
            &self.vss,
            &self.rss,
            &self.nodes,
            self.pools.as_ref().map(|p| &p.policy),
        )
    }
}

/// The LvsNode reports, keyed by node (the LvsNode's name).
pub fn reports_of(lvsnodes: &[Arc<LvsNode>]) -> NodeReports {
    NodeReports::with_node_errors(lvsnodes.iter().map(|l| {
        let (services, node_errors): (Vec<ServiceReport>, Vec<String>) = l
            .status
            .as_ref()
            .map(|s| (s.services.clone(), s.node_errors.clone()))
            .unwrap_or_default();
        (l.name_any(), services, node_errors)
    }))
    .with_vip_roles(lvsnodes.iter().map(|l| {
        let vips = l
            .status
            .as_ref()
            .map(|s| s.vips.clone())
            .unwrap_or_default();
        (l.name_any(), vips)
    }))
}

/// The last value computed, with the change count it was computed at.
#[derive(Debug)]
struct ChangeCountCache<T>(Mutex<Option<(u64, Arc<T>)>>);

impl<T> Default for ChangeCountCache<T> {
    fn default() -> Self {
        ChangeCountCache(Mutex::new(None))
    }
}

impl<T> ChangeCountCache<T> {
    /// A value computed at change count `key` or later: the remembered one
    /// when it is that new, else one computed now (once, under the lock).
    ///
    /// `compute` reads the count itself, before the stores, and the value is
    /// remembered with that count, so the reconciles that wait for the lock
    /// while a burst of changes goes on share the one computation that
    /// includes their change instead of computing one each. A value newer
    /// than the caller asked for is as good: it holds every change up to
    /// the caller's count.
    fn get(&self, key: u64, compute: impl FnOnce() -> (u64, T)) -> Arc<T> {
        let mut last = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match last.as_ref() {
            Some((k, v)) if *k >= key => Arc::clone(v),
            _ => {
                let (at, v) = compute();
                let v = Arc::new(v);
                *last = Some((at.max(key), Arc::clone(&v)));
                v
            }
        }
    }
}

/// The planner's analysis of every object, with the RealServers' view of
/// it.
#[derive(Debug)]
pub struct Analyzed {
    pub analysis: Analysis,
    pub selections: SelectionIndex,
    /// The address policy the analysis ran under (empty when pools are not
    /// enforced).
    pub pools: PoolDecision,
}

impl Analyzed {
    pub fn new(analysis: Analysis) -> Self {
        let selections = SelectionIndex::new(&analysis);
        Analyzed {
            analysis,
            selections,
            pools: PoolDecision::default(),
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
pub struct DerivedState {
    analyzed: ChangeCountCache<Analyzed>,
    reports: ChangeCountCache<NodeReports>,
}

impl DerivedState {
    /// The planner's analysis of everything in the stores.
    pub fn planned(&self, stores: &Stores) -> Arc<Analyzed> {
        // The count first: the stores are at least as new as it.
        self.analyzed.get(stores.changes.planner(), || {
            let at = stores.changes.planner();
            let t0 = Instant::now();
            let snapshot = StoreSnapshot::from_stores(stores);
            let analysis = snapshot.analyze();
            debug!(
                virtual_services = snapshot.vss.len(),
                real_servers = snapshot.rss.len(),
                nodes = snapshot.nodes.len(),
                elapsed_ms = t0.elapsed().as_millis() as u64,
                "analysis computed"
            );
            (
                at,
                Analyzed {
                    pools: snapshot.pools.unwrap_or_default(),
                    ..Analyzed::new(analysis)
                },
            )
        })
    }

    /// What each node's agent last reported (its LvsNode status).
    pub fn reports(&self, stores: &Stores) -> Arc<NodeReports> {
        self.reports.get(stores.changes.reports(), || {
            let at = stores.changes.reports();
            (at, reports_of(&stores.lvsnodes.state()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memo_computes_once_per_key() {
        let memo = ChangeCountCache::<u32>::default();
        let mut calls = 0;
        assert_eq!(
            *memo.get(1, || {
                calls += 1;
                (1, 10)
            }),
            10
        );
        assert_eq!(*memo.get(1, || unreachable!("same key")), 10);
        assert_eq!(
            *memo.get(2, || {
                calls += 1;
                (2, 20)
            }),
            20
        );
        assert_eq!(calls, 2);
    }

    #[test]
    fn memo_serves_older_keys_from_a_newer_value() {
        let memo = ChangeCountCache::<u32>::default();
        // Asked at 3, the computation saw 7 changes already (a burst went on
        // while the caller waited for the lock).
        assert_eq!(*memo.get(3, || (7, 70)), 70);
        for k in 3..=7 {
            assert_eq!(*memo.get(k, || unreachable!("key {k} <= 7")), 70);
        }
        assert_eq!(*memo.get(8, || (8, 80)), 80);
    }

    #[test]
    fn memo_never_goes_back_to_an_older_count() {
        let memo = ChangeCountCache::<u32>::default();
        // A count read before the caller's own cannot make the value older
        // than the caller asked for.
        assert_eq!(*memo.get(5, || (4, 40)), 40);
        assert_eq!(*memo.get(5, || unreachable!("remembered at 5")), 40);
    }
}

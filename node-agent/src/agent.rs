//! The sync loop: snapshots in, plan, reconcile, status and metrics out.
//!
//! It runs on a thread of its own (the dataplane is blocking) and reacts to
//! [`Event`]s: a new snapshot syncs from the cached kernel view, the resync
//! timer syncs after a full read, a failed sync is retried with backoff.
//! Nothing is synced before the first snapshot arrives, so a slow source
//! can never look like "everything was deleted".

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::watch;

use crate::dataplane::Dataplane;
use crate::metrics::Metrics;
use crate::reconcile::{Reconciler, SyncInput};
use crate::report::{ServiceReport, SyncError, SyncReport, lvsnode_services, node_roles};
use crate::source::{Event, Snapshot};

/// Settings of the loop.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub node_name: String,
    pub resync_interval: Duration,
    /// InternalIPs given on the command line; they win over Node manifests.
    pub node_ips: Vec<IpAddr>,
}

/// What the node has programmed, for `/status` and for the Kubernetes mode
/// to publish as the node's LvsNode status: per VirtualService the planned
/// generation and whether it is programmed, plus node-level errors.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentStatus {
    pub node: String,
    /// Unix time of the last sync.
    pub last_sync: Option<f64>,
    pub ok: bool,
    pub services: BTreeMap<String, ServiceReport>,
    pub errors: Vec<SyncError>,
    pub origin: Option<String>,
    /// The LvsNode view: one entry per VirtualService this node has a role
    /// in (director or DR/TUN realserver), with its generation and error.
    pub reports: Vec<lvs_api::ServiceReport>,
}

/// Liveness and readiness, shared with the HTTP server.
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
    heartbeat: AtomicU64,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

impl Health {
    pub fn new() -> Self {
        let h = Health::default();
        h.beat();
        h
    }

    fn beat(&self) {
        self.heartbeat.store(unix_now(), Ordering::Relaxed);
    }

    /// Ready once a sync has read the kernel and applied a snapshot.
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Seconds since the loop last woke up.
    pub fn heartbeat_age(&self) -> u64 {
        unix_now().saturating_sub(self.heartbeat.load(Ordering::Relaxed))
    }
}

/// The loop's state.
#[derive(Debug)]
pub struct Agent<D> {
    reconciler: Reconciler<D>,
    cfg: AgentConfig,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    status: watch::Sender<AgentStatus>,
    current: Option<Snapshot>,
    warned_no_node: bool,
}

const FIRST_RETRY: Duration = Duration::from_secs(1);

impl<D: Dataplane> Agent<D> {
    pub fn new(
        reconciler: Reconciler<D>,
        cfg: AgentConfig,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
    ) -> (Self, watch::Receiver<AgentStatus>) {
        let (status, rx) = watch::channel(AgentStatus {
            node: cfg.node_name.clone(),
            ..AgentStatus::default()
        });
        (
            Agent {
                reconciler,
                cfg,
                metrics,
                health,
                status,
                current: None,
                warned_no_node: false,
            },
            rx,
        )
    }

    pub fn reconciler(&self) -> &Reconciler<D> {
        &self.reconciler
    }

    pub fn into_reconciler(self) -> Reconciler<D> {
        self.reconciler
    }

    /// The node's InternalIPs: the command line's, else its Node manifest's.
    fn node_ips(&mut self, s: &Snapshot) -> Vec<IpAddr> {
        if !self.cfg.node_ips.is_empty() {
            return self.cfg.node_ips.clone();
        }
        match s.nodes.iter().find(|n| n.name == self.cfg.node_name) {
            Some(n) => n.internal_ips.clone(),
            None => {
                if !self.warned_no_node {
                    tracing::warn!(
                        node = %self.cfg.node_name,
                        "no Node manifest for this node: it has no labels (only empty selectors match it) and no InternalIP"
                    );
                    self.warned_no_node = true;
                }
                Vec::new()
            }
        }
    }

    /// Plans the snapshot for this node and reconciles.
    pub fn sync(&mut self, snapshot: &Snapshot, full: bool) -> SyncReport {
        let started = Instant::now();
        let analysis = lvs_planner::analyze(
            &snapshot.virtual_services,
            &snapshot.real_servers,
            &snapshot.nodes,
        );
        let plan = lvs_planner::plan_from_analysis(
            &self.cfg.node_name,
            &analysis,
            &snapshot.virtual_services,
        );
        let roles = node_roles(&self.cfg.node_name, &analysis);
        let node_ips = self.node_ips(snapshot);
        let report = self.reconciler.sync(
            SyncInput {
                plan: &plan,
                node_ips: &node_ips,
            },
            full,
        );
        let elapsed = started.elapsed();
        self.metrics.record_sync(&report, elapsed.as_secs_f64());
        if report.full {
            let ledger = self.reconciler.ledger();
            self.metrics.set_stats(
                self.reconciler
                    .owned_stats()
                    .iter()
                    .map(|s| {
                        (
                            s.clone(),
                            ledger.services.get(&s.key).map(|o| o.owner.clone()),
                        )
                    })
                    .collect(),
            );
        }
        let read_ok = !report
            .errors
            .iter()
            .any(|e| e.kind == crate::report::ErrorKind::Read);
        if read_ok {
            self.health.ready.store(true, Ordering::Relaxed);
        }
        for e in &report.errors {
            tracing::error!(kind = e.kind.metric_label(), owner = e.owner.as_deref().unwrap_or(""), error = %e.message, "sync problem");
        }
        tracing::info!(
            full = report.full,
            ops = report.total_ops(),
            errors = report.errors.len(),
            services = report.services.len(),
            elapsed_ms = elapsed.as_millis() as u64,
            "sync done"
        );
        let _ = self.status.send(AgentStatus {
            node: self.cfg.node_name.clone(),
            last_sync: Some(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or_default(),
            ),
            ok: report.ok(),
            services: report.services.clone(),
            errors: report.errors.clone(),
            origin: Some(snapshot.origin.clone()),
            reports: lvsnode_services(&roles, &report),
        });
        report
    }

    fn sync_current(&mut self, full: bool) -> Option<SyncReport> {
        let snapshot = self.current.take()?;
        let report = self.sync(&snapshot, full);
        self.current = Some(snapshot);
        Some(report)
    }

    /// Runs until [`Event::Shutdown`] or until every sender is gone.
    pub fn run(&mut self, rx: &Receiver<Event>) {
        let interval = self.cfg.resync_interval;
        let mut next_resync = Instant::now() + interval;
        let mut retry: Option<(Instant, Duration)> = None;
        loop {
            self.health.beat();
            let now = Instant::now();
            let deadline = retry.map_or(next_resync, |(at, _)| at.min(next_resync));
            let (mut snapshot, mut full, mut stop) = (None, false, false);
            match rx.recv_timeout(deadline.saturating_duration_since(now)) {
                Ok(ev) => {
                    // Take everything queued: only the latest snapshot counts.
                    let mut ev = Some(ev);
                    while let Some(e) = ev.take().or_else(|| rx.try_recv().ok()) {
                        match e {
                            Event::Snapshot(s) => snapshot = Some(*s),
                            Event::Resync => full = true,
                            Event::Shutdown => stop = true,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    if Instant::now() >= next_resync {
                        full = true;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => stop = true,
            }
            if stop {
                tracing::info!("stopping; the kernel keeps its current state");
                return;
            }
            if let Some(s) = snapshot {
                self.current = Some(s);
            }
            if full {
                next_resync = Instant::now() + interval;
            }
            let Some(report) = self.sync_current(full) else {
                continue;
            };
            retry = if report.ok() {
                None
            } else {
                let backoff = retry.map_or(FIRST_RETRY, |(_, b)| (b * 2).min(interval));
                Some((Instant::now() + backoff, backoff))
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::fake::FakeDataplane;
    use crate::ledger::LedgerStore;
    use crate::source::DirSource;
    use std::sync::mpsc;

    const FILES: &str = r#"
apiVersion: v1
kind: Node
metadata: {name: n1, labels: {lvs: director}}
status: {addresses: [{type: InternalIP, address: 192.0.2.10}]}
---
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: VirtualService
metadata: {name: web, namespace: default, generation: 3}
spec:
  address: 10.0.0.1
  port: 80
  directors: {nodeSelector: {matchLabels: {lvs: director}}}
  realServerSelector: {matchLabels: {app: web}}
---
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: RealServer
metadata: {name: web-1, namespace: default, labels: {app: web}}
spec: {address: 10.1.0.1, port: 8080}
"#;

    fn agent() -> (Agent<FakeDataplane>, watch::Receiver<AgentStatus>) {
        let r = Reconciler::new(FakeDataplane::new(), LedgerStore::in_memory()).unwrap();
        Agent::new(
            r,
            AgentConfig {
                node_name: "n1".into(),
                resync_interval: Duration::from_secs(30),
                node_ips: vec![],
            },
            Arc::new(Metrics::default()),
            Arc::new(Health::new()),
        )
    }

    fn dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("lvs-agent-loop-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn manifests_end_up_in_the_kernel_and_the_status() {
        let d = dir("e2e");
        std::fs::write(d.join("all.yaml"), FILES).unwrap();
        let (mut a, status) = agent();
        let snap = DirSource::load(&d).unwrap();
        let rep = a.sync(&snap, false);
        assert!(rep.ok(), "{rep:?}");
        let f = a.reconciler().dataplane();
        assert_eq!(f.ipvs.len(), 1);
        let s = f.ipvs.values().next().unwrap();
        assert_eq!(s.dests.len(), 1);
        assert!(
            f.addresses
                .iter()
                .any(|x| x.addr.to_string() == "10.0.0.1" && x.interface == "eth0")
        );
        let st = status.borrow().clone();
        assert!(st.ok);
        assert_eq!(st.services["default/web"].generation, Some(3));
        assert!(st.services["default/web"].programmed);
        assert_eq!(
            st.reports,
            [lvs_api::ServiceReport {
                name: "default/web".into(),
                generation: Some(3),
                roles: vec!["director".into()],
                error: String::new(),
            }]
        );
        assert!(a.health.ready());
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn an_invalid_file_keeps_the_last_good_state() {
        let d = dir("invalid");
        std::fs::write(d.join("all.yaml"), FILES).unwrap();
        let metrics = Arc::new(Metrics::default());
        let src = DirSource::new(&d, Duration::from_millis(10), metrics.clone());
        let (mut a, _) = agent();
        let good = src.load_reported().unwrap();
        assert!(a.sync(&good, false).ok());
        a.reconciler.dataplane_mut().take_calls();
        // Break the file: the RealServer is gone from what parses, and a
        // field is wrong. Nothing is handed to the loop...
        std::fs::write(
            d.join("all.yaml"),
            FILES
                .replace("port: 8080", "port: 0")
                .replace("kind: RealServer", "kind: RealServr"),
        )
        .unwrap();
        assert!(src.load_reported().is_none());
        let text = metrics.render();
        assert!(text.contains("lvs_agent_config_valid 0"), "{text}");
        assert!(text.contains("all.yaml\"} 1"), "{text}");
        // ...so the next resync still programs the last good snapshot.
        let (tx, rx) = mpsc::channel();
        a.current = Some(good);
        tx.send(Event::Resync).unwrap();
        tx.send(Event::Shutdown).unwrap();
        a.run(&rx);
        let f = a.reconciler().dataplane();
        assert_eq!(f.ipvs.values().next().unwrap().dests.len(), 1);
        assert!(f.writes().is_empty(), "{:?}", f.writes());
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn nothing_is_synced_before_the_first_snapshot() {
        let (mut a, _) = agent();
        let (tx, rx) = mpsc::channel();
        tx.send(Event::Resync).unwrap();
        tx.send(Event::Shutdown).unwrap();
        a.run(&rx);
        assert!(a.reconciler().dataplane().calls.is_empty());
        assert!(!a.health.ready());
    }

    #[test]
    fn queued_snapshots_collapse_into_the_latest() {
        let (mut a, _) = agent();
        let (tx, rx) = mpsc::channel();
        let d = dir("collapse");
        std::fs::write(d.join("all.yaml"), FILES).unwrap();
        let snap = DirSource::load(&d).unwrap();
        let mut other = snap.clone();
        other.virtual_services.clear();
        tx.send(Event::Snapshot(Box::new(snap))).unwrap();
        tx.send(Event::Snapshot(Box::new(other))).unwrap();
        tx.send(Event::Shutdown).unwrap();
        a.run(&rx);
        // Stopped in the same batch: nothing synced at all.
        assert!(a.reconciler().dataplane().calls.is_empty());
        let (tx, rx) = mpsc::channel();
        let snap = DirSource::load(&d).unwrap();
        let mut other = snap.clone();
        other.virtual_services.clear();
        tx.send(Event::Snapshot(Box::new(other))).unwrap();
        tx.send(Event::Snapshot(Box::new(snap))).unwrap();
        drop(tx);
        a.run(&rx);
        assert_eq!(
            a.reconciler().dataplane().ipvs.len(),
            1,
            "the last one wins"
        );
        std::fs::remove_dir_all(d).unwrap();
    }
}

//! The sync loop: snapshots in, plan, reconcile, status and metrics out.
//!
//! It runs on a thread of its own (the dataplane is blocking) and reacts to
//! [`Event`]s: a new snapshot syncs from the cached kernel view, the resync
//! timer syncs after a full read, a failed sync is retried with backoff.
//! Nothing is synced before the first snapshot arrives, so a slow source
//! can never look like "everything was deleted".

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::watch;

use lvs_api::{DestinationState, RealServerState};
use lvs_planner::{Changes, Incremental, PlanScope};

use crate::dataplane::Dataplane;
use crate::desired::service_key;
use crate::metrics::Metrics;
use crate::reconcile::{CheckStep, Reconciler, SyncInput, SyncScope};
use crate::report::{
    DestinationStates, ErrorLog, NodeRole, ServiceSync, SyncError, SyncReport, lvsnode_services,
    node_errors, node_role,
};
use crate::source::{Event, Snapshot};

/// Settings of the loop.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub node_name: String,
    /// The shortest time between periodic full resyncs.
    pub resync_interval: Duration,
    /// The most time periodic resyncs may take, in percent: after a full
    /// sync that took `d`, the next starts no sooner than `d * 100 / share`
    /// later. A full read of a large table is slow, and changes wait while
    /// it runs.
    pub resync_max_share: u32,
    /// InternalIPs given on the command line; they win over Node manifests.
    pub node_ips: Vec<IpAddr>,
    /// Which director VIPs this node holds (director high availability).
    pub vip_roles: crate::ha::VipRoles,
    /// With HA: the active's VIP addresses get this finite lifetime and are
    /// renewed every `renew_interval`, so they vanish when the agent dies.
    pub vip_lifetime: Option<VipLifetime>,
    /// How often the kernel's counters of the owned services are read for
    /// the published status (`None`: never).
    pub live_interval: Option<Duration>,
}

/// The lifetime of an active's VIP addresses and how often it is renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VipLifetime {
    pub seconds: u32,
    pub renew_interval: Duration,
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
    pub services: BTreeMap<String, ServiceSync>,
    pub errors: Vec<SyncError>,
    pub origin: Option<String>,
    /// The LvsNode view: one entry per VirtualService this node has a role
    /// in (director or DR/TUN realserver), with its generation and error.
    pub reports: Vec<lvs_api::ServiceReport>,
    /// The node-level errors of the last sync (see
    /// [`crate::report::is_node_error`]), each once; they fail every entry
    /// of `reports` without being copied into them.
    pub node_errors: Vec<String>,
    /// Director: per VirtualService (namespace/name), the states of its
    /// destinations (health checks, readiness gating, drain, sorry server).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub destinations: BTreeMap<String, crate::report::DestinationStates>,
    /// Director high availability: this node's role per VIP, sorted by
    /// address (empty without HA).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub vips: Vec<crate::ha::VipState>,
    /// HA: see [`crate::ha::Elected::settling`].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ha_settling: Vec<String>,
    /// HA: the candidates of each VIP of this node's plan, and the
    /// InternalIPs of the nodes, for the election.
    #[serde(skip)]
    pub ha_candidates: BTreeMap<IpAddr, Vec<String>>,
    #[serde(skip)]
    pub node_ips: BTreeMap<String, Vec<IpAddr>>,
    /// VirtualServices this node would direct that the address pools
    /// refuse: namespace/name -> why.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub refused: BTreeMap<String, String>,
    /// The LvsNodeProfile this node follows and the settings it asks for
    /// (IPVS timeouts under `ipvs/timeout/`, sysctls by their /proc/sys
    /// path), or the profiles in conflict.
    #[serde(skip_serializing_if = "lvs_planner::ProfileChoice::is_none")]
    pub profile: lvs_planner::ProfileChoice,
    /// Director: per VirtualService, the kernel's counters and the hash of
    /// its programmed table, as last read (every `live_interval`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub live: BTreeMap<String, crate::report::LiveState>,
    /// Director: per VirtualService, the last drift a full resync repaired.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub drift: BTreeMap<String, lvs_api::DriftReport>,
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
    /// Every object, and this node's plan, kept current change by change.
    planner: Incremental,
    /// Whether a first snapshot arrived (nothing is synced before).
    loaded: bool,
    /// Changes applied to the planner and not synced yet.
    pending: Pending,
    /// The VirtualServices' table hashes, kept while their settings stay.
    table_hashes: crate::report::TableHashes,
    /// A periodic resync's check or a read of the live counters in
    /// progress, with its start.
    check: Option<(Resync, Instant)>,
    /// A read of the live counters in steps just ended, with the time its
    /// steps took: the loop schedules the next.
    live_done: Option<Duration>,
    /// The first read of the live counters since the start has ended
    /// (logged once).
    live_read_once: bool,
    /// This node's role per VirtualService, kept with the verdicts.
    roles: BTreeMap<String, NodeRole>,
    /// VirtualServices whose last sync reported an error: retried.
    failing: BTreeSet<String>,
    /// The last sync had a problem no single VirtualService owns (reading
    /// the kernel, the ledger, a sysctl...): the retry plans everything.
    node_problem: bool,
    origin: String,
    warned_no_node: bool,
    /// Groups and rate-limits the logging of sync errors.
    error_log: ErrorLog,
    /// This node's HA role per VIP and since when (Unix seconds).
    vip_roles: BTreeMap<IpAddr, (crate::ha::Role, f64)>,
    /// Destinations that left their service and drain (weight 0) first.
    drains: crate::drain::Drains,
    /// Readiness gating, on once the first realserver reports arrive
    /// (Kubernetes mode only).
    gate: Option<crate::gating::Gate>,
    /// The health check table the probe engine works from; `None`: no
    /// probing (every destination counts as healthy).
    checks: Option<crate::health::Checks>,
}

/// What the next sync must cover.
#[derive(Debug, Default)]
struct Pending {
    /// Plan everything (first snapshot, a Node changed, a retry after a
    /// node-level problem).
    all: bool,
    /// Re-planned VirtualServices.
    names: BTreeSet<String>,
    scope: PlanScope,
}

impl Pending {
    fn is_empty(&self) -> bool {
        !self.all
            && self.names.is_empty()
            && self.scope.services.is_empty()
            && self.scope.vips.is_empty()
    }
}

const FIRST_RETRY: Duration = Duration::from_secs(1);

/// A periodic resync, or a read of the live counters, in steps (see
/// [`crate::reconcile::Check`]); the loop syncs what arrives between any
/// two.
#[derive(Debug)]
enum Resync {
    /// Reading the kernel (and for a resync comparing it with the cached
    /// view).
    Check(crate::reconcile::Check),
    /// The read becomes the live counters, in steps. For a resync (the
    /// kernel is as the last sync left it) the read then goes to the
    /// metrics' counters.
    Live {
        entries: Vec<lvs_ipvs::ServiceEntry>,
        build: crate::report::LiveBuild,
        /// A read of the live counters alone: how long its reading took.
        read_only: Option<Duration>,
    },
    Stats(Vec<lvs_ipvs::ServiceEntry>),
}

impl Resync {
    fn live(entries: Vec<lvs_ipvs::ServiceEntry>, read_only: Option<Duration>) -> Self {
        Resync::Live {
            entries,
            build: crate::report::LiveBuild::new(crate::report::rfc3339_now()),
            read_only,
        }
    }
}

/// About how long one step of a periodic resync's check reads before the
/// loop looks for changes (see [`crate::reconcile::Check`]).
const CHECK_STEP: Duration = Duration::from_millis(25);

/// The most time the live counters' reads may take, in percent: each reads
/// the whole IPVS table, which takes seconds at hundreds of thousands of
/// destinations, and changes wait while it runs.
const LIVE_MAX_SHARE: u32 = 10;

/// The wait after a full sync that took `took`: at least `interval`, and
/// long enough that full syncs take at most `share` percent of the time.
fn resync_gap(interval: Duration, share: u32, took: Duration) -> Duration {
    interval.max(took * 100 / share.clamp(1, 100))
}

/// At most this many newly refused VirtualServices are logged one by one
/// per change; the rest are counted in one line (the agent's `/status`
/// lists them all, the LvsNode the first 50), so pools that go missing
/// under 10k VirtualServices log a few lines, not 10k.
const REFUSALS_LOGGED: usize = 10;

fn log_refusals(newly: &[(&String, &String)]) {
    for (name, why) in newly.iter().take(REFUSALS_LOGGED) {
        tracing::warn!(vs = %name, reason = %why, "not programming this VirtualService: the address pools refuse it");
    }
    if newly.len() > REFUSALS_LOGGED {
        tracing::warn!(
            more = newly.len() - REFUSALS_LOGGED,
            "not programming more VirtualServices the address pools refuse (the agent's /status lists them all)"
        );
    }
}

/// Per re-planned VirtualService this node would direct: why the address
/// pools refuse it, or `None` (allowed, gone, or not this node's).
fn refusals(node: &str, applied: &lvs_planner::Applied) -> Vec<(String, Option<String>)> {
    applied
        .verdicts
        .iter()
        .map(|(name, v)| {
            let why = v.as_ref().and_then(|v| match &v.state {
                lvs_planner::ServiceState::NotAllowed { message, .. }
                    if v.directors.iter().any(|d| d == node) =>
                {
                    Some(message.clone())
                }
                _ => None,
            });
            (name.clone(), why)
        })
        .collect()
}

/// The reconciler's scope for a planner scope.
fn reconcile_scope(s: &PlanScope) -> SyncScope {
    SyncScope {
        services: s.services.iter().map(service_key).collect(),
        vips: s.vips.clone(),
    }
}

impl<D: Dataplane> Agent<D> {
    pub fn new(
        mut reconciler: Reconciler<D>,
        cfg: AgentConfig,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
    ) -> (Self, watch::Receiver<AgentStatus>) {
        if let Some(l) = cfg.vip_lifetime {
            reconciler.start_renewer(l.seconds, l.renew_interval);
        }
        reconciler.keep_destination_stats_up_to(metrics.max_destinations());
        let (status, rx) = watch::channel(AgentStatus {
            node: cfg.node_name.clone(),
            ..AgentStatus::default()
        });
        (
            Agent {
                reconciler,
                planner: Incremental::new(cfg.node_name.clone()),
                cfg,
                metrics,
                health,
                status,
                loaded: false,
                pending: Pending::default(),
                check: None,
                live_done: None,
                live_read_once: false,
                table_hashes: Default::default(),
                roles: BTreeMap::new(),
                failing: BTreeSet::new(),
                node_problem: false,
                origin: String::new(),
                warned_no_node: false,
                error_log: ErrorLog::default(),
                vip_roles: BTreeMap::new(),
                drains: crate::drain::Drains::default(),
                gate: None,
                checks: None,
            },
            rx,
        )
    }

    /// Health checks: each sync registers its probe targets in `checks`
    /// and steers by their states; a probe engine works from the same table.
    pub fn set_health_checks(&mut self, checks: crate::health::Checks) {
        self.checks = Some(checks);
    }

    /// Marks VirtualServices for the next (scoped) sync.
    fn replan(&mut self, names: Vec<String>) {
        let scope = self.planner.scope_of(names.iter());
        self.pending.scope.services.extend(scope.services);
        self.pending.scope.vips.extend(scope.vips);
        self.pending.names.extend(names);
    }

    pub fn reconciler(&self) -> &Reconciler<D> {
        &self.reconciler
    }

    pub fn reconciler_mut(&mut self) -> &mut Reconciler<D> {
        &mut self.reconciler
    }

    pub fn into_reconciler(self) -> Reconciler<D> {
        self.reconciler
    }

    /// The node's InternalIPs: the command line's, else its Node manifest's.
    fn node_ips(&mut self) -> Vec<IpAddr> {
        if !self.cfg.node_ips.is_empty() {
            return self.cfg.node_ips.clone();
        }
        match self.planner.nodes().get(&self.cfg.node_name) {
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

    /// Takes changes into the planner; what they affect is synced next.
    pub fn apply(&mut self, changes: Changes, origin: &str) {
        self.loaded = true;
        self.origin = origin.to_string();
        let applied = self.planner.apply(changes);
        let node = self.cfg.node_name.clone();
        if applied.all {
            self.roles.clear();
        }
        if applied.profile_changed {
            self.profile_changed();
        }
        let refusals = refusals(&node, &applied);
        if applied.all || !refusals.is_empty() {
            let mut newly = Vec::new();
            self.status.send_if_modified(|st| {
                let before = st.refused.clone();
                if applied.all {
                    st.refused.clear();
                }
                for (name, why) in &refusals {
                    match why {
                        Some(why) => {
                            if before.get(name) != Some(why) {
                                newly.push((name, why));
                            }
                            st.refused.insert(name.clone(), why.clone());
                        }
                        None => {
                            st.refused.remove(name);
                        }
                    }
                }
                st.refused != before
            });
            log_refusals(&newly);
        }
        for (name, verdict) in &applied.verdicts {
            match verdict.as_ref().and_then(|v| node_role(&node, v)) {
                Some(r) => {
                    self.roles.insert(name.clone(), r);
                }
                None => {
                    self.roles.remove(name);
                }
            }
        }
        self.pending.all |= applied.all;
        if self.pending.all {
            // The whole sync that is due plans everything: which services
            // were re-planned does not matter to it.
            self.pending.names.clear();
            self.pending.scope = PlanScope::default();
            return;
        }
        self.pending
            .names
            .extend(applied.verdicts.into_iter().map(|(n, _)| n));
        self.pending.scope.services.extend(applied.scope.services);
        self.pending.scope.vips.extend(applied.scope.vips);
    }

    /// The node follows another LvsNodeProfile: logged, published, and
    /// the sysctls synced.
    fn profile_changed(&mut self) {
        let choice = self.planner.profile().clone();
        match &choice {
            lvs_planner::ProfileChoice::None => {
                tracing::info!("no LvsNodeProfile selects this node: the agent's defaults apply")
            }
            lvs_planner::ProfileChoice::Applied { name, settings } => {
                tracing::info!(profile = %name, ?settings, "following LvsNodeProfile");
                if settings
                    .get("net/ipv4/vs/expire_nodest_conn")
                    .is_some_and(|v| v == "0")
                {
                    tracing::warn!(
                        profile = %name,
                        "expireNodestConn is false: clients of a destination removed after its drain or by a health check stall until their connection times out"
                    );
                }
            }
            lvs_planner::ProfileChoice::Conflict { names } => tracing::warn!(
                profiles = ?names,
                "several LvsNodeProfiles select this node: none applies until only one does"
            ),
        }
        self.status.send_modify(|st| st.profile = choice);
        self.pending.all = true;
    }

    /// Takes the nodes' LvsNode reports for readiness gating: the first
    /// turns gating on (everything is planned again); later ones re-sync
    /// the VirtualServices with gated destinations on a node whose report
    /// changed.
    pub fn set_readiness(&mut self, reports: crate::gating::Readiness) {
        let Some(gate) = &mut self.gate else {
            let mut gate = crate::gating::Gate::default();
            gate.set_reports(reports);
            self.gate = Some(gate);
            self.pending.all = true;
            return;
        };
        let names = gate.set_reports(reports);
        if names.is_empty() {
            return;
        }
        let scope = self.planner.scope_of(names.iter());
        self.pending.scope.services.extend(scope.services);
        self.pending.scope.vips.extend(scope.vips);
        self.pending.names.extend(names);
    }

    /// A whole snapshot: what differs from the objects held is applied.
    pub fn apply_snapshot(&mut self, snapshot: Snapshot) {
        let mut changes = self.planner.diff(
            snapshot.virtual_services,
            snapshot.real_servers,
            snapshot.nodes,
        );
        changes.node_profiles = self.planner.diff_profiles(snapshot.node_profiles);
        self.apply(changes, &snapshot.origin);
    }

    /// Applies the snapshot and syncs (`full`: read the kernel and plan
    /// everything).
    pub fn sync(&mut self, snapshot: &Snapshot, full: bool) -> SyncReport {
        self.apply_snapshot(snapshot.clone());
        self.sync_pending(full)
    }

    /// Syncs what is pending: everything when `full`, when a Node changed,
    /// after a node-level problem, or without a cached kernel view;
    /// otherwise only the re-planned VirtualServices and those that failed
    /// last time.
    pub fn sync_pending(&mut self, full: bool) -> SyncReport {
        let started = Instant::now();
        // A periodic resync with nothing pending since a sync without a
        // problem: the plan is the one the kernel was made to match, so
        // only the kernel can have changed. When a full read finds it as
        // the last sync left it, there is nothing to plan or write.
        if full && self.quiet() && self.reconciler.recheck() {
            return self.finish_unchanged(started);
        }
        self.sync_now(full, started)
    }

    /// Nothing pending since a sync that ended without a problem: a
    /// periodic resync need only check the kernel (see
    /// [`crate::reconcile::Check`]).
    fn quiet(&self) -> bool {
        self.pending.is_empty() && self.failing.is_empty() && !self.node_problem
    }

    /// A periodic resync that found the kernel as the last sync left it.
    fn finish_unchanged(&mut self, started: Instant) -> SyncReport {
        let report = SyncReport {
            full: true,
            unchanged: true,
            ..SyncReport::default()
        };
        self.renew_vips();
        self.finish(report, None, started)
    }

    /// Starts a periodic resync's check in steps (see
    /// [`crate::reconcile::Check`]) when nothing is pending since a sync
    /// without a problem. `false`: the ordinary full sync is due instead.
    fn begin_check(&mut self) -> bool {
        // A read of the live counters gives way: the check reads them too.
        if self.live_reading() {
            self.check = None;
        }
        let why = if !self.pending.is_empty() {
            "changes are pending"
        } else if !self.failing.is_empty() {
            "VirtualServices failed in the last sync"
        } else if self.node_problem {
            "the last sync had a node-level problem"
        } else {
            let started = Instant::now();
            if let Some(c) = self.reconciler.check_begin() {
                self.check = Some((Resync::Check(c), started));
                return true;
            }
            if self.reconciler.has_view() {
                "the kernel was just read in full for the drain; the sync uses that read"
            } else {
                "a write's answer left the cached view in doubt"
            }
        };
        tracing::info!(
            reason = why,
            pending = self.pending.names.len() + self.pending.scope.services.len(),
            failing = self.failing.len(),
            "periodic resync: a full sync, not a check"
        );
        false
    }

    /// A periodic resync's check runs (not a read of the live counters).
    fn resync_running(&self) -> bool {
        self.check.is_some() && !self.live_reading()
    }

    /// A read of the live counters in steps runs.
    fn live_reading(&self) -> bool {
        match &self.check {
            Some((Resync::Check(c), _)) => c.live_only(),
            Some((Resync::Live { read_only, .. }, _)) => read_only.is_some(),
            _ => false,
        }
    }

    /// Starts a read of the live counters in steps (see
    /// [`crate::reconcile::Reconciler::live_begin`]); with nothing owned
    /// there is nothing to read and the live state is emptied now.
    fn begin_live(&mut self) {
        match self.reconciler.live_begin() {
            Some(c) => self.check = Some((Resync::Check(c), Instant::now())),
            None => {
                self.publish_live(BTreeMap::new());
                self.live_done = Some(Duration::ZERO);
            }
        }
    }

    /// Takes the next step of the check in progress. `Some`: it ended in a
    /// sync (unchanged, or the full sync a difference called for).
    fn step_check(&mut self) -> Option<SyncReport> {
        let (resync, started) = self.check.take()?;
        let resync = match resync {
            Resync::Check(mut c) if c.live_only() => {
                match self.reconciler.check_step(&mut c, CHECK_STEP) {
                    CheckStep::More => self.check = Some((Resync::Check(c), started)),
                    CheckStep::Same(entries) => {
                        self.check = Some((Resync::live(entries, Some(c.busy())), started));
                    }
                    CheckStep::Differs => {
                        tracing::debug!(
                            "reading the IPVS counters failed; the next read tries again"
                        );
                        self.live_done = Some(c.busy());
                    }
                }
                return None;
            }
            Resync::Live {
                entries,
                mut build,
                read_only: Some(read),
            } => {
                if !self.live_step(&entries, &mut build) {
                    self.check = Some((
                        Resync::Live {
                            entries,
                            build,
                            read_only: Some(read),
                        },
                        started,
                    ));
                    return None;
                }
                let busy = read + build.busy();
                self.live_done = Some(busy);
                self.publish_live(build.into_live());
                if !std::mem::replace(&mut self.live_read_once, true) {
                    tracing::info!(
                        services = entries.len(),
                        busy_ms = busy.as_millis() as u64,
                        "live counters: the first read since the start is done"
                    );
                }
                return None;
            }
            other => other,
        };
        if !self.quiet() {
            // A sync since the check began failed: the full sync decides.
            return Some(self.sync_now(true, started));
        }
        match resync {
            Resync::Check(mut c) => match self.reconciler.check_step(&mut c, CHECK_STEP) {
                CheckStep::More => {
                    self.check = Some((Resync::Check(c), started));
                    None
                }
                CheckStep::Same(entries) => {
                    self.check = Some((Resync::live(entries, None), started));
                    None
                }
                CheckStep::Differs => Some(self.sync_now(true, started)),
            },
            Resync::Live {
                entries,
                mut build,
                read_only,
            } => {
                // The check read everything the live counters need.
                if self.live_step(&entries, &mut build) {
                    self.publish_live(build.into_live());
                    self.check = Some((Resync::Stats(entries), started));
                } else {
                    self.check = Some((
                        Resync::Live {
                            entries,
                            build,
                            read_only,
                        },
                        started,
                    ));
                }
                None
            }
            Resync::Stats(entries) => {
                self.reconciler.keep_stats(entries);
                Some(self.finish_unchanged(started))
            }
        }
    }

    /// One step of turning a read into live states; `true` once done.
    fn live_step(
        &mut self,
        entries: &[lvs_ipvs::ServiceEntry],
        build: &mut crate::report::LiveBuild,
    ) -> bool {
        build.step(
            entries,
            self.reconciler.ledger(),
            &mut self.table_hashes,
            CHECK_STEP,
        )
    }

    fn sync_now(&mut self, full: bool, started: Instant) -> SyncReport {
        if self.check.is_some() && (full || self.pending.all || self.node_problem) {
            // A whole sync supersedes the check; a full one reads anyway.
            self.check = None;
        }
        let pending = std::mem::take(&mut self.pending);
        let node_ips = self.node_ips();
        let directs = self.planner.directs();
        let whole = full || pending.all || self.node_problem || !self.reconciler.has_view();
        let (report, names) = if whole {
            // The drain compares the plan with the kernel: read it first
            // if there is no view (the sync then uses this read).
            let read_now = self.reconciler.ensure_view();
            let full = full && !read_now;
            let mut plan = self.planner.plan();
            self.steer(&mut plan, None);
            let roles = crate::ha::roles_in(&plan, &self.cfg.vip_roles);
            self.note_candidates(&plan, None);
            let refused = crate::ha::hold_only_active(&mut plan, &self.cfg.vip_roles);
            let mut report = self.reconciler.sync(
                SyncInput {
                    plan: &plan,
                    node_ips: &node_ips,
                    directs,
                },
                full,
            );
            crate::ha::report_refused(&mut report, &plan, &refused);
            self.note_roles(&roles, None);
            self.renew_vips();
            (report, None)
        } else {
            let mut names = pending.names;
            names.extend(self.failing.iter().cloned());
            let mut scope = pending.scope;
            let retry = self.planner.scope_of(self.failing.iter());
            scope.services.extend(retry.services);
            scope.vips.extend(retry.vips);
            let mut plan = self.planner.partial_plan(names.iter(), &scope);
            self.steer(&mut plan, Some(&names));
            let roles = crate::ha::roles_in(&plan, &self.cfg.vip_roles);
            self.note_candidates(&plan, Some(&scope.vips));
            let refused = crate::ha::hold_only_active(&mut plan, &self.cfg.vip_roles);
            let scope = reconcile_scope(&scope);
            if let Some((Resync::Check(c), _)) = &mut self.check {
                c.touch(&scope.services);
            }
            let mut report = self.reconciler.sync_scoped(
                SyncInput {
                    plan: &plan,
                    node_ips: &node_ips,
                    directs,
                },
                &scope,
            );
            crate::ha::report_refused(&mut report, &plan, &refused);
            self.note_roles(&roles, Some(&scope.vips));
            self.renew_vips();
            (report, Some(names))
        };
        self.finish(report, names, started)
    }

    /// The director-side steps between the plan and the kernel, in this
    /// order: drain (leaving destinations are put back with weight 0 and
    /// state `Draining` until their connections end; the later steps leave
    /// those alone: never probed back to a weight, never counted, kept
    /// beside a sorry server),
    /// readiness gating (DR/TUN realserver nodes whose agent has not set up
    /// the VIP get weight 0), health (failing destinations inhibited or
    /// removed; the sorry server below quorum). Each step notes the
    /// destinations it changed; the states of the planned services are
    /// published (`names`: the VirtualServices a scoped plan covers; `None`:
    /// all).
    fn steer(&mut self, plan: &mut lvs_planner::NodePlan, names: Option<&BTreeSet<String>>) {
        let mut states: BTreeMap<String, DestinationStates> = plan
            .services
            .iter()
            .map(|s| {
                let total = s.destinations.len() as u32;
                (s.owner.clone(), DestinationStates::new(total))
            })
            .collect();
        let drained = self.drains.apply(
            plan,
            names,
            self.reconciler.known(),
            self.reconciler.ledger(),
            Instant::now(),
        );
        for n in drained {
            states.entry(n.owner).or_default().note_draining(
                &n.dest,
                n.since,
                n.connections,
                n.problem,
            );
        }
        for s in &plan.services {
            for d in s
                .destinations
                .iter()
                .filter(|d| d.state == RealServerState::Inactive)
            {
                states.entry(s.owner.clone()).or_default().note(
                    d,
                    DestinationState::Inactive,
                    String::new(),
                );
            }
        }
        if let Some(gate) = &mut self.gate {
            gate.apply(&self.cfg.node_name, plan, names, &mut states);
        }
        crate::health::step(self.checks.as_ref(), plan, names, &mut states);
        for st in states.values_mut() {
            st.finish();
        }
        let now = crate::report::rfc3339_now();
        self.status.send_modify(|st| {
            for (name, s) in states.iter_mut() {
                s.carry_since(st.destinations.get(name), &now);
            }
            match names {
                None => st.destinations = states,
                Some(n) => {
                    for name in n {
                        st.destinations.remove(name);
                    }
                    st.destinations.extend(states);
                }
            }
        });
    }

    /// When the connection counts of draining destinations are next read.
    pub fn next_drain_poll(&self) -> Option<Instant> {
        self.drains.next_poll()
    }

    /// Reads the connection counts of draining destinations (as of `now`):
    /// the VirtualServices whose drains ended are synced next, which
    /// removes those destinations. `true` when one ended.
    pub fn poll_drains(&mut self, now: Instant) -> bool {
        let reconciler = &mut self.reconciler;
        let ended = self.drains.poll(now, |k| reconciler.dest_stats(k));
        let drains = &self.drains;
        self.status.send_if_modified(|st| {
            let mut changed = false;
            for (owner, dest, n) in drains.running_counts() {
                let Some(states) = st.destinations.get_mut(owner) else {
                    continue;
                };
                let dest = dest.to_string();
                if let Some(e) = states.entries.iter_mut().find(|e| e.destination == dest)
                    && e.connections != n
                {
                    e.connections = n;
                    changed = true;
                }
            }
            changed
        });
        if ended.is_empty() {
            return false;
        }
        let scope = self.planner.scope_of(ended.iter());
        self.pending.names.extend(ended);
        self.pending.scope.services.extend(scope.services);
        self.pending.scope.vips.extend(scope.vips);
        true
    }

    /// Publishes the VIPs' candidates for the election (Kubernetes HA only).
    fn note_candidates(&mut self, plan: &lvs_planner::NodePlan, scope: Option<&BTreeSet<IpAddr>>) {
        if !matches!(self.cfg.vip_roles, crate::ha::VipRoles::Elected(_)) {
            return;
        }
        let now = crate::ha::candidates_in(plan);
        let nodes: BTreeMap<String, Vec<IpAddr>> = self
            .planner
            .nodes()
            .iter()
            .map(|(n, i)| (n.clone(), i.internal_ips.clone()))
            .collect();
        self.status.send_if_modified(|st| {
            let before = (st.ha_candidates.clone(), st.node_ips.clone());
            match scope {
                None => st.ha_candidates = now.clone(),
                Some(s) => {
                    st.ha_candidates.retain(|v, _| !s.contains(v));
                    st.ha_candidates.extend(
                        now.iter()
                            .filter(|(v, _)| s.contains(v))
                            .map(|(v, c)| (*v, c.clone())),
                    );
                }
            }
            st.node_ips = nodes.clone();
            before != (st.ha_candidates.clone(), st.node_ips.clone())
        });
    }

    /// Takes the roles of the election: the VIPs whose role changed are
    /// synced next.
    pub fn set_elected(&mut self, won: BTreeMap<IpAddr, crate::ha::Role>) {
        let before = match &self.cfg.vip_roles {
            crate::ha::VipRoles::Elected(b) => b.clone(),
            _ => BTreeMap::new(),
        };
        let changed = before
            .keys()
            .chain(won.keys())
            .filter(|v| before.get(*v) != won.get(*v))
            .copied();
        self.pending.scope.vips.extend(changed);
        self.cfg.vip_roles = crate::ha::VipRoles::Elected(won);
    }

    /// Renews the lifetime of the VIPs this node is active for (HA only).
    fn renew_vips(&mut self) {
        let Some(l) = self.cfg.vip_lifetime else {
            return;
        };
        let active: BTreeSet<IpAddr> = self
            .vip_roles
            .iter()
            .filter(|(_, (r, _))| *r == crate::ha::Role::Active)
            .map(|(a, _)| *a)
            .collect();
        if active.is_empty() {
            return;
        }
        for e in self.reconciler.renew_vips(&active, l.seconds) {
            tracing::warn!(error = %e, "renewing a VIP's lifetime failed");
        }
    }

    /// Takes the roles of a sync's plan (`scope`: the VIPs it covered;
    /// `None`: all): logs and counts each change, announces the VIPs this
    /// node took, and publishes the roles.
    fn note_roles(
        &mut self,
        roles: &BTreeMap<IpAddr, crate::ha::Role>,
        scope: Option<&BTreeSet<IpAddr>>,
    ) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        let changes = crate::ha::merge_roles(&mut self.vip_roles, roles, scope, now);
        if changes.is_empty() {
            return;
        }
        for c in &changes {
            tracing::info!(
                vip = %c.vip,
                from = c.from.map(|r| r.as_str()).unwrap_or("none"),
                to = c.to.map(|r| r.as_str()).unwrap_or("none"),
                "director role changed"
            );
            if c.is_takeover() {
                self.metrics.ha_takeover();
                self.reconciler.announce(c.vip);
            }
            if c.is_release() {
                self.metrics.ha_release();
            }
        }
        let vips: Vec<crate::ha::VipState> = self
            .vip_roles
            .iter()
            .map(|(a, (r, since))| crate::ha::VipState {
                address: *a,
                role: *r,
                since: *since,
            })
            .collect();
        self.metrics.set_vip_roles(&vips);
        self.status.send_modify(|st| st.vips = vips);
    }

    /// Counts, logs (one line per VirtualService) and publishes the drift a
    /// sync repaired.
    fn note_drift(&mut self, report: &SyncReport) {
        if report.drift.is_empty() {
            return;
        }
        for d in &report.drift {
            self.metrics.drift_repaired(&d.owner, d.kind.metric_label());
        }
        let now = crate::report::rfc3339_now();
        let reports = crate::report::drift_reports(&report.drift, &now);
        for (vs, r) in &reports {
            tracing::warn!(
                virtual_service = %vs,
                count = r.count,
                repaired = %r.repaired.join("; "),
                "drift repaired: kernel objects of this agent were changed by someone else"
            );
        }
        self.status.send_modify(|st| st.drift.extend(reports));
    }

    /// Reads the kernel's counters of the owned services and publishes
    /// them when they changed.
    pub fn sample_live(&mut self) {
        let entries = match self.reconciler.owned_entries() {
            Ok(e) => e,
            Err(e) => {
                tracing::debug!(error = %e, "reading the IPVS counters failed; the next sample tries again");
                return;
            }
        };
        let live = crate::report::live_states(
            &entries,
            self.reconciler.ledger(),
            &crate::report::rfc3339_now(),
            &mut self.table_hashes,
        );
        self.publish_live(live);
    }

    /// After a sync that changed the IPVS services of `owners`: their
    /// table hashes from the cached view, which the sync left as the kernel
    /// is, so a change costs no read of the table. Their counters and
    /// their time stay until the next read (a new VirtualService starts at
    /// zero); one listed whose services are gone loses its entry (a deleted
    /// VirtualService, which a sync's report does not list, loses it at
    /// the next read).
    pub(crate) fn publish_programmed<'a>(&mut self, owners: impl IntoIterator<Item = &'a String>) {
        let owners: BTreeSet<&str> = owners.into_iter().map(String::as_str).collect();
        let Some(entries) = self.reconciler.view_entries(&owners) else {
            return;
        };
        let now = crate::report::rfc3339_now();
        let mut fresh = crate::report::live_states(
            &entries,
            self.reconciler.ledger(),
            &now,
            &mut self.table_hashes,
        );
        self.status.send_if_modified(|st| {
            let mut changed = false;
            for owner in &owners {
                match (fresh.remove(*owner), st.live.get_mut(*owner)) {
                    (Some(new), Some(old)) => {
                        if old.table_hash != new.table_hash {
                            old.table_hash = new.table_hash;
                            changed = true;
                        }
                    }
                    (Some(new), None) => {
                        st.live.insert(owner.to_string(), new);
                        changed = true;
                    }
                    (None, Some(_)) => {
                        st.live.remove(*owner);
                        changed = true;
                    }
                    (None, None) => {}
                }
            }
            changed
        });
    }

    /// Publishes the live counters of a read of the whole IPVS table when
    /// they changed.
    fn publish_live(&mut self, live: BTreeMap<String, crate::report::LiveState>) {
        self.table_hashes.keep_only(&live);
        self.status
            .send_if_modified(|st| crate::report::merge_live(&mut st.live, live));
    }

    /// The answer to an LvsSnapshot request: the kernel's IPVS table read
    /// now, and with `diff` what a full sync would change (a dry run: the
    /// kernel, the ledger, the reconciler's view and the loop's own state
    /// are left as they are).
    pub fn live_table(&mut self, only: &[String], diff: bool) -> lvs_api::LvsSnapshotStatus {
        let time = crate::live_table::rfc3339_millis_now();
        let plan = (diff && self.loaded).then(|| self.dry_run_plan());
        let node_ips = if plan.is_some() {
            self.node_ips()
        } else {
            Vec::new()
        };
        let directs = self.planner.directs();
        let input = plan.as_ref().map(|plan| SyncInput {
            plan,
            node_ips: &node_ips,
            directs,
        });
        match self.reconciler.live_view(input) {
            Ok(view) => {
                let mut st = crate::live_table::status(&view, only, time);
                if diff && !self.loaded && st.error.is_empty() {
                    st.error = "no diff: the agent has not received its desired state yet".into();
                }
                st
            }
            Err(e) => lvs_api::LvsSnapshotStatus {
                time,
                error: format!("reading the kernel failed: {e}"),
                ..Default::default()
            },
        }
    }

    /// The plan a full sync would use now: the planner's, steered as
    /// [`Agent::steer`] steers it, but on copies of the drains and the
    /// readiness gate, without registering probe targets, and without
    /// publishing anything or logging the copies' decisions.
    fn dry_run_plan(&mut self) -> lvs_planner::NodePlan {
        let mut plan = self.planner.plan();
        let mut states: BTreeMap<String, DestinationStates> = BTreeMap::new();
        let node = self.cfg.node_name.clone();
        let mut drains = self.drains.clone();
        let mut gate = self.gate.clone();
        let (known, ledger) = (self.reconciler.known(), self.reconciler.ledger());
        tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), || {
            drains.apply(&mut plan, None, known, ledger, Instant::now());
            if let Some(gate) = &mut gate {
                gate.apply(&node, &mut plan, None, &mut states);
            }
        });
        crate::health::steer_all(self.checks.as_ref(), &mut plan, &mut states);
        crate::ha::hold_only_active(&mut plan, &self.cfg.vip_roles);
        plan
    }

    /// Metrics, logs and the published status after a sync. `names`: the
    /// VirtualServices a scoped sync covered (`None`: all).
    fn finish(
        &mut self,
        report: SyncReport,
        names: Option<BTreeSet<String>>,
        started: Instant,
    ) -> SyncReport {
        let elapsed = started.elapsed();
        self.metrics.record_sync(&report, elapsed.as_secs_f64());
        if report.full {
            crate::alloc::release_free_memory();
            let (stats, destinations) = self.reconciler.take_owned_stats();
            let ledger = self.reconciler.ledger();
            self.metrics.set_stats(
                stats
                    .into_iter()
                    .map(|s| {
                        let owner = ledger.services.get(&s.service.key).map(|o| o.owner.clone());
                        (s, owner)
                    })
                    .collect(),
                destinations,
            );
        }
        self.note_drift(&report);
        let read_ok = !report
            .errors
            .iter()
            .any(|e| e.kind == crate::report::ErrorKind::Read);
        if read_ok {
            self.health.ready.store(true, Ordering::Relaxed);
        }
        for l in self.error_log.lines(&report.errors, Instant::now()) {
            tracing::error!(
                kind = l.kind.metric_label(),
                services = l.count,
                owners = %l.owners.join(","),
                repeated = l.repeated,
                error = %l.message,
                "sync problem"
            );
        }
        tracing::info!(
            full = report.full,
            scoped = names.is_some(),
            unchanged = report.unchanged,
            ops = report.total_ops(),
            errors = report.errors.len(),
            services = report.services.len(),
            elapsed_ms = elapsed.as_millis() as u64,
            "sync done"
        );

        // Which VirtualServices fail now.
        let owned_errors: BTreeSet<String> = report
            .errors
            .iter()
            .filter_map(|e| e.owner.clone())
            .collect();
        self.node_problem = report.errors.iter().any(|e| e.owner.is_none());
        match &names {
            None => self.failing = owned_errors,
            Some(n) => {
                self.failing.retain(|f| !n.contains(f));
                self.failing.extend(owned_errors);
            }
        }
        let ok = !self.node_problem && self.failing.is_empty();

        // The published status: whole after a whole sync, else only the
        // covered entries change (every entry when a node-level problem
        // comes or goes).
        let last_sync = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        let origin = self.origin.clone();
        let roles = &self.roles;
        if report.unchanged {
            // The statuses of the last sync stand: only its time moves on.
            self.status.send_modify(|st| st.last_sync = Some(last_sync));
            return report;
        }
        self.status.send_modify(|st| {
            st.node = self.cfg.node_name.clone();
            st.last_sync = Some(last_sync);
            st.ok = ok;
            st.origin = Some(origin);
            let node_errors_before = !st.node_errors.is_empty();
            st.errors = report.errors.clone();
            st.node_errors = node_errors(&report);
            let node_errors_now = !st.node_errors.is_empty();
            match &names {
                Some(n) if !node_errors_before && !node_errors_now => {
                    for name in n {
                        st.services.remove(name);
                    }
                    st.services
                        .extend(report.services.iter().map(|(k, v)| (k.clone(), v.clone())));
                    let covered: BTreeMap<String, NodeRole> = n
                        .iter()
                        .filter_map(|name| roles.get(name).map(|r| (name.clone(), r.clone())))
                        .collect();
                    let fresh = lvsnode_services(&covered, &report);
                    for name in n {
                        if let Ok(i) = st.reports.binary_search_by(|r| r.name.cmp(name)) {
                            st.reports.remove(i);
                        }
                    }
                    for r in fresh {
                        match st.reports.binary_search_by(|x| x.name.cmp(&r.name)) {
                            Ok(i) => st.reports[i] = r,
                            Err(i) => st.reports.insert(i, r),
                        }
                    }
                }
                Some(n) => {
                    for name in n {
                        st.services.remove(name);
                    }
                    st.services
                        .extend(report.services.iter().map(|(k, v)| (k.clone(), v.clone())));
                    st.reports = lvsnode_services(roles, &report);
                }
                None => {
                    st.services = report.services.clone();
                    st.reports = lvsnode_services(roles, &report);
                    st.drift.retain(|vs, _| roles.contains_key(vs));
                }
            }
        });
        report
    }

    /// Runs until [`Event::Shutdown`] or until every sender is gone.
    pub fn run(&mut self, rx: &Receiver<Event>) {
        let interval = self.cfg.resync_interval;
        let share = self.cfg.resync_max_share;
        let mut next_resync = Instant::now() + interval;
        let mut retry: Option<(Instant, Duration)> = None;
        let renew_every = self.cfg.vip_lifetime.map(|l| l.renew_interval);
        let mut next_renew = Instant::now();
        let live_every = self.cfg.live_interval;
        let mut next_live = Instant::now();
        // The earliest next read of the live counters, even after a change
        // (see LIVE_MAX_SHARE).
        let mut live_not_before = Instant::now();
        loop {
            self.health.beat();
            if let Some(every) = renew_every
                && Instant::now() >= next_renew
            {
                self.renew_vips();
                next_renew = Instant::now() + every;
            }
            let now = Instant::now();
            let deadline = retry.map_or(next_resync, |(at, _)| at.min(next_resync));
            let deadline = match renew_every {
                Some(_) => deadline.min(next_renew),
                None => deadline,
            };
            let deadline = match self.drains.next_poll() {
                Some(p) => deadline.min(p),
                None => deadline,
            };
            let deadline = match live_every {
                Some(_) if self.loaded => deadline.min(next_live),
                _ => deadline,
            };
            let (mut received, mut full, mut stop, mut due) = (false, false, false, false);
            // Wake at least once per interval, for the liveness heartbeat;
            // while a check runs, only look for what arrived.
            let wait = if self.check.is_some() {
                Duration::ZERO
            } else {
                deadline.saturating_duration_since(now).min(interval)
            };
            match rx.recv_timeout(wait) {
                Ok(ev) => {
                    // Take everything queued: changes add up, the latest
                    // snapshot replaces.
                    let mut ev = Some(ev);
                    while let Some(e) = ev.take().or_else(|| rx.try_recv().ok()) {
                        match e {
                            Event::Snapshot(s) => {
                                self.apply_snapshot(*s);
                                received = true;
                            }
                            Event::Changes(c, origin) => {
                                self.apply(*c, &origin);
                                received = true;
                            }
                            Event::Resync => full = true,
                            Event::Health(names) => {
                                self.replan(names);
                                received = true;
                            }
                            Event::Roles(e) => {
                                self.status.send_if_modified(|st| {
                                    let changed = st.ha_settling != e.settling;
                                    st.ha_settling = e.settling;
                                    changed
                                });
                                self.set_elected(e.roles);
                                received = true;
                            }
                            Event::Readiness(r) => {
                                self.set_readiness(*r);
                                received = true;
                            }
                            Event::LiveTable(req) => {
                                let answer = self.live_table(&req.virtual_services, req.diff);
                                let _ = req.reply.send(answer);
                            }
                            Event::Shutdown => stop = true,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    if Instant::now() >= next_resync {
                        full = true;
                    }
                    due = retry.is_some_and(|(at, _)| Instant::now() >= at);
                }
                Err(RecvTimeoutError::Disconnected) => stop = true,
            }
            if stop {
                tracing::info!("stopping; the kernel keeps its current state");
                return;
            }
            if full {
                next_resync = Instant::now() + interval;
            }
            let mut drained = self.drains.next_poll().is_some_and(|p| Instant::now() >= p)
                && self.poll_drains(Instant::now());
            // A periodic resync runs as a check in steps when it can (a
            // resync asked for while one runs is that one), after the
            // changes that came with it.
            let mut synced = Vec::new();
            if full && self.loaded && !self.resync_running() && (received || due || drained) {
                synced.push((Instant::now(), self.sync_now(false, Instant::now())));
                (received, due, drained) = (false, false, false);
            }
            if full && self.loaded && (self.resync_running() || self.begin_check()) {
                full = false;
            }
            if self.loaded && (received || full || due || drained) {
                synced.push((Instant::now(), self.sync_now(full, Instant::now())));
            }
            if synced.is_empty() && self.check.is_some() {
                let started = self.check.as_ref().map_or_else(Instant::now, |(_, t)| *t);
                synced.extend(self.step_check().map(|r| (started, r)));
            }
            for (started, report) in synced {
                // The IPVS table changed: after a scoped sync the changed
                // VirtualServices' table hashes come from the view at once
                // (a change costs no read of the whole table); after a full
                // one the table is read as soon as LIVE_MAX_SHARE allows,
                // not an interval later.
                if report.ops.keys().any(|k| crate::report::changes_ipvs(k)) {
                    if report.full {
                        next_live = Instant::now().max(live_not_before);
                    } else if live_every.is_some() {
                        self.publish_programmed(report.services.keys());
                    }
                }
                if report.full {
                    next_resync = Instant::now() + resync_gap(interval, share, started.elapsed());
                }
                // The check read the live counters.
                if report.unchanged
                    && let Some(every) = live_every
                {
                    next_live = (Instant::now() + every).max(live_not_before);
                }
                retry = if report.ok() && self.failing.is_empty() && !self.node_problem {
                    None
                } else {
                    let backoff = retry.map_or(FIRST_RETRY, |(_, b)| (b * 2).min(interval));
                    Some((Instant::now() + backoff, backoff))
                };
            }
            // After the sync: the counters are read in steps like a check,
            // so a change never waits behind them; while a check runs, it
            // reads them.
            if let Some(every) = live_every {
                // A read that just ended schedules the next before any
                // begins.
                if let Some(took) = self.live_done.take() {
                    live_not_before = Instant::now() + took * (100 / LIVE_MAX_SHARE - 1);
                    next_live = (Instant::now() + every).max(live_not_before);
                }
                if self.loaded && self.check.is_none() && Instant::now() >= next_live {
                    self.begin_live();
                }
            }
        }
    }
}

#[cfg(test)]
mod drain_tests;
#[cfg(test)]
mod live_table_tests;
#[cfg(test)]
mod tests;

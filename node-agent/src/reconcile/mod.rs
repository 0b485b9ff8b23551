//! Desired (a [`NodePlan`]) against actual (the kernel), by identity keys.
//!
//! - add what is desired and missing;
//! - change in place (SET_SERVICE / SET_DEST) what exists with another
//!   configuration;
//! - remove what exists, is not desired, and the [`Ledger`] says the agent
//!   created. Nothing else is ever touched: a desired service that exists but
//!   is foreign is reported, not taken over.
//!
//! The reconciler keeps its last view of the kernel in memory, so a change
//! costs requests in proportion to the change. A full read happens on the
//! first sync, on every periodic resync (to repair changes made by hand),
//! and after a failure that leaves the kernel state unknown.
//!
//! The ledger is written ahead of additions (so a crash right after a
//! create cannot orphan it) and after removals.
//!
//! A sync is data first, effects second. Each kind of kernel object has a
//! pure diff of (desired, known, ledger) that returns a [`Decision`]: the
//! writes to make and the ledger delta recording the intended additions.
//! [`ipvs`], [`addresses`], [`tunnels`] (with fou ports), [`sysctls`],
//! [`daemons`] (IPVS connection sync) and [`snat`] (source NAT) hold one each, with their table tests. The sync applies the merged delta
//! to the ledger and makes it durable as one unit (or reverts it and writes
//! nothing), then `execute` carries out the writes in [`Write::rank`]
//! order, taking an addition's entry back out of the ledger when the kernel
//! says it did not happen, and recording removals once they did.

pub mod addresses;
mod check;
pub mod daemons;
pub mod decision;
pub mod describe;
pub mod drift;
mod execute;
pub mod ipvs;
pub mod nft_table;
pub mod sysctls;
pub mod tunnels;

pub use check::{Check, CheckStep};

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use lvs_planner::NodePlan;

use lvs_ipvs::{DaemonState, ServiceConfig, ServiceEntry, ServiceKey};

use crate::dataplane::{Dataplane, DataplaneError, Renewals, lock_renewals};
use crate::desired::LOOPBACK;
use crate::desired::{Desired, desired};
use crate::kernel::{
    AddrKey, AddrKind, AddrScope, Address, DaemonSpec, DestMap, FouPort, Link, VipMode, owned_label,
};
use crate::ledger::{COMPACT_AFTER, Ledger, LedgerError, LedgerPart, LedgerStore};
use crate::report::{ErrorKind, ServiceSync, SyncError, SyncReport};
pub use daemons::SyncDaemonSettings;
pub use decision::{Decision, LedgerDelta, Write};
use sysctls::{ReadFailure, SysctlRead};

/// What a sync works from.
#[derive(Debug, Clone, Copy)]
pub struct SyncInput<'a> {
    pub plan: &'a NodePlan,
    /// The node's InternalIPs, to find the director interface.
    pub node_ips: &'a [IpAddr],
    /// Whether the node directs any service in its whole plan (a scoped
    /// sync's plan holds only part of them): with HA, a director runs the
    /// connection sync daemons.
    pub directs: bool,
}

/// What a scoped sync may change: these IPVS services, and the addresses at
/// these VIPs. Loopback and tunnel addresses, tunnel devices, fou ports and
/// sysctls are few and always reconciled whole, so the plan handed with a
/// scope must carry all of them (see `lvs_planner::Incremental::partial_plan`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncScope {
    pub services: BTreeSet<ServiceKey>,
    pub vips: BTreeSet<IpAddr>,
}

/// One IPVS service as the reconciler believes the kernel holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownService {
    pub config: ServiceConfig,
    pub dests: DestMap,
}

/// The reconciler's view of the kernel between syncs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Known {
    pub ipvs_available: bool,
    pub ipvs: BTreeMap<ServiceKey, KnownService>,
    pub addresses: BTreeMap<AddrKey, Address>,
    pub links: BTreeMap<String, Link>,
    pub fou: BTreeSet<FouPort>,
    /// Sysctl values read or written since the last full read.
    pub sysctls: BTreeMap<String, String>,
    /// Running IPVS connection sync daemons, by role.
    pub daemons: BTreeMap<DaemonState, DaemonSpec>,
    /// The agent's source NAT table.
    pub nft: nft_table::NftView,
}

/// What [`Reconciler::live_view`] read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveView {
    /// Whether the kernel has IPVS (without it, `entries` is empty).
    pub ipvs_available: bool,
    /// Every IPVS service with its destinations and counters.
    pub entries: Vec<ServiceEntry>,
    /// The VirtualService (namespace/name) of each owned service.
    pub owners: BTreeMap<ServiceKey, String>,
    /// With a diff: the changes a sync would make, one line each, in the
    /// order it would make them.
    pub changes: Option<Vec<String>>,
}

fn owners_of(ledger: &Ledger, entries: &[ServiceEntry]) -> BTreeMap<ServiceKey, String> {
    entries
        .iter()
        .filter_map(|e| {
            let k = e.service.key;
            ledger.services.get(&k).map(|o| (k, o.owner.clone()))
        })
        .collect()
}

/// The reconcile engine: owns the dataplane, the ledger and the cached view.
#[derive(Debug)]
pub struct Reconciler<D> {
    dp: D,
    store: LedgerStore,
    ledger: Ledger,
    known: Option<Known>,
    /// A write of the sync in progress failed in a way that leaves the
    /// cached view in doubt (an unknown outcome, or a kernel answer that
    /// contradicts the view). The view stays usable until the sync ends, so
    /// no step after the failure works without one; then it is dropped and
    /// the next sync reads the kernel in full.
    stale: bool,
    /// Owned services with their counters, from the last full read; their
    /// destinations only while there are at most `stats_max_destinations`.
    stats: Vec<ServiceEntry>,
    /// Owned destinations the last full read found.
    stats_destinations: usize,
    stats_max_destinations: usize,
    /// Problems found at start (a quarantined ledger), reported once.
    startup_errors: Vec<SyncError>,
    /// How director VIPs are held.
    vip_mode: VipMode,
    /// With HA: the connection sync daemons to run while the node directs.
    sync_daemons: Option<SyncDaemonSettings>,
    /// The active's VIPs whose finite lifetime is being renewed; shared with
    /// the dataplane's renewal thread when it has one (`renew_thread`).
    renewals: Renewals,
    renew_thread: bool,
    /// The view was just read in full by [`Reconciler::ensure_view`]: the
    /// next sync counts as full.
    fresh: bool,
}

/// Where a sync's time went, logged with each sync (info for full syncs,
/// debug for scoped ones): the numbers that say what bounds a large
/// converge.
#[derive(Debug)]
struct Phases {
    last: std::time::Instant,
    ms: Vec<(&'static str, f64)>,
}

impl Phases {
    fn start() -> Self {
        Phases {
            last: std::time::Instant::now(),
            ms: Vec::new(),
        }
    }

    /// Adds the time since the last mark to `what`.
    fn mark(&mut self, what: &'static str) {
        let now = std::time::Instant::now();
        let ms = now.duration_since(self.last).as_secs_f64() * 1e3;
        self.last = now;
        match self.ms.iter_mut().find(|(w, _)| *w == what) {
            Some((_, t)) => *t += ms,
            None => self.ms.push((what, ms)),
        }
    }

    fn log(&self, full: bool) {
        let get = |w: &str| {
            self.ms
                .iter()
                .find(|(n, _)| *n == w)
                .map_or(0, |(_, t)| t.round() as u64)
        };
        macro_rules! phases {
            ($level:ident) => {
                tracing::$level!(
                    read_and_desired_ms = get("read_and_desired"),
                    decide_ms = get("decide"),
                    persist_intent_ms = get("persist_intent"),
                    ipvs_ms = get("ipvs"),
                    addresses_ms = get("addresses"),
                    other_writes_ms = get("other_writes"),
                    persist_ms = get("persist"),
                    "sync phases"
                )
            };
        }
        if full {
            phases!(info);
        } else {
            phases!(debug);
        }
    }
}

impl<D: Dataplane> Reconciler<D> {
    /// Reads the ledger. A corrupt ledger is moved aside and the agent starts
    /// owning nothing (so it deletes nothing); an unreadable one is an error.
    pub fn new(dp: D, mut store: LedgerStore) -> Result<Self, LedgerError> {
        let mut startup_errors = Vec::new();
        let started = std::time::Instant::now();
        let ledger = match store.load() {
            Ok(l) => {
                tracing::info!(
                    services = l.services.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "ledger loaded"
                );
                l
            }
            Err(e @ (LedgerError::Corrupt { .. } | LedgerError::Version { .. })) => {
                let aside = store.quarantine()?;
                let msg = format!(
                    "{e}; moved to {}; starting with an empty ledger: existing IPVS services are treated as foreign",
                    aside.map(|p| p.display().to_string()).unwrap_or_default()
                );
                tracing::error!(error = %msg, "ledger unusable");
                startup_errors.push(SyncError::new(ErrorKind::Ledger, None, msg));
                Ledger::default()
            }
            Err(e) => return Err(e),
        };
        Ok(Reconciler {
            dp,
            store,
            ledger,
            known: None,
            stale: false,
            stats: Vec::new(),
            stats_destinations: 0,
            stats_max_destinations: usize::MAX,
            startup_errors,
            vip_mode: VipMode::default(),
            sync_daemons: None,
            renewals: Renewals::default(),
            renew_thread: false,
            fresh: false,
        })
    }

    /// Renews the VIP lifetimes from the dataplane's own thread from now on
    /// (if it has one), every `every`, for `lifetime_s` seconds each time.
    pub fn start_renewer(&mut self, lifetime_s: u32, every: std::time::Duration) {
        lock_renewals(&self.renewals).lifetime_s = lifetime_s;
        self.renew_thread = self.dp.spawn_renewer(self.renewals.clone(), every);
    }

    /// How director VIPs are to be held from the next sync on. VIPs already
    /// held the other way stay as they are (either way the node answers).
    pub fn with_vip_mode(mut self, mode: VipMode) -> Self {
        self.vip_mode = mode;
        self
    }

    /// Runs the IPVS connection sync daemons (master and backup) while the
    /// node directs a service; `None` stops those the agent started.
    pub fn with_sync_daemons(mut self, settings: Option<SyncDaemonSettings>) -> Self {
        self.sync_daemons = settings;
        self
    }

    pub fn dataplane(&self) -> &D {
        &self.dp
    }

    /// The addresses whose lifetime is being renewed.
    pub fn renewing(&self) -> Vec<IpAddr> {
        lock_renewals(&self.renewals)
            .addrs
            .iter()
            .map(|a| a.addr)
            .collect()
    }

    pub fn dataplane_mut(&mut self) -> &mut D {
        &mut self.dp
    }

    pub fn into_dataplane(self) -> D {
        self.dp
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Renews the lifetime of the director VIPs among `vips` that this
    /// agent holds as addresses (a local route has no lifetime). Only what
    /// the ledger owns and the cached view has is renewed; without a view
    /// the next sync, which reads the kernel in full, comes first.
    pub fn renew_vips(&mut self, vips: &BTreeSet<IpAddr>, lifetime_s: u32) -> Vec<DataplaneError> {
        let Some(known) = &self.known else {
            return Vec::new();
        };
        let held: Vec<Address> = known
            .addresses
            .iter()
            .filter(|(k, a)| {
                vips.contains(&k.addr)
                    && k.interface != "lo"
                    && a.kind == crate::kernel::AddrKind::Interface
                    && self.ledger.addresses.contains(*k)
            })
            .map(|(_, a)| a.clone())
            .collect();
        let fresh: Vec<Address> = {
            let mut set = lock_renewals(&self.renewals);
            let fresh = held
                .iter()
                .filter(|a| !set.addrs.iter().any(|r| r.key() == a.key()))
                .cloned()
                .collect();
            set.addrs = held.clone();
            set.lifetime_s = lifetime_s;
            fresh
        };
        // With a renewal thread, only a VIP just taken is renewed here: it
        // gets its finite lifetime at once, not a renew interval later.
        let now = if self.renew_thread { &fresh } else { &held };
        now.iter()
            .filter_map(|a| self.dp.renew_address(a, lifetime_s).err())
            .collect()
    }

    /// Announces a director VIP this agent holds, on its interface; nothing
    /// when the VIP is not held (not in the ledger, or only on `lo`).
    pub fn announce(&mut self, vip: IpAddr) {
        let on = self
            .ledger
            .addresses
            .iter()
            .find(|k| k.addr == vip && k.interface != "lo")
            .map(|k| k.interface.clone());
        match on {
            Some(interface) => self.dp.announce(&interface, vip),
            None => tracing::debug!(%vip, "not announced: the VIP is not held"),
        }
    }

    pub fn known(&self) -> Option<&Known> {
        self.known.as_ref()
    }

    /// Owned services with counters, as of the last full read (taken: the
    /// next full read brings new ones), and how many destinations they
    /// have (their counters are left out above the limit of
    /// [`keep_destination_stats_up_to`](Self::keep_destination_stats_up_to)).
    pub fn take_owned_stats(&mut self) -> (Vec<ServiceEntry>, usize) {
        (std::mem::take(&mut self.stats), self.stats_destinations)
    }

    /// Keep the destinations' counters of a full read only while the owned
    /// table has at most `max` destinations (the metrics' cap on
    /// per-destination series): above it they would be held for nothing.
    pub fn keep_destination_stats_up_to(&mut self, max: usize) {
        self.stats_max_destinations = max;
    }

    /// The owned services of the VirtualServices `owners` as the cached
    /// view has them, without counters: what the last sync left in the
    /// kernel, known without reading it. `None` without a view.
    pub fn view_entries(&self, owners: &BTreeSet<&str>) -> Option<Vec<ServiceEntry>> {
        let view = self.known.as_ref()?;
        Some(
            self.ledger
                .services
                .iter()
                .filter(|(_, o)| owners.contains(o.owner.as_str()))
                .filter_map(|(key, _)| {
                    let s = view.ipvs.get(key)?;
                    Some(ServiceEntry {
                        service: lvs_ipvs::Service {
                            key: *key,
                            config: s.config.clone(),
                        },
                        stats: Default::default(),
                        destinations: s
                            .dests
                            .iter()
                            .map(|(k, c)| lvs_ipvs::DestEntry {
                                destination: lvs_ipvs::Destination {
                                    key: *k,
                                    config: *c,
                                },
                                stats: Default::default(),
                            })
                            .collect(),
                    })
                })
                .collect(),
        )
    }

    /// The owned IPVS services with their counters, read from the kernel
    /// now (nothing is read while the agent owns no service).
    pub fn owned_entries(&mut self) -> Result<Vec<ServiceEntry>, DataplaneError> {
        if self.ledger.services.is_empty() {
            return Ok(Vec::new());
        }
        let mut entries = self.dp.ipvs_dump()?;
        entries.retain(|e| self.ledger.services.contains_key(&e.service.key));
        Ok(entries)
    }

    /// A fresh read of the kernel's IPVS table for a live-table request,
    /// with the owner of each service, and with `diff` the changes a sync
    /// of that input would make now (see [`describe::describe`]).
    ///
    /// The dry run reads the kernel into a view of its own and decides
    /// against a copy of the ledger: it writes neither the kernel nor the
    /// ledger nor its journal, and leaves the cached view as it is, so the
    /// next resync still finds (and repairs, and reports) any drift. One
    /// kernel read serves both the table and the dry run.
    pub fn live_view(&mut self, diff: Option<SyncInput<'_>>) -> Result<LiveView, DataplaneError> {
        let Some(input) = diff else {
            let (ipvs_available, entries) = match self.dp.ipvs_dump() {
                Ok(e) => (true, e),
                Err(DataplaneError::IpvsUnavailable { .. }) => (false, Vec::new()),
                Err(e) => return Err(e),
            };
            return Ok(LiveView {
                ipvs_available,
                owners: owners_of(&self.ledger, &entries),
                entries,
                changes: None,
            });
        };
        let (mut known, entries) = read_kernel(&mut self.dp, &mut Phases::start())?;
        let mut ledger = self.ledger.clone();
        adopt(&mut ledger, &known);
        let want = self.wanted(&input, &known);
        let (want_daemons, _) = self.wanted_daemons(&input, &known);
        let decision = decide(
            &mut self.dp,
            &ledger,
            &mut known,
            input.plan,
            &want,
            &want_daemons,
            None,
            AddrScope::All,
        );
        let changes = decision
            .writes
            .iter()
            .flat_map(|w| describe::describe(w, &known, &ledger))
            .collect();
        Ok(LiveView {
            ipvs_available: known.ipvs_available,
            owners: owners_of(&ledger, &entries),
            entries,
            changes: Some(changes),
        })
    }

    /// Forget the cached view: the next sync reads the kernel in full.
    pub fn invalidate(&mut self) {
        self.known = None;
        self.fresh = false;
    }

    /// Reads the kernel in full unless a cached view exists, so that what
    /// runs before a sync (the drain, which looks for owned destinations
    /// the plan left) sees the kernel even on the first sync after a
    /// start. `true`: it read now, and the next sync uses this view and
    /// counts as full. A failed read leaves no view; the sync reads again
    /// and reports it.
    pub fn ensure_view(&mut self) -> bool {
        if self.known.is_some() {
            return false;
        }
        match self.refresh() {
            Ok(k) => {
                self.known = Some(k);
                self.fresh = true;
                true
            }
            Err(_) => false,
        }
    }

    /// The destinations of one IPVS service with their connection counts,
    /// read from the kernel now.
    pub fn dest_stats(
        &mut self,
        service: &ServiceKey,
    ) -> Result<Vec<lvs_ipvs::DestEntry>, DataplaneError> {
        self.dp.ipvs_dests(service)
    }

    /// Reads everything and reconciles the ledger with it.
    fn refresh(&mut self) -> Result<Known, DataplaneError> {
        let (known, services) = read_kernel(&mut self.dp, &mut Phases::start())?;
        adopt(&mut self.ledger, &known);
        self.keep_stats(services);
        Ok(known)
    }

    /// Keeps the owned services' counters of a full read for the metrics.
    pub fn keep_stats(&mut self, services: Vec<ServiceEntry>) {
        let l = &self.ledger;
        self.stats = services
            .into_iter()
            .filter(|s| l.services.contains_key(&s.service.key))
            .collect();
        self.stats_destinations = self.stats.iter().map(|s| s.destinations.len()).sum();
        if self.stats_destinations > self.stats_max_destinations {
            for s in &mut self.stats {
                s.destinations = Vec::new();
            }
        }
    }

    /// A periodic resync's shortcut, for when nothing is pending since a
    /// sync that ended without a problem: the whole check of [`check`]
    /// at once. `true`: the kernel holds exactly what the cached view says,
    /// so it is as the last sync left it, and planning and diffing again
    /// would find nothing to do; the view stays, and the read's counters are
    /// kept for the metrics as after a full sync. `false`: something
    /// differs, a read failed, or there is no view; nothing is kept, and the
    /// caller runs the ordinary full sync, which reads again, repairs and
    /// reports the drift.
    pub fn recheck(&mut self) -> bool {
        let Some(mut c) = self.check_begin() else {
            return false;
        };
        loop {
            match self.check_step(&mut c, std::time::Duration::MAX) {
                CheckStep::More => {}
                CheckStep::Same(entries) => {
                    self.keep_stats(entries);
                    return true;
                }
                CheckStep::Differs => return false,
            }
        }
    }

    /// Whether a cached view of the kernel exists (a scoped sync needs one).
    pub fn has_view(&self) -> bool {
        self.known.is_some()
    }

    /// Makes the kernel match the plan. `full` reads the kernel first
    /// (periodic resync); otherwise the cached view is used when there is one.
    pub fn sync(&mut self, input: SyncInput<'_>, full: bool) -> SyncReport {
        self.run(input, full, None)
    }

    /// Makes the kernel match the plan within `scope` only: the IPVS services
    /// named there and the addresses at its VIPs, plus every loopback and
    /// tunnel address, tunnel, fou port, sysctl and sync daemon. Nothing else is looked
    /// at, so the cost follows the change, not the table; the plan need only
    /// hold the services and VIPs of the scope. The ledger change goes to
    /// the journal. Without a cached view (see [`has_view`](Self::has_view))
    /// the kernel is read first, and still only the scope is reconciled.
    pub fn sync_scoped(&mut self, input: SyncInput<'_>, scope: &SyncScope) -> SyncReport {
        self.run(input, false, Some(scope))
    }

    fn run(&mut self, input: SyncInput<'_>, full: bool, scope: Option<&SyncScope>) -> SyncReport {
        // The view is taken out for the sync and put back at its end
        // unless a write put it in doubt.
        let cached = if full { None } else { self.known.take() };
        // A full read replaces the cached view: kept aside with the ledger
        // as it is before the read, to find what changed behind our back.
        let prev = if full { self.known.take() } else { None };
        let ledger_before = prev.as_ref().map(|_| self.ledger.clone());
        let fresh = std::mem::take(&mut self.fresh);
        let mut report = SyncReport {
            full: cached.is_none() || fresh,
            ..SyncReport::default()
        };
        report.errors.append(&mut self.startup_errors);
        let mut phases = Phases::start();
        let mut known = match cached {
            Some(k) => k,
            None => match self.refresh() {
                Ok(k) => k,
                Err(e) => {
                    self.known = None;
                    report.errors.push(SyncError::new(
                        ErrorKind::Read,
                        None,
                        format!("reading the kernel state failed: {e}"),
                    ));
                    return report;
                }
            },
        };
        let mut want = self.wanted(&input, &known);
        report.errors.extend(want.errors.iter().cloned());
        if let (Some(p), Some(l)) = (&prev, &ledger_before) {
            report.drift = drift::classify(p, &known, l, &want);
        }
        drop((prev, ledger_before));
        let (want_daemons, daemon_error) = self.wanted_daemons(&input, &known);
        report.errors.extend(daemon_error);
        phases.mark("read_and_desired");

        // The addresses this sync may change: all of them, or those at the
        // scope's VIPs and on lo and tunnel devices.
        let tunnel_names: BTreeSet<String> = want
            .tunnels
            .keys()
            .chain(self.ledger.tunnels.keys())
            .cloned()
            .collect();
        let mut whole_interfaces = tunnel_names;
        whole_interfaces.insert(LOOPBACK.to_string());
        let covers = match scope {
            None => AddrScope::All,
            Some(s) => AddrScope::Part {
                vips: &s.vips,
                interfaces: &whole_interfaces,
            },
        };
        let decision = decide(
            &mut self.dp,
            &self.ledger,
            &mut known,
            input.plan,
            &want,
            &want_daemons,
            scope,
            covers,
        );
        report.errors.extend(decision.errors);
        phases.mark("decide");
        want.keep_owners_only();
        // Write-ahead: the intended additions become durable as one unit
        // before any is made; a scoped sync journals only its part.
        let before = scope.map(|s| self.ledger.part(&s.services, covers));
        let mut undo = decision.delta.apply(&mut self.ledger);
        if let Err(e) = self.persist(before.as_ref(), scope, covers) {
            // Without a durable record of what is about to be created, the
            // agent could not recognise it after a restart: write nothing.
            undo.apply(&mut self.ledger);
            report.errors.push(SyncError::new(
                ErrorKind::Ledger,
                None,
                format!("{e}; no change made"),
            ));
            report.drift.clear();
            self.known = Some(known);
            fill_services(&want, &mut report);
            return report;
        }
        let before = scope.map(|s| self.ledger.part(&s.services, covers));
        phases.mark("persist_intent");
        for write in decision.writes {
            let what = write.phase();
            self.execute(&mut known, &mut undo, write, &mut report);
            phases.mark(what);
        }
        if let Err(e) = self.persist(before.as_ref(), scope, covers) {
            report
                .errors
                .push(SyncError::new(ErrorKind::Ledger, None, e.to_string()));
        }
        if scope.is_some()
            && self.store.journal_len() >= COMPACT_AFTER
            && let Err(e) = self.store.save(&self.ledger)
        {
            report
                .errors
                .push(SyncError::new(ErrorKind::Ledger, None, e.to_string()));
        }
        if std::mem::take(&mut self.stale) {
            self.known = None;
            tracing::info!(
                full = report.full,
                "a write's answer left the cached kernel view in doubt: the next sync reads the kernel in full"
            );
        } else {
            self.known = Some(known);
        }
        fill_services(&want, &mut report);
        // Repaired only where the sync's writes for the service succeeded.
        let services = &report.services;
        report
            .drift
            .retain(|d| services.get(&d.owner).is_none_or(|s| s.programmed));
        phases.mark("persist");
        phases.log(report.full);
        report
    }

    /// The kernel state the plan wants on this node, given the addresses the
    /// kernel holds.
    fn wanted(&self, input: &SyncInput<'_>, known: &Known) -> Desired {
        desired(
            input.plan,
            input.node_ips,
            known.addresses.values(),
            self.vip_mode,
        )
    }

    /// The connection sync daemons wanted (none without IPVS), and why one
    /// cannot be.
    fn wanted_daemons(
        &self,
        input: &SyncInput<'_>,
        known: &Known,
    ) -> (BTreeMap<DaemonState, DaemonSpec>, Option<SyncError>) {
        if !known.ipvs_available {
            return (BTreeMap::new(), None);
        }
        daemons::wanted(
            self.sync_daemons.as_ref(),
            input.directs,
            input.node_ips,
            known.addresses.values(),
        )
    }

    /// Makes the ledger durable: whole, or as a journal entry of what changed
    /// within the scope since `before` (the scope's part before the change).
    fn persist(
        &mut self,
        before: Option<&LedgerPart>,
        scope: Option<&SyncScope>,
        covers: AddrScope<'_>,
    ) -> Result<(), LedgerError> {
        match (before, scope) {
            (Some(b), Some(s)) => {
                let after = self.ledger.part(&s.services, covers);
                self.store.append(b, &after)?;
            }
            _ => {
                self.store.save(&self.ledger)?;
            }
        }
        Ok(())
    }
}

/// Reads the whole kernel state the reconciler looks at, and every IPVS
/// service with its destinations and counters. Nothing is written and the
/// ledger is not consulted.
fn read_kernel<D: Dataplane>(
    dp: &mut D,
    phases: &mut Phases,
) -> Result<(Known, Vec<ServiceEntry>), DataplaneError> {
    let (ipvs_available, services) = match dp.ipvs_dump() {
        Ok(s) => (true, s),
        Err(DataplaneError::IpvsUnavailable { .. }) => (false, Vec::new()),
        Err(e) => return Err(e),
    };
    phases.mark("read_ipvs");
    let mut known = read_rest(dp, ipvs_available, phases)?;
    for s in &services {
        known.ipvs.insert(
            s.service.key,
            KnownService {
                config: s.service.config.clone(),
                dests: s
                    .destinations
                    .iter()
                    .map(|d| (d.destination.key, d.destination.config))
                    .collect(),
            },
        );
    }
    phases.mark("view");
    Ok((known, services))
}

/// Reads everything the view holds besides the IPVS table: a view with no
/// IPVS service (and no sysctl).
fn read_rest<D: Dataplane>(
    dp: &mut D,
    ipvs_available: bool,
    phases: &mut Phases,
) -> Result<Known, DataplaneError> {
    let daemons = if ipvs_available {
        dp.daemons()?
    } else {
        Vec::new()
    };
    let addresses = dp.addresses()?;
    let links = dp.links()?;
    let fou = dp.fou_ports()?;
    // Read on every full read, so that a table removed or edited by hand
    // is repaired; a failure matters only when a rule is wanted.
    let nft = match dp.nft_table() {
        Ok(Some(rules)) => nft_table::NftView::Rules(rules),
        Ok(None) => nft_table::NftView::Absent,
        Err(e) => nft_table::NftView::Unreadable(e.to_string()),
    };

    phases.mark("read_other");
    let mut known = Known {
        ipvs_available,
        daemons: daemons
            .iter()
            .map(|d| (d.state, DaemonSpec::of(d)))
            .collect(),
        nft,
        ..Known::default()
    };
    for a in addresses {
        // An address and one of our local routes at the same key: the
        // route is what the ledger may own, so it is the one kept.
        match known.addresses.entry(a.key()) {
            Entry::Occupied(mut e) => {
                if a.kind == AddrKind::LocalRoute {
                    e.insert(a);
                }
            }
            Entry::Vacant(e) => {
                e.insert(a);
            }
        }
    }
    known.links = links.into_iter().map(|l| (l.name.clone(), l)).collect();
    known.fou = fou.into_iter().collect();
    Ok(known)
}

/// Reconciles the ledger with a full read of the kernel: forgets ownership
/// of what is gone, adopts what carries the agent's mark.
fn adopt(l: &mut Ledger, known: &Known) {
    if known.ipvs_available {
        l.services.retain(|k, owned| match known.ipvs.get(k) {
            Some(s) => {
                owned.dests.retain(|d| s.dests.contains_key(d));
                true
            }
            None => false,
        });
    }
    l.addresses.retain(|k| known.addresses.contains_key(k));
    for (k, a) in &known.addresses {
        // Our label on an IPv4 address, our protocol on a local route.
        let marked = a.kind == AddrKind::LocalRoute
            || (a.addr.is_ipv4() && a.label.is_some() && a.label == owned_label(&a.interface));
        if marked {
            l.addresses.insert(k.clone());
        }
    }
    l.tunnels.retain(|n, _| known.links.contains_key(n));
    l.fou_ports.retain(|p| known.fou.contains(p));
    if known.ipvs_available {
        // A daemon that stopped, or was replaced by someone else's, is
        // no longer ours.
        l.daemons
            .retain(|state, d| known.daemons.get(state) == Some(&*d));
    }
}

fn sysctl_value<D: Dataplane>(
    dp: &mut D,
    known: &mut Known,
    key: &str,
) -> Result<String, DataplaneError> {
    if let Some(v) = known.sysctls.get(key) {
        return Ok(v.clone());
    }
    let v = dp.read_sysctl(key)?.trim().to_string();
    known.sysctls.insert(key.to_string(), v.clone());
    Ok(v)
}

/// Reads what the diffs need beyond the view `known` (the sysctls' current
/// values, kept in `known`), then runs each kind's diff against `ledger`;
/// the writes come in sync order.
#[allow(clippy::too_many_arguments)]
fn decide<D: Dataplane>(
    dp: &mut D,
    ledger: &Ledger,
    known: &mut Known,
    plan: &NodePlan,
    want: &Desired,
    want_daemons: &BTreeMap<DaemonState, DaemonSpec>,
    scope: Option<&SyncScope>,
    covers: AddrScope<'_>,
) -> Decision {
    let keys: Vec<String> = sysctls::keys_to_read(want, ledger, known.ipvs_available)
        .map(str::to_string)
        .collect();
    let mut reads: BTreeMap<String, SysctlRead> = BTreeMap::new();
    for key in keys {
        let read = sysctl_value(dp, known, &key).map_err(|e| ReadFailure {
            outcome: e.outcome(),
            message: e.to_string(),
        });
        reads.insert(key, read);
    }
    let known = &*known;
    let mut d = tunnels::decide(want, known, ledger);
    d.merge(sysctls::decide(want, &reads, ledger, known.ipvs_available));
    d.merge(addresses::decide(want, known, ledger, covers));
    d.merge(ipvs::decide(
        want,
        known,
        ledger,
        scope.map(|s| &s.services),
    ));
    d.merge(daemons::decide(want_daemons, &known.daemons, ledger));
    // A foreign IPVS service at a wanted key is not the agent's to
    // source-NAT or mark for (the ipvs diff reports it).
    let mut nft_want = nft_table::wanted(plan);
    nft_want.retain(|k| {
        let key = crate::desired::service_key(k);
        !known.ipvs.contains_key(&key) || ledger.owns_service(&key)
    });
    d.merge(nft_table::decide(&nft_want, &known.nft));
    d.into_ordered()
}

/// One entry per desired service: its generation, and programmed unless an
/// error names it.
fn fill_services(want: &Desired, report: &mut SyncReport) {
    let mut by_owner: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for e in &report.errors {
        if let Some(o) = &e.owner {
            by_owner.entry(o).or_default().push(e.message.clone());
        }
    }
    let entries: Vec<(String, ServiceSync)> = want
        .services
        .values()
        .map(|s| {
            let errors = by_owner.get(s.owner.as_str()).cloned().unwrap_or_default();
            (
                s.owner.clone(),
                ServiceSync {
                    generation: s.generation,
                    programmed: errors.is_empty(),
                    errors,
                },
            )
        })
        .collect();
    report.services.extend(entries);
}

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

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use lvs_planner::NodePlan;

use crate::dataplane::{Dataplane, DataplaneError, DpResult, Outcome};
use crate::desired::LOOPBACK;
use crate::desired::{Desired, desired};
use crate::kernel::{
    AddrKey, AddrKind, AddrScope, Address, DestMap, FouPort, Link, ServiceLabel, TunnelDevice,
    VipMode, owned_label,
};
use crate::ledger::{
    COMPACT_AFTER, Ledger, LedgerError, LedgerPart, LedgerStore, OwnedService, OwnedSysctl,
    OwnedTunnel,
};
use crate::report::{ErrorKind, ServiceSync, SyncError, SyncReport};
use lvs_ipvs::{Destination, Op, Protocol, Service, ServiceConfig, ServiceEntry, ServiceKey};

/// What a sync works from.
#[derive(Debug, Clone, Copy)]
pub struct SyncInput<'a> {
    pub plan: &'a NodePlan,
    /// The node's InternalIPs, to find the director interface.
    pub node_ips: &'a [IpAddr],
}

/// What a scoped sync may change: these IPVS services, and the addresses at
/// these VIPs. Loopback and tunnel addresses, tunnel devices, fou ports and
/// sysctls are few and always reconciled whole, so the plan handed with a
/// scope must carry all of them (see `lvs_planner::Incremental::partial_plan`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub services: BTreeSet<ServiceKey>,
    pub vips: BTreeSet<IpAddr>,
}

/// The ledger before a sync, to undo its intended additions when the ledger
/// cannot be written.
enum Before {
    Whole(Ledger),
    Part(LedgerPart),
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
    /// Owned services with their counters, from the last full read.
    stats: Vec<ServiceEntry>,
    /// Problems found at start (a quarantined ledger), reported once.
    startup_errors: Vec<SyncError>,
    /// The sync in progress is scoped: ledger writes go to the journal.
    scoped: bool,
    /// How director VIPs are held.
    vip_mode: VipMode,
}

/// A write the sync decided on, with what to undo in the ledger if it fails.
#[derive(Debug)]
enum Action {
    EnsureTunnel(TunnelDevice, Option<OwnedTunnel>),
    AddFou(FouPort),
    WriteSysctl(String, String, Option<OwnedSysctl>),
    /// A per-device sysctl of a device this sync creates: its previous
    /// value can only be read once the device exists.
    WriteSysctlLater(String, String),
    /// Addresses (VIPs) with their owners, added in one batch.
    AddAddresses(Vec<(Address, BTreeSet<String>)>),
    Ipvs(Vec<(Op, Option<String>)>),
    /// Director VIPs, after the IPVS writes: those to add and those held,
    /// each with its owners. A VIP is added or kept only while an IPVS
    /// service of ours at its address is in the kernel.
    DirectorVips {
        add: Vec<(Address, BTreeSet<String>)>,
        held: Vec<(Address, BTreeSet<String>)>,
    },
    DelAddress(Address),
    RestoreSysctl(String, String),
    DelFou(FouPort),
    ReleaseTunnel(TunnelDevice),
}

impl Action {
    /// The part of a sync this action's time is logged under.
    fn phase(&self) -> &'static str {
        match self {
            Action::Ipvs(_) => "ipvs",
            Action::AddAddresses(_) | Action::DirectorVips { .. } | Action::DelAddress(_) => {
                "addresses"
            }
            _ => "other_writes",
        }
    }
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
            startup_errors,
            scoped: false,
            vip_mode: VipMode::default(),
        })
    }

    /// How director VIPs are to be held from the next sync on. VIPs already
    /// held the other way stay as they are (either way the node answers).
    pub fn with_vip_mode(mut self, mode: VipMode) -> Self {
        self.vip_mode = mode;
        self
    }

    pub fn dataplane(&self) -> &D {
        &self.dp
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

    pub fn known(&self) -> Option<&Known> {
        self.known.as_ref()
    }

    /// Owned services with counters, as of the last full read (taken: the
    /// next full read brings new ones).
    pub fn take_owned_stats(&mut self) -> Vec<ServiceEntry> {
        std::mem::take(&mut self.stats)
    }

    /// Forget the cached view: the next sync reads the kernel in full.
    pub fn invalidate(&mut self) {
        self.known = None;
    }

    /// Reads everything and reconciles the ledger with it.
    fn refresh(&mut self) -> Result<Known, DataplaneError> {
        let (ipvs_available, services) = match self.dp.ipvs_dump() {
            Ok(s) => (true, s),
            Err(DataplaneError::IpvsUnavailable { .. }) => (false, Vec::new()),
            Err(e) => return Err(e),
        };
        let addresses = self.dp.addresses()?;
        let links = self.dp.links()?;
        let fou = self.dp.fou_ports()?;

        let mut known = Known {
            ipvs_available,
            ..Known::default()
        };
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

        // Forget ownership of what is gone; adopt what carries our label.
        let l = &mut self.ledger;
        if ipvs_available {
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

        self.stats = services
            .into_iter()
            .filter(|s| l.services.contains_key(&s.service.key))
            .collect();
        Ok(known)
    }

    fn sysctl_value(&mut self, known: &mut Known, key: &str) -> Result<String, DataplaneError> {
        if let Some(v) = known.sysctls.get(key) {
            return Ok(v.clone());
        }
        let v = self.dp.read_sysctl(key)?.trim().to_string();
        known.sysctls.insert(key.to_string(), v.clone());
        Ok(v)
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
    /// tunnel address, tunnel, fou port and sysctl. Nothing else is looked
    /// at, so the cost follows the change, not the table; the plan need only
    /// hold the services and VIPs of the scope. The ledger change goes to
    /// the journal. Without a cached view (see [`has_view`](Self::has_view))
    /// the kernel is read first, and still only the scope is reconciled.
    pub fn sync_scoped(&mut self, input: SyncInput<'_>, scope: &Scope) -> SyncReport {
        self.run(input, false, Some(scope))
    }

    fn run(&mut self, input: SyncInput<'_>, full: bool, scope: Option<&Scope>) -> SyncReport {
        // The view is taken out for the sync and put back at its end
        // unless a write put it in doubt.
        let cached = if full { None } else { self.known.take() };
        let mut report = SyncReport {
            full: cached.is_none(),
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
        let want = desired(
            input.plan,
            input.node_ips,
            known.addresses.values(),
            self.vip_mode,
        );
        report.errors.extend(want.errors.iter().cloned());
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
        self.scoped = scope.is_some();
        let before = match scope {
            None => Before::Whole(self.ledger.clone()),
            Some(s) => Before::Part(self.ledger.part(&s.services, covers)),
        };
        let actions = self.decide(&mut known, &want, scope, covers, &mut report);
        phases.mark("decide");
        if let Err(e) = self.persist(&before, scope, covers) {
            // Without a durable record of what is about to be created, the
            // agent could not recognise it after a restart: write nothing.
            match before {
                Before::Whole(l) => self.ledger = l,
                Before::Part(p) => self.ledger.restore(p, covers),
            }
            report.errors.push(SyncError::new(
                ErrorKind::Ledger,
                None,
                format!("{e}; no change made"),
            ));
            self.known = Some(known);
            fill_services(&want, &mut report);
            return report;
        }
        let before = match &before {
            Before::Whole(_) => before,
            Before::Part(_) => Before::Part(
                self.ledger
                    .part(scope.map(|s| &s.services).into_iter().flatten(), covers),
            ),
        };
        phases.mark("persist_intent");
        for action in actions {
            let what = action.phase();
            self.execute(&mut known, action, &mut report);
            phases.mark(what);
        }
        if let Err(e) = self.persist(&before, scope, covers) {
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
        self.scoped = false;
        self.known = (!std::mem::take(&mut self.stale)).then_some(known);
        fill_services(&want, &mut report);
        phases.mark("persist");
        phases.log(report.full);
        report
    }

    /// Makes the ledger durable: whole, or as a journal entry of what changed
    /// since `before` within the scope.
    fn persist(
        &mut self,
        before: &Before,
        scope: Option<&Scope>,
        covers: AddrScope<'_>,
    ) -> Result<(), LedgerError> {
        match (before, scope) {
            (Before::Part(b), Some(s)) => {
                let after = self.ledger.part(&s.services, covers);
                self.store.append(b, &after)?;
            }
            _ => {
                self.store.save(&self.ledger)?;
            }
        }
        Ok(())
    }

    /// Computes the writes and records the intended additions in the ledger.
    fn decide(
        &mut self,
        known: &mut Known,
        want: &Desired,
        scope: Option<&Scope>,
        covers: AddrScope<'_>,
        report: &mut SyncReport,
    ) -> Vec<Action> {
        let mut adds = Vec::new();
        let mut dels = Vec::new();

        // Tunnel devices and fou ports.
        for (name, dev) in &want.tunnels {
            if known.links.get(name).is_some_and(|l| l.up) {
                continue;
            }
            let prior = self.ledger.tunnels.insert(
                name.clone(),
                OwnedTunnel {
                    kind: dev.kind,
                    brought_up: true,
                },
            );
            adds.push(Action::EnsureTunnel(dev.clone(), prior));
        }
        for p in &want.fou_ports {
            if !known.fou.contains(p) {
                self.ledger.fou_ports.insert(*p);
                adds.push(Action::AddFou(*p));
            }
        }

        // Sysctls.
        for (key, value) in &want.sysctls {
            let cur = match self.sysctl_value(known, key) {
                Ok(v) => v,
                Err(e)
                    if e.outcome() == Outcome::NotFound
                        && self.sysctl_device_pending(key, want) =>
                {
                    adds.push(Action::WriteSysctlLater(key.clone(), value.clone()));
                    continue;
                }
                Err(e) => {
                    report.errors.push(SyncError::new(
                        ErrorKind::Kernel,
                        None,
                        format!("sysctl {key}: {e}"),
                    ));
                    continue;
                }
            };
            if &cur == value {
                continue;
            }
            let prior = self.ledger.sysctls.get(key).cloned();
            let previous = prior
                .as_ref()
                .map(|p| p.previous.clone())
                .unwrap_or_else(|| cur.clone());
            self.ledger.sysctls.insert(
                key.clone(),
                OwnedSysctl {
                    previous,
                    value: value.clone(),
                },
            );
            adds.push(Action::WriteSysctl(key.clone(), value.clone(), prior));
        }
        let stale: Vec<(String, OwnedSysctl)> = self
            .ledger
            .sysctls
            .iter()
            .filter(|(k, _)| !want.sysctls.contains_key(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (key, owned) in stale {
            match self.sysctl_value(known, &key) {
                Ok(cur) if cur == owned.value => {
                    dels.push(Action::RestoreSysctl(key, owned.previous));
                }
                Ok(_) => {
                    // Changed by someone else since: theirs now.
                    self.ledger.sysctls.remove(&key);
                }
                Err(e) if e.outcome() == Outcome::NotFound => {
                    self.ledger.sysctls.remove(&key);
                }
                Err(e) => report.errors.push(SyncError::new(
                    ErrorKind::Kernel,
                    None,
                    format!("sysctl {key}: {e}"),
                )),
            }
        }

        // Addresses.
        let mut addr_adds = Vec::new();
        let mut vip_adds = Vec::new();
        let mut vips_held = Vec::new();
        for (key, da) in &want.addresses {
            // Present with any prefix length counts.
            let present = match known.addresses.get_key_value(key) {
                Some((k, _)) => Some(k),
                None => known
                    .addresses
                    .range(
                        AddrKey {
                            prefix_len: 0,
                            ..key.clone()
                        }..=AddrKey {
                            prefix_len: u8::MAX,
                            ..key.clone()
                        },
                    )
                    .next()
                    .map(|(k, _)| k),
            };
            if let Some(k) = present {
                if da.needs_service && self.ledger.addresses.contains(k) {
                    vips_held.push((known.addresses[k].clone(), da.owners.clone()));
                }
                continue;
            }
            if !known.links.contains_key(&key.interface)
                && !want.tunnels.contains_key(&key.interface)
            {
                report.errors.extend(SyncError::for_owners(
                    ErrorKind::Interface,
                    da.owners.iter().cloned(),
                    format!(
                        "VIP {}: interface {} does not exist on this node",
                        key.addr, key.interface
                    ),
                ));
                continue;
            }
            self.ledger.addresses.insert(key.clone());
            if da.needs_service {
                vip_adds.push((da.address.clone(), da.owners.clone()));
            } else {
                addr_adds.push((da.address.clone(), da.owners.clone()));
            }
        }
        if !addr_adds.is_empty() {
            adds.push(Action::AddAddresses(addr_adds));
        }
        for key in covers.keys_of(&known.addresses) {
            if self.ledger.addresses.contains(key) && !want.addresses.contains_key(key) {
                dels.push(Action::DelAddress(known.addresses[key].clone()));
            }
        }

        // IPVS.
        let mut ipvs_ops: Vec<(Op, Option<String>)> = Vec::new();
        let mut ipvs_dels: Vec<(Op, Option<String>)> = Vec::new();
        if !known.ipvs_available {
            for s in want.services.values() {
                report.errors.push(SyncError::new(
                    ErrorKind::IpvsUnavailable,
                    Some(s.owner.clone()),
                    "IPVS is not available on this node (is the ip_vs module loadable?)",
                ));
            }
        } else {
            // Every key desired or present, or only the scope's.
            let keys: Vec<ServiceKey> = match scope {
                Some(sc) => sc.services.iter().copied().collect(),
                None => want
                    .services
                    .keys()
                    .chain(known.ipvs.keys())
                    .copied()
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect(),
            };
            let mut svc_dels = Vec::new();
            for key in &keys {
                let Some(ds) = want.services.get(key) else {
                    if known.ipvs.contains_key(key)
                        && let Some(o) = self.ledger.services.get(key)
                    {
                        svc_dels.push((Op::DelService(*key), Some(o.owner.clone())));
                    }
                    continue;
                };
                let owner = Some(ds.owner.clone());
                match known.ipvs.get(key) {
                    None => {
                        self.ledger.services.insert(
                            *key,
                            OwnedService {
                                owner: ds.owner.clone(),
                                dests: ds.dests.keys().copied().collect(),
                            },
                        );
                        ipvs_ops.push((
                            Op::AddService(Service {
                                key: *key,
                                config: ds.config.clone(),
                            }),
                            owner.clone(),
                        ));
                        for (dk, dc) in &ds.dests {
                            ipvs_ops.push((add_dest(*key, *dk, *dc), owner.clone()));
                        }
                    }
                    Some(_) if !self.ledger.owns_service(key) => {
                        report.errors.push(SyncError::new(
                            ErrorKind::ForeignService,
                            owner,
                            format!(
                                "IPVS service {} already exists and was not created by this agent; it is left alone",
                                ServiceLabel(key)
                            ),
                        ));
                    }
                    Some(ks) => {
                        if let Some(o) = self.ledger.services.get_mut(key) {
                            o.owner = ds.owner.clone();
                        }
                        if ks.config != ds.config {
                            ipvs_ops.push((
                                Op::UpdateService(Service {
                                    key: *key,
                                    config: ds.config.clone(),
                                }),
                                owner.clone(),
                            ));
                        }
                        for (dk, dc) in &ds.dests {
                            match ks.dests.get(dk) {
                                None => {
                                    if let Some(o) = self.ledger.services.get_mut(key) {
                                        o.dests.insert(*dk);
                                    }
                                    ipvs_ops.push((add_dest(*key, *dk, *dc), owner.clone()));
                                }
                                Some(_) if !self.ledger.owns_dest(key, dk) => {
                                    report.errors.push(SyncError::new(
                                        ErrorKind::ForeignDestination,
                                        owner.clone(),
                                        format!(
                                            "destination {dk} of IPVS service {} already exists and was not added by this agent; it is left alone",
                                            ServiceLabel(key)
                                        ),
                                    ));
                                }
                                Some(kc) if !kc.same_as(dc) => {
                                    ipvs_ops.push((
                                        Op::UpdateDest {
                                            service: *key,
                                            dest: Destination {
                                                key: *dk,
                                                config: *dc,
                                            },
                                        },
                                        owner.clone(),
                                    ));
                                }
                                Some(_) => {}
                            }
                        }
                        for dk in ks.dests.keys() {
                            if !ds.dests.contains_key(dk) && self.ledger.owns_dest(key, dk) {
                                ipvs_dels.push((
                                    Op::DelDest {
                                        service: *key,
                                        dest: *dk,
                                    },
                                    owner.clone(),
                                ));
                            }
                        }
                    }
                }
            }
            ipvs_dels.extend(svc_dels);
        }
        // Destinations are removed after additions so a service never runs
        // empty during a replacement; services go last.
        ipvs_ops.extend(ipvs_dels);
        if !ipvs_ops.is_empty() {
            adds.push(Action::Ipvs(ipvs_ops));
        }
        if !vip_adds.is_empty() || !vips_held.is_empty() {
            adds.push(Action::DirectorVips {
                add: vip_adds,
                held: vips_held,
            });
        }

        // Tunnels and fou ports no longer wanted.
        for p in &self.ledger.fou_ports {
            if !want.fou_ports.contains(p) {
                dels.push(Action::DelFou(*p));
            }
        }
        let unwanted: Vec<String> = self
            .ledger
            .tunnels
            .keys()
            .filter(|n| !want.tunnels.contains_key(*n))
            .cloned()
            .collect();
        for name in unwanted {
            let t = self.ledger.tunnels[&name].clone();
            if t.brought_up {
                dels.push(Action::ReleaseTunnel(TunnelDevice { name, kind: t.kind }));
            } else {
                self.ledger.tunnels.remove(&name);
            }
        }

        adds.extend(dels);
        adds
    }

    /// A per-device sysctl whose device the same sync is about to create.
    fn sysctl_device_pending(&self, key: &str, want: &Desired) -> bool {
        ["net/ipv4/conf/", "net/ipv6/conf/"].iter().any(|p| {
            key.strip_prefix(p)
                .and_then(|rest| rest.split('/').next())
                .is_some_and(|dev| want.tunnels.contains_key(dev))
        })
    }

    fn execute(&mut self, known: &mut Known, action: Action, report: &mut SyncReport) {
        match action {
            Action::EnsureTunnel(dev, prior) => {
                report.count("tunnel_up");
                match self.dp.ensure_tunnel(&dev) {
                    Ok(()) => {
                        let link = known.links.entry(dev.name.clone()).or_insert(Link {
                            name: dev.name.clone(),
                            index: 0,
                            kind: Some(dev.kind.link_kind().into()),
                            up: true,
                        });
                        link.up = true;
                    }
                    Err(e) => {
                        if e.outcome() == Outcome::Unknown {
                            self.stale = true;
                        } else {
                            match prior {
                                Some(p) => self.ledger.tunnels.insert(dev.name.clone(), p),
                                None => self.ledger.tunnels.remove(&dev.name),
                            };
                        }
                        report.errors.push(SyncError::new(
                            ErrorKind::Kernel,
                            None,
                            format!("tunnel device {}: {e}", dev.name),
                        ));
                    }
                }
            }
            Action::AddFou(p) => {
                report.count("fou_add");
                match self.dp.add_fou_port(&p) {
                    Ok(()) => {
                        known.fou.insert(p);
                    }
                    Err(e) => match e.outcome() {
                        Outcome::AlreadyExists => {
                            self.ledger.fou_ports.remove(&p);
                            known.fou.insert(p);
                            self.stale = true;
                        }
                        outcome => {
                            if outcome == Outcome::Unknown {
                                self.stale = true;
                            } else {
                                self.ledger.fou_ports.remove(&p);
                            }
                            report.errors.push(SyncError::new(
                                ErrorKind::Kernel,
                                None,
                                format!("{p}: {e}"),
                            ));
                        }
                    },
                }
            }
            Action::WriteSysctl(key, value, prior) => {
                report.count("sysctl_set");
                match self.dp.write_sysctl(&key, &value) {
                    Ok(()) => {
                        known.sysctls.insert(key, value);
                    }
                    Err(e) => {
                        // An unknown outcome keeps the entry: the next sync
                        // reads the value and restores from the entry's
                        // previous value when it is no longer wanted.
                        if e.outcome() != Outcome::Unknown {
                            match prior {
                                Some(p) => self.ledger.sysctls.insert(key.clone(), p),
                                None => self.ledger.sysctls.remove(&key),
                            };
                        }
                        known.sysctls.remove(&key);
                        report.errors.push(SyncError::new(
                            ErrorKind::Kernel,
                            None,
                            format!("sysctl {key}={value}: {e}"),
                        ));
                    }
                }
            }
            Action::WriteSysctlLater(key, value) => {
                let cur = match self.dp.read_sysctl(&key) {
                    Ok(v) => v.trim().to_string(),
                    Err(e) => {
                        report.errors.push(SyncError::new(
                            ErrorKind::Kernel,
                            None,
                            format!("sysctl {key}: {e}"),
                        ));
                        return;
                    }
                };
                known.sysctls.insert(key.clone(), cur.clone());
                if cur == value {
                    return;
                }
                let prior = self.ledger.sysctls.get(&key).cloned();
                let previous = prior.as_ref().map_or(cur, |p| p.previous.clone());
                self.ledger.sysctls.insert(
                    key.clone(),
                    OwnedSysctl {
                        previous,
                        value: value.clone(),
                    },
                );
                if let Err(e) = self.store.save(&self.ledger) {
                    // Without the previous value on disk it could not be restored.
                    match prior {
                        Some(p) => self.ledger.sysctls.insert(key.clone(), p),
                        None => self.ledger.sysctls.remove(&key),
                    };
                    report.errors.push(SyncError::new(
                        ErrorKind::Ledger,
                        None,
                        format!("{e}; sysctl {key} not written"),
                    ));
                    return;
                }
                self.execute(known, Action::WriteSysctl(key, value, prior), report);
            }
            Action::AddAddresses(batch) => {
                let addrs: Vec<Address> = batch.iter().map(|(a, _)| a.clone()).collect();
                let results = self.dp.add_addresses(&addrs);
                for ((a, owners), result) in batch.into_iter().zip(results) {
                    report.count("addr_add");
                    self.added_address(known, a, owners, result, report);
                }
            }
            Action::Ipvs(ops) => self.execute_ipvs(known, ops, report),
            Action::DirectorVips { add, held } => {
                let (add, withheld): (Vec<_>, Vec<_>) = add
                    .into_iter()
                    .partition(|(a, _)| self.serves(known, a.addr));
                // Without IPVS the node-level error says why for every VIP.
                let say = known.ipvs_available;
                for (a, owners) in withheld {
                    self.ledger.addresses.remove(&a.key());
                    if say {
                        withhold(&a, owners, report);
                    }
                }
                if !add.is_empty() {
                    self.execute(known, Action::AddAddresses(add), report);
                }
                for (a, owners) in held {
                    if !self.serves(known, a.addr) {
                        if say {
                            withhold(&a, owners, report);
                        }
                        self.execute(known, Action::DelAddress(a), report);
                    }
                }
            }
            Action::DelAddress(a) => {
                report.count("addr_del");
                match self.dp.del_address(&a) {
                    Ok(()) => {
                        self.ledger.addresses.remove(&a.key());
                        known.addresses.remove(&a.key());
                    }
                    Err(e) if e.outcome() == Outcome::NotFound => {
                        // The ledger entry goes with the next full read.
                        known.addresses.remove(&a.key());
                        self.stale = true;
                    }
                    Err(e) => report.errors.push(SyncError::new(
                        ErrorKind::Kernel,
                        None,
                        format!("address {}: {e}", a.key()),
                    )),
                }
            }
            Action::RestoreSysctl(key, previous) => {
                report.count("sysctl_restore");
                match self.dp.write_sysctl(&key, &previous) {
                    Ok(()) => {
                        self.ledger.sysctls.remove(&key);
                        known.sysctls.insert(key, previous);
                    }
                    Err(e) if e.outcome() == Outcome::NotFound => {
                        // Read again next sync: a missing key leaves the
                        // ledger there.
                        known.sysctls.remove(&key);
                    }
                    Err(e) => report.errors.push(SyncError::new(
                        ErrorKind::Kernel,
                        None,
                        format!("restoring sysctl {key}={previous}: {e}"),
                    )),
                }
            }
            Action::DelFou(p) => {
                report.count("fou_del");
                match self.dp.del_fou_port(&p) {
                    Ok(()) => {
                        self.ledger.fou_ports.remove(&p);
                        known.fou.remove(&p);
                    }
                    Err(e) if e.outcome() == Outcome::NotFound => {
                        // The ledger entry goes with the next full read.
                        known.fou.remove(&p);
                        self.stale = true;
                    }
                    Err(e) => report.errors.push(SyncError::new(
                        ErrorKind::Kernel,
                        None,
                        format!("{p}: {e}"),
                    )),
                }
            }
            Action::ReleaseTunnel(dev) => {
                // IPv6 link-local addresses come with the device being up.
                let busy = known.addresses.values().any(|a| {
                    a.interface == dev.name
                        && !matches!(a.addr, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
                });
                if busy {
                    // Someone else put an address on it: leave it up.
                    self.ledger.tunnels.remove(&dev.name);
                    return;
                }
                report.count("tunnel_down");
                match self.dp.release_tunnel(&dev) {
                    Ok(()) => {
                        self.ledger.tunnels.remove(&dev.name);
                        if let Some(l) = known.links.get_mut(&dev.name) {
                            l.up = false;
                        }
                    }
                    Err(e) if e.outcome() == Outcome::NotFound => {
                        // The ledger entry goes with the next full read.
                        known.links.remove(&dev.name);
                        self.stale = true;
                    }
                    Err(e) => report.errors.push(SyncError::new(
                        ErrorKind::Kernel,
                        None,
                        format!("tunnel device {}: {e}", dev.name),
                    )),
                }
            }
        }
    }

    /// Whether an IPVS service of ours at `addr` is in the kernel.
    fn serves(&self, known: &Known, addr: IpAddr) -> bool {
        let from = ServiceKey::Tuple {
            addr,
            protocol: Protocol(0),
            port: 0,
        };
        let to = ServiceKey::Tuple {
            addr,
            protocol: Protocol(u16::MAX),
            port: u16::MAX,
        };
        known.ipvs_available
            && known
                .ipvs
                .range(from..=to)
                .any(|(k, _)| self.ledger.owns_service(k))
    }

    /// Records the outcome of adding one address.
    fn added_address(
        &mut self,
        known: &mut Known,
        a: Address,
        owners: BTreeSet<String>,
        result: DpResult<()>,
        report: &mut SyncReport,
    ) {
        match result {
            Ok(()) => {
                known.addresses.insert(a.key(), a);
            }
            Err(e) => {
                let outcome = e.outcome();
                if outcome == Outcome::Unknown {
                    // Maybe added: the intent stays until the next full read.
                    self.stale = true;
                } else {
                    self.ledger.addresses.remove(&a.key());
                }
                if outcome == Outcome::AlreadyExists {
                    // Someone else's: present, so satisfied, not ours. The
                    // view said it was absent, so the view is read again.
                    self.stale = true;
                    known.addresses.insert(
                        a.key(),
                        Address {
                            label: None,
                            ..a.clone()
                        },
                    );
                } else {
                    report.errors.extend(SyncError::for_owners(
                        ErrorKind::Kernel,
                        owners,
                        format!("address {}: {e}", a.key()),
                    ));
                }
            }
        }
    }

    fn execute_ipvs(
        &mut self,
        known: &mut Known,
        ops: Vec<(Op, Option<String>)>,
        report: &mut SyncReport,
    ) {
        // New services go first, in a batch of their own, so that a
        // destination is only ever sent to a service this sync created: a
        // service someone else created meanwhile (EEXIST) never gets ours.
        let (creates, rest): (Vec<_>, Vec<_>) = ops
            .into_iter()
            .partition(|(op, _)| matches!(op, Op::AddService(..)));
        let mut failed_services: BTreeSet<ServiceKey> = BTreeSet::new();
        if !creates.is_empty() && !self.ipvs_batch(known, creates, &mut failed_services, report) {
            return;
        }
        let rest: Vec<_> = rest
            .into_iter()
            .filter(|(op, _)| {
                !(matches!(op, Op::AddDest { .. }) && failed_services.contains(op.service()))
            })
            .collect();
        if !rest.is_empty() {
            self.ipvs_batch(known, rest, &mut failed_services, report);
        }
    }

    /// Sends one batch and records each result. False when the batch's
    /// outcome is unknown as a whole.
    fn ipvs_batch(
        &mut self,
        known: &mut Known,
        ops: Vec<(Op, Option<String>)>,
        failed_services: &mut BTreeSet<ServiceKey>,
        report: &mut SyncReport,
    ) -> bool {
        for (op, _) in &ops {
            report.count(op.kind());
        }
        let plain: Vec<Op> = ops.iter().map(|(o, _)| o.clone()).collect();
        let results = match self.dp.ipvs_apply(&plain) {
            Ok(r) => r,
            Err(e) => {
                // The outcome is unknown: read everything next time. The
                // ledger keeps the intended additions until that read, which
                // forgets those that did not happen.
                self.stale = true;
                report.errors.push(SyncError::new(
                    ErrorKind::Kernel,
                    None,
                    format!("IPVS batch of {} ops: {e}", ops.len()),
                ));
                return false;
            }
        };
        for ((op, owner), result) in ops.into_iter().zip(results) {
            let key = *op.service();
            let err = match result {
                Ok(()) => {
                    self.applied(known, &op);
                    continue;
                }
                Err(e) => e,
            };
            let outcome = Outcome::of(&err);
            if outcome == Outcome::Unknown {
                // Maybe done, maybe not: the ledger keeps the intent (an
                // addition) or the entry (a removal) until the next full
                // read says which.
                self.stale = true;
                if matches!(op, Op::AddService(..)) {
                    failed_services.insert(key);
                }
                report
                    .errors
                    .push(SyncError::new(ErrorKind::Kernel, owner, err.to_string()));
                continue;
            }
            let mut push =
                |kind, msg: String| report.errors.push(SyncError::new(kind, owner.clone(), msg));
            match &op {
                Op::AddService(..) => {
                    failed_services.insert(key);
                    self.ledger.services.remove(&key);
                    if outcome == Outcome::AlreadyExists {
                        self.stale = true;
                        push(
                            ErrorKind::ForeignService,
                            format!(
                                "IPVS service {} appeared meanwhile and was not created by this agent; it is left alone",
                                ServiceLabel(&key)
                            ),
                        );
                    } else {
                        push(ErrorKind::Kernel, err.to_string());
                    }
                }
                Op::AddDest { dest, .. } => {
                    let dk = &dest.key;
                    if let Some(o) = self.ledger.services.get_mut(&key) {
                        o.dests.remove(dk);
                    }
                    if failed_services.contains(&key) {
                        continue;
                    }
                    if outcome == Outcome::AlreadyExists {
                        self.stale = true;
                        push(
                            ErrorKind::ForeignDestination,
                            format!(
                                "destination {dk} of IPVS service {} appeared meanwhile and was not added by this agent; it is left alone",
                                ServiceLabel(&key)
                            ),
                        );
                    } else {
                        push(ErrorKind::Kernel, err.to_string());
                    }
                }
                Op::DelService(..) | Op::DelDest { .. } if outcome == Outcome::NotFound => {
                    // Gone already, as far as the kernel says. The view
                    // forgets it; the ledger entry goes with the next full
                    // read, so an answer that contradicts the view can never
                    // leave an owned object unowned in the kernel.
                    forget_ipvs(known, &op);
                    self.stale = true;
                }
                Op::UpdateService(..) | Op::UpdateDest { .. } if outcome == Outcome::NotFound => {
                    self.stale = true;
                    push(ErrorKind::Kernel, err.to_string());
                }
                _ => push(ErrorKind::Kernel, err.to_string()),
            }
        }
        true
    }

    /// Updates the cached view (and, for removals, the ledger) after a write.
    fn applied(&mut self, known: &mut Known, op: &Op) {
        match op {
            Op::DelService(k) => {
                self.ledger.services.remove(k);
            }
            Op::DelDest { service, dest } => {
                if let Some(o) = self.ledger.services.get_mut(service) {
                    o.dests.remove(dest);
                }
            }
            _ => {}
        }
        match op {
            Op::AddService(s) => {
                known.ipvs.insert(
                    s.key,
                    KnownService {
                        config: s.config.clone(),
                        dests: DestMap::new(),
                    },
                );
            }
            Op::UpdateService(s) => {
                if let Some(k) = known.ipvs.get_mut(&s.key) {
                    k.config = s.config.clone();
                }
            }
            Op::AddDest { service, dest } | Op::UpdateDest { service, dest } => {
                if let Some(s) = known.ipvs.get_mut(service) {
                    s.dests.insert(dest.key, dest.config);
                }
            }
            Op::DelService(_) | Op::DelDest { .. } => forget_ipvs(known, op),
        }
    }
}

fn add_dest(service: ServiceKey, key: lvs_ipvs::DestKey, config: lvs_ipvs::DestConfig) -> Op {
    Op::AddDest {
        service,
        dest: Destination { key, config },
    }
}

/// Removes a deleted service or destination from the cached view.
fn forget_ipvs(known: &mut Known, op: &Op) {
    match op {
        Op::DelService(k) => {
            known.ipvs.remove(k);
        }
        Op::DelDest { service, dest } => {
            if let Some(s) = known.ipvs.get_mut(service) {
                s.dests.remove(dest);
            }
        }
        _ => {}
    }
}

/// Reports a director VIP that the node does not hold, per owner.
fn withhold(a: &Address, owners: BTreeSet<String>, report: &mut SyncReport) {
    report.errors.extend(SyncError::for_owners(
        ErrorKind::VipWithheld,
        owners,
        format!(
            "VIP {} is not held on {}: no IPVS service of this agent at that address is in the kernel (see the service's error), so the node does not answer for it",
            a.addr, a.interface
        ),
    ));
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

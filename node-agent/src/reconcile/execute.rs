//! Carrying out the writes a sync decided on, and recording each outcome
//! in the cached view and the ledger.
//!
//! The ledger delta of the sync's intended additions is already applied and
//! durable when this runs; the executor holds the delta that undoes it and,
//! when an addition fails in a way that means it did not happen, takes that
//! one entry back out. Removals are recorded only once the kernel confirms
//! them. Every branch is on the dataplane's [`Outcome`], never on errno.

use std::collections::BTreeSet;
use std::net::IpAddr;

use lvs_ipvs::{Op, Protocol, ServiceKey};

use crate::dataplane::{Dataplane, DpResult, Outcome};
use crate::kernel::{Address, DaemonSpec, DestMap, Link, ServiceLabel};
use crate::reconcile::decision::{IpvsWrites, LedgerDelta, OwnedAddress, Write};
use crate::reconcile::nft_table::NftView;
use crate::reconcile::{Known, KnownService, Reconciler, sysctls};
use crate::report::{ErrorKind, SyncError, SyncReport};

/// IPVS operations handed to the dataplane per call: enough for the
/// dataplane to keep its requests pipelined, few enough that the copies
/// stay small.
const IPVS_SLICE: usize = 8192;

impl<D: Dataplane> Reconciler<D> {
    pub(super) fn execute(
        &mut self,
        known: &mut Known,
        undo: &mut LedgerDelta,
        write: Write,
        report: &mut SyncReport,
    ) {
        match write {
            Write::EnsureTunnel(dev) => {
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
                            undo.revert_tunnel(&dev.name, &mut self.ledger);
                        }
                        report.errors.push(SyncError::new(
                            ErrorKind::Kernel,
                            None,
                            format!("tunnel device {}: {e}", dev.name),
                        ));
                    }
                }
            }
            Write::AddFou(p) => {
                report.count("fou_add");
                match self.dp.add_fou_port(&p) {
                    Ok(()) => {
                        known.fou.insert(p);
                    }
                    Err(e) => match e.outcome() {
                        Outcome::AlreadyExists => {
                            undo.revert_fou(&p, &mut self.ledger);
                            known.fou.insert(p);
                            self.stale = true;
                        }
                        outcome => {
                            if outcome == Outcome::Unknown {
                                self.stale = true;
                            } else {
                                undo.revert_fou(&p, &mut self.ledger);
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
            Write::WriteSysctl { key, value } => {
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
                            undo.revert_sysctl(&key, &mut self.ledger);
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
            Write::WriteSysctlLater { key, value } => {
                self.write_sysctl_later(known, undo, key, value, report);
            }
            Write::AddAddresses(batch) => self.add_addresses(known, undo, batch, report),
            Write::Ipvs(ops) => self.execute_ipvs(known, undo, ops, report),
            Write::DirectorVips { add, held, fwmarks } => {
                let serves = |me: &Self, known: &Known, addr: IpAddr| {
                    me.serves(known, addr)
                        || fwmarks.get(&addr).is_some_and(|ks| {
                            known.ipvs_available
                                && ks.iter().any(|k| {
                                    known.ipvs.contains_key(k) && me.ledger.owns_service(k)
                                })
                        })
                };
                let (add, withheld): (Vec<_>, Vec<_>) = add
                    .into_iter()
                    .partition(|(a, _)| serves(self, known, a.addr));
                // Without IPVS the node-level error says why for every VIP.
                let say = known.ipvs_available;
                for (a, owners) in withheld {
                    undo.revert_address(&a.key(), &mut self.ledger);
                    if say {
                        withhold(&a, owners, report);
                    }
                }
                if !add.is_empty() {
                    self.add_addresses(known, undo, add, report);
                }
                for (a, owners) in held {
                    if !serves(self, known, a.addr) {
                        if say {
                            withhold(&a, owners, report);
                        }
                        self.execute(known, undo, Write::DelAddress(a), report);
                    }
                }
            }
            Write::StartDaemon(d) => self.start_daemon(known, undo, d, report),
            Write::ReplaceDaemon { old, new } => {
                if self.stop_daemon(known, &old, report) {
                    // Stopping forgot the role's entry; the replacement is
                    // recorded again, and undoing it leaves nothing owned.
                    undo.daemons.insert(old.state, None);
                    self.ledger.daemons.insert(new.state, new.clone());
                    self.start_daemon(known, undo, new, report);
                } else {
                    // The old one may still run: the ledger keeps naming it.
                    undo.revert_daemon(old.state, &mut self.ledger);
                }
            }
            Write::StopDaemon(d) => {
                self.stop_daemon(known, &d, report);
            }
            Write::DelAddress(a) => {
                report.count("addr_del");
                // Out of the renewals first: a renewal would add it again.
                crate::dataplane::lock_renewals(&self.renewals)
                    .addrs
                    .retain(|r| r.key() != a.key());
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
            Write::RestoreSysctl { key, previous } => {
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
            Write::DelFou(p) => {
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
            Write::ReplaceNft(want) => {
                report.count("nft_replace");
                let rules = want.rules();
                match self.dp.replace_nft(&rules) {
                    Ok(()) => known.nft = NftView::Rules(rules.comments()),
                    Err(e) => {
                        // The transaction is all or nothing, but a lost
                        // answer leaves it unknown: read again next time.
                        if e.outcome() == Outcome::Unknown {
                            self.stale = true;
                        }
                        let msg = format!(
                            "nftables table inet {} (source NAT and fwmark marking) with {}: {e}",
                            crate::dataplane::nft::TABLE,
                            rules.comments().join(", ")
                        );
                        let owners = want.owners();
                        if owners.is_empty() {
                            report
                                .errors
                                .push(SyncError::new(ErrorKind::Kernel, None, msg));
                        } else {
                            for o in owners {
                                report.errors.push(SyncError::new(
                                    ErrorKind::Kernel,
                                    Some(o.clone()),
                                    msg.clone(),
                                ));
                            }
                        }
                    }
                }
            }
            Write::DeleteNft => {
                report.count("nft_delete");
                match self.dp.delete_nft() {
                    Ok(()) => known.nft = NftView::Absent,
                    Err(e) => {
                        if e.outcome() == Outcome::Unknown {
                            self.stale = true;
                        }
                        report.errors.push(SyncError::new(
                            ErrorKind::Kernel,
                            None,
                            format!(
                                "delete the source NAT table (nftables inet {}): {e}",
                                crate::dataplane::nft::TABLE
                            ),
                        ));
                    }
                }
            }
            Write::ReleaseTunnel(dev) => {
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

    /// Starts a sync daemon recorded ahead in the ledger.
    fn start_daemon(
        &mut self,
        known: &mut Known,
        undo: &mut LedgerDelta,
        d: DaemonSpec,
        report: &mut SyncReport,
    ) {
        report.count("daemon_start");
        let Err(e) = self.dp.add_daemon(&d) else {
            tracing::info!(daemon = %d, "IPVS connection sync daemon started");
            known.daemons.insert(d.state, d);
            return;
        };
        match e.outcome() {
            // Maybe started: the intent stays until the next full read.
            Outcome::Unknown => self.stale = true,
            outcome => {
                undo.revert_daemon(d.state, &mut self.ledger);
                // Someone started one of that role meanwhile: not ours,
                // and the next full read says what it is.
                if outcome == Outcome::AlreadyExists {
                    self.stale = true;
                }
            }
        }
        report
            .errors
            .push(SyncError::new(ErrorKind::Kernel, None, format!("{d}: {e}")));
    }

    /// Stops an owned sync daemon; whether it is gone.
    fn stop_daemon(&mut self, known: &mut Known, d: &DaemonSpec, report: &mut SyncReport) -> bool {
        report.count("daemon_stop");
        match self.dp.del_daemon(d.state) {
            Ok(()) => {
                tracing::info!(daemon = %d, "IPVS connection sync daemon stopped");
                self.ledger.daemons.remove(&d.state);
                known.daemons.remove(&d.state);
                true
            }
            Err(e) if e.outcome() == Outcome::NotFound => {
                // Gone already; the ledger entry goes with the next full read.
                known.daemons.remove(&d.state);
                self.stale = true;
                true
            }
            Err(e) => {
                report.errors.push(SyncError::new(
                    ErrorKind::Kernel,
                    None,
                    format!("stopping {d}: {e}"),
                ));
                false
            }
        }
    }

    /// A sysctl of a device this sync created: read the value now there,
    /// record it durably (its own small write-ahead unit), then write.
    fn write_sysctl_later(
        &mut self,
        known: &mut Known,
        undo: &mut LedgerDelta,
        key: String,
        value: String,
        report: &mut SyncReport,
    ) {
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
        let mut delta = LedgerDelta::default();
        let entry = sysctls::entry(&value, &cur, self.ledger.sysctls.get(&key));
        delta.sysctls.insert(key.clone(), Some(entry));
        let mut own_undo = delta.apply(&mut self.ledger);
        if let Err(e) = self.store.save(&self.ledger) {
            // Without the previous value on disk it could not be restored.
            own_undo.revert_sysctl(&key, &mut self.ledger);
            report.errors.push(SyncError::new(
                ErrorKind::Ledger,
                None,
                format!("{e}; sysctl {key} not written"),
            ));
            return;
        }
        undo.merge(own_undo);
        self.execute(known, undo, Write::WriteSysctl { key, value }, report);
    }

    fn add_addresses(
        &mut self,
        known: &mut Known,
        undo: &mut LedgerDelta,
        batch: Vec<OwnedAddress>,
        report: &mut SyncReport,
    ) {
        let addrs: Vec<Address> = batch.iter().map(|(a, _)| a.clone()).collect();
        let results = self.dp.add_addresses(&addrs);
        for ((a, owners), result) in batch.into_iter().zip(results) {
            report.count("addr_add");
            self.added_address(known, undo, a, owners, result, report);
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
        undo: &mut LedgerDelta,
        a: Address,
        owners: BTreeSet<String>,
        result: DpResult<()>,
        report: &mut SyncReport,
    ) {
        let Err(e) = result else {
            known.addresses.insert(a.key(), a);
            return;
        };
        let outcome = e.outcome();
        if outcome == Outcome::Unknown {
            // Maybe added: the intent stays until the next full read.
            self.stale = true;
        } else {
            undo.revert_address(&a.key(), &mut self.ledger);
        }
        if outcome == Outcome::AlreadyExists {
            // Someone else's: present, so satisfied, not ours. The view
            // said it was absent, so the view is read again.
            self.stale = true;
            known
                .addresses
                .insert(a.key(), Address { label: None, ..a });
        } else {
            report.errors.extend(SyncError::for_owners(
                ErrorKind::Kernel,
                owners,
                format!("address {}: {e}", a.key()),
            ));
        }
    }

    fn execute_ipvs(
        &mut self,
        known: &mut Known,
        undo: &mut LedgerDelta,
        ops: IpvsWrites,
        report: &mut SyncReport,
    ) {
        // New services go first, in a batch of their own, so that a
        // destination is only ever sent to a service this sync created: a
        // service someone else created meanwhile (EEXIST) never gets ours.
        // Taken out in place: a first sync's operations are the whole
        // table, and a second vector of them would double the sync's peak.
        let mut rest = ops;
        let creates = rest.extract(|op| matches!(op, Op::AddService(..)));
        let mut failed_services: BTreeSet<ServiceKey> = BTreeSet::new();
        if !creates.is_empty()
            && !self.ipvs_batch(known, undo, &creates, &mut failed_services, report)
        {
            return;
        }
        drop(creates);
        rest.retain(|op| {
            !(matches!(op, Op::AddDest { .. }) && failed_services.contains(op.service()))
        });
        if !rest.is_empty() {
            self.ipvs_batch(known, undo, &rest, &mut failed_services, report);
        }
    }

    /// Sends one batch, a slice at a time, and records each result. False
    /// when a slice's outcome is unknown as a whole (the slices before it
    /// are recorded).
    fn ipvs_batch(
        &mut self,
        known: &mut Known,
        undo: &mut LedgerDelta,
        ops: &IpvsWrites,
        failed_services: &mut BTreeSet<ServiceKey>,
        report: &mut SyncReport,
    ) -> bool {
        for op in ops.ops() {
            report.count(op.kind());
        }
        for (n, slice) in ops.ops().chunks(IPVS_SLICE).enumerate() {
            let results = match self.dp.ipvs_apply(slice) {
                Ok(r) => r,
                Err(e) => {
                    // The outcome is unknown: read everything next time
                    // (the earlier slices are recorded, but the view is
                    // dropped as `stale`). The ledger keeps the intended
                    // additions until that read, which forgets those that
                    // did not happen.
                    self.stale = true;
                    report.errors.push(SyncError::new(
                        ErrorKind::Kernel,
                        None,
                        format!("IPVS batch of {} ops: {e}", ops.len()),
                    ));
                    return false;
                }
            };
            for (i, (op, result)) in slice.iter().zip(results).enumerate() {
                let owner = ops.owner(n * IPVS_SLICE + i);
                self.record_ipvs(known, undo, op, owner, result, failed_services, report);
            }
        }
        true
    }

    /// Records the result of one IPVS operation.
    #[allow(clippy::too_many_arguments)]
    fn record_ipvs(
        &mut self,
        known: &mut Known,
        undo: &mut LedgerDelta,
        op: &Op,
        owner: Option<&str>,
        result: DpResult<()>,
        failed_services: &mut BTreeSet<ServiceKey>,
        report: &mut SyncReport,
    ) {
        let key = *op.service();
        let err = match result {
            Ok(()) => {
                self.applied(known, op);
                return;
            }
            Err(e) => e,
        };
        let owner = owner.map(str::to_string);
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
            return;
        }
        let mut push =
            |kind, msg: String| report.errors.push(SyncError::new(kind, owner.clone(), msg));
        match op {
            Op::AddService(..) => {
                failed_services.insert(key);
                undo.revert_service(&key, &mut self.ledger);
                let (kind, msg) = self.addition_failed(outcome, &err, ErrorKind::ForeignService, || {
                    format!(
                        "IPVS service {} appeared meanwhile and was not created by this agent; it is left alone",
                        ServiceLabel(&key)
                    )
                });
                push(kind, msg);
            }
            Op::AddDest { dest, .. } => {
                // The destination was recorded ahead: it is not ours.
                if let Some(o) = self.ledger.services.get_mut(&key) {
                    o.dests.remove(&dest.key);
                }
                if failed_services.contains(&key) {
                    return;
                }
                let (kind, msg) =
                    self.addition_failed(outcome, &err, ErrorKind::ForeignDestination, || {
                        format!(
                            "destination {} of IPVS service {} appeared meanwhile and was not added by this agent; it is left alone",
                            dest.key,
                            ServiceLabel(&key)
                        )
                    });
                push(kind, msg);
            }
            Op::DelService(..) | Op::DelDest { .. } if outcome == Outcome::NotFound => {
                // Gone already, as far as the kernel says. The view
                // forgets it; the ledger entry goes with the next full
                // read, so an answer that contradicts the view can never
                // leave an owned object unowned in the kernel.
                forget_ipvs(known, op);
                self.stale = true;
            }
            Op::UpdateService(..) | Op::UpdateDest { .. } if outcome == Outcome::NotFound => {
                self.stale = true;
                push(ErrorKind::Kernel, err.to_string());
            }
            _ => push(ErrorKind::Kernel, err.to_string()),
        }
    }

    /// The error of a failed addition: one that found the object there
    /// already (someone else made it meanwhile, which leaves the view in
    /// doubt) is `foreign`, described by `what`; any other is the kernel's.
    fn addition_failed(
        &mut self,
        outcome: Outcome,
        err: &crate::dataplane::DataplaneError,
        foreign: ErrorKind,
        what: impl FnOnce() -> String,
    ) -> (ErrorKind, String) {
        if outcome == Outcome::AlreadyExists {
            self.stale = true;
            (foreign, what())
        } else {
            (ErrorKind::Kernel, err.to_string())
        }
    }

    /// Updates the cached view (and, for removals, the ledger) after a write.
    fn applied(&mut self, known: &mut Known, op: &Op) {
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
            Op::DelService(k) => {
                self.ledger.services.remove(k);
                forget_ipvs(known, op);
            }
            Op::DelDest { service, dest } => {
                if let Some(o) = self.ledger.services.get_mut(service) {
                    o.dests.remove(dest);
                }
                forget_ipvs(known, op);
            }
        }
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
        Op::AddService(_) | Op::UpdateService(_) | Op::AddDest { .. } | Op::UpdateDest { .. } => {}
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

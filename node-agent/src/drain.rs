//! Graceful drain on a director.
//!
//! A destination that leaves a service (its RealServer deleted, relabelled,
//! invalid or `Draining`, its node gone) is not deleted at once: it stays
//! in the kernel with weight 0, so new connections avoid it and established
//! ones continue, until its connections end or the service's drain deadline
//! (`drain.timeoutSeconds`) passes; then it is removed. A destination back
//! in the plan during its drain keeps its entry and gets its weight back:
//! nothing is cut. A service that leaves the plan whole (its VirtualService
//! deleted) is removed whole, without a drain.
//!
//! Leaving destinations are found by comparing the plan with what the
//! agent owns in the kernel (the reconciler's view and the ledger), not
//! with the previous plan: after an agent restart, owned destinations the
//! plan no longer has still drain (their clock starts again at the
//! restart) instead of being cut.
//!
//! The deadline follows the service's current `drain.timeoutSeconds`
//! (counted from the drain's start): shortening it shortens running drains,
//! and 0 ends them at the next sync.
//!
//! When a drain ends:
//! - TCP and SCTP: when the destination has no *active* connection. IPVS
//!   counts as inactive the connections that are closing or closed (FIN,
//!   TIME_WAIT, CLOSE; kept about two minutes), which carry no data a user
//!   waits for, so waiting for them would keep a drained destination for
//!   minutes after its last stream closed. A half-closed connection still
//!   sending in one direction also counts inactive; the deadline is what a
//!   user sets when that matters.
//! - UDP: when it has no connection entry at all. IPVS counts every UDP
//!   flow as inactive, so the inactive count is the one that says a
//!   client still talks to it.
//! - fwmark services (any protocol behind one mark): no entry at all,
//!   bounded by the deadline.
//!
//! The counts are read one service at a time (one GET_DEST dump) every
//! [`POLL_INTERVAL`], only while a drain runs, on the sync thread.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use lvs_api::RealServerState;
use lvs_ipvs::{DestEntry, DestKey, Protocol, ServiceKey};
use lvs_planner::{NodePlan, PlannedDestination};

use crate::dataplane::DpResult;
use crate::desired::{planned_destination, service_key};
use crate::ledger::Ledger;
use crate::reconcile::Known;

/// How often the connection counts of draining destinations are read.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Why a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Its connections ended.
    Idle,
    /// The deadline passed with connections left.
    Deadline,
    /// The destination left the kernel by other means.
    Gone,
}

impl End {
    pub fn as_str(self) -> &'static str {
        match self {
            End::Idle => "connections ended",
            End::Deadline => "deadline passed",
            End::Gone => "destination gone",
        }
    }
}

/// One draining destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drain {
    /// The VirtualService of the service (namespace/name).
    pub owner: String,
    /// The destination as it goes back into the plan: weight 0.
    pub dest: PlannedDestination,
    pub started: Instant,
    /// When it started, RFC 3339 (for the status).
    pub since: String,
    pub deadline: Instant,
    /// The connections it still waits for, as of the last poll.
    pub connections: Option<u32>,
    /// Set once the drain is over: the next sync removes the destination.
    pub ended: Option<End>,
    /// Why the drain started (shown in the destination's status).
    pub problem: String,
}

/// A draining destination put back into a planned service, for the status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Noted {
    /// The VirtualService (namespace/name).
    pub owner: String,
    pub dest: PlannedDestination,
    pub since: String,
    pub connections: Option<u32>,
    pub problem: String,
}

/// The drains of a director, by service and destination.
#[derive(Debug, Clone, Default)]
pub struct Drains {
    entries: BTreeMap<ServiceKey, BTreeMap<DestKey, Drain>>,
    next_poll: Option<Instant>,
}

/// What the status says when a service has no destination left but its
/// last ones still drain: the VirtualService carried traffic and an edit
/// (every RealServer invalid, deleted or unselected) emptied it.
pub const NO_DESTINATION_LEFT: &str = "no valid RealServer is left for this VirtualService; its last destinations drain and new connections find no destination";

/// The wall-clock time now, RFC 3339 to the second.
fn rfc3339_now() -> String {
    let now = k8s_openapi::jiff::Timestamp::now();
    k8s_openapi::jiff::Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string()
}

fn dest_key(d: &PlannedDestination) -> DestKey {
    DestKey {
        addr: d.addr,
        port: d.port,
    }
}

/// The connections a drain of a destination of `service` waits for.
fn waited_for(service: &ServiceKey, active: u32, inactive: u32) -> u32 {
    match service {
        ServiceKey::Tuple { protocol, .. } if *protocol != Protocol::UDP => active,
        _ => active.saturating_add(inactive),
    }
}

impl Drains {
    /// Whether a drain runs (not ended yet).
    pub fn running(&self) -> bool {
        self.entries
            .values()
            .flat_map(|m| m.values())
            .any(|d| d.ended.is_none())
    }

    /// When [`Drains::poll`] is due; `None` while no drain runs.
    pub fn next_poll(&self) -> Option<Instant> {
        self.next_poll
    }

    /// The running drains: (VirtualService, destination, connections left
    /// as of the last poll).
    pub fn running_counts(&self) -> impl Iterator<Item = (&str, DestKey, Option<u32>)> {
        self.entries.values().flat_map(|m| {
            m.iter()
                .filter(|(_, d)| d.ended.is_none())
                .map(|(k, d)| (d.owner.as_str(), *k, d.connections))
        })
    }

    /// The drain of one destination, if any.
    pub fn get(&self, service: &ServiceKey, dest: &DestKey) -> Option<&Drain> {
        self.entries.get(service).and_then(|m| m.get(dest))
    }

    /// The first step between the plan and the kernel. For each planned
    /// service: owned destinations in the kernel (`known`, `ledger`) that
    /// the plan does not have start draining (unless the service's drain
    /// timeout is 0: removed at once), running drains go back into the
    /// service with weight 0, ended ones are left out (the sync removes
    /// them), and those back in the plan are cancelled. Drains of services
    /// no longer planned are dropped (`names`: the VirtualServices the plan
    /// covers; `None`: all). Returns the destinations put back.
    pub fn apply(
        &mut self,
        plan: &mut NodePlan,
        names: Option<&BTreeSet<String>>,
        known: Option<&Known>,
        ledger: &Ledger,
        now: Instant,
    ) -> Vec<Noted> {
        let mut log = LogBudget::default();
        let planned: BTreeSet<ServiceKey> =
            plan.services.iter().map(|s| service_key(&s.key)).collect();
        self.entries.retain(|key, drains| {
            let covered = drains
                .values()
                .next()
                .is_none_or(|d| names.is_none_or(|n| n.contains(&d.owner)));
            if covered && !planned.contains(key) {
                for (dk, d) in drains.iter().filter(|(_, d)| d.ended.is_none()) {
                    if log.allow() {
                        tracing::info!(
                            service = %d.owner,
                            destination = %dk,
                            "drain dropped: the service is removed whole"
                        );
                    }
                }
                return false;
            }
            true
        });
        let mut out = Vec::new();
        for s in &mut plan.services {
            let key = service_key(&s.key);
            let kernel = known.map(|k| k.ipvs.get(&key));
            if !self.entries.contains_key(&key) {
                // The usual case, without allocating: no drain, and every
                // destination in the kernel is planned.
                let in_kernel = kernel.flatten().map_or(0, |k| k.dests.len());
                let planned_there = kernel.flatten().map_or(0, |k| {
                    s.destinations
                        .iter()
                        .filter(|d| k.dests.contains_key(&dest_key(d)))
                        .count()
                });
                if planned_there == in_kernel {
                    continue;
                }
            }
            let wanted: BTreeSet<DestKey> = s.destinations.iter().map(dest_key).collect();
            let mut drains = self.entries.remove(&key).unwrap_or_default();
            drains.retain(|dk, d| {
                if wanted.contains(dk) {
                    if d.ended.is_none() && log.allow() {
                        tracing::info!(
                            service = %s.owner,
                            destination = %dk,
                            waited_s = now.saturating_duration_since(d.started).as_secs(),
                            "drain cancelled: the destination is back"
                        );
                    }
                    return false;
                }
                // Without a view of the kernel, keep what is known.
                kernel.is_none_or(|k| k.is_some_and(|k| k.dests.contains_key(dk)))
            });
            let problem = if s.destinations.is_empty() {
                NO_DESTINATION_LEFT.to_string()
            } else {
                String::new()
            };
            let mut warn_empty = false;
            if let (Some(Some(k)), Some(owned)) = (kernel, ledger.services.get(&key)) {
                for (dk, cfg) in &k.dests {
                    if wanted.contains(dk) || !owned.dests.contains(dk) || drains.contains_key(dk) {
                        continue;
                    }
                    if s.drain_timeout_seconds == 0 {
                        continue;
                    }
                    let Some(mut dest) = planned_destination(*dk, cfg) else {
                        continue;
                    };
                    dest.weight = 0;
                    dest.state = RealServerState::Draining;
                    if log.allow() {
                        tracing::info!(
                            service = %s.owner,
                            destination = %dk,
                            timeout_s = s.drain_timeout_seconds,
                            reason = if problem.is_empty() { "left the service" } else { "no destination left" },
                            "drain started"
                        );
                    }
                    warn_empty |= !problem.is_empty();
                    drains.insert(
                        *dk,
                        Drain {
                            owner: s.owner.clone(),
                            dest,
                            started: now,
                            since: rfc3339_now(),
                            // Set below, from the current timeout.
                            deadline: now,
                            connections: None,
                            ended: None,
                            problem: problem.clone(),
                        },
                    );
                }
            }
            if warn_empty {
                tracing::warn!(service = %s.owner, "{NO_DESTINATION_LEFT}");
            }
            // The deadline follows the spec: a shorter timeout shortens
            // running drains, and 0 ends them now.
            let timeout = Duration::from_secs(s.drain_timeout_seconds.into());
            for (dk, d) in drains.iter_mut().filter(|(_, d)| d.ended.is_none()) {
                d.deadline = d.started + timeout;
                if timeout.is_zero() {
                    d.ended = Some(End::Deadline);
                    if log.allow() {
                        tracing::info!(
                            service = %s.owner,
                            destination = %dk,
                            reason = "drain timeout set to 0",
                            connections_left = d.connections.unwrap_or_default(),
                            waited_s = now.saturating_duration_since(d.started).as_secs(),
                            "drain ended"
                        );
                    }
                }
            }
            for d in drains.values_mut().filter(|d| d.ended.is_none()) {
                d.problem.clone_from(&problem);
                s.destinations.push(d.dest.clone());
                out.push(Noted {
                    owner: s.owner.clone(),
                    dest: d.dest.clone(),
                    since: d.since.clone(),
                    connections: d.connections,
                    problem: problem.clone(),
                });
            }
            if !drains.is_empty() {
                self.entries.insert(key, drains);
            }
        }
        self.next_poll = match (self.running(), self.next_poll) {
            (false, _) => None,
            (true, Some(t)) => Some(t),
            (true, None) => Some(now + POLL_INTERVAL),
        };
        log.finish();
        out
    }

    /// Reads the connection counts of the services with running drains
    /// (`read`: one service's destinations) and ends the drains whose
    /// connections are gone or whose deadline passed. Returns the
    /// VirtualServices to sync now, which removes those destinations.
    pub fn poll(
        &mut self,
        now: Instant,
        mut read: impl FnMut(&ServiceKey) -> DpResult<Vec<DestEntry>>,
    ) -> BTreeSet<String> {
        let mut log = LogBudget::default();
        let mut ended = BTreeSet::new();
        for (key, drains) in &mut self.entries {
            if drains.values().all(|d| d.ended.is_some()) {
                continue;
            }
            let counts: Option<BTreeMap<DestKey, u32>> = match read(key) {
                Ok(v) => Some(
                    v.into_iter()
                        .map(|e| {
                            let n = waited_for(key, e.stats.active_conns, e.stats.inactive_conns);
                            (e.destination.key, n)
                        })
                        .collect(),
                ),
                Err(e) => {
                    tracing::debug!(service = %key, error = %e, "reading the connections of draining destinations failed");
                    None
                }
            };
            for (dk, d) in drains.iter_mut().filter(|(_, d)| d.ended.is_none()) {
                let left = counts.as_ref().map(|c| c.get(dk).copied());
                if let Some(Some(n)) = left {
                    d.connections = Some(n);
                }
                let end = match left {
                    Some(None) => Some(End::Gone),
                    Some(Some(0)) => Some(End::Idle),
                    _ if now >= d.deadline => Some(End::Deadline),
                    _ => None,
                };
                if let Some(end) = end {
                    d.ended = Some(end);
                    if log.allow() {
                        tracing::info!(
                            service = %d.owner,
                            destination = %dk,
                            reason = end.as_str(),
                            connections_left = d.connections.unwrap_or_default(),
                            waited_s = now.saturating_duration_since(d.started).as_secs(),
                            "drain ended"
                        );
                    }
                    ended.insert(d.owner.clone());
                }
            }
        }
        self.next_poll = self.running().then(|| now + POLL_INTERVAL);
        log.finish();
        ended
    }
}

/// Drain transitions logged one by one per sync or poll; beyond it, one
/// line counts the rest (a RealServer selected by thousands of services
/// starts thousands of drains at once).
const LOGGED_TRANSITIONS: usize = 20;

#[derive(Debug, Default)]
struct LogBudget {
    used: usize,
}

impl LogBudget {
    fn allow(&mut self) -> bool {
        self.used += 1;
        self.used <= LOGGED_TRANSITIONS
    }

    fn finish(self) {
        if self.used > LOGGED_TRANSITIONS {
            tracing::info!(
                transitions = self.used,
                logged = LOGGED_TRANSITIONS,
                "more drain transitions than logged one by one; the status lists every draining destination"
            );
        }
    }
}

#[cfg(test)]
mod tests;

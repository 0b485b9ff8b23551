//! Director health checks: every director's agent probes the destinations
//! of its services and steers traffic away from those that fail.
//!
//! - [`Checks`] is the table of probe targets, shared by the sync loop and
//!   the [`engine`]. One target per distinct (address, port, check), however
//!   many VirtualServices use it; each keeps its rise/fall [`Damping`].
//! - The sync loop registers the targets of each plan and reads their state
//!   back in the same step ([`step`]): a failing destination gets weight 0
//!   (`Inhibit`) or is left out (`Remove`), and below `quorum` the sorry
//!   server is programmed ([`steer_service`], a pure function).
//! - The [`engine`] runs the probes on the Tokio runtime, bounded in
//!   concurrency, each target once per interval at its own offset, and sends
//!   only state transitions to the sync loop ([`crate::source::Event::Health`]).
//!
//! A new target starts healthy, as keepalived's checkers do, and its first
//! probe runs within one interval.

pub mod dns;
pub mod engine;
pub mod probe;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lvs_api::{DestinationState, HealthAction, HealthCheckType, RealServerState};
use lvs_planner::{NodePlan, PlannedDestination, PlannedHealthCheck, PlannedService};

use crate::report::DestinationStates;

/// The default of `--health-concurrency`: probes in flight at once.
pub const DEFAULT_CONCURRENCY: usize = 256;

/// What is probed: an address and port with the parameters that shape the
/// probe and its damping. Two services checking the same realserver the same
/// way share one target.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProbeKey {
    pub addr: SocketAddr,
    /// The service's check, with `port` cleared (it is in `addr`) and
    /// `on_failure` fixed (it acts on the result, not on the probe).
    pub check: Arc<PlannedHealthCheck>,
}

/// The check as a target shares it: see [`ProbeKey::check`].
pub fn shared_check(h: &PlannedHealthCheck) -> Arc<PlannedHealthCheck> {
    Arc::new(PlannedHealthCheck {
        port: None,
        on_failure: HealthAction::Inhibit,
        ..h.clone()
    })
}

/// The target of destination `d` under `check` (and the service's check
/// port); `None` when there is nothing to probe (no check, or a fwmark
/// destination without a port).
pub fn probe_key(
    d: &PlannedDestination,
    health: &PlannedHealthCheck,
    check: &Arc<PlannedHealthCheck>,
) -> Option<ProbeKey> {
    if health.type_ == HealthCheckType::None {
        return None;
    }
    let port = health.port.unwrap_or(d.port);
    if port == 0 {
        return None;
    }
    Some(ProbeKey {
        addr: SocketAddr::new(d.addr, port),
        check: check.clone(),
    })
}

/// rise/fall damping of one target: `fall` failures in a row make it
/// failing, `rise` passes in a row healthy again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damping {
    pub healthy: bool,
    passes: u32,
    fails: u32,
    /// Since when the current state holds (Unix seconds).
    pub since: u64,
    /// The last failed probe's reason (kept after a recovery until the next
    /// failure replaces it).
    pub last_error: String,
}

impl Damping {
    /// A new target: healthy.
    pub fn new(now: u64) -> Self {
        Damping {
            healthy: true,
            passes: 0,
            fails: 0,
            since: now,
            last_error: String::new(),
        }
    }

    /// Takes one probe result; returns whether the state flipped.
    pub fn record(&mut self, result: Result<(), String>, rise: u32, fall: u32, now: u64) -> bool {
        match result {
            Ok(()) => {
                self.fails = 0;
                self.passes = self.passes.saturating_add(1);
                if !self.healthy && self.passes >= rise.max(1) {
                    self.healthy = true;
                    self.since = now;
                    return true;
                }
            }
            Err(e) => {
                self.passes = 0;
                self.fails = self.fails.saturating_add(1);
                self.last_error = e;
                if self.healthy && self.fails >= fall.max(1) {
                    self.healthy = false;
                    self.since = now;
                    return true;
                }
            }
        }
        false
    }
}

/// A failing destination, as the steer step sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failing {
    /// Unix seconds.
    pub since: u64,
    pub last_error: String,
}

#[derive(Debug)]
struct Target {
    key: Arc<ProbeKey>,
    /// The VirtualServices (namespace/name) using it.
    owners: BTreeSet<Arc<str>>,
    damping: Damping,
    /// A probe is running (one at a time per target).
    in_flight: bool,
}

/// The probe targets and their states; shared by the sync loop and the
/// engine through [`Checks`].
#[derive(Debug, Default)]
pub struct Table {
    ids: HashMap<Arc<ProbeKey>, u64>,
    targets: HashMap<u64, Target>,
    /// Per VirtualService: its destinations (as IPVS shows them) and their
    /// targets.
    by_owner: HashMap<Arc<str>, Vec<(SocketAddr, u64)>>,
    /// When each target is due, earliest first; entries of targets that
    /// are gone, or due again later, are skipped when they come up.
    queue: BinaryHeap<Reverse<(Instant, u64)>>,
    next_id: u64,
    spread: std::collections::hash_map::RandomState,
    log: TransitionLog,
}

/// State changes logged one by one: at most [`LOGGED_PER_WINDOW`] per
/// [`LOG_WINDOW`], the rest counted in one line when the window is over
/// (a switch failing takes thousands of targets out at once).
const LOGGED_PER_WINDOW: usize = 20;
const LOG_WINDOW: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
struct TransitionLog {
    window_start: Option<Instant>,
    logged: usize,
    suppressed: usize,
}

impl TransitionLog {
    /// Whether the transition at `now` is logged on its own line.
    fn allow(&mut self, now: Instant) -> bool {
        let fresh = self
            .window_start
            .is_none_or(|t| now.saturating_duration_since(t) >= LOG_WINDOW);
        if fresh {
            if self.suppressed > 0 {
                tracing::info!(
                    not_logged = self.suppressed,
                    window_s = LOG_WINDOW.as_secs(),
                    "more health check state changes than logged one by one; /status and the LvsNode have every state"
                );
            }
            *self = TransitionLog {
                window_start: Some(now),
                ..TransitionLog::default()
            };
        }
        if self.logged < LOGGED_PER_WINDOW {
            self.logged += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }
}

/// A target due for a probe.
#[derive(Debug, Clone)]
pub struct Due {
    pub id: u64,
    pub key: Arc<ProbeKey>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn interval_of(check: &PlannedHealthCheck) -> Duration {
    Duration::from_secs(u64::from(check.interval_seconds.max(1)))
}

impl Table {
    /// Sets the targets of VirtualService `owner` (`dests`: destination
    /// address and target). New targets are due at an offset within one
    /// interval, spread by a hash so that a large table is not probed all at
    /// once. Returns whether a target was added.
    pub fn set_owner(
        &mut self,
        owner: &str,
        dests: Vec<(SocketAddr, ProbeKey)>,
        now: Instant,
    ) -> bool {
        let owner: Arc<str> = self
            .by_owner
            .get_key_value(owner)
            .map(|(k, _)| k.clone())
            .unwrap_or_else(|| Arc::from(owner));
        let mut added = false;
        let mut list = Vec::with_capacity(dests.len());
        let mut keep = HashSet::with_capacity(dests.len());
        for (dest, key) in dests {
            let id = match self.ids.get(&key) {
                Some(id) => *id,
                None => {
                    let id = self.next_id;
                    self.next_id += 1;
                    let key = Arc::new(key);
                    let interval = interval_of(&key.check).as_millis() as u64;
                    let offset = self.spread.hash_one(&*key) % interval.max(1);
                    self.queue
                        .push(Reverse((now + Duration::from_millis(offset), id)));
                    self.ids.insert(key.clone(), id);
                    self.targets.insert(
                        id,
                        Target {
                            key,
                            owners: BTreeSet::new(),
                            damping: Damping::new(unix_now()),
                            in_flight: false,
                        },
                    );
                    added = true;
                    id
                }
            };
            if let Some(t) = self.targets.get_mut(&id) {
                t.owners.insert(owner.clone());
            }
            keep.insert(id);
            list.push((dest, id));
        }
        let old = if list.is_empty() {
            self.by_owner.remove(&owner)
        } else {
            self.by_owner.insert(owner.clone(), list)
        };
        for (_, id) in old.unwrap_or_default() {
            if !keep.contains(&id) {
                self.release(&owner, id);
            }
        }
        added
    }

    /// Forgets VirtualService `owner`'s targets.
    pub fn remove_owner(&mut self, owner: &str) {
        if let Some((owner, list)) = self.by_owner.remove_entry(owner) {
            for (_, id) in list {
                self.release(&owner, id);
            }
        }
    }

    /// The VirtualServices with targets.
    pub fn owners(&self) -> Vec<String> {
        self.by_owner.keys().map(|k| k.to_string()).collect()
    }

    fn release(&mut self, owner: &Arc<str>, id: u64) {
        let Some(t) = self.targets.get_mut(&id) else {
            return;
        };
        t.owners.remove(owner);
        if t.owners.is_empty() {
            let t = self.targets.remove(&id).expect("present");
            self.ids.remove(&t.key);
        }
    }

    /// The state of target `key`, `None` when it is not in the table.
    pub fn damping(&self, key: &ProbeKey) -> Option<&Damping> {
        self.ids
            .get(key)
            .and_then(|id| self.targets.get(id))
            .map(|t| &t.damping)
    }

    /// How many distinct targets are probed.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Takes up to `max` targets due at `now` (marking them in flight) and
    /// says when the next one is due.
    pub fn take_due(&mut self, now: Instant, max: usize) -> (Vec<Due>, Option<Instant>) {
        let mut out = Vec::new();
        while let Some(Reverse((at, id))) = self.queue.peek().copied() {
            if at > now || out.len() >= max {
                return (out, Some(at));
            }
            self.queue.pop();
            let Some(t) = self.targets.get_mut(&id) else {
                continue;
            };
            if t.in_flight {
                continue;
            }
            t.in_flight = true;
            out.push(Due {
                id,
                key: t.key.clone(),
            });
        }
        (out, None)
    }

    /// Takes the result of a probe that started at `started`: schedules
    /// the next one interval later and returns the owners to re-sync when
    /// the state flipped.
    pub fn record(
        &mut self,
        id: u64,
        started: Instant,
        result: Result<(), String>,
    ) -> Option<Vec<String>> {
        let t = self.targets.get_mut(&id)?;
        t.in_flight = false;
        let c = &t.key.check;
        let next = started + interval_of(c);
        let flipped = t.damping.record(result, c.rise, c.fall, unix_now());
        let owners = flipped.then(|| t.owners.iter().map(|o| o.to_string()).collect());
        if flipped && self.log.allow(Instant::now()) {
            tracing::info!(
                target = %t.key.addr,
                check = c.type_.as_str(),
                healthy = t.damping.healthy,
                error = %t.damping.last_error,
                "health check state changed"
            );
        }
        self.queue.push(Reverse((next, id)));
        owners
    }

    /// For metrics: each (VirtualService, destination, healthy) with a
    /// check.
    pub fn each_destination(&self, mut f: impl FnMut(&str, SocketAddr, bool)) {
        for (owner, list) in &self.by_owner {
            for (dest, id) in list {
                if let Some(t) = self.targets.get(id) {
                    f(owner, *dest, t.damping.healthy);
                }
            }
        }
    }
}

/// The shared handle on the probe table (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct Checks {
    inner: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    table: Mutex<Table>,
    /// Wakes the engine when targets were added.
    wake: tokio::sync::Notify,
}

impl Checks {
    pub fn new() -> Self {
        Checks::default()
    }

    pub fn lock(&self) -> MutexGuard<'_, Table> {
        self.inner
            .table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn wake(&self) {
        self.inner.wake.notify_one();
    }

    async fn woken(&self) {
        self.inner.wake.notified().await;
    }
}

/// The health step of the sync loop: registers the targets of the planned
/// services with `checks` (`names`: the VirtualServices a scoped plan
/// covers; `None`: the whole plan) and steers each service by their states.
/// Without `checks` (a single sync, tests) every destination counts as
/// healthy; quorum and the sorry server still apply.
pub fn step(
    checks: Option<&Checks>,
    plan: &mut NodePlan,
    names: Option<&BTreeSet<String>>,
    states: &mut BTreeMap<String, DestinationStates>,
) {
    let now = Instant::now();
    let mut table = checks.map(|c| c.lock());
    if let Some(t) = table.as_mut() {
        let mut per_owner: BTreeMap<&str, Vec<(SocketAddr, ProbeKey)>> = BTreeMap::new();
        for s in &plan.services {
            let list = per_owner.entry(s.owner.as_str()).or_default();
            let Some(h) = &s.health else { continue };
            let check = shared_check(h);
            // Draining destinations are on their way out: not probed.
            list.extend(
                s.destinations
                    .iter()
                    .filter(|d| d.state != RealServerState::Draining)
                    .filter_map(|d| {
                        probe_key(d, h, &check).map(|k| (SocketAddr::new(d.addr, d.port), k))
                    }),
            );
        }
        let gone: Vec<String> = match names {
            Some(n) => n
                .iter()
                .filter(|n| !per_owner.contains_key(n.as_str()))
                .cloned()
                .collect(),
            None => t
                .owners()
                .into_iter()
                .filter(|o| !per_owner.contains_key(o.as_str()))
                .collect(),
        };
        for o in gone {
            t.remove_owner(&o);
        }
        let mut added = false;
        for (owner, list) in per_owner {
            added |= t.set_owner(owner, list, now);
        }
        if added && let Some(c) = checks {
            c.wake();
        }
    }
    drop(table);
    steer_all(checks, plan, states);
}

/// Steers each service of `plan` by the states `checks` holds for its
/// destinations (registering nothing; see [`step`]).
pub fn steer_all(
    checks: Option<&Checks>,
    plan: &mut NodePlan,
    states: &mut BTreeMap<String, DestinationStates>,
) {
    let table = checks.map(|c| c.lock());
    for s in &mut plan.services {
        let st = states.entry(s.owner.clone()).or_default();
        let check = s.health.as_ref().map(|h| (h.clone(), shared_check(h)));
        let lookup = |d: &PlannedDestination| -> Option<Failing> {
            let (h, c) = check.as_ref()?;
            let key = probe_key(d, h, c)?;
            let dmp = table.as_ref()?.damping(&key)?;
            (!dmp.healthy).then(|| Failing {
                since: dmp.since,
                last_error: dmp.last_error.clone(),
            })
        };
        steer_service(s, lookup, st);
    }
}

/// Steers one service by the health of its destinations (`failing`: the
/// state of a destination, `None` when healthy or unchecked):
/// - a failing destination gets weight 0 (`Inhibit`) or is left out
///   (`Remove`), and is noted as failing;
/// - when the weight of the destinations still taking new connections is
///   below `quorum` and a sorry server is set, the sorry server is added as
///   the only destination with weight and every other one gets weight 0
///   (`Inhibit`, and services without a check) or is left out (`Remove`).
///   When enough recover, the sorry server is simply left out of the plan
///   again (its connections end as any removed destination's do).
///
/// Draining destinations (put back by the drain step, weight 0) are left
/// as they are: never probed, never counted, and kept beside the sorry
/// server so their connections go on.
///
/// Without a sorry server, falling below quorum changes nothing but a
/// debug log line.
pub fn steer_service(
    s: &mut PlannedService,
    failing: impl Fn(&PlannedDestination) -> Option<Failing>,
    states: &mut DestinationStates,
) {
    let action = s.health.as_ref().map(|h| h.on_failure);
    // In place: a full sync steers every planned service, and a new vector
    // per service would be as many short-lived allocations as services.
    s.destinations.retain_mut(|d| {
        if d.state == RealServerState::Draining {
            return true;
        }
        let Some(f) = failing(d) else {
            return true;
        };
        states.note(d, DestinationState::Failing, f.last_error);
        if let Some(e) = states.entries.last_mut() {
            e.since = Some(rfc3339(f.since));
        }
        match action {
            Some(HealthAction::Remove) => false,
            _ => {
                d.weight = 0;
                true
            }
        }
    });
    let healthy_weight: u64 = s.destinations.iter().map(|d| u64::from(d.weight)).sum();
    if healthy_weight >= u64::from(s.quorum) {
        return;
    }
    let Some(sorry) = s.sorry_server.as_deref().cloned() else {
        tracing::debug!(
            service = %s.owner,
            healthy_weight,
            quorum = s.quorum,
            "below quorum and no sorry server"
        );
        return;
    };
    // Draining destinations stay beside the sorry server (weight 0): their
    // connections go on until the drain ends.
    match action {
        Some(HealthAction::Remove) => s
            .destinations
            .retain(|d| d.state == RealServerState::Draining),
        _ => s.destinations.iter_mut().for_each(|d| d.weight = 0),
    }
    s.destinations
        .retain(|d| (d.addr, d.port) != (sorry.addr, sorry.port));
    let at = s
        .destinations
        .partition_point(|d| (d.addr, d.port) < (sorry.addr, sorry.port));
    states.note(&sorry, DestinationState::Sorry, String::new());
    s.destinations.insert(at, sorry);
}

fn rfc3339(unix_seconds: u64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(unix_seconds as i64)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;

//! A periodic resync's check, in steps.
//!
//! After a sync that ended without a problem, with nothing pending since,
//! the plan is the one the kernel was made to match: only the kernel can
//! have changed. The check reads it and compares the read with the cached
//! view instead of planning and diffing everything again. It reads in
//! steps ([`Reconciler::check_step`]): the destinations of the viewed
//! services a few at a time, then the service list, then everything besides
//! IPVS, so that changes arriving meanwhile are synced between the steps
//! instead of waiting for the whole table to be read. Each step compares
//! what it reads with the view as it is then: a sync between two steps
//! changes the kernel and the view alike.
//!
//! A service a sync wrote while the check runs is not compared again: the
//! sync made the kernel and the view agree about it (a change someone else
//! made to it just before is found by the next resync).
//!
//! The live counters are read the same way ([`Reconciler::live_begin`]):
//! the owned services' destinations in steps, then the service list,
//! comparing nothing, so that a change never waits behind a read of a large
//! table either.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use lvs_ipvs::{DestEntry, ServiceEntry, ServiceKey};

use super::{Known, Phases, Reconciler, read_rest};
use crate::dataplane::{Dataplane, DataplaneError};

/// A check in progress (see [`Reconciler::check_begin`]).
#[derive(Debug)]
pub struct Check {
    /// The viewed services as the check began, in order.
    keys: Vec<ServiceKey>,
    /// The next of `keys` to read.
    next: usize,
    /// What each read service's destinations are, with their counters.
    dests: Vec<(ServiceKey, Vec<DestEntry>)>,
    stage: Stage,
    /// The service list with counters (the `Services` stage on).
    services: Vec<ServiceEntry>,
    /// Services a sync wrote since the check began.
    touched: BTreeSet<ServiceKey>,
    /// Time spent reading and comparing so far.
    busy: Duration,
    steps: u32,
    /// A read of the live counters: the owned services only, nothing
    /// compared, nothing besides IPVS read.
    live_only: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Dests,
    Services,
    Rest,
}

/// What a step found.
#[derive(Debug)]
pub enum CheckStep {
    /// Not done yet: step again.
    More,
    /// The kernel holds what the view says. Every service with its
    /// counters and destinations, as a full read gives them.
    Same(Vec<ServiceEntry>),
    /// Something differs, or a read failed: the ordinary full sync is due.
    Differs,
}

impl Check {
    /// A read of the live counters, not a resync's check.
    pub fn live_only(&self) -> bool {
        self.live_only
    }

    /// Time spent reading (and comparing) so far.
    pub fn busy(&self) -> Duration {
        self.busy
    }

    /// Services a sync wrote while the check runs: not compared again.
    pub fn touch<'a>(&mut self, services: impl IntoIterator<Item = &'a ServiceKey>) {
        self.touched.extend(services);
    }
}

impl<D: Dataplane> Reconciler<D> {
    /// Starts a check of the cached view; nothing is read yet. `None`
    /// without a view to compare with (or one read just now, which the
    /// next sync uses): the ordinary full sync is due.
    pub fn check_begin(&mut self) -> Option<Check> {
        let cached = self.known.as_ref()?;
        if self.fresh {
            return None;
        }
        Some(Check {
            keys: cached.ipvs.keys().copied().collect(),
            next: 0,
            dests: Vec::with_capacity(cached.ipvs.len()),
            stage: Stage::Dests,
            services: Vec::new(),
            touched: BTreeSet::new(),
            busy: Duration::ZERO,
            steps: 0,
            live_only: false,
        })
    }

    /// Starts a read of the live counters of the owned services, in steps
    /// like a check but comparing nothing; `Same` carries the owned
    /// services with their counters (`Differs`: a read failed). `None`
    /// while the agent owns no service.
    pub fn live_begin(&self) -> Option<Check> {
        if self.ledger.services.is_empty() {
            return None;
        }
        Some(Check {
            keys: self.ledger.services.keys().copied().collect(),
            next: 0,
            dests: Vec::with_capacity(self.ledger.services.len()),
            stage: Stage::Dests,
            services: Vec::new(),
            touched: BTreeSet::new(),
            busy: Duration::ZERO,
            steps: 0,
            live_only: true,
        })
    }

    /// The check's next step: the destinations of the next services for
    /// about `budget`, or the service list (one dump), or everything besides
    /// IPVS.
    pub fn check_step(&mut self, c: &mut Check, budget: Duration) -> CheckStep {
        let started = Instant::now();
        c.steps += 1;
        let step = match c.stage {
            Stage::Dests => self.check_dests(c, budget, started),
            Stage::Services => self.check_services(c),
            Stage::Rest => self.check_rest(c),
        };
        c.busy += started.elapsed();
        if let CheckStep::Same(entries) = &step
            && !c.live_only
        {
            tracing::info!(
                services = entries.len(),
                written_meanwhile = c.touched.len(),
                steps = c.steps,
                busy_ms = c.busy.as_millis() as u64,
                "resync check: the kernel is as the last sync left it"
            );
        }
        step
    }

    fn check_dests(&mut self, c: &mut Check, budget: Duration, started: Instant) -> CheckStep {
        let view = self.known.as_ref();
        if view.is_none() && !c.live_only {
            return differs("no cached view");
        }
        let mut read = 0usize;
        while c.next < c.keys.len() {
            let key = c.keys[c.next];
            c.next += 1;
            let touched = c.touched.contains(&key);
            let dests = match self.dp.ipvs_dests(&key) {
                Ok(d) => d,
                // Deleted by a sync since the check began (a live read
                // leaves out what it cannot read).
                Err(_)
                    if c.live_only
                        || touched
                        || view.is_some_and(|v| !v.ipvs.contains_key(&key)) =>
                {
                    continue;
                }
                Err(e) => return differs(format_args!("reading the destinations of {key}: {e}")),
            };
            if let Some(view) = view.filter(|_| !touched && !c.live_only) {
                let Some(s) = view.ipvs.get(&key) else {
                    return differs(format_args!("service {key} is gone from the view"));
                };
                let same = dests.len() == s.dests.len()
                    && dests
                        .iter()
                        .all(|d| s.dests.get(&d.destination.key) == Some(&d.destination.config));
                if !same {
                    return differs(format_args!("the destinations of {key}"));
                }
            }
            c.dests.push((key, dests));
            read += 1;
            if read.is_multiple_of(16) && started.elapsed() >= budget {
                break;
            }
        }
        if c.next == c.keys.len() {
            c.stage = Stage::Services;
        }
        CheckStep::More
    }

    fn check_services(&mut self, c: &mut Check) -> CheckStep {
        if c.live_only {
            let Ok(mut services) = self.dp.ipvs_services() else {
                return CheckStep::Differs;
            };
            services.retain(|e| self.ledger.services.contains_key(&e.service.key));
            with_dests(&mut services, std::mem::take(&mut c.dests));
            return CheckStep::Same(services);
        }
        let Some(view) = self.known.as_ref() else {
            return differs("no cached view");
        };
        let (available, services) = match self.dp.ipvs_services() {
            Ok(s) => (true, s),
            Err(DataplaneError::IpvsUnavailable { .. }) => (false, Vec::new()),
            Err(e) => return differs(format_args!("reading the IPVS services: {e}")),
        };
        let same = available == view.ipvs_available
            && services.len() == view.ipvs.len()
            && services.iter().all(|e| {
                view.ipvs
                    .get(&e.service.key)
                    .is_some_and(|s| s.config == e.service.config)
            });
        if !same {
            return differs(format_args!(
                "the IPVS services ({} in the kernel, {} in the view)",
                services.len(),
                view.ipvs.len()
            ));
        }
        c.services = services;
        c.stage = Stage::Rest;
        CheckStep::More
    }

    fn check_rest(&mut self, c: &mut Check) -> CheckStep {
        let Some(view) = self.known.as_ref() else {
            return differs("no cached view");
        };
        let mut rest: Known =
            match read_rest(&mut self.dp, view.ipvs_available, &mut Phases::start()) {
                Ok(r) => r,
                Err(e) => return differs(format_args!("reading the node's state: {e}")),
            };
        for (key, value) in &view.sysctls {
            match self.dp.read_sysctl(key) {
                Ok(v) if v.trim() == value => {
                    rest.sysctls.insert(key.clone(), value.clone());
                }
                _ => return differs(format_args!("sysctl {key}")),
            }
        }
        if rest.addresses != view.addresses {
            let first = rest
                .addresses
                .iter()
                .find(|(k, a)| view.addresses.get(*k) != Some(*a))
                .map(|(k, _)| format!("{k} in the kernel"))
                .or_else(|| {
                    view.addresses
                        .keys()
                        .find(|k| !rest.addresses.contains_key(*k))
                        .map(|k| format!("{k} in the view"))
                })
                .unwrap_or_default();
            return differs(format_args!("the addresses, first {first}"));
        }
        // Links come and go on a node (a pod's veth, a capture device):
        // those that hold no address of the view and no tunnel of the
        // agent's change nothing a sync would do.
        let relevant: BTreeSet<&str> = view
            .addresses
            .keys()
            .map(|k| k.interface.as_str())
            .chain(self.ledger.tunnels.keys().map(String::as_str))
            .collect();
        let links_of = |k: &Known| -> Vec<super::Link> {
            k.links
                .iter()
                .filter(|(name, _)| relevant.contains(name.as_str()))
                .map(|(_, l)| l.clone())
                .collect()
        };
        for (what, same) in [
            ("the links", links_of(&rest) == links_of(view)),
            ("the fou ports", rest.fou == view.fou),
            ("the sysctls", rest.sysctls == view.sysctls),
            ("the sync daemons", rest.daemons == view.daemons),
            ("the NAT table", rest.nft == view.nft),
        ] {
            if !same {
                return differs(what);
            }
        }
        let mut services = std::mem::take(&mut c.services);
        with_dests(&mut services, std::mem::take(&mut c.dests));
        CheckStep::Same(services)
    }
}

/// Gives each listed service the destinations read for it (none for one a
/// sync added meanwhile); `dests` is in key order, `services` is sorted.
fn with_dests(services: &mut [ServiceEntry], dests: Vec<(ServiceKey, Vec<DestEntry>)>) {
    services.sort_unstable_by_key(|e| e.service.key);
    let mut read = dests.into_iter().peekable();
    for e in services {
        while read.next_if(|(k, _)| *k < e.service.key).is_some() {}
        if let Some((_, d)) = read.next_if(|(k, _)| *k == e.service.key) {
            e.destinations = d;
        }
    }
}

/// The check found `what` not as the last sync left it: logged, and the
/// ordinary full sync follows (it repairs and reports real drift).
fn differs(what: impl std::fmt::Display) -> CheckStep {
    tracing::info!(%what, "resync check: the kernel differs from the cached view; a full sync follows");
    CheckStep::Differs
}

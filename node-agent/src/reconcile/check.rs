//! A periodic resync's check, in steps.
//!
//! After a sync that ended without a problem, with nothing pending since,
//! the plan is the one the kernel was made to match: only the kernel can
//! have changed. The check reads it and compares the read with the cached
//! view instead of planning and diffing everything again. It reads the
//! service list and everything besides IPVS at once, then the destinations
//! a few services at a time ([`Reconciler::check_step`]), so that changes
//! arriving meanwhile are synced between the steps instead of waiting for
//! the whole table to be read.
//!
//! A service a sync writes while the check runs is not compared: the sync
//! made the kernel and the view agree about it (a change someone else made
//! to it just before is found by the next resync).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use lvs_ipvs::{ServiceEntry, ServiceKey};

use super::{Known, Phases, Reconciler, read_rest};
use crate::dataplane::{Dataplane, DataplaneError};

/// A check in progress (see [`Reconciler::check_begin`]).
#[derive(Debug)]
pub struct Check {
    /// The services the kernel listed, with their counters; their
    /// destinations are filled in as the steps read them.
    services: Vec<ServiceEntry>,
    /// The next service to read.
    next: usize,
    /// Services a sync wrote since the check began.
    touched: BTreeSet<ServiceKey>,
    /// Time spent reading and comparing so far.
    busy: Duration,
    steps: u32,
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
    /// Services a sync wrote while the check runs: not compared.
    pub fn touch<'a>(&mut self, services: impl IntoIterator<Item = &'a ServiceKey>) {
        self.touched.extend(services);
    }
}

impl<D: Dataplane> Reconciler<D> {
    /// Starts a check: reads the IPVS service list (one dump) and
    /// everything else the view holds (addresses, links, fou ports, sync
    /// daemons, the NAT table and the sysctls read so far) and compares it
    /// with the view. `None` when there is no view to compare with, a read
    /// failed or something differs: the ordinary full sync is due.
    pub fn check_begin(&mut self) -> Option<Check> {
        let started = Instant::now();
        let cached = self.known.as_ref()?;
        if self.fresh {
            return None;
        }
        let (ipvs_available, services) = match self.dp.ipvs_services() {
            Ok(s) => (true, s),
            Err(DataplaneError::IpvsUnavailable { .. }) => (false, Vec::new()),
            Err(_) => return None,
        };
        if ipvs_available != cached.ipvs_available || services.len() != cached.ipvs.len() {
            return None;
        }
        let listed_as_viewed = services.iter().all(|e| {
            cached
                .ipvs
                .get(&e.service.key)
                .is_some_and(|s| s.config == e.service.config)
        });
        if !listed_as_viewed {
            return None;
        }
        let mut rest: Known = read_rest(&mut self.dp, ipvs_available, &mut Phases::start()).ok()?;
        for (key, value) in &cached.sysctls {
            match self.dp.read_sysctl(key) {
                Ok(v) if v.trim() == value => {
                    rest.sysctls.insert(key.clone(), value.clone());
                }
                _ => return None,
            }
        }
        let same = rest.addresses == cached.addresses
            && rest.links == cached.links
            && rest.fou == cached.fou
            && rest.sysctls == cached.sysctls
            && rest.daemons == cached.daemons
            && rest.nft == cached.nft;
        same.then(|| Check {
            services,
            next: 0,
            touched: BTreeSet::new(),
            busy: started.elapsed(),
            steps: 1,
        })
    }

    /// Reads and compares the destinations of the next services, for about
    /// `budget`.
    pub fn check_step(&mut self, c: &mut Check, budget: Duration) -> CheckStep {
        let started = Instant::now();
        let Some(cached) = self.known.as_ref() else {
            return CheckStep::Differs;
        };
        c.steps += 1;
        let mut read = 0usize;
        while c.next < c.services.len() {
            let i = c.next;
            c.next += 1;
            let key = c.services[i].service.key;
            let touched = c.touched.contains(&key);
            let dests = match self.dp.ipvs_dests(&key) {
                Ok(d) => d,
                // Deleted by a sync since the listing.
                Err(_) if touched => continue,
                Err(_) => return CheckStep::Differs,
            };
            if !touched {
                let Some(view) = cached.ipvs.get(&key) else {
                    return CheckStep::Differs;
                };
                let same = dests.len() == view.dests.len()
                    && dests
                        .iter()
                        .all(|d| view.dests.get(&d.destination.key) == Some(&d.destination.config));
                if !same {
                    return CheckStep::Differs;
                }
            }
            c.services[i].destinations = dests;
            read += 1;
            if read.is_multiple_of(16) && started.elapsed() >= budget {
                break;
            }
        }
        c.busy += started.elapsed();
        if c.next < c.services.len() {
            return CheckStep::More;
        }
        tracing::info!(
            services = c.services.len(),
            written_meanwhile = c.touched.len(),
            steps = c.steps,
            busy_ms = c.busy.as_millis() as u64,
            "resync check: the kernel is as the last sync left it"
        );
        CheckStep::Same(std::mem::take(&mut c.services))
    }
}

//! Realserver health as the directors report it (health checks, readiness
//! gating, drain, sorry server): the VirtualService's Degraded condition
//! and counts, and each RealServer's health per VirtualService.
//!
//! A director reports, per service, how many of its destinations are
//! healthy of how many, and an entry for each that is not (the list is
//! capped in the LvsNode; the counts are exact).

use std::collections::{BTreeMap, BTreeSet};

use lvs_api::{DestinationReport, DestinationState, RealServerHealth};

use super::*;

/// Condition reasons of Degraded.
pub mod degraded_reasons {
    pub const HEALTHY: &str = "Healthy";
    pub const UNHEALTHY: &str = "RealServersUnhealthy";
    pub const SORRY_SERVER: &str = "SorryServerActive";
    pub const NOT_REPORTED: &str = "NotReported";
}

/// One director's view of one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectorHealth {
    pub node: String,
    pub healthy: u32,
    pub total: u32,
    /// How many listed entries are in each state other than Healthy.
    pub states: BTreeMap<DestinationState, u32>,
}

/// The directors' reports about one service, summed up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceHealth {
    /// The directors reporting destination counts, by name.
    pub directors: Vec<DirectorHealth>,
    /// Directors programming the sorry server.
    pub sorry_active: Vec<String>,
    /// Destinations draining on some director (each once).
    pub draining: u32,
    /// Their connections left (per destination the most any director reports).
    pub draining_connections: u32,
}

impl ServiceHealth {
    /// The director seeing the fewest healthy: (healthy, total).
    pub fn worst(&self) -> Option<(u32, u32)> {
        self.directors
            .iter()
            .min_by_key(|d| (d.healthy, std::cmp::Reverse(d.total)))
            .map(|d| (d.healthy, d.total))
    }
}

/// The health of `verdict`'s service as its directors report it (at any
/// generation: the checks run against what is programmed).
pub fn service_health(verdict: &Verdict, reports: &NodeReports) -> ServiceHealth {
    let mut out = ServiceHealth::default();
    let mut draining: BTreeMap<&str, u32> = BTreeMap::new();
    for d in &verdict.directors {
        let Some(r) = reports.get(d, &verdict.name) else {
            continue;
        };
        let (Some(healthy), Some(total)) = (r.healthy, r.total) else {
            continue;
        };
        let mut states: BTreeMap<DestinationState, u32> = BTreeMap::new();
        for e in &r.destinations {
            *states.entry(e.state).or_default() += 1;
            match e.state {
                DestinationState::Draining => {
                    let c = draining.entry(e.destination.as_str()).or_default();
                    *c = (*c).max(e.connections.unwrap_or(0));
                }
                DestinationState::Sorry if out.sorry_active.last() != Some(d) => {
                    out.sorry_active.push(d.clone());
                }
                _ => {}
            }
        }
        out.directors.push(DirectorHealth {
            node: d.clone(),
            healthy,
            total,
            states,
        });
    }
    out.draining = u32::try_from(draining.len()).unwrap_or(u32::MAX);
    out.draining_connections = draining.values().fold(0u32, |a, c| a.saturating_add(*c));
    out
}

fn plural(n: u32, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn state_counts(states: &BTreeMap<DestinationState, u32>) -> String {
    states
        .iter()
        .filter(|(s, _)| {
            matches!(
                s,
                DestinationState::Failing | DestinationState::Unready | DestinationState::Inactive
            )
        })
        .map(|(s, n)| format!("{n} {}", s.as_str().to_lowercase()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The Degraded condition: True while a director sees fewer healthy
/// realservers than it has (failing a check, or unready; inactive ones are
/// left out on purpose and do not count), or uses the sorry server, with
/// the counts; the draining ones are told either way.
pub fn degraded_update(verdict: &Verdict, h: &ServiceHealth) -> ConditionUpdate {
    use degraded_reasons as r;
    let t = types::DEGRADED;
    if verdict.state != ServiceState::Accepted {
        return update(t, false, reasons::NOT_ACCEPTED, String::new());
    }
    let drain = (h.draining > 0).then(|| {
        format!(
            "{} draining ({})",
            h.draining,
            plural(h.draining_connections, "connection", "connections")
        )
    });
    let Some(most) = h.directors.iter().map(|d| d.total).max() else {
        let mut msg = "no director reports realserver health yet".to_string();
        if let Some(d) = drain {
            msg.push_str(&format!("; {d}"));
        }
        return update(t, false, r::NOT_REPORTED, msg);
    };
    // Inactive realservers are out by the user's choice: not a degradation.
    let mut parts: Vec<String> = h
        .directors
        .iter()
        .filter(|d| d.healthy + d.states.get(&DestinationState::Inactive).unwrap_or(&0) < d.total)
        .map(|d| {
            let mut p = format!(
                "{}/{} realservers healthy on {}",
                d.healthy, d.total, d.node
            );
            let c = state_counts(&d.states);
            if !c.is_empty() {
                p.push_str(&format!(" ({c})"));
            }
            p
        })
        .collect();
    let unhealthy = !parts.is_empty();
    if !h.sorry_active.is_empty() {
        parts.push(format!(
            "sorry server active on {}",
            h.sorry_active.join(", ")
        ));
    }
    let reason = if !h.sorry_active.is_empty() {
        r::SORRY_SERVER
    } else if unhealthy {
        r::UNHEALTHY
    } else {
        r::HEALTHY
    };
    if parts.is_empty() {
        let inactive = h
            .directors
            .iter()
            .filter_map(|d| d.states.get(&DestinationState::Inactive).copied())
            .max()
            .unwrap_or(0);
        parts.push(if inactive == 0 {
            format!("all {} healthy", plural(most, "realserver", "realservers"))
        } else {
            format!(
                "all {} healthy ({inactive} inactive)",
                plural(
                    most.saturating_sub(inactive),
                    "active realserver",
                    "active realservers"
                )
            )
        });
    }
    parts.extend(drain);
    update(t, reason != r::HEALTHY, reason, parts.join("; "))
}

/// How bad a state is, for the worst of several directors' views.
fn rank(s: DestinationState) -> u8 {
    match s {
        DestinationState::Healthy | DestinationState::Sorry => 0,
        DestinationState::Inactive => 1,
        DestinationState::Draining => 2,
        DestinationState::Unready => 3,
        DestinationState::Failing => 4,
    }
}

/// How the directors of the VirtualServices selecting the RealServer `key`
/// see it: the summary word ("Healthy" or the worst state; `None` when no
/// director reports) and, per VirtualService where it is not healthy, the
/// worst state with where, since when and why.
pub fn rs_health<'a>(
    key: &str,
    selecting: impl IntoIterator<Item = &'a Verdict>,
    reports: &NodeReports,
) -> (Option<String>, Vec<RealServerHealth>) {
    let mut reported = false;
    let mut out: Vec<RealServerHealth> = Vec::new();
    let mut seen = BTreeSet::new();
    for v in selecting {
        if !seen.insert(v.name.as_str()) {
            continue;
        }
        let mut worst: Option<RealServerHealth> = None;
        for d in &v.directors {
            let Some(r) = reports.get(d, &v.name) else {
                continue;
            };
            if r.total.is_none() {
                continue;
            }
            reported = true;
            let Some(e) = r.destinations.iter().find(|e| e.real_server == key) else {
                continue;
            };
            merge(&mut worst, &v.name, d, e);
        }
        out.extend(worst);
    }
    out.sort_by(|a, b| a.virtual_service.cmp(&b.virtual_service));
    let summary = out
        .iter()
        .max_by_key(|h| rank(h.state))
        .map_or("Healthy", |h| h.state.as_str());
    (reported.then(|| summary.to_string()), out)
}

fn merge(
    worst: &mut Option<RealServerHealth>,
    service: &str,
    director: &str,
    e: &DestinationReport,
) {
    if rank(e.state) == 0 {
        return;
    }
    match worst {
        Some(w) if rank(w.state) > rank(e.state) => {}
        Some(w) if w.state == e.state => {
            w.directors.push(director.to_string());
            w.since = match (w.since.take(), e.since.clone()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            w.connections = match (w.connections, e.connections) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
        }
        _ => {
            *worst = Some(RealServerHealth {
                virtual_service: service.to_string(),
                state: e.state,
                directors: vec![director.to_string()],
                since: e.since.clone(),
                message: e.last_error.clone(),
                connections: e.connections,
            })
        }
    }
}

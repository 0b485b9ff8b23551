//! The Events a change of status deserves: pure functions of the old and
//! the new conditions (and director roles).

use super::*;
use lvs_api::RealServerHealth;

/// An Event to publish about the object whose status changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSpec {
    pub warning: bool,
    /// CamelCase reason, shown by `kubectl describe`.
    pub reason: &'static str,
    pub note: String,
    /// The Node the Event is also about (its `related` object). Events of
    /// one reason on one object are counted as a series that keeps the first
    /// note; naming the node keeps each node's Events apart.
    pub node: Option<String>,
}

fn find<'a>(conds: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conds.iter().find(|c| c.type_ == type_)
}

fn is_true(conds: &[Condition], type_: &str) -> bool {
    find(conds, type_).is_some_and(|c| c.status == "True")
}

/// Accepted, Invalid or Conflict, as the conditions tell; `None` before the
/// first status.
fn admission_state(conds: &[Condition]) -> Option<&'static str> {
    if conds.is_empty() {
        None
    } else if is_true(conds, types::INVALID) {
        Some(reasons::INVALID)
    } else if is_true(conds, types::CONFLICT) {
        Some(reasons::CONFLICT)
    } else {
        Some("Accepted")
    }
}

fn message(conds: &[Condition], type_: &str) -> String {
    find(conds, type_)
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

/// The Events a VirtualService status change deserves: a change between
/// Accepted, Invalid and Conflict; Ready or Programmed turning True; Ready
/// turning False while accepted, or being False when the service becomes
/// accepted; programming failing. Nothing when no condition flipped.
pub fn vs_events(old: &[Condition], new: &[Condition]) -> Vec<EventSpec> {
    let mut out = Vec::new();
    let state = admission_state(new);
    if state != admission_state(old) {
        match state {
            Some(reasons::INVALID) => out.push(EventSpec {
                warning: true,
                reason: reasons::INVALID,
                note: message(new, types::INVALID),
                node: None,
            }),
            Some(reasons::CONFLICT) => out.push(EventSpec {
                warning: true,
                reason: reasons::CONFLICT,
                note: message(new, types::CONFLICT),
                node: None,
            }),
            Some(_) => out.push(EventSpec {
                warning: false,
                reason: "Accepted",
                note: "the service is valid and owns its address".into(),
                node: None,
            }),
            None => {}
        }
    }
    if state == Some("Accepted") {
        let (was, now) = (is_true(old, types::READY), is_true(new, types::READY));
        if now && !was {
            out.push(EventSpec {
                warning: false,
                reason: "Ready",
                note: message(new, types::READY),
                node: None,
            });
        } else if !now && (was || state != admission_state(old)) {
            out.push(EventSpec {
                warning: true,
                reason: "NotReady",
                note: message(new, types::READY),
                node: None,
            });
        }
    }
    let programmed = find(new, types::PROGRAMMED);
    let old_programmed = find(old, types::PROGRAMMED);
    if let Some(p) = programmed {
        let flipped = old_programmed.is_none_or(|o| o.status != p.status);
        if p.status == "True" && flipped {
            out.push(EventSpec {
                warning: false,
                reason: "Programmed",
                note: p.message.clone(),
                node: None,
            });
        }
        let newly_failed = p.reason == reasons::FAILED
            && old_programmed.is_none_or(|o| o.reason != reasons::FAILED);
        if newly_failed {
            out.push(EventSpec {
                warning: true,
                reason: "ProgrammingFailed",
                note: p.message.clone(),
                node: None,
            });
        }
    }
    out
}

/// The Events of one status change as one Event: each is a write to the
/// API server, and a new VirtualService would otherwise cost two or three
/// (Accepted, then Ready or NotReady, then perhaps Programmed) besides its
/// status. The one Event is a Warning if any was; its reason is the first
/// warning's, else the last reason (the furthest state reached); its note
/// names every reason with its note, in order. Events about a node (a
/// `related` Node) stay apart. Nothing for nothing, the Event itself for
/// one.
pub fn folded(events: Vec<EventSpec>) -> Vec<EventSpec> {
    let (about_nodes, mut own): (Vec<EventSpec>, Vec<EventSpec>) =
        events.into_iter().partition(|e| e.node.is_some());
    if own.len() > 1 {
        let warning = own.iter().any(|e| e.warning);
        let reason = own
            .iter()
            .find(|e| e.warning)
            .or(own.last())
            .map(|e| e.reason)
            .unwrap_or_default();
        let note = own
            .iter()
            .map(|e| format!("{}: {}", e.reason, e.note))
            .collect::<Vec<_>>()
            .join("; ");
        own = vec![EventSpec {
            warning,
            reason,
            note,
            node: None,
        }];
    }
    own.extend(about_nodes);
    own
}

/// The Events a change of director HA roles deserves, from the old and new
/// `directorRoles`: `DirectorTakeover` for each node that is now active and
/// was not, `DirectorReleased` for each node that was active and is not any
/// more (standby, or no longer reporting a role). Nothing when no node's
/// active role changed, so a rewrite of the same status adds no Event.
pub fn director_events(
    old: Option<&VirtualServiceStatus>,
    new: &VirtualServiceStatus,
    spec: &VirtualServiceSpec,
) -> Vec<EventSpec> {
    let empty = BTreeMap::new();
    let old_roles = old.map_or(&empty, |s| &s.director_roles);
    let active =
        |roles: &BTreeMap<String, String>, n: &str| roles.get(n).is_some_and(|r| r == ROLE_ACTIVE);
    let vip = spec.address.as_deref().unwrap_or("(none)");
    let was = old
        .and_then(|s| s.active_director.clone())
        .unwrap_or_else(|| "none".to_string());
    let mut out = Vec::new();
    for node in old_roles.keys() {
        if active(old_roles, node) && !active(&new.director_roles, node) {
            let now = new
                .director_roles
                .get(node)
                .map_or("no role reported", String::as_str);
            out.push(EventSpec {
                warning: false,
                reason: reasons::DIRECTOR_RELEASED,
                note: format!(
                    "node {node} is no longer the active director for VIP {vip} (now {now})"
                ),
                node: Some(node.clone()),
            });
        }
    }
    for node in new.director_roles.keys() {
        if active(&new.director_roles, node) && !active(old_roles, node) {
            out.push(EventSpec {
                warning: false,
                reason: reasons::DIRECTOR_TAKEOVER,
                note: format!("node {node} is now the active director for VIP {vip} (was {was})"),
                node: Some(node.clone()),
            });
        }
    }
    out
}

/// The Events a RealServer status change deserves: Ready turning True, or
/// turning False because of a problem (not merely because nothing selects it).
pub fn rs_events(old: &[Condition], new: &[Condition]) -> Vec<EventSpec> {
    let Some(ready) = find(new, types::READY) else {
        return Vec::new();
    };
    let old_ready = find(old, types::READY);
    let same = old_ready.is_some_and(|o| o.status == ready.status && o.reason == ready.reason);
    if same {
        return Vec::new();
    }
    match (ready.status.as_str(), ready.reason.as_str()) {
        ("True", _) if old_ready.is_none_or(|o| o.status != "True") => vec![EventSpec {
            warning: false,
            reason: "Ready",
            note: ready.message.clone(),
            node: None,
        }],
        ("False", reasons::UNUSABLE) => vec![EventSpec {
            warning: true,
            reason: "RealServerProblem",
            note: ready.message.clone(),
            node: None,
        }],
        ("False", reasons::INVALID) => vec![EventSpec {
            warning: true,
            reason: reasons::INVALID,
            note: ready.message.clone(),
            node: None,
        }],
        _ => Vec::new(),
    }
}

/// Event reasons of realserver health.
pub mod health_reasons {
    /// VirtualService: Degraded turned True.
    pub const DEGRADED: &str = "Degraded";
    /// VirtualService: Degraded turned False again.
    pub const RECOVERED: &str = "Recovered";
    pub const SORRY_SERVER_ACTIVE: &str = "SorryServerActive";
    pub const SORRY_SERVER_RELEASED: &str = "SorryServerReleased";
    pub const DRAIN_STARTED: &str = "DrainStarted";
    pub const DRAIN_FINISHED: &str = "DrainFinished";
    /// RealServer: a VirtualService's directors stopped taking it as healthy.
    pub const UNHEALTHY: &str = "Unhealthy";
    /// RealServer: healthy again for a VirtualService.
    pub const HEALTHY: &str = "Healthy";
}

/// The Events a change of a VirtualService's realserver health deserves:
/// Degraded turning True (`Degraded`) or back to False (`Recovered`); a
/// director starting or stopping to use the sorry server; more destinations
/// draining than before (`DrainStarted`) or fewer (`DrainFinished`).
pub fn vs_health_events(
    old: Option<&VirtualServiceStatus>,
    new: &VirtualServiceStatus,
) -> Vec<EventSpec> {
    use health_reasons as r;
    let mut out = Vec::new();
    let old_conds = old.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let (was, now) = (
        is_true(old_conds, types::DEGRADED),
        is_true(&new.conditions, types::DEGRADED),
    );
    if now && !was {
        out.push(EventSpec {
            warning: true,
            reason: r::DEGRADED,
            note: message(&new.conditions, types::DEGRADED),
            node: None,
        });
    } else if was && !now {
        out.push(EventSpec {
            warning: false,
            reason: r::RECOVERED,
            note: message(&new.conditions, types::DEGRADED),
            node: None,
        });
    }
    let empty = Vec::new();
    let old_sorry = old.map_or(&empty, |s| &s.sorry_server_active);
    for n in new
        .sorry_server_active
        .iter()
        .filter(|n| !old_sorry.contains(n))
    {
        out.push(EventSpec {
            warning: true,
            reason: r::SORRY_SERVER_ACTIVE,
            note: format!("director {n} sends new connections to the sorry server: too few realservers healthy"),
            node: Some(n.clone()),
        });
    }
    for n in old_sorry
        .iter()
        .filter(|n| !new.sorry_server_active.contains(n))
    {
        out.push(EventSpec {
            warning: false,
            reason: r::SORRY_SERVER_RELEASED,
            note: format!("director {n} no longer uses the sorry server"),
            node: Some(n.clone()),
        });
    }
    let draining = |s: Option<&VirtualServiceStatus>| {
        s.and_then(|s| s.real_servers.as_ref()).map_or((0, 0), |c| {
            (c.draining.unwrap_or(0), c.draining_connections.unwrap_or(0))
        })
    };
    let ((before, _), (after, conns)) = (draining(old), draining(Some(new)));
    if after > before {
        out.push(EventSpec {
            warning: false,
            reason: r::DRAIN_STARTED,
            note: format!("{after} realserver destination(s) draining, {conns} connection(s) left"),
            node: None,
        });
    } else if after < before {
        out.push(EventSpec {
            warning: false,
            reason: r::DRAIN_FINISHED,
            note: if after == 0 {
                format!("{before} draining destination(s) removed: connections ended or the deadline passed")
            } else {
                format!("{} draining destination(s) removed; {after} still draining ({conns} connection(s) left)", before - after)
            },
            node: None,
        });
    }
    out
}

/// The Events a change of a RealServer's health deserves, per VirtualService:
/// `Unhealthy` when its directors stop taking it as healthy (failing a
/// check, or unready), `Healthy` when that ends, `DrainStarted` and
/// `DrainFinished` around a drain.
pub fn rs_health_events(old: &[RealServerHealth], new: &[RealServerHealth]) -> Vec<EventSpec> {
    use health_reasons as r;
    let bad = |s: lvs_api::DestinationState| {
        matches!(
            s,
            lvs_api::DestinationState::Failing | lvs_api::DestinationState::Unready
        )
    };
    let state_of = |list: &[RealServerHealth], vs: &str| {
        list.iter()
            .find(|h| h.virtual_service == vs)
            .map(|h| h.state)
    };
    let mut names: Vec<&str> = old
        .iter()
        .chain(new)
        .map(|h| h.virtual_service.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    let mut out = Vec::new();
    for vs in names {
        let (before, after) = (state_of(old, vs), state_of(new, vs));
        if before == after {
            continue;
        }
        let h = new.iter().find(|h| h.virtual_service == vs);
        let draining = Some(lvs_api::DestinationState::Draining);
        if after.is_some_and(bad) && !before.is_some_and(bad) {
            let h = h.expect("a new state has an entry");
            out.push(EventSpec {
                warning: true,
                reason: r::UNHEALTHY,
                note: format!(
                    "{} for {vs} on {}: {}",
                    h.state.as_str(),
                    h.directors.join(", "),
                    if h.message.is_empty() {
                        "no reason given"
                    } else {
                        &h.message
                    }
                ),
                node: None,
            });
        } else if before.is_some_and(bad) && !after.is_some_and(bad) {
            out.push(EventSpec {
                warning: false,
                reason: r::HEALTHY,
                note: format!("healthy again for {vs}"),
                node: None,
            });
        }
        if after == draining && before != draining {
            out.push(EventSpec {
                warning: false,
                reason: r::DRAIN_STARTED,
                note: format!(
                    "draining from {vs}: {} connection(s) left",
                    h.and_then(|h| h.connections).unwrap_or(0)
                ),
                node: None,
            });
        } else if before == draining && after != draining {
            out.push(EventSpec {
                warning: false,
                reason: r::DRAIN_FINISHED,
                note: format!("drain from {vs} finished"),
                node: None,
            });
        }
    }
    out
}

/// Keeps Events from flooding the API server when thousands of
/// destinations change at once: an object gets at most one Event of a
/// reason per `gap`, and all objects together at most `burst` at once,
/// refilled at `per_second`. Suppressed Events are counted (the status and
/// the logs still tell everything).
#[derive(Debug)]
pub struct EventLimiter {
    gap: std::time::Duration,
    burst: f64,
    per_second: f64,
    tokens: f64,
    refilled: Option<std::time::Instant>,
    last: HashMap<(String, &'static str), std::time::Instant>,
    pub suppressed: u64,
}

impl Default for EventLimiter {
    fn default() -> Self {
        EventLimiter::new(std::time::Duration::from_secs(10), 50, 5.0)
    }
}

impl EventLimiter {
    pub fn new(gap: std::time::Duration, burst: u32, per_second: f64) -> Self {
        EventLimiter {
            gap,
            burst: f64::from(burst),
            per_second,
            tokens: f64::from(burst),
            refilled: None,
            last: HashMap::new(),
            suppressed: 0,
        }
    }

    /// Whether an Event of `reason` about `object` may go out at `now`.
    pub fn allow(&mut self, object: &str, reason: &'static str, now: std::time::Instant) -> bool {
        if let Some(t) = self.refilled {
            let add = now.saturating_duration_since(t).as_secs_f64() * self.per_second;
            self.tokens = (self.tokens + add).min(self.burst);
        }
        self.refilled = Some(self.refilled.map_or(now, |t| t.max(now)));
        let key = (object.to_string(), reason);
        let recent = self
            .last
            .get(&key)
            .is_some_and(|t| now.saturating_duration_since(*t) < self.gap);
        if recent || self.tokens < 1.0 {
            self.suppressed += 1;
            return false;
        }
        self.tokens -= 1.0;
        if self.last.len() >= 16 * 1024 {
            let gap = self.gap;
            self.last
                .retain(|_, t| now.saturating_duration_since(*t) < gap);
        }
        self.last.insert(key, now);
        true
    }
}

/// A `DriftRepaired` Event for each director whose last drift is new in
/// `new` (another time than in `old`, or none there): one per director and
/// resync, naming what was repaired. A rewrite of the same status, or an
/// operator restart, adds none.
pub fn drift_events(
    old: Option<&VirtualServiceStatus>,
    new: &VirtualServiceStatus,
) -> Vec<EventSpec> {
    let before = |node: &str| {
        old.and_then(|s| s.drift.iter().find(|d| d.node == node))
            .map(|d| d.time.as_str())
    };
    new.drift
        .iter()
        .filter(|d| before(&d.node) != Some(d.time.as_str()))
        .map(|d| {
            let more = (d.count as usize).saturating_sub(d.repaired.len());
            let tail = if more > 0 {
                format!(" (and {more} more)")
            } else {
                String::new()
            };
            EventSpec {
                warning: true,
                reason: reasons::DRIFT_REPAIRED,
                note: format!(
                    "node {}: {}{tail}; someone else had changed them",
                    d.node,
                    d.repaired.join("; ")
                ),
                node: Some(d.node.clone()),
            }
        })
        .collect()
}

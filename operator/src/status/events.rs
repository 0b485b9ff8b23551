//! The Events a change of status deserves: pure functions of the old and
//! the new conditions (and director roles).

use super::*;

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

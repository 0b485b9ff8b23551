//! Status conditions, computed purely so the writer can keep transition times.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition types of a VirtualService.
pub mod types {
    /// The service is valid, not in conflict, and has at least one ready realserver.
    pub const READY: &str = "Ready";
    /// Every director and realserver node has programmed the current generation.
    pub const PROGRAMMED: &str = "Programmed";
    /// Another VirtualService with the same address/port/protocol or fwmark is older.
    pub const CONFLICT: &str = "Conflict";
    /// The spec breaks a rule that admission could not check.
    pub const INVALID: &str = "Invalid";
    /// Some director sees fewer healthy realservers than the service
    /// selects (health checks, readiness gating), or uses the sorry server.
    pub const DEGRADED: &str = "Degraded";
    /// The address pools refuse the VIP or the director selector.
    pub const ADDRESS_NOT_ALLOWED: &str = "AddressNotAllowed";
    /// LvsAddressPool: shares addresses with another pool.
    pub const OVERLAPS: &str = "Overlaps";
}

/// A standard Kubernetes condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Ready, Programmed, Degraded, Conflict or Invalid.
    #[serde(rename = "type")]
    pub type_: String,
    /// "True", "False" or "Unknown".
    pub status: String,
    /// A CamelCase reason.
    pub reason: String,
    /// A human-readable explanation.
    #[serde(default)]
    pub message: String,
    /// When the status last changed (RFC 3339).
    pub last_transition_time: String,
    /// The generation this condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// A condition as computed, before transition times are settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionUpdate {
    pub type_: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

/// Merges freshly computed conditions into the previous ones: the transition
/// time is kept unless the status flips, so rewriting an unchanged status is
/// a no-op for watchers.
pub fn compute_conditions(
    old: &[Condition],
    new: &[ConditionUpdate],
    now: &str,
    generation: Option<i64>,
) -> Vec<Condition> {
    new.iter()
        .map(|u| {
            let status = if u.status { "True" } else { "False" };
            let since = old
                .iter()
                .find(|c| c.type_ == u.type_ && c.status == status)
                .map(|c| c.last_transition_time.clone())
                .unwrap_or_else(|| now.to_string());
            Condition {
                type_: u.type_.to_string(),
                status: status.to_string(),
                reason: u.reason.clone(),
                message: u.message.clone(),
                last_transition_time: since,
                observed_generation: generation,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upd(status: bool, reason: &str) -> ConditionUpdate {
        ConditionUpdate {
            type_: types::READY,
            status,
            reason: reason.into(),
            message: String::new(),
        }
    }

    #[test]
    fn transition_time_is_kept_while_status_holds_and_reset_when_it_flips() {
        let first = compute_conditions(&[], &[upd(true, "A")], "t1", Some(1));
        assert_eq!(first[0].last_transition_time, "t1");
        let same = compute_conditions(&first, &[upd(true, "B")], "t2", Some(2));
        assert_eq!(same[0].last_transition_time, "t1");
        assert_eq!(same[0].reason, "B");
        assert_eq!(same[0].observed_generation, Some(2));
        let flipped = compute_conditions(&same, &[upd(false, "C")], "t3", Some(2));
        assert_eq!(flipped[0].last_transition_time, "t3");
        assert_eq!(flipped[0].status, "False");
    }
}

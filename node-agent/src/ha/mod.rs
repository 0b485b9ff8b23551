//! Director high availability: one active director per VIP, elected with
//! Leases, the others standing by with the same IPVS services.

pub mod election;

use std::collections::BTreeMap;
use std::net::IpAddr;

use lvs_planner::{NodePlan, ServiceKey};

use crate::report::{ErrorKind, SyncError, SyncReport};
pub use election::Role;

/// How this node's director VIPs are assigned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum VipRoles {
    /// No HA: every planned VIP is held (the behaviour without `--ha`
    /// in Kubernetes mode).
    #[default]
    Off,
    /// Roles given per VIP (standalone `--ha-role`, or the election's
    /// current result). A VIP with two or more directors and no role is
    /// refused rather than announced by several nodes.
    Assigned(BTreeMap<IpAddr, Role>),
}

/// A VIP left unheld because several nodes direct it and this node has no
/// role for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub vip: IpAddr,
    pub directors: Vec<String>,
}

/// Keeps in `plan.vips` only the VIPs this node must hold: those it is
/// active for, and those it alone directs. The IPVS services stay in the
/// plan either way (a standby keeps them warm).
pub fn hold_only_active(plan: &mut NodePlan, roles: &VipRoles) -> Vec<Refused> {
    let VipRoles::Assigned(roles) = roles else {
        return Vec::new();
    };
    let mut refused = Vec::new();
    plan.vips.retain(|v| match roles.get(&v.addr) {
        Some(Role::Active) => true,
        Some(Role::Standby) => false,
        None if v.directors.len() >= 2 => {
            if refused.last().is_none_or(|r: &Refused| r.vip != v.addr) {
                refused.push(Refused {
                    vip: v.addr,
                    directors: v.directors.clone(),
                });
            }
            false
        }
        None => true,
    });
    refused
}

/// Reports each refused VIP as an error of every VirtualService at its
/// address, so it shows where per-service errors show.
pub fn report_refused(report: &mut SyncReport, plan: &NodePlan, refused: &[Refused]) {
    for r in refused {
        let msg = format!(
            "VIP {vip} has {n} directors ({dirs}) and this node has no HA role for it, so it does not hold it (holding it on several directors would announce it twice); give --ha-role {vip}=active on one director and --ha-role {vip}=standby on the others, or run with --ha in Kubernetes mode",
            vip = r.vip,
            n = r.directors.len(),
            dirs = r.directors.join(", "),
        );
        let mut owners: Vec<&str> = plan
            .services
            .iter()
            .filter(|s| matches!(s.key, ServiceKey::Tuple { addr, .. } if addr == r.vip))
            .map(|s| s.owner.as_str())
            .collect();
        owners.sort();
        owners.dedup();
        for owner in owners {
            report.errors.push(SyncError::new(
                ErrorKind::HaRoleMissing,
                Some(owner.to_string()),
                msg.clone(),
            ));
            let entry = report.services.entry(owner.to_string()).or_default();
            entry.programmed = false;
            entry.errors.push(msg.clone());
        }
    }
}

/// Parses `--ha-role VIP=active|standby`.
pub fn parse_role(s: &str) -> Result<(IpAddr, Role), String> {
    let (vip, role) = s
        .split_once('=')
        .ok_or_else(|| format!("--ha-role {s:?}: expected VIP=active or VIP=standby"))?;
    let vip: IpAddr = vip.trim().parse().map_err(|e| {
        format!("--ha-role {s:?}: {vip:?} is not an IP address ({e}); expected VIP=active or VIP=standby")
    })?;
    let role = match role.trim().to_ascii_lowercase().as_str() {
        "active" => Role::Active,
        "standby" => Role::Standby,
        other => {
            return Err(format!(
                "--ha-role {s:?}: role {other:?} is neither active nor standby"
            ));
        }
    };
    Ok((vip, role))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvs_planner::PlannedVip;

    fn vip(a: &str, directors: &[&str]) -> PlannedVip {
        PlannedVip {
            addr: a.parse().unwrap(),
            interface: None,
            directors: directors.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn only_active_and_sole_director_vips_are_held() {
        let mut plan = NodePlan {
            vips: vec![
                vip("10.0.0.1", &["a", "b"]),
                vip("10.0.0.2", &["a", "b"]),
                vip("10.0.0.3", &["a"]),
                vip("10.0.0.4", &["a", "b"]),
            ],
            ..Default::default()
        };
        let off = plan.clone();
        assert!(hold_only_active(&mut off.clone(), &VipRoles::Off).is_empty());
        let roles = VipRoles::Assigned(BTreeMap::from([
            ("10.0.0.1".parse().unwrap(), Role::Active),
            ("10.0.0.2".parse().unwrap(), Role::Standby),
        ]));
        let refused = hold_only_active(&mut plan, &roles);
        let held: Vec<String> = plan.vips.iter().map(|v| v.addr.to_string()).collect();
        assert_eq!(held, vec!["10.0.0.1", "10.0.0.3"]);
        assert_eq!(
            refused,
            vec![Refused {
                vip: "10.0.0.4".parse().unwrap(),
                directors: vec!["a".into(), "b".into()]
            }]
        );
        assert_eq!(off.vips.len(), 4);
    }

    #[test]
    fn a_refused_vip_fails_its_services_with_a_message_naming_the_fix() {
        let plan = NodePlan {
            services: vec![lvs_planner::PlannedService {
                key: ServiceKey::Tuple {
                    addr: "10.0.0.4".parse().unwrap(),
                    protocol: lvs_api::Protocol::Tcp,
                    port: 80,
                },
                scheduler: lvs_api::Scheduler::Rr,
                flags: vec![],
                persistence: None,
                destinations: vec![],
                owner: "ns/web".into(),
                generation: Some(3),
            }],
            ..Default::default()
        };
        let mut report = SyncReport::default();
        report_refused(
            &mut report,
            &plan,
            &[Refused {
                vip: "10.0.0.4".parse().unwrap(),
                directors: vec!["a".into(), "b".into()],
            }],
        );
        assert_eq!(report.errors.len(), 1);
        let e = &report.errors[0];
        assert_eq!(e.owner.as_deref(), Some("ns/web"));
        for part in ["10.0.0.4", "a, b", "--ha-role 10.0.0.4=active"] {
            assert!(e.message.contains(part), "{part} in {}", e.message);
        }
        assert!(!report.services["ns/web"].programmed);
    }

    #[test]
    fn ha_role_flags_parse() {
        assert_eq!(
            parse_role("10.0.0.1=active").unwrap(),
            ("10.0.0.1".parse().unwrap(), Role::Active)
        );
        assert_eq!(parse_role("fd00::1=Standby").unwrap().1, Role::Standby);
        assert!(
            parse_role("10.0.0.1")
                .unwrap_err()
                .contains("expected VIP=active")
        );
        assert!(
            parse_role("10.0.0.1=master")
                .unwrap_err()
                .contains("master")
        );
        assert!(parse_role("web=active").unwrap_err().contains("not an IP"));
    }
}

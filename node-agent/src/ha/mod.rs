//! Director high availability: one active director per VIP, elected with
//! Leases, the others standing by with the same IPVS services.

#[cfg(target_os = "linux")]
pub mod announce;
pub mod election;
#[cfg(target_os = "linux")]
pub mod leases;

use std::collections::BTreeMap;
use std::net::IpAddr;

use lvs_planner::{NodePlan, ServiceKey};

use crate::report::{ErrorKind, SyncError, SyncReport};
pub use election::Role;

/// How this node's director VIPs are assigned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum VipRoles {
    /// No HA settings: a VIP this node alone directs is held; one with two
    /// or more directors is refused rather than announced by several nodes.
    #[default]
    Off,
    /// Roles given (standalone `--ha-role`, `--ha-default-role`): per VIP,
    /// else the default. A VIP with two or more directors and no role is
    /// refused, as without HA.
    Assigned {
        roles: BTreeMap<IpAddr, Role>,
        default: Option<Role>,
    },
    /// Roles won in the Lease election (Kubernetes mode): a VIP without
    /// one is stood by for until the election gives it to this node.
    Elected(BTreeMap<IpAddr, Role>),
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
    let none = BTreeMap::new();
    let (roles, default) = match roles {
        VipRoles::Off => (&none, None),
        VipRoles::Elected(won) => {
            plan.vips
                .retain(|v| won.get(&v.addr) == Some(&Role::Active));
            return Vec::new();
        }
        VipRoles::Assigned { roles, default } => (roles, *default),
    };
    let mut refused = Vec::new();
    plan.vips
        .retain(|v| match roles.get(&v.addr).copied().or(default) {
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

/// This node's role for each VIP of `plan` (before [`hold_only_active`]):
/// the assigned role, Active where it is the only director; a refused VIP
/// has none. Empty without HA.
pub fn roles_in(plan: &NodePlan, roles: &VipRoles) -> BTreeMap<IpAddr, Role> {
    let assigned = match roles {
        VipRoles::Off => return BTreeMap::new(),
        VipRoles::Elected(won) => {
            return plan
                .vips
                .iter()
                .map(|v| (v.addr, won.get(&v.addr).copied().unwrap_or(Role::Standby)))
                .collect();
        }
        VipRoles::Assigned { roles, default } => (roles, *default),
    };
    plan.vips
        .iter()
        .filter_map(|v| match assigned.0.get(&v.addr).copied().or(assigned.1) {
            Some(r) => Some((v.addr, r)),
            None if v.directors.len() >= 2 => None,
            None => Some((v.addr, Role::Active)),
        })
        .collect()
}

/// The candidates of each VIP of `plan` (its directors).
pub fn candidates_in(plan: &NodePlan) -> BTreeMap<IpAddr, Vec<String>> {
    let mut out: BTreeMap<IpAddr, Vec<String>> = BTreeMap::new();
    for v in &plan.vips {
        let c = out.entry(v.addr).or_default();
        c.extend(v.directors.iter().cloned());
        c.sort();
        c.dedup();
    }
    out
}

/// A change of this node's role for one VIP (`None`: no role).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleChange {
    pub vip: IpAddr,
    pub from: Option<Role>,
    pub to: Option<Role>,
}

impl RoleChange {
    /// This node starts holding the VIP: it must announce it.
    pub fn is_takeover(&self) -> bool {
        self.to == Some(Role::Active) && self.from != Some(Role::Active)
    }

    /// This node stops holding the VIP.
    pub fn is_release(&self) -> bool {
        self.from == Some(Role::Active) && self.to != Some(Role::Active)
    }
}

/// The roles held and since when (Unix seconds): the roles of `now` replace those of the
/// VIPs in `scope` (`None`: all); a role that did not change keeps its time.
pub fn merge_roles(
    held: &mut BTreeMap<IpAddr, (Role, f64)>,
    now: &BTreeMap<IpAddr, Role>,
    scope: Option<&std::collections::BTreeSet<IpAddr>>,
    at: f64,
) -> Vec<RoleChange> {
    let mut changes = Vec::new();
    let in_scope = |v: &IpAddr| scope.is_none_or(|s| s.contains(v));
    held.retain(|vip, (role, _)| {
        if in_scope(vip) && !now.contains_key(vip) {
            changes.push(RoleChange {
                vip: *vip,
                from: Some(*role),
                to: None,
            });
            return false;
        }
        true
    });
    for (vip, role) in now.iter().filter(|(v, _)| in_scope(v)) {
        let before = held.get(vip).map(|(r, _)| *r);
        if before != Some(*role) {
            changes.push(RoleChange {
                vip: *vip,
                from: before,
                to: Some(*role),
            });
            held.insert(*vip, (*role, at));
        }
    }
    changes.sort_by_key(|c| c.vip);
    changes
}

/// This node's role for one VIP, as `/status`, `/ha` and the LvsNode show it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VipState {
    pub address: IpAddr,
    pub role: Role,
    /// Unix seconds when this node took the role.
    pub since: f64,
}

/// What one round of the election hands to the sync loop.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Elected {
    /// This node's role for each VIP it is a candidate for.
    pub roles: BTreeMap<IpAddr, Role>,
    /// Fellow candidates that are live in this node's view but not yet for
    /// the preempt delay, sorted: once they are, VIPs may still move to
    /// them (their share), so the spread is not final while this is not
    /// empty.
    pub settling: Vec<String>,
}

/// The answer of `GET /ha`: the VIPs this node holds and those it stands by
/// for. Other directors read it to tell a holder cut off from the API
/// server from a dead one.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HaAnswer {
    pub node: String,
    pub active: Vec<IpAddr>,
    pub standby: Vec<IpAddr>,
    /// See [`Elected::settling`] (absent in the answers of older agents).
    #[serde(default)]
    pub settling: Vec<String>,
}

impl HaAnswer {
    pub fn new(node: &str, vips: &[VipState], settling: &[String]) -> Self {
        let of = |r| {
            vips.iter()
                .filter(|v| v.role == r)
                .map(|v| v.address)
                .collect()
        };
        HaAnswer {
            node: node.to_string(),
            active: of(Role::Active),
            standby: of(Role::Standby),
            settling: settling.to_vec(),
        }
    }
}

/// Reports each refused VIP as an error of every VirtualService at its
/// address, so it shows where per-service errors show.
pub fn report_refused(report: &mut SyncReport, plan: &NodePlan, refused: &[Refused]) {
    for r in refused {
        let msg = format!(
            "VIP {vip} has {n} directors ({dirs}) and this node has no HA role for it, so it does not hold it (holding it on several directors would announce it twice); give --ha-role {vip}=active on one director and --ha-role {vip}=standby on the others (or --ha-default-role for every VIP), or run with --ha in Kubernetes mode",
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
        // Without HA settings, only the VIP this node alone directs is held.
        let mut off = plan.clone();
        let refused = hold_only_active(&mut off, &VipRoles::Off);
        assert_eq!(off.vips.len(), 1);
        assert_eq!(off.vips[0].addr.to_string(), "10.0.0.3");
        let refused: Vec<String> = refused.iter().map(|r| r.vip.to_string()).collect();
        assert_eq!(refused, vec!["10.0.0.1", "10.0.0.2", "10.0.0.4"]);
        let roles = VipRoles::Assigned {
            roles: BTreeMap::from([
                ("10.0.0.1".parse().unwrap(), Role::Active),
                ("10.0.0.2".parse().unwrap(), Role::Standby),
            ]),
            default: None,
        };
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
    }

    #[test]
    fn the_default_role_covers_every_vip_without_its_own() {
        let mut plan = NodePlan {
            vips: vec![vip("10.0.0.1", &["a", "b"]), vip("10.0.0.2", &["a", "b"])],
            ..Default::default()
        };
        let roles = VipRoles::Assigned {
            roles: BTreeMap::from([("10.0.0.2".parse().unwrap(), Role::Standby)]),
            default: Some(Role::Active),
        };
        let r: Vec<(String, Role)> = roles_in(&plan, &roles)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(
            r,
            vec![
                ("10.0.0.1".into(), Role::Active),
                ("10.0.0.2".into(), Role::Standby)
            ]
        );
        assert!(hold_only_active(&mut plan, &roles).is_empty());
        let held: Vec<String> = plan.vips.iter().map(|v| v.addr.to_string()).collect();
        assert_eq!(held, vec!["10.0.0.1"]);
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
                health: None,
                sorry_server: None,
                quorum: 1,
                drain_timeout_seconds: 0,
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
    fn role_changes_keep_their_time_and_name_takeovers_and_releases() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let mut held = BTreeMap::new();
        let c = merge_roles(
            &mut held,
            &BTreeMap::from([(a, Role::Active), (b, Role::Standby)]),
            None,
            1.0,
        );
        assert_eq!(c.len(), 2);
        assert!(c[0].is_takeover() && !c[1].is_takeover());
        // A scoped update of b alone leaves a as it was.
        let c = merge_roles(
            &mut held,
            &BTreeMap::from([(b, Role::Active)]),
            Some(&[b].into()),
            2.0,
        );
        assert_eq!(c.len(), 1);
        assert!(c[0].is_takeover());
        assert_eq!(held[&a], (Role::Active, 1.0));
        assert_eq!(held[&b], (Role::Active, 2.0));
        // Unchanged roles keep their time; a VIP gone is a release.
        let c = merge_roles(&mut held, &BTreeMap::from([(a, Role::Active)]), None, 3.0);
        assert_eq!(c.len(), 1);
        assert!(c[0].is_release() && c[0].vip == b && c[0].to.is_none());
        assert_eq!(held[&a].1, 1.0);
    }

    #[test]
    fn elected_roles_hold_only_what_was_won_and_refuse_nothing() {
        let mut plan = NodePlan {
            vips: vec![vip("10.0.0.1", &["a", "b"]), vip("10.0.0.3", &["a"])],
            ..Default::default()
        };
        let won = VipRoles::Elected(BTreeMap::from([(
            "10.0.0.1".parse().unwrap(),
            Role::Active,
        )]));
        let roles = roles_in(&plan, &won);
        assert_eq!(roles[&"10.0.0.3".parse::<IpAddr>().unwrap()], Role::Standby);
        assert!(hold_only_active(&mut plan, &won).is_empty());
        let held: Vec<String> = plan.vips.iter().map(|v| v.addr.to_string()).collect();
        assert_eq!(held, vec!["10.0.0.1"]);
        assert_eq!(
            candidates_in(&plan)[&"10.0.0.1".parse::<IpAddr>().unwrap()],
            vec!["a", "b"]
        );
    }

    #[test]
    fn roles_in_a_plan() {
        let plan = NodePlan {
            vips: vec![
                vip("10.0.0.1", &["a", "b"]),
                vip("10.0.0.3", &["a"]),
                vip("10.0.0.4", &["a", "b"]),
            ],
            ..Default::default()
        };
        assert!(roles_in(&plan, &VipRoles::Off).is_empty());
        let r = roles_in(
            &plan,
            &VipRoles::Assigned {
                roles: BTreeMap::from([("10.0.0.1".parse().unwrap(), Role::Standby)]),
                default: None,
            },
        );
        let got: Vec<(String, Role)> = r.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        assert_eq!(
            got,
            vec![
                ("10.0.0.1".into(), Role::Standby),
                ("10.0.0.3".into(), Role::Active)
            ]
        );
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

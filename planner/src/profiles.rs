//! Node profiles: which LvsNodeProfile applies to this node, and how its
//! settings overlay the plan's sysctls.

use std::collections::BTreeMap;

use lvs_api::{LvsNodeProfileSpec, NodeInfo, Object};

use crate::plan::{NodePlan, Sysctl};

/// The profile a node follows.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum ProfileChoice {
    /// No profile selects the node: the agent's defaults hold.
    #[default]
    None,
    /// One profile selects the node; its settings (key, value) apply.
    Applied {
        name: String,
        settings: BTreeMap<String, String>,
    },
    /// Several profiles select the node: none applies, so that no setting
    /// depends on which one was read last.
    Conflict { names: Vec<String> },
}

/// The profile for `node` (`None`: no Node object, so no labels) among
/// `profiles` (by key).
pub fn choose(
    node: Option<&NodeInfo>,
    profiles: &BTreeMap<String, Object<LvsNodeProfileSpec>>,
) -> ProfileChoice {
    let empty = BTreeMap::new();
    let labels = node.map_or(&empty, |n| &n.labels);
    let selecting: Vec<&Object<LvsNodeProfileSpec>> = profiles
        .values()
        .filter(|p| p.spec.selects(labels))
        .collect();
    match selecting.as_slice() {
        [] => ProfileChoice::None,
        [p] => ProfileChoice::Applied {
            name: p.meta.name.clone(),
            settings: p
                .spec
                .settings()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        },
        many => ProfileChoice::Conflict {
            names: many.iter().map(|p| p.meta.name.clone()).collect(),
        },
    }
}

impl ProfileChoice {
    pub fn is_none(&self) -> bool {
        *self == ProfileChoice::None
    }
}

/// Puts the chosen profile's settings into the plan: each replaces the
/// plan's own value for its key (the planner's defaults), or adds the key.
pub fn overlay(plan: &mut NodePlan, choice: &ProfileChoice) {
    let ProfileChoice::Applied { settings, .. } = choice else {
        return;
    };
    plan.sysctls
        .retain(|s| !settings.contains_key(s.key.as_ref()));
    plan.sysctls.extend(
        settings
            .iter()
            .map(|(k, v)| Sysctl::new(k.clone(), v.clone())),
    );
    plan.sysctls.sort();
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvs_api::{DirectorSysctls, IpvsTimeouts, LabelSelector, Meta};

    fn profile(
        name: &str,
        selector: Option<(&str, &str)>,
        spec: LvsNodeProfileSpec,
    ) -> Object<LvsNodeProfileSpec> {
        Object {
            meta: Meta {
                name: name.into(),
                ..Meta::default()
            },
            spec: LvsNodeProfileSpec {
                node_selector: selector.map(|(k, v)| LabelSelector {
                    match_labels: BTreeMap::from([(k.to_string(), v.to_string())]).into(),
                    ..LabelSelector::default()
                }),
                ..spec
            },
        }
    }

    fn node(labels: &[(&str, &str)]) -> NodeInfo {
        NodeInfo {
            name: "n1".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            internal_ips: vec![],
        }
    }

    fn timeouts(udp: i64) -> LvsNodeProfileSpec {
        LvsNodeProfileSpec {
            ipvs_timeouts: Some(IpvsTimeouts {
                udp_seconds: Some(udp),
                ..IpvsTimeouts::default()
            }),
            ..LvsNodeProfileSpec::default()
        }
    }

    fn set(ps: Vec<Object<LvsNodeProfileSpec>>) -> BTreeMap<String, Object<LvsNodeProfileSpec>> {
        ps.into_iter().map(|p| (p.meta.name.clone(), p)).collect()
    }

    #[test]
    fn the_one_selecting_profile_applies() {
        let ps = set(vec![
            profile("edge", Some(("role", "edge")), timeouts(30)),
            profile("core", Some(("role", "core")), timeouts(60)),
        ]);
        assert_eq!(
            choose(Some(&node(&[("role", "edge")])), &ps),
            ProfileChoice::Applied {
                name: "edge".into(),
                settings: BTreeMap::from([("ipvs/timeout/udp".into(), "30".into())]),
            }
        );
        assert_eq!(
            choose(Some(&node(&[("role", "x")])), &ps),
            ProfileChoice::None
        );
        // Without a Node object only a profile without selector matches.
        assert_eq!(choose(None, &ps), ProfileChoice::None);
    }

    #[test]
    fn overlapping_profiles_conflict_and_none_applies() {
        let ps = set(vec![
            profile("b-all", None, timeouts(30)),
            profile("a-edge", Some(("role", "edge")), timeouts(60)),
        ]);
        let c = choose(Some(&node(&[("role", "edge")])), &ps);
        assert_eq!(
            c,
            ProfileChoice::Conflict {
                names: vec!["a-edge".into(), "b-all".into()]
            }
        );
        let mut plan = NodePlan {
            sysctls: vec![Sysctl::new("net/ipv4/vs/expire_nodest_conn", "1")],
            ..NodePlan::default()
        };
        let before = plan.clone();
        overlay(&mut plan, &c);
        assert_eq!(plan, before);
    }

    #[test]
    fn a_profile_value_replaces_the_planner_default_and_adds_its_keys() {
        let spec = LvsNodeProfileSpec {
            ipvs_timeouts: Some(IpvsTimeouts {
                tcp_seconds: Some(600),
                tcp_fin_seconds: Some(30),
                udp_seconds: Some(20),
            }),
            director_sysctls: Some(DirectorSysctls {
                conn_reuse_mode: Some(2),
                expire_nodest_conn: Some(false),
                expire_quiescent_template: Some(false),
                sloppy_tcp: Some(true),
                schedule_icmp: Some(true),
                conntrack: Some(true),
            }),
            ..LvsNodeProfileSpec::default()
        };
        let c = choose(Some(&node(&[])), &set(vec![profile("p", None, spec)]));
        let mut plan = NodePlan {
            sysctls: vec![
                Sysctl::new("net/ipv4/ip_forward", "1"),
                Sysctl::new("net/ipv4/vs/expire_nodest_conn", "1"),
            ],
            ..NodePlan::default()
        };
        overlay(&mut plan, &c);
        let got: Vec<(&str, &str)> = plan
            .sysctls
            .iter()
            .map(|s| (s.key.as_ref(), s.value.as_ref()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("ipvs/timeout/tcp", "600"),
                ("ipvs/timeout/tcp_fin", "30"),
                ("ipvs/timeout/udp", "20"),
                ("net/ipv4/ip_forward", "1"),
                ("net/ipv4/vs/conn_reuse_mode", "2"),
                ("net/ipv4/vs/conntrack", "1"),
                ("net/ipv4/vs/expire_nodest_conn", "0"),
                ("net/ipv4/vs/expire_quiescent_template", "0"),
                ("net/ipv4/vs/schedule_icmp", "1"),
                ("net/ipv4/vs/sloppy_tcp", "1"),
            ]
        );
    }
}

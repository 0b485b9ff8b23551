//! The agent's nftables table (see [`crate::dataplane::nft`]): one
//! masquerade rule per source-NATed service of the plan and the marking
//! rules of fwmark services that declare their packets. The table is the
//! agent's by its name; it is replaced whole when the wanted rules differ
//! from those read or written last, deleted when no rule is wanted, and
//! re-created by the next full sync when it went missing. No other table is
//! read or touched.

use lvs_planner::{NodePlan, PlannedMark, ServiceKey};

use crate::dataplane::nft;
use crate::reconcile::decision::{Decision, Write};

/// The agent's table as last read or written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NftView {
    /// The table does not exist.
    #[default]
    Absent,
    /// The table exists with rules carrying these comments (sorted).
    Rules(Vec<String>),
    /// Reading failed (nf_tables not available, for one): harmless while
    /// no rule is wanted.
    Unreadable(String),
}

/// The rules wanted, with the VirtualServices they are for (those the plan
/// at hand holds; a scoped plan holds the services of its scope).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wanted {
    pub snat: Vec<(ServiceKey, Option<String>)>,
    pub marks: Vec<(PlannedMark, Option<String>)>,
}

impl Wanted {
    pub fn rules(&self) -> nft::Rules {
        nft::Rules {
            snat: self.snat.iter().map(|(k, _)| *k).collect(),
            marks: self.marks.iter().map(|(m, _)| m.clone()).collect(),
        }
    }

    /// The VirtualServices the rules are for, sorted, unique.
    pub fn owners(&self) -> Vec<&String> {
        let mut o: Vec<&String> = self
            .snat
            .iter()
            .map(|(_, o)| o)
            .chain(self.marks.iter().map(|(_, o)| o))
            .flatten()
            .collect();
        o.sort();
        o.dedup();
        o
    }

    pub fn is_empty(&self) -> bool {
        self.snat.is_empty() && self.marks.is_empty()
    }

    /// Keeps the rules of the services `keep` accepts.
    pub fn retain(&mut self, keep: impl Fn(&ServiceKey) -> bool) {
        self.snat.retain(|(k, _)| keep(k));
        self.marks.retain(|(m, _)| {
            keep(&ServiceKey::Fwmark {
                mark: m.mark,
                ipv6: m.ipv6,
            })
        });
    }
}

/// The wanted rules of `plan`.
pub fn wanted(plan: &NodePlan) -> Wanted {
    let owner = |k: &ServiceKey| {
        plan.services
            .binary_search_by(|s| s.key.cmp(k))
            .ok()
            .map(|i| plan.services[i].owner.clone())
    };
    Wanted {
        snat: plan.source_nat.iter().map(|k| (*k, owner(k))).collect(),
        marks: plan
            .marks
            .iter()
            .map(|m| {
                let k = ServiceKey::Fwmark {
                    mark: m.mark,
                    ipv6: m.ipv6,
                };
                (m.clone(), owner(&k))
            })
            .collect(),
    }
}

/// Replace the table when its rules are not the wanted ones; delete it when
/// none is wanted.
pub fn decide(want: &Wanted, known: &NftView) -> Decision {
    let mut d = Decision::default();
    if want.is_empty() {
        if matches!(known, NftView::Rules(_)) {
            d.writes.push(Write::DeleteNft);
        }
        return d;
    }
    if *known != NftView::Rules(want.rules().comments()) {
        d.writes.push(Write::ReplaceNft(want.clone()));
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(port: u16) -> ServiceKey {
        ServiceKey::Tuple {
            addr: "192.0.2.10".parse().unwrap(),
            protocol: lvs_api::Protocol::Tcp,
            port,
        }
    }

    /// Name, wanted services, the table as known, the writes expected.
    type Case = (&'static str, Wanted, NftView, Vec<Write>);

    #[test]
    fn table() {
        let want = |ports: &[u16]| Wanted {
            snat: ports
                .iter()
                .map(|p| (key(*p), Some(format!("default/vs{p}"))))
                .collect(),
            marks: vec![],
        };
        let rules = |ports: &[u16]| NftView::Rules(want(ports).rules().comments());
        let unreadable = NftView::Unreadable("nf_tables missing".into());
        let cases: Vec<Case> = vec![
            (
                "nothing wanted, no table",
                want(&[]),
                NftView::Absent,
                vec![],
            ),
            (
                "nothing wanted, table left: deleted",
                want(&[]),
                rules(&[80]),
                vec![Write::DeleteNft],
            ),
            (
                "nothing wanted, nf_tables unreadable: nothing to do",
                want(&[]),
                unreadable.clone(),
                vec![],
            ),
            (
                "wanted, no table: created",
                want(&[80]),
                NftView::Absent,
                vec![Write::ReplaceNft(want(&[80]))],
            ),
            (
                "wanted and there",
                want(&[80, 443]),
                rules(&[443, 80]),
                vec![],
            ),
            (
                "one more service: replaced whole",
                want(&[80, 443]),
                rules(&[80]),
                vec![Write::ReplaceNft(want(&[80, 443]))],
            ),
            (
                "a rule edited by hand (no comment): replaced",
                want(&[80]),
                NftView::Rules(vec![String::new(), key(80).to_string()]),
                vec![Write::ReplaceNft(want(&[80]))],
            ),
            (
                "unreadable but wanted: the write says why it fails",
                want(&[80]),
                unreadable,
                vec![Write::ReplaceNft(want(&[80]))],
            ),
        ];
        for (name, want, known, writes) in cases {
            let d = decide(&want, &known);
            assert_eq!(d.writes, writes, "{name}");
            assert!(d.delta.is_empty() && d.errors.is_empty(), "{name}");
        }
    }

    #[test]
    fn wanted_names_the_owners_the_plan_holds() {
        let plan = NodePlan {
            source_nat: vec![key(80), key(443)],
            services: vec![lvs_planner::PlannedService {
                key: key(80),
                scheduler: Default::default(),
                flags: vec![],
                persistence: None,
                destinations: vec![],
                owner: "default/web".into(),
                generation: None,
                health: None,
                sorry_server: None,
                quorum: 1,
                drain_timeout_seconds: 0,
            }],
            ..Default::default()
        };
        assert_eq!(
            wanted(&plan).snat,
            vec![(key(80), Some("default/web".into())), (key(443), None)]
        );
    }
}

//! Source NAT: the agent's nftables table (see [`crate::dataplane::nft`])
//! holds one masquerade rule per source-NATed service of the plan. The
//! table is the agent's by its name; it is replaced whole when the wanted
//! rules differ from those read or written last, deleted when nothing
//! needs source NAT, and re-created by the next full sync when it went
//! missing. No other table is read or touched.

use lvs_planner::{NodePlan, ServiceKey};

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
    /// nothing needs source NAT.
    Unreadable(String),
}

/// The comments a table masquerading `keys` has, sorted.
pub fn comments(keys: &[ServiceKey]) -> Vec<String> {
    let mut c: Vec<String> = keys.iter().map(nft::comment).collect();
    c.sort();
    c
}

/// The source-NATed services with the VirtualServices they are for (those
/// the plan at hand holds; a scoped plan holds the services of its scope).
pub fn wanted(plan: &NodePlan) -> Vec<(ServiceKey, Option<String>)> {
    plan.source_nat
        .iter()
        .map(|k| {
            let owner = plan
                .services
                .binary_search_by(|s| s.key.cmp(k))
                .ok()
                .map(|i| plan.services[i].owner.clone());
            (*k, owner)
        })
        .collect()
}

/// Replace the table when its rules are not the wanted ones; delete it when
/// none is wanted.
pub fn decide(want: &[(ServiceKey, Option<String>)], known: &NftView) -> Decision {
    let mut d = Decision::default();
    if want.is_empty() {
        if matches!(known, NftView::Rules(_)) {
            d.writes.push(Write::DeleteNft);
        }
        return d;
    }
    let keys: Vec<ServiceKey> = want.iter().map(|(k, _)| *k).collect();
    if *known != NftView::Rules(comments(&keys)) {
        d.writes.push(Write::ReplaceNft(want.to_vec()));
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
    type Case = (&'static str, Vec<Wanted>, NftView, Vec<Write>);
    type Wanted = (ServiceKey, Option<String>);

    #[test]
    fn table() {
        let want = |ports: &[u16]| -> Vec<Wanted> {
            ports
                .iter()
                .map(|p| (key(*p), Some(format!("default/vs{p}"))))
                .collect()
        };
        let rules = |ports: &[u16]| {
            NftView::Rules(comments(&ports.iter().map(|p| key(*p)).collect::<Vec<_>>()))
        };
        let unreadable = NftView::Unreadable("nf_tables missing".into());
        let cases: Vec<Case> = vec![
            ("nothing wanted, no table", vec![], NftView::Absent, vec![]),
            (
                "nothing wanted, table left: deleted",
                vec![],
                rules(&[80]),
                vec![Write::DeleteNft],
            ),
            (
                "nothing wanted, nf_tables unreadable: nothing to do",
                vec![],
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
            wanted(&plan),
            vec![(key(80), Some("default/web".into())), (key(443), None)]
        );
    }
}

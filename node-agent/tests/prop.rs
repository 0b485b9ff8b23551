//! Property tests: for random plans, the fake kernel ends up as planned, a
//! second sync costs nothing, and foreign rules (IPVS services, nftables
//! tables) are never touched.

mod common;

use common::arb::*;
use common::*;
use lvs_node_agent::dataplane::fake::FakeDataplane;
use lvs_node_agent::kernel::VipMode;
use lvs_planner::NodePlan;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn sync_reaches_the_plan_and_a_second_sync_costs_nothing(
        first in arb_plan(),
        second in arb_plan(),
        mode in prop_oneof![Just(VipMode::Address), Just(VipMode::LocalRoute)],
    ) {
        let dir = temp_dir("prop");
        let mut fake = FakeDataplane::new();
        let (fk, fs) = foreign();
        fake.ipvs.insert(fk, fs);
        let foreign_nft = ("inet filter".to_string(), vec!["someone else's".to_string()]);
        fake.nft_tables.insert(foreign_nft.0.clone(), foreign_nft.1.clone());
        let mut r = reconciler(fake, &dir).with_vip_mode(mode);

        for plan in [&first, &second, &first] {
            let rep = sync(&mut r, plan, false);
            prop_assert!(rep.ok(), "{:?}", rep.errors);
            assert_matches(r.dataplane(), plan, mode)?;
            let again = sync(&mut r, plan, false);
            prop_assert_eq!(again.total_ops(), 0, "{:?}", again.ops);
            prop_assert!(r.dataplane().calls.is_empty());
            let full = sync(&mut r, plan, true);
            prop_assert_eq!(full.total_ops(), 0, "{:?}", full.ops);
        }
        // A restart on the same kernel adopts without writing.
        let fake = r.into_dataplane();
        let mut r = reconciler(fake, &dir).with_vip_mode(mode);
        let rep = sync(&mut r, &first, false);
        prop_assert_eq!(rep.total_ops(), 0, "{:?}", rep.ops);
        // And the empty plan leaves only what was there before the agent.
        let rep = sync(&mut r, &NodePlan::default(), false);
        prop_assert!(rep.ok(), "{:?}", rep.errors);
        prop_assert_eq!(r.dataplane().ipvs.len(), 1);
        prop_assert!(r.ledger().is_empty(), "{:?}", r.ledger());
        prop_assert_eq!(r.dataplane().addresses.len(), 2);
        let tables: Vec<_> = r.dataplane().nft_tables.iter().collect();
        prop_assert_eq!(tables, vec![(&foreign_nft.0, &foreign_nft.1)]);
    }
}

//! Source NAT against the fake kernel: the agent's nftables table follows
//! the plan, a failure names the VirtualService, a missing nf_tables does not
//! matter while nothing needs source NAT, and a table changed by hand is
//! repaired by the next full sync only.

mod common;

use common::*;
use lvs_api::ForwardingMethod::Nat;
use lvs_node_agent::dataplane::fake::{Call, FakeDataplane};
use lvs_node_agent::report::ErrorKind;
use lvs_planner::NodePlan;

fn plan(snat: bool) -> NodePlan {
    let mut p = director(vec![service(
        "web",
        "10.0.0.1",
        80,
        vec![dest("10.1.0.1", 8080, 1, Nat)],
    )]);
    if snat {
        p.source_nat = vec![p.services[0].key];
    }
    p
}

fn table(f: &FakeDataplane) -> Option<&Vec<String>> {
    f.nft_tables.get(&FakeDataplane::nft_table_name())
}

#[test]
fn the_table_follows_the_plan_and_is_repaired_on_a_full_sync() {
    let dir = temp_dir("snat-follow");
    let mut fake = FakeDataplane::new();
    fake.nft_tables
        .insert("ip filter".into(), vec!["theirs".into()]);
    let mut r = reconciler(fake, &dir);

    let rep = sync(&mut r, &plan(true), false);
    assert!(rep.ok(), "{:?}", rep.errors);
    assert_eq!(
        table(r.dataplane()),
        Some(&vec!["10.0.0.1:80/TCP".to_string()])
    );
    assert_eq!(rep.ops.get("nft_replace"), Some(&1), "{:?}", rep.ops);

    // Nothing changed: no write, on a cached or a full sync.
    let rep = sync(&mut r, &plan(true), false);
    assert_eq!(rep.total_ops(), 0, "{:?}", rep.ops);
    let rep = sync(&mut r, &plan(true), true);
    assert_eq!(rep.total_ops(), 0, "{:?}", rep.ops);

    // Someone empties the table: a scoped (cached) sync does not look, the
    // next full read sees it and rewrites the table.
    r.dataplane_mut()
        .nft_tables
        .insert(FakeDataplane::nft_table_name(), vec![]);
    let rep = sync(&mut r, &plan(true), false);
    assert_eq!(rep.total_ops(), 0, "{:?}", rep.ops);
    let rep = sync(&mut r, &plan(true), true);
    assert_eq!(rep.ops.get("nft_replace"), Some(&1), "{:?}", rep.ops);
    assert_eq!(
        table(r.dataplane()),
        Some(&vec!["10.0.0.1:80/TCP".to_string()])
    );

    // Source NAT off: the table goes, the foreign one stays.
    let rep = sync(&mut r, &plan(false), false);
    assert!(rep.ok(), "{:?}", rep.errors);
    assert!(
        r.dataplane().calls.contains(&Call::DeleteNft),
        "{:?}",
        r.dataplane().calls
    );
    assert_eq!(table(r.dataplane()), None);
    assert_eq!(
        r.dataplane().nft_tables.get("ip filter"),
        Some(&vec!["theirs".to_string()])
    );
}

#[test]
fn a_table_left_by_an_earlier_run_is_removed_after_a_restart() {
    let dir = temp_dir("snat-restart");
    let mut r = reconciler(FakeDataplane::new(), &dir);
    assert!(sync(&mut r, &plan(true), false).ok());
    let fake = r.into_dataplane();
    // Restarted with source NAT no longer wanted.
    let mut r = reconciler(fake, &dir);
    let rep = sync(&mut r, &plan(false), false);
    assert!(rep.ok(), "{:?}", rep.errors);
    assert_eq!(table(r.dataplane()), None);
}

#[test]
fn without_nf_tables_only_a_service_that_needs_it_fails() {
    let dir = temp_dir("snat-missing");
    let mut fake = FakeDataplane::new();
    fake.nft_available = false;
    let mut r = reconciler(fake, &dir);

    // Nothing needs source NAT: the unreadable table is no problem.
    let rep = sync(&mut r, &plan(false), false);
    assert!(rep.ok(), "{:?}", rep.errors);
    assert!(rep.services["default/web"].programmed);

    // The service that needs it is reported, not programmed, and named.
    let rep = sync(&mut r, &plan(true), true);
    let err = rep
        .errors
        .iter()
        .find(|e| e.message.contains("source NAT"))
        .unwrap_or_else(|| panic!("no source NAT error in {:?}", rep.errors));
    assert_eq!(err.kind, ErrorKind::Kernel);
    assert_eq!(err.owner.as_deref(), Some("default/web"));
    assert!(
        err.message.contains("inet lvs-operator") && err.message.contains("10.0.0.1:80/TCP"),
        "{}",
        err.message
    );
    assert!(!rep.services["default/web"].programmed);

    // nf_tables appears (module loaded): the next sync programs it.
    r.dataplane_mut().nft_available = true;
    let rep = sync(&mut r, &plan(true), true);
    assert!(rep.ok(), "{:?}", rep.errors);
    assert_eq!(
        table(r.dataplane()),
        Some(&vec!["10.0.0.1:80/TCP".to_string()])
    );
}

#[test]
fn a_foreign_service_at_the_key_is_not_source_nated() {
    let dir = temp_dir("snat-foreign");
    let mut fake = FakeDataplane::new();
    let (fk, fs) = common::arb::foreign();
    fake.ipvs.insert(fk, fs.clone());
    let mut r = reconciler(fake, &dir);
    // The plan wants source NAT for the foreign service's key and for web.
    let mut p = plan(true);
    let mut other = service("other", "10.9.0.9", 80, vec![dest("10.1.0.1", 80, 1, Nat)]);
    other.owner = "default/other".into();
    p.source_nat.push(other.key);
    p.services.push(other);
    p.services.sort();
    p.source_nat.sort();
    let rep = sync(&mut r, &p, false);
    assert!(
        rep.errors
            .iter()
            .any(|e| e.kind == ErrorKind::ForeignService),
        "{:?}",
        rep.errors
    );
    assert_eq!(
        table(r.dataplane()),
        Some(&vec!["10.0.0.1:80/TCP".to_string()])
    );
    assert_eq!(r.dataplane().ipvs.get(&fk), Some(&fs));
}

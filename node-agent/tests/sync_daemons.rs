//! The IPVS connection sync daemons against the fake kernel: started on HA
//! directors, adopted after a restart, replaced when their settings change,
//! stopped when no longer wanted, and someone else's never touched.

mod common;

use std::path::Path;

use common::*;
use lvs_api::ForwardingMethod::Dr;
use lvs_ipvs::{DaemonState, SyncDaemon};
use lvs_node_agent::dataplane::fake::{Call, FakeDataplane};
use lvs_node_agent::kernel::DaemonSpec;
use lvs_node_agent::reconcile::{Reconciler, SyncDaemonSettings};
use lvs_node_agent::report::ErrorKind;
use lvs_planner::NodePlan;

fn plan() -> NodePlan {
    director(vec![service(
        "web",
        "10.0.0.1",
        80,
        vec![dest("10.1.0.1", 80, 1, Dr)],
    )])
}

fn ha(interface: Option<&str>, sync_id: u32) -> Option<SyncDaemonSettings> {
    Some(SyncDaemonSettings {
        interface: interface.map(str::to_string),
        sync_id,
    })
}

fn agent(
    fake: FakeDataplane,
    dir: &Path,
    settings: Option<SyncDaemonSettings>,
) -> Reconciler<FakeDataplane> {
    reconciler(fake, dir).with_sync_daemons(settings)
}

fn running(r: &Reconciler<FakeDataplane>) -> Vec<(DaemonState, String, u32)> {
    r.dataplane()
        .daemons
        .values()
        .map(|d| (d.state, d.mcast_ifn.clone(), d.sync_id))
        .collect()
}

fn both(interface: &str, sync_id: u32) -> Vec<(DaemonState, String, u32)> {
    vec![
        (DaemonState::Master, interface.to_string(), sync_id),
        (DaemonState::Backup, interface.to_string(), sync_id),
    ]
}

#[test]
fn an_ha_director_runs_both_daemons_adopts_them_after_restart_and_stops_them_without_ha() {
    let dir = temp_dir("daemons");
    // The interface of the node's InternalIP (eth0) by default.
    let mut r = agent(FakeDataplane::new(), &dir, ha(None, 0));
    let rep = sync(&mut r, &plan(), false);
    assert!(rep.ok(), "{rep:?}");
    assert_eq!(running(&r), both("eth0", 0));
    assert_eq!(rep.ops.get("daemon_start"), Some(&2), "{:?}", rep.ops);
    assert_eq!(r.ledger().daemons.len(), 2);

    // A restart adopts them through the ledger: no write.
    let mut r = agent(r.into_dataplane(), &dir, ha(None, 0));
    let rep = sync(&mut r, &plan(), false);
    assert!(rep.ok(), "{rep:?}");
    assert!(
        r.dataplane().writes().is_empty(),
        "{:?}",
        r.dataplane().writes()
    );

    // Another sync id: stopped and started again with it.
    let mut r = agent(r.into_dataplane(), &dir, ha(Some("eth0"), 4));
    let rep = sync(&mut r, &plan(), false);
    assert!(rep.ok(), "{rep:?}");
    assert_eq!(running(&r), both("eth0", 4));
    assert_eq!(
        r.dataplane()
            .writes()
            .iter()
            .filter(|c| matches!(c, Call::DelDaemon(_)))
            .count(),
        2
    );
    assert!(
        r.ledger().daemons.values().all(|d| d.sync_id == 4),
        "the ledger owns the replacements: {:?}",
        r.ledger().daemons
    );

    // The node stops directing: stopped.
    let rep = sync(&mut r, &NodePlan::default(), false);
    assert!(rep.ok(), "{rep:?}");
    assert!(running(&r).is_empty());
    assert!(r.ledger().daemons.is_empty());

    // Directing again, then restarted without HA: stopped.
    sync(&mut r, &plan(), false);
    assert_eq!(running(&r), both("eth0", 4));
    let mut r = agent(r.into_dataplane(), &dir, None);
    let rep = sync(&mut r, &plan(), false);
    assert!(rep.ok(), "{rep:?}");
    assert!(running(&r).is_empty());
    assert_eq!(rep.ops.get("daemon_stop"), Some(&2), "{:?}", rep.ops);
}

#[test]
fn someone_elses_daemon_is_reported_and_never_stopped() {
    let dir = temp_dir("daemons-foreign");
    let mut fake = FakeDataplane::new();
    fake.add_link("eth1", None, true);
    let foreign = SyncDaemon {
        state: DaemonState::Backup,
        mcast_ifn: "eth1".into(),
        sync_id: 9,
        sync_maxlen: Some(1472),
        mcast_group: Some(ip("224.0.0.81")),
        mcast_port: Some(8848),
        mcast_ttl: Some(1),
    };
    fake.daemons.insert(DaemonState::Backup, foreign.clone());

    let mut r = agent(fake, &dir, ha(None, 0));
    let rep = sync(&mut r, &plan(), false);
    assert_eq!(rep.errors.len(), 1, "{rep:?}");
    assert_eq!(rep.errors[0].kind, ErrorKind::ForeignDaemon);
    assert!(
        rep.errors[0].message.contains("backup on eth1 (sync id 9)"),
        "{}",
        rep.errors[0].message
    );
    assert_eq!(
        r.dataplane().daemons[&DaemonState::Master],
        DaemonSpec {
            state: DaemonState::Master,
            interface: "eth0".into(),
            sync_id: 0
        }
        .to_daemon()
    );

    // HA off: only the agent's master goes.
    let mut r = agent(r.into_dataplane(), &dir, None);
    let rep = sync(&mut r, &plan(), true);
    assert!(rep.ok(), "{rep:?}");
    assert_eq!(
        r.dataplane().daemons.values().cloned().collect::<Vec<_>>(),
        vec![foreign]
    );
}

#[test]
fn a_failed_start_is_reported_and_not_owned() {
    let dir = temp_dir("daemons-nodev");
    let mut r = agent(FakeDataplane::new(), &dir, ha(Some("sync9"), 0));
    let rep = sync(&mut r, &plan(), false);
    assert_eq!(rep.errors.len(), 2, "{rep:?}");
    assert!(
        rep.errors
            .iter()
            .all(|e| e.kind == ErrorKind::Kernel && e.message.contains("sync9")),
        "{rep:?}"
    );
    assert!(r.ledger().daemons.is_empty(), "{:?}", r.ledger().daemons);
}

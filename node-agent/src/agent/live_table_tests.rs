//! The agent's answers to live-table requests: a fresh read of the kernel,
//! and a dry run that changes nothing.

use super::*;
use crate::dataplane::fake::{Call, FakeDataplane, FakeService};

const EPERM: i32 = 1;
use crate::ledger::LedgerStore;
use lvs_ipvs::{DestConfig, DestKey, Family, FwdMethod, ServiceConfig, ServiceKey};

/// The agent tests' manifests plus a second RealServer for web.
const WEB_2: &str = r#"---
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: RealServer
metadata: {name: web-2, namespace: default, labels: {app: web}}
spec: {address: 10.1.0.2, port: 8080}
"#;

fn snapshot() -> Snapshot {
    super::tests::snapshot_of(&format!("{}{WEB_2}", super::tests::FILES))
}

fn dest(last: u8) -> DestKey {
    DestKey {
        addr: format!("10.1.0.{last}").parse().unwrap(),
        port: 8080,
    }
}

fn foreign() -> ServiceKey {
    ServiceKey::Tuple {
        addr: "10.9.9.9".parse().unwrap(),
        protocol: lvs_ipvs::Protocol::TCP,
        port: 80,
    }
}

/// Every file of the ledger's directory with its bytes.
fn files(dir: &std::path::Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap_or_default(),
            )
        })
        .collect()
}

/// The kernel after a sync, edited by hand: the weight of 10.1.0.1 set
/// to 5, 10.1.0.2 deleted, and a service of someone else's added.
fn edited_by_hand(tag: &str) -> (Agent<FakeDataplane>, std::path::PathBuf, ServiceKey) {
    let dir = super::tests::dir(&format!("live-table-{tag}"));
    let (mut a, _status) =
        super::tests::agent_on(FakeDataplane::new(), LedgerStore::in_dir(&dir).unwrap());
    let snap = snapshot();
    assert!(a.sync(&snap, false).ok());
    assert!(a.sync(&snap, true).drift.is_empty());
    let fake = a.reconciler_mut().dataplane_mut();
    let web = *fake.ipvs.keys().next().unwrap();
    let s = fake.ipvs.get_mut(&web).unwrap();
    s.dests.get_mut(&dest(1)).unwrap().weight = 5;
    s.dests.remove(&dest(2));
    fake.ipvs.insert(
        foreign(),
        FakeService {
            config: ServiceConfig::new(Family::V4, "wlc"),
            dests: [(dest(9), DestConfig::new(FwdMethod::DirectRoute, 2))].into(),
        },
    );
    (a, dir, web)
}

#[test]
fn a_dry_run_changes_nothing_and_the_next_resync_still_repairs_the_drift() {
    let (mut a, dir, web) = edited_by_hand("dry");
    let writes = a.reconciler().dataplane().writes().len();
    let ledger = a.reconciler().ledger().clone();
    let known = a.reconciler().known().cloned();
    assert!(known.is_some(), "the sync left a cached view");
    let on_disk = files(&dir);

    let st = a.live_table(&[], true);
    assert_eq!(st.error, "");
    assert_eq!(
        st.changes,
        [
            "edit destination 10.1.0.1:8080 of TCP 10.0.0.1:80 (default/web): weight 5 -> 1",
            "add destination 10.1.0.2:8080 to TCP 10.0.0.1:80 (default/web): masq weight 1",
        ],
        "only the agent's own service is changed; the foreign one is not touched"
    );
    // The live table: both services, in ipvsadm's order, with owners.
    let names: Vec<(&str, &str)> = st
        .services
        .iter()
        .map(|s| (s.service.as_str(), s.owner.as_str()))
        .collect();
    assert_eq!(
        names,
        [("TCP 10.0.0.1:80", "default/web"), ("TCP 10.9.9.9:80", "")]
    );
    assert_eq!(st.services[0].destinations.len(), 1);
    assert_eq!(
        st.services[0].destinations[0].weight, 5,
        "the kernel's value"
    );
    assert_eq!(st.services[1].destinations[0].method, "Route");

    // Nothing written: no kernel write, the ledger and its files as they
    // were, the cached view untouched.
    assert_eq!(a.reconciler().dataplane().writes().len(), writes);
    assert_eq!(a.reconciler().ledger(), &ledger);
    assert_eq!(a.reconciler().known().cloned(), known);
    assert_eq!(files(&dir), on_disk);

    // A scoped sync still works from the cached view, and the next full
    // resync finds the hand edits as drift and repairs them.
    let rep = a.sync(&snapshot(), true);
    let found: Vec<&str> = rep.drift.iter().map(|d| d.kind.metric_label()).collect();
    assert_eq!(found, ["destination_deleted", "destination_changed"]);
    assert_eq!(
        a.reconciler().dataplane().ipvs[&web].dests[&dest(1)].weight,
        1
    );
    assert!(a.reconciler().dataplane().ipvs.contains_key(&foreign()));
    // Now the kernel is as wanted.
    assert_eq!(a.live_table(&[], true).changes, Vec::<String>::new());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_table_without_diff_is_one_dump_filtered_by_owner() {
    let (mut a, dir, _) = edited_by_hand("filter");
    a.reconciler_mut().dataplane_mut().take_calls();
    let st = a.live_table(&["default/web".to_string()], false);
    let calls = a.reconciler_mut().dataplane_mut().take_calls();
    assert_eq!(calls.len(), 1, "one dump: {calls:?}");
    assert!(st.changes.is_empty());
    assert_eq!(st.services.len(), 1);
    assert_eq!(st.services[0].owner, "default/web");
    assert!(!st.time.is_empty());
    let all = a.live_table(&[], false);
    assert_eq!(all.services.len(), 2);
    let none = a.live_table(&["other/vs".to_string()], false);
    assert!(none.services.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failed_read_is_answered_with_the_error() {
    let (mut a, dir, _) = edited_by_hand("fail");
    a.reconciler_mut()
        .dataplane_mut()
        .fail_once(|c| matches!(c, Call::IpvsDump), EPERM);
    let st = a.live_table(&[], false);
    assert!(
        st.error.starts_with("reading the kernel failed: "),
        "{st:?}"
    );
    assert!(st.services.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_diff_before_the_first_desired_state_says_so() {
    let (mut a, _status) = super::tests::agent_on(FakeDataplane::new(), LedgerStore::in_memory());
    let st = a.live_table(&[], true);
    assert!(
        st.error.contains("has not received its desired state"),
        "{st:?}"
    );
    assert!(st.changes.is_empty());
}

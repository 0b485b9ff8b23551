//! The drain through the whole loop, on the in-memory kernel: a leaving
//! destination stays at weight 0 until its connections end or its deadline
//! passes, comes back without a cut, survives a restart, and is not
//! drained when its whole service goes.

use super::tests::agent_on;
use super::*;
use crate::dataplane::fake::{Call, FakeDataplane};
use crate::ledger::LedgerStore;
use lvs_ipvs::{DestKey, Op, Protocol, ServiceKey};

const NODE: &str = "apiVersion: v1\nkind: Node\nmetadata: {name: n1, labels: {lvs: director}}\nstatus: {addresses: [{type: InternalIP, address: 192.0.2.10}]}\n";

/// A VirtualService on 10.0.0.1:80 (`proto`, `extra` spec lines) and the
/// RealServers `rs` (name, address, extra spec).
fn snapshot(proto: &str, extra: &str, rs: &[(&str, &str, &str)]) -> Snapshot {
    let mut yaml = format!(
        "{NODE}---\napiVersion: lvs.lvs-operator.io/v1alpha1\nkind: VirtualService\nmetadata: {{name: web, namespace: default}}\nspec:\n  address: 10.0.0.1\n  port: 80\n  protocol: {proto}\n  directors: {{nodeSelector: {{matchLabels: {{lvs: director}}}}}}\n  realServerSelector: {{matchLabels: {{app: web}}}}\n{extra}"
    );
    for (name, addr, more) in rs {
        yaml.push_str(&format!(
            "---\napiVersion: lvs.lvs-operator.io/v1alpha1\nkind: RealServer\nmetadata: {{name: {name}, namespace: default, labels: {{app: web}}}}\nspec: {{address: {addr}, port: 8080{more}}}\n"
        ));
    }
    super::tests::snapshot_of(&yaml)
}

const TWO: &[(&str, &str, &str)] = &[("web-1", "10.1.0.1", ""), ("web-2", "10.1.0.2", "")];
const ONE: &[(&str, &str, &str)] = &[("web-1", "10.1.0.1", "")];
const DRAIN_5S: &str = "  drain: {timeoutSeconds: 5}\n";

fn agent_with(store: LedgerStore) -> (Agent<FakeDataplane>, watch::Receiver<AgentStatus>) {
    agent_on(FakeDataplane::new(), store)
}

fn svc(protocol: Protocol) -> ServiceKey {
    ServiceKey::Tuple {
        addr: "10.0.0.1".parse().unwrap(),
        protocol,
        port: 80,
    }
}

fn web2() -> DestKey {
    DestKey {
        addr: "10.1.0.2".parse().unwrap(),
        port: 8080,
    }
}

/// The weight of web-2 in the kernel; `None`: not there.
fn weight(a: &Agent<FakeDataplane>, protocol: Protocol) -> Option<u32> {
    a.reconciler()
        .dataplane()
        .ipvs
        .get(&svc(protocol))
        .and_then(|s| s.dests.get(&web2()))
        .map(|c| c.weight)
}

fn set_conns(a: &mut Agent<FakeDataplane>, protocol: Protocol, active: u32, inactive: u32) {
    a.reconciler_mut()
        .dataplane_mut()
        .conns
        .insert((svc(protocol), web2()), (active, inactive));
}

/// The status entry of web-2.
fn entry(st: &watch::Receiver<AgentStatus>) -> Option<lvs_api::DestinationReport> {
    st.borrow()
        .destinations
        .get("default/web")?
        .entries
        .iter()
        .find(|e| e.destination == "10.1.0.2:8080")
        .cloned()
}

/// Two realservers synced, then web-2 deleted: it drains.
fn draining(
    extra: &str,
    proto: &str,
) -> (Agent<FakeDataplane>, watch::Receiver<AgentStatus>, Instant) {
    let (mut a, st) = agent_with(LedgerStore::in_memory());
    assert!(a.sync(&snapshot(proto, extra, TWO), false).ok());
    let started = Instant::now();
    let r = a.sync(&snapshot(proto, extra, ONE), false);
    assert!(r.ok(), "{:?}", r.errors);
    (a, st, started)
}

#[test]
fn a_deleted_realserver_drains_at_weight_0_until_its_active_connections_end() {
    let (mut a, st, _) = draining(DRAIN_5S, "TCP");
    assert_eq!(weight(&a, Protocol::TCP), Some(0), "drains at weight 0");
    let e = entry(&st).expect("a status entry for the draining destination");
    assert_eq!(e.state, lvs_api::DestinationState::Draining);
    let since = e.since.expect("since when it drains");
    assert!(
        since.ends_with('Z') && since.contains('T') && !since.contains('.'),
        "RFC 3339 to the second: {since}"
    );
    let counts = st.borrow().destinations["default/web"].clone();
    assert_eq!(
        (counts.healthy, counts.total),
        (1, 1),
        "draining ones are not counted"
    );
    assert!(a.next_drain_poll().is_some(), "a running drain is polled");

    set_conns(&mut a, Protocol::TCP, 1, 4);
    assert!(
        !a.poll_drains(Instant::now()),
        "an active connection keeps it"
    );
    assert_eq!(
        entry(&st).and_then(|e| e.connections),
        Some(1),
        "the count is published"
    );
    assert_eq!(weight(&a, Protocol::TCP), Some(0));

    // TCP: closed connections lingering in TIME_WAIT (inactive) are not
    // waited for.
    set_conns(&mut a, Protocol::TCP, 0, 4);
    assert!(
        a.poll_drains(Instant::now()),
        "no active connection left: the drain ends"
    );
    let r = a.sync_pending(false);
    assert!(r.ok(), "{:?}", r.errors);
    assert_eq!(weight(&a, Protocol::TCP), None, "removed once drained");
    assert_eq!(entry(&st), None);
    assert_eq!(a.next_drain_poll(), None, "no drain, no polling");
}

#[test]
fn udp_drains_wait_for_the_inactive_entries_too() {
    let (mut a, _st, _) = draining(DRAIN_5S, "UDP");
    assert_eq!(weight(&a, Protocol::UDP), Some(0));
    set_conns(&mut a, Protocol::UDP, 0, 2);
    assert!(
        !a.poll_drains(Instant::now()),
        "UDP flows count as inactive"
    );
    set_conns(&mut a, Protocol::UDP, 0, 0);
    assert!(a.poll_drains(Instant::now()));
    a.sync_pending(false);
    assert_eq!(weight(&a, Protocol::UDP), None);
}

#[test]
fn a_stream_that_never_ends_is_cut_at_the_deadline_not_before() {
    let (mut a, _st, started) = draining(DRAIN_5S, "TCP");
    set_conns(&mut a, Protocol::TCP, 1, 0);
    let poll_at = Instant::now();
    assert!(!a.poll_drains(poll_at));
    a.sync_pending(false);
    assert_eq!(
        weight(&a, Protocol::TCP),
        Some(0),
        "before the deadline it stays"
    );
    assert!(
        a.next_drain_poll()
            .is_some_and(|p| p >= poll_at + crate::drain::POLL_INTERVAL)
    );
    assert!(
        a.poll_drains(started + Duration::from_secs(6)),
        "deadline passed"
    );
    a.sync_pending(false);
    assert_eq!(weight(&a, Protocol::TCP), None, "removed at the deadline");
}

#[test]
fn a_destination_back_during_its_drain_gets_its_weight_without_a_cut() {
    let (mut a, st, _) = draining(DRAIN_5S, "TCP");
    set_conns(&mut a, Protocol::TCP, 3, 0);
    a.reconciler_mut().dataplane_mut().take_calls();
    a.sync(&snapshot("TCP", DRAIN_5S, TWO), false);
    assert_eq!(weight(&a, Protocol::TCP), Some(1), "its weight is back");
    let calls = a.reconciler_mut().dataplane_mut().take_calls();
    assert!(
        !calls
            .iter()
            .any(|c| matches!(c, Call::Ipvs(Op::DelDest { .. } | Op::AddDest { .. }))),
        "updated in place, never removed: {calls:?}"
    );
    assert_eq!(entry(&st), None);
    assert_eq!(a.next_drain_poll(), None);
}

#[test]
fn timeout_0_removes_at_once() {
    let (a, st, _) = draining("  drain: {timeoutSeconds: 0}\n", "TCP");
    assert_eq!(weight(&a, Protocol::TCP), None);
    assert_eq!(entry(&st), None);
    assert_eq!(a.next_drain_poll(), None);
}

#[test]
fn a_deleted_virtualservice_is_removed_whole_without_a_drain() {
    let (mut a, _st, _) = draining(DRAIN_5S, "TCP");
    set_conns(&mut a, Protocol::TCP, 1, 0);
    let mut gone = snapshot("TCP", DRAIN_5S, ONE);
    gone.virtual_services.clear();
    a.sync(&gone, false);
    assert!(a.reconciler().dataplane().ipvs.is_empty());
    assert_eq!(a.next_drain_poll(), None);
}

#[test]
fn a_drain_survives_an_agent_restart() {
    let dir = std::env::temp_dir().join(format!("lvs-drain-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (mut a, _st) = agent_with(LedgerStore::in_dir(&dir).unwrap());
    a.sync(&snapshot("TCP", DRAIN_5S, TWO), false);
    a.sync(&snapshot("TCP", DRAIN_5S, ONE), false);
    assert_eq!(weight(&a, Protocol::TCP), Some(0));
    set_conns(&mut a, Protocol::TCP, 1, 0);
    // The agent stops; a new one starts on the same kernel and ledger.
    let dp = a.into_reconciler().into_dataplane();
    let (mut b, st) = agent_on(dp, LedgerStore::in_dir(&dir).unwrap());
    let r = b.sync(&snapshot("TCP", DRAIN_5S, ONE), false);
    assert!(r.ok(), "{:?}", r.errors);
    assert!(r.full, "the first sync read the kernel");
    assert_eq!(
        weight(&b, Protocol::TCP),
        Some(0),
        "still draining, not cut"
    );
    assert_eq!(
        entry(&st).map(|e| e.state),
        Some(lvs_api::DestinationState::Draining)
    );
    set_conns(&mut b, Protocol::TCP, 0, 0);
    assert!(b.poll_drains(Instant::now()));
    b.sync_pending(false);
    assert_eq!(weight(&b, Protocol::TCP), None);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_edit_that_invalidates_every_realserver_drains_the_last_set_and_says_so() {
    let (mut a, st) = agent_with(LedgerStore::in_memory());
    a.sync(&snapshot("TCP", DRAIN_5S, TWO), false);
    // DR cannot map port 80 to the realservers' 8080: both are invalid.
    let r = a.sync(
        &snapshot("TCP", &format!("{DRAIN_5S}  forwarding: DR\n"), TWO),
        false,
    );
    assert!(r.ok(), "{:?}", r.errors);
    let s = &a.reconciler().dataplane().ipvs[&svc(Protocol::TCP)];
    assert_eq!(s.dests.len(), 2, "the last good set stays: {s:?}");
    assert!(s.dests.values().all(|c| c.weight == 0));
    let states = st.borrow().destinations["default/web"].clone();
    assert_eq!((states.healthy, states.total), (0, 0));
    assert_eq!(states.entries.len(), 2);
    assert!(
        states
            .entries
            .iter()
            .all(|e| e.state == lvs_api::DestinationState::Draining
                && e.last_error == crate::drain::NO_DESTINATION_LEFT),
        "{states:?}"
    );
}

#[test]
fn an_inactive_realserver_stays_at_weight_0_and_is_reported_inactive() {
    let (mut a, st) = agent_with(LedgerStore::in_memory());
    let rs = [
        ("web-1", "10.1.0.1", ""),
        ("web-2", "10.1.0.2", ", state: Inactive"),
    ];
    let r = a.sync(&snapshot("TCP", DRAIN_5S, &rs), false);
    assert!(r.ok(), "{:?}", r.errors);
    assert_eq!(weight(&a, Protocol::TCP), Some(0));
    assert_eq!(
        entry(&st).map(|e| e.state),
        Some(lvs_api::DestinationState::Inactive)
    );
    let states = st.borrow().destinations["default/web"].clone();
    assert_eq!((states.healthy, states.total), (1, 2));
    assert_eq!(a.next_drain_poll(), None, "inactive is not a drain");
}

#[test]
fn a_draining_realserver_leaves_like_a_deleted_one() {
    let (mut a, st) = agent_with(LedgerStore::in_memory());
    a.sync(&snapshot("TCP", DRAIN_5S, TWO), false);
    let rs = [
        ("web-1", "10.1.0.1", ""),
        ("web-2", "10.1.0.2", ", state: Draining"),
    ];
    a.sync(&snapshot("TCP", DRAIN_5S, &rs), false);
    assert_eq!(weight(&a, Protocol::TCP), Some(0));
    assert_eq!(
        entry(&st).map(|e| e.state),
        Some(lvs_api::DestinationState::Draining)
    );
}

#[test]
fn setting_the_timeout_to_0_ends_running_drains_at_once() {
    let (mut a, st, _) = draining(DRAIN_5S, "TCP");
    set_conns(&mut a, Protocol::TCP, 2, 0);
    a.sync(
        &snapshot("TCP", "  drain: {timeoutSeconds: 0}\n", ONE),
        false,
    );
    assert_eq!(weight(&a, Protocol::TCP), None, "removed with the edit");
    assert_eq!(entry(&st), None);
    assert_eq!(a.next_drain_poll(), None);
}

#[test]
fn a_shorter_timeout_shortens_a_running_drain() {
    let (mut a, _st, started) = draining("  drain: {timeoutSeconds: 600}\n", "TCP");
    set_conns(&mut a, Protocol::TCP, 2, 0);
    assert!(!a.poll_drains(started + Duration::from_secs(6)));
    a.sync(&snapshot("TCP", DRAIN_5S, ONE), false);
    assert_eq!(weight(&a, Protocol::TCP), Some(0), "still draining");
    assert!(
        a.poll_drains(started + Duration::from_secs(6)),
        "past the new deadline"
    );
    a.sync_pending(false);
    assert_eq!(weight(&a, Protocol::TCP), None);
}

#[test]
fn a_resync_after_a_drain_ended_is_a_check() {
    let vs = |name: &str, addr: &str, app: &str| {
        format!(
            "---\napiVersion: lvs.lvs-operator.io/v1alpha1\nkind: VirtualService\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  address: {addr}\n  port: 80\n  directors: {{nodeSelector: {{matchLabels: {{lvs: director}}}}}}\n  realServerSelector: {{matchLabels: {{app: {app}}}}}\n"
        )
    };
    let rs = |name: &str, addr: &str, app: &str, w: u32| {
        format!(
            "---\napiVersion: lvs.lvs-operator.io/v1alpha1\nkind: RealServer\nmetadata: {{name: {name}, namespace: default, labels: {{app: {app}}}}}\nspec: {{address: {addr}, port: 8080, weight: {w}}}\n"
        )
    };
    let base = format!(
        "{NODE}{}{}",
        vs("web", "10.0.0.1", "web"),
        rs("web-1", "10.1.0.1", "web", 1)
    );
    let probe = vs("probe", "10.0.0.2", "probe");
    let (mut a, _st) = agent_with(LedgerStore::in_memory());
    assert!(a.sync(&super::tests::snapshot_of(&base), false).ok());
    for (step, yaml) in [
        ("add_svc", format!("{base}{probe}")),
        (
            "add_dest",
            format!("{base}{probe}{}", rs("p-1", "10.9.0.1", "probe", 1)),
        ),
        (
            "set_weight",
            format!("{base}{probe}{}", rs("p-1", "10.9.0.1", "probe", 7)),
        ),
        ("del_dest", format!("{base}{probe}")),
        ("del_svc", base.clone()),
    ] {
        let r = a.sync(&super::tests::snapshot_of(&yaml), false);
        assert!(r.ok(), "{step}: {:?}", r.errors);
        a.poll_drains(Instant::now());
        let r = a.sync_pending(false);
        assert!(r.ok(), "{step}: {:?}", r.errors);
    }
    let r = a.sync_pending(true);
    assert!(r.full && r.unchanged, "the resync after the changes: {r:?}");
}

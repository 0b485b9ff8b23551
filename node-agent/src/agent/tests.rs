use super::*;
use crate::dataplane::fake::FakeDataplane;
use crate::ledger::LedgerStore;
use crate::source::DirSource;
use std::sync::mpsc;

pub(super) const FILES: &str = r#"
apiVersion: v1
kind: Node
metadata: {name: n1, labels: {lvs: director}}
status: {addresses: [{type: InternalIP, address: 192.0.2.10}]}
---
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: VirtualService
metadata: {name: web, namespace: default, generation: 3}
spec:
  address: 10.0.0.1
  port: 80
  directors: {nodeSelector: {matchLabels: {lvs: director}}}
  realServerSelector: {matchLabels: {app: web}}
---
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: RealServer
metadata: {name: web-1, namespace: default, labels: {app: web}}
spec: {address: 10.1.0.1, port: 8080}
"#;

fn agent() -> (Agent<FakeDataplane>, watch::Receiver<AgentStatus>) {
    agent_on(FakeDataplane::new(), LedgerStore::in_memory())
}

/// An agent for node n1 on this kernel and ledger.
pub(super) fn agent_on(
    dp: FakeDataplane,
    store: LedgerStore,
) -> (Agent<FakeDataplane>, watch::Receiver<AgentStatus>) {
    let r = Reconciler::new(dp, store).unwrap();
    Agent::new(
        r,
        AgentConfig {
            node_name: "n1".into(),
            resync_interval: Duration::from_secs(30),
            resync_max_share: 100,
            node_ips: vec![],
            vip_roles: Default::default(),
            vip_lifetime: None,
            live_interval: None,
        },
        Arc::new(Metrics::default()),
        Arc::new(Health::new()),
    )
}

pub(super) fn dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("lvs-agent-loop-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// FILES with a second director, n2: the VIP 10.0.0.1 has two directors.
fn two_directors(d: &std::path::Path) -> Snapshot {
    let second = "---\napiVersion: v1\nkind: Node\nmetadata: {name: n2, labels: {lvs: director}}\nstatus: {addresses: [{type: InternalIP, address: 192.0.2.11}]}\n";
    std::fs::write(d.join("all.yaml"), format!("{FILES}{second}")).unwrap();
    DirSource::load(d).unwrap()
}

/// Whether the agent's (fake) kernel holds `vip` on some interface.
fn holds(a: &Agent<FakeDataplane>, vip: IpAddr) -> bool {
    a.reconciler()
        .dataplane()
        .addresses
        .iter()
        .any(|x| x.addr == vip)
}

/// Sets a destination's weight in the (fake) kernel, as someone else would.
fn set_weight_by_hand(
    a: &mut Agent<FakeDataplane>,
    service: &lvs_ipvs::ServiceKey,
    dest: &lvs_ipvs::DestKey,
    weight: u32,
) {
    a.reconciler_mut()
        .dataplane_mut()
        .ipvs
        .get_mut(service)
        .unwrap()
        .dests
        .get_mut(dest)
        .unwrap()
        .weight = weight;
}

/// A writer that keeps what the log subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// 200 services failing for the same reason, synced three times: the
/// shared error is logged once, with the number of services, not once
/// per service and retry.
/// Node n1, a director, and 200 VirtualServices it directs.
fn two_hundred_services() -> Snapshot {
    use std::fmt::Write;
    let mut yaml = String::from(
        "apiVersion: v1\nkind: Node\nmetadata: {name: n1, labels: {lvs: director}}\nstatus: {addresses: [{type: InternalIP, address: 192.0.2.10}]}\n",
    );
    for i in 0..200 {
        write!(
            yaml,
            "---\napiVersion: lvs.lvs-operator.io/v1alpha1\nkind: VirtualService\nmetadata: {{name: vs-{i}, namespace: default}}\nspec: {{address: 10.9.0.{}, port: {}, directors: {{nodeSelector: {{matchLabels: {{lvs: director}}}}}}, realServerSelector: {{matchLabels: {{app: x}}}}}}\n",
            i % 200 + 1,
            1000 + i
        )
        .unwrap();
    }
    snapshot_of(&yaml)
}

/// The log lines `f` writes.
fn logged(f: impl FnOnce()) -> String {
    let out = Captured::default();
    let w = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || w.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
}

#[test]
fn the_same_error_of_many_services_is_logged_once() {
    let snap = two_hundred_services();
    let (mut a, _status) = agent();
    a.reconciler_mut().dataplane_mut().ipvs_available = false;
    let log = logged(|| {
        for _ in 0..3 {
            let rep = a.sync(&snap, true);
            assert_eq!(rep.errors.len(), 200);
        }
    });
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("sync problem")).collect();
    assert_eq!(
        lines.len(),
        1,
        "{} 'sync problem' lines for 3 syncs of 200 services failing alike, expected 1; first: {:?}",
        lines.len(),
        lines.first()
    );
    assert!(lines[0].contains("services=200"), "{}", lines[0]);
}

#[test]
fn a_released_vip_is_renewed_no_more() {
    let d = dir("renewals");
    let snap = two_directors(&d);
    let vip: IpAddr = "10.0.0.1".parse().unwrap();
    let (mut a, _status) = agent();
    a.cfg.vip_roles = crate::ha::VipRoles::Elected(BTreeMap::new());
    a.cfg.vip_lifetime = Some(VipLifetime {
        seconds: 2,
        renew_interval: Duration::from_millis(250),
    });
    let held = |a: &Agent<FakeDataplane>| holds(a, vip);
    a.sync(&snap, true);
    assert!(!held(&a) && a.reconciler().renewing().is_empty());
    a.set_elected(BTreeMap::from([(vip, crate::ha::Role::Active)]));
    a.sync_pending(false);
    assert!(held(&a), "the active holds the VIP");
    assert_eq!(a.reconciler().renewing(), vec![vip]);
    a.set_elected(BTreeMap::from([(vip, crate::ha::Role::Standby)]));
    a.sync_pending(false);
    assert!(!held(&a), "the standby released the VIP");
    assert!(
        a.reconciler().renewing().is_empty(),
        "a released VIP is renewed no more"
    );
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn a_standby_keeps_the_service_without_the_vip_and_no_role_is_refused() {
    let d = dir("ha");
    let snap = two_directors(&d);
    let vip: IpAddr = "10.0.0.1".parse().unwrap();
    let held = |a: &Agent<FakeDataplane>| {
        let f = a.reconciler().dataplane();
        assert_eq!(
            f.ipvs.len(),
            1,
            "the IPVS service is programmed in every role"
        );
        holds(a, vip)
    };
    // Without HA settings a VIP of two directors is refused too.
    for (roles, holds, ok) in [
        (None, false, false),
        (Some(vec![(vip, crate::ha::Role::Active)]), true, true),
        (Some(vec![(vip, crate::ha::Role::Standby)]), false, true),
        (Some(vec![]), false, false),
    ] {
        let (mut a, status) = agent();
        if let Some(r) = &roles {
            a.cfg.vip_roles = crate::ha::VipRoles::Assigned {
                roles: r.iter().copied().collect(),
                default: None,
            };
            a.cfg.vip_lifetime = Some(VipLifetime {
                seconds: 2,
                renew_interval: Duration::from_millis(500),
            });
        }
        let rep = a.sync(&snap, false);
        assert_eq!(rep.ok(), ok, "{roles:?}: {rep:?}");
        assert_eq!(held(&a), holds, "{roles:?}");
        let st = status.borrow().clone();
        // Holding with HA roles is a takeover, announced once.
        let announced = &a.reconciler().dataplane().announced;
        if roles.is_some() && holds {
            assert_eq!(announced, &vec![("eth0".to_string(), vip)]);
            assert_eq!(st.vips.len(), 1);
            assert_eq!(st.vips[0].role, crate::ha::Role::Active);
            let m = a.metrics.render();
            assert!(m.contains("lvs_agent_ha_takeovers_total 1"), "{m}");
            assert!(
                m.contains("lvs_agent_vip_role{vip=\"10.0.0.1\",role=\"Active\"} 1"),
                "{m}"
            );
        } else {
            assert!(announced.is_empty(), "{roles:?}: {announced:?}");
        }
        if roles.is_none() {
            assert!(st.vips.is_empty(), "no roles without HA");
        }
        // The active's VIP has a finite lifetime; nothing else has one.
        let lifetimes: Vec<(IpAddr, u32)> = a
            .reconciler()
            .dataplane()
            .lifetimes
            .iter()
            .map(|(x, s)| (x.addr, *s))
            .collect();
        if roles.is_some() && holds {
            assert_eq!(lifetimes, vec![(vip, 2)]);
        } else {
            assert!(lifetimes.is_empty(), "{roles:?}: {lifetimes:?}");
        }
        // A resync with the same roles announces nothing more.
        let before = a.reconciler().dataplane().announced.len();
        a.sync_pending(true);
        assert_eq!(a.reconciler().dataplane().announced.len(), before);
        if !ok {
            let e = &st.services["default/web"].errors;
            assert!(
                e.iter()
                    .any(|m| m.contains("n1, n2") && m.contains("--ha-role")),
                "{e:?}"
            );
            assert!(!st.reports[0].error.is_empty());
        }
    }
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn an_elected_role_is_synced_at_once_and_a_lost_one_drops_the_vip() {
    let d = dir("elected");
    let snap = two_directors(&d);
    let vip: IpAddr = "10.0.0.1".parse().unwrap();
    let (mut a, status) = agent();
    a.cfg.vip_roles = crate::ha::VipRoles::Elected(BTreeMap::new());
    let held = |a: &Agent<FakeDataplane>| holds(a, vip);
    // Nothing won yet: standby, no error, the candidates published.
    let rep = a.sync(&snap, false);
    assert!(rep.ok(), "{rep:?}");
    assert!(!held(&a));
    assert_eq!(a.reconciler().dataplane().ipvs.len(), 1);
    assert_eq!(status.borrow().ha_candidates[&vip], vec!["n1", "n2"]);
    assert_eq!(
        status.borrow().node_ips["n2"],
        vec!["192.0.2.11".parse::<IpAddr>().unwrap()]
    );
    // Won: the next (scoped) sync holds and announces it.
    a.set_elected(BTreeMap::from([(vip, crate::ha::Role::Active)]));
    a.sync_pending(false);
    assert!(held(&a));
    assert_eq!(a.reconciler().dataplane().announced.len(), 1);
    // Lost (another node holds the Lease): dropped at once.
    a.set_elected(BTreeMap::from([(vip, crate::ha::Role::Standby)]));
    a.sync_pending(false);
    assert!(!held(&a));
    assert!(a.metrics.render().contains("lvs_agent_ha_releases_total 1"));
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn manifests_end_up_in_the_kernel_and_the_status() {
    let d = dir("e2e");
    std::fs::write(d.join("all.yaml"), FILES).unwrap();
    let (mut a, status) = agent();
    let snap = DirSource::load(&d).unwrap();
    let rep = a.sync(&snap, false);
    assert!(rep.ok(), "{rep:?}");
    let f = a.reconciler().dataplane();
    assert_eq!(f.ipvs.len(), 1);
    let s = f.ipvs.values().next().unwrap();
    assert_eq!(s.dests.len(), 1);
    assert!(
        f.addresses
            .iter()
            .any(|x| x.addr.to_string() == "10.0.0.1" && x.interface == "eth0")
    );
    let st = status.borrow().clone();
    assert!(st.ok);
    assert_eq!(st.services["default/web"].generation, Some(3));
    assert!(st.services["default/web"].programmed);
    assert_eq!(
        st.reports,
        [lvs_api::ServiceReport {
            name: "default/web".into(),
            generation: Some(3),
            roles: vec!["director".into()],
            error: String::new(),
            ..Default::default()
        }]
    );
    assert!(a.health.ready());
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn an_invalid_file_keeps_the_last_good_state() {
    let d = dir("invalid");
    std::fs::write(d.join("all.yaml"), FILES).unwrap();
    let metrics = Arc::new(Metrics::default());
    let src = DirSource::new(&d, Duration::from_millis(10), metrics.clone());
    let (mut a, _) = agent();
    let good = src.load_reported().unwrap();
    assert!(a.sync(&good, false).ok());
    a.reconciler.dataplane_mut().take_calls();
    // Break the file: the RealServer is gone from what parses, and a
    // field is wrong. Nothing is handed to the loop...
    std::fs::write(
        d.join("all.yaml"),
        FILES
            .replace("port: 8080", "port: 0")
            .replace("kind: RealServer", "kind: RealServr"),
    )
    .unwrap();
    assert!(src.load_reported().is_none());
    let text = metrics.render();
    assert!(text.contains("lvs_agent_config_valid 0"), "{text}");
    assert!(text.contains("all.yaml\"} 1"), "{text}");
    // ...so the next resync still programs the last good snapshot.
    let (tx, rx) = mpsc::channel();

    tx.send(Event::Resync).unwrap();
    tx.send(Event::Shutdown).unwrap();
    a.run(&rx);
    let f = a.reconciler().dataplane();
    assert_eq!(f.ipvs.values().next().unwrap().dests.len(), 1);
    assert!(f.writes().is_empty(), "{:?}", f.writes());
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn slow_full_syncs_spread_the_periodic_resync_out() {
    let s = Duration::from_secs;
    assert_eq!(resync_gap(s(30), 5, s(1)), s(30));
    assert_eq!(resync_gap(s(30), 5, s(37)), s(740));
    assert_eq!(resync_gap(s(30), 100, s(37)), s(37));
    assert_eq!(resync_gap(s(30), 0, s(2)), s(200), "0 counts as 1%");
}

#[test]
fn nothing_is_synced_before_the_first_snapshot() {
    let (mut a, _) = agent();
    let (tx, rx) = mpsc::channel();
    tx.send(Event::Resync).unwrap();
    tx.send(Event::Shutdown).unwrap();
    a.run(&rx);
    assert!(a.reconciler().dataplane().calls.is_empty());
    assert!(!a.health.ready());
}

#[test]
fn queued_snapshots_collapse_into_the_latest() {
    let (mut a, _) = agent();
    let (tx, rx) = mpsc::channel();
    let d = dir("collapse");
    std::fs::write(d.join("all.yaml"), FILES).unwrap();
    let snap = DirSource::load(&d).unwrap();
    let mut other = snap.clone();
    other.virtual_services.clear();
    tx.send(Event::Snapshot(Box::new(snap))).unwrap();
    tx.send(Event::Snapshot(Box::new(other))).unwrap();
    tx.send(Event::Shutdown).unwrap();
    a.run(&rx);
    // Stopped in the same batch: nothing synced at all.
    assert!(a.reconciler().dataplane().calls.is_empty());
    let (tx, rx) = mpsc::channel();
    let snap = DirSource::load(&d).unwrap();
    let mut other = snap.clone();
    other.virtual_services.clear();
    tx.send(Event::Snapshot(Box::new(other))).unwrap();
    tx.send(Event::Snapshot(Box::new(snap))).unwrap();
    drop(tx);
    a.run(&rx);
    assert_eq!(
        a.reconciler().dataplane().ipvs.len(),
        1,
        "the last one wins"
    );
    std::fs::remove_dir_all(d).unwrap();
}

/// [`FILES`] with the service forwarding DR to the node rs1.
fn dr_files() -> String {
    let files = FILES
        .replace("  port: 80\n", "  port: 80\n  forwarding: DR\n")
        .replace(
            "spec: {address: 10.1.0.1, port: 8080}",
            "spec: {nodeName: rs1, weight: 3}",
        );
    assert!(files.contains("forwarding: DR") && files.contains("nodeName: rs1"));
    files
        + "---\napiVersion: v1\nkind: Node\nmetadata: {name: rs1}\nstatus: {addresses: [{type: InternalIP, address: 192.0.2.21}]}\n"
}

fn dr_weights(a: &Agent<FakeDataplane>) -> Vec<u32> {
    a.reconciler()
        .dataplane()
        .ipvs
        .values()
        .flat_map(|s| s.dests.values().map(|d| d.weight))
        .collect()
}

#[test]
fn a_dr_realserver_node_gets_weight_once_its_agent_reports_the_service() {
    let d = dir("gating");
    std::fs::write(d.join("all.yaml"), dr_files()).unwrap();
    let (mut a, status) = agent();
    let snap = DirSource::load(&d).unwrap();
    assert!(a.sync(&snap, false).ok());
    assert_eq!(
        dr_weights(&a),
        [3],
        "no reports known yet (standalone): no gating"
    );

    // Gating on, rs1 without an LvsNode: weight 0, noted Unready.
    a.set_readiness(crate::gating::Readiness::new());
    assert!(a.sync_pending(false).ok());
    assert_eq!(dr_weights(&a), [0]);
    let st = status.borrow().destinations["default/web"].clone();
    assert_eq!((st.healthy, st.total), (0, 1));
    assert_eq!(st.entries[0].state, DestinationState::Unready);
    assert_eq!(st.entries[0].real_server, "default/web-1");
    assert!(st.entries[0].since.is_some());
    let report = crate::k8s::lvsnode::lvsnode_status(&status.borrow()).unwrap();
    assert_eq!(report.services[0].healthy, Some(0));

    // rs1's agent reports the service at generation 3 as a DR realserver.
    let ready = crate::gating::NodeReadiness {
        node_errors: String::new(),
        services: [(
            "default/web".to_string(),
            crate::gating::ServiceReadiness {
                generation: Some(3),
                roles: vec!["dr-realserver".into()],
                error: String::new(),
            },
        )]
        .into(),
    };
    a.set_readiness([("rs1".to_string(), ready)].into());
    assert!(a.sync_pending(false).ok());
    assert_eq!(dr_weights(&a), [3]);
    let st = status.borrow().destinations["default/web"].clone();
    assert_eq!((st.healthy, st.total, st.entries.len()), (1, 1, 0));
}

#[test]
fn a_health_transition_resyncs_the_service_with_the_destination_inhibited() {
    let (mut a, status) = agent();
    let checks = crate::health::Checks::new();
    a.set_health_checks(checks.clone());
    let d = dir("health");
    let files = FILES.replace(
        "  realServerSelector: {matchLabels: {app: web}}",
        "  realServerSelector: {matchLabels: {app: web}}\n  healthCheck: {type: TCP, intervalSeconds: 2, timeoutSeconds: 1, fall: 1}",
    );
    std::fs::write(d.join("all.yaml"), files).unwrap();
    let snap = DirSource::load(&d).unwrap();
    assert!(a.sync(&snap, true).ok());
    let weight = |a: &Agent<FakeDataplane>| {
        let f = a.reconciler().dataplane();
        f.ipvs
            .values()
            .next()
            .unwrap()
            .dests
            .values()
            .next()
            .unwrap()
            .weight
    };
    assert_eq!(weight(&a), 1);
    assert_eq!(checks.lock().len(), 1, "one target registered");
    // The probe fails (fall 1): the engine's transition names the service.
    let now = Instant::now();
    let due = checks.lock().take_due(now + Duration::from_secs(2), 10).0;
    assert_eq!(due.len(), 1);
    let owners = checks
        .lock()
        .record(due[0].id, now, Err("connection refused".into()));
    assert_eq!(owners, Some(vec!["default/web".to_string()]));
    let (tx, rx) = mpsc::channel();
    tx.send(Event::Health(owners.unwrap())).unwrap();
    // The loop syncs what the event marked, then stops: the channel is gone.
    drop(tx);
    a.run(&rx);
    assert_eq!(weight(&a), 0, "inhibited");
    let st = status.borrow().destinations["default/web"].clone();
    assert_eq!((st.healthy, st.total), (0, 1));
    assert_eq!(st.entries[0].state, DestinationState::Failing);
    assert_eq!(st.entries[0].last_error, "connection refused");
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn a_vip_the_pools_refuse_is_never_programmed_and_is_reported() {
    let d = dir("pools");
    std::fs::write(d.join("all.yaml"), FILES).unwrap();
    let (mut a, status) = agent();
    let snap = DirSource::load(&d).unwrap();
    a.apply_snapshot(snap.clone());
    let pool = |addrs: &[&str]| {
        lvs_planner::Pool::from_spec(
            "lab",
            &lvs_api::LvsAddressPoolSpec {
                addresses: addrs.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            },
        )
        .unwrap()
    };
    // A pool elsewhere: 10.0.0.1 is outside every pool.
    a.apply(
        lvs_planner::Changes {
            policy: Some(Some(lvs_planner::AddressPolicy::new(vec![pool(&[
                "198.51.100.0/24",
            ])]))),
            ..Default::default()
        },
        "kubernetes",
    );
    let rep = a.sync_pending(true);
    assert!(rep.ok(), "{rep:?}");
    let f = a.reconciler().dataplane();
    assert!(f.ipvs.is_empty(), "nothing programmed");
    assert!(!f.addresses.iter().any(|x| x.addr.to_string() == "10.0.0.1"));
    let st = status.borrow().clone();
    let why = &st.refused["default/web"];
    assert!(
        why.contains("10.0.0.1 lies in no LvsAddressPool (pools: lab)"),
        "{why}"
    );
    let ln = crate::k8s::lvsnode::lvsnode_status(&st).unwrap();
    assert_eq!(ln.refused.len(), 1);
    assert!(
        ln.refused[0].starts_with("default/web: "),
        "{:?}",
        ln.refused
    );

    // The pool now covers it: programmed, and no longer refused.
    a.apply(
        lvs_planner::Changes {
            policy: Some(Some(lvs_planner::AddressPolicy::new(vec![pool(&[
                "10.0.0.0/24",
            ])]))),
            ..Default::default()
        },
        "kubernetes",
    );
    assert!(a.sync_pending(false).ok());
    assert_eq!(a.reconciler().dataplane().ipvs.len(), 1);
    assert!(status.borrow().refused.is_empty());
    std::fs::remove_dir_all(d).unwrap();
}

/// 200 VirtualServices the pools refuse: a few are logged by name, the
/// rest in one line with their number; the status lists every one.
#[test]
fn many_refused_services_are_logged_in_a_few_lines() {
    let (mut a, status) = agent();
    a.apply_snapshot(two_hundred_services());
    let elsewhere = lvs_planner::Pool::from_spec(
        "lab",
        &lvs_api::LvsAddressPoolSpec {
            addresses: vec!["198.51.100.0/24".into()],
            ..Default::default()
        },
    )
    .unwrap();
    let log = logged(|| {
        a.apply(
            lvs_planner::Changes {
                policy: Some(Some(lvs_planner::AddressPolicy::new(vec![elsewhere]))),
                ..Default::default()
            },
            "kubernetes",
        );
    });
    assert_eq!(status.borrow().refused.len(), 200);
    let named = log
        .lines()
        .filter(|l| l.contains("not programming this VirtualService"))
        .count();
    let more: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("not programming more VirtualServices"))
        .collect();
    assert_eq!(named, REFUSALS_LOGGED, "{log}");
    assert_eq!(more.len(), 1, "{log}");
    assert!(
        more[0].contains(&format!("more={}", 200 - REFUSALS_LOGGED)),
        "{}",
        more[0]
    );
}

/// The Snapshot of these manifests.
pub(super) fn snapshot_of(yaml: &str) -> Snapshot {
    let mut m = lvs_api::manifest::ManifestSet::default();
    m.extend(lvs_api::manifest::parse(yaml).unwrap());
    Snapshot {
        virtual_services: m.virtual_services,
        real_servers: m.real_servers,
        nodes: m.nodes,
        node_profiles: m.node_profiles,
        origin: "test".into(),
    }
}

const PROFILE: &str = r#"
---
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: LvsNodeProfile
metadata: {name: edge}
spec:
  nodeSelector: {matchLabels: {lvs: director}}
  ipvsTimeouts: {udpSeconds: 7}
  directorSysctls: {expireNodestConn: false, sloppyTcp: true}
"#;

#[test]
fn a_node_profile_is_applied_reported_and_its_values_restored_when_it_goes() {
    let mut dp = FakeDataplane::new();
    dp.sysctls.insert("ipvs/timeout/udp".into(), "200".into());
    let (mut a, status) = agent_on(dp, LedgerStore::in_memory());
    assert!(a.sync(&snapshot_of(FILES), true).ok());
    let f = a.reconciler().dataplane();
    assert_eq!(
        f.sysctls["net/ipv4/vs/expire_nodest_conn"], "1",
        "director default"
    );
    assert_eq!(f.sysctls["ipvs/timeout/udp"], "200", "left as found");
    assert!(status.borrow().profile.is_none());

    let with = format!("{FILES}{PROFILE}");
    assert!(a.sync(&snapshot_of(&with), false).ok());
    let f = a.reconciler().dataplane();
    assert_eq!(f.sysctls["ipvs/timeout/udp"], "7");
    assert_eq!(f.sysctls["net/ipv4/vs/expire_nodest_conn"], "0");
    assert_eq!(f.sysctls["net/ipv4/vs/sloppy_tcp"], "1");
    match &status.borrow().profile {
        lvs_planner::ProfileChoice::Applied { name, settings } => {
            assert_eq!(name, "edge");
            assert_eq!(settings["ipvs/timeout/udp"], "7");
        }
        other => panic!("expected profile edge applied, got {other:?}"),
    }

    // A second profile selecting the node: neither applies.
    let both = format!(
        "{with}---\napiVersion: lvs.lvs-operator.io/v1alpha1\nkind: LvsNodeProfile\nmetadata: {{name: all}}\nspec: {{ipvsTimeouts: {{udpSeconds: 9}}}}\n"
    );
    assert!(a.sync(&snapshot_of(&both), false).ok());
    assert_eq!(
        a.reconciler().dataplane().sysctls["ipvs/timeout/udp"],
        "200"
    );
    assert_eq!(
        status.borrow().profile,
        lvs_planner::ProfileChoice::Conflict {
            names: vec!["all".into(), "edge".into()]
        }
    );

    assert!(a.sync(&snapshot_of(FILES), false).ok());
    let f = a.reconciler().dataplane();
    assert_eq!(f.sysctls["ipvs/timeout/udp"], "200", "restored");
    assert_eq!(
        f.sysctls["net/ipv4/vs/expire_nodest_conn"], "1",
        "director default again"
    );
    assert_eq!(f.sysctls["net/ipv4/vs/sloppy_tcp"], "0", "restored");
    assert!(status.borrow().profile.is_none());
}

/// FILES with a second realserver, so one can be edited and the other
/// deleted by hand.
fn two_realservers() -> Snapshot {
    snapshot_of(&format!(
        "{FILES}---\napiVersion: lvs.lvs-operator.io/v1alpha1\nkind: RealServer\nmetadata: {{name: web-2, namespace: default, labels: {{app: web}}}}\nspec: {{address: 10.1.0.2, port: 8080}}\n"
    ))
}

#[test]
fn a_resync_repairs_hand_edits_and_reports_them_as_drift() {
    let snap = two_realservers();
    let (mut a, status) = agent();
    assert!(a.sync(&snap, false).ok());
    let rep = a.sync(&snap, true);
    assert!(rep.drift.is_empty(), "nothing changed by hand: {rep:?}");

    // By hand: the weight of 10.1.0.1 to 0, 10.1.0.2 deleted.
    let key = *a.reconciler().dataplane().ipvs.keys().next().unwrap();
    let rs1: lvs_ipvs::DestKey = lvs_ipvs::DestKey {
        addr: "10.1.0.1".parse().unwrap(),
        port: 8080,
    };
    let rs2 = lvs_ipvs::DestKey {
        addr: "10.1.0.2".parse().unwrap(),
        port: 8080,
    };
    {
        let s = a
            .reconciler_mut()
            .dataplane_mut()
            .ipvs
            .get_mut(&key)
            .unwrap();
        s.dests.get_mut(&rs1).unwrap().weight = 0;
        s.dests.remove(&rs2);
    }
    // A scoped sync works from the cached view: it sees nothing.
    a.replan(vec!["default/web".into()]);
    assert!(a.sync_pending(false).drift.is_empty());

    let rep = a.sync(&snap, true);
    let found: Vec<(&str, &str)> = rep
        .drift
        .iter()
        .map(|d| (d.kind.metric_label(), d.what.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (
                "destination_deleted",
                "destination 10.1.0.2:8080 of TCP/10.0.0.1:80 deleted; re-added"
            ),
            (
                "destination_changed",
                "destination 10.1.0.1:8080 of TCP/10.0.0.1:80: weight 0 -> 1 restored"
            ),
        ]
    );
    // Repaired in the kernel.
    let s = &a.reconciler().dataplane().ipvs[&key];
    assert_eq!(s.dests[&rs1].weight, 1);
    assert!(s.dests.contains_key(&rs2));
    // Published once for the VirtualService, counted by kind.
    let st = status.borrow().clone();
    let d = &st.drift["default/web"];
    assert_eq!(d.count, 2);
    assert_eq!(d.repaired.len(), 2);
    let text = a.metrics.render();
    for kind in ["destination_deleted", "destination_changed"] {
        let line = format!(
            "lvs_agent_drift_repaired_total{{virtual_service=\"default/web\",kind=\"{kind}\"}} 1"
        );
        assert!(text.contains(&line), "no '{line}' in:\n{text}");
    }
    // The next resync finds nothing new, and the last drift stays published.
    assert!(a.sync(&snap, true).drift.is_empty());
    assert_eq!(status.borrow().drift["default/web"].count, 2);
}

#[test]
fn a_resync_with_nothing_pending_only_reads_while_the_kernel_is_as_left() {
    use crate::dataplane::fake::Call;
    let snap = two_realservers();
    let (mut a, status) = agent();
    assert!(a.sync(&snap, false).ok());
    let before = status.borrow().clone();
    a.reconciler_mut().dataplane_mut().calls.clear();

    let rep = a.sync_pending(true);
    assert!(rep.full && rep.unchanged, "{rep:?}");
    assert_eq!(rep.total_ops(), 0);
    let calls = &a.reconciler().dataplane().calls;
    assert!(
        calls.contains(&Call::IpvsDump),
        "it reads the kernel: {calls:?}"
    );
    assert!(
        calls.contains(&Call::ReadSysctl("net/ipv4/ip_forward".into())),
        "{calls:?}"
    );
    assert!(!calls.iter().any(Call::is_write), "{calls:?}");
    // The statuses stand; only the time of the last sync moves.
    let after = status.borrow().clone();
    assert_eq!(after.services, before.services);
    assert_eq!(after.reports, before.reports);
    assert!(after.ok);
    assert!(after.last_sync >= before.last_sync);
    // The first sync counted as full (there was no view yet), then the resync.
    let text = a.metrics.render();
    for line in [
        "lvs_agent_syncs_total{mode=\"full\"} 2",
        "lvs_agent_virtual_services{state=\"programmed\"} 1",
    ] {
        assert!(text.contains(line), "no '{line}' in:\n{text}");
    }

    // A weight changed by hand: the ordinary full sync repairs and reports it.
    let key = *a.reconciler().dataplane().ipvs.keys().next().unwrap();
    let rs1 = lvs_ipvs::DestKey {
        addr: "10.1.0.1".parse().unwrap(),
        port: 8080,
    };
    set_weight_by_hand(&mut a, &key, &rs1, 5);
    let rep = a.sync_pending(true);
    assert!(rep.full && !rep.unchanged, "{rep:?}");
    assert_eq!(rep.ops.get("dest_update"), Some(&1), "{rep:?}");
    assert_eq!(rep.drift.len(), 1, "{rep:?}");
    assert_eq!(a.reconciler().dataplane().ipvs[&key].dests[&rs1].weight, 1);
    assert!(a.sync_pending(true).unchanged);

    // A sysctl changed by hand is a difference too.
    a.reconciler_mut()
        .dataplane_mut()
        .sysctls
        .insert("net/ipv4/ip_forward".into(), "0".into());
    let rep = a.sync_pending(true);
    assert!(!rep.unchanged, "{rep:?}");
    assert_eq!(rep.ops.get("sysctl_set"), Some(&1), "{rep:?}");

    // Something pending: never the shortcut, though the kernel is as left.
    a.replan(vec!["default/web".into()]);
    let rep = a.sync_pending(true);
    assert!(rep.full && !rep.unchanged, "{rep:?}");
    assert_eq!(rep.services.len(), 1, "{rep:?}");
}

#[test]
fn a_change_during_a_resync_check_is_synced_between_its_steps() {
    let snap = two_realservers();
    let (mut a, status) = agent();
    assert!(a.sync(&snap, false).ok());
    assert!(a.begin_check(), "nothing pending, the last sync was clean");
    // A weight change arrives: synced at once, scoped, the check waits.
    let d = dir("check-change");
    std::fs::write(
        d.join("all.yaml"),
        format!(
            "{FILES}---\napiVersion: lvs.lvs-operator.io/v1alpha1\nkind: RealServer\nmetadata: {{name: web-2, namespace: default, labels: {{app: web}}}}\nspec: {{address: 10.1.0.2, port: 8080, weight: 4}}\n"
        ),
    )
    .unwrap();
    a.apply_snapshot(DirSource::load(&d).unwrap());
    let rep = a.sync_now(false, Instant::now());
    assert!(!rep.full && rep.ok(), "{rep:?}");
    assert_eq!(rep.ops.get("dest_update"), Some(&1), "{rep:?}");
    assert!(a.check.is_some(), "the check goes on");
    let key = *a.reconciler().dataplane().ipvs.keys().next().unwrap();
    let rs2 = lvs_ipvs::DestKey {
        addr: "10.1.0.2".parse().unwrap(),
        port: 8080,
    };
    assert_eq!(a.reconciler().dataplane().ipvs[&key].dests[&rs2].weight, 4);
    // Then the check ends: the kernel is as the syncs left it.
    let rep = loop {
        if let Some(r) = a.step_check() {
            break r;
        }
    };
    assert!(rep.full && rep.unchanged, "{rep:?}");
    assert!(a.check.is_none());
    // The check's read gave the live counters.
    assert!(status.borrow().live.contains_key("default/web"));

    // A change by hand: the check finds it and the full sync repairs it.
    set_weight_by_hand(&mut a, &key, &rs2, 1);
    assert!(a.begin_check());
    let rep = loop {
        if let Some(r) = a.step_check() {
            break r;
        }
    };
    assert!(rep.full && !rep.unchanged, "{rep:?}");
    assert_eq!(rep.drift.len(), 1, "{rep:?}");
    assert_eq!(a.reconciler().dataplane().ipvs[&key].dests[&rs2].weight, 4);
    std::fs::remove_dir_all(d).unwrap();
}

/// web with two realservers synced, web-1 (10.1.0.1:8080) with 3 active
/// and 4 inactive connections: the agent, its status, the IPVS service and
/// web-1's destination.
fn web_with_connections() -> (
    Agent<FakeDataplane>,
    watch::Receiver<AgentStatus>,
    lvs_ipvs::ServiceKey,
    lvs_ipvs::DestKey,
) {
    let (mut a, status) = agent();
    assert!(a.sync(&two_realservers(), false).ok());
    let key = *a.reconciler().dataplane().ipvs.keys().next().unwrap();
    let rs1 = lvs_ipvs::DestKey {
        addr: "10.1.0.1".parse().unwrap(),
        port: 8080,
    };
    a.reconciler_mut()
        .dataplane_mut()
        .conns
        .insert((key, rs1), (3, 4));
    (a, status, key, rs1)
}

#[test]
fn live_samples_publish_counters_and_keep_their_time_while_unchanged() {
    let (mut a, mut status, key, rs1) = web_with_connections();
    status.mark_unchanged();
    a.sample_live();
    assert!(status.has_changed().unwrap(), "a first sample is published");
    let first = status.borrow_and_update().live["default/web"].clone();
    assert_eq!(first.counters.active_connections, 3);
    assert_eq!(first.counters.inactive_connections, 4);
    assert_eq!(first.table_hash.len(), 16);
    a.sample_live();
    assert!(
        !status.has_changed().unwrap(),
        "an unchanged sample wakes no one (no LvsNode write)"
    );
    assert_eq!(status.borrow().live["default/web"], first);
    // A weight change by hand changes the table hash.
    set_weight_by_hand(&mut a, &key, &rs1, 5);
    a.sample_live();
    assert!(status.has_changed().unwrap());
    assert_ne!(
        status.borrow().live["default/web"].table_hash,
        first.table_hash
    );
}

#[test]
fn a_scoped_change_publishes_table_hashes_from_the_view_without_reading_the_table() {
    use crate::dataplane::fake::Call;
    let (mut a, mut status, _, _) = web_with_connections();
    a.sample_live();
    let read = status.borrow_and_update().live["default/web"].clone();

    // web-2 leaves: a scoped sync deletes one destination.
    a.reconciler_mut().dataplane_mut().calls.clear();
    let rep = a.sync(&snapshot_of(FILES), false);
    assert!(rep.ok() && !rep.full, "{rep:?}");
    a.publish_programmed(rep.services.keys());
    let calls = &a.reconciler().dataplane().calls;
    assert!(
        !calls
            .iter()
            .any(|c| matches!(c, Call::IpvsDump | Call::IpvsDests(_))),
        "no read of the table: {calls:?}"
    );
    assert!(status.has_changed().unwrap(), "the new hash is published");
    let now = status.borrow_and_update().live["default/web"].clone();
    assert_ne!(now.table_hash, read.table_hash);
    assert_eq!(
        (now.counters.clone(), now.time.clone()),
        (read.counters, read.time),
        "counters and their time wait for the next read"
    );
    // The hash is the one a read of the kernel gives.
    a.sample_live();
    assert_eq!(
        status.borrow().live["default/web"].table_hash,
        now.table_hash
    );
    // Nothing changed: nothing published.
    a.publish_programmed(rep.services.keys());
    assert!(!status.has_changed().unwrap());
}

#[test]
fn live_counters_are_read_in_steps_between_which_changes_are_synced() {
    let (mut a, mut status, _, _) = web_with_connections();
    status.mark_unchanged();
    a.begin_live();
    assert!(a.live_reading() && !a.resync_running());
    // A change arrives: synced at once, scoped, while the read runs.
    let rep = a.sync(&snapshot_of(FILES), false);
    assert!(rep.ok() && !rep.full, "{rep:?}");
    assert!(a.live_reading(), "the read goes on");
    let mut steps = 0;
    while a.live_reading() {
        assert!(a.step_check().is_none(), "a live read ends in no sync");
        steps += 1;
    }
    assert!(
        steps >= 2,
        "the destinations, then the service list: {steps}"
    );
    assert!(
        a.live_done.take().is_some(),
        "the loop schedules the next read"
    );
    assert!(a.live_read_once, "the first read is logged once");
    let live = status.borrow_and_update().live["default/web"].clone();
    assert_eq!(live.counters.active_connections, 3);
    assert_eq!(live.counters.inactive_connections, 4);
    // A resync while a live read runs: the check takes its place.
    a.begin_live();
    assert!(a.begin_check());
    assert!(a.resync_running() && !a.live_reading());
}

use super::*;
use lvs_api::manifest::parse;

const OBJECTS: &str = r#"
apiVersion: v1
kind: Node
metadata: {name: d1, labels: {lvs: director}}
status: {addresses: [{type: InternalIP, address: 10.0.0.1}]}
---
apiVersion: v1
kind: Node
metadata: {name: rs1}
status: {addresses: [{type: InternalIP, address: 10.0.0.11}]}
---
apiVersion: v1
kind: Node
metadata: {name: rs2}
status: {addresses: [{type: InternalIP, address: 10.0.0.12}]}
---
apiVersion: v1
kind: Node
metadata: {name: idle}
status: {addresses: [{type: InternalIP, address: 10.0.0.99}]}
---
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: VirtualService
metadata: {name: dr, namespace: default, generation: 4}
spec:
  address: 192.0.2.20
  port: 80
  forwarding: DR
  directors: {nodeSelector: {matchLabels: {lvs: director}}}
  realServerSelector: {matchLabels: {app: dr}}
---
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: VirtualService
metadata: {name: tun, namespace: default, generation: 7}
spec:
  address: 192.0.2.30
  port: 80
  forwarding: TUN
  directors: {nodeSelector: {matchLabels: {lvs: director}}}
  realServerSelector: {matchLabels: {app: tun}}
---
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: VirtualService
metadata: {name: nat, namespace: default, generation: 2}
spec:
  address: 192.0.2.10
  port: 8080
  forwarding: NAT
  directors: {nodeSelector: {matchLabels: {lvs: director}}}
  realServerSelector: {matchLabels: {app: nat}}
---
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: VirtualService
metadata: {name: dr-dup, namespace: default, generation: 1}
spec:
  address: 192.0.2.20
  port: 80
  forwarding: DR
  directors: {nodeSelector: {matchLabels: {lvs: director}}}
  realServerSelector: {matchLabels: {app: dr}}
---
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: RealServer
metadata: {name: dr-1, namespace: default, labels: {app: dr}}
spec: {nodeName: rs1}
---
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: RealServer
metadata: {name: tun-1, namespace: default, labels: {app: tun}}
spec: {nodeName: rs1}
---
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: RealServer
metadata: {name: tun-2, namespace: default, labels: {app: tun}}
spec: {nodeName: rs2}
---
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: RealServer
metadata: {name: nat-1, namespace: default, labels: {app: nat}}
spec: {nodeName: rs2, port: 80}
"#;

fn analysis() -> lvs_planner::Analysis {
    let mut m = lvs_api::manifest::ManifestSet::default();
    m.extend(parse(OBJECTS).unwrap());
    lvs_planner::analyze(&m.virtual_services, &m.real_servers, &m.nodes)
}

fn role(generation: i64, roles: &[&'static str]) -> NodeRole {
    NodeRole {
        generation: Some(generation),
        roles: roles.to_vec(),
    }
}

#[test]
fn roles_follow_the_verdicts_and_match_the_involved_nodes() {
    let a = analysis();
    let d1 = node_roles("d1", &a);
    assert_eq!(
        d1,
        [
            ("default/dr".to_string(), role(4, &[roles::DIRECTOR])),
            ("default/nat".to_string(), role(2, &[roles::DIRECTOR])),
            ("default/tun".to_string(), role(7, &[roles::DIRECTOR])),
        ]
        .into_iter()
        .collect()
    );
    let rs1 = node_roles("rs1", &a);
    assert_eq!(
        rs1,
        [
            ("default/dr".to_string(), role(4, &[roles::DR_REALSERVER])),
            ("default/tun".to_string(), role(7, &[roles::TUN_REALSERVER])),
        ]
        .into_iter()
        .collect()
    );
    // A NAT realserver's node has nothing to do: not involved.
    let rs2 = node_roles("rs2", &a);
    assert_eq!(rs2.keys().collect::<Vec<_>>(), ["default/tun"]);
    assert!(node_roles("idle", &a).is_empty());
    // Exactly the nodes the operator waits for.
    for v in a.accepted() {
        for n in ["d1", "rs1", "rs2", "idle"] {
            assert_eq!(
                v.involved_nodes().iter().any(|x| x == n),
                node_roles(n, &a).contains_key(&v.name),
                "{} on {n}",
                v.name
            );
        }
    }
    assert!(
        !d1.contains_key("default/dr-dup"),
        "a service in conflict is not programmed anywhere"
    );
}

#[test]
fn errors_go_to_their_service_and_node_errors_are_reported_once() {
    let a = analysis();
    let roles = node_roles("d1", &a);
    let clean = lvsnode_services(&roles, &SyncReport::default());
    assert_eq!(clean.len(), 3);
    assert!(clean.iter().all(|s| s.error.is_empty()), "{clean:?}");
    assert_eq!(clean[0].name, "default/dr");
    assert_eq!(clean[0].generation, Some(4));
    assert_eq!(clean[0].roles, ["director"]);

    let mut report = SyncReport::default();
    report.errors.push(SyncError::new(
        ErrorKind::ForeignService,
        Some("default/nat".into()),
        "TCP 192.0.2.10:8080 exists and was not created by the agent",
    ));
    let s = lvsnode_services(&roles, &report);
    let by: BTreeMap<_, _> = s.iter().map(|s| (s.name.as_str(), s)).collect();
    assert!(by["default/nat"].error.contains("not created by the agent"));
    assert!(by["default/dr"].error.is_empty());
    assert!(by["default/tun"].error.is_empty());
    assert!(node_errors(&report).is_empty());

    // Without an owner, or of a node-wide kind: once, not per entry.
    report.errors.push(SyncError::new(
        ErrorKind::Kernel,
        None,
        "sysctl net/ipv4/ip_forward: permission denied",
    ));
    for owner in ["default/dr", "default/nat", "default/tun"] {
        report.errors.push(SyncError::new(
            ErrorKind::IpvsUnavailable,
            Some(owner.into()),
            "IPVS is not available on this node",
        ));
    }
    let s = lvsnode_services(&roles, &report);
    assert!(
        s.iter()
            .all(|s| !s.error.contains("ip_forward") && !s.error.contains("IPVS")),
        "{s:?}"
    );
    let nat = s.iter().find(|s| s.name == "default/nat").unwrap();
    assert!(
        nat.error.contains("not created by the agent"),
        "{}",
        nat.error
    );
    assert_eq!(
        node_errors(&report),
        [
            "sysctl net/ipv4/ip_forward: permission denied",
            "IPVS is not available on this node"
        ]
    );
    // The status: every service failed, only the one with its own
    // error listed, the node errors once.
    let st = bounded_status(&s, &node_errors(&report), &[]);
    assert_eq!((st.programmed_count, st.error_count), (0, 3));
    assert_eq!(st.services.len(), 1);
    assert_eq!(st.services[0].name, "default/nat");
    assert_eq!(st.node_errors.len(), 2);
    assert_eq!(st.omitted_errors, 0);
    // Without node errors every entry is listed.
    let st = bounded_status(&clean, &[], &[]);
    assert_eq!((st.programmed_count, st.error_count), (3, 0));
    assert_eq!(st.services, clean);
}

#[test]
fn the_status_is_bounded_however_many_services_fail() {
    let n = 20_000;
    let services: Vec<lvs_api::ServiceReport> = (0..n)
        .map(|i| lvs_api::ServiceReport {
            name: format!("ns/vs-{i:05}"),
            generation: Some(1),
            roles: vec!["director".into()],
            error: format!(
                "TCP 10.{}.{}.1:80 exists and was not created by the agent, {}",
                i / 256 % 256,
                i % 256,
                "x".repeat(900)
            ),
            ..Default::default()
        })
        .collect();
    let many: Vec<String> = (0..100)
        .map(|i| format!("node problem {i}: {}", "y".repeat(2000)))
        .collect();
    let st = bounded_status(&services, &many, &many);
    assert_eq!(st.error_count as usize, n);
    assert_eq!(st.node_errors.len(), MAX_NODE_ERRORS);
    assert_eq!(st.unreadable.len(), MAX_NODE_ERRORS);
    assert!(st.node_errors.iter().all(|e| e.len() <= MAX_REPORT_ERROR));
    // Without the node errors: every failing service is listed, the
    // text within the budget.
    let st = bounded_status(&services, &[], &[]);
    assert_eq!(st.services.len(), n);
    let text: usize = st
        .services
        .iter()
        .filter(|s| s.error != ERROR_LEFT_OUT)
        .map(|s| s.error.len())
        .sum();
    assert!(text <= SERVICE_ERROR_BUDGET, "{text}");
    let left_out = st
        .services
        .iter()
        .filter(|s| s.error == ERROR_LEFT_OUT)
        .count();
    assert!(left_out > 0);
    assert_eq!(st.omitted_errors as usize, left_out);
    let bytes = serde_json::to_vec(&st).unwrap().len();
    assert!(
        bytes < SERVICE_ERROR_BUDGET + n * 160,
        "{bytes} bytes for {n} failing services"
    );
}

#[test]
fn a_repeated_error_is_logged_once_per_interval_with_a_count() {
    let t0 = Instant::now();
    let sec = Duration::from_secs(1);
    let mut log = ErrorLog::new(Duration::from_secs(60));
    let ipvs = |o: usize| {
        SyncError::new(
            ErrorKind::IpvsUnavailable,
            Some(format!("ns/vs-{o}")),
            "IPVS is not available on this node",
        )
    };
    let foreign = |o: usize| {
        SyncError::new(
            ErrorKind::ForeignService,
            Some(format!("ns/vs-{o}")),
            format!("TCP 10.0.0.{o}:80 exists and was not created by the agent"),
        )
    };
    let mut errors: Vec<SyncError> = (0..1000).map(ipvs).collect();
    errors.push(foreign(1));
    errors.push(foreign(2));
    // First sync: one line for the shared error, one per distinct one.
    let lines = log.lines(&errors, t0);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0].count, 1000);
    assert_eq!(lines[0].owners, ["ns/vs-0", "ns/vs-1", "ns/vs-2"]);
    assert_eq!(lines[0].repeated, 0);
    assert_eq!(lines[1].message, foreign(1).message);
    assert_eq!(lines[2].message, foreign(2).message);
    // Retries within the interval: nothing, except a new distinct error.
    for i in 1..10 {
        assert!(log.lines(&errors, t0 + sec * i).is_empty());
    }
    errors.push(foreign(3));
    let lines = log.lines(&errors, t0 + sec * 10);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].message, foreign(3).message);
    // After the interval: each once more, with how often it recurred.
    let lines = log.lines(&errors, t0 + sec * 61);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0].count, 1000);
    assert_eq!(lines[0].repeated, 10);
    assert!(log.lines(&errors, t0 + sec * 62).is_empty());
    let lines = log.lines(&errors, t0 + sec * 71);
    assert_eq!(lines.len(), 1, "foreign(3), logged at 10 s, is due at 70 s");
    assert_eq!(
        (lines[0].message.as_str(), lines[0].repeated),
        (foreign(3).message.as_str(), 2)
    );
    // Gone for good, then back: logged at once.
    assert!(log.lines(&[], t0 + sec * 200).is_empty());
    assert_eq!(log.lines(&errors[..1], t0 + sec * 201).len(), 1);
}

#[test]
fn long_errors_are_cut_on_a_char_boundary() {
    let roles: BTreeMap<String, NodeRole> =
        [("a/b".to_string(), role(1, &[roles::DIRECTOR]))].into();
    let mut report = SyncReport::default();
    report.errors.push(SyncError::new(
        ErrorKind::Kernel,
        Some("a/b".into()),
        "é".repeat(2000),
    ));
    let s = lvsnode_services(&roles, &report);
    assert!(s[0].error.len() <= MAX_REPORT_ERROR, "{}", s[0].error.len());
    assert!(s[0].error.ends_with("..."));
    let st = bounded_status(&[], &["é".repeat(2000)], &[]);
    assert!(st.node_errors[0].len() <= MAX_REPORT_ERROR);
}

fn failing_states(n: u32, total: u32) -> DestinationStates {
    let mut st = DestinationStates::new(total);
    for i in 0..n {
        st.entries.push(lvs_api::DestinationReport {
            destination: format!("10.{}.{}.{}:80", i / 65536, (i / 256) % 256, i % 256),
            real_server: format!("ns/rs-{i}"),
            state: lvs_api::DestinationState::Failing,
            last_error: "x".repeat(2000),
            ..Default::default()
        });
    }
    st.finish();
    st
}

#[test]
fn destination_states_go_to_their_service_with_exact_counts_and_a_bounded_size() {
    let names = ["ns/a", "ns/b", "ns/c"];
    let mut reports: Vec<lvs_api::ServiceReport> = names
        .iter()
        .map(|n| lvs_api::ServiceReport {
            name: n.to_string(),
            generation: Some(1),
            roles: vec![roles::DIRECTOR.into()],
            ..Default::default()
        })
        .collect();
    // ns/a: 10k destinations, all failing; ns/b: 2 of 3 healthy; ns/c: a
    // realserver-role entry with no director states.
    let states: BTreeMap<String, DestinationStates> = [
        ("ns/a".to_string(), failing_states(10_000, 10_000)),
        ("ns/b".to_string(), failing_states(1, 3)),
    ]
    .into();
    with_destinations(&mut reports, &states);
    assert_eq!(
        (reports[0].healthy, reports[0].total),
        (Some(0), Some(10_000))
    );
    assert_eq!((reports[1].healthy, reports[1].total), (Some(2), Some(3)));
    assert_eq!((reports[2].healthy, reports[2].total), (None, None));

    let st = bounded_status(&reports, &[], &[]);
    let a = &st.services[0];
    assert_eq!(a.destinations.len(), MAX_SERVICE_DESTINATIONS);
    assert_eq!(
        (a.healthy, a.total),
        (Some(0), Some(10_000)),
        "counts stay exact"
    );
    assert!(a.destinations[0].last_error.len() <= MAX_DESTINATION_ERROR);
    assert_eq!(
        st.services[1].destinations.len(),
        1,
        "a short list is kept whole"
    );
    assert_eq!(
        st.omitted_destinations as usize,
        10_000 - MAX_SERVICE_DESTINATIONS
    );
    let bytes = serde_json::to_vec(&st).unwrap().len();
    assert!(
        bytes < 16 * 1024,
        "{bytes} bytes for 10k failing destinations"
    );

    // Many services each with failing destinations: the total is capped.
    let many: Vec<lvs_api::ServiceReport> = (0..2000)
        .map(|i| lvs_api::ServiceReport {
            name: format!("ns/s{i:04}"),
            healthy: Some(0),
            total: Some(5),
            destinations: failing_states(5, 5).entries,
            ..Default::default()
        })
        .collect();
    let st = bounded_status(&many, &[], &[]);
    let listed: usize = st.services.iter().map(|s| s.destinations.len()).sum();
    assert_eq!(listed, MAX_DESTINATION_ENTRIES);
    assert_eq!(
        st.omitted_destinations as usize,
        2000 * 5 - MAX_DESTINATION_ENTRIES
    );
    assert!(st.services.iter().all(|s| s.total == Some(5)));
    let bytes = serde_json::to_vec(&st).unwrap().len();
    assert!(bytes < 512 * 1024, "{bytes} bytes");
}

#[test]
fn a_destination_keeps_its_since_while_its_state_lasts() {
    let mut before = failing_states(2, 2);
    before.carry_since(None, "2026-12-06T04:00:00Z");
    assert!(
        before
            .entries
            .iter()
            .all(|e| e.since.as_deref() == Some("2026-12-06T04:00:00Z"))
    );
    let mut now = failing_states(2, 2);
    now.entries[1].state = lvs_api::DestinationState::Unready;
    now.carry_since(Some(&before), "2026-12-06T04:05:00Z");
    assert_eq!(
        now.entries[0].since.as_deref(),
        Some("2026-12-06T04:00:00Z"),
        "still failing"
    );
    assert_eq!(
        now.entries[1].since.as_deref(),
        Some("2026-12-06T04:05:00Z"),
        "a new state"
    );
}

fn entry(port: u16, dests: &[(u8, u32, u32)]) -> lvs_ipvs::ServiceEntry {
    use lvs_ipvs::{
        DestConfig, DestEntry, DestKey, DestStats, Destination, Family, FwdMethod, Protocol,
        Service, ServiceConfig, ServiceKey, Stats,
    };
    lvs_ipvs::ServiceEntry {
        service: Service {
            key: ServiceKey::Tuple {
                addr: "192.0.2.10".parse().unwrap(),
                protocol: Protocol::TCP,
                port,
            },
            config: ServiceConfig::new(Family::V4, "rr"),
        },
        stats: Stats {
            conns: 100,
            in_pkts: 1000,
            out_pkts: 900,
            in_bytes: 64_000,
            out_bytes: 640_000,
            cps: 2,
            in_pps: 20,
            out_pps: 18,
            in_bps: 1280,
            out_bps: 12_800,
        },
        destinations: dests
            .iter()
            .map(|(last, weight, active)| DestEntry {
                destination: Destination {
                    key: DestKey {
                        addr: format!("10.0.0.{last}").parse().unwrap(),
                        port: 80,
                    },
                    config: DestConfig::new(FwdMethod::Masq, *weight),
                },
                stats: DestStats {
                    active_conns: *active,
                    inactive_conns: 1,
                    ..Default::default()
                },
            })
            .collect(),
    }
}

fn owning(owners: &[(u16, &str)]) -> crate::ledger::Ledger {
    let mut l = crate::ledger::Ledger::default();
    for (port, owner) in owners {
        l.services.insert(
            entry(*port, &[]).service.key,
            crate::ledger::OwnedService {
                owner: owner.to_string(),
                dests: Default::default(),
            },
        );
    }
    l
}

#[test]
fn live_states_keep_a_table_hash_only_while_its_settings_stay() {
    let l = owning(&[(80, "ns/web"), (443, "ns/other")]);
    let mut hashes = TableHashes::default();
    let table = |w: u32| [entry(80, &[(1, w, 3), (2, 1, 4)]), entry(443, &[(1, 1, 5)])];
    let hash = |es: &[lvs_ipvs::ServiceEntry], hashes: &mut TableHashes| {
        live_states(es, &l, "T", hashes)["ns/web"]
            .table_hash
            .clone()
    };
    let fresh = |es: &[lvs_ipvs::ServiceEntry]| table_hash(es.iter().take(1));
    let one = table(1);
    assert_eq!(hash(&one, &mut hashes), fresh(&one));
    // Other counters, the same settings: the same hash.
    let mut busier = table(1);
    busier[0].destinations[0].stats.active_conns += 7;
    assert_eq!(hash(&busier, &mut hashes), fresh(&one));
    // Another weight: the hash follows, and comes back with the weight.
    let two = table(2);
    assert_ne!(fresh(&two), fresh(&one));
    assert_eq!(hash(&two, &mut hashes), fresh(&two));
    assert_eq!(hash(&one, &mut hashes), fresh(&one));
    // Destinations in another order: the same hash.
    let mut swapped = table(1);
    swapped[0].destinations.reverse();
    assert_eq!(hash(&swapped, &mut hashes), fresh(&one));
}

#[test]
fn live_states_sum_a_virtual_services_services_and_leave_out_foreign_ones() {
    let entries = [
        entry(80, &[(1, 1, 3), (2, 1, 4)]),
        entry(443, &[(1, 1, 5)]),
        entry(8080, &[(9, 1, 50)]),
    ];
    let live = live_states(
        &entries,
        &owning(&[(80, "ns/web"), (443, "ns/web")]),
        "T",
        &mut TableHashes::default(),
    );
    assert_eq!(
        live.keys().collect::<Vec<_>>(),
        ["ns/web"],
        "8080 is foreign"
    );
    let c = &live["ns/web"].counters;
    assert_eq!(
        (c.active_connections, c.inactive_connections, c.connections),
        (12, 3, 200)
    );
    assert_eq!((c.in_packets, c.out_packets), (2000, 1800));
    assert_eq!((c.in_bytes, c.out_bytes), (128_000, 1_280_000));
    assert_eq!(
        (c.cps, c.in_pps, c.out_pps, c.in_bps, c.out_bps),
        (4, 40, 36, 2560, 25_600)
    );
    assert_eq!(live["ns/web"].time, "T");
}

#[test]
fn the_table_hash_covers_settings_not_order_or_counters() {
    let a = [entry(80, &[(1, 1, 0), (2, 1, 0)]), entry(443, &[(1, 1, 0)])];
    let h = table_hash(&a);
    assert_eq!(h.len(), 16);
    // Another order of services and destinations, other counters: the same.
    let mut b = [entry(443, &[(1, 1, 7)]), entry(80, &[(2, 1, 9), (1, 1, 3)])];
    b[0].stats.conns = 5;
    assert_eq!(table_hash(&b), h);
    // A weight, a scheduler, a destination more: another hash.
    assert_ne!(
        table_hash(&[entry(80, &[(1, 2, 0), (2, 1, 0)]), entry(443, &[(1, 1, 0)])]),
        h
    );
    let mut c = a.clone();
    c[0].service.config.scheduler = "wlc".into();
    assert_ne!(table_hash(&c), h);
    assert_ne!(
        table_hash(&[
            entry(80, &[(1, 1, 0), (2, 1, 0), (3, 1, 0)]),
            entry(443, &[(1, 1, 0)])
        ]),
        h
    );
    // Stable across builds and hosts: a fixed value for a fixed table.
    assert_eq!(table_hash(&[entry(80, &[(1, 1, 0)])]), "92861cd10cbbfc2d");
}

#[test]
fn merge_live_keeps_the_time_of_unchanged_entries() {
    let one = |conns: u64, time: &str| LiveState {
        counters: lvs_api::TrafficCounters {
            connections: conns,
            ..Default::default()
        },
        time: time.into(),
        table_hash: "h".into(),
    };
    let mut live = BTreeMap::new();
    assert!(merge_live(
        &mut live,
        [("a".to_string(), one(1, "t1"))].into()
    ));
    assert!(!merge_live(
        &mut live,
        [("a".to_string(), one(1, "t2"))].into()
    ));
    assert_eq!(live["a"].time, "t1");
    assert!(merge_live(
        &mut live,
        [("a".to_string(), one(2, "t3"))].into()
    ));
    assert_eq!(live["a"].time, "t3");
    assert!(merge_live(&mut live, BTreeMap::new()), "an entry went");
    assert!(live.is_empty());
}

#[test]
fn drift_reports_group_by_virtual_service_and_cap_the_list() {
    use crate::reconcile::drift::{Drift, DriftKind};
    let d: Vec<Drift> = (0..12)
        .map(|i| Drift {
            kind: DriftKind::DestinationChanged,
            owner: if i < 10 { "ns/a" } else { "ns/b" }.into(),
            what: format!("destination 10.0.0.{i}:80 weight 0 -> 1 restored"),
        })
        .collect();
    let r = drift_reports(&d, "T");
    assert_eq!(r["ns/a"].count, 10);
    assert_eq!(r["ns/a"].repaired.len(), MAX_DRIFT_ENTRIES);
    assert_eq!(r["ns/b"].count, 2);
    assert_eq!(r["ns/b"].time, "T");
}

#[test]
fn ipvs_writes_are_told_apart_from_other_writes() {
    use lvs_ipvs::{DestKey, Family, Op, ServiceKey};
    let svc = ServiceKey::Fwmark {
        family: Family::V4,
        mark: 1,
    };
    let dest = DestKey {
        addr: "10.0.0.1".parse().unwrap(),
        port: 80,
    };
    for op in [Op::DelService(svc), Op::DelDest { service: svc, dest }] {
        assert!(changes_ipvs(op.kind()), "{}", op.kind());
    }
    for kind in [
        "addr_add",
        "sysctl_set",
        "tunnel_up",
        "nft_replace",
        "daemon_start",
    ] {
        assert!(!changes_ipvs(kind), "{kind}");
    }
}

/// A director's report of `n` services with live state, as 10k
/// VirtualServices with traffic make it.
fn live_reports(n: usize) -> Vec<lvs_api::ServiceReport> {
    (0..n)
        .map(|i| lvs_api::ServiceReport {
            name: format!("default/svc-{i:05}"),
            generation: Some(1),
            roles: vec!["director".into()],
            healthy: Some(10),
            total: Some(10),
            counters: Some(lvs_api::TrafficCounters {
                active_connections: 12,
                connections: 123_456_789,
                in_packets: 1_234_567_890,
                out_packets: 1_234_567_890,
                in_bytes: 123_456_789_012,
                out_bytes: 123_456_789_012,
                cps: 100,
                in_pps: 10_000,
                out_pps: 10_000,
                in_bps: 1_000_000,
                out_bps: 1_000_000,
                ..Default::default()
            }),
            counters_time: Some("2026-12-07T16:50:00Z".into()),
            table_hash: Some("0123456789abcdef".into()),
            ..Default::default()
        })
        .collect()
}

#[test]
fn a_large_status_sheds_live_state_from_its_last_entries_to_fit_the_limit() {
    let reports = live_reports(10_000);
    let mut st = bounded_status(&reports, &[], &[]);
    let full = serde_json::to_vec(&st).unwrap().len();
    assert!(full > 3 << 20, "{full} bytes: over the API server's limit");
    within_size(&mut st);
    let bytes = serde_json::to_vec(&st).unwrap().len();
    assert!(bytes <= MAX_STATUS_BYTES, "{bytes} bytes");
    let kept = st.services.iter().filter(|s| s.counters.is_some()).count();
    assert_eq!(st.omitted_live as usize, 10_000 - kept);
    assert!(
        kept > 0 && kept < 10_000,
        "{kept} entries kept their counters"
    );
    // The first entries by name keep theirs, the rest lose all of it.
    assert!(
        st.services[..kept]
            .iter()
            .all(|s| s.counters.is_some() && s.counters_time.is_some() && s.table_hash.is_some())
    );
    assert!(
        st.services[kept..]
            .iter()
            .all(|s| s.counters.is_none() && s.counters_time.is_none() && s.table_hash.is_none())
    );
    // Every entry keeps what the operator needs.
    assert_eq!(st.services.len(), 10_000);
    assert!(
        st.services
            .iter()
            .zip(&reports)
            .all(|(s, r)| s.name == r.name
                && s.generation == Some(1)
                && s.roles == ["director"]
                && s.total == Some(10))
    );
    assert_eq!(st.programmed_count, 10_000);
    // No more was shed than the limit needs: one entry's live state back
    // goes over it.
    let mut one_more = st.clone();
    one_more.services[kept].counters = reports[kept].counters.clone();
    one_more.services[kept].counters_time = reports[kept].counters_time.clone();
    one_more.services[kept].table_hash = reports[kept].table_hash.clone();
    let over = serde_json::to_vec(&one_more).unwrap().len();
    assert!(
        over > MAX_STATUS_BYTES,
        "{over} bytes with one more entry's live state"
    );
}

#[test]
fn a_status_within_its_limit_keeps_all_of_its_live_state() {
    let reports = live_reports(100);
    let mut st = bounded_status(&reports, &[], &[]);
    let before = st.clone();
    within_size(&mut st);
    assert_eq!(st, before);
    assert_eq!(st.omitted_live, 0);
    // The same status under a limit its live state does not fit: each
    // limit is met exactly as far as the entries allow.
    for limit in [20_000, 15_000, 100] {
        let mut small = before.clone();
        within_bytes(&mut small, limit);
        let bytes = serde_json::to_vec(&small).unwrap().len();
        let kept = small
            .services
            .iter()
            .filter(|s| s.counters.is_some())
            .count();
        assert_eq!(small.omitted_live as usize, 100 - kept);
        if kept > 0 {
            assert!(bytes <= limit, "{bytes} bytes over {limit}");
        } else {
            // Nothing left to shed: the entries stay whole.
            assert_eq!(small.services.len(), 100);
        }
    }
}

#[test]
fn table_hashes_outlive_a_read_of_a_few_services_and_go_with_their_services() {
    let l = owning(&[(80, "ns/web"), (443, "ns/other")]);
    let table = [entry(80, &[(1, 1, 3)]), entry(443, &[(1, 1, 5)])];
    let mut hashes = TableHashes::default();
    let whole = live_states(&table, &l, "T", &mut hashes);
    hashes.keep_only(&whole);
    let kept = |h: &TableHashes| {
        let mut k: Vec<String> = h.0.keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(kept(&hashes), ["ns/other", "ns/web"]);
    // After a change to ns/web alone, its services are read alone: ns/other
    // keeps its hash, so the next whole read does not write its text again.
    live_states(&table[..1], &l, "T", &mut hashes);
    assert_eq!(kept(&hashes), ["ns/other", "ns/web"]);
    // A whole read without ns/other forgets it.
    let without = live_states(&table[..1], &l, "T", &mut hashes);
    hashes.keep_only(&without);
    assert_eq!(kept(&hashes), ["ns/web"]);
}

#[test]
fn live_states_in_steps_equal_live_states_at_once() {
    let owners: Vec<(u16, String)> = (1..=300u16)
        .map(|p| (p, format!("ns/vs{}", p % 150)))
        .collect();
    let o: Vec<(u16, &str)> = owners.iter().map(|(p, s)| (*p, s.as_str())).collect();
    let l = owning(&o);
    let mut entries: Vec<_> = (1..=300u16)
        .map(|p| entry(p, &[(1, 1, u32::from(p)), (2, 2, 1)]))
        .collect();
    entries.push(entry(9000, &[(1, 1, 1)])); // foreign
    let at_once = live_states(&entries, &l, "T", &mut TableHashes::default());
    assert_eq!(at_once.len(), 150);

    let mut hashes = TableHashes::default();
    let mut b = LiveBuild::new("T".into());
    let mut steps = 1;
    while !b.step(&entries, &l, &mut hashes, Duration::ZERO) {
        steps += 1;
    }
    // A step with no time left still handles one batch, 64 at a time: the
    // 301 entries in 5 steps, then the 150 owners in 3, the last of which
    // ends the build.
    assert_eq!(steps, 5 + 3);
    assert_eq!(b.into_live(), at_once);
    assert_eq!(hashes.0.len(), 150);
}

use super::*;
use lvs_api::Protocol;

fn key() -> ServiceKey {
    ServiceKey::Tuple {
        addr: "192.0.2.20".parse().unwrap(),
        protocol: Protocol::Tcp,
        port: 80,
    }
}

fn fwmark() -> ServiceKey {
    ServiceKey::Fwmark {
        mark: 7,
        ipv6: false,
    }
}

fn report(owner: &str, generation: i64, roles: &[&str], error: &str) -> NodeReadiness {
    NodeReadiness {
        node_errors: String::new(),
        services: [(
            owner.to_string(),
            ServiceReadiness {
                generation: Some(generation),
                roles: roles.iter().map(|r| r.to_string()).collect(),
                error: error.into(),
            },
        )]
        .into(),
    }
}

/// (report, key, method, generation, confirmed, the expected problem).
type Case = (
    Option<NodeReadiness>,
    ServiceKey,
    ForwardingMethod,
    i64,
    bool,
    Option<&'static str>,
);

#[test]
fn a_realserver_node_is_ready_only_with_the_current_generation_its_role_and_no_error() {
    use ForwardingMethod::{Dr, Tun};
    let dr = report("ns/vs", 3, &["dr-realserver"], "");
    let node_err = NodeReadiness {
        node_errors: "IPVS is not available".into(),
        ..dr.clone()
    };
    let cases: Vec<Case> = vec![
        (Some(dr.clone()), key(), Dr, 3, false, None),
        (
            None,
            key(),
            Dr,
            3,
            false,
            Some("node rs1 has no LvsNode: its agent is not running (or not yet up)"),
        ),
        (
            Some(NodeReadiness::default()),
            key(),
            Dr,
            3,
            false,
            Some("node rs1's agent has not set up ns/vs yet"),
        ),
        (
            Some(report("ns/other", 3, &["dr-realserver"], "")),
            key(),
            Dr,
            3,
            false,
            Some("node rs1's agent has not set up ns/vs yet"),
        ),
        (
            Some(dr.clone()),
            key(),
            Dr,
            4,
            false,
            Some("node rs1 has set up generation 3 of ns/vs, waiting for 4"),
        ),
        // Ready before for this service key: an edit the realserver has not
        // caught up with keeps it in.
        (Some(dr.clone()), key(), Dr, 4, true, None),
        (
            Some(report(
                "ns/vs",
                3,
                &["dr-realserver"],
                "adding the VIP to lo: EPERM",
            )),
            key(),
            Dr,
            3,
            true,
            Some("node rs1 reports for ns/vs: adding the VIP to lo: EPERM"),
        ),
        (
            Some(node_err),
            key(),
            Dr,
            3,
            true,
            Some("node rs1 reports: IPVS is not available"),
        ),
        (
            Some(dr.clone()),
            key(),
            Tun,
            3,
            false,
            Some("node rs1 reports ns/vs without the tun-realserver role (roles: dr-realserver)"),
        ),
        (
            Some(report("ns/vs", 3, &["tun-realserver"], "")),
            key(),
            Tun,
            3,
            false,
            None,
        ),
        (
            Some(report("ns/vs", 3, &[], "")),
            key(),
            Dr,
            3,
            false,
            Some("node rs1 reports ns/vs without the dr-realserver role (roles: none)"),
        ),
        // A fwmark service's realserver has nothing to set up.
        (
            Some(report("ns/vs", 3, &[], "")),
            fwmark(),
            Dr,
            3,
            false,
            None,
        ),
        // A node that directs the service too reports only that role.
        (
            Some(report("ns/vs", 3, &["director"], "")),
            key(),
            Dr,
            3,
            false,
            None,
        ),
    ];
    for (i, (r, k, m, g, c, want)) in cases.into_iter().enumerate() {
        let got = not_ready("rs1", r.as_ref(), "ns/vs", &k, m, Some(g), c);
        assert_eq!(got.as_deref(), want, "case {i}");
    }
}

fn dest(addr: &str, node: Option<&str>, method: ForwardingMethod) -> PlannedDestination {
    PlannedDestination {
        addr: addr.parse().unwrap(),
        port: 80,
        method,
        weight: 5,
        upper_threshold: 0,
        lower_threshold: 0,
        tunnel: None,
        owner: format!("ns/{addr}").into(),
        node: node.map(str::to_string),
        state: RealServerState::Active,
    }
}

fn plan(generation: i64) -> NodePlan {
    NodePlan {
        node: "d1".into(),
        services: vec![lvs_planner::PlannedService {
            key: key(),
            scheduler: Default::default(),
            flags: vec![],
            persistence: None,
            destinations: vec![
                dest("10.0.0.11", Some("rs1"), ForwardingMethod::Dr),
                dest("10.0.0.12", Some("rs2"), ForwardingMethod::Dr),
                dest("10.0.0.13", None, ForwardingMethod::Dr),
                dest("10.0.0.1", Some("d1"), ForwardingMethod::Dr),
            ],
            owner: "ns/vs".into(),
            generation: Some(generation),
            health: None,
            sorry_server: None,
            quorum: 1,
            drain_timeout_seconds: 0,
        }],
        ..Default::default()
    }
}

fn weights(p: &NodePlan) -> Vec<u32> {
    p.services[0]
        .destinations
        .iter()
        .map(|d| d.weight)
        .collect()
}

#[test]
fn unready_realserver_nodes_get_weight_zero_and_come_back_when_ready() {
    let mut gate = Gate::default();
    let ready = report("ns/vs", 3, &["dr-realserver"], "");
    // rs1 ready, rs2 without an agent; an address without node and the
    // director itself are never gated.
    gate.set_reports([("rs1".to_string(), ready.clone())].into());
    let mut p = plan(3);
    let mut states = BTreeMap::new();
    gate.apply("d1", &mut p, None, &mut states);
    assert_eq!(weights(&p), [5, 0, 5, 5]);
    let st = &states["ns/vs"];
    assert_eq!(st.entries.len(), 1);
    assert_eq!(st.entries[0].destination, "10.0.0.12:80");
    assert_eq!(st.entries[0].state, DestinationState::Unready);
    assert!(st.entries[0].last_error.contains("no LvsNode"), "{st:?}");

    // rs2's agent comes up: only the service with destinations there is
    // named for a re-sync, and its weight comes back.
    let both: Readiness = [
        ("rs1".to_string(), ready.clone()),
        ("rs2".to_string(), ready.clone()),
    ]
    .into();
    assert_eq!(
        gate.set_reports(both.clone()),
        BTreeSet::from(["ns/vs".to_string()])
    );
    let mut p = plan(3);
    let mut states = BTreeMap::new();
    gate.apply(
        "d1",
        &mut p,
        Some(&BTreeSet::from(["ns/vs".to_string()])),
        &mut states,
    );
    assert_eq!(weights(&p), [5, 5, 5, 5]);
    assert!(states.is_empty(), "{states:?}");

    // A report from a node with no gated destination re-syncs nothing.
    let mut more = both.clone();
    more.insert("other".into(), ready.clone());
    assert!(gate.set_reports(more).is_empty());

    // Draining and inactive destinations are not gated: their state stays.
    let mut p = plan(3);
    p.services[0].destinations[1].state = RealServerState::Draining;
    p.services[0].destinations[1].weight = 0;
    let mut gate2 = Gate::default();
    gate2.set_reports(Readiness::new());
    let mut states = BTreeMap::new();
    gate2.apply("d1", &mut p, None, &mut states);
    assert_eq!(weights(&p), [0, 0, 5, 5]);
    assert_eq!(states["ns/vs"].entries.len(), 1, "only rs1 noted Unready");
    assert_eq!(states["ns/vs"].entries[0].destination, "10.0.0.11:80");

    // An edit (generation 4) the realservers have not caught up with: both
    // were confirmed for this key, so they keep their weight.
    let mut p = plan(4);
    let mut states = BTreeMap::new();
    gate.apply("d1", &mut p, None, &mut states);
    assert_eq!(weights(&p), [5, 5, 5, 5]);

    // rs1 reports a problem: out; the confirmation is gone with it, so an
    // error-free report at the old generation does not bring it back.
    let mut broken: Readiness = both.clone();
    broken.insert(
        "rs1".into(),
        report("ns/vs", 3, &["dr-realserver"], "EPERM"),
    );
    gate.set_reports(broken);
    let mut p = plan(4);
    let mut states = BTreeMap::new();
    gate.apply("d1", &mut p, None, &mut states);
    assert_eq!(weights(&p), [0, 5, 5, 5]);
    gate.set_reports(both);
    let mut p = plan(4);
    let mut states = BTreeMap::new();
    gate.apply("d1", &mut p, None, &mut states);
    assert_eq!(weights(&p), [0, 5, 5, 5]);
    assert!(
        states["ns/vs"].entries[0]
            .last_error
            .contains("waiting for 4")
    );
}

/// `status` read the way the agent reads it: from the JSON the API server
/// sends.
fn as_sent(status: &lvs_api::LvsNodeStatus) -> NodeReadiness {
    serde_json::from_value(serde_json::to_value(status).unwrap()).unwrap()
}

#[test]
fn only_what_gating_reads_makes_a_change() {
    let mut a = lvs_api::LvsNodeStatus {
        last_sync_time: Some("2026-12-06T04:00:00Z".into()),
        services: vec![lvs_api::ServiceReport {
            name: "ns/vs".into(),
            generation: Some(2),
            roles: vec!["dr-realserver".into()],
            ..Default::default()
        }],
        ..Default::default()
    };
    let before = as_sent(&a);
    a.last_sync_time = Some("2026-12-06T04:01:00Z".into());
    a.services[0].healthy = Some(1);
    a.programmed_count = 1;
    assert_eq!(as_sent(&a), before);
    a.services[0].generation = Some(3);
    let after = as_sent(&a);
    assert_ne!(after, before);
    let old: Readiness = [("rs1".to_string(), before)].into();
    let new: Readiness = [("rs1".to_string(), after)].into();
    assert_eq!(
        changed_nodes(&old, &new),
        BTreeSet::from(["rs1".to_string()])
    );
    assert_eq!(
        changed_nodes(&old, &Readiness::new()),
        BTreeSet::from(["rs1".to_string()])
    );
}

#[test]
fn gating_reads_its_fields_from_the_status_json_and_skips_the_rest() {
    let status = lvs_api::LvsNodeStatus {
        node_errors: vec!["IPVS missing".into(), "ledger unreadable".into()],
        services: vec![
            lvs_api::ServiceReport {
                name: "ns/a".into(),
                generation: Some(7),
                roles: vec!["director".into(), "tun-realserver".into()],
                error: "VIP taken".into(),
                healthy: Some(1),
                total: Some(2),
                table_hash: Some("abc".into()),
                counters_time: Some("2026-12-06T04:00:00Z".into()),
                ..Default::default()
            },
            lvs_api::ServiceReport {
                name: "ns/b".into(),
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let r = as_sent(&status);
    assert_eq!(r.node_errors, "IPVS missing; ledger unreadable");
    assert_eq!(
        r.services["ns/a"],
        ServiceReadiness {
            generation: Some(7),
            roles: vec!["director".into(), "tun-realserver".into()],
            error: "VIP taken".into(),
        }
    );
    assert_eq!(r.services["ns/b"], ServiceReadiness::default());
    assert_eq!(r.services.len(), 2);
}

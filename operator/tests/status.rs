//! Status computation from planner verdicts and LvsNode reports.
//!
//! Longer than most files: one table of cases per condition, sharing the
//! fixtures at the top.

use std::collections::BTreeMap;

use lvs_api::status::types;
use lvs_api::{
    Condition, DirectorRole, Meta, NodeInfo, Object, RealServerSpec, ServiceReport, VipRole,
    VirtualServiceSpec, VirtualServiceStatus,
};
use lvs_operator::status::{
    self, EventSpec, NodeReports, NodeState, PendingWhy, director_events, drift_events, folded,
    needs_write, node_states, rs_events, rs_status, vs_events, vs_status,
};
use lvs_planner::{Analysis, analyze};
use serde_json::json;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn vs(
    name: &str,
    created: &str,
    generation: i64,
    spec: serde_json::Value,
) -> Object<VirtualServiceSpec> {
    Object {
        meta: Meta {
            namespace: "default".into(),
            name: name.into(),
            creation_timestamp: Some(created.into()),
            generation: Some(generation),
            ..Default::default()
        },
        spec: serde_json::from_value(spec).expect("valid VirtualService spec"),
    }
}

fn web_spec(address: &str, forwarding: &str) -> serde_json::Value {
    json!({
        "address": address, "port": 80, "forwarding": forwarding,
        "directors": {"nodeSelector": {"matchLabels": {"role": "director"}}},
        "realServerSelector": {"matchLabels": {"app": "web"}},
    })
}

fn rs(name: &str, l: &[(&str, &str)], spec: serde_json::Value) -> Object<RealServerSpec> {
    Object {
        meta: Meta {
            namespace: "default".into(),
            name: name.into(),
            labels: labels(l),
            generation: Some(1),
            ..Default::default()
        },
        spec: serde_json::from_value(spec).expect("valid RealServer spec"),
    }
}

fn node(name: &str, l: &[(&str, &str)], ip: &str) -> NodeInfo {
    NodeInfo {
        name: name.into(),
        labels: labels(l),
        internal_ips: vec![ip.parse().unwrap()],
    }
}

fn directors() -> Vec<NodeInfo> {
    vec![
        node("d1", &[("role", "director")], "10.0.0.1"),
        node("d2", &[("role", "director")], "10.0.0.2"),
        node("w1", &[], "10.0.0.11"),
    ]
}

fn cond<'a>(s: &'a VirtualServiceStatus, t: &str) -> &'a Condition {
    s.conditions
        .iter()
        .find(|c| c.type_ == t)
        .unwrap_or_else(|| panic!("no {t} condition in {:?}", s.conditions))
}

fn status_of(
    analysis: &Analysis,
    o: &Object<VirtualServiceSpec>,
    reports: &NodeReports,
    now: &str,
) -> VirtualServiceStatus {
    let v = analysis.get(&o.meta.key()).expect("verdict");
    vs_status(None, &o.spec, "default", v, reports, now)
}

fn report(name: &str, generation: i64, error: &str) -> ServiceReport {
    ServiceReport {
        name: name.into(),
        generation: Some(generation),
        roles: vec!["director".into()],
        error: error.into(),
        ..Default::default()
    }
}

#[test]
fn accepted_service_with_ready_realservers() {
    let web = vs(
        "web",
        "2024-01-01T00:00:00Z",
        3,
        web_spec("192.0.2.10", "NAT"),
    );
    let rss = vec![
        rs(
            "a",
            &[("app", "web")],
            json!({"address": "10.1.0.1", "port": 8080}),
        ),
        rs(
            "b",
            &[("app", "web")],
            json!({"address": "10.1.0.2", "port": 8080}),
        ),
        rs("other", &[("app", "db")], json!({"address": "10.1.0.3"})),
    ];
    let analysis = analyze(std::slice::from_ref(&web), &rss, &directors());
    let s = status_of(&analysis, &web, &NodeReports::default(), "T1");

    assert_eq!(s.observed_generation, Some(3));
    assert_eq!(s.endpoint.as_deref(), Some("192.0.2.10:80/TCP"));
    assert_eq!(s.directors, ["d1", "d2"]);
    let counts = s.real_servers.clone().unwrap();
    assert_eq!(
        (counts.selected, counts.ready, counts.summary.as_str()),
        (2, 2, "2/2")
    );
    let ready = cond(&s, types::READY);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "Ready")
    );
    assert_eq!(ready.message, "2/2 realservers ready");
    assert_eq!(ready.observed_generation, Some(3));
    assert_eq!(ready.last_transition_time, "T1");
    assert_eq!(cond(&s, types::CONFLICT).status, "False");
    assert_eq!(cond(&s, types::INVALID).status, "False");
    // No agent has reported yet.
    let p = cond(&s, types::PROGRAMMED);
    assert_eq!((p.status.as_str(), p.reason.as_str()), ("False", "Pending"));
    assert!(
        p.message.contains("d1 (no LvsNode)") && p.message.contains("d2 (no LvsNode)"),
        "{}",
        p.message
    );
    assert!(p.message.contains("generation 3"), "{}", p.message);
    assert_eq!(
        s.nodes,
        BTreeMap::from([
            ("d1".into(), "Pending".into()),
            ("d2".into(), "Pending".into())
        ])
    );
}

#[test]
fn younger_service_with_the_same_address_is_in_conflict() {
    let old = vs(
        "old",
        "2024-01-01T00:00:00Z",
        1,
        web_spec("192.0.2.10", "NAT"),
    );
    let young = vs(
        "young",
        "2024-02-01T00:00:00Z",
        1,
        web_spec("192.0.2.10", "NAT"),
    );
    let rss = vec![rs("a", &[("app", "web")], json!({"address": "10.1.0.1"}))];
    let analysis = analyze(&[young.clone(), old.clone()], &rss, &directors());

    let winner = status_of(&analysis, &old, &NodeReports::default(), "T");
    assert_eq!(cond(&winner, types::CONFLICT).status, "False");
    assert_eq!(cond(&winner, types::READY).status, "True");

    let loser = status_of(&analysis, &young, &NodeReports::default(), "T");
    let c = cond(&loser, types::CONFLICT);
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("True", "Conflict"));
    assert!(
        c.message
            .contains("192.0.2.10:80/TCP is already served by default/old"),
        "{}",
        c.message
    );
    let ready = cond(&loser, types::READY);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "Conflict")
    );
    let p = cond(&loser, types::PROGRAMMED);
    assert_eq!(
        (p.status.as_str(), p.reason.as_str()),
        ("False", "NotAccepted")
    );
    assert!(
        loser.nodes.is_empty(),
        "a loser involves no node: {:?}",
        loser.nodes
    );
    // The counts still describe what the selector picks.
    assert_eq!(loser.real_servers.unwrap().summary, "1/1");
}

#[test]
fn invalid_service_names_the_field() {
    let mut spec = web_spec("192.0.2.10", "NAT");
    spec["port"] = json!(0);
    let bad = vs("bad", "2024-01-01T00:00:00Z", 2, spec);
    let analysis = analyze(std::slice::from_ref(&bad), &[], &directors());
    let s = status_of(&analysis, &bad, &NodeReports::default(), "T");
    let inv = cond(&s, types::INVALID);
    assert_eq!(inv.status, "True");
    assert!(inv.message.contains("spec.port"), "{}", inv.message);
    let ready = cond(&s, types::READY);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "Invalid")
    );
    assert_eq!(cond(&s, types::CONFLICT).status, "False");
    assert_eq!(cond(&s, types::PROGRAMMED).reason, "NotAccepted");
}

#[test]
fn not_ready_without_usable_realservers() {
    let none = vs(
        "none",
        "2024-01-01T00:00:00Z",
        1,
        web_spec("192.0.2.10", "NAT"),
    );
    let analysis = analyze(std::slice::from_ref(&none), &[], &directors());
    let s = status_of(&analysis, &none, &NodeReports::default(), "T");
    assert_eq!(cond(&s, types::READY).reason, "NoRealServers");
    assert_eq!(s.real_servers.unwrap().summary, "0/0");

    // DR cannot map ports: the only realserver is unusable.
    let dr = vs(
        "dr",
        "2024-01-01T00:00:00Z",
        1,
        web_spec("192.0.2.11", "DR"),
    );
    let rss = vec![rs(
        "mapped",
        &[("app", "web")],
        json!({"address": "10.1.0.1", "port": 8080}),
    )];
    let analysis = analyze(std::slice::from_ref(&dr), &rss, &directors());
    let s = status_of(&analysis, &dr, &NodeReports::default(), "T");
    let ready = cond(&s, types::READY);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "NoReadyRealServers")
    );
    assert!(
        ready
            .message
            .contains("default/mapped: spec.port: 8080 differs"),
        "{}",
        ready.message
    );
    assert_eq!(s.real_servers.unwrap().summary, "0/1");
}

fn dr_world() -> (Object<VirtualServiceSpec>, Analysis) {
    let dr = vs(
        "dr",
        "2024-01-01T00:00:00Z",
        4,
        web_spec("192.0.2.20", "DR"),
    );
    let rss = vec![rs("w1", &[("app", "web")], json!({"nodeName": "w1"}))];
    let analysis = analyze(std::slice::from_ref(&dr), &rss, &directors());
    (dr, analysis)
}

#[test]
fn programmed_needs_every_director_and_dr_realserver_node_at_the_current_generation() {
    let (dr, analysis) = dr_world();
    let name = "default/dr";
    let all_ok = NodeReports::new([
        ("d1".to_string(), vec![report(name, 4, "")]),
        ("d2".to_string(), vec![report(name, 4, "")]),
        ("w1".to_string(), vec![report(name, 4, "")]),
    ]);
    let s = status_of(&analysis, &dr, &all_ok, "T");
    let p = cond(&s, types::PROGRAMMED);
    assert_eq!(
        (p.status.as_str(), p.reason.as_str()),
        ("True", "Programmed"),
        "{}",
        p.message
    );
    assert_eq!(p.message, "generation 4 programmed on d1, d2, w1");
    assert_eq!(s.nodes.len(), 3);
    assert!(s.nodes.values().all(|v| v == "Programmed"), "{:?}", s.nodes);
    // Ready follows the realservers, not the programming.
    assert_eq!(cond(&s, types::READY).status, "True");

    // The realserver node is still at the previous generation, d2 has no entry.
    let pending = NodeReports::new([
        ("d1".to_string(), vec![report(name, 4, "")]),
        ("d2".to_string(), vec![report("default/other", 4, "")]),
        ("w1".to_string(), vec![report(name, 3, "")]),
    ]);
    let s = status_of(&analysis, &dr, &pending, "T");
    let p = cond(&s, types::PROGRAMMED);
    assert_eq!((p.status.as_str(), p.reason.as_str()), ("False", "Pending"));
    assert_eq!(
        p.message,
        "waiting for d2 (not reported), w1 (at generation 3) to program generation 4"
    );
    assert_eq!(s.nodes["d1"], "Programmed");
    assert_eq!(s.nodes["d2"], "Pending");
    assert_eq!(s.nodes["w1"], "Pending");

    // An error at the current generation wins over pending nodes.
    let failed = NodeReports::new([
        (
            "d1".to_string(),
            vec![report(name, 4, "EINVAL adding service")],
        ),
        ("d2".to_string(), vec![report(name, 4, "")]),
    ]);
    let s = status_of(&analysis, &dr, &failed, "T");
    let p = cond(&s, types::PROGRAMMED);
    assert_eq!((p.status.as_str(), p.reason.as_str()), ("False", "Failed"));
    assert_eq!(
        p.message,
        "generation 4 failed on d1: EINVAL adding service; still pending: w1 (no LvsNode)"
    );
    assert_eq!(s.nodes["d1"], "Failed");

    // An error reported for an older generation is only pending.
    let stale_error = NodeReports::new([("d1".to_string(), vec![report(name, 3, "old")])]);
    let verdict = analysis.get(name).unwrap();
    assert_eq!(
        node_states(verdict, Some(4), &stale_error)["d1"],
        NodeState::Pending(PendingWhy::Generation(Some(3)))
    );

    // A node-level error (status.nodeErrors) fails the service on that node
    // even though the node lists no entry for it, or an older one; the
    // node's own error for the service comes first.
    let node_down = NodeReports::with_node_errors([
        (
            "d1".to_string(),
            vec![],
            vec!["IPVS is not available on this node".to_string()],
        ),
        (
            "d2".to_string(),
            vec![report(name, 3, "EINVAL adding service")],
            vec!["ledger: ENOSPC".to_string(), "sysctl: EACCES".to_string()],
        ),
        ("w1".to_string(), vec![report(name, 4, "")], vec![]),
    ]);
    let states = node_states(verdict, Some(4), &node_down);
    assert_eq!(
        states["d1"],
        NodeState::Failed("IPVS is not available on this node".into())
    );
    assert_eq!(
        states["d2"],
        NodeState::Failed("EINVAL adding service; ledger: ENOSPC; sysctl: EACCES".into())
    );
    assert_eq!(states["w1"], NodeState::Programmed);
    let s = status_of(&analysis, &dr, &node_down, "T");
    let p = cond(&s, types::PROGRAMMED);
    assert_eq!((p.status.as_str(), p.reason.as_str()), ("False", "Failed"));
    assert!(
        p.message.contains("d1: IPVS is not available"),
        "{}",
        p.message
    );
}

#[test]
fn no_director_means_not_programmed() {
    let mut spec = web_spec("192.0.2.10", "NAT");
    spec["directors"] = json!({"nodeSelector": {"matchLabels": {"role": "nobody"}}});
    let lonely = vs("lonely", "2024-01-01T00:00:00Z", 1, spec);
    let analysis = analyze(std::slice::from_ref(&lonely), &[], &directors());
    let s = status_of(&analysis, &lonely, &NodeReports::default(), "T");
    let p = cond(&s, types::PROGRAMMED);
    assert_eq!(
        (p.status.as_str(), p.reason.as_str()),
        ("False", "NoDirectors")
    );
    assert!(s.directors.is_empty());
}

#[test]
fn unchanged_world_needs_no_write_and_keeps_transition_times() {
    let (dr, analysis) = dr_world();
    let verdict = analysis.get("default/dr").unwrap();
    let reports = NodeReports::default();
    let first = vs_status(None, &dr.spec, "default", verdict, &reports, "T1");
    assert!(needs_write(None, &first));
    let again = vs_status(Some(&first), &dr.spec, "default", verdict, &reports, "T2");
    assert_eq!(again, first);
    assert!(!needs_write(Some(&first), &again));

    // A node reports: Programmed stays False but its message changes; Ready keeps T1.
    let partial = NodeReports::new([("d1".to_string(), vec![report("default/dr", 4, "")])]);
    let next = vs_status(Some(&first), &dr.spec, "default", verdict, &partial, "T3");
    assert!(needs_write(Some(&first), &next));
    assert_eq!(cond(&next, types::READY).last_transition_time, "T1");
    assert_eq!(cond(&next, types::PROGRAMMED).last_transition_time, "T1");
    assert_eq!(next.nodes["d1"], "Programmed");

    // All report: Programmed flips and takes the new time.
    let all = NodeReports::new(
        ["d1", "d2", "w1"].map(|n| (n.to_string(), vec![report("default/dr", 4, "")])),
    );
    let done = vs_status(Some(&next), &dr.spec, "default", verdict, &all, "T4");
    assert_eq!(cond(&done, types::PROGRAMMED).last_transition_time, "T4");
    assert_eq!(cond(&done, types::READY).last_transition_time, "T1");
}

#[test]
fn realserver_status_from_every_selecting_service() {
    let nat = vs(
        "nat",
        "2024-01-01T00:00:00Z",
        1,
        web_spec("192.0.2.10", "NAT"),
    );
    let dr = vs(
        "dr",
        "2024-01-02T00:00:00Z",
        1,
        web_spec("192.0.2.11", "DR"),
    );
    let mapped = rs(
        "mapped",
        &[("app", "web")],
        json!({"address": "10.1.0.1", "port": 8080}),
    );
    let on_node = rs("on-node", &[("app", "web")], json!({"nodeName": "w1"}));
    let lonely = rs("lonely", &[("app", "db")], json!({"address": "10.1.0.9"}));
    let broken = rs(
        "broken",
        &[("app", "web")],
        json!({"address": "10.1.0.8", "weight": 70000}),
    );
    let rss = vec![
        mapped.clone(),
        on_node.clone(),
        lonely.clone(),
        broken.clone(),
    ];
    let analysis = analyze(&[nat, dr], &rss, &directors());
    let rs_cond = |s: &lvs_api::RealServerStatus, t: &str| {
        s.conditions.iter().find(|c| c.type_ == t).cloned().unwrap()
    };

    // Usable by both services: Ready, address resolved from the node.
    let s = rs_status(
        None,
        "default/on-node",
        &on_node.spec,
        Some(1),
        &analysis,
        "T",
    );
    assert_eq!(s.address.as_deref(), Some("10.0.0.11"));
    assert_eq!(s.selected_by, ["default/dr", "default/nat"]);
    let r = rs_cond(&s, types::READY);
    assert_eq!((r.status.as_str(), r.reason.as_str()), ("True", "Ready"));
    assert_eq!(rs_cond(&s, types::INVALID).status, "False");

    // Port mapping works for NAT but not for DR: not Ready, the message names the service.
    let s = rs_status(
        None,
        "default/mapped",
        &mapped.spec,
        Some(1),
        &analysis,
        "T",
    );
    let r = rs_cond(&s, types::READY);
    assert_eq!(
        (r.status.as_str(), r.reason.as_str()),
        ("False", "Unusable")
    );
    assert!(
        r.message.starts_with("default/dr: spec.port: 8080 differs"),
        "{}",
        r.message
    );
    assert_eq!(s.address.as_deref(), Some("10.1.0.1"));

    // Selected by nobody.
    let s = rs_status(
        None,
        "default/lonely",
        &lonely.spec,
        Some(1),
        &analysis,
        "T",
    );
    assert_eq!(rs_cond(&s, types::READY).reason, "NotSelected");
    assert!(s.selected_by.is_empty());
    assert_eq!(s.address.as_deref(), Some("10.1.0.9"));

    // An invalid spec is Invalid and not Ready.
    let s = rs_status(
        None,
        "default/broken",
        &broken.spec,
        Some(1),
        &analysis,
        "T",
    );
    let inv = rs_cond(&s, types::INVALID);
    assert_eq!(inv.status, "True");
    assert!(inv.message.contains("spec.weight"), "{}", inv.message);
    assert_eq!(rs_cond(&s, types::READY).reason, "Invalid");

    // Recomputing over an unchanged world changes nothing.
    let first = rs_status(
        None,
        "default/on-node",
        &on_node.spec,
        Some(1),
        &analysis,
        "T1",
    );
    let again = rs_status(
        Some(&first),
        "default/on-node",
        &on_node.spec,
        Some(1),
        &analysis,
        "T2",
    );
    assert!(!needs_write(Some(&first), &again));
}

fn reasons(events: &[EventSpec]) -> Vec<(&'static str, bool)> {
    events.iter().map(|e| (e.reason, e.warning)).collect()
}

#[test]
fn events_only_on_transitions() {
    let (dr, analysis) = dr_world();
    let verdict = analysis.get("default/dr").unwrap();
    let none = NodeReports::default();
    let first = vs_status(None, &dr.spec, "default", verdict, &none, "T1");
    assert_eq!(
        reasons(&vs_events(&[], &first.conditions)),
        [("Accepted", false), ("Ready", false)]
    );
    // Same conditions again: nothing.
    assert!(vs_events(&first.conditions, &first.conditions).is_empty());

    let all = NodeReports::new(
        ["d1", "d2", "w1"].map(|n| (n.to_string(), vec![report("default/dr", 4, "")])),
    );
    let done = vs_status(Some(&first), &dr.spec, "default", verdict, &all, "T2");
    let ev = vs_events(&first.conditions, &done.conditions);
    assert_eq!(reasons(&ev), [("Programmed", false)]);
    assert_eq!(ev[0].note, "generation 4 programmed on d1, d2, w1");

    let failing = NodeReports::new(
        ["d1", "d2", "w1"].map(|n| (n.to_string(), vec![report("default/dr", 4, "boom")])),
    );
    let failed = vs_status(Some(&done), &dr.spec, "default", verdict, &failing, "T3");
    assert_eq!(
        reasons(&vs_events(&done.conditions, &failed.conditions)),
        [("ProgrammingFailed", true)]
    );
    // Still failing (even with another message): no new event.
    assert!(vs_events(&failed.conditions, &failed.conditions).is_empty());

    // Losing a conflict.
    let older = vs(
        "older",
        "2023-01-01T00:00:00Z",
        1,
        web_spec("192.0.2.20", "DR"),
    );
    let analysis = analyze(&[dr.clone(), older], &[], &directors());
    let lost = vs_status(
        Some(&first),
        &dr.spec,
        "default",
        analysis.get("default/dr").unwrap(),
        &none,
        "T4",
    );
    assert_eq!(
        reasons(&vs_events(&first.conditions, &lost.conditions)),
        [("Conflict", true)]
    );
    // And winning again once the older one is gone: Accepted, then Ready only if realservers.
    let analysis = analyze(std::slice::from_ref(&dr), &[], &directors());
    let back = vs_status(
        Some(&lost),
        &dr.spec,
        "default",
        analysis.get("default/dr").unwrap(),
        &none,
        "T5",
    );
    assert_eq!(
        reasons(&vs_events(&lost.conditions, &back.conditions)),
        [("Accepted", false), ("NotReady", true)]
    );
}

#[test]
fn the_events_of_one_write_fold_into_one_and_node_events_stay_apart() {
    let ev = |warning, reason, note: &str, node: Option<&str>| EventSpec {
        warning,
        reason,
        note: note.into(),
        node: node.map(str::to_string),
    };
    let one = folded(vec![
        ev(false, "Accepted", "valid", None),
        ev(true, "NotReady", "no realservers", None),
        ev(false, "DirectorTakeover", "d1 active", Some("d1")),
    ]);
    assert_eq!(
        one,
        [
            ev(
                true,
                "NotReady",
                "Accepted: valid; NotReady: no realservers",
                None
            ),
            ev(false, "DirectorTakeover", "d1 active", Some("d1")),
        ]
    );
    let fine = folded(vec![
        ev(false, "Accepted", "valid", None),
        ev(false, "Ready", "1/1", None),
        ev(false, "Programmed", "on d1", None),
    ]);
    assert_eq!(reasons(&fine), [("Programmed", false)]);
    let single = vec![ev(true, "Conflict", "older one", None)];
    assert_eq!(folded(single.clone()), single);
    assert!(folded(Vec::new()).is_empty());
}

#[test]
fn realserver_events_on_ready_flips_and_problems() {
    let c = |status: &str, reason: &str| {
        vec![Condition {
            type_: types::READY.into(),
            status: status.into(),
            reason: reason.into(),
            message: "m".into(),
            last_transition_time: "T".into(),
            observed_generation: Some(1),
        }]
    };
    assert_eq!(
        reasons(&rs_events(&[], &c("True", "Ready"))),
        [("Ready", false)]
    );
    assert_eq!(
        reasons(&rs_events(&c("True", "Ready"), &c("False", "Unusable"))),
        [("RealServerProblem", true)]
    );
    assert_eq!(
        reasons(&rs_events(&c("False", "Unusable"), &c("False", "Invalid"))),
        [("Invalid", true)]
    );
    assert!(rs_events(&c("True", "Ready"), &c("True", "Ready")).is_empty());
    assert!(rs_events(&c("False", "Unusable"), &c("False", "Unusable")).is_empty());
    assert!(rs_events(&[], &c("False", "NotSelected")).is_empty());
    let _ = status::reasons::READY;
}

/// LvsNode reports of every node at generation 4 of default/dr, with the
/// given director HA roles (node, [(vip, role)]).
fn ha_reports(roles: &[(&str, &[(&str, &str)])]) -> NodeReports {
    NodeReports::new(["d1", "d2", "w1"].map(|n| (n.to_string(), vec![report("default/dr", 4, "")])))
        .with_vip_roles(roles.iter().map(|(node, vips)| {
            let vips = vips
                .iter()
                .map(|(address, role)| VipRole {
                    address: address.to_string(),
                    role: match *role {
                        "Active" => DirectorRole::Active,
                        "Standby" => DirectorRole::Standby,
                        other => panic!("no director role {other:?}"),
                    },
                    since: Some("2026-01-01T00:00:00Z".into()),
                })
                .collect();
            (node.to_string(), vips)
        }))
}

fn roles(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    labels(pairs)
}

#[test]
fn director_roles_and_active_director_from_the_vip_reports() {
    let (dr, analysis) = dr_world();
    // (case, reports: node -> [(vip, role)], want directorRoles, want activeDirector)
    type Case<'a> = (
        &'a str,
        Vec<(&'a str, &'a [(&'a str, &'a str)])>,
        &'a [(&'a str, &'a str)],
        Option<&'a str>,
    );
    let cases: Vec<Case> = vec![
        ("HA off: no roles reported", vec![], &[], None),
        (
            "one active, one standby",
            vec![
                ("d1", &[("192.0.2.20", "Active")]),
                ("d2", &[("192.0.2.20", "Standby")]),
            ],
            &[("d1", "Active"), ("d2", "Standby")],
            Some("d1"),
        ),
        (
            "both standby (no holder yet)",
            vec![
                ("d1", &[("192.0.2.20", "Standby")]),
                ("d2", &[("192.0.2.20", "Standby")]),
            ],
            &[("d1", "Standby"), ("d2", "Standby")],
            None,
        ),
        (
            "only one director reports",
            vec![("d2", &[("192.0.2.20", "Active")])],
            &[("d2", "Active")],
            Some("d2"),
        ),
        (
            "roles for other VIPs do not count",
            vec![
                ("d1", &[("192.0.2.21", "Active"), ("192.0.2.20", "Standby")]),
                ("d2", &[("192.0.2.21", "Standby")]),
            ],
            &[("d1", "Standby")],
            None,
        ),
        (
            "a node that is no director of the service is ignored",
            vec![
                ("w1", &[("192.0.2.20", "Active")]),
                ("d2", &[("192.0.2.20", "Standby")]),
            ],
            &[("d2", "Standby")],
            None,
        ),
        (
            "both active during a handover: the first by name is shown",
            vec![
                ("d2", &[("192.0.2.20", "Active")]),
                ("d1", &[("192.0.2.20", "Active")]),
            ],
            &[("d1", "Active"), ("d2", "Active")],
            Some("d1"),
        ),
    ];
    for (case, reports, want_roles, want_active) in cases {
        let s = status_of(&analysis, &dr, &ha_reports(&reports), "T");
        assert_eq!(s.director_roles, roles(want_roles), "{case}");
        assert_eq!(s.active_director.as_deref(), want_active, "{case}");
        // The HA fields do not disturb the conditions.
        assert_eq!(cond(&s, types::PROGRAMMED).status, "True", "{case}");
    }
}

#[test]
fn director_roles_match_ipv6_vips_in_any_spelling() {
    let dr6 = vs(
        "dr",
        "2024-01-01T00:00:00Z",
        4,
        web_spec("2001:DB8:0::20", "DR"),
    );
    let rss = vec![rs("w1", &[("app", "web")], json!({"nodeName": "w1"}))];
    let analysis = analyze(std::slice::from_ref(&dr6), &rss, &directors());
    let s = status_of(
        &analysis,
        &dr6,
        &ha_reports(&[("d2", &[("2001:db8::20", "Active")])]),
        "T",
    );
    assert_eq!(s.active_director.as_deref(), Some("d2"));
}

#[test]
fn ha_fields_serialize_camel_case_and_only_when_set() {
    let (dr, analysis) = dr_world();
    let off = status_of(&analysis, &dr, &ha_reports(&[]), "T");
    let j = serde_json::to_value(&off).unwrap();
    assert!(
        j.get("activeDirector").is_none() && j.get("directorRoles").is_none(),
        "{j}"
    );
    let on = status_of(
        &analysis,
        &dr,
        &ha_reports(&[("d1", &[("192.0.2.20", "Active")])]),
        "T",
    );
    let j = serde_json::to_value(&on).unwrap();
    assert_eq!(j["activeDirector"], "d1");
    assert_eq!(j["directorRoles"], json!({"d1": "Active"}));
}

#[test]
fn director_events_from_role_changes() {
    let (dr, analysis) = dr_world();
    let verdict = analysis.get("default/dr").unwrap();
    let at = |old: Option<&VirtualServiceStatus>, r: &[(&str, &[(&str, &str)])]| {
        vs_status(old, &dr.spec, "default", verdict, &ha_reports(r), "T")
    };
    let notes = |ev: &[EventSpec]| -> Vec<(&'static str, String)> {
        ev.iter().map(|e| (e.reason, e.note.clone())).collect()
    };
    let standby_both = at(
        None,
        &[
            ("d1", &[("192.0.2.20", "Standby")]),
            ("d2", &[("192.0.2.20", "Standby")]),
        ],
    );
    let d1_active = at(
        Some(&standby_both),
        &[
            ("d1", &[("192.0.2.20", "Active")]),
            ("d2", &[("192.0.2.20", "Standby")]),
        ],
    );
    let d2_active = at(
        Some(&d1_active),
        &[
            ("d1", &[("192.0.2.20", "Standby")]),
            ("d2", &[("192.0.2.20", "Active")]),
        ],
    );
    let d2_gone = at(Some(&d2_active), &[("d1", &[("192.0.2.20", "Standby")])]);

    // First election, from no active director.
    assert_eq!(
        notes(&director_events(Some(&standby_both), &d1_active, &dr.spec)),
        [(
            "DirectorTakeover",
            "node d1 is now the active director for VIP 192.0.2.20 (was none)".to_string()
        )]
    );
    // A takeover names the previous active and releases it.
    assert_eq!(
        notes(&director_events(Some(&d1_active), &d2_active, &dr.spec)),
        [
            (
                "DirectorReleased",
                "node d1 is no longer the active director for VIP 192.0.2.20 (now Standby)"
                    .to_string()
            ),
            (
                "DirectorTakeover",
                "node d2 is now the active director for VIP 192.0.2.20 (was d1)".to_string()
            ),
        ]
    );
    // Each Event names its node, so that Events about different nodes are
    // not counted as one series.
    let nodes: Vec<Option<String>> = director_events(Some(&d1_active), &d2_active, &dr.spec)
        .into_iter()
        .map(|e| e.node)
        .collect();
    assert_eq!(nodes, [Some("d1".to_string()), Some("d2".to_string())]);
    // The active stops reporting (agent gone, HA turned off).
    assert_eq!(
        notes(&director_events(Some(&d2_active), &d2_gone, &dr.spec)),
        [(
            "DirectorReleased",
            "node d2 is no longer the active director for VIP 192.0.2.20 (now no role reported)"
                .to_string()
        )]
    );
    // A status with an active from the start (no previous status) announces it.
    assert_eq!(
        reasons(&director_events(None, &d1_active, &dr.spec)),
        [("DirectorTakeover", false)]
    );
    // Nothing when no active role changed: the same status again, a standby
    // that appears or goes, or HA off throughout.
    for (old, new) in [
        (&d1_active, &d1_active),
        (&standby_both, &standby_both),
        (&d2_gone, &at(Some(&d2_gone), &[])),
        (
            &d2_active,
            &at(Some(&d2_active), &[("d2", &[("192.0.2.20", "Active")])]),
        ),
    ] {
        assert!(
            director_events(Some(old), new, &dr.spec).is_empty(),
            "{:?} -> {:?}",
            old.director_roles,
            new.director_roles
        );
    }
    let off = at(None, &[]);
    assert!(director_events(None, &off, &dr.spec).is_empty());
    assert!(director_events(Some(&off), &off, &dr.spec).is_empty());
}

/// A director report of `default/dr` with live counters and, optionally,
/// a drift.
fn live_report(connections: u64, drift: Option<(&str, &[&str])>) -> ServiceReport {
    ServiceReport {
        counters: Some(lvs_api::TrafficCounters {
            active_connections: connections / 2,
            connections,
            in_packets: connections * 5,
            in_bytes: connections * 500,
            ..Default::default()
        }),
        counters_time: Some("2026-01-01T00:00:10Z".into()),
        table_hash: Some("0123456789abcdef".into()),
        drift: drift.map(|(time, what)| lvs_api::DriftReport {
            time: time.into(),
            count: what.len() as u32 + 1,
            repaired: what.iter().map(|w| w.to_string()).collect(),
        }),
        ..report("default/dr", 4, "")
    }
}

#[test]
fn traffic_is_summed_over_the_directors_that_report_it() {
    let (dr, analysis) = dr_world();
    let verdict = analysis.get("default/dr").unwrap();
    let none = NodeReports::new(
        ["d1", "d2", "w1"].map(|n| (n.to_string(), vec![report("default/dr", 4, "")])),
    );
    let s = vs_status(None, &dr.spec, "default", verdict, &none, "T");
    assert_eq!(s.traffic, None, "no director reports counters yet");
    let reports = NodeReports::new([
        ("d1".to_string(), vec![live_report(10, None)]),
        ("d2".to_string(), vec![live_report(4, None)]),
        // A realserver node's report is not a director's: not summed.
        ("w1".to_string(), vec![live_report(1000, None)]),
    ]);
    let s = vs_status(None, &dr.spec, "default", verdict, &reports, "T");
    let t = s.traffic.expect("traffic");
    assert_eq!(t.total.connections, 14);
    assert_eq!(t.total.active_connections, 7);
    assert_eq!(t.total.in_packets, 70);
    assert_eq!(t.total.in_bytes, 7000);
    let nodes: Vec<(&str, u64)> = t
        .directors
        .iter()
        .map(|d| (d.node.as_str(), d.connections))
        .collect();
    assert_eq!(nodes, [("d1", 10), ("d2", 4)]);
    assert_eq!(t.directors[0].time.as_deref(), Some("2026-01-01T00:00:10Z"));
    let j = serde_json::to_value(&t.total).unwrap();
    assert_eq!(j["inBytes"], 7000);
}

#[test]
fn a_new_drift_is_one_event_per_director_and_a_rewrite_adds_none() {
    let (dr, analysis) = dr_world();
    let verdict = analysis.get("default/dr").unwrap();
    let at = |old: Option<&VirtualServiceStatus>, d1: Option<(&str, &[&str])>| {
        let reports = NodeReports::new([
            ("d1".to_string(), vec![live_report(1, d1)]),
            ("d2".to_string(), vec![live_report(1, None)]),
        ]);
        vs_status(old, &dr.spec, "default", verdict, &reports, "T")
    };
    let clean = at(None, None);
    assert!(clean.drift.is_empty());
    assert!(drift_events(None, &clean).is_empty());
    let what: &[&str] = &["destination 10.0.0.11:80 of TCP/192.0.2.20:80: weight 0 -> 1 restored"];
    let first = at(Some(&clean), Some(("2026-01-01T00:01:00Z", what)));
    assert_eq!(first.drift.len(), 1);
    let ev = drift_events(Some(&clean), &first);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].reason, "DriftRepaired");
    assert_eq!(ev[0].node.as_deref(), Some("d1"));
    assert_eq!(
        ev[0].note,
        "node d1: destination 10.0.0.11:80 of TCP/192.0.2.20:80: weight 0 -> 1 restored (and 1 more); someone else had changed them"
    );
    // The same drift again (a rewrite, an operator restart): no Event.
    let again = at(Some(&first), Some(("2026-01-01T00:01:00Z", what)));
    assert!(drift_events(Some(&first), &again).is_empty());
    // A later drift on the same director: one more.
    let later = at(Some(&again), Some(("2026-01-01T00:02:00Z", what)));
    assert_eq!(drift_events(Some(&again), &later).len(), 1);
}

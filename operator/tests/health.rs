//! Realserver health from the directors' reports: the VirtualService's
//! Degraded condition and counts, the RealServer's health per
//! VirtualService, their Events and the Events' rate limit.

use std::time::{Duration, Instant};

use lvs_api::status::types;
use lvs_api::{
    Condition, DestinationReport, DestinationState, Meta, NodeInfo, Object, RealServerSpec,
    ServiceReport, VirtualServiceSpec, VirtualServiceStatus,
};
use lvs_operator::status::{
    EventLimiter, EventSpec, NodeReports, rs_health, rs_health_events, vs_health_events, vs_status,
};
use lvs_planner::{Analysis, analyze};
use serde_json::json;

fn meta(name: &str, generation: i64) -> Meta {
    Meta {
        namespace: "default".into(),
        name: name.into(),
        creation_timestamp: Some("2024-01-01T00:00:00Z".into()),
        generation: Some(generation),
        labels: [("app".to_string(), "web".to_string())].into(),
        ..Default::default()
    }
}

fn world() -> (Object<VirtualServiceSpec>, Analysis) {
    let vs = Object {
        meta: meta("web", 2),
        spec: serde_json::from_value::<VirtualServiceSpec>(json!({
            "address": "192.0.2.20", "port": 80, "forwarding": "NAT",
            "directors": {"nodeSelector": {"matchLabels": {"role": "director"}}},
            "realServerSelector": {"matchLabels": {"app": "web"}},
        }))
        .unwrap(),
    };
    let rss: Vec<Object<RealServerSpec>> = (1..=3)
        .map(|i| Object {
            meta: meta(&format!("rs{i}"), 1),
            spec: serde_json::from_value(json!({"address": format!("10.0.1.{i}")})).unwrap(),
        })
        .collect();
    let nodes: Vec<NodeInfo> = ["d1", "d2"]
        .iter()
        .enumerate()
        .map(|(i, n)| NodeInfo {
            name: n.to_string(),
            labels: [("role".to_string(), "director".to_string())].into(),
            internal_ips: vec![format!("10.0.0.{}", i + 1).parse().unwrap()],
        })
        .collect();
    let analysis = analyze(std::slice::from_ref(&vs), &rss, &nodes);
    (vs, analysis)
}

fn entry(rs: &str, state: DestinationState, error: &str) -> DestinationReport {
    DestinationReport {
        destination: format!("10.0.1.{}:80", &rs[2..]),
        real_server: if rs == "sorry" {
            String::new()
        } else {
            format!("default/{rs}")
        },
        state,
        since: Some("2026-12-06T04:00:00Z".into()),
        last_error: error.into(),
        connections: (state == DestinationState::Draining).then_some(12),
    }
}

fn director(healthy: u32, entries: Vec<DestinationReport>) -> Vec<ServiceReport> {
    vec![ServiceReport {
        name: "default/web".into(),
        generation: Some(2),
        roles: vec!["director".into()],
        healthy: Some(healthy),
        total: Some(3),
        destinations: entries,
        ..Default::default()
    }]
}

fn reports(d1: Option<Vec<ServiceReport>>, d2: Option<Vec<ServiceReport>>) -> NodeReports {
    NodeReports::new(
        [("d1", d1), ("d2", d2)]
            .into_iter()
            .filter_map(|(n, r)| Some((n.to_string(), r?))),
    )
}

fn degraded(s: &VirtualServiceStatus) -> &Condition {
    s.conditions
        .iter()
        .find(|c| c.type_ == types::DEGRADED)
        .expect("a Degraded condition")
}

fn status(old: Option<&VirtualServiceStatus>, r: &NodeReports, now: &str) -> VirtualServiceStatus {
    let (vs, analysis) = world();
    let v = analysis.get("default/web").unwrap();
    vs_status(old, &vs.spec, "default", v, r, now)
}

#[test]
fn degraded_tells_the_counts_of_each_director() {
    use DestinationState::*;
    let failing = entry("rs1", Failing, "connect 10.0.1.1:80: connection refused");
    // (d1's report, d2's report, status, reason, message, healthy summary)
    let cases = vec![
        (
            None,
            None,
            "False",
            "NotReported",
            "no director reports realserver health yet",
            None,
        ),
        (
            Some(director(3, vec![])),
            Some(director(3, vec![])),
            "False",
            "Healthy",
            "all 3 realservers healthy",
            Some("3/3"),
        ),
        (
            Some(director(2, vec![failing.clone()])),
            Some(director(3, vec![])),
            "True",
            "RealServersUnhealthy",
            "2/3 realservers healthy on d1 (1 failing)",
            Some("2/3"),
        ),
        (
            Some(director(
                0,
                vec![
                    entry("rs1", Failing, ""),
                    entry("rs2", Unready, "node w2 has no LvsNode"),
                    entry("rs3", Failing, ""),
                    entry("sorry", Sorry, ""),
                ],
            )),
            Some(director(3, vec![entry("rs4", Draining, "")])),
            "True",
            "SorryServerActive",
            "0/3 realservers healthy on d1 (2 failing, 1 unready); sorry server active on d1; 1 draining (12 connections)",
            Some("0/3"),
        ),
        (
            Some(director(2, vec![entry("rs2", Inactive, "")])),
            None,
            "False",
            "Healthy",
            "all 2 active realservers healthy (1 inactive)",
            Some("2/3"),
        ),
        (
            Some(director(3, vec![entry("rs4", Draining, "")])),
            Some(director(3, vec![entry("rs4", Draining, "")])),
            "False",
            "Healthy",
            "all 3 realservers healthy; 1 draining (12 connections)",
            Some("3/3"),
        ),
    ];
    for (i, (d1, d2, st, reason, msg, summary)) in cases.into_iter().enumerate() {
        let s = status(None, &reports(d1, d2), "2026-12-06T04:00:00Z");
        let c = degraded(&s);
        assert_eq!(
            (c.status.as_str(), c.reason.as_str(), c.message.as_str()),
            (st, reason, msg),
            "case {i}"
        );
        let counts = s.real_servers.as_ref().unwrap();
        assert_eq!(counts.health_summary.as_deref(), summary, "case {i}");
    }
}

#[test]
fn health_events_only_on_transitions() {
    use DestinationState::*;
    let t0 = "2026-12-06T04:00:00Z";
    let healthy = status(None, &reports(Some(director(3, vec![])), None), t0);
    let down_reports = reports(
        Some(director(
            0,
            vec![
                entry("rs1", Failing, ""),
                entry("rs2", Failing, ""),
                entry("rs3", Failing, ""),
                entry("sorry", Sorry, ""),
            ],
        )),
        None,
    );
    let down = status(Some(&healthy), &down_reports, "2026-12-06T04:00:05Z");
    let reasons = |e: &[EventSpec]| e.iter().map(|e| (e.reason, e.warning)).collect::<Vec<_>>();
    assert_eq!(
        reasons(&vs_health_events(Some(&healthy), &down)),
        [("Degraded", true), ("SorryServerActive", true)]
    );
    assert_eq!(degraded(&down).last_transition_time, "2026-12-06T04:00:05Z");
    // The same again: nothing new, and the transition time stays.
    let again = status(Some(&down), &down_reports, "2026-12-06T04:00:09Z");
    assert_eq!(again, down);
    assert!(vs_health_events(Some(&down), &again).is_empty());
    // Recovery: Recovered and the sorry server released on d1.
    let back = status(Some(&down), &reports(Some(director(3, vec![])), None), t0);
    let ev = vs_health_events(Some(&down), &back);
    assert_eq!(
        reasons(&ev),
        [("Recovered", false), ("SorryServerReleased", false)]
    );
    assert_eq!(ev[1].node.as_deref(), Some("d1"));
    // A drain starts, then ends.
    let draining = status(
        Some(&back),
        &reports(Some(director(3, vec![entry("rs4", Draining, "")])), None),
        t0,
    );
    assert_eq!(
        reasons(&vs_health_events(Some(&back), &draining)),
        [("DrainStarted", false)]
    );
    assert_eq!(
        reasons(&vs_health_events(Some(&draining), &back)),
        [("DrainFinished", false)]
    );
}

#[test]
fn realserver_health_per_virtualservice_is_the_worst_director_view() {
    use DestinationState::*;
    let (_, analysis) = world();
    let v = analysis.get("default/web").unwrap();
    let r = reports(
        Some(director(
            2,
            vec![entry("rs1", Failing, "connection refused")],
        )),
        Some(director(2, vec![entry("rs1", Failing, "timed out")])),
    );
    let (summary, health) = rs_health("default/rs1", [v], &r);
    assert_eq!(summary.as_deref(), Some("Failing"));
    assert_eq!(health.len(), 1);
    assert_eq!(health[0].virtual_service, "default/web");
    assert_eq!(health[0].directors, ["d1", "d2"]);
    assert_eq!(health[0].message, "connection refused");
    let (summary, health) = rs_health("default/rs2", [v], &r);
    assert_eq!((summary.as_deref(), health.len()), (Some("Healthy"), 0));
    let (summary, _) = rs_health("default/rs2", [v], &reports(None, None));
    assert_eq!(summary, None, "no director reports");

    // Unhealthy when it fails, Healthy when back; a drain's start and end.
    let none = Vec::new();
    let failing = rs_health("default/rs1", [v], &r).1;
    let reasons = |e: &[EventSpec]| e.iter().map(|e| e.reason).collect::<Vec<_>>();
    let ev = rs_health_events(&none, &failing);
    assert_eq!(reasons(&ev), ["Unhealthy"]);
    assert_eq!(
        ev[0].note,
        "Failing for default/web on d1, d2: connection refused"
    );
    assert_eq!(reasons(&rs_health_events(&failing, &none)), ["Healthy"]);
    assert!(rs_health_events(&failing, &failing).is_empty());
    let drain = rs_health(
        "default/rs1",
        [v],
        &reports(Some(director(3, vec![entry("rs1", Draining, "")])), None),
    )
    .1;
    assert_eq!(reasons(&rs_health_events(&none, &drain)), ["DrainStarted"]);
    assert_eq!(reasons(&rs_health_events(&drain, &none)), ["DrainFinished"]);
    assert_eq!(
        reasons(&rs_health_events(&failing, &drain)),
        ["Healthy", "DrainStarted"]
    );
}

#[test]
fn the_event_limit_holds_back_repeats_and_floods() {
    let t0 = Instant::now();
    let mut l = EventLimiter::new(Duration::from_secs(10), 3, 1.0);
    assert!(l.allow("RealServer/a", "Unhealthy", t0));
    assert!(
        !l.allow("RealServer/a", "Unhealthy", t0),
        "a repeat within the gap"
    );
    assert!(l.allow("RealServer/a", "Healthy", t0), "another reason");
    assert!(l.allow("RealServer/b", "Unhealthy", t0));
    // The burst of 3 is spent: 10k objects failing at once get no more.
    let flood = (0..10_000)
        .filter(|i| l.allow(&format!("RealServer/x{i}"), "Unhealthy", t0))
        .count();
    assert_eq!(flood, 0);
    assert_eq!(l.suppressed, 10_001);
    // Refilled at 1 per second.
    assert!(l.allow("RealServer/c", "Unhealthy", t0 + Duration::from_secs(1)));
    assert!(!l.allow("RealServer/d", "Unhealthy", t0 + Duration::from_secs(1)));
    assert!(
        !l.allow("RealServer/a", "Unhealthy", t0 + Duration::from_secs(9)),
        "within the gap"
    );
    assert!(
        l.allow("RealServer/a", "Unhealthy", t0 + Duration::from_secs(11)),
        "after the gap"
    );
}

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use lvs_api::{
    DestinationState, DnsRcode, ForwardingMethod, HealthAction, HealthCheckType, Protocol,
    RealServerState, Scheduler,
};
use lvs_planner::{NodePlan, PlannedDestination, PlannedHealthCheck, PlannedService, ServiceKey};

use super::*;
use crate::report::DestinationStates;

fn check(type_: HealthCheckType, on_failure: HealthAction) -> PlannedHealthCheck {
    PlannedHealthCheck::with_defaults(type_, on_failure)
}

fn dest(last: u8, weight: u32) -> PlannedDestination {
    PlannedDestination {
        addr: IpAddr::from([10, 0, 0, last]),
        port: 80,
        method: ForwardingMethod::Nat,
        weight,
        upper_threshold: 0,
        lower_threshold: 0,
        tunnel: None,
        owner: format!("default/rs{last}").into(),
        node: None,
        state: RealServerState::Active,
    }
}

fn sorry() -> PlannedDestination {
    PlannedDestination {
        owner: "".into(),
        weight: 1,
        ..dest(99, 1)
    }
}

fn service(
    owner: &str,
    health: Option<PlannedHealthCheck>,
    dests: Vec<PlannedDestination>,
) -> PlannedService {
    PlannedService {
        key: ServiceKey::Tuple {
            addr: IpAddr::from([192, 0, 2, 1]),
            protocol: Protocol::Tcp,
            port: 80,
        },
        scheduler: Scheduler::Rr,
        flags: Vec::new(),
        persistence: None,
        destinations: dests,
        owner: owner.into(),
        generation: Some(1),
        health: health.map(Box::new),
        sorry_server: None,
        quorum: 1,
        drain_timeout_seconds: 300,
    }
}

/// (address last byte, weight) of each destination.
fn weights(s: &PlannedService) -> Vec<(u8, u32)> {
    s.destinations
        .iter()
        .map(|d| match d.addr {
            IpAddr::V4(a) => (a.octets()[3], d.weight),
            IpAddr::V6(_) => unreachable!(),
        })
        .collect()
}

fn states_of(st: &DestinationStates) -> Vec<(String, DestinationState)> {
    st.entries
        .iter()
        .map(|e| (e.destination.clone(), e.state))
        .collect()
}

#[test]
fn damping_needs_fall_failures_and_rise_passes_in_a_row() {
    let mut d = Damping::new(100);
    let fail = || Err("refused".to_string());
    // fall = 3: two failures, a pass, two failures: still healthy.
    assert!(!d.record(fail(), 2, 3, 101));
    assert!(!d.record(fail(), 2, 3, 102));
    assert!(!d.record(Ok(()), 2, 3, 103));
    assert!(!d.record(fail(), 2, 3, 104));
    assert!(!d.record(fail(), 2, 3, 105));
    assert!(d.healthy);
    assert_eq!(d.since, 100);
    // The third in a row flips it, and it stays failing.
    assert!(d.record(fail(), 2, 3, 106));
    assert!(!d.healthy);
    assert_eq!(d.since, 106);
    assert_eq!(d.last_error, "refused");
    assert!(!d.record(fail(), 2, 3, 107));
    assert_eq!(d.since, 106);
    // rise = 2: a pass then a failure does not bring it back.
    assert!(!d.record(Ok(()), 2, 3, 108));
    assert!(!d.record(Err("timeout".into()), 2, 3, 109));
    assert_eq!(d.last_error, "timeout");
    assert!(!d.record(Ok(()), 2, 3, 110));
    assert!(d.record(Ok(()), 2, 3, 111));
    assert!(d.healthy);
    assert_eq!(d.since, 111);
}

#[test]
fn damping_of_one_flips_at_once() {
    let mut d = Damping::new(0);
    assert!(d.record(Err("x".into()), 1, 1, 1));
    assert!(d.record(Ok(()), 1, 1, 2));
    // rise/fall 0 (refused by admission) act as 1.
    assert!(d.record(Err("x".into()), 0, 0, 3));
}

#[test]
fn services_checking_a_realserver_alike_share_one_target() {
    let tcp = check(HealthCheckType::Tcp, HealthAction::Inhibit);
    let a = service("ns/a", Some(tcp.clone()), vec![dest(1, 1), dest(2, 1)]);
    // Another service, same realservers, same check but Remove: same
    // targets (the action does not change the probe).
    let b = service(
        "ns/b",
        Some(check(HealthCheckType::Tcp, HealthAction::Remove)),
        vec![dest(1, 1), dest(2, 1)],
    );
    // An HTTP check of rs1: a target of its own.
    let c = service(
        "ns/c",
        Some(check(HealthCheckType::Http, HealthAction::Inhibit)),
        vec![dest(1, 1)],
    );
    let mut plan = NodePlan {
        services: vec![a, b, c],
        ..NodePlan::default()
    };
    let checks = Checks::new();
    let mut states = BTreeMap::new();
    step(Some(&checks), &mut plan, None, &mut states);
    assert_eq!(checks.lock().len(), 3);

    // A check port other than the destination's: probed there.
    let mut tcp_8080 = tcp.clone();
    tcp_8080.port = Some(8080);
    let k = probe_key(&dest(1, 1), &tcp_8080, &shared_check(&tcp_8080)).unwrap();
    assert_eq!(k.addr, "10.0.0.1:8080".parse::<SocketAddr>().unwrap());

    // ns/a gone (scoped sync of ns/a, now absent): its targets stay, ns/b
    // uses them.
    let names: BTreeSet<String> = ["ns/a".to_string()].into();
    let mut partial = NodePlan::default();
    step(Some(&checks), &mut partial, Some(&names), &mut states);
    assert_eq!(checks.lock().len(), 3);
    // A whole plan with only ns/c: the shared TCP targets go.
    let mut plan = NodePlan {
        services: vec![plan.services[2].clone()],
        ..NodePlan::default()
    };
    step(Some(&checks), &mut plan, None, &mut states);
    assert_eq!(checks.lock().len(), 1);
    assert_eq!(checks.lock().owners(), vec!["ns/c".to_string()]);
    let mut empty = NodePlan::default();
    step(Some(&checks), &mut empty, None, &mut states);
    assert!(checks.lock().is_empty());
}

#[test]
fn targets_keep_their_state_across_syncs_and_are_spread_over_the_interval() {
    let s = service(
        "ns/a",
        Some(check(HealthCheckType::Tcp, HealthAction::Inhibit)),
        (1..=100).map(|i| dest(i, 1)).collect(),
    );
    let checks = Checks::new();
    let mut plan = NodePlan {
        services: vec![s.clone()],
        ..NodePlan::default()
    };
    let mut states = BTreeMap::new();
    step(Some(&checks), &mut plan, None, &mut states);
    let t0 = Instant::now();
    // Nothing is due at once for all: the first probes are spread over the
    // 5 s interval.
    let (due_now, _) = checks.lock().take_due(t0, usize::MAX);
    let (due_all, next) = checks
        .lock()
        .take_due(t0 + Duration::from_secs(5), usize::MAX);
    assert_eq!(due_now.len() + due_all.len(), 100);
    assert!(due_now.len() < 50, "{} of 100 due at once", due_now.len());
    assert_eq!(next, None);
    // In flight: not handed out twice.
    assert!(
        checks
            .lock()
            .take_due(t0 + Duration::from_secs(60), usize::MAX)
            .0
            .is_empty()
    );
    // rs1 fails three times (fall 3): one transition, naming the owner.
    let id = due_all
        .iter()
        .chain(&due_now)
        .find(|d| d.key.addr.ip() == IpAddr::from([10, 0, 0, 1]))
        .unwrap()
        .id;
    let mut t = checks.lock();
    assert_eq!(t.record(id, t0, Err("refused".into())), None);
    t.take_due(t0 + Duration::from_secs(5), usize::MAX);
    assert_eq!(t.record(id, t0, Err("refused".into())), None);
    t.take_due(t0 + Duration::from_secs(10), usize::MAX);
    assert_eq!(
        t.record(id, t0, Err("refused".into())),
        Some(vec!["ns/a".to_string()])
    );
    drop(t);
    // A new sync of the same service keeps the state.
    let mut plan = NodePlan {
        services: vec![s],
        ..NodePlan::default()
    };
    let mut states = BTreeMap::new();
    step(Some(&checks), &mut plan, None, &mut states);
    assert_eq!(weights(&plan.services[0])[0], (1, 0));
    assert_eq!(
        states_of(&states["ns/a"]),
        vec![("10.0.0.1:80".to_string(), DestinationState::Failing)]
    );
    assert_eq!(states["ns/a"].entries[0].last_error, "refused");
    assert!(states["ns/a"].entries[0].since.is_some());
}

/// One table row: destinations (last byte, weight, failing), the action,
/// quorum and whether a sorry server is set; expected weights and states.
struct Row {
    name: &'static str,
    dests: &'static [(u8, u32, bool)],
    action: HealthAction,
    quorum: u32,
    sorry: bool,
    want: &'static [(u8, u32)],
    want_states: &'static [(u8, DestinationState)],
}

#[test]
fn steer_table() {
    use DestinationState::{Failing, Sorry};
    use HealthAction::{Inhibit, Remove};
    let rows = [
        Row {
            name: "all healthy: unchanged",
            dests: &[(1, 1, false), (2, 3, false)],
            action: Inhibit,
            quorum: 1,
            sorry: true,
            want: &[(1, 1), (2, 3)],
            want_states: &[],
        },
        Row {
            name: "inhibit: weight 0",
            dests: &[(1, 1, true), (2, 3, false)],
            action: Inhibit,
            quorum: 1,
            sorry: false,
            want: &[(1, 0), (2, 3)],
            want_states: &[(1, Failing)],
        },
        Row {
            name: "remove: left out",
            dests: &[(1, 1, true), (2, 3, false)],
            action: Remove,
            quorum: 1,
            sorry: false,
            want: &[(2, 3)],
            want_states: &[(1, Failing)],
        },
        Row {
            name: "all failing, sorry server: it is the only one with weight",
            dests: &[(1, 1, true), (2, 3, true)],
            action: Inhibit,
            quorum: 1,
            sorry: true,
            want: &[(1, 0), (2, 0), (99, 1)],
            want_states: &[(1, Failing), (2, Failing), (99, Sorry)],
        },
        Row {
            name: "all failing, remove, sorry server: only the sorry server",
            dests: &[(1, 1, true), (2, 3, true)],
            action: Remove,
            quorum: 1,
            sorry: true,
            want: &[(99, 1)],
            want_states: &[(1, Failing), (2, Failing), (99, Sorry)],
        },
        Row {
            name: "all failing, no sorry server: nothing more",
            dests: &[(1, 1, true), (2, 3, true)],
            action: Inhibit,
            quorum: 1,
            sorry: false,
            want: &[(1, 0), (2, 0)],
            want_states: &[(1, Failing), (2, Failing)],
        },
        Row {
            name: "below quorum 4 with weight 3 healthy: sorry server, the healthy one inhibited",
            dests: &[(1, 1, true), (2, 3, false)],
            action: Inhibit,
            quorum: 4,
            sorry: true,
            want: &[(1, 0), (2, 0), (99, 1)],
            want_states: &[(1, Failing), (99, Sorry)],
        },
        Row {
            name: "at quorum: no sorry server",
            dests: &[(1, 1, true), (2, 3, false)],
            action: Inhibit,
            quorum: 3,
            sorry: true,
            want: &[(1, 0), (2, 3)],
            want_states: &[(1, Failing)],
        },
        Row {
            name: "weight 0 (inactive, unready) does not count toward quorum",
            dests: &[(1, 0, false), (2, 0, false)],
            action: Inhibit,
            quorum: 1,
            sorry: true,
            want: &[(1, 0), (2, 0), (99, 1)],
            want_states: &[(99, Sorry)],
        },
        Row {
            name: "no destinations at all: the sorry server",
            dests: &[],
            action: Remove,
            quorum: 1,
            sorry: true,
            want: &[(99, 1)],
            want_states: &[(99, Sorry)],
        },
    ];
    for r in rows {
        let failing: BTreeSet<u8> = r.dests.iter().filter(|d| d.2).map(|d| d.0).collect();
        let mut s = service(
            "ns/a",
            Some(check(HealthCheckType::Tcp, r.action)),
            r.dests.iter().map(|(i, w, _)| dest(*i, *w)).collect(),
        );
        s.quorum = r.quorum;
        s.sorry_server = r.sorry.then(|| Box::new(sorry()));
        let mut st = DestinationStates::new(r.dests.len() as u32);
        steer_service(
            &mut s,
            |d| {
                let IpAddr::V4(a) = d.addr else { return None };
                failing.contains(&a.octets()[3]).then(|| super::Failing {
                    since: 1_800_000_000,
                    last_error: "refused".into(),
                })
            },
            &mut st,
        );
        st.finish();
        assert_eq!(weights(&s), r.want, "{}", r.name);
        let want: Vec<(String, DestinationState)> = r
            .want_states
            .iter()
            .map(|(i, state)| (format!("10.0.0.{i}:80"), *state))
            .collect();
        assert_eq!(states_of(&st), want, "{}", r.name);
        let down = r.want_states.iter().filter(|s| s.1 == Failing).count() as u32;
        assert_eq!(st.healthy, r.dests.len() as u32 - down, "{}", r.name);
        for e in st.entries.iter().filter(|e| e.state == Failing) {
            assert_eq!(e.last_error, "refused", "{}", r.name);
            assert_eq!(
                e.since.as_deref(),
                Some("2027-01-15T08:00:00Z"),
                "{}",
                r.name
            );
        }
    }
}

#[test]
fn without_a_table_destinations_count_as_healthy() {
    let mut plan = NodePlan {
        services: vec![service(
            "ns/a",
            Some(check(HealthCheckType::Tcp, HealthAction::Inhibit)),
            vec![dest(1, 1)],
        )],
        ..NodePlan::default()
    };
    let mut states = BTreeMap::new();
    step(None, &mut plan, None, &mut states);
    assert_eq!(weights(&plan.services[0]), vec![(1, 1)]);
    assert!(states["ns/a"].entries.is_empty());
}

#[test]
fn checks_of_type_none_and_portless_destinations_are_not_probed() {
    let none = check(HealthCheckType::None, HealthAction::Inhibit);
    assert_eq!(probe_key(&dest(1, 1), &none, &shared_check(&none)), None);
    let tcp = check(HealthCheckType::Tcp, HealthAction::Inhibit);
    let portless = PlannedDestination {
        port: 0,
        ..dest(1, 1)
    };
    assert_eq!(probe_key(&portless, &tcp, &shared_check(&tcp)), None);
    let mut with_port = tcp.clone();
    with_port.port = Some(53);
    assert_eq!(
        probe_key(&portless, &with_port, &shared_check(&with_port))
            .unwrap()
            .addr
            .port(),
        53
    );
}

#[test]
fn status_ranges_are_inclusive() {
    let r = [(200, 299), (304, 304)];
    assert!(probe::status_expected(200, &r));
    assert!(probe::status_expected(299, &r));
    assert!(probe::status_expected(304, &r));
    assert!(!probe::status_expected(300, &r));
    assert!(!probe::status_expected(500, &r));
    assert!(!probe::status_expected(200, &[]));
}

/// A one-shot HTTP server on 127.0.0.1: answers each connection with
/// `response` and hands the request bytes back.
async fn http_server(
    response: &'static str,
) -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let mut buf = vec![0u8; 4096];
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            let _ = tx.send(String::from_utf8_lossy(&got).into_owned());
            let _ = s.write_all(response.as_bytes()).await;
            let _ = s.shutdown().await;
        }
    });
    (addr, rx)
}

fn http_check(addr: SocketAddr) -> (SocketAddr, PlannedHealthCheck) {
    (addr, check(HealthCheckType::Http, HealthAction::Inhibit))
}

#[tokio::test]
async fn http_probe_sends_path_and_host_and_checks_status_and_body() {
    let (addr, mut rx) =
        http_server("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world").await;
    let (addr, mut c) = http_check(addr);
    c.path = "/healthz?x=1".into();
    c.host = Some("www.example.org".into());
    probe::probe(addr, &c).await.unwrap();
    let req = rx.recv().await.unwrap();
    assert!(req.starts_with("GET /healthz?x=1 HTTP/1.1\r\n"), "{req}");
    assert!(
        req.to_ascii_lowercase()
            .contains("host: www.example.org\r\n"),
        "{req}"
    );

    // Without a Host: the address.
    c.host = None;
    probe::probe(addr, &c).await.unwrap();
    let req = rx.recv().await.unwrap();
    assert!(
        req.to_ascii_lowercase().contains("host: 127.0.0.1\r\n"),
        "{req}"
    );

    c.body_contains = Some("world".into());
    probe::probe(addr, &c).await.unwrap();
    c.body_contains = Some("goodbye".into());
    let e = probe::probe(addr, &c).await.unwrap_err();
    assert!(e.contains("does not contain \"goodbye\""), "{e}");

    c.body_contains = None;
    c.expected_status = vec![(204, 204), (300, 399)];
    let e = probe::probe(addr, &c).await.unwrap_err();
    assert!(e.contains("status 200, expected 204,300-399"), "{e}");
}

#[tokio::test]
async fn http_probe_fails_on_500() {
    let (addr, _rx) =
        http_server("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n").await;
    let (addr, c) = http_check(addr);
    let e = probe::probe(addr, &c).await.unwrap_err();
    assert!(e.contains("status 500, expected 200-399"), "{e}");
}

#[tokio::test]
async fn tcp_probe_connects_or_names_the_refusal() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let c = check(HealthCheckType::Tcp, HealthAction::Inhibit);
    probe::probe(addr, &c).await.unwrap();
    drop(l);
    let e = probe::probe(addr, &c).await.unwrap_err();
    assert!(e.starts_with(&format!("TCP connect to {addr}: ")), "{e}");
}

#[tokio::test]
async fn dns_probe_matches_the_expected_rcode() {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let (rcode_tx, mut rcode_rx) = tokio::sync::mpsc::unbounded_channel::<Option<u8>>();
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while let Some(rcode) = rcode_rx.recv().await {
            let (n, from) = sock.recv_from(&mut buf).await.unwrap();
            let q = &buf[..n];
            // The question is the name asked for, type SOA.
            assert_eq!(&q[12..], &[3, b'l', b'a', b'b', 0, 0, 6, 0, 1]);
            if let Some(r) = rcode {
                // A stray answer with another id first: skipped.
                let mut stray = dns::answer_for(q, 2).unwrap();
                stray[0] ^= 0xff;
                sock.send_to(&stray, from).await.unwrap();
                sock.send_to(&dns::answer_for(q, r).unwrap(), from)
                    .await
                    .unwrap();
            }
        }
    });
    let mut c = check(HealthCheckType::Dns, HealthAction::Remove);
    c.dns_name = "lab.".into();
    rcode_tx.send(Some(0)).unwrap();
    probe::probe(addr, &c).await.unwrap();
    rcode_tx.send(Some(5)).unwrap();
    let e = probe::probe(addr, &c).await.unwrap_err();
    assert!(e.contains("rcode 5, expected NOERROR (0)"), "{e}");
    c.expected_rcode = DnsRcode::Refused;
    rcode_tx.send(Some(5)).unwrap();
    probe::probe(addr, &c).await.unwrap();
    // No answer: the probe waits (the engine's timeout ends it).
    rcode_tx.send(None).unwrap();
    let r = tokio::time::timeout(Duration::from_millis(200), probe::probe(addr, &c)).await;
    assert!(r.is_err(), "no answer must not look like an answer");
}

#[tokio::test]
async fn https_probe_speaks_tls() {
    // No TLS server here: a listener answering plain text makes the
    // handshake fail, and the error names TLS, so the HTTPS path is taken.
    use tokio::io::AsyncWriteExt;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            let _ = s.shutdown().await;
        }
    });
    let c = check(HealthCheckType::Https, HealthAction::Inhibit);
    let e = probe::probe(addr, &c).await.unwrap_err();
    assert!(e.starts_with(&format!("TLS handshake with {addr}")), "{e}");
}

#[test]
fn draining_destinations_are_left_alone_and_stay_beside_the_sorry_server() {
    for action in [HealthAction::Remove, HealthAction::Inhibit] {
        let draining = PlannedDestination {
            state: RealServerState::Draining,
            ..dest(2, 0)
        };
        let mut s = service(
            "default/web",
            Some(check(HealthCheckType::Tcp, action)),
            vec![dest(1, 1), draining],
        );
        s.sorry_server = Some(Box::new(sorry()));
        let mut st = DestinationStates::new(1);
        // Every destination "fails": the draining one must not be noted.
        steer_service(
            &mut s,
            |_| {
                Some(Failing {
                    since: 0,
                    last_error: "refused".into(),
                })
            },
            &mut st,
        );
        st.finish();
        let want: &[(u8, u32)] = match action {
            HealthAction::Remove => &[(2, 0), (99, 1)],
            HealthAction::Inhibit => &[(1, 0), (2, 0), (99, 1)],
        };
        assert_eq!(weights(&s), want, "{action:?}");
        assert_eq!(
            states_of(&st),
            vec![
                ("10.0.0.1:80".to_string(), DestinationState::Failing),
                ("10.0.0.99:80".to_string(), DestinationState::Sorry),
            ],
            "{action:?}"
        );
    }

    // Nor are they probed.
    let checks = Checks::new();
    let draining = PlannedDestination {
        state: RealServerState::Draining,
        ..dest(2, 0)
    };
    let mut plan = NodePlan {
        services: vec![service(
            "default/web",
            Some(check(HealthCheckType::Tcp, HealthAction::Inhibit)),
            vec![dest(1, 1), draining],
        )],
        ..Default::default()
    };
    let mut states = BTreeMap::new();
    step(Some(&checks), &mut plan, None, &mut states);
    assert_eq!(
        checks.lock().len(),
        1,
        "only the active destination is a target"
    );
}

#[test]
fn state_changes_are_logged_one_by_one_only_up_to_a_budget_per_window() {
    let mut log = TransitionLog::default();
    let t0 = Instant::now();
    let first = (0..LOGGED_PER_WINDOW + 30)
        .filter(|_| log.allow(t0))
        .count();
    assert_eq!(first, LOGGED_PER_WINDOW);
    assert_eq!(log.suppressed, 30);
    assert!(!log.allow(t0 + LOG_WINDOW / 2), "still the same window");
    assert!(log.allow(t0 + LOG_WINDOW), "a new window logs again");
    assert_eq!((log.logged, log.suppressed), (1, 0));
}

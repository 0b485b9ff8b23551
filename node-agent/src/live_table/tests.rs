use std::collections::BTreeMap;

use lvs_ipvs::{
    DestConfig, DestEntry, DestKey, DestStats, Destination, Protocol, Service, ServiceConfig, Stats,
};

use super::*;

fn tuple(addr: &str, protocol: Protocol, port: u16) -> ServiceKey {
    ServiceKey::Tuple {
        addr: addr.parse().unwrap(),
        protocol,
        port,
    }
}

fn entry(key: ServiceKey, dests: usize) -> ServiceEntry {
    let family = key.family();
    ServiceEntry {
        service: Service {
            key,
            config: ServiceConfig::new(family, "wrr"),
        },
        stats: Stats {
            conns: 7,
            in_bps: 100,
            ..Stats::default()
        },
        destinations: (0..dests)
            .rev()
            .map(|i| DestEntry {
                destination: Destination {
                    key: DestKey {
                        addr: match family {
                            Family::V4 => IpAddr::from([10, 1, (i / 250) as u8, (i % 250) as u8]),
                            Family::V6 => format!("2001:db8::{:x}", i + 1).parse().unwrap(),
                        },
                        port: 8080,
                    },
                    config: DestConfig::new(FwdMethod::Masq, 1),
                },
                stats: DestStats {
                    active_conns: 2,
                    inactive_conns: 1,
                    persist_conns: 0,
                    traffic: Stats {
                        conns: 3,
                        ..Stats::default()
                    },
                },
            })
            .collect(),
    }
}

fn view(entries: Vec<ServiceEntry>, owners: &[(ServiceKey, &str)]) -> LiveView {
    LiveView {
        ipvs_available: true,
        entries,
        owners: owners
            .iter()
            .map(|(k, o)| (*k, o.to_string()))
            .collect::<BTreeMap<_, _>>(),
        changes: None,
    }
}

#[test]
fn services_are_named_and_sorted_as_ipvsadm_lists_them() {
    let keys = [
        ServiceKey::Fwmark {
            family: Family::V6,
            mark: 7,
        },
        tuple("2001:db8::1", Protocol::UDP, 53),
        tuple("192.0.2.10", Protocol::UDP, 53),
        ServiceKey::Fwmark {
            family: Family::V4,
            mark: 9,
        },
        tuple("192.0.2.10", Protocol::TCP, 443),
        tuple("192.0.2.9", Protocol::TCP, 80),
        tuple("192.0.2.10", Protocol::TCP, 80),
        tuple("192.0.2.10", Protocol::SCTP, 80),
    ];
    let v = view(keys.iter().map(|k| entry(*k, 1)).collect(), &[]);
    let st = status(&v, &[], "t".into());
    let names: Vec<&str> = st.services.iter().map(|s| s.service.as_str()).collect();
    assert_eq!(
        names,
        [
            "TCP 192.0.2.9:80",
            "TCP 192.0.2.10:80",
            "TCP 192.0.2.10:443",
            "UDP 192.0.2.10:53",
            "SCTP 192.0.2.10:80",
            "UDP [2001:db8::1]:53",
            "FWM 9",
            "FWM 7 IPv6",
        ]
    );
    assert_eq!(st.time, "t");
    assert_eq!(st.error, "");
}

#[test]
fn owners_filter_and_foreign_services() {
    let (web, dns, other) = (
        tuple("192.0.2.10", Protocol::TCP, 80),
        tuple("192.0.2.10", Protocol::UDP, 53),
        tuple("192.0.2.99", Protocol::TCP, 80),
    );
    let v = view(
        vec![entry(web, 2), entry(dns, 1), entry(other, 1)],
        &[(web, "default/web"), (dns, "kube-system/dns")],
    );
    let all = status(&v, &[], String::new());
    let owners: Vec<&str> = all.services.iter().map(|s| s.owner.as_str()).collect();
    // TCP before UDP, then by address.
    assert_eq!(owners, ["default/web", "", "kube-system/dns"]);
    let only = status(&v, &["default/web".into()], String::new());
    assert_eq!(only.services.len(), 1);
    assert_eq!(only.services[0].service, "TCP 192.0.2.10:80");
    // Destinations sorted by address, with the kernel's counters.
    let d = &only.services[0].destinations;
    assert_eq!(d[0].destination, "10.1.0.0:8080");
    assert_eq!(d[1].destination, "10.1.0.1:8080");
    assert_eq!(d[0].method, "Masq");
    assert_eq!(d[0].counters.active_connections, 2);
    assert_eq!(d[0].counters.connections, 3);
    // The service's own counters, with its destinations' connections.
    let c = &only.services[0].counters;
    assert_eq!((c.connections, c.in_bps, c.active_connections), (7, 100, 4));
}

#[test]
fn the_answer_is_capped_and_counts_what_it_leaves_out() {
    let keys = [
        tuple("192.0.2.1", Protocol::TCP, 80),
        tuple("192.0.2.2", Protocol::TCP, 80),
        tuple("192.0.2.3", Protocol::TCP, 80),
    ];
    let v = view(keys.iter().map(|k| entry(*k, 1500)).collect(), &[]);
    let st = status(&v, &[], String::new());
    let listed: usize = st.services.iter().map(|s| 1 + s.destinations.len()).sum();
    assert_eq!(listed, MAX_SNAPSHOT_DESTINATIONS);
    assert_eq!(st.services.len(), 2);
    assert_eq!(st.services[0].destinations.len(), 1500);
    assert_eq!(st.services[1].destinations.len(), 498);
    assert_eq!(st.omitted_destinations, 1002 + 1500);
    // Small enough for one API object.
    let bytes = serde_json::to_vec(&st).unwrap().len();
    assert!(bytes < 1024 * 1024, "{bytes} bytes");

    let mut v = view(vec![], &[]);
    v.changes = Some(
        (0..MAX_SNAPSHOT_CHANGES + 7)
            .map(|i| format!("c{i}"))
            .collect(),
    );
    let st = status(&v, &[], String::new());
    assert_eq!(st.changes.len(), MAX_SNAPSHOT_CHANGES);
    assert_eq!(st.changes[0], "c0");
    assert_eq!(st.omitted_changes, 7);
}

#[test]
fn settings_as_ipvsadm_names_them() {
    use lvs_ipvs::{TunnelFlags, TunnelType};
    let key = tuple("192.0.2.10", Protocol::TCP, 80);
    let mut e = entry(key, 3);
    e.service.config.scheduler = "sh".into();
    e.service.config.flags = ServiceFlags::SCHED1
        | ServiceFlags::SCHED2
        | ServiceFlags::ONE_PACKET
        | ServiceFlags::PERSISTENT;
    e.service.config.timeout = 300;
    e.service.config.netmask = ServiceConfig::netmask_for_prefix(Family::V4, 24);
    let c = &mut e.destinations[0].destination.config;
    (c.fwd, c.tun_type, c.tun_flags) = (FwdMethod::Tunnel, TunnelType::GRE, TunnelFlags::CSUM);
    let c = &mut e.destinations[1].destination.config;
    (c.fwd, c.tun_type, c.tun_port) = (FwdMethod::Tunnel, TunnelType::GUE, 6080);
    let c = &mut e.destinations[2].destination.config;
    (c.fwd, c.u_threshold, c.l_threshold) = (FwdMethod::Local, 100, 10);
    let st = status(&view(vec![e], &[]), &[], String::new());
    let s = &st.services[0];
    assert_eq!(s.flags, ["sh-fallback", "sh-port", "ops"]);
    assert_eq!(s.persistence, Some(300));
    assert_eq!(s.netmask.as_deref(), Some("255.255.255.0"));
    let d: Vec<(&str, &str, &str)> = s
        .destinations
        .iter()
        .map(|d| (d.destination.as_str(), d.method.as_str(), d.tunnel.as_str()))
        .collect();
    assert_eq!(
        d,
        [
            ("10.1.0.0:8080", "Local", ""),
            ("10.1.0.1:8080", "Tunnel", "gue port 6080"),
            ("10.1.0.2:8080", "Tunnel", "gre csum"),
        ]
    );
    assert_eq!(
        (
            s.destinations[0].upper_threshold,
            s.destinations[0].lower_threshold
        ),
        (100, 10)
    );
    assert_eq!(flag_names("mh", ServiceFlags::SCHED1), ["mh-fallback"]);
    assert_eq!(
        flag_names("wrr", ServiceFlags::SCHED1 | ServiceFlags::SCHED3),
        ["flag-1", "flag-3"]
    );
    // Not persistent: neither timeout nor netmask.
    let plain = status(&view(vec![entry(key, 0)], &[]), &[], String::new());
    assert_eq!(plain.services[0].persistence, None);
    assert_eq!(plain.services[0].netmask, None);
    let v6 = tuple("2001:db8::1", Protocol::TCP, 80);
    let mut e = entry(v6, 0);
    e.service.config.flags = ServiceFlags::PERSISTENT;
    e.service.config.netmask = 64;
    let st = status(&view(vec![e], &[]), &[], String::new());
    assert_eq!(st.services[0].netmask.as_deref(), Some("64"));
}

#[test]
fn without_ipvs_the_answer_says_so() {
    let mut v = view(vec![], &[]);
    v.ipvs_available = false;
    let st = status(&v, &[], String::new());
    assert_eq!(st.error, "IPVS is not available in this node's kernel");
}

#[test]
fn times_have_milliseconds() {
    let t = rfc3339_millis_now();
    // 2026-12-06T17:01:02.345Z
    assert_eq!(t.len(), 24, "{t}");
    assert_eq!(&t[19..20], ".", "{t}");
    assert!(t.ends_with('Z'), "{t}");
    assert!(t.parse::<k8s_openapi::jiff::Timestamp>().is_ok(), "{t}");
}

#[test]
fn a_token_is_answered_once() {
    assert_eq!(unanswered("a", None, None), Some("a"));
    assert_eq!(unanswered("", None, None), None, "no request");
    assert_eq!(
        unanswered("a", Some("a"), None),
        None,
        "answered in the status"
    );
    assert_eq!(
        unanswered("a", Some("old"), Some("a")),
        None,
        "answered by this agent; the watch shows the object from before"
    );
    assert_eq!(unanswered("b", Some("a"), Some("a")), Some("b"));
}

/// A requester asking every 100 ms for 3 s, with a new token each time:
/// answers go out at most once per interval, each for the newest token
/// of the moment, and the last token is answered.
#[test]
fn requests_are_coalesced_to_one_answer_per_interval() {
    let t0 = Instant::now();
    let min = MIN_INTERVAL;
    let step = Duration::from_millis(100);
    let mut last: Option<Instant> = None;
    let mut answered: Option<String> = None;
    let mut answers: Vec<(Duration, String)> = Vec::new();
    let mut status: Option<String> = None;
    for tick in 0..=50u32 {
        let now = t0 + step * tick;
        // Requests stop after 3 s; the simulation runs on to 5 s.
        let request = format!("r{}", tick.min(30));
        let Some(token) = unanswered(&request, status.as_deref(), answered.as_deref()) else {
            continue;
        };
        if answer_at(last, min, now) <= now {
            answers.push((now - t0, token.to_string()));
            answered = Some(token.to_string());
            status = answered.clone();
            last = Some(now);
        }
    }
    for w in answers.windows(2) {
        assert!(w[1].0 - w[0].0 >= min, "{answers:?}");
    }
    assert_eq!(
        answers[0],
        (Duration::ZERO, "r0".into()),
        "the first at once"
    );
    assert_eq!(
        answers.last().unwrap().1,
        "r30",
        "the newest is answered: {answers:?}"
    );
    assert_eq!(answers.len(), 4, "{answers:?}");
    // An idle agent answers at once.
    let now = t0 + Duration::from_secs(60);
    assert_eq!(answer_at(last, min, now), now);
}

//! Table tests for every role and method, and property tests over input order.
//!
//! Longer than most files: one table per role and method, kept together so
//! that a new method is added to every table at once.

use std::net::IpAddr;

use lvs_api::manifest::{ManifestSet, parse};
use lvs_api::{ForwardingMethod, Scheduler, TunnelType};
use lvs_planner::{
    Incremental, NodePlan, ServiceKey, ServiceState, Sysctl, analyze, gre_checksum_device, plan,
};
use proptest::prelude::*;

const NODES: &str = r#"
apiVersion: v1
kind: Node
metadata: {name: dir1, labels: {lvs.lvs-operator.io/director: "true"}}
status: {addresses: [{type: InternalIP, address: 10.10.0.2}, {type: InternalIP, address: "fd00:10::2"}]}
---
apiVersion: v1
kind: Node
metadata: {name: rs1}
status: {addresses: [{type: InternalIP, address: 10.10.0.11}, {type: InternalIP, address: "fd00:10::11"}]}
---
apiVersion: v1
kind: Node
metadata: {name: rs2}
status: {addresses: [{type: InternalIP, address: 10.10.0.12}]}
---
apiVersion: v1
kind: Node
metadata: {name: rs4}
status: {addresses: [{type: InternalIP, address: 10.20.0.14}]}
"#;

fn vs(name: &str, body: &str) -> String {
    format!(
        "apiVersion: lvs.lvs-operator.io/v1alpha1\nkind: VirtualService\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  directors: {{nodeSelector: {{matchLabels: {{lvs.lvs-operator.io/director: \"true\"}}}}}}\n{body}\n---\n"
    )
}

fn rs(name: &str, app: &str, body: &str) -> String {
    format!(
        "apiVersion: lvs.lvs-operator.io/v1alpha1\nkind: RealServer\nmetadata: {{name: {name}, namespace: default, labels: {{app: {app}}}}}\nspec:\n{body}\n---\n"
    )
}

fn set(yaml: &str) -> ManifestSet {
    let mut s = ManifestSet::default();
    s.extend(parse(NODES).unwrap());
    s.extend(parse(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}")));
    s
}

fn plan_of(node: &str, s: &ManifestSet) -> NodePlan {
    plan(node, &s.virtual_services, &s.real_servers, &s.nodes)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn has_sysctl(p: &NodePlan, key: &str, value: &str) -> bool {
    p.sysctls
        .contains(&Sysctl::new(key.to_string(), value.to_string()))
}

#[test]
fn nat_director_gets_service_vip_and_forwarding_and_port_mapping() {
    let s = set(&[
        vs("web", "  address: 192.0.2.10\n  port: 8080\n  scheduler: rr\n  realServerSelector: {matchLabels: {app: web}}"),
        rs("a", "web", "  address: 10.10.0.11\n  port: 80\n  weight: 3"),
        rs("b", "web", "  address: 10.10.0.12\n  port: 80"),
    ]
    .concat());
    let p = plan_of("dir1", &s);
    assert_eq!(p.services.len(), 1);
    let svc = &p.services[0];
    assert_eq!(
        svc.key,
        ServiceKey::Tuple {
            addr: ip("192.0.2.10"),
            protocol: lvs_api::Protocol::Tcp,
            port: 8080
        }
    );
    assert_eq!(svc.scheduler, Scheduler::Rr);
    assert_eq!(svc.owner, "default/web");
    let dests: Vec<(IpAddr, u16, u32, ForwardingMethod)> = svc
        .destinations
        .iter()
        .map(|d| (d.addr, d.port, d.weight, d.method))
        .collect();
    assert_eq!(
        dests,
        vec![
            (ip("10.10.0.11"), 80, 3, ForwardingMethod::Nat),
            (ip("10.10.0.12"), 80, 1, ForwardingMethod::Nat)
        ]
    );
    assert_eq!(p.vips.len(), 1);
    assert_eq!(p.vips[0].addr, ip("192.0.2.10"));
    assert!(has_sysctl(&p, "net/ipv4/ip_forward", "1"));
    assert!(has_sysctl(&p, "net/ipv4/vs/conntrack", "1"));
    // Drained and removed destinations: entries expire, templates to
    // weight-0 destinations too (every director, persistence or not).
    assert!(has_sysctl(&p, "net/ipv4/vs/expire_nodest_conn", "1"));
    assert!(has_sysctl(&p, "net/ipv4/vs/expire_quiescent_template", "1"));
    assert!(p.loopback_vips.is_empty() && p.tunnels.is_empty());
    // realserver nodes of a NAT service have nothing to do
    assert!(plan_of("rs1", &s).is_empty());
}

#[test]
fn dr_realserver_nodes_get_vip_on_lo_and_arp_sysctls() {
    let s = set(&[
        vs("dr", "  address: 192.0.2.20\n  port: 80\n  forwarding: DR\n  realServerSelector: {matchLabels: {app: dr}}"),
        rs("rs1", "dr", "  nodeName: rs1"),
        rs("rs2", "dr", "  nodeName: rs2\n  weight: 2"),
    ]
    .concat());
    let d = plan_of("dir1", &s);
    assert_eq!(d.services[0].destinations.len(), 2);
    assert!(
        d.services[0]
            .destinations
            .iter()
            .all(|x| x.method == ForwardingMethod::Dr && x.port == 80)
    );
    assert!(
        !has_sysctl(&d, "net/ipv4/ip_forward", "1"),
        "DR needs no forwarding on the director"
    );
    for node in ["rs1", "rs2"] {
        let p = plan_of(node, &s);
        assert_eq!(p.loopback_vips, vec![ip("192.0.2.20")], "{node}");
        assert!(
            has_sysctl(&p, "net/ipv4/conf/all/arp_ignore", "1"),
            "{node}"
        );
        assert!(
            has_sysctl(&p, "net/ipv4/conf/all/arp_announce", "2"),
            "{node}"
        );
        assert!(p.services.is_empty() && p.vips.is_empty());
    }
    assert!(plan_of("rs4", &s).is_empty());
}

#[test]
fn tun_realserver_gets_tunnel_with_vip_and_loose_rp_filter() {
    let s = set(&[
        vs("tun", "  address: 192.0.2.30\n  port: 80\n  forwarding: TUN\n  tunnel: {type: ipip}\n  realServerSelector: {matchLabels: {app: tun}}"),
        rs("rs4", "tun", "  nodeName: rs4"),
    ]
    .concat());
    let d = plan_of("dir1", &s);
    let dest = &d.services[0].destinations[0];
    assert_eq!(dest.addr, ip("10.20.0.14"));
    assert_eq!(dest.method, ForwardingMethod::Tun);
    assert_eq!(dest.tunnel.unwrap().type_, TunnelType::Ipip);
    let p = plan_of("rs4", &s);
    assert_eq!(p.tunnels.len(), 1);
    assert_eq!(p.tunnels[0].device, "tunl0");
    assert_eq!(p.tunnels[0].vips, vec![ip("192.0.2.30")]);
    assert!(has_sysctl(&p, "net/ipv4/conf/all/rp_filter", "2"));
    assert!(has_sysctl(&p, "net/ipv4/conf/tunl0/rp_filter", "2"));
    assert!(p.loopback_vips.is_empty());
}

#[test]
fn gre_with_checksum_gets_a_device_per_realserver_address_and_disagreement_is_a_conflict() {
    let csum = vs(
        "gre-csum",
        "  address: 192.0.2.40\n  port: 80\n  forwarding: TUN\n  tunnel: {type: gre, checksum: {enabled: true}}\n  realServerSelector: {matchLabels: {app: csum}}",
    );
    let s = set(&[
        csum.clone(),
        rs("rs4-csum", "csum", "  nodeName: rs4"),
        rs("rs2-csum", "csum", "  nodeName: rs2"),
    ]
    .concat());
    let d = plan_of("dir1", &s);
    assert!(d.services[0].destinations.iter().all(|d| {
        d.tunnel
            .is_some_and(|t| t.type_ == TunnelType::Gre && t.checksum)
    }));
    let p = plan_of("rs4", &s);
    let dev = gre_checksum_device(ip("10.20.0.14"));
    assert!(dev.starts_with("lvsg") && dev.len() == 12, "{dev}");
    assert_ne!(dev, gre_checksum_device(ip("10.10.0.12")));
    assert_eq!(p.tunnels.len(), 1);
    assert_eq!(p.tunnels[0].device, dev);
    assert_eq!(p.tunnels[0].local, Some(ip("10.20.0.14")));
    assert_eq!(p.tunnels[0].vips, vec![ip("192.0.2.40")]);
    assert!(has_sysctl(
        &p,
        &format!("net/ipv4/conf/{dev}/rp_filter"),
        "2"
    ));
    assert!(p.gre_checksum_conflicts.is_empty());

    // A second service tunnels GRE to rs4 without a checksum: gre0 as
    // before, and the address is reported as a conflict.
    let s = set(&[
        csum,
        vs("gre-plain", "  address: 192.0.2.41\n  port: 80\n  forwarding: TUN\n  tunnel: {type: gre}\n  realServerSelector: {matchLabels: {app: plain}}"),
        rs("rs4-csum", "csum", "  nodeName: rs4"),
        rs("rs4-plain", "plain", "  nodeName: rs4"),
    ]
    .concat());
    let p = plan_of("rs4", &s);
    let devices: Vec<(&str, Option<std::net::IpAddr>)> = p
        .tunnels
        .iter()
        .map(|t| (t.device.as_str(), t.local))
        .collect();
    assert!(devices.contains(&("gre0", None)), "{devices:?}");
    assert!(
        devices.contains(&(dev.as_str(), Some(ip("10.20.0.14")))),
        "{devices:?}"
    );
    assert_eq!(p.gre_checksum_conflicts, vec![ip("10.20.0.14")]);
}

#[test]
fn a_realserver_tunnel_overrides_the_service_tunnel_per_destination() {
    let s = set(&[
        vs("tun", "  address: 192.0.2.32\n  port: 80\n  forwarding: TUN\n  realServerSelector: {matchLabels: {app: tun}}"),
        rs("gre", "tun", "  nodeName: rs4\n  tunnel: {type: gre}"),
        rs("plain", "tun", "  nodeName: rs2"),
        vs("nat", "  address: 192.0.2.33\n  port: 80\n  realServerSelector: {matchLabels: {app: nat}}"),
        rs("nat-gre", "nat", "  address: 10.10.0.11\n  tunnel: {type: gre}"),
    ]
    .concat());
    let d = plan_of("dir1", &s);
    let svc = d
        .services
        .iter()
        .find(|v| matches!(v.key, ServiceKey::Tuple { addr, .. } if addr == ip("192.0.2.32")))
        .unwrap();
    let tunnel_to = |a: &str| {
        svc.destinations.iter().find(|d| d.addr == ip(a)).map(|d| {
            let t = d.tunnel.unwrap();
            (t.type_, t.checksum)
        })
    };
    assert_eq!(tunnel_to("10.20.0.14"), Some((TunnelType::Gre, false)));
    assert_eq!(tunnel_to("10.10.0.12"), Some((TunnelType::Ipip, false)));
    let devices = |node: &str| -> Vec<(String, TunnelType)> {
        plan_of(node, &s)
            .tunnels
            .iter()
            .map(|t| (t.device.clone(), t.type_))
            .collect()
    };
    assert_eq!(devices("rs4"), vec![("gre0".to_string(), TunnelType::Gre)]);
    assert_eq!(
        devices("rs2"),
        vec![("tunl0".to_string(), TunnelType::Ipip)]
    );

    let a = analyze(&s.virtual_services, &s.real_servers, &s.nodes);
    let nat = a.get("default/nat").unwrap();
    assert_eq!(nat.ready(), 0);
    let why = nat.real_servers[0].problem.clone().unwrap_or_default();
    assert!(
        why.contains("spec.tunnel") && why.contains("forwards with the service's NAT"),
        "{why}"
    );
}

#[test]
fn gue_tunnel_carries_its_port_to_destinations_and_endpoints() {
    let s = set(&[
        vs("gue", "  address: 192.0.2.31\n  port: 80\n  forwarding: TUN\n  tunnel: {type: gue, port: 5555, checksum: {enabled: true}}\n  realServerSelector: {matchLabels: {app: gue}}"),
        rs("rs4", "gue", "  nodeName: rs4"),
    ]
    .concat());
    let t = plan_of("dir1", &s).services[0].destinations[0]
        .tunnel
        .unwrap();
    assert_eq!((t.type_, t.port, t.checksum), (TunnelType::Gue, 5555, true));
    let p = plan_of("rs4", &s);
    assert_eq!(
        (p.tunnels[0].type_, p.tunnels[0].port),
        (TunnelType::Gue, 5555)
    );
}

#[test]
fn ipv6_nat_uses_v6_forwarding_and_v6_node_addresses() {
    let s = set(&[
        vs("v6", "  address: \"2001:db8::10\"\n  port: 80\n  persistence: {timeoutSeconds: 60}\n  realServerSelector: {matchLabels: {app: v6}}"),
        rs("n1", "v6", "  nodeName: rs1"),
        rs("n2", "v6", "  nodeName: rs2"),
    ]
    .concat());
    let a = analyze(&s.virtual_services, &s.real_servers, &s.nodes);
    let v = a.get("default/v6").unwrap();
    assert_eq!(v.ready(), 1, "rs2 has no IPv6 InternalIP");
    assert!(
        v.real_servers[1]
            .problem
            .as_ref()
            .unwrap()
            .contains("no IPv6 InternalIP")
    );
    let p = plan_of("dir1", &s);
    assert_eq!(p.services[0].destinations[0].addr, ip("fd00:10::11"));
    assert_eq!(p.services[0].persistence.unwrap().prefix_length, 128);
    assert!(has_sysctl(&p, "net/ipv6/conf/all/forwarding", "1"));
    assert!(has_sysctl(&p, "net/ipv4/vs/expire_quiescent_template", "1"));
}

#[test]
fn fwmark_service_has_no_vip_and_keeps_ports() {
    let s = set(&[
        vs(
            "fw",
            "  fwmark: 7\n  realServerSelector: {matchLabels: {app: fw}}",
        ),
        rs("a", "fw", "  address: 10.10.0.11"),
    ]
    .concat());
    let p = plan_of("dir1", &s);
    assert_eq!(
        p.services[0].key,
        ServiceKey::Fwmark {
            mark: 7,
            ipv6: false
        }
    );
    assert_eq!(p.services[0].destinations[0].port, 0);
    assert!(p.vips.is_empty());
}

#[test]
fn fwmark_match_gives_vips_a_marking_rule_and_dr_realservers_the_vips() {
    let s = set(&[
        vs(
            "fw",
            "  fwmark: 7\n  forwarding: DR\n  fwmarkMatch: {addresses: [192.0.2.81, 192.0.2.80], protocol: TCP, ports: [{port: 443}, {port: 80}, {port: 8000, endPort: 8100}]}\n  realServerSelector: {matchLabels: {app: fw}}",
        ),
        rs("rs1", "fw", "  nodeName: rs1"),
        rs("rs4", "fw", "  nodeName: rs4\n  forwarding: TUN"),
    ]
    .concat());
    let vips = vec![ip("192.0.2.80"), ip("192.0.2.81")];
    let d = plan_of("dir1", &s);
    assert_eq!(
        d.vips.iter().map(|v| v.addr).collect::<Vec<_>>(),
        vips,
        "the director holds every match address"
    );
    assert!(d.vips.iter().all(|v| v.directors == ["dir1"]));
    assert_eq!(
        d.marks,
        vec![lvs_planner::PlannedMark {
            mark: 7,
            ipv6: false,
            addresses: vips.clone(),
            protocol: lvs_api::Protocol::Tcp,
            ports: vec![(80, 80), (443, 443), (8000, 8100)],
        }]
    );
    let r1 = plan_of("rs1", &s);
    assert_eq!(r1.loopback_vips, vips, "DR realserver: every VIP on lo");
    assert!(has_sysctl(&r1, "net/ipv4/conf/all/arp_ignore", "1"));
    assert!(r1.marks.is_empty(), "realservers mark nothing");
    let r4 = plan_of("rs4", &s);
    assert_eq!(r4.tunnels.len(), 1);
    assert_eq!(
        r4.tunnels[0].vips, vips,
        "TUN realserver: every VIP on the tunnel device"
    );
    // Without a match: no VIP, no rule (the user marks the packets).
    let bare = set(&[
        vs(
            "fw",
            "  fwmark: 7\n  forwarding: DR\n  realServerSelector: {matchLabels: {app: fw}}",
        ),
        rs("rs1", "fw", "  nodeName: rs1"),
    ]
    .concat());
    let d = plan_of("dir1", &bare);
    assert!(d.vips.is_empty() && d.marks.is_empty());
    assert!(plan_of("rs1", &bare).loopback_vips.is_empty());
}

#[test]
fn source_nat_is_planned_on_the_directors_of_its_nat_service_only() {
    let s = set(&[
        vs("snat", "  address: 192.0.2.10\n  port: 80\n  sourceNat: true\n  realServerSelector: {matchLabels: {app: web}}"),
        vs("plain", "  address: 192.0.2.11\n  port: 80\n  realServerSelector: {matchLabels: {app: web}}"),
        vs("fw", "  fwmark: 7\n  sourceNat: true\n  realServerSelector: {matchLabels: {app: web}}"),
        rs("a", "web", "  address: 10.10.0.11"),
    ]
    .concat());
    let p = plan_of("dir1", &s);
    assert_eq!(
        p.source_nat,
        vec![
            ServiceKey::Tuple {
                addr: ip("192.0.2.10"),
                protocol: lvs_api::Protocol::Tcp,
                port: 80
            },
            ServiceKey::Fwmark {
                mark: 7,
                ipv6: false
            },
        ]
    );
    // Masquerading needs IPVS connections in conntrack.
    assert!(has_sysctl(&p, "net/ipv4/vs/conntrack", "1"));
    // A NAT realserver has nothing to do, source NAT or not.
    assert!(plan_of("rs1", &s).is_empty());
    // Without sourceNat nothing is masqueraded.
    let plain = set(&[
        vs(
            "plain",
            "  address: 192.0.2.11\n  port: 80\n  realServerSelector: {matchLabels: {app: web}}",
        ),
        rs("a", "web", "  address: 10.10.0.11"),
    ]
    .concat());
    assert!(plan_of("dir1", &plain).source_nat.is_empty());
}

#[test]
fn source_nat_with_dr_is_refused_and_not_planned() {
    // Manifests refuse it when read; an object that got past admission
    // anyway (written before the rule existed) is not planned either.
    let yaml = vs(
        "dr",
        "  address: 192.0.2.10\n  port: 80\n  forwarding: DR\n  sourceNat: true\n  realServerSelector: {matchLabels: {app: web}}",
    );
    let err = parse(&yaml).unwrap_err().to_string();
    assert!(err.contains("sourceNat"), "{err}");
    let mut s = set(&[
        vs("dr", "  address: 192.0.2.10\n  port: 80\n  forwarding: DR\n  realServerSelector: {matchLabels: {app: web}}"),
        rs("a", "web", "  address: 10.10.0.11"),
    ]
    .concat());
    s.virtual_services[0].spec.source_nat = true;
    let a = analyze(&s.virtual_services, &s.real_servers, &s.nodes);
    assert!(
        matches!(&a.verdicts[0].state, ServiceState::Invalid(why) if why.contains("sourceNat")),
        "{:?}",
        a.verdicts[0].state
    );
    assert!(plan_of("dir1", &s).source_nat.is_empty());
}

#[test]
fn realserver_override_and_cross_object_rules() {
    let s = set(&[
        vs("mix", "  address: 192.0.2.40\n  port: 80\n  forwarding: DR\n  realServerSelector: {matchLabels: {app: mix}}"),
        rs("nat", "mix", "  address: 10.10.0.11\n  port: 8080\n  forwarding: NAT"),
        rs("mapped", "mix", "  address: 10.10.0.12\n  port: 8080"),
        rs("v6", "mix", "  address: \"fd00::1\""),
        rs("ghost", "mix", "  nodeName: nowhere"),
    ]
    .concat());
    let a = analyze(&s.virtual_services, &s.real_servers, &s.nodes);
    let v = a.get("default/mix").unwrap();
    assert_eq!((v.selected(), v.ready()), (4, 1));
    let problem = |n: &str| {
        v.real_servers
            .iter()
            .find(|r| &*r.name == n)
            .unwrap()
            .problem
            .clone()
            .unwrap_or_default()
    };
    assert!(
        problem("default/mapped")
            .contains("port mapping is only possible with forwarding NAT (got DR)")
    );
    assert!(problem("default/v6").contains("families must match"));
    assert!(problem("default/ghost").contains("node \"nowhere\" not found"));
    assert_eq!(problem("default/nat"), "");
    assert_eq!(v.destinations[0].method, ForwardingMethod::Nat);
}

#[test]
fn oldest_wins_a_conflict_and_the_loser_is_not_programmed() {
    let mut s = set(&[
        vs("young", "  address: 192.0.2.50\n  port: 80\n  scheduler: rr\n  realServerSelector: {matchLabels: {app: x}}"),
        vs("old", "  address: 192.0.2.50\n  port: 80\n  scheduler: sh\n  realServerSelector: {matchLabels: {app: x}}"),
        rs("a", "x", "  address: 10.10.0.11"),
    ]
    .concat());
    s.virtual_services[0].meta.creation_timestamp = Some("2026-01-02T00:00:00Z".into());
    s.virtual_services[1].meta.creation_timestamp = Some("2026-01-01T00:00:00Z".into());
    let a = analyze(&s.virtual_services, &s.real_servers, &s.nodes);
    assert_eq!(a.get("default/old").unwrap().state, ServiceState::Accepted);
    assert_eq!(
        a.get("default/young").unwrap().state,
        ServiceState::Conflict {
            winner: "default/old".into()
        }
    );
    assert!(a.get("default/young").unwrap().involved_nodes().is_empty());
    let p = plan_of("dir1", &s);
    assert_eq!(p.services.len(), 1);
    assert_eq!(p.services[0].scheduler, Scheduler::Sh);
    // same protocol on another port, or another protocol, is no conflict
    let s2 = set(&[
        vs("tcp", "  address: 192.0.2.50\n  port: 80\n  realServerSelector: {matchLabels: {app: x}}"),
        vs("udp", "  address: 192.0.2.50\n  port: 80\n  protocol: UDP\n  realServerSelector: {matchLabels: {app: x}}"),
    ]
    .concat());
    assert_eq!(plan_of("dir1", &s2).services.len(), 2);
}

#[test]
fn ties_without_timestamps_break_by_name() {
    let s = set(&[
        vs("b", "  fwmark: 3\n  realServerSelector: {}"),
        vs("a", "  fwmark: 3\n  realServerSelector: {}"),
    ]
    .concat());
    let a = analyze(&s.virtual_services, &s.real_servers, &s.nodes);
    assert_eq!(a.get("default/a").unwrap().state, ServiceState::Accepted);
    assert!(matches!(
        a.get("default/b").unwrap().state,
        ServiceState::Conflict { .. }
    ));
}

#[test]
fn invalid_service_is_reported_and_not_programmed() {
    let mut s = set(&vs(
        "ok",
        "  address: 192.0.2.60\n  port: 80\n  realServerSelector: {}",
    ));
    // bypass admission, as a stale object in the API server could
    s.virtual_services[0].spec.port = Some(0);
    let a = analyze(&s.virtual_services, &s.real_servers, &s.nodes);
    assert!(matches!(&a.verdicts[0].state, ServiceState::Invalid(m) if m.contains("spec.port")));
    assert!(plan_of("dir1", &s).is_empty());
}

#[test]
fn selector_is_namespaced_and_duplicate_destinations_are_refused() {
    let mut s = set(&[
        vs(
            "web",
            "  address: 192.0.2.70\n  port: 80\n  realServerSelector: {matchLabels: {app: web}}",
        ),
        rs("a", "web", "  address: 10.10.0.11"),
        rs("b", "web", "  address: 10.10.0.11"),
        rs("other", "web", "  address: 10.10.0.12"),
    ]
    .concat());
    s.real_servers
        .iter_mut()
        .find(|r| r.meta.name == "other")
        .unwrap()
        .meta
        .namespace = "other".into();
    let a = analyze(&s.virtual_services, &s.real_servers, &s.nodes);
    let v = a.get("default/web").unwrap();
    assert_eq!((v.selected(), v.ready()), (2, 1));
    assert!(
        v.real_servers[1]
            .problem
            .as_ref()
            .unwrap()
            .contains("already a destination")
    );
}

#[test]
fn sh_and_mh_flags_reach_the_plan() {
    let s = set(&vs(
        "sh",
        "  address: 192.0.2.80\n  port: 80\n  scheduler: sh\n  schedulerFlags: [sh-port, sh-fallback]\n  realServerSelector: {}",
    ));
    let p = plan_of("dir1", &s);
    assert_eq!(
        p.services[0].flags,
        vec![
            lvs_api::SchedulerFlag::ShFallback,
            lvs_api::SchedulerFlag::ShPort
        ]
    );
}

#[test]
fn one_packet_reaches_the_plan_with_any_scheduler() {
    let s = set(&vs(
        "ops",
        "  address: 192.0.2.53\n  port: 53\n  protocol: UDP\n  scheduler: rr\n  schedulerFlags: [one-packet]\n  realServerSelector: {}",
    ));
    let p = plan_of("dir1", &s);
    assert_eq!(p.services[0].flags, vec![lvs_api::SchedulerFlag::OnePacket]);
}

// ---- properties -----------------------------------------------------------

fn world() -> impl Strategy<Value = ManifestSet> {
    let svc = (
        0u8..4,
        0u8..3,
        prop::sample::select(vec!["NAT", "DR", "TUN"]),
        prop::bool::ANY,
        0u8..3,
    );
    let real = (0u8..3, 0u8..6, prop::bool::ANY, 0u16..4);
    (prop::collection::vec(svc, 0..6), prop::collection::vec(real, 0..10)).prop_map(|(svcs, reals)| {
        let mut yaml = String::new();
        for (i, (addr, port, method, valid, app)) in svcs.iter().enumerate() {
            let port = if *valid { 80 + *port as u32 } else { 0 };
            yaml += &vs(
                &format!("vs{i}"),
                &format!(
                    "  address: 192.0.2.{addr}\n  port: {}\n  forwarding: {method}\n  realServerSelector: {{matchLabels: {{app: a{app}}}}}",
                    if port == 0 { 80 } else { port }
                ),
            );
        }
        for (i, (app, host, by_node, weight)) in reals.iter().enumerate() {
            let mut body = if *by_node {
                format!("  nodeName: {}\n  weight: {weight}", ["rs1", "rs2", "rs4", "dir1", "gone", "rs1"][*host as usize])
            } else {
                format!("  address: 10.10.0.{}\n  weight: {weight}", 11 + host)
            };
            // A tunnel of its own: used under TUN services, refused under others.
            if *weight == 3 {
                body += "\n  tunnel: {type: gre}";
            }
            yaml += &rs(&format!("r{i}"), &format!("a{app}"), &body);
        }
        let mut s = set(&yaml);
        for (i, (_, _, _, valid, _)) in svcs.iter().enumerate() {
            let o = &mut s.virtual_services[i];
            o.meta.creation_timestamp = Some(format!("2026-01-01T00:00:{:02}Z", (i * 7) % 5));
            if !valid {
                o.spec.port = Some(0);
            }
            o.spec.source_nat = i % 2 == 0 && o.spec.forwarding == ForwardingMethod::Nat;
        }
        s
    })
}

fn shuffled<T: Clone>(v: &[T], seed: u64) -> Vec<T> {
    let mut out = v.to_vec();
    let mut x = seed | 1;
    for i in (1..out.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.swap(i, (x % (i as u64 + 1)) as usize);
    }
    out
}

const ALL_NODES: [&str; 4] = ["dir1", "rs1", "rs2", "rs4"];

proptest! {
    #[test]
    fn plan_is_independent_of_input_order(s in world(), seed in any::<u64>()) {
        let vss = shuffled(&s.virtual_services, seed);
        let rss = shuffled(&s.real_servers, seed.rotate_left(17));
        let nodes = shuffled(&s.nodes, seed.rotate_left(33));
        for n in ALL_NODES {
            prop_assert_eq!(plan(n, &s.virtual_services, &s.real_servers, &s.nodes), plan(n, &vss, &rss, &nodes));
        }
    }

    #[test]
    fn plans_have_no_duplicate_keys_and_are_sorted(s in world()) {
        for n in ALL_NODES {
            let p = plan(n, &s.virtual_services, &s.real_servers, &s.nodes);
            let keys: Vec<ServiceKey> = p.services.iter().map(|x| x.key).collect();
            let mut sorted = keys.clone();
            sorted.sort();
            sorted.dedup();
            prop_assert_eq!(&keys, &sorted);
            for svc in &p.services {
                let d: Vec<(IpAddr, u16)> = svc.destinations.iter().map(|d| (d.addr, d.port)).collect();
                let mut ds = d.clone();
                ds.sort();
                ds.dedup();
                prop_assert_eq!(d, ds);
            }
            let mut sys = p.sysctls.clone();
            sys.dedup_by(|a, b| a.key == b.key);
            prop_assert_eq!(sys.len(), p.sysctls.len(), "one value per sysctl");
        }
    }

    #[test]
    fn source_nat_covers_exactly_the_nodes_source_nated_services(s in world()) {
        let nat: std::collections::BTreeMap<String, bool> = s
            .virtual_services
            .iter()
            .map(|o| (o.meta.key(), o.spec.source_nat))
            .collect();
        for n in ALL_NODES {
            let p = plan(n, &s.virtual_services, &s.real_servers, &s.nodes);
            let want: Vec<ServiceKey> = p
                .services
                .iter()
                .filter(|x| nat[&x.owner])
                .map(|x| x.key)
                .collect();
            prop_assert_eq!(&p.source_nat, &want);
            if !want.is_empty() {
                prop_assert!(has_sysctl(&p, "net/ipv4/vs/conntrack", "1"));
            }
        }
    }

    #[test]
    fn every_dr_realserver_node_gets_the_vip_on_lo_and_arp_sysctls(s in world()) {
        let a = analyze(&s.virtual_services, &s.real_servers, &s.nodes);
        for v in a.accepted() {
            let Some(ServiceKey::Tuple { addr, .. }) = v.key else { continue };
            for d in v.destinations.iter().filter(|d| d.method == ForwardingMethod::Dr) {
                let rsv = v.real_servers.iter().find(|r| *r.name == *d.owner).unwrap();
                let Some(node) = &rsv.node else { continue };
                if v.directors.contains(node) { continue; }
                let p = plan(node, &s.virtual_services, &s.real_servers, &s.nodes);
                prop_assert!(p.loopback_vips.contains(&addr));
                prop_assert!(has_sysctl(&p, "net/ipv4/conf/all/arp_ignore", "1"));
                prop_assert!(has_sysctl(&p, "net/ipv4/conf/all/arp_announce", "2"));
            }
        }
    }

    #[test]
    fn nothing_is_planned_for_invalid_or_conflicting_services(s in world()) {
        let a = analyze(&s.virtual_services, &s.real_servers, &s.nodes);
        let p = plan("dir1", &s.virtual_services, &s.real_servers, &s.nodes);
        let owners: Vec<&str> = p.services.iter().map(|x| x.owner.as_str()).collect();
        for v in &a.verdicts {
            let planned = owners.contains(&v.name.as_str());
            prop_assert_eq!(planned, v.state == ServiceState::Accepted, "{}: {:?}", v.name, v.state);
        }
        // exactly one accepted owner per key
        let mut keys: Vec<ServiceKey> = a.accepted().filter_map(|v| v.key).collect();
        let n = keys.len();
        keys.sort();
        keys.dedup();
        prop_assert_eq!(n, keys.len());
    }
}

// ---- incremental planning ------------------------------------------------

/// Plans `s` from scratch and checks the incremental state against it: the
/// whole plan, the verdicts it re-planned, and that its scope covers every
/// service and VIP whose plan changed.
fn check_step(
    inc: &mut Incremental,
    before: &NodePlan,
    s: &ManifestSet,
) -> Result<NodePlan, TestCaseError> {
    let node = inc.node().to_string();
    let changes = inc.diff(
        s.virtual_services.clone(),
        s.real_servers.clone(),
        s.nodes.clone(),
    );
    let applied = inc.apply(changes);
    let want = plan(&node, &s.virtual_services, &s.real_servers, &s.nodes);
    prop_assert_eq!(&inc.plan(), &want, "incremental plan of {} differs", node);
    let a = analyze(&s.virtual_services, &s.real_servers, &s.nodes);
    for (name, v) in &applied.verdicts {
        prop_assert_eq!(v.as_ref(), a.get(name), "verdict of {}", name);
    }
    if !applied.all {
        // Every service or VIP that changed is in the scope...
        let changed_keys = before
            .services
            .iter()
            .filter(|x| !want.services.contains(x))
            .chain(
                want.services
                    .iter()
                    .filter(|x| !before.services.contains(x)),
            )
            .map(|x| x.key);
        for k in changed_keys {
            prop_assert!(
                applied.scope.services.contains(&k),
                "{} changed outside the scope",
                k
            );
        }
        let changed_vips = before
            .vips
            .iter()
            .filter(|x| !want.vips.contains(x))
            .chain(want.vips.iter().filter(|x| !before.vips.contains(x)));
        for v in changed_vips {
            prop_assert!(
                applied.scope.vips.contains(&v.addr),
                "VIP {} changed outside the scope",
                v.addr
            );
        }
        // ...and the partial plan is the whole plan within the scope.
        let part = inc.partial_plan(applied.verdicts.iter().map(|(n, _)| n), &applied.scope);
        let in_scope: Vec<_> = want
            .services
            .iter()
            .filter(|x| applied.scope.services.contains(&x.key))
            .cloned()
            .collect();
        prop_assert_eq!(&part.services, &in_scope);
        let vips: Vec<_> = want
            .vips
            .iter()
            .filter(|x| applied.scope.vips.contains(&x.addr))
            .cloned()
            .collect();
        prop_assert_eq!(&part.vips, &vips);
        prop_assert_eq!(&part.sysctls, &want.sysctls);
        prop_assert_eq!(&part.loopback_vips, &want.loopback_vips);
        prop_assert_eq!(&part.tunnels, &want.tunnels);
    }
    Ok(want)
}

/// `s` with one Node changed, so node changes are exercised too.
fn with_node_change(mut s: ManifestSet, which: u8) -> ManifestSet {
    match which {
        1 => s.nodes.retain(|n| n.name != "rs2"),
        2 => {
            if let Some(n) = s.nodes.iter_mut().find(|n| n.name == "dir1") {
                n.labels.clear();
            }
        }
        3 => {
            if let Some(n) = s.nodes.iter_mut().find(|n| n.name == "rs1") {
                n.internal_ips = vec![ip("10.10.0.99")];
            }
        }
        _ => {}
    }
    s
}

proptest! {
    #[test]
    fn incremental_plans_equal_plans_from_scratch(
        a in world(), b in world(), c in world(), node_change in 0u8..6, keep in prop::collection::vec(any::<bool>(), 16),
    ) {
        for n in ALL_NODES {
            let mut inc = Incremental::new(n);
            let p = check_step(&mut inc, &NodePlan::default(), &a)?;
            let p = check_step(&mut inc, &p, &b)?;
            // A partial step: some objects from b, some from c.
            let mut mix = b.clone();
            for (i, o) in c.virtual_services.iter().enumerate() {
                if keep[i % keep.len()] {
                    mix.virtual_services.retain(|x| x.meta.key() != o.meta.key());
                    mix.virtual_services.push(o.clone());
                }
            }
            for (i, o) in c.real_servers.iter().enumerate() {
                if !keep[(i + 3) % keep.len()] {
                    mix.real_servers.retain(|x| x.meta.key() != o.meta.key());
                    if keep[(i + 5) % keep.len()] {
                        mix.real_servers.push(o.clone());
                    }
                }
            }
            let p = check_step(&mut inc, &p, &mix)?;
            let p = check_step(&mut inc, &p, &with_node_change(mix.clone(), node_change))?;
            let p = check_step(&mut inc, &p, &c)?;
            check_step(&mut inc, &p, &ManifestSet::default())?;
        }
    }
}

#[test]
fn a_realserver_change_replans_only_the_services_that_select_it() {
    let mut yaml = String::new();
    for i in 0..50 {
        yaml += &vs(
            &format!("vs{i}"),
            &format!(
                "  address: 192.0.2.{}\n  port: 80\n  realServerSelector: {{matchLabels: {{app: a{}}}}}",
                i + 1,
                i % 5
            ),
        );
    }
    for i in 0..20 {
        yaml += &rs(
            &format!("r{i}"),
            &format!("a{}", i % 5),
            &format!("  address: 10.10.0.{}", 11 + i),
        );
    }
    let s = set(&yaml);
    let mut inc = Incremental::new("dir1");
    let first = inc.apply(inc.diff(
        s.virtual_services.clone(),
        s.real_servers.clone(),
        s.nodes.clone(),
    ));
    assert!(first.all);
    let mut changed = s.clone();
    let r = changed
        .real_servers
        .iter_mut()
        .find(|r| r.meta.name == "r7")
        .unwrap();
    r.spec.weight = 9;
    let applied = inc.apply(inc.diff(
        changed.virtual_services.clone(),
        changed.real_servers.clone(),
        changed.nodes.clone(),
    ));
    assert!(!applied.all);
    let names: Vec<&str> = applied.verdicts.iter().map(|(n, _)| n.as_str()).collect();
    // r7 has app a2: vs2, vs7, ..., vs47.
    let want: Vec<String> = (0..50)
        .filter(|i| i % 5 == 2)
        .map(|i| format!("default/vs{i}"))
        .collect();
    let mut want: Vec<&str> = want.iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(names, want);
    assert_eq!(applied.scope.services.len(), 10);
    assert_eq!(
        inc.plan(),
        plan(
            "dir1",
            &changed.virtual_services,
            &changed.real_servers,
            &changed.nodes
        )
    );
    // Nothing changed: nothing re-planned.
    let again = inc.apply(inc.diff(
        changed.virtual_services.clone(),
        changed.real_servers.clone(),
        changed.nodes.clone(),
    ));
    assert!(again.is_empty());
}

#[test]
fn a_vip_names_the_directors_of_every_service_at_its_address() {
    let mut s = set(&[
        vs("web", "  address: 192.0.2.60\n  port: 80\n  realServerSelector: {matchLabels: {app: x}}"),
        "apiVersion: lvs.lvs-operator.io/v1alpha1\nkind: VirtualService\nmetadata: {name: dns, namespace: default}\nspec:\n  directors: {nodeSelector: {matchLabels: {edge: \"true\"}}}\n  address: 192.0.2.60\n  port: 53\n  protocol: UDP\n  realServerSelector: {matchLabels: {app: x}}\n---\n".to_string(),
        vs("other", "  address: 192.0.2.61\n  port: 80\n  realServerSelector: {matchLabels: {app: x}}"),
        rs("a", "x", "  address: 10.10.0.11"),
    ]
    .concat());
    s.extend(
        parse(
            "apiVersion: v1\nkind: Node\nmetadata: {name: dir0, labels: {lvs.lvs-operator.io/director: \"true\", edge: \"true\"}}\nstatus: {addresses: [{type: InternalIP, address: 10.10.0.3}]}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: edge9, labels: {edge: \"true\"}}\nstatus: {addresses: [{type: InternalIP, address: 10.10.0.4}]}\n",
        )
        .unwrap(),
    );
    let directors = |node: &str, vip: &str| -> Vec<String> {
        let p = plan_of(node, &s);
        let v: Vec<_> = p.vips.iter().filter(|v| v.addr == ip(vip)).collect();
        assert_eq!(v.len(), 1, "{node} holds {vip} once: {:?}", p.vips);
        v[0].directors.clone()
    };
    // The directors of every service this node directs at the address,
    // sorted: dir0 directs both (web: dir0, dir1; dns: dir0, edge9), so only
    // dir0 can hold the VIP for both; dir1 directs only web, edge9 only dns.
    assert_eq!(directors("dir0", "192.0.2.60"), vec!["dir0"]);
    assert_eq!(directors("dir1", "192.0.2.60"), vec!["dir0", "dir1"]);
    assert_eq!(directors("edge9", "192.0.2.60"), vec!["dir0", "edge9"]);
    assert_eq!(directors("dir1", "192.0.2.61"), vec!["dir0", "dir1"]);
    // edge9 directs only dns: no VIP 192.0.2.61 there.
    assert!(
        plan_of("edge9", &s)
            .vips
            .iter()
            .all(|v| v.addr != ip("192.0.2.61"))
    );
}

#[test]
fn health_checks_get_their_defaults_per_protocol() {
    use lvs_api::{DnsRcode, HealthAction, HealthCheckType};
    let s = set(&[
        vs("web", "  address: 192.0.2.30\n  port: 80\n  realServerSelector: {matchLabels: {app: web}}\n  healthCheck: {}"),
        vs("udp", "  address: 192.0.2.30\n  port: 54\n  protocol: UDP\n  realServerSelector: {matchLabels: {app: web}}\n  healthCheck: {}"),
        vs("sctp", "  address: 192.0.2.30\n  port: 3868\n  protocol: SCTP\n  realServerSelector: {matchLabels: {app: web}}\n  healthCheck: {}"),
        vs("none", "  address: 192.0.2.30\n  port: 81\n  realServerSelector: {matchLabels: {app: web}}\n  healthCheck: {type: None}"),
        vs("http", "  address: 192.0.2.30\n  port: 82\n  realServerSelector: {matchLabels: {app: web}}\n  healthCheck: {type: HTTP, port: 8080, expectedStatus: [\"200\", \"301-302\"], onFailure: Remove, rise: 1, fall: 4}"),
        rs("a", "web", "  address: 10.10.0.11"),
    ]
    .concat());
    let d = plan_of("dir1", &s);
    let by = |owner: &str| {
        d.services
            .iter()
            .find(|s| s.owner == format!("default/{owner}"))
            .unwrap_or_else(|| panic!("no service {owner}"))
    };
    let web = by("web")
        .health
        .clone()
        .expect("a TCP service's check defaults to TCP");
    assert_eq!(
        (
            web.type_,
            web.port,
            web.interval_seconds,
            web.timeout_seconds,
            web.rise,
            web.fall
        ),
        (HealthCheckType::Tcp, None, 5, 2, 2, 3)
    );
    assert_eq!(web.on_failure, HealthAction::Inhibit);
    assert_eq!(web.expected_status, vec![(200, 399)]);
    assert_eq!(web.path, "/");
    assert!(
        by("udp").health.is_none(),
        "an unset type on UDP checks nothing"
    );
    assert!(
        by("sctp").health.is_none(),
        "an unset type on SCTP checks nothing (a TCP connect would fail)"
    );
    assert!(by("none").health.is_none());
    let http = by("http").health.clone().unwrap();
    assert_eq!(
        (http.type_, http.port, http.on_failure, http.rise, http.fall),
        (
            HealthCheckType::Http,
            Some(8080),
            HealthAction::Remove,
            1,
            4
        )
    );
    assert_eq!(http.expected_status, vec![(200, 200), (301, 302)]);
    assert_eq!(http.expected_rcode, DnsRcode::NoError);

    let s = set(&vs(
        "dns",
        "  address: 192.0.2.30\n  port: 53\n  protocol: UDP\n  realServerSelector: {matchLabels: {app: web}}\n  healthCheck: {type: DNS}",
    ));
    let h = plan_of("dir1", &s).services[0].health.clone().unwrap();
    assert_eq!(
        (h.type_, h.on_failure),
        (HealthCheckType::Dns, HealthAction::Remove)
    );
    assert_eq!(
        (h.dns_name.as_str(), h.expected_rcode),
        (".", DnsRcode::NoError)
    );
}

#[test]
fn sorry_server_quorum_and_drain_timeout_reach_the_service() {
    let s = set(&[
        vs("web", "  address: 192.0.2.31\n  port: 80\n  realServerSelector: {matchLabels: {app: web}}\n  sorryServer: {address: 10.10.0.99}\n  quorum: 3\n  drain: {timeoutSeconds: 0}"),
        vs("plain", "  address: 192.0.2.31\n  port: 81\n  forwarding: DR\n  realServerSelector: {matchLabels: {app: web}}\n  sorryServer: {address: 10.10.0.98, port: 8081}"),
        rs("a", "web", "  address: 10.10.0.11"),
    ]
    .concat());
    let d = plan_of("dir1", &s);
    let web = &d.services[0];
    let sorry = web.sorry_server.clone().unwrap();
    assert_eq!(
        (sorry.addr, sorry.port, sorry.weight),
        (ip("10.10.0.99"), 80, 1)
    );
    assert_eq!(sorry.method, ForwardingMethod::Nat);
    assert_eq!((web.quorum, web.drain_timeout_seconds), (3, 0));
    let plain = &d.services[1];
    let sorry = plain.sorry_server.clone().unwrap();
    assert_eq!((sorry.port, sorry.method), (8081, ForwardingMethod::Dr));
    assert_eq!(
        (plain.quorum, plain.drain_timeout_seconds),
        (1, lvs_planner::DEFAULT_DRAIN_TIMEOUT_SECONDS)
    );
}

#[test]
fn draining_realservers_leave_the_director_but_keep_their_node_setup() {
    use lvs_api::RealServerState;
    let s = set(&[
        vs("dr", "  address: 192.0.2.32\n  port: 80\n  forwarding: DR\n  realServerSelector: {matchLabels: {app: dr}}"),
        rs("rs1", "dr", "  nodeName: rs1\n  state: Draining"),
        rs("rs2", "dr", "  nodeName: rs2\n  weight: 5\n  state: Inactive"),
        rs("rs3", "dr", "  address: 10.10.0.13\n  weight: 4"),
    ]
    .concat());
    let d = plan_of("dir1", &s);
    let dests = &d.services[0].destinations;
    assert_eq!(
        dests.len(),
        2,
        "the draining realserver is left out: {dests:?}"
    );
    let rs2 = dests.iter().find(|x| &*x.owner == "default/rs2").unwrap();
    assert_eq!(
        (rs2.weight, rs2.state, rs2.node.as_deref()),
        (0, RealServerState::Inactive, Some("rs2"))
    );
    let rs3 = dests.iter().find(|x| &*x.owner == "default/rs3").unwrap();
    assert_eq!(
        (rs3.weight, rs3.state, rs3.node.as_deref()),
        (4, RealServerState::Active, None)
    );
    // The draining node still holds the VIP on lo: its connections go on.
    assert_eq!(plan_of("rs1", &s).loopback_vips, vec![ip("192.0.2.32")]);
    assert_eq!(plan_of("rs2", &s).loopback_vips, vec![ip("192.0.2.32")]);
}

/// A policy from a few random choices over the world's addresses
/// (192.0.2.0-3) and nodes: which addresses the pool holds, whether it is
/// shared, which nodes may direct and be DR/TUN realservers, and owners.
fn policy(
    (upto, shared, directors, rs_nodes, owner): (u8, bool, u8, u8, u8),
) -> lvs_planner::AddressPolicy {
    let sel = |k: &str| lvs_api::LabelSelector {
        match_expressions: vec![lvs_api::LabelSelectorRequirement {
            key: k.into(),
            operator: lvs_api::SelectorOperator::Exists,
            values: vec![],
        }],
        ..Default::default()
    };
    let spec = lvs_api::LvsAddressPoolSpec {
        addresses: vec![format!("192.0.2.0-192.0.2.{upto}")],
        shared,
        director_selector: (directors == 1).then(|| sel("lvs.lvs-operator.io/director")),
        real_server_node_selector: match rs_nodes {
            0 => None,
            1 => Some(lvs_api::LabelSelector::default()),
            _ => Some(sel("no-such-label")),
        },
        ..Default::default()
    };
    let mut p =
        lvs_planner::AddressPolicy::new(vec![lvs_planner::Pool::from_spec("p", &spec).unwrap()]);
    if owner < 4 {
        p.set_owner(ip(&format!("192.0.2.{owner}")), "other");
    }
    p
}

fn policy_choice() -> impl Strategy<Value = (u8, bool, u8, u8, u8)> {
    (0u8..4, any::<bool>(), 0u8..2, 0u8..3, 0u8..6)
}

proptest! {
    #[test]
    fn incremental_plans_under_changing_policies_equal_plans_from_scratch(
        a in world(), b in world(), p1 in policy_choice(), p2 in policy_choice(),
    ) {
        for n in ALL_NODES {
            let mut inc = Incremental::new(n);
            for (s, p) in [(&a, None), (&a, Some(p1)), (&b, Some(p1)), (&b, Some(p2)), (&b, None)] {
                let p = p.map(policy);
                let mut changes = inc.diff(s.virtual_services.clone(), s.real_servers.clone(), s.nodes.clone());
                changes.policy = Some(p.clone());
                let applied = inc.apply(changes);
                let want = lvs_planner::analyze_with(&s.virtual_services, &s.real_servers, &s.nodes, p.as_ref());
                for (name, v) in &applied.verdicts {
                    prop_assert_eq!(v.as_ref(), want.get(name), "verdict of {} on {}", name, n);
                }
                prop_assert_eq!(
                    inc.plan(),
                    lvs_planner::plan_from_analysis(n, &want, &s.virtual_services),
                    "incremental plan of {}", n
                );
            }
        }
    }
}

//! The reconciler against the fake kernel.
//!
//! Longer than most files: one regression test per defect and rule of the
//! reconciler, sharing the fixtures at the top.

mod common;

use std::collections::BTreeMap;

use common::*;
use lvs_api::{ForwardingMethod, Scheduler};
use lvs_ipvs::{
    DestConfig, DestKey, Family, FwdMethod, Op, Protocol, Service, ServiceConfig, ServiceKey,
};
use lvs_node_agent::dataplane::errno;
use lvs_node_agent::dataplane::fake::{Call, FakeDataplane, FakeService};
use lvs_node_agent::kernel::{AddrKind, Address, Scope};
use lvs_node_agent::report::ErrorKind;
use lvs_planner::{NodePlan, PlannedVip, Sysctl};

use ForwardingMethod::{Dr, Nat};

fn web() -> lvs_planner::PlannedService {
    service(
        "web",
        "10.0.0.1",
        80,
        vec![
            dest("10.1.0.1", 8080, 1, Nat),
            dest("10.1.0.2", 8080, 1, Nat),
        ],
    )
}

fn foreign_service() -> (ServiceKey, FakeService) {
    let mut dests = BTreeMap::new();
    dests.insert(
        DestKey {
            addr: ip("10.9.0.1"),
            port: 53,
        },
        DestConfig::new(FwdMethod::Masq, 5),
    );
    (
        ServiceKey::Tuple {
            addr: ip("10.9.0.9"),
            protocol: Protocol::UDP,
            port: 53,
        },
        FakeService {
            config: ServiceConfig::new(Family::V4, "rr"),
            dests,
        },
    )
}

/// An address on an interface (not a local route): "ADDR/PREFIX".
fn interface_address(interface: &str, cidr: &str, label: Option<&str>, scope: Scope) -> Address {
    let (addr, prefix) = cidr.split_once('/').expect("ADDR/PREFIX");
    Address {
        interface: interface.into(),
        addr: ip(addr),
        prefix_len: prefix.parse().expect("prefix length"),
        label: label.map(Into::into),
        scope,
        kind: AddrKind::Interface,
    }
}

fn foreign_address() -> Address {
    interface_address("lo", "10.9.9.9/32", Some("lo:other"), Scope::Host)
}

/// A fake node with someone else's IPVS service, address and sysctl.
fn busy_node() -> FakeDataplane {
    let mut f = FakeDataplane::new();
    let (k, s) = foreign_service();
    f.ipvs.insert(k, s);
    f.addresses.insert(foreign_address());
    f.sysctls.insert("net/ipv4/ip_forward".into(), "0".into());
    f
}

fn assert_foreign_intact(f: &FakeDataplane) {
    let (k, s) = foreign_service();
    assert_eq!(f.ipvs.get(&k), Some(&s), "foreign service changed");
    assert!(
        f.addresses.contains(&foreign_address()),
        "foreign address removed"
    );
}

#[test]
fn adds_services_vips_and_sysctls_then_does_nothing_more() {
    let dir = temp_dir("add");
    let mut r = reconciler(busy_node(), &dir);
    let plan = director(vec![web()]);
    let rep = sync(&mut r, &plan, false);
    assert!(rep.ok(), "{:?}", rep.errors);
    assert!(rep.full);
    assert_eq!(rep.ops.get("service_add"), Some(&1));
    assert_eq!(rep.ops.get("dest_add"), Some(&2));
    assert_eq!(rep.ops.get("addr_add"), Some(&1));
    assert_eq!(rep.ops.get("sysctl_set"), Some(&2));
    assert!(rep.services["default/web"].programmed);
    assert_eq!(rep.services["default/web"].generation, Some(1));

    let f = r.dataplane();
    let s = &f.ipvs[&tcp("10.0.0.1", 80)];
    assert_eq!(s.config.scheduler, "wlc");
    assert_eq!(s.dests.len(), 2);
    let vip = f
        .addresses
        .iter()
        .find(|a| a.addr == ip("10.0.0.1"))
        .expect("VIP added");
    assert_eq!(
        vip.interface, "eth0",
        "the interface holding the InternalIP"
    );
    assert_eq!(vip.label.as_deref(), Some("eth0:lvs"));
    assert_eq!(vip.prefix_len, 32);
    assert_eq!(f.sysctls["net/ipv4/ip_forward"], "1");
    assert_foreign_intact(f);

    // Same plan again, from the cache: not a single request.
    let rep = sync(&mut r, &plan, false);
    assert!(rep.ok() && rep.total_ops() == 0, "{rep:?}");
    assert!(r.dataplane().calls.is_empty(), "{:?}", r.dataplane().calls);
    // A full resync reads but writes nothing.
    let rep = sync(&mut r, &plan, true);
    assert!(rep.ok() && rep.total_ops() == 0, "{rep:?}");
    assert!(r.dataplane().writes().is_empty());
    assert!(r.dataplane().calls.contains(&Call::IpvsDump));
}

#[test]
fn updates_change_in_place() {
    let dir = temp_dir("update");
    let mut r = reconciler(FakeDataplane::new(), &dir);
    sync(&mut r, &director(vec![web()]), false);

    let mut changed = web();
    changed.scheduler = Scheduler::Rr;
    changed.destinations[0].weight = 7;
    changed.destinations[1].method = Dr;
    changed.destinations[1].port = 80;
    changed.destinations.push(dest("10.1.0.3", 8080, 2, Nat));
    let rep = sync(&mut r, &director(vec![changed]), false);
    assert!(rep.ok(), "{:?}", rep.errors);
    let writes: Vec<_> = r.dataplane().writes().into_iter().cloned().collect();
    let key = tcp("10.0.0.1", 80);
    // Port change is a new identity (add + delete); the rest is in place.
    assert!(
        writes
            .iter()
            .all(|c| !matches!(c, Call::Ipvs(Op::DelService(_) | Op::AddService(..)))),
        "{writes:?}"
    );
    assert!(writes.contains(&Call::Ipvs(Op::UpdateService(Service {
        key,
        config: ServiceConfig::new(Family::V4, "rr"),
    }))));
    assert_eq!(rep.ops.get("service_update"), Some(&1));
    assert_eq!(rep.ops.get("dest_update"), Some(&1));
    assert_eq!(rep.ops.get("dest_add"), Some(&2));
    assert_eq!(rep.ops.get("dest_del"), Some(&1));
    let s = &r.dataplane().ipvs[&key];
    assert_eq!(s.config.scheduler, "rr");
    assert_eq!(
        s.dests[&DestKey {
            addr: ip("10.1.0.1"),
            port: 8080
        }]
            .weight,
        7
    );
    assert_eq!(
        s.dests[&DestKey {
            addr: ip("10.1.0.2"),
            port: 80
        }]
            .fwd,
        FwdMethod::DirectRoute
    );
    assert_eq!(s.dests.len(), 3);
}

#[test]
fn forwarding_method_change_is_one_set_dest() {
    let dir = temp_dir("fwd");
    let mut r = reconciler(FakeDataplane::new(), &dir);
    sync(&mut r, &director(vec![web()]), false);
    let mut changed = web();
    changed.destinations[0].method = ForwardingMethod::Tun;
    changed.destinations[0].tunnel = dest("1.1.1.1", 0, 1, ForwardingMethod::Tun).tunnel;
    let rep = sync(&mut r, &director(vec![changed]), false);
    assert!(rep.ok(), "{:?}", rep.errors);
    assert_eq!(rep.total_ops(), 1, "{:?}", rep.ops);
    assert_eq!(rep.ops.get("dest_update"), Some(&1));
}

#[test]
fn removal_deletes_only_what_the_agent_created_and_restores_sysctls() {
    let dir = temp_dir("remove");
    let mut r = reconciler(busy_node(), &dir);
    sync(&mut r, &director(vec![web()]), false);
    let rep = sync(&mut r, &director(vec![]), false);
    assert!(rep.ok(), "{:?}", rep.errors);
    assert_eq!(rep.ops.get("service_del"), Some(&1));
    assert_eq!(rep.ops.get("addr_del"), Some(&1));
    assert_eq!(rep.ops.get("sysctl_restore"), Some(&2));
    let f = r.dataplane();
    assert_eq!(f.ipvs.len(), 1, "only the foreign service is left");
    assert!(!f.addresses.iter().any(|a| a.addr == ip("10.0.0.1")));
    assert_eq!(f.sysctls["net/ipv4/ip_forward"], "0", "previous value back");
    assert_eq!(f.sysctls["net/ipv4/vs/conntrack"], "0");
    assert_foreign_intact(f);
    assert!(r.ledger().is_empty(), "{:?}", r.ledger());
    // And a full resync afterwards does not touch the foreign rules either.
    let rep = sync(&mut r, &director(vec![]), true);
    assert!(rep.ok() && rep.total_ops() == 0, "{rep:?}");
    assert_foreign_intact(r.dataplane());
}

#[test]
fn a_sysctl_changed_by_hand_is_not_restored_over_the_change() {
    let dir = temp_dir("sysctl-hand");
    let mut r = reconciler(busy_node(), &dir);
    sync(&mut r, &director(vec![web()]), false);
    r.dataplane_mut()
        .sysctls
        .insert("net/ipv4/ip_forward".into(), "5".into());
    // Resync repairs it back to the desired value...
    let rep = sync(&mut r, &director(vec![web()]), true);
    assert_eq!(rep.ops.get("sysctl_set"), Some(&1), "{rep:?}");
    assert_eq!(r.dataplane().sysctls["net/ipv4/ip_forward"], "1");
    // ...and the original previous value is still what removal restores.
    sync(&mut r, &director(vec![]), false);
    assert_eq!(r.dataplane().sysctls["net/ipv4/ip_forward"], "0");

    // Changed by hand after the agent let go of it: left as is.
    sync(&mut r, &director(vec![web()]), false);
    r.dataplane_mut()
        .sysctls
        .insert("net/ipv4/ip_forward".into(), "1".into());
    r.dataplane_mut()
        .sysctls
        .insert("net/ipv4/vs/conntrack".into(), "0".into());
    let rep = sync(&mut r, &director(vec![]), true);
    assert!(rep.ok(), "{rep:?}");
    assert_eq!(rep.ops.get("sysctl_restore"), Some(&1));
    assert_eq!(r.dataplane().sysctls["net/ipv4/ip_forward"], "0");
    assert!(r.ledger().sysctls.is_empty());
}

#[test]
fn a_foreign_service_with_the_desired_key_is_reported_not_taken_over() {
    let dir = temp_dir("collide");
    let mut f = FakeDataplane::new();
    let (_, foreign) = foreign_service();
    let key = tcp("10.0.0.1", 80);
    f.ipvs.insert(key, foreign.clone());
    let mut r = reconciler(f, &dir);
    let rep = sync(&mut r, &director(vec![web()]), false);
    assert_eq!(rep.errors.len(), 2, "{:?}", rep.errors);
    assert_eq!(rep.errors[0].kind, ErrorKind::ForeignService);
    // Someone else's service at the VIP is not ours to announce.
    assert_eq!(rep.errors[1].kind, ErrorKind::VipWithheld);
    assert_eq!(rep.errors[0].owner.as_deref(), Some("default/web"));
    assert!(!rep.services["default/web"].programmed);
    assert!(
        rep.services["default/web"].errors[0].contains("was not created by this agent"),
        "{:?}",
        rep.services
    );
    assert!(
        !rep.ops
            .keys()
            .any(|k| k.starts_with("service") || k.starts_with("dest"))
    );
    assert_eq!(r.dataplane().ipvs[&key], foreign);
    // Deleting the VirtualService leaves it too.
    let rep = sync(&mut r, &director(vec![]), true);
    assert!(rep.ok(), "{rep:?}");
    assert_eq!(r.dataplane().ipvs[&key], foreign);
}

#[test]
fn foreign_destinations_in_an_owned_service_are_left_alone() {
    let dir = temp_dir("foreign-dest");
    let mut r = reconciler(FakeDataplane::new(), &dir);
    sync(&mut r, &director(vec![web()]), false);
    let key = tcp("10.0.0.1", 80);
    let hand = DestKey {
        addr: ip("10.1.0.99"),
        port: 8080,
    };
    let cfg = r.dataplane().ipvs[&key]
        .dests
        .values()
        .next()
        .copied()
        .unwrap();
    r.dataplane_mut()
        .ipvs
        .get_mut(&key)
        .unwrap()
        .dests
        .insert(hand, cfg);
    // Resync sees it and leaves it; dropping an owned destination leaves it.
    let mut one = web();
    one.destinations.pop();
    let rep = sync(&mut r, &director(vec![one.clone()]), true);
    assert!(rep.ok(), "{rep:?}");
    assert_eq!(rep.ops.get("dest_del"), Some(&1));
    assert!(r.dataplane().ipvs[&key].dests.contains_key(&hand));
    // Desiring the hand-made destination is a reported collision.
    one.destinations.push(dest("10.1.0.99", 8080, 3, Nat));
    let rep = sync(&mut r, &director(vec![one]), false);
    assert_eq!(rep.errors.len(), 1, "{rep:?}");
    assert_eq!(rep.errors[0].kind, ErrorKind::ForeignDestination);
    assert_eq!(r.dataplane().ipvs[&key].dests[&hand].weight, 1);
}

#[test]
fn restart_adopts_without_a_single_write() {
    let dir = temp_dir("adopt");
    let plan = NodePlan {
        loopback_vips: vec![ip("10.0.0.50")],
        ..director(vec![web()])
    };
    let mut r = reconciler(busy_node(), &dir);
    assert!(sync(&mut r, &plan, false).ok());
    let fake = r.into_dataplane();

    let mut r = reconciler(fake, &dir);
    let rep = sync(&mut r, &plan, false);
    assert!(rep.ok(), "{rep:?}");
    assert!(rep.full);
    assert_eq!(rep.total_ops(), 0, "{:?}", rep.ops);
    assert!(
        r.dataplane().writes().is_empty(),
        "{:?}",
        r.dataplane().writes()
    );
    assert!(rep.services["default/web"].programmed);
    assert_foreign_intact(r.dataplane());
}

#[test]
fn what_vanished_while_the_agent_was_down_is_removed_after_restart() {
    let dir = temp_dir("vanished");
    let api = service("api", "10.0.0.2", 443, vec![dest("10.1.0.7", 443, 1, Nat)]);
    let mut r = reconciler(busy_node(), &dir);
    assert!(sync(&mut r, &director(vec![web(), api]), false).ok());
    let fake = r.into_dataplane();

    let mut r = reconciler(fake, &dir);
    let rep = sync(&mut r, &director(vec![web()]), false);
    assert!(rep.ok(), "{rep:?}");
    assert_eq!(rep.ops.get("service_del"), Some(&1));
    assert_eq!(rep.ops.get("addr_del"), Some(&1));
    assert_eq!(rep.total_ops(), 2, "{:?}", rep.ops);
    let f = r.dataplane();
    assert!(!f.ipvs.contains_key(&tcp("10.0.0.2", 443)));
    assert!(f.ipvs.contains_key(&tcp("10.0.0.1", 80)));
    assert_foreign_intact(f);
}

#[test]
fn one_change_costs_the_same_whatever_the_table_size() {
    let mut costs = Vec::new();
    for n in [10u16, 400] {
        let dir = temp_dir(&format!("o1-{n}"));
        let services: Vec<_> = (0..n)
            .map(|i| {
                service(
                    &format!("s{i}"),
                    &format!("10.0.{}.{}", i / 200, i % 200 + 1),
                    80,
                    vec![dest("10.1.0.1", 80, 1, Nat), dest("10.1.0.2", 80, 1, Nat)],
                )
            })
            .collect();
        let mut r = reconciler(FakeDataplane::new(), &dir);
        assert!(sync(&mut r, &director(services.clone()), false).ok());
        let mut changed = services;
        changed[3].destinations[1].weight = 9;
        let rep = sync(&mut r, &director(changed), false);
        assert!(rep.ok(), "{rep:?}");
        let calls = r.dataplane().calls.clone();
        assert!(
            !calls.iter().any(Call::is_dump),
            "no dump on an event: {calls:?}"
        );
        costs.push(calls.len());
    }
    assert_eq!(costs, vec![1, 1], "requests per one-weight change");
}

#[test]
fn drift_is_repaired_by_the_full_resync_only() {
    let dir = temp_dir("drift");
    let mut r = reconciler(FakeDataplane::new(), &dir);
    let plan = director(vec![web()]);
    sync(&mut r, &plan, false);
    let key = tcp("10.0.0.1", 80);
    {
        let f = r.dataplane_mut();
        let s = f.ipvs.get_mut(&key).unwrap();
        s.config.scheduler = "rr".into();
        s.dests.values_mut().for_each(|d| d.weight = 100);
        f.addresses.retain(|a| a.addr != ip("10.0.0.1"));
    }
    let rep = sync(&mut r, &plan, false);
    assert_eq!(rep.total_ops(), 0, "an event does not re-read");
    let rep = sync(&mut r, &plan, true);
    assert!(rep.ok(), "{rep:?}");
    assert_eq!(rep.ops.get("service_update"), Some(&1));
    assert_eq!(rep.ops.get("dest_update"), Some(&2));
    assert_eq!(rep.ops.get("addr_add"), Some(&1));
    assert_eq!(r.dataplane().ipvs[&key].config.scheduler, "wlc");

    // A service deleted by hand is re-created.
    r.dataplane_mut().ipvs.clear();
    let rep = sync(&mut r, &plan, true);
    assert!(rep.ok(), "{rep:?}");
    assert_eq!(rep.ops.get("service_add"), Some(&1));
    assert_eq!(r.dataplane().ipvs[&key].dests.len(), 2);
}

#[test]
fn kernel_errors_are_reported_per_service_and_retried() {
    let dir = temp_dir("errors");
    let mut f = FakeDataplane::new();
    f.fail_once(
        |c| matches!(c, Call::Ipvs(Op::AddDest { dest, .. }) if dest.key.addr.to_string() == "10.1.0.2"),
        errno::EINVAL,
    );
    let mut r = reconciler(f, &dir);
    let plan = director(vec![web()]);
    let rep = sync(&mut r, &plan, false);
    assert_eq!(rep.errors.len(), 1, "{rep:?}");
    assert_eq!(rep.errors[0].kind, ErrorKind::Kernel);
    assert!(
        rep.errors[0].message.contains("Invalid argument"),
        "{}",
        rep.errors[0]
    );
    assert!(!rep.services["default/web"].programmed);
    let key = tcp("10.0.0.1", 80);
    assert_eq!(
        r.ledger().services[&key].dests.len(),
        1,
        "failed add not owned"
    );
    let rep = sync(&mut r, &plan, false);
    assert!(rep.ok(), "{rep:?}");
    assert_eq!(rep.total_ops(), 1);
    assert!(rep.services["default/web"].programmed);
}

#[test]
fn a_vip_that_fails_in_a_batch_is_reported_per_owner_and_the_others_are_added() {
    let dir = temp_dir("vip-fail");
    let mut f = FakeDataplane::new();
    f.fail_once(
        |c| matches!(c, Call::AddAddress(a) if a.addr == ip("10.0.0.2")),
        errno::EPERM,
    );
    let mut r = reconciler(f, &dir);
    // Two services share VIP 10.0.0.2; 10.0.0.1 and 10.0.0.3 have one each.
    let plan = director(vec![
        service("a", "10.0.0.1", 80, vec![dest("10.1.0.1", 80, 1, Nat)]),
        service("b", "10.0.0.2", 80, vec![dest("10.1.0.2", 80, 1, Nat)]),
        service("c", "10.0.0.2", 443, vec![dest("10.1.0.2", 443, 1, Nat)]),
        service("d", "10.0.0.3", 80, vec![dest("10.1.0.3", 80, 1, Nat)]),
    ]);
    let rep = sync(&mut r, &plan, false);
    let mut owners: Vec<&str> = rep
        .errors
        .iter()
        .map(|e| {
            assert_eq!(e.kind, ErrorKind::Kernel, "{e}");
            assert!(e.message.contains("10.0.0.2"), "{e}");
            e.owner.as_deref().unwrap_or("none")
        })
        .collect();
    owners.sort();
    assert_eq!(owners, ["default/b", "default/c"], "{rep:?}");
    assert_eq!(rep.ops.get("addr_add"), Some(&3));
    let held: Vec<String> = r
        .dataplane()
        .addresses
        .iter()
        .map(|a| a.addr.to_string())
        .collect();
    assert!(held.contains(&"10.0.0.1".to_string()) && held.contains(&"10.0.0.3".to_string()));
    assert!(!held.contains(&"10.0.0.2".to_string()), "{held:?}");
    assert_eq!(
        r.ledger()
            .addresses
            .iter()
            .filter(|k| k.addr == ip("10.0.0.2"))
            .count(),
        0,
        "a failed add is not owned"
    );
    // The next sync retries it alone.
    let rep = sync(&mut r, &plan, false);
    assert!(rep.ok(), "{rep:?}");
    assert_eq!(rep.ops.get("addr_add"), Some(&1));
}

#[test]
fn a_failing_service_add_reports_once_and_owns_nothing() {
    let dir = temp_dir("svc-fail");
    let mut f = FakeDataplane::new();
    f.fail_when(
        |c| matches!(c, Call::Ipvs(Op::AddService(..))),
        errno::ENOENT,
    );
    let mut r = reconciler(f, &dir);
    let rep = sync(&mut r, &director(vec![web()]), false);
    let kinds: Vec<ErrorKind> = rep.errors.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [ErrorKind::Kernel, ErrorKind::VipWithheld],
        "dest failures follow from it: {rep:?}"
    );
    assert!(r.ledger().services.is_empty());
    assert!(r.ledger().addresses.is_empty());
}

#[test]
fn unknown_internal_ip_is_an_interface_error_for_that_service() {
    let dir = temp_dir("no-ip");
    let mut r = reconciler(FakeDataplane::new(), &dir);
    let plan = director(vec![web()]);
    let rep = r.sync(
        lvs_node_agent::reconcile::SyncInput {
            plan: &plan,
            node_ips: &[],
            directs: !plan.services.is_empty(),
        },
        false,
    );
    assert_eq!(rep.errors.len(), 1, "{rep:?}");
    assert_eq!(rep.errors[0].kind, ErrorKind::Interface);
    assert!(!rep.services["default/web"].programmed);
    // The IPVS service itself is programmed regardless.
    assert!(r.dataplane().ipvs.contains_key(&tcp("10.0.0.1", 80)));

    let mut plan = director(vec![web()]);
    plan.vips = vec![PlannedVip {
        addr: ip("10.0.0.1"),
        interface: Some("bond7".into()),
        directors: Vec::new(),
    }];
    let rep = sync(&mut r, &plan, false);
    assert!(
        rep.errors[0].message.contains("bond7 does not exist"),
        "{rep:?}"
    );
}

#[test]
fn dr_realserver_gets_labelled_loopback_vips() {
    let dir = temp_dir("dr");
    let mut r = reconciler(FakeDataplane::new(), &dir);
    let plan = NodePlan {
        node: "n1".into(),
        loopback_vips: vec![ip("10.0.0.1"), ip("fd00::1")],
        sysctls: vec![
            Sysctl::new("net/ipv4/conf/all/arp_announce", "2"),
            Sysctl::new("net/ipv4/conf/all/arp_ignore", "1"),
        ],
        ..Default::default()
    };
    let rep = sync(&mut r, &plan, false);
    assert!(rep.ok(), "{rep:?}");
    // sysctls are written before the VIPs appear.
    let writes: Vec<_> = r.dataplane().writes().into_iter().cloned().collect();
    let first_addr = writes
        .iter()
        .position(|c| matches!(c, Call::AddAddress(_)))
        .unwrap();
    let last_sysctl = writes
        .iter()
        .rposition(|c| matches!(c, Call::WriteSysctl(..)))
        .unwrap();
    assert!(last_sysctl < first_addr, "{writes:?}");
    let f = r.dataplane();
    let v4 = f
        .addresses
        .iter()
        .find(|a| a.addr == ip("10.0.0.1"))
        .unwrap();
    assert_eq!(
        (v4.interface.as_str(), v4.label.as_deref(), v4.scope),
        ("lo", Some("lo:lvs"), Scope::Host)
    );
    let v6 = f
        .addresses
        .iter()
        .find(|a| a.addr == ip("fd00::1"))
        .unwrap();
    assert_eq!((v6.prefix_len, v6.label.as_deref()), (128, None));

    let rep = sync(&mut r, &NodePlan::default(), false);
    assert!(rep.ok(), "{rep:?}");
    assert_eq!(rep.ops.get("addr_del"), Some(&2));
    assert_eq!(
        r.dataplane().addresses.len(),
        2,
        "lo and eth0 addresses remain"
    );
}

#[test]
fn labelled_addresses_are_recognised_without_the_ledger() {
    let dir = temp_dir("label");
    let mut f = busy_node();
    f.addresses.insert(interface_address(
        "lo",
        "10.0.0.77/32",
        Some("lo:lvs"),
        Scope::Host,
    ));
    let mut r = reconciler(f, &dir);
    let rep = sync(&mut r, &NodePlan::default(), false);
    assert!(rep.ok(), "{rep:?}");
    assert_eq!(rep.ops.get("addr_del"), Some(&1));
    assert!(
        !r.dataplane()
            .addresses
            .iter()
            .any(|a| a.addr == ip("10.0.0.77"))
    );
    assert_foreign_intact(r.dataplane());
}

#[test]
fn tun_realserver_brings_tunl0_up_and_releases_it() {
    let dir = temp_dir("tun");
    let mut f = FakeDataplane::new();
    f.sysctls
        .insert("net/ipv4/conf/all/rp_filter".into(), "1".into());
    let mut r = reconciler(f, &dir);
    let plan = tun_realserver("10.0.0.1");
    let rep = sync(&mut r, &plan, false);
    assert!(rep.ok(), "{rep:?}");
    let f = r.dataplane();
    assert!(f.links["tunl0"].up);
    let vip = f
        .addresses
        .iter()
        .find(|a| a.addr == ip("10.0.0.1"))
        .unwrap();
    assert_eq!(
        (vip.interface.as_str(), vip.label.as_deref()),
        ("tunl0", Some("tunl0:lvs"))
    );
    assert_eq!(f.sysctls["net/ipv4/conf/tunl0/rp_filter"], "2");
    assert_eq!(f.sysctls["net/ipv4/conf/all/rp_filter"], "2");
    assert_eq!(sync(&mut r, &plan, true).total_ops(), 0);

    let rep = sync(&mut r, &NodePlan::default(), false);
    assert!(rep.ok(), "{rep:?}");
    let f = r.dataplane();
    assert!(!f.links["tunl0"].up);
    assert!(!f.addresses.iter().any(|a| a.interface == "tunl0"));
    assert_eq!(f.sysctls["net/ipv4/conf/all/rp_filter"], "1");
    assert_eq!(
        f.sysctls["net/ipv4/conf/tunl0/rp_filter"], "0",
        "the value tunl0 had once it existed"
    );
    assert!(r.ledger().is_empty(), "{:?}", r.ledger());
}

#[test]
fn link_local_addresses_do_not_keep_a_tunnel_up() {
    // gre0 gets IPv6 link-local addresses when it comes up.
    let dir = temp_dir("tun-ll");
    let mut r = reconciler(FakeDataplane::new(), &dir);
    let mut plan = tun_realserver("10.0.0.1");
    plan.tunnels[0].device = "gre0".into();
    plan.tunnels[0].type_ = lvs_api::TunnelType::Gre;
    plan.sysctls.clear();
    assert!(sync(&mut r, &plan, false).ok());
    r.dataplane_mut().addresses.insert(interface_address(
        "gre0",
        "fe80::a00:20e/64",
        None,
        Scope::Link,
    ));
    let rep = sync(&mut r, &NodePlan::default(), true);
    assert!(rep.ok(), "{rep:?}");
    assert_eq!(rep.ops.get("tunnel_down"), Some(&1), "{rep:?}");
    assert!(!r.dataplane().links["gre0"].up);

    // Any other address is someone else's use of the device: it stays up.
    assert!(sync(&mut r, &plan, false).ok());
    r.dataplane_mut().addresses.insert(interface_address(
        "gre0",
        "10.7.7.7/32",
        None,
        Scope::Global,
    ));
    let rep = sync(&mut r, &NodePlan::default(), true);
    assert!(rep.ok(), "{rep:?}");
    assert!(!rep.ops.contains_key("tunnel_down"));
    assert!(r.dataplane().links["gre0"].up);
}

#[test]
fn a_tunnel_that_was_already_up_is_not_set_down() {
    let dir = temp_dir("tun-up");
    let mut f = FakeDataplane::new();
    f.add_link("tunl0", Some("ipip"), true);
    let mut r = reconciler(f, &dir);
    assert!(sync(&mut r, &tun_realserver("10.0.0.1"), false).ok());
    let rep = sync(&mut r, &NodePlan::default(), false);
    assert!(rep.ok(), "{rep:?}");
    assert!(!rep.ops.contains_key("tunnel_down"));
    assert!(r.dataplane().links["tunl0"].up);
}

#[test]
fn missing_ipvs_only_matters_when_services_are_wanted() {
    let dir = temp_dir("no-ipvs");
    let mut f = FakeDataplane::new();
    f.ipvs_available = false;
    let mut r = reconciler(f, &dir);
    let rep = sync(&mut r, &tun_realserver("10.0.0.1"), false);
    assert!(rep.ok(), "{rep:?}");
    let rep = sync(&mut r, &director(vec![web()]), false);
    assert!(
        rep.errors
            .iter()
            .any(|e| e.kind == ErrorKind::IpvsUnavailable
                && e.owner.as_deref() == Some("default/web")),
        "{rep:?}"
    );
}

#[test]
fn a_read_failure_makes_the_sync_fail_without_writes() {
    let dir = temp_dir("read-fail");
    let mut f = busy_node();
    f.fail_once(|c| *c == Call::Addresses, errno::EPERM);
    let mut r = reconciler(f, &dir);
    let rep = sync(&mut r, &director(vec![web()]), false);
    assert_eq!(rep.errors[0].kind, ErrorKind::Read, "{rep:?}");
    assert!(r.dataplane().writes().is_empty());
    // The next sync reads again and succeeds.
    let rep = sync(&mut r, &director(vec![web()]), false);
    assert!(rep.ok() && rep.full, "{rep:?}");
}

#[test]
fn the_ledger_on_disk_names_the_owner() {
    let dir = temp_dir("ledger-disk");
    let mut r = reconciler(FakeDataplane::new(), &dir);
    sync(&mut r, &director(vec![web()]), false);
    let text = std::fs::read_to_string(dir.join("ledger.json")).unwrap();
    assert!(text.contains("default/web"), "{text}");
    assert!(text.contains("10.1.0.2"), "{text}");
    assert!(text.contains("eth0"), "{text}");
}

#[test]
fn a_tunnel_module_that_cannot_load_is_an_error_and_owns_nothing() {
    let dir = temp_dir("tun-nomod");
    let mut f = FakeDataplane::new();
    f.tunnel_kinds.clear();
    let mut r = reconciler(f, &dir);
    let rep = sync(&mut r, &tun_realserver("10.0.0.1"), false);
    assert!(
        rep.errors
            .iter()
            .any(|e| e.kind == ErrorKind::Kernel && e.message.contains("tunl0")),
        "{rep:?}"
    );
    assert!(r.ledger().tunnels.is_empty(), "{:?}", r.ledger());
    assert!(!r.dataplane().links.contains_key("tunl0"));
    assert!(
        r.ledger().addresses.is_empty(),
        "the VIP could not be added either"
    );
}

#[test]
fn route_mode_holds_ipv4_vips_as_local_routes_and_adopts_and_removes_only_its_own() {
    use lvs_node_agent::kernel::VipMode;
    let dir = temp_dir("route-mode");
    let mut f = busy_node();
    // Someone else's address at a VIP the agent will hold too: present, so
    // not added, and never removed.
    f.addresses.insert(interface_address(
        "eth0",
        "10.0.0.3/32",
        None,
        Scope::Global,
    ));
    let mut r = reconciler(f, &dir).with_vip_mode(VipMode::LocalRoute);
    let plan = director(vec![web(), service("api", "10.0.0.3", 80, vec![])]);
    let rep = sync(&mut r, &plan, false);
    assert!(rep.ok(), "{:?}", rep.errors);
    assert_eq!(rep.ops.get("addr_add"), Some(&1), "{:?}", rep.ops);
    let vip = r
        .dataplane()
        .addresses
        .iter()
        .find(|a| a.addr == ip("10.0.0.1"))
        .cloned()
        .expect("VIP held");
    assert_eq!(vip.kind, AddrKind::LocalRoute);
    assert_eq!((vip.interface.as_str(), vip.prefix_len), ("eth0", 32));
    assert_eq!(vip.label, None);
    assert_eq!(sync(&mut r, &plan, true).total_ops(), 0);

    // A restart with a lost ledger adopts the route by its protocol mark:
    // with the VirtualServices gone the route goes, the foreign address
    // stays.
    let f = r.into_dataplane();
    let lost = temp_dir("route-mode-lost");
    let mut r = reconciler(f, &lost).with_vip_mode(VipMode::LocalRoute);
    let rep = sync(&mut r, &NodePlan::default(), false);
    assert!(rep.ok(), "{:?}", rep.errors);
    let f = r.dataplane();
    assert!(
        !f.addresses.iter().any(|a| a.kind == AddrKind::LocalRoute),
        "{:?}",
        f.addresses
    );
    assert!(f.addresses.iter().any(|a| a.addr == ip("10.0.0.3")));
    assert_foreign_intact(f);
}

#[test]
fn an_address_from_address_mode_is_kept_in_route_mode() {
    use lvs_node_agent::kernel::VipMode;
    let dir = temp_dir("mode-switch");
    let mut r = reconciler(busy_node(), &dir);
    let plan = director(vec![web()]);
    assert!(sync(&mut r, &plan, false).ok());
    let f = r.into_dataplane();
    let mut r = reconciler(f, &dir).with_vip_mode(VipMode::LocalRoute);
    let rep = sync(&mut r, &plan, true);
    assert_eq!(
        rep.total_ops(),
        0,
        "switching modes must not flap a VIP: {:?}",
        rep.ops
    );
    // Removed, the VIP goes whichever way it was held.
    assert!(sync(&mut r, &NodePlan::default(), false).ok());
    assert!(
        !r.dataplane()
            .addresses
            .iter()
            .any(|a| a.addr == ip("10.0.0.1"))
    );
}

/// A service planted by hand at a key the agent is about to add (EEXIST in
/// the batch) in the same sync as a VIP removal: the removal after the batch
/// works on the view the failure put in doubt, without a panic, and the
/// deletes that succeeded leave the ledger at once.
#[test]
fn a_planted_service_in_the_same_sync_as_a_vip_removal_neither_panics_nor_keeps_deleted_entries() {
    let dir = temp_dir("planted");
    let mut r = reconciler(FakeDataplane::new(), &dir);
    let old = service("old", "10.0.0.5", 80, vec![dest("10.1.0.1", 80, 1, Nat)]);
    let rep = sync(&mut r, &director(vec![old]), false);
    assert!(rep.ok(), "{:?}", rep.errors);
    let old_key = tcp("10.0.0.5", 80);
    assert!(r.ledger().owns_service(&old_key));

    // ipvsadm -A of the key the next plan adds, behind the agent's back.
    let (_, foreign) = foreign_service();
    let web_key = tcp("10.0.0.1", 80);
    r.dataplane_mut().ipvs.insert(web_key, foreign.clone());

    let rep = sync(&mut r, &director(vec![web()]), false);
    assert!(
        rep.errors
            .iter()
            .any(|e| e.kind == ErrorKind::ForeignService),
        "{:?}",
        rep.errors
    );
    // The old service and its VIP are gone, and so are their ledger entries.
    assert!(!r.dataplane().ipvs.contains_key(&old_key));
    assert!(!r.ledger().owns_service(&old_key), "{:?}", r.ledger());
    assert!(
        !r.dataplane()
            .addresses
            .iter()
            .any(|a| a.addr == ip("10.0.0.5")),
        "{:?}",
        r.dataplane().addresses
    );
    assert!(
        !r.ledger()
            .addresses
            .iter()
            .any(|k| k.addr == ip("10.0.0.5")),
        "{:?}",
        r.ledger()
    );
    assert_eq!(r.dataplane().ipvs[&web_key], foreign);
    assert!(!r.ledger().owns_service(&web_key));
    // The next sync reads the kernel in full and changes nothing foreign.
    let rep = sync(&mut r, &director(vec![web()]), false);
    assert!(rep.full);
    assert_eq!(r.dataplane().ipvs[&web_key], foreign);
}

/// A delete answered "not found" while the object is still there (a view
/// out of date, a kernel that says otherwise): the entry stays owned until
/// a full read, which then removes the object.
#[test]
fn a_delete_answered_not_found_keeps_ownership_until_the_full_read() {
    let dir = temp_dir("notfound");
    let mut r = reconciler(FakeDataplane::new(), &dir);
    let rep = sync(&mut r, &director(vec![web()]), false);
    assert!(rep.ok(), "{:?}", rep.errors);
    let key = tcp("10.0.0.1", 80);
    r.dataplane_mut().fail_once(
        move |c| matches!(c, Call::Ipvs(Op::DelService(k)) if *k == key),
        errno::ESRCH,
    );
    r.dataplane_mut()
        .fail_once(|c| matches!(c, Call::DelAddress(_)), errno::EADDRNOTAVAIL);
    let rep = sync(&mut r, &director(vec![]), false);
    assert!(rep.ok(), "{:?}", rep.errors);
    assert!(r.dataplane().ipvs.contains_key(&key));
    assert!(r.ledger().owns_service(&key), "{:?}", r.ledger());
    let rep = sync(&mut r, &director(vec![]), false);
    assert!(rep.full, "a contradicted view is read again");
    assert!(rep.ok(), "{:?}", rep.errors);
    assert!(r.dataplane().ipvs.is_empty(), "{:?}", r.dataplane().ipvs);
    assert!(r.ledger().is_empty(), "{:?}", r.ledger());
    assert!(
        !r.dataplane()
            .addresses
            .iter()
            .any(|a| a.addr == ip("10.0.0.1"))
    );
}

/// A director VIP is announced only while one of its IPVS services is in
/// the kernel, and withdrawn when none can be: otherwise clients reach the
/// node's own listeners, or get a reset, at the VIP.
#[test]
fn a_vip_is_held_only_while_a_service_of_ours_at_it_is_in_the_kernel() {
    let dir = temp_dir("vip-needs-service");
    let mut f = FakeDataplane::new();
    f.fail_when(
        |c| matches!(c, Call::Ipvs(Op::AddService(..))),
        errno::ENOENT,
    );
    let mut r = reconciler(f, &dir);
    let plan = director(vec![web()]);
    let has_vip = |f: &FakeDataplane| f.addresses.iter().any(|a| a.addr == ip("10.0.0.1"));

    // The scheduler module is missing: no service, so no VIP.
    let rep = sync(&mut r, &plan, false);
    assert!(
        rep.errors.iter().any(|e| e.kind == ErrorKind::VipWithheld
            && e.owner.as_deref() == Some("default/web")
            && e.message.contains("10.0.0.1")),
        "{:?}",
        rep.errors
    );
    assert!(!has_vip(r.dataplane()));
    assert!(r.ledger().addresses.is_empty(), "{:?}", r.ledger());
    assert!(!rep.services["default/web"].programmed);

    // The service can be created: the VIP follows in the same sync.
    r.dataplane_mut().clear_failures();
    let rep = sync(&mut r, &plan, false);
    assert!(rep.ok(), "{:?}", rep.errors);
    assert!(has_vip(r.dataplane()));

    // Removed by hand and refused on the way back: the VIP is withdrawn.
    r.dataplane_mut().ipvs.clear();
    r.dataplane_mut().fail_when(
        |c| matches!(c, Call::Ipvs(Op::AddService(..))),
        errno::ENOENT,
    );
    let rep = sync(&mut r, &plan, true);
    assert!(
        rep.errors.iter().any(|e| e.kind == ErrorKind::VipWithheld),
        "{:?}",
        rep.errors
    );
    assert!(!has_vip(r.dataplane()), "{:?}", r.dataplane().addresses);
    assert!(r.ledger().addresses.is_empty(), "{:?}", r.ledger());

    // Back again, then IPVS goes away altogether: withdrawn too.
    r.dataplane_mut().clear_failures();
    assert!(sync(&mut r, &plan, false).ok());
    assert!(has_vip(r.dataplane()));
    // The node-level error says why; no second error per VIP.
    r.dataplane_mut().ipvs_available = false;
    let rep = sync(&mut r, &plan, true);
    let kinds: Vec<ErrorKind> = rep.errors.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [ErrorKind::IpvsUnavailable], "{:?}", rep.errors);
    assert!(!has_vip(r.dataplane()));
}

#[test]
fn a_full_read_keeps_destination_counters_only_within_the_cap() {
    let dir = temp_dir("stats-cap");
    let plan = director(vec![web()]);
    let mut r = reconciler(busy_node(), &dir);
    assert!(sync(&mut r, &plan, false).ok());

    // Within the cap: the owned service with both destinations.
    r.keep_destination_stats_up_to(2);
    assert!(sync(&mut r, &plan, true).ok());
    let (stats, destinations) = r.take_owned_stats();
    assert_eq!(destinations, 2);
    assert_eq!(stats.len(), 1, "only the owned service: {stats:?}");
    assert_eq!(stats[0].destinations.len(), 2);

    // Above it: the service's counters, its destinations counted only.
    r.keep_destination_stats_up_to(1);
    assert!(sync(&mut r, &plan, true).ok());
    let (stats, destinations) = r.take_owned_stats();
    assert_eq!(destinations, 2);
    assert_eq!(stats.len(), 1);
    assert!(stats[0].destinations.is_empty(), "{stats:?}");
}

/// 40 one-destination services on 10.0.1.1..40.
fn forty() -> NodePlan {
    director(
        (1..=40)
            .map(|i| {
                service(
                    &format!("s{i}"),
                    &format!("10.0.1.{i}"),
                    80,
                    vec![dest("10.1.0.1", 8080, 1, Nat)],
                )
            })
            .collect(),
    )
}

/// A reconciler (its state in a directory of its own) that synced `forty()`.
fn forty_synced(
    tag: &str,
) -> (
    TempDir,
    lvs_node_agent::reconcile::Reconciler<FakeDataplane>,
    NodePlan,
) {
    let dir = temp_dir(tag);
    let mut r = reconciler(FakeDataplane::new(), &dir);
    let plan = forty();
    assert!(sync(&mut r, &plan, false).ok());
    (dir, r, plan)
}

/// Steps `c` without a time budget until it finds the kernel as expected:
/// how many steps it took, and what it read.
fn steps_to_same(
    r: &mut lvs_node_agent::reconcile::Reconciler<FakeDataplane>,
    c: &mut lvs_node_agent::reconcile::Check,
) -> (usize, Vec<lvs_ipvs::ServiceEntry>) {
    use lvs_node_agent::reconcile::CheckStep;
    let mut steps = 0;
    loop {
        steps += 1;
        match r.check_step(c, std::time::Duration::ZERO) {
            CheckStep::More => {}
            CheckStep::Same(e) => return (steps, e),
            CheckStep::Differs => panic!("step {steps}: nothing differs here"),
        }
    }
}

#[test]
fn a_resync_check_reads_in_steps_and_finds_the_kernel_as_left() {
    let (_dir, mut r, _) = forty_synced("check-steps");
    r.dataplane_mut().take_calls();
    let mut c = r.check_begin().expect("nothing differs: the check starts");
    // Without a time budget a step reads the destinations of 16 services:
    // 40 take three steps, then one for the service list, one for the rest.
    let (steps, entries) = steps_to_same(&mut r, &mut c);
    assert_eq!(steps, 5);
    assert_eq!(entries.len(), 40);
    assert!(entries.iter().all(|e| e.destinations.len() == 1));
    let calls = r.dataplane_mut().take_calls();
    assert!(!calls.iter().any(Call::is_write), "{calls:?}");
    let dests = calls
        .iter()
        .filter(|c| matches!(c, Call::IpvsDests(_)))
        .count();
    assert_eq!(dests, 40, "one destination read per service: {calls:?}");
}

#[test]
fn a_live_read_reads_the_owned_services_in_steps_and_compares_nothing() {
    let (_dir, mut r, _) = forty_synced("live-steps");
    // Someone else's service, and a weight changed by hand: a check would
    // find both; a live read leaves the first out and reports the second
    // as the kernel has it.
    let (fk, fs) = foreign_service();
    r.dataplane_mut().ipvs.insert(fk, fs);
    let k30 = tcp("10.0.1.30", 80);
    let d = DestKey {
        addr: ip("10.1.0.1"),
        port: 8080,
    };
    r.dataplane_mut()
        .ipvs
        .get_mut(&k30)
        .unwrap()
        .dests
        .get_mut(&d)
        .unwrap()
        .weight = 9;
    r.dataplane_mut().take_calls();
    let mut c = r.live_begin().expect("owned services: a live read starts");
    assert!(c.live_only());
    // 40 services' destinations in three steps of 16, then the service list.
    let (steps, entries) = steps_to_same(&mut r, &mut c);
    assert_eq!(steps, 4);
    assert_eq!(entries.len(), 40, "the owned services only");
    assert!(entries.iter().all(|e| e.service.key != fk));
    let e30 = entries.iter().find(|e| e.service.key == k30).unwrap();
    assert_eq!(e30.destinations[0].destination.config.weight, 9);
    let calls = r.dataplane_mut().take_calls();
    assert!(!calls.iter().any(Call::is_write), "{calls:?}");
    assert!(
        !calls.iter().any(|c| matches!(c, Call::ReadSysctl(_))),
        "nothing besides IPVS: {calls:?}"
    );
    // Nothing owned, nothing to read.
    let dir = temp_dir("live-none");
    let mut empty = reconciler(FakeDataplane::new(), &dir);
    assert!(empty.live_begin().is_none());
    assert!(sync(&mut empty, &NodePlan::default(), false).ok());
    assert!(empty.live_begin().is_none());
}

#[test]
fn a_resync_check_finds_what_someone_else_changed() {
    let (_dir, mut r, plan) = forty_synced("check-differs");
    // The whole check at once (`recheck`: every step without a budget).
    let run = |r: &mut lvs_node_agent::reconcile::Reconciler<FakeDataplane>| r.recheck();
    assert!(run(&mut r));
    let k30 = tcp("10.0.1.30", 80);
    let d = DestKey {
        addr: ip("10.1.0.1"),
        port: 8080,
    };
    // A weight, a destination added, a service's scheduler, a service
    // added, an address deleted, a sysctl, the VIPs' interface down: each is
    // found, and after the full sync the check passes again.
    type Edit = Box<dyn Fn(&mut FakeDataplane)>;
    let edits: Vec<Edit> = vec![
        Box::new(move |f| {
            f.ipvs
                .get_mut(&k30)
                .unwrap()
                .dests
                .get_mut(&d)
                .unwrap()
                .weight = 9
        }),
        Box::new(move |f| {
            f.ipvs.get_mut(&k30).unwrap().dests.insert(
                DestKey {
                    addr: ip("10.9.0.1"),
                    port: 1,
                },
                DestConfig::new(FwdMethod::Masq, 1),
            );
        }),
        Box::new(move |f| f.ipvs.get_mut(&k30).unwrap().config.scheduler = "rr".into()),
        Box::new(|f| {
            let (k, s) = foreign_service();
            f.ipvs.insert(k, s);
        }),
        Box::new(|f| f.addresses.retain(|a| a.addr != ip("10.0.1.7"))),
        Box::new(|f| {
            f.sysctls.insert("net/ipv4/ip_forward".into(), "0".into());
        }),
        // The interface holding the VIPs went down.
        Box::new(|f| f.links.get_mut("eth0").unwrap().up = false),
    ];
    // A link that holds no address of the agent's (a pod's veth, a capture
    // device) comes and goes: nothing a sync would do.
    let mut veth = r.dataplane().links["eth0"].clone();
    veth.name = "veth1234".into();
    veth.index = 99;
    r.dataplane_mut().links.insert(veth.name.clone(), veth);
    assert!(run(&mut r), "a new foreign link");
    r.dataplane_mut().links.remove("veth1234");
    assert!(run(&mut r), "a foreign link gone");
    for (i, edit) in edits.iter().enumerate() {
        edit(r.dataplane_mut());
        assert!(!run(&mut r), "edit {i} went unnoticed");
        assert!(sync(&mut r, &plan, true).ok());
        assert!(run(&mut r), "after edit {i} and the full sync");
    }
    // Without a view (after a failed write, say) there is nothing to compare.
    r.invalidate();
    assert!(r.check_begin().is_none());
}

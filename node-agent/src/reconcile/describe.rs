//! A decided [`Write`] as the lines a person reads in `kubectl lvs diff`:
//! one per kernel change, naming the object, the VirtualService it is for,
//! and for an edit the fields that differ from the kernel's view
//! ("edit destination 10.0.2.14:80 of TCP 192.0.2.10:80 (default/web):
//! weight 5 -> 1").

use std::fmt;

use lvs_ipvs::{Family, Op, ServiceKey};

use super::Known;
use super::decision::Write;
use super::drift::{DestChange, ServiceChange, method_name};
use crate::kernel::{AddrKind, Address, DaemonSpec, TunnelDevice};
use crate::ledger::Ledger;

/// A service as `ipvsadm -Ln` names it, with one space: "TCP
/// 192.0.2.10:80", "UDP [2001:db8::1]:53", "FWM 7", "FWM 7 IPv6".
#[derive(Debug, Clone, Copy)]
pub struct ServiceName<'a>(pub &'a ServiceKey);

impl fmt::Display for ServiceName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            ServiceKey::Fwmark {
                family: Family::V4,
                mark,
            } => write!(f, "FWM {mark}"),
            ServiceKey::Fwmark {
                family: Family::V6,
                mark,
            } => write!(f, "FWM {mark} IPv6"),
            tuple => tuple.fmt(f),
        }
    }
}

/// " (namespace/name)", or nothing without an owner.
struct For<'a>(Option<&'a str>);

impl fmt::Display for For<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(o) if !o.is_empty() => write!(f, " ({o})"),
            _ => Ok(()),
        }
    }
}

fn address(a: &Address) -> String {
    let how = match a.kind {
        AddrKind::Interface => "",
        AddrKind::LocalRoute => " (local route)",
    };
    format!("{}/{} on {}{how}", a.addr, a.prefix_len, a.interface)
}

fn daemon(d: &DaemonSpec) -> String {
    let role = match d.state {
        lvs_ipvs::DaemonState::Master => "master",
        lvs_ipvs::DaemonState::Backup => "backup",
    };
    format!(
        "connection sync daemon {role} on {} (sync id {})",
        d.interface, d.sync_id
    )
}

fn tunnel(t: &TunnelDevice) -> String {
    format!("tunnel device {} ({})", t.name, t.kind.link_kind())
}

fn ipvs_line(op: &Op, owner: Option<&str>, known: &Known) -> String {
    let owner = For(owner);
    match op {
        Op::AddService(s) => {
            let c = &s.config;
            let mut line = format!(
                "add service {}{owner}: scheduler {}",
                ServiceName(&s.key),
                c.scheduler
            );
            if c.flags.contains(lvs_ipvs::ServiceFlags::PERSISTENT) {
                line.push_str(&format!(", persistent {} s", c.timeout));
            }
            line
        }
        Op::UpdateService(s) => match known.ipvs.get(&s.key) {
            Some(k) => format!(
                "edit service {}{owner}: {}",
                ServiceName(&s.key),
                ServiceChange(&k.config, &s.config)
            ),
            None => format!("edit service {}{owner}", ServiceName(&s.key)),
        },
        Op::DelService(k) => format!("delete service {}{owner}", ServiceName(k)),
        Op::AddDest { service, dest } => format!(
            "add destination {} to {}{owner}: {} weight {}",
            dest.key,
            ServiceName(service),
            method_name(dest.config.fwd),
            dest.config.weight
        ),
        Op::UpdateDest { service, dest } => {
            let was = known.ipvs.get(service).and_then(|s| s.dests.get(&dest.key));
            match was {
                Some(was) => format!(
                    "edit destination {} of {}{owner}: {}",
                    dest.key,
                    ServiceName(service),
                    DestChange(was, &dest.config)
                ),
                None => format!(
                    "edit destination {} of {}{owner}",
                    dest.key,
                    ServiceName(service)
                ),
            }
        }
        Op::DelDest { service, dest } => format!(
            "delete destination {dest} of {}{owner}",
            ServiceName(service)
        ),
    }
}

/// The lines of one write, compared with `known` (the kernel as read for
/// this decision, sysctl values included) and `ledger` (owners of what is
/// removed).
pub fn describe(write: &Write, known: &Known, ledger: &Ledger) -> Vec<String> {
    let owner_of = |k: &ServiceKey| ledger.services.get(k).map(|o| o.owner.as_str());
    match write {
        Write::EnsureTunnel(t) => vec![format!("set up {}", tunnel(t))],
        Write::AddFou(p) => vec![format!("add {p}")],
        Write::WriteSysctl { key, value } => vec![match known.sysctls.get(key) {
            Some(was) => format!("set sysctl {key}: {was} -> {value}"),
            None => format!("set sysctl {key} to {value}"),
        }],
        Write::WriteSysctlLater { key, value } => {
            vec![format!(
                "set sysctl {key} to {value} once its device exists"
            )]
        }
        Write::AddAddresses(list) => list
            .iter()
            .map(|(a, _)| format!("add address {}", address(a)))
            .collect(),
        Write::Ipvs(ops) => ops
            .iter()
            .map(|(op, owner)| {
                let owner = owner.or_else(|| match op {
                    Op::DelService(k) => owner_of(k),
                    _ => None,
                });
                ipvs_line(op, owner, known)
            })
            .collect(),
        Write::DirectorVips { add, .. } => add
            .iter()
            .map(|(a, _)| format!("add address {}", address(a)))
            .collect(),
        Write::StartDaemon(d) => vec![format!("start {}", daemon(d))],
        Write::ReplaceDaemon { old, new } => {
            vec![format!("replace {} with {}", daemon(old), daemon(new))]
        }
        Write::StopDaemon(d) => vec![format!("stop {}", daemon(d))],
        Write::DelAddress(a) => vec![format!("delete address {}", address(a))],
        Write::RestoreSysctl { key, previous } => vec![match known.sysctls.get(key) {
            Some(was) => format!("restore sysctl {key}: {was} -> {previous}"),
            None => format!("restore sysctl {key} to {previous}"),
        }],
        Write::DelFou(p) => vec![format!("delete {p}")],
        Write::ReleaseTunnel(t) => vec![format!("release {}", tunnel(t))],
        Write::ReplaceNft(w) => vec![format!(
            "replace nftables table inet lvs-operator: {} source NAT and {} mark rules",
            w.snat.len(),
            w.marks.len()
        )],
        Write::DeleteNft => vec!["delete nftables table inet lvs-operator".to_string()],
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use lvs_ipvs::{DestConfig, DestKey, FwdMethod, Protocol, Service, ServiceConfig};

    use super::*;
    use crate::kernel::{FouPort, Scope, TunnelKind};
    use crate::ledger::OwnedService;
    use crate::reconcile::KnownService;
    use crate::reconcile::decision::IpvsWrites;

    fn web() -> ServiceKey {
        ServiceKey::Tuple {
            addr: "192.0.2.10".parse().unwrap(),
            protocol: Protocol::TCP,
            port: 80,
        }
    }

    fn rs() -> DestKey {
        DestKey {
            addr: "10.0.2.14".parse().unwrap(),
            port: 80,
        }
    }

    fn vip(interface: &str, kind: AddrKind) -> Address {
        Address {
            interface: interface.into(),
            addr: "192.0.2.10".parse().unwrap(),
            prefix_len: 32,
            label: None,
            scope: Scope::Global,
            kind,
        }
    }

    fn daemon_spec(interface: &str) -> DaemonSpec {
        DaemonSpec {
            state: lvs_ipvs::DaemonState::Master,
            interface: interface.into(),
            sync_id: 3,
        }
    }

    /// Each kind of write, against a kernel holding `web` with `rs` at
    /// weight 5 and ip_forward 0.
    #[test]
    fn each_write_reads_as_one_line_per_change() {
        let mut known = Known::default();
        known.ipvs.insert(
            web(),
            KnownService {
                config: ServiceConfig::new(Family::V4, "wlc"),
                dests: BTreeMap::from([(rs(), DestConfig::new(FwdMethod::Masq, 5))]),
            },
        );
        known
            .sysctls
            .insert("net/ipv4/ip_forward".into(), "0".into());
        let mut ledger = Ledger::default();
        ledger.services.insert(
            web(),
            OwnedService {
                owner: "default/web".into(),
                dests: [rs()].into(),
            },
        );
        let owner: Option<std::sync::Arc<str>> = Some("default/web".into());
        let rr = Service {
            key: web(),
            config: ServiceConfig::new(Family::V4, "rr"),
        };
        let dest = |w| lvs_ipvs::Destination {
            key: rs(),
            config: DestConfig::new(FwdMethod::Masq, w),
        };
        let fw7 = ServiceKey::Fwmark {
            family: Family::V6,
            mark: 7,
        };
        let tunl = TunnelDevice {
            name: "tunl0".into(),
            kind: TunnelKind::Ipip,
            local: None,
        };
        let fou = FouPort {
            port: 5555,
            ipv6: false,
        };
        let cases: Vec<(Write, Vec<&str>)> = vec![
            (
                Write::Ipvs(IpvsWrites::from_iter([
                    (
                        Op::UpdateDest {
                            service: web(),
                            dest: dest(1),
                        },
                        owner.clone(),
                    ),
                    (
                        Op::AddDest {
                            service: web(),
                            dest: dest(2),
                        },
                        owner.clone(),
                    ),
                    (Op::UpdateService(rr.clone()), owner.clone()),
                    (Op::AddService(rr.clone()), owner.clone()),
                    (
                        Op::DelDest {
                            service: web(),
                            dest: rs(),
                        },
                        owner.clone(),
                    ),
                    (Op::DelService(web()), None),
                    (Op::DelService(fw7), Some("ns/mark".into())),
                ])),
                vec![
                    "edit destination 10.0.2.14:80 of TCP 192.0.2.10:80 (default/web): weight 5 -> 1",
                    "add destination 10.0.2.14:80 to TCP 192.0.2.10:80 (default/web): masq weight 2",
                    "edit service TCP 192.0.2.10:80 (default/web): scheduler wlc -> rr",
                    "add service TCP 192.0.2.10:80 (default/web): scheduler rr",
                    "delete destination 10.0.2.14:80 of TCP 192.0.2.10:80 (default/web)",
                    "delete service TCP 192.0.2.10:80 (default/web)",
                    "delete service FWM 7 IPv6 (ns/mark)",
                ],
            ),
            (
                Write::AddAddresses(vec![(vip("lo", AddrKind::Interface), Default::default())]),
                vec!["add address 192.0.2.10/32 on lo"],
            ),
            (
                Write::DirectorVips {
                    add: vec![(vip("eth0", AddrKind::LocalRoute), Default::default())],
                    held: vec![(vip("eth1", AddrKind::Interface), Default::default())],
                    fwmarks: Default::default(),
                },
                vec!["add address 192.0.2.10/32 on eth0 (local route)"],
            ),
            (
                Write::DelAddress(vip("eth0", AddrKind::Interface)),
                vec!["delete address 192.0.2.10/32 on eth0"],
            ),
            (
                Write::WriteSysctl {
                    key: "net/ipv4/ip_forward".into(),
                    value: "1".into(),
                },
                vec!["set sysctl net/ipv4/ip_forward: 0 -> 1"],
            ),
            (
                Write::WriteSysctlLater {
                    key: "net/ipv4/conf/tunl0/rp_filter".into(),
                    value: "0".into(),
                },
                vec!["set sysctl net/ipv4/conf/tunl0/rp_filter to 0 once its device exists"],
            ),
            (
                Write::RestoreSysctl {
                    key: "net/ipv4/ip_forward".into(),
                    previous: "1".into(),
                },
                vec!["restore sysctl net/ipv4/ip_forward: 0 -> 1"],
            ),
            (
                Write::RestoreSysctl {
                    key: "net/ipv4/vs/conntrack".into(),
                    previous: "0".into(),
                },
                vec!["restore sysctl net/ipv4/vs/conntrack to 0"],
            ),
            (
                Write::EnsureTunnel(tunl.clone()),
                vec!["set up tunnel device tunl0 (ipip)"],
            ),
            (
                Write::ReleaseTunnel(tunl),
                vec!["release tunnel device tunl0 (ipip)"],
            ),
            (Write::AddFou(fou), vec!["add gue port 5555 (IPv4)"]),
            (Write::DelFou(fou), vec!["delete gue port 5555 (IPv4)"]),
            (
                Write::StartDaemon(daemon_spec("eth0")),
                vec!["start connection sync daemon master on eth0 (sync id 3)"],
            ),
            (
                Write::ReplaceDaemon {
                    old: daemon_spec("eth0"),
                    new: daemon_spec("eth1"),
                },
                vec![
                    "replace connection sync daemon master on eth0 (sync id 3) with connection sync daemon master on eth1 (sync id 3)",
                ],
            ),
            (
                Write::StopDaemon(daemon_spec("eth0")),
                vec!["stop connection sync daemon master on eth0 (sync id 3)"],
            ),
            (
                Write::ReplaceNft(crate::reconcile::nft_table::Wanted {
                    snat: vec![],
                    marks: vec![],
                }),
                vec!["replace nftables table inet lvs-operator: 0 source NAT and 0 mark rules"],
            ),
            (
                Write::DeleteNft,
                vec!["delete nftables table inet lvs-operator"],
            ),
        ];
        for (write, want) in cases {
            assert_eq!(describe(&write, &known, &ledger), want, "{write:?}");
        }
    }
}

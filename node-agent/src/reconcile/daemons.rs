//! IPVS connection sync daemons: with director HA, every director runs
//! the kernel's sync daemon both as master (it sends the connections it
//! balances) and as backup (it receives those of the other directors), so
//! that a standby taking over a VIP already knows its established
//! connections. A node is active for some VIPs and standby for others, so
//! it needs both roles at once; the kernel runs at most one daemon per
//! role in a network namespace.
//!
//! Only daemons the ledger says the agent started are ever stopped or
//! replaced. A daemon of the same role started by someone else (ipvsadm,
//! keepalived) is foreign: left alone, and reported when it differs from
//! what is wanted.

use std::collections::BTreeMap;
use std::net::IpAddr;

use lvs_ipvs::DaemonState;

use crate::kernel::{Address, DaemonSpec};
use crate::ledger::Ledger;
use crate::reconcile::decision::{Decision, Write};
use crate::report::{ErrorKind, SyncError};

/// How the agent runs sync daemons when HA is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncDaemonSettings {
    /// The multicast interface; `None`: the one holding the node's
    /// InternalIP (the first node IP that an interface holds).
    pub interface: Option<String>,
    pub sync_id: u32,
}

/// The daemons wanted: none without HA or when the node directs no
/// service, else a master and a backup on the configured or derived
/// interface. An error when the interface cannot be derived.
pub fn wanted<'a>(
    settings: Option<&SyncDaemonSettings>,
    directs: bool,
    node_ips: &[IpAddr],
    addresses: impl Iterator<Item = &'a Address> + Clone,
) -> (BTreeMap<DaemonState, DaemonSpec>, Option<SyncError>) {
    let Some(settings) = settings.filter(|_| directs) else {
        return (BTreeMap::new(), None);
    };
    let interface = settings.interface.clone().or_else(|| {
        node_ips
            .first()
            .and_then(|ip| crate::desired::director_interface(ip, node_ips, addresses))
    });
    let Some(interface) = interface else {
        let ips = crate::desired::no_node_interface(node_ips, "the node's InternalIP is unknown");
        return (
            BTreeMap::new(),
            Some(SyncError::new(
                ErrorKind::Interface,
                None,
                format!(
                    "IPVS connection sync daemons not started: --sync-interface is unset and {ips}; set --sync-interface (chart value ha.syncDaemon.interface) to the interface the directors share"
                ),
            )),
        );
    };
    let want = [DaemonState::Master, DaemonState::Backup]
        .into_iter()
        .map(|state| {
            (
                state,
                DaemonSpec {
                    state,
                    interface: interface.clone(),
                    sync_id: settings.sync_id,
                },
            )
        })
        .collect();
    (want, None)
}

/// Per role: start what is wanted and not running (recorded ahead),
/// replace an owned daemon that runs with other settings, stop an owned
/// one no longer wanted (recorded after), and leave foreign ones alone.
pub fn decide(
    want: &BTreeMap<DaemonState, DaemonSpec>,
    running: &BTreeMap<DaemonState, DaemonSpec>,
    ledger: &Ledger,
) -> Decision {
    let mut d = Decision::default();
    for state in [DaemonState::Master, DaemonState::Backup] {
        let (want, running) = (want.get(&state), running.get(&state));
        let owned = running.is_some() && ledger.daemons.get(&state) == running;
        match (want, running) {
            (Some(w), None) => {
                d.delta.daemons.insert(state, Some(w.clone()));
                d.writes.push(Write::StartDaemon(w.clone()));
            }
            (Some(w), Some(r)) if w == r => {}
            (Some(w), Some(r)) if owned => {
                d.delta.daemons.insert(state, Some(w.clone()));
                d.writes.push(Write::ReplaceDaemon {
                    old: r.clone(),
                    new: w.clone(),
                });
            }
            (Some(w), Some(r)) => d.errors.push(SyncError::new(
                ErrorKind::ForeignDaemon,
                None,
                format!(
                    "{r} runs and was not started by this agent, so it is left alone; wanted: {w}. Stop it (ipvsadm --stop-daemon {}) or set --sync-interface/--sync-id to match it",
                    crate::kernel::daemon_role(state)
                ),
            )),
            (None, Some(r)) if owned => d.writes.push(Write::StopDaemon(r.clone())),
            (None, _) => {}
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{AddrKind, Scope};

    fn spec(state: DaemonState, interface: &str, sync_id: u32) -> DaemonSpec {
        DaemonSpec {
            state,
            interface: interface.into(),
            sync_id,
        }
    }

    fn both(interface: &str, sync_id: u32) -> BTreeMap<DaemonState, DaemonSpec> {
        [DaemonState::Master, DaemonState::Backup]
            .into_iter()
            .map(|s| (s, spec(s, interface, sync_id)))
            .collect()
    }

    fn addr(interface: &str, ip: &str) -> Address {
        Address {
            interface: interface.into(),
            addr: ip.parse().unwrap(),
            prefix_len: 24,
            label: None,
            scope: Scope::Global,
            kind: AddrKind::Interface,
        }
    }

    #[test]
    fn wanted_follows_ha_the_plan_and_the_interface() {
        let addrs = [addr("lo", "127.0.0.1"), addr("eth1", "10.0.0.2")];
        let ips: Vec<IpAddr> = vec!["192.0.2.9".parse().unwrap(), "10.0.0.2".parse().unwrap()];
        let derived = SyncDaemonSettings {
            interface: None,
            sync_id: 7,
        };
        let given = SyncDaemonSettings {
            interface: Some("sync0".into()),
            sync_id: 0,
        };

        let (w, e) = wanted(None, true, &ips, addrs.iter());
        assert!(w.is_empty() && e.is_none(), "no HA, no daemons");
        let (w, e) = wanted(Some(&derived), false, &ips, addrs.iter());
        assert!(
            w.is_empty() && e.is_none(),
            "no directed service, no daemons"
        );

        let (w, e) = wanted(Some(&derived), true, &ips, addrs.iter());
        assert_eq!(
            w,
            both("eth1", 7),
            "the interface of the first held node IP"
        );
        assert!(e.is_none());
        let (w, _) = wanted(Some(&given), true, &[], addrs.iter());
        assert_eq!(w, both("sync0", 0), "the flag wins, no node IP needed");

        let (w, e) = wanted(Some(&derived), true, &ips[..1], addrs.iter());
        assert!(w.is_empty());
        let e = e.expect("an error when no interface is found");
        assert_eq!(e.kind, ErrorKind::Interface);
        assert!(
            e.message.contains("--sync-interface") && e.message.contains("192.0.2.9"),
            "{}",
            e.message
        );
    }

    #[test]
    fn table() {
        use DaemonState::{Backup, Master};
        struct Case {
            name: &'static str,
            want: BTreeMap<DaemonState, DaemonSpec>,
            running: Vec<DaemonSpec>,
            owned: Vec<DaemonSpec>,
            writes: Vec<Write>,
            delta: Vec<(DaemonState, Option<DaemonSpec>)>,
            /// Substrings of the one error expected, if any.
            error: Option<&'static str>,
        }
        let cases = [
            Case {
                name: "missing daemons are started, recorded ahead",
                want: both("eth0", 0),
                running: vec![],
                owned: vec![],
                writes: vec![
                    Write::StartDaemon(spec(Master, "eth0", 0)),
                    Write::StartDaemon(spec(Backup, "eth0", 0)),
                ],
                delta: vec![
                    (Master, Some(spec(Master, "eth0", 0))),
                    (Backup, Some(spec(Backup, "eth0", 0))),
                ],
                error: None,
            },
            Case {
                name: "owned daemons as wanted are left running",
                want: both("eth0", 0),
                running: both("eth0", 0).into_values().collect(),
                owned: both("eth0", 0).into_values().collect(),
                writes: vec![],
                delta: vec![],
                error: None,
            },
            Case {
                name: "a foreign daemon as wanted is accepted, not adopted",
                want: both("eth0", 0),
                running: vec![spec(Master, "eth0", 0)],
                owned: vec![],
                writes: vec![Write::StartDaemon(spec(Backup, "eth0", 0))],
                delta: vec![(Backup, Some(spec(Backup, "eth0", 0)))],
                error: None,
            },
            Case {
                name: "a foreign daemon with other settings is reported, never touched",
                want: both("eth0", 0),
                running: vec![spec(Backup, "eth1", 5)],
                owned: vec![],
                writes: vec![Write::StartDaemon(spec(Master, "eth0", 0))],
                delta: vec![(Master, Some(spec(Master, "eth0", 0)))],
                error: Some("backup on eth1 (sync id 5)"),
            },
            Case {
                name: "an owned daemon on another interface or sync id is replaced",
                want: both("eth0", 3),
                running: vec![spec(Master, "eth1", 3), spec(Backup, "eth0", 0)],
                owned: vec![spec(Master, "eth1", 3), spec(Backup, "eth0", 0)],
                writes: vec![
                    Write::ReplaceDaemon {
                        old: spec(Master, "eth1", 3),
                        new: spec(Master, "eth0", 3),
                    },
                    Write::ReplaceDaemon {
                        old: spec(Backup, "eth0", 0),
                        new: spec(Backup, "eth0", 3),
                    },
                ],
                delta: vec![
                    (Master, Some(spec(Master, "eth0", 3))),
                    (Backup, Some(spec(Backup, "eth0", 3))),
                ],
                error: None,
            },
            Case {
                name: "not wanted: owned ones stopped (recorded after), foreign left",
                want: BTreeMap::new(),
                running: vec![spec(Master, "eth0", 0), spec(Backup, "eth9", 1)],
                owned: vec![spec(Master, "eth0", 0)],
                writes: vec![Write::StopDaemon(spec(Master, "eth0", 0))],
                delta: vec![],
                error: None,
            },
            Case {
                name: "a daemon whose ledger entry names other settings is not ours",
                want: BTreeMap::new(),
                running: vec![spec(Master, "eth0", 0)],
                owned: vec![spec(Master, "eth0", 1)],
                writes: vec![],
                delta: vec![],
                error: None,
            },
        ];
        for c in cases {
            let by_state = |v: Vec<DaemonSpec>| v.into_iter().map(|d| (d.state, d)).collect();
            let ledger = Ledger {
                daemons: by_state(c.owned),
                ..Ledger::default()
            };
            let d = decide(&c.want, &by_state(c.running), &ledger);
            assert_eq!(d.writes, c.writes, "{}", c.name);
            assert_eq!(
                d.delta.daemons.into_iter().collect::<Vec<_>>(),
                c.delta,
                "{}",
                c.name
            );
            match c.error {
                None => assert!(d.errors.is_empty(), "{}: {:?}", c.name, d.errors),
                Some(s) => {
                    assert_eq!(d.errors.len(), 1, "{}", c.name);
                    assert_eq!(d.errors[0].kind, ErrorKind::ForeignDaemon, "{}", c.name);
                    assert!(
                        d.errors[0].message.contains(s),
                        "{}: {}",
                        c.name,
                        d.errors[0].message
                    );
                }
            }
        }
    }
}

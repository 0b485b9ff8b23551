//! Tunnel devices and fou (GUE) receive ports: bring up what is wanted and
//! down, add missing ports, and release what the ledger holds and the plan
//! no longer wants.

use crate::desired::Desired;
use crate::kernel::TunnelDevice;
use crate::ledger::{Ledger, OwnedTunnel};
use crate::reconcile::Known;
use crate::reconcile::decision::{Decision, Write};

/// The tunnel and fou writes, and the ledger entries of those brought up or
/// added (before the write) and of unwanted devices the agent did not bring
/// up (forgotten, nothing to undo in the kernel).
pub fn decide(want: &Desired, known: &Known, ledger: &Ledger) -> Decision {
    let mut d = Decision::default();
    for (name, dev) in &want.tunnels {
        if known.links.get(name).is_some_and(|l| l.up) {
            continue;
        }
        d.delta.tunnels.insert(
            name.clone(),
            Some(OwnedTunnel {
                kind: dev.kind,
                brought_up: true,
                local: dev.local,
            }),
        );
        d.writes.push(Write::EnsureTunnel(dev.clone()));
    }
    for p in &want.fou_ports {
        if !known.fou.contains(p) {
            d.delta.fou_ports.insert(*p, true);
            d.writes.push(Write::AddFou(*p));
        }
    }
    for p in &ledger.fou_ports {
        if !want.fou_ports.contains(p) {
            d.writes.push(Write::DelFou(*p));
        }
    }
    for (name, t) in &ledger.tunnels {
        if want.tunnels.contains_key(name) {
            continue;
        }
        if t.brought_up {
            d.writes.push(Write::ReleaseTunnel(TunnelDevice {
                name: name.clone(),
                kind: t.kind,
                local: t.local,
            }));
        } else {
            d.delta.tunnels.insert(name.clone(), None);
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{FouPort, Link, TunnelKind};

    fn dev(name: &str) -> TunnelDevice {
        TunnelDevice {
            name: name.into(),
            kind: TunnelKind::Ipip,
            local: None,
        }
    }

    fn link(name: &str, up: bool) -> Link {
        Link {
            name: name.into(),
            index: 3,
            kind: Some("ipip".into()),
            up,
        }
    }

    const GUE: FouPort = FouPort {
        port: 5555,
        ipv6: false,
    };

    fn owned(brought_up: bool) -> OwnedTunnel {
        OwnedTunnel {
            kind: TunnelKind::Ipip,
            brought_up,
            local: None,
        }
    }

    #[test]
    fn table() {
        struct Case {
            name: &'static str,
            want: Desired,
            known: Known,
            ledger: Ledger,
            writes: Vec<Write>,
            delta_tunnels: Vec<(&'static str, Option<OwnedTunnel>)>,
            delta_fou: Vec<(FouPort, bool)>,
        }
        let wants = |names: &[&str], fou: &[FouPort]| Desired {
            tunnels: names.iter().map(|n| (n.to_string(), dev(n))).collect(),
            fou_ports: fou.iter().copied().collect(),
            ..Desired::default()
        };
        let knows = |links: &[Link], fou: &[FouPort]| Known {
            links: links.iter().map(|l| (l.name.clone(), l.clone())).collect(),
            fou: fou.iter().copied().collect(),
            ..Known::default()
        };
        let owns = |tunnels: &[(&str, bool)], fou: &[FouPort]| Ledger {
            tunnels: tunnels
                .iter()
                .map(|(n, up)| (n.to_string(), owned(*up)))
                .collect(),
            fou_ports: fou.iter().copied().collect(),
            ..Ledger::default()
        };
        let cases = [
            Case {
                name: "a missing device is brought up, recorded ahead",
                want: wants(&["tunl0"], &[]),
                known: knows(&[], &[]),
                ledger: Ledger::default(),
                writes: vec![Write::EnsureTunnel(dev("tunl0"))],
                delta_tunnels: vec![("tunl0", Some(owned(true)))],
                delta_fou: vec![],
            },
            Case {
                name: "a down device is brought up",
                want: wants(&["tunl0"], &[]),
                known: knows(&[link("tunl0", false)], &[]),
                ledger: Ledger::default(),
                writes: vec![Write::EnsureTunnel(dev("tunl0"))],
                delta_tunnels: vec![("tunl0", Some(owned(true)))],
                delta_fou: vec![],
            },
            Case {
                name: "an up device is left alone",
                want: wants(&["tunl0"], &[GUE]),
                known: knows(&[link("tunl0", true)], &[GUE]),
                ledger: Ledger::default(),
                writes: vec![],
                delta_tunnels: vec![],
                delta_fou: vec![],
            },
            Case {
                name: "a missing fou port is added, recorded ahead",
                want: wants(&[], &[GUE]),
                known: knows(&[], &[]),
                ledger: Ledger::default(),
                writes: vec![Write::AddFou(GUE)],
                delta_tunnels: vec![],
                delta_fou: vec![(GUE, true)],
            },
            Case {
                name: "unwanted: ours released (recorded after), others forgotten",
                want: wants(&[], &[]),
                known: knows(&[link("tunl0", true), link("gre0", true)], &[GUE]),
                ledger: owns(&[("tunl0", true), ("gre0", false)], &[GUE]),
                writes: vec![Write::DelFou(GUE), Write::ReleaseTunnel(dev("tunl0"))],
                delta_tunnels: vec![("gre0", None)],
                delta_fou: vec![],
            },
        ];
        for c in cases {
            let d = decide(&c.want, &c.known, &c.ledger);
            assert_eq!(d.writes, c.writes, "{}", c.name);
            let tunnels: Vec<_> = c
                .delta_tunnels
                .into_iter()
                .map(|(n, t)| (n.to_string(), t))
                .collect();
            assert_eq!(
                d.delta.tunnels.into_iter().collect::<Vec<_>>(),
                tunnels,
                "{}",
                c.name
            );
            assert_eq!(
                d.delta.fou_ports.into_iter().collect::<Vec<_>>(),
                c.delta_fou,
                "{}",
                c.name
            );
            assert!(d.errors.is_empty(), "{}", c.name);
        }
    }

    #[test]
    fn a_checksum_gre_device_is_recorded_with_its_address_and_released_with_it() {
        let local: std::net::IpAddr = "10.0.2.15".parse().unwrap();
        let csum = TunnelDevice {
            name: "lvsg124b5f50".into(),
            kind: TunnelKind::Gre,
            local: Some(local),
        };
        let want = Desired {
            tunnels: [(csum.name.clone(), csum.clone())].into(),
            ..Desired::default()
        };
        let d = decide(&want, &Known::default(), &Ledger::default());
        assert_eq!(d.writes, vec![Write::EnsureTunnel(csum.clone())]);
        let owned = d.delta.tunnels.get(&csum.name).cloned().flatten().unwrap();
        assert_eq!(owned.local, Some(local));
        assert!(owned.brought_up);

        // Unwanted again: released with its address, so the dataplane
        // deletes it rather than setting it down.
        let ledger = Ledger {
            tunnels: [(csum.name.clone(), owned)].into(),
            ..Ledger::default()
        };
        let d = decide(&Desired::default(), &Known::default(), &ledger);
        assert_eq!(d.writes, vec![Write::ReleaseTunnel(csum)]);
    }
}

//! Addresses and local routes: add what is wanted and absent (director VIPs
//! only once their IPVS service is in the kernel), and remove what the
//! ledger holds within the sync's scope and the plan no longer wants.

use crate::desired::Desired;
use crate::kernel::{AddrKey, AddrScope};
use crate::ledger::Ledger;
use crate::reconcile::Known;
use crate::reconcile::decision::{Decision, Write};
use crate::report::{ErrorKind, SyncError};

/// The address writes. Additions are recorded ahead; a director VIP the
/// ledger holds comes back in [`Write::DirectorVips`]'s `held`, for the
/// executor to drop if its IPVS service is gone. Removals are recorded
/// after they are made.
pub fn decide(want: &Desired, known: &Known, ledger: &Ledger, covers: AddrScope<'_>) -> Decision {
    let mut d = Decision::default();
    let mut adds = Vec::new();
    let mut vip_adds = Vec::new();
    let mut held = Vec::new();
    let mut fwmarks = std::collections::BTreeMap::new();
    for (key, da) in &want.addresses {
        if !da.fwmarks.is_empty() {
            fwmarks.insert(key.addr, da.fwmarks.clone());
        }
        // Present with any prefix length counts.
        let present = known.addresses.get_key_value(key).or_else(|| {
            let lo = AddrKey {
                prefix_len: 0,
                ..key.clone()
            };
            let hi = AddrKey {
                prefix_len: u8::MAX,
                ..key.clone()
            };
            known.addresses.range(lo..=hi).next()
        });
        if let Some((k, a)) = present {
            if da.needs_service && ledger.addresses.contains(k) {
                held.push((a.clone(), da.owners.clone()));
            }
            continue;
        }
        if !known.links.contains_key(&key.interface) && !want.tunnels.contains_key(&key.interface) {
            d.errors.extend(SyncError::for_owners(
                ErrorKind::Interface,
                da.owners.iter().cloned(),
                format!(
                    "VIP {}: interface {} does not exist on this node",
                    key.addr, key.interface
                ),
            ));
            continue;
        }
        d.delta.addresses.insert(key.clone(), true);
        if da.needs_service {
            vip_adds.push((da.address.clone(), da.owners.clone()));
        } else {
            adds.push((da.address.clone(), da.owners.clone()));
        }
    }
    if !adds.is_empty() {
        d.writes.push(Write::AddAddresses(adds));
    }
    if !vip_adds.is_empty() || !held.is_empty() {
        d.writes.push(Write::DirectorVips {
            add: vip_adds,
            held,
            fwmarks,
        });
    }
    for key in covers.keys_of(&known.addresses) {
        if ledger.addresses.contains(key)
            && !want.addresses.contains_key(key)
            && let Some(a) = known.addresses.get(key)
        {
            d.writes.push(Write::DelAddress(a.clone()));
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::net::IpAddr;

    use super::*;
    use crate::desired::DesiredAddress;
    use crate::kernel::{AddrKind, Address, Link, Scope};

    fn address(interface: &str, addr: &str, prefix_len: u8) -> Address {
        Address {
            interface: interface.into(),
            addr: addr.parse().unwrap(),
            prefix_len,
            label: None,
            scope: Scope::Global,
            kind: AddrKind::Interface,
        }
    }

    fn link(name: &str) -> Link {
        Link {
            name: name.into(),
            index: 2,
            kind: None,
            up: true,
        }
    }

    fn owners(o: &[&str]) -> BTreeSet<String> {
        o.iter().map(|s| s.to_string()).collect()
    }

    /// `needs_service`: a director VIP (owned by "ns/vs").
    fn wanted(addrs: &[(&Address, bool)]) -> Desired {
        Desired {
            addresses: addrs
                .iter()
                .map(|(a, director)| {
                    let da = DesiredAddress {
                        address: (*a).clone(),
                        owners: if *director {
                            owners(&["ns/vs"])
                        } else {
                            BTreeSet::new()
                        },
                        needs_service: *director,
                        fwmarks: BTreeSet::new(),
                    };
                    (a.key(), da)
                })
                .collect(),
            ..Desired::default()
        }
    }

    fn known(addrs: &[&Address], links: &[&str]) -> Known {
        Known {
            addresses: addrs.iter().map(|a| (a.key(), (*a).clone())).collect(),
            links: links.iter().map(|n| (n.to_string(), link(n))).collect(),
            ..Known::default()
        }
    }

    fn owning(addrs: &[&Address]) -> Ledger {
        Ledger {
            addresses: addrs.iter().map(|a| a.key()).collect(),
            ..Ledger::default()
        }
    }

    #[test]
    fn table() {
        let lo_vip = address("lo", "10.0.0.9", 32);
        let vip = address("eth0", "10.0.0.1", 32);
        let vip_24 = address("eth0", "10.0.0.1", 24);
        let other = address("eth0", "10.0.0.2", 32);
        let on_missing = address("bond7", "10.0.0.3", 32);
        struct Case<'a> {
            name: &'static str,
            want: Desired,
            known: Known,
            ledger: Ledger,
            covers: AddrScope<'a>,
            writes: Vec<Write>,
            delta: Vec<(AddrKey, bool)>,
            errors: Vec<ErrorKind>,
        }
        let vips: BTreeSet<IpAddr> = ["10.0.0.1".parse().unwrap()].into();
        let lo: BTreeSet<String> = ["lo".to_string()].into();
        let cases = [
            Case {
                name: "absent plain and director addresses: added, recorded ahead",
                want: wanted(&[(&lo_vip, false), (&vip, true)]),
                known: known(&[], &["lo", "eth0"]),
                ledger: Ledger::default(),
                covers: AddrScope::All,
                writes: vec![
                    Write::AddAddresses(vec![(lo_vip.clone(), BTreeSet::new())]),
                    Write::DirectorVips {
                        add: vec![(vip.clone(), owners(&["ns/vs"]))],
                        held: vec![],
                        fwmarks: Default::default(),
                    },
                ],
                delta: vec![(lo_vip.key(), true), (vip.key(), true)],
                errors: vec![],
            },
            Case {
                name: "present with another prefix: satisfied",
                want: wanted(&[(&vip, true)]),
                known: known(&[&vip_24], &["eth0"]),
                ledger: Ledger::default(),
                covers: AddrScope::All,
                writes: vec![],
                delta: vec![],
                errors: vec![],
            },
            Case {
                name: "a director VIP of ours present: held, for the executor to check",
                want: wanted(&[(&vip, true)]),
                known: known(&[&vip], &["eth0"]),
                ledger: owning(&[&vip]),
                covers: AddrScope::All,
                writes: vec![Write::DirectorVips {
                    add: vec![],
                    held: vec![(vip.clone(), owners(&["ns/vs"]))],
                    fwmarks: Default::default(),
                }],
                delta: vec![],
                errors: vec![],
            },
            Case {
                name: "present and someone else's: left alone",
                want: wanted(&[(&vip, true)]),
                known: known(&[&vip], &["eth0"]),
                ledger: Ledger::default(),
                covers: AddrScope::All,
                writes: vec![],
                delta: vec![],
                errors: vec![],
            },
            Case {
                name: "on an interface that does not exist: an error, nothing recorded",
                want: wanted(&[(&on_missing, true)]),
                known: known(&[], &["eth0"]),
                ledger: Ledger::default(),
                covers: AddrScope::All,
                writes: vec![],
                delta: vec![],
                errors: vec![ErrorKind::Interface],
            },
            Case {
                name: "unwanted: ours removed (recorded after), others kept",
                want: wanted(&[]),
                known: known(&[&vip, &other], &["eth0"]),
                ledger: owning(&[&vip]),
                covers: AddrScope::All,
                writes: vec![Write::DelAddress(vip.clone())],
                delta: vec![],
                errors: vec![],
            },
            Case {
                name: "unwanted outside the scope: left alone",
                want: wanted(&[]),
                known: known(&[&vip, &other], &["eth0"]),
                ledger: owning(&[&vip, &other]),
                covers: AddrScope::Part {
                    vips: &vips,
                    interfaces: &lo,
                },
                writes: vec![Write::DelAddress(vip.clone())],
                delta: vec![],
                errors: vec![],
            },
        ];
        for c in cases {
            let d = decide(&c.want, &c.known, &c.ledger, c.covers);
            assert_eq!(d.writes, c.writes, "{}", c.name);
            assert_eq!(
                d.delta.addresses,
                c.delta.into_iter().collect::<BTreeMap<_, _>>(),
                "{}",
                c.name
            );
            let kinds: Vec<ErrorKind> = d.errors.iter().map(|e| e.kind).collect();
            assert_eq!(kinds, c.errors, "{}", c.name);
        }
    }
}

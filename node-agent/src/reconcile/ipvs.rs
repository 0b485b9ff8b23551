//! IPVS services and destinations: add what is wanted and absent, change in
//! place what differs, remove what the ledger says the agent created and
//! the plan no longer wants. A service or destination that exists and is
//! not the agent's is reported, never taken over.

use std::collections::BTreeSet;
use std::sync::Arc;

use lvs_ipvs::{Destination, Op, Service, ServiceKey};

use crate::desired::Desired;
use crate::kernel::ServiceLabel;
use crate::ledger::{Ledger, OwnedService};
use crate::reconcile::Known;
use crate::reconcile::decision::{Decision, IpvsWrites, Write};
use crate::report::{ErrorKind, SyncError};

/// The IPVS writes of the services in `scope` (every service desired or
/// present when `None`), in one [`Write::Ipvs`]: additions and in-place
/// changes first, then removed destinations, then removed services, so a
/// service never runs empty during a replacement. A new service, or a
/// destination added to one of ours, is recorded in the ledger ahead.
pub fn decide(
    want: &Desired,
    known: &Known,
    ledger: &Ledger,
    scope: Option<&BTreeSet<ServiceKey>>,
) -> Decision {
    let mut d = Decision::default();
    if !known.ipvs_available {
        for s in want.services.values() {
            d.errors.push(SyncError::new(
                ErrorKind::IpvsUnavailable,
                Some(s.owner.clone()),
                "IPVS is not available on this node (is the ip_vs module loadable?)",
            ));
        }
        return d;
    }
    let keys: Vec<ServiceKey> = match scope {
        Some(sc) => sc.iter().copied().collect(),
        None => union(want.services.keys(), known.ipvs.keys()),
    };
    // A first sync adds every service and destination: room for all of
    // them at once, instead of a vector doubled until it holds them.
    let mut ops = IpvsWrites::with_capacity(if known.ipvs.is_empty() && scope.is_none() {
        want.services.values().map(|s| 1 + s.dests.len()).sum()
    } else {
        0
    });
    let mut dest_dels = IpvsWrites::default();
    let mut svc_dels = IpvsWrites::default();
    for key in &keys {
        let Some(ds) = want.services.get(key) else {
            if known.ipvs.contains_key(key)
                && let Some(o) = ledger.services.get(key)
            {
                svc_dels.push(Op::DelService(*key), Some(Arc::from(o.owner.as_str())));
            }
            continue;
        };
        // The owner's name, shared by the service's operations (made once
        // the first of them is decided: most services of a sync have none).
        let mut shared: Option<Arc<str>> = None;
        let mut name = || {
            Some(
                shared
                    .get_or_insert_with(|| Arc::from(ds.owner.as_str()))
                    .clone(),
            )
        };
        let Some(ks) = known.ipvs.get(key) else {
            d.delta.services.insert(
                *key,
                Some(OwnedService {
                    owner: ds.owner.clone(),
                    dests: ds.dests.keys().copied().collect(),
                }),
            );
            let service = Service {
                key: *key,
                config: ds.config.clone(),
            };
            ops.push(Op::AddService(service), name());
            for (dk, dc) in &ds.dests {
                let dest = Destination {
                    key: *dk,
                    config: *dc,
                };
                ops.push(
                    Op::AddDest {
                        service: *key,
                        dest,
                    },
                    name(),
                );
            }
            continue;
        };
        let Some(owned) = ledger.services.get(key) else {
            d.errors.push(SyncError::new(
                ErrorKind::ForeignService,
                Some(ds.owner.clone()),
                format!(
                    "IPVS service {} already exists and was not created by this agent; it is left alone",
                    ServiceLabel(key)
                ),
            ));
            continue;
        };
        // The ledger entry, copied only when it changes.
        let mut entry: Option<OwnedService> = None;
        if owned.owner != ds.owner {
            entry.get_or_insert_with(|| owned.clone()).owner = ds.owner.clone();
        }
        if ks.config != ds.config {
            let service = Service {
                key: *key,
                config: ds.config.clone(),
            };
            ops.push(Op::UpdateService(service), name());
        }
        for (dk, dc) in &ds.dests {
            let dest = Destination {
                key: *dk,
                config: *dc,
            };
            match ks.dests.get(dk) {
                None => {
                    entry.get_or_insert_with(|| owned.clone()).dests.insert(*dk);
                    ops.push(
                        Op::AddDest {
                            service: *key,
                            dest,
                        },
                        name(),
                    );
                }
                Some(_) if !owned.dests.contains(dk) => {
                    d.errors.push(SyncError::new(
                        ErrorKind::ForeignDestination,
                        Some(ds.owner.clone()),
                        format!(
                            "destination {dk} of IPVS service {} already exists and was not added by this agent; it is left alone",
                            ServiceLabel(key)
                        ),
                    ));
                }
                Some(kc) if !kc.same_as(dc) => {
                    ops.push(
                        Op::UpdateDest {
                            service: *key,
                            dest,
                        },
                        name(),
                    );
                }
                Some(_) => {}
            }
        }
        for dk in ks.dests.keys() {
            if !ds.dests.contains_key(dk) && owned.dests.contains(dk) {
                let op = Op::DelDest {
                    service: *key,
                    dest: *dk,
                };
                dest_dels.push(op, name());
            }
        }
        if let Some(e) = entry {
            d.delta.services.insert(*key, Some(e));
        }
    }
    ops.append(&mut dest_dels);
    ops.append(&mut svc_dels);
    if !ops.is_empty() {
        d.writes.push(Write::Ipvs(ops));
    }
    d
}

/// The keys of two sorted, unique key sequences, sorted and unique.
fn union<'a>(
    a: impl Iterator<Item = &'a ServiceKey>,
    b: impl Iterator<Item = &'a ServiceKey>,
) -> Vec<ServiceKey> {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    let mut out = Vec::with_capacity(a.size_hint().0.max(b.size_hint().0));
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x < y => a.next(),
            (Some(x), Some(y)) if y < x => b.next(),
            (Some(_), Some(_)) => {
                b.next();
                a.next()
            }
            (Some(_), None) => a.next(),
            (None, _) => b.next(),
        };
        match next {
            Some(k) => out.push(*k),
            None => return out,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use lvs_ipvs::{DestConfig, DestKey, Family, FwdMethod, Protocol, ServiceConfig};

    use super::*;
    use crate::desired::DesiredService;
    use crate::kernel::DestMap;
    use crate::reconcile::KnownService;

    fn svc(port: u16) -> ServiceKey {
        ServiceKey::Tuple {
            addr: "10.0.0.1".parse().unwrap(),
            protocol: Protocol::TCP,
            port,
        }
    }

    #[test]
    fn the_keys_of_a_full_sync_are_both_sides_merged_in_order_once_each() {
        let keys = |ports: &[u16]| ports.iter().map(|p| svc(*p)).collect::<Vec<_>>();
        for (a, b, want) in [
            (&[1, 3, 5][..], &[2, 3, 6][..], &[1, 2, 3, 5, 6][..]),
            (&[], &[4, 7], &[4, 7]),
            (&[4, 7], &[], &[4, 7]),
            (&[1, 2], &[1, 2], &[1, 2]),
            (&[9], &[1, 2, 3], &[1, 2, 3, 9]),
        ] {
            let (a, b) = (keys(a), keys(b));
            assert_eq!(union(a.iter(), b.iter()), keys(want), "{a:?} and {b:?}");
        }
    }

    /// Destination 10.1.0.LAST:8080 (also for the drift tests).
    pub(crate) fn dk(last: u8) -> DestKey {
        DestKey {
            addr: format!("10.1.0.{last}").parse().unwrap(),
            port: 8080,
        }
    }

    /// NAT destinations (LAST, weight) at [`dk`].
    pub(crate) fn dests(d: &[(u8, u32)]) -> DestMap {
        d.iter()
            .map(|(last, w)| (dk(*last), DestConfig::new(FwdMethod::Masq, *w)))
            .collect()
    }

    fn rr() -> ServiceConfig {
        ServiceConfig::new(Family::V4, "rr")
    }

    fn want(services: &[(ServiceKey, &str, ServiceConfig, DestMap)]) -> Desired {
        Desired {
            services: services
                .iter()
                .map(|(k, owner, config, dests)| {
                    let ds = DesiredService {
                        config: config.clone(),
                        dests: dests.clone(),
                        owner: owner.to_string(),
                        generation: None,
                    };
                    (*k, ds)
                })
                .collect(),
            ..Desired::default()
        }
    }

    fn known(services: &[(ServiceKey, ServiceConfig, DestMap)]) -> Known {
        Known {
            ipvs_available: true,
            ipvs: services
                .iter()
                .map(|(k, config, dests)| {
                    let ks = KnownService {
                        config: config.clone(),
                        dests: dests.clone(),
                    };
                    (*k, ks)
                })
                .collect(),
            ..Known::default()
        }
    }

    fn owning(services: &[(ServiceKey, &str, &[u8])]) -> Ledger {
        Ledger {
            services: services
                .iter()
                .map(|(k, owner, d)| (*k, owned(owner, d)))
                .collect(),
            ..Ledger::default()
        }
    }

    fn owned(owner: &str, d: &[u8]) -> OwnedService {
        OwnedService {
            owner: owner.into(),
            dests: d.iter().map(|l| dk(*l)).collect(),
        }
    }

    fn add_dest(s: ServiceKey, last: u8, weight: u32) -> Op {
        Op::AddDest {
            service: s,
            dest: Destination {
                key: dk(last),
                config: DestConfig::new(FwdMethod::Masq, weight),
            },
        }
    }

    #[test]
    fn table() {
        let a = svc(80);
        let b = svc(443);
        let wlc = ServiceConfig::new(Family::V4, "wlc");
        struct Case {
            name: &'static str,
            want: Desired,
            known: Known,
            ledger: Ledger,
            scope: Option<BTreeSet<ServiceKey>>,
            ops: Vec<Op>,
            delta: Vec<(ServiceKey, Option<OwnedService>)>,
            errors: Vec<ErrorKind>,
        }
        let cases = [
            Case {
                name: "a new service with its destinations, recorded ahead",
                want: want(&[(a, "ns/vs", rr(), dests(&[(1, 1), (2, 1)]))]),
                known: known(&[]),
                ledger: Ledger::default(),
                scope: None,
                ops: vec![
                    Op::AddService(Service {
                        key: a,
                        config: rr(),
                    }),
                    add_dest(a, 1, 1),
                    add_dest(a, 2, 1),
                ],
                delta: vec![(a, Some(owned("ns/vs", &[1, 2])))],
                errors: vec![],
            },
            Case {
                name: "in place: config, weight, a new and a removed destination",
                want: want(&[(a, "ns/vs", wlc.clone(), dests(&[(1, 7), (3, 1)]))]),
                known: known(&[(a, rr(), dests(&[(1, 1), (2, 1)]))]),
                ledger: owning(&[(a, "ns/vs", &[1, 2])]),
                scope: None,
                ops: vec![
                    Op::UpdateService(Service {
                        key: a,
                        config: wlc.clone(),
                    }),
                    Op::UpdateDest {
                        service: a,
                        dest: Destination {
                            key: dk(1),
                            config: DestConfig::new(FwdMethod::Masq, 7),
                        },
                    },
                    add_dest(a, 3, 1),
                    Op::DelDest {
                        service: a,
                        dest: dk(2),
                    },
                ],
                delta: vec![(a, Some(owned("ns/vs", &[1, 2, 3])))],
                errors: vec![],
            },
            Case {
                name: "unchanged: no op, no delta",
                want: want(&[(a, "ns/vs", rr(), dests(&[(1, 1)]))]),
                known: known(&[(a, rr(), dests(&[(1, 1)]))]),
                ledger: owning(&[(a, "ns/vs", &[1])]),
                scope: None,
                ops: vec![],
                delta: vec![],
                errors: vec![],
            },
            Case {
                name: "a new owner is recorded",
                want: want(&[(a, "ns/other", rr(), dests(&[(1, 1)]))]),
                known: known(&[(a, rr(), dests(&[(1, 1)]))]),
                ledger: owning(&[(a, "ns/vs", &[1])]),
                scope: None,
                ops: vec![],
                delta: vec![(a, Some(owned("ns/other", &[1])))],
                errors: vec![],
            },
            Case {
                name: "foreign service and foreign destination: reported, untouched",
                want: want(&[
                    (a, "ns/vs", wlc.clone(), dests(&[(1, 1)])),
                    (b, "ns/vs", rr(), dests(&[(1, 5)])),
                ]),
                known: known(&[(a, rr(), dests(&[])), (b, rr(), dests(&[(1, 1)]))]),
                ledger: owning(&[(b, "ns/vs", &[])]),
                scope: None,
                ops: vec![],
                delta: vec![],
                errors: vec![ErrorKind::ForeignService, ErrorKind::ForeignDestination],
            },
            Case {
                name: "unwanted: ours deleted last (recorded after), foreign kept",
                want: want(&[]),
                known: known(&[(a, rr(), dests(&[])), (b, rr(), dests(&[]))]),
                ledger: owning(&[(b, "ns/vs", &[])]),
                scope: None,
                ops: vec![Op::DelService(b)],
                delta: vec![],
                errors: vec![],
            },
            Case {
                name: "a scope limits the services looked at",
                want: want(&[]),
                known: known(&[(a, rr(), dests(&[])), (b, rr(), dests(&[]))]),
                ledger: owning(&[(a, "ns/vs", &[]), (b, "ns/vs", &[])]),
                scope: Some([a].into()),
                ops: vec![Op::DelService(a)],
                delta: vec![],
                errors: vec![],
            },
        ];
        for c in cases {
            let d = decide(&c.want, &c.known, &c.ledger, c.scope.as_ref());
            let ops: Vec<Op> = match d.writes.as_slice() {
                [] => vec![],
                [Write::Ipvs(ops)] => {
                    for (_, owner) in ops.iter() {
                        assert!(owner.is_some(), "{}", c.name);
                    }
                    ops.ops().to_vec()
                }
                other => panic!("{}: {other:?}", c.name),
            };
            assert_eq!(ops, c.ops, "{}", c.name);
            assert_eq!(
                d.delta.services,
                c.delta.into_iter().collect::<BTreeMap<_, _>>(),
                "{}",
                c.name
            );
            let kinds: Vec<ErrorKind> = d.errors.iter().map(|e| e.kind).collect();
            assert_eq!(kinds, c.errors, "{}", c.name);
        }
    }

    #[test]
    fn without_ipvs_every_wanted_service_is_an_error_and_nothing_is_written() {
        let w = want(&[(svc(80), "ns/vs", rr(), dests(&[(1, 1)]))]);
        let k = Known::default();
        let d = decide(&w, &k, &Ledger::default(), None);
        assert!(d.writes.is_empty() && d.delta.is_empty());
        assert_eq!(d.errors.len(), 1);
        assert_eq!(d.errors[0].kind, ErrorKind::IpvsUnavailable);
    }
}

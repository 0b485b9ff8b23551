//! Sysctls: write what differs from the plan, remembering the value found
//! first, and restore that value when the plan no longer wants it and
//! nobody changed it since.

use std::collections::BTreeMap;

use crate::dataplane::Outcome;
use crate::desired::Desired;
use crate::ledger::{Ledger, OwnedSysctl};
use crate::reconcile::decision::{Decision, Write};
use crate::report::{ErrorKind, SyncError};

/// Why a sysctl could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadFailure {
    pub outcome: Outcome,
    /// The dataplane's error, for the report.
    pub message: String,
}

/// The current value of a sysctl, or why it is unknown.
pub type SysctlRead = Result<String, ReadFailure>;

/// Whether a key exists only where IPVS does: the `net.ipv4.vs` sysctls
/// and the IPVS timeouts (see [`crate::dataplane::IpvsTimeout`]).
pub fn needs_ipvs(key: &str) -> bool {
    key.starts_with("net/ipv4/vs/") || crate::dataplane::IpvsTimeout::of_key(key).is_some()
}

/// The keys whose values [`decide`] needs: the wanted ones, then those the
/// ledger holds and the plan no longer wants. Without IPVS (`ipvs` false:
/// a node that never loaded ip_vs, say a realserver an LvsNodeProfile
/// selects) the keys that need it are left alone, neither read nor written.
pub fn keys_to_read<'a>(
    want: &'a Desired,
    ledger: &'a Ledger,
    ipvs: bool,
) -> impl Iterator<Item = &'a str> {
    want.sysctls
        .keys()
        .map(String::as_str)
        .chain(
            ledger
                .sysctls
                .keys()
                .filter(|k| !want.sysctls.contains_key(*k))
                .map(String::as_str),
        )
        .filter(move |k| ipvs || !needs_ipvs(k))
}

/// The ledger entry for writing `value` over `current`: the value before
/// the agent's first write is kept across later writes.
pub fn entry(value: &str, current: &str, prior: Option<&OwnedSysctl>) -> OwnedSysctl {
    OwnedSysctl {
        previous: prior.map_or_else(|| current.to_string(), |p| p.previous.clone()),
        value: value.to_string(),
    }
}

/// A per-device sysctl whose device the same sync is about to create.
fn device_pending(key: &str, want: &Desired) -> bool {
    ["net/ipv4/conf/", "net/ipv6/conf/"].iter().any(|p| {
        key.strip_prefix(p)
            .and_then(|rest| rest.split('/').next())
            .is_some_and(|dev| want.tunnels.contains_key(dev))
    })
}

/// The sysctl writes and ledger changes, from the values read (`reads`
/// holds every key of [`keys_to_read`]). Writes are recorded ahead with
/// the value to restore; an unwanted entry whose value someone else changed,
/// or whose key is gone, is forgotten.
pub fn decide(
    want: &Desired,
    reads: &BTreeMap<String, SysctlRead>,
    ledger: &Ledger,
    ipvs: bool,
) -> Decision {
    let mut d = Decision::default();
    let not_read = ReadFailure {
        outcome: Outcome::Unknown,
        message: "not read".into(),
    };
    let read = |key: &str| reads.get(key).map_or(Err(&not_read), |r| r.as_ref());
    let fail = |key: &str, f: &ReadFailure| {
        SyncError::new(
            ErrorKind::Kernel,
            None,
            format!("sysctl {key}: {}", f.message),
        )
    };
    let skip = |key: &str| !ipvs && needs_ipvs(key);
    for (key, value) in &want.sysctls {
        if skip(key) {
            continue;
        }
        match read(key) {
            Ok(cur) if cur == value => {}
            Ok(cur) => {
                let owned = entry(value, cur, ledger.sysctls.get(key));
                d.delta.sysctls.insert(key.clone(), Some(owned));
                d.writes.push(Write::WriteSysctl {
                    key: key.clone(),
                    value: value.clone(),
                });
            }
            Err(f) if f.outcome == Outcome::NotFound && device_pending(key, want) => {
                d.writes.push(Write::WriteSysctlLater {
                    key: key.clone(),
                    value: value.clone(),
                });
            }
            Err(f) => d.errors.push(fail(key, f)),
        }
    }
    for (key, owned) in &ledger.sysctls {
        if want.sysctls.contains_key(key) || skip(key) {
            continue;
        }
        match read(key) {
            Ok(cur) if *cur == owned.value => d.writes.push(Write::RestoreSysctl {
                key: key.clone(),
                previous: owned.previous.clone(),
            }),
            // Changed by someone else since: theirs now.
            Ok(_) => {
                d.delta.sysctls.insert(key.clone(), None);
            }
            Err(f) if f.outcome == Outcome::NotFound => {
                d.delta.sysctls.insert(key.clone(), None);
            }
            Err(f) => d.errors.push(fail(key, f)),
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{TunnelDevice, TunnelKind};

    const FWD: &str = "net/ipv4/ip_forward";
    const TUNL_RP: &str = "net/ipv4/conf/tunl0/rp_filter";

    fn owned(previous: &str, value: &str) -> OwnedSysctl {
        OwnedSysctl {
            previous: previous.into(),
            value: value.into(),
        }
    }

    fn missing() -> SysctlRead {
        Err(ReadFailure {
            outcome: Outcome::NotFound,
            message: "no such key".into(),
        })
    }

    #[test]
    fn table() {
        struct Case {
            name: &'static str,
            want: Vec<(&'static str, &'static str)>,
            tunnels: Vec<&'static str>,
            reads: Vec<(&'static str, SysctlRead)>,
            ledger: Vec<(&'static str, OwnedSysctl)>,
            writes: Vec<Write>,
            delta: Vec<(&'static str, Option<OwnedSysctl>)>,
            errors: usize,
        }
        let write = |key: &str, value: &str| Write::WriteSysctl {
            key: key.into(),
            value: value.into(),
        };
        let cases = [
            Case {
                name: "a different value is written, the one found recorded ahead",
                want: vec![(FWD, "1")],
                tunnels: vec![],
                reads: vec![(FWD, Ok("0".into()))],
                ledger: vec![],
                writes: vec![write(FWD, "1")],
                delta: vec![(FWD, Some(owned("0", "1")))],
                errors: 0,
            },
            Case {
                name: "a second write keeps the first previous value",
                want: vec![(FWD, "2")],
                tunnels: vec![],
                reads: vec![(FWD, Ok("1".into()))],
                ledger: vec![(FWD, owned("0", "1"))],
                writes: vec![write(FWD, "2")],
                delta: vec![(FWD, Some(owned("0", "2")))],
                errors: 0,
            },
            Case {
                name: "an equal value is left alone",
                want: vec![(FWD, "1")],
                tunnels: vec![],
                reads: vec![(FWD, Ok("1".into()))],
                ledger: vec![],
                writes: vec![],
                delta: vec![],
                errors: 0,
            },
            Case {
                name: "a key of a device this sync creates is written later",
                want: vec![(TUNL_RP, "0")],
                tunnels: vec!["tunl0"],
                reads: vec![(TUNL_RP, missing())],
                ledger: vec![],
                writes: vec![Write::WriteSysctlLater {
                    key: TUNL_RP.into(),
                    value: "0".into(),
                }],
                delta: vec![],
                errors: 0,
            },
            Case {
                name: "a missing key of no device to come is an error",
                want: vec![(TUNL_RP, "0")],
                tunnels: vec![],
                reads: vec![(TUNL_RP, missing())],
                ledger: vec![],
                writes: vec![],
                delta: vec![],
                errors: 1,
            },
            Case {
                name: "unwanted and unchanged: restored, forgotten after",
                want: vec![],
                tunnels: vec![],
                reads: vec![(FWD, Ok("1".into()))],
                ledger: vec![(FWD, owned("0", "1"))],
                writes: vec![Write::RestoreSysctl {
                    key: FWD.into(),
                    previous: "0".into(),
                }],
                delta: vec![],
                errors: 0,
            },
            Case {
                name: "unwanted and changed by someone else: forgotten",
                want: vec![],
                tunnels: vec![],
                reads: vec![(FWD, Ok("7".into()))],
                ledger: vec![(FWD, owned("0", "1"))],
                writes: vec![],
                delta: vec![(FWD, None)],
                errors: 0,
            },
            Case {
                name: "unwanted and gone: forgotten",
                want: vec![],
                tunnels: vec![],
                reads: vec![(FWD, missing())],
                ledger: vec![(FWD, owned("0", "1"))],
                writes: vec![],
                delta: vec![(FWD, None)],
                errors: 0,
            },
        ];
        for c in cases {
            let want = Desired {
                sysctls: c
                    .want
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                tunnels: c
                    .tunnels
                    .iter()
                    .map(|n| {
                        let dev = TunnelDevice {
                            name: n.to_string(),
                            kind: TunnelKind::Ipip,
                            local: None,
                        };
                        (n.to_string(), dev)
                    })
                    .collect(),
                ..Desired::default()
            };
            let ledger = Ledger {
                sysctls: c
                    .ledger
                    .into_iter()
                    .map(|(k, o)| (k.to_string(), o))
                    .collect(),
                ..Ledger::default()
            };
            let keys: Vec<&str> = keys_to_read(&want, &ledger, true).collect();
            let read_keys: Vec<&str> = c.reads.iter().map(|(k, _)| *k).collect();
            assert_eq!(keys, read_keys, "{}", c.name);
            let reads = c
                .reads
                .into_iter()
                .map(|(k, r)| (k.to_string(), r))
                .collect();
            let d = decide(&want, &reads, &ledger, true);
            assert_eq!(d.writes, c.writes, "{}", c.name);
            let delta: Vec<_> = c
                .delta
                .into_iter()
                .map(|(k, o)| (k.to_string(), o))
                .collect();
            assert_eq!(
                d.delta.sysctls.into_iter().collect::<Vec<_>>(),
                delta,
                "{}",
                c.name
            );
            assert_eq!(d.errors.len(), c.errors, "{}: {:?}", c.name, d.errors);
        }
    }

    #[test]
    fn without_ipvs_its_keys_are_left_alone() {
        let want = Desired {
            sysctls: [
                ("ipvs/timeout/udp".to_string(), "7".to_string()),
                ("net/ipv4/vs/sloppy_tcp".to_string(), "1".to_string()),
                (FWD.to_string(), "1".to_string()),
            ]
            .into(),
            ..Desired::default()
        };
        let ledger = Ledger {
            sysctls: [("net/ipv4/vs/conntrack".to_string(), owned("0", "1"))].into(),
            ..Ledger::default()
        };
        let keys: Vec<&str> = keys_to_read(&want, &ledger, false).collect();
        assert_eq!(keys, vec![FWD]);
        let reads = [(FWD.to_string(), Ok("0".to_string()))].into();
        let d = decide(&want, &reads, &ledger, false);
        assert_eq!(
            d.writes,
            vec![Write::WriteSysctl {
                key: FWD.into(),
                value: "1".into()
            }]
        );
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        assert!(!d.delta.sysctls.contains_key("net/ipv4/vs/conntrack"));
        // With IPVS every key is read.
        assert_eq!(keys_to_read(&want, &ledger, true).count(), 4);
    }
}

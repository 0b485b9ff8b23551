//! Drift: changes to the agent's own kernel objects that the agent did not
//! make (a weight edited with `ipvsadm -e`, a destination deleted with
//! `ipvsadm -d`, a VIP removed with `ip addr del`).
//!
//! A full resync reads the kernel again. What the agent believed it had
//! programmed is the cached view from before that read; the agent makes no
//! write between the two, so where the fresh read differs from the cached
//! view on an object the ledger says is the agent's, and the plan still
//! wants that object as the cached view had it, someone else changed it, and
//! the sync that follows repairs it. [`classify`] is that comparison, pure.

use std::fmt;

use lvs_ipvs::{DestConfig, FwdMethod, ServiceConfig};

use crate::desired::Desired;
use crate::kernel::ServiceLabel;
use crate::ledger::Ledger;
use crate::reconcile::Known;

/// What kind of object drifted: the `kind` label of the drift metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    /// An owned IPVS service was deleted.
    ServiceDeleted,
    /// An owned IPVS service's scheduler, flags or persistence changed.
    ServiceChanged,
    /// An owned destination was deleted.
    DestinationDeleted,
    /// An owned destination's weight, method or thresholds changed.
    DestinationChanged,
    /// An owned VIP address was removed.
    VipRemoved,
}

impl DriftKind {
    pub fn metric_label(self) -> &'static str {
        match self {
            DriftKind::ServiceDeleted => "service_deleted",
            DriftKind::ServiceChanged => "service_changed",
            DriftKind::DestinationDeleted => "destination_deleted",
            DriftKind::DestinationChanged => "destination_changed",
            DriftKind::VipRemoved => "vip_removed",
        }
    }
}

/// One drifted object of one VirtualService.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Drift {
    pub kind: DriftKind,
    /// The VirtualService (namespace/name).
    pub owner: String,
    /// What changed and what the repair restores, for people.
    pub what: String,
}

/// The drift between the cached view `prev` and the fresh read `fresh`, on
/// the objects `ledger` (as it was before the fresh read) says are the
/// agent's and `want` still wants. Sorted. Nothing when IPVS is unreadable.
pub fn classify(prev: &Known, fresh: &Known, ledger: &Ledger, want: &Desired) -> Vec<Drift> {
    let mut out = Vec::new();
    if !prev.ipvs_available || !fresh.ipvs_available {
        return out;
    }
    for (key, ds) in &want.services {
        let (Some(owned), Some(before)) = (ledger.services.get(key), prev.ipvs.get(key)) else {
            continue;
        };
        let label = ServiceLabel(key);
        let Some(now) = fresh.ipvs.get(key) else {
            out.push(Drift {
                kind: DriftKind::ServiceDeleted,
                owner: ds.owner.clone(),
                what: format!("service {label} deleted; re-created"),
            });
            continue;
        };
        if now.config != before.config && now.config != ds.config {
            out.push(Drift {
                kind: DriftKind::ServiceChanged,
                owner: ds.owner.clone(),
                what: format!(
                    "service {label}: {} restored",
                    ServiceChange(&now.config, &ds.config)
                ),
            });
        }
        for (dk, dc) in &ds.dests {
            if !owned.dests.contains(dk) {
                continue;
            }
            let Some(was) = before.dests.get(dk) else {
                continue;
            };
            match now.dests.get(dk) {
                None => out.push(Drift {
                    kind: DriftKind::DestinationDeleted,
                    owner: ds.owner.clone(),
                    what: format!("destination {dk} of {label} deleted; re-added"),
                }),
                Some(is) if !is.same_as(was) && !is.same_as(dc) => out.push(Drift {
                    kind: DriftKind::DestinationChanged,
                    owner: ds.owner.clone(),
                    what: format!(
                        "destination {dk} of {label}: {} restored",
                        DestChange(is, dc)
                    ),
                }),
                Some(_) => {}
            }
        }
    }
    for (key, da) in &want.addresses {
        if ledger.addresses.contains(key)
            && prev.addresses.contains_key(key)
            && !fresh.addresses.contains_key(key)
        {
            for owner in &da.owners {
                out.push(Drift {
                    kind: DriftKind::VipRemoved,
                    owner: owner.clone(),
                    what: format!("address {key} removed; restored"),
                });
            }
        }
    }
    out.sort();
    out
}

/// "scheduler wlc -> rr, timeout 0 -> 300": the fields that differ.
pub(crate) struct ServiceChange<'a>(pub &'a ServiceConfig, pub &'a ServiceConfig);

impl fmt::Display for ServiceChange<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (a, b) = (self.0, self.1);
        let mut parts = Vec::new();
        if a.scheduler != b.scheduler {
            parts.push(format!("scheduler {} -> {}", a.scheduler, b.scheduler));
        }
        if a.flags != b.flags {
            parts.push(format!(
                "flags {:#x} -> {:#x}",
                a.flags.bits(),
                b.flags.bits()
            ));
        }
        if a.timeout != b.timeout {
            parts.push(format!("timeout {} -> {}", a.timeout, b.timeout));
        }
        if a.netmask != b.netmask {
            parts.push(format!("netmask {:#x} -> {:#x}", a.netmask, b.netmask));
        }
        if a.pe_name != b.pe_name {
            let pe = |p: &Option<String>| p.clone().unwrap_or_else(|| "none".into());
            parts.push(format!("pe {} -> {}", pe(&a.pe_name), pe(&b.pe_name)));
        }
        f.write_str(&parts.join(", "))
    }
}

/// "weight 0 -> 1": the fields that differ.
pub(crate) struct DestChange<'a>(pub &'a DestConfig, pub &'a DestConfig);

/// The method as `ipvsadm` spells it.
pub fn method_name(m: FwdMethod) -> &'static str {
    match m {
        FwdMethod::Masq => "masq",
        FwdMethod::Local => "local",
        FwdMethod::Tunnel => "tunnel",
        FwdMethod::DirectRoute => "route",
        FwdMethod::Bypass => "bypass",
    }
}

impl fmt::Display for DestChange<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (a, b) = (self.0, self.1);
        let mut parts = Vec::new();
        if a.weight != b.weight {
            parts.push(format!("weight {} -> {}", a.weight, b.weight));
        }
        if a.fwd != b.fwd {
            parts.push(format!(
                "method {} -> {}",
                method_name(a.fwd),
                method_name(b.fwd)
            ));
        }
        if a.u_threshold != b.u_threshold {
            parts.push(format!(
                "upper threshold {} -> {}",
                a.u_threshold, b.u_threshold
            ));
        }
        if a.l_threshold != b.l_threshold {
            parts.push(format!(
                "lower threshold {} -> {}",
                a.l_threshold, b.l_threshold
            ));
        }
        if parts.is_empty() {
            parts.push("tunnel settings".into());
        }
        f.write_str(&parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use lvs_ipvs::{Family, Protocol, ServiceKey};

    use super::*;
    use crate::desired::{DesiredAddress, DesiredService};
    use crate::kernel::{Address, Scope};
    use crate::ledger::OwnedService;
    use crate::reconcile::KnownService;
    use crate::reconcile::ipvs::tests::{dests, dk};

    fn svc() -> ServiceKey {
        ServiceKey::Tuple {
            addr: "192.0.2.10".parse().unwrap(),
            protocol: Protocol::TCP,
            port: 80,
        }
    }

    fn vip() -> Address {
        Address {
            interface: "eth0".into(),
            addr: "192.0.2.10".parse().unwrap(),
            prefix_len: 32,
            label: None,
            scope: Scope::Global,
            kind: Default::default(),
        }
    }

    fn known(sched: &str, d: &[(u8, u32)], with_vip: bool) -> Known {
        let mut k = Known {
            ipvs_available: true,
            ..Known::default()
        };
        k.ipvs.insert(
            svc(),
            KnownService {
                config: ServiceConfig::new(Family::V4, sched),
                dests: dests(d),
            },
        );
        if with_vip {
            k.addresses.insert(vip().key(), vip());
        }
        k
    }

    fn want(d: &[(u8, u32)]) -> Desired {
        let mut w = Desired::default();
        w.services.insert(
            svc(),
            DesiredService {
                config: ServiceConfig::new(Family::V4, "rr"),
                dests: dests(d),
                owner: "ns/web".into(),
                generation: Some(1),
            },
        );
        w.addresses.insert(
            vip().key(),
            DesiredAddress {
                address: vip(),
                owners: ["ns/web".to_string()].into(),
                needs_service: true,
                fwmarks: Default::default(),
            },
        );
        w
    }

    fn ledger(d: &[u8], vip_owned: bool) -> Ledger {
        let mut l = Ledger::default();
        l.services.insert(
            svc(),
            OwnedService {
                owner: "ns/web".into(),
                dests: d.iter().map(|l| dk(*l)).collect(),
            },
        );
        if vip_owned {
            l.addresses.insert(vip().key());
        }
        l
    }

    fn kinds(d: &[Drift]) -> Vec<(DriftKind, &str)> {
        d.iter().map(|d| (d.kind, d.what.as_str())).collect()
    }

    #[test]
    fn nothing_changed_is_no_drift() {
        let k = known("rr", &[(1, 1), (2, 1)], true);
        let d = classify(&k, &k, &ledger(&[1, 2], true), &want(&[(1, 1), (2, 1)]));
        assert_eq!(d, vec![]);
    }

    #[test]
    fn hand_edits_on_owned_objects_are_drift() {
        let prev = known("rr", &[(1, 1), (2, 1), (3, 1)], true);
        // Weight of .1 set to 0, .2 deleted, scheduler changed, VIP removed.
        let fresh = known("wlc", &[(1, 0), (3, 1)], false);
        let d = classify(
            &prev,
            &fresh,
            &ledger(&[1, 2, 3], true),
            &want(&[(1, 1), (2, 1), (3, 1)]),
        );
        assert_eq!(
            kinds(&d),
            vec![
                (
                    DriftKind::ServiceChanged,
                    "service TCP/192.0.2.10:80: scheduler wlc -> rr restored"
                ),
                (
                    DriftKind::DestinationDeleted,
                    "destination 10.1.0.2:8080 of TCP/192.0.2.10:80 deleted; re-added"
                ),
                (
                    DriftKind::DestinationChanged,
                    "destination 10.1.0.1:8080 of TCP/192.0.2.10:80: weight 0 -> 1 restored"
                ),
                (
                    DriftKind::VipRemoved,
                    "address 192.0.2.10/32 on eth0 removed; restored"
                ),
            ]
        );
        assert!(d.iter().all(|d| d.owner == "ns/web"));
    }

    #[test]
    fn a_deleted_service_is_one_drift_not_one_per_destination() {
        let prev = known("rr", &[(1, 1), (2, 1)], true);
        let mut fresh = prev.clone();
        fresh.ipvs.clear();
        let d = classify(
            &prev,
            &fresh,
            &ledger(&[1, 2], true),
            &want(&[(1, 1), (2, 1)]),
        );
        assert_eq!(
            kinds(&d),
            vec![(
                DriftKind::ServiceDeleted,
                "service TCP/192.0.2.10:80 deleted; re-created"
            )]
        );
    }

    #[test]
    fn not_drift_foreign_unwanted_already_desired_or_unknown_before() {
        let prev = known("rr", &[(1, 1), (2, 1)], true);
        // .2 is not the agent's: its deletion is not drift.
        let fresh = known("rr", &[(1, 1)], true);
        assert_eq!(
            classify(&prev, &fresh, &ledger(&[1], true), &want(&[(1, 1), (2, 1)])),
            vec![]
        );
        // The plan no longer wants .2: its deletion repairs nothing.
        assert_eq!(
            classify(&prev, &fresh, &ledger(&[1, 2], true), &want(&[(1, 1)])),
            vec![]
        );
        // Changed by hand to exactly what the plan now wants: nothing to
        // repair.
        let fresh = known("rr", &[(1, 5), (2, 1)], true);
        assert_eq!(
            classify(
                &prev,
                &fresh,
                &ledger(&[1, 2], true),
                &want(&[(1, 5), (2, 1)])
            ),
            vec![]
        );
        // Not in the cached view (added since by the plan, not yet
        // programmed): missing is no drift.
        let prev = known("rr", &[(1, 1)], false);
        let fresh = known("rr", &[(1, 1)], false);
        assert_eq!(
            classify(&prev, &fresh, &ledger(&[1], true), &want(&[(1, 1), (2, 1)])),
            vec![]
        );
        // IPVS unreadable now: no conclusion.
        let prev = known("rr", &[(1, 1)], true);
        let fresh = Known::default();
        assert_eq!(
            classify(&prev, &fresh, &ledger(&[1], true), &want(&[(1, 1)])),
            vec![]
        );
    }

    #[test]
    fn a_removed_vip_that_is_not_owned_is_not_drift() {
        let prev = known("rr", &[(1, 1)], true);
        let fresh = known("rr", &[(1, 1)], false);
        assert_eq!(
            classify(&prev, &fresh, &ledger(&[1], false), &want(&[(1, 1)])),
            vec![]
        );
    }
}

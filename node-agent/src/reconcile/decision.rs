//! What a per-kind diff returns: the writes to make, as plain data, and the
//! ledger delta that records the intended additions ahead of them.
//!
//! A [`Write`] says what to do and never what to undo. Undoing is the
//! ledger delta's job: applying a [`LedgerDelta`] returns the delta that
//! puts every entry it touched back, and the executor takes single entries
//! out of that undo delta when the write behind them fails.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use lvs_ipvs::{DaemonState, Op, ServiceKey};

use crate::kernel::{AddrKey, Address, DaemonSpec, FouPort, TunnelDevice};
use crate::ledger::{Ledger, OwnedService, OwnedSysctl, OwnedTunnel};
use crate::report::SyncError;

/// An address to add, with the VirtualServices that need it.
pub type OwnedAddress = (Address, BTreeSet<String>);

/// IPVS operations with the VirtualService each is for. The operations are
/// one vector the dataplane takes slice by slice as they are; the owners lie
/// beside them, one shared name per service, so a first sync's hundreds of
/// thousands of operations are neither copied for the dataplane nor each
/// given a string of their own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpvsWrites {
    ops: Vec<Op>,
    owners: Vec<Option<Arc<str>>>,
}

impl IpvsWrites {
    pub fn with_capacity(n: usize) -> Self {
        IpvsWrites {
            ops: Vec::with_capacity(n),
            owners: Vec::with_capacity(n),
        }
    }

    pub fn push(&mut self, op: Op, owner: Option<Arc<str>>) {
        self.ops.push(op);
        self.owners.push(owner);
    }

    pub fn append(&mut self, other: &mut IpvsWrites) {
        self.ops.append(&mut other.ops);
        self.owners.append(&mut other.owners);
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// The owner of the `i`th operation.
    pub fn owner(&self, i: usize) -> Option<&str> {
        self.owners.get(i).and_then(|o| o.as_deref())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Op, Option<&str>)> {
        self.ops
            .iter()
            .zip(self.owners.iter().map(|o| o.as_deref()))
    }

    /// Takes out the operations `pick` selects, in their order, moving the
    /// rest together in place (no second vector of the whole).
    pub fn extract(&mut self, mut pick: impl FnMut(&Op) -> bool) -> IpvsWrites {
        let mut taken_at = Vec::new();
        let mut i = 0usize;
        let ops: Vec<Op> = self
            .ops
            .extract_if(.., |op| {
                let take = pick(op);
                if take {
                    taken_at.push(i);
                }
                i += 1;
                take
            })
            .collect();
        let mut next = taken_at.iter().copied().peekable();
        let mut j = 0usize;
        let owners: Vec<Option<Arc<str>>> = self
            .owners
            .extract_if(.., |_| {
                let take = next.next_if_eq(&j).is_some();
                j += 1;
                take
            })
            .collect();
        IpvsWrites { ops, owners }
    }

    /// Keeps the operations `keep` selects.
    pub fn retain(&mut self, mut keep: impl FnMut(&Op) -> bool) {
        drop(self.extract(|op| !keep(op)));
    }
}

impl FromIterator<(Op, Option<Arc<str>>)> for IpvsWrites {
    fn from_iter<I: IntoIterator<Item = (Op, Option<Arc<str>>)>>(iter: I) -> Self {
        let mut w = IpvsWrites::default();
        for (op, owner) in iter {
            w.push(op, owner);
        }
        w
    }
}

/// One write a sync decided on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    EnsureTunnel(TunnelDevice),
    AddFou(FouPort),
    WriteSysctl {
        key: String,
        value: String,
    },
    /// A per-device sysctl of a device this sync creates: its previous
    /// value can only be read, and recorded, once the device exists.
    WriteSysctlLater {
        key: String,
        value: String,
    },
    /// Addresses (loopback and tunnel VIPs) added in one batch.
    AddAddresses(Vec<OwnedAddress>),
    /// IPVS writes with the VirtualService each is for, sent in batches.
    Ipvs(IpvsWrites),
    /// Director VIPs, after the IPVS writes: those to add and those held.
    /// A VIP is added or kept only while an IPVS service of ours at its
    /// address is in the kernel, which only the IPVS writes' outcome says.
    DirectorVips {
        add: Vec<OwnedAddress>,
        held: Vec<OwnedAddress>,
        /// The firewall-mark services that serve a VIP besides the
        /// services at its address (see `DesiredAddress::fwmarks`).
        fwmarks: std::collections::BTreeMap<
            std::net::IpAddr,
            std::collections::BTreeSet<lvs_ipvs::ServiceKey>,
        >,
    },
    /// Start a sync daemon.
    StartDaemon(DaemonSpec),
    /// Stop an owned sync daemon and start its replacement (the kernel
    /// cannot change a running one).
    ReplaceDaemon {
        old: DaemonSpec,
        new: DaemonSpec,
    },
    /// Stop an owned sync daemon.
    StopDaemon(DaemonSpec),
    DelAddress(Address),
    RestoreSysctl {
        key: String,
        previous: String,
    },
    DelFou(FouPort),
    ReleaseTunnel(TunnelDevice),
    /// Replace the agent's nftables table with one holding these rules
    /// (with the VirtualService each is for).
    ReplaceNft(crate::reconcile::nft_table::Wanted),
    /// Delete the agent's nftables table.
    DeleteNft,
}

impl Write {
    /// The sync order: what others depend on is made first (tunnel devices
    /// before their sysctls and addresses, IPVS services before their
    /// VIPs), and removals come after every addition.
    pub fn rank(&self) -> u8 {
        match self {
            Write::EnsureTunnel(_) => 0,
            Write::AddFou(_) => 1,
            Write::WriteSysctl { .. } | Write::WriteSysctlLater { .. } => 2,
            Write::AddAddresses(_) => 3,
            Write::Ipvs(_) => 4,
            Write::DirectorVips { .. } => 5,
            Write::StartDaemon(_) | Write::ReplaceDaemon { .. } => 6,
            Write::RestoreSysctl { .. } => 7,
            Write::DelAddress(_) => 8,
            Write::DelFou(_) => 9,
            Write::ReleaseTunnel(_) => 10,
            Write::StopDaemon(_) => 11,
            // After the IPVS services it is for; the table matches on
            // conntrack only, so the order is not load-bearing.
            Write::ReplaceNft(_) => 6,
            Write::DeleteNft => 12,
        }
    }

    /// The part of a sync this write's time is logged under.
    pub fn phase(&self) -> &'static str {
        match self {
            Write::Ipvs(_) => "ipvs",
            Write::AddAddresses(_) | Write::DirectorVips { .. } | Write::DelAddress(_) => {
                "addresses"
            }
            _ => "other_writes",
        }
    }
}

/// Changes to the ledger, by entry: the new value, or `None`/`false` for
/// "no longer owned". Only entries that change are present.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerDelta {
    pub services: BTreeMap<ServiceKey, Option<OwnedService>>,
    pub addresses: BTreeMap<AddrKey, bool>,
    pub tunnels: BTreeMap<String, Option<OwnedTunnel>>,
    pub fou_ports: BTreeMap<FouPort, bool>,
    pub sysctls: BTreeMap<String, Option<OwnedSysctl>>,
    pub daemons: BTreeMap<DaemonState, Option<DaemonSpec>>,
}

fn set_entry<K: Ord, V>(map: &mut BTreeMap<K, V>, key: K, value: Option<V>) -> Option<V> {
    match value {
        Some(v) => map.insert(key, v),
        None => map.remove(&key),
    }
}

fn set_member<K: Ord>(set: &mut BTreeSet<K>, key: K, owned: bool) -> bool {
    if owned {
        !set.insert(key)
    } else {
        set.remove(&key)
    }
}

impl LedgerDelta {
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
            && self.addresses.is_empty()
            && self.tunnels.is_empty()
            && self.fou_ports.is_empty()
            && self.sysctls.is_empty()
            && self.daemons.is_empty()
    }

    /// Adds another delta's entries (the kinds' deltas never overlap).
    pub fn merge(&mut self, other: LedgerDelta) {
        self.services.extend(other.services);
        self.addresses.extend(other.addresses);
        self.tunnels.extend(other.tunnels);
        self.fou_ports.extend(other.fou_ports);
        self.sysctls.extend(other.sysctls);
        self.daemons.extend(other.daemons);
    }

    /// Makes the changes in `ledger`; returns the delta that undoes them.
    pub fn apply(self, ledger: &mut Ledger) -> LedgerDelta {
        let mut undo = LedgerDelta::default();
        for (k, v) in self.services {
            undo.services
                .insert(k, set_entry(&mut ledger.services, k, v));
        }
        for (k, owned) in self.addresses {
            let was = set_member(&mut ledger.addresses, k.clone(), owned);
            undo.addresses.insert(k, was);
        }
        for (k, v) in self.tunnels {
            let was = set_entry(&mut ledger.tunnels, k.clone(), v);
            undo.tunnels.insert(k, was);
        }
        for (k, owned) in self.fou_ports {
            undo.fou_ports
                .insert(k, set_member(&mut ledger.fou_ports, k, owned));
        }
        for (k, v) in self.sysctls {
            let was = set_entry(&mut ledger.sysctls, k.clone(), v);
            undo.sysctls.insert(k, was);
        }
        for (k, v) in self.daemons {
            undo.daemons.insert(k, set_entry(&mut ledger.daemons, k, v));
        }
        undo
    }

    /// Puts one service's entry back (when this delta is an undo delta).
    pub fn revert_service(&mut self, key: &ServiceKey, ledger: &mut Ledger) {
        if let Some(v) = self.services.remove(key) {
            set_entry(&mut ledger.services, *key, v);
        }
    }

    pub fn revert_address(&mut self, key: &AddrKey, ledger: &mut Ledger) {
        if let Some((k, owned)) = self.addresses.remove_entry(key) {
            set_member(&mut ledger.addresses, k, owned);
        }
    }

    pub fn revert_tunnel(&mut self, name: &str, ledger: &mut Ledger) {
        if let Some((k, v)) = self.tunnels.remove_entry(name) {
            set_entry(&mut ledger.tunnels, k, v);
        }
    }

    pub fn revert_fou(&mut self, port: &FouPort, ledger: &mut Ledger) {
        if let Some(owned) = self.fou_ports.remove(port) {
            set_member(&mut ledger.fou_ports, *port, owned);
        }
    }

    pub fn revert_daemon(&mut self, state: DaemonState, ledger: &mut Ledger) {
        if let Some(v) = self.daemons.remove(&state) {
            set_entry(&mut ledger.daemons, state, v);
        }
    }

    pub fn revert_sysctl(&mut self, key: &str, ledger: &mut Ledger) {
        if let Some((k, v)) = self.sysctls.remove_entry(key) {
            set_entry(&mut ledger.sysctls, k, v);
        }
    }
}

/// What one kind's diff decided: the writes, the ledger delta to record
/// before them, and the problems to report.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decision {
    pub writes: Vec<Write>,
    pub delta: LedgerDelta,
    pub errors: Vec<SyncError>,
}

impl Decision {
    /// Adds another kind's decision after this one's.
    pub fn merge(&mut self, other: Decision) {
        self.writes.extend(other.writes);
        self.delta.merge(other.delta);
        self.errors.extend(other.errors);
    }

    /// The writes in sync order (see [`Write::rank`]); a stable sort, so
    /// each kind's own order is kept.
    pub fn into_ordered(mut self) -> Self {
        self.writes.sort_by_key(Write::rank);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::TunnelKind;

    #[test]
    fn ipvs_writes_keep_each_owner_beside_its_operation_when_taken_apart() {
        use lvs_ipvs::{
            DestConfig, DestKey, Destination, Family, FwdMethod, Service, ServiceConfig,
        };
        let key = |port: u16| ServiceKey::Tuple {
            addr: "192.0.2.10".parse().unwrap(),
            protocol: lvs_ipvs::Protocol::TCP,
            port,
        };
        let add = |port| {
            Op::AddService(Service {
                key: key(port),
                config: ServiceConfig::new(Family::V4, "rr"),
            })
        };
        let dest = |port, last: u8| Op::AddDest {
            service: key(port),
            dest: Destination {
                key: DestKey {
                    addr: std::net::IpAddr::from([10, 0, 0, last]),
                    port: 80,
                },
                config: DestConfig::new(FwdMethod::Masq, 1),
            },
        };
        let name = |n: &str| Some(Arc::<str>::from(n));
        let mut w: IpvsWrites = [
            (add(1), name("ns/a")),
            (dest(1, 1), name("ns/a")),
            (dest(1, 2), name("ns/a")),
            (add(2), name("ns/b")),
            (dest(2, 1), name("ns/b")),
            (Op::DelService(key(3)), None),
            (add(4), name("ns/c")),
        ]
        .into_iter()
        .collect();
        let creates = w.extract(|op| matches!(op, Op::AddService(..)));
        let pairs = |w: &IpvsWrites| -> Vec<(u16, Option<String>)> {
            w.iter()
                .map(|(op, o)| match op.service() {
                    ServiceKey::Tuple { port, .. } => (*port, o.map(str::to_string)),
                    ServiceKey::Fwmark { .. } => unreachable!(),
                })
                .collect()
        };
        let s = |n: &str| Some(n.to_string());
        assert_eq!(
            pairs(&creates),
            [(1, s("ns/a")), (2, s("ns/b")), (4, s("ns/c"))]
        );
        assert!(
            creates
                .ops()
                .iter()
                .all(|op| matches!(op, Op::AddService(..)))
        );
        assert_eq!(
            pairs(&w),
            [(1, s("ns/a")), (1, s("ns/a")), (2, s("ns/b")), (3, None)]
        );
        w.retain(|op| *op.service() != key(1));
        assert_eq!(pairs(&w), [(2, s("ns/b")), (3, None)]);
        assert_eq!(
            (w.len(), w.owner(0), w.owner(1), w.owner(2)),
            (2, Some("ns/b"), None, None)
        );
    }

    #[test]
    fn applying_a_delta_returns_the_delta_that_undoes_it() {
        let mut ledger = Ledger::default();
        ledger.sysctls.insert(
            "net/ipv4/ip_forward".into(),
            OwnedSysctl {
                previous: "0".into(),
                value: "1".into(),
            },
        );
        let before = ledger.clone();
        let mut delta = LedgerDelta::default();
        delta.sysctls.insert("net/ipv4/ip_forward".into(), None);
        delta.tunnels.insert(
            "tunl0".into(),
            Some(OwnedTunnel {
                kind: TunnelKind::Ipip,
                brought_up: true,
                local: None,
            }),
        );
        delta.fou_ports.insert(
            FouPort {
                port: 5555,
                ipv6: false,
            },
            true,
        );
        let undo = delta.apply(&mut ledger);
        assert!(ledger.sysctls.is_empty());
        assert!(ledger.tunnels.contains_key("tunl0"));
        assert_eq!(ledger.fou_ports.len(), 1);
        let mut partial = undo.clone();
        partial.revert_tunnel("tunl0", &mut ledger);
        assert!(ledger.tunnels.is_empty());
        assert!(!partial.tunnels.contains_key("tunl0"));
        undo.apply(&mut ledger);
        assert_eq!(ledger, before);
    }
}

//! An in-memory kernel for unit tests, and for running the agent where
//! there is no IPVS (`--dataplane fake`: a test aid for control-plane labs).
//!
//! It answers like the kernel does where the reconciler depends on it
//! (EEXIST on a repeated add, ESRCH/ENOENT on a missing service or
//! destination, ENODEV for a missing interface), records every call so
//! tests can count requests, holds foreign rules put there by the test, and
//! fails chosen calls on demand.
//!
//! Longer than most files: one method per `Dataplane` call, each answering
//! errors the way the kernel does; they read best next to one another.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::{Dataplane, DataplaneError, DpResult, errno};
use lvs_ipvs::{
    DaemonState, DestConfig, DestEntry, DestKey, DestStats, Destination, Op, Service,
    ServiceConfig, ServiceEntry, ServiceKey, Stats, SyncDaemon,
};

use crate::kernel::{
    AddrKind, Address, DaemonSpec, FouPort, Link, OpText, TunnelDevice, TunnelKind,
};

/// One call the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    IpvsDump,
    IpvsDests(ServiceKey),
    Ipvs(Op),
    Addresses,
    AddAddress(Address),
    DelAddress(Address),
    Links,
    EnsureTunnel(TunnelDevice),
    ReleaseTunnel(TunnelDevice),
    FouPorts,
    AddFou(FouPort),
    DelFou(FouPort),
    Daemons,
    AddDaemon(DaemonSpec),
    DelDaemon(DaemonState),
    ReadSysctl(String),
    WriteSysctl(String, String),
    NftTable,
    /// The rule comments of the new table.
    ReplaceNft(Vec<String>),
    DeleteNft,
}

impl Call {
    /// Whether the call changes kernel state.
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Call::Ipvs(_)
                | Call::AddAddress(_)
                | Call::DelAddress(_)
                | Call::EnsureTunnel(_)
                | Call::ReleaseTunnel(_)
                | Call::AddFou(_)
                | Call::DelFou(_)
                | Call::AddDaemon(_)
                | Call::DelDaemon(_)
                | Call::WriteSysctl(..)
                | Call::ReplaceNft(_)
                | Call::DeleteNft
        )
    }

    /// Whether the call reads a whole table.
    pub fn is_dump(&self) -> bool {
        matches!(
            self,
            Call::IpvsDump
                | Call::IpvsDests(_)
                | Call::Addresses
                | Call::Links
                | Call::FouPorts
                | Call::Daemons
                | Call::NftTable
        )
    }
}

type Predicate = Box<dyn Fn(&Call) -> bool + Send>;

struct Injection {
    predicate: Predicate,
    fault: Fault,
    remaining: Option<usize>,
}

/// How an injected failure shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// The kernel refuses with this errno; nothing changes.
    Refuse(i32),
    /// The call is carried out but its answer is lost (a transport error
    /// such as ENOBUFS on the socket): the caller cannot know the outcome.
    /// In an IPVS batch, the ops after it are not carried out.
    LoseAnswer,
}

/// A service in the fake table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeService {
    pub config: ServiceConfig,
    pub dests: BTreeMap<DestKey, DestConfig>,
}

/// The fake kernel.
pub struct FakeDataplane {
    pub ipvs: BTreeMap<ServiceKey, FakeService>,
    pub links: BTreeMap<String, Link>,
    pub addresses: BTreeSet<Address>,
    pub fou: BTreeSet<FouPort>,
    pub sysctls: BTreeMap<String, String>,
    /// Running sync daemons, by role.
    pub daemons: BTreeMap<DaemonState, SyncDaemon>,
    /// Tunnel kinds whose module "loads".
    pub tunnel_kinds: BTreeSet<TunnelKind>,
    /// nftables tables ("inet lvs-operator", or others a test puts there)
    /// with the comments of their rules, sorted.
    pub nft_tables: BTreeMap<String, Vec<String>>,
    /// Whether nf_tables "loads"; without it every nftables call fails
    /// (EPROTONOSUPPORT, as a socket of the missing protocol does).
    pub nft_available: bool,
    pub ipvs_available: bool,
    pub calls: Vec<Call>,
    /// Whether calls are kept in `calls`; off for a long-running agent,
    /// whose call list would otherwise grow without bound.
    pub record_calls: bool,
    injections: Vec<Injection>,
    /// A lost answer injected into the call in progress.
    lost: Option<String>,
    next_index: u32,
    /// Announcements sent (interface, address), in order.
    pub announced: Vec<(String, std::net::IpAddr)>,
    /// The lifetime last given to each address renewed (seconds).
    pub lifetimes: BTreeMap<Address, u32>,
    /// Connection counts (active, inactive) of destinations, as dumps
    /// report them; none: no connections. Removing the destination
    /// forgets them.
    pub conns: BTreeMap<(ServiceKey, DestKey), (u32, u32)>,
}

impl fmt::Debug for FakeDataplane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeDataplane")
            .field("ipvs", &self.ipvs)
            .field("links", &self.links)
            .field("addresses", &self.addresses)
            .field("fou", &self.fou)
            .field("sysctls", &self.sysctls)
            .field("daemons", &self.daemons)
            .field("nft_tables", &self.nft_tables)
            .field("calls", &self.calls.len())
            .field("injections", &self.injections.len())
            .finish()
    }
}

/// Schedulers the fake knows; others fail like a missing module (ENOENT).
const SCHEDULERS: &[&str] = &[
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh", "fo", "ovf",
];

impl Default for FakeDataplane {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeDataplane {
    /// A node with `lo` and `eth0` (192.0.2.10/24) up, and nothing else.
    pub fn new() -> Self {
        let mut f = FakeDataplane {
            ipvs: BTreeMap::new(),
            links: BTreeMap::new(),
            addresses: BTreeSet::new(),
            fou: BTreeSet::new(),
            sysctls: BTreeMap::new(),
            daemons: BTreeMap::new(),
            tunnel_kinds: [
                TunnelKind::Ipip,
                TunnelKind::Ip6tnl,
                TunnelKind::Gre,
                TunnelKind::Ip6gre,
            ]
            .into_iter()
            .collect(),
            nft_tables: BTreeMap::new(),
            nft_available: true,
            ipvs_available: true,
            calls: Vec::new(),
            record_calls: true,
            injections: Vec::new(),
            lost: None,
            next_index: 1,
            announced: Vec::new(),
            lifetimes: BTreeMap::new(),
            conns: BTreeMap::new(),
        };
        f.add_link("lo", None, true);
        f.add_link("eth0", None, true);
        f.addresses.insert(Address {
            interface: "lo".into(),
            addr: "127.0.0.1".parse().expect("literal"),
            prefix_len: 8,
            label: None,
            scope: crate::kernel::Scope::Host,
            kind: AddrKind::Interface,
        });
        f.addresses.insert(Address {
            interface: "eth0".into(),
            addr: "192.0.2.10".parse().expect("literal"),
            prefix_len: 24,
            label: None,
            scope: crate::kernel::Scope::Global,
            kind: AddrKind::Interface,
        });
        f
    }

    /// A node whose `eth0` holds `ips` (/24 for IPv4, /64 for IPv6) instead
    /// of 192.0.2.10, so a director VIP finds the interface of the node's
    /// InternalIP. Calls are not recorded.
    pub fn for_node(ips: &[std::net::IpAddr]) -> Self {
        let mut f = Self::new();
        f.record_calls = false;
        if !ips.is_empty() {
            f.addresses.retain(|a| a.interface != "eth0");
            for ip in ips {
                f.addresses.insert(Address {
                    interface: "eth0".into(),
                    addr: *ip,
                    prefix_len: if ip.is_ipv4() { 24 } else { 64 },
                    label: None,
                    scope: crate::kernel::Scope::Global,
                    kind: AddrKind::Interface,
                });
            }
        }
        f
    }

    /// The addresses and local routes with the same (interface, address,
    /// prefix), whatever their label, scope and kind.
    fn same_key<'s>(&'s self, addr: &Address) -> impl Iterator<Item = &'s Address> + 's {
        let from = Address {
            label: None,
            scope: crate::kernel::Scope::Global,
            kind: AddrKind::Interface,
            ..addr.clone()
        };
        let key = addr.key();
        self.addresses
            .range(from..)
            .take_while(move |a| a.key() == key)
    }

    pub fn add_link(&mut self, name: &str, kind: Option<&str>, up: bool) {
        let index = self.next_index;
        self.next_index += 1;
        self.links.insert(
            name.to_string(),
            Link {
                name: name.to_string(),
                index,
                kind: kind.map(str::to_string),
                up,
            },
        );
    }

    /// Make every later call matching `predicate` fail with `errno`.
    pub fn fail_when(&mut self, predicate: impl Fn(&Call) -> bool + Send + 'static, errno: i32) {
        self.injections.push(Injection {
            predicate: Box::new(predicate),
            fault: Fault::Refuse(errno),
            remaining: None,
        });
    }

    /// Make the next call matching `predicate` fail with `errno`.
    pub fn fail_once(&mut self, predicate: impl Fn(&Call) -> bool + Send + 'static, errno: i32) {
        self.injections.push(Injection {
            predicate: Box::new(predicate),
            fault: Fault::Refuse(errno),
            remaining: Some(1),
        });
    }

    /// Carry out the next call matching `predicate` but lose its answer: it
    /// fails as a transport error. An IPVS batch stops after that op.
    pub fn lose_answer_once(&mut self, predicate: impl Fn(&Call) -> bool + Send + 'static) {
        self.injections.push(Injection {
            predicate: Box::new(predicate),
            fault: Fault::LoseAnswer,
            remaining: Some(1),
        });
    }

    pub fn clear_failures(&mut self) {
        self.injections.clear();
    }

    /// Calls recorded so far, then forgets them.
    pub fn take_calls(&mut self) -> Vec<Call> {
        std::mem::take(&mut self.calls)
    }

    /// Writes among the recorded calls.
    pub fn writes(&self) -> Vec<&Call> {
        self.calls.iter().filter(|c| c.is_write()).collect()
    }

    fn record(&mut self, call: Call) -> DpResult<()> {
        let mut failed = None;
        for inj in &mut self.injections {
            if inj.remaining != Some(0) && (inj.predicate)(&call) {
                if let Some(n) = &mut inj.remaining {
                    *n -= 1;
                }
                failed = Some(inj.fault);
                break;
            }
        }
        let request = format!("{call:?}");
        if self.record_calls {
            self.calls.push(call);
        }
        match failed {
            Some(Fault::Refuse(errno)) => Err(kernel(request, errno)),
            Some(Fault::LoseAnswer) => {
                self.lost = Some(request);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// The answer to a call, unless it was lost.
    fn answer<T>(&mut self, result: DpResult<T>) -> DpResult<T> {
        match self.lost.take() {
            Some(request) => Err(DataplaneError::Io {
                request,
                source: std::io::Error::from_raw_os_error(ENOBUFS),
            }),
            None => result,
        }
    }

    fn apply_one(&mut self, op: &Op) -> DpResult<()> {
        self.record(Call::Ipvs(op.clone()))?;
        let request = OpText(op).to_string();
        match op {
            Op::AddService(Service { key: k, config: c }) => {
                if self.ipvs.contains_key(k) {
                    return Err(kernel(request, errno::EEXIST));
                }
                if !SCHEDULERS.contains(&c.scheduler.as_str()) {
                    return Err(kernel(request, errno::ENOENT));
                }
                self.ipvs.insert(
                    *k,
                    FakeService {
                        config: c.clone(),
                        dests: BTreeMap::new(),
                    },
                );
            }
            Op::UpdateService(Service { key: k, config: c }) => {
                if !SCHEDULERS.contains(&c.scheduler.as_str()) {
                    return Err(kernel(request, errno::ENOENT));
                }
                let s = self
                    .ipvs
                    .get_mut(k)
                    .ok_or_else(|| kernel(request, errno::ESRCH))?;
                s.config = c.clone();
            }
            Op::DelService(k) => {
                self.ipvs
                    .remove(k)
                    .ok_or_else(|| kernel(request, errno::ESRCH))?;
                self.conns.retain(|(s, _), _| s != k);
            }
            Op::AddDest {
                service: k,
                dest: Destination { key: d, config: c },
            } => {
                let s = self
                    .ipvs
                    .get_mut(k)
                    .ok_or_else(|| kernel(request.clone(), errno::ESRCH))?;
                if s.dests.contains_key(d) {
                    return Err(kernel(request, errno::EEXIST));
                }
                s.dests.insert(*d, *c);
            }
            Op::UpdateDest {
                service: k,
                dest: Destination { key: d, config: c },
            } => {
                let s = self
                    .ipvs
                    .get_mut(k)
                    .ok_or_else(|| kernel(request.clone(), errno::ESRCH))?;
                let slot = s
                    .dests
                    .get_mut(d)
                    .ok_or_else(|| kernel(request, errno::ENOENT))?;
                *slot = *c;
            }
            Op::DelDest {
                service: k,
                dest: d,
            } => {
                let s = self
                    .ipvs
                    .get_mut(k)
                    .ok_or_else(|| kernel(request.clone(), errno::ESRCH))?;
                s.dests
                    .remove(d)
                    .ok_or_else(|| kernel(request, errno::ENOENT))?;
                self.conns.remove(&(*k, *d));
            }
        }
        Ok(())
    }

    fn sysctl_exists(&self, key: &str) -> bool {
        if self.sysctls.contains_key(key) || super::IpvsTimeout::of_key(key).is_some() {
            return true;
        }
        // Per-device keys exist while the device does.
        for conf in ["net/ipv4/conf/", "net/ipv6/conf/"] {
            if let Some(rest) = key.strip_prefix(conf) {
                let dev = rest.split('/').next().unwrap_or_default();
                return dev == "all" || dev == "default" || self.links.contains_key(dev);
            }
        }
        key.starts_with("net/")
    }
}

fn kernel(request: String, errno: i32) -> DataplaneError {
    DataplaneError::Kernel {
        request,
        errno,
        detail: None,
    }
}

impl FakeDataplane {
    fn ipvs_dump_now(&mut self) -> DpResult<Vec<ServiceEntry>> {
        self.record(Call::IpvsDump)?;
        if !self.ipvs_available {
            return Err(DataplaneError::IpvsUnavailable {
                request: "dump IPVS".into(),
                detail: "family not found".into(),
            });
        }
        Ok(self
            .ipvs
            .iter()
            .map(|(k, s)| ServiceEntry {
                service: Service {
                    key: *k,
                    config: s.config.clone(),
                },
                stats: Stats::default(),
                destinations: self.dest_entries(k),
            })
            .collect())
    }

    /// The destinations of a service with their connection counts.
    fn dest_entries(&self, service: &ServiceKey) -> Vec<DestEntry> {
        let Some(s) = self.ipvs.get(service) else {
            return Vec::new();
        };
        s.dests
            .iter()
            .map(|(dk, dc)| {
                let (active, inactive) = self
                    .conns
                    .get(&(*service, *dk))
                    .copied()
                    .unwrap_or_default();
                DestEntry {
                    destination: Destination {
                        key: *dk,
                        config: *dc,
                    },
                    stats: DestStats {
                        active_conns: active,
                        inactive_conns: inactive,
                        ..DestStats::default()
                    },
                }
            })
            .collect()
    }

    fn ipvs_dests_now(&mut self, service: &ServiceKey) -> DpResult<Vec<DestEntry>> {
        self.record(Call::IpvsDests(*service))?;
        if !self.ipvs.contains_key(service) {
            return Err(kernel(
                format!("read the destinations of {service}"),
                errno::ESRCH,
            ));
        }
        Ok(self.dest_entries(service))
    }

    fn ipvs_apply_now(&mut self, ops: &[Op]) -> DpResult<Vec<DpResult<()>>> {
        if !self.ipvs_available {
            return Err(DataplaneError::IpvsUnavailable {
                request: "apply IPVS ops".into(),
                detail: "family not found".into(),
            });
        }
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            let r = self.apply_one(op);
            if self.lost.is_some() {
                // The socket lost an answer: the batch's outcome is unknown.
                return self.answer(Ok(Vec::new()));
            }
            results.push(r);
        }
        Ok(results)
    }

    fn addresses_now(&mut self) -> DpResult<Vec<Address>> {
        self.record(Call::Addresses)?;
        Ok(self.addresses.iter().cloned().collect())
    }

    fn add_address_now(&mut self, addr: &Address) -> DpResult<()> {
        self.record(Call::AddAddress(addr.clone()))?;
        let request = format!("add address {}", addr.key());
        if !self.links.contains_key(&addr.interface) {
            return Err(kernel(request, errno::ENODEV));
        }
        if addr.kind == AddrKind::LocalRoute && addr.addr.is_ipv6() {
            return Err(kernel(request, errno::EINVAL));
        }
        // The kernel refuses a second address, and a local route where the
        // address's own local route is: either way, EEXIST.
        if self.same_key(addr).next().is_some() {
            return Err(kernel(request, errno::EEXIST));
        }
        let mut a = addr.clone();
        if a.addr.is_ipv6() || a.kind == AddrKind::LocalRoute {
            a.label = None;
        }
        self.addresses.insert(a);
        Ok(())
    }

    fn del_address_now(&mut self, addr: &Address) -> DpResult<()> {
        self.record(Call::DelAddress(addr.clone()))?;
        // A delete names the kind: a route delete leaves an address alone.
        let found = self.same_key(addr).find(|a| a.kind == addr.kind).cloned();
        if let Some(a) = &found {
            self.addresses.remove(a);
        }
        if found.is_none() {
            return Err(kernel(
                format!("delete address {}", addr.key()),
                errno::EADDRNOTAVAIL,
            ));
        }
        Ok(())
    }

    fn links_now(&mut self) -> DpResult<Vec<Link>> {
        self.record(Call::Links)?;
        Ok(self.links.values().cloned().collect())
    }

    fn ensure_tunnel_now(&mut self, dev: &TunnelDevice) -> DpResult<()> {
        self.record(Call::EnsureTunnel(dev.clone()))?;
        if !self.links.contains_key(&dev.name) {
            if !self.tunnel_kinds.contains(&dev.kind) {
                return Err(kernel(
                    format!("create {} link {}", dev.kind.link_kind(), dev.name),
                    errno::EOPNOTSUPP,
                ));
            }
            self.add_link(&dev.name, Some(dev.kind.link_kind()), false);
        }
        if let Some(l) = self.links.get_mut(&dev.name) {
            l.up = true;
        }
        Ok(())
    }

    fn release_tunnel_now(&mut self, dev: &TunnelDevice) -> DpResult<()> {
        self.record(Call::ReleaseTunnel(dev.clone()))?;
        if dev.local.is_some() {
            return self.links.remove(&dev.name).map(|_| ()).ok_or_else(|| {
                kernel(
                    format!("delete {} device {}", dev.kind.link_kind(), dev.name),
                    errno::ENODEV,
                )
            });
        }
        let l = self
            .links
            .get_mut(&dev.name)
            .ok_or_else(|| kernel(format!("set {} down", dev.name), errno::ENODEV))?;
        l.up = false;
        Ok(())
    }

    fn fou_ports_now(&mut self) -> DpResult<Vec<FouPort>> {
        self.record(Call::FouPorts)?;
        Ok(self.fou.iter().copied().collect())
    }

    fn add_fou_port_now(&mut self, port: &FouPort) -> DpResult<()> {
        self.record(Call::AddFou(*port))?;
        if !self.fou.insert(*port) {
            return Err(kernel(format!("add {port}"), errno::EEXIST));
        }
        Ok(())
    }

    fn del_fou_port_now(&mut self, port: &FouPort) -> DpResult<()> {
        self.record(Call::DelFou(*port))?;
        if !self.fou.remove(port) {
            return Err(kernel(format!("delete {port}"), errno::ESRCH));
        }
        Ok(())
    }

    fn daemons_now(&mut self) -> DpResult<Vec<SyncDaemon>> {
        self.record(Call::Daemons)?;
        if !self.ipvs_available {
            return Err(DataplaneError::IpvsUnavailable {
                request: "dump IPVS sync daemons".into(),
                detail: "family not found".into(),
            });
        }
        Ok(self.daemons.values().cloned().collect())
    }

    /// Like the kernel: one daemon per role, on an existing interface.
    fn add_daemon_now(&mut self, d: &DaemonSpec) -> DpResult<()> {
        self.record(Call::AddDaemon(d.clone()))?;
        if !self.links.contains_key(&d.interface) {
            return Err(kernel(format!("start {d}"), errno::ENODEV));
        }
        if self.daemons.contains_key(&d.state) {
            return Err(kernel(format!("start {d}"), errno::EEXIST));
        }
        self.daemons.insert(d.state, d.to_daemon());
        Ok(())
    }

    fn del_daemon_now(&mut self, state: DaemonState) -> DpResult<()> {
        self.record(Call::DelDaemon(state))?;
        match self.daemons.remove(&state) {
            Some(_) => Ok(()),
            None => Err(kernel(
                format!("stop the {} sync daemon", crate::kernel::daemon_role(state)),
                errno::ESRCH,
            )),
        }
    }

    fn read_sysctl_now(&mut self, key: &str) -> DpResult<String> {
        self.record(Call::ReadSysctl(key.to_string()))?;
        if !self.sysctl_exists(key) {
            return Err(kernel(format!("read sysctl {key}"), errno::ENOENT));
        }
        // The kernel's timeouts until set.
        let default = match super::IpvsTimeout::of_key(key) {
            Some(super::IpvsTimeout::Tcp) => "900",
            Some(super::IpvsTimeout::TcpFin) => "120",
            Some(super::IpvsTimeout::Udp) => "300",
            None => "0",
        };
        Ok(self
            .sysctls
            .get(key)
            .cloned()
            .unwrap_or_else(|| default.to_string()))
    }

    fn write_sysctl_now(&mut self, key: &str, value: &str) -> DpResult<()> {
        self.record(Call::WriteSysctl(key.to_string(), value.to_string()))?;
        if !self.sysctl_exists(key) {
            return Err(kernel(format!("write sysctl {key}"), errno::ENOENT));
        }
        if value.trim().is_empty() {
            return Err(kernel(format!("write sysctl {key}"), errno::EINVAL));
        }
        if super::IpvsTimeout::of_key(key).is_some() {
            super::IpvsTimeout::parse(key, value)?;
        }
        self.sysctls.insert(key.to_string(), value.to_string());
        Ok(())
    }
}

impl FakeDataplane {
    /// The key under which the agent's table sits in `nft_tables`.
    pub fn nft_table_name() -> String {
        format!("inet {}", super::nft::TABLE)
    }

    fn nft_call(&mut self, call: Call) -> DpResult<()> {
        let what = format!("{call:?}");
        self.record(call)?;
        if !self.nft_available {
            return Err(kernel(what, EPROTONOSUPPORT));
        }
        Ok(())
    }

    fn nft_table_now(&mut self) -> DpResult<Option<Vec<String>>> {
        self.nft_call(Call::NftTable)?;
        Ok(self.nft_tables.get(&Self::nft_table_name()).cloned())
    }

    fn replace_nft_now(&mut self, rules: &super::nft::Rules) -> DpResult<()> {
        let comments = rules.comments();
        self.nft_call(Call::ReplaceNft(comments.clone()))?;
        self.nft_tables.insert(Self::nft_table_name(), comments);
        Ok(())
    }

    fn delete_nft_now(&mut self) -> DpResult<()> {
        self.nft_call(Call::DeleteNft)?;
        self.nft_tables.remove(&Self::nft_table_name());
        Ok(())
    }
}

/// What a socket of a protocol the kernel lacks answers.
const EPROTONOSUPPORT: i32 = 93;

/// ENOBUFS: what a netlink socket answers when its receive buffer overran.
const ENOBUFS: i32 = 105;

impl Dataplane for FakeDataplane {
    fn ipvs_dump(&mut self) -> DpResult<Vec<ServiceEntry>> {
        let r = self.ipvs_dump_now();
        self.answer(r)
    }

    fn ipvs_dests(&mut self, service: &ServiceKey) -> DpResult<Vec<DestEntry>> {
        let r = self.ipvs_dests_now(service);
        self.answer(r)
    }

    fn ipvs_apply(&mut self, ops: &[Op]) -> DpResult<Vec<DpResult<()>>> {
        self.ipvs_apply_now(ops)
    }

    fn addresses(&mut self) -> DpResult<Vec<Address>> {
        let r = self.addresses_now();
        self.answer(r)
    }

    fn add_address(&mut self, addr: &Address) -> DpResult<()> {
        let r = self.add_address_now(addr);
        self.answer(r)
    }

    fn del_address(&mut self, addr: &Address) -> DpResult<()> {
        let r = self.del_address_now(addr);
        self.answer(r)
    }

    fn links(&mut self) -> DpResult<Vec<Link>> {
        let r = self.links_now();
        self.answer(r)
    }

    fn ensure_tunnel(&mut self, dev: &TunnelDevice) -> DpResult<()> {
        let r = self.ensure_tunnel_now(dev);
        self.answer(r)
    }

    fn release_tunnel(&mut self, dev: &TunnelDevice) -> DpResult<()> {
        let r = self.release_tunnel_now(dev);
        self.answer(r)
    }

    fn fou_ports(&mut self) -> DpResult<Vec<FouPort>> {
        let r = self.fou_ports_now();
        self.answer(r)
    }

    fn add_fou_port(&mut self, port: &FouPort) -> DpResult<()> {
        let r = self.add_fou_port_now(port);
        self.answer(r)
    }

    fn del_fou_port(&mut self, port: &FouPort) -> DpResult<()> {
        let r = self.del_fou_port_now(port);
        self.answer(r)
    }

    fn daemons(&mut self) -> DpResult<Vec<SyncDaemon>> {
        let r = self.daemons_now();
        self.answer(r)
    }

    fn add_daemon(&mut self, daemon: &DaemonSpec) -> DpResult<()> {
        let r = self.add_daemon_now(daemon);
        self.answer(r)
    }

    fn del_daemon(&mut self, state: DaemonState) -> DpResult<()> {
        let r = self.del_daemon_now(state);
        self.answer(r)
    }

    fn read_sysctl(&mut self, key: &str) -> DpResult<String> {
        let r = self.read_sysctl_now(key);
        self.answer(r)
    }

    fn write_sysctl(&mut self, key: &str, value: &str) -> DpResult<()> {
        let r = self.write_sysctl_now(key, value);
        self.answer(r)
    }

    fn nft_table(&mut self) -> DpResult<Option<Vec<String>>> {
        let r = self.nft_table_now();
        self.answer(r)
    }

    fn replace_nft(&mut self, rules: &super::nft::Rules) -> DpResult<()> {
        let r = self.replace_nft_now(rules);
        self.answer(r)
    }

    fn delete_nft(&mut self) -> DpResult<()> {
        let r = self.delete_nft_now();
        self.answer(r)
    }

    fn announce(&mut self, interface: &str, addr: std::net::IpAddr) {
        self.announced.push((interface.to_string(), addr));
    }

    fn renew_address(&mut self, addr: &Address, lifetime_s: u32) -> DpResult<()> {
        if !self.links.contains_key(&addr.interface) {
            return Err(kernel(
                format!("renew address {}", addr.key()),
                errno::ENODEV,
            ));
        }
        self.addresses.insert(addr.clone());
        self.lifetimes.insert(addr.clone(), lifetime_s);
        Ok(())
    }
}

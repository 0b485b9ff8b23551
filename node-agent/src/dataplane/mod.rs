//! The kernel behind a narrow trait.
//!
//! The reconciler sees only [`Dataplane`]. [`fake::FakeDataplane`] is an
//! in-memory kernel for unit tests; `netlink::NetlinkDataplane` is the real
//! one (IPVS over generic netlink, addresses and links over rtnetlink,
//! sysctls through /proc/sys of the agent's network namespace, source NAT
//! through nf_tables over netlink).

use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lvs_ipvs::{DaemonState, DestEntry, Op, ServiceEntry, ServiceKey, SyncDaemon};

use crate::kernel::{Address, DaemonSpec, FouPort, Link, TunnelDevice};

pub mod fake;
#[cfg(target_os = "linux")]
mod fou;
#[cfg(target_os = "linux")]
pub mod netlink;
pub mod nft;
mod nla;

/// `errno` values the reconciler branches on.
pub mod errno {
    pub const EPERM: i32 = 1;
    pub const ENOENT: i32 = 2;
    pub const ESRCH: i32 = 3;
    pub const EEXIST: i32 = 17;
    pub const ENODEV: i32 = 19;
    pub const EINVAL: i32 = 22;
    pub const EOPNOTSUPP: i32 = 95;
    pub const EADDRNOTAVAIL: i32 = 99;
}

/// A request the kernel (or the fake) did not carry out.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    /// The kernel answered with an error.
    #[error("{request}: kernel refused: {} (errno {errno}){}", io::Error::from_raw_os_error(*errno), detail_suffix(detail))]
    Kernel {
        request: String,
        errno: i32,
        detail: Option<String>,
    },
    /// The request could not be sent or its answer not read.
    #[error("{request}: {source}")]
    Io {
        request: String,
        #[source]
        source: io::Error,
    },
    /// The IPVS family is not there (module missing, not loadable).
    #[error("{request}: IPVS is not available in this kernel: {detail}")]
    IpvsUnavailable { request: String, detail: String },
    /// Something the request needs does not exist.
    #[error("{request}: {what} does not exist")]
    Missing { request: String, what: String },
    /// Anything else the lower layer reported.
    #[error("{request}: {detail}")]
    Other { request: String, detail: String },
}

fn detail_suffix(d: &Option<String>) -> String {
    d.as_deref().map(|d| format!(": {d}")).unwrap_or_default()
}

impl DataplaneError {
    /// Metric label.
    pub fn metric_label(&self) -> &'static str {
        match self {
            DataplaneError::Kernel { .. } => "kernel",
            DataplaneError::Io { .. } => "io",
            DataplaneError::IpvsUnavailable { .. } => "ipvs_unavailable",
            DataplaneError::Missing { .. } => "missing",
            DataplaneError::Other { .. } => "other",
        }
    }

    pub fn errno(&self) -> Option<i32> {
        match self {
            DataplaneError::Kernel { errno, .. } => Some(*errno),
            DataplaneError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// What the failure means for the object the request meant to change.
    pub fn outcome(&self) -> Outcome {
        match self {
            DataplaneError::Kernel { errno: e, .. } => match *e {
                errno::EEXIST => Outcome::AlreadyExists,
                errno::ENOENT | errno::ESRCH | errno::ENODEV | errno::EADDRNOTAVAIL => {
                    Outcome::NotFound
                }
                _ => Outcome::Refused,
            },
            DataplaneError::Missing { .. } => Outcome::NotFound,
            DataplaneError::IpvsUnavailable { .. } => Outcome::Refused,
            DataplaneError::Io { .. } | DataplaneError::Other { .. } => Outcome::Unknown,
        }
    }
}

/// What a failed write means for the object it meant to change: the
/// reconciler branches on this, never on errno numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The object is there already (EEXIST): for an addition, someone
    /// else's.
    AlreadyExists,
    /// The object, or what it belongs to, is not there (ENOENT, ESRCH,
    /// ENODEV, EADDRNOTAVAIL).
    NotFound,
    /// The kernel refused the request: nothing changed.
    Refused,
    /// The answer was lost (a transport error): the write may or may not
    /// have happened.
    Unknown,
}

impl Outcome {
    pub fn of(e: &DataplaneError) -> Self {
        e.outcome()
    }
}

pub type DpResult<T> = Result<T, DataplaneError>;

/// One of the IPVS global timeouts. They are read and written through
/// [`Dataplane::read_sysctl`] and [`Dataplane::write_sysctl`] under the
/// keys `ipvs/timeout/tcp`, `ipvs/timeout/tcp_fin` and `ipvs/timeout/udp`
/// (netlink GET_CONFIG/SET_CONFIG, not /proc/sys), so they share the
/// sysctls' ledger: the value found before the first write is put back once
/// no LvsNodeProfile asks for one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpvsTimeout {
    Tcp,
    TcpFin,
    Udp,
}

impl IpvsTimeout {
    /// The timeout a key names, if it names one.
    pub fn of_key(key: &str) -> Option<Self> {
        match key {
            lvs_api::nodeprofile::TIMEOUT_TCP_KEY => Some(IpvsTimeout::Tcp),
            lvs_api::nodeprofile::TIMEOUT_TCP_FIN_KEY => Some(IpvsTimeout::TcpFin),
            lvs_api::nodeprofile::TIMEOUT_UDP_KEY => Some(IpvsTimeout::Udp),
            _ => None,
        }
    }

    pub fn get(self, t: &lvs_ipvs::Timeouts) -> u32 {
        match self {
            IpvsTimeout::Tcp => t.tcp,
            IpvsTimeout::TcpFin => t.tcp_fin,
            IpvsTimeout::Udp => t.udp,
        }
    }

    /// A SET_CONFIG that changes only this timeout (the kernel keeps the
    /// fields left at 0).
    pub fn set(self, seconds: u32) -> lvs_ipvs::Timeouts {
        let mut t = lvs_ipvs::Timeouts::default();
        match self {
            IpvsTimeout::Tcp => t.tcp = seconds,
            IpvsTimeout::TcpFin => t.tcp_fin = seconds,
            IpvsTimeout::Udp => t.udp = seconds,
        }
        t
    }

    /// The seconds a written value names: 1 or more (0 would mean "keep").
    pub fn parse(key: &str, value: &str) -> DpResult<u32> {
        match value.trim().parse::<u32>() {
            Ok(v) if v > 0 => Ok(v),
            _ => Err(DataplaneError::Kernel {
                request: format!("set {key}={value}"),
                errno: errno::EINVAL,
                detail: Some("expected a number of seconds of at least 1".into()),
            }),
        }
    }
}

/// Everything the agent does to the kernel. Reads return the whole picture
/// (for the periodic resync); writes are single, idempotence is the
/// caller's business.
pub trait Dataplane {
    /// Every IPVS service with its destinations and counters.
    fn ipvs_dump(&mut self) -> DpResult<Vec<ServiceEntry>>;

    /// Every IPVS service with its counters, without destinations (one
    /// dump on a real kernel).
    fn ipvs_services(&mut self) -> DpResult<Vec<ServiceEntry>> {
        let mut all = self.ipvs_dump()?;
        for e in &mut all {
            e.destinations = Vec::new();
        }
        Ok(all)
    }

    /// The destinations of one service with their connection counts (one
    /// GET_DEST dump): what a running drain polls, without reading the
    /// whole table.
    fn ipvs_dests(&mut self, service: &ServiceKey) -> DpResult<Vec<DestEntry>>;

    /// Apply IPVS writes in order. The outer error means the batch's outcome
    /// is unknown; otherwise there is one result per op.
    fn ipvs_apply(&mut self, ops: &[Op]) -> DpResult<Vec<DpResult<()>>>;

    /// Every address on every interface.
    fn addresses(&mut self) -> DpResult<Vec<Address>>;
    fn add_address(&mut self, addr: &Address) -> DpResult<()>;
    fn del_address(&mut self, addr: &Address) -> DpResult<()>;
    /// Adds several addresses: one result per address, in order. A
    /// director with thousands of VIPs adds them in one go; the netlink
    /// dataplane looks each interface up once and keeps many requests in
    /// flight instead of waiting for each answer in turn.
    fn add_addresses(&mut self, addrs: &[Address]) -> Vec<DpResult<()>> {
        addrs.iter().map(|a| self.add_address(a)).collect()
    }

    /// Every interface.
    fn links(&mut self) -> DpResult<Vec<Link>>;
    /// Make the tunnel device exist (loading its module if needed) and be up.
    fn ensure_tunnel(&mut self, dev: &TunnelDevice) -> DpResult<()>;
    /// Set a tunnel device down (fallback devices cannot be deleted).
    fn release_tunnel(&mut self, dev: &TunnelDevice) -> DpResult<()>;

    /// fou receive ports (GUE).
    fn fou_ports(&mut self) -> DpResult<Vec<FouPort>>;
    fn add_fou_port(&mut self, port: &FouPort) -> DpResult<()>;
    fn del_fou_port(&mut self, port: &FouPort) -> DpResult<()>;

    /// The running IPVS connection sync daemons (at most one master and
    /// one backup).
    fn daemons(&mut self) -> DpResult<Vec<SyncDaemon>>;
    /// Starts a sync daemon; EEXIST when one of that role runs already.
    fn add_daemon(&mut self, daemon: &DaemonSpec) -> DpResult<()>;
    /// Stops the sync daemon of that role; ESRCH when none runs.
    fn del_daemon(&mut self, state: DaemonState) -> DpResult<()>;

    /// A sysctl of the agent's network namespace: `net/ipv4/ip_forward`.
    fn read_sysctl(&mut self, key: &str) -> DpResult<String>;
    fn write_sysctl(&mut self, key: &str, value: &str) -> DpResult<()>;

    /// The agent's nftables table (`inet lvs-operator`, see [`nft`]): the
    /// comments of its rules as [`nft::Rules::comments`] spells them
    /// (sorted; "" for a rule without one), or `None` when the table does
    /// not exist.
    fn nft_table(&mut self) -> DpResult<Option<Vec<String>>>;
    /// Replaces the table, atomically, with one holding these rules (at
    /// least one).
    fn replace_nft(&mut self, rules: &nft::Rules) -> DpResult<()>;
    /// Deletes the table; no error when it is absent.
    fn delete_nft(&mut self) -> DpResult<()>;

    /// Tells the segment that `addr` is now on `interface`: gratuitous ARP
    /// (IPv4) or unsolicited neighbour advertisement (IPv6), repeated a few
    /// times in the background; a failure is logged, never waited for.
    fn announce(&mut self, interface: &str, addr: IpAddr);

    /// Re-applies an address (`ip addr replace`) with a finite lifetime
    /// (valid_lft = preferred_lft = `lifetime_s`), so the kernel removes it
    /// by itself unless it is renewed in time.
    fn renew_address(&mut self, addr: &Address, lifetime_s: u32) -> DpResult<()>;

    /// Starts renewing the addresses of `held` every `every` from a thread
    /// of its own, so that a long sync cannot hold up a renewal and let an
    /// active's VIP expire. `false`: this dataplane has no such thread, and
    /// the sync loop renews (the in-memory kernel of the tests).
    fn spawn_renewer(&self, _held: Renewals, _every: Duration) -> bool {
        false
    }
}

/// The addresses to keep renewing, and for how long each renewal holds.
/// Whoever removes one of them from the kernel takes it out of here first,
/// under the lock, so a renewal (`ip addr replace`, which also creates) can
/// never bring it back.
#[derive(Debug, Default)]
pub struct RenewSet {
    pub addrs: Vec<Address>,
    pub lifetime_s: u32,
}

pub type Renewals = Arc<Mutex<RenewSet>>;

/// Locks the set, even if a thread panicked while holding it (the set is
/// only ever replaced or filtered, so it stays consistent).
pub fn lock_renewals(r: &Renewals) -> std::sync::MutexGuard<'_, RenewSet> {
    r.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

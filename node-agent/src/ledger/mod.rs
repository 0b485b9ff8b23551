//! What the agent created, so it never touches anything else.
//!
//! IPVS has no owner tag, so ownership lives in a JSON file under the state
//! directory, written atomically (temporary file, fsync, rename, fsync of
//! the directory). The rules are in this crate's README.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use lvs_ipvs::{DaemonState, DestKey, ServiceKey};

use crate::kernel::{AddrKey, AddrScope, DaemonSpec, FouPort, TunnelKind};

mod journal;
mod store;

pub use journal::*;
pub use store::*;

/// Layout version of the file.
pub const LEDGER_VERSION: u32 = 1;
/// File name under the state directory.
pub const LEDGER_FILE: &str = "ledger.json";

/// An IPVS service the agent created, and the destinations it added to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnedService {
    /// The VirtualService (namespace/name) it was created for.
    pub owner: String,
    pub dests: BTreeSet<DestKey>,
}

/// A tunnel device the agent uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedTunnel {
    pub kind: TunnelKind,
    /// The device was down and the agent set it up: set it down on release.
    pub brought_up: bool,
    /// A device the agent created (GRE with a checksum, at this local
    /// address): deleted on release.
    pub local: Option<std::net::IpAddr>,
}

/// A sysctl the agent changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedSysctl {
    /// The value before the agent's first write, restored on release.
    pub previous: String,
    /// The value the agent wrote.
    pub value: String,
}

/// Everything the agent owns on this node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    pub services: BTreeMap<ServiceKey, OwnedService>,
    pub addresses: BTreeSet<AddrKey>,
    pub tunnels: BTreeMap<String, OwnedTunnel>,
    pub fou_ports: BTreeSet<FouPort>,
    pub sysctls: BTreeMap<String, OwnedSysctl>,
    /// IPVS connection sync daemons the agent started, by role.
    pub daemons: BTreeMap<DaemonState, DaemonSpec>,
}

impl Ledger {
    pub fn owns_service(&self, key: &ServiceKey) -> bool {
        self.services.contains_key(key)
    }

    pub fn owns_dest(&self, svc: &ServiceKey, dest: &DestKey) -> bool {
        self.services
            .get(svc)
            .is_some_and(|s| s.dests.contains(dest))
    }

    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
            && self.addresses.is_empty()
            && self.tunnels.is_empty()
            && self.fou_ports.is_empty()
            && self.sysctls.is_empty()
            && self.daemons.is_empty()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileService {
    key: ServiceKey,
    owner: String,
    #[serde(default)]
    destinations: Vec<DestKey>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileTunnel {
    name: String,
    kind: TunnelKind,
    brought_up: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    local: Option<std::net::IpAddr>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileSysctl {
    key: String,
    previous: String,
    value: String,
}

#[derive(Serialize, Deserialize, Clone, Copy)]
#[serde(rename_all = "camelCase")]
enum FileDaemonState {
    Master,
    Backup,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileDaemon {
    state: FileDaemonState,
    interface: String,
    sync_id: u32,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LedgerFile {
    version: u32,
    /// The last journal entry this file already contains.
    #[serde(default, skip_serializing_if = "is_zero")]
    journal_seq: u64,
    #[serde(default)]
    services: Vec<FileService>,
    #[serde(default)]
    addresses: Vec<AddrKey>,
    #[serde(default)]
    tunnels: Vec<FileTunnel>,
    #[serde(default)]
    fou_ports: Vec<FouPort>,
    #[serde(default)]
    sysctls: Vec<FileSysctl>,
    /// Absent from files written before the agent ran sync daemons, and
    /// left out while empty so that such files are written back unchanged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    daemons: Vec<FileDaemon>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn file_service(k: &ServiceKey, s: &OwnedService) -> FileService {
    FileService {
        key: *k,
        owner: s.owner.clone(),
        destinations: s.dests.iter().copied().collect(),
    }
}

fn file_tunnels(t: &BTreeMap<String, OwnedTunnel>) -> Vec<FileTunnel> {
    t.iter()
        .map(|(n, t)| FileTunnel {
            name: n.clone(),
            kind: t.kind,
            brought_up: t.brought_up,
            local: t.local,
        })
        .collect()
}

fn file_sysctls(s: &BTreeMap<String, OwnedSysctl>) -> Vec<FileSysctl> {
    s.iter()
        .map(|(k, s)| FileSysctl {
            key: k.clone(),
            previous: s.previous.clone(),
            value: s.value.clone(),
        })
        .collect()
}

fn file_daemons(d: &BTreeMap<DaemonState, DaemonSpec>) -> Vec<FileDaemon> {
    d.values()
        .map(|d| FileDaemon {
            state: match d.state {
                DaemonState::Master => FileDaemonState::Master,
                DaemonState::Backup => FileDaemonState::Backup,
            },
            interface: d.interface.clone(),
            sync_id: d.sync_id,
        })
        .collect()
}

fn owned_daemons(d: Vec<FileDaemon>) -> BTreeMap<DaemonState, DaemonSpec> {
    d.into_iter()
        .map(|d| {
            let state = match d.state {
                FileDaemonState::Master => DaemonState::Master,
                FileDaemonState::Backup => DaemonState::Backup,
            };
            (
                state,
                DaemonSpec {
                    state,
                    interface: d.interface,
                    sync_id: d.sync_id,
                },
            )
        })
        .collect()
}

fn owned_tunnels(t: Vec<FileTunnel>) -> BTreeMap<String, OwnedTunnel> {
    t.into_iter()
        .map(|t| {
            (
                t.name,
                OwnedTunnel {
                    kind: t.kind,
                    brought_up: t.brought_up,
                    local: t.local,
                },
            )
        })
        .collect()
}

fn owned_sysctls(s: Vec<FileSysctl>) -> BTreeMap<String, OwnedSysctl> {
    s.into_iter()
        .map(|s| {
            (
                s.key,
                OwnedSysctl {
                    previous: s.previous,
                    value: s.value,
                },
            )
        })
        .collect()
}

impl From<&Ledger> for LedgerFile {
    fn from(l: &Ledger) -> Self {
        LedgerFile {
            version: LEDGER_VERSION,
            journal_seq: 0,
            services: l.services.iter().map(|(k, s)| file_service(k, s)).collect(),
            addresses: l.addresses.iter().cloned().collect(),
            tunnels: file_tunnels(&l.tunnels),
            fou_ports: l.fou_ports.iter().copied().collect(),
            sysctls: file_sysctls(&l.sysctls),
            daemons: file_daemons(&l.daemons),
        }
    }
}

impl From<LedgerFile> for Ledger {
    fn from(f: LedgerFile) -> Self {
        Ledger {
            services: f
                .services
                .into_iter()
                .map(|s| {
                    (
                        s.key,
                        OwnedService {
                            owner: s.owner,
                            dests: s.destinations.into_iter().collect(),
                        },
                    )
                })
                .collect(),
            addresses: f.addresses.into_iter().collect(),
            tunnels: owned_tunnels(f.tunnels),
            fou_ports: f.fou_ports.into_iter().collect(),
            sysctls: owned_sysctls(f.sysctls),
            daemons: owned_daemons(f.daemons),
        }
    }
}

/// Why the ledger could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger {path}: cannot {action}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("ledger {path}: not a valid ledger: {source}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("ledger {path}: version {found} is not supported (expected {LEDGER_VERSION})")]
    Version { path: PathBuf, found: u32 },
    #[error(
        "state directory {dir} is in use by another node-agent ({holder}; lock file {lock}): only one agent may use a state directory; stop that agent or use another --state-dir"
    )]
    Locked {
        dir: PathBuf,
        lock: PathBuf,
        /// What the holder wrote into the lock file: pid, start time, command.
        holder: String,
    },
}

impl LedgerError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            LedgerError::Io { .. } => "ledger_io",
            LedgerError::Corrupt { .. } => "ledger_corrupt",
            LedgerError::Version { .. } => "ledger_version",
            LedgerError::Locked { .. } => "ledger_locked",
        }
    }
}

/// The part of a ledger that a scoped sync may change: the services it
/// looked at, the addresses its scope covers, and the (few) tunnels, fou
/// ports and sysctls. Taken before and after the sync, the two parts say
/// what to append to the journal, and the first undoes the sync's intended
/// additions when the journal cannot be written. Sync daemons are few and
/// reconciled by every sync, like sysctls, so the part holds them whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerPart {
    pub services: BTreeMap<ServiceKey, Option<OwnedService>>,
    /// The owned addresses among those the scope covers.
    pub addresses: BTreeSet<AddrKey>,
    pub tunnels: BTreeMap<String, OwnedTunnel>,
    pub fou_ports: BTreeSet<FouPort>,
    pub sysctls: BTreeMap<String, OwnedSysctl>,
    pub daemons: BTreeMap<DaemonState, DaemonSpec>,
}

impl Ledger {
    /// The part for these services and the addresses in `addrs`.
    pub fn part<'a>(
        &self,
        services: impl IntoIterator<Item = &'a ServiceKey>,
        addrs: AddrScope<'_>,
    ) -> LedgerPart {
        LedgerPart {
            services: services
                .into_iter()
                .map(|k| (*k, self.services.get(k).cloned()))
                .collect(),
            addresses: addrs
                .keys_in(&self.addresses)
                .into_iter()
                .cloned()
                .collect(),
            tunnels: self.tunnels.clone(),
            fou_ports: self.fou_ports.clone(),
            sysctls: self.sysctls.clone(),
            daemons: self.daemons.clone(),
        }
    }

    /// Puts a part back (the addresses in `addrs` are replaced).
    pub fn restore(&mut self, part: LedgerPart, addrs: AddrScope<'_>) {
        for (k, s) in part.services {
            match s {
                Some(s) => self.services.insert(k, s),
                None => self.services.remove(&k),
            };
        }
        let covered: Vec<AddrKey> = addrs
            .keys_in(&self.addresses)
            .into_iter()
            .cloned()
            .collect();
        for a in &covered {
            self.addresses.remove(a);
        }
        self.addresses.extend(part.addresses);
        self.tunnels = part.tunnels;
        self.fou_ports = part.fou_ports;
        self.sysctls = part.sysctls;
        self.daemons = part.daemons;
    }
}

#[cfg(test)]
mod tests;

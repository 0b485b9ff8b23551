//! What the agent created, so it never touches anything else.
//!
//! IPVS has no owner tag, so ownership lives in a JSON file under the state
//! directory, written atomically (temporary file, fsync, rename, fsync of
//! the directory). The rules are in this crate's README.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::{AddrKey, DestKey, FouPort, SvcKey, TunnelKind};

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
    pub services: BTreeMap<SvcKey, OwnedService>,
    pub addresses: BTreeSet<AddrKey>,
    pub tunnels: BTreeMap<String, OwnedTunnel>,
    pub fou_ports: BTreeSet<FouPort>,
    pub sysctls: BTreeMap<String, OwnedSysctl>,
}

impl Ledger {
    pub fn owns_service(&self, key: &SvcKey) -> bool {
        self.services.contains_key(key)
    }

    pub fn owns_dest(&self, svc: &SvcKey, dest: &DestKey) -> bool {
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
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileService {
    key: SvcKey,
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
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileSysctl {
    key: String,
    previous: String,
    value: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LedgerFile {
    version: u32,
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
}

impl From<&Ledger> for LedgerFile {
    fn from(l: &Ledger) -> Self {
        LedgerFile {
            version: LEDGER_VERSION,
            services: l
                .services
                .iter()
                .map(|(k, s)| FileService {
                    key: *k,
                    owner: s.owner.clone(),
                    destinations: s.dests.iter().copied().collect(),
                })
                .collect(),
            addresses: l.addresses.iter().cloned().collect(),
            tunnels: l
                .tunnels
                .iter()
                .map(|(n, t)| FileTunnel {
                    name: n.clone(),
                    kind: t.kind,
                    brought_up: t.brought_up,
                })
                .collect(),
            fou_ports: l.fou_ports.iter().copied().collect(),
            sysctls: l
                .sysctls
                .iter()
                .map(|(k, s)| FileSysctl {
                    key: k.clone(),
                    previous: s.previous.clone(),
                    value: s.value.clone(),
                })
                .collect(),
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
            tunnels: f
                .tunnels
                .into_iter()
                .map(|t| {
                    (
                        t.name,
                        OwnedTunnel {
                            kind: t.kind,
                            brought_up: t.brought_up,
                        },
                    )
                })
                .collect(),
            fou_ports: f.fou_ports.into_iter().collect(),
            sysctls: f
                .sysctls
                .into_iter()
                .map(|s| {
                    (
                        s.key,
                        OwnedSysctl {
                            previous: s.previous,
                            value: s.value,
                        },
                    )
                })
                .collect(),
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
        source: serde_json::Error,
    },
    #[error("ledger {path}: version {found} is not supported (expected {LEDGER_VERSION})")]
    Version { path: PathBuf, found: u32 },
}

impl LedgerError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            LedgerError::Io { .. } => "ledger_io",
            LedgerError::Corrupt { .. } => "ledger_corrupt",
            LedgerError::Version { .. } => "ledger_version",
        }
    }
}

/// Where the ledger lives. `None` keeps it in memory only (tests, `--once`
/// without a state directory is not offered).
#[derive(Debug, Clone)]
pub struct LedgerStore {
    path: Option<PathBuf>,
    /// What the file holds, to skip writes that change nothing.
    saved: Option<Ledger>,
}

impl LedgerStore {
    /// A ledger file in `state_dir` (created if missing).
    pub fn in_dir(state_dir: &Path) -> Result<Self, LedgerError> {
        fs::create_dir_all(state_dir).map_err(|source| LedgerError::Io {
            path: state_dir.to_path_buf(),
            action: "create the state directory",
            source,
        })?;
        Ok(LedgerStore {
            path: Some(state_dir.join(LEDGER_FILE)),
            saved: None,
        })
    }

    /// A ledger that is never written (tests).
    pub fn in_memory() -> Self {
        LedgerStore {
            path: None,
            saved: None,
        }
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Reads the ledger; a missing file is an empty ledger.
    pub fn load(&mut self) -> Result<Ledger, LedgerError> {
        let Some(path) = &self.path else {
            return Ok(self.saved.clone().unwrap_or_default());
        };
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.saved = Some(Ledger::default());
                return Ok(Ledger::default());
            }
            Err(source) => {
                return Err(LedgerError::Io {
                    path: path.clone(),
                    action: "read",
                    source,
                });
            }
        };
        let file: LedgerFile =
            serde_json::from_str(&text).map_err(|source| LedgerError::Corrupt {
                path: path.clone(),
                source,
            })?;
        if file.version != LEDGER_VERSION {
            return Err(LedgerError::Version {
                path: path.clone(),
                found: file.version,
            });
        }
        let ledger = Ledger::from(file);
        self.saved = Some(ledger.clone());
        Ok(ledger)
    }

    /// Moves an unreadable ledger aside so the agent can start with an
    /// empty one (it then owns nothing and deletes nothing).
    pub fn quarantine(&mut self) -> Result<Option<PathBuf>, LedgerError> {
        let Some(path) = &self.path else {
            return Ok(None);
        };
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let aside = path.with_extension(format!("json.corrupt-{secs}"));
        fs::rename(path, &aside).map_err(|source| LedgerError::Io {
            path: path.clone(),
            action: "move aside",
            source,
        })?;
        self.saved = None;
        Ok(Some(aside))
    }

    /// Writes the ledger if it differs from what was last written. Returns
    /// whether a write happened.
    pub fn save(&mut self, ledger: &Ledger) -> Result<bool, LedgerError> {
        if self.saved.as_ref() == Some(ledger) {
            return Ok(false);
        }
        if let Some(path) = &self.path {
            let json = serde_json::to_vec_pretty(&LedgerFile::from(ledger))
                .expect("ledger serialization cannot fail");
            write_atomically(path, &json)?;
        }
        self.saved = Some(ledger.clone());
        Ok(true)
    }
}

/// tmp + fsync + rename + fsync(dir): after a crash the file holds either
/// the old or the new content, never a mix.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), LedgerError> {
    let io_err = |action: &'static str| {
        let path = path.to_path_buf();
        move |source| LedgerError::Io {
            path,
            action,
            source,
        }
    };
    let tmp = path.with_extension("json.tmp");
    {
        let mut f = fs::File::create(&tmp).map_err(io_err("create the temporary file"))?;
        f.write_all(bytes)
            .map_err(io_err("write the temporary file"))?;
        f.sync_all().map_err(io_err("sync the temporary file"))?;
    }
    fs::rename(&tmp, path).map_err(io_err("rename the temporary file"))?;
    if let Some(dir) = path.parent() {
        // Persist the rename itself. Opening a directory read-only and
        // syncing it is what Linux offers; failure is not fatal to content.
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::IPPROTO_TCP;

    pub(crate) fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "lvs-agent-test-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn sample() -> Ledger {
        let mut l = Ledger::default();
        let key = SvcKey::Tuple {
            addr: "10.0.0.1".parse().unwrap(),
            protocol: IPPROTO_TCP,
            port: 80,
        };
        l.services.insert(
            key,
            OwnedService {
                owner: "default/web".into(),
                dests: [DestKey {
                    addr: "10.1.0.5".parse().unwrap(),
                    port: 8080,
                }]
                .into_iter()
                .collect(),
            },
        );
        l.services.insert(
            SvcKey::Fwmark {
                mark: 7,
                ipv6: true,
            },
            OwnedService {
                owner: "default/fw".into(),
                dests: BTreeSet::new(),
            },
        );
        l.addresses.insert(AddrKey {
            interface: "lo".into(),
            addr: "fd00::1".parse().unwrap(),
            prefix_len: 128,
        });
        l.tunnels.insert(
            "tunl0".into(),
            OwnedTunnel {
                kind: TunnelKind::Ipip,
                brought_up: true,
            },
        );
        l.fou_ports.insert(FouPort {
            port: 5555,
            ipv6: false,
        });
        l.sysctls.insert(
            "net/ipv4/ip_forward".into(),
            OwnedSysctl {
                previous: "0".into(),
                value: "1".into(),
            },
        );
        l
    }

    #[test]
    fn round_trip_through_the_file() {
        let dir = temp_dir("ledger-rt");
        let mut store = LedgerStore::in_dir(&dir).unwrap();
        assert_eq!(store.load().unwrap(), Ledger::default());
        let l = sample();
        assert!(store.save(&l).unwrap());
        // Unchanged: no second write.
        assert!(!store.save(&l).unwrap());
        let mut again = LedgerStore::in_dir(&dir).unwrap();
        assert_eq!(again.load().unwrap(), l);
        let text = fs::read_to_string(dir.join(LEDGER_FILE)).unwrap();
        assert!(text.contains("\"owner\": \"default/web\""), "{text}");
        assert!(text.contains("\"version\": 1"), "{text}");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn write_is_atomic_and_leaves_no_temporary_file() {
        let dir = temp_dir("ledger-atomic");
        let path = dir.join(LEDGER_FILE);
        write_atomically(&path, b"{\"version\":1}").unwrap();
        // A stale temporary file from a crash mid-write must not be read and
        // is replaced by the next write.
        fs::write(path.with_extension("json.tmp"), b"garbage").unwrap();
        let mut store = LedgerStore::in_dir(&dir).unwrap();
        assert_eq!(store.load().unwrap(), Ledger::default());
        store.save(&sample()).unwrap();
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec![LEDGER_FILE.to_string()]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn corrupt_and_future_ledgers_are_refused_and_can_be_moved_aside() {
        let dir = temp_dir("ledger-corrupt");
        let path = dir.join(LEDGER_FILE);
        fs::write(&path, b"{not json").unwrap();
        let mut store = LedgerStore::in_dir(&dir).unwrap();
        let err = store.load().unwrap_err();
        assert_eq!(err.metric_label(), "ledger_corrupt", "{err}");
        let aside = store.quarantine().unwrap().unwrap();
        assert!(aside.exists() && !path.exists());
        assert_eq!(store.load().unwrap(), Ledger::default());

        fs::write(&path, b"{\"version\":9}").unwrap();
        let err = store.load().unwrap_err();
        assert!(err.to_string().contains("version 9"), "{err}");
        fs::remove_dir_all(dir).unwrap();
    }
}

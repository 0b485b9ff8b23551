//! What the agent created, so it never touches anything else.
//!
//! IPVS has no owner tag, so ownership lives in a JSON file under the state
//! directory, written atomically (temporary file, fsync, rename, fsync of
//! the directory). The rules are in this crate's README.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use lvs_ipvs::{DestKey, ServiceKey};

use crate::kernel::{AddrKey, AddrScope, FouPort, TunnelKind};

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
    pub services: BTreeMap<ServiceKey, OwnedService>,
    pub addresses: BTreeSet<AddrKey>,
    pub tunnels: BTreeMap<String, OwnedTunnel>,
    pub fou_ports: BTreeSet<FouPort>,
    pub sysctls: BTreeMap<String, OwnedSysctl>,
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

fn owned_tunnels(t: Vec<FileTunnel>) -> BTreeMap<String, OwnedTunnel> {
    t.into_iter()
        .map(|t| {
            (
                t.name,
                OwnedTunnel {
                    kind: t.kind,
                    brought_up: t.brought_up,
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
/// additions when the journal cannot be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerPart {
    pub services: BTreeMap<ServiceKey, Option<OwnedService>>,
    /// The owned addresses among those the scope covers.
    pub addresses: BTreeSet<AddrKey>,
    pub tunnels: BTreeMap<String, OwnedTunnel>,
    pub fou_ports: BTreeSet<FouPort>,
    pub sysctls: BTreeMap<String, OwnedSysctl>,
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
    }
}

/// Journal file name under the state directory: one JSON line per scoped
/// sync that changed the ledger, replayed over `ledger.json` at load.
pub const JOURNAL_FILE: &str = "ledger.journal";
/// Journal entries after which the next save rewrites `ledger.json` whole.
pub const COMPACT_AFTER: usize = 1000;

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JournalService {
    key: ServiceKey,
    /// `None`: no longer owned.
    #[serde(default)]
    owned: Option<FileService>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JournalAddress {
    key: AddrKey,
    owned: bool,
}

/// One journal line: the new state of what a sync changed.
#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct JournalEntry {
    seq: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    services: Vec<JournalService>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    addresses: Vec<JournalAddress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tunnels: Option<Vec<FileTunnel>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fou_ports: Option<Vec<FouPort>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sysctls: Option<Vec<FileSysctl>>,
}

impl JournalEntry {
    /// What changed from `before` to `after`; `None` when nothing did.
    fn between(before: &LedgerPart, after: &LedgerPart) -> Option<Self> {
        let mut e = JournalEntry::default();
        for (k, s) in &after.services {
            if before.services.get(k) != Some(s) {
                e.services.push(JournalService {
                    key: *k,
                    owned: s.as_ref().map(|s| file_service(k, s)),
                });
            }
        }
        for k in before.services.keys() {
            if !after.services.contains_key(k) {
                e.services.push(JournalService {
                    key: *k,
                    owned: None,
                });
            }
        }
        for a in after.addresses.symmetric_difference(&before.addresses) {
            e.addresses.push(JournalAddress {
                key: a.clone(),
                owned: after.addresses.contains(a),
            });
        }
        if after.tunnels != before.tunnels {
            e.tunnels = Some(file_tunnels(&after.tunnels));
        }
        if after.fou_ports != before.fou_ports {
            e.fou_ports = Some(after.fou_ports.iter().copied().collect());
        }
        if after.sysctls != before.sysctls {
            e.sysctls = Some(file_sysctls(&after.sysctls));
        }
        let empty = e.services.is_empty()
            && e.addresses.is_empty()
            && e.tunnels.is_none()
            && e.fou_ports.is_none()
            && e.sysctls.is_none();
        (!empty).then_some(e)
    }

    fn replay(self, l: &mut Ledger) {
        for s in self.services {
            match s.owned {
                Some(f) => l.services.insert(
                    s.key,
                    OwnedService {
                        owner: f.owner,
                        dests: f.destinations.into_iter().collect(),
                    },
                ),
                None => l.services.remove(&s.key),
            };
        }
        for a in self.addresses {
            if a.owned {
                l.addresses.insert(a.key);
            } else {
                l.addresses.remove(&a.key);
            }
        }
        if let Some(t) = self.tunnels {
            l.tunnels = owned_tunnels(t);
        }
        if let Some(p) = self.fou_ports {
            l.fou_ports = p.into_iter().collect();
        }
        if let Some(s) = self.sysctls {
            l.sysctls = owned_sysctls(s);
        }
    }
}

/// Lock file under the state directory. A store holds an exclusive `flock`
/// on it for as long as it lives, so two agents (a daemon and a manual
/// `--once`, say) never write the same ledger; the holder writes its pid,
/// start time and command line into it so that the refused one can say who.
pub const LOCK_FILE: &str = "agent.lock";

/// One journal record on disk: `<crc32 of the JSON, 8 hex digits> <JSON>\n`.
fn encode_record(entry: &JournalEntry) -> Vec<u8> {
    let json = serde_json::to_vec(entry).expect("journal serialization cannot fail");
    let mut line = format!("{:08x} ", crc32fast::hash(&json)).into_bytes();
    line.extend_from_slice(&json);
    line.push(b'\n');
    line
}

/// A journal line (without its newline) as an entry, or why it is not one.
fn decode_record(line: &[u8]) -> Result<JournalEntry, String> {
    if line.first() == Some(&b'{') {
        // Written before records carried a checksum.
        return serde_json::from_slice(line).map_err(|e| format!("not a journal entry: {e}"));
    }
    let (sum, json) = match line.split_at_checked(9) {
        Some((head, json)) if head[8] == b' ' => (&head[..8], json),
        _ => return Err("no checksum (8 hex digits and a space) at the start".into()),
    };
    let want = std::str::from_utf8(sum)
        .ok()
        .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .ok_or_else(|| "the checksum is not 8 hex digits".to_string())?;
    let got = crc32fast::hash(json);
    if got != want {
        return Err(format!(
            "checksum mismatch: the record says {want:08x}, its content sums to {got:08x}"
        ));
    }
    serde_json::from_slice(json)
        .map_err(|e| format!("checksum matches but not a journal entry: {e}"))
}

/// The journal's valid records, and where they end.
struct JournalScan {
    entries: Vec<JournalEntry>,
    /// Bytes from the start that hold complete, valid records.
    good_end: u64,
    /// Why the bytes after `good_end` are not records (a torn tail).
    torn: Option<String>,
}

/// Reads the records. Appends write one record at a time, and a failed or
/// interrupted append is cut off again (here at the next load, or by the
/// append itself), so only the last record can be incomplete or fail its
/// checksum: that tail is a write cut short (a crash, ENOSPC) whose sync
/// never went ahead, and is dropped. A bad record followed by a good one
/// cannot come from a crash of ours: the file was damaged (storage, a hand
/// edit), the history has a gap, and which objects the lost record owned is
/// unknown; that is corruption, and the ledger is quarantined like a corrupt
/// `ledger.json` (everything unknown counts as foreign, nothing is deleted).
fn scan_journal(bytes: &[u8], path: &Path) -> Result<JournalScan, LedgerError> {
    let mut scan = JournalScan {
        entries: Vec::new(),
        good_end: 0,
        torn: None,
    };
    let mut bad: Option<(usize, String)> = None;
    let (mut pos, mut line_no) = (0, 0);
    while pos < bytes.len() {
        line_no += 1;
        let (decoded, next) = match bytes[pos..].iter().position(|&b| b == b'\n') {
            Some(i) => (decode_record(&bytes[pos..pos + i]), pos + i + 1),
            None => (
                Err("no newline at its end (a write cut short)".to_string()),
                bytes.len(),
            ),
        };
        match decoded {
            Ok(entry) => {
                if let Some((n, why)) = bad.take() {
                    return Err(LedgerError::Corrupt {
                        path: path.to_path_buf(),
                        source: format!(
                            "journal line {n}: {why}; valid records follow it (line {line_no}), so the file was damaged rather than cut short by a crash"
                        )
                        .into(),
                    });
                }
                scan.entries.push(entry);
                scan.good_end = next as u64;
            }
            Err(why) => {
                bad.get_or_insert((line_no, why));
            }
        }
        pos = next;
    }
    scan.torn = bad.map(|(n, why)| format!("journal line {n}: {why}"));
    Ok(scan)
}

/// Where the ledger lives: `ledger.json` (the whole ledger, rewritten
/// atomically) plus `ledger.journal` (appended per change, so that a change
/// costs a write in proportion to the change, not to everything owned).
/// `None` keeps it in memory only (tests, the fake dataplane).
#[derive(Debug)]
pub struct LedgerStore {
    path: Option<PathBuf>,
    /// The state directory's lock ([`LOCK_FILE`]), released when dropped.
    lock: Option<fs::File>,
    /// The in-memory store's content.
    memory: Ledger,
    /// Hash of the content `ledger.json` was last written with, while the
    /// journal is empty: an unchanged full save writes nothing.
    saved_hash: Option<u64>,
    /// The last journal sequence number written or replayed.
    seq: u64,
    /// Entries in the journal file.
    journal_len: usize,
    /// Bytes of the journal holding complete records: the next append goes
    /// there, cutting off whatever a failed append left behind.
    journal_end: u64,
}

fn hash_bytes(b: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    b.hash(&mut h);
    h.finish()
}

/// How long [`LedgerStore::in_dir`] waits for the state directory's lock.
/// A killed agent's lock goes only once its last thread has exited, which
/// can be a moment after its pid looks gone to a supervisor that restarts it
/// at once; a live holder still gets a refusal within a few seconds.
pub const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Takes the state directory's lock, waiting up to `wait` for a holder to
/// go, or says who holds it.
fn lock_dir(dir: &Path, wait: Duration) -> Result<fs::File, LedgerError> {
    use std::os::unix::fs::FileExt;
    let lock = dir.join(LOCK_FILE);
    let io_err = |action: &'static str| {
        let path = lock.clone();
        move |source| LedgerError::Io {
            path,
            action,
            source,
        }
    };
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock)
        .map_err(io_err("open the lock file"))?;
    let (started, mut warned) = (Instant::now(), false);
    loop {
        match f.try_lock() {
            Ok(()) => break,
            Err(fs::TryLockError::WouldBlock) => {
                let mut buf = [0u8; 1024];
                let n = f.read_at(&mut buf, 0).unwrap_or(0);
                let holder = match String::from_utf8_lossy(&buf[..n]).trim() {
                    "" => "which one is unknown: it has not written its pid yet".to_string(),
                    h => format!("held by {h}"),
                };
                if started.elapsed() >= wait {
                    return Err(LedgerError::Locked {
                        dir: dir.to_path_buf(),
                        lock,
                        holder,
                    });
                }
                if !std::mem::replace(&mut warned, true) {
                    tracing::warn!(lock = %lock.display(), %holder, wait_s = wait.as_secs(), "state directory locked; waiting for the holder to go");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(fs::TryLockError::Error(e)) => return Err(io_err("lock the lock file")(e)),
        }
    }
    let now = k8s_openapi::jiff::Timestamp::now();
    let started = k8s_openapi::jiff::Timestamp::from_second(now.as_second()).unwrap_or(now);
    let command: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let me = format!(
        "pid {}, started {started}, command: {}\n",
        std::process::id(),
        command.join(" ")
    );
    f.set_len(0).map_err(io_err("write the lock file"))?;
    f.write_all_at(me.as_bytes(), 0)
        .map_err(io_err("write the lock file"))?;
    Ok(f)
}

/// Removes temporary files a crash left behind (only while holding the lock,
/// so none is another writer's).
fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let prefix = format!("{LEDGER_FILE}.");
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(&prefix) && name.ends_with(TMP_SUFFIX) {
            match fs::remove_file(e.path()) {
                Ok(()) => {
                    tracing::info!(file = %e.path().display(), "removed a temporary ledger file left by a crash")
                }
                Err(error) => {
                    tracing::warn!(file = %e.path().display(), %error, "cannot remove a temporary ledger file left by a crash")
                }
            }
        }
    }
}

/// Ends the names of temporary files (`ledger.json.<random>.tmp`).
const TMP_SUFFIX: &str = ".tmp";

impl LedgerStore {
    /// A ledger file in `state_dir` (created if missing). Takes the
    /// directory's lock for the store's lifetime: fails with
    /// [`LedgerError::Locked`], naming the holder, while another store
    /// (in this or another process) keeps it for [`LOCK_WAIT`].
    pub fn in_dir(state_dir: &Path) -> Result<Self, LedgerError> {
        Self::in_dir_waiting(state_dir, LOCK_WAIT)
    }

    /// [`LedgerStore::in_dir`], waiting `wait` at most for the lock.
    pub fn in_dir_waiting(state_dir: &Path, wait: Duration) -> Result<Self, LedgerError> {
        fs::create_dir_all(state_dir).map_err(|source| LedgerError::Io {
            path: state_dir.to_path_buf(),
            action: "create the state directory",
            source,
        })?;
        let lock = lock_dir(state_dir, wait)?;
        remove_stale_temporaries(state_dir);
        Ok(LedgerStore {
            path: Some(state_dir.join(LEDGER_FILE)),
            lock: Some(lock),
            ..Self::in_memory()
        })
    }

    /// Reads the ledger in `state_dir` as it is on disk, without the lock
    /// and without repairing anything: for tests and inspection while an
    /// agent runs.
    pub fn read_unlocked(state_dir: &Path) -> Result<Ledger, LedgerError> {
        LedgerStore {
            path: Some(state_dir.join(LEDGER_FILE)),
            ..Self::in_memory()
        }
        .read(false)
    }

    /// A ledger that is never written (tests).
    pub fn in_memory() -> Self {
        LedgerStore {
            path: None,
            lock: None,
            memory: Ledger::default(),
            saved_hash: None,
            seq: 0,
            journal_len: 0,
            journal_end: 0,
        }
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn journal_path(&self) -> Option<PathBuf> {
        self.path.as_ref().map(|p| p.with_file_name(JOURNAL_FILE))
    }

    /// Entries appended since the last full write.
    pub fn journal_len(&self) -> usize {
        self.journal_len
    }

    /// Reads the ledger (the file, then the journal's newer entries); a
    /// missing file is an empty ledger. A torn last journal record (cut
    /// short or failing its checksum: a write interrupted by a crash) is
    /// dropped and cut off the file, so the next append follows the last
    /// complete record; see [`scan_journal`] for a bad record elsewhere.
    pub fn load(&mut self) -> Result<Ledger, LedgerError> {
        self.read(self.lock.is_some())
    }

    fn read(&mut self, repair: bool) -> Result<Ledger, LedgerError> {
        let Some(path) = self.path.clone() else {
            return Ok(self.memory.clone());
        };
        let (mut ledger, mut seq, bytes) = match fs::read(&path) {
            Ok(bytes) => {
                let file: LedgerFile =
                    serde_json::from_slice(&bytes).map_err(|source| LedgerError::Corrupt {
                        path: path.clone(),
                        source: source.into(),
                    })?;
                if file.version != LEDGER_VERSION {
                    return Err(LedgerError::Version {
                        path: path.clone(),
                        found: file.version,
                    });
                }
                let seq = file.journal_seq;
                (Ledger::from(file), seq, Some(bytes))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => (Ledger::default(), 0, None),
            Err(source) => {
                return Err(LedgerError::Io {
                    path: path.clone(),
                    action: "read",
                    source,
                });
            }
        };
        let jpath = self.journal_path().expect("a path");
        let (mut entries, mut journal_end) = (0, 0);
        match fs::read(&jpath) {
            Ok(bytes) => {
                let scan = scan_journal(&bytes, &jpath)?;
                if let Some(why) = &scan.torn {
                    tracing::warn!(
                        journal = %jpath.display(),
                        kept_bytes = scan.good_end,
                        dropped_bytes = bytes.len() as u64 - scan.good_end,
                        reason = %why,
                        "ledger journal: dropping a last record cut short by a crash (its sync never went ahead)"
                    );
                    if repair && let Err(error) = truncate_file(&jpath, scan.good_end) {
                        // The next append cuts it off before writing.
                        tracing::warn!(journal = %jpath.display(), %error, "cannot cut the torn record off the journal yet");
                    }
                }
                journal_end = scan.good_end;
                for e in scan.entries {
                    entries += 1;
                    if e.seq > seq {
                        seq = e.seq;
                        e.replay(&mut ledger);
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(LedgerError::Io {
                    path: jpath,
                    action: "read",
                    source,
                });
            }
        }
        self.seq = seq;
        self.journal_len = entries;
        self.journal_end = journal_end;
        self.saved_hash = match (&bytes, entries) {
            (Some(b), 0) => Some(hash_bytes(b)),
            (None, 0) => Some(hash_bytes(&self.serialize(&Ledger::default()))),
            _ => None,
        };
        Ok(ledger)
    }

    /// Moves an unreadable ledger (and its journal) aside so the agent can
    /// start with an empty one (it then owns nothing and deletes nothing).
    pub fn quarantine(&mut self) -> Result<Option<PathBuf>, LedgerError> {
        let Some(path) = self.path.clone() else {
            return Ok(None);
        };
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let aside = path.with_extension(format!("json.corrupt-{secs}"));
        if path.exists() {
            fs::rename(&path, &aside).map_err(|source| LedgerError::Io {
                path: path.clone(),
                action: "move aside",
                source,
            })?;
        }
        let jpath = self.journal_path().expect("a path");
        if jpath.exists() {
            let jaside = jpath.with_extension(format!("journal.corrupt-{secs}"));
            fs::rename(&jpath, &jaside).map_err(|source| LedgerError::Io {
                path: jpath.clone(),
                action: "move aside",
                source,
            })?;
        }
        self.saved_hash = None;
        self.journal_len = 0;
        self.journal_end = 0;
        self.seq = 0;
        Ok(Some(aside))
    }

    fn serialize(&self, ledger: &Ledger) -> Vec<u8> {
        let mut file = LedgerFile::from(ledger);
        file.journal_seq = self.seq;
        serde_json::to_vec_pretty(&file).expect("ledger serialization cannot fail")
    }

    /// Writes the whole ledger if it differs from what was last written, and
    /// empties the journal. Returns whether a write happened.
    pub fn save(&mut self, ledger: &Ledger) -> Result<bool, LedgerError> {
        let Some(path) = self.path.clone() else {
            let changed = &self.memory != ledger;
            self.memory = ledger.clone();
            return Ok(changed);
        };
        let json = self.serialize(ledger);
        let hash = hash_bytes(&json);
        if self.saved_hash == Some(hash) && self.journal_len == 0 {
            return Ok(false);
        }
        write_atomically(&path, &json)?;
        // The file now holds every journal entry (journal_seq says so), so
        // a crash before the journal is gone replays nothing twice.
        let jpath = self.journal_path().expect("a path");
        match fs::remove_file(&jpath) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(LedgerError::Io {
                    path: jpath,
                    action: "remove",
                    source,
                });
            }
        }
        self.journal_len = 0;
        self.journal_end = 0;
        self.saved_hash = Some(hash);
        Ok(true)
    }

    /// Appends what changed between two parts of the ledger (see
    /// [`LedgerPart`]) to the journal, synced to disk before it returns.
    /// Returns whether anything was written. On error nothing of the record
    /// stays in the file (it is cut off again), so a later append never
    /// follows a torn record.
    pub fn append(&mut self, before: &LedgerPart, after: &LedgerPart) -> Result<bool, LedgerError> {
        let Some(mut entry) = JournalEntry::between(before, after) else {
            return Ok(false);
        };
        entry.seq = self.seq + 1;
        let Some(jpath) = self.journal_path() else {
            entry.replay(&mut self.memory);
            self.seq += 1;
            return Ok(true);
        };
        let line = encode_record(&entry);
        append_record(&jpath, self.journal_end, &line)?;
        self.seq += 1;
        self.journal_len += 1;
        self.journal_end += line.len() as u64;
        self.saved_hash = None;
        Ok(true)
    }
}

/// Cuts a file to `len` bytes, durably.
fn truncate_file(path: &Path, len: u64) -> io::Result<()> {
    let f = fs::OpenOptions::new().write(true).open(path)?;
    f.set_len(len)?;
    f.sync_data()
}

/// Writes `line` at `end` (the end of the last complete record) and syncs
/// it; cuts off anything beyond `end` first (a record a failed append left),
/// and cuts the line off again when writing or syncing it fails.
fn append_record(jpath: &Path, end: u64, line: &[u8]) -> Result<(), LedgerError> {
    use std::os::unix::fs::FileExt;
    let io_err = |action: &'static str| {
        let path = jpath.to_path_buf();
        move |source| LedgerError::Io {
            path,
            action,
            source,
        }
    };
    let f = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(jpath)
        .map_err(io_err("open the journal"))?;
    let len = f
        .metadata()
        .map_err(io_err("read the journal's length"))?
        .len();
    if len < end {
        return Err(io_err("append to the journal")(io::Error::other(format!(
            "the journal holds {len} bytes but this agent wrote {end}: it was cut by someone else"
        ))));
    }
    if len > end {
        f.set_len(end)
            .map_err(io_err("cut a torn record off the journal"))?;
    }
    let written = f
        .write_all_at(line, end)
        .map_err(io_err("append to the journal"))
        .and_then(|()| f.sync_data().map_err(io_err("sync the journal")));
    if let Err(e) = written {
        // Leave no torn record behind; if even this fails, the next append
        // (or load) cuts it off.
        if let Err(error) = f.set_len(end).and_then(|()| f.sync_data()) {
            tracing::warn!(journal = %jpath.display(), %error, "cannot cut a failed append off the journal yet");
        }
        return Err(e);
    }
    Ok(())
}

/// Temporary file (unique name), fsync, rename, fsync(dir): after a crash
/// the file holds either the old or the new content, never a mix; a crash
/// before the rename leaves a `<name>.<random>.tmp` that the next
/// [`LedgerStore::in_dir`] removes.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), LedgerError> {
    let io_err = |action: &'static str| {
        let path = path.to_path_buf();
        move |source| LedgerError::Io {
            path,
            action,
            source,
        }
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!("{name}."))
        .suffix(TMP_SUFFIX)
        .tempfile_in(dir)
        .map_err(io_err("create the temporary file"))?;
    tmp.write_all(bytes)
        .map_err(io_err("write the temporary file"))?;
    tmp.as_file()
        .sync_all()
        .map_err(io_err("sync the temporary file"))?;
    // On failure the temporary file is removed when `tmp` is dropped.
    tmp.persist(path)
        .map_err(|e| io_err("rename the temporary file")(e.error))?;
    // Persist the rename itself. Opening a directory read-only and syncing
    // it is what Linux offers; failure is not fatal to content.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvs_ipvs::{Family, Protocol};

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
        let key = ServiceKey::Tuple {
            addr: "10.0.0.1".parse().unwrap(),
            protocol: Protocol::TCP,
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
            ServiceKey::Fwmark {
                family: Family::V6,
                mark: 7,
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
        drop(store);
        let mut again = LedgerStore::in_dir(&dir).unwrap();
        assert_eq!(again.load().unwrap(), l);
        let text = fs::read_to_string(dir.join(LEDGER_FILE)).unwrap();
        assert!(text.contains("\"owner\": \"default/web\""), "{text}");
        assert!(text.contains("\"version\": 1"), "{text}");
        fs::remove_dir_all(dir).unwrap();
    }

    /// `sample()` as the agent wrote it before IPVS keys were `lvs-ipvs`
    /// types: an agent upgraded in place must adopt it, and write the same
    /// shape back.
    const SAMPLE_IN_THE_FIRST_FORMAT: &str = r#"{
  "version": 1,
  "services": [
    {
      "key": { "type": "tuple", "addr": "10.0.0.1", "protocol": 6, "port": 80 },
      "owner": "default/web",
      "destinations": [ { "addr": "10.1.0.5", "port": 8080 } ]
    },
    {
      "key": { "type": "fwmark", "mark": 7, "ipv6": true },
      "owner": "default/fw",
      "destinations": []
    }
  ],
  "addresses": [ { "interface": "lo", "addr": "fd00::1", "prefixLen": 128 } ],
  "tunnels": [ { "name": "tunl0", "kind": "ipip", "broughtUp": true } ],
  "fouPorts": [ { "port": 5555, "ipv6": false } ],
  "sysctls": [ { "key": "net/ipv4/ip_forward", "previous": "0", "value": "1" } ]
}"#;

    #[test]
    fn a_ledger_in_the_first_format_is_adopted_and_written_back_in_it() {
        let dir = temp_dir("ledger-first-format");
        fs::write(dir.join(LEDGER_FILE), SAMPLE_IN_THE_FIRST_FORMAT).unwrap();
        let mut store = LedgerStore::in_dir(&dir).unwrap();
        assert_eq!(store.load().unwrap(), sample());
        drop(store);

        let fresh = temp_dir("ledger-first-format-write");
        let mut store = LedgerStore::in_dir(&fresh).unwrap();
        store.load().unwrap();
        store.save(&sample()).unwrap();
        let written: serde_json::Value =
            serde_json::from_slice(&fs::read(fresh.join(LEDGER_FILE)).unwrap()).unwrap();
        let first: serde_json::Value = serde_json::from_str(SAMPLE_IN_THE_FIRST_FORMAT).unwrap();
        assert_eq!(written, first);
        fs::remove_dir_all(dir).unwrap();
        fs::remove_dir_all(fresh).unwrap();
    }

    #[test]
    fn write_is_atomic_and_leaves_no_temporary_file() {
        let dir = temp_dir("ledger-atomic");
        let path = dir.join(LEDGER_FILE);
        write_atomically(&path, b"{\"version\":1}").unwrap();
        // Stale temporary files from a crash mid-write (the fixed name of
        // earlier versions, and unique ones) are not read, and are removed
        // once the store holds the directory's lock.
        fs::write(path.with_extension("json.tmp"), b"garbage").unwrap();
        fs::write(dir.join("ledger.json.a1B2c3.tmp"), b"garbage").unwrap();
        let mut store = LedgerStore::in_dir(&dir).unwrap();
        assert_eq!(store.load().unwrap(), Ledger::default());
        store.save(&sample()).unwrap();
        let mut names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec!["agent.lock".to_string(), LEDGER_FILE.to_string()]
        );
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

    fn web_key() -> ServiceKey {
        ServiceKey::Tuple {
            addr: "10.0.0.1".parse().unwrap(),
            protocol: Protocol::TCP,
            port: 80,
        }
    }

    #[test]
    fn journal_entries_replay_over_the_file_and_a_save_folds_them_in() {
        let dir = temp_dir("ledger-journal");
        let mut store = LedgerStore::in_dir(&dir).unwrap();
        let mut l = sample();
        store.save(&l).unwrap();
        let all = AddrScope::All;
        let keys = [web_key()];

        // Two scoped changes: a destination removed, an address added.
        let before = l.part(&keys, all);
        l.services.get_mut(&web_key()).unwrap().dests.clear();
        assert!(store.append(&before, &l.part(&keys, all)).unwrap());
        let before = l.part(&keys, all);
        l.addresses.insert(AddrKey {
            interface: "eth0".into(),
            addr: "10.0.0.1".parse().unwrap(),
            prefix_len: 32,
        });
        assert!(store.append(&before, &l.part(&keys, all)).unwrap());
        // Nothing changed: nothing appended.
        assert!(
            !store
                .append(&l.part(&keys, all), &l.part(&keys, all))
                .unwrap()
        );
        let journal = fs::read_to_string(dir.join(JOURNAL_FILE)).unwrap();
        assert_eq!(journal.lines().count(), 2, "{journal}");
        drop(store);
        assert_eq!(LedgerStore::in_dir(&dir).unwrap().load().unwrap(), l);

        // A line cut short by a crash is ignored; a broken line in the
        // middle is corruption.
        fs::write(
            dir.join(JOURNAL_FILE),
            format!("{journal}{{\"seq\":3,\"serv"),
        )
        .unwrap();
        assert_eq!(LedgerStore::in_dir(&dir).unwrap().load().unwrap(), l);
        fs::write(dir.join(JOURNAL_FILE), format!("{{oops\n{journal}")).unwrap();
        let err = LedgerStore::in_dir(&dir).unwrap().load().unwrap_err();
        assert_eq!(err.metric_label(), "ledger_corrupt", "{err}");
        fs::write(dir.join(JOURNAL_FILE), &journal).unwrap();

        // A full save folds the journal in and removes it; entries the file
        // already holds are not replayed again (a crash between the rename
        // and the removal leaves them behind).
        let mut store = LedgerStore::in_dir(&dir).unwrap();
        assert_eq!(store.load().unwrap(), l);
        assert!(store.save(&l).unwrap());
        assert!(!dir.join(JOURNAL_FILE).exists());
        drop(store);
        fs::write(dir.join(JOURNAL_FILE), &journal).unwrap();
        let mut later = l.clone();
        later.services.remove(&web_key());
        let mut store = LedgerStore::in_dir(&dir).unwrap();
        assert_eq!(store.load().unwrap(), l);
        assert!(store.save(&later).unwrap());
        drop(store);
        fs::write(dir.join(JOURNAL_FILE), &journal).unwrap();
        assert_eq!(
            LedgerStore::in_dir(&dir).unwrap().load().unwrap(),
            later,
            "old entries must not bring the service back"
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn restore_puts_a_part_back() {
        let mut l = sample();
        let keys = [web_key()];
        let vips = BTreeSet::new();
        let interfaces = BTreeSet::from(["lo".to_string()]);
        let covers = AddrScope::Part {
            vips: &vips,
            interfaces: &interfaces,
        };
        let part = l.part(&keys, covers);
        l.services.remove(&web_key());
        l.addresses.clear();
        l.sysctls.clear();
        l.restore(part, covers);
        assert_eq!(l, sample());
    }

    /// Two scoped changes appended to a saved sample: the store (dropped,
    /// so its lock is released), the ledger after them, and the journal.
    fn journal_with_two_entries(dir: &Path) -> (Ledger, String) {
        let mut store = LedgerStore::in_dir(dir).unwrap();
        let mut l = sample();
        store.save(&l).unwrap();
        let (all, keys) = (AddrScope::All, [web_key()]);
        let before = l.part(&keys, all);
        l.services.get_mut(&web_key()).unwrap().dests.clear();
        assert!(store.append(&before, &l.part(&keys, all)).unwrap());
        let before = l.part(&keys, all);
        l.addresses.insert(AddrKey {
            interface: "eth0".into(),
            addr: "10.0.0.1".parse().unwrap(),
            prefix_len: 32,
        });
        assert!(store.append(&before, &l.part(&keys, all)).unwrap());
        drop(store);
        (l, fs::read_to_string(dir.join(JOURNAL_FILE)).unwrap())
    }

    /// One more scoped change through a fresh store: the ledger loads as
    /// `expect`, then gains a service.
    fn reload_and_append(dir: &Path, expect: &Ledger) -> Ledger {
        let mut store = LedgerStore::in_dir(dir).unwrap();
        let mut l = store.load().unwrap();
        assert_eq!(&l, expect);
        let key = ServiceKey::Tuple {
            addr: "10.0.0.2".parse().unwrap(),
            protocol: Protocol::TCP,
            port: 443,
        };
        let before = l.part(&[key], AddrScope::All);
        l.services.insert(
            key,
            OwnedService {
                owner: "default/tls".into(),
                dests: BTreeSet::new(),
            },
        );
        assert!(
            store
                .append(&before, &l.part(&[key], AddrScope::All))
                .unwrap()
        );
        l
    }

    #[test]
    fn a_torn_tail_is_cut_off_at_load_so_the_next_append_reloads() {
        let dir = temp_dir("ledger-torn");
        let (l, journal) = journal_with_two_entries(&dir);
        // A crash (or ENOSPC) cut the third record short: no newline.
        let third = journal.lines().last().unwrap();
        let torn = &third[..third.len() / 2];
        fs::write(dir.join(JOURNAL_FILE), format!("{journal}{torn}")).unwrap();
        let after = reload_and_append(&dir, &l);
        // The torn bytes are gone: the journal is the two records plus the
        // new one, and it loads with everything.
        let text = fs::read_to_string(dir.join(JOURNAL_FILE)).unwrap();
        assert!(text.starts_with(&journal), "{text}");
        assert_eq!(text.lines().count(), 3, "{text}");
        assert_eq!(LedgerStore::in_dir(&dir).unwrap().load().unwrap(), after);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_append_cuts_off_what_a_failed_append_left() {
        let dir = temp_dir("ledger-failed-append");
        let (l, _) = journal_with_two_entries(&dir);
        let mut store = LedgerStore::in_dir(&dir).unwrap();
        assert_eq!(store.load().unwrap(), l);
        // What a short write (ENOSPC) leaves: part of a record, no newline.
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(dir.join(JOURNAL_FILE))
            .unwrap();
        f.write_all(b"0badc0de {\"seq\":3,\"servi").unwrap();
        drop(f);
        let mut after = l.clone();
        let key = web_key();
        let before = after.part(&[key], AddrScope::All);
        after.services.remove(&key);
        assert!(
            store
                .append(&before, &after.part(&[key], AddrScope::All))
                .unwrap()
        );
        drop(store);
        let text = fs::read_to_string(dir.join(JOURNAL_FILE)).unwrap();
        assert!(!text.contains("0badc0de"), "{text}");
        assert_eq!(LedgerStore::in_dir(&dir).unwrap().load().unwrap(), after);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_record_failing_its_checksum_is_torn_at_the_tail_and_corrupt_in_the_middle() {
        let dir = temp_dir("ledger-checksum");
        let (l, journal) = journal_with_two_entries(&dir);
        let lines: Vec<&str> = journal.lines().collect();
        // The second record says the address is on eth0; a flipped byte
        // (as storage can return after a crash) says eth1: valid JSON, but
        // not what was written.
        assert!(lines[1].contains("\"eth0\""), "{journal}");
        let flipped = lines[1].replace("\"eth0\"", "\"eth1\"");
        fs::write(dir.join(JOURNAL_FILE), format!("{}\n{flipped}\n", lines[0])).unwrap();
        let mut without_second = l.clone();
        without_second.addresses.retain(|a| a.interface != "eth0");
        let after = reload_and_append(&dir, &without_second);
        assert!(
            !fs::read_to_string(dir.join(JOURNAL_FILE))
                .unwrap()
                .contains("eth1")
        );
        assert_eq!(LedgerStore::in_dir(&dir).unwrap().load().unwrap(), after);

        // The same record followed by a valid one: damage, not a crash.
        fs::write(dir.join(JOURNAL_FILE), format!("{flipped}\n{}\n", lines[0])).unwrap();
        let err = LedgerStore::in_dir(&dir).unwrap().load().unwrap_err();
        assert_eq!(err.metric_label(), "ledger_corrupt", "{err}");
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_second_store_on_the_same_dir_is_refused_naming_the_holder() {
        let dir = temp_dir("ledger-lock");
        let mut first = LedgerStore::in_dir(&dir).unwrap();
        assert_eq!(first.load().unwrap(), Ledger::default());
        let err = LedgerStore::in_dir_waiting(&dir, Duration::from_millis(300)).unwrap_err();
        let msg = err.to_string();
        assert_eq!(err.metric_label(), "ledger_locked", "{msg}");
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "the error names the holder's pid: {msg}"
        );
        assert!(msg.contains("command: "), "{msg}");
        assert!(msg.contains(&dir.display().to_string()), "{msg}");
        // The first store is unaffected.
        assert!(first.save(&sample()).unwrap());
        assert_eq!(first.load().unwrap(), sample());
        drop(first);
        // Released with the store.
        assert_eq!(LedgerStore::in_dir(&dir).unwrap().load().unwrap(), sample());
        fs::remove_dir_all(dir).unwrap();
    }
}

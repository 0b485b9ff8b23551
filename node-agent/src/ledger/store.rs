//! The ledger's storage: `ledger.json` written atomically, the journal,
//! the state directory's lock, and loading with replay.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::journal::{JournalEntry, encode_record, scan_journal};
use super::*;

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
        // Compact: a full sync serializes it twice (to write it, or to see
        // that it did not change), and indentation about doubles its size.
        serde_json::to_vec(&file).expect("ledger serialization cannot fail")
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

//! Where the desired objects come from.
//!
//! A [`Source`] pushes [`Snapshot`]s of every VirtualService, RealServer and
//! Node into the agent loop. The standalone mode reads a directory of YAML
//! manifests ([`DirSource`]); a Kubernetes mode can be a second source
//! feeding the same loop from watches.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::{Duration, SystemTime};

use lvs_api::manifest::{Manifest, ManifestSet, parse};
use lvs_api::{LvsNodeProfileSpec, NodeInfo, Object, RealServerSpec, VirtualServiceSpec};
use lvs_planner::{Change, Changes};

use crate::dirwatch::{DirWatch, Wake};
use crate::metrics::Metrics;

/// Every object the planner needs, as of one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub virtual_services: Vec<Object<VirtualServiceSpec>>,
    pub real_servers: Vec<Object<RealServerSpec>>,
    pub nodes: Vec<NodeInfo>,
    pub node_profiles: Vec<Object<LvsNodeProfileSpec>>,
    /// Where it came from, for logs.
    pub origin: String,
}

/// What the agent loop receives.
#[derive(Debug)]
pub enum Event {
    /// A new desired state (replaces the previous one).
    Snapshot(Box<Snapshot>),
    /// Changes to the previous state, and where they came from.
    Changes(Box<Changes>, String),
    /// Run a full resync now.
    Resync,
    /// The director roles won in the HA election (Kubernetes mode).
    Roles(crate::ha::Elected),
    /// The nodes' LvsNode reports, for readiness gating (Kubernetes mode).
    Readiness(Box<crate::gating::Readiness>),
    /// Health checks of these VirtualServices (namespace/name) changed
    /// state: they are re-planned and synced.
    Health(Vec<String>),
    /// An LvsSnapshot request (Kubernetes mode): read the kernel's IPVS
    /// table now, between syncs, and answer.
    LiveTable(LiveTableRequest),
    /// Stop after the sync in progress; the kernel is left as it is.
    Shutdown,
}

/// A request for the live IPVS table, answered by the agent loop.
#[derive(Debug)]
pub struct LiveTableRequest {
    /// Only the services of these VirtualServices (namespace/name); empty:
    /// all.
    pub virtual_services: Vec<String>,
    /// Also the changes a sync would make now (a dry run).
    pub diff: bool,
    pub reply: tokio::sync::oneshot::Sender<lvs_api::LvsSnapshotStatus>,
}

/// The sending end sources get.
#[derive(Debug, Clone)]
pub struct SnapshotSink {
    tx: Sender<Event>,
}

impl SnapshotSink {
    pub fn new(tx: Sender<Event>) -> Self {
        SnapshotSink { tx }
    }

    /// Hands a snapshot to the loop; false once the loop is gone.
    pub fn send(&self, s: Snapshot) -> bool {
        self.tx.send(Event::Snapshot(Box::new(s))).is_ok()
    }

    /// Hands changes to the previous state to the loop; false once the
    /// loop is gone.
    pub fn send_changes(&self, c: Changes, origin: String) -> bool {
        self.tx.send(Event::Changes(Box::new(c), origin)).is_ok()
    }
}

/// A producer of snapshots, run as a task until the agent stops.
pub trait Source: Send + 'static {
    fn run(self, sink: SnapshotSink) -> impl Future<Output = ()> + Send;
}

/// A file that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", file.display())]
pub struct ConfigError {
    pub file: PathBuf,
    /// Names the document, the field and the reason.
    pub message: String,
}

/// Manifests in a directory: every `*.yaml` and `*.yml`, in name order (a
/// later object with the same namespace/name replaces an earlier one). Any
/// unusable file rejects the whole read, so the last good state stays
/// programmed: a broken file never causes deletions.
#[derive(Debug, Clone)]
pub struct DirSource {
    dir: PathBuf,
    poll: Duration,
    metrics: Arc<Metrics>,
}

/// Name, mtime, size and inode of each manifest: a change in any of them
/// means "read again".
type Fingerprint = BTreeMap<PathBuf, Stamp>;
type Stamp = (Option<SystemTime>, u64, u64);

/// One manifest file as last read: its stamp and, per object, a hash of
/// the object (the objects themselves live in the agent's planner; a file
/// is read again in the rare case that an object it holds is needed).
#[derive(Debug, Default)]
struct FileIndex {
    stamp: Stamp,
    objects: BTreeMap<(Kind, String), u64>,
}

/// Objects of one file, as parsed.
#[derive(Debug, Default)]
struct FileObjects {
    vss: BTreeMap<String, Object<VirtualServiceSpec>>,
    rss: BTreeMap<String, Object<RealServerSpec>>,
    nodes: BTreeMap<String, NodeInfo>,
    profiles: BTreeMap<String, Object<LvsNodeProfileSpec>>,
}

impl FileObjects {
    fn parse(f: &Path) -> Result<Self, ConfigError> {
        let mut p = FileObjects::default();
        for m in read_file(f)? {
            match m {
                Manifest::VirtualService(o) => {
                    p.vss.insert(o.meta.key(), o);
                }
                Manifest::RealServer(o) => {
                    p.rss.insert(o.meta.key(), o);
                }
                Manifest::Node(n) => {
                    p.nodes.insert(n.name.clone(), n);
                }
                Manifest::NodeProfile(o) => {
                    p.profiles.insert(o.meta.key(), o);
                }
            }
        }
        Ok(p)
    }

    fn index(&self, stamp: Stamp) -> FileIndex {
        fn hash(o: &impl std::fmt::Debug) -> u64 {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            format!("{o:?}").hash(&mut h);
            h.finish()
        }
        let mut objects = BTreeMap::new();
        for (k, o) in &self.vss {
            objects.insert((Kind::Vs, k.clone()), hash(o));
        }
        for (k, o) in &self.rss {
            objects.insert((Kind::Rs, k.clone()), hash(o));
        }
        for (k, o) in &self.nodes {
            objects.insert((Kind::Node, k.clone()), hash(o));
        }
        for (k, o) in &self.profiles {
            objects.insert((Kind::Profile, k.clone()), hash(o));
        }
        FileIndex { stamp, objects }
    }

    /// Moves one object out as a change.
    fn take(&mut self, kind: Kind, key: &str, changes: &mut Changes) -> bool {
        match kind {
            Kind::Vs => self.vss.remove(key).map(|o| {
                changes
                    .virtual_services
                    .push(Change::Upsert(std::sync::Arc::new(o)))
            }),
            Kind::Rs => self
                .rss
                .remove(key)
                .map(|o| changes.real_servers.push(Change::Upsert(o))),
            Kind::Node => self
                .nodes
                .remove(key)
                .map(|n| changes.nodes.push(Change::Upsert(n))),
            Kind::Profile => self
                .profiles
                .remove(key)
                .map(|o| changes.node_profiles.push(Change::Upsert(o))),
        }
        .is_some()
    }
}

/// Whether `f` is one of the file names in `names`.
fn named(names: &BTreeSet<OsString>, f: &Path) -> bool {
    f.file_name().is_some_and(|n| names.contains(n))
}

/// Which kind of object a key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    Vs,
    Rs,
    Node,
    Profile,
}

/// What the directory source knows between polls: each file's stamp and
/// object hashes, and which files hold each object. A poll reads only the
/// files whose stamp changed and turns them into object changes, so a
/// change costs in proportion to the files it touches. When several files
/// hold the same object, the last file in name order wins.
#[derive(Debug, Default)]
pub struct DirState {
    files: BTreeMap<PathBuf, FileIndex>,
    /// The files holding each object, in name order (nearly always one; a
    /// set per object would cost a whole B-tree node for each object).
    holders: HashMap<(Kind, String), Vec<Arc<Path>>>,
    /// The directory as it was when reading it failed: not read again until
    /// something changes.
    failed: Option<Fingerprint>,
    /// The directory could not be listed, and that was reported.
    unreadable: bool,
    /// A first read succeeded (its changes, even none, went out).
    read_once: bool,
    /// Files a settled read found changed but left unread, with the stamp
    /// they had then.
    unsettled: HashMap<PathBuf, Stamp>,
}

/// Which of the files whose stamp changed a read takes.
#[derive(Debug, Clone, Copy)]
pub enum ReadScope<'a> {
    /// Every one.
    All,
    /// Those of the directory named here (file names): a wake-up said
    /// they were written and closed, renamed or removed.
    Named(&'a BTreeSet<OsString>),
    /// Removed files, and changed files whose stamp is the one the last
    /// settled read saw: a file still being written in place (its stamp
    /// moving) is left for a later read, so a periodic poll does not read
    /// it half-written.
    Settled,
}

impl DirState {
    /// Reads what changed since the last call. `Ok(None)`: nothing did.
    /// On errors nothing is taken over: the state stays as it was.
    pub fn refresh(&mut self, dir: &Path) -> Result<Option<Changes>, Vec<ConfigError>> {
        self.refresh_within(dir, ReadScope::All)
    }

    /// As [`refresh`](Self::refresh), but only the changed files `scope`
    /// takes are read again; any other keeps its last version until a
    /// later read takes it. The first read takes everything.
    pub fn refresh_within(
        &mut self,
        dir: &Path,
        scope: ReadScope<'_>,
    ) -> Result<Option<Changes>, Vec<ConfigError>> {
        let scope = if self.read_once {
            scope
        } else {
            ReadScope::All
        };
        let fp = match DirSource::fingerprint(dir) {
            Ok(fp) => {
                self.unreadable = false;
                fp
            }
            Err(_) if self.unreadable => return Ok(None),
            Err(e) => {
                self.unreadable = true;
                return Err(vec![e]);
            }
        };
        if self.failed.as_ref() == Some(&fp) {
            return Ok(None);
        }
        let removed: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|f| !fp.contains_key(*f))
            .filter(|f| match scope {
                ReadScope::Named(names) => named(names, f),
                ReadScope::All | ReadScope::Settled => true,
            })
            .cloned()
            .collect();
        let mut unsettled = HashMap::new();
        let changed: Vec<(&PathBuf, &Stamp)> = fp
            .iter()
            .filter(|(f, st)| self.files.get(*f).is_none_or(|p| &p.stamp != *st))
            .filter(|(f, st)| match scope {
                ReadScope::All => true,
                ReadScope::Named(names) => named(names, f),
                ReadScope::Settled => {
                    let settled = self.unsettled.get(*f) == Some(*st);
                    if !settled {
                        unsettled.insert((*f).clone(), **st);
                    }
                    settled
                }
            })
            .collect();
        match scope {
            ReadScope::All => self.unsettled.clear(),
            ReadScope::Named(names) => self.unsettled.retain(|f, _| !named(names, f)),
            ReadScope::Settled => self.unsettled = unsettled,
        }
        if removed.is_empty() && changed.is_empty() && self.read_once {
            self.failed = None;
            return Ok(None);
        }
        let mut parsed: BTreeMap<PathBuf, (FileIndex, FileObjects)> = BTreeMap::new();
        let mut errors = Vec::new();
        for (f, stamp) in changed {
            match FileObjects::parse(f) {
                Ok(objects) => {
                    parsed.insert(f.clone(), (objects.index(*stamp), objects));
                }
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            self.failed = Some(fp);
            return Err(errors);
        }
        self.failed = None;
        self.read_once = true;

        // Every object the changed files held or hold now, and which
        // version of it counted before.
        let mut touched: BTreeSet<(Kind, String)> = BTreeSet::new();
        for f in removed.iter().chain(parsed.keys()) {
            if let Some(old) = self.files.get(f) {
                touched.extend(old.objects.keys().cloned());
            }
        }
        for (idx, _) in parsed.values() {
            touched.extend(idx.objects.keys().cloned());
        }
        let old: Vec<Option<(PathBuf, u64)>> = touched.iter().map(|k| self.winner(k)).collect();
        for f in &removed {
            if let Some(p) = self.files.remove(f) {
                self.unhold(f, &p);
            }
        }
        let mut objects: BTreeMap<PathBuf, FileObjects> = BTreeMap::new();
        for (f, (idx, objs)) in parsed {
            if let Some(old) = self.files.remove(&f) {
                self.unhold(&f, &old);
            }
            self.hold(&f, &idx);
            self.files.insert(f.clone(), idx);
            objects.insert(f, objs);
        }
        let mut changes = Changes::default();
        for ((kind, key), old) in touched.into_iter().zip(old) {
            let new = self.winner(&(kind, key.clone()));
            if new == old {
                continue;
            }
            let Some((file, _)) = new else {
                match kind {
                    Kind::Vs => changes.virtual_services.push(Change::Delete(key)),
                    Kind::Rs => changes.real_servers.push(Change::Delete(key)),
                    Kind::Node => changes.nodes.push(Change::Delete(key)),
                    Kind::Profile => changes.node_profiles.push(Change::Delete(key)),
                }
                continue;
            };
            // An unchanged file that now wins for this object is read again.
            if !objects.contains_key(&file) {
                match FileObjects::parse(&file) {
                    Ok(o) => {
                        objects.insert(file.clone(), o);
                    }
                    Err(e) => {
                        // It changed after its stamp was taken: read
                        // everything again next time.
                        *self = DirState::default();
                        return Err(vec![e]);
                    }
                }
            }
            let found = objects
                .get_mut(&file)
                .is_some_and(|o| o.take(kind, &key, &mut changes));
            if !found {
                *self = DirState::default();
                return Err(vec![ConfigError {
                    file,
                    message: format!("{key} disappeared while the directory was read"),
                }]);
            }
        }
        Ok(Some(changes))
    }

    /// How many changed files settled reads have left unread (for tests).
    #[cfg(test)]
    pub fn unsettled(&self) -> usize {
        self.unsettled.len()
    }

    /// The version of an object that counts: the last file's (its path and
    /// the object's hash).
    fn winner(&self, k: &(Kind, String)) -> Option<(PathBuf, u64)> {
        let f = self.holders.get(k)?.last()?;
        let h = self.files.get(&**f)?.objects.get(k)?;
        Some((f.to_path_buf(), *h))
    }

    fn hold(&mut self, f: &Path, p: &FileIndex) {
        let shared: Arc<Path> = Arc::from(f);
        for k in p.objects.keys() {
            let files = self.holders.entry(k.clone()).or_default();
            if let Err(at) = files.binary_search_by(|h| (**h).cmp(f)) {
                files.insert(at, shared.clone());
            }
        }
    }

    fn unhold(&mut self, f: &Path, p: &FileIndex) {
        for k in p.objects.keys() {
            if let Some(files) = self.holders.get_mut(k) {
                files.retain(|h| **h != *f);
                if files.is_empty() {
                    self.holders.remove(k);
                }
            }
        }
    }

    /// Files read.
    pub fn files(&self) -> usize {
        self.files.len()
    }
}

/// Reads and parses one manifest file.
fn read_file(f: &Path) -> Result<Vec<Manifest>, ConfigError> {
    let text = std::fs::read_to_string(f).map_err(|e| ConfigError {
        file: f.to_path_buf(),
        message: format!("cannot read: {e}"),
    })?;
    parse(&text).map_err(|e| ConfigError {
        file: f.to_path_buf(),
        message: e.to_string(),
    })
}

impl DirSource {
    pub fn new(dir: impl Into<PathBuf>, poll: Duration, metrics: Arc<Metrics>) -> Self {
        DirSource {
            dir: dir.into(),
            poll,
            metrics,
        }
    }

    fn manifest_files(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
        let entries = std::fs::read_dir(dir).map_err(|e| ConfigError {
            file: dir.to_path_buf(),
            message: format!("cannot read the configuration directory: {e}"),
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| e == "yaml" || e == "yml")
                    && !p
                        .file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with('.'))
            })
            .collect();
        files.sort();
        Ok(files)
    }

    fn fingerprint(dir: &Path) -> Result<Fingerprint, ConfigError> {
        use std::os::unix::fs::MetadataExt;
        let mut fp = Fingerprint::new();
        for f in Self::manifest_files(dir)? {
            if let Ok(m) = std::fs::metadata(&f) {
                fp.insert(f, (m.modified().ok(), m.len(), m.ino()));
            }
        }
        Ok(fp)
    }

    /// Reads every manifest. All errors are returned, one per broken file.
    pub fn load(dir: &Path) -> Result<Snapshot, Vec<ConfigError>> {
        let files = Self::manifest_files(dir).map_err(|e| vec![e])?;
        let mut set = ManifestSet::default();
        let mut errors = Vec::new();
        for f in &files {
            match read_file(f) {
                Ok(m) => set.extend(m),
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Snapshot {
            virtual_services: set.virtual_services,
            real_servers: set.real_servers,
            nodes: set.nodes,
            node_profiles: set.node_profiles,
            origin: format!("{} ({} files)", dir.display(), files.len()),
        })
    }

    /// Reads the directory, reporting errors to logs and metrics.
    pub fn load_reported(&self) -> Option<Snapshot> {
        match Self::load(&self.dir) {
            Ok(s) => {
                self.metrics.config_loaded();
                Some(s)
            }
            Err(errors) => {
                self.rejected(&errors);
                None
            }
        }
    }

    /// Logs and counts files that could not be used.
    fn rejected(&self, errors: &[ConfigError]) {
        for e in errors {
            tracing::error!(
                file = %e.file.display(),
                error = %e.message,
                "configuration file rejected; keeping the last good state"
            );
            self.metrics.config_error(&e.file.display().to_string());
        }
    }
}

impl DirSource {
    /// One poll: reads what changed (what `scope` takes) and reports it to
    /// logs and metrics.
    fn poll(&self, state: &mut DirState, scope: ReadScope<'_>) -> Option<Changes> {
        match state.refresh_within(&self.dir, scope) {
            Ok(Some(c)) => {
                self.metrics.config_loaded();
                Some(c)
            }
            Ok(None) => None,
            Err(errors) => {
                self.rejected(&errors);
                None
            }
        }
    }
}

/// What the directory source's next read takes (an owned [`ReadScope`]).
enum Next {
    All,
    Named(BTreeSet<OsString>),
    Settled,
}

impl Source for DirSource {
    /// Reads the directory, then again whenever inotify reports a file
    /// written, renamed or removed in it (those files only), and at every
    /// poll interval in any case, the fallback for what inotify does not
    /// see: a poll reads a changed file once two polls in a row saw the same
    /// stamp, so that it never reads a file half-written in place.
    async fn run(self, sink: SnapshotSink) {
        let mut state = Some(DirState::default());
        let mut watch: Option<DirWatch> = None;
        let mut watch_failed = false;
        // What the next read takes: everything at first and after a watch
        // is set up again, the named files after a wake-up, settled files
        // at a poll.
        let mut scope = Next::All;
        loop {
            // Watch before reading, so no write after the read goes unseen.
            if watch.is_none() {
                match DirWatch::new(&self.dir) {
                    Ok(w) => {
                        if watch_failed {
                            tracing::info!(dir = %self.dir.display(), "watching the configuration directory again");
                        }
                        watch = Some(w);
                        watch_failed = false;
                    }
                    Err(e) if !watch_failed => {
                        tracing::warn!(
                            dir = %self.dir.display(),
                            error = %e,
                            poll_ms = self.poll.as_millis() as u64,
                            "cannot watch the configuration directory; changes are seen at the next poll"
                        );
                        watch_failed = true;
                    }
                    Err(_) => {}
                }
            }
            let me = self.clone();
            let mut st = state.take().unwrap_or_default();
            let started = std::time::Instant::now();
            let next = std::mem::replace(&mut scope, Next::Settled);
            let (st, changes) = tokio::task::spawn_blocking(move || {
                let scope = match &next {
                    Next::All => ReadScope::All,
                    Next::Named(names) => ReadScope::Named(names),
                    Next::Settled => ReadScope::Settled,
                };
                let c = me.poll(&mut st, scope);
                (st, c)
            })
            .await
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "configuration poll failed; reading everything again");
                (DirState::default(), None)
            });
            if let Some(changes) = changes {
                let origin = format!("{} ({} files)", self.dir.display(), st.files());
                tracing::info!(
                    origin = %origin,
                    changes = changes.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "configuration loaded"
                );
                if !sink.send_changes(changes, origin) {
                    return;
                }
            }
            state = Some(st);
            let Some(w) = watch.as_mut() else {
                tokio::time::sleep(self.poll).await;
                continue;
            };
            tokio::select! {
                () = tokio::time::sleep(self.poll) => {}
                r = w.changed() => match r {
                    Ok(Wake::Named(names)) => {
                        tracing::debug!(files = names.len(), "configuration files changed");
                        scope = Next::Named(names);
                    }
                    Ok(Wake::All) => {
                        tracing::debug!("configuration directory changed");
                        scope = Next::All;
                    }
                    Ok(Wake::Gone) => {
                        tracing::warn!(dir = %self.dir.display(), "the configuration directory was removed or replaced; watching it again");
                        watch = None;
                        scope = Next::All;
                    }
                    Err(e) => {
                        tracing::warn!(dir = %self.dir.display(), error = %e, "reading directory notifications failed; watching it again");
                        watch = None;
                        scope = Next::All;
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests;

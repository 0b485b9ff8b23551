//! Where the desired objects come from.
//!
//! A [`Source`] pushes [`Snapshot`]s of every VirtualService, RealServer and
//! Node into the agent loop. The standalone mode reads a directory of YAML
//! manifests ([`DirSource`]); a Kubernetes mode can be a second source
//! feeding the same loop from watches.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::{Duration, SystemTime};

use lvs_api::manifest::{ManifestSet, parse};
use lvs_api::{NodeInfo, Object, RealServerSpec, VirtualServiceSpec};
use lvs_planner::Changes;

use crate::metrics::Metrics;

/// Every object the planner needs, as of one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub virtual_services: Vec<Object<VirtualServiceSpec>>,
    pub real_servers: Vec<Object<RealServerSpec>>,
    pub nodes: Vec<NodeInfo>,
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
    /// Stop after the sync in progress; the kernel is left as it is.
    Shutdown,
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
type Fingerprint = BTreeMap<PathBuf, (Option<SystemTime>, u64, u64)>;

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
            let text = match std::fs::read_to_string(f) {
                Ok(t) => t,
                Err(e) => {
                    errors.push(ConfigError {
                        file: f.clone(),
                        message: format!("cannot read: {e}"),
                    });
                    continue;
                }
            };
            match parse(&text) {
                Ok(m) => set.extend(m),
                Err(e) => errors.push(ConfigError {
                    file: f.clone(),
                    message: e.to_string(),
                }),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Snapshot {
            virtual_services: set.virtual_services,
            real_servers: set.real_servers,
            nodes: set.nodes,
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
                for e in &errors {
                    tracing::error!(
                        file = %e.file.display(),
                        error = %e.message,
                        "configuration file rejected; keeping the last good state"
                    );
                    self.metrics.config_error(&e.file.display().to_string());
                }
                None
            }
        }
    }
}

impl Source for DirSource {
    async fn run(self, sink: SnapshotSink) {
        let mut last: Option<Fingerprint> = None;
        let mut reported_unreadable = false;
        loop {
            let dir = self.dir.clone();
            let fp = tokio::task::spawn_blocking(move || Self::fingerprint(&dir))
                .await
                .unwrap_or_else(|e| {
                    Err(ConfigError {
                        file: self.dir.clone(),
                        message: format!("fingerprint task failed: {e}"),
                    })
                });
            let fp = match fp {
                Ok(fp) => {
                    reported_unreadable = false;
                    Some(fp)
                }
                Err(e) => {
                    if !reported_unreadable {
                        tracing::error!(dir = %self.dir.display(), error = %e.message, "configuration directory unreadable; keeping the last good state");
                        self.metrics.config_error(&self.dir.display().to_string());
                        reported_unreadable = true;
                    }
                    None
                }
            };
            if fp.is_some() && fp != last {
                let me = self.clone();
                let loaded = tokio::task::spawn_blocking(move || me.load_reported())
                    .await
                    .ok()
                    .flatten();
                if let Some(snapshot) = loaded {
                    tracing::info!(
                        origin = %snapshot.origin,
                        virtual_services = snapshot.virtual_services.len(),
                        real_servers = snapshot.real_servers.len(),
                        nodes = snapshot.nodes.len(),
                        "configuration loaded"
                    );
                    if !sink.send(snapshot) {
                        return;
                    }
                }
                last = fp;
            }
            tokio::time::sleep(self.poll).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VS: &str = r#"
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: VirtualService
metadata: {name: web, namespace: default}
spec:
  address: 10.0.0.1
  port: 80
  directors: {nodeSelector: {}}
  realServerSelector: {matchLabels: {app: web}}
"#;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("lvs-agent-src-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn reads_yaml_files_in_order_and_ignores_others() {
        let d = dir("order");
        std::fs::write(d.join("a.yaml"), VS).unwrap();
        std::fs::write(d.join("b.yml"), VS.replace("10.0.0.1", "10.0.0.2")).unwrap();
        std::fs::write(d.join("notes.txt"), "not yaml: [").unwrap();
        std::fs::write(d.join(".hidden.yaml"), "garbage: [").unwrap();
        let s = DirSource::load(&d).unwrap();
        assert_eq!(
            s.virtual_services.len(),
            1,
            "same name: the later file wins"
        );
        assert_eq!(
            s.virtual_services[0].spec.address.as_deref(),
            Some("10.0.0.2")
        );
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn errors_name_the_file_the_field_and_the_reason() {
        let d = dir("errors");
        std::fs::write(d.join("good.yaml"), VS).unwrap();
        std::fs::write(d.join("bad.yaml"), VS.replace("port: 80", "port: 70000")).unwrap();
        std::fs::write(d.join("worse.yaml"), "kind: [").unwrap();
        let errors = DirSource::load(&d).unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        let bad = errors[0].to_string();
        assert!(bad.contains("bad.yaml"), "{bad}");
        assert!(bad.contains("spec.port"), "{bad}");
        assert!(bad.contains("70000"), "{bad}");
        assert!(
            errors[1].to_string().contains("worse.yaml"),
            "{}",
            errors[1]
        );
        let missing = DirSource::load(&d.join("nope")).unwrap_err();
        assert!(
            missing[0]
                .message
                .contains("cannot read the configuration directory")
        );
        std::fs::remove_dir_all(d).unwrap();
    }
}

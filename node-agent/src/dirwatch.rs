//! Wake-ups for the manifest directory: inotify tells the
//! [`DirSource`](crate::source::DirSource) that a file was written, renamed
//! or removed, so a change is read at once rather than at the next poll.
//!
//! Watched: `IN_CLOSE_WRITE` (a file written and closed, never half-written
//! content), `IN_MOVED_TO`/`IN_MOVED_FROM` (atomic replacement by rename, and
//! the `..data` symlink swap of a mounted ConfigMap), `IN_DELETE`. A wake-up
//! names the files these events were about, so that only they are read: a
//! file still open for writing (rewritten in place) is not read half-written
//! because another file's event woke the source; it is read once its writer
//! closes it. A change below a subdirectory waits for the poll, which stays
//! as the fallback and reads every file whose stamp changed.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io;
use std::path::Path;

/// What a wake-up says changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wake {
    /// Files of the directory (by name) that were written and closed,
    /// renamed or removed.
    Named(BTreeSet<OsString>),
    /// Read every file: events were lost (the queue overflowed), or a name
    /// starting with `..` changed (a mounted ConfigMap swaps its `..data`
    /// link, which changes what every file's link points to).
    All,
    /// The directory was removed or replaced: a new watch is needed.
    Gone,
}

#[cfg(target_os = "linux")]
mod imp {
    use std::collections::BTreeSet;
    use std::io;
    use std::path::Path;

    use futures::{FutureExt, StreamExt};
    use inotify::{EventMask, EventStream, Inotify, WatchMask};

    /// Room for a few dozen events with file names; the kernel keeps the
    /// rest queued for the next read.
    const BUFFER: usize = 4096;

    pub struct DirWatch {
        events: EventStream<[u8; BUFFER]>,
    }

    impl DirWatch {
        pub fn new(dir: &Path) -> io::Result<Self> {
            let ino = Inotify::init()?;
            ino.watches().add(
                dir,
                WatchMask::CLOSE_WRITE
                    | WatchMask::MOVED_TO
                    | WatchMask::MOVED_FROM
                    | WatchMask::DELETE
                    | WatchMask::ONLYDIR,
            )?;
            Ok(DirWatch {
                events: ino.into_event_stream([0; BUFFER])?,
            })
        }

        pub async fn changed(&mut self) -> io::Result<super::Wake> {
            let closed = || io::Error::new(io::ErrorKind::UnexpectedEof, "inotify closed");
            let first = self.events.next().await.ok_or_else(closed)??;
            let mut wake = Wake::default();
            wake.add(first.mask, first.name);
            // Take what else is queued already, so a burst of writes is one
            // wake-up.
            while let Some(next) = self.events.next().now_or_never().flatten() {
                let next = next?;
                wake.add(next.mask, next.name);
            }
            Ok(wake.into())
        }
    }

    /// The events of one wake-up, gathered.
    #[derive(Default)]
    struct Wake {
        names: BTreeSet<std::ffi::OsString>,
        all: bool,
        gone: bool,
    }

    impl Wake {
        fn add(&mut self, mask: EventMask, name: Option<std::ffi::OsString>) {
            if mask.contains(EventMask::IGNORED) {
                self.gone = true;
            } else if mask.contains(EventMask::Q_OVERFLOW) {
                self.all = true;
            } else {
                match name {
                    Some(n) if n.as_encoded_bytes().starts_with(b"..") => self.all = true,
                    Some(n) => {
                        self.names.insert(n);
                    }
                    None => self.all = true,
                }
            }
        }
    }

    impl From<Wake> for super::Wake {
        fn from(w: Wake) -> Self {
            if w.gone {
                super::Wake::Gone
            } else if w.all {
                super::Wake::All
            } else {
                super::Wake::Named(w.names)
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::io;
    use std::path::Path;

    pub struct DirWatch;

    impl DirWatch {
        pub fn new(_dir: &Path) -> io::Result<Self> {
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "directory notifications need Linux (inotify)",
            ))
        }

        pub async fn changed(&mut self) -> io::Result<super::Wake> {
            std::future::pending().await
        }
    }
}

/// An inotify watch on one directory.
pub struct DirWatch(imp::DirWatch);

impl std::fmt::Debug for DirWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DirWatch")
    }
}

impl DirWatch {
    /// Watches `dir` (which must exist and be a directory). Needs a Tokio
    /// runtime with I/O enabled.
    pub fn new(dir: &Path) -> io::Result<Self> {
        imp::DirWatch::new(dir).map(DirWatch)
    }

    /// Waits until something in the directory changed and consumes the
    /// notifications queued so far.
    pub async fn changed(&mut self) -> io::Result<Wake> {
        self.0.changed().await
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn within(what: &str, w: &mut DirWatch) -> Wake {
        tokio::time::timeout(Duration::from_secs(5), w.changed())
            .await
            .unwrap_or_else(|_| panic!("{what}: no notification within 5 s"))
            .unwrap_or_else(|e| panic!("{what}: {e}"))
    }

    #[tokio::test]
    async fn a_burst_of_writes_is_one_change_and_a_removed_directory_ends_the_watch() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = DirWatch::new(dir.path()).unwrap();
        for i in 0..20 {
            std::fs::write(dir.path().join(format!("{i}.yaml")), "x").unwrap();
        }
        let names: BTreeSet<OsString> = (0..20).map(|i| format!("{i}.yaml").into()).collect();
        assert_eq!(within("twenty writes", &mut w).await, Wake::Named(names));
        // The burst was taken whole: nothing is left for a second wake-up.
        assert!(
            tokio::time::timeout(Duration::from_millis(200), w.changed())
                .await
                .is_err(),
            "a second wake-up for the same burst"
        );
        std::fs::remove_file(dir.path().join("0.yaml")).unwrap();
        assert_eq!(
            within("a removal", &mut w).await,
            Wake::Named(["0.yaml".into()].into())
        );
        // A ConfigMap's link swap: every file is read.
        std::os::unix::fs::symlink("1.yaml", dir.path().join("..data_tmp")).unwrap();
        std::fs::rename(dir.path().join("..data_tmp"), dir.path().join("..data")).unwrap();
        assert_eq!(within("the ..data swap", &mut w).await, Wake::All);
        let path = dir.path().to_path_buf();
        drop(dir);
        assert!(!path.exists());
        // The files' removals and then IN_IGNORED for the watch itself.
        assert_eq!(within("the directory removed", &mut w).await, Wake::Gone);
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let e = DirWatch::new(Path::new("/nonexistent/lvs-dir")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
    }
}

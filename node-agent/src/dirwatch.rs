//! Wake-ups for the manifest directory: inotify tells the
//! [`DirSource`](crate::source::DirSource) that a file was written, renamed
//! or removed, so a change is read at once rather than at the next poll.
//!
//! Watched: `IN_CLOSE_WRITE` (a file written and closed, never half-written
//! content), `IN_MOVED_TO`/`IN_MOVED_FROM` (atomic replacement by rename, and
//! the `..data` symlink swap of a mounted ConfigMap), `IN_DELETE`. A file
//! still open for writing, or a change below a subdirectory, waits for the
//! poll, which stays as the fallback.

use std::io;
use std::path::Path;

#[cfg(target_os = "linux")]
mod imp {
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

        pub async fn changed(&mut self) -> io::Result<bool> {
            let closed = || io::Error::new(io::ErrorKind::UnexpectedEof, "inotify closed");
            let first = self.events.next().await.ok_or_else(closed)??;
            let mut alive = !first.mask.contains(EventMask::IGNORED);
            // Take what else is queued already, so a burst of writes is one
            // wake-up.
            while let Some(next) = self.events.next().now_or_never().flatten() {
                alive &= !next?.mask.contains(EventMask::IGNORED);
            }
            Ok(alive)
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

        pub async fn changed(&mut self) -> io::Result<bool> {
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
    /// notifications queued so far. `Ok(false)`: the watch is gone (the
    /// directory was removed or replaced) and a new one is needed.
    pub async fn changed(&mut self) -> io::Result<bool> {
        self.0.changed().await
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn within(what: &str, w: &mut DirWatch) -> bool {
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
        assert!(within("twenty writes", &mut w).await);
        // The burst was taken whole: nothing is left for a second wake-up.
        assert!(
            tokio::time::timeout(Duration::from_millis(200), w.changed())
                .await
                .is_err(),
            "a second wake-up for the same burst"
        );
        std::fs::remove_file(dir.path().join("0.yaml")).unwrap();
        assert!(within("a removal", &mut w).await);
        let path = dir.path().to_path_buf();
        drop(dir);
        assert!(!path.exists());
        // The files' removals and then IN_IGNORED for the watch itself.
        assert!(!within("the directory removed", &mut w).await);
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

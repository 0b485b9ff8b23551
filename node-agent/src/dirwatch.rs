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
    use std::os::fd::{AsFd, AsRawFd, RawFd};
    use std::path::Path;

    use nix::errno::Errno;
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    use tokio::io::unix::AsyncFd;

    struct Fd(Inotify);

    impl AsRawFd for Fd {
        fn as_raw_fd(&self) -> RawFd {
            self.0.as_fd().as_raw_fd()
        }
    }

    pub struct DirWatch {
        fd: AsyncFd<Fd>,
    }

    #[allow(unsafe_code)]
    fn register(fd: Fd) -> io::Result<AsyncFd<Fd>> {
        // SAFETY: the AsyncFd owns the Inotify, which owns its descriptor:
        // it stays open, and `as_raw_fd` returns the same number, until the
        // AsyncFd is dropped.
        unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
            .map_err(|e| e.into_parts().1)
    }

    impl DirWatch {
        pub fn new(dir: &Path) -> io::Result<Self> {
            let ino = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
            ino.add_watch(
                dir,
                AddWatchFlags::IN_CLOSE_WRITE
                    | AddWatchFlags::IN_MOVED_TO
                    | AddWatchFlags::IN_MOVED_FROM
                    | AddWatchFlags::IN_DELETE
                    | AddWatchFlags::IN_ONLYDIR,
            )?;
            Ok(DirWatch {
                fd: register(Fd(ino))?,
            })
        }

        pub async fn changed(&mut self) -> io::Result<bool> {
            loop {
                let mut ready = self.fd.readable().await?;
                match ready.get_inner().0.read_events() {
                    Ok(events) => {
                        return Ok(!events
                            .iter()
                            .any(|e| e.mask.contains(AddWatchFlags::IN_IGNORED)));
                    }
                    Err(Errno::EAGAIN) => ready.clear_ready(),
                    Err(e) => return Err(e.into()),
                }
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

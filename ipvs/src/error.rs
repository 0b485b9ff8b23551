use std::io;

use netlink_packet_core::DecodeError;

/// Failure of a client call as a whole (as opposed to [`OpError`], which is
/// one operation of a batch refused by the kernel).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("netlink socket {action} failed")]
    Io {
        action: &'static str,
        #[source]
        source: io::Error,
    },
    #[error(
        "generic netlink family \"IPVS\" is not available (errno {errno}): is the ip_vs module loaded, and does /proc/sys/kernel/modprobe point at a real modprobe?"
    )]
    FamilyNotFound { errno: i32 },
    #[error("malformed netlink reply to {request}")]
    Decode {
        request: String,
        #[source]
        source: DecodeError,
    },
    #[error("kernel refused {request}: {} (errno {errno}){}", io::Error::from_raw_os_error(*errno), ext_ack_suffix(ext_ack))]
    Kernel {
        request: String,
        errno: i32,
        ext_ack: Option<String>,
    },
    #[error(
        "received a {len}-byte datagram but the receive buffer holds {capacity} bytes; the reply was truncated"
    )]
    Truncated { len: usize, capacity: usize },
    #[error("unexpected reply to {request}: {what}")]
    Protocol { request: String, what: String },
    #[error("dump for {request} was interrupted by a concurrent table change; retry it")]
    DumpInterrupted { request: String },
}

/// Convenience alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Stable, low-cardinality name for metrics labels.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Io { .. } => "io",
            Error::FamilyNotFound { .. } => "family_not_found",
            Error::Decode { .. } => "decode",
            Error::Kernel { .. } => "kernel",
            Error::Truncated { .. } => "truncated",
            Error::Protocol { .. } => "protocol",
            Error::DumpInterrupted { .. } => "dump_interrupted",
        }
    }

    /// The kernel's errno if the kernel refused the request.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Kernel { errno, .. } | Error::FamilyNotFound { errno } => Some(*errno),
            Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

fn ext_ack_suffix(ext_ack: &Option<String>) -> String {
    ext_ack
        .as_deref()
        .map(|m| format!(": {m}"))
        .unwrap_or_default()
}

/// Errno values the IPVS family returns, named so callers can branch on them.
pub mod errno {
    pub const EPERM: i32 = 1;
    pub const ENOENT: i32 = 2;
    pub const ESRCH: i32 = 3;
    pub const ENOMEM: i32 = 12;
    pub const EBUSY: i32 = 16;
    pub const EEXIST: i32 = 17;
    pub const EINVAL: i32 = 22;
    pub const EOPNOTSUPP: i32 = 95;
    pub const ENOBUFS: i32 = 105;
}

/// One operation of a batch that the kernel refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("operation #{index} ({op}) failed: {} (errno {errno}){}", io::Error::from_raw_os_error(*errno), ext_ack_suffix(ext_ack))]
pub struct OpError {
    /// Position of the operation in the slice given to `apply`.
    pub index: usize,
    /// Human-readable operation, e.g. `NEW_DEST TCP 10.0.0.1:80 -> 10.0.1.5:8080`.
    pub op: String,
    /// Positive errno (EEXIST, ESRCH, ENOENT, EINVAL, ...).
    pub errno: i32,
    /// Extended-ack message, when the kernel gave one.
    pub ext_ack: Option<String>,
}

impl OpError {
    /// NEW_* on something that exists.
    pub fn is_exists(&self) -> bool {
        self.errno == errno::EEXIST
    }

    /// The service (ESRCH) or destination (ENOENT) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self.errno, errno::ESRCH | errno::ENOENT)
    }

    /// Stable name of the errno for metrics labels.
    pub fn metric_label(&self) -> &'static str {
        match self.errno {
            errno::EPERM => "eperm",
            errno::ENOENT => "enoent",
            errno::ESRCH => "esrch",
            errno::ENOMEM => "enomem",
            errno::EBUSY => "ebusy",
            errno::EEXIST => "eexist",
            errno::EINVAL => "einval",
            errno::EOPNOTSUPP => "eopnotsupp",
            _ => "other",
        }
    }
}

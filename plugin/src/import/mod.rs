//! Importers: an `ipvsadm -Sn` rule set or a keepalived configuration in,
//! VirtualService and RealServer objects out, with a report of what could
//! not be carried over.
//!
//! Each parser is pure (text in, [`Draft`] out, no I/O) and never panics:
//! malformed input is a [`ParseError`] naming its line. What is well formed
//! but has no equivalent in the API becomes a [`Note`] with its line.
//! [`build`] then turns the drafts into objects and checks each with the
//! API's own validators, so nothing is emitted that admission refuses.

pub mod build;
pub mod fuzzing;
pub mod ipvsadm;
pub mod keepalived;

use std::fmt;

use lvs_api::{ForwardingMethod, HealthAction, HealthCheck, Tunnel, VirtualServiceSpec};

/// The input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The output of `ipvsadm-save -n` / `ipvsadm -Sn`.
    Ipvsadm,
    /// A keepalived.conf (virtual_server and virtual_server_group blocks).
    Keepalived,
}

/// Parses `text` in `format`.
pub fn parse(format: Format, text: &str) -> Result<Draft, ParseError> {
    match format {
        Format::Ipvsadm => ipvsadm::parse(text),
        Format::Keepalived => keepalived::parse(text),
    }
}

/// Malformed input: where, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct ParseError {
    /// 1-based line of the input.
    pub line: usize,
    pub kind: ParseErrorKind,
}

/// What was wrong with a line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    #[error("option `{option}` needs a value")]
    MissingValue { option: String },
    #[error("option `{option}` value `{value}` is not {expected}")]
    BadValue {
        option: String,
        value: String,
        expected: String,
    },
    #[error("unknown option `{option}`; expected {expected}")]
    UnknownOption { option: String, expected: String },
    #[error("`{word}` is not a command; expected {expected}")]
    UnknownCommand { word: String, expected: String },
    #[error("{0}")]
    Structure(String),
}

impl ParseError {
    pub(crate) fn new(line: usize, kind: ParseErrorKind) -> Self {
        ParseError { line, kind }
    }
    pub(crate) fn structure(line: usize, message: impl Into<String>) -> Self {
        ParseError::new(line, ParseErrorKind::Structure(message.into()))
    }
    pub(crate) fn bad_value(line: usize, option: &str, value: &str, expected: &str) -> Self {
        ParseError::new(
            line,
            ParseErrorKind::BadValue {
                option: option.to_string(),
                value: value.to_string(),
                expected: expected.to_string(),
            },
        )
    }
    pub(crate) fn missing(line: usize, option: &str) -> Self {
        ParseError::new(
            line,
            ParseErrorKind::MissingValue {
                option: option.to_string(),
            },
        )
    }
}

/// One line or option of the input that was not carried over, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Note {
    pub line: usize,
    pub message: String,
}

impl Note {
    pub fn new(line: usize, message: impl Into<String>) -> Self {
        Note {
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// A virtual service as the input states it, before names, labels and
/// directors are chosen. `spec` has no directors and no selector yet.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceDraft {
    /// Where the service is defined.
    pub line: usize,
    pub spec: VirtualServiceSpec,
    pub real_servers: Vec<RealServerDraft>,
    /// Per-realserver health checks (keepalived), in realserver order:
    /// the service takes the first and reports the others that differ.
    pub checks: Vec<CheckDraft>,
}

/// One destination of a [`ServiceDraft`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealServerDraft {
    pub line: usize,
    pub address: std::net::IpAddr,
    /// The port as the input gives it; `None` when left out.
    pub port: Option<u16>,
    pub weight: i64,
    pub forwarding: ForwardingMethod,
    /// The encapsulation with TUN (`None`: ipip).
    pub tunnel: Option<Tunnel>,
    pub upper_threshold: Option<i64>,
    pub lower_threshold: Option<i64>,
}

/// The health check of one keepalived realserver, as the service would
/// carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckDraft {
    /// The realserver's line.
    pub line: usize,
    /// `None`: the realserver has no check the API can express.
    pub check: Option<HealthCheck>,
    pub on_failure: HealthAction,
}

/// The result of parsing one input: the services and the notes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Draft {
    pub services: Vec<ServiceDraft>,
    pub notes: Vec<Note>,
}

/// A netmask in dotted form as a prefix length, when its ones are contiguous.
pub(crate) fn netmask_prefix(mask: std::net::Ipv4Addr) -> Option<i64> {
    let m = u32::from(mask);
    let ones = m.leading_ones();
    (m.checked_shl(ones).unwrap_or(0) == 0).then_some(i64::from(ones))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netmask_prefix_takes_contiguous_masks_only() {
        assert_eq!(netmask_prefix("255.255.255.0".parse().unwrap()), Some(24));
        assert_eq!(netmask_prefix("255.255.255.255".parse().unwrap()), Some(32));
        assert_eq!(netmask_prefix("0.0.0.0".parse().unwrap()), Some(0));
        assert_eq!(netmask_prefix("255.0.255.0".parse().unwrap()), None);
    }
}

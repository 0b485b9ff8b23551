//! The operator's error type.

use std::time::Duration;

/// Errors of one reconcile or of the leader election.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed.
    #[error("{action} failed: {source}")]
    Kube {
        /// What was attempted, e.g. "apply status of VirtualService default/web".
        action: String,
        #[source]
        source: kube::Error,
    },

    /// A call to the API server did not finish in time.
    #[error("{action} did not finish within {after:?}")]
    Timeout { action: String, after: Duration },

    /// An object in the store has no namespace although its kind is namespaced.
    #[error("{kind} {name} has no metadata.namespace, but the kind is namespaced")]
    MissingNamespace { kind: &'static str, name: String },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A short, stable label for the `error` label of the error counter.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube { source, .. } => match source {
                kube::Error::Api(s) if s.code == 409 => "conflict",
                kube::Error::Api(s) if s.code == 403 => "forbidden",
                kube::Error::Api(s) if s.code == 404 => "not_found",
                kube::Error::Api(s) if s.code == 422 => "invalid",
                kube::Error::Api(_) => "api",
                _ => "transport",
            },
            Error::Timeout { .. } => "timeout",
            Error::MissingNamespace { .. } => "missing_namespace",
        }
    }

    pub(crate) fn kube(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let action = action.into();
        move |source| Error::Kube { action, source }
    }
}

/// Retry delay after `failures` consecutive failures of one object:
/// 1 s doubling up to 5 minutes, so a broken object does not hammer the API
/// server while a transient error clears quickly.
pub fn backoff_delay(failures: u32) -> Duration {
    const MAX: Duration = Duration::from_secs(300);
    let exp = failures.saturating_sub(1).min(16);
    Duration::from_secs(1u64 << exp).min(MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16) -> Error {
        Error::Kube {
            action: "apply".into(),
            source: kube::Error::Api(Box::new(
                kube::core::Status::failure("x", "y").with_code(code),
            )),
        }
    }

    #[test]
    fn metric_labels_distinguish_api_failures() {
        assert_eq!(api_error(409).metric_label(), "conflict");
        assert_eq!(api_error(403).metric_label(), "forbidden");
        assert_eq!(api_error(500).metric_label(), "api");
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff_delay(0), Duration::from_secs(1));
        assert_eq!(backoff_delay(1), Duration::from_secs(1));
        assert_eq!(backoff_delay(2), Duration::from_secs(2));
        assert_eq!(backoff_delay(4), Duration::from_secs(8));
        assert_eq!(backoff_delay(9), Duration::from_secs(256));
        assert_eq!(backoff_delay(10), Duration::from_secs(300));
        assert_eq!(backoff_delay(u32::MAX), Duration::from_secs(300));
    }
}

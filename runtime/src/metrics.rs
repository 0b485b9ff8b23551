//! The metrics exposition both binaries serve: a `prometheus-client`
//! registry, encoded as OpenMetrics text.
//!
//! OpenMetrics names a counter's family without its `_total` suffix
//! (`# TYPE lvs_agent_syncs counter`) and its samples with it
//! (`lvs_agent_syncs_total{...}`); served as [`CONTENT_TYPE`], Prometheus
//! reads both as the one counter `lvs_agent_syncs_total`. Served as the
//! older `text/plain; version=0.0.4` the samples would lose their type, so
//! the content type goes with the encoder.

use std::fmt::Write;

use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};
use prometheus_client::registry::Registry;

/// The content type of [`encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The whole exposition of `registry`, `# EOF` included.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail, and the registry's own metrics and
    // collectors write only into the given writer.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

/// A label value escaped for the text format (backslash, double quote,
/// newline). `prometheus-client` writes label values as they are, which is
/// right for fixed values but not for a file name or anything else a user
/// chose.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Escaped<S>(pub S);

impl<S: AsRef<str>> EncodeLabelValue for Escaped<S> {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        let v = self.0.as_ref();
        let mut rest = v;
        while let Some(i) = rest.find(['\\', '"', '\n']) {
            encoder.write_str(&rest[..i])?;
            encoder.write_str(match rest.as_bytes()[i] {
                b'\\' => "\\\\",
                b'"' => "\\\"",
                _ => "\\n",
            })?;
            rest = &rest[i + 1..];
        }
        encoder.write_str(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::EncodeLabelSet;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;

    #[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
    struct FileLabel {
        file: Escaped<String>,
    }

    #[test]
    fn counters_keep_their_total_suffix_and_values_are_escaped() {
        let mut registry = Registry::with_prefix("lvs_test");
        let errors = Family::<FileLabel, Counter>::default();
        // The registry ends the help with a full stop.
        registry.register("config_errors", "Files that failed", errors.clone());
        errors
            .get_or_create(&FileLabel {
                file: Escaped("/etc/a \"b\"\\c\nd.yaml".into()),
            })
            .inc();
        let text = encode(&registry);
        assert_eq!(
            text,
            "# HELP lvs_test_config_errors Files that failed.\n\
             # TYPE lvs_test_config_errors counter\n\
             lvs_test_config_errors_total{file=\"/etc/a \\\"b\\\"\\\\c\\nd.yaml\"} 1\n\
             # EOF\n"
        );
    }
}

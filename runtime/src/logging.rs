//! The tracing subscriber both binaries install: the same filter variable,
//! the same formats, the same JSON shape.

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// The variable holding the log filter (`info`, `lvs_node_agent=debug`, …).
pub const FILTER_VAR: &str = "LVS_LOG";

/// Read when [`FILTER_VAR`] is unset, as most Rust programs do.
pub const FALLBACK_FILTER_VAR: &str = "RUST_LOG";

/// The filter used when neither variable is set.
pub const DEFAULT_FILTER: &str = "info";

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message`
    /// and the event's fields at the top level, beside the current spans.
    Json,
}

/// The filter from [`FILTER_VAR`], else [`FALLBACK_FILTER_VAR`], else
/// [`DEFAULT_FILTER`]. A variable that does not parse is passed over.
pub fn filter() -> EnvFilter {
    EnvFilter::try_from_env(FILTER_VAR)
        .or_else(|_| EnvFilter::try_from_env(FALLBACK_FILTER_VAR))
        .unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER))
}

/// Installs the global subscriber, writing to standard error (colours only
/// on a terminal). Call once, first thing in `main`.
pub fn init(format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[arg(long, value_enum, default_value_t)]
        log_format: LogFormat,
    }

    #[test]
    fn log_format_parses_text_and_json_only() {
        let f = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("x").chain(args.iter().copied()))
                .map(|c| c.log_format)
        };
        assert_eq!(f(&[]).unwrap(), LogFormat::Text);
        assert_eq!(f(&["--log-format=json"]).unwrap(), LogFormat::Json);
        assert_eq!(f(&["--log-format", "text"]).unwrap(), LogFormat::Text);
        let e = f(&["--log-format=xml"]).unwrap_err().to_string();
        assert!(e.contains("possible values: text, json"), "{e}");
    }

    #[test]
    fn json_lines_carry_the_fields_at_the_top_level() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let w = buf.clone();
        // The same builder calls as `init`, with a writer the test can read.
        let sub = tracing_subscriber::fmt()
            .with_writer(move || w.clone())
            .json()
            .flatten_event(true)
            .finish();
        tracing::subscriber::with_default(sub, || {
            tracing::info!(services = 3, "sync done");
        });
        let line = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(
            line.contains("\"message\":\"sync done\"") && line.contains("\"services\":3"),
            "{line}"
        );
        assert!(!line.contains("\"fields\""), "{line}");
    }
}

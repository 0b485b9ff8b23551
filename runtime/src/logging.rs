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

/// kube-client's request tracing layer logs every failed request at error
/// level, without rate limit: while the API server is away that is several
/// lines a second per watch and writer, and each caller already reports its
/// failures (once, then now and then). Off unless a filter names it.
pub const QUIET_TARGET: &str = "kube_client::client::builder";

/// The filter from [`FILTER_VAR`], else [`FALLBACK_FILTER_VAR`], else
/// [`DEFAULT_FILTER`]. A variable that does not parse is passed over.
/// [`QUIET_TARGET`] is off unless the filter mentions `kube_client`.
pub fn filter() -> EnvFilter {
    let text = std::env::var(FILTER_VAR)
        .ok()
        .filter(|v| EnvFilter::try_new(v).is_ok())
        .or_else(|| {
            std::env::var(FALLBACK_FILTER_VAR)
                .ok()
                .filter(|v| EnvFilter::try_new(v).is_ok())
        })
        .unwrap_or_else(|| DEFAULT_FILTER.to_string());
    filter_from(&text)
}

/// The filter for `text`, with [`QUIET_TARGET`] off unless named.
pub fn filter_from(text: &str) -> EnvFilter {
    let f = EnvFilter::try_new(text).unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    if text.contains("kube_client") {
        return f;
    }
    match format!("{QUIET_TARGET}=off").parse() {
        Ok(d) => f.add_directive(d),
        Err(_) => f,
    }
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
    fn kube_clients_per_request_errors_are_off_unless_asked_for() {
        let lines = |filter: EnvFilter| {
            let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
            let w = buf.clone();
            let sub = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(move || Writer(w.clone()))
                .finish();
            tracing::subscriber::with_default(sub, || {
                tracing::error!(target: "kube_client::client::builder", "failed with error x");
                tracing::info!(target: "lvs_node_agent::agent", "sync done");
            });
            let s = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
            s.lines().count()
        };
        assert_eq!(lines(filter_from("info")), 1);
        assert_eq!(lines(filter_from("debug")), 1);
        assert_eq!(lines(filter_from("info,kube_client=error")), 2);
    }

    struct Writer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Writer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
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

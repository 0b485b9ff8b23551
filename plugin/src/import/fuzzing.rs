//! The properties every input must keep, for the fuzz targets (`fuzz/`,
//! nightly) and the mutation tests (`tests/fixtures.rs`, stable): no panic;
//! an error names a line of the input; a report line too; and whatever is
//! imported is accepted by the manifest reader with the admission rules.

use super::build::{self, DEFAULT_DIRECTORS, Options};
use super::{Format, parse};

/// Checks one input; panics when a property does not hold. Returns whether
/// the input imported (so callers can tell both outcomes were exercised).
pub fn check(format: Format, text: &str) -> bool {
    let lines = text.lines().count();
    match parse(format, text) {
        Ok(draft) => {
            let opts = Options {
                namespace: "default".into(),
                directors: build::parse_selector(DEFAULT_DIRECTORS)
                    .expect("the default director selector parses"),
                interface: None,
                prefix: "imported".into(),
            };
            let out = build::build(draft, &opts);
            for n in &out.notes {
                assert!(
                    (1..=lines).contains(&n.line),
                    "report line `{n}` outside the {lines} lines of the input"
                );
            }
            let yaml = out.to_yaml().expect("the objects serialize");
            if let Err(e) = lvs_api::manifest::parse(&yaml) {
                panic!("emitted objects admission refuses: {e}\noutput:\n{yaml}");
            }
            true
        }
        Err(e) => {
            assert!(
                (1..=lines.max(1)).contains(&e.line),
                "error `{e}` outside the {lines} lines of the input"
            );
            false
        }
    }
}

/// [`check`] on arbitrary bytes (lossily decoded as UTF-8, as the plugin
/// reads files).
pub fn check_bytes(format: Format, data: &[u8]) -> bool {
    check(format, &String::from_utf8_lossy(data))
}

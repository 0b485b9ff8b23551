//! Arbitrary bytes as a keepalived configuration: the importer must not
//! panic, an error or a report line names a line of the input, and what it
//! imports passes the admission rules (see
//! `lvs_kubectl::import::fuzzing::check`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lvs_kubectl::import::{Format, fuzzing};

fuzz_target!(|data: &[u8]| {
    fuzzing::check_bytes(Format::Keepalived, data);
});

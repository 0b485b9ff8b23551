//! The fuzzing oracle, shared by the `cargo fuzz` target (fuzz/) and the
//! corpus regression test so both check exactly the same properties.

use crate::codec::{emit_message, parse_datagram, parse_message};

/// Feed arbitrary bytes to the datagram parser. It must never panic; and
/// whatever it accepts must survive emit → parse unchanged, with a second
/// emit giving the same bytes. Panics (the fuzzer's signal) otherwise.
pub fn check_datagram(data: &[u8]) {
    let Ok(messages) = parse_datagram(data) else {
        return;
    };
    for msg in messages {
        let mut msg = msg;
        // Values from ≤ 64 KiB inputs always fit, but stay clear of the
        // core crate's u16 attribute lengths on pathological sizes.
        if msg.buffer_len() > usize::from(u16::MAX) {
            continue;
        }
        let bytes = emit_message(&mut msg);
        let again = parse_message(&bytes)
            .unwrap_or_else(|e| panic!("re-emitted message does not parse: {e}\n{msg:?}"));
        assert_eq!(again, msg, "emit → parse changed the message");
        let mut again = again;
        assert_eq!(emit_message(&mut again), bytes, "second emit differs");
    }
}

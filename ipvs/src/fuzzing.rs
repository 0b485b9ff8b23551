//! The fuzzing oracle, shared by the `cargo fuzz` target (fuzz/) and the
//! corpus regression test so both check exactly the same properties.

use netlink_packet_core::NetlinkPayload;

use crate::codec::{IpvsAttr, emit_message, parse_datagram, parse_message, split_datagram};
use crate::types::{DestEntry, Destination, Family, Service};

/// Feed arbitrary bytes to the datagram parser. It must never panic; and
/// whatever it accepts must survive emit → parse unchanged, with a second
/// emit giving the same bytes. Panics (the fuzzer's signal) otherwise.
///
/// Also: every message the allocation-free dump decoders (`fast`) accept
/// must decode to the same value on the general path.
pub fn check_datagram(data: &[u8]) {
    fast_decoded(data);
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

/// Run the allocation-free dump decoders on every message of `data` and
/// panic if one accepts a message that the general path decodes
/// differently or rejects. Returns how many messages they accepted.
pub fn fast_decoded(data: &[u8]) -> usize {
    let mut accepted = 0;
    for bytes in split_datagram(data).map_while(|m| m.ok()) {
        let general = || match parse_message(bytes).map(|m| m.payload) {
            Ok(NetlinkPayload::InnerMessage(genl)) => Some(genl.payload),
            _ => None,
        };
        if let Some(fast) = crate::fast::service_entry(bytes) {
            let msg = general().expect("fast path accepted a service the general path rejects");
            let attrs = msg.nlas.iter().find_map(|a| match a {
                IpvsAttr::Service(n) => Some(&n.attrs),
                _ => None,
            });
            let slow = Service::from_attrs(attrs.expect("no service nest")).ok();
            assert_eq!(slow, Some(fast), "fast and general service decoding differ");
            accepted += 1;
        }
        for family in [Family::V4, Family::V6] {
            if let Some(fast) = crate::fast::dest_entry(bytes, family) {
                let msg =
                    general().expect("fast path accepted a destination the general path rejects");
                let attrs = msg.nlas.iter().find_map(|a| match a {
                    IpvsAttr::Dest(n) => Some(&n.attrs),
                    _ => None,
                });
                let slow = Destination::from_attrs(attrs.expect("no destination nest"), family)
                    .ok()
                    .map(|(destination, stats)| DestEntry { destination, stats });
                assert_eq!(
                    slow,
                    Some(fast),
                    "fast and general destination decoding differ"
                );
                accepted += 1;
            }
        }
    }
    accepted
}

//! Arbitrary bytes as a netlink datagram from the kernel: the IPVS parser
//! must not panic, and what it accepts must round-trip (see
//! `lvs_ipvs::fuzzing::check_datagram`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    lvs_ipvs::fuzzing::check_datagram(data);
});

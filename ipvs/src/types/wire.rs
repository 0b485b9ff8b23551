//! Address and netmask forms on the wire.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::DecodeError;

use super::*;

/// Addresses are always sent as the 16-byte `union nf_inet_addr`, as ipvsadm
/// does: IPv4 in the first 4 bytes, zeros after.
pub(crate) fn addr_to_wire(addr: &IpAddr) -> Vec<u8> {
    let mut raw = vec![0u8; 16];
    match addr {
        IpAddr::V4(a) => raw[..4].copy_from_slice(&a.octets()),
        IpAddr::V6(a) => raw.copy_from_slice(&a.octets()),
    }
    raw
}

/// Dumps return 16 bytes even for IPv4: the family decides how many count.
pub(crate) fn addr_from_wire(family: Family, raw: &[u8]) -> Result<IpAddr, DecodeError> {
    match (family, raw.len()) {
        (Family::V4, 4 | 16) => Ok(IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))),
        (Family::V6, 16) => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(raw);
            Ok(IpAddr::V6(Ipv6Addr::from(octets)))
        }
        (family, n) => Err(DecodeError::from(format!(
            "{family} address is {n} bytes, expected {}",
            if family == Family::V4 {
                "4 or 16"
            } else {
                "16"
            }
        ))),
    }
}

/// The kernel keeps an IPv4 netmask as a network-order `__be32` and an IPv6
/// one as a plain prefix length; the codec reads both native-endian.
pub(crate) fn netmask_from_wire(family: Family, raw: u32) -> u32 {
    match family {
        Family::V4 => u32::from_be_bytes(raw.to_ne_bytes()),
        Family::V6 => raw,
    }
}

pub(crate) fn netmask_to_wire(family: Family, netmask: u32) -> u32 {
    match family {
        Family::V4 => u32::from_ne_bytes(netmask.to_be_bytes()),
        Family::V6 => netmask,
    }
}

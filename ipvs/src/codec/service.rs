//! Attributes nested in `IPVS_CMD_ATTR_SERVICE`.

use netlink_packet_core::{
    DecodeError, DefaultNla, ErrorContext, Nla, NlaBuffer, Parseable, emit_u16, emit_u16_be,
    emit_u32, parse_u16, parse_u16_be, parse_u32,
};

use super::stats::{Stats32Attr, Stats64Attr};
use super::util::{
    Nested, emit_nul_string, nul_string_len, parse_array, parse_nested, parse_nul_string,
    parse_raw_addr,
};
use crate::constants::*;

/// `struct ip_vs_flags`: the kernel applies `flags` under `mask`, both in
/// native byte order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SvcFlags {
    pub flags: u32,
    pub mask: u32,
}

impl SvcFlags {
    const LEN: usize = 8;

    fn parse(payload: &[u8]) -> Result<Self, DecodeError> {
        let raw: [u8; Self::LEN] = parse_array(payload)?;
        Ok(Self {
            flags: u32::from_ne_bytes([raw[0], raw[1], raw[2], raw[3]]),
            mask: u32::from_ne_bytes([raw[4], raw[5], raw[6], raw[7]]),
        })
    }

    fn emit(&self, buffer: &mut [u8]) {
        buffer[..4].copy_from_slice(&self.flags.to_ne_bytes());
        buffer[4..8].copy_from_slice(&self.mask.to_ne_bytes());
    }
}

/// One service attribute. Integers are native-endian except `Port`, which
/// the kernel treats as `__be16` despite its `NLA_U16` policy.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SvcAttr {
    /// `AF_INET` (2) or `AF_INET6` (10).
    Af(u16),
    /// IP protocol number (TCP = 6).
    Protocol(u16),
    /// 4 or 16 raw bytes; see [`crate::types`] for the family-aware decoding.
    Addr(Vec<u8>),
    /// Host-order value, carried big-endian on the wire.
    Port(u16),
    Fwmark(u32),
    SchedName(String),
    Flags(SvcFlags),
    /// Persistence timeout in seconds.
    Timeout(u32),
    /// The raw 4 bytes read native-endian: for IPv4 the kernel stores a
    /// network-order mask (so 255.255.255.0 reads as `0x00ff_ffff` on x86),
    /// for IPv6 a prefix length.
    Netmask(u32),
    Stats(Nested<Stats32Attr>),
    PeName(String),
    Stats64(Nested<Stats64Attr>),
    Other(DefaultNla),
}

impl Nla for SvcAttr {
    fn value_len(&self) -> usize {
        use SvcAttr::*;
        match self {
            Af(_) | Protocol(_) | Port(_) => 2,
            Fwmark(_) | Timeout(_) | Netmask(_) => 4,
            Addr(a) => a.len(),
            SchedName(s) | PeName(s) => nul_string_len(s),
            Flags(_) => SvcFlags::LEN,
            Stats(n) => n.value_len(),
            Stats64(n) => n.value_len(),
            Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        use SvcAttr::*;
        match self {
            Af(_) => IPVS_SVC_ATTR_AF,
            Protocol(_) => IPVS_SVC_ATTR_PROTOCOL,
            Addr(_) => IPVS_SVC_ATTR_ADDR,
            Port(_) => IPVS_SVC_ATTR_PORT,
            Fwmark(_) => IPVS_SVC_ATTR_FWMARK,
            SchedName(_) => IPVS_SVC_ATTR_SCHED_NAME,
            Flags(_) => IPVS_SVC_ATTR_FLAGS,
            Timeout(_) => IPVS_SVC_ATTR_TIMEOUT,
            Netmask(_) => IPVS_SVC_ATTR_NETMASK,
            Stats(n) => n.kind(IPVS_SVC_ATTR_STATS),
            PeName(_) => IPVS_SVC_ATTR_PE_NAME,
            Stats64(n) => n.kind(IPVS_SVC_ATTR_STATS64),
            Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        use SvcAttr::*;
        match self {
            Af(v) | Protocol(v) => emit_u16(buffer, *v).expect("buffer sized by value_len"),
            Port(v) => emit_u16_be(buffer, *v).expect("buffer sized by value_len"),
            Fwmark(v) | Timeout(v) | Netmask(v) => {
                emit_u32(buffer, *v).expect("buffer sized by value_len")
            }
            Addr(a) => buffer[..a.len()].copy_from_slice(a),
            SchedName(s) | PeName(s) => emit_nul_string(buffer, s),
            Flags(f) => f.emit(buffer),
            Stats(n) => n.emit_value(buffer),
            Stats64(n) => n.emit_value(buffer),
            Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for SvcAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let payload = buf.value();
        Ok(match buf.kind() {
            IPVS_SVC_ATTR_AF => {
                Self::Af(parse_u16(payload).context("invalid IPVS_SVC_ATTR_AF value")?)
            }
            IPVS_SVC_ATTR_PROTOCOL => {
                Self::Protocol(parse_u16(payload).context("invalid IPVS_SVC_ATTR_PROTOCOL value")?)
            }
            IPVS_SVC_ATTR_ADDR => {
                Self::Addr(parse_raw_addr(payload).context("invalid IPVS_SVC_ATTR_ADDR value")?)
            }
            IPVS_SVC_ATTR_PORT => {
                Self::Port(parse_u16_be(payload).context("invalid IPVS_SVC_ATTR_PORT value")?)
            }
            IPVS_SVC_ATTR_FWMARK => {
                Self::Fwmark(parse_u32(payload).context("invalid IPVS_SVC_ATTR_FWMARK value")?)
            }
            IPVS_SVC_ATTR_SCHED_NAME => Self::SchedName(
                parse_nul_string(payload).context("invalid IPVS_SVC_ATTR_SCHED_NAME value")?,
            ),
            IPVS_SVC_ATTR_FLAGS => {
                Self::Flags(SvcFlags::parse(payload).context("invalid IPVS_SVC_ATTR_FLAGS value")?)
            }
            IPVS_SVC_ATTR_TIMEOUT => {
                Self::Timeout(parse_u32(payload).context("invalid IPVS_SVC_ATTR_TIMEOUT value")?)
            }
            IPVS_SVC_ATTR_NETMASK => {
                Self::Netmask(parse_u32(payload).context("invalid IPVS_SVC_ATTR_NETMASK value")?)
            }
            IPVS_SVC_ATTR_STATS => Self::Stats(parse_nested(buf, "IPVS_SVC_ATTR_STATS")?),
            IPVS_SVC_ATTR_PE_NAME => Self::PeName(
                parse_nul_string(payload).context("invalid IPVS_SVC_ATTR_PE_NAME value")?,
            ),
            IPVS_SVC_ATTR_STATS64 => Self::Stats64(parse_nested(buf, "IPVS_SVC_ATTR_STATS64")?),
            _ => Self::Other(
                DefaultNla::parse(buf).context("invalid unknown IPVS service attribute")?,
            ),
        })
    }
}

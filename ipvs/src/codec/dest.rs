//! Attributes nested in `IPVS_CMD_ATTR_DEST`.

use netlink_packet_core::{
    DecodeError, DefaultNla, ErrorContext, Nla, NlaBuffer, Parseable, emit_u16, emit_u16_be,
    emit_u32, parse_u8, parse_u16, parse_u16_be, parse_u32,
};

use super::stats::{Stats32Attr, Stats64Attr};
use super::util::{Nested, parse_nested, parse_raw_addr};
use crate::constants::*;

/// One destination (real server) attribute. Integers are native-endian
/// except `Port` and `TunPort`, which are `__be16` on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DestAttr {
    /// 4 or 16 raw bytes, decoded by `AddrFamily` (or the service family).
    Addr(Vec<u8>),
    Port(u16),
    /// `IP_VS_CONN_F_*` forwarding method (low 3 bits).
    FwdMethod(u32),
    Weight(u32),
    UThresh(u32),
    LThresh(u32),
    ActiveConns(u32),
    InactConns(u32),
    PersistConns(u32),
    Stats(Nested<Stats32Attr>),
    /// Sent in dumps; needed on input only when the destination family
    /// differs from the service family (tunnelling, mixed pools).
    AddrFamily(u16),
    Stats64(Nested<Stats64Attr>),
    /// Kernel >= 5.3: `IP_VS_CONN_F_TUNNEL_TYPE_*`.
    TunType(u8),
    TunPort(u16),
    /// `IP_VS_TUNNEL_ENCAP_FLAG_*`.
    TunFlags(u16),
    Other(DefaultNla),
}

impl Nla for DestAttr {
    fn value_len(&self) -> usize {
        use DestAttr::*;
        match self {
            Addr(a) => a.len(),
            TunType(_) => 1,
            Port(_) | AddrFamily(_) | TunPort(_) | TunFlags(_) => 2,
            FwdMethod(_) | Weight(_) | UThresh(_) | LThresh(_) | ActiveConns(_) | InactConns(_)
            | PersistConns(_) => 4,
            Stats(n) => n.value_len(),
            Stats64(n) => n.value_len(),
            Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        use DestAttr::*;
        match self {
            Addr(_) => IPVS_DEST_ATTR_ADDR,
            Port(_) => IPVS_DEST_ATTR_PORT,
            FwdMethod(_) => IPVS_DEST_ATTR_FWD_METHOD,
            Weight(_) => IPVS_DEST_ATTR_WEIGHT,
            UThresh(_) => IPVS_DEST_ATTR_U_THRESH,
            LThresh(_) => IPVS_DEST_ATTR_L_THRESH,
            ActiveConns(_) => IPVS_DEST_ATTR_ACTIVE_CONNS,
            InactConns(_) => IPVS_DEST_ATTR_INACT_CONNS,
            PersistConns(_) => IPVS_DEST_ATTR_PERSIST_CONNS,
            Stats(n) => n.kind(IPVS_DEST_ATTR_STATS),
            AddrFamily(_) => IPVS_DEST_ATTR_ADDR_FAMILY,
            Stats64(n) => n.kind(IPVS_DEST_ATTR_STATS64),
            TunType(_) => IPVS_DEST_ATTR_TUN_TYPE,
            TunPort(_) => IPVS_DEST_ATTR_TUN_PORT,
            TunFlags(_) => IPVS_DEST_ATTR_TUN_FLAGS,
            Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        use DestAttr::*;
        const SIZED: &str = "buffer sized by value_len";
        match self {
            Addr(a) => buffer[..a.len()].copy_from_slice(a),
            Port(v) | TunPort(v) => emit_u16_be(buffer, *v).expect(SIZED),
            AddrFamily(v) | TunFlags(v) => emit_u16(buffer, *v).expect(SIZED),
            TunType(v) => buffer[0] = *v,
            FwdMethod(v) | Weight(v) | UThresh(v) | LThresh(v) | ActiveConns(v) | InactConns(v)
            | PersistConns(v) => emit_u32(buffer, *v).expect(SIZED),
            Stats(n) => n.emit_value(buffer),
            Stats64(n) => n.emit_value(buffer),
            Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for DestAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let payload = buf.value();
        Ok(match buf.kind() {
            IPVS_DEST_ATTR_ADDR => {
                Self::Addr(parse_raw_addr(payload).context("invalid IPVS_DEST_ATTR_ADDR value")?)
            }
            IPVS_DEST_ATTR_PORT => {
                Self::Port(parse_u16_be(payload).context("invalid IPVS_DEST_ATTR_PORT value")?)
            }
            IPVS_DEST_ATTR_FWD_METHOD => Self::FwdMethod(
                parse_u32(payload).context("invalid IPVS_DEST_ATTR_FWD_METHOD value")?,
            ),
            IPVS_DEST_ATTR_WEIGHT => {
                Self::Weight(parse_u32(payload).context("invalid IPVS_DEST_ATTR_WEIGHT value")?)
            }
            IPVS_DEST_ATTR_U_THRESH => {
                Self::UThresh(parse_u32(payload).context("invalid IPVS_DEST_ATTR_U_THRESH value")?)
            }
            IPVS_DEST_ATTR_L_THRESH => {
                Self::LThresh(parse_u32(payload).context("invalid IPVS_DEST_ATTR_L_THRESH value")?)
            }
            IPVS_DEST_ATTR_ACTIVE_CONNS => Self::ActiveConns(
                parse_u32(payload).context("invalid IPVS_DEST_ATTR_ACTIVE_CONNS value")?,
            ),
            IPVS_DEST_ATTR_INACT_CONNS => Self::InactConns(
                parse_u32(payload).context("invalid IPVS_DEST_ATTR_INACT_CONNS value")?,
            ),
            IPVS_DEST_ATTR_PERSIST_CONNS => Self::PersistConns(
                parse_u32(payload).context("invalid IPVS_DEST_ATTR_PERSIST_CONNS value")?,
            ),
            IPVS_DEST_ATTR_STATS => Self::Stats(parse_nested(buf, "IPVS_DEST_ATTR_STATS")?),
            IPVS_DEST_ATTR_ADDR_FAMILY => Self::AddrFamily(
                parse_u16(payload).context("invalid IPVS_DEST_ATTR_ADDR_FAMILY value")?,
            ),
            IPVS_DEST_ATTR_STATS64 => Self::Stats64(parse_nested(buf, "IPVS_DEST_ATTR_STATS64")?),
            IPVS_DEST_ATTR_TUN_TYPE => {
                Self::TunType(parse_u8(payload).context("invalid IPVS_DEST_ATTR_TUN_TYPE value")?)
            }
            IPVS_DEST_ATTR_TUN_PORT => Self::TunPort(
                parse_u16_be(payload).context("invalid IPVS_DEST_ATTR_TUN_PORT value")?,
            ),
            IPVS_DEST_ATTR_TUN_FLAGS => Self::TunFlags(
                parse_u16(payload).context("invalid IPVS_DEST_ATTR_TUN_FLAGS value")?,
            ),
            _ => Self::Other(
                DefaultNla::parse(buf).context("invalid unknown IPVS destination attribute")?,
            ),
        })
    }
}

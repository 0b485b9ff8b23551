//! Attributes nested in `IPVS_CMD_ATTR_DAEMON` (connection-sync daemon).

use std::net::{Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{
    DecodeError, DefaultNla, ErrorContext, Nla, NlaBuffer, Parseable, emit_u16, emit_u32, parse_u8,
    parse_u16, parse_u32,
};

use super::util::{emit_nul_string, nul_string_len, parse_array, parse_nul_string};
use crate::constants::*;

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DaemonAttr {
    /// `IP_VS_STATE_MASTER` or `IP_VS_STATE_BACKUP`.
    State(u32),
    McastIfn(String),
    SyncId(u32),
    SyncMaxLen(u16),
    /// Carried as a raw `in_addr` (network order).
    McastGroup(Ipv4Addr),
    McastGroup6(Ipv6Addr),
    /// Native byte order (unlike service and destination ports): the kernel
    /// applies `htons` itself when it builds the multicast socket address.
    McastPort(u16),
    McastTtl(u8),
    Other(DefaultNla),
}

impl Nla for DaemonAttr {
    fn value_len(&self) -> usize {
        use DaemonAttr::*;
        match self {
            State(_) | SyncId(_) | McastGroup(_) => 4,
            McastIfn(s) => nul_string_len(s),
            SyncMaxLen(_) | McastPort(_) => 2,
            McastGroup6(_) => 16,
            McastTtl(_) => 1,
            Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        use DaemonAttr::*;
        match self {
            State(_) => IPVS_DAEMON_ATTR_STATE,
            McastIfn(_) => IPVS_DAEMON_ATTR_MCAST_IFN,
            SyncId(_) => IPVS_DAEMON_ATTR_SYNC_ID,
            SyncMaxLen(_) => IPVS_DAEMON_ATTR_SYNC_MAXLEN,
            McastGroup(_) => IPVS_DAEMON_ATTR_MCAST_GROUP,
            McastGroup6(_) => IPVS_DAEMON_ATTR_MCAST_GROUP6,
            McastPort(_) => IPVS_DAEMON_ATTR_MCAST_PORT,
            McastTtl(_) => IPVS_DAEMON_ATTR_MCAST_TTL,
            Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        use DaemonAttr::*;
        const SIZED: &str = "buffer sized by value_len";
        match self {
            State(v) | SyncId(v) => emit_u32(buffer, *v).expect(SIZED),
            McastIfn(s) => emit_nul_string(buffer, s),
            SyncMaxLen(v) | McastPort(v) => emit_u16(buffer, *v).expect(SIZED),
            McastGroup(a) => buffer[..4].copy_from_slice(&a.octets()),
            McastGroup6(a) => buffer[..16].copy_from_slice(&a.octets()),
            McastTtl(v) => buffer[0] = *v,
            Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for DaemonAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let payload = buf.value();
        Ok(match buf.kind() {
            IPVS_DAEMON_ATTR_STATE => {
                Self::State(parse_u32(payload).context("invalid IPVS_DAEMON_ATTR_STATE value")?)
            }
            IPVS_DAEMON_ATTR_MCAST_IFN => Self::McastIfn(
                parse_nul_string(payload).context("invalid IPVS_DAEMON_ATTR_MCAST_IFN value")?,
            ),
            IPVS_DAEMON_ATTR_SYNC_ID => {
                Self::SyncId(parse_u32(payload).context("invalid IPVS_DAEMON_ATTR_SYNC_ID value")?)
            }
            IPVS_DAEMON_ATTR_SYNC_MAXLEN => Self::SyncMaxLen(
                parse_u16(payload).context("invalid IPVS_DAEMON_ATTR_SYNC_MAXLEN value")?,
            ),
            IPVS_DAEMON_ATTR_MCAST_GROUP => Self::McastGroup(Ipv4Addr::from(
                parse_array::<4>(payload).context("invalid IPVS_DAEMON_ATTR_MCAST_GROUP value")?,
            )),
            IPVS_DAEMON_ATTR_MCAST_GROUP6 => Self::McastGroup6(Ipv6Addr::from(
                parse_array::<16>(payload)
                    .context("invalid IPVS_DAEMON_ATTR_MCAST_GROUP6 value")?,
            )),
            IPVS_DAEMON_ATTR_MCAST_PORT => Self::McastPort(
                parse_u16(payload).context("invalid IPVS_DAEMON_ATTR_MCAST_PORT value")?,
            ),
            IPVS_DAEMON_ATTR_MCAST_TTL => Self::McastTtl(
                parse_u8(payload).context("invalid IPVS_DAEMON_ATTR_MCAST_TTL value")?,
            ),
            _ => Self::Other(
                DefaultNla::parse(buf).context("invalid unknown IPVS daemon attribute")?,
            ),
        })
    }
}

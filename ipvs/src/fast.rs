//! Allocation-free decoding of GET_SERVICE and GET_DEST dump entries.
//!
//! A full read decodes one message per service and one per destination,
//! thousands per read, and the general path (`parse_message` into the attribute tree,
//! then [`Destination::from_attrs`]) allocates a vector per nest and per
//! address. This path reads the same attributes straight from the bytes,
//! with the same value parsers (only a service's scheduler and persistence
//! engine names are allocated, as they are in the result), and gives up (`None`) on anything that is not
//! the plain shape a kernel sends: an unknown attribute, an odd length, a
//! flag combination the codec rejects, a missing field. The caller then runs
//! the general path, which yields the same value or the precise error. So
//! this path never changes a result, it only skips the allocations
//! (`tests` below and `tests/kernel_fixtures.rs` compare the two).

use netlink_packet_core::{NlaBuffer, NlasIterator, parse_u8, parse_u16, parse_u16_be, parse_u32};

use crate::codec::util::parse_nul_string;
use crate::constants::*;
use crate::types::{
    DestConfig, DestEntry, DestKey, DestStats, Destination, Family, FwdMethod, Protocol, Service,
    ServiceConfig, ServiceFlags, ServiceKey, Stats, TunnelFlags, TunnelType, addr_from_wire,
    netmask_from_wire,
};

const NLMSG_HDRLEN: usize = 16;
const GENL_HDRLEN: usize = 4;
const NLMSG_MIN_TYPE: u16 = 0x10;

/// The payload of an attribute, borrowed from the message (not from the
/// `NlaBuffer`, as `NlaBuffer::value` is).
fn value(nla: NlaBuffer<&[u8]>) -> &[u8] {
    let len = usize::from(nla.length());
    &nla.into_inner()[4..len]
}

/// The attributes of an IPVS message with command `cmd` whose only
/// top-level attribute is one nest of type `kind`.
fn single_nest(msg: &[u8], cmd: u8, nest_kind: u16) -> Option<&[u8]> {
    let len = u32::from_ne_bytes(msg.get(..4)?.try_into().ok()?) as usize;
    let kind = u16::from_ne_bytes(msg.get(4..6)?.try_into().ok()?);
    // Types below NLMSG_MIN_TYPE are netlink's own (NOOP, ERROR, DONE, ...).
    if len != msg.len()
        || len < NLMSG_HDRLEN + GENL_HDRLEN
        || kind < NLMSG_MIN_TYPE
        || msg[NLMSG_HDRLEN] != cmd
    {
        return None;
    }
    let mut nest = None;
    for nla in NlasIterator::new(&msg[NLMSG_HDRLEN + GENL_HDRLEN..]) {
        let nla = nla.ok()?;
        if nest.is_some() || nla.kind() != nest_kind || nla.network_byte_order_flag() {
            return None;
        }
        nest = Some(value(nla));
    }
    nest.filter(|v| v.len().is_multiple_of(4))
}

/// Whether `parse_nul_string` accepts `v` (checked for every occurrence,
/// as the general path parses every attribute, not only the last).
fn nul_string(v: &[u8]) -> bool {
    matches!(v.split_last(), Some((0, body)) if !body.contains(&0) && std::str::from_utf8(body).is_ok())
}

/// The (kind, value) attributes of a nest; `None` for one that does not
/// parse or carries both NLA flags (the general path refuses those).
fn attrs(nest: &[u8]) -> impl Iterator<Item = Option<(u16, &[u8])>> {
    NlasIterator::new(nest).map(|nla| {
        let nla = nla.ok()?;
        if nla.nested_flag() && nla.network_byte_order_flag() {
            return None;
        }
        Some((nla.kind(), value(nla)))
    })
}

/// A stats nest (`wide`: the 64-bit one) with only the ten known counters.
fn stats(nest: &[u8], wide: bool) -> Option<Stats> {
    if !nest.len().is_multiple_of(4) {
        return None;
    }
    let mut s = Stats::default();
    for a in attrs(nest) {
        let (kind, v) = a?;
        // The legacy nest has 64-bit byte counters and 32-bit everything else.
        let n = match v.len() {
            8 if wide || matches!(kind, IPVS_STATS_ATTR_INBYTES | IPVS_STATS_ATTR_OUTBYTES) => {
                u64::from_ne_bytes(v.try_into().ok()?)
            }
            4 if !wide && !matches!(kind, IPVS_STATS_ATTR_INBYTES | IPVS_STATS_ATTR_OUTBYTES) => {
                u64::from(u32::from_ne_bytes(v.try_into().ok()?))
            }
            _ => return None,
        };
        match kind {
            IPVS_STATS_ATTR_CONNS => s.conns = n,
            IPVS_STATS_ATTR_INPKTS => s.in_pkts = n,
            IPVS_STATS_ATTR_OUTPKTS => s.out_pkts = n,
            IPVS_STATS_ATTR_INBYTES => s.in_bytes = n,
            IPVS_STATS_ATTR_OUTBYTES => s.out_bytes = n,
            IPVS_STATS_ATTR_CPS => s.cps = n,
            IPVS_STATS_ATTR_INPPS => s.in_pps = n,
            IPVS_STATS_ATTR_OUTPPS => s.out_pps = n,
            IPVS_STATS_ATTR_INBPS => s.in_bps = n,
            IPVS_STATS_ATTR_OUTBPS => s.out_bps = n,
            _ => return None,
        }
    }
    Some(s)
}

/// One GET_DEST dump entry (a whole netlink message), decoded like
/// `Destination::from_attrs` on the message's destination nest; `None`
/// means "use the general path".
pub(crate) fn dest_entry(msg: &[u8], service_family: Family) -> Option<DestEntry> {
    let nest = single_nest(msg, IPVS_CMD_NEW_DEST, IPVS_CMD_ATTR_DEST)?;
    let (mut af, mut addr, mut port, mut fwd, mut weight) = (None, None, None, None, None);
    let mut config = DestConfig::new(FwdMethod::Masq, 0);
    let mut st = DestStats::default();
    let (mut stats32, mut stats64) = (None, None);
    for a in attrs(nest) {
        let (kind, v) = a?;
        match kind {
            IPVS_DEST_ATTR_ADDR if matches!(v.len(), 4 | 16) => addr = Some(v),
            IPVS_DEST_ATTR_PORT => port = Some(parse_u16_be(v).ok()?),
            IPVS_DEST_ATTR_FWD_METHOD => fwd = Some(FwdMethod::from_wire(parse_u32(v).ok()?).ok()?),
            IPVS_DEST_ATTR_WEIGHT => weight = Some(parse_u32(v).ok()?),
            IPVS_DEST_ATTR_U_THRESH => config.u_threshold = parse_u32(v).ok()?,
            IPVS_DEST_ATTR_L_THRESH => config.l_threshold = parse_u32(v).ok()?,
            IPVS_DEST_ATTR_ACTIVE_CONNS => st.active_conns = parse_u32(v).ok()?,
            IPVS_DEST_ATTR_INACT_CONNS => st.inactive_conns = parse_u32(v).ok()?,
            IPVS_DEST_ATTR_PERSIST_CONNS => st.persist_conns = parse_u32(v).ok()?,
            IPVS_DEST_ATTR_STATS => stats32 = Some(stats(v, false)?),
            IPVS_DEST_ATTR_ADDR_FAMILY => af = Some(parse_u16(v).ok()?),
            IPVS_DEST_ATTR_STATS64 => stats64 = Some(stats(v, true)?),
            IPVS_DEST_ATTR_TUN_TYPE => config.tun_type = TunnelType(parse_u8(v).ok()?),
            IPVS_DEST_ATTR_TUN_PORT => config.tun_port = parse_u16_be(v).ok()?,
            IPVS_DEST_ATTR_TUN_FLAGS => config.tun_flags = TunnelFlags(parse_u16(v).ok()?),
            _ => return None,
        }
    }
    let family = match af {
        Some(af) => Family::from_af(af).ok()?,
        None => service_family,
    };
    let key = DestKey {
        addr: addr_from_wire(family, addr?).ok()?,
        port: port?,
    };
    config.fwd = fwd?;
    config.weight = weight?;
    // Like `Stats::from_nests`: the 64-bit nest wins when there is one.
    st.traffic = stats64.or(stats32).unwrap_or_default();
    Some(DestEntry {
        destination: Destination { key, config },
        stats: st,
    })
}

/// One GET_SERVICE dump entry (a whole netlink message), decoded like
/// `Service::from_attrs` on the message's service nest; `None` means "use
/// the general path".
pub(crate) fn service_entry(msg: &[u8]) -> Option<(Service, Stats)> {
    let nest = single_nest(msg, IPVS_CMD_NEW_SERVICE, IPVS_CMD_ATTR_SERVICE)?;
    let (mut af, mut protocol, mut addr, mut port, mut fwmark) = (None, None, None, None, None);
    let (mut sched, mut pe_name, mut flags, mut timeout, mut netmask) =
        (None, None, None, None, None);
    let (mut stats32, mut stats64) = (None, None);
    for a in attrs(nest) {
        let (kind, v) = a?;
        match kind {
            IPVS_SVC_ATTR_AF => af = Some(parse_u16(v).ok()?),
            IPVS_SVC_ATTR_PROTOCOL => protocol = Some(parse_u16(v).ok()?),
            IPVS_SVC_ATTR_ADDR if matches!(v.len(), 4 | 16) => addr = Some(v),
            IPVS_SVC_ATTR_PORT => port = Some(parse_u16_be(v).ok()?),
            IPVS_SVC_ATTR_FWMARK => fwmark = Some(parse_u32(v).ok()?),
            IPVS_SVC_ATTR_SCHED_NAME if nul_string(v) => sched = Some(v),
            IPVS_SVC_ATTR_FLAGS if v.len() == 8 => {
                let word = |i: usize| u32::from_ne_bytes([v[i], v[i + 1], v[i + 2], v[i + 3]]);
                flags = Some(word(0) & word(4));
            }
            IPVS_SVC_ATTR_TIMEOUT => timeout = Some(parse_u32(v).ok()?),
            IPVS_SVC_ATTR_NETMASK => netmask = Some(parse_u32(v).ok()?),
            IPVS_SVC_ATTR_STATS => stats32 = Some(stats(v, false)?),
            IPVS_SVC_ATTR_PE_NAME if nul_string(v) => pe_name = Some(v),
            IPVS_SVC_ATTR_STATS64 => stats64 = Some(stats(v, true)?),
            _ => return None,
        }
    }
    let family = Family::from_af(af?).ok()?;
    let key = match fwmark.filter(|m| *m != 0) {
        Some(mark) => ServiceKey::Fwmark { family, mark },
        None => ServiceKey::Tuple {
            addr: addr_from_wire(family, addr?).ok()?,
            protocol: Protocol(protocol?),
            port: port?,
        },
    };
    let mut config = ServiceConfig::new(family, parse_nul_string(sched?).ok()?);
    if let Some(pe) = pe_name {
        config.pe_name = Some(parse_nul_string(pe).ok()?);
    }
    if let Some(f) = flags {
        config.flags = ServiceFlags::from_bits(f);
    }
    if let Some(t) = timeout {
        config.timeout = t;
    }
    if let Some(m) = netmask {
        config.netmask = netmask_from_wire(family, m);
    }
    Some((
        Service { key, config },
        stats64.or(stats32).unwrap_or_default(),
    ))
}

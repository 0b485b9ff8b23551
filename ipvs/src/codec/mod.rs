//! The IPVS generic-netlink family as plain values: a command enum, a payload
//! `{ cmd, nlas }` implementing [`GenlFamily`], and one attribute enum per
//! nesting level. Every enum keeps unknown attributes in an `Other` variant so
//! replies from newer kernels survive a parse/emit round trip.
//!
//! Parsing never panics on malformed input: it returns a [`DecodeError`]
//! whose context names the attribute that was wrong.

mod daemon;
mod dest;
mod service;
mod stats;
pub(crate) mod util;

use netlink_packet_core::{
    DecodeError, DefaultNla, Emitable, ErrorContext, NLMSG_ALIGNTO, NetlinkBuffer, NetlinkMessage,
    Nla, NlaBuffer, Parseable, ParseableParametrized, emit_u32, parse_u32,
};
use netlink_packet_generic::{GenlFamily, GenlHeader, GenlMessage};

pub use self::daemon::DaemonAttr;
pub use self::dest::DestAttr;
pub use self::service::{SvcAttr, SvcFlags};
pub use self::stats::{Stats32Attr, Stats64Attr};
pub use self::util::Nested;
use self::util::{parse_attrs, parse_nested};
use crate::constants::*;

/// A complete IPVS netlink message, as sent and received on the socket.
pub type IpvsNetlinkMessage = NetlinkMessage<GenlMessage<IpvsMessage>>;

/// Generic-netlink command of an IPVS message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum IpvsCmd {
    NewService,
    SetService,
    DelService,
    GetService,
    NewDest,
    SetDest,
    DelDest,
    GetDest,
    NewDaemon,
    DelDaemon,
    GetDaemon,
    SetConfig,
    GetConfig,
    /// Only used as the command of GET_INFO replies.
    SetInfo,
    GetInfo,
    /// Zeroes counters. Exposed for completeness; the node agent never uses it.
    Zero,
    /// Deletes every service in the namespace. Exposed for completeness; the
    /// node agent never uses it because it must not touch rules it does not own.
    Flush,
}

impl From<IpvsCmd> for u8 {
    fn from(cmd: IpvsCmd) -> u8 {
        use IpvsCmd::*;
        match cmd {
            NewService => IPVS_CMD_NEW_SERVICE,
            SetService => IPVS_CMD_SET_SERVICE,
            DelService => IPVS_CMD_DEL_SERVICE,
            GetService => IPVS_CMD_GET_SERVICE,
            NewDest => IPVS_CMD_NEW_DEST,
            SetDest => IPVS_CMD_SET_DEST,
            DelDest => IPVS_CMD_DEL_DEST,
            GetDest => IPVS_CMD_GET_DEST,
            NewDaemon => IPVS_CMD_NEW_DAEMON,
            DelDaemon => IPVS_CMD_DEL_DAEMON,
            GetDaemon => IPVS_CMD_GET_DAEMON,
            SetConfig => IPVS_CMD_SET_CONFIG,
            GetConfig => IPVS_CMD_GET_CONFIG,
            SetInfo => IPVS_CMD_SET_INFO,
            GetInfo => IPVS_CMD_GET_INFO,
            Zero => IPVS_CMD_ZERO,
            Flush => IPVS_CMD_FLUSH,
        }
    }
}

impl TryFrom<u8> for IpvsCmd {
    type Error = DecodeError;

    fn try_from(value: u8) -> Result<Self, DecodeError> {
        use IpvsCmd::*;
        Ok(match value {
            IPVS_CMD_NEW_SERVICE => NewService,
            IPVS_CMD_SET_SERVICE => SetService,
            IPVS_CMD_DEL_SERVICE => DelService,
            IPVS_CMD_GET_SERVICE => GetService,
            IPVS_CMD_NEW_DEST => NewDest,
            IPVS_CMD_SET_DEST => SetDest,
            IPVS_CMD_DEL_DEST => DelDest,
            IPVS_CMD_GET_DEST => GetDest,
            IPVS_CMD_NEW_DAEMON => NewDaemon,
            IPVS_CMD_DEL_DAEMON => DelDaemon,
            IPVS_CMD_GET_DAEMON => GetDaemon,
            IPVS_CMD_SET_CONFIG => SetConfig,
            IPVS_CMD_GET_CONFIG => GetConfig,
            IPVS_CMD_SET_INFO => SetInfo,
            IPVS_CMD_GET_INFO => GetInfo,
            IPVS_CMD_ZERO => Zero,
            IPVS_CMD_FLUSH => Flush,
            other => {
                return Err(DecodeError::from(format!(
                    "unknown IPVS command {other}, expected 1..={IPVS_CMD_FLUSH}"
                )));
            }
        })
    }
}

impl IpvsCmd {
    /// Commands whose top-level attributes are `IPVS_INFO_ATTR_*` instead of
    /// `IPVS_CMD_ATTR_*` (attribute 1 is then a u32 version, not a service).
    pub fn carries_info(self) -> bool {
        matches!(self, IpvsCmd::SetInfo | IpvsCmd::GetInfo)
    }
}

/// Top-level attribute. Its meaning depends on the command, so parsing is
/// parametrized by [`IpvsCmd`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IpvsAttr {
    Service(Nested<SvcAttr>),
    Dest(Nested<DestAttr>),
    Daemon(Nested<DaemonAttr>),
    /// Seconds; 0 in a SET_CONFIG means "leave unchanged".
    TimeoutTcp(u32),
    TimeoutTcpFin(u32),
    TimeoutUdp(u32),
    /// GET_INFO reply: `IP_VS_VERSION_CODE`, e.g. 0x010201 for 1.2.1.
    InfoVersion(u32),
    /// GET_INFO reply: connection hash table size.
    InfoConnTabSize(u32),
    Other(DefaultNla),
}

impl Nla for IpvsAttr {
    fn value_len(&self) -> usize {
        use IpvsAttr::*;
        match self {
            Service(n) => n.value_len(),
            Dest(n) => n.value_len(),
            Daemon(n) => n.value_len(),
            TimeoutTcp(_) | TimeoutTcpFin(_) | TimeoutUdp(_) | InfoVersion(_)
            | InfoConnTabSize(_) => 4,
            Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        use IpvsAttr::*;
        match self {
            Service(n) => n.kind(IPVS_CMD_ATTR_SERVICE),
            Dest(n) => n.kind(IPVS_CMD_ATTR_DEST),
            Daemon(n) => n.kind(IPVS_CMD_ATTR_DAEMON),
            TimeoutTcp(_) => IPVS_CMD_ATTR_TIMEOUT_TCP,
            TimeoutTcpFin(_) => IPVS_CMD_ATTR_TIMEOUT_TCP_FIN,
            TimeoutUdp(_) => IPVS_CMD_ATTR_TIMEOUT_UDP,
            InfoVersion(_) => IPVS_INFO_ATTR_VERSION,
            InfoConnTabSize(_) => IPVS_INFO_ATTR_CONN_TAB_SIZE,
            Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        use IpvsAttr::*;
        match self {
            Service(n) => n.emit_value(buffer),
            Dest(n) => n.emit_value(buffer),
            Daemon(n) => n.emit_value(buffer),
            TimeoutTcp(v) | TimeoutTcpFin(v) | TimeoutUdp(v) | InfoVersion(v)
            | InfoConnTabSize(v) => emit_u32(buffer, *v).expect("buffer sized by value_len"),
            Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> ParseableParametrized<NlaBuffer<&'a T>, IpvsCmd> for IpvsAttr {
    fn parse_with_param(buf: &NlaBuffer<&'a T>, cmd: IpvsCmd) -> Result<Self, DecodeError> {
        let payload = buf.value();
        if cmd.carries_info() {
            return Ok(match buf.kind() {
                IPVS_INFO_ATTR_VERSION => Self::InfoVersion(
                    parse_u32(payload).context("invalid IPVS_INFO_ATTR_VERSION value")?,
                ),
                IPVS_INFO_ATTR_CONN_TAB_SIZE => Self::InfoConnTabSize(
                    parse_u32(payload).context("invalid IPVS_INFO_ATTR_CONN_TAB_SIZE value")?,
                ),
                _ => Self::Other(
                    DefaultNla::parse(buf).context("invalid unknown IPVS info attribute")?,
                ),
            });
        }
        Ok(match buf.kind() {
            IPVS_CMD_ATTR_SERVICE => Self::Service(parse_nested(buf, "IPVS_CMD_ATTR_SERVICE")?),
            IPVS_CMD_ATTR_DEST => Self::Dest(parse_nested(buf, "IPVS_CMD_ATTR_DEST")?),
            IPVS_CMD_ATTR_DAEMON => Self::Daemon(parse_nested(buf, "IPVS_CMD_ATTR_DAEMON")?),
            IPVS_CMD_ATTR_TIMEOUT_TCP => Self::TimeoutTcp(
                parse_u32(payload).context("invalid IPVS_CMD_ATTR_TIMEOUT_TCP value")?,
            ),
            IPVS_CMD_ATTR_TIMEOUT_TCP_FIN => Self::TimeoutTcpFin(
                parse_u32(payload).context("invalid IPVS_CMD_ATTR_TIMEOUT_TCP_FIN value")?,
            ),
            IPVS_CMD_ATTR_TIMEOUT_UDP => Self::TimeoutUdp(
                parse_u32(payload).context("invalid IPVS_CMD_ATTR_TIMEOUT_UDP value")?,
            ),
            _ => Self::Other(
                DefaultNla::parse(buf).context("invalid unknown IPVS command attribute")?,
            ),
        })
    }
}

/// Payload of an IPVS generic-netlink message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpvsMessage {
    pub cmd: IpvsCmd,
    pub nlas: Vec<IpvsAttr>,
}

impl IpvsMessage {
    pub fn new(cmd: IpvsCmd, nlas: Vec<IpvsAttr>) -> Self {
        Self { cmd, nlas }
    }
}

impl GenlFamily for IpvsMessage {
    fn family_name() -> &'static str {
        IPVS_GENL_NAME
    }

    fn command(&self) -> u8 {
        self.cmd.into()
    }

    fn version(&self) -> u8 {
        IPVS_GENL_VERSION
    }
}

impl Emitable for IpvsMessage {
    fn buffer_len(&self) -> usize {
        self.nlas.as_slice().buffer_len()
    }

    fn emit(&self, buffer: &mut [u8]) {
        self.nlas.as_slice().emit(buffer)
    }
}

impl ParseableParametrized<[u8], GenlHeader> for IpvsMessage {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        let cmd = IpvsCmd::try_from(header.cmd).context("invalid IPVS generic-netlink header")?;
        let nlas = parse_attrs(buf, |nla| IpvsAttr::parse_with_param(nla, cmd))
            .with_context(|| format!("invalid attributes of IPVS {cmd:?} message"))?;
        Ok(Self { cmd, nlas })
    }
}

fn align(len: usize) -> usize {
    let a = NLMSG_ALIGNTO as usize;
    len.saturating_add(a - 1) & !(a - 1)
}

/// Split a datagram into its netlink messages without decoding payloads.
/// Each item is one whole message (header included).
pub fn split_datagram(datagram: &[u8]) -> impl Iterator<Item = Result<&[u8], DecodeError>> {
    let mut rest = datagram;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        match NetlinkBuffer::new_checked(rest) {
            Ok(buf) => {
                let len = buf.length() as usize;
                let msg = &rest[..len];
                rest = rest.get(align(len)..).unwrap_or_default();
                Some(Ok(msg))
            }
            Err(e) => {
                rest = &[];
                Some(Err(e.context("invalid netlink message in datagram")))
            }
        }
    })
}

/// Parse one IPVS netlink message (control messages such as NLMSG_ERROR and
/// NLMSG_DONE included). Any non-control message type is taken to be the
/// IPVS family, whatever id it was assigned.
pub fn parse_message(bytes: &[u8]) -> Result<IpvsNetlinkMessage, DecodeError> {
    IpvsNetlinkMessage::deserialize(bytes).context("invalid IPVS netlink message")
}

/// Parse every message of a datagram; the first malformed one is an error.
pub fn parse_datagram(datagram: &[u8]) -> Result<Vec<IpvsNetlinkMessage>, DecodeError> {
    split_datagram(datagram)
        .map(|msg| msg.and_then(parse_message))
        .collect()
}

/// Serialize a message after filling its length and type from the payload
/// (for IPVS payloads, the family id set with
/// [`GenlMessage::set_resolved_family_id`]). Going through `finalize` keeps
/// the buffer size and the header in agreement, which the core crate relies
/// on to not panic.
pub fn emit_message(msg: &mut IpvsNetlinkMessage) -> Vec<u8> {
    msg.finalize();
    let mut buf = vec![0; msg.buffer_len()];
    msg.serialize(&mut buf);
    buf
}

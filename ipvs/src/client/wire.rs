//! The wire half of the client: sequence numbers, encoding, sending,
//! receiving and matching acknowledgements and dump parts to requests.

use std::sync::atomic::Ordering;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
    NLMSG_DONE, NLMSG_ERROR, NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload,
    NlasIterator, parse_string, parse_u16,
};
use netlink_packet_generic::GenlMessage;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd, nlas::GenlCtrlAttrs};

use super::{
    CTRL_ATTR_FAMILY_ID, Flow, GENL_HDRLEN, GENL_ID_CTRL, IpvsClient, NLMSG_HDRLEN,
    NLMSGERR_ATTR_MSG,
};
use crate::codec::{IpvsAttr, IpvsMessage, emit_message, parse_message, split_datagram};
use crate::constants::IPVS_GENL_NAME;
use crate::error::{Error, Result};
use crate::transport::Transport;

impl<T: Transport> IpvsClient<T> {
    pub(super) fn next_seq(&mut self) -> u32 {
        self.last_seq = self.last_seq.wrapping_add(1).max(1);
        self.last_seq
    }

    pub(super) fn encode(&self, payload: IpvsMessage, flags: u16, seq: u32) -> Vec<u8> {
        let mut genl = GenlMessage::from_payload(payload);
        genl.set_resolved_family_id(self.family_id);
        let mut msg = NetlinkMessage::from(genl);
        msg.header.flags = flags;
        msg.header.sequence_number = seq;
        emit_message(&mut msg)
    }

    pub(super) fn send(&mut self, datagram: &[u8], messages: usize) -> Result<()> {
        self.transport.send(datagram).map_err(|source| Error::Io {
            action: "send",
            source,
        })?;
        self.counters.sendmsgs.fetch_add(1, Ordering::Relaxed);
        self.counters
            .requests
            .fetch_add(messages as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Read datagrams and hand every message to `on_msg` until it says Done.
    pub(super) fn receive(
        &mut self,
        request: &dyn Fn() -> String,
        mut on_msg: impl FnMut(&NetlinkHeader, &[u8]) -> Result<Flow>,
    ) -> Result<()> {
        let mut buf = std::mem::take(&mut self.rx);
        let result = loop {
            let len = match self.transport.recv(&mut buf) {
                Ok(len) => len,
                Err(source) => {
                    break Err(Error::Io {
                        action: "recv",
                        source,
                    });
                }
            };
            self.counters.recvmsgs.fetch_add(1, Ordering::Relaxed);
            if len > buf.len() {
                break Err(Error::Truncated {
                    len,
                    capacity: buf.len(),
                });
            }
            match dispatch(&buf, request, &mut on_msg) {
                Ok(Flow::More) => continue,
                Ok(Flow::Done) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        self.rx = buf;
        result
    }

    /// Send one request with NLM_F_ACK and collect its replies up to the ack.
    pub(super) fn request(&mut self, msg: IpvsMessage, what: &str) -> Result<Vec<IpvsMessage>> {
        let seq = self.next_seq();
        let datagram = self.encode(msg, NLM_F_REQUEST | NLM_F_ACK, seq);
        self.send(&datagram, 1)?;
        let family_id = self.family_id;
        let mut replies = Vec::new();
        self.receive(&|| what.to_string(), |header, bytes| {
            if header.sequence_number != seq {
                return Ok(Flow::More);
            }
            if header.message_type == NLMSG_ERROR {
                return match ack_errno(bytes, what)? {
                    None => Ok(Flow::Done),
                    Some(errno) => Err(Error::Kernel {
                        request: what.into(),
                        errno,
                        ext_ack: ext_ack_message(header.flags, bytes),
                    }),
                };
            }
            if header.message_type == family_id {
                replies.push(ipvs_payload(bytes, what)?);
            }
            Ok(Flow::More)
        })?;
        Ok(replies)
    }

    /// Send one NLM_F_DUMP request and collect replies up to NLMSG_DONE,
    /// across as many datagrams as the kernel uses.
    pub(super) fn dump(&mut self, msg: IpvsMessage, what: &str) -> Result<Vec<IpvsMessage>> {
        let mut replies = Vec::new();
        self.dump_raw(msg, &|| what.to_string(), |bytes| {
            replies.push(ipvs_payload(bytes, what)?);
            Ok(())
        })?;
        Ok(replies)
    }

    /// [`dump`](Self::dump) handing every IPVS reply message (header
    /// included) to `on_reply` undecoded. `what` names the request in errors.
    pub(super) fn dump_raw(
        &mut self,
        msg: IpvsMessage,
        what: &dyn Fn() -> String,
        mut on_reply: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let seq = self.next_seq();
        let datagram = self.encode(msg, NLM_F_REQUEST | NLM_F_DUMP, seq);
        self.send(&datagram, 1)?;
        let family_id = self.family_id;
        let mut interrupted = false;
        self.receive(what, |header, bytes| {
            if header.sequence_number != seq {
                return Ok(Flow::More);
            }
            interrupted |= header.flags & NLM_F_DUMP_INTR != 0;
            match header.message_type {
                NLMSG_DONE => {
                    let msg = parse_message(bytes).map_err(|source| Error::Decode {
                        request: what(),
                        source,
                    })?;
                    match msg.payload {
                        NetlinkPayload::Done(done) if done.code < 0 => Err(Error::Kernel {
                            request: what(),
                            errno: -done.code,
                            ext_ack: None,
                        }),
                        _ => Ok(Flow::Done),
                    }
                }
                NLMSG_ERROR => match ack_errno(bytes, &what())? {
                    None => Ok(Flow::More),
                    Some(errno) => Err(Error::Kernel {
                        request: what(),
                        errno,
                        ext_ack: ext_ack_message(header.flags, bytes),
                    }),
                },
                t if t == family_id => {
                    on_reply(bytes)?;
                    Ok(Flow::More)
                }
                _ => Ok(Flow::More),
            }
        })?;
        if interrupted {
            return Err(Error::DumpInterrupted { request: what() });
        }
        Ok(())
    }

    pub(super) fn resolve_family(&mut self) -> Result<u16> {
        let what = "CTRL_CMD_GETFAMILY IPVS";
        let seq = self.next_seq();
        let genl = GenlMessage::from_payload(GenlCtrl {
            cmd: GenlCtrlCmd::GetFamily,
            nlas: vec![GenlCtrlAttrs::FamilyName(IPVS_GENL_NAME.into())],
        });
        let mut msg = NetlinkMessage::from(genl);
        msg.header.flags = NLM_F_REQUEST | NLM_F_ACK;
        msg.header.sequence_number = seq;
        msg.finalize();
        let mut datagram = vec![0; msg.buffer_len()];
        msg.serialize(&mut datagram);
        self.send(&datagram, 1)?;

        let mut family_id = None;
        self.receive(&|| what.to_string(), |header, bytes| {
            if header.sequence_number != seq {
                return Ok(Flow::More);
            }
            match header.message_type {
                GENL_ID_CTRL => {
                    family_id = Some(ctrl_family_id(bytes).ok_or_else(|| {
                        protocol(
                            what,
                            "CTRL_CMD_NEWFAMILY reply without a valid CTRL_ATTR_FAMILY_ID",
                        )
                    })?);
                    Ok(Flow::More)
                }
                NLMSG_ERROR => match ack_errno(bytes, what)? {
                    None => Ok(Flow::Done),
                    Some(errno) => Err(Error::FamilyNotFound { errno }),
                },
                _ => Ok(Flow::More),
            }
        })?;
        family_id.ok_or_else(|| protocol(what, "acked without a CTRL_CMD_NEWFAMILY reply"))
    }
}

pub(super) fn protocol(request: &str, what: &str) -> Error {
    Error::Protocol {
        request: request.into(),
        what: what.into(),
    }
}

pub(super) fn nested_service(msg: &IpvsMessage) -> Option<&[crate::codec::SvcAttr]> {
    msg.nlas.iter().find_map(|a| match a {
        IpvsAttr::Service(n) => Some(n.attrs.as_slice()),
        _ => None,
    })
}

pub(super) fn dispatch(
    datagram: &[u8],
    request: &dyn Fn() -> String,
    on_msg: &mut impl FnMut(&NetlinkHeader, &[u8]) -> Result<Flow>,
) -> Result<Flow> {
    for msg in split_datagram(datagram) {
        let bytes = msg.map_err(|source| Error::Decode {
            request: request(),
            source,
        })?;
        let buf = NetlinkBuffer::new(bytes);
        let mut header = NetlinkHeader::default();
        header.length = buf.length();
        header.message_type = buf.message_type();
        header.flags = buf.flags();
        header.sequence_number = buf.sequence_number();
        header.port_number = buf.port_number();
        if let Flow::Done = on_msg(&header, bytes)? {
            return Ok(Flow::Done);
        }
    }
    Ok(Flow::More)
}

pub(super) fn ipvs_payload(bytes: &[u8], request: &str) -> Result<IpvsMessage> {
    let msg = parse_message(bytes).map_err(|source| Error::Decode {
        request: request.into(),
        source,
    })?;
    match msg.payload {
        NetlinkPayload::InnerMessage(genl) => Ok(genl.payload),
        other => Err(protocol(
            request,
            &format!("expected an IPVS message, got {other:?}"),
        )),
    }
}

/// `None` for an ack, `Some(positive errno)` for an error.
pub(super) fn ack_errno(bytes: &[u8], request: &str) -> Result<Option<i32>> {
    let msg = parse_message(bytes).map_err(|source| Error::Decode {
        request: request.into(),
        source,
    })?;
    match msg.payload {
        NetlinkPayload::Error(e) => Ok(e.code.map(|c| c.get().saturating_abs())),
        other => Err(protocol(
            request,
            &format!("expected NLMSG_ERROR, got {other:?}"),
        )),
    }
}

/// The NLMSGERR_ATTR_MSG text of an extended ack, if the kernel sent one.
pub(super) fn ext_ack_message(flags: u16, bytes: &[u8]) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    // nlmsghdr, then the errno, then the offending request (only its header
    // if capped), then the TLVs.
    let body = bytes.get(NLMSG_HDRLEN + 4..)?;
    let echoed = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        u32::from_ne_bytes(body.get(..4)?.try_into().ok()?) as usize
    };
    let tlvs = body.get(echoed.checked_add(3)? & !3..)?;
    NlasIterator::new(tlvs)
        .filter_map(|nla| nla.ok())
        .find(|nla| nla.kind() == NLMSGERR_ATTR_MSG)
        .and_then(|nla| parse_string(nla.value()).ok())
}

/// CTRL_ATTR_FAMILY_ID from a CTRL_CMD_NEWFAMILY reply. Read directly from
/// the attributes rather than through `GenlCtrl`, whose parser rejects
/// attributes it does not know and would break on newer kernels.
pub(super) fn ctrl_family_id(bytes: &[u8]) -> Option<u16> {
    let attrs = bytes.get(NLMSG_HDRLEN + GENL_HDRLEN..)?;
    NlasIterator::new(attrs)
        .filter_map(|nla| nla.ok())
        .find(|nla| nla.kind() == CTRL_ATTR_FAMILY_ID)
        .and_then(|nla| parse_u16(nla.value()).ok())
}

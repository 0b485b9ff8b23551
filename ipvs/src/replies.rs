//! Builders for kernel-shaped replies, and a decoder for sent requests, so
//! a [`ScriptedTransport`](crate::ScriptedTransport) responder can play the
//! kernel's part in request-level tests.

use std::num::NonZeroI32;

use netlink_packet_core::{
    DoneMessage, Emitable, ErrorMessage, NLM_F_CAPPED, NLM_F_MULTIPART, NetlinkHeader,
    NetlinkMessage, NetlinkPayload,
};
use netlink_packet_generic::GenlMessage;

use crate::codec::{IpvsMessage, IpvsNetlinkMessage, emit_message, parse_datagram};

fn emit(header: NetlinkHeader, payload: NetlinkPayload<GenlMessage<IpvsMessage>>) -> Vec<u8> {
    let mut msg = NetlinkMessage::new(header, payload);
    emit_message(&mut msg)
}

fn header(seq: u32, flags: u16) -> NetlinkHeader {
    let mut h = NetlinkHeader::default();
    h.sequence_number = seq;
    h.flags = flags;
    h
}

/// NLMSG_ERROR carrying `-errno` (0 for a plain ack), shaped like the
/// kernel's capped ack: the echoed request is only a header.
pub fn error(seq: u32, errno: i32) -> Vec<u8> {
    let mut echoed = header(seq, 0);
    echoed.length = 16;
    let mut echoed_bytes = vec![0u8; 16];
    echoed.emit(&mut echoed_bytes);
    let mut e = ErrorMessage::default();
    e.code = NonZeroI32::new(-errno);
    e.header = echoed_bytes;
    emit(header(seq, NLM_F_CAPPED), NetlinkPayload::Error(e))
}

/// A successful ack.
pub fn ack(seq: u32) -> Vec<u8> {
    error(seq, 0)
}

/// NLMSG_DONE closing a dump.
pub fn done(seq: u32) -> Vec<u8> {
    emit(
        header(seq, NLM_F_MULTIPART),
        NetlinkPayload::Done(DoneMessage::default()),
    )
}

/// An IPVS message from the kernel; pass `NLM_F_MULTIPART` for dump entries.
pub fn ipvs(family_id: u16, seq: u32, flags: u16, msg: IpvsMessage) -> Vec<u8> {
    let mut genl = GenlMessage::from_payload(msg);
    genl.set_resolved_family_id(family_id);
    emit(header(seq, flags), NetlinkPayload::InnerMessage(genl))
}

/// CTRL_CMD_NEWFAMILY reply carrying the IPVS family id (nlctrl, type 16).
pub fn family(seq: u32, family_id: u16) -> Vec<u8> {
    // nlmsghdr + genlmsghdr{cmd=NEWFAMILY(1), version=2} +
    // CTRL_ATTR_FAMILY_ID(u16) + CTRL_ATTR_FAMILY_NAME("IPVS").
    let mut out = Vec::with_capacity(40);
    out.extend_from_slice(&40u32.to_ne_bytes());
    out.extend_from_slice(&16u16.to_ne_bytes());
    out.extend_from_slice(&0u16.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&[1, 2, 0, 0]);
    out.extend_from_slice(&6u16.to_ne_bytes());
    out.extend_from_slice(&1u16.to_ne_bytes());
    out.extend_from_slice(&family_id.to_ne_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&9u16.to_ne_bytes());
    out.extend_from_slice(&2u16.to_ne_bytes());
    out.extend_from_slice(b"IPVS\0\0\0\0");
    out
}

/// Decode every IPVS request in a sent datagram (header and payload).
/// Panics on malformed input, which in a test means the client is broken.
pub fn requests(datagram: &[u8]) -> Vec<(NetlinkHeader, IpvsMessage)> {
    parse_datagram(datagram)
        .expect("client sent a malformed datagram")
        .into_iter()
        .map(|m: IpvsNetlinkMessage| match m.payload {
            NetlinkPayload::InnerMessage(genl) => (m.header, genl.payload),
            other => panic!("client sent a non-IPVS message: {other:?}"),
        })
        .collect()
}

//! fou (GUE receive ports) over generic netlink, as `ip fou add port P gue`
//! does it. The family is small enough to encode by hand: a generic
//! netlink header and a few fixed-size attributes.

use std::io;

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_GENERIC};

use super::nla::attr;
pub(crate) use super::nla::attrs;
use super::{DataplaneError, DpResult};
use crate::kernel::FouPort;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;

const FOU_GENL_NAME: &str = "fou";
const FOU_GENL_VERSION: u8 = 1;
const FOU_CMD_ADD: u8 = 1;
const FOU_CMD_DEL: u8 = 2;
const FOU_CMD_GET: u8 = 3;
const FOU_ATTR_PORT: u16 = 1;
const FOU_ATTR_AF: u16 = 2;
const FOU_ATTR_TYPE: u16 = 4;
const FOU_ENCAP_GUE: u8 = 2;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const ENOENT: i32 = 2;

/// A generic-netlink socket bound to the fou family.
pub struct FouClient {
    socket: Socket,
    family: u16,
    seq: u32,
}

impl std::fmt::Debug for FouClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FouClient")
            .field("family", &self.family)
            .finish_non_exhaustive()
    }
}

/// One netlink message with its generic header (`genlmsghdr`: command,
/// version, reserved).
pub(crate) fn message(
    kind: u16,
    flags: u16,
    seq: u32,
    cmd: u8,
    version: u8,
    attrs: &[u8],
) -> Vec<u8> {
    super::nla::message(kind, flags, seq, [cmd, version, 0, 0], attrs)
}

/// The fou attributes of a port.
pub(crate) fn port_attrs(p: &FouPort) -> Vec<u8> {
    let mut a = Vec::new();
    attr(&mut a, FOU_ATTR_PORT, &p.port.to_be_bytes());
    attr(
        &mut a,
        FOU_ATTR_AF,
        &[if p.ipv6 { AF_INET6 } else { AF_INET }],
    );
    attr(&mut a, FOU_ATTR_TYPE, &[FOU_ENCAP_GUE]);
    a
}

/// A GUE port from a GET reply; direct (non-GUE) ports are not the agent's.
pub(crate) fn parse_port(payload: &[u8]) -> Option<FouPort> {
    let (mut port, mut af, mut kind) = (None, None, None);
    for (k, v) in attrs(payload) {
        match (k, v.len()) {
            (FOU_ATTR_PORT, 2) => port = Some(u16::from_be_bytes([v[0], v[1]])),
            (FOU_ATTR_AF, 1) => af = Some(v[0]),
            (FOU_ATTR_TYPE, 1) => kind = Some(v[0]),
            _ => {}
        }
    }
    (kind? == FOU_ENCAP_GUE).then_some(FouPort {
        port: port?,
        ipv6: af? == AF_INET6,
    })
}

/// The family id in a CTRL_CMD_GETFAMILY reply.
pub(crate) fn family_id(replies: &[Vec<u8>]) -> Option<u16> {
    replies
        .iter()
        .flat_map(|p| attrs(p))
        .find(|(k, v)| *k == CTRL_ATTR_FAMILY_ID && v.len() == 2)
        .map(|(_, v)| u16::from_ne_bytes([v[0], v[1]]))
}

/// The reply of a family dump that describes the family `name` (with its
/// terminating NUL).
fn named(replies: Vec<Vec<u8>>, name: &[u8]) -> Option<Vec<u8>> {
    replies.into_iter().find(|p| {
        attrs(p)
            .iter()
            .any(|(k, v)| *k == CTRL_ATTR_FAMILY_NAME && *v == name)
    })
}

impl FouClient {
    /// Resolves the family. With `load`, by name, which makes the kernel
    /// load `fou` if it can; without, from the list of families, which
    /// loads nothing (a lookup by name of a missing family has the kernel
    /// run its module helper, on every read). `Missing` when the family
    /// does not exist.
    pub fn connect(load: bool) -> DpResult<Self> {
        let io = |source| DataplaneError::Io {
            request: "open a generic netlink socket for fou".into(),
            source,
        };
        let mut socket = Socket::new(NETLINK_GENERIC).map_err(io)?;
        socket.bind_auto().map_err(io)?;
        socket.connect(&SocketAddr::new(0, 0)).map_err(io)?;
        let mut c = FouClient {
            socket,
            family: 0,
            seq: 0,
        };
        let what = "resolve the fou family";
        let missing = || DataplaneError::Missing {
            request: what.into(),
            what: "the generic netlink family \"fou\"".into(),
        };
        let mut name = FOU_GENL_NAME.as_bytes().to_vec();
        name.push(0);
        let replies = if load {
            let mut a = Vec::new();
            attr(&mut a, CTRL_ATTR_FAMILY_NAME, &name);
            c.request(
                GENL_ID_CTRL,
                NLM_F_REQUEST | NLM_F_ACK,
                CTRL_CMD_GETFAMILY,
                1,
                &a,
                what,
            )
            .map_err(|e| match e.errno() {
                Some(ENOENT) => missing(),
                _ => e,
            })?
        } else {
            let all = c.request(
                GENL_ID_CTRL,
                NLM_F_REQUEST | NLM_F_DUMP,
                CTRL_CMD_GETFAMILY,
                1,
                &[],
                what,
            )?;
            vec![named(all, &name).ok_or_else(missing)?]
        };
        c.family = family_id(&replies).ok_or_else(|| DataplaneError::Other {
            request: what.into(),
            detail: "reply carries no CTRL_ATTR_FAMILY_ID".into(),
        })?;
        Ok(c)
    }

    /// Sends one request and collects the payloads of its replies up to the
    /// ack (or the end of the dump).
    fn request(
        &mut self,
        kind: u16,
        flags: u16,
        cmd: u8,
        version: u8,
        attrs: &[u8],
        what: &str,
    ) -> DpResult<Vec<Vec<u8>>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let io = |source: io::Error| DataplaneError::Io {
            request: what.to_string(),
            source,
        };
        self.socket
            .send(&message(kind, flags, seq, cmd, version, attrs), 0)
            .map_err(io)?;
        let mut out = Vec::new();
        let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
        loop {
            buf.clear();
            self.socket.recv(&mut buf, 0).map_err(io)?;
            let mut b = &buf[..];
            while b.len() >= 16 {
                let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
                let typ = u16::from_ne_bytes([b[4], b[5]]);
                let mseq = u32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
                if len < 16 || len > b.len() {
                    return Err(DataplaneError::Other {
                        request: what.to_string(),
                        detail: format!("malformed netlink message of length {len}"),
                    });
                }
                let body = &b[16..len];
                b = &b[((len + 3) & !3).min(b.len())..];
                if mseq != seq {
                    continue;
                }
                match typ {
                    NLMSG_ERROR => {
                        let code = body
                            .get(..4)
                            .map(|c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
                            .unwrap_or(0);
                        if code != 0 {
                            return Err(DataplaneError::Kernel {
                                request: what.to_string(),
                                errno: -code,
                                detail: None,
                            });
                        }
                        return Ok(out);
                    }
                    NLMSG_DONE => return Ok(out),
                    _ => {
                        if body.len() >= 4 {
                            out.push(body[4..].to_vec());
                        }
                        if flags & NLM_F_DUMP == 0 && flags & NLM_F_ACK == 0 {
                            return Ok(out);
                        }
                    }
                }
            }
        }
    }

    pub fn ports(&mut self) -> DpResult<Vec<FouPort>> {
        let replies = self.request(
            self.family,
            NLM_F_REQUEST | NLM_F_DUMP,
            FOU_CMD_GET,
            FOU_GENL_VERSION,
            &[],
            "dump fou ports",
        )?;
        Ok(replies.iter().filter_map(|p| parse_port(p)).collect())
    }

    pub fn add(&mut self, p: &FouPort) -> DpResult<()> {
        self.request(
            self.family,
            NLM_F_REQUEST | NLM_F_ACK,
            FOU_CMD_ADD,
            FOU_GENL_VERSION,
            &port_attrs(p),
            &format!("add {p}"),
        )
        .map(drop)
    }

    pub fn del(&mut self, p: &FouPort) -> DpResult<()> {
        self.request(
            self.family,
            NLM_F_REQUEST | NLM_F_ACK,
            FOU_CMD_DEL,
            FOU_GENL_VERSION,
            &port_attrs(p),
            &format!("delete {p}"),
        )
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_family_is_found_by_name_in_a_dump_of_every_family() {
        let family = |name: &str, id: u16| {
            let mut a = Vec::new();
            attr(&mut a, CTRL_ATTR_FAMILY_ID, &id.to_ne_bytes());
            attr(
                &mut a,
                CTRL_ATTR_FAMILY_NAME,
                format!("{name}\0").as_bytes(),
            );
            a
        };
        let dump = vec![family("nlctrl", 16), family("foux", 30), family("fou", 31)];
        let ours = named(dump.clone(), b"fou\0").expect("fou is in the dump");
        assert_eq!(family_id(&[ours]), Some(31));
        assert_eq!(
            named(dump[..2].to_vec(), b"fou\0"),
            None,
            "a longer name is another family"
        );
    }

    #[test]
    fn add_request_bytes_match_ip_fou_add() {
        // `ip fou add port 6080 gue`: PORT (be16), AF (u8), TYPE (u8), each
        // padded to 4 bytes.
        let p = FouPort {
            port: 6080,
            ipv6: false,
        };
        let m = message(
            0x1c,
            NLM_F_REQUEST | NLM_F_ACK,
            7,
            FOU_CMD_ADD,
            1,
            &port_attrs(&p),
        );
        let mut want = Vec::new();
        want.extend_from_slice(&44u32.to_ne_bytes());
        want.extend_from_slice(&0x1cu16.to_ne_bytes());
        want.extend_from_slice(&5u16.to_ne_bytes());
        want.extend_from_slice(&7u32.to_ne_bytes());
        want.extend_from_slice(&0u32.to_ne_bytes());
        want.extend_from_slice(&[1, 1, 0, 0]);
        want.extend_from_slice(&6u16.to_ne_bytes());
        want.extend_from_slice(&1u16.to_ne_bytes());
        want.extend_from_slice(&[0x17, 0xc0, 0, 0]);
        want.extend_from_slice(&5u16.to_ne_bytes());
        want.extend_from_slice(&2u16.to_ne_bytes());
        want.extend_from_slice(&[2, 0, 0, 0]);
        want.extend_from_slice(&5u16.to_ne_bytes());
        want.extend_from_slice(&4u16.to_ne_bytes());
        want.extend_from_slice(&[2, 0, 0, 0]);
        assert_eq!(m, want);
        // And a GET reply with the same attributes parses back.
        assert_eq!(parse_port(&port_attrs(&p)), Some(p));
        let mut direct = Vec::new();
        attr(&mut direct, FOU_ATTR_PORT, &6080u16.to_be_bytes());
        attr(&mut direct, FOU_ATTR_AF, &[AF_INET]);
        attr(&mut direct, FOU_ATTR_TYPE, &[1]);
        assert_eq!(parse_port(&direct), None);
    }
}

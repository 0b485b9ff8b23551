//! Source NAT on the director through nf_tables, spoken over netlink
//! (`NETLINK_NETFILTER`, subsystem `NFNL_SUBSYS_NFTABLES`) the way `nft`
//! does it, without the `nft` binary. The encoder is small and pure: a
//! netlink header, the `nfgenmsg` header and attributes, nested where
//! nf_tables nests them; the tests compare exact bytes.
//!
//! The agent owns exactly one table, `inet lvs-operator`: its name is its
//! ownership mark, as the agent's label is on an address. Other tables are
//! never read for ownership, changed or deleted. The table is written whole,
//! in one nf_tables transaction (a batch): `add table; delete table; add
//! table; add chain; add rule...` replaces whatever was there atomically,
//! so packets never see a half-built rule set, and `add table; delete
//! table` removes it without failing when it is already gone.
//!
//! One base chain, `postrouting` (type nat, hook postrouting, priority
//! srcnat = 100), holds one rule per source-NATed service:
//!
//! ```text
//! meta l4proto tcp ct original ip daddr 192.0.2.10 ct original proto-dst 80 masquerade fully-random comment "192.0.2.10:80/TCP"
//! meta nfproto ipv4 meta mark 0x00000007 masquerade fully-random comment "fwmark:7/IPv4"
//! ```
//!
//! Why this match is right: IPVS (with `net.ipv4.vs.conntrack=1`) keeps
//! the connection's conntrack entry, whose original tuple is the client's
//! (client -> VIP:port); only its reply tuple is changed to the realserver.
//! NAT chains see only the first packet of a connection, and a packet
//! forwarded by IPVS to a NAT realserver leaves through postrouting with
//! that entry still unconfirmed, so the protocol + `ct original ip daddr
//! VIP` + `ct original proto-dst PORT` select exactly the connections
//! that the director forwards for this service: masquerading rewrites the
//! source to the outgoing interface's address, the reply comes back to the
//! director, and conntrack undoes both translations. Connections the
//! director terminates itself (a VIP answered locally) never pass
//! postrouting as new, and other traffic to the VIP's address on another
//! port or protocol does not match. A fwmark service has no address: its
//! mark is still on the forwarded packet, so the mark and family select it.
//! The backends then see the director's address as the source, never the
//! client's (DR and TUN, which keep it, cannot use source NAT).
//!
//! A second base chain, `prerouting` (type filter, hook prerouting,
//! priority mangle = -150), exists while a fwmark service declares which
//! packets get its mark (`spec.fwmarkMatch`): one rule per address and
//! port range, before IPVS (which sees the packets at local-in) looks at
//! the mark:
//!
//! ```text
//! meta nfproto ipv4 meta l4proto tcp ip daddr 192.0.2.80 tcp dport 80-88 meta mark set 0x00000007 comment "fwmark:7/IPv4 192.0.2.80 TCP 80-88"
//! ```
//!
//! Each rule carries its service key as comment (nft's own user-data
//! format): reading the rules back and comparing comments tells whether the
//! table holds what the agent wants, so a table changed or removed by hand
//! is rewritten on the next full sync.

use std::net::IpAddr;

use lvs_api::Protocol;
use lvs_planner::{PlannedMark, ServiceKey};

use super::nla::{attr, attrs};

/// The agent's table (family inet: IPv4 and IPv6 in one).
pub const TABLE: &str = "lvs-operator";
/// Its base chain for source NAT.
pub const CHAIN: &str = "postrouting";
/// Its base chain for fwmark marking.
pub const MARK_CHAIN: &str = "prerouting";

/// What the agent's table holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// The source-NATed services (chain `postrouting`).
    pub snat: Vec<ServiceKey>,
    /// The marking rules of fwmark services (chain `prerouting`).
    pub marks: Vec<PlannedMark>,
}

impl Rules {
    pub fn is_empty(&self) -> bool {
        self.snat.is_empty() && self.marks.is_empty()
    }

    /// The comments of the table's rules as [`client::read_table`] lists
    /// them, sorted.
    pub fn comments(&self) -> Vec<String> {
        let mut c: Vec<String> = self.snat.iter().map(comment).collect();
        for m in &self.marks {
            c.extend(
                mark_rules(m)
                    .map(|(a, r)| format!("{} (chain {MARK_CHAIN})", mark_comment(m, a, r))),
            );
        }
        c.sort();
        c
    }
}

/// The rules of one marking: one per address and port range (or per
/// address when every port is marked).
pub(crate) fn mark_rules(
    m: &PlannedMark,
) -> impl Iterator<Item = (IpAddr, Option<(u16, u16)>)> + '_ {
    m.addresses.iter().flat_map(move |a| {
        let ranges: Vec<Option<(u16, u16)>> = if m.ports.is_empty() {
            vec![None]
        } else {
            m.ports.iter().copied().map(Some).collect()
        };
        ranges.into_iter().map(move |r| (*a, r))
    })
}

/// The comment of one marking rule.
pub fn mark_comment(m: &PlannedMark, addr: IpAddr, ports: Option<(u16, u16)>) -> String {
    let key = ServiceKey::Fwmark {
        mark: m.mark,
        ipv6: m.ipv6,
    };
    match ports {
        None => format!("{key} {addr} {}", m.protocol),
        Some((a, b)) => format!("{key} {addr} {} {a}-{b}", m.protocol),
    }
}

pub(crate) const NETLINK_NETFILTER: isize = 12;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_APPEND: u16 = 0x800;
const NLA_F_NESTED: u16 = 0x8000;

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_GETRULE: u16 = 7;

const NFPROTO_UNSPEC: u8 = 0;
const NFPROTO_INET: u8 = 1;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;

const NFTA_TABLE_NAME: u16 = 1;
const NFTA_TABLE_FLAGS: u16 = 2;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_RULE_USERDATA: u16 = 7;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_CT_DREG: u16 = 1;
const NFTA_CT_KEY: u16 = 2;
const NFTA_CT_DIRECTION: u16 = 3;
const NFTA_META_DREG: u16 = 1;
const NFTA_META_KEY: u16 = 2;
const NFTA_CMP_SREG: u16 = 1;
const NFTA_CMP_OP: u16 = 2;
const NFTA_CMP_DATA: u16 = 3;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_MASQ_FLAGS: u16 = 1;
const NFTA_META_SREG: u16 = 3;
const NFTA_PAYLOAD_DREG: u16 = 1;
const NFTA_PAYLOAD_BASE: u16 = 2;
const NFTA_PAYLOAD_OFFSET: u16 = 3;
const NFTA_PAYLOAD_LEN: u16 = 4;
const NFTA_IMMEDIATE_DREG: u16 = 1;
const NFTA_IMMEDIATE_DATA: u16 = 2;
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
const NFT_CMP_LTE: u32 = 3;
const NFT_CMP_GTE: u32 = 5;
const NF_INET_PRE_ROUTING: u32 = 0;
/// `NF_IP_PRI_MANGLE`, nft's `mangle`.
const PRIORITY_MANGLE: i32 = -150;

const NF_INET_POST_ROUTING: u32 = 4;
/// `NF_IP_PRI_NAT_SRC`, nft's `srcnat`.
const PRIORITY_SRCNAT: i32 = 100;
const NF_ACCEPT: u32 = 1;
const NFT_REG_1: u32 = 1;
const NFT_CMP_EQ: u32 = 0;
const IP_CT_DIR_ORIGINAL: u8 = 0;
const NFT_CT_PROTO_DST: u32 = 12;
const NFT_CT_DST_IP: u32 = 20;
const NFT_CT_DST_IP6: u32 = 22;
const NFT_META_MARK: u32 = 3;
const NFT_META_NFPROTO: u32 = 15;
const NFT_META_L4PROTO: u32 = 16;
/// `NF_NAT_RANGE_PROTO_RANDOM_FULLY`: source ports chosen at random, as
/// kube-proxy does, so that masqueraded connections from many clients do
/// not race for the same port.
const NF_NAT_RANGE_PROTO_RANDOM_FULLY: u32 = 0x10;
/// libnftnl's `NFTNL_UDATA_RULE_COMMENT`.
const UDATA_RULE_COMMENT: u8 = 0;

fn l4proto(p: Protocol) -> u8 {
    match p {
        Protocol::Tcp => 6,
        Protocol::Udp => 17,
        Protocol::Sctp => 132,
    }
}

/// The comment that names a service's rule.
pub fn comment(key: &ServiceKey) -> String {
    key.to_string()
}

fn attr_str(out: &mut Vec<u8>, kind: u16, s: &str) {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    attr(out, kind, &v);
}

fn attr_be32(out: &mut Vec<u8>, kind: u16, v: u32) {
    attr(out, kind, &v.to_be_bytes());
}

fn nested(out: &mut Vec<u8>, kind: u16, inner: &[u8]) {
    attr(out, kind | NLA_F_NESTED, inner);
}

/// One message with its `nfgenmsg` (family, version 0, res_id big-endian).
fn message(kind: u16, flags: u16, seq: u32, family: u8, res_id: u16, attrs: &[u8]) -> Vec<u8> {
    let [r0, r1] = res_id.to_be_bytes();
    super::nla::message(kind, flags, seq, [family, 0, r0, r1], attrs)
}

fn nft_type(msg: u16) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | msg
}

fn expr(out: &mut Vec<u8>, name: &str, data: &[u8]) {
    let mut e = Vec::new();
    attr_str(&mut e, NFTA_EXPR_NAME, name);
    if !data.is_empty() {
        nested(&mut e, NFTA_EXPR_DATA, data);
    }
    nested(out, NFTA_LIST_ELEM, &e);
}

/// `ct original <key>` into register 1.
fn ct_original(out: &mut Vec<u8>, key: u32) {
    let mut d = Vec::new();
    attr_be32(&mut d, NFTA_CT_DREG, NFT_REG_1);
    attr_be32(&mut d, NFTA_CT_KEY, key);
    attr(&mut d, NFTA_CT_DIRECTION, &[IP_CT_DIR_ORIGINAL]);
    expr(out, "ct", &d);
}

/// `meta <key>` into register 1.
fn meta(out: &mut Vec<u8>, key: u32) {
    let mut d = Vec::new();
    attr_be32(&mut d, NFTA_META_DREG, NFT_REG_1);
    attr_be32(&mut d, NFTA_META_KEY, key);
    expr(out, "meta", &d);
}

/// Register 1 equals `value`, or the rule ends here.
fn cmp_eq(out: &mut Vec<u8>, value: &[u8]) {
    cmp(out, NFT_CMP_EQ, value);
}

/// Register 1 compared with `value` (bytes in order, so big-endian numbers
/// compare as numbers), or the rule ends here.
fn cmp(out: &mut Vec<u8>, op: u32, value: &[u8]) {
    let mut d = Vec::new();
    attr_be32(&mut d, NFTA_CMP_SREG, NFT_REG_1);
    attr_be32(&mut d, NFTA_CMP_OP, op);
    let mut v = Vec::new();
    attr(&mut v, NFTA_DATA_VALUE, value);
    nested(&mut d, NFTA_CMP_DATA, &v);
    expr(out, "cmp", &d);
}

/// `len` bytes of the packet at `offset` of header `base` into register 1.
fn payload(out: &mut Vec<u8>, base: u32, offset: u32, len: u32) {
    let mut d = Vec::new();
    attr_be32(&mut d, NFTA_PAYLOAD_DREG, NFT_REG_1);
    attr_be32(&mut d, NFTA_PAYLOAD_BASE, base);
    attr_be32(&mut d, NFTA_PAYLOAD_OFFSET, offset);
    attr_be32(&mut d, NFTA_PAYLOAD_LEN, len);
    expr(out, "payload", &d);
}

/// The expressions of one marking rule (see the module documentation).
pub(crate) fn mark_expressions(
    m: &PlannedMark,
    addr: IpAddr,
    ports: Option<(u16, u16)>,
) -> Vec<u8> {
    let mut e = Vec::new();
    meta(&mut e, NFT_META_NFPROTO);
    cmp_eq(
        &mut e,
        &[if addr.is_ipv6() {
            NFPROTO_IPV6
        } else {
            NFPROTO_IPV4
        }],
    );
    meta(&mut e, NFT_META_L4PROTO);
    cmp_eq(&mut e, &[l4proto(m.protocol)]);
    match addr {
        IpAddr::V4(a) => {
            payload(&mut e, NFT_PAYLOAD_NETWORK_HEADER, 16, 4);
            cmp_eq(&mut e, &a.octets());
        }
        IpAddr::V6(a) => {
            payload(&mut e, NFT_PAYLOAD_NETWORK_HEADER, 24, 16);
            cmp_eq(&mut e, &a.octets());
        }
    }
    if let Some((first, last)) = ports {
        // The destination port is at offset 2 in TCP, UDP and SCTP alike.
        payload(&mut e, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2);
        if first == last {
            cmp_eq(&mut e, &first.to_be_bytes());
        } else {
            cmp(&mut e, NFT_CMP_GTE, &first.to_be_bytes());
            cmp(&mut e, NFT_CMP_LTE, &last.to_be_bytes());
        }
    }
    let mut imm = Vec::new();
    attr_be32(&mut imm, NFTA_IMMEDIATE_DREG, NFT_REG_1);
    let mut v = Vec::new();
    attr(&mut v, NFTA_DATA_VALUE, &m.mark.to_ne_bytes());
    nested(&mut imm, NFTA_IMMEDIATE_DATA, &v);
    expr(&mut e, "immediate", &imm);
    let mut set = Vec::new();
    attr_be32(&mut set, NFTA_META_KEY, NFT_META_MARK);
    attr_be32(&mut set, NFTA_META_SREG, NFT_REG_1);
    expr(&mut e, "meta", &set);
    e
}

/// The expressions of one service's rule (see the module documentation).
pub(crate) fn rule_expressions(key: &ServiceKey) -> Vec<u8> {
    let mut e = Vec::new();
    match key {
        ServiceKey::Tuple {
            addr,
            protocol,
            port,
        } => {
            // The protocol first, as nft writes it: `nft list` then shows
            // the port as a port of that protocol.
            meta(&mut e, NFT_META_L4PROTO);
            cmp_eq(&mut e, &[l4proto(*protocol)]);
            match addr {
                std::net::IpAddr::V4(a) => {
                    ct_original(&mut e, NFT_CT_DST_IP);
                    cmp_eq(&mut e, &a.octets());
                }
                std::net::IpAddr::V6(a) => {
                    ct_original(&mut e, NFT_CT_DST_IP6);
                    cmp_eq(&mut e, &a.octets());
                }
            }
            ct_original(&mut e, NFT_CT_PROTO_DST);
            cmp_eq(&mut e, &port.to_be_bytes());
        }
        ServiceKey::Fwmark { mark, ipv6 } => {
            meta(&mut e, NFT_META_NFPROTO);
            cmp_eq(&mut e, &[if *ipv6 { NFPROTO_IPV6 } else { NFPROTO_IPV4 }]);
            meta(&mut e, NFT_META_MARK);
            cmp_eq(&mut e, &mark.to_ne_bytes());
        }
    }
    let mut masq = Vec::new();
    attr_be32(&mut masq, NFTA_MASQ_FLAGS, NF_NAT_RANGE_PROTO_RANDOM_FULLY);
    expr(&mut e, "masq", &masq);
    e
}

/// A rule's user data holding `comment`, in nft's format (type, length,
/// NUL-terminated string), so `nft list ruleset` shows it.
fn userdata(comment: &str) -> Vec<u8> {
    let mut v = comment.as_bytes().to_vec();
    v.push(0);
    let mut u = vec![UDATA_RULE_COMMENT, v.len().min(255) as u8];
    u.extend_from_slice(&v[..v.len().min(255)]);
    u
}

fn table_attrs() -> Vec<u8> {
    let mut a = Vec::new();
    attr_str(&mut a, NFTA_TABLE_NAME, TABLE);
    a
}

/// A batch of nf_tables messages: BATCH_BEGIN at `seq`, the messages
/// (each asking for an ack) at `seq + 1 ..`, BATCH_END. Returns the
/// datagram and the sequence numbers whose answers to wait for.
struct Batch {
    bytes: Vec<u8>,
    seq: u32,
    acked: Vec<u32>,
}

impl Batch {
    fn begin(seq: u32) -> Self {
        Batch {
            bytes: message(
                NFNL_MSG_BATCH_BEGIN,
                NLM_F_REQUEST,
                seq,
                NFPROTO_UNSPEC,
                NFNL_SUBSYS_NFTABLES,
                &[],
            ),
            seq,
            acked: Vec::new(),
        }
    }

    fn push(&mut self, msg: u16, flags: u16, attrs: &[u8]) {
        self.seq = self.seq.wrapping_add(1);
        self.acked.push(self.seq);
        self.bytes.extend(message(
            nft_type(msg),
            NLM_F_REQUEST | NLM_F_ACK | flags,
            self.seq,
            NFPROTO_INET,
            0,
            attrs,
        ));
    }

    fn end(mut self) -> (Vec<u8>, Vec<u32>) {
        self.seq = self.seq.wrapping_add(1);
        self.bytes.extend(message(
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST,
            self.seq,
            NFPROTO_UNSPEC,
            NFNL_SUBSYS_NFTABLES,
            &[],
        ));
        (self.bytes, self.acked)
    }

    /// `add table inet lvs-operator; delete table inet lvs-operator`:
    /// removes the table whether or not it exists.
    fn clear(&mut self) {
        let mut t = table_attrs();
        attr_be32(&mut t, NFTA_TABLE_FLAGS, 0);
        self.push(NFT_MSG_NEWTABLE, NLM_F_CREATE, &t);
        self.push(NFT_MSG_DELTABLE, 0, &table_attrs());
    }
}

/// A base chain of the agent's table.
fn base_chain(b: &mut Batch, name: &str, hook: u32, priority: i32, type_: &str) {
    let mut c = Vec::new();
    attr_str(&mut c, NFTA_CHAIN_TABLE, TABLE);
    attr_str(&mut c, NFTA_CHAIN_NAME, name);
    let mut h = Vec::new();
    attr_be32(&mut h, NFTA_HOOK_HOOKNUM, hook);
    attr(&mut h, NFTA_HOOK_PRIORITY, &priority.to_be_bytes());
    nested(&mut c, NFTA_CHAIN_HOOK, &h);
    attr_be32(&mut c, NFTA_CHAIN_POLICY, NF_ACCEPT);
    attr_str(&mut c, NFTA_CHAIN_TYPE, type_);
    b.push(NFT_MSG_NEWCHAIN, NLM_F_CREATE, &c);
}

/// Appends a rule to a chain of the agent's table.
fn rule(b: &mut Batch, chain: &str, expressions: &[u8], comment: &str) {
    let mut r = Vec::new();
    attr_str(&mut r, NFTA_RULE_TABLE, TABLE);
    attr_str(&mut r, NFTA_RULE_CHAIN, chain);
    nested(&mut r, NFTA_RULE_EXPRESSIONS, expressions);
    attr(&mut r, NFTA_RULE_USERDATA, &userdata(comment));
    b.push(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, &r);
}

/// The transaction that replaces the table with one holding `rules` (in
/// order), starting at sequence number `seq`. A chain without rules is
/// left out.
pub(crate) fn replace_batch(seq: u32, rules: &Rules) -> (Vec<u8>, Vec<u32>) {
    let mut b = Batch::begin(seq);
    b.clear();
    let mut t = table_attrs();
    attr_be32(&mut t, NFTA_TABLE_FLAGS, 0);
    b.push(NFT_MSG_NEWTABLE, NLM_F_CREATE, &t);
    if !rules.snat.is_empty() {
        base_chain(&mut b, CHAIN, NF_INET_POST_ROUTING, PRIORITY_SRCNAT, "nat");
        for k in &rules.snat {
            rule(&mut b, CHAIN, &rule_expressions(k), &comment(k));
        }
    }
    if !rules.marks.is_empty() {
        base_chain(
            &mut b,
            MARK_CHAIN,
            NF_INET_PRE_ROUTING,
            PRIORITY_MANGLE,
            "filter",
        );
        for m in &rules.marks {
            for (a, r) in mark_rules(m) {
                rule(
                    &mut b,
                    MARK_CHAIN,
                    &mark_expressions(m, a, r),
                    &mark_comment(m, a, r),
                );
            }
        }
    }
    b.end()
}

/// The transaction that deletes the table (a no-op when it is absent).
pub(crate) fn delete_batch(seq: u32) -> (Vec<u8>, Vec<u32>) {
    let mut b = Batch::begin(seq);
    b.clear();
    b.end()
}

/// GETTABLE for the agent's table: a NEWTABLE answer, or ENOENT.
pub(crate) fn get_table(seq: u32) -> Vec<u8> {
    message(
        nft_type(NFT_MSG_GETTABLE),
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
        NFPROTO_INET,
        0,
        &table_attrs(),
    )
}

/// A dump of the rules of the agent's table (the kernel filters by table;
/// the answers are checked again all the same).
pub(crate) fn get_rules(seq: u32) -> Vec<u8> {
    let mut a = Vec::new();
    attr_str(&mut a, NFTA_RULE_TABLE, TABLE);
    message(
        nft_type(NFT_MSG_GETRULE),
        NLM_F_REQUEST | NLM_F_DUMP,
        seq,
        NFPROTO_INET,
        0,
        &a,
    )
}

fn nul_str(v: &[u8]) -> String {
    let end = v.iter().position(|&c| c == 0).unwrap_or(v.len());
    String::from_utf8_lossy(&v[..end]).into_owned()
}

/// One rule as dumped: its table, chain and comment ("" without one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DumpedRule {
    pub table: String,
    pub chain: String,
    pub comment: String,
}

/// A GETRULE answer's payload (after `nfgenmsg`).
pub(crate) fn parse_rule(payload: &[u8]) -> DumpedRule {
    let mut r = DumpedRule {
        table: String::new(),
        chain: String::new(),
        comment: String::new(),
    };
    for (k, v) in attrs(payload) {
        match k {
            NFTA_RULE_TABLE => r.table = nul_str(v),
            NFTA_RULE_CHAIN => r.chain = nul_str(v),
            NFTA_RULE_USERDATA => {
                // TLVs of (type u8, len u8, value).
                let mut u = v;
                while u.len() >= 2 {
                    let (t, l) = (u[0], u[1] as usize);
                    let Some(val) = u.get(2..2 + l) else { break };
                    if t == UDATA_RULE_COMMENT {
                        r.comment = nul_str(val);
                    }
                    u = &u[2 + l..];
                }
            }
            _ => {}
        }
    }
    r
}

/// One answer read from the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// An ack (errno 0) or an error (errno > 0) for `seq`.
    Ack {
        seq: u32,
        errno: i32,
    },
    Done {
        seq: u32,
    },
    /// A message with a payload (after `nfgenmsg`).
    Data {
        seq: u32,
        payload: Vec<u8>,
    },
}

/// The netlink messages of one datagram.
pub(crate) fn answers(mut b: &[u8]) -> Result<Vec<Answer>, String> {
    let mut out = Vec::new();
    while b.len() >= 16 {
        let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let typ = u16::from_ne_bytes([b[4], b[5]]);
        let seq = u32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
        if len < 16 || len > b.len() {
            return Err(format!("malformed netlink message of length {len}"));
        }
        let body = &b[16..len];
        b = &b[((len + 3) & !3).min(b.len())..];
        out.push(match typ {
            NLMSG_ERROR => Answer::Ack {
                seq,
                errno: body
                    .get(..4)
                    .map_or(0, |c| -i32::from_ne_bytes([c[0], c[1], c[2], c[3]])),
            },
            NLMSG_DONE => Answer::Done { seq },
            _ => Answer::Data {
                seq,
                payload: body.get(4..).unwrap_or_default().to_vec(),
            },
        });
    }
    Ok(out)
}

#[cfg(target_os = "linux")]
pub(crate) mod client {
    //! The socket side: one short-lived `NETLINK_NETFILTER` socket per
    //! operation (source NAT changes are rare).

    use std::io;

    use netlink_sys::{Socket, SocketAddr};

    use super::*;
    use crate::dataplane::{DataplaneError, DpResult, errno};

    fn open(what: &str) -> DpResult<Socket> {
        let io = |source| DataplaneError::Io {
            request: what.to_string(),
            source,
        };
        // No socket (nfnetlink missing, EPROTONOSUPPORT): nothing was sent,
        // so this is a refusal, not an unknown outcome.
        let mut s =
            Socket::new(NETLINK_NETFILTER).map_err(|e: io::Error| match e.raw_os_error() {
                Some(errno) => kernel(what, errno),
                None => io(e),
            })?;
        s.bind_auto().map_err(io)?;
        s.connect(&SocketAddr::new(0, 0)).map_err(io)?;
        Ok(s)
    }

    /// Reads answers until `done` says so.
    fn read(
        s: &mut Socket,
        what: &str,
        mut done: impl FnMut(Answer) -> DpResult<bool>,
    ) -> DpResult<()> {
        let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
        loop {
            buf.clear();
            s.recv(&mut buf, 0)
                .map_err(|source: io::Error| DataplaneError::Io {
                    request: what.to_string(),
                    source,
                })?;
            for a in answers(&buf).map_err(|detail| DataplaneError::Other {
                request: what.to_string(),
                detail,
            })? {
                if done(a)? {
                    return Ok(());
                }
            }
        }
    }

    fn kernel(what: &str, errno: i32) -> DataplaneError {
        DataplaneError::Kernel {
            request: what.to_string(),
            errno,
            detail: None,
        }
    }

    /// Sends a batch and waits for an answer to each of its messages; the
    /// first error is the batch's (the kernel then applied none of it).
    fn transact(datagram: &[u8], acked: &[u32], what: &str) -> DpResult<()> {
        let mut s = open(what)?;
        s.send(datagram, 0).map_err(|source| DataplaneError::Io {
            request: what.to_string(),
            source,
        })?;
        let first = acked.first().copied().unwrap_or(0).wrapping_sub(1);
        let mut pending: std::collections::BTreeSet<u32> = acked.iter().copied().collect();
        let mut failed = None;
        read(&mut s, what, |a| {
            if let Answer::Ack { seq, errno } = a {
                if errno != 0 && failed.is_none() {
                    failed = Some(errno);
                }
                // An error on BATCH_BEGIN (nf_tables missing) ends it all.
                if seq == first && errno != 0 {
                    return Ok(true);
                }
                pending.remove(&seq);
            }
            Ok(pending.is_empty())
        })?;
        match failed {
            Some(e) => Err(kernel(what, e)),
            None => Ok(()),
        }
    }

    /// Makes the table hold exactly `rules`.
    pub fn replace(rules: &Rules) -> DpResult<()> {
        let (datagram, acked) = replace_batch(1, rules);
        transact(
            &datagram,
            &acked,
            &format!(
                "replace nftables table inet {TABLE} ({} rules)",
                rules.comments().len()
            ),
        )
    }

    /// Deletes the table if it exists.
    pub fn delete() -> DpResult<()> {
        let (datagram, acked) = delete_batch(1);
        transact(
            &datagram,
            &acked,
            &format!("delete nftables table inet {TABLE}"),
        )
    }

    /// The comments of the rules in the table's chain (sorted; "" for a
    /// rule without one), or `None` when the table does not exist.
    ///
    /// On a kernel where nf_tables is a module not yet loaded, asking loads
    /// it (as `nft list tables` would); nodes that run iptables-nft or
    /// kube-proxy have it loaded anyway. Where it cannot be loaded the read
    /// fails, which matters only when source NAT is wanted.
    pub fn read_table() -> DpResult<Option<Vec<String>>> {
        let what = format!("read nftables table inet {TABLE}");
        let mut s = open(&what)?;
        let send = |s: &mut Socket, m: &[u8]| {
            s.send(m, 0).map(drop).map_err(|source| DataplaneError::Io {
                request: what.clone(),
                source,
            })
        };
        send(&mut s, &get_table(1))?;
        let mut exists = true;
        read(&mut s, &what, |a| match a {
            Answer::Ack { seq: 1, errno: 0 } => Ok(true),
            Answer::Ack { seq: 1, errno } if errno == errno::ENOENT => {
                exists = false;
                Ok(true)
            }
            Answer::Ack { seq: 1, errno } => Err(kernel(&what, errno)),
            _ => Ok(false),
        })?;
        if !exists {
            return Ok(None);
        }
        send(&mut s, &get_rules(2))?;
        let mut comments = Vec::new();
        read(&mut s, &what, |a| match a {
            Answer::Data { seq: 2, payload } => {
                let r = parse_rule(&payload);
                if r.table == TABLE {
                    comments.push(if r.chain == CHAIN {
                        r.comment
                    } else {
                        format!("{} (chain {})", r.comment, r.chain)
                    });
                }
                Ok(false)
            }
            Answer::Done { seq: 2 } | Answer::Ack { seq: 2, errno: 0 } => Ok(true),
            Answer::Ack { seq: 2, errno } => Err(kernel(&what, errno)),
            _ => Ok(false),
        })?;
        comments.sort();
        Ok(Some(comments))
    }
}

#[cfg(test)]
mod tests;

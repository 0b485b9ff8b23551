//! Exact bytes of the nf_tables requests, spelled field by field with the
//! numbers of `linux/netfilter/nf_tables.h` (not the encoder's constants),
//! and the parsers fed with answers in the kernel's layout.

use super::*;

/// A netlink attribute: length, type, value, padding to 4 bytes.
fn tlv(kind: u16, value: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
    v.extend_from_slice(&kind.to_ne_bytes());
    v.extend_from_slice(value);
    while v.len() % 4 != 0 {
        v.push(0);
    }
    v
}

fn nest(kind: u16, parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(kind | 0x8000, &parts.concat())
}

/// Netlink header + nfgenmsg.
fn header(len: usize, kind: u16, flags: u16, seq: u32, family: u8, res_id: u16) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&(len as u32).to_ne_bytes());
    h.extend_from_slice(&kind.to_ne_bytes());
    h.extend_from_slice(&flags.to_ne_bytes());
    h.extend_from_slice(&seq.to_ne_bytes());
    h.extend_from_slice(&0u32.to_ne_bytes());
    h.push(family);
    h.push(0);
    h.extend_from_slice(&res_id.to_be_bytes());
    h
}

fn msg(kind: u16, flags: u16, seq: u32, family: u8, res_id: u16, attrs: &[Vec<u8>]) -> Vec<u8> {
    let a = attrs.concat();
    let mut m = header(20 + a.len(), kind, flags, seq, family, res_id);
    m.extend(a);
    m
}

const TABLE_NAME: &[u8] = b"lvs-operator\0";

#[test]
fn delete_batch_bytes() {
    let (bytes, acked) = delete_batch(1);
    let want = [
        // BATCH_BEGIN (0x10), NLM_F_REQUEST, AF_UNSPEC, res_id = NFNL_SUBSYS_NFTABLES.
        msg(0x10, 0x1, 1, 0, 10, &[]),
        // NEWTABLE (10 << 8 | 0), REQUEST|ACK|CREATE, inet (1): NAME, FLAGS 0.
        msg(
            0x0a00,
            0x405,
            2,
            1,
            0,
            &[tlv(1, TABLE_NAME), tlv(2, &0u32.to_be_bytes())],
        ),
        // DELTABLE (10 << 8 | 2), REQUEST|ACK: NAME.
        msg(0x0a02, 0x5, 3, 1, 0, &[tlv(1, TABLE_NAME)]),
        // BATCH_END (0x11).
        msg(0x11, 0x1, 4, 0, 10, &[]),
    ]
    .concat();
    assert_eq!(bytes, want);
    assert_eq!(acked, vec![2, 3]);
    // 20 + (20 + 28) + (20 + 20) + 20
    assert_eq!(bytes.len(), 128);
}

fn elem(name: &[u8], data: &[Vec<u8>]) -> Vec<u8> {
    let mut parts = vec![tlv(1, name)];
    if !data.is_empty() {
        parts.push(nest(2, data));
    }
    nest(1, &parts)
}

fn be32(v: u32) -> Vec<u8> {
    v.to_be_bytes().to_vec()
}

fn cmp(value: &[u8]) -> Vec<u8> {
    // sreg 1, op EQ (0), data { VALUE }
    elem(
        b"cmp\0",
        &[
            tlv(1, &be32(1)),
            tlv(2, &be32(0)),
            nest(3, &[tlv(1, value)]),
        ],
    )
}

fn masq() -> Vec<u8> {
    // flags = NF_NAT_RANGE_PROTO_RANDOM_FULLY (1 << 4)
    elem(b"masq\0", &[tlv(1, &be32(0x10))])
}

#[test]
fn tuple_rule_matches_the_original_destination_and_protocol() {
    let key = ServiceKey::Tuple {
        addr: "192.0.2.10".parse().unwrap(),
        protocol: Protocol::Tcp,
        port: 80,
    };
    // ct: dreg 1, key, direction original (0, u8).
    let ct = |k: u32| elem(b"ct\0", &[tlv(1, &be32(1)), tlv(2, &be32(k)), tlv(3, &[0])]);
    // meta: dreg 1, key.
    let meta = |k: u32| elem(b"meta\0", &[tlv(1, &be32(1)), tlv(2, &be32(k))]);
    let want = [
        meta(16), // NFT_META_L4PROTO
        cmp(&[6]),
        ct(20), // NFT_CT_DST_IP
        cmp(&[192, 0, 2, 10]),
        ct(12), // NFT_CT_PROTO_DST
        cmp(&[0, 80]),
        masq(),
    ]
    .concat();
    assert_eq!(rule_expressions(&key), want);

    let v6 = ServiceKey::Tuple {
        addr: "2001:db8::10".parse().unwrap(),
        protocol: Protocol::Udp,
        port: 53,
    };
    let addr: std::net::Ipv6Addr = "2001:db8::10".parse().unwrap();
    let want6 = [
        meta(16),
        cmp(&[17]),
        ct(22), // NFT_CT_DST_IP6
        cmp(&addr.octets()),
        ct(12),
        cmp(&[0, 53]),
        masq(),
    ]
    .concat();
    assert_eq!(rule_expressions(&v6), want6);
}

#[test]
fn fwmark_rule_matches_family_and_mark() {
    let meta = |k: u32| elem(b"meta\0", &[tlv(1, &be32(1)), tlv(2, &be32(k))]);
    let want = [
        meta(15), // NFT_META_NFPROTO
        cmp(&[10]),
        meta(3), // NFT_META_MARK, host order
        cmp(&7u32.to_ne_bytes()),
        masq(),
    ]
    .concat();
    assert_eq!(
        rule_expressions(&ServiceKey::Fwmark {
            mark: 7,
            ipv6: true
        }),
        want
    );
}

#[test]
fn replace_batch_rebuilds_table_chain_and_rules_in_one_transaction() {
    let keys = [
        ServiceKey::Tuple {
            addr: "192.0.2.10".parse().unwrap(),
            protocol: Protocol::Tcp,
            port: 80,
        },
        ServiceKey::Fwmark {
            mark: 7,
            ipv6: false,
        },
    ];
    let (bytes, acked) = replace_batch(
        100,
        &Rules {
            snat: keys.to_vec(),
            marks: vec![],
        },
    );
    let new_table = |seq| {
        msg(
            0x0a00,
            0x405,
            seq,
            1,
            0,
            &[tlv(1, TABLE_NAME), tlv(2, &be32(0))],
        )
    };
    let chain = msg(
        0x0a03, // NEWCHAIN
        0x405,
        104,
        1,
        0,
        &[
            tlv(1, TABLE_NAME),
            tlv(3, b"postrouting\0"),
            // hook: NF_INET_POST_ROUTING (4), priority srcnat (100)
            nest(4, &[tlv(1, &be32(4)), tlv(2, &be32(100))]),
            tlv(5, &be32(1)), // policy accept
            tlv(7, b"nat\0"),
        ],
    );
    let rule = |seq, k: &ServiceKey, comment: &str| {
        let mut udata = vec![0u8, comment.len() as u8 + 1];
        udata.extend_from_slice(comment.as_bytes());
        udata.push(0);
        msg(
            0x0a06,            // NEWRULE
            0x1 | 0x4 | 0xc00, // REQUEST|ACK|CREATE|APPEND
            seq,
            1,
            0,
            &[
                tlv(1, TABLE_NAME),
                tlv(2, b"postrouting\0"),
                nest(4, &[rule_expressions(k)]),
                tlv(7, &udata),
            ],
        )
    };
    let want = [
        msg(0x10, 0x1, 100, 0, 10, &[]),
        new_table(101),
        msg(0x0a02, 0x5, 102, 1, 0, &[tlv(1, TABLE_NAME)]),
        new_table(103),
        chain,
        rule(105, &keys[0], "192.0.2.10:80/TCP"),
        rule(106, &keys[1], "fwmark:7/IPv4"),
        msg(0x11, 0x1, 107, 0, 10, &[]),
    ]
    .concat();
    assert_eq!(bytes, want);
    assert_eq!(acked, (101..=106).collect::<Vec<_>>());
}

fn web_mark() -> PlannedMark {
    PlannedMark {
        mark: 7,
        ipv6: false,
        addresses: vec!["192.0.2.80".parse().unwrap(), "192.0.2.81".parse().unwrap()],
        protocol: Protocol::Tcp,
        ports: vec![(80, 80), (8000, 8100)],
    }
}

#[test]
fn mark_rule_matches_family_protocol_address_and_ports_then_sets_the_mark() {
    let meta = |k: u32| elem(b"meta\0", &[tlv(1, &be32(1)), tlv(2, &be32(k))]);
    // payload: dreg 1, base, offset, len.
    let payload = |base: u32, off: u32, len: u32| {
        elem(
            b"payload\0",
            &[
                tlv(1, &be32(1)),
                tlv(2, &be32(base)),
                tlv(3, &be32(off)),
                tlv(4, &be32(len)),
            ],
        )
    };
    let cmp_op = |op: u32, value: &[u8]| {
        elem(
            b"cmp\0",
            &[
                tlv(1, &be32(1)),
                tlv(2, &be32(op)),
                nest(3, &[tlv(1, value)]),
            ],
        )
    };
    // immediate: dreg 1, data { VALUE mark, host order }; meta set: key MARK (3), sreg 1.
    let set_mark = [
        elem(
            b"immediate\0",
            &[tlv(1, &be32(1)), nest(2, &[tlv(1, &7u32.to_ne_bytes())])],
        ),
        elem(b"meta\0", &[tlv(2, &be32(3)), tlv(3, &be32(1))]),
    ]
    .concat();
    let m = web_mark();
    let head = |addr: &[u8], net_off: u32| {
        [
            meta(15), // NFT_META_NFPROTO
            cmp(&[if addr.len() == 4 { 2 } else { 10 }]),
            meta(16), // NFT_META_L4PROTO
            cmp(&[6]),
            payload(1, net_off, addr.len() as u32), // network header, daddr
            cmp(addr),
        ]
        .concat()
    };
    let range = [
        head(&[192, 0, 2, 81], 16),
        payload(2, 2, 2),         // transport header, dport
        cmp_op(5, &[0x1f, 0x40]), // GTE 8000
        cmp_op(3, &[0x1f, 0xa4]), // LTE 8100
        set_mark.clone(),
    ]
    .concat();
    assert_eq!(
        mark_expressions(&m, "192.0.2.81".parse().unwrap(), Some((8000, 8100))),
        range
    );
    let single = [
        head(&[192, 0, 2, 80], 16),
        payload(2, 2, 2),
        cmp(&[0, 80]),
        set_mark.clone(),
    ]
    .concat();
    assert_eq!(
        mark_expressions(&m, "192.0.2.80".parse().unwrap(), Some((80, 80))),
        single
    );
    let v6: std::net::Ipv6Addr = "2001:db8::80".parse().unwrap();
    let every_port = [head(&v6.octets(), 24), set_mark].concat();
    assert_eq!(mark_expressions(&m, v6.into(), None), every_port);
}

#[test]
fn marks_get_their_own_chain_with_one_rule_per_address_and_range() {
    let rules = Rules {
        snat: vec![],
        marks: vec![web_mark()],
    };
    let (bytes, acked) = replace_batch(1, &rules);
    let msgs = answers(&bytes).unwrap();
    // begin, table, delete, table, chain, 2 x 2 rules, end
    assert_eq!(msgs.len(), 10);
    assert_eq!(acked.len(), 8);
    let chain = msg(
        0x0a03,
        0x405,
        5,
        1,
        0,
        &[
            tlv(1, TABLE_NAME),
            tlv(3, b"prerouting\0"),
            // hook: NF_INET_PRE_ROUTING (0), priority mangle (-150)
            nest(4, &[tlv(1, &be32(0)), tlv(2, &(-150i32).to_be_bytes())]),
            tlv(5, &be32(1)),
            tlv(7, b"filter\0"),
        ],
    );
    assert!(
        bytes.windows(chain.len()).any(|w| w == chain.as_slice()),
        "the prerouting chain"
    );
    let mut comments = Vec::new();
    for a in &msgs[5..9] {
        let Answer::Data { payload, .. } = a else {
            panic!("not a rule: {a:?}")
        };
        let r = parse_rule(payload);
        assert_eq!((r.table.as_str(), r.chain.as_str()), (TABLE, MARK_CHAIN));
        comments.push(format!("{} (chain {MARK_CHAIN})", r.comment));
    }
    comments.sort();
    assert_eq!(comments, rules.comments());
    assert_eq!(
        comments,
        [
            "fwmark:7/IPv4 192.0.2.80 TCP 80-80 (chain prerouting)",
            "fwmark:7/IPv4 192.0.2.80 TCP 8000-8100 (chain prerouting)",
            "fwmark:7/IPv4 192.0.2.81 TCP 80-80 (chain prerouting)",
            "fwmark:7/IPv4 192.0.2.81 TCP 8000-8100 (chain prerouting)",
        ]
    );
}

#[test]
fn reads_table_and_rule_answers() {
    assert_eq!(
        get_table(5),
        msg(0x0a01, 0x5, 5, 1, 0, &[tlv(1, TABLE_NAME)])
    );
    // NLM_F_REQUEST | NLM_F_DUMP
    assert_eq!(
        get_rules(6),
        msg(0x0a07, 0x301, 6, 1, 0, &[tlv(1, TABLE_NAME)])
    );
    // A NEWRULE answer as the kernel dumps it: table, chain, handle (3,
    // be64), expressions, user data with nft's comment TLV.
    let mut udata = vec![0u8, 18];
    udata.extend_from_slice(b"192.0.2.10:80/TCP\0");
    let payload = [
        tlv(1, TABLE_NAME),
        tlv(2, b"postrouting\0"),
        tlv(3, &4u64.to_be_bytes()),
        nest(4, &[masq()]),
        tlv(7, &udata),
    ]
    .concat();
    let mut answer = header(20 + payload.len(), 0x0a06, 0x2, 6, 1, 0);
    answer.extend_from_slice(&payload);
    // Then NLMSG_DONE and an error (-ENOENT) for another request.
    let mut done = Vec::new();
    done.extend_from_slice(&20u32.to_ne_bytes());
    done.extend_from_slice(&3u16.to_ne_bytes());
    done.extend_from_slice(&2u16.to_ne_bytes());
    done.extend_from_slice(&6u32.to_ne_bytes());
    done.extend_from_slice(&0u32.to_ne_bytes());
    done.extend_from_slice(&0i32.to_ne_bytes());
    let mut err = Vec::new();
    err.extend_from_slice(&20u32.to_ne_bytes());
    err.extend_from_slice(&2u16.to_ne_bytes());
    err.extend_from_slice(&0u16.to_ne_bytes());
    err.extend_from_slice(&7u32.to_ne_bytes());
    err.extend_from_slice(&0u32.to_ne_bytes());
    err.extend_from_slice(&(-2i32).to_ne_bytes());
    let all = [answer, done, err].concat();
    let got = answers(&all).unwrap();
    assert_eq!(got.len(), 3);
    let Answer::Data { seq: 6, payload: p } = &got[0] else {
        panic!("{got:?}")
    };
    assert_eq!(
        parse_rule(p),
        DumpedRule {
            table: "lvs-operator".into(),
            chain: "postrouting".into(),
            comment: "192.0.2.10:80/TCP".into(),
        }
    );
    assert_eq!(got[1], Answer::Done { seq: 6 });
    assert_eq!(got[2], Answer::Ack { seq: 7, errno: 2 });
    // A truncated datagram is an error, not a silent stop.
    assert!(answers(&all[..30]).is_err());
}

#[test]
fn comment_is_the_service_key() {
    let v6 = ServiceKey::Tuple {
        addr: "2001:db8::10".parse().unwrap(),
        protocol: Protocol::Udp,
        port: 53,
    };
    assert_eq!(comment(&v6), "[2001:db8::10]:53/UDP");
}

proptest::proptest! {
    /// Whatever the socket returns, reading it never panics, and a rule
    /// written by the encoder reads back with its comment.
    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
        let _ = answers(&bytes);
        let _ = parse_rule(&bytes);
    }

    #[test]
    fn encoded_rules_read_back(port in 1u16.., mark in proptest::num::u32::ANY, v6 in proptest::bool::ANY) {
        let keys = [
            ServiceKey::Tuple {
                addr: if v6 { "2001:db8::1".parse().unwrap() } else { "192.0.2.1".parse().unwrap() },
                protocol: Protocol::Sctp,
                port,
            },
            ServiceKey::Fwmark { mark, ipv6: v6 },
        ];
        let (bytes, acked) = replace_batch(1, &Rules { snat: keys.to_vec(), marks: vec![] });
        let msgs = answers(&bytes).unwrap();
        // begin, table, delete, table, chain, 2 rules, end
        proptest::prop_assert_eq!(msgs.len(), 8);
        proptest::prop_assert_eq!(acked.len(), 6);
        for (i, k) in keys.iter().enumerate() {
            let Answer::Data { payload, .. } = &msgs[5 + i] else {
                return Err(proptest::test_runner::TestCaseError::fail("not a data message"));
            };
            let r = parse_rule(payload);
            proptest::prop_assert_eq!(r.comment, comment(k));
            proptest::prop_assert_eq!(r.chain, CHAIN);
            proptest::prop_assert_eq!(r.table, TABLE);
        }
    }
}

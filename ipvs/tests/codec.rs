//! Codec round trips on hand-written bytes: parse → expected value, and
//! value → emit → the same bytes. Real-kernel captures live in
//! `kernel_fixtures.rs`; these cover every message kind independently of
//! the emitter (the expected bytes are written out or built with a tiny
//! TLV helper, never by the code under test).
//!
//! Longer than most files: the expected bytes are written out field by
//! field, which is the point of these tests.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use lvs_ipvs::codec::{
    DaemonAttr, DestAttr, IpvsAttr, IpvsCmd, IpvsMessage, IpvsNetlinkMessage, Nested, Stats32Attr,
    Stats64Attr, SvcAttr, SvcFlags, emit_message, parse_message,
};
use lvs_ipvs::types::{
    DestConfig, DestKey, Destination, Family, FwdMethod, Protocol, Service, ServiceConfig,
    ServiceFlags, ServiceKey, Stats, TunnelFlags, TunnelType,
};
use netlink_packet_core::{
    DefaultNla, NLM_F_ACK, NLM_F_MULTIPART, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_generic::{GenlHeader, GenlMessage};

const FAMILY: u16 = 0x20;

/// One TLV, padded to 4 bytes.
fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&((value.len() + 4) as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(value);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
    out
}

/// nlmsghdr + genlmsghdr + attributes.
fn genl(flags: u16, seq: u32, cmd: u8, attrs: &[Vec<u8>]) -> Vec<u8> {
    let body: Vec<u8> = attrs.concat();
    let mut out = Vec::new();
    out.extend_from_slice(&((16 + 4 + body.len()) as u32).to_ne_bytes());
    out.extend_from_slice(&FAMILY.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&[cmd, 1, 0, 0]);
    out.extend_from_slice(&body);
    out
}

fn wrap(flags: u16, seq: u32, msg: IpvsMessage) -> IpvsNetlinkMessage {
    let mut genl = GenlMessage::from_payload(msg);
    genl.set_resolved_family_id(FAMILY);
    let mut nl = NetlinkMessage::from(genl);
    nl.header.flags = flags;
    nl.header.sequence_number = seq;
    nl
}

fn ipvs_payload(msg: &IpvsNetlinkMessage) -> &IpvsMessage {
    match &msg.payload {
        NetlinkPayload::InnerMessage(genl) => &genl.payload,
        other => panic!("expected an IPVS message, got {other:?}"),
    }
}

/// parse(bytes) has the expected payload, and emit(parse(bytes)) == bytes.
fn assert_round_trip(bytes: &[u8], expected: &IpvsMessage) {
    let mut parsed = parse_message(bytes).expect("parse");
    assert_eq!(ipvs_payload(&parsed), expected);
    assert_eq!(parsed.header.message_type, FAMILY);
    assert_eq!(emit_message(&mut parsed), bytes, "re-emitted bytes differ");
}

fn u16b(v: u16) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}
fn u32b(v: u32) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}
fn u64b(v: u64) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

fn v4_service() -> Service {
    Service {
        key: ServiceKey::Tuple {
            addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            protocol: Protocol::TCP,
            port: 80,
        },
        config: ServiceConfig::new(Family::V4, "rr"),
    }
}

#[test]
#[cfg(target_endian = "little")]
fn new_service_v4_request_matches_hand_written_bytes() {
    #[rustfmt::skip]
    let expected: &[u8] = &[
        0x68, 0x00, 0x00, 0x00, // nlmsg_len = 104
        0x20, 0x00,             // nlmsg_type = IPVS family id 0x20
        0x05, 0x00,             // flags = REQUEST | ACK
        0x07, 0x00, 0x00, 0x00, // seq = 7
        0x00, 0x00, 0x00, 0x00, // pid = 0 (kernel fills it in)
        0x01, 0x01, 0x00, 0x00, // genl cmd = NEW_SERVICE, version 1
        0x54, 0x00, 0x01, 0x00, // IPVS_CMD_ATTR_SERVICE, len 84, no NLA_F_NESTED
        0x06, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, // AF = 2 (u16 native) + pad
        0x06, 0x00, 0x02, 0x00, 0x06, 0x00, 0x00, 0x00, // PROTOCOL = 6 (TCP)
        0x14, 0x00, 0x03, 0x00,                         // ADDR, 16 bytes
        10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0x06, 0x00, 0x04, 0x00, 0x00, 0x50, 0x00, 0x00, // PORT = 80, big-endian
        0x07, 0x00, 0x06, 0x00, b'r', b'r', 0x00, 0x00, // SCHED_NAME "rr\0" + pad
        0x0c, 0x00, 0x07, 0x00,                         // FLAGS {flags, mask}
        0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff,
        0x08, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, // TIMEOUT = 0
        0x08, 0x00, 0x09, 0x00, 0xff, 0xff, 0xff, 0xff, // NETMASK = 255.255.255.255
    ];
    let op = lvs_ipvs::Op::AddService(v4_service());
    let mut msg = wrap(NLM_F_REQUEST | NLM_F_ACK, 7, op.to_message());
    assert_eq!(emit_message(&mut msg), expected);
    assert_round_trip(expected, &op.to_message());
}

fn stats32_bytes() -> Vec<u8> {
    [
        nla(1, &u32b(3)),
        nla(2, &u32b(40)),
        nla(3, &u32b(30)),
        nla(4, &u64b(4000)),
        nla(5, &u64b(9000)),
        nla(6, &u32b(1)),
        nla(7, &u32b(2)),
        nla(8, &u32b(3)),
        nla(9, &u32b(4)),
        nla(10, &u32b(5)),
    ]
    .concat()
}

fn stats64_bytes() -> Vec<u8> {
    [
        (1, 3),
        (2, 40),
        (3, 30),
        (4, 4000),
        (5, 9000),
        (6, 1),
        (7, 2),
        (8, 3),
        (9, 4),
        (10, 5),
    ]
    .iter()
    .map(|(k, v)| nla(*k, &u64b(*v)))
    .collect::<Vec<_>>()
    .concat()
}

fn stats32_attrs() -> Nested<Stats32Attr> {
    use Stats32Attr::*;
    Nested::new(vec![
        Conns(3),
        InPkts(40),
        OutPkts(30),
        InBytes(4000),
        OutBytes(9000),
        Cps(1),
        InPps(2),
        OutPps(3),
        InBps(4),
        OutBps(5),
    ])
}

fn stats64_attrs() -> Nested<Stats64Attr> {
    use Stats64Attr::*;
    Nested::new(vec![
        Conns(3),
        InPkts(40),
        OutPkts(30),
        InBytes(4000),
        OutBytes(9000),
        Cps(1),
        InPps(2),
        OutPps(3),
        InBps(4),
        OutBps(5),
    ])
}

fn expected_stats() -> Stats {
    Stats {
        conns: 3,
        in_pkts: 40,
        out_pkts: 30,
        in_bytes: 4000,
        out_bytes: 9000,
        cps: 1,
        in_pps: 2,
        out_pps: 3,
        in_bps: 4,
        out_bps: 5,
    }
}

#[test]
fn service_v4_dump_entry_decodes_16_byte_address_and_masks_hashed() {
    let mut addr16 = vec![192, 168, 1, 10];
    addr16.resize(16, 0);
    let svc = nla(
        1,
        &[
            nla(1, &u16b(2)),
            nla(2, &u16b(17)),
            nla(3, &addr16),
            nla(4, &53u16.to_be_bytes()),
            nla(6, b"wlc\0"),
            nla(7, &[u32b(0x2 | 0x1), u32b(u32::MAX)].concat()),
            nla(8, &u32b(300)),
            nla(9, &[255, 255, 255, 0]),
            nla(10, &stats32_bytes()),
            nla(12, &stats64_bytes()),
        ]
        .concat(),
    );
    let bytes = genl(NLM_F_MULTIPART, 9, 1, &[svc]);
    let expected = IpvsMessage::new(
        IpvsCmd::NewService,
        vec![IpvsAttr::Service(Nested::new(vec![
            SvcAttr::Af(2),
            SvcAttr::Protocol(17),
            SvcAttr::Addr(addr16.clone()),
            SvcAttr::Port(53),
            SvcAttr::SchedName("wlc".into()),
            SvcAttr::Flags(SvcFlags {
                flags: 3,
                mask: u32::MAX,
            }),
            SvcAttr::Timeout(300),
            SvcAttr::Netmask(u32::from_ne_bytes([255, 255, 255, 0])),
            SvcAttr::Stats(stats32_attrs()),
            SvcAttr::Stats64(stats64_attrs()),
        ]))],
    );
    assert_round_trip(&bytes, &expected);

    let IpvsAttr::Service(nest) = &expected.nlas[0] else {
        unreachable!()
    };
    let (service, stats) = Service::from_attrs(&nest.attrs).unwrap();
    assert_eq!(
        service.key,
        ServiceKey::Tuple {
            addr: "192.168.1.10".parse().unwrap(),
            protocol: Protocol::UDP,
            port: 53
        }
    );
    assert_eq!(
        service.config.flags,
        ServiceFlags::PERSISTENT,
        "HASHED must be masked"
    );
    assert_eq!(service.config.scheduler, "wlc");
    assert_eq!(service.config.timeout, 300);
    assert_eq!(service.config.netmask, 0xffff_ff00);
    assert_eq!(service.config.netmask_prefix(Family::V4), Some(24));
    assert_eq!(stats, expected_stats());
    // Encoding the decoded service gives back the same configuration.
    let (again, _) = Service::from_attrs(&service.to_attrs()).unwrap();
    assert_eq!(again, service);
}

#[test]
fn service_v6_and_fwmark_round_trip() {
    let v6: Ipv6Addr = "2001:db8::1".parse().unwrap();
    let svc6 = Service {
        key: ServiceKey::Tuple {
            addr: IpAddr::V6(v6),
            protocol: Protocol::SCTP,
            port: 3868,
        },
        config: ServiceConfig {
            scheduler: "sh".into(),
            flags: ServiceFlags::PERSISTENT | ServiceFlags::SCHED1,
            timeout: 600,
            netmask: ServiceConfig::netmask_for_prefix(Family::V6, 64),
            pe_name: Some("sip".into()),
        },
    };
    let bytes = genl(
        NLM_F_REQUEST | NLM_F_ACK,
        1,
        1,
        &[nla(
            1,
            &[
                nla(1, &u16b(10)),
                nla(2, &u16b(132)),
                nla(3, &v6.octets()),
                nla(4, &3868u16.to_be_bytes()),
                nla(6, b"sh\0"),
                nla(11, b"sip\0"),
                nla(7, &[u32b(0x9), u32b(u32::MAX)].concat()),
                nla(8, &u32b(600)),
                nla(9, &u32b(64)), // IPv6: prefix length, native order
            ]
            .concat(),
        )],
    );
    let op = lvs_ipvs::Op::AddService(svc6.clone());
    assert_round_trip(&bytes, &op.to_message());
    assert_eq!(
        emit_message(&mut wrap(NLM_F_REQUEST | NLM_F_ACK, 1, op.to_message())),
        bytes
    );
    let IpvsAttr::Service(nest) = &op.to_message().nlas[0] else {
        unreachable!()
    };
    assert_eq!(Service::from_attrs(&nest.attrs).unwrap().0, svc6);

    let fwm = ServiceKey::Fwmark {
        family: Family::V4,
        mark: 0x1234,
    };
    let bytes = genl(
        NLM_F_REQUEST | NLM_F_ACK,
        2,
        3,
        &[nla(1, &[nla(1, &u16b(2)), nla(5, &u32b(0x1234))].concat())],
    );
    let op = lvs_ipvs::Op::DelService(fwm);
    assert_round_trip(&bytes, &op.to_message());
    assert_eq!(ServiceKey::from_attrs(&fwm.to_attrs()).unwrap(), fwm);
}

fn dest_msg(service: ServiceKey, dest: Destination) -> IpvsMessage {
    lvs_ipvs::Op::AddDest { service, dest }.to_message()
}

#[test]
fn dest_nat_dr_tun_requests_round_trip() {
    let svc = v4_service().key;
    let svc_attrs = nla(
        1,
        &[
            nla(1, &u16b(2)),
            nla(2, &u16b(6)),
            nla(3, &[10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            nla(4, &80u16.to_be_bytes()),
        ]
        .concat(),
    );
    let rip = [10, 0, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    // ipvsadm's order; the tunnel attributes are sent for every method.
    let common = |fwd: u32, port: u16, weight: u32, tun: (u8, u16, u16)| {
        vec![
            nla(11, &u16b(2)),
            nla(1, &rip),
            nla(2, &port.to_be_bytes()),
            nla(3, &u32b(fwd)),
            nla(4, &u32b(weight)),
            nla(13, &[tun.0]),             // TUN_TYPE (u8, padded)
            nla(14, &tun.1.to_be_bytes()), // TUN_PORT big-endian
            nla(15, &u16b(tun.2)),         // TUN_FLAGS
        ]
    };
    let key = |port| DestKey {
        addr: "10.0.1.5".parse().unwrap(),
        port,
    };

    // NAT with port mapping and thresholds.
    let mut nat = common(0, 8080, 5, (0, 0, 0));
    nat.extend([nla(5, &u32b(100)), nla(6, &u32b(10))]);
    let bytes = genl(
        NLM_F_REQUEST | NLM_F_ACK,
        3,
        5,
        &[svc_attrs.clone(), nla(2, &nat.concat())],
    );
    let dest = Destination {
        key: key(8080),
        config: DestConfig {
            u_threshold: 100,
            l_threshold: 10,
            ..DestConfig::new(FwdMethod::Masq, 5)
        },
    };
    assert_round_trip(&bytes, &dest_msg(svc, dest));

    // Direct routing.
    let mut dr = common(3, 80, 1, (0, 0, 0));
    dr.extend([nla(5, &u32b(0)), nla(6, &u32b(0))]);
    let bytes = genl(
        NLM_F_REQUEST | NLM_F_ACK,
        4,
        5,
        &[svc_attrs.clone(), nla(2, &dr.concat())],
    );
    let dest = Destination {
        key: key(80),
        config: DestConfig::new(FwdMethod::DirectRoute, 1),
    };
    assert_round_trip(&bytes, &dest_msg(svc, dest));

    // GUE (1) tunnel to port 6080 with checksums (CSUM = 1).
    let mut tun = common(2, 80, 1, (1, 6080, 1));
    tun.extend([nla(5, &u32b(0)), nla(6, &u32b(0))]);
    let bytes = genl(
        NLM_F_REQUEST | NLM_F_ACK,
        5,
        5,
        &[svc_attrs, nla(2, &tun.concat())],
    );
    let dest = Destination {
        key: key(80),
        config: DestConfig {
            tun_type: TunnelType::GUE,
            tun_port: 6080,
            tun_flags: TunnelFlags::CSUM,
            ..DestConfig::new(FwdMethod::Tunnel, 1)
        },
    };
    let msg = dest_msg(svc, dest);
    assert_round_trip(&bytes, &msg);
    let IpvsAttr::Dest(nest) = &msg.nlas[1] else {
        unreachable!()
    };
    assert_eq!(
        Destination::from_attrs(&nest.attrs, Family::V4).unwrap().0,
        dest
    );
}

#[test]
fn dest_dump_entry_with_counts_stats_and_unknown_attribute() {
    let v6: Ipv6Addr = "fd00::5".parse().unwrap();
    let dest = nla(
        2,
        &[
            nla(1, &v6.octets()),
            nla(2, &443u16.to_be_bytes()),
            nla(3, &u32b(0)),
            nla(4, &u32b(7)),
            nla(13, &[0]),
            nla(14, &[0, 0]),
            nla(15, &u16b(0)),
            nla(5, &u32b(0)),
            nla(6, &u32b(0)),
            nla(7, &u32b(11)),
            nla(8, &u32b(12)),
            nla(9, &u32b(13)),
            nla(10, &stats32_bytes()),
            nla(11, &u16b(10)),
            nla(12, &stats64_bytes()),
            nla(99, &[0xde, 0xad, 0xbe, 0xef]), // from a future kernel
        ]
        .concat(),
    );
    let bytes = genl(NLM_F_MULTIPART, 5, 5, &[dest]);
    let parsed = parse_message(&bytes).unwrap();
    let msg = ipvs_payload(&parsed);
    let IpvsAttr::Dest(nest) = &msg.nlas[0] else {
        panic!("expected a dest nest, got {:?}", msg.nlas)
    };
    assert_eq!(
        nest.attrs.last(),
        Some(&DestAttr::Other(DefaultNla::new(
            99,
            vec![0xde, 0xad, 0xbe, 0xef]
        )))
    );
    assert_round_trip(&bytes, msg);
    let (d, st) = Destination::from_attrs(&nest.attrs, Family::V6).unwrap();
    assert_eq!(
        d.key,
        DestKey {
            addr: IpAddr::V6(v6),
            port: 443
        }
    );
    assert_eq!(d.config, DestConfig::new(FwdMethod::Masq, 7));
    assert_eq!(
        (st.active_conns, st.inactive_conns, st.persist_conns),
        (11, 12, 13)
    );
    assert_eq!(st.traffic, expected_stats());
}

#[test]
fn info_reply_attr_1_is_a_version_not_a_service() {
    // GET_INFO's reply (cmd SET_INFO = 14): attribute 1 is a u32.
    let bytes = genl(0, 3, 14, &[nla(1, &u32b(0x010201)), nla(2, &u32b(4096))]);
    let expected = IpvsMessage::new(
        IpvsCmd::SetInfo,
        vec![
            IpvsAttr::InfoVersion(0x010201),
            IpvsAttr::InfoConnTabSize(4096),
        ],
    );
    assert_round_trip(&bytes, &expected);
    // The same bytes under a service command are a malformed service nest.
    let as_service = genl(0, 3, 1, &[nla(1, &u32b(0x010201)), nla(2, &u32b(4096))]);
    assert!(parse_message(&as_service).is_err());
    // GET_INFO request: no attributes.
    assert_round_trip(
        &genl(NLM_F_REQUEST | NLM_F_ACK, 4, 15, &[]),
        &IpvsMessage::new(IpvsCmd::GetInfo, vec![]),
    );
}

#[test]
fn config_round_trip() {
    let bytes = genl(
        NLM_F_REQUEST | NLM_F_ACK,
        5,
        12,
        &[nla(4, &u32b(900)), nla(5, &u32b(120)), nla(6, &u32b(300))],
    );
    let expected = IpvsMessage::new(
        IpvsCmd::SetConfig,
        vec![
            IpvsAttr::TimeoutTcp(900),
            IpvsAttr::TimeoutTcpFin(120),
            IpvsAttr::TimeoutUdp(300),
        ],
    );
    assert_round_trip(&bytes, &expected);
}

#[test]
fn daemon_round_trip() {
    let bytes = genl(
        NLM_F_MULTIPART,
        6,
        9,
        &[nla(
            3,
            &[
                nla(1, &u32b(1)),
                nla(2, b"eth0\0"),
                nla(3, &u32b(7)),
                nla(4, &u16b(1472)),
                nla(7, &u16b(8848)),
                nla(8, &[1]),
                nla(5, &[224, 0, 0, 81]),
            ]
            .concat(),
        )],
    );
    let expected = IpvsMessage::new(
        IpvsCmd::NewDaemon,
        vec![IpvsAttr::Daemon(Nested::new(vec![
            DaemonAttr::State(1),
            DaemonAttr::McastIfn("eth0".into()),
            DaemonAttr::SyncId(7),
            DaemonAttr::SyncMaxLen(1472),
            DaemonAttr::McastPort(8848),
            DaemonAttr::McastTtl(1),
            DaemonAttr::McastGroup(Ipv4Addr::new(224, 0, 0, 81)),
        ]))],
    );
    assert_round_trip(&bytes, &expected);
    let IpvsAttr::Daemon(n) = &expected.nlas[0] else {
        unreachable!()
    };
    let d = lvs_ipvs::SyncDaemon::from_attrs(&n.attrs).unwrap();
    assert_eq!(
        d.mcast_group,
        Some(IpAddr::V4(Ipv4Addr::new(224, 0, 0, 81)))
    );
    assert_eq!(lvs_ipvs::SyncDaemon::from_attrs(&d.to_attrs()).unwrap(), d);
}

#[test]
fn nested_flag_is_preserved() {
    // libnl sets NLA_F_NESTED (0x8000) on nests; the kernel's dumps don't.
    let inner = [nla(1, &u16b(2)), nla(5, &u32b(9))].concat();
    let bytes = genl(NLM_F_REQUEST, 1, 3, &[nla(1 | 0x8000, &inner)]);
    let expected = IpvsMessage::new(
        IpvsCmd::DelService,
        vec![IpvsAttr::Service(Nested::flagged(vec![
            SvcAttr::Af(2),
            SvcAttr::Fwmark(9),
        ]))],
    );
    assert_round_trip(&bytes, &expected);
}

#[test]
#[cfg(target_endian = "little")]
fn error_and_done_messages_round_trip() {
    #[rustfmt::skip]
    let nack: &[u8] = &[
        0x24, 0x00, 0x00, 0x00, // len 36
        0x02, 0x00,             // NLMSG_ERROR
        0x00, 0x01,             // NLM_F_CAPPED
        0x03, 0x00, 0x00, 0x00, // seq 3
        0x10, 0x00, 0x00, 0x00, // pid 16
        0xef, 0xff, 0xff, 0xff, // error = -17 (EEXIST)
        // echoed request header (capped: header only)
        0x68, 0x00, 0x00, 0x00, 0x20, 0x00, 0x05, 0x00,
        0x03, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00,
    ];
    let mut msg = parse_message(nack).unwrap();
    let NetlinkPayload::Error(e) = &msg.payload else {
        panic!("expected NLMSG_ERROR, got {:?}", msg.payload)
    };
    assert_eq!(e.code.map(|c| c.get()), Some(-17));
    assert_eq!(msg.header.sequence_number, 3);
    assert_eq!(emit_message(&mut msg), nack);

    #[rustfmt::skip]
    let done: &[u8] = &[
        0x14, 0x00, 0x00, 0x00, 0x03, 0x00, 0x02, 0x00, // len 20, NLMSG_DONE, MULTI
        0x09, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, // seq 9, pid 16
        0x00, 0x00, 0x00, 0x00,                         // status 0
    ];
    let mut msg = parse_message(done).unwrap();
    assert!(matches!(msg.payload, NetlinkPayload::Done(ref d) if d.code == 0));
    assert_eq!(emit_message(&mut msg), done);
}

#[test]
fn malformed_input_is_an_error_with_context() {
    // (input, text the error must contain to name what was wrong)
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            genl(0, 1, 1, &[nla(1, &nla(4, &[0x50]))]),
            "IPVS_SVC_ATTR_PORT",
        ),
        (
            genl(0, 1, 1, &[nla(1, &nla(3, &[1, 2, 3]))]),
            "IPVS_SVC_ATTR_ADDR",
        ),
        (
            genl(0, 1, 1, &[nla(1, &nla(6, b"rr"))]),
            "not NUL-terminated",
        ),
        (
            genl(0, 1, 1, &[nla(1, &nla(7, &u32b(0)))]),
            "IPVS_SVC_ATTR_FLAGS",
        ),
        (
            genl(0, 1, 1, &[nla(1, &nla(12, &nla(1, &u32b(1))))]),
            "IPVS_STATS_ATTR_CONNS value in Stats64Attr",
        ),
        (
            genl(0, 1, 5, &[nla(2, &nla(13, &[1, 2]))]),
            "IPVS_DEST_ATTR_TUN_TYPE",
        ),
        (genl(0, 1, 200, &[]), "unknown IPVS command 200"),
        (
            {
                let mut b = genl(0, 1, 1, &[nla(4, &u32b(1))]);
                b[20] = 0x40; // attribute length 64 > the 8 bytes left
                b
            },
            "NLA is 64 bytes",
        ),
    ];
    for (bytes, needle) in cases {
        let text = parse_message(&bytes).expect_err(needle).to_string();
        assert!(
            text.contains(needle),
            "error should mention {needle:?}: {text}"
        );
    }
    // A truncated datagram is an error, not a panic.
    let good = genl(0, 1, 14, &[nla(1, &u32b(1))]);
    for cut in 0..good.len() {
        let _ = lvs_ipvs::codec::parse_datagram(&good[..cut]);
    }
}

#[test]
fn genl_header_fields_survive() {
    // A reply whose GENL version differs is kept as is.
    let mut bytes = genl(0, 1, 14, &[nla(1, &u32b(1))]);
    bytes[17] = 2;
    let mut parsed = parse_message(&bytes).unwrap();
    let NetlinkPayload::InnerMessage(g) = &parsed.payload else {
        unreachable!()
    };
    assert_eq!(
        g.header,
        GenlHeader {
            cmd: 14,
            version: 2
        }
    );
    assert_eq!(emit_message(&mut parsed), bytes);
}

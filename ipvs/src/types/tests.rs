use std::net::IpAddr;

use super::*;
use crate::constants::*;

#[test]
fn netmask_prefix_conversions() {
    assert_eq!(
        ServiceConfig::netmask_for_prefix(Family::V4, 24),
        0xffff_ff00
    );
    assert_eq!(ServiceConfig::netmask_for_prefix(Family::V4, 0), 0);
    assert_eq!(ServiceConfig::netmask_for_prefix(Family::V4, 40), u32::MAX);
    assert_eq!(ServiceConfig::netmask_for_prefix(Family::V6, 64), 64);
    assert_eq!(ServiceConfig::netmask_for_prefix(Family::V6, 200), 128);
    let mut c = ServiceConfig::new(Family::V4, "rr");
    for (mask, prefix) in [
        (u32::MAX, Some(32)),
        (0xffff_0000, Some(16)),
        (0, Some(0)),
        (0xff00_ff00, None),
    ] {
        c.netmask = mask;
        assert_eq!(c.netmask_prefix(Family::V4), prefix, "{mask:#x}");
    }
    // On the wire an IPv4 mask is network order; IPv6 a native prefix.
    assert_eq!(
        netmask_to_wire(Family::V4, 0xffff_ff00).to_ne_bytes(),
        [255, 255, 255, 0]
    );
    assert_eq!(
        netmask_from_wire(Family::V4, u32::from_ne_bytes([255, 255, 255, 0])),
        0xffff_ff00
    );
    assert_eq!(netmask_to_wire(Family::V6, 64), 64);
}

#[test]
fn hashed_flag_never_survives() {
    let f = ServiceFlags::from_bits(IP_VS_SVC_F_HASHED | IP_VS_SVC_F_PERSISTENT);
    assert_eq!(f, ServiceFlags::PERSISTENT);
    assert_eq!(f.bits(), 1);
}

#[test]
fn addresses_decode_by_family() {
    let mut raw = vec![10, 1, 2, 3];
    assert_eq!(
        addr_from_wire(Family::V4, &raw).unwrap(),
        "10.1.2.3".parse::<IpAddr>().unwrap()
    );
    raw.resize(16, 0);
    assert_eq!(
        addr_from_wire(Family::V4, &raw).unwrap(),
        "10.1.2.3".parse::<IpAddr>().unwrap()
    );
    assert_eq!(
        addr_from_wire(Family::V6, &raw).unwrap(),
        "a01:203::".parse::<IpAddr>().unwrap()
    );
    let err = addr_from_wire(Family::V6, &raw[..4])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("IPv6 address is 4 bytes, expected 16"),
        "{err}"
    );
    assert_eq!(addr_to_wire(&"10.1.2.3".parse().unwrap()), raw);
}

#[test]
fn keys_sort_and_display_like_ipvsadm() {
    let mut keys = [
        ServiceKey::Fwmark {
            family: Family::V4,
            mark: 7,
        },
        ServiceKey::Tuple {
            addr: "10.0.0.2".parse().unwrap(),
            protocol: Protocol::TCP,
            port: 80,
        },
        ServiceKey::Tuple {
            addr: "10.0.0.1".parse().unwrap(),
            protocol: Protocol::UDP,
            port: 53,
        },
        ServiceKey::Tuple {
            addr: "2001:db8::1".parse().unwrap(),
            protocol: Protocol::TCP,
            port: 443,
        },
    ];
    keys.sort();
    let shown: Vec<String> = keys.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "UDP 10.0.0.1:53",
            "TCP 10.0.0.2:80",
            "TCP [2001:db8::1]:443",
            "FWM 7 IPv4"
        ]
    );
    assert_eq!(Protocol(47).to_string(), "proto-47");
}

#[test]
fn client_types_are_send() {
    fn send<T: Send>() {}
    send::<crate::IpvsClient>();
    send::<crate::IpvsClient<crate::ScriptedTransport>>();
    send::<crate::Error>();
    send::<crate::OpError>();
}

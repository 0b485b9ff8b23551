//! Telling the segment that a VIP moved: gratuitous ARP (IPv4) or an
//! unsolicited neighbour advertisement (IPv6), so the router updates its
//! neighbour entry at once instead of when it expires.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV6};
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, SockAddrStorage, Socket, Type};

/// How many announcements a takeover sends, and how far apart: a router
/// that drops one still hears another.
pub const REPEAT: usize = 3;
pub const GAP: Duration = Duration::from_millis(100);

const ETH_P_ARP: u16 = 0x0806;

/// A gratuitous ARP request for `vip` from `mac`: sender and target protocol
/// address are both the VIP, target hardware address zero (RFC 5227's ARP
/// announcement). The kernel adds the Ethernet header (broadcast).
pub fn arp_announcement(mac: [u8; 6], vip: Ipv4Addr) -> [u8; 28] {
    let mut p = [0u8; 28];
    p[0..2].copy_from_slice(&1u16.to_be_bytes()); // hardware: Ethernet
    p[2..4].copy_from_slice(&0x0800u16.to_be_bytes()); // protocol: IPv4
    p[4] = 6; // hardware address length
    p[5] = 4; // protocol address length
    p[6..8].copy_from_slice(&1u16.to_be_bytes()); // request
    p[8..14].copy_from_slice(&mac);
    p[14..18].copy_from_slice(&vip.octets());
    // target hardware address stays zero
    p[24..28].copy_from_slice(&vip.octets());
    p
}

/// An unsolicited neighbour advertisement for `vip` (RFC 4861 4.4): type
/// 136, override flag, target = the VIP, and the target link-layer address
/// option with `mac`. The checksum is left zero: the kernel computes it for
/// raw ICMPv6 sockets.
pub fn neighbour_advertisement(mac: [u8; 6], vip: Ipv6Addr) -> [u8; 32] {
    let mut p = [0u8; 32];
    p[0] = 136; // neighbour advertisement
    p[1] = 0; // code
    // p[2..4]: checksum, filled in by the kernel
    p[4] = 0x20; // flags: override (not router, not solicited)
    p[8..24].copy_from_slice(&vip.octets());
    p[24] = 2; // option: target link-layer address
    p[25] = 1; // its length in units of 8 bytes
    p[26..32].copy_from_slice(&mac);
    p
}

/// The MAC and index of an interface, from sysfs.
fn link_of(interface: &str) -> std::io::Result<([u8; 6], u32)> {
    let base = std::path::Path::new("/sys/class/net").join(interface);
    let bad = |what: &str, v: &str| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{interface}: {what} {v:?} unreadable"),
        )
    };
    let mac_s = std::fs::read_to_string(base.join("address"))?;
    let mut mac = [0u8; 6];
    let parts: Vec<&str> = mac_s.trim().split(':').collect();
    if parts.len() != 6 {
        return Err(bad("hardware address", mac_s.trim()));
    }
    for (m, p) in mac.iter_mut().zip(parts) {
        *m = u8::from_str_radix(p, 16).map_err(|_| bad("hardware address", mac_s.trim()))?;
    }
    let idx_s = std::fs::read_to_string(base.join("ifindex"))?;
    let index = idx_s
        .trim()
        .parse()
        .map_err(|_| bad("ifindex", idx_s.trim()))?;
    Ok((mac, index))
}

/// The link-layer broadcast destination on interface `index` for ARP.
#[allow(unsafe_code)]
fn broadcast_to(index: u32) -> std::io::Result<SockAddr> {
    let ll = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: ETH_P_ARP.to_be(),
        sll_ifindex: i32::try_from(index).map_err(std::io::Error::other)?,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 6,
        sll_addr: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0],
    };
    let mut storage = SockAddrStorage::zeroed();
    // SAFETY: `sockaddr_storage` is large and aligned enough for every
    // socket address type, `sockaddr_ll` included, so viewing it as one is
    // in bounds; the length given is that of the `sockaddr_ll` written, and
    // its family field is AF_PACKET, as `SockAddr::new` requires.
    unsafe {
        *storage.view_as::<libc::sockaddr_ll>() = ll;
        Ok(SockAddr::new(
            storage,
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        ))
    }
}

/// Sends the announcement of `vip` on `interface` [`REPEAT`] times, [`GAP`]
/// apart (blocking: run it off the sync loop).
pub fn announce(interface: &str, vip: IpAddr) -> std::io::Result<()> {
    let (mac, index) = link_of(interface)?;
    match vip {
        IpAddr::V4(v4) => {
            let sock = Socket::new(
                Domain::PACKET,
                Type::DGRAM,
                Some(Protocol::from(i32::from(ETH_P_ARP.to_be()))),
            )?;
            let to = broadcast_to(index)?;
            let pkt = arp_announcement(mac, v4);
            for i in 0..REPEAT {
                if i > 0 {
                    std::thread::sleep(GAP);
                }
                sock.send_to(&pkt, &to)?;
            }
        }
        IpAddr::V6(v6) => {
            let sock = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
            // Hop limit 255: receivers drop neighbour discovery with less.
            sock.set_multicast_hops_v6(255)?;
            sock.set_multicast_if_v6(index)?;
            let to = SockAddr::from(SocketAddrV6::new(
                Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
                0,
                0,
                index,
            ));
            let pkt = neighbour_advertisement(mac, v6);
            for i in 0..REPEAT {
                if i > 0 {
                    std::thread::sleep(GAP);
                }
                sock.send_to(&pkt, &to)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x10, 0x20, 0x30];

    #[test]
    fn gratuitous_arp_bytes() {
        let p = arp_announcement(MAC, "203.0.113.10".parse().unwrap());
        #[rustfmt::skip]
        let want: [u8; 28] = [
            0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01,
            0x02, 0x00, 0x5e, 0x10, 0x20, 0x30, 203, 0, 113, 10,
            0, 0, 0, 0, 0, 0, 203, 0, 113, 10,
        ];
        assert_eq!(p, want);
    }

    #[test]
    fn unsolicited_neighbour_advertisement_bytes() {
        let p = neighbour_advertisement(MAC, "fd00::10".parse().unwrap());
        assert_eq!(&p[..8], &[136, 0, 0, 0, 0x20, 0, 0, 0]);
        assert_eq!(
            &p[8..24],
            &[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10]
        );
        assert_eq!(&p[24..], &[2, 1, 0x02, 0x00, 0x5e, 0x10, 0x20, 0x30]);
    }

    #[test]
    fn the_link_layer_address_is_a_broadcast_on_the_interface() {
        let a = broadcast_to(7).unwrap();
        assert_eq!(a.family(), libc::AF_PACKET as libc::sa_family_t);
        assert_eq!(a.len() as usize, std::mem::size_of::<libc::sockaddr_ll>());
    }

    #[test]
    fn an_unknown_interface_is_an_error_naming_it() {
        let e = announce("no-such-if0", "10.0.0.1".parse().unwrap()).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e}");
    }
}

//! Destinations (real servers): identity within a service and what
//! SET_DEST can change.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use netlink_packet_core::DecodeError;

use super::*;
use crate::codec::DestAttr;
use crate::constants::*;

/// How packets reach a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FwdMethod {
    /// NAT: the director rewrites the destination (port mapping allowed).
    Masq,
    /// The director itself serves the traffic.
    Local,
    /// IP-in-IP (or GUE/GRE) encapsulation to the real server.
    Tunnel,
    /// Direct routing: MAC rewrite on the same L2 segment.
    DirectRoute,
    /// Cache bypass; never set by ipvsadm, accepted so dumps don't fail.
    Bypass,
}

impl FwdMethod {
    pub fn to_wire(self) -> u32 {
        match self {
            FwdMethod::Masq => IP_VS_CONN_F_MASQ,
            FwdMethod::Local => IP_VS_CONN_F_LOCALNODE,
            FwdMethod::Tunnel => IP_VS_CONN_F_TUNNEL,
            FwdMethod::DirectRoute => IP_VS_CONN_F_DROUTE,
            FwdMethod::Bypass => IP_VS_CONN_F_BYPASS,
        }
    }

    pub fn from_wire(v: u32) -> Result<Self, DecodeError> {
        match v & IP_VS_CONN_F_FWD_MASK {
            IP_VS_CONN_F_MASQ => Ok(FwdMethod::Masq),
            IP_VS_CONN_F_LOCALNODE => Ok(FwdMethod::Local),
            IP_VS_CONN_F_TUNNEL => Ok(FwdMethod::Tunnel),
            IP_VS_CONN_F_DROUTE => Ok(FwdMethod::DirectRoute),
            IP_VS_CONN_F_BYPASS => Ok(FwdMethod::Bypass),
            other => Err(DecodeError::from(format!(
                "forwarding method {other} is not one of 0 (masq), 1 (local), 2 (tunnel), 3 (droute), 4 (bypass)"
            ))),
        }
    }
}

impl fmt::Display for FwdMethod {
    /// ipvsadm's names, so output can be compared with `ipvsadm -Ln`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FwdMethod::Masq => "Masq",
            FwdMethod::Local => "Local",
            FwdMethod::Tunnel => "Tunnel",
            FwdMethod::DirectRoute => "Route",
            FwdMethod::Bypass => "Bypass",
        })
    }
}

/// `IP_VS_CONN_F_TUNNEL_TYPE_*`; a newtype so newer kernel values survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TunnelType(pub u8);

impl TunnelType {
    pub const IPIP: TunnelType = TunnelType(IP_VS_CONN_F_TUNNEL_TYPE_IPIP);
    pub const GUE: TunnelType = TunnelType(IP_VS_CONN_F_TUNNEL_TYPE_GUE);
    pub const GRE: TunnelType = TunnelType(IP_VS_CONN_F_TUNNEL_TYPE_GRE);
}

/// `IP_VS_TUNNEL_ENCAP_FLAG_*` bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TunnelFlags(pub u16);

impl TunnelFlags {
    pub const NOCSUM: TunnelFlags = TunnelFlags(IP_VS_TUNNEL_ENCAP_FLAG_NOCSUM);
    pub const CSUM: TunnelFlags = TunnelFlags(IP_VS_TUNNEL_ENCAP_FLAG_CSUM);
    pub const REMCSUM: TunnelFlags = TunnelFlags(IP_VS_TUNNEL_ENCAP_FLAG_REMCSUM);
}

/// What identifies a destination within its service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DestKey {
    pub addr: IpAddr,
    pub port: u16,
}

impl fmt::Display for DestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        SocketAddr::new(self.addr, self.port).fmt(f)
    }
}

impl DestKey {
    /// The attributes that select this destination within its service.
    pub fn to_attrs(self) -> Vec<DestAttr> {
        vec![
            DestAttr::AddrFamily(Family::of(&self.addr).af()),
            DestAttr::Addr(addr_to_wire(&self.addr)),
            DestAttr::Port(self.port),
        ]
    }
}

/// Everything about a destination that SET_DEST can change in place.
/// Kernels before 5.3 report no tunnel attributes; they read as the defaults
/// (IPIP, port 0, no flags), which is also what such kernels use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DestConfig {
    pub fwd: FwdMethod,
    pub weight: u32,
    /// Upper connection threshold; 0 means none.
    pub u_threshold: u32,
    /// Lower connection threshold; 0 means none.
    pub l_threshold: u32,
    pub tun_type: TunnelType,
    /// GUE destination port (host order); 0 for other tunnel types.
    pub tun_port: u16,
    pub tun_flags: TunnelFlags,
}

impl DestConfig {
    pub fn new(fwd: FwdMethod, weight: u32) -> Self {
        Self {
            fwd,
            weight,
            u_threshold: 0,
            l_threshold: 0,
            tun_type: TunnelType::IPIP,
            tun_port: 0,
            tun_flags: TunnelFlags::NOCSUM,
        }
    }

    /// Whether two configurations program the same behaviour. The tunnel
    /// fields are ignored unless the method is Tunnel: kernels report them
    /// for every destination, with whatever was last set.
    pub fn same_as(&self, other: &DestConfig) -> bool {
        let base = self.fwd == other.fwd
            && self.weight == other.weight
            && self.u_threshold == other.u_threshold
            && self.l_threshold == other.l_threshold;
        base && (self.fwd != FwdMethod::Tunnel
            || (self.tun_type == other.tun_type
                && self.tun_port == other.tun_port
                && self.tun_flags == other.tun_flags))
    }
}

/// A real server: identity plus configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Destination {
    pub key: DestKey,
    pub config: DestConfig,
}

impl Destination {
    /// Attributes for NEW_DEST/SET_DEST, in ipvsadm's order. Like ipvsadm,
    /// the tunnel attributes are always sent (zero for other methods):
    /// kernels before 5.3 ignore them, later ones store them either way.
    pub fn to_attrs(&self) -> Vec<DestAttr> {
        let c = &self.config;
        let mut attrs = self.key.to_attrs();
        attrs.extend([
            DestAttr::FwdMethod(c.fwd.to_wire()),
            DestAttr::Weight(c.weight),
            DestAttr::TunType(c.tun_type.0),
            DestAttr::TunPort(c.tun_port),
            DestAttr::TunFlags(c.tun_flags.0),
            DestAttr::UThresh(c.u_threshold),
            DestAttr::LThresh(c.l_threshold),
        ]);
        attrs
    }

    /// Decode a destination nest from a dump. `service_family` is used when
    /// the kernel omits IPVS_DEST_ATTR_ADDR_FAMILY (kernels before 3.18).
    pub fn from_attrs(
        attrs: &[DestAttr],
        service_family: Family,
    ) -> Result<(Destination, DestStats), DecodeError> {
        let mut af = None;
        let (mut addr, mut port, mut fwd, mut weight) = (None, None, None, None);
        let mut config = DestConfig::new(FwdMethod::Masq, 0);
        let mut stats = DestStats::default();
        let (mut stats32, mut stats64) = (None, None);
        for attr in attrs {
            match attr {
                DestAttr::AddrFamily(v) => af = Some(*v),
                DestAttr::Addr(v) => addr = Some(v.as_slice()),
                DestAttr::Port(v) => port = Some(*v),
                DestAttr::FwdMethod(v) => fwd = Some(FwdMethod::from_wire(*v)?),
                DestAttr::Weight(v) => weight = Some(*v),
                DestAttr::UThresh(v) => config.u_threshold = *v,
                DestAttr::LThresh(v) => config.l_threshold = *v,
                DestAttr::TunType(v) => config.tun_type = TunnelType(*v),
                DestAttr::TunPort(v) => config.tun_port = *v,
                DestAttr::TunFlags(v) => config.tun_flags = TunnelFlags(*v),
                DestAttr::ActiveConns(v) => stats.active_conns = *v,
                DestAttr::InactConns(v) => stats.inactive_conns = *v,
                DestAttr::PersistConns(v) => stats.persist_conns = *v,
                DestAttr::Stats(n) => stats32 = Some(n),
                DestAttr::Stats64(n) => stats64 = Some(n),
                _ => {}
            }
        }
        let family = af
            .map(Family::from_af)
            .transpose()?
            .unwrap_or(service_family);
        let addr = addr_from_wire(
            family,
            addr.ok_or("destination has no IPVS_DEST_ATTR_ADDR")?,
        )?;
        let key = DestKey {
            addr,
            port: port.ok_or("destination has no IPVS_DEST_ATTR_PORT")?,
        };
        config.fwd = fwd.ok_or("destination has no IPVS_DEST_ATTR_FWD_METHOD")?;
        config.weight = weight.ok_or("destination has no IPVS_DEST_ATTR_WEIGHT")?;
        stats.traffic = Stats::from_nests(stats32, stats64);
        Ok((Destination { key, config }, stats))
    }
}

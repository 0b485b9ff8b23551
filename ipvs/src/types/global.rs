//! Table-wide state: timeouts, version information, sync daemons.

use std::net::IpAddr;

use netlink_packet_core::DecodeError;

use crate::codec::DaemonAttr;
use crate::constants::*;

/// Global timeouts (GET_CONFIG / SET_CONFIG), in seconds. In a SET, 0 leaves
/// the current value unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Timeouts {
    pub tcp: u32,
    pub tcp_fin: u32,
    pub udp: u32,
}

/// GET_INFO reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpvsInfo {
    /// `IP_VS_VERSION_CODE`, e.g. 0x010201.
    pub version: u32,
    pub conn_tab_size: u32,
}

impl IpvsInfo {
    /// "1.2.1" for 0x010201, as `ipvsadm` prints it.
    pub fn version_string(&self) -> String {
        let v = self.version;
        format!("{}.{}.{}", (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff)
    }
}

/// Role of a connection-synchronisation daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DaemonState {
    Master,
    Backup,
}

impl DaemonState {
    pub fn to_wire(self) -> u32 {
        match self {
            DaemonState::Master => IP_VS_STATE_MASTER,
            DaemonState::Backup => IP_VS_STATE_BACKUP,
        }
    }

    pub fn from_wire(v: u32) -> Result<Self, DecodeError> {
        match v {
            IP_VS_STATE_MASTER => Ok(DaemonState::Master),
            IP_VS_STATE_BACKUP => Ok(DaemonState::Backup),
            other => Err(DecodeError::from(format!(
                "sync daemon state {other} is neither master ({IP_VS_STATE_MASTER}) nor backup ({IP_VS_STATE_BACKUP})"
            ))),
        }
    }
}

/// A connection-synchronisation daemon (NEW/DEL/GET_DAEMON). Optional
/// fields are left to kernel defaults when `None`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SyncDaemon {
    pub state: DaemonState,
    pub mcast_ifn: String,
    pub sync_id: u32,
    pub sync_maxlen: Option<u16>,
    pub mcast_group: Option<IpAddr>,
    pub mcast_port: Option<u16>,
    pub mcast_ttl: Option<u8>,
}

impl SyncDaemon {
    /// Attributes for NEW_DAEMON; the kernel requires STATE, MCAST_IFN and SYNC_ID.
    pub fn to_attrs(&self) -> Vec<DaemonAttr> {
        let mut attrs = vec![
            DaemonAttr::State(self.state.to_wire()),
            DaemonAttr::McastIfn(self.mcast_ifn.clone()),
            DaemonAttr::SyncId(self.sync_id),
        ];
        attrs.extend(self.sync_maxlen.map(DaemonAttr::SyncMaxLen));
        attrs.extend(self.mcast_group.map(|g| match g {
            IpAddr::V4(a) => DaemonAttr::McastGroup(a),
            IpAddr::V6(a) => DaemonAttr::McastGroup6(a),
        }));
        attrs.extend(self.mcast_port.map(DaemonAttr::McastPort));
        attrs.extend(self.mcast_ttl.map(DaemonAttr::McastTtl));
        attrs
    }

    pub fn from_attrs(attrs: &[DaemonAttr]) -> Result<Self, DecodeError> {
        let (mut state, mut ifn, mut sync_id) = (None, None, None);
        let mut d = SyncDaemon {
            state: DaemonState::Master,
            mcast_ifn: String::new(),
            sync_id: 0,
            sync_maxlen: None,
            mcast_group: None,
            mcast_port: None,
            mcast_ttl: None,
        };
        for attr in attrs {
            match attr {
                DaemonAttr::State(v) => state = Some(DaemonState::from_wire(*v)?),
                DaemonAttr::McastIfn(v) => ifn = Some(v.clone()),
                DaemonAttr::SyncId(v) => sync_id = Some(*v),
                DaemonAttr::SyncMaxLen(v) => d.sync_maxlen = Some(*v),
                DaemonAttr::McastGroup(a) => d.mcast_group = Some(IpAddr::V4(*a)),
                DaemonAttr::McastGroup6(a) => d.mcast_group = Some(IpAddr::V6(*a)),
                DaemonAttr::McastPort(v) => d.mcast_port = Some(*v),
                DaemonAttr::McastTtl(v) => d.mcast_ttl = Some(*v),
                _ => {}
            }
        }
        d.state = state.ok_or("sync daemon has no IPVS_DAEMON_ATTR_STATE")?;
        d.mcast_ifn = ifn.ok_or("sync daemon has no IPVS_DAEMON_ATTR_MCAST_IFN")?;
        d.sync_id = sync_id.ok_or("sync daemon has no IPVS_DAEMON_ATTR_SYNC_ID")?;
        Ok(d)
    }
}

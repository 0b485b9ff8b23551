//! What the kernel reports: traffic counters, dump entries.

use super::*;
use crate::codec::{Nested, Stats32Attr, Stats64Attr};

/// Traffic counters and estimated rates, as reported by the kernel. The
/// rates come from a ~2 s estimator, so they lag behind the traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Stats {
    pub conns: u64,
    pub in_pkts: u64,
    pub out_pkts: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
    pub cps: u64,
    pub in_pps: u64,
    pub out_pps: u64,
    pub in_bps: u64,
    pub out_bps: u64,
}

impl Stats {
    /// Prefer the 64-bit nest; fall back to the legacy one on old kernels.
    pub(super) fn from_nests(
        legacy: Option<&Nested<Stats32Attr>>,
        wide: Option<&Nested<Stats64Attr>>,
    ) -> Stats {
        let mut s = Stats::default();
        if let Some(wide) = wide {
            for a in &wide.attrs {
                match *a {
                    Stats64Attr::Conns(v) => s.conns = v,
                    Stats64Attr::InPkts(v) => s.in_pkts = v,
                    Stats64Attr::OutPkts(v) => s.out_pkts = v,
                    Stats64Attr::InBytes(v) => s.in_bytes = v,
                    Stats64Attr::OutBytes(v) => s.out_bytes = v,
                    Stats64Attr::Cps(v) => s.cps = v,
                    Stats64Attr::InPps(v) => s.in_pps = v,
                    Stats64Attr::OutPps(v) => s.out_pps = v,
                    Stats64Attr::InBps(v) => s.in_bps = v,
                    Stats64Attr::OutBps(v) => s.out_bps = v,
                    _ => {}
                }
            }
        } else if let Some(legacy) = legacy {
            for a in &legacy.attrs {
                match *a {
                    Stats32Attr::Conns(v) => s.conns = v.into(),
                    Stats32Attr::InPkts(v) => s.in_pkts = v.into(),
                    Stats32Attr::OutPkts(v) => s.out_pkts = v.into(),
                    Stats32Attr::InBytes(v) => s.in_bytes = v,
                    Stats32Attr::OutBytes(v) => s.out_bytes = v,
                    Stats32Attr::Cps(v) => s.cps = v.into(),
                    Stats32Attr::InPps(v) => s.in_pps = v.into(),
                    Stats32Attr::OutPps(v) => s.out_pps = v.into(),
                    Stats32Attr::InBps(v) => s.in_bps = v.into(),
                    Stats32Attr::OutBps(v) => s.out_bps = v.into(),
                    _ => {}
                }
            }
        }
        s
    }
}

/// What the kernel reports about a destination besides its configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct DestStats {
    pub active_conns: u32,
    pub inactive_conns: u32,
    pub persist_conns: u32,
    pub traffic: Stats,
}

/// One destination as observed in a dump.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DestEntry {
    pub destination: Destination,
    pub stats: DestStats,
}

/// One service as observed in a dump, with its destinations sorted by key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceEntry {
    pub service: Service,
    pub stats: Stats,
    pub destinations: Vec<DestEntry>,
}

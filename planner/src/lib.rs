//! Pure planning for lvs-operator.
//!
//! [`analyze`] decides, cluster-wide, which VirtualServices are valid, which
//! lose a conflict, which nodes direct them and which realservers they get.
//! [`plan`] turns that into the [`NodePlan`] of one node. Both are
//! deterministic and free of I/O: the same objects in any order give the same
//! result. [`Incremental`] keeps one node's plan current change by change,
//! re-planning only the VirtualServices a change can affect.
#![forbid(unsafe_code)]

mod analyze;
mod incremental;
mod plan;
mod planner;
pub mod pools;
pub mod profiles;

pub use analyze::{
    Analysis, RealServerVerdict, ServiceState, Verdict, analyze, analyze_with, service_key,
};
pub use incremental::{Applied, Change, Changes, Incremental, PlanScope};
pub use plan::{
    NodePlan, PlannedDestination, PlannedHealthCheck, PlannedMark, PlannedPersistence,
    PlannedService, PlannedTunnel, PlannedTunnelEndpoint, PlannedVip, ServiceKey, Sysctl,
};
pub use planner::{
    Aggregate, DEFAULT_DRAIN_TIMEOUT_SECONDS, Fragment, TunnelSlot, VipCounts, fragment,
    gre_checksum_device, plan, plan_from_analysis,
};
pub use pools::{AddressPolicy, NotAllowed, Pool};
pub use profiles::ProfileChoice;

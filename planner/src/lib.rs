//! Pure planning for lvs-operator.
//!
//! [`analyze`] decides, cluster-wide, which VirtualServices are valid, which
//! lose a conflict, which nodes direct them and which realservers they get.
//! [`plan`] turns that into the [`NodePlan`] of one node. Both are
//! deterministic and free of I/O: the same objects in any order give the same
//! result.
#![forbid(unsafe_code)]

mod analyze;
mod plan;
mod planner;

pub use analyze::{Analysis, RealServerVerdict, ServiceState, Verdict, analyze};
pub use plan::{
    NodePlan, PlannedDestination, PlannedPersistence, PlannedService, PlannedTunnel,
    PlannedTunnelEndpoint, PlannedVip, ServiceKey, Sysctl,
};
pub use planner::{plan, plan_from_analysis};

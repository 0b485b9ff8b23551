//! The lvs-operator v1alpha1 API.
//!
//! `VirtualService` and `RealServer` (with the `kube` feature), their specs,
//! the Rust mirror of the admission rules, and plain views for crates that
//! must not depend on kube.
#![forbid(unsafe_code)]

pub mod addresspool;
pub mod enums;
pub mod lvsnode;
pub mod manifest;
pub mod nodeprofile;
pub mod object;
pub mod realserver;
pub mod rules;
pub mod selector;
pub mod snapshot;
pub mod status;
pub mod validate;
pub mod virtualservice;

pub use addresspool::{
    AddressOwner, LvsAddressPoolSpec, LvsAddressPoolStatus, PoolIndex, PoolSummary,
};
pub use enums::{
    DnsRcode, Family, ForwardingMethod, HealthAction, HealthCheckType, Protocol, RealServerState,
    Scheduler, SchedulerFlag, SelectorOperator, TunnelType,
};
pub use lvsnode::{
    DestinationReport, DestinationState, DirectorRole, DriftReport, LvsNodeSpec, LvsNodeStatus,
    ServiceReport, TrafficCounters, VipRole,
};
pub use nodeprofile::{DirectorSysctls, IpvsTimeouts, LvsNodeProfileSpec};
pub use object::{Meta, NodeInfo, Object};
pub use realserver::{RealServerHealth, RealServerSpec, RealServerStatus};
pub use selector::{LabelMap, LabelSelector, LabelSelectorRequirement};
pub use snapshot::{
    LiveDestination, LiveService, LvsSnapshotSpec, LvsSnapshotStatus, MAX_SNAPSHOT_CHANGES,
    MAX_SNAPSHOT_DESTINATIONS,
};
pub use status::{Condition, ConditionUpdate, compute_conditions};
pub use validate::{FieldError, ValidationErrors, validate_pair};
pub use virtualservice::{
    BACKEND_PORT_LABEL, BACKEND_SERVICE_LABEL, Backends, BackendsStatus, DirectorDrift,
    DirectorTraffic, Directors, Drain, FwmarkMatch, HealthCheck, MatchPort, Persistence, PortRef,
    RealServerCounts, ServiceBackend, SorryServer, TrafficStatus, Tunnel, TunnelChecksum,
    VirtualServiceSpec, VirtualServiceStatus,
};

#[cfg(feature = "kube")]
pub use addresspool::LvsAddressPool;
#[cfg(feature = "kube")]
pub use lvsnode::LvsNode;
#[cfg(feature = "kube")]
pub use nodeprofile::LvsNodeProfile;
#[cfg(feature = "kube")]
pub use realserver::RealServer;
#[cfg(feature = "kube")]
pub use snapshot::LvsSnapshot;
#[cfg(feature = "kube")]
pub use virtualservice::VirtualService;
#[cfg(feature = "kube")]
pub use {k8s_openapi, kube};

/// The API group.
pub const GROUP: &str = "lvs.lvs-operator.io";
/// The served version.
pub const VERSION: &str = "v1alpha1";
/// `group/version`, as manifests write it.
pub const API_VERSION: &str = "lvs.lvs-operator.io/v1alpha1";
/// Linux interface names: 1 to 15 printable ASCII characters (so 15 bytes,
/// the kernel's limit), no slash or colon. "." and ".." are refused by a CEL
/// rule, as the pattern language has no lookahead.
pub const INTERFACE_PATTERN: &str = r"^[!-.0-9;-~]{1,15}$";

/// An HTTP status code (100-599) or a range of them, `200` or `200-399`.
pub const STATUS_RANGE_PATTERN: &str = r"^[1-5][0-9][0-9](-[1-5][0-9][0-9])?$";
/// Kubernetes node names: DNS-1123 subdomains.
pub const NODE_NAME_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// Reads one watched object (untyped, as the API server sent it) as a
/// strictly typed kind. The error names the field, so an object written
/// against a newer CRD is reported alone instead of failing a whole list.
#[cfg(feature = "kube")]
pub fn read_strict<K: serde::de::DeserializeOwned>(
    o: kube::core::DynamicObject,
) -> Result<K, String> {
    let v = serde_json::to_value(o).map_err(|e| e.to_string())?;
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            inner.to_string()
        } else {
            format!("{path}: {inner}")
        }
    })
}

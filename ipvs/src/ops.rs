//! Write operations as values, so a whole sync can be encoded up front and
//! pipelined, and each kernel error mapped back to the operation behind it.

use std::fmt;

use crate::codec::{IpvsAttr, IpvsCmd, IpvsMessage, Nested};
use crate::types::{DestKey, Destination, Service, ServiceKey};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// NEW_SERVICE: fails with EEXIST if the key is taken.
    AddService(Service),
    /// SET_SERVICE: changes the configuration in place (ESRCH if absent).
    UpdateService(Service),
    /// DEL_SERVICE: removes the service and its destinations (ESRCH if absent).
    DelService(ServiceKey),
    /// NEW_DEST: EEXIST if the destination exists, ESRCH if the service does not.
    AddDest {
        service: ServiceKey,
        dest: Destination,
    },
    /// SET_DEST: ENOENT if the destination does not exist.
    UpdateDest {
        service: ServiceKey,
        dest: Destination,
    },
    /// DEL_DEST: ENOENT if the destination does not exist.
    DelDest { service: ServiceKey, dest: DestKey },
}

impl Op {
    /// The service the operation acts on.
    pub fn service(&self) -> &ServiceKey {
        match self {
            Op::AddService(s) | Op::UpdateService(s) => &s.key,
            Op::DelService(k) => k,
            Op::AddDest { service, .. }
            | Op::UpdateDest { service, .. }
            | Op::DelDest { service, .. } => service,
        }
    }

    /// A short name of the operation's kind, fit for a metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::AddService(_) => "service_add",
            Op::UpdateService(_) => "service_update",
            Op::DelService(_) => "service_del",
            Op::AddDest { .. } => "dest_add",
            Op::UpdateDest { .. } => "dest_update",
            Op::DelDest { .. } => "dest_del",
        }
    }

    pub fn cmd(&self) -> IpvsCmd {
        match self {
            Op::AddService(_) => IpvsCmd::NewService,
            Op::UpdateService(_) => IpvsCmd::SetService,
            Op::DelService(_) => IpvsCmd::DelService,
            Op::AddDest { .. } => IpvsCmd::NewDest,
            Op::UpdateDest { .. } => IpvsCmd::SetDest,
            Op::DelDest { .. } => IpvsCmd::DelDest,
        }
    }

    /// The IPVS payload the kernel expects for this operation.
    pub fn to_message(&self) -> IpvsMessage {
        let svc = |attrs| IpvsAttr::Service(Nested::new(attrs));
        let dest = |attrs| IpvsAttr::Dest(Nested::new(attrs));
        let nlas = match self {
            Op::AddService(s) | Op::UpdateService(s) => vec![svc(s.to_attrs())],
            Op::DelService(k) => vec![svc(k.to_attrs())],
            Op::AddDest { service, dest: d } | Op::UpdateDest { service, dest: d } => {
                vec![svc(service.to_attrs()), dest(d.to_attrs())]
            }
            Op::DelDest { service, dest: d } => {
                vec![svc(service.to_attrs()), dest(d.to_attrs())]
            }
        };
        IpvsMessage::new(self.cmd(), nlas)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::AddService(s) => write!(f, "NEW_SERVICE {}", s.key),
            Op::UpdateService(s) => write!(f, "SET_SERVICE {}", s.key),
            Op::DelService(k) => write!(f, "DEL_SERVICE {k}"),
            Op::AddDest { service, dest } => write!(f, "NEW_DEST {service} -> {}", dest.key),
            Op::UpdateDest { service, dest } => write!(f, "SET_DEST {service} -> {}", dest.key),
            Op::DelDest { service, dest } => write!(f, "DEL_DEST {service} -> {dest}"),
        }
    }
}

//! EndpointSlice backends: the RealServers that mirror a Service's endpoints.
//!
//! A VirtualService with `spec.backends.service` selects the RealServers
//! labelled with that Service and port (see [`VirtualServiceSpec::selector`]).
//! The operator writes those RealServers from the Service's EndpointSlices,
//! like Kubernetes' endpointslice-mirroring controller, so health checks,
//! drain, readiness gating, status and the agents see ordinary RealServers:
//!
//! - a ready endpoint (`conditions.ready` true or unset) is a RealServer in
//!   state Active;
//! - a terminating endpoint (`conditions.terminating` true) is one in state
//!   Draining (weight 0 until its connections end or the drain deadline);
//! - an endpoint neither ready nor terminating has no RealServer, like a gone
//!   one: the agents drain a removed destination, as they do for a deleted
//!   RealServer;
//! - the weight is 1, or the EndpointSlice's annotation
//!   [`WEIGHT_ANNOTATION`] (0-65535) for all of its endpoints.
//!
//! Everything here is pure: [`desired`] turns the Service, its slices and the
//! ports the VirtualServices ask for into RealServers and a status summary.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource, ResourceExt};
use lvs_api::{
    BACKEND_PORT_LABEL, BACKEND_SERVICE_LABEL, BackendsStatus, PortRef, RealServerSpec,
    RealServerState, ServiceBackend,
};

/// The label every EndpointSlice of a Service carries.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Marks the objects the operator writes and may delete.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY_LABEL`] on them.
pub const MANAGED_BY: &str = "lvs-operator";
/// On an EndpointSlice: the weight of each of its endpoints (default 1).
pub const WEIGHT_ANNOTATION: &str = "lvs-operator.io/weight";
/// At most this many endpoints are listed in `status.backends.endpoints`.
pub const MAX_LISTED: usize = 32;

/// One mirror RealServer as the operator wants it.
#[derive(Debug, Clone, PartialEq)]
pub struct Mirror {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub spec: RealServerSpec,
}

/// The Service port that `backend` names: by number, by name, or the only
/// one when left out. The error says what was asked and what exists.
pub fn resolve_port<'a>(
    svc: &'a Service,
    backend: &ServiceBackend,
) -> Result<&'a ServicePort, String> {
    let ports: &[ServicePort] = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or_default();
    let listed = || {
        let l: Vec<String> = ports.iter().map(port_text).collect();
        if l.is_empty() {
            "it has none".to_string()
        } else {
            format!("it has {}", l.join(", "))
        }
    };
    let name = svc.name_any();
    match &backend.port {
        None if ports.len() == 1 => Ok(&ports[0]),
        None => Err(format!(
            "spec.backends.service.port is required: Service {name} has {} ports, expected exactly one when the port is left out ({})",
            ports.len(),
            listed()
        )),
        Some(PortRef::Number(n)) => ports
            .iter()
            .find(|p| i64::from(p.port) == *n)
            .ok_or_else(|| format!("Service {name} has no port {n} ({})", listed())),
        Some(PortRef::Name(s)) => ports
            .iter()
            .find(|p| p.name.as_deref() == Some(s.as_str()))
            .ok_or_else(|| format!("Service {name} has no port named {s} ({})", listed())),
    }
}

/// A Service port as `kubectl` would name it: `name (port/proto)` or `port/proto`.
fn port_text(p: &ServicePort) -> String {
    let proto = p.protocol.as_deref().unwrap_or("TCP");
    match p.name.as_deref().filter(|n| !n.is_empty()) {
        Some(n) => format!("{n} ({}/{proto})", p.port),
        None => format!("{}/{proto}", p.port),
    }
}

/// The name of the mirror of `address:port` for the Service `service` and
/// the port label `port_label`: the Service's name (shortened) and a stable
/// hash of the rest, so names never collide across Services or ports.
pub fn mirror_name(service: &str, port_label: &str, address: &IpAddr, port: Option<i32>) -> String {
    // FNV-1a, 64 bit: stable across releases (std's hasher is not).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let key = format!("{service}\0{port_label}\0{address}\0{}", port.unwrap_or(0));
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut prefix: String = service.chars().take(40).collect();
    while prefix.ends_with('.') || prefix.ends_with('-') {
        prefix.pop();
    }
    format!("{prefix}-{h:016x}")
}

/// The labels of every mirror of `service`'s port `port_label`.
pub fn mirror_labels(service: &str, port_label: &str) -> BTreeMap<String, String> {
    [
        (BACKEND_SERVICE_LABEL.to_string(), service.to_string()),
        (BACKEND_PORT_LABEL.to_string(), port_label.to_string()),
        (MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
    ]
    .into_iter()
    .collect()
}

/// Whether a RealServer is a mirror the operator wrote for `service`.
pub fn is_mirror_of(labels: &BTreeMap<String, String>, service: &str) -> bool {
    labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY)
        && labels.get(BACKEND_SERVICE_LABEL).map(String::as_str) == Some(service)
}

/// The weight an EndpointSlice gives its endpoints, or why its annotation
/// is refused.
pub fn slice_weight(slice: &EndpointSlice) -> Result<i64, String> {
    match slice.annotations().get(WEIGHT_ANNOTATION) {
        None => Ok(1),
        Some(v) => match v.trim().parse::<i64>() {
            Ok(w) if (0..=65535).contains(&w) => Ok(w),
            _ => Err(format!(
                "EndpointSlice {}: annotation {WEIGHT_ANNOTATION} is {v:?}, expected an integer 0-65535",
                slice.name_any()
            )),
        },
    }
}

/// The owner reference to `svc` that every mirror carries, so that
/// deleting the Service deletes them (garbage collection).
pub fn owner_of(svc: &Service) -> Option<OwnerReference> {
    let mut o = svc.controller_owner_ref(&())?;
    o.block_owner_deletion = None;
    Some(o)
}

/// Mirrors and the status of one Service port.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PortMirrors {
    pub mirrors: Vec<Mirror>,
    pub status: BackendsStatus,
}

/// The mirrors of the Service port that `backend` names, from `slices` (the
/// Service's EndpointSlices; others are ignored), keeping only addresses of
/// the `families` the VirtualServices use (true = IPv6). A problem (no such
/// port) yields no mirrors and the message in the status.
pub fn desired(
    svc: &Service,
    backend: &ServiceBackend,
    slices: &[&EndpointSlice],
    families: &BTreeSet<bool>,
) -> PortMirrors {
    let service = svc.name_any();
    let port_label = backend.port_label();
    let mut status = BackendsStatus {
        service: service.clone(),
        ..Default::default()
    };
    let port = match resolve_port(svc, backend) {
        Ok(p) => p,
        Err(msg) => {
            status.message = msg;
            return PortMirrors {
                mirrors: Vec::new(),
                status,
            };
        }
    };
    let port_name = port.name.clone().unwrap_or_default();
    let protocol = port.protocol.clone().unwrap_or_else(|| "TCP".into());
    status.port = Some(if port_name.is_empty() {
        port.port.to_string()
    } else {
        port_name.clone()
    });
    let labels = mirror_labels(&service, &port_label);
    let mut by_name: BTreeMap<String, Mirror> = BTreeMap::new();
    let mut listed: BTreeSet<String> = BTreeSet::new();
    let mut problems: Vec<String> = Vec::new();
    for slice in slices {
        if slice.labels().get(SERVICE_NAME_LABEL) != Some(&service) {
            continue;
        }
        let ipv6 = match slice.address_type.as_str() {
            "IPv4" => false,
            "IPv6" => true,
            _ => continue, // FQDN: not an address IPVS can use.
        };
        if !families.contains(&ipv6) {
            continue;
        }
        // The slice's port for the Service port: same name and protocol. A
        // slice that lists no ports carries none of this one.
        let Some(sp) = slice.ports.iter().flatten().find(|p| {
            p.name.clone().unwrap_or_default() == port_name
                && p.protocol.clone().unwrap_or_else(|| "TCP".into()) == protocol
        }) else {
            continue;
        };
        let target = sp.port;
        let weight = match slice_weight(slice) {
            Ok(w) => w,
            Err(e) => {
                problems.push(e);
                1
            }
        };
        for ep in &slice.endpoints {
            let c = ep.conditions.as_ref();
            let terminating = c.and_then(|c| c.terminating) == Some(true);
            let ready = c.and_then(|c| c.ready) != Some(false);
            let state = if terminating {
                RealServerState::Draining
            } else if ready {
                RealServerState::Active
            } else {
                status.not_ready += 1;
                continue;
            };
            for a in &ep.addresses {
                let Ok(addr) = a.parse::<IpAddr>() else {
                    continue;
                };
                let name = mirror_name(&service, &port_label, &addr, target);
                // The same address in two slices (a slice being replaced):
                // ready wins over terminating.
                if let Some(m) = by_name.get(&name)
                    && m.spec.state != Some(RealServerState::Draining)
                {
                    continue;
                }
                by_name.insert(
                    name.clone(),
                    Mirror {
                        name,
                        labels: labels.clone(),
                        spec: RealServerSpec {
                            address: Some(addr.to_string()),
                            node_name: None,
                            port: target.map(i64::from),
                            weight,
                            forwarding: None,
                            tunnel: None,
                            state: Some(state),
                            upper_threshold: None,
                            lower_threshold: None,
                        },
                    },
                );
            }
        }
    }
    for m in by_name.values() {
        let addr = m.spec.address.clone().unwrap_or_default();
        let text = match (m.spec.port, addr.contains(':')) {
            (Some(p), true) => format!("[{addr}]:{p}"),
            (Some(p), false) => format!("{addr}:{p}"),
            (None, _) => addr,
        };
        listed.insert(text);
        match m.spec.state {
            Some(RealServerState::Draining) => status.terminating += 1,
            _ => status.ready += 1,
        }
    }
    status.endpoints = listed.into_iter().take(MAX_LISTED).collect();
    problems.sort();
    problems.dedup();
    status.message = problems.join("; ");
    PortMirrors {
        mirrors: by_name.into_values().collect(),
        status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ServiceSpec;
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort};
    use kube::api::ObjectMeta;

    fn service(ports: &[(Option<&str>, i32)]) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("shop".into()),
                uid: Some("uid-1".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                ports: Some(
                    ports
                        .iter()
                        .map(|(n, p)| ServicePort {
                            name: n.map(Into::into),
                            port: *p,
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn ep(addr: &str, ready: Option<bool>, terminating: Option<bool>) -> Endpoint {
        Endpoint {
            addresses: vec![addr.into()],
            conditions: Some(EndpointConditions {
                ready,
                serving: None,
                terminating,
            }),
            ..Default::default()
        }
    }

    fn slice(name: &str, port_name: Option<&str>, port: i32, eps: Vec<Endpoint>) -> EndpointSlice {
        EndpointSlice {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("shop".into()),
                labels: Some([(SERVICE_NAME_LABEL.to_string(), "web".to_string())].into()),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            endpoints: eps,
            ports: Some(vec![EndpointPort {
                name: port_name.map(Into::into),
                port: Some(port),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
        }
    }

    fn backend(port: Option<PortRef>) -> ServiceBackend {
        ServiceBackend {
            name: "web".into(),
            port,
        }
    }

    fn v4() -> BTreeSet<bool> {
        [false].into()
    }

    #[test]
    fn ready_terminating_and_unready_endpoints() {
        let svc = service(&[(None, 80)]);
        let s = slice(
            "web-abc",
            None,
            8080,
            vec![
                ep("10.0.0.1", Some(true), None),
                ep("10.0.0.2", None, None),
                ep("10.0.0.3", Some(false), Some(true)),
                ep("10.0.0.4", Some(false), Some(false)),
            ],
        );
        let got = desired(&svc, &backend(None), &[&s], &v4());
        let states: Vec<(String, Option<RealServerState>, Option<i64>)> = got
            .mirrors
            .iter()
            .map(|m| (m.spec.address.clone().unwrap(), m.spec.state, m.spec.port))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(
            states,
            vec![
                ("10.0.0.1".into(), Some(RealServerState::Active), Some(8080)),
                ("10.0.0.2".into(), Some(RealServerState::Active), Some(8080)),
                (
                    "10.0.0.3".into(),
                    Some(RealServerState::Draining),
                    Some(8080)
                ),
            ]
        );
        assert_eq!(
            (
                got.status.ready,
                got.status.terminating,
                got.status.not_ready
            ),
            (2, 1, 1)
        );
        assert_eq!(got.status.port.as_deref(), Some("80"));
        assert_eq!(
            got.status.endpoints,
            vec!["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080"]
        );
        for m in &got.mirrors {
            assert_eq!(m.labels[BACKEND_SERVICE_LABEL], "web");
            assert_eq!(m.labels[BACKEND_PORT_LABEL], "");
            assert_eq!(m.spec.weight, 1);
        }
    }

    #[test]
    fn named_port_picks_the_slice_port_of_that_name() {
        let svc = service(&[(Some("http"), 80), (Some("admin"), 81)]);
        let mut s = slice(
            "web-abc",
            Some("http"),
            8080,
            vec![ep("10.0.0.1", None, None)],
        );
        s.ports.as_mut().unwrap().push(EndpointPort {
            name: Some("admin".into()),
            port: Some(9090),
            protocol: Some("TCP".into()),
            ..Default::default()
        });
        let by_name = desired(
            &svc,
            &backend(Some(PortRef::Name("admin".into()))),
            &[&s],
            &v4(),
        );
        assert_eq!(by_name.mirrors[0].spec.port, Some(9090));
        assert_eq!(by_name.mirrors[0].labels[BACKEND_PORT_LABEL], "admin");
        let by_number = desired(&svc, &backend(Some(PortRef::Number(80))), &[&s], &v4());
        assert_eq!(by_number.mirrors[0].spec.port, Some(8080));
        assert_eq!(by_number.mirrors[0].labels[BACKEND_PORT_LABEL], "80");
        assert_ne!(by_name.mirrors[0].name, by_number.mirrors[0].name);
    }

    #[test]
    fn unresolvable_port_says_what_exists() {
        let svc = service(&[(Some("http"), 80), (Some("admin"), 81)]);
        let got = desired(&svc, &backend(None), &[], &v4());
        assert!(got.mirrors.is_empty());
        assert!(
            got.status.message.contains("has 2 ports"),
            "{}",
            got.status.message
        );
        let got = desired(&svc, &backend(Some(PortRef::Number(443))), &[], &v4());
        assert_eq!(
            got.status.message,
            "Service web has no port 443 (it has http (80/TCP), admin (81/TCP))"
        );
    }

    #[test]
    fn weight_annotation_and_other_families_and_services() {
        let svc = service(&[(None, 80)]);
        let mut s = slice("web-a", None, 80, vec![ep("10.0.0.1", None, None)]);
        s.metadata.annotations = Some([(WEIGHT_ANNOTATION.to_string(), "7".to_string())].into());
        let mut v6 = slice("web-b", None, 80, vec![ep("fd00::1", None, None)]);
        v6.address_type = "IPv6".into();
        let mut other = slice("db-a", None, 80, vec![ep("10.0.0.9", None, None)]);
        other.metadata.labels = Some([(SERVICE_NAME_LABEL.to_string(), "db".to_string())].into());
        let got = desired(&svc, &backend(None), &[&s, &v6, &other], &v4());
        assert_eq!(got.mirrors.len(), 1);
        assert_eq!(got.mirrors[0].spec.weight, 7);
        let both: BTreeSet<bool> = [false, true].into();
        let got = desired(&svc, &backend(None), &[&s, &v6], &both);
        assert_eq!(got.mirrors.len(), 2);
        assert!(got.status.endpoints.contains(&"[fd00::1]:80".to_string()));

        s.metadata.annotations =
            Some([(WEIGHT_ANNOTATION.to_string(), "heavy".to_string())].into());
        let got = desired(&svc, &backend(None), &[&s], &v4());
        assert_eq!(got.mirrors[0].spec.weight, 1);
        assert!(got.status.message.contains("expected an integer 0-65535"));
    }

    #[test]
    fn ready_wins_over_terminating_for_the_same_address() {
        let svc = service(&[(None, 80)]);
        let old = slice(
            "web-a",
            None,
            80,
            vec![ep("10.0.0.1", Some(false), Some(true))],
        );
        let new = slice("web-b", None, 80, vec![ep("10.0.0.1", Some(true), None)]);
        for order in [[&old, &new], [&new, &old]] {
            let got = desired(&svc, &backend(None), &order, &v4());
            assert_eq!(got.mirrors.len(), 1);
            assert_eq!(got.mirrors[0].spec.state, Some(RealServerState::Active));
        }
    }

    #[test]
    fn mirror_names_are_stable_valid_and_distinct() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let n = mirror_name("web", "", &a, Some(80));
        assert_eq!(n, mirror_name("web", "", &a, Some(80)));
        assert_ne!(n, mirror_name("web", "80", &a, Some(80)));
        assert_ne!(n, mirror_name("web", "", &a, Some(81)));
        let long = mirror_name(&"a".repeat(63), "", &a, None);
        assert!(long.len() <= 63, "{long}");
        assert!(long.starts_with(&"a".repeat(40)));
    }
}

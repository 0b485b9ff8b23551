//! Services of type LoadBalancer with `spec.loadBalancerClass:
//! lvs-operator.io/ipvs`: one VirtualService per Service port, all on one
//! address from the pools, backends from the Service's own endpoints.
//!
//! Services of any other class (or none) are never touched. The
//! VirtualServices carry an ownerReference to the Service, so deleting it
//! deletes them (garbage collection), and with them the mirror RealServers.
//!
//! The VirtualServices' settings come from the Service's annotations (all
//! optional; a bad value is reported, never guessed):
//!
//! | annotation | meaning | default |
//! |---|---|---|
//! | `lvs-operator.io/address` | the VIP to use (must be allowed by a pool) | `spec.loadBalancerIP`, else allocated |
//! | `lvs-operator.io/forwarding` | NAT, DR or TUN | NAT |
//! | `lvs-operator.io/source-nat` | true/false, NAT only | true with NAT (pods reply through their own node) |
//! | `lvs-operator.io/scheduler` | an IPVS scheduler | wlc |
//! | `lvs-operator.io/directors` | director node label selector, `k=v,k2=v2` | every node (only if a pool allows it) |
//! | `lvs-operator.io/health-check` | TCP, HTTP, HTTPS or None | TCP for TCP ports |
//! | `lvs-operator.io/health-check-path` | the HTTP(S) path | `/` |

use std::collections::BTreeMap;
use std::str::FromStr;

use k8s_openapi::api::core::v1::{Service, ServicePort};
use kube::ResourceExt;
use lvs_api::{
    Backends, Directors, ForwardingMethod, HealthCheck, HealthCheckType, LabelSelector, PortRef,
    Protocol, Scheduler, ServiceBackend, VirtualServiceSpec,
};

use crate::backends::{MANAGED_BY, MANAGED_BY_LABEL};

/// The `spec.loadBalancerClass` this operator implements.
pub const LOAD_BALANCER_CLASS: &str = "lvs-operator.io/ipvs";
/// On the VirtualServices of a LoadBalancer Service: the Service's name.
pub const LOAD_BALANCER_LABEL: &str = "lvs.lvs-operator.io/load-balancer";

pub const ADDRESS_ANNOTATION: &str = "lvs-operator.io/address";
pub const FORWARDING_ANNOTATION: &str = "lvs-operator.io/forwarding";
pub const SOURCE_NAT_ANNOTATION: &str = "lvs-operator.io/source-nat";
pub const SCHEDULER_ANNOTATION: &str = "lvs-operator.io/scheduler";
pub const DIRECTORS_ANNOTATION: &str = "lvs-operator.io/directors";
pub const HEALTH_CHECK_ANNOTATION: &str = "lvs-operator.io/health-check";
pub const HEALTH_CHECK_PATH_ANNOTATION: &str = "lvs-operator.io/health-check-path";

/// Whether the Service is ours: type LoadBalancer and our class.
pub fn is_ours(svc: &Service) -> bool {
    svc.spec.as_ref().is_some_and(|s| {
        s.type_.as_deref() == Some("LoadBalancer")
            && s.load_balancer_class.as_deref() == Some(LOAD_BALANCER_CLASS)
    })
}

/// The address the Service asks for (annotation first, then the deprecated
/// `spec.loadBalancerIP`), or why it does not parse.
pub fn requested_address(svc: &Service) -> Result<Option<std::net::IpAddr>, String> {
    let (field, v) = match svc.annotations().get(ADDRESS_ANNOTATION) {
        Some(v) => (format!("annotation {ADDRESS_ANNOTATION}"), v.clone()),
        None => match svc
            .spec
            .as_ref()
            .and_then(|s| s.load_balancer_ip.clone())
            .filter(|v| !v.is_empty())
        {
            Some(v) => ("spec.loadBalancerIP".to_string(), v),
            None => return Ok(None),
        },
    };
    v.trim()
        .parse()
        .map(Some)
        .map_err(|_| format!("{field} is {v:?}, expected an IPv4 or IPv6 address"))
}

/// The name of the VirtualService for one Service port: the Service's name,
/// the port and the protocol (`web-80-tcp`).
pub fn vs_name(service: &str, port: &ServicePort) -> String {
    let proto = port
        .protocol
        .as_deref()
        .unwrap_or("TCP")
        .to_ascii_lowercase();
    let suffix = format!("-{}-{proto}", port.port);
    let mut prefix: String = service.chars().take(63 - suffix.len()).collect();
    while prefix.ends_with('-') || prefix.ends_with('.') {
        prefix.pop();
    }
    format!("{prefix}{suffix}")
}

fn annotation<T: FromStr>(svc: &Service, key: &str, expected: &str) -> Result<Option<T>, String> {
    match svc.annotations().get(key) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| format!("annotation {key} is {v:?}, expected {expected}")),
    }
}

/// `k=v,k2=v2` as a label selector (matchLabels only).
fn parse_selector(text: &str) -> Result<LabelSelector, String> {
    let mut labels = BTreeMap::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').ok_or_else(|| {
            format!(
                "annotation {DIRECTORS_ANNOTATION}: {part:?} is not key=value (expected k=v,k2=v2)"
            )
        })?;
        labels.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(LabelSelector {
        match_labels: labels.into(),
        match_expressions: Vec::new(),
    })
}

/// One VirtualService a LoadBalancer Service wants.
#[derive(Debug, Clone, PartialEq)]
pub struct LbVirtualService {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub spec: VirtualServiceSpec,
}

/// The VirtualServices a LoadBalancer Service wants on `address`, one per
/// port; or why the annotations are refused.
pub fn desired_vss(
    svc: &Service,
    address: std::net::IpAddr,
) -> Result<Vec<LbVirtualService>, String> {
    let forwarding: ForwardingMethod =
        annotation(svc, FORWARDING_ANNOTATION, "NAT, DR or TUN")?.unwrap_or_default();
    let source_nat: Option<bool> = annotation(svc, SOURCE_NAT_ANNOTATION, "true or false")?;
    let source_nat = match (source_nat, forwarding) {
        (Some(true), ForwardingMethod::Dr | ForwardingMethod::Tun) => {
            return Err(format!(
                "annotation {SOURCE_NAT_ANNOTATION} is true, but source NAT is only possible with forwarding NAT (got {forwarding})"
            ));
        }
        (Some(v), _) => v,
        (None, f) => f == ForwardingMethod::Nat,
    };
    let scheduler: Scheduler = annotation(
        svc,
        SCHEDULER_ANNOTATION,
        "an IPVS scheduler (rr, wrr, lc, wlc, ...)",
    )?
    .unwrap_or_default();
    let node_selector = match svc.annotations().get(DIRECTORS_ANNOTATION) {
        Some(t) => parse_selector(t)?,
        None => LabelSelector::default(),
    };
    let check: Option<HealthCheckType> =
        annotation(svc, HEALTH_CHECK_ANNOTATION, "TCP, HTTP, HTTPS or None")?;
    if check == Some(HealthCheckType::Dns) {
        return Err(format!(
            "annotation {HEALTH_CHECK_ANNOTATION} is DNS, expected TCP, HTTP, HTTPS or None (DNS checks need a VirtualService written by hand)"
        ));
    }
    let path = svc.annotations().get(HEALTH_CHECK_PATH_ANNOTATION).cloned();
    let name = svc.name_any();
    let ports: &[ServicePort] = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or_default();
    let mut out = Vec::new();
    for p in ports {
        let protocol: Protocol = p
            .protocol
            .as_deref()
            .unwrap_or("TCP")
            .parse()
            .map_err(|_| {
                format!(
                    "port {}: protocol {:?} is not TCP, UDP or SCTP",
                    p.port, p.protocol
                )
            })?;
        let health_check = match check {
            None => (protocol == Protocol::Tcp).then(HealthCheck::default),
            Some(t) => Some(HealthCheck {
                r#type: Some(t),
                path: path
                    .clone()
                    .filter(|_| matches!(t, HealthCheckType::Http | HealthCheckType::Https)),
                ..Default::default()
            }),
        };
        let port_ref = match p.name.as_deref().filter(|n| !n.is_empty()) {
            Some(n) => PortRef::Name(n.to_string()),
            None => PortRef::Number(i64::from(p.port)),
        };
        let labels: BTreeMap<String, String> = [
            (LOAD_BALANCER_LABEL.to_string(), name.clone()),
            (MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
        ]
        .into();
        let spec = VirtualServiceSpec {
            address: Some(address.to_string()),
            port: Some(i64::from(p.port)),
            protocol: Some(protocol),
            fwmark: None,
            family: None,
            fwmark_match: None,
            scheduler,
            scheduler_flags: Vec::new(),
            persistence: None,
            forwarding,
            tunnel: None,
            directors: Directors {
                node_selector: node_selector.clone(),
                interface: None,
            },
            real_server_selector: None,
            backends: Some(Box::new(Backends {
                service: ServiceBackend {
                    name: name.clone(),
                    port: Some(port_ref),
                },
            })),
            source_nat,
            health_check: health_check.map(Box::new),
            sorry_server: None,
            quorum: None,
            drain: None,
        };
        out.push(LbVirtualService {
            name: vs_name(&name, p),
            labels,
            spec,
        });
    }
    Ok(out)
}

/// Whether a VirtualService was made by the operator for the Service `name`.
pub fn is_lb_vs_of(labels: &BTreeMap<String, String>, name: &str) -> bool {
    labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY)
        && labels.get(LOAD_BALANCER_LABEL).map(String::as_str) == Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ServiceSpec;
    use kube::api::ObjectMeta;

    fn lb(class: Option<&str>, annotations: &[(&str, &str)]) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("shop".into()),
                annotations: Some(
                    annotations
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                type_: Some("LoadBalancer".into()),
                load_balancer_class: class.map(Into::into),
                ports: Some(vec![
                    ServicePort {
                        name: Some("http".into()),
                        port: 80,
                        ..Default::default()
                    },
                    ServicePort {
                        name: Some("dns".into()),
                        port: 53,
                        protocol: Some("UDP".into()),
                        ..Default::default()
                    },
                ]),
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn only_our_class_is_ours() {
        assert!(is_ours(&lb(Some(LOAD_BALANCER_CLASS), &[])));
        assert!(!is_ours(&lb(Some("example.com/other"), &[])));
        assert!(!is_ours(&lb(None, &[])));
        let mut cluster_ip = lb(Some(LOAD_BALANCER_CLASS), &[]);
        cluster_ip.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
        assert!(!is_ours(&cluster_ip));
    }

    #[test]
    fn one_vs_per_port_with_nat_and_source_nat_by_default() {
        let svc = lb(Some(LOAD_BALANCER_CLASS), &[]);
        let vss = desired_vss(&svc, "192.0.2.10".parse().unwrap()).unwrap();
        let names: Vec<&str> = vss.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, vec!["web-80-tcp", "web-53-udp"]);
        let (labels, tcp) = (&vss[0].labels, &vss[0].spec);
        assert_eq!(labels[LOAD_BALANCER_LABEL], "web");
        assert_eq!(tcp.address.as_deref(), Some("192.0.2.10"));
        assert_eq!(tcp.forwarding, ForwardingMethod::Nat);
        assert!(tcp.source_nat);
        assert_eq!(
            tcp.backends.as_ref().unwrap().service.port,
            Some(PortRef::Name("http".into()))
        );
        assert!(tcp.health_check.is_some(), "TCP ports get the TCP check");
        assert!(vss[1].spec.health_check.is_none(), "UDP ports get none");
        assert_eq!(vss[1].spec.protocol, Some(Protocol::Udp));
        // What the admission rules accept.
        for v in &vss {
            v.spec.validate().unwrap();
        }
    }

    #[test]
    fn annotations_set_the_spec_and_bad_ones_are_named() {
        let svc = lb(
            Some(LOAD_BALANCER_CLASS),
            &[
                (FORWARDING_ANNOTATION, "DR"),
                (SCHEDULER_ANNOTATION, "rr"),
                (DIRECTORS_ANNOTATION, "lvs/director=true, zone=a"),
                (HEALTH_CHECK_ANNOTATION, "HTTP"),
                (HEALTH_CHECK_PATH_ANNOTATION, "/healthz"),
            ],
        );
        let vss = desired_vss(&svc, "192.0.2.10".parse().unwrap()).unwrap();
        let spec = &vss[0].spec;
        assert_eq!(spec.forwarding, ForwardingMethod::Dr);
        assert!(!spec.source_nat);
        assert_eq!(spec.scheduler, Scheduler::Rr);
        assert_eq!(spec.directors.node_selector.match_labels.len(), 2);
        let hc = spec.health_check.as_ref().unwrap();
        assert_eq!(hc.path.as_deref(), Some("/healthz"));

        let bad = lb(
            Some(LOAD_BALANCER_CLASS),
            &[(FORWARDING_ANNOTATION, "MASQ")],
        );
        assert_eq!(
            desired_vss(&bad, "192.0.2.10".parse().unwrap()).unwrap_err(),
            "annotation lvs-operator.io/forwarding is \"MASQ\", expected NAT, DR or TUN"
        );
        let snat_dr = lb(
            Some(LOAD_BALANCER_CLASS),
            &[
                (FORWARDING_ANNOTATION, "DR"),
                (SOURCE_NAT_ANNOTATION, "true"),
            ],
        );
        assert!(
            desired_vss(&snat_dr, "192.0.2.10".parse().unwrap())
                .unwrap_err()
                .contains("only possible with forwarding NAT")
        );
    }

    #[test]
    fn requested_address_prefers_the_annotation() {
        let mut svc = lb(
            Some(LOAD_BALANCER_CLASS),
            &[(ADDRESS_ANNOTATION, "192.0.2.7")],
        );
        svc.spec.as_mut().unwrap().load_balancer_ip = Some("192.0.2.8".into());
        assert_eq!(
            requested_address(&svc).unwrap(),
            Some("192.0.2.7".parse().unwrap())
        );
        svc.metadata.annotations = None;
        assert_eq!(
            requested_address(&svc).unwrap(),
            Some("192.0.2.8".parse().unwrap())
        );
        svc.spec.as_mut().unwrap().load_balancer_ip = Some("nope".into());
        assert!(
            requested_address(&svc)
                .unwrap_err()
                .contains("spec.loadBalancerIP")
        );
    }

    #[test]
    fn vs_names_fit() {
        let p = ServicePort {
            port: 65535,
            protocol: Some("SCTP".into()),
            ..Default::default()
        };
        let n = vs_name(&"x".repeat(63), &p);
        assert!(n.len() <= 63, "{n}");
        assert!(n.ends_with("-65535-sctp"));
    }
}

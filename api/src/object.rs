//! Plain views of API objects, free of any Kubernetes client types.
//!
//! The planner and the standalone agent work on these; the operator and the
//! agent's Kubernetes mode convert the kube types into them.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// The metadata the planner needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    #[serde(default)]
    pub namespace: String,
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// RFC 3339, as the API server writes it; absent for standalone manifests.
    #[serde(default)]
    pub creation_timestamp: Option<String>,
    #[serde(default)]
    pub generation: Option<i64>,
    #[serde(default)]
    pub uid: Option<String>,
}

impl Meta {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// An object with its spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Object<S> {
    pub meta: Meta,
    pub spec: S,
}

/// What the planner needs to know about a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct NodeInfo {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// InternalIP addresses, in the order the Node lists them.
    pub internal_ips: Vec<IpAddr>,
}

impl NodeInfo {
    /// The node's InternalIP of the given family.
    pub fn internal_ip(&self, ipv6: bool) -> Option<IpAddr> {
        self.internal_ips
            .iter()
            .copied()
            .find(|a| a.is_ipv6() == ipv6)
    }
}

#[cfg(feature = "kube")]
mod from_kube {
    use super::*;
    use k8s_openapi::api::core::v1::Node;
    use kube::ResourceExt;

    fn meta_of<K: kube::Resource>(o: &K) -> Meta {
        Meta {
            namespace: o.namespace().unwrap_or_default(),
            name: o.name_any(),
            labels: o.labels().clone(),
            creation_timestamp: o
                .meta()
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string()),
            generation: o.meta().generation,
            uid: o.meta().uid.clone(),
        }
    }

    impl From<&crate::VirtualService> for Object<crate::VirtualServiceSpec> {
        fn from(o: &crate::VirtualService) -> Self {
            Object {
                meta: meta_of(o),
                spec: o.spec.clone(),
            }
        }
    }

    impl From<&crate::LvsNodeProfile> for Object<crate::LvsNodeProfileSpec> {
        fn from(o: &crate::LvsNodeProfile) -> Self {
            Object {
                meta: meta_of(o),
                spec: o.spec.clone(),
            }
        }
    }

    impl From<&crate::RealServer> for Object<crate::RealServerSpec> {
        fn from(o: &crate::RealServer) -> Self {
            Object {
                meta: meta_of(o),
                spec: o.spec.clone(),
            }
        }
    }

    impl From<&Node> for NodeInfo {
        fn from(n: &Node) -> Self {
            let internal_ips = n
                .status
                .as_ref()
                .and_then(|s| s.addresses.as_ref())
                .map(|addrs| {
                    addrs
                        .iter()
                        .filter(|a| a.type_ == "InternalIP")
                        .filter_map(|a| a.address.parse().ok())
                        .collect()
                })
                .unwrap_or_default();
            NodeInfo {
                name: n.name_any(),
                labels: n.labels().clone(),
                internal_ips,
            }
        }
    }
}

//! The LvsAddressPool kind: which VIPs a namespace may use, and where.
//!
//! Pools are cluster-scoped and written by the cluster's administrators. A
//! VirtualService's VIP must lie in a pool that admits its namespace; the
//! rule is enforced at admission (a ValidatingAdmissionPolicy whose
//! parameter is the pool), by the operator (condition `AddressNotAllowed`)
//! and by every agent, which never programs a VIP outside the pools.
//!
//! A ValidatingAdmissionPolicy evaluates each parameter object on its own
//! and ANDs the results, while "inside some pool that admits the namespace"
//! is an OR over pools. So the operator copies one summary of every pool,
//! the addresses no pool may hand out and the current owners of addresses
//! into each pool's status (`status.index`): the policy reads that index
//! from whichever pool it is given, and every pool gives the same answer.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::selector::LabelSelector;
use crate::status::Condition;

/// A set of VIPs that the namespaces it admits may use.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "kube", derive(kube::CustomResource))]
#[cfg_attr(
    feature = "kube",
    kube(
        group = "lvs.lvs-operator.io",
        version = "v1alpha1",
        kind = "LvsAddressPool",
        plural = "lvsaddresspools",
        singular = "lvsaddresspool",
        shortname = "lvspool",
        category = "lvs",
        status = "LvsAddressPoolStatus",
        printcolumn = r#"{"name":"Addresses","type":"string","jsonPath":".spec.addresses"}"#,
        printcolumn = r#"{"name":"Shared","type":"boolean","jsonPath":".spec.shared"}"#,
        printcolumn = r#"{"name":"InUse","type":"integer","jsonPath":".status.inUse"}"#,
        printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LvsAddressPoolSpec {
    /// The pool's addresses: CIDRs (`192.0.2.0/24`, `2001:db8:1::/112`), a
    /// single address, or an inclusive range `first-last` of one family.
    #[schemars(length(min = 1, max = 64))]
    pub addresses: Vec<String>,

    /// The namespaces whose VirtualServices (and LoadBalancer Services) may
    /// use these addresses. Unset: every namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,

    /// The nodes that may act as directors for these addresses (hold and
    /// announce the VIP). A VirtualService's own director selector is
    /// narrowed to these nodes. Unset: any node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub director_selector: Option<LabelSelector>,

    /// The nodes that VirtualServices with a VIP in this pool may name as
    /// DR/TUN realservers (`nodeName`): the agent on such a node puts the
    /// VIP on its loopback or tunnel device, so a tenant could otherwise
    /// capture a node's traffic to that address. Unset: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub real_server_node_selector: Option<LabelSelector>,

    /// Whether VirtualServices of different namespaces may use one address
    /// of this pool at once (on different ports). Default false: an address
    /// belongs to one namespace at a time.
    #[serde(default)]
    pub shared: bool,

    /// Whether a VirtualService with a VIP in this pool may leave its
    /// director selector empty (every node a director). Default false.
    #[serde(default)]
    pub allow_all_directors: bool,

    /// Whether LoadBalancer Services may be given addresses from this pool
    /// without asking for one (default true).
    #[serde(default = "default_true")]
    pub auto_assign: bool,
}

fn default_true() -> bool {
    true
}

/// Written by the operator.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LvsAddressPoolStatus {
    /// Ready (the addresses parse), Overlaps (shares addresses with another
    /// pool).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// This pool's addresses as CIDRs (ranges split into CIDRs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cidrs: Vec<String>,
    /// How many of its addresses VirtualServices use.
    #[serde(default)]
    pub in_use: u32,
    /// The view of every pool that the admission policy reads (see the
    /// kind's description): the same in every pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<PoolIndex>,
}

/// Every pool, the addresses no pool may hand out, and the owners of the
/// addresses in use, as the operator last saw them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolIndex {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<PoolSummary>,
    /// Addresses refused whatever the pools say: node addresses and the
    /// `kubernetes` Service's ClusterIP and endpoints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub denied_addresses: Vec<String>,
    /// The namespace that holds each address in use of a pool that is not
    /// shared.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<AddressOwner>,
}

/// One pool, as the admission policy needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolSummary {
    pub name: String,
    pub cidrs: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    #[serde(default)]
    pub shared: bool,
    #[serde(default)]
    pub allow_all_directors: bool,
}

/// The namespace holding an address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddressOwner {
    pub address: String,
    pub namespace: String,
    /// Set when the namespace no longer uses the address: VirtualServices
    /// of other namespaces created until then never inherit it (recreate
    /// them), and the address stays reserved until the last one is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released: Option<String>,
}

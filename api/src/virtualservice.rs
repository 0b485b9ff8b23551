//! The VirtualService kind: one IPVS virtual service and where it runs.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::enums::{
    DnsRcode, Family, ForwardingMethod, HealthAction, HealthCheckType, Protocol, Scheduler,
    SchedulerFlag, TunnelType,
};
use crate::rules;
use crate::selector::LabelSelector;
use crate::status::Condition;

/// A virtual service: a VIP:port/protocol (or a firewall mark) balanced by
/// kernel IPVS on the director nodes across the RealServers it selects.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "kube", derive(kube::CustomResource))]
#[cfg_attr(
    feature = "kube",
    kube(
        group = "lvs.lvs-operator.io",
        version = "v1alpha1",
        kind = "VirtualService",
        plural = "virtualservices",
        singular = "virtualservice",
        shortname = "lvsvs",
        category = "lvs",
        namespaced,
        status = "VirtualServiceStatus",
        printcolumn = r#"{"name":"Endpoint","type":"string","jsonPath":".status.endpoint","description":"address:port/protocol or fwmark"}"#,
        printcolumn = r#"{"name":"Scheduler","type":"string","jsonPath":".spec.scheduler"}"#,
        printcolumn = r#"{"name":"Method","type":"string","jsonPath":".spec.forwarding"}"#,
        printcolumn = r#"{"name":"RealServers","type":"string","jsonPath":".status.realServers.summary","description":"ready/selected realservers"}"#,
        printcolumn = r#"{"name":"Healthy","type":"string","jsonPath":".status.realServers.healthSummary","description":"healthy/total realservers, as the director seeing the fewest healthy reports"}"#,
        printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
        printcolumn = r#"{"name":"Programmed","type":"string","jsonPath":".status.conditions[?(@.type==\"Programmed\")].status"}"#,
        printcolumn = r#"{"name":"Active","type":"string","jsonPath":".status.activeDirector","description":"the director holding the VIP (director HA)"}"#,
        printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(transform = rules::vs_spec)]
pub struct VirtualServiceSpec {
    /// The virtual IP (IPv4 or IPv6). Set either address (with port and
    /// protocol) or fwmark. Loopback, multicast, unspecified, link-local
    /// (169.254.0.0/16, fe80::/10), 0.0.0.0/8 and 255.255.255.255 are
    /// refused: no director can serve them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), transform = rules::vip)]
    pub address: Option<String>,

    /// The service port (1-65535); required with address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i64>,

    /// TCP (when unset), UDP or SCTP. Only with address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,

    /// A firewall mark (1-4294967295) set by iptables/nftables; the service
    /// then matches every packet carrying it. Set either fwmark or address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4294967295u32))]
    pub fwmark: Option<i64>,

    /// Address family of a fwmark service: IPv4 (when unset) or IPv6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<Family>,

    /// The packets the directors mark with `fwmark` themselves (an nftables
    /// rule in the agent's own table `inet lvs-operator`), so no iptables or
    /// nftables rule has to be written by hand. Only with fwmark. When
    /// unset, something else must set the mark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // Boxed, as are backends, healthCheck and sorryServer: large and mostly
    // unset, and the agent's planner keeps one spec per VirtualService.
    pub fwmark_match: Option<Box<FwmarkMatch>>,

    /// The IPVS scheduler: rr, wrr, lc, wlc (default), lblc, lblcr, dh, sh,
    /// sed, nq, mh, fo, ovf, or twos (kernel 6.5 and later).
    #[serde(default)]
    pub scheduler: Scheduler,

    /// Scheduler flags: sh-fallback and sh-port with sh; mh-fallback and
    /// mh-port with mh; one-packet (schedule each UDP datagram on its own,
    /// ipvsadm -o) with protocol UDP or fwmark. one-packet keeps no connection
    /// entry, so NAT realservers' replies are not rewritten: use it with DR or
    /// TUN, or for one-way UDP.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4))]
    pub scheduler_flags: Vec<SchedulerFlag>,

    /// Client affinity: connections from one client (network) go to the same
    /// realserver while it has connections or the timeout has not expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<Persistence>,

    /// The default forwarding method for the selected realservers: NAT
    /// (default, supports port mapping), DR or TUN. A RealServer may override it.
    #[serde(default)]
    pub forwarding: ForwardingMethod,

    /// Encapsulation for TUN forwarding. Only with forwarding TUN; when unset, ipip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<Tunnel>,

    /// Which nodes act as director: they hold the VIP and the IPVS service.
    pub directors: Directors,

    /// Selects the RealServers (in this namespace) that receive the traffic.
    /// Leave it out when `backends` names a Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub real_server_selector: Option<LabelSelector>,

    /// Realservers from a Service's EndpointSlices instead of RealServer
    /// objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // Boxed: see fwmark_match.
    pub backends: Option<Box<Backends>>,

    /// NAT only: the director also rewrites the client's source address to
    /// its own, so replies come back through it even when the realservers'
    /// default route does not point at the director (pods, other subnets).
    /// The realservers then see the director's address, not the client's
    /// (DR and TUN keep it). Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub source_nat: bool,

    /// Active health checking of the realservers by every director. When
    /// unset, every realserver counts as healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // Boxed: see fwmark_match.
    pub health_check: Option<Box<HealthCheck>>,

    /// Programmed as the only destination while no realserver is healthy
    /// (or while the healthy weight is below quorum), removed when enough
    /// recover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // Boxed: see fwmark_match.
    pub sorry_server: Option<Box<SorryServer>>,

    /// The minimum total weight of healthy realservers; below it the sorry
    /// server takes the traffic (default 1: at least one healthy realserver
    /// with a weight above 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 2147483647))]
    pub quorum: Option<i64>,

    /// Graceful removal of realservers: a leaving destination keeps weight 0
    /// until its connections end or the deadline passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<Drain>,
}

/// Client affinity settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Persistence {
    /// How long an idle client stays bound to its realserver, in seconds
    /// (1-2678400, that is up to 31 days).
    #[schemars(range(min = 1, max = 2678400))]
    pub timeout_seconds: i64,
    /// Clients are grouped by this prefix length (the netmask): 0-32 for
    /// IPv4, 1-128 for IPv6. When unset, each client address is its own group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 128))]
    pub prefix_length: Option<i64>,
}

/// TUN encapsulation options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(transform = rules::tunnel)]
pub struct Tunnel {
    /// ipip (default), gue or gre. gue and gre need kernel 5.3 or later.
    #[serde(default, rename = "type")]
    pub type_: TunnelType,
    /// The UDP destination port for gue (required with gue, not allowed otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i64>,
    /// Checksum options for gue and gre. A GRE realserver with a checksum
    /// receives on a device the agent creates for its address, since the
    /// kernel's fallback device gre0 drops GRE packets with a checksum; all
    /// VirtualServices tunnelling GRE to one realserver address must agree
    /// on `enabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<TunnelChecksum>,
}

/// Tunnel checksum options (kernel IP_VS_TUNNEL_ENCAP_FLAG_*).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TunnelChecksum {
    /// Send a checksum in the encapsulation header (gue and gre).
    #[serde(default)]
    pub enabled: bool,
    /// Use remote checksum offload (gue only; refused with gre, which has no
    /// such option).
    #[serde(default)]
    pub remote: bool,
}

/// Director placement.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Directors {
    /// Nodes whose labels match act as directors. An empty selector selects every node.
    pub node_selector: LabelSelector,
    /// The interface on which directors hold (announce) the VIP. When unset,
    /// the interface that holds the node's InternalIP. A Linux interface
    /// name: 1-15 printable ASCII characters without slash or colon, and
    /// not "." or "..".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 15), regex(pattern = crate::INTERFACE_PATTERN), transform = rules::interface)]
    pub interface: Option<String>,
}

/// Health checking, keepalived-style: each director probes each
/// realserver's own address (so NAT, DR and TUN alike) every interval;
/// `fall` failures in a row take it out, `rise` successes bring it back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(transform = rules::health_check)]
pub struct HealthCheck {
    /// The check to run: TCP (connect), HTTP or HTTPS (GET path), DNS (a
    /// query over UDP) or None. When unset: TCP for a TCP service, None
    /// otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<HealthCheckType>,
    /// Port to check; the realserver's port when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i64>,
    /// Seconds between checks (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub interval_seconds: Option<i64>,
    /// Seconds before one check counts as failed (default 2); less than
    /// intervalSeconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub timeout_seconds: Option<i64>,
    /// Passed checks in a row that bring a failed realserver back (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub rise: Option<i64>,
    /// Failed checks in a row that take a realserver out (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub fall: Option<i64>,
    /// What a failed realserver gets: Inhibit (weight 0; the default for
    /// TCP and SCTP) or Remove (the default for UDP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<HealthAction>,
    /// Path of the HTTP and HTTPS GET (default "/"); starts with "/".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub path: Option<String>,
    /// Host header of the HTTP and HTTPS GET (default: the realserver's
    /// address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub host: Option<String>,
    /// HTTP and HTTPS status codes counted as healthy, each a code or a
    /// range ("200", "200-399"); default "200-399".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), transform = rules::expected_status)]
    pub expected_status: Vec<String>,
    /// HTTP and HTTPS: the answer body must contain this text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub body_contains: Option<String>,
    /// HTTPS: verify the realserver's certificate (default false: any
    /// certificate is accepted, as keepalived does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_certificate: Option<bool>,
    /// DNS: the name queried (type SOA; default ".").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub dns_name: Option<String>,
    /// DNS: the answer code counted as healthy (default NOERROR).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_rcode: Option<DnsRcode>,
}

/// The destination used while no realserver is healthy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SorryServer {
    /// Its address, of the service's family; the same rules as a
    /// RealServer's address.
    #[schemars(length(max = 64), transform = rules::sorry_address)]
    pub address: String,
    /// Its port; the service's port when unset (with a firewall-mark
    /// service: the packet's own port, as for realservers without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i64>,
}

/// The label naming the Service whose endpoints a RealServer mirrors (the
/// operator writes such RealServers for `spec.backends`).
pub const BACKEND_SERVICE_LABEL: &str = "lvs.lvs-operator.io/service";
/// The label naming the Service port (as `spec.backends.service.port` writes
/// it, empty when left out) whose endpoints a RealServer mirrors.
pub const BACKEND_PORT_LABEL: &str = "lvs.lvs-operator.io/service-port";

impl VirtualServiceSpec {
    /// The RealServers this service selects: `realServerSelector`, or with
    /// `backends` the RealServers mirroring that Service port's endpoints.
    /// Neither set (refused at admission): the empty selector.
    pub fn selector(&self) -> std::borrow::Cow<'_, LabelSelector> {
        use std::borrow::Cow;
        match (&self.backends, &self.real_server_selector) {
            (Some(b), _) => Cow::Owned(LabelSelector {
                match_labels: [
                    (BACKEND_SERVICE_LABEL.to_string(), b.service.name.clone()),
                    (BACKEND_PORT_LABEL.to_string(), b.service.port_label()),
                ]
                .into_iter()
                .collect(),
                match_expressions: Vec::new(),
            }),
            (None, Some(s)) => Cow::Borrowed(s),
            (None, None) => Cow::Owned(LabelSelector::default()),
        }
    }
}

impl ServiceBackend {
    /// The port as the mirror RealServers' port label carries it.
    pub fn port_label(&self) -> String {
        match &self.port {
            Some(PortRef::Number(n)) => n.to_string(),
            Some(PortRef::Name(s)) => s.clone(),
            None => String::new(),
        }
    }
}

/// Where the realservers come from when not from RealServer objects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Backends {
    /// A Service in this namespace: its ready endpoints become the
    /// destinations, terminating ones drain.
    pub service: ServiceBackend,
}

/// A Service and one of its ports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceBackend {
    /// The Service's name.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// The Service port's name, or its number. May be left out when the
    /// Service has one port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortRef>,
}

/// What a director marks with a fwmark service's mark: packets to one of
/// `addresses`, of `protocol`, to one of `ports`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FwmarkMatch {
    /// Destination addresses (1-16) of the service's family. They are the
    /// service's VIPs: the directors hold and announce them (elected per
    /// address with high availability), DR realservers get them on `lo` and
    /// TUN realservers on the tunnel device, and each must be allowed by an
    /// address pool as `address` is.
    #[schemars(length(min = 1, max = 16), transform = rules::match_addresses)]
    pub addresses: Vec<String>,
    /// TCP, UDP or SCTP.
    pub protocol: Protocol,
    /// Destination ports (at most 16); empty: every port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub ports: Vec<MatchPort>,
}

/// A destination port, or the range `port`-`endPort` (as in a NetworkPolicy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(transform = rules::match_port)]
pub struct MatchPort {
    #[schemars(range(min = 1, max = 65535))]
    pub port: i64,
    /// The last port of the range (at least `port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub end_port: Option<i64>,
}

/// A port by number or by name (`80` or `http`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PortRef {
    Number(i64),
    Name(String),
}

impl JsonSchema for PortRef {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PortRef".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "x-kubernetes-int-or-string": true,
            "description": "A port number (1-65535) or a port name."
        })
    }
}

/// Graceful drain of leaving realservers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Drain {
    /// How long a leaving realserver keeps weight 0 before its destination is
    /// deleted even with connections left (default 300; 0: at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 86400))]
    pub timeout_seconds: Option<i64>,
}

/// Observed state, written by the operator.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VirtualServiceStatus {
    /// The generation the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Programmed, Degraded, Conflict and Invalid.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The service as IPVS shows it: address:port/protocol or fwmark:N/family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The nodes acting as directors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub directors: Vec<String>,
    /// Realserver counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub real_servers: Option<RealServerCounts>,
    /// Per-node programming state reported by the agents.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub nodes: BTreeMap<String, String>,
    /// Under director HA, the director that holds and announces the VIP, as
    /// its agent reports. Unset while no director reports itself active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_director: Option<String>,
    /// Under director HA, each director's role for the VIP as its agent
    /// reports it: "Active" or "Standby". Directors that report no role for
    /// the VIP (HA off, or not yet synced) are not listed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub director_roles: BTreeMap<String, String>,
    /// The directors that currently send new connections to the sorry
    /// server (too few realservers healthy there).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sorry_server_active: Vec<String>,
    /// With `spec.backends`: the Service's endpoints as the operator
    /// mirrored them into RealServers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backends: Option<BackendsStatus>,
    /// The kernel's counters summed over the directors that report them,
    /// as fresh as the directors' LvsNode reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<TrafficStatus>,
    /// Per director, the last drift its agent repaired (changes to this
    /// VirtualService's kernel objects made by someone else), sorted by
    /// node. Each new entry also comes as a `DriftRepaired` Event.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<DirectorDrift>,
}

/// The traffic of a VirtualService over its directors.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrafficStatus {
    /// The sum over `directors`.
    pub total: crate::lvsnode::TrafficCounters,
    /// The directors whose counters are summed, sorted by node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub directors: Vec<DirectorTraffic>,
}

/// One director's part of [`TrafficStatus`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DirectorTraffic {
    pub node: String,
    /// When the director read its counters (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// The director's hash of the programmed table (see the LvsNode's
    /// `services[].tableHash`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_hash: Option<String>,
    pub active_connections: u64,
    pub connections: u64,
}

/// The last drift a director repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DirectorDrift {
    pub node: String,
    /// When the director's resync found it (RFC 3339).
    pub time: String,
    /// How many objects were repaired.
    pub count: u32,
    /// What was repaired (the first few of `count`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repaired: Vec<String>,
}

/// The endpoints of `spec.backends.service`, as last mirrored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendsStatus {
    /// The Service's name.
    pub service: String,
    /// The Service port the backends come from (its name, or its number
    /// when unnamed); unset while it cannot be resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    /// Ready endpoints: destinations (RealServers in state Active).
    pub ready: u32,
    /// Terminating endpoints: draining (RealServers in state Draining).
    pub terminating: u32,
    /// Endpoints neither ready nor terminating: not destinations.
    pub not_ready: u32,
    /// The ready and terminating endpoints as address:port (at most 32,
    /// sorted; the counts are complete).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<String>,
    /// Why there are no backends (the Service or the port is missing),
    /// empty otherwise.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// How many realservers the selector picks and how many of them are usable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RealServerCounts {
    pub selected: u32,
    pub ready: u32,
    /// "ready/selected", for `kubectl get`.
    pub summary: String,
    /// Destinations passing their health check and readiness gating, as
    /// the director seeing the fewest reports (unset until a director
    /// reports them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<u32>,
    /// "healthy/total" as that director counts them, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_summary: Option<String>,
    /// Destinations draining on some director (leaving: weight 0 until
    /// their connections end or the drain deadline passes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draining: Option<u32>,
    /// Connections those draining destinations still have (the most any
    /// director reports for each).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draining_connections: Option<u32>,
}

impl VirtualServiceSpec {
    /// The address family of the service, when it can be told (an invalid
    /// address has none).
    pub fn is_ipv6(&self) -> bool {
        match (&self.address, self.family) {
            (Some(a), _) => a.contains(':'),
            (None, Some(Family::IPv6)) => true,
            _ => false,
        }
    }

    /// The service's VIPs, the addresses directors hold for it: `address`,
    /// or the addresses a fwmark service marks (`fwmarkMatch`, those of the
    /// service's family). Sorted, unique; unparsable entries left out.
    pub fn vips(&self) -> Vec<std::net::IpAddr> {
        let mut v: Vec<std::net::IpAddr> = match (&self.address, &self.fwmark_match) {
            (Some(a), _) => crate::validate::parse_ip(a).into_iter().collect(),
            (None, Some(m)) if self.fwmark.is_some() => m
                .addresses
                .iter()
                .filter_map(|a| crate::validate::parse_ip(a))
                .filter(|a| a.is_ipv6() == self.is_ipv6())
                .collect(),
            _ => Vec::new(),
        };
        v.sort();
        v.dedup();
        v
    }

    /// The protocol, with TCP when unset.
    pub fn protocol_or_default(&self) -> Protocol {
        self.protocol.unwrap_or(Protocol::Tcp)
    }

    /// The health check that runs, with its defaults: its type (TCP for a
    /// TCP service when unset; no check for type None, or for an unset
    /// type on any other service) and what a failure does (Remove for UDP,
    /// Inhibit otherwise, when unset).
    pub fn effective_health_check(&self) -> Option<(HealthCheckType, HealthAction)> {
        let h = self.health_check.as_ref()?;
        // A firewall-mark service has no protocol of its own.
        let protocol = self.fwmark.is_none().then(|| self.protocol_or_default());
        let type_ = match (h.r#type, protocol) {
            (Some(HealthCheckType::None), _) => return None,
            (Some(t), _) => t,
            (None, Some(Protocol::Tcp)) => HealthCheckType::Tcp,
            (None, _) => return None,
        };
        let action = h.on_failure.unwrap_or(if protocol == Some(Protocol::Udp) {
            HealthAction::Remove
        } else {
            HealthAction::Inhibit
        });
        Some((type_, action))
    }
}

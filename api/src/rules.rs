//! The CEL rules that the API server enforces at admission.
//!
//! Each rule has a message that the Rust validator reuses word for word, so a
//! manifest is refused with the same text by `kubectl apply` and by the
//! standalone agent. The fixture table in `crds/tests/` checks both.

use schemars::Schema;
use serde_json::{Value, json};

/// One `x-kubernetes-validations` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CelRule {
    pub rule: &'static str,
    pub message: &'static str,
}

macro_rules! rule {
    ($name:ident, $rule:expr, $msg:expr) => {
        pub const $name: CelRule = CelRule {
            rule: $rule,
            message: $msg,
        };
    };
}

// --- VirtualService spec -------------------------------------------------
rule!(
    VS_ADDRESS_XOR_FWMARK,
    "has(self.address) != has(self.fwmark)",
    "exactly one of spec.address or spec.fwmark must be set"
);
rule!(
    VS_PORT_WITH_ADDRESS,
    "!has(self.address) || has(self.port)",
    "spec.port is required when spec.address is set"
);
rule!(
    VS_FWMARK_NO_PORT,
    "!has(self.fwmark) || (!has(self.port) && !has(self.protocol))",
    "spec.port and spec.protocol must not be set with spec.fwmark (a firewall-mark service matches by mark only)"
);
rule!(
    VS_FAMILY_ONLY_FWMARK,
    "!has(self.family) || has(self.fwmark)",
    "spec.family is only allowed with spec.fwmark (with spec.address the family follows the address)"
);
rule!(
    VS_SH_FLAGS,
    "!has(self.schedulerFlags) || self.schedulerFlags.all(f, !f.startsWith('sh-')) || self.scheduler == 'sh'",
    "spec.schedulerFlags sh-fallback and sh-port are only allowed with scheduler sh"
);
rule!(
    VS_MH_FLAGS,
    "!has(self.schedulerFlags) || self.schedulerFlags.all(f, !f.startsWith('mh-')) || self.scheduler == 'mh'",
    "spec.schedulerFlags mh-fallback and mh-port are only allowed with scheduler mh"
);
rule!(
    VS_ONE_PACKET_UDP,
    "!has(self.schedulerFlags) || !('one-packet' in self.schedulerFlags) || has(self.fwmark) || (has(self.protocol) && self.protocol == 'UDP')",
    "spec.schedulerFlags one-packet is only allowed with protocol UDP or with spec.fwmark (it schedules UDP datagrams one by one)"
);
rule!(
    VS_PERSISTENCE_V6_PREFIX,
    "!has(self.persistence) || !has(self.persistence.prefixLength) || self.persistence.prefixLength >= 1 || !((has(self.address) && self.address.contains(':')) || (has(self.family) && self.family == 'IPv6'))",
    "spec.persistence.prefixLength must be between 1 and 128 for an IPv6 service (the kernel refuses an IPv6 netmask of 0)"
);
rule!(
    VS_PERSISTENCE_V4_PREFIX,
    "!has(self.persistence) || !has(self.persistence.prefixLength) || self.persistence.prefixLength <= 32 || (has(self.address) && self.address.contains(':')) || (has(self.family) && self.family == 'IPv6')",
    "spec.persistence.prefixLength must be between 0 and 32 for an IPv4 service"
);
rule!(
    VS_TUNNEL_ONLY_TUN,
    "!has(self.tunnel) || self.forwarding == 'TUN'",
    "spec.tunnel is only allowed with forwarding TUN"
);
rule!(
    VS_SELECTOR_OR_BACKENDS,
    "has(self.realServerSelector) || has(self.backends)",
    "spec.realServerSelector is required unless spec.backends names a Service"
);
rule!(
    VS_BACKENDS_NO_SELECTOR,
    "!has(self.backends) || !has(self.realServerSelector) || (!has(self.realServerSelector.matchLabels) && !has(self.realServerSelector.matchExpressions))",
    "spec.realServerSelector must be empty when spec.backends names a Service (the Service's endpoints are the realservers)"
);
rule!(
    VS_SOURCE_NAT_ONLY_NAT,
    "!has(self.sourceNat) || !self.sourceNat || self.forwarding == 'NAT'",
    "spec.sourceNat is only allowed with forwarding NAT (DR and TUN realservers answer the client directly)"
);

rule!(
    VS_MATCH_ONLY_FWMARK,
    "!has(self.fwmarkMatch) || has(self.fwmark)",
    "spec.fwmarkMatch is only allowed with spec.fwmark (it says which packets get the mark)"
);
rule!(
    VS_MATCH_FAMILY,
    "!has(self.fwmarkMatch) || self.fwmarkMatch.addresses.all(a, a.contains(':') == (has(self.family) && self.family == 'IPv6'))",
    "spec.fwmarkMatch.addresses must all be of the service's family (spec.family: IPv4 when unset, or IPv6)"
);
rule!(
    MATCH_ADDRESS_IS_VIP,
    "isIP(self) && !ip(self).isLoopback() && !ip(self).isUnspecified() && !ip(self).isLinkLocalUnicast() && !(ip(self).family() == 4 ? (cidr('224.0.0.0/4').containsIP(self) || cidr('0.0.0.0/8').containsIP(self) || self == '255.255.255.255') : cidr('ff00::/8').containsIP(self))",
    "each of spec.fwmarkMatch.addresses must be an IPv4 or IPv6 address a director can serve (not loopback, multicast, unspecified, link-local, 0.0.0.0/8 or 255.255.255.255; no prefix length)"
);
rule!(
    MATCH_PORT_RANGE,
    "!has(self.endPort) || self.endPort >= self.port",
    "spec.fwmarkMatch.ports[].endPort must not be below port"
);

// --- VirtualService address ---------------------------------------------
rule!(
    VIP_IS_IP,
    "isIP(self)",
    "spec.address must be an IPv4 or IPv6 address (no prefix length or zone, and not in the IPv4-mapped form ::ffff:a.b.c.d)"
);
rule!(
    VIP_NOT_LOOPBACK,
    "!isIP(self) || !ip(self).isLoopback()",
    "spec.address must not be a loopback address"
);
rule!(
    VIP_NOT_MULTICAST,
    "!isIP(self) || !(ip(self).family() == 4 ? cidr('224.0.0.0/4').containsIP(self) : cidr('ff00::/8').containsIP(self))",
    "spec.address must not be a multicast address"
);
rule!(
    VIP_NOT_UNSPECIFIED,
    "!isIP(self) || !ip(self).isUnspecified()",
    "spec.address must not be the unspecified address"
);

rule!(
    VIP_NOT_LINK_LOCAL,
    "!isIP(self) || !ip(self).isLinkLocalUnicast()",
    "spec.address must not be a link-local address (169.254.0.0/16 or fe80::/10): no director can serve it beyond its own link"
);
rule!(
    VIP_NOT_BROADCAST,
    "!isIP(self) || ip(self).family() != 4 || !(cidr('0.0.0.0/8').containsIP(self) || cidr('255.255.255.255/32').containsIP(self))",
    "spec.address must not be in 0.0.0.0/8 or the limited broadcast address 255.255.255.255: no director can serve it"
);

// --- Directors ------------------------------------------------------------
rule!(
    INTERFACE_NOT_DOTS,
    "self != '.' && self != '..'",
    "spec.directors.interface must not be \".\" or \"..\" (the kernel refuses these interface names)"
);

// --- Health check -----------------------------------------------------------
rule!(
    HEALTHCHECK_PATH_ONLY_HTTP,
    "!has(self.path) || (has(self.type) && (self.type == 'HTTP' || self.type == 'HTTPS'))",
    "spec.healthCheck.path is only allowed with type HTTP or HTTPS"
);

rule!(
    HEALTHCHECK_PATH_SLASH,
    "!has(self.path) || self.path.startsWith('/')",
    "spec.healthCheck.path must start with /"
);
rule!(
    HEALTHCHECK_HTTP_FIELDS,
    "(!has(self.host) && !has(self.expectedStatus) && !has(self.bodyContains)) || (has(self.type) && (self.type == 'HTTP' || self.type == 'HTTPS'))",
    "spec.healthCheck.host, expectedStatus and bodyContains are only allowed with type HTTP or HTTPS"
);
rule!(
    HEALTHCHECK_VERIFY_ONLY_HTTPS,
    "!has(self.verifyCertificate) || (has(self.type) && self.type == 'HTTPS')",
    "spec.healthCheck.verifyCertificate is only allowed with type HTTPS"
);
rule!(
    HEALTHCHECK_DNS_FIELDS,
    "(!has(self.dnsName) && !has(self.expectedRcode)) || (has(self.type) && self.type == 'DNS')",
    "spec.healthCheck.dnsName and expectedRcode are only allowed with type DNS"
);
rule!(
    HEALTHCHECK_TIMEOUT_BELOW_INTERVAL,
    "(has(self.timeoutSeconds) ? self.timeoutSeconds : 2) < (has(self.intervalSeconds) ? self.intervalSeconds : 5)",
    "spec.healthCheck.timeoutSeconds (default 2) must be less than spec.healthCheck.intervalSeconds (default 5)"
);
rule!(
    STATUS_RANGE_ORDER,
    "self.size() != 7 || int(self.substring(0, 3)) <= int(self.substring(4, 7))",
    "spec.healthCheck.expectedStatus: a range must go from the lower code to the higher, e.g. 200-399"
);

// --- Sorry server -----------------------------------------------------------
rule!(
    VS_SORRY_FAMILY,
    "!has(self.sorryServer) || !isIP(self.sorryServer.address) || (ip(self.sorryServer.address).family() == 6) == ((has(self.address) && self.address.contains(':')) || (has(self.family) && self.family == 'IPv6'))",
    "spec.sorryServer.address must be of the service's address family"
);
rule!(
    SORRY_ADDRESS_IS_IP,
    "isIP(self)",
    "spec.sorryServer.address must be an IPv4 or IPv6 address (no prefix length or zone, and not in the IPv4-mapped form ::ffff:a.b.c.d)"
);
rule!(
    SORRY_ADDRESS_USABLE,
    "!isIP(self) || (!ip(self).isLoopback() && !ip(self).isUnspecified() && (ip(self).family() == 4 ? !(cidr('224.0.0.0/4').containsIP(self) || cidr('0.0.0.0/8').containsIP(self) || cidr('255.255.255.255/32').containsIP(self)) : !(cidr('ff00::/8').containsIP(self) || cidr('fe80::/10').containsIP(self))))",
    "spec.sorryServer.address must be a unicast address the kernel accepts for a destination (not loopback, multicast, unspecified, 0.0.0.0/8, 255.255.255.255 or IPv6 link-local fe80::/10)"
);

// --- Tunnel ---------------------------------------------------------------
rule!(
    TUNNEL_PORT_ONLY_GUE,
    "(self.type == 'gue') == has(self.port)",
    "spec.tunnel.port is required with tunnel type gue and not allowed otherwise"
);
rule!(
    TUNNEL_CSUM_NOT_IPIP,
    "self.type != 'ipip' || !has(self.checksum)",
    "spec.tunnel.checksum is only allowed with tunnel types gue and gre"
);
rule!(
    TUNNEL_REMCSUM_ONLY_GUE,
    "self.type == 'gue' || !has(self.checksum) || !has(self.checksum.remote) || !self.checksum.remote",
    "spec.tunnel.checksum.remote is only allowed with tunnel type gue (the kernel ignores it for gre)"
);

// --- LvsNodeProfile spec -------------------------------------------------
rule!(
    NP_SETS_SOMETHING,
    "has(self.ipvsTimeouts) || has(self.directorSysctls)",
    "a profile must set spec.ipvsTimeouts or spec.directorSysctls"
);
rule!(
    NP_TIMEOUTS_NOT_EMPTY,
    "has(self.tcpSeconds) || has(self.tcpFinSeconds) || has(self.udpSeconds)",
    "spec.ipvsTimeouts must set at least one of tcpSeconds, tcpFinSeconds or udpSeconds (leave it out to keep the node's timeouts)"
);

// --- Label selectors ------------------------------------------------------
rule!(
    SELECTOR_VALUES,
    "(self.operator == 'In' || self.operator == 'NotIn') == (has(self.values) && size(self.values) > 0)",
    "values must be non-empty for operators In and NotIn, and empty for Exists and DoesNotExist"
);

// --- RealServer spec ------------------------------------------------------
rule!(
    RS_ADDRESS_XOR_NODE,
    "has(self.address) != has(self.nodeName)",
    "exactly one of spec.address or spec.nodeName must be set"
);
rule!(
    RS_THRESHOLD_ORDER,
    "!has(self.lowerThreshold) || self.lowerThreshold == 0 || (has(self.upperThreshold) && self.lowerThreshold < self.upperThreshold)",
    "spec.lowerThreshold must be less than spec.upperThreshold (a non-zero lowerThreshold needs an upperThreshold above it)"
);
rule!(
    RS_TUNNEL_ONLY_TUN,
    "!has(self.tunnel) || !has(self.forwarding) || self.forwarding == 'TUN'",
    "spec.tunnel is only allowed when the realserver forwards with TUN (spec.forwarding TUN, or unset under a TUN VirtualService)"
);
rule!(
    RS_ADDRESS_IS_IP,
    "isIP(self)",
    "spec.address must be an IPv4 or IPv6 address (no prefix length or zone, and not in the IPv4-mapped form ::ffff:a.b.c.d)"
);
rule!(
    RS_ADDRESS_USABLE,
    "!isIP(self) || (!ip(self).isLoopback() && !ip(self).isUnspecified() && (ip(self).family() == 4 ? !(cidr('224.0.0.0/4').containsIP(self) || cidr('0.0.0.0/8').containsIP(self) || cidr('255.255.255.255/32').containsIP(self)) : !(cidr('ff00::/8').containsIP(self) || cidr('fe80::/10').containsIP(self))))",
    "spec.address must be a unicast address the kernel accepts for a realserver (not loopback, multicast, unspecified, 0.0.0.0/8, 255.255.255.255 or IPv6 link-local fe80::/10)"
);

/// Appends rules to a schema's `x-kubernetes-validations`.
pub(crate) fn add(schema: &mut Schema, rules: &[CelRule]) {
    let list: Vec<Value> = rules
        .iter()
        .map(|r| json!({ "rule": r.rule, "message": r.message }))
        .collect();
    schema.insert("x-kubernetes-validations".into(), Value::Array(list));
}

pub(crate) fn vs_spec(s: &mut Schema) {
    add(
        s,
        &[
            VS_ADDRESS_XOR_FWMARK,
            VS_PORT_WITH_ADDRESS,
            VS_FWMARK_NO_PORT,
            VS_FAMILY_ONLY_FWMARK,
            VS_SH_FLAGS,
            VS_MH_FLAGS,
            VS_ONE_PACKET_UDP,
            VS_PERSISTENCE_V4_PREFIX,
            VS_PERSISTENCE_V6_PREFIX,
            VS_TUNNEL_ONLY_TUN,
            VS_SORRY_FAMILY,
            VS_SELECTOR_OR_BACKENDS,
            VS_BACKENDS_NO_SELECTOR,
            VS_SOURCE_NAT_ONLY_NAT,
            VS_MATCH_ONLY_FWMARK,
            VS_MATCH_FAMILY,
        ],
    );
}

/// Each address of a fwmark match: a VIP a director can serve.
pub(crate) fn match_addresses(s: &mut Schema) {
    let mut item = schemars::json_schema!({
        "type": "string",
        "maxLength": 45,
    });
    add(&mut item, &[MATCH_ADDRESS_IS_VIP]);
    s.insert("items".into(), item.to_value());
}

pub(crate) fn match_port(s: &mut Schema) {
    add(s, &[MATCH_PORT_RANGE]);
}

pub(crate) fn vip(s: &mut Schema) {
    add(
        s,
        &[
            VIP_IS_IP,
            VIP_NOT_LOOPBACK,
            VIP_NOT_MULTICAST,
            VIP_NOT_UNSPECIFIED,
            VIP_NOT_LINK_LOCAL,
            VIP_NOT_BROADCAST,
        ],
    );
}

pub(crate) fn tunnel(s: &mut Schema) {
    add(
        s,
        &[
            TUNNEL_PORT_ONLY_GUE,
            TUNNEL_CSUM_NOT_IPIP,
            TUNNEL_REMCSUM_ONLY_GUE,
        ],
    );
}

pub(crate) fn interface(s: &mut Schema) {
    add(s, &[INTERFACE_NOT_DOTS]);
}

pub(crate) fn health_check(s: &mut Schema) {
    add(
        s,
        &[
            HEALTHCHECK_PATH_ONLY_HTTP,
            HEALTHCHECK_PATH_SLASH,
            HEALTHCHECK_HTTP_FIELDS,
            HEALTHCHECK_VERIFY_ONLY_HTTPS,
            HEALTHCHECK_DNS_FIELDS,
            HEALTHCHECK_TIMEOUT_BELOW_INTERVAL,
        ],
    );
}

/// Each expected status: a code or an ordered range of codes.
pub(crate) fn expected_status(s: &mut Schema) {
    let mut item = schemars::json_schema!({
        "type": "string",
        "maxLength": 7,
        "pattern": crate::STATUS_RANGE_PATTERN,
    });
    add(&mut item, &[STATUS_RANGE_ORDER]);
    s.insert("items".into(), item.to_value());
}

pub(crate) fn sorry_address(s: &mut Schema) {
    add(s, &[SORRY_ADDRESS_IS_IP, SORRY_ADDRESS_USABLE]);
}

pub(crate) fn rs_spec(s: &mut Schema) {
    add(
        s,
        &[RS_ADDRESS_XOR_NODE, RS_THRESHOLD_ORDER, RS_TUNNEL_ONLY_TUN],
    );
}

pub(crate) fn rs_address(s: &mut Schema) {
    add(s, &[RS_ADDRESS_IS_IP, RS_ADDRESS_USABLE]);
}

pub(crate) fn selector_requirement(s: &mut Schema) {
    add(s, &[SELECTOR_VALUES]);
}

pub(crate) fn np_spec(s: &mut Schema) {
    add(s, &[NP_SETS_SOMETHING]);
}

pub(crate) fn np_timeouts(s: &mut Schema) {
    add(s, &[NP_TIMEOUTS_NOT_EMPTY]);
}

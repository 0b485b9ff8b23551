//! The Rust mirror of the admission rules, plus the rules that span objects.
//!
//! Messages for rules that admission also enforces are worded so that the
//! API server's message and this one share the text a user needs: the CEL
//! messages come from [`crate::rules`], range and enum messages use the API
//! server's phrasing.

use std::fmt;
use std::net::IpAddr;

use crate::enums::{
    ForwardingMethod, HealthCheckType, Protocol, Scheduler, SchedulerFlag, TunnelType,
};
use crate::nodeprofile::{LvsNodeProfileSpec, MAX_TIMEOUT_SECONDS};
use crate::realserver::RealServerSpec;
use crate::rules::{self, CelRule};
use crate::selector::LabelSelector;
use crate::virtualservice::{Tunnel, VirtualServiceSpec};

/// One broken rule: where, and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct FieldError {
    /// Dotted path, e.g. `spec.port`.
    pub path: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// All broken rules of one object, in field order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join("; "))
    }
}

#[derive(Default)]
struct Errs(Vec<FieldError>);

impl Errs {
    fn push(&mut self, path: &str, message: impl Into<String>) {
        self.0.push(FieldError {
            path: path.to_string(),
            message: message.into(),
        });
    }
    /// The rules of spec.tunnel, the same on VirtualService and RealServer.
    fn tunnel(&mut self, t: &Tunnel) {
        if (t.type_ == TunnelType::Gue) != t.port.is_some() {
            self.cel("spec.tunnel", rules::TUNNEL_PORT_ONLY_GUE);
        }
        if t.type_ == TunnelType::Ipip && t.checksum.is_some() {
            self.cel("spec.tunnel", rules::TUNNEL_CSUM_NOT_IPIP);
        }
        if t.type_ != TunnelType::Gue && t.checksum.as_ref().is_some_and(|c| c.remote) {
            self.cel("spec.tunnel", rules::TUNNEL_REMCSUM_ONLY_GUE);
        }
        self.range("spec.tunnel.port", t.port, 1, 65535);
    }
    fn cel(&mut self, path: &str, rule: CelRule) {
        self.push(path, rule.message);
    }
    fn range(&mut self, path: &str, value: Option<i64>, min: i64, max: i64) {
        match value {
            Some(v) if v < min => self.push(
                path,
                format!("Invalid value: {v}: should be greater than or equal to {min}"),
            ),
            Some(v) if v > max => self.push(
                path,
                format!("Invalid value: {v}: should be less than or equal to {max}"),
            ),
            _ => {}
        }
    }
    fn max_len(&mut self, path: &str, value: Option<&str>, max: usize) {
        if value.is_some_and(|v| v.len() > max) {
            self.push(path, format!("Too long: may not be more than {max} bytes"));
        }
    }
    fn finish(self) -> Result<(), ValidationErrors> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(self.0))
        }
    }
}

/// An expected HTTP status, `200` or `200-399`, as (low, high).
pub fn status_range(s: &str) -> Option<(u16, u16)> {
    let code = |c: &str| {
        (c.len() == 3 && matches!(c.as_bytes()[0], b'1'..=b'5'))
            .then(|| c.parse::<u16>().ok())
            .flatten()
    };
    match s.split_once('-') {
        None => code(s).map(|c| (c, c)),
        Some((lo, hi)) => Some((code(lo)?, code(hi)?)),
    }
}

/// An address the kernel takes for an IPVS destination (RS_ADDRESS_USABLE,
/// SORRY_ADDRESS_USABLE).
fn destination_usable(ip: IpAddr) -> bool {
    !(ip.is_loopback()
        || ip.is_unspecified()
        || is_multicast(ip)
        || is_v4_this_net_or_broadcast(ip)
        || (ip.is_ipv6() && is_link_local(ip)))
}

fn is_multicast(ip: IpAddr) -> bool {
    ip.is_multicast()
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => a.is_unicast_link_local(),
    }
}

/// 0.0.0.0/8 ("this network") and the limited broadcast: the kernel's
/// `inet_addr_type` calls both broadcast, and routing drops both as
/// destinations.
fn is_v4_this_net_or_broadcast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.octets()[0] == 0 || a.is_broadcast(),
        IpAddr::V6(_) => false,
    }
}

/// Interface names as the kernel's `dev_valid_name` accepts them, narrowed
/// to printable ASCII so that 15 characters are 15 bytes.
fn interface_name_ok(i: &str) -> bool {
    (1..=15).contains(&i.len())
        && i.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':')
}

/// A DNS-1123 subdomain, as Kubernetes requires of node names.
fn dns1123_subdomain(s: &str) -> bool {
    (1..=253).contains(&s.len())
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

fn check_selector(errs: &mut Errs, path: &str, sel: &LabelSelector) {
    for (i, e) in sel.match_expressions.iter().enumerate() {
        let wants_values = matches!(
            e.operator,
            crate::enums::SelectorOperator::In | crate::enums::SelectorOperator::NotIn
        );
        if wants_values == e.values.is_empty() {
            errs.cel(
                &format!("{path}.matchExpressions[{i}]"),
                rules::SELECTOR_VALUES,
            );
        }
    }
}

/// The address of a VirtualService or RealServer, parsed, if it is one the
/// API server's `isIP` accepts: not the IPv4-mapped IPv6 form.
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    match s.parse().ok()? {
        IpAddr::V6(a) if a.to_ipv4_mapped().is_some() => None,
        ip => Some(ip),
    }
}

/// A fwmark match of `spec`: only with fwmark, addresses a director can
/// serve of the service's family, ordered port ranges, the list bounds.
fn validate_match(e: &mut Errs, spec: &VirtualServiceSpec, m: &crate::FwmarkMatch) {
    if spec.fwmark.is_none() {
        e.cel("spec", rules::VS_MATCH_ONLY_FWMARK);
    }
    let path = "spec.fwmarkMatch.addresses";
    match m.addresses.len() {
        0 => e.push(path, "Required value: must have at least 1 item"),
        n if n > 16 => e.push(path, format!("Too many: {n}: must have at most 16 items")),
        _ => {}
    }
    for (i, a) in m.addresses.iter().enumerate() {
        let usable = parse_ip(a).is_some_and(|ip| {
            !(ip.is_loopback()
                || is_multicast(ip)
                || ip.is_unspecified()
                || is_link_local(ip)
                || is_v4_this_net_or_broadcast(ip))
        });
        if a.len() > 45 {
            e.push(
                &format!("{path}[{i}]"),
                "Too long: may not be more than 45 bytes",
            );
        } else if !usable {
            e.cel(&format!("{path}[{i}]"), rules::MATCH_ADDRESS_IS_VIP);
        }
    }
    let v6 = spec.family == Some(crate::Family::IPv6);
    if m.addresses.iter().any(|a| a.contains(':') != v6) {
        e.cel("spec", rules::VS_MATCH_FAMILY);
    }
    if m.ports.len() > 16 {
        e.push(
            "spec.fwmarkMatch.ports",
            format!("Too many: {}: must have at most 16 items", m.ports.len()),
        );
    }
    for (i, p) in m.ports.iter().enumerate() {
        let at = format!("spec.fwmarkMatch.ports[{i}]");
        e.range(&format!("{at}.port"), Some(p.port), 1, 65535);
        e.range(&format!("{at}.endPort"), p.end_port, 1, 65535);
        if p.end_port.is_some_and(|end| end < p.port) {
            e.cel(&at, rules::MATCH_PORT_RANGE);
        }
    }
}

impl VirtualServiceSpec {
    /// Checks every rule that admission enforces.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut e = Errs::default();
        if self.address.is_some() == self.fwmark.is_some() {
            e.cel("spec", rules::VS_ADDRESS_XOR_FWMARK);
        }
        if let Some(a) = &self.address {
            match parse_ip(a) {
                None => e.cel("spec.address", rules::VIP_IS_IP),
                Some(ip) if ip.is_loopback() => e.cel("spec.address", rules::VIP_NOT_LOOPBACK),
                Some(ip) if is_multicast(ip) => e.cel("spec.address", rules::VIP_NOT_MULTICAST),
                Some(ip) if ip.is_unspecified() => {
                    e.cel("spec.address", rules::VIP_NOT_UNSPECIFIED)
                }
                Some(ip) if is_link_local(ip) => e.cel("spec.address", rules::VIP_NOT_LINK_LOCAL),
                Some(ip) if is_v4_this_net_or_broadcast(ip) => {
                    e.cel("spec.address", rules::VIP_NOT_BROADCAST)
                }
                Some(_) => {}
            }
            if self.port.is_none() {
                e.cel("spec", rules::VS_PORT_WITH_ADDRESS);
            }
        }
        if self.real_server_selector.is_none() && self.backends.is_none() {
            e.cel("spec", rules::VS_SELECTOR_OR_BACKENDS);
        }
        if self.backends.is_some()
            && self
                .real_server_selector
                .as_ref()
                .is_some_and(|s| !s.is_empty())
        {
            e.cel("spec", rules::VS_BACKENDS_NO_SELECTOR);
        }
        if self.source_nat && self.forwarding != ForwardingMethod::Nat {
            e.cel("spec", rules::VS_SOURCE_NAT_ONLY_NAT);
        }
        if let Some(m) = &self.fwmark_match {
            validate_match(&mut e, self, m);
        }
        e.range("spec.port", self.port, 1, 65535);
        e.range("spec.fwmark", self.fwmark, 1, u32::MAX as i64);
        if self.fwmark.is_some() && (self.port.is_some() || self.protocol.is_some()) {
            e.cel("spec", rules::VS_FWMARK_NO_PORT);
        }
        if self.family.is_some() && self.fwmark.is_none() {
            e.cel("spec", rules::VS_FAMILY_ONLY_FWMARK);
        }
        if self.scheduler_flags.len() > 4 {
            e.push("spec.schedulerFlags", "Too many: must have at most 4 items");
        }
        for (rule, sched) in [
            (rules::VS_SH_FLAGS, Scheduler::Sh),
            (rules::VS_MH_FLAGS, Scheduler::Mh),
        ] {
            if self
                .scheduler_flags
                .iter()
                .any(|f| f.scheduler() == Some(sched))
                && self.scheduler != sched
            {
                e.cel("spec", rule);
            }
        }
        if self.scheduler_flags.contains(&SchedulerFlag::OnePacket)
            && self.fwmark.is_none()
            && self.protocol != Some(Protocol::Udp)
        {
            e.cel("spec", rules::VS_ONE_PACKET_UDP);
        }
        if let Some(p) = &self.persistence {
            e.range(
                "spec.persistence.timeoutSeconds",
                Some(p.timeout_seconds),
                1,
                2_678_400,
            );
            e.range("spec.persistence.prefixLength", p.prefix_length, 0, 128);
            if p.prefix_length.is_some_and(|l| (33..=128).contains(&l)) && !self.is_ipv6() {
                e.cel("spec", rules::VS_PERSISTENCE_V4_PREFIX);
            }
            if p.prefix_length == Some(0) && self.is_ipv6() {
                e.cel("spec", rules::VS_PERSISTENCE_V6_PREFIX);
            }
        }
        if let Some(t) = &self.tunnel {
            if self.forwarding != ForwardingMethod::Tun {
                e.cel("spec", rules::VS_TUNNEL_ONLY_TUN);
            }
            e.tunnel(t);
        }
        if let Some(i) = &self.directors.interface {
            if i.len() > 15 {
                e.push(
                    "spec.directors.interface",
                    "Too long: may not be more than 15 bytes",
                );
            } else if !interface_name_ok(i) {
                e.push(
                    "spec.directors.interface",
                    format!(
                        "Invalid value: {i:?}: should match '{}'",
                        crate::INTERFACE_PATTERN
                    ),
                );
            } else if i == "." || i == ".." {
                e.cel("spec.directors.interface", rules::INTERFACE_NOT_DOTS);
            }
        }
        check_selector(
            &mut e,
            "spec.directors.nodeSelector",
            &self.directors.node_selector,
        );
        if let Some(s) = &self.real_server_selector {
            check_selector(&mut e, "spec.realServerSelector", s);
        }
        if let Some(h) = &self.health_check {
            let http = matches!(
                h.r#type,
                Some(HealthCheckType::Http | HealthCheckType::Https)
            );
            if h.path.is_some() && !http {
                e.cel("spec.healthCheck", rules::HEALTHCHECK_PATH_ONLY_HTTP);
            }
            if h.path.as_deref().is_some_and(|p| !p.starts_with('/')) {
                e.cel("spec.healthCheck", rules::HEALTHCHECK_PATH_SLASH);
            }
            if (h.host.is_some() || !h.expected_status.is_empty() || h.body_contains.is_some())
                && !http
            {
                e.cel("spec.healthCheck", rules::HEALTHCHECK_HTTP_FIELDS);
            }
            if h.verify_certificate.is_some() && h.r#type != Some(HealthCheckType::Https) {
                e.cel("spec.healthCheck", rules::HEALTHCHECK_VERIFY_ONLY_HTTPS);
            }
            if (h.dns_name.is_some() || h.expected_rcode.is_some())
                && h.r#type != Some(HealthCheckType::Dns)
            {
                e.cel("spec.healthCheck", rules::HEALTHCHECK_DNS_FIELDS);
            }
            if h.timeout_seconds.unwrap_or(2) >= h.interval_seconds.unwrap_or(5) {
                e.cel(
                    "spec.healthCheck",
                    rules::HEALTHCHECK_TIMEOUT_BELOW_INTERVAL,
                );
            }
            e.range("spec.healthCheck.port", h.port, 1, 65535);
            e.range(
                "spec.healthCheck.intervalSeconds",
                h.interval_seconds,
                1,
                3600,
            );
            e.range(
                "spec.healthCheck.timeoutSeconds",
                h.timeout_seconds,
                1,
                3600,
            );
            e.range("spec.healthCheck.rise", h.rise, 1, 100);
            e.range("spec.healthCheck.fall", h.fall, 1, 100);
            e.max_len("spec.healthCheck.path", h.path.as_deref(), 1024);
            e.max_len("spec.healthCheck.host", h.host.as_deref(), 253);
            e.max_len(
                "spec.healthCheck.bodyContains",
                h.body_contains.as_deref(),
                256,
            );
            e.max_len("spec.healthCheck.dnsName", h.dns_name.as_deref(), 253);
            if h.expected_status.len() > 16 {
                e.push(
                    "spec.healthCheck.expectedStatus",
                    format!(
                        "Too many: {}: must have at most 16 items",
                        h.expected_status.len()
                    ),
                );
            }
            for (i, st) in h.expected_status.iter().enumerate() {
                let path = format!("spec.healthCheck.expectedStatus[{i}]");
                match status_range(st) {
                    None => e.push(
                        &path,
                        format!(
                            "Invalid value: {st:?}: should match '{}'",
                            crate::STATUS_RANGE_PATTERN
                        ),
                    ),
                    Some((lo, hi)) if lo > hi => e.cel(&path, rules::STATUS_RANGE_ORDER),
                    Some(_) => {}
                }
            }
        }
        if let Some(sorry) = &self.sorry_server {
            match parse_ip(&sorry.address) {
                None => e.cel("spec.sorryServer.address", rules::SORRY_ADDRESS_IS_IP),
                Some(ip) if !destination_usable(ip) => {
                    e.cel("spec.sorryServer.address", rules::SORRY_ADDRESS_USABLE)
                }
                Some(ip) => {
                    if ip.is_ipv6() != self.is_ipv6() {
                        e.cel("spec", rules::VS_SORRY_FAMILY);
                    }
                }
            }
            e.max_len("spec.sorryServer.address", Some(&sorry.address), 64);
            e.range("spec.sorryServer.port", sorry.port, 1, 65535);
        }
        e.range("spec.quorum", self.quorum, 1, 2_147_483_647);
        if let Some(d) = &self.drain {
            e.range("spec.drain.timeoutSeconds", d.timeout_seconds, 0, 86400);
        }
        e.finish()
    }

    /// The service port, if the spec is valid and address-based.
    pub fn port_u16(&self) -> Option<u16> {
        self.port.and_then(|p| u16::try_from(p).ok())
    }

    /// `address:port/PROTO` or `fwmark:N/IPv4`, as `kubectl get` shows it.
    pub fn endpoint(&self) -> String {
        match (&self.address, self.fwmark) {
            (Some(a), _) => {
                let port = self.port.unwrap_or_default();
                let proto = self.protocol.unwrap_or(Protocol::Tcp);
                if a.contains(':') {
                    format!("[{a}]:{port}/{proto}")
                } else {
                    format!("{a}:{port}/{proto}")
                }
            }
            (None, Some(m)) => {
                let fam = if self.is_ipv6() { "IPv6" } else { "IPv4" };
                format!("fwmark:{m}/{fam}")
            }
            (None, None) => String::new(),
        }
    }
}

impl RealServerSpec {
    /// Checks every rule that admission enforces.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut e = Errs::default();
        if self.address.is_some() == self.node_name.is_some() {
            e.cel("spec", rules::RS_ADDRESS_XOR_NODE);
        }
        if let Some(a) = &self.address {
            match parse_ip(a) {
                None => e.cel("spec.address", rules::RS_ADDRESS_IS_IP),
                Some(ip) if !destination_usable(ip) => {
                    e.cel("spec.address", rules::RS_ADDRESS_USABLE)
                }
                Some(_) => {}
            }
        }
        match self.node_name.as_deref() {
            Some("") => e.push(
                "spec.nodeName",
                "Invalid value: \"\": should be at least 1 chars long",
            ),
            Some(n) if !dns1123_subdomain(n) => e.push(
                "spec.nodeName",
                format!(
                    "Invalid value: {n:?}: should match '{}'",
                    crate::NODE_NAME_PATTERN
                ),
            ),
            _ => {}
        }
        e.range("spec.port", self.port, 1, 65535);
        e.range("spec.weight", Some(self.weight), 0, 65535);
        // The kernel takes u32 thresholds but refuses them above i32::MAX
        // (EINVAL on the Debian 6.1 lab kernel, "illegal u_threshold" in
        // ipvsadm).
        e.range(
            "spec.upperThreshold",
            self.upper_threshold,
            0,
            i32::MAX.into(),
        );
        e.range(
            "spec.lowerThreshold",
            self.lower_threshold,
            0,
            i32::MAX.into(),
        );
        if let Some(l) = self.lower_threshold
            && l != 0
            && self.upper_threshold.is_none_or(|u| l >= u)
        {
            e.cel("spec", rules::RS_THRESHOLD_ORDER);
        }
        if let Some(t) = &self.tunnel {
            if self.forwarding.is_some_and(|f| f != ForwardingMethod::Tun) {
                e.cel("spec", rules::RS_TUNNEL_ONLY_TUN);
            }
            e.tunnel(t);
        }
        e.finish()
    }
}

impl LvsNodeProfileSpec {
    /// Checks every rule that admission enforces.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut e = Errs::default();
        if self.ipvs_timeouts.is_none() && self.director_sysctls.is_none() {
            e.cel("spec", rules::NP_SETS_SOMETHING);
        }
        if let Some(sel) = &self.node_selector {
            check_selector(&mut e, "spec.nodeSelector", sel);
        }
        if let Some(t) = &self.ipvs_timeouts {
            if t.tcp_seconds.is_none() && t.tcp_fin_seconds.is_none() && t.udp_seconds.is_none() {
                e.cel("spec.ipvsTimeouts", rules::NP_TIMEOUTS_NOT_EMPTY);
            }
            for (path, v) in [
                ("spec.ipvsTimeouts.tcpSeconds", t.tcp_seconds),
                ("spec.ipvsTimeouts.tcpFinSeconds", t.tcp_fin_seconds),
                ("spec.ipvsTimeouts.udpSeconds", t.udp_seconds),
            ] {
                e.range(path, v, 1, MAX_TIMEOUT_SECONDS);
            }
        }
        if let Some(s) = &self.director_sysctls {
            e.range(
                "spec.directorSysctls.connReuseMode",
                s.conn_reuse_mode,
                0,
                2,
            );
        }
        e.finish()
    }
}

/// Rules between a service and one of its realservers, which admission
/// cannot see because they span two objects. The operator reports them as
/// an Invalid condition and the planner leaves the destination out.
pub fn validate_pair(
    vs: &VirtualServiceSpec,
    rs: &RealServerSpec,
    rs_ip: Option<IpAddr>,
) -> Result<(), FieldError> {
    let method = rs.forwarding.unwrap_or(vs.forwarding);
    if rs.tunnel.is_some() && method != ForwardingMethod::Tun {
        return Err(FieldError {
            path: "spec.tunnel".into(),
            message: format!(
                "a tunnel is only used with forwarding TUN, but this realserver forwards with the service's {method}; set spec.forwarding: TUN or remove spec.tunnel"
            ),
        });
    }
    if let (Some(rp), Some(vp)) = (rs.port, vs.port)
        && rp != vp
        && method != ForwardingMethod::Nat
    {
        return Err(FieldError {
            path: "spec.port".into(),
            message: format!(
                "{rp} differs from the service port {vp}, but port mapping is only possible with forwarding NAT (got {method})"
            ),
        });
    }
    if vs.fwmark.is_some() && rs.port.is_some() && method != ForwardingMethod::Nat {
        return Err(FieldError {
            path: "spec.port".into(),
            message: format!(
                "a realserver of a fwmark service keeps the packet's port with forwarding {method}; set no port, or use NAT"
            ),
        });
    }
    if let Some(ip) = rs_ip
        && ip.is_ipv6() != vs.is_ipv6()
    {
        let (want, got) = if vs.is_ipv6() {
            ("IPv6", "IPv4")
        } else {
            ("IPv4", "IPv6")
        };
        return Err(FieldError {
            path: "spec.address".into(),
            message: format!("{ip} is {got}, but the service is {want}; the families must match"),
        });
    }
    Ok(())
}

/// Flags that are valid together with their scheduler, for callers that
/// build kernel flags.
pub fn flags_for(vs: &VirtualServiceSpec) -> impl Iterator<Item = SchedulerFlag> + '_ {
    vs.scheduler_flags
        .iter()
        .copied()
        .filter(|f| f.scheduler().is_none_or(|s| s == vs.scheduler))
}

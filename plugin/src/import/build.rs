//! Drafts to objects: names, labels and directors chosen, every object
//! checked with the API's validators, what does not pass reported.

use std::collections::{BTreeMap, BTreeSet};

use lvs_api::{
    Directors, ForwardingMethod, LabelMap, LabelSelector, RealServerSpec, Tunnel,
    VirtualServiceSpec,
};
use serde::Serialize;

use super::{Draft, Note, RealServerDraft, ServiceDraft};

/// The label each imported RealServer carries, naming its VirtualService;
/// the VirtualService selects on it.
pub const SERVICE_LABEL: &str = "lvs.lvs-operator.io/imported-service";
/// The director label the examples and the chart use: the default
/// `--directors`.
pub const DEFAULT_DIRECTORS: &str = "lvs.lvs-operator.io/director=true";

/// What the input does not say.
#[derive(Debug, Clone)]
pub struct Options {
    pub namespace: String,
    /// The nodes that act as directors for every imported service.
    pub directors: LabelSelector,
    /// The interface directors hold the VIPs on (unset: the node's default).
    pub interface: Option<String>,
    /// The start of every object name.
    pub prefix: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    pub name: String,
    pub namespace: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// One object as `kubectl apply` takes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Object<S> {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: Metadata,
    pub spec: S,
}

/// A VirtualService and the RealServers it selects.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    pub service: Object<VirtualServiceSpec>,
    pub real_servers: Vec<Object<RealServerSpec>>,
}

/// The objects and every note, ordered by line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Output {
    pub services: Vec<Imported>,
    pub notes: Vec<Note>,
}

impl Output {
    /// Multi-document YAML: each VirtualService followed by its RealServers.
    pub fn to_yaml(&self) -> Result<String, serde_saphyr::ser::Error> {
        let mut out = String::new();
        for s in &self.services {
            out.push_str("---\n");
            out.push_str(&serde_saphyr::to_string(&s.service)?);
            for r in &s.real_servers {
                out.push_str("---\n");
                out.push_str(&serde_saphyr::to_string(r)?);
            }
        }
        Ok(out)
    }

    /// The number of RealServers.
    pub fn real_server_count(&self) -> usize {
        self.services.iter().map(|s| s.real_servers.len()).sum()
    }
}

/// `key=value[,key=value...]` as a selector's matchLabels.
pub fn parse_selector(s: &str) -> Result<LabelSelector, String> {
    let mut labels = BTreeMap::new();
    for pair in s.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("`{pair}` is not key=value"))?;
        if k.is_empty() {
            return Err(format!("`{pair}` has an empty key"));
        }
        labels.insert(k.to_string(), v.to_string());
    }
    Ok(LabelSelector {
        match_labels: LabelMap::from(labels),
        match_expressions: Vec::new(),
    })
}

/// Lowercase letters, digits and `-` for a name part.
fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

/// A label value: at most 63 characters; longer names are cut and end in
/// a hash of the whole, so two long names stay apart.
fn label_value(name: &str) -> String {
    if name.len() <= 63 {
        return name.to_string();
    }
    // FNV-1a, 32 bits: stable across runs and platforms.
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let head = name[..54].trim_end_matches('-');
    format!("{head}-{h:08x}")
}

fn service_name(prefix: &str, spec: &VirtualServiceSpec) -> String {
    match (&spec.address, spec.fwmark) {
        (Some(a), _) => format!(
            "{prefix}-{}-{}-{}",
            slug(spec.protocol_or_default().as_str()),
            slug(a),
            spec.port.unwrap_or_default()
        ),
        (None, Some(m)) if spec.is_ipv6() => format!("{prefix}-fwmark-{m}-v6"),
        (None, m) => format!("{prefix}-fwmark-{}", m.unwrap_or_default()),
    }
}

fn errors_text(e: &lvs_api::ValidationErrors) -> String {
    e.to_string()
}

/// Turns drafts into checked objects.
pub fn build(draft: Draft, opts: &Options) -> Output {
    let mut out = Output {
        services: Vec::new(),
        notes: draft.notes,
    };
    let mut names = BTreeSet::new();
    for s in draft.services {
        if let Some(i) = service(s, opts, &mut names, &mut out.notes) {
            out.services.push(i);
        }
    }
    out.notes.sort();
    out.notes.dedup();
    out
}

/// The method most realservers use (the first's on a tie): the service's
/// default, so that RealServers override it only where they differ.
fn majority(rss: &[RealServerDraft]) -> ForwardingMethod {
    let mut best = (0, ForwardingMethod::Nat);
    for r in rss {
        let n = rss.iter().filter(|x| x.forwarding == r.forwarding).count();
        if n > best.0 {
            best = (n, r.forwarding);
        }
    }
    best.1
}

fn effective(t: &Option<Tunnel>) -> Tunnel {
    t.clone().unwrap_or_default()
}

fn service(
    s: ServiceDraft,
    opts: &Options,
    names: &mut BTreeSet<String>,
    notes: &mut Vec<Note>,
) -> Option<Imported> {
    let mut spec = s.spec;
    let name = service_name(&opts.prefix, &spec);
    if !names.insert(name.clone()) {
        notes.push(Note::new(
            s.line,
            format!(
                "the service {} is defined again; this one is left out",
                spec.endpoint()
            ),
        ));
        return None;
    }
    spec.forwarding = majority(&s.real_servers);
    if spec.forwarding == ForwardingMethod::Tun {
        spec.tunnel = s
            .real_servers
            .iter()
            .find(|r| r.forwarding == ForwardingMethod::Tun)
            .and_then(|r| r.tunnel.clone())
            .filter(|t| *t != Tunnel::default());
    }
    // The service's health check: the first realserver's; the others'
    // must agree, or they are reported.
    if let Some(first) = s.checks.first() {
        spec.health_check = first.check.clone().map(Box::new);
        for c in &s.checks[1..] {
            if c.check != first.check {
                notes.push(Note::new(
                    c.line,
                    format!(
                        "this realserver's health check differs from the first realserver's (line {}); a service has one check, the first is used for all",
                        first.line
                    ),
                ));
            }
        }
    }
    spec.directors = Directors {
        node_selector: opts.directors.clone(),
        interface: opts.interface.clone(),
    };
    let label = label_value(&name);
    spec.real_server_selector = Some(LabelSelector {
        match_labels: [(SERVICE_LABEL.to_string(), label.clone())]
            .into_iter()
            .collect(),
        match_expressions: Vec::new(),
    });
    if let Some(sorry) = &spec.sorry_server
        && spec.fwmark.is_none()
        && sorry.port.is_some()
        && sorry.port == spec.port
    {
        spec.sorry_server = Some(Box::new(lvs_api::SorryServer {
            address: sorry.address.clone(),
            port: None,
        }));
    }
    if let Err(e) = spec.validate() {
        notes.push(Note::new(
            s.line,
            format!(
                "the service {} cannot be expressed ({}); it is left out with its realservers",
                spec.endpoint(),
                errors_text(&e)
            ),
        ));
        return None;
    }
    let vs_tunnel = effective(&spec.tunnel);
    let mut real_servers = Vec::new();
    let mut seen = BTreeSet::new();
    for r in &s.real_servers {
        let line = r.line;
        let mut rs = RealServerSpec {
            address: Some(r.address.to_string()),
            node_name: None,
            port: None,
            weight: r.weight,
            forwarding: (r.forwarding != spec.forwarding).then_some(r.forwarding),
            tunnel: None,
            state: None,
            upper_threshold: r.upper_threshold.filter(|u| *u != 0),
            lower_threshold: r.lower_threshold.filter(|l| *l != 0),
        };
        if r.weight > 65535 {
            notes.push(Note::new(
                line,
                format!(
                    "weight {} is above 65535, the most spec.weight takes; imported as 65535",
                    r.weight
                ),
            ));
            rs.weight = 65535;
        }
        for (what, v) in [
            ("upper threshold", &mut rs.upper_threshold),
            ("lower threshold", &mut rs.lower_threshold),
        ] {
            if v.is_some_and(|x| x > i64::from(i32::MAX)) {
                notes.push(Note::new(
                    line,
                    format!(
                        "{what} {} is above 2147483647, which the kernel refuses; not carried",
                        v.unwrap_or_default()
                    ),
                ));
                *v = None;
            }
        }
        if let Some(l) = rs.lower_threshold
            && rs.upper_threshold.is_none_or(|u| l >= u)
        {
            notes.push(Note::new(
                line,
                format!(
                    "lower threshold {l} needs an upper threshold above it{}; not carried (the kernel then resumes below three quarters of the upper one)",
                    rs.upper_threshold.map(|u| format!(" (got {u})")).unwrap_or_default()
                ),
            ));
            rs.lower_threshold = None;
        }
        if r.forwarding == ForwardingMethod::Tun {
            let t = effective(&r.tunnel);
            if t != vs_tunnel {
                rs.tunnel = Some(t);
            }
        }
        // The port: left out when it is the service's (or, for a fwmark
        // service, the packet's); kept where NAT maps it.
        let service_port = spec.port.and_then(|p| u16::try_from(p).ok());
        match (r.port, service_port) {
            (Some(p), Some(sp)) if p == sp => {}
            (Some(p), Some(sp)) if r.forwarding != ForwardingMethod::Nat => notes.push(Note::new(
                line,
                format!(
                    "port {p} differs from the service port {sp}, but only NAT maps ports ({} keeps the packet's port); imported without a port",
                    r.forwarding
                ),
            )),
            (Some(0) | None, _) => {}
            (Some(p), None) if r.forwarding != ForwardingMethod::Nat => notes.push(Note::new(
                line,
                format!(
                    "port {p} on a fwmark service is only used with NAT ({} keeps the packet's port); imported without a port",
                    r.forwarding
                ),
            )),
            (Some(p), _) => rs.port = Some(p.into()),
        }
        let key = (r.address, rs.port);
        if !seen.insert(key) {
            notes.push(Note::new(
                line,
                format!(
                    "realserver {} is listed twice for this service; left out",
                    r.address
                ),
            ));
            continue;
        }
        if let Some(t) = &rs.tunnel {
            let mut probe = rs.clone();
            probe.forwarding = Some(ForwardingMethod::Tun);
            probe.tunnel = Some(t.clone());
            if let Err(e) = probe.validate() {
                // Without the checksum options, or else plain ipip.
                let bare = Tunnel {
                    checksum: None,
                    ..t.clone()
                };
                probe.tunnel = Some(bare.clone());
                let fallback = if probe.validate().is_ok() {
                    bare
                } else {
                    Tunnel::default()
                };
                notes.push(Note::new(
                    line,
                    format!(
                        "the tunnel settings cannot be expressed ({}); {} is used",
                        errors_text(&e),
                        if fallback.type_ == t.type_ {
                            format!("{} without checksum options", t.type_)
                        } else {
                            "ipip".to_string()
                        }
                    ),
                ));
                rs.tunnel = (fallback != vs_tunnel).then_some(fallback);
            }
        }
        if let Err(e) = rs.validate() {
            notes.push(Note::new(
                line,
                format!(
                    "realserver {} cannot be expressed ({}); left out",
                    r.address,
                    errors_text(&e)
                ),
            ));
            continue;
        }
        if let Err(e) = lvs_api::validate_pair(&spec, &rs, Some(r.address)) {
            notes.push(Note::new(
                line,
                format!(
                    "realserver {} cannot be expressed ({e}); left out",
                    r.address
                ),
            ));
            continue;
        }
        let rs_name = match rs.port {
            Some(p) => format!("{name}-{}-{p}", slug(&r.address.to_string())),
            None => format!("{name}-{}", slug(&r.address.to_string())),
        };
        real_servers.push(Object {
            api_version: lvs_api::API_VERSION,
            kind: "RealServer",
            metadata: Metadata {
                name: rs_name,
                namespace: opts.namespace.clone(),
                labels: [(SERVICE_LABEL.to_string(), label.clone())]
                    .into_iter()
                    .collect(),
            },
            spec: rs,
        });
    }
    Some(Imported {
        service: Object {
            api_version: lvs_api::API_VERSION,
            kind: "VirtualService",
            metadata: Metadata {
                name,
                namespace: opts.namespace.clone(),
                labels: BTreeMap::new(),
            },
            spec,
        },
        real_servers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_give_distinct_label_values() {
        let a = label_value(&"a".repeat(70));
        let b = label_value(&format!("{}b", "a".repeat(69)));
        assert!(a.len() <= 63 && b.len() <= 63);
        assert_ne!(a, b);
        assert_eq!(label_value("short"), "short");
    }

    #[test]
    fn selector_flag() {
        let s = parse_selector("a=b,c=d").unwrap();
        assert_eq!(s.match_labels.get("c").map(String::as_str), Some("d"));
        assert!(parse_selector("nope").is_err());
    }
}

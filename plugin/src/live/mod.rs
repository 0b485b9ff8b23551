//! `kubectl lvs get | table | diff | top`: the directors' live IPVS state,
//! read through the API server only.
//!
//! How the plugin reads a kernel: it writes the spec of `LvsSnapshot/<node>`
//! (server-side apply, field manager `kubectl-lvs`) with a fresh random
//! `request` token, and waits, bounded by `--timeout`, until the node's agent
//! has answered that token in the status. So the plugin needs no route to
//! the nodes, no ssh and no pod proxy, and RBAC decides who may look
//! (the chart's `<release>-plugin` ClusterRole). Where the data come from:
//!
//! - `get`: VirtualServices (endpoint, scheduler, method, generation), the
//!   LvsNode reports (which nodes direct them, their HA role per VIP, the
//!   programmed generation, table hash and destination states) and one
//!   snapshot per director (per-destination weights and counters).
//! - `table NODE` and `diff [NODE]`: the snapshot of that node (with
//!   `spec.diff`: the changes its agent would make, made nowhere).
//! - `top`: a snapshot of every director, again each refresh.
//!
//! Everything here is pure (data in, text out); [`crate::cluster`] does the
//! I/O.

pub mod columns;
pub mod diff;
pub mod get;
pub mod table;
pub mod top;

use std::collections::BTreeMap;
use std::net::IpAddr;

use lvs_api::{Family, LvsNode, LvsSnapshotStatus, TrafficCounters, VirtualService};

/// A node's answer to a snapshot request, or why there is none (no answer
/// in time, the request could not be written).
pub type Answer = Result<LvsSnapshotStatus, String>;

/// How a command prints what it read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Aligned columns.
    #[default]
    Table,
    Json,
    Yaml,
}

/// `view` in the form `output` asks for; `table` makes the aligned-columns
/// form, each command's own.
pub fn format<T: serde::Serialize>(
    view: &T,
    output: Output,
    table: impl FnOnce(&T) -> String,
) -> anyhow::Result<String> {
    Ok(match output {
        Output::Table => table(view),
        Output::Json => serde_json::to_string_pretty(view)? + "\n",
        Output::Yaml => serde_saphyr::to_string(view)?,
    })
}

/// `namespace/name` of a VirtualService.
pub fn key(vs: &VirtualService) -> String {
    format!(
        "{}/{}",
        vs.metadata.namespace.as_deref().unwrap_or_default(),
        vs.metadata.name.as_deref().unwrap_or_default()
    )
}

/// The IPVS service of a VirtualService as `ipvsadm -Ln` names it (with one
/// space): "TCP 192.0.2.10:80", "UDP [2001:db8::10]:53", "FWM 7",
/// "FWM 7 IPv6" (the agent's snapshot uses the same words).
pub fn endpoint(vs: &VirtualService) -> String {
    let s = &vs.spec;
    if let Some(mark) = s.fwmark {
        return match s.family {
            Some(Family::IPv6) => format!("FWM {mark} IPv6"),
            _ => format!("FWM {mark}"),
        };
    }
    let proto = s.protocol.map_or("TCP", |p| p.as_str());
    let addr = s.address.as_deref().unwrap_or("?");
    let port = s.port.unwrap_or_default();
    // As the kernel prints it: IPv6 in canonical form.
    match addr.parse::<IpAddr>() {
        Ok(IpAddr::V6(a)) => format!("{proto} [{a}]:{port}"),
        Ok(IpAddr::V4(a)) => format!("{proto} {a}:{port}"),
        Err(_) => format!("{proto} {addr}:{port}"),
    }
}

/// The VIPs of a VirtualService: its address, or the addresses its
/// directors mark for a firewall-mark service.
pub fn vips(vs: &VirtualService) -> Vec<IpAddr> {
    let s = &vs.spec;
    let texts: Vec<&str> = match (&s.address, &s.fwmark_match) {
        (Some(a), _) => vec![a.as_str()],
        (None, Some(m)) => m.addresses.iter().map(String::as_str).collect(),
        (None, None) => Vec::new(),
    };
    texts.iter().filter_map(|a| a.parse().ok()).collect()
}

/// Whether the LvsNode report lists `key` with the director role.
pub fn directs(node: &LvsNode, key: &str) -> bool {
    node.status.as_ref().is_some_and(|st| {
        st.services
            .iter()
            .any(|r| r.name == key && r.roles.iter().any(|x| x == "director"))
    })
}

/// Per director node, the VirtualServices (namespace/name) among `keys` it
/// directs: what each snapshot asks for. More than the API allows in a
/// request's `virtualServices` (100): an empty list, the whole table.
pub fn requests<'a>(
    nodes: &[LvsNode],
    keys: impl IntoIterator<Item = &'a str> + Clone,
) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for node in nodes {
        let Some(name) = node.metadata.name.as_deref() else {
            continue;
        };
        let mut wanted: Vec<String> = keys
            .clone()
            .into_iter()
            .filter(|k| directs(node, k))
            .map(str::to_string)
            .collect();
        if wanted.is_empty() {
            continue;
        }
        if wanted.len() > 100 {
            wanted.clear();
        }
        out.insert(name.to_string(), wanted);
    }
    out
}

#[cfg(test)]
pub(crate) mod fixtures;

/// `n` in a counter column.
fn num(n: u64) -> String {
    n.to_string()
}

/// ActiveConn, InActConn, then `ipvsadm -Ln --stats --rate`'s columns.
pub(crate) fn counter_cells(c: &TrafficCounters) -> [String; 12] {
    [
        num(c.active_connections),
        num(c.inactive_connections),
        num(c.connections),
        num(c.in_packets),
        num(c.out_packets),
        num(c.in_bytes),
        num(c.out_bytes),
        num(c.cps),
        num(c.in_pps),
        num(c.out_pps),
        num(c.in_bps),
        num(c.out_bps),
    ]
}

/// ActiveConn, InActConn, then `ipvsadm -Ln --stats`'s columns (no rates).
fn stats_cells(c: &TrafficCounters) -> impl Iterator<Item = String> {
    counter_cells(c).into_iter().take(7)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fixtures::{nodes, services};

    #[test]
    fn each_director_is_asked_for_the_services_it_directs() {
        let r = requests(
            &nodes(),
            ["default/web", "prod/mark", "default/dns6", "default/none"],
        );
        assert_eq!(
            r,
            BTreeMap::from([
                (
                    "dir1".to_string(),
                    vec![
                        "default/web".to_string(),
                        "prod/mark".to_string(),
                        "default/dns6".to_string()
                    ]
                ),
                ("dir2".to_string(), vec!["default/web".to_string()]),
            ]),
            "rs1 is a realserver of dns6, no director"
        );
    }

    #[test]
    fn over_a_hundred_services_ask_for_the_whole_table() {
        let mut n = nodes().remove(0);
        let st = n.status.as_mut().unwrap();
        let keys: Vec<String> = (0..101).map(|i| format!("default/s{i}")).collect();
        st.services = keys
            .iter()
            .map(|k| lvs_api::ServiceReport {
                name: k.clone(),
                roles: vec!["director".into()],
                ..lvs_api::ServiceReport::default()
            })
            .collect();
        let r = requests(&[n], keys.iter().map(String::as_str));
        assert_eq!(r, BTreeMap::from([("dir1".to_string(), Vec::new())]));
    }

    #[test]
    fn json_and_yaml_read_back_as_the_view() {
        let view = get::build(&services(), &fixtures::nodes(), &fixtures::answers());
        let json = format(&view, Output::Json, |_| unreachable!()).unwrap();
        assert_eq!(serde_json::from_str::<get::GetView>(&json).unwrap(), view);
        let yaml = format(&view, Output::Yaml, |_| unreachable!()).unwrap();
        assert_eq!(serde_saphyr::from_str::<get::GetView>(&yaml).unwrap(), view);
        assert_eq!(format(&view, Output::Table, |_| "t".into()).unwrap(), "t");
    }

    #[test]
    fn endpoints_as_ipvsadm_names_them() {
        let e: Vec<String> = services().iter().map(endpoint).collect();
        assert_eq!(
            e,
            ["TCP 192.0.2.10:80", "FWM 7 IPv6", "UDP [2001:db8::53]:53"]
        );
        let v: Vec<Vec<IpAddr>> = services().iter().map(vips).collect();
        assert_eq!(
            v,
            [
                vec!["192.0.2.10".parse::<IpAddr>().unwrap()],
                vec!["2001:db8::7".parse().unwrap()],
                vec!["2001:db8::53".parse().unwrap()],
            ]
        );
    }
}

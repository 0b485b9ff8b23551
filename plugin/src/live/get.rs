//! `kubectl lvs get`: each VirtualService with, per director, its role,
//! programmed generation and table hash, and per destination its weight,
//! state and the kernel's counters.

use std::collections::BTreeMap;
use std::net::IpAddr;

use lvs_api::{DestinationState, LvsNode, TrafficCounters, VirtualService};
use serde::{Deserialize, Serialize};

use super::columns::Columns;
use super::{Answer, endpoint, key, num, vips};

/// What `get -o json|yaml` prints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetView {
    /// Sorted by namespace and name.
    pub virtual_services: Vec<VirtualServiceView>,
}

/// One VirtualService.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualServiceView {
    pub namespace: String,
    pub name: String,
    /// The IPVS service as `ipvsadm -Ln` names it ("TCP 192.0.2.10:80",
    /// "FWM 7").
    pub service: String,
    pub scheduler: String,
    /// NAT, DR or TUN (the default of its realservers).
    pub method: String,
    /// metadata.generation: what the directors should have programmed.
    pub generation: Option<i64>,
    /// The nodes whose LvsNode lists it with role director, by name.
    pub directors: Vec<DirectorView>,
}

/// One director of a VirtualService.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectorView {
    pub node: String,
    /// Active or Standby for the VirtualService's VIP; null when director
    /// HA is off.
    pub role: Option<String>,
    /// The generation the node has programmed (its LvsNode report).
    pub generation: Option<i64>,
    /// The hash of its programmed table (equal on two directors: the same
    /// table).
    pub table_hash: Option<String>,
    /// Why there are no destinations: no answer to the snapshot request,
    /// or the agent could not read the kernel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The kernel's destinations, sorted, then those the LvsNode reports
    /// that the kernel does not have (removed by a failed health check).
    #[serde(default)]
    pub destinations: Vec<DestinationView>,
}

/// One destination on one director.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationView {
    /// address:port ("[address]:port" for IPv6).
    pub destination: String,
    /// The kernel's weight; null when the kernel does not have it.
    pub weight: Option<i32>,
    /// Healthy unless the director's LvsNode reports another state.
    pub state: DestinationState,
    /// The kernel's counters and rates, as `ipvsadm -Ln --stats --rate
    /// --exact` shows them; null when the kernel does not have it.
    pub counters: Option<TrafficCounters>,
}

/// The view of `services` (already selected) from the LvsNode reports and
/// each director's snapshot answer (`answers`, by node).
pub fn build(
    services: &[VirtualService],
    nodes: &[LvsNode],
    answers: &BTreeMap<String, Answer>,
) -> GetView {
    let mut out: Vec<VirtualServiceView> =
        services.iter().map(|vs| one(vs, nodes, answers)).collect();
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    GetView {
        virtual_services: out,
    }
}

fn one(
    vs: &VirtualService,
    nodes: &[LvsNode],
    answers: &BTreeMap<String, Answer>,
) -> VirtualServiceView {
    let k = key(vs);
    let vips = vips(vs);
    let mut directors = Vec::new();
    for node in nodes {
        let (Some(name), Some(st)) = (node.metadata.name.as_deref(), node.status.as_ref()) else {
            continue;
        };
        let Some(report) = st
            .services
            .iter()
            .find(|r| r.name == k && r.roles.iter().any(|x| x == "director"))
        else {
            continue;
        };
        let role = vips.iter().find_map(|vip| {
            st.vips
                .iter()
                .find(|v| v.address.parse::<IpAddr>().is_ok_and(|a| a == *vip))
                .map(|v| v.role.to_string())
        });
        let states: BTreeMap<&str, DestinationState> = report
            .destinations
            .iter()
            .map(|d| (d.destination.as_str(), d.state))
            .collect();
        let mut d = DirectorView {
            node: name.to_string(),
            role,
            generation: report.generation,
            table_hash: report.table_hash.clone(),
            ..DirectorView::default()
        };
        match answers.get(name) {
            None => d.error = Some("not asked".to_string()),
            Some(Err(e)) => d.error = Some(e.clone()),
            Some(Ok(a)) if !a.error.is_empty() => {
                d.error = Some(format!("the agent could not read the kernel: {}", a.error));
            }
            Some(Ok(a)) => {
                for svc in a.services.iter().filter(|s| s.owner == k) {
                    for dest in &svc.destinations {
                        d.destinations.push(DestinationView {
                            destination: dest.destination.clone(),
                            weight: Some(dest.weight),
                            state: states
                                .get(dest.destination.as_str())
                                .copied()
                                .unwrap_or_default(),
                            counters: Some(dest.counters.clone()),
                        });
                    }
                }
                for r in &report.destinations {
                    if !d
                        .destinations
                        .iter()
                        .any(|x| x.destination == r.destination)
                    {
                        d.destinations.push(DestinationView {
                            destination: r.destination.clone(),
                            weight: None,
                            state: r.state,
                            counters: None,
                        });
                    }
                }
            }
        }
        directors.push(d);
    }
    directors.sort_by(|a, b| a.node.cmp(&b.node));
    VirtualServiceView {
        namespace: vs.metadata.namespace.clone().unwrap_or_default(),
        name: vs.metadata.name.clone().unwrap_or_default(),
        service: endpoint(vs),
        scheduler: vs.spec.scheduler.to_string(),
        method: vs.spec.forwarding.to_string(),
        generation: vs.metadata.generation,
        directors,
    }
}

/// Whether a director's rows say it did not answer (the exit status is 1
/// then).
pub fn has_errors(view: &GetView) -> bool {
    view.virtual_services
        .iter()
        .any(|v| v.directors.iter().any(|d| d.error.is_some()))
}

const HEADER: [&str; 19] = [
    "DIRECTOR",
    "ROLE",
    "GENERATION",
    "TABLEHASH",
    "DESTINATION",
    "WEIGHT",
    "STATE",
    "ACTIVECONN",
    "INACTCONN",
    "CONNS",
    "INPKTS",
    "OUTPKTS",
    "INBYTES",
    "OUTBYTES",
    "CPS",
    "INPPS",
    "OUTPPS",
    "INBPS",
    "OUTBPS",
];

/// The aligned-columns form: per VirtualService a line, then a table with
/// one row per destination per director (the director's cells on its first
/// row only).
pub fn render(view: &GetView) -> String {
    let mut out = String::new();
    if view.virtual_services.is_empty() {
        out.push_str("No VirtualServices found.\n");
        return out;
    }
    for (i, v) in view.virtual_services.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!(
            "VirtualService {}/{}: {}, scheduler {}, method {}, generation {}\n",
            v.namespace,
            v.name,
            v.service,
            v.scheduler,
            v.method,
            v.generation.map_or("-".to_string(), |g| g.to_string())
        ));
        if v.directors.is_empty() {
            out.push_str("  no director: no LvsNode lists it with role director\n");
            continue;
        }
        let mut t = Columns::new(&HEADER);
        for d in &v.directors {
            let head = vec![
                d.node.clone(),
                d.role.clone().unwrap_or_else(|| "-".to_string()),
                generation_cell(d.generation, v.generation),
                d.table_hash.clone().unwrap_or_else(|| "-".to_string()),
            ];
            if let Some(e) = &d.error {
                t.row_spill(head, e.clone());
                continue;
            }
            if d.destinations.is_empty() {
                t.row_spill(head, "no destinations in the kernel".to_string());
                continue;
            }
            for (j, dest) in d.destinations.iter().enumerate() {
                let mut cells = if j == 0 {
                    head.clone()
                } else {
                    vec![String::new(); 4]
                };
                cells.push(dest.destination.clone());
                cells.push(dest.weight.map_or("-".to_string(), |w| w.to_string()));
                cells.push(dest.state.as_str().to_string());
                match &dest.counters {
                    Some(c) => cells.extend(counter_cells(c)),
                    None => cells.extend(std::iter::repeat_n("-".to_string(), 12)),
                }
                t.row(cells);
            }
        }
        t.render(&mut out, "");
    }
    out
}

/// The programmed generation, and the wanted one when it lags behind.
fn generation_cell(programmed: Option<i64>, wanted: Option<i64>) -> String {
    match (programmed, wanted) {
        (None, _) => "-".to_string(),
        (Some(p), Some(w)) if p != w => format!("{p} (want {w})"),
        (Some(p), _) => p.to_string(),
    }
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

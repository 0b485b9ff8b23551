//! `kubectl lvs get`: each VirtualService with, per director, its role,
//! programmed generation and table hash, and per destination its weight,
//! state and the kernel's counters.

use std::collections::BTreeMap;
use std::net::IpAddr;

use lvs_api::{DestinationState, LvsNode, TrafficCounters, VirtualService};
use serde::{Deserialize, Serialize};

use super::columns::Columns;
use super::{Answer, counter_cells, endpoint, key, vips};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::fixtures::{answers, nodes, services};

    #[test]
    fn directors_destinations_and_a_director_without_an_answer() {
        let view = build(&services(), &nodes(), &answers());
        assert_eq!(
            render(&view),
            concat!(
                "VirtualService default/dns6: UDP [2001:db8::53]:53, scheduler wlc, method DR, generation 1\n",
                "DIRECTOR  ROLE     GENERATION  TABLEHASH         DESTINATION       WEIGHT  STATE    ACTIVECONN  INACTCONN  CONNS  INPKTS  OUTPKTS  INBYTES  OUTBYTES  CPS  INPPS  OUTPPS  INBPS  OUTBPS\n",
                "dir1      Standby  1           0000000000001111  [2001:db8::1]:53  5       Healthy  20          21         200    2000    1800     200000   1800000   10   60     40      6000   40000\n",
                "\n",
                "VirtualService default/web: TCP 192.0.2.10:80, scheduler rr, method NAT, generation 3\n",
                "DIRECTOR  ROLE    GENERATION  TABLEHASH         DESTINATION  WEIGHT  STATE    ACTIVECONN  INACTCONN  CONNS  INPKTS  OUTPKTS  INBYTES  OUTBYTES  CPS  INPPS  OUTPPS  INBPS  OUTBPS\n",
                "dir1      Active  3           0000000000003333  10.0.0.2:80  1       Healthy  2           3          20     200     180      20000    180000    1    6      4       600    4000\n",
                "                                                10.0.0.3:80  0       Failing  1           2          10     100     90       10000    90000     0    3      2       300    2000\n",
                "                                                10.0.0.4:80  -       Failing  -           -          -      -       -        -        -         -    -      -       -      -\n",
                "dir2      -       2 (want 3)  0000000000002222  no answer from the node agent on dir2 within 10s (LvsSnapshot/dir2 status.request is \"old\", not the new token): is the agent running on dir2, in Kubernetes mode (--kubeconfig), with RBAC to watch lvssnapshots and patch lvssnapshots/status?\n",
                "\n",
                "VirtualService prod/mark: FWM 7 IPv6, scheduler sh, method TUN, generation 1\n",
                "DIRECTOR  ROLE  GENERATION  TABLEHASH         DESTINATION        WEIGHT  STATE    ACTIVECONN  INACTCONN  CONNS  INPKTS  OUTPKTS  INBYTES  OUTBYTES  CPS  INPPS  OUTPPS  INBPS  OUTBPS\n",
                "dir1      -     1           0000000000001111  [2001:db8:1::9]:0  1       Healthy  4           5          40     400     360      40000    360000    2    12     8       1200   8000\n",
            )
        );
    }

    #[test]
    fn json_has_the_counters_per_destination_and_the_error_per_director() {
        let view = build(&services(), &nodes(), &answers());
        assert!(has_errors(&view));
        let v = serde_json::to_value(&view).unwrap();
        let web = &v["virtualServices"][1];
        assert_eq!(web["name"], "web");
        assert_eq!(web["service"], "TCP 192.0.2.10:80");
        let dir1 = &web["directors"][0];
        assert_eq!(dir1["node"], "dir1");
        assert_eq!(dir1["role"], "Active");
        assert_eq!(dir1["generation"], 3);
        assert!(dir1.get("error").is_none(), "{dir1}");
        let d = &dir1["destinations"][0];
        assert_eq!(d["destination"], "10.0.0.2:80");
        assert_eq!(d["weight"], 1);
        assert_eq!(d["state"], "Healthy");
        assert_eq!(d["counters"]["connections"], 20);
        assert_eq!(d["counters"]["inBytes"], 20000);
        assert_eq!(dir1["destinations"][2]["counters"], serde_json::Value::Null);
        let dir2 = &web["directors"][1];
        assert_eq!(dir2["role"], serde_json::Value::Null, "HA off");
        assert!(
            dir2["error"]
                .as_str()
                .unwrap()
                .starts_with("no answer from the node agent on dir2 within 10s")
        );
        assert_eq!(dir2["destinations"], serde_json::json!([]));
        // And back: the structure is what scripts read.
        let back: GetView = serde_json::from_value(v).unwrap();
        assert_eq!(back, view);
    }

    #[test]
    fn an_agent_error_and_an_empty_table_have_rows_of_their_own() {
        let mut a = answers();
        a.insert(
            "dir1".into(),
            Ok(lvs_api::LvsSnapshotStatus {
                error: "reading IPVS: EPERM".into(),
                ..lvs_api::LvsSnapshotStatus::default()
            }),
        );
        a.insert("dir2".into(), Ok(lvs_api::LvsSnapshotStatus::default()));
        let web: Vec<VirtualService> = services()
            .into_iter()
            .filter(|v| v.metadata.name.as_deref() == Some("web"))
            .collect();
        let view = build(&web, &nodes(), &a);
        assert_eq!(
            render(&view),
            concat!(
                "VirtualService default/web: TCP 192.0.2.10:80, scheduler rr, method NAT, generation 3\n",
                "DIRECTOR  ROLE    GENERATION  TABLEHASH         DESTINATION  WEIGHT  STATE  ACTIVECONN  INACTCONN  CONNS  INPKTS  OUTPKTS  INBYTES  OUTBYTES  CPS  INPPS  OUTPPS  INBPS  OUTBPS\n",
                "dir1      Active  3           0000000000003333  the agent could not read the kernel: reading IPVS: EPERM\n",
                "dir2      -       2 (want 3)  0000000000002222  no destinations in the kernel\n",
            )
        );
        assert!(has_errors(&view));
        assert_eq!(
            render(&build(&[], &nodes(), &a)),
            "No VirtualServices found.\n"
        );
    }
}

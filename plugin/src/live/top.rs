//! `kubectl lvs top`: the busiest VirtualServices and destinations over
//! every director, from one round of snapshots.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use lvs_api::TrafficCounters;
use serde::{Deserialize, Serialize};

use super::Answer;
use super::columns::Columns;
use super::num;

/// One refresh of `top`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopFrame {
    /// The newest kernel read among the answers (RFC 3339).
    pub time: String,
    /// Directors that answered.
    pub answered: usize,
    /// The busiest VirtualServices (counters summed over their directors),
    /// at most `limit`.
    pub services: Vec<TopService>,
    /// VirtualServices beyond the limit.
    pub more_services: usize,
    /// The busiest destinations (each on one director), at most `limit`.
    pub destinations: Vec<TopDestination>,
    pub more_destinations: usize,
    /// Directors without an answer, with why.
    pub failed: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopService {
    /// namespace/name.
    pub name: String,
    pub service: String,
    pub directors: usize,
    pub counters: TrafficCounters,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopDestination {
    pub destination: String,
    /// namespace/name of the VirtualService.
    pub name: String,
    pub node: String,
    pub weight: i32,
    pub counters: TrafficCounters,
}

/// Busiest first: connections per second, then active connections, then
/// packets per second in.
fn busiest(c: &TrafficCounters) -> (Reverse<u64>, Reverse<u64>, Reverse<u64>) {
    (
        Reverse(c.cps),
        Reverse(c.active_connections),
        Reverse(c.in_pps),
    )
}

/// The frame of one round of answers (by node): services owned by a
/// VirtualService in `namespace` (all namespaces when `None`); services
/// the agents do not own are left out.
pub fn build(
    answers: &BTreeMap<String, Answer>,
    namespace: Option<&str>,
    limit: usize,
) -> TopFrame {
    let mut frame = TopFrame::default();
    let mut services: BTreeMap<String, TopService> = BTreeMap::new();
    let mut dests = Vec::new();
    for (node, answer) in answers {
        let a = match answer {
            Err(e) => {
                frame.failed.insert(node.clone(), e.clone());
                continue;
            }
            Ok(a) if !a.error.is_empty() => {
                frame.failed.insert(
                    node.clone(),
                    format!("the agent could not read the kernel: {}", a.error),
                );
                continue;
            }
            Ok(a) => a,
        };
        frame.answered += 1;
        if a.time > frame.time {
            frame.time = a.time.clone();
        }
        let mut seen_here: Vec<&str> = Vec::new();
        for s in &a.services {
            let in_scope = !s.owner.is_empty()
                && namespace.is_none_or(|ns| s.owner.split_once('/').is_some_and(|(n, _)| n == ns));
            if !in_scope {
                continue;
            }
            let e = services
                .entry(s.owner.clone())
                .or_insert_with(|| TopService {
                    name: s.owner.clone(),
                    service: s.service.clone(),
                    ..TopService::default()
                });
            e.counters.add(&s.counters);
            if !seen_here.contains(&s.owner.as_str()) {
                seen_here.push(&s.owner);
                e.directors += 1;
            }
            for d in &s.destinations {
                dests.push(TopDestination {
                    destination: d.destination.clone(),
                    name: s.owner.clone(),
                    node: node.clone(),
                    weight: d.weight,
                    counters: d.counters.clone(),
                });
            }
        }
    }
    let mut services: Vec<TopService> = services.into_values().collect();
    services.sort_by(|a, b| (busiest(&a.counters), &a.name).cmp(&(busiest(&b.counters), &b.name)));
    dests.sort_by(|a, b| {
        (busiest(&a.counters), &a.name, &a.destination, &a.node).cmp(&(
            busiest(&b.counters),
            &b.name,
            &b.destination,
            &b.node,
        ))
    });
    frame.more_services = services.len().saturating_sub(limit);
    frame.more_destinations = dests.len().saturating_sub(limit);
    services.truncate(limit);
    dests.truncate(limit);
    frame.services = services;
    frame.destinations = dests;
    frame
}

/// Rate columns first (what `top` sorts by), then the totals.
fn cells(c: &TrafficCounters) -> [String; 8] {
    [
        num(c.cps),
        num(c.active_connections),
        num(c.inactive_connections),
        num(c.in_pps),
        num(c.out_pps),
        num(c.in_bps),
        num(c.out_bps),
        num(c.connections),
    ]
}

const RATES: [&str; 8] = [
    "CPS",
    "ACTIVECONN",
    "INACTCONN",
    "INPPS",
    "OUTPPS",
    "INBPS",
    "OUTBPS",
    "CONNS",
];

/// The frame as text; `heading` is the first line (interval, refresh).
pub fn render(frame: &TopFrame, heading: &str) -> String {
    let mut out = format!(
        "{heading}; {} {} answered, kernel read at {}\n",
        frame.answered,
        if frame.answered == 1 {
            "director"
        } else {
            "directors"
        },
        if frame.time.is_empty() {
            "-"
        } else {
            &frame.time
        }
    );
    for (node, e) in &frame.failed {
        out.push_str(&format!("{node}: {e}\n"));
    }
    out.push('\n');
    if frame.services.is_empty() {
        out.push_str("No VirtualService has an IPVS service on the directors that answered.\n");
        return out;
    }
    let mut t = Columns::new(
        &[
            ["VIRTUALSERVICE", "SERVICE", "DIRECTORS"].as_slice(),
            &RATES,
        ]
        .concat(),
    );
    for s in &frame.services {
        let mut row = vec![s.name.clone(), s.service.clone(), s.directors.to_string()];
        row.extend(cells(&s.counters));
        t.row(row);
    }
    t.render(&mut out, "");
    if frame.more_services > 0 {
        out.push_str(&format!("... and {} more\n", frame.more_services));
    }
    out.push('\n');
    let mut t = Columns::new(
        &[
            ["DESTINATION", "VIRTUALSERVICE", "DIRECTOR", "WEIGHT"].as_slice(),
            &RATES,
        ]
        .concat(),
    );
    for d in &frame.destinations {
        let mut row = vec![
            d.destination.clone(),
            d.name.clone(),
            d.node.clone(),
            d.weight.to_string(),
        ];
        row.extend(cells(&d.counters));
        t.row(row);
    }
    t.render(&mut out, "");
    if frame.more_destinations > 0 {
        out.push_str(&format!("... and {} more\n", frame.more_destinations));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::fixtures::answers;
    use lvs_api::LiveDestination;

    #[test]
    fn busiest_first_over_every_director() {
        let frame = build(&answers(), None, 20);
        assert_eq!(
            render(&frame, "all namespaces, every 2s, refresh 1"),
            concat!(
                "all namespaces, every 2s, refresh 1; 1 director answered, kernel read at 2026-12-06T17:00:00.123Z\n",
                "dir2: no answer from the node agent on dir2 within 10s (LvsSnapshot/dir2 status.request is \"old\", not the new token): is the agent running on dir2, in Kubernetes mode (--kubeconfig), with RBAC to watch lvssnapshots and patch lvssnapshots/status?\n",
                "\n",
                "VIRTUALSERVICE  SERVICE                DIRECTORS  CPS  ACTIVECONN  INACTCONN  INPPS  OUTPPS  INBPS  OUTBPS  CONNS\n",
                "default/dns6    UDP [2001:db8::53]:53  1          10   20          21         60     40      6000   40000   200\n",
                "prod/mark       FWM 7 IPv6             1          2    4           5          12     8       1200   8000    40\n",
                "default/web     TCP 192.0.2.10:80      1          1    3           4          9      6       900    6000    30\n",
                "\n",
                "DESTINATION        VIRTUALSERVICE  DIRECTOR  WEIGHT  CPS  ACTIVECONN  INACTCONN  INPPS  OUTPPS  INBPS  OUTBPS  CONNS\n",
                "[2001:db8::1]:53   default/dns6    dir1      5       10   20          21         60     40      6000   40000   200\n",
                "[2001:db8:1::9]:0  prod/mark       dir1      1       2    4           5          12     8       1200   8000    40\n",
                "10.0.0.2:80        default/web     dir1      1       1    2           3          6      4       600    4000    20\n",
                "10.0.0.3:80        default/web     dir1      0       0    1           2          3      2       300    2000    10\n",
            )
        );
    }

    #[test]
    fn a_namespace_and_a_limit() {
        let frame = build(&answers(), Some("default"), 1);
        assert_eq!(
            render(&frame, "namespace default, every 1s, refresh 7"),
            concat!(
                "namespace default, every 1s, refresh 7; 1 director answered, kernel read at 2026-12-06T17:00:00.123Z\n",
                "dir2: no answer from the node agent on dir2 within 10s (LvsSnapshot/dir2 status.request is \"old\", not the new token): is the agent running on dir2, in Kubernetes mode (--kubeconfig), with RBAC to watch lvssnapshots and patch lvssnapshots/status?\n",
                "\n",
                "VIRTUALSERVICE  SERVICE                DIRECTORS  CPS  ACTIVECONN  INACTCONN  INPPS  OUTPPS  INBPS  OUTBPS  CONNS\n",
                "default/dns6    UDP [2001:db8::53]:53  1          10   20          21         60     40      6000   40000   200\n",
                "... and 1 more\n",
                "\n",
                "DESTINATION       VIRTUALSERVICE  DIRECTOR  WEIGHT  CPS  ACTIVECONN  INACTCONN  INPPS  OUTPPS  INBPS  OUTBPS  CONNS\n",
                "[2001:db8::1]:53  default/dns6    dir1      5       10   20          21         60     40      6000   40000   200\n",
                "... and 2 more\n",
            )
        );
    }

    #[test]
    fn ties_go_to_active_connections_then_packets_in() {
        use crate::live::fixtures::dir1_answer;
        let mut a = dir1_answer();
        a.services.truncate(1);
        let d = &mut a.services[0].destinations;
        d[0].counters = TrafficCounters {
            cps: 5,
            active_connections: 1,
            in_pps: 9,
            ..TrafficCounters::default()
        };
        d[1].counters = TrafficCounters {
            cps: 5,
            active_connections: 2,
            in_pps: 0,
            ..TrafficCounters::default()
        };
        d.push(LiveDestination {
            destination: "10.0.0.9:80".into(),
            counters: TrafficCounters {
                cps: 5,
                active_connections: 2,
                in_pps: 1,
                ..TrafficCounters::default()
            },
            ..LiveDestination::default()
        });
        let frame = build(&BTreeMap::from([("dir1".to_string(), Ok(a))]), None, 20);
        let order: Vec<&str> = frame
            .destinations
            .iter()
            .map(|d| d.destination.as_str())
            .collect();
        assert_eq!(order, ["10.0.0.9:80", "10.0.0.3:80", "10.0.0.2:80"]);
    }
}

//! `kubectl lvs table NODE`: one node's live IPVS table, like `ipvsadm -Ln
//! --stats`, with the VirtualService that owns each service.

use lvs_api::{LiveService, LvsSnapshotStatus};
use serde::{Deserialize, Serialize};

use super::columns::Columns;
use super::stats_cells;

/// What `table -o json|yaml` prints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableView {
    pub node: String,
    /// When the agent read the kernel (RFC 3339).
    pub time: String,
    /// As the agent lists them (sorted like `ipvsadm -Ln`); `owner` empty
    /// for services the agent does not own.
    pub services: Vec<LiveService>,
    /// Destinations the agent left out of its answer (size cap).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub omitted_destinations: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The view of node `node`'s answer.
pub fn build(node: &str, answer: LvsSnapshotStatus) -> TableView {
    TableView {
        node: node.to_string(),
        time: answer.time,
        services: answer.services,
        omitted_destinations: answer.omitted_destinations,
    }
}

/// The OWNER cell of a service.
fn owner(s: &LiveService) -> &str {
    if s.owner.is_empty() {
        "foreign"
    } else {
        &s.owner
    }
}

/// The SCHEDULER cell: the scheduler, its flags, persistence.
fn scheduler(s: &LiveService) -> String {
    let mut out = s.scheduler.clone();
    if !s.flags.is_empty() {
        out.push(' ');
        out.push_str(&s.flags.join(","));
    }
    if let Some(p) = s.persistence {
        out.push_str(&format!(" persistent {p}"));
        if let Some(m) = &s.netmask {
            out.push_str(&format!(" mask {m}"));
        }
    }
    out
}

pub fn render(view: &TableView) -> String {
    let mut out = format!("Node {}, kernel read at {}\n", view.node, view.time);
    if view.services.is_empty() {
        out.push_str("No IPVS services.\n");
        return out;
    }
    let mut t = Columns::new(&[
        "SERVICE / DESTINATION",
        "OWNER",
        "SCHEDULER / METHOD",
        "WEIGHT",
        "ACTIVECONN",
        "INACTCONN",
        "CONNS",
        "INPKTS",
        "OUTPKTS",
        "INBYTES",
        "OUTBYTES",
    ]);
    for s in &view.services {
        let c = &s.counters;
        let mut row = vec![
            s.service.clone(),
            owner(s).to_string(),
            scheduler(s),
            String::new(),
        ];
        row.extend(stats_cells(c));
        t.row(row);
        for d in &s.destinations {
            let c = &d.counters;
            let method = if d.tunnel.is_empty() {
                d.method.clone()
            } else {
                format!("{} {}", d.method, d.tunnel)
            };
            let mut row = vec![
                format!("  -> {}", d.destination),
                String::new(),
                method,
                d.weight.to_string(),
            ];
            row.extend(stats_cells(c));
            t.row(row);
        }
    }
    t.render(&mut out, "");
    if view.omitted_destinations > 0 {
        out.push_str(&format!(
            "{} more destinations left out (an answer lists at most {} services and destinations)\n",
            view.omitted_destinations,
            lvs_api::snapshot::MAX_SNAPSHOT_DESTINATIONS
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::fixtures::dir1_answer;

    #[test]
    fn owners_foreign_services_ipv6_and_fwmark() {
        let view = build("dir1", dir1_answer());
        assert_eq!(
            render(&view),
            concat!(
                "Node dir1, kernel read at 2026-12-06T17:00:00.123Z\n",
                "SERVICE / DESTINATION   OWNER         SCHEDULER / METHOD                              WEIGHT  ACTIVECONN  INACTCONN  CONNS  INPKTS  OUTPKTS  INBYTES  OUTBYTES\n",
                "TCP 192.0.2.10:80       default/web   rr                                                      3           4          30     300     270      30000    270000\n",
                "  -> 10.0.0.2:80                      Masq                                            1       2           3          20     200     180      20000    180000\n",
                "  -> 10.0.0.3:80                      Masq                                            0       1           2          10     100     90       10000    90000\n",
                "TCP 192.0.2.99:80       foreign       wlc                                                     0           1          0      0       0        0        0\n",
                "UDP [2001:db8::53]:53   default/dns6  wlc                                                     20          21         200    2000    1800     200000   1800000\n",
                "  -> [2001:db8::1]:53                 Route                                           5       20          21         200    2000    1800     200000   1800000\n",
                "FWM 7 IPv6              prod/mark     sh sh-fallback,sh-port persistent 300 mask 128          4           5          40     400     360      40000    360000\n",
                "  -> [2001:db8:1::9]:0                Tunnel gre csum                                 1       4           5          40     400     360      40000    360000\n",
            )
        );
    }
}

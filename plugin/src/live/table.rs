//! `kubectl lvs table NODE`: one node's live IPVS table, like `ipvsadm -Ln
//! --stats`, with the VirtualService that owns each service.

use lvs_api::{LiveService, LvsSnapshotStatus};
use serde::{Deserialize, Serialize};

use super::columns::Columns;
use super::num;

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
        t.row(vec![
            s.service.clone(),
            owner(s).to_string(),
            scheduler(s),
            String::new(),
            num(c.active_connections),
            num(c.inactive_connections),
            num(c.connections),
            num(c.in_packets),
            num(c.out_packets),
            num(c.in_bytes),
            num(c.out_bytes),
        ]);
        for d in &s.destinations {
            let c = &d.counters;
            let method = if d.tunnel.is_empty() {
                d.method.clone()
            } else {
                format!("{} {}", d.method, d.tunnel)
            };
            t.row(vec![
                format!("  -> {}", d.destination),
                String::new(),
                method,
                d.weight.to_string(),
                num(c.active_connections),
                num(c.inactive_connections),
                num(c.connections),
                num(c.in_packets),
                num(c.out_packets),
                num(c.in_bytes),
                num(c.out_bytes),
            ]);
        }
    }
    t.render(&mut out, "");
    if view.omitted_destinations > 0 {
        out.push_str(&format!(
            "{} more destinations left out (an answer lists at most {})\n",
            view.omitted_destinations,
            lvs_api::snapshot::MAX_SNAPSHOT_DESTINATIONS
        ));
    }
    out
}

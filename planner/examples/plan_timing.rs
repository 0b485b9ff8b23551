//! Times `plan` on a large synthetic input: N services, each selecting M of a
//! pool of 1,000 realservers. `cargo run --release -p lvs-planner --example plan_timing -- 5000 10`
use std::collections::BTreeMap;
use std::time::Instant;

use lvs_api::{
    Directors, LabelSelector, Meta, NodeInfo, Object, RealServerSpec, VirtualServiceSpec,
};

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers: N M"))
        .collect();
    let (n, m) = (
        args.first().copied().unwrap_or(5000),
        args.get(1).copied().unwrap_or(10),
    );
    let label = |k: &str, v: String| BTreeMap::from([(k.to_string(), v)]);
    let rss: Vec<Object<RealServerSpec>> = (0..1000)
        .map(|i| Object {
            meta: Meta {
                namespace: "default".into(),
                name: format!("rs{i}"),
                labels: label("group", format!("g{}", i % 100)),
                ..Meta::default()
            },
            spec: RealServerSpec {
                address: Some(format!("10.1.{}.{}", i / 250, i % 250 + 1)),
                node_name: None,
                port: None,
                weight: 1,
                forwarding: None,
                tunnel: None,
                upper_threshold: None,
                lower_threshold: None,
                state: None,
            },
        })
        .collect();
    let vss: Vec<Object<VirtualServiceSpec>> = (0..n)
        .map(|i| {
            let spec: VirtualServiceSpec = serde_json::from_value(serde_json::json!({
                "address": format!("192.0.{}.{}", i / 250, i % 250 + 1), "port": 80,
                "directors": Directors { node_selector: LabelSelector::default(), interface: None },
                "realServerSelector": {"matchLabels": {"group": format!("g{}", i % 100)}},
            }))
            .unwrap();
            Object {
                meta: Meta {
                    namespace: "default".into(),
                    name: format!("vs{i}"),
                    ..Meta::default()
                },
                spec,
            }
        })
        .collect();
    let nodes = vec![NodeInfo {
        name: "dir1".into(),
        ..NodeInfo::default()
    }];
    let t = Instant::now();
    let p = lvs_planner::plan("dir1", &vss, &rss, &nodes);
    let dests: usize = p.services.iter().map(|s| s.destinations.len()).sum();
    println!(
        "{} services, {dests} destinations (M = {m} requested) planned in {:?}",
        p.services.len(),
        t.elapsed()
    );
}

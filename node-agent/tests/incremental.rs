//! The agent's incremental path: changes synced one after another through
//! scoped syncs end in the same kernel state and ledger as one full sync of
//! the final objects, and a change costs requests in proportion to the
//! change, not to the table.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::temp_dir;
use lvs_api::manifest::{ManifestSet, parse};
use lvs_ipvs::Op;
use lvs_node_agent::agent::{Agent, AgentConfig, Health};
use lvs_node_agent::dataplane::fake::{Call, FakeDataplane};
use lvs_node_agent::ledger::{JOURNAL_FILE, LEDGER_FILE, LedgerStore};
use lvs_node_agent::metrics::Metrics;
use lvs_node_agent::reconcile::Reconciler;
use lvs_node_agent::source::Snapshot;
use proptest::prelude::*;

const NODES: &str = r#"
apiVersion: v1
kind: Node
metadata: {name: dir1, labels: {director: "yes"}}
status: {addresses: [{type: InternalIP, address: 10.10.0.2}]}
---
apiVersion: v1
kind: Node
metadata: {name: rs1}
status: {addresses: [{type: InternalIP, address: 10.10.0.11}]}
"#;

fn agent(node: &str, state: &std::path::Path) -> Agent<FakeDataplane> {
    let mut fake = FakeDataplane::for_node(&["10.10.0.2".parse().unwrap()]);
    fake.record_calls = true;
    let r = Reconciler::new(fake, LedgerStore::in_dir(state).unwrap()).unwrap();
    Agent::new(
        r,
        AgentConfig {
            node_name: node.into(),
            resync_interval: Duration::from_secs(3600),
            resync_max_share: 100,
            node_ips: vec![],
            vip_roles: Default::default(),
            vip_lifetime: None,
            live_interval: None,
        },
        Arc::new(Metrics::default()),
        Arc::new(Health::new()),
    )
    .0
}

fn snapshot(yaml: &str) -> Snapshot {
    let mut set = ManifestSet::default();
    set.extend(parse(NODES).unwrap());
    set.extend(parse(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}")));
    Snapshot {
        virtual_services: set.virtual_services,
        real_servers: set.real_servers,
        nodes: set.nodes,
        node_profiles: set.node_profiles,
        origin: "test".into(),
    }
}

/// (address, port, method, app, scheduler) per VirtualService; (app,
/// address or node, weight) per RealServer. Leaving destinations are
/// removed at once (drain timeout 0), so that a history ends where a fresh
/// start on its last objects does.
type World = (Vec<(u8, u8, bool, u8, bool)>, Vec<(u8, u8, u16)>);

fn yaml(w: &World) -> String {
    let mut y = String::new();
    for (i, (addr, port, dr, app, sched)) in w.0.iter().enumerate() {
        y += &format!(
            "---\napiVersion: lvs.lvs-operator.io/v1alpha1\nkind: VirtualService\nmetadata: {{name: vs{i}, namespace: default}}\nspec:\n  address: 192.0.2.{}\n  port: {}\n  forwarding: {}\n  scheduler: {}\n  directors: {{nodeSelector: {{matchLabels: {{director: \"yes\"}}}}}}\n  realServerSelector: {{matchLabels: {{app: a{app}}}}}\n  drain: {{timeoutSeconds: 0}}\n",
            addr + 1,
            80 + u32::from(*port),
            if *dr { "DR" } else { "NAT" },
            if *sched { "rr" } else { "wlc" },
        );
    }
    for (j, (app, host, weight)) in w.1.iter().enumerate() {
        let at = if *host == 0 {
            "nodeName: rs1".to_string()
        } else {
            format!("address: 10.10.0.{}", 11 + host)
        };
        y += &format!(
            "---\napiVersion: lvs.lvs-operator.io/v1alpha1\nkind: RealServer\nmetadata: {{name: r{j}, namespace: default, labels: {{app: a{app}}}}}\nspec:\n  {at}\n  weight: {weight}\n"
        );
    }
    y
}

fn world() -> impl Strategy<Value = World> {
    (
        prop::collection::vec((0u8..3, 0u8..2, any::<bool>(), 0u8..3, any::<bool>()), 0..6),
        prop::collection::vec((0u8..3, 0u8..4, 0u16..4), 0..8),
    )
}

/// The kernel state the tests compare: IPVS, addresses, sysctls, links.
fn kernel(f: &FakeDataplane) -> String {
    format!(
        "{:?}\n{:?}\n{:?}\n{:?}",
        f.ipvs, f.addresses, f.sysctls, f.links
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn scoped_syncs_end_where_one_full_sync_ends(worlds in prop::collection::vec(world(), 1..5)) {
        for node in ["dir1", "rs1"] {
            let dir = temp_dir(&format!("incr-{node}"));
            // a: scoped syncs; c: the same history with every sync planning
            // everything and reading the kernel; b: only the last objects.
            let mut a = agent(node, &dir.join("a"));
            let mut c = agent(node, &dir.join("c"));
            for (i, w) in worlds.iter().enumerate() {
                let rep = a.sync(&snapshot(&yaml(w)), false);
                prop_assert_eq!(rep.full, i == 0, "only the first sync reads the kernel");
                c.sync(&snapshot(&yaml(w)), true);
                prop_assert_eq!(kernel(a.reconciler().dataplane()), kernel(c.reconciler().dataplane()), "after step {}", i);
                prop_assert_eq!(a.reconciler().ledger(), c.reconciler().ledger(), "after step {}", i);
            }
            let last = snapshot(&yaml(worlds.last().unwrap()));
            let mut b = agent(node, &dir.join("b"));
            b.sync(&last, false);
            let (fa, fb) = (a.reconciler().dataplane(), b.reconciler().dataplane());
            prop_assert_eq!(&fa.ipvs, &fb.ipvs);
            prop_assert_eq!(&fa.addresses, &fb.addresses);
            prop_assert_eq!(&a.reconciler().ledger().services, &b.reconciler().ledger().services);
            prop_assert_eq!(&a.reconciler().ledger().addresses, &b.reconciler().ledger().addresses);
            // The journal replays to the ledger in memory.
            // (the agent holds the directory's lock: read without it)
            prop_assert_eq!(&LedgerStore::read_unlocked(&dir.join("a")).unwrap(), a.reconciler().ledger());
            // And a full resync of the incremental agent changes nothing.
            let rep = a.sync(&last, true);
            prop_assert_eq!(rep.total_ops(), 0, "{:?}", rep);
        }
    }
}

/// A table of `n` NAT services with 10 realservers each (a shared pool of
/// 100, 10 groups), like the benchmark's.
fn table(n: usize, probe_weight: Option<u16>) -> String {
    let mut y = String::new();
    for i in 0..n {
        y += &format!(
            "---\napiVersion: lvs.lvs-operator.io/v1alpha1\nkind: VirtualService\nmetadata: {{name: svc-{i}, namespace: default}}\nspec:\n  address: 172.16.{}.{}\n  port: 80\n  scheduler: rr\n  directors: {{nodeSelector: {{matchLabels: {{director: \"yes\"}}}}}}\n  realServerSelector: {{matchLabels: {{group: \"{}\"}}}}\n",
            i / 250,
            i % 250 + 1,
            i % 10
        );
    }
    for r in 0..100 {
        y += &format!(
            "---\napiVersion: lvs.lvs-operator.io/v1alpha1\nkind: RealServer\nmetadata: {{name: rs-{r}, namespace: default, labels: {{group: \"{}\"}}}}\nspec:\n  address: 10.1.0.{}\n  port: 8080\n",
            r / 10,
            r + 1
        );
    }
    if let Some(w) = probe_weight {
        y += &format!(
            "---\napiVersion: lvs.lvs-operator.io/v1alpha1\nkind: VirtualService\nmetadata: {{name: probe, namespace: default}}\nspec:\n  address: 172.30.0.1\n  port: 80\n  directors: {{nodeSelector: {{matchLabels: {{director: \"yes\"}}}}}}\n  realServerSelector: {{matchLabels: {{app: probe}}}}\n---\napiVersion: lvs.lvs-operator.io/v1alpha1\nkind: RealServer\nmetadata: {{name: probe-rs, namespace: default, labels: {{app: probe}}}}\nspec:\n  address: 10.9.0.1\n  port: 8080\n  weight: {w}\n"
        );
    }
    y
}

#[test]
fn one_change_in_a_big_table_is_one_request_and_one_journal_line() {
    let dir = temp_dir("incr-big");
    let mut a = agent("dir1", &dir);
    let rep = a.sync(&snapshot(&table(2000, Some(1))), false);
    assert!(rep.ok(), "{:?}", rep.errors);
    assert_eq!(a.reconciler().dataplane().ipvs.len(), 2001);
    let ledger_file = std::fs::metadata(dir.join(LEDGER_FILE)).unwrap();
    assert!(!dir.join(JOURNAL_FILE).exists());

    // A weight change: one SET_DEST, no dump, one journal line, the
    // ledger file untouched.
    let mut agent = a;
    agent_calls(&mut agent);
    agent.sync(&snapshot(&table(2000, Some(7))), false);
    let calls = agent_calls(&mut agent);
    let writes: Vec<&Call> = calls.iter().filter(|c| c.is_write()).collect();
    assert!(
        matches!(writes.as_slice(), [Call::Ipvs(Op::UpdateDest { dest, .. })] if dest.config.weight == 7),
        "{writes:?}"
    );
    assert!(!calls.iter().any(Call::is_dump), "{calls:?}");
    let same = std::fs::metadata(dir.join(LEDGER_FILE)).unwrap();
    assert_eq!(
        (same.len(), same.modified().unwrap()),
        (ledger_file.len(), ledger_file.modified().unwrap())
    );
    assert!(
        !dir.join(JOURNAL_FILE).exists(),
        "a weight change owns nothing new"
    );

    // Removing the probe service: one DEL_SERVICE (its destination goes with
    // it), its VIP removed, and a journal line saying so.
    agent.sync(&snapshot(&table(2000, None)), false);
    let calls = agent_calls(&mut agent);
    let writes: Vec<&Call> = calls.iter().filter(|c| c.is_write()).collect();
    assert!(
        matches!(writes.as_slice(), [Call::Ipvs(Op::DelService(_)), Call::DelAddress(a)] if a.addr.to_string() == "172.30.0.1"),
        "{writes:?}"
    );
    let journal = std::fs::read_to_string(dir.join(JOURNAL_FILE)).unwrap();
    assert_eq!(journal.lines().count(), 1, "{journal}");
    assert!(journal.contains("\"owned\":null"), "{journal}");
    assert_eq!(
        &LedgerStore::read_unlocked(&dir).unwrap(),
        agent.reconciler().ledger()
    );
}

fn agent_calls(a: &mut Agent<FakeDataplane>) -> Vec<Call> {
    a.reconciler_mut().dataplane_mut().take_calls()
}

use super::*;
use crate::analyze::ServiceState;
use lvs_api::manifest::{ManifestSet, parse};

/// A director, 60 VirtualServices (three pairs contending for a key)
/// and 90 RealServers, some selected by several services.
fn world() -> ManifestSet {
    let mut y = String::from(
        "apiVersion: v1\nkind: Node\nmetadata: {name: dir1, labels: {director: \"true\"}}\nstatus: {addresses: [{type: InternalIP, address: 10.10.0.2}]}\n",
    );
    for i in 0..60 {
        y += &format!(
            "---\napiVersion: lvs.lvs-operator.io/v1alpha1\nkind: VirtualService\nmetadata: {{name: vs{i}, namespace: default}}\nspec:\n  address: 172.16.0.{}\n  port: 80\n  protocol: TCP\n  directors: {{nodeSelector: {{matchLabels: {{director: \"true\"}}}}}}\n  realServerSelector: {{matchLabels: {{app: a{}}}}}\n",
            if i < 6 { i / 2 } else { i },
            i % 9
        );
    }
    for r in 0..90 {
        y += &format!(
            "---\napiVersion: lvs.lvs-operator.io/v1alpha1\nkind: RealServer\nmetadata: {{name: r{r}, namespace: default, labels: {{app: a{}}}}}\nspec: {{address: 10.1.0.{}, port: 8080, weight: {}}}\n",
            r % 9,
            r + 1,
            r % 4
        );
    }
    let mut s = ManifestSet::default();
    s.extend(parse(&y).unwrap());
    s
}

#[test]
fn threads_plan_what_one_thread_plans() {
    let w = world();
    let run = |parallel_min: usize| {
        let mut inc = Incremental {
            parallel_min,
            ..Incremental::new("dir1")
        };
        let a = inc.apply(inc.diff(
            w.virtual_services.clone(),
            w.real_servers.clone(),
            w.nodes.clone(),
        ));
        (a.all, a.verdicts, a.scope, inc.plan())
    };
    let one = run(usize::MAX);
    let many = run(1);
    assert!(one.0, "the first load re-plans everything");
    assert_eq!(one.1.len(), 60);
    assert!(
        one.1
            .iter()
            .any(|(_, v)| matches!(v.as_ref().unwrap().state, ServiceState::Conflict { .. })),
        "the world has conflicts"
    );
    assert_eq!(one.3.services.len(), 57, "60 services, 3 lose a conflict");
    assert_eq!(many, one);
}

fn policy_world() -> ManifestSet {
    let y = r#"
apiVersion: v1
kind: Node
metadata: {name: dir1, labels: {director: "true", edge: "true"}}
status: {addresses: [{type: InternalIP, address: 10.10.0.2}]}
---
apiVersion: v1
kind: Node
metadata: {name: dir2, labels: {director: "true"}}
status: {addresses: [{type: InternalIP, address: 10.10.0.3}]}
---
apiVersion: v1
kind: Node
metadata: {name: rs1, labels: {role: rs}}
status: {addresses: [{type: InternalIP, address: 10.10.0.9}]}
---
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: VirtualService
metadata: {name: in-pool, namespace: a, creationTimestamp: "2026-01-01T00:00:01Z"}
spec:
  address: 192.0.2.1
  port: 80
  forwarding: DR
  directors: {nodeSelector: {matchLabels: {director: "true"}}}
  realServerSelector: {matchLabels: {app: web}}
---
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: VirtualService
metadata: {name: squatter, namespace: b, creationTimestamp: "2026-01-01T00:00:02Z"}
spec:
  address: 192.0.2.1
  port: 80
  directors: {nodeSelector: {matchLabels: {director: "true"}}}
  realServerSelector: {matchLabels: {app: web}}
---
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: VirtualService
metadata: {name: node-address, namespace: a}
spec:
  address: 10.10.0.3
  port: 80
  directors: {nodeSelector: {matchLabels: {director: "true"}}}
  realServerSelector: {matchLabels: {app: web}}
---
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: VirtualService
metadata: {name: everywhere, namespace: a}
spec:
  address: 192.0.2.2
  port: 80
  directors: {nodeSelector: {}}
  realServerSelector: {matchLabels: {app: web}}
---
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: RealServer
metadata: {name: by-node, namespace: a, labels: {app: web}}
spec: {nodeName: rs1, weight: 1}
---
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: RealServer
metadata: {name: by-address, namespace: a, labels: {app: web}}
spec: {address: 10.1.0.1, weight: 1}
"#;
    let mut s = ManifestSet::default();
    s.extend(parse(y).unwrap());
    s
}

fn edge_policy(rs_nodes: bool) -> AddressPolicy {
    use crate::pools::Pool;
    let sel = |k: &str, v: &str| lvs_api::LabelSelector {
        match_labels: [(k.to_string(), v.to_string())].into_iter().collect(),
        ..Default::default()
    };
    let mut p = AddressPolicy::new(vec![Pool {
        name: "edge".into(),
        cidrs: crate::pools::parse_addresses(&["192.0.2.0/28".into(), "10.10.0.0/24".into()])
            .unwrap(),
        namespace_selector: None,
        director_selector: Some(sel("edge", "true")),
        real_server_node_selector: rs_nodes.then(|| sel("role", "rs")),
        shared: false,
        allow_all_directors: false,
        auto_assign: true,
    }]);
    p.deny("10.10.0.3".parse().unwrap(), "the address of node dir2");
    p.set_owner("192.0.2.1".parse().unwrap(), "a");
    p
}

#[test]
fn pools_refuse_narrow_and_restrict_realserver_nodes() {
    let w = policy_world();
    let mut inc = Incremental::new("dir1");
    let first = inc.apply(inc.diff(
        w.virtual_services.clone(),
        w.real_servers.clone(),
        w.nodes.clone(),
    ));
    assert!(
        first
            .verdicts
            .iter()
            .all(|(_, v)| v.as_ref().unwrap().state != ServiceState::Accepted
                || v.as_ref().unwrap().name != "b/squatter"),
        "without pools, plain conflict resolution"
    );
    let applied = inc.set_policy(Some(edge_policy(false)));
    assert!(!applied.all, "only what the policy judges differently");
    assert_eq!(applied.verdicts.len(), 4, "every service here changes");
    let v = |name: &str| {
        applied
            .verdicts
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.clone())
            .unwrap()
    };
    let ok = v("a/in-pool");
    assert_eq!(ok.state, ServiceState::Accepted);
    assert_eq!(
        ok.directors,
        vec!["dir1"],
        "narrowed to the pool's directors"
    );
    let by_node = ok
        .real_servers
        .iter()
        .find(|r| &*r.name == "a/by-node")
        .unwrap();
    assert!(
        by_node
            .problem
            .as_deref()
            .is_some_and(|p| p.contains("not a realserver node of LvsAddressPool edge")),
        "{by_node:?}"
    );
    assert_eq!(ok.destinations.len(), 1);
    let not_allowed = |name: &str, reason: &str, text: &str| match v(name).state {
        ServiceState::NotAllowed { reason: r, message } => {
            assert_eq!(r, reason, "{name}");
            assert!(message.contains(text), "{name}: {message}");
        }
        s => panic!("{name}: {s:?}"),
    };
    not_allowed("b/squatter", "AddressHeld", "held by namespace a");
    not_allowed("a/node-address", "AddressDenied", "node dir2");
    not_allowed(
        "a/everywhere",
        "DirectorSelectorRequired",
        "LvsAddressPool edge",
    );

    // The realserver node allowed by the pool: a destination again.
    let applied = inc.set_policy(Some(edge_policy(true)));
    let ok = applied
        .verdicts
        .iter()
        .find(|(n, _)| n == "a/in-pool")
        .and_then(|(_, v)| v.clone())
        .unwrap();
    assert_eq!(ok.destinations.len(), 2);
    // The same verdicts as analysing from scratch.
    let scratch = crate::analyze_with(
        &w.virtual_services,
        &w.real_servers,
        &w.nodes,
        Some(&edge_policy(true)),
    );
    for (name, v) in &applied.verdicts {
        assert_eq!(Some(v.as_ref().unwrap()), scratch.get(name), "{name}");
    }
    assert!(
        inc.set_policy(Some(edge_policy(true))).is_empty(),
        "unchanged"
    );
}

#[test]
fn a_node_label_change_switches_the_profile_and_every_plan_carries_it() {
    let y = "apiVersion: v1\nkind: Node\nmetadata: {name: dir1, labels: {zone: a}}\n---\napiVersion: lvs.lvs-operator.io/v1alpha1\nkind: LvsNodeProfile\nmetadata: {name: zone-b}\nspec: {nodeSelector: {matchLabels: {zone: b}}, ipvsTimeouts: {udpSeconds: 7}}\n";
    let mut s = ManifestSet::default();
    s.extend(parse(y).unwrap());
    let mut inc = Incremental::new("dir1");
    let mut c = inc.diff(vec![], vec![], s.nodes.clone());
    c.node_profiles = inc.diff_profiles(s.node_profiles.clone());
    let a = inc.apply(c);
    assert!(!a.profile_changed, "zone a: no profile selects dir1");
    assert!(inc.profile().is_none());
    assert!(inc.plan().sysctls.is_empty());

    let mut node = s.nodes[0].clone();
    node.labels.insert("zone".into(), "b".into());
    let a = inc.apply(inc.diff(vec![], vec![], vec![node]));
    assert!(a.profile_changed);
    let want = vec![crate::Sysctl::new("ipvs/timeout/udp", "7")];
    assert_eq!(inc.plan().sysctls, want);
    assert_eq!(
        inc.partial_plan([].iter(), &PlanScope::default()).sysctls,
        want
    );

    // The profile goes: unchanged diff of an unchanged set is empty.
    assert!(inc.diff_profiles(s.node_profiles.clone()).is_empty());
    let c = Changes {
        node_profiles: inc.diff_profiles(vec![]),
        ..Changes::default()
    };
    assert_eq!(c.node_profiles, vec![Change::Delete("/zone-b".into())]);
    let a = inc.apply(c);
    assert!(a.profile_changed);
    assert!(inc.plan().sysctls.is_empty());
}

#[test]
fn duplicates_in_a_snapshot_leave_the_later_one_first_load_or_not() {
    let w = world();
    let mut older = w.virtual_services[7].clone();
    older.spec.port = Some(81);
    let later = w.virtual_services[7].clone();
    let name = later.meta.key();
    let port_of = |inc: &Incremental| inc.virtual_services()[&name].spec.port;
    let snapshot =
        |vss: Vec<Object<VirtualServiceSpec>>| (vss, w.real_servers.clone(), w.nodes.clone());

    // The first load: nothing held, every object goes in as it comes.
    let mut inc = Incremental::new("dir1");
    let (v, r, n) = snapshot(vec![older.clone(), later.clone()]);
    inc.apply(inc.diff(v, r, n));
    assert_eq!(port_of(&inc), Some(80));
    let once = inc.plan();

    // A later snapshot with both again: unchanged.
    let (v, r, n) = snapshot(vec![older.clone(), later.clone()]);
    let again = inc.diff(v, r, n);
    assert!(again.is_empty(), "{again:?}");
    // The other order: the older one now comes last and wins.
    let (v, r, n) = snapshot(vec![later, older]);
    inc.apply(inc.diff(v, r, n));
    assert_eq!(port_of(&inc), Some(81));
    assert_ne!(inc.plan(), once);
}

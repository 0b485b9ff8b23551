use super::*;
use lvs_api::ForwardingMethod;
use lvs_planner::ServiceState;
use serde_json::json;

fn pool(name: &str, spec: serde_json::Value) -> Arc<LvsAddressPool> {
    Arc::new(
        serde_json::from_value(json!({
            "apiVersion": "lvs.lvs-operator.io/v1alpha1", "kind": "LvsAddressPool",
            "metadata": {"name": name, "generation": 1},
            "spec": spec,
        }))
        .unwrap(),
    )
}

fn vs(ns: &str, name: &str, addr: &str, created: &str) -> Object<VirtualServiceSpec> {
    let spec: VirtualServiceSpec = serde_json::from_value(json!({
        "address": addr, "port": 80,
        "directors": {"nodeSelector": {"matchLabels": {"role": "director"}}},
        "realServerSelector": {"matchLabels": {"app": "web"}},
    }))
    .unwrap();
    assert_eq!(spec.forwarding, ForwardingMethod::Nat);
    Object {
        meta: lvs_api::Meta {
            namespace: ns.into(),
            name: name.into(),
            creation_timestamp: Some(created.into()),
            ..Default::default()
        },
        spec,
    }
}

#[test]
fn node_and_api_server_addresses_are_denied() {
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": "n1"},
        "status": {"addresses": [
            {"type": "InternalIP", "address": "10.0.0.1"},
            {"type": "ExternalIP", "address": "203.0.113.7"},
            {"type": "Hostname", "address": "n1"},
        ]},
    }))
    .unwrap();
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "kubernetes", "namespace": "default"},
        "spec": {"clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"]},
    }))
    .unwrap();
    let eps: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "kubernetes", "namespace": "default"},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.0.0.100"]}],
    }))
    .unwrap();
    let d = denied_addresses(&[Arc::new(node)], &[Arc::new(svc)], &[Arc::new(eps)]);
    let got: Vec<(String, &str)> = d.iter().map(|(a, w)| (a.to_string(), w.as_str())).collect();
    assert_eq!(
        got,
        vec![
            ("10.0.0.1".into(), "an address of node n1"),
            (
                "10.0.0.100".into(),
                "an API server address (kubernetes Service endpoint)"
            ),
            (
                "10.96.0.1".into(),
                "the ClusterIP of the kubernetes Service"
            ),
            ("203.0.113.7".into(), "an address of node n1"),
        ]
    );
}

#[test]
fn decision_and_status() {
    let pools = [
        pool("lab", json!({"addresses": ["192.0.2.0/28"]})),
        pool(
            "overlap",
            json!({"addresses": ["192.0.2.8-192.0.2.9"], "shared": true}),
        ),
        pool("broken", json!({"addresses": ["192.0.2.1/24"]})),
    ];
    let ns: Namespace = serde_json::from_value(json!({
        "metadata": {"name": "a", "labels": {"team": "a"}},
    }))
    .unwrap();
    let vss = [
        vs("a", "web", "192.0.2.1", "2026-01-01T00:00:01Z"),
        vs("b", "squat", "192.0.2.1", "2026-01-01T00:00:02Z"),
        vs("b", "denied", "10.0.0.1", "2026-01-01T00:00:02Z"),
    ];
    let denied = BTreeMap::from([("10.0.0.1".parse().unwrap(), "an address of node n1".into())]);
    let d = decide(&pools, &[Arc::new(ns)], denied, &vss, "T");
    assert_eq!(d.owners.len(), 1);
    assert_eq!(d.owners[0].namespace, "a");
    assert!(
        d.invalid["broken"].contains("host bits set"),
        "{:?}",
        d.invalid
    );
    assert_eq!(
        d.policy
            .namespace_labels("a")
            .unwrap()
            .get("team")
            .map(String::as_str),
        Some("a")
    );

    let analysis = lvs_planner::analyze_with(&vss, &[], &[], Some(&d.policy));
    let state = |n: &str| analysis.get(n).unwrap().state.clone();
    assert_eq!(state("a/web"), ServiceState::Accepted);
    assert!(
        matches!(state("b/squat"), ServiceState::NotAllowed { reason, .. } if reason == "AddressHeld")
    );
    assert!(
        matches!(state("b/denied"), ServiceState::NotAllowed { reason, .. } if reason == "AddressDenied")
    );

    let s = pool_status(&pools[0], &d, &analysis, "T");
    assert_eq!(s.cidrs, vec!["192.0.2.0/28"]);
    assert_eq!(s.in_use, 1);
    let cond = |s: &LvsAddressPoolStatus, t: &str| {
        s.conditions.iter().find(|c| c.type_ == t).cloned().unwrap()
    };
    assert_eq!(cond(&s, "Ready").status, "True");
    assert_eq!(cond(&s, "Overlaps").status, "True");
    assert!(
        cond(&s, "Overlaps")
            .message
            .contains("LvsAddressPool overlap")
    );
    let index = s.index.clone().unwrap();
    assert_eq!(index.pools.len(), 2, "the broken pool is left out");
    assert_eq!(index.denied_addresses, vec!["10.0.0.1"]);
    assert_eq!(index.owners, d.owners);
    // Every pool carries the same index.
    assert_eq!(pool_status(&pools[1], &d, &analysis, "T").index, s.index);
    let broken = pool_status(&pools[2], &d, &analysis, "T");
    assert_eq!(cond(&broken, "Ready").status, "False");
    assert_eq!(cond(&broken, "Ready").reason, "InvalidAddresses");
    assert!(broken.cidrs.is_empty());
}

#[test]
fn no_pool_no_vip() {
    let vss = [vs("a", "web", "192.0.2.1", "2026-01-01T00:00:01Z")];
    let d = decide(&[], &[], BTreeMap::new(), &vss, "T");
    let analysis = lvs_planner::analyze_with(&vss, &[], &[], Some(&d.policy));
    match &analysis.get("a/web").unwrap().state {
        ServiceState::NotAllowed { reason, message } => {
            assert_eq!(reason, "OutsidePools");
            assert!(message.contains("no pools exist"), "{message}");
        }
        s => panic!("{s:?}"),
    }
}

//! Which objects to reconcile when a related object changes.
//!
//! A VirtualService's status depends on the RealServers it selects, on the
//! Nodes that direct it or act as its realservers, on those nodes' LvsNode
//! reports, and on every other VirtualService with the same address (the
//! oldest wins). A RealServer's status depends on the VirtualServices that
//! select it and on the Node it names. The functions here turn a change of
//! one object into the set of objects whose status may change; they are pure
//! so that the rules can be tested without a cluster.
//!
//! Watch events carry only the new object, so the mappers remember what they
//! saw last (labels, selector, address) in a [`LastSeen`] to also reach the
//! objects the old version related to.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use lvs_api::status::types;
use lvs_api::{LabelSelector, LvsNode, RealServer, VirtualService};
use lvs_planner::{ServiceKey, service_key};

type Labels = BTreeMap<String, String>;

/// What a mapper saw last of each object, keyed by `namespace/name`.
#[derive(Debug)]
pub struct LastSeen<V> {
    seen: Mutex<HashMap<String, V>>,
}

impl<V: Clone> Default for LastSeen<V> {
    fn default() -> Self {
        LastSeen {
            seen: Mutex::new(HashMap::new()),
        }
    }
}

impl<V: Clone> LastSeen<V> {
    /// Records `new` (or forgets the key when `None`) and returns what was there.
    pub fn swap(&self, key: &str, new: Option<V>) -> Option<V> {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match new {
            Some(v) => seen.insert(key.to_string(), v),
            None => seen.remove(key),
        }
    }
}

fn key_of<K: kube::Resource>(o: &K) -> String {
    format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any())
}

fn has_true(conds: &[lvs_api::Condition], type_: &str) -> bool {
    conds.iter().any(|c| c.type_ == type_ && c.status == "True")
}

fn vs_ref(vs: &VirtualService) -> ObjectRef<VirtualService> {
    ObjectRef::from_obj(vs)
}

fn rs_ref(rs: &RealServer) -> ObjectRef<RealServer> {
    ObjectRef::from_obj(rs)
}

/// VirtualServices to reconcile when a RealServer changes: those in its
/// namespace whose selector matches any of `label_sets` (old and new labels),
/// plus those named in its `status.selectedBy`.
pub fn vss_for_realserver(
    vss: &[Arc<VirtualService>],
    namespace: &str,
    label_sets: &[&Labels],
    selected_by: &[String],
) -> Vec<ObjectRef<VirtualService>> {
    let mut out: BTreeSet<String> = BTreeSet::new();
    let mut refs = Vec::new();
    for vs in vss {
        if vs.namespace().as_deref() != Some(namespace) {
            continue;
        }
        let key = key_of(vs.as_ref());
        let matches = label_sets.iter().any(|l| vs.spec.selector().matches(l));
        if (matches || selected_by.contains(&key)) && out.insert(key) {
            refs.push(vs_ref(vs));
        }
    }
    refs
}

/// VirtualServices to reconcile when a Node or its LvsNode changes: those
/// whose director selector matches the node's labels (old or new), those
/// whose status lists the node as director or programmed node, those that
/// select a RealServer with `nodeName` set to it, and those its LvsNode reports.
pub fn vss_for_node(
    vss: &[Arc<VirtualService>],
    rss: &[Arc<RealServer>],
    node: &str,
    label_sets: &[&Labels],
    reported: &[String],
) -> Vec<ObjectRef<VirtualService>> {
    let rs_on_node: Vec<&Arc<RealServer>> = rss
        .iter()
        .filter(|r| r.spec.node_name.as_deref() == Some(node))
        .collect();
    // A director's LvsNode reports every service it programs.
    let reported: HashSet<&str> = reported.iter().map(String::as_str).collect();
    let mut refs = Vec::new();
    for vs in vss {
        let key = key_of(vs.as_ref());
        let directs = label_sets
            .iter()
            .any(|l| vs.spec.directors.node_selector.matches(l));
        let listed = vs
            .status
            .as_ref()
            .is_some_and(|s| s.nodes.contains_key(node) || s.directors.iter().any(|d| d == node));
        let selects = rs_on_node
            .iter()
            .any(|r| r.namespace() == vs.namespace() && vs.spec.selector().matches(r.labels()));
        if directs || listed || selects || reported.contains(key.as_str()) {
            refs.push(vs_ref(vs));
        }
    }
    refs
}

/// The VirtualServices an LvsNode reports (`status.services[].name`).
pub fn reported_services(lvsnode: &LvsNode) -> Vec<String> {
    lvsnode
        .status
        .as_ref()
        .map(|s| s.services.iter().map(|r| r.name.clone()).collect())
        .unwrap_or_default()
}

/// What of a director's LvsNode the RealServers' health depends on: the
/// services it reports destination counts for, and its destination entries
/// by the RealServer (namespace/name) they are about (each entry's
/// `destination` prefixed with the VirtualService it was reported under, so
/// that an entry moving between services counts as a change).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthSeen {
    pub counted: BTreeSet<String>,
    pub entries: BTreeMap<String, Vec<lvs_api::DestinationReport>>,
}

impl HealthSeen {
    pub fn of(lvsnode: &LvsNode) -> Self {
        let mut out = HealthSeen::default();
        for s in lvsnode.status.iter().flat_map(|s| &s.services) {
            if s.total.is_some() {
                out.counted.insert(s.name.clone());
            }
            for d in s.destinations.iter().filter(|d| !d.real_server.is_empty()) {
                let mut e = d.clone();
                e.destination = format!("{} {}", s.name, d.destination);
                out.entries
                    .entry(d.real_server.clone())
                    .or_default()
                    .push(e);
            }
        }
        out
    }
}

/// RealServers to reconcile when a director's report changed: those whose
/// entries differ between `old` and `new`, and those selected (as their
/// status says) by a service that gained or lost its counts (a first report
/// makes their health known).
pub fn rss_with_changed_health(
    rss: &[Arc<RealServer>],
    old: &HealthSeen,
    new: &HealthSeen,
) -> Vec<ObjectRef<RealServer>> {
    let changed: HashSet<&str> = old
        .entries
        .keys()
        .chain(new.entries.keys())
        .filter(|k| old.entries.get(*k) != new.entries.get(*k))
        .map(String::as_str)
        .collect();
    let services: HashSet<&String> = old.counted.symmetric_difference(&new.counted).collect();
    if changed.is_empty() && services.is_empty() {
        return Vec::new();
    }
    rss.iter()
        .filter(|r| {
            let key = format!("{}/{}", r.namespace().unwrap_or_default(), r.name_any());
            changed.contains(key.as_str())
                || r.status
                    .as_ref()
                    .is_some_and(|s| s.selected_by.iter().any(|v| services.contains(v)))
        })
        .map(|r| ObjectRef::from_obj(r.as_ref()))
        .collect()
}

/// What of a VirtualService other VirtualServices' verdicts read: its
/// identity, labels, generation (bumped on every spec change) and service
/// key. Status writes leave it alone.
#[derive(Debug, Clone, PartialEq, Eq)]
struct VsSeen {
    uid: Option<String>,
    generation: Option<i64>,
    labels: Labels,
    key: Option<ServiceKey>,
}

/// The VirtualServices by service key, and those losing a conflict, kept
/// from the watch events: what a change of one VirtualService reaches
/// costs a lookup, not a pass over every object (a burst of N new objects
/// would otherwise cost N passes over N).
#[derive(Debug, Default)]
pub struct VsIndex {
    inner: Mutex<VsIndexInner>,
}

#[derive(Debug, Default)]
struct VsIndexInner {
    seen: HashMap<String, VsSeen>,
    by_key: HashMap<ServiceKey, BTreeSet<String>>,
    losing: BTreeSet<String>,
}

impl VsIndexInner {
    fn unindex(&mut self, name: &str, key: Option<ServiceKey>) {
        if let Some(k) = key
            && let Some(set) = self.by_key.get_mut(&k)
        {
            set.remove(name);
            if set.is_empty() {
                self.by_key.remove(&k);
            }
        }
    }
}

fn vs_ref_of(key: &str) -> ObjectRef<VirtualService> {
    match key.split_once('/') {
        Some((ns, name)) => ObjectRef::new(name).within(ns),
        None => ObjectRef::new(key),
    }
}

impl VsIndex {
    /// Records `vs` (`present`: in the store; otherwise deleted) and returns
    /// the VirtualServices its change reaches: those with its old or new
    /// service key (a conflict may start or end) and every one currently
    /// losing a conflict (the winner may be gone), itself left out. Nothing
    /// when only its status or metadata the verdicts do not read moved.
    pub fn update(&self, vs: &VirtualService, present: bool) -> Vec<ObjectRef<VirtualService>> {
        let name = key_of(vs);
        let now = VsSeen {
            uid: vs.metadata.uid.clone(),
            generation: vs.metadata.generation,
            labels: vs.labels().clone(),
            key: service_key(&vs.spec),
        };
        let mut ix = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let loses = present
            && vs
                .status
                .as_ref()
                .is_some_and(|s| has_true(&s.conditions, types::CONFLICT));
        if loses {
            ix.losing.insert(name.clone());
        } else {
            ix.losing.remove(&name);
        }
        let old = if present {
            ix.seen.insert(name.clone(), now.clone())
        } else {
            ix.seen.remove(&name)
        };
        if present && old.as_ref() == Some(&now) {
            return Vec::new();
        }
        let old_key = old.and_then(|o| o.key);
        ix.unindex(&name, old_key);
        if present && let Some(k) = now.key {
            ix.by_key.entry(k).or_default().insert(name.clone());
        }
        let mut out: BTreeSet<&String> = BTreeSet::new();
        for k in now.key.iter().chain(old_key.iter()) {
            out.extend(ix.by_key.get(k).into_iter().flatten());
        }
        out.extend(ix.losing.iter());
        out.into_iter()
            .filter(|n| **n != name)
            .map(|n| vs_ref_of(n))
            .collect()
    }
}

/// RealServers to reconcile when a VirtualService changes: those in its
/// namespace matched by any of `selectors` (old and new), and those whose
/// `status.selectedBy` names it.
pub fn rss_for_virtualservice(
    rss: &[Arc<RealServer>],
    namespace: &str,
    vs_key: &str,
    selectors: &[&LabelSelector],
) -> Vec<ObjectRef<RealServer>> {
    rss.iter()
        .filter(|r| r.namespace().as_deref() == Some(namespace))
        .filter(|r| {
            selectors.iter().any(|s| s.matches(r.labels()))
                || r.status
                    .as_ref()
                    .is_some_and(|s| s.selected_by.iter().any(|v| v == vs_key))
        })
        .map(|r| rs_ref(r))
        .collect()
}

/// RealServers to reconcile when a Node changes: those that name it.
pub fn rss_for_node(rss: &[Arc<RealServer>], node: &str) -> Vec<ObjectRef<RealServer>> {
    rss.iter()
        .filter(|r| r.spec.node_name.as_deref() == Some(node))
        .map(|r| rs_ref(r))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;
    use lvs_api::{
        Condition, Directors, LabelSelector, RealServerSpec, RealServerStatus, VirtualServiceStatus,
    };

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn selector(pairs: &[(&str, &str)]) -> LabelSelector {
        LabelSelector {
            match_labels: labels(pairs).into(),
            match_expressions: vec![],
        }
    }

    fn meta(ns: &str, name: &str, l: Labels) -> ObjectMeta {
        ObjectMeta {
            namespace: Some(ns.into()),
            name: Some(name.into()),
            labels: Some(l),
            ..Default::default()
        }
    }

    fn vs(ns: &str, name: &str, address: &str, rs_sel: &[(&str, &str)]) -> Arc<VirtualService> {
        let spec: lvs_api::VirtualServiceSpec = serde_json::from_value(serde_json::json!({
            "address": address, "port": 80,
            "directors": {"nodeSelector": {"matchLabels": {"role": "director"}}},
            "realServerSelector": {},
        }))
        .unwrap();
        let mut v = VirtualService::new(name, spec);
        v.metadata = meta(ns, name, Labels::new());
        v.spec.real_server_selector = Some(selector(rs_sel));
        Arc::new(v)
    }

    fn rs(ns: &str, name: &str, l: &[(&str, &str)], node: Option<&str>) -> Arc<RealServer> {
        let spec = RealServerSpec {
            address: node.is_none().then(|| "10.0.0.1".to_string()),
            node_name: node.map(String::from),
            port: None,
            weight: 1,
            forwarding: None,
            tunnel: None,
            upper_threshold: None,
            lower_threshold: None,
            state: None,
        };
        let mut r = RealServer::new(name, spec);
        r.metadata = meta(ns, name, labels(l));
        Arc::new(r)
    }

    fn names<K: kube::Resource>(refs: &[ObjectRef<K>]) -> Vec<String>
    where
        K::DynamicType: Default,
    {
        let mut v: Vec<String> = refs
            .iter()
            .map(|r| format!("{}/{}", r.namespace.clone().unwrap_or_default(), r.name))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn realserver_change_reaches_old_and_new_selectors_in_its_namespace_only() {
        let vss = vec![
            vs("a", "blue", "192.0.2.1", &[("app", "blue")]),
            vs("a", "green", "192.0.2.2", &[("app", "green")]),
            vs("b", "blue", "192.0.2.3", &[("app", "blue")]),
            vs("a", "other", "192.0.2.4", &[("app", "other")]),
        ];
        let old = labels(&[("app", "blue")]);
        let new = labels(&[("app", "green")]);
        let got = vss_for_realserver(&vss, "a", &[&old, &new], &[]);
        assert_eq!(names(&got), ["a/blue", "a/green"]);
        let only_new = vss_for_realserver(&vss, "a", &[&new], &[]);
        assert_eq!(names(&only_new), ["a/green"]);
        let via_status = vss_for_realserver(&vss, "a", &[&new], &["a/other".into()]);
        assert_eq!(names(&via_status), ["a/green", "a/other"]);
    }

    #[test]
    fn empty_selector_selects_every_realserver_of_the_namespace() {
        let vss = vec![vs("a", "all", "192.0.2.1", &[])];
        assert_eq!(
            names(&vss_for_realserver(
                &vss,
                "a",
                &[&labels(&[("x", "y")])],
                &[]
            )),
            ["a/all"]
        );
        assert!(vss_for_realserver(&vss, "b", &[&labels(&[])], &[]).is_empty());
    }

    #[test]
    fn node_change_reaches_directed_listed_and_realserver_services() {
        let mut listed = (*vs("a", "listed", "192.0.2.9", &[("app", "none")])).clone();
        listed.spec.directors = Directors {
            node_selector: selector(&[("role", "nobody")]),
            interface: None,
        };
        listed.status = Some(VirtualServiceStatus {
            nodes: [("n1".to_string(), "Programmed".to_string())].into(),
            ..Default::default()
        });
        let mut rs_user = (*vs("a", "rs-user", "192.0.2.8", &[("app", "dr")])).clone();
        rs_user.spec.directors.node_selector = selector(&[("role", "nobody")]);
        let mut unrelated = (*vs("a", "unrelated", "192.0.2.7", &[("app", "x")])).clone();
        unrelated.spec.directors.node_selector = selector(&[("role", "nobody")]);
        let vss = vec![
            vs("a", "directed", "192.0.2.1", &[("app", "web")]),
            Arc::new(listed),
            Arc::new(rs_user),
            Arc::new(unrelated),
        ];
        let rss = vec![
            rs("a", "on-n1", &[("app", "dr")], Some("n1")),
            rs("a", "elsewhere", &[("app", "x")], Some("n2")),
        ];
        let director = labels(&[("role", "director")]);
        let got = vss_for_node(&vss, &rss, "n1", &[&director], &[]);
        assert_eq!(names(&got), ["a/directed", "a/listed", "a/rs-user"]);
        // Without the director label only the status and the realserver link remain.
        let plain = labels(&[]);
        let got = vss_for_node(&vss, &rss, "n1", &[&plain], &[]);
        assert_eq!(names(&got), ["a/listed", "a/rs-user"]);
        // An LvsNode report names a service directly.
        let got = vss_for_node(&vss, &rss, "n3", &[], &["a/unrelated".into()]);
        assert_eq!(names(&got), ["a/unrelated"]);
    }

    #[test]
    fn virtualservice_change_reaches_same_address_and_losers() {
        let mut loser = (*vs("b", "loser", "192.0.2.50", &[])).clone();
        loser.status = Some(VirtualServiceStatus {
            conditions: vec![Condition {
                type_: types::CONFLICT.into(),
                status: "True".into(),
                reason: "Conflict".into(),
                message: String::new(),
                last_transition_time: "t".into(),
                observed_generation: None,
            }],
            ..Default::default()
        });
        let ix = VsIndex::default();
        let winner = vs("a", "winner", "192.0.2.1", &[]);
        for v in [
            winner.clone(),
            vs("b", "same-v6", "2001:db8::1", &[]),
            vs("a", "unrelated", "192.0.2.2", &[]),
            Arc::new(loser),
        ] {
            ix.update(&v, true);
        }
        // New, on the v6 address (spelled otherwise).
        let changed = vs("c", "new", "2001:DB8:0::1", &[]);
        assert_eq!(names(&ix.update(&changed, true)), ["b/loser", "b/same-v6"]);
        // Moved from the v6 address to the winner's: both are reached.
        let mut moved = (*changed).clone();
        moved.spec.address = Some("192.0.2.1".into());
        moved.metadata.generation = Some(2);
        assert_eq!(
            names(&ix.update(&moved, true)),
            ["a/winner", "b/loser", "b/same-v6"]
        );
        // The changed object itself is not re-queued by the mapper.
        let mut w = (*winner).clone();
        w.metadata.generation = Some(2);
        assert_eq!(names(&ix.update(&w, true)), ["b/loser", "c/new"]);
        // Deleted: those with its address still.
        assert_eq!(names(&ix.update(&w, false)), ["b/loser", "c/new"]);
    }

    #[test]
    fn virtualservice_status_write_reaches_nothing() {
        let ix = VsIndex::default();
        let a = vs("a", "x", "192.0.2.1", &[]);
        let b = vs("a", "y", "192.0.2.1", &[]);
        ix.update(&a, true);
        assert_eq!(names(&ix.update(&b, true)), ["a/x"]);
        // A status write: same generation, labels and address.
        let mut written = (*b).clone();
        written.status = Some(VirtualServiceStatus::default());
        assert!(ix.update(&written, true).is_empty());
        // A label change does reach the others.
        let mut relabelled = written.clone();
        relabelled
            .metadata
            .labels
            .get_or_insert_default()
            .insert("k".into(), "v".into());
        assert_eq!(names(&ix.update(&relabelled, true)), ["a/x"]);
    }

    #[test]
    fn index_matches_a_pass_over_every_object() {
        // The index against the definition: same key (old or new) or losing,
        // itself left out, over a set of objects changed one by one.
        let addrs = ["192.0.2.1", "192.0.2.2", "2001:db8::1", "192.0.2.1"];
        let mut objs: Vec<VirtualService> = (0..12)
            .map(|i| (*vs("n", &format!("v{i}"), addrs[i % addrs.len()], &[])).clone())
            .collect();
        let ix = VsIndex::default();
        for o in &objs {
            ix.update(o, true);
        }
        for step in 0..24usize {
            let i = (step * 7) % objs.len();
            let old_key = service_key(&objs[i].spec);
            objs[i].spec.address = Some(addrs[(step * 3) % addrs.len()].into());
            objs[i].metadata.generation = Some(step as i64 + 2);
            let new_key = service_key(&objs[i].spec);
            let me = format!("n/v{i}");
            let mut want: Vec<String> = objs
                .iter()
                .map(|o| (format!("n/{}", o.name_any()), service_key(&o.spec)))
                .filter(|(n, k)| *n != me && (*k == old_key || *k == new_key))
                .map(|(n, _)| n)
                .collect();
            want.sort();
            assert_eq!(names(&ix.update(&objs[i], true)), want, "step {step}");
        }
    }

    #[test]
    fn service_key_normalises_addresses_and_defaults_the_protocol() {
        let a = vs("a", "x", "2001:db8::1", &[]);
        let b = vs("a", "y", "2001:0db8:0:0::1", &[]);
        assert_eq!(service_key(&a.spec), service_key(&b.spec));
        let mut udp = (*a).clone();
        udp.spec.protocol = Some(lvs_api::Protocol::Udp);
        assert_ne!(service_key(&udp.spec), service_key(&a.spec));
        let mut bad = (*a).clone();
        bad.spec.address = Some("not-an-ip".into());
        assert_eq!(service_key(&bad.spec), None);
    }

    #[test]
    fn virtualservice_change_reaches_old_and_new_realservers() {
        let mut via_status = (*rs("a", "via-status", &[("app", "gone")], None)).clone();
        via_status.status = Some(RealServerStatus {
            selected_by: vec!["a/web".into()],
            ..Default::default()
        });
        let rss = vec![
            rs("a", "old", &[("app", "old")], None),
            rs("a", "new", &[("app", "new")], None),
            rs("b", "new", &[("app", "new")], None),
            rs("a", "none", &[("app", "none")], Some("n1")),
            Arc::new(via_status),
        ];
        let (old, new) = (selector(&[("app", "old")]), selector(&[("app", "new")]));
        let got = rss_for_virtualservice(&rss, "a", "a/web", &[&old, &new]);
        assert_eq!(names(&got), ["a/new", "a/old", "a/via-status"]);
        assert_eq!(names(&rss_for_node(&rss, "n1")), ["a/none"]);
    }

    #[test]
    fn memory_returns_the_previous_value_and_forgets() {
        let m: LastSeen<u32> = LastSeen::default();
        assert_eq!(m.swap("a/x", Some(1)), None);
        assert_eq!(m.swap("a/x", Some(2)), Some(1));
        assert_eq!(m.swap("a/x", None), Some(2));
        assert_eq!(m.swap("a/x", Some(3)), None);
    }

    #[test]
    fn a_director_report_reaches_the_realservers_whose_entries_changed() {
        let report = |entries: &[(&str, &str, lvs_api::DestinationState)]| {
            let mut ln = LvsNode::new(
                "d1",
                lvs_api::LvsNodeSpec {
                    node_name: "d1".into(),
                },
            );
            ln.status = Some(lvs_api::LvsNodeStatus {
                services: vec![lvs_api::ServiceReport {
                    name: "a/web".into(),
                    destinations: entries
                        .iter()
                        .map(|(d, rs, st)| lvs_api::DestinationReport {
                            destination: d.to_string(),
                            real_server: rs.to_string(),
                            state: *st,
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            });
            HealthSeen::of(&ln)
        };
        use lvs_api::DestinationState::{Draining, Failing, Sorry};
        let rss = vec![rs("a", "one", &[], None), rs("a", "two", &[], None)];
        let before = report(&[
            ("10.0.0.1:80", "a/one", Failing),
            ("10.0.0.9:80", "", Sorry),
        ]);
        let after = report(&[
            ("10.0.0.1:80", "a/one", Failing),
            ("10.0.0.2:80", "a/two", Draining),
        ]);
        assert_eq!(
            names(&rss_with_changed_health(&rss, &before, &after)),
            ["a/two"]
        );
        assert_eq!(
            names(&rss_with_changed_health(
                &rss,
                &after,
                &HealthSeen::default()
            )),
            ["a/one", "a/two"]
        );
        assert!(rss_with_changed_health(&rss, &after, &after).is_empty());
        // Sorry server entries name no RealServer.
        assert!(!before.entries.contains_key(""));
        // A first report with counts reaches the RealServers the service
        // selects, though none has an entry.
        let mut selected = (*rs("a", "three", &[], None)).clone();
        selected.status = Some(RealServerStatus {
            selected_by: vec!["a/web".into()],
            ..Default::default()
        });
        let rss = vec![rs("a", "one", &[], None), Arc::new(selected)];
        let mut counted = HealthSeen::default();
        counted.counted.insert("a/web".into());
        assert_eq!(
            names(&rss_with_changed_health(
                &rss,
                &HealthSeen::default(),
                &counted
            )),
            ["a/three"]
        );
    }
}

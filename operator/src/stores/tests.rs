use super::*;

fn node(labels: &[(&str, &str)], rv: &str) -> Node {
    let mut n = Node::default();
    n.metadata.name = Some("n1".into());
    n.metadata.resource_version = Some(rv.into());
    n.metadata.labels = Some(
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    n
}

#[test]
fn only_what_the_analysis_reads_counts_as_a_change() {
    let (store, mut writer) = reflector::store::<Node>();
    let first = watcher::Event::Apply(node(&[("role", "director")], "1"));
    assert!(changes_derived(&store, &first), "a new object");
    writer.apply_watcher_event(&first);
    let heartbeat = watcher::Event::Apply(node(&[("role", "director")], "2"));
    assert!(!changes_derived(&store, &heartbeat));
    let relabelled = watcher::Event::Apply(node(&[("role", "spare")], "3"));
    assert!(changes_derived(&store, &relabelled));
    assert!(changes_derived(
        &store,
        &watcher::Event::Delete(node(&[], "4"))
    ));
    // A relist counts once, when the store takes it whole.
    assert!(!changes_derived(&store, &watcher::Event::Init));
    assert!(!changes_derived(
        &store,
        &watcher::Event::InitApply(node(&[("role", "spare")], "5"))
    ));
    assert!(changes_derived(&store, &watcher::Event::InitDone));
}

fn dynamic(name: &str, extra: Option<(&str, serde_json::Value)>) -> DynamicObject {
    let mut spec = serde_json::json!({
        "address": "203.0.113.10", "port": 80,
        "directors": {"nodeSelector": {}},
        "realServerSelector": {},
    });
    if let Some((k, v)) = extra {
        spec[k] = v;
    }
    serde_json::from_value(serde_json::json!({
        "apiVersion": "lvs.lvs-operator.io/v1alpha1", "kind": "VirtualService",
        "metadata": {"name": name, "namespace": "default", "uid": format!("u-{name}")},
        "spec": spec,
    }))
    .unwrap()
}

/// Feeds `ev` through the reader into the store, as the watch task does.
fn feed(
    st: &mut ReadState<VirtualService>,
    w: &mut reflector::store::Writer<VirtualService>,
    ev: watcher::Event<DynamicObject>,
) -> Option<&'static str> {
    let out = read_event(ev, st)?;
    w.apply_watcher_event(&out);
    Some(match out {
        watcher::Event::Apply(_) => "apply",
        watcher::Event::Delete(_) => "delete",
        watcher::Event::Init => "init",
        watcher::Event::InitApply(_) => "init-apply",
        watcher::Event::InitDone => "init-done",
    })
}

#[test]
fn an_unreadable_object_is_left_out_alone() {
    let gauge = Family::<KindLabel, Gauge>::default();
    let unreadable = Unreadable::new(gauge.clone());
    let (store, mut w) = reflector::store::<VirtualService>();
    let mut st = ReadState::new("VirtualService", unreadable.clone(), store.clone());
    let count = || {
        gauge
            .get_or_create(&KindLabel {
                kind: "VirtualService",
            })
            .get()
    };
    let newer = || Some(("futureField", serde_json::json!(true)));
    let names = || {
        let mut v: Vec<String> = store.state().iter().map(|o| o.name_any()).collect();
        v.sort();
        v
    };
    use watcher::Event::*;
    assert_eq!(feed(&mut st, &mut w, Init), Some("init"));
    assert_eq!(
        feed(&mut st, &mut w, InitApply(dynamic("odd", newer()))),
        None
    );
    assert_eq!(
        feed(&mut st, &mut w, InitApply(dynamic("web", None))),
        Some("init-apply")
    );
    assert_eq!(feed(&mut st, &mut w, InitDone), Some("init-done"));
    assert_eq!(names(), ["web"]);
    assert_eq!(unreadable.list().len(), 1);
    assert!(
        unreadable.list()[0]
            .starts_with("VirtualService default/odd: spec.futureField: unknown field")
    );
    assert_eq!(count(), 1);
    // A readable object turning unreadable counts as deleted; an
    // unreadable one never read before is not in the store to delete.
    assert_eq!(
        feed(&mut st, &mut w, Apply(dynamic("web", newer()))),
        Some("delete")
    );
    assert_eq!(feed(&mut st, &mut w, Apply(dynamic("odd", newer()))), None);
    assert!(names().is_empty());
    assert_eq!(count(), 2);
    // Fixed, it is read again.
    assert_eq!(
        feed(&mut st, &mut w, Apply(dynamic("web", None))),
        Some("apply")
    );
    assert_eq!(names(), ["web"]);
    assert_eq!(count(), 1);
    // Deleted while unreadable: nothing to remove, no longer counted.
    assert_eq!(feed(&mut st, &mut w, Delete(dynamic("odd", newer()))), None);
    assert_eq!(count(), 0);
    assert!(unreadable.list().is_empty());
    // A relist that finds it again counts it again, once.
    feed(&mut st, &mut w, Init);
    feed(&mut st, &mut w, InitApply(dynamic("odd", newer())));
    feed(&mut st, &mut w, InitApply(dynamic("web", None)));
    feed(&mut st, &mut w, InitDone);
    assert_eq!(names(), ["web"]);
    assert_eq!(count(), 1);
}

#[test]
fn counters_are_separate() {
    let c = ChangeCounters::default();
    c.bump(Input::Planner);
    c.bump(Input::Planner);
    c.bump(Input::Reports);
    c.bump(Input::Neither);
    assert_eq!((c.planner(), c.reports()), (2, 1));
}

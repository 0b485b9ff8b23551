use super::*;
use crate::source::Event;
use lvs_api::Meta;
use std::sync::mpsc;

fn node(name: &str, ip: &str) -> WatchEvent<NodeInfo> {
    WatchEvent::InitApply(
        name.into(),
        NodeInfo {
            name: name.into(),
            internal_ips: vec![ip.parse().unwrap()],
            ..NodeInfo::default()
        },
    )
}

fn rs(name: &str) -> WatchEvent<Object<lvs_api::RealServerSpec>> {
    let mut m = lvs_api::manifest::ManifestSet::default();
    m.extend(lvs_api::manifest::parse(&format!(
        "apiVersion: lvs.lvs-operator.io/v1alpha1\nkind: RealServer\nmetadata: {{name: {name}, namespace: default}}\nspec: {{address: 10.1.0.1}}\n"
    ))
    .unwrap());
    let o = m.real_servers[0].clone();
    WatchEvent::Apply(o.meta.key(), o)
}

fn ok(u: Update) -> WatchItem {
    let kind = match &u {
        Update::VirtualService(_) => Kind::VirtualService,
        Update::RealServer(_) => Kind::RealServer,
        Update::Node(_) => Kind::Node,
        Update::AddressPool(_) => Kind::AddressPool,
        Update::Namespace(_) => Kind::Namespace,
        Update::NodeProfile(_) => Kind::NodeProfile,
    };
    (kind, Ok(u))
}

fn full_lists() -> Vec<WatchItem> {
    vec![
        ok(Update::VirtualService(WatchEvent::Init)),
        ok(Update::VirtualService(WatchEvent::InitDone)),
        ok(Update::RealServer(WatchEvent::Init)),
        ok(Update::RealServer(WatchEvent::InitDone)),
        ok(Update::Node(WatchEvent::Init)),
        ok(Update::Node(node("n1", "10.0.0.1"))),
        ok(Update::Node(WatchEvent::InitDone)),
    ]
}

type Folded = (
    std::collections::BTreeMap<String, Object<lvs_api::VirtualServiceSpec>>,
    std::collections::BTreeMap<String, Object<lvs_api::RealServerSpec>>,
    std::collections::BTreeMap<String, NodeInfo>,
);

thread_local! {
    /// What each receiver's changes added up to so far.
    static FOLDED: std::cell::RefCell<std::collections::HashMap<usize, Folded>> =
        Default::default();
}

/// The states the agent loop would see: each batch of changes applied
/// to the previous state (of the same receiver).
fn received(rx: &mpsc::Receiver<Event>) -> Vec<crate::source::Snapshot> {
    use std::collections::BTreeMap;
    fn fold<T: Clone>(
        state: &mut BTreeMap<String, T>,
        changes: Vec<lvs_planner::Change<T>>,
        key: impl Fn(&T) -> String,
    ) -> Vec<T> {
        for c in changes {
            match c {
                lvs_planner::Change::Upsert(o) => {
                    state.insert(key(&o), o);
                }
                lvs_planner::Change::Delete(k) => {
                    state.remove(&k);
                }
            }
        }
        state.values().cloned().collect()
    }
    let id = rx as *const _ as usize;
    FOLDED.with(|f| {
        let mut f = f.borrow_mut();
        let (vss, rss, nodes) = f.entry(id).or_default();
        rx.try_iter()
            .map(|e| match e {
                Event::Changes(c, origin) => crate::source::Snapshot {
                    virtual_services: fold(
                        vss,
                        c.virtual_services
                            .into_iter()
                            .map(|c| c.map(std::sync::Arc::unwrap_or_clone))
                            .collect(),
                        |o| o.meta.key(),
                    ),
                    real_servers: fold(rss, c.real_servers, |o| o.meta.key()),
                    nodes: fold(nodes, c.nodes, |n| n.name.clone()),
                    node_profiles: Vec::new(),
                    origin,
                },
                other => panic!("{other:?}"),
            })
            .collect()
    })
}

/// Items arrive through a channel, so the test decides when.
fn feed() -> (
    futures::channel::mpsc::UnboundedSender<WatchItem>,
    futures::channel::mpsc::UnboundedReceiver<WatchItem>,
) {
    futures::channel::mpsc::unbounded()
}

/// A source with word from the loop: the watch feed, what it sends,
/// the loop's "sync done" signal, and the task to run.
#[allow(clippy::type_complexity)]
fn fed_source(
    metrics: &Metrics,
) -> (
    futures::channel::mpsc::UnboundedSender<WatchItem>,
    mpsc::Receiver<Event>,
    tokio::sync::watch::Sender<u32>,
    impl std::future::Future<Output = ()> + '_,
) {
    let (tx, items) = feed();
    let (stx, srx) = mpsc::channel();
    let (status_tx, status_rx) = tokio::sync::watch::channel(0u32);
    let task = async move {
        run_watches_fed(
            items,
            DEBOUNCE,
            metrics,
            SnapshotSink::new(stx),
            Some(status_rx),
        )
        .await;
    };
    (tx, srx, status_tx, task)
}

/// Lets the source run (1 ms of paused time: far below the debounce,
/// so whatever it sent by then went out "at once").
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

fn dynamic(name: &str, extra: Option<(&str, serde_json::Value)>) -> DynamicObject {
    let mut spec = serde_json::json!({
        "address": "192.0.2.1", "port": 80,
        "directors": {"nodeSelector": {}},
        "realServerSelector": {"matchLabels": {"app": "web"}},
    });
    if let Some((k, v)) = extra {
        spec[k] = v;
    }
    serde_json::from_value(serde_json::json!({
        "apiVersion": "lvs.lvs-operator.io/v1alpha1", "kind": "VirtualService",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": spec,
    }))
    .unwrap()
}

#[test]
fn an_unreadable_object_is_skipped_and_reported_alone() {
    let unreadable = Unreadable::default();
    let mut st = ReadState {
        kind: Kind::VirtualService,
        unreadable: unreadable.clone(),
        relist: None,
    };
    let view = |o: &VirtualService| Object::from(o);
    let mut read = |ev| read_change::<VirtualService, _>(ev, view, &mut st);
    let newer = || dynamic("newer", Some(("futureField", serde_json::json!(1))));
    // A list: the odd object is left out, the others are read.
    assert_eq!(read(watcher::Event::Init), Some(WatchEvent::Init));
    assert_eq!(read(watcher::Event::InitApply(newer())), None);
    assert!(matches!(
        read(watcher::Event::InitApply(dynamic("web", None))),
        Some(WatchEvent::InitApply(k, _)) if k == "ns/web"
    ));
    assert!(
        unreadable.list().is_empty(),
        "reported once the list is complete"
    );
    assert_eq!(read(watcher::Event::InitDone), Some(WatchEvent::InitDone));
    let bad = unreadable.list();
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(
        bad[0]
            .starts_with("VirtualService ns/newer: spec.futureField: unknown field `futureField`"),
        "{bad:?}"
    );
    // A readable object turning unreadable counts as deleted; fixed, it
    // is back and no longer reported.
    assert_eq!(
        read(watcher::Event::Apply(dynamic(
            "web",
            Some(("x", serde_json::json!(true)))
        ))),
        Some(WatchEvent::Delete("ns/web".into()))
    );
    assert_eq!(unreadable.list().len(), 2);
    assert!(matches!(
        read(watcher::Event::Apply(dynamic("web", None))),
        Some(WatchEvent::Apply(k, _)) if k == "ns/web"
    ));
    assert_eq!(unreadable.list().len(), 1);
    // A relist without it: nothing unreadable any more.
    read(watcher::Event::Init);
    read(watcher::Event::InitApply(dynamic("web", None)));
    read(watcher::Event::InitDone);
    assert!(unreadable.list().is_empty());
    // Deleted: gone from the report too.
    read(watcher::Event::Apply(newer()));
    assert_eq!(unreadable.list().len(), 1);
    assert_eq!(
        read(watcher::Event::Delete(newer())),
        Some(WatchEvent::Delete("ns/newer".into()))
    );
    assert!(unreadable.list().is_empty());
}

#[test]
fn objects_being_deleted_count_as_gone() {
    let vs: VirtualService = serde_json::from_value(serde_json::json!({
        "apiVersion": "lvs.lvs-operator.io/v1alpha1", "kind": "VirtualService",
        "metadata": {"name": "web", "namespace": "default", "generation": 2},
        "spec": {"address": "192.0.2.1", "port": 80,
                 "directors": {"nodeSelector": {}},
                 "realServerSelector": {"matchLabels": {"app": "web"}}},
    }))
    .unwrap();
    let conv = |ev| {
        change(
            ev,
            namespaced_key::<VirtualService>,
            |o: &VirtualService| Object::from(o),
        )
    };
    match conv(watcher::Event::Apply(vs.clone())) {
        Some(WatchEvent::Apply(k, o)) => {
            assert_eq!(k, "default/web");
            assert_eq!(o.meta.generation, Some(2));
        }
        other => panic!("{other:?}"),
    }
    let mut gone = vs.clone();
    gone.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
    ));
    gone.metadata.finalizers = Some(vec!["lvs.lvs-operator.io/cleanup".into()]);
    assert_eq!(
        conv(watcher::Event::Apply(gone.clone())),
        Some(WatchEvent::Delete("default/web".into()))
    );
    assert_eq!(conv(watcher::Event::InitApply(gone)), None);
    assert_eq!(
        conv(watcher::Event::Delete(vs)),
        Some(WatchEvent::Delete("default/web".into()))
    );
}

#[tokio::test(start_paused = true)]
async fn a_queued_burst_becomes_one_snapshot_at_once() {
    let (tx, items) = feed();
    let (stx, srx) = mpsc::channel();
    let metrics = Metrics::default();
    let task = async {
        run_watches(items, DEBOUNCE, &metrics, SnapshotSink::new(stx)).await;
    };
    let script = async {
        for i in full_lists() {
            tx.unbounded_send(i).unwrap();
        }
        for n in 0..50 {
            tx.unbounded_send(ok(Update::RealServer(rs(&format!("rs-{n}")))))
                .unwrap();
        }
        // No waiting: the loop was idle, so the snapshot is sent as
        // soon as the source runs, with everything that was queued.
        settle().await;
        let got = received(&srx);
        assert_eq!(got.len(), 1, "one snapshot for the burst");
        assert_eq!(got[0].real_servers.len(), 50);
        assert_eq!(got[0].nodes.len(), 1);
        assert!(metrics.render().contains("lvs_agent_api_synced 1"));

        // The same content again (a relist that found nothing new): no
        // snapshot, so no sync.
        tokio::time::sleep(DEBOUNCE * 2).await;
        for i in full_lists() {
            let done = matches!(i.1, Ok(Update::RealServer(WatchEvent::InitDone)));
            if done {
                // The RealServer relist holds the same 50 objects.
                for n in 0..50 {
                    let WatchEvent::Apply(k, o) = rs(&format!("rs-{n}")) else {
                        unreachable!()
                    };
                    tx.unbounded_send(ok(Update::RealServer(WatchEvent::InitApply(k, o))))
                        .unwrap();
                }
            }
            tx.unbounded_send(i).unwrap();
        }
        tokio::time::sleep(DEBOUNCE * 3).await;
        assert!(
            received(&srx).is_empty(),
            "unchanged content was sent again"
        );
        drop(tx);
    };
    tokio::join!(task, script);
}

#[tokio::test(start_paused = true)]
async fn changes_during_a_sync_wait_for_its_end_then_go_out_together() {
    let metrics = Metrics::default();
    let (tx, srx, status_tx, task) = fed_source(&metrics);
    let script = async {
        for i in full_lists() {
            tx.unbounded_send(i).unwrap();
        }
        settle().await;
        assert_eq!(received(&srx).len(), 1, "the first complete list");
        // The loop is syncing that snapshot: changes are held, for as
        // long as it takes (longer than the debounce).
        for n in 0..3 {
            tx.unbounded_send(ok(Update::RealServer(rs(&format!("rs-{n}")))))
                .unwrap();
            tokio::time::sleep(DEBOUNCE * 2).await;
        }
        assert!(received(&srx).is_empty(), "sent while a sync was running");
        // The sync ends: the three changes go out as one snapshot.
        status_tx.send(1).unwrap();
        settle().await;
        let got = received(&srx);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].real_servers.len(), 3);
        // That one is synced too; the loop is idle now, and the next
        // change goes out at once, without any debounce.
        status_tx.send(2).unwrap();
        settle().await;
        tx.unbounded_send(ok(Update::RealServer(rs("rs-9"))))
            .unwrap();
        settle().await;
        let got = received(&srx);
        assert_eq!(got.len(), 1, "an idle loop gets a change at once");
        assert_eq!(got[0].real_servers.len(), 4);
        // No word from the loop at all: the gathered change goes out
        // after SYNC_WAIT_MAX anyway.
        tx.unbounded_send(ok(Update::RealServer(rs("rs-10"))))
            .unwrap();
        tokio::time::sleep(SYNC_WAIT_MAX / 2).await;
        assert!(received(&srx).is_empty());
        tokio::time::sleep(SYNC_WAIT_MAX).await;
        assert_eq!(received(&srx).len(), 1);
        drop(tx);
    };
    tokio::join!(task, script);
}

#[tokio::test(start_paused = true)]
async fn a_relist_is_one_snapshot_once_complete_and_none_if_unchanged() {
    let metrics = Metrics::default();
    let (tx, srx, status_tx, task) = fed_source(&metrics);
    let script = async {
        for i in full_lists() {
            tx.unbounded_send(i).unwrap();
        }
        settle().await;
        assert_eq!(received(&srx).len(), 1);
        status_tx.send(1).unwrap();
        settle().await;
        // A RealServer relist arrives item by item, with the loop idle:
        // nothing goes out until it is complete.
        tx.unbounded_send(ok(Update::RealServer(WatchEvent::Init)))
            .unwrap();
        settle().await;
        for n in 0..5 {
            let WatchEvent::Apply(k, o) = rs(&format!("rs-{n}")) else {
                unreachable!()
            };
            tx.unbounded_send(ok(Update::RealServer(WatchEvent::InitApply(k, o))))
                .unwrap();
            settle().await;
            assert!(received(&srx).is_empty(), "a partial list was sent");
        }
        assert!(metrics.render().contains("lvs_agent_api_synced 0"));
        tx.unbounded_send(ok(Update::RealServer(WatchEvent::InitDone)))
            .unwrap();
        settle().await;
        let got = received(&srx);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].real_servers.len(), 5);
        assert!(metrics.render().contains("lvs_agent_api_synced 1"));
        status_tx.send(2).unwrap();
        settle().await;
        // The same relist again: nothing to sync.
        tx.unbounded_send(ok(Update::RealServer(WatchEvent::Init)))
            .unwrap();
        for n in 0..5 {
            let WatchEvent::Apply(k, o) = rs(&format!("rs-{n}")) else {
                unreachable!()
            };
            tx.unbounded_send(ok(Update::RealServer(WatchEvent::InitApply(k, o))))
                .unwrap();
        }
        tx.unbounded_send(ok(Update::RealServer(WatchEvent::InitDone)))
            .unwrap();
        tokio::time::sleep(DEBOUNCE * 3).await;
        assert!(received(&srx).is_empty());
        drop(tx);
    };
    tokio::join!(task, script);
}

#[tokio::test(start_paused = true)]
async fn failures_and_incomplete_lists_send_nothing() {
    let (tx, items) = feed();
    let (stx, srx) = mpsc::channel();
    let metrics = Metrics::default();
    let task = async {
        run_watches(items, DEBOUNCE, &metrics, SnapshotSink::new(stx)).await;
    };
    let script = async {
        // Only two kinds listed, the third keeps failing.
        for i in full_lists().into_iter().filter(|(k, _)| *k != Kind::Node) {
            tx.unbounded_send(i).unwrap();
        }
        for _ in 0..3 {
            tx.unbounded_send((Kind::Node, Err("connection refused".into())))
                .unwrap();
        }
        tokio::time::sleep(DEBOUNCE * 4).await;
        assert!(received(&srx).is_empty());
        let text = metrics.render();
        assert!(text.contains("lvs_agent_api_synced 0"), "{text}");
        assert!(
            text.contains("lvs_agent_watch_errors_total{kind=\"Node\"} 3"),
            "{text}"
        );
        // The Node list completes: now the snapshot goes out.
        tx.unbounded_send(ok(Update::Node(WatchEvent::Init)))
            .unwrap();
        tx.unbounded_send(ok(Update::Node(WatchEvent::InitDone)))
            .unwrap();
        tokio::time::sleep(DEBOUNCE * 2).await;
        assert_eq!(received(&srx).len(), 1);

        // A VirtualService relist starts and the API server goes away
        // in the middle: nothing is sent, whatever else changes.
        tx.unbounded_send(ok(Update::VirtualService(WatchEvent::Init)))
            .unwrap();
        tx.unbounded_send((Kind::VirtualService, Err("eof".into())))
            .unwrap();
        tx.unbounded_send(ok(Update::RealServer(rs("late"))))
            .unwrap();
        tokio::time::sleep(DEBOUNCE * 4).await;
        assert!(received(&srx).is_empty());
        // Back: the relist completes and the held-back change goes out.
        tx.unbounded_send(ok(Update::VirtualService(WatchEvent::Init)))
            .unwrap();
        tx.unbounded_send(ok(Update::VirtualService(WatchEvent::InitDone)))
            .unwrap();
        tokio::time::sleep(DEBOUNCE * 2).await;
        let got = received(&srx);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].real_servers.len(), 1);
        assert_eq!(
            got[0].real_servers[0].meta,
            Meta {
                namespace: "default".into(),
                name: "late".into(),
                ..Meta::default()
            }
        );
        drop(tx);
    };
    tokio::join!(task, script);
}

#[test]
fn reconnect_backoff_is_capped_jittered_and_resets() {
    use kube::runtime::utils::Backoff;
    use std::time::Duration;
    let ms = Duration::from_millis;
    let mut b = super::reconnect_backoff();
    let delays: Vec<_> = (&mut b).take(10).collect();
    assert!(delays[0] >= ms(400) && delays[0] < ms(800), "{delays:?}");
    assert!(delays.iter().all(|d| *d < ms(10_000)), "{delays:?}");
    assert!(delays[9] >= ms(5_000), "{delays:?}");
    // Jittered: a fleet of agents does not retry in lockstep.
    let other: Vec<_> = super::reconnect_backoff().take(10).collect();
    assert_ne!(delays, other);
    b.reset();
    assert!(b.next().unwrap() < ms(800));
}

//! The Kubernetes source feeding the real agent loop (fake kernel): watch
//! events in, kernel state and LvsNode reports out. While a list is
//! incomplete or the API server is away nothing is synced, so nothing is
//! deleted; a change made meanwhile converges once the lists complete again.

use std::sync::{Arc, mpsc};
use std::time::Duration;

use lvs_api::manifest::{ManifestSet, parse};
use lvs_api::{NodeInfo, Object, RealServerSpec, VirtualServiceSpec};
use lvs_ipvs::Op;
use lvs_node_agent::agent::{Agent, AgentConfig, AgentStatus, Health};
use lvs_node_agent::dataplane::fake::{Call, FakeDataplane};
use lvs_node_agent::k8s::cache::{Kind, Update, WatchEvent};
use lvs_node_agent::k8s::source::{DEBOUNCE, WatchItem, run_watches};
use lvs_node_agent::ledger::LedgerStore;
use lvs_node_agent::metrics::Metrics;
use lvs_node_agent::reconcile::Reconciler;
use lvs_node_agent::source::SnapshotSink;
use tokio::sync::watch;

fn objects(scheduler: &str, generation: i64) -> ManifestSet {
    let mut m = ManifestSet::default();
    m.extend(
        parse(&format!(
            r#"
apiVersion: v1
kind: Node
metadata: {{name: n1, labels: {{lvs: director}}}}
status: {{addresses: [{{type: InternalIP, address: 192.0.2.10}}]}}
---
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: VirtualService
metadata: {{name: web, namespace: default, generation: {generation}}}
spec:
  address: 203.0.113.10
  port: 80
  scheduler: {scheduler}
  directors: {{nodeSelector: {{matchLabels: {{lvs: director}}}}}}
  realServerSelector: {{matchLabels: {{app: web}}}}
---
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: RealServer
metadata: {{name: web-1, namespace: default, labels: {{app: web}}}}
spec: {{address: 10.1.0.1, port: 8080}}
"#
        ))
        .unwrap(),
    );
    m
}

fn vs_list(m: &ManifestSet) -> Vec<WatchItem> {
    let mut out = vec![(
        Kind::VirtualService,
        Ok(Update::VirtualService(WatchEvent::Init)),
    )];
    out.extend(
        m.virtual_services
            .iter()
            .map(|o: &Object<VirtualServiceSpec>| {
                (
                    Kind::VirtualService,
                    Ok(Update::VirtualService(WatchEvent::InitApply(
                        o.meta.key(),
                        std::sync::Arc::new(o.clone()),
                    ))),
                )
            }),
    );
    out.push((
        Kind::VirtualService,
        Ok(Update::VirtualService(WatchEvent::InitDone)),
    ));
    out
}

fn lists(m: &ManifestSet) -> Vec<WatchItem> {
    let mut out = vs_list(m);
    out.push((Kind::RealServer, Ok(Update::RealServer(WatchEvent::Init))));
    out.extend(m.real_servers.iter().map(|o: &Object<RealServerSpec>| {
        (
            Kind::RealServer,
            Ok(Update::RealServer(WatchEvent::InitApply(
                o.meta.key(),
                o.clone(),
            ))),
        )
    }));
    out.push((
        Kind::RealServer,
        Ok(Update::RealServer(WatchEvent::InitDone)),
    ));
    out.push((Kind::Node, Ok(Update::Node(WatchEvent::Init))));
    out.extend(m.nodes.iter().map(|n: &NodeInfo| {
        (
            Kind::Node,
            Ok(Update::Node(WatchEvent::InitApply(
                n.name.clone(),
                n.clone(),
            ))),
        )
    }));
    out.push((Kind::Node, Ok(Update::Node(WatchEvent::InitDone))));
    out
}

/// Waits until the agent reports `default/web` at `generation`.
async fn reported(status: &mut watch::Receiver<AgentStatus>, generation: i64) -> AgentStatus {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            {
                let s = status.borrow_and_update();
                if s.reports.iter().any(|r| r.generation == Some(generation)) {
                    return s.clone();
                }
            }
            status.changed().await.expect("the agent loop is running");
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "no report of generation {generation} within 5s: {:?}",
            status.borrow()
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_sync_while_lists_are_incomplete_and_convergence_after() {
    let reconciler = Reconciler::new(FakeDataplane::new(), LedgerStore::in_memory()).unwrap();
    let metrics = Arc::new(Metrics::default());
    let (mut agent, mut status) = Agent::new(
        reconciler,
        AgentConfig {
            node_name: "n1".into(),
            resync_interval: Duration::from_secs(300),
            resync_max_share: 100,
            node_ips: vec![],
            vip_roles: Default::default(),
            vip_lifetime: None,
            live_interval: None,
        },
        metrics.clone(),
        Arc::new(Health::new()),
    );
    let (tx, rx) = mpsc::channel();
    let loop_thread = std::thread::spawn(move || {
        agent.run(&rx);
        agent
    });
    let (items_tx, items) = futures::channel::mpsc::unbounded::<WatchItem>();
    let source = tokio::spawn({
        let metrics = metrics.clone();
        async move { run_watches(items, DEBOUNCE, &metrics, SnapshotSink::new(tx)).await }
    });
    let send = |i: WatchItem| items_tx.unbounded_send(i).unwrap();

    // Two of three lists: nothing is synced.
    for i in lists(&objects("rr", 1))
        .into_iter()
        .filter(|(k, _)| *k != Kind::Node)
    {
        send(i);
    }
    tokio::time::sleep(DEBOUNCE * 3).await;
    assert_eq!(
        status.borrow().last_sync,
        None,
        "synced without the Node list"
    );

    // All three: programmed and reported.
    for i in lists(&objects("rr", 1)) {
        send(i);
    }
    let s = reported(&mut status, 1).await;
    assert_eq!(s.reports.len(), 1);
    assert_eq!(s.reports[0].name, "default/web");
    assert_eq!(s.reports[0].roles, ["director"]);
    assert!(s.reports[0].error.is_empty(), "{:?}", s.reports);
    let first_sync = s.last_sync;

    // The API server goes away in the middle of a VirtualService relist
    // (the list so far is empty), and the watches keep failing.
    send((
        Kind::VirtualService,
        Ok(Update::VirtualService(WatchEvent::Init)),
    ));
    for k in [Kind::VirtualService, Kind::RealServer, Kind::Node] {
        send((k, Err("error trying to connect: Connection refused".into())));
    }
    tokio::time::sleep(DEBOUNCE * 4).await;
    assert_eq!(
        status.borrow().last_sync,
        first_sync,
        "a sync ran on an incomplete list"
    );

    // Back, with the VirtualService edited meanwhile: the relist completes
    // and the new generation is programmed.
    for i in vs_list(&objects("wlc", 2)) {
        send(i);
    }
    let s = reported(&mut status, 2).await;
    assert!(s.ok, "{:?}", s.errors);

    drop(items_tx);
    source.await.unwrap();
    let agent = tokio::task::spawn_blocking(move || loop_thread.join().unwrap())
        .await
        .unwrap();
    let fake = agent.reconciler().dataplane();
    let svc = fake
        .ipvs
        .values()
        .next()
        .expect("the service is still there");
    assert_eq!(svc.config.scheduler, "wlc");
    assert_eq!(svc.dests.len(), 1);
    let deletes: Vec<&Call> = fake
        .calls
        .iter()
        .filter(|c| {
            matches!(
                c,
                Call::Ipvs(Op::DelService(_) | Op::DelDest { .. }) | Call::DelAddress(_)
            )
        })
        .collect();
    assert!(deletes.is_empty(), "deleted something: {deletes:?}");
    assert!(
        fake.calls
            .iter()
            .any(|c| matches!(c, Call::Ipvs(Op::UpdateService(s)) if s.config.scheduler == "wlc")),
        "the edit became an in-place update"
    );
}

//! One VirtualService reconcile against a scripted API server: the exact
//! requests it makes (status via server-side apply, then Events), none at
//! all when the status is already current, and the removal of the finalizer
//! that earlier operators added.

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::client::Body;
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher;
use lvs_api::{LvsNode, RealServer, VirtualService};
use lvs_operator::controller::{Context, LEGACY_FINALIZER, reconcile_vs};
use lvs_operator::derived::StoreSnapshot;
use lvs_operator::metrics::Metrics;
use lvs_operator::stores::{ChangeCounters, Stores, Watched, changes_derived};
use serde_json::{Value, json};
use tower_test::mock;

type Handle = mock::Handle<Request<Body>, Response<Body>>;

struct World {
    stores: Stores,
    _writers: (
        Writer<VirtualService>,
        Writer<RealServer>,
        Writer<Node>,
        Writer<LvsNode>,
    ),
}

/// Applies `obj` to a store as a watch task does: the change counter is
/// bumped after the store took the object, when the object changed what the
/// analysis reads.
fn apply<K>(w: &mut Writer<K>, changes: &ChangeCounters, obj: Value)
where
    K: Watched + Clone + serde::de::DeserializeOwned + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let obj: K = serde_json::from_value(obj).expect("test object deserializes");
    let event = watcher::Event::Apply(obj);
    let changed = changes_derived(&w.as_reader(), &event);
    w.apply_watcher_event(&event);
    if changed {
        changes.bump(K::INPUT);
    }
}

fn web_vs(status: Option<Value>) -> Value {
    let mut vs = json!({
        "apiVersion": "lvs.lvs-operator.io/v1alpha1",
        "kind": "VirtualService",
        "metadata": {
            "name": "web", "namespace": "default", "uid": "u-web",
            "generation": 2, "resourceVersion": "10",
            "creationTimestamp": "2024-01-01T00:00:00Z",
        },
        "spec": {
            "address": "192.0.2.10", "port": 80,
            "directors": {"nodeSelector": {"matchLabels": {"role": "director"}}},
            "realServerSelector": {"matchLabels": {"app": "web"}},
        },
    });
    if let Some(s) = status {
        vs["status"] = s;
    }
    vs
}

fn world(vs: Value) -> World {
    let (vs_r, mut vs_w) = reflector::store::<VirtualService>();
    let (rs_r, mut rs_w) = reflector::store::<RealServer>();
    let (node_r, mut node_w) = reflector::store::<Node>();
    let (ln_r, mut ln_w) = reflector::store::<LvsNode>();
    let changes = ChangeCounters::default();
    apply(&mut vs_w, &changes, vs);
    apply(
        &mut rs_w,
        &changes,
        json!({
            "apiVersion": "lvs.lvs-operator.io/v1alpha1", "kind": "RealServer",
            "metadata": {"name": "a", "namespace": "default", "labels": {"app": "web"}, "generation": 1},
            "spec": {"address": "10.1.0.1"},
        }),
    );
    apply(
        &mut node_w,
        &changes,
        json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "d1", "labels": {"role": "director"}},
            "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]},
        }),
    );
    apply(
        &mut ln_w,
        &changes,
        json!({
            "apiVersion": "lvs.lvs-operator.io/v1alpha1", "kind": "LvsNode",
            "metadata": {"name": "d1"},
            "spec": {"nodeName": "d1"},
            "status": {"services": [{"name": "default/web", "generation": 2, "roles": ["director"]}]},
        }),
    );
    World {
        stores: Stores {
            vs: vs_r,
            rs: rs_r,
            nodes: node_r,
            lvsnodes: ln_r,
            pools: Default::default(),
            services: reflector::store().0,
            slices: reflector::store().0,
            changes,
            unreadable: Default::default(),
        },
        _writers: (vs_w, rs_w, node_w, ln_w),
    }
}

async fn body_json(req: Request<Body>) -> Value {
    let bytes = req.into_body().collect_bytes().await.expect("request body");
    serde_json::from_slice(&bytes).expect("request body is JSON")
}

fn respond(send: mock::SendResponse<Response<Body>>, body: Value) {
    let resp = Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap();
    send.send_response(resp);
}

async fn next(handle: &mut Handle) -> (Request<Body>, mock::SendResponse<Response<Body>>) {
    tokio::time::timeout(Duration::from_secs(5), handle.next_request())
        .await
        .expect("a request within 5s")
        .expect("the client is still alive")
}

/// Fails on any further request; returns once the client is gone.
async fn expect_no_request(handle: &mut Handle) {
    match tokio::time::timeout(Duration::from_secs(5), handle.next_request()).await {
        Ok(None) => {}
        Ok(Some((req, _))) => panic!("unexpected request {} {}", req.method(), req.uri()),
        Err(_) => panic!("the client was not dropped within 5s"),
    }
}

fn context(stores: Stores) -> (Arc<Context>, Handle, Arc<Metrics>) {
    let (svc, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(svc, "default");
    let metrics = Arc::new(Metrics::new());
    let ctx = Arc::new(Context::new(client, stores, metrics.clone(), "test-0"));
    (ctx, handle, metrics)
}

#[tokio::test]
async fn stale_status_is_applied_then_events_follow() {
    let w = world(web_vs(None));
    let vs = w.stores.vs.state()[0].clone();
    let (ctx, mut handle, metrics) = context(w.stores.clone());
    let task = tokio::spawn(reconcile_vs(vs, ctx));

    // 1. Server-side apply of the status subresource, forced, as lvs-operator.
    let (req, send) = next(&mut handle).await;
    assert_eq!(req.method(), http::Method::PATCH);
    assert_eq!(
        req.uri().to_string(),
        "/apis/lvs.lvs-operator.io/v1alpha1/namespaces/default/virtualservices/web/status?&force=true&fieldManager=lvs-operator"
    );
    assert_eq!(
        req.headers().get("content-type").unwrap(),
        "application/apply-patch+yaml"
    );
    let body = body_json(req).await;
    assert_eq!(body["apiVersion"], "lvs.lvs-operator.io/v1alpha1");
    assert_eq!(body["kind"], "VirtualService");
    let status = &body["status"];
    assert_eq!(status["observedGeneration"], 2);
    assert_eq!(status["endpoint"], "192.0.2.10:80/TCP");
    assert_eq!(status["directors"], json!(["d1"]));
    assert_eq!(
        status["realServers"],
        json!({"selected": 1, "ready": 1, "summary": "1/1"})
    );
    assert_eq!(status["nodes"], json!({"d1": "Programmed"}));
    let conds: Vec<(String, String)> = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["type"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        conds,
        [
            ("Ready", "True"),
            ("Programmed", "True"),
            ("Degraded", "False"),
            ("Conflict", "False"),
            ("Invalid", "False"),
            ("AddressNotAllowed", "False")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    respond(send, web_vs(Some(status.clone())));

    // 2. One Event for the transitions of this write, about this object.
    let mut reasons = Vec::new();
    let mut notes = Vec::new();
    {
        let (req, send) = next(&mut handle).await;
        assert_eq!(req.method(), http::Method::POST);
        assert_eq!(
            req.uri().path(),
            "/apis/events.k8s.io/v1/namespaces/default/events"
        );
        let ev = body_json(req).await;
        assert_eq!(ev["regarding"]["kind"], "VirtualService");
        assert_eq!(ev["regarding"]["name"], "web");
        assert_eq!(ev["reportingController"], "lvs-operator");
        assert_eq!(ev["reportingInstance"], "test-0");
        reasons.push(ev["reason"].as_str().unwrap().to_string());
        notes.push(ev["note"].as_str().unwrap().to_string());
        respond(send, ev);
    }
    assert_eq!(reasons, ["Programmed"]);
    assert_eq!(
        notes[0]
            .split("; ")
            .map(|n| n.split(':').next().unwrap())
            .collect::<Vec<_>>(),
        ["Accepted", "Ready", "Programmed"],
        "{}",
        notes[0]
    );

    let action = task.await.unwrap().expect("reconcile succeeds");
    assert_eq!(
        action,
        kube::runtime::controller::Action::requeue(Duration::from_secs(300))
    );
    let text = metrics.encode();
    assert!(
        text.contains(
            "lvs_operator_status_writes_total{kind=\"VirtualService\",result=\"applied\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains("lvs_operator_events_total 1"), "{text}");
}

#[tokio::test]
async fn current_status_means_no_request_at_all() {
    // Compute what the operator would write, and give it to the object.
    let w = world(web_vs(None));
    let analysis = StoreSnapshot::from_stores(&w.stores).analyze();
    let vs = w.stores.vs.state()[0].clone();
    let status = lvs_operator::status::vs_status(
        None,
        &vs.spec,
        "default",
        analysis.get("default/web").unwrap(),
        &StoreSnapshot::from_stores(&w.stores).reports,
        "2024-01-01T00:00:00Z",
    );
    let w = world(web_vs(Some(serde_json::to_value(&status).unwrap())));
    let vs = w.stores.vs.state()[0].clone();
    let (ctx, mut handle, metrics) = context(w.stores.clone());
    let task = tokio::spawn(reconcile_vs(vs, ctx));
    // The only client is dropped with the context: the mock sees the end
    // of the stream, not a request.
    expect_no_request(&mut handle).await;
    task.await.unwrap().expect("reconcile succeeds");
    assert!(metrics.encode().contains(
        "lvs_operator_status_writes_total{kind=\"VirtualService\",result=\"unchanged\"} 1"
    ));
}

/// The merge patch that drops the legacy finalizer: conditional on the
/// resourceVersion read, keeping every other finalizer.
async fn expect_finalizer_removal(
    handle: &mut Handle,
    keep: Value,
) -> mock::SendResponse<Response<Body>> {
    let (req, send) = next(handle).await;
    assert_eq!(req.method(), http::Method::PATCH);
    assert_eq!(
        req.uri().path(),
        "/apis/lvs.lvs-operator.io/v1alpha1/namespaces/default/virtualservices/web"
    );
    assert_eq!(
        req.headers().get("content-type").unwrap(),
        "application/merge-patch+json"
    );
    assert_eq!(
        body_json(req).await,
        json!({"metadata": {"finalizers": keep, "resourceVersion": "10"}})
    );
    send
}

#[tokio::test]
async fn no_finalizer_is_added() {
    let w = world(web_vs(None));
    let vs = w.stores.vs.state()[0].clone();
    let (ctx, mut handle, _) = context(w.stores.clone());
    let task = tokio::spawn(reconcile_vs(vs, ctx));
    let (req, send) = next(&mut handle).await;
    assert!(
        req.uri().path().ends_with("/status"),
        "the first request writes the status, got {} {}",
        req.method(),
        req.uri()
    );
    let status = body_json(req).await["status"].clone();
    respond(send, web_vs(Some(status)));
    // The status write's one Event.
    {
        let (req, send) = next(&mut handle).await;
        assert_eq!(req.method(), http::Method::POST, "{}", req.uri());
        let ev = body_json(req).await;
        respond(send, ev);
    }
    expect_no_request(&mut handle).await;
    task.await.unwrap().expect("reconcile succeeds");
}

#[tokio::test]
async fn the_legacy_finalizer_is_removed_on_upgrade() {
    let mut obj = web_vs(None);
    obj["metadata"]["finalizers"] = json!(["example.com/keep", LEGACY_FINALIZER]);
    let w = world(obj.clone());
    let vs = w.stores.vs.state()[0].clone();
    let (ctx, mut handle, _) = context(w.stores.clone());
    let task = tokio::spawn(reconcile_vs(vs, ctx));
    let send = expect_finalizer_removal(&mut handle, json!(["example.com/keep"])).await;
    obj["metadata"]["finalizers"] = json!(["example.com/keep"]);
    respond(send, obj);
    // Then the status, as for any object.
    let (req, send) = next(&mut handle).await;
    assert!(req.uri().path().ends_with("/status"), "{}", req.uri());
    let status = body_json(req).await["status"].clone();
    respond(send, web_vs(Some(status)));
    {
        let (req, send) = next(&mut handle).await;
        let ev = body_json(req).await;
        respond(send, ev);
    }
    expect_no_request(&mut handle).await;
    task.await.unwrap().expect("reconcile succeeds");
}

#[tokio::test]
async fn a_deletion_held_by_the_legacy_finalizer_is_released_and_nothing_else_written() {
    let mut obj = web_vs(None);
    obj["metadata"]["finalizers"] = json!([LEGACY_FINALIZER]);
    obj["metadata"]["deletionTimestamp"] = json!("2024-01-02T00:00:00Z");
    let w = world(obj.clone());
    let vs = w.stores.vs.state()[0].clone();
    let (ctx, mut handle, _) = context(w.stores.clone());
    let task = tokio::spawn(reconcile_vs(vs, ctx));
    let send = expect_finalizer_removal(&mut handle, json!([])).await;
    obj["metadata"]["finalizers"] = json!([]);
    respond(send, obj);
    // No status and no Event for an object on its way out.
    expect_no_request(&mut handle).await;
    assert_eq!(
        task.await.unwrap().expect("reconcile succeeds"),
        kube::runtime::controller::Action::await_change()
    );
}

#[test]
fn the_finalizer_patch_is_only_for_objects_that_carry_it() {
    use lvs_operator::controller::legacy_finalizer_patch;
    let mut meta = kube::api::ObjectMeta {
        resource_version: Some("7".into()),
        ..Default::default()
    };
    assert_eq!(legacy_finalizer_patch(&meta), None);
    meta.finalizers = Some(vec!["example.com/keep".into()]);
    assert_eq!(legacy_finalizer_patch(&meta), None);
    meta.finalizers = Some(vec![LEGACY_FINALIZER.into(), "example.com/keep".into()]);
    assert_eq!(
        legacy_finalizer_patch(&meta),
        Some(json!({"metadata": {"finalizers": ["example.com/keep"], "resourceVersion": "7"}}))
    );
}

#[tokio::test]
async fn the_analysis_is_reused_until_a_planner_input_changes() {
    let mut w = world(web_vs(None));
    let (ctx, _handle, _metrics) = context(w.stores.clone());
    let web = |p: &lvs_operator::derived::Analyzed| {
        p.analysis
            .get("default/web")
            .expect("web is analysed")
            .clone()
    };
    let first = ctx.planned();
    assert_eq!(web(&first).selected(), 1);
    assert!(Arc::ptr_eq(&first, &ctx.planned()), "nothing changed");
    let selecting = |p: &lvs_operator::derived::Analyzed, rs: &str| -> Vec<String> {
        p.selecting(rs).map(|(v, _)| v.name.clone()).collect()
    };
    assert_eq!(selecting(&first, "default/a"), ["default/web"]);
    assert!(selecting(&first, "default/b").is_empty());

    // A status write (new resourceVersion, same generation): the same analysis.
    let mut written = web_vs(Some(json!({"observedGeneration": 2})));
    written["metadata"]["resourceVersion"] = json!("11");
    apply(&mut w._writers.0, &w.stores.changes, written);
    assert!(
        Arc::ptr_eq(&first, &ctx.planned()),
        "a status write is no planner input"
    );

    // A Node heartbeat (same labels and addresses): the same analysis.
    apply(
        &mut w._writers.2,
        &w.stores.changes,
        json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "d1", "labels": {"role": "director"}, "resourceVersion": "99"},
            "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
                       "conditions": [{"type": "Ready", "status": "True"}]},
        }),
    );
    assert!(
        Arc::ptr_eq(&first, &ctx.planned()),
        "a heartbeat is no planner input"
    );

    // New labels on the RealServer (labels leave the generation alone).
    apply(
        &mut w._writers.1,
        &w.stores.changes,
        json!({
            "apiVersion": "lvs.lvs-operator.io/v1alpha1", "kind": "RealServer",
            "metadata": {"name": "a", "namespace": "default", "labels": {"app": "other"}, "generation": 1},
            "spec": {"address": "10.1.0.1"},
        }),
    );
    let relabelled = ctx.planned();
    assert!(!Arc::ptr_eq(&first, &relabelled));
    assert_eq!(web(&relabelled).selected(), 0);
    assert!(selecting(&relabelled, "default/a").is_empty());

    // A spec change (the API server bumps the generation).
    let mut moved = web_vs(None);
    moved["metadata"]["generation"] = json!(3);
    moved["spec"]["port"] = json!(8080);
    apply(&mut w._writers.0, &w.stores.changes, moved);
    let respecced = ctx.planned();
    assert!(!Arc::ptr_eq(&relabelled, &respecced));
    assert_eq!(web(&respecced).generation, Some(3));

    // A Node that stops being a director.
    apply(
        &mut w._writers.2,
        &w.stores.changes,
        json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "d1", "labels": {"role": "spare"}},
            "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]},
        }),
    );
    let undirected = ctx.planned();
    assert!(!Arc::ptr_eq(&respecced, &undirected));
    assert!(web(&undirected).directors.is_empty());
    assert_eq!(web(&respecced).directors, ["d1"]);
}

#[tokio::test]
async fn the_reports_are_reused_until_a_node_reports_other_services() {
    let mut w = world(web_vs(None));
    let (ctx, _handle, _metrics) = context(w.stores.clone());
    let first = ctx.reports();
    assert!(Arc::ptr_eq(&first, &ctx.reports()));
    let report = |services: Value, time: &str| {
        json!({
            "apiVersion": "lvs.lvs-operator.io/v1alpha1", "kind": "LvsNode",
            "metadata": {"name": "d1", "resourceVersion": time},
            "spec": {"nodeName": "d1"},
            "status": {"lastSyncTime": format!("2024-01-01T00:00:{time}Z"), "services": services},
        })
    };
    let same = json!([{"name": "default/web", "generation": 2, "roles": ["director"]}]);
    apply(&mut w._writers.3, &w.stores.changes, report(same, "30"));
    assert!(
        Arc::ptr_eq(&first, &ctx.reports()),
        "a new lastSyncTime alone is no report change"
    );
    let newer = json!([{"name": "default/web", "generation": 3, "roles": ["director"]}]);
    apply(&mut w._writers.3, &w.stores.changes, report(newer, "40"));
    assert!(!Arc::ptr_eq(&first, &ctx.reports()));
}

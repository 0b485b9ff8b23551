//! The LvsNode reporter against a scripted API server: the exact requests
//! (server-side apply of the object, then of its status subresource, field
//! manager lvs-node-agent), no request when nothing changed, re-creation of
//! a deleted LvsNode, and a retry after a failed write.

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use kube::Client;
use kube::client::Body;
use lvs_api::ServiceReport;
use lvs_node_agent::agent::AgentStatus;
use lvs_node_agent::k8s::Reporter;
use lvs_node_agent::metrics::Metrics;
use serde_json::{Value, json};
use tokio::sync::watch;
use tower_test::mock;

type Handle = mock::Handle<Request<Body>, Response<Body>>;
type Send = mock::SendResponse<Response<Body>>;

const BASE: &str = "/apis/lvs.lvs-operator.io/v1alpha1/lvsnodes/n1";

async fn body_json(req: Request<Body>) -> Value {
    let bytes = req.into_body().collect_bytes().await.expect("request body");
    serde_json::from_slice(&bytes).expect("request body is JSON")
}

fn respond(send: Send, code: u16, body: Value) {
    let resp = Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap();
    send.send_response(resp);
}

fn lvsnode() -> Value {
    json!({
        "apiVersion": "lvs.lvs-operator.io/v1alpha1", "kind": "LvsNode",
        "metadata": {"name": "n1", "resourceVersion": "5"},
        "spec": {"nodeName": "n1"},
    })
}

fn not_found() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
           "message": "lvsnodes.lvs.lvs-operator.io \"n1\" not found",
           "reason": "NotFound", "code": 404})
}

async fn next(handle: &mut Handle) -> (Request<Body>, Send) {
    tokio::time::timeout(Duration::from_secs(5), handle.next_request())
        .await
        .expect("a request within 5s")
        .expect("the client is still alive")
}

/// The request must be a server-side apply to `path` by lvs-node-agent;
/// returns its body.
async fn expect_apply(handle: &mut Handle, path: &str) -> (Value, Send) {
    let (req, send) = next(handle).await;
    assert_eq!(req.method(), "PATCH", "{}", req.uri());
    assert_eq!(req.uri().path(), path);
    let query = req.uri().query().unwrap_or_default().to_string();
    assert!(query.contains("fieldManager=lvs-node-agent"), "{query}");
    assert!(query.contains("force=true"), "{query}");
    assert_eq!(
        req.headers()["content-type"],
        "application/apply-patch+yaml",
        "server-side apply"
    );
    (body_json(req).await, send)
}

async fn expect_quiet(handle: &mut Handle, for_: Duration) {
    if let Ok(Some((req, _))) = tokio::time::timeout(for_, handle.next_request()).await {
        panic!("unexpected request {} {}", req.method(), req.uri());
    }
}

fn svc(generation: i64, error: &str) -> ServiceReport {
    ServiceReport {
        name: "default/web".into(),
        generation: Some(generation),
        roles: vec!["director".into()],
        error: error.into(),
        ..Default::default()
    }
}

fn synced(t: f64, reports: Vec<ServiceReport>) -> AgentStatus {
    AgentStatus {
        node: "n1".into(),
        last_sync: Some(t),
        ok: true,
        reports,
        ..AgentStatus::default()
    }
}

#[tokio::test]
async fn reports_are_applied_only_when_they_change() {
    let (svc_mock, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(svc_mock, "default");
    let metrics = Arc::new(Metrics::default());
    let reporter = Reporter::new(client, "n1", Duration::from_secs(60), metrics.clone());
    let (tx, rx) = watch::channel(AgentStatus::default());
    let task = tokio::spawn(reporter.run(rx));

    // Nothing before the first sync.
    expect_quiet(&mut handle, Duration::from_millis(200)).await;

    // The first sync: the object, then its status.
    tx.send(synced(1_800_000_000.0, vec![svc(3, "")])).unwrap();
    let (body, send) = expect_apply(&mut handle, BASE).await;
    assert_eq!(body["spec"], json!({"nodeName": "n1"}));
    assert_eq!(body["metadata"]["name"], "n1");
    assert_eq!(body["kind"], "LvsNode");
    assert!(body.get("status").is_none(), "{body}");
    respond(send, 200, lvsnode());
    let (body, send) = expect_apply(&mut handle, &format!("{BASE}/status")).await;
    assert_eq!(
        body["status"],
        json!({
            "lastSyncTime": "2027-01-15T08:00:00Z",
            "programmedCount": 1, "errorCount": 0,
            "services": [{"name": "default/web", "generation": 3, "roles": ["director"]}],
        })
    );
    respond(send, 200, lvsnode());

    // A resync 30 s later finds the same: no write.
    tx.send(synced(1_800_000_030.0, vec![svc(3, "")])).unwrap();
    expect_quiet(&mut handle, Duration::from_millis(300)).await;

    // A new generation that failed: written at once; the LvsNode was deleted
    // meanwhile, so it is created again and the status written after.
    tx.send(synced(
        1_800_000_031.0,
        vec![svc(4, "IPVS is not available on this node")],
    ))
    .unwrap();
    let (body, send) = expect_apply(&mut handle, &format!("{BASE}/status")).await;
    assert_eq!(body["status"]["errorCount"], 1);
    respond(send, 404, not_found());
    let (body, send) = expect_apply(&mut handle, BASE).await;
    assert_eq!(body["spec"]["nodeName"], "n1");
    respond(send, 200, lvsnode());
    let (body, send) = expect_apply(&mut handle, &format!("{BASE}/status")).await;
    assert_eq!(
        body["status"]["services"][0],
        json!({"name": "default/web", "generation": 4, "roles": ["director"],
               "error": "IPVS is not available on this node"})
    );
    respond(send, 200, lvsnode());

    // The API server fails a write: retried (object first, since its
    // existence is unknown again) with the latest status.
    tx.send(synced(1_800_000_040.0, vec![svc(5, "")])).unwrap();
    let (_, send) = expect_apply(&mut handle, &format!("{BASE}/status")).await;
    respond(
        send,
        500,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
               "message": "etcdserver: request timed out", "reason": "InternalError", "code": 500}),
    );
    tx.send(synced(1_800_000_041.0, vec![svc(6, "")])).unwrap();
    let (_, send) = expect_apply(&mut handle, BASE).await;
    respond(send, 200, lvsnode());
    let (body, send) = expect_apply(&mut handle, &format!("{BASE}/status")).await;
    assert_eq!(
        body["status"]["services"][0]["generation"], 6,
        "the retry carries the latest status"
    );
    respond(send, 200, lvsnode());
    expect_quiet(&mut handle, Duration::from_millis(300)).await;

    let text = metrics.render();
    assert!(
        text.contains("lvs_agent_report_writes_total{result=\"error\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("lvs_agent_report_writes_total{result=\"ok\"} 3"),
        "{text}"
    );

    // The agent loop is gone: the reporter ends.
    drop(tx);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the reporter ends with the agent loop")
        .unwrap();
}

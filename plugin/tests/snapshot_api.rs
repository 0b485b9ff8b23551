//! The snapshot protocol against a scripted API server: the plugin applies
//! `LvsSnapshot/<node>` under its field manager with a fresh token, then
//! watches that one object until the status answers the token; no answer in
//! time is an error naming the node and what to check.

use std::time::Duration;

use http::{Request, Response};
use kube::Client;
use kube::client::Body;
use lvs_kubectl::cluster::Cluster;
use lvs_kubectl::live::Answer;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tower_test::mock;

type Handle = mock::Handle<Request<Body>, Response<Body>>;
type Reply = mock::SendResponse<Response<Body>>;

async fn next(handle: &mut Handle) -> (Request<Body>, Reply) {
    handle
        .next_request()
        .await
        .expect("the plugin sends a request")
}

async fn body_json(req: Request<Body>) -> Value {
    let bytes = req.into_body().collect_bytes().await.expect("request body");
    serde_json::from_slice(&bytes).expect("request body is JSON")
}

fn respond(send: Reply, body: Vec<u8>) {
    send.send_response(
        Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap(),
    );
}

fn snapshot(answered: &str, changes: &[&str]) -> Value {
    json!({
        "apiVersion": "lvs.lvs-operator.io/v1alpha1", "kind": "LvsSnapshot",
        "metadata": {"name": "dir1", "resourceVersion": "7"},
        "spec": {"nodeName": "dir1", "request": "whatever"},
        "status": {"request": answered, "time": "2026-12-06T17:00:00.123Z", "changes": changes},
    })
}

fn list(item: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "lvs.lvs-operator.io/v1alpha1", "kind": "LvsSnapshotList",
        "metadata": {"resourceVersion": "7"}, "items": [item],
    }))
    .unwrap()
}

/// The apply: checks it and returns the token it carries.
async fn expect_apply(handle: &mut Handle) -> String {
    let (req, send) = next(handle).await;
    assert_eq!(req.method(), "PATCH");
    let uri = req.uri().to_string();
    assert!(
        uri.starts_with("/apis/lvs.lvs-operator.io/v1alpha1/lvssnapshots/dir1?"),
        "{uri}"
    );
    assert!(uri.contains("fieldManager=kubectl-lvs"), "{uri}");
    assert!(uri.contains("force=true"), "{uri}");
    assert_eq!(
        req.headers()["content-type"],
        "application/apply-patch+yaml"
    );
    let body = body_json(req).await;
    assert_eq!(body["kind"], "LvsSnapshot");
    assert_eq!(body["metadata"]["name"], "dir1");
    assert_eq!(body["spec"]["nodeName"], "dir1");
    assert_eq!(body["spec"]["diff"], true);
    assert_eq!(body["spec"]["virtualServices"], json!(["default/web"]));
    assert!(
        body.get("status").is_none(),
        "the plugin writes no status: {body}"
    );
    let token = body["spec"]["request"]
        .as_str()
        .expect("a token")
        .to_string();
    assert!(
        token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit()),
        "{token}"
    );
    respond(send, serde_json::to_vec(&snapshot("old", &[])).unwrap());
    token
}

/// The watch's first list, of the one object; it answers `answered`.
async fn expect_list(handle: &mut Handle, answered: &str) {
    let (req, send) = next(handle).await;
    assert_eq!(req.method(), "GET");
    let uri = req.uri().to_string();
    assert!(uri.contains("fieldSelector=metadata.name%3Ddir1"), "{uri}");
    assert!(!uri.contains("watch=true"), "{uri}");
    respond(send, list(snapshot(answered, &[])));
}

/// A snapshot of dir1 (default/web, with the diff) asked for through a
/// scripted API server: its handle, and the request in flight.
fn ask_dir1(timeout: Duration) -> (Handle, JoinHandle<Answer>) {
    let (svc, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let cluster = Cluster::from_client(Client::new(svc, "default"), "default".into(), timeout);
    let ask = tokio::spawn(async move {
        cluster
            .snapshot("dir1", vec!["default/web".into()], true)
            .await
    });
    (handle, ask)
}

#[tokio::test]
async fn the_answer_to_the_new_token_comes_through_the_watch() {
    let (mut handle, ask) = ask_dir1(Duration::from_secs(10));
    let token = expect_apply(&mut handle).await;
    // The list still shows the answer to an earlier request.
    expect_list(&mut handle, "old").await;
    let (req, send) = next(&mut handle).await;
    let uri = req.uri().to_string();
    assert!(uri.contains("watch=true"), "{uri}");
    assert!(uri.contains("fieldSelector=metadata.name%3Ddir1"), "{uri}");
    let change = "edit destination 10.0.0.2:80 of TCP 192.0.2.10:80 (default/web): weight 3 -> 1";
    let mut events =
        serde_json::to_vec(&json!({"type": "MODIFIED", "object": snapshot("old", &[])})).unwrap();
    events.push(b'\n');
    events.extend(
        serde_json::to_vec(&json!({"type": "MODIFIED", "object": snapshot(&token, &[change])}))
            .unwrap(),
    );
    events.push(b'\n');
    respond(send, events);
    let status = ask.await.unwrap().expect("the answer");
    assert_eq!(status.request, token);
    assert_eq!(status.changes, [change]);
}

#[tokio::test]
async fn an_answer_already_there_when_the_watch_starts_counts() {
    let (mut handle, ask) = ask_dir1(Duration::from_secs(10));
    let token = expect_apply(&mut handle).await;
    expect_list(&mut handle, &token).await;
    let status = ask.await.unwrap().expect("the answer");
    assert_eq!(status.request, token);
}

#[tokio::test(start_paused = true)]
async fn no_answer_in_time_names_the_node_and_what_to_check() {
    let (mut handle, ask) = ask_dir1(Duration::from_secs(3));
    expect_apply(&mut handle).await;
    expect_list(&mut handle, "old").await;
    // The watch gets no event before the deadline.
    let (_watch, _pending) = next(&mut handle).await;
    let err = ask.await.unwrap().expect_err("no answer");
    assert_eq!(
        err,
        "no answer from the node agent on dir1 within 3s (LvsSnapshot/dir1 status.request is \"old\", not the new token): \
         is the agent running on dir1, in Kubernetes mode (--kubeconfig), with RBAC to watch lvssnapshots and patch \
         lvssnapshots/status?"
    );
}

//! The LvsSnapshot answerer against a scripted API server: a watch on the
//! node's one object (field selector on its name), each new request token
//! answered once with a server-side apply of the status subresource (field
//! manager lvs-node-agent), a stale copy of an answered request not
//! answered again, and a newer token answered next.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use http::{Request, Response};
use kube::Client;
use kube::client::Body;
use lvs_api::{LiveService, LvsSnapshotStatus};
use lvs_node_agent::k8s::lvssnapshot::Answerer;
use lvs_node_agent::metrics::Metrics;
use lvs_node_agent::source::Event;
use serde_json::{Value, json};
use tower_test::mock;

type Handle = mock::Handle<Request<Body>, Response<Body>>;
type Send = mock::SendResponse<Response<Body>>;

const PATH: &str = "/apis/lvs.lvs-operator.io/v1alpha1/lvssnapshots";

fn snapshot(request: &str, answered: Option<&str>, rv: u32) -> Value {
    let mut o = json!({
        "apiVersion": "lvs.lvs-operator.io/v1alpha1", "kind": "LvsSnapshot",
        "metadata": {"name": "n1", "resourceVersion": rv.to_string()},
        "spec": {"nodeName": "n1", "request": request, "diff": true,
                 "virtualServices": ["default/web"]},
    });
    if let Some(a) = answered {
        o["status"] = json!({"request": a});
    }
    o
}

fn respond(send: Send, body: Vec<u8>) {
    send.send_response(
        Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap(),
    );
}

async fn next(handle: &mut Handle) -> (Request<Body>, Send) {
    tokio::time::timeout(Duration::from_secs(10), handle.next_request())
        .await
        .expect("a request within 10s")
        .expect("the client is still alive")
}

/// The next status write, answering watches that come first with `events`
/// (once; later watches are held open). Returns the status written.
async fn next_answer(
    handle: &mut Handle,
    events: &mut Option<Vec<Value>>,
    held: &mut Vec<Send>,
) -> Value {
    loop {
        let (req, send) = next(handle).await;
        let uri = req.uri().to_string();
        if req.method() == "GET" && uri.contains("watch=true") {
            assert!(uri.starts_with(PATH), "{uri}");
            assert!(uri.contains("fieldSelector=metadata.name%3Dn1"), "{uri}");
            match events.take() {
                Some(evs) => {
                    let mut body = Vec::new();
                    for e in evs {
                        body.extend(serde_json::to_vec(&e).unwrap());
                        body.push(b'\n');
                    }
                    respond(send, body);
                }
                None => held.push(send),
            }
            continue;
        }
        assert_eq!(req.method(), "PATCH", "{uri}");
        assert_eq!(req.uri().path(), format!("{PATH}/n1/status"));
        let query = req.uri().query().unwrap_or_default().to_string();
        assert!(query.contains("fieldManager=lvs-node-agent"), "{query}");
        assert!(query.contains("force=true"), "{query}");
        assert_eq!(
            req.headers()["content-type"],
            "application/apply-patch+yaml"
        );
        let bytes = req.into_body().collect_bytes().await.unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["kind"], "LvsSnapshot");
        assert_eq!(body["metadata"]["name"], "n1");
        let status = body["status"].clone();
        let mut obj = snapshot("", None, 99);
        obj["status"] = status.clone();
        respond(send, serde_json::to_vec(&obj).unwrap());
        return status;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_is_answered_once() {
    let (svc, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(svc, "default");
    let metrics = Arc::new(Metrics::default());
    let (tx, rx) = mpsc::channel::<Event>();
    // The agent loop's side: one kernel read per LiveTable event.
    let reads = Arc::new(AtomicUsize::new(0));
    let seen = reads.clone();
    let loop_thread = std::thread::spawn(move || {
        let mut asked = Vec::new();
        while let Ok(ev) = rx.recv() {
            if let Event::LiveTable(req) = ev {
                let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
                asked.push((req.virtual_services.clone(), req.diff));
                let _ = req.reply.send(LvsSnapshotStatus {
                    time: format!("read {n}"),
                    services: vec![LiveService {
                        service: "TCP 192.0.2.10:80".into(),
                        owner: "default/web".into(),
                        scheduler: "rr".into(),
                        ..Default::default()
                    }],
                    changes: vec!["edit destination 10.0.0.2:80 of TCP 192.0.2.10:80 (default/web): weight 5 -> 1".into()],
                    ..Default::default()
                });
            }
        }
        asked
    });
    let task = tokio::spawn(
        Answerer::new(client, "n1", Duration::from_millis(200), metrics.clone()).run(tx),
    );

    // The initial list: the object, with request r1 not answered.
    let (req, send) = next(&mut handle).await;
    let uri = req.uri().to_string();
    assert_eq!(req.method(), "GET");
    assert!(
        uri.starts_with(PATH) && !uri.contains("watch=true"),
        "{uri}"
    );
    assert!(uri.contains("fieldSelector=metadata.name%3Dn1"), "{uri}");
    let list = json!({"apiVersion": "lvs.lvs-operator.io/v1alpha1", "kind": "LvsSnapshotList",
                      "metadata": {"resourceVersion": "10"}, "items": [snapshot("r1", None, 5)]});
    respond(send, serde_json::to_vec(&list).unwrap());

    // r1 answered. The watch then shows the object from before the answer
    // (r1, no status: not answered again), and a new token r2.
    let mut events = Some(vec![
        json!({"type": "MODIFIED", "object": snapshot("r1", None, 11)}),
        json!({"type": "MODIFIED", "object": snapshot("r2", Some("r1"), 12)}),
    ]);
    let mut held = Vec::new();
    let first = next_answer(&mut handle, &mut events, &mut held).await;
    assert_eq!(first["request"], "r1");
    assert_eq!(first["time"], "read 1");
    assert_eq!(first["services"][0]["service"], "TCP 192.0.2.10:80");
    assert_eq!(first["services"][0]["owner"], "default/web");
    assert_eq!(
        first["changes"][0],
        "edit destination 10.0.0.2:80 of TCP 192.0.2.10:80 (default/web): weight 5 -> 1"
    );
    let second = next_answer(&mut handle, &mut events, &mut held).await;
    assert_eq!(
        second["request"], "r2",
        "r1 is not answered twice: {second}"
    );
    assert_eq!(second["time"], "read 2");
    assert_eq!(reads.load(Ordering::SeqCst), 2);

    // The count follows the write's response: wait for it (bounded).
    let line = "lvs_agent_snapshots_total{result=\"answered\"} 2";
    let counted = tokio::time::timeout(Duration::from_secs(10), async {
        while !metrics.render().contains(line) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(counted.is_ok(), "no '{line}' in:\n{}", metrics.render());
    task.abort();
    let _ = task.await;
    let asked = loop_thread.join().unwrap();
    assert_eq!(
        asked,
        [
            (vec!["default/web".to_string()], true),
            (vec!["default/web".to_string()], true)
        ]
    );
}

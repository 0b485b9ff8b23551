//! Version skew: a VirtualService written against a newer CRD (a field this
//! agent does not know) must not stop the agent from reading the others.
//! The Kubernetes source runs against a scripted API server whose
//! VirtualService list holds one such object next to a normal one.

use std::sync::{Arc, mpsc};
use std::time::Duration;

use http::{Request, Response};
use kube::Client;
use kube::client::Body;
use lvs_node_agent::k8s::KubeSource;
use lvs_node_agent::k8s::source::DEBOUNCE;
use lvs_node_agent::metrics::Metrics;
use lvs_node_agent::source::{Event, SnapshotSink, Source};
use lvs_planner::Change;
use serde_json::{Value, json};
use tower_test::mock;

fn vs(name: &str, extra: Option<(&str, Value)>) -> Value {
    let mut spec = json!({
        "address": "203.0.113.10",
        "port": 80,
        "directors": {"nodeSelector": {"matchLabels": {"lvs": "director"}}},
        "realServerSelector": {"matchLabels": {"app": name}},
    });
    if let Some((k, v)) = extra {
        spec[k] = v;
    }
    json!({
        "apiVersion": "lvs.lvs-operator.io/v1alpha1", "kind": "VirtualService",
        "metadata": {"name": name, "namespace": "default", "generation": 1,
                     "resourceVersion": "7", "uid": format!("uid-{name}")},
        "spec": spec,
    })
}

fn list(kind: &str, api_version: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": api_version, "kind": format!("{kind}List"),
           "metadata": {"resourceVersion": "10"}, "items": items})
}

/// Answers every list; holds every watch open without an event.
fn serve(mut handle: mock::Handle<Request<Body>, Response<Body>>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut open = Vec::new();
        while let Some((req, send)) = handle.next_request().await {
            let uri = req.uri().to_string();
            if uri.contains("watch=true") {
                open.push(send);
                continue;
            }
            let body = if uri.contains("/virtualservices") {
                list(
                    "VirtualService",
                    "lvs.lvs-operator.io/v1alpha1",
                    vec![
                        vs("a-newer", Some(("futureField", json!("from a newer CRD")))),
                        vs("web", None),
                    ],
                )
            } else if uri.contains("/realservers") {
                list("RealServer", "lvs.lvs-operator.io/v1alpha1", vec![])
            } else if uri.contains("/lvsaddresspools") {
                list(
                    "LvsAddressPool",
                    "lvs.lvs-operator.io/v1alpha1",
                    vec![
                        json!({"apiVersion": "lvs.lvs-operator.io/v1alpha1", "kind": "LvsAddressPool",
                                "metadata": {"name": "all", "resourceVersion": "4"},
                                "spec": {"addresses": ["203.0.113.0/24"]}}),
                    ],
                )
            } else if uri.contains("/lvsnodeprofiles") {
                list("LvsNodeProfile", "lvs.lvs-operator.io/v1alpha1", vec![])
            } else if uri.contains("/api/v1/namespaces") {
                list("Namespace", "v1", vec![])
            } else {
                list(
                    "Node",
                    "v1",
                    vec![json!({"apiVersion": "v1", "kind": "Node",
                                "metadata": {"name": "n1", "labels": {"lvs": "director"}, "resourceVersion": "3"}})],
                )
            };
            send.send_response(
                Response::builder()
                    .status(200)
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&body).unwrap()))
                    .unwrap(),
            );
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_object_with_an_unknown_field_does_not_stop_the_others() {
    let (svc, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let server = serve(handle);
    let client = Client::new(svc, "default");
    let source = KubeSource::new(client, DEBOUNCE, Arc::new(Metrics::default()));
    let (tx, rx) = mpsc::channel::<Event>();
    let task = tokio::spawn(source.run(SnapshotSink::new(tx)));
    let got = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(10)))
        .await
        .unwrap();
    task.abort();
    server.abort();
    let names: Vec<String> = match got {
        Ok(Event::Snapshot(s)) => s.virtual_services.iter().map(|o| o.meta.key()).collect(),
        Ok(Event::Changes(c, _)) => c
            .virtual_services
            .iter()
            .map(|c| match c {
                Change::Upsert(o) => o.meta.key(),
                Change::Delete(k) => format!("-{k}"),
            })
            .collect(),
        Ok(other) => panic!("expected the first desired state, got {other:?}"),
        Err(_) => panic!(
            "no desired state within 10s: one VirtualService with a field this agent does not know stopped the whole list"
        ),
    };
    assert_eq!(
        names,
        ["default/web"],
        "the normal object, without the unreadable one"
    );
}

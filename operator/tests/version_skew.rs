//! Version skew: a VirtualService or RealServer written against a newer CRD
//! (a field this operator does not know) must not stop the operator from
//! reading the others. The reflectors run against a scripted API server
//! whose lists hold one such object of each kind next to a normal one.

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use kube::client::Body;
use kube::{Client, ResourceExt};
use lvs_operator::http::Health;
use lvs_operator::metrics::Metrics;
use lvs_operator::stores::{self, Unreadable};
use serde_json::{Value, json};
use tower_test::mock;

fn object(kind: &str, name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "lvs.lvs-operator.io/v1alpha1", "kind": kind,
        "metadata": {"name": name, "namespace": "default", "generation": 1,
                     "resourceVersion": "7", "uid": format!("uid-{name}"),
                     "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": spec,
    })
}

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
    object("VirtualService", name, spec)
}

fn rs(name: &str, extra: Option<(&str, Value)>) -> Value {
    let mut spec = json!({"address": "10.0.0.1"});
    if let Some((k, v)) = extra {
        spec[k] = v;
    }
    let mut o = object("RealServer", name, spec);
    o["metadata"]["labels"] = json!({"app": "web"});
    o
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
            let group = "lvs.lvs-operator.io/v1alpha1";
            let body = if uri.contains("/virtualservices") {
                list(
                    "VirtualService",
                    group,
                    vec![
                        vs("a-newer", Some(("futureField", json!("from a newer CRD")))),
                        vs("web", None),
                    ],
                )
            } else if uri.contains("/realservers") {
                list(
                    "RealServer",
                    group,
                    vec![
                        rs("web-1", None),
                        rs("web-2", Some(("futureField", json!(1)))),
                    ],
                )
            } else if uri.contains("/lvsnodes") {
                list("LvsNode", group, vec![])
            } else if uri.contains("/endpointslices") {
                list("EndpointSlice", "discovery.k8s.io/v1", vec![])
            } else if uri.contains("/services") {
                list("Service", "v1", vec![])
            } else {
                list("Node", "v1", vec![])
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
    let metrics = Metrics::new();
    let (stores, _feeds, tasks) = stores::start_with(
        &client,
        &Arc::new(Health::default()),
        Unreadable::new(metrics.unreadable.clone()),
    );
    let ready = tokio::time::timeout(Duration::from_secs(10), stores.wait_until_ready()).await;
    for t in &tasks {
        t.abort();
    }
    server.abort();
    assert!(
        matches!(ready, Ok(Ok(()))),
        "the stores were not filled within 10s: one object with a field this operator does not know stopped the whole list"
    );
    let names = |v: Vec<String>| {
        let mut v = v;
        v.sort();
        v
    };
    assert_eq!(
        names(stores.vs.state().iter().map(|o| o.name_any()).collect()),
        ["web"],
        "the normal VirtualService, without the unreadable one"
    );
    assert_eq!(
        names(stores.rs.state().iter().map(|o| o.name_any()).collect()),
        ["web-1"],
        "the normal RealServer, without the unreadable one"
    );
    let bad = stores.unreadable.list();
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert!(
        bad[0].starts_with("RealServer default/web-2: spec.futureField: unknown field"),
        "{bad:?}"
    );
    assert!(
        bad[1].starts_with("VirtualService default/a-newer: spec.futureField: unknown field"),
        "{bad:?}"
    );
    let text = metrics.encode();
    for line in [
        r#"lvs_operator_unreadable_objects{kind="VirtualService"} 1"#,
        r#"lvs_operator_unreadable_objects{kind="RealServer"} 1"#,
    ] {
        assert!(text.contains(line), "no `{line}` in\n{text}");
    }
}

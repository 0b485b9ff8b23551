//! The Service controller against a scripted API server: the mirror
//! RealServers it applies for a VirtualService's `spec.backends`, the
//! `status.backends` it writes under its own field manager, and no request
//! at all once the stores hold what it would write.

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::client::Body;
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher;
use lvs_api::{RealServer, VirtualService};
use lvs_operator::controller::Context;
use lvs_operator::metrics::Metrics;
use lvs_operator::services::{BACKENDS_MANAGER, reconcile_service};
use lvs_operator::stores::{ChangeCounters, Stores};
use serde_json::{Value, json};
use tower_test::mock;

type Handle = mock::Handle<Request<Body>, Response<Body>>;

fn put<K>(w: &mut Writer<K>, obj: Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let obj: K = serde_json::from_value(obj).expect("test object deserializes");
    w.apply_watcher_event(&watcher::Event::Apply(obj));
}

struct World {
    stores: Stores,
    vs: Writer<VirtualService>,
    rs: Writer<RealServer>,
    svc: Writer<Service>,
    _slices: Writer<EndpointSlice>,
}

fn world() -> World {
    let (vs_r, mut vs_w) = reflector::store::<VirtualService>();
    let (rs_r, rs_w) = reflector::store::<RealServer>();
    let (svc_r, mut svc_w) = reflector::store::<Service>();
    let (sl_r, mut sl_w) = reflector::store::<EndpointSlice>();
    put(
        &mut vs_w,
        json!({
            "apiVersion": "lvs.lvs-operator.io/v1alpha1", "kind": "VirtualService",
            "metadata": {"name": "api", "namespace": "shop", "uid": "u-vs", "generation": 1},
            "spec": {
                "address": "192.0.2.10", "port": 80,
                "directors": {"nodeSelector": {}},
                "backends": {"service": {"name": "api", "port": "http"}},
            },
        }),
    );
    put(
        &mut svc_w,
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "api", "namespace": "shop", "uid": "u-svc"},
            "spec": {"type": "ClusterIP", "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
        }),
    );
    put(
        &mut sl_w,
        json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "api-x1", "namespace": "shop",
                         "labels": {"kubernetes.io/service-name": "api"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.244.0.5"], "conditions": {"ready": true}},
                {"addresses": ["10.244.0.6"], "conditions": {"ready": false, "terminating": true}},
                {"addresses": ["10.244.0.7"], "conditions": {"ready": false}},
            ],
        }),
    );
    World {
        stores: Stores {
            vs: vs_r,
            rs: rs_r,
            nodes: reflector::store().0,
            lvsnodes: reflector::store().0,
            pools: Default::default(),
            services: svc_r,
            slices: sl_r,
            changes: ChangeCounters::default(),
            unreadable: Default::default(),
        },
        vs: vs_w,
        rs: rs_w,
        svc: svc_w,
        _slices: sl_w,
    }
}

async fn body_json(req: Request<Body>) -> Value {
    let bytes = req.into_body().collect_bytes().await.expect("request body");
    serde_json::from_slice(&bytes).expect("request body is JSON")
}

async fn next(handle: &mut Handle) -> (Request<Body>, mock::SendResponse<Response<Body>>) {
    tokio::time::timeout(Duration::from_secs(5), handle.next_request())
        .await
        .expect("a request within 5s")
        .expect("the client is still alive")
}

type Reply = mock::SendResponse<Response<Body>>;

/// The next request is a GET of `uri`.
async fn expect_get(handle: &mut Handle, uri: &str) -> Reply {
    let (req, send) = next(handle).await;
    assert_eq!(req.method(), http::Method::GET);
    assert_eq!(req.uri().to_string(), uri);
    send
}

/// The next request writes to `uri`; its JSON body.
async fn expect_write(handle: &mut Handle, uri: &str) -> (Value, Reply) {
    let (req, send) = next(handle).await;
    assert_eq!(req.uri().to_string(), uri);
    (body_json(req).await, send)
}

fn respond(send: Reply, body: Value) {
    send.send_response(
        Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap(),
    );
}

fn context(stores: Stores) -> (Arc<Context>, Handle) {
    let (svc, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(svc, "default");
    let ctx = Arc::new(Context::new(
        client,
        stores,
        Arc::new(Metrics::new()),
        "test-0",
    ));
    (ctx, handle)
}

#[tokio::test]
async fn mirrors_then_status_then_nothing() {
    let mut w = world();
    let svc = w.stores.services.state()[0].clone();
    let (ctx, mut handle) = context(w.stores.clone());
    let task = tokio::spawn(reconcile_service(svc.clone(), ctx));

    // Two mirrors (ready: Active, terminating: Draining; the unready one has
    // none), applied as lvs-operator, owned by the Service.
    let mut mirrors = Vec::new();
    for _ in 0..2 {
        let (req, send) = next(&mut handle).await;
        assert_eq!(req.method(), http::Method::PATCH);
        let uri = req.uri().to_string();
        assert!(
            uri.starts_with("/apis/lvs.lvs-operator.io/v1alpha1/namespaces/shop/realservers/api-")
                && uri.ends_with("?&force=true&fieldManager=lvs-operator"),
            "{uri}"
        );
        let body = body_json(req).await;
        assert_eq!(
            body["metadata"]["labels"]["lvs.lvs-operator.io/service"],
            "api"
        );
        assert_eq!(
            body["metadata"]["labels"]["lvs.lvs-operator.io/service-port"],
            "http"
        );
        assert_eq!(body["metadata"]["ownerReferences"][0]["uid"], "u-svc");
        assert_eq!(body["metadata"]["ownerReferences"][0]["kind"], "Service");
        assert_eq!(body["spec"]["port"], 8080);
        mirrors.push(body.clone());
        respond(send, body);
    }
    let mut states: Vec<(String, String)> = mirrors
        .iter()
        .map(|m| {
            (
                m["spec"]["address"].as_str().unwrap().to_string(),
                m["spec"]["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    states.sort();
    assert_eq!(
        states,
        vec![
            ("10.244.0.5".to_string(), "Active".to_string()),
            ("10.244.0.6".to_string(), "Draining".to_string()),
        ]
    );

    // status.backends of the VirtualService, under its own field manager.
    let (body, send) = expect_write(
        &mut handle,
        &format!(
            "/apis/lvs.lvs-operator.io/v1alpha1/namespaces/shop/virtualservices/api/status?&force=true&fieldManager={BACKENDS_MANAGER}"
        ),
    )
    .await;
    assert_eq!(
        body["status"]["backends"],
        json!({
            "service": "api", "port": "http", "ready": 1, "terminating": 1, "notReady": 1,
            "endpoints": ["10.244.0.5:8080", "10.244.0.6:8080"],
        })
    );
    let vs_now = json!({
        "apiVersion": "lvs.lvs-operator.io/v1alpha1", "kind": "VirtualService",
        "metadata": {"name": "api", "namespace": "shop", "uid": "u-vs", "generation": 1},
        "spec": {
            "address": "192.0.2.10", "port": 80,
            "directors": {"nodeSelector": {}},
            "backends": {"service": {"name": "api", "port": "http"}},
        },
        "status": body["status"].clone(),
    });
    respond(send, vs_now.clone());
    task.await.unwrap().expect("reconcile succeeds");

    // The stores now hold what was written: a second reconcile writes nothing.
    put(&mut w.vs, vs_now);
    for m in mirrors {
        put(&mut w.rs, m);
    }
    let (ctx, mut handle) = context(w.stores.clone());
    let task = tokio::spawn(reconcile_service(svc, ctx));
    if let Some((req, _)) = handle.next_request().await {
        panic!(
            "no request expected once everything is current, got {} {}",
            req.method(),
            req.uri()
        );
    }
    task.await.unwrap().expect("reconcile succeeds");
}

/// LoadBalancer Services of our class: the pools are listed, the
/// namespace's labels read, the first free address of the pool taken (not
/// one just given to another Service), one VirtualService per port applied
/// (owned by the Service) and the address written into the Service's
/// status; a Service of another class gets no request at all.
#[tokio::test]
async fn load_balancer_allocates_applies_and_writes_status() {
    let mut w = world();
    let lb = |name: &str, class: &str| -> Value {
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "shop", "uid": format!("u-{name}")},
            "spec": {
                "type": "LoadBalancer", "loadBalancerClass": class,
                "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
            },
        })
    };
    let arc = |v: Value| -> Arc<Service> { Arc::new(serde_json::from_value(v).unwrap()) };
    // Reconciles start from the store: both LoadBalancer Services are there.
    put(&mut w.svc, lb("shop", "lvs-operator.io/ipvs"));
    put(&mut w.svc, lb("shop2", "lvs-operator.io/ipvs"));

    let (ctx, mut handle) = context(w.stores.clone());
    let task = tokio::spawn(reconcile_service(
        arc(lb("other", "example.com/other")),
        ctx,
    ));
    if let Some((req, _)) = handle.next_request().await {
        panic!(
            "a Service of another class got {} {}",
            req.method(),
            req.uri()
        );
    }
    task.await.unwrap().expect("reconcile succeeds");

    // One context for both allocations, as in the controller.
    let (ctx, mut handle) = context(w.stores.clone());
    for (name, want) in [("shop", "192.0.2.11"), ("shop2", "192.0.2.12")] {
        let task = tokio::spawn(reconcile_service(
            arc(lb(name, "lvs-operator.io/ipvs")),
            ctx.clone(),
        ));
        let send = expect_get(
            &mut handle,
            "/apis/lvs.lvs-operator.io/v1alpha1/lvsaddresspools?",
        )
        .await;
        respond(
            send,
            json!({
                "apiVersion": "lvs.lvs-operator.io/v1alpha1", "kind": "LvsAddressPoolList",
                "metadata": {"resourceVersion": "1"},
                "items": [{
                    "apiVersion": "lvs.lvs-operator.io/v1alpha1", "kind": "LvsAddressPool",
                    "metadata": {"name": "shop"},
                    // 192.0.2.10 is taken by VirtualService shop/api (the world).
                    "spec": {"addresses": ["192.0.2.10-192.0.2.12"],
                             "namespaceSelector": {"matchLabels": {"tenant": "shop"}}},
                }],
            }),
        );
        let send = expect_get(&mut handle, "/api/v1/namespaces/shop").await;
        respond(
            send,
            json!({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": "shop", "labels": {"tenant": "shop"}}}),
        );
        let (body, send) = expect_write(
            &mut handle,
            &format!(
                "/apis/lvs.lvs-operator.io/v1alpha1/namespaces/shop/virtualservices/{name}-80-tcp?&force=true&fieldManager=lvs-operator"
            ),
        )
        .await;
        // The second Service does not get the first one's address although
        // the store does not hold the first one's VirtualService yet.
        assert_eq!(body["spec"]["address"], want, "{name}");
        assert_eq!(body["spec"]["forwarding"], "NAT");
        assert_eq!(body["spec"]["sourceNat"], true);
        assert_eq!(
            body["spec"]["backends"],
            json!({"service": {"name": name, "port": "http"}})
        );
        assert_eq!(
            body["metadata"]["ownerReferences"][0]["uid"],
            format!("u-{name}")
        );
        respond(send, body);
        let (body, send) = expect_write(
            &mut handle,
            &format!(
                "/api/v1/namespaces/shop/services/{name}/status?&force=true&fieldManager=lvs-operator"
            ),
        )
        .await;
        assert_eq!(
            body["status"]["loadBalancer"]["ingress"],
            json!([{"ip": want, "ipMode": "VIP"}])
        );
        respond(send, body);
        // No VirtualService names the Service in spec.backends in the store
        // yet: no mirror writes.
        task.await.unwrap().expect("reconcile succeeds");
    }
    drop(ctx);
    if let Some((req, _)) = handle.next_request().await {
        panic!("unexpected {} {}", req.method(), req.uri());
    }
}

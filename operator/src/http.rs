//! `/metrics`, `/healthz` and `/readyz`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::metrics::Metrics;

/// What `/readyz` reports on.
#[derive(Debug, Default)]
pub struct Health {
    /// Every reflector has listed its kind once.
    pub stores_synced: AtomicBool,
    /// This replica is the leader (or runs without election).
    pub leading: AtomicBool,
    /// The controllers run.
    pub controllers_running: AtomicBool,
}

impl Health {
    /// Ready once the stores are synced and, on the leader, the controllers run.
    pub fn ready(&self) -> Result<(), &'static str> {
        if !self.stores_synced.load(Ordering::Relaxed) {
            return Err("caches not yet synced");
        }
        if self.leading.load(Ordering::Relaxed) && !self.controllers_running.load(Ordering::Relaxed)
        {
            return Err("leader, but the controllers are not running");
        }
        Ok(())
    }
}

fn text(status: StatusCode, body: String, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}

/// Answers one request.
pub fn respond(
    method: &Method,
    path: &str,
    metrics: &Metrics,
    health: &Health,
) -> Response<Full<Bytes>> {
    const PLAIN: &str = "text/plain; charset=utf-8";
    if method != Method::GET && method != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into(), PLAIN);
    }
    match path {
        "/metrics" => text(
            StatusCode::OK,
            metrics.encode(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
        "/healthz" | "/livez" => text(StatusCode::OK, "ok\n".into(), PLAIN),
        "/readyz" => match health.ready() {
            Ok(()) => text(StatusCode::OK, "ok\n".into(), PLAIN),
            Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n"), PLAIN),
        },
        _ => text(StatusCode::NOT_FOUND, "not found\n".into(), PLAIN),
    }
}

/// Binds `addr` (so a bad address fails startup) and returns the server future.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves until shutdown with the shared server's default limits
/// (connection cap, header read timeout, deadline per request); connections
/// in progress finish on their own.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    mut shutdown: watch::Receiver<bool>,
) {
    lvs_runtime::http::serve(
        listener,
        lvs_runtime::http::Limits::default(),
        move |req: Request<Incoming>| {
            let resp = respond(req.method(), req.uri().path(), &metrics, &health);
            async move { resp }
        },
        async move { crate::stopped(&mut shutdown).await },
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_needs_synced_caches_and_running_controllers_on_the_leader() {
        let h = Health::default();
        assert!(h.ready().is_err());
        h.stores_synced.store(true, Ordering::Relaxed);
        assert!(h.ready().is_ok(), "a synced follower is ready");
        h.leading.store(true, Ordering::Relaxed);
        assert_eq!(
            h.ready(),
            Err("leader, but the controllers are not running")
        );
        h.controllers_running.store(true, Ordering::Relaxed);
        assert!(h.ready().is_ok());
        let m = Metrics::new();
        assert_eq!(
            respond(&Method::GET, "/readyz", &m, &h).status(),
            StatusCode::OK
        );
        assert_eq!(
            respond(&Method::GET, "/nope", &m, &h).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            respond(&Method::POST, "/metrics", &m, &h).status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        h.stores_synced.store(false, Ordering::Relaxed);
        assert_eq!(
            respond(&Method::GET, "/readyz", &m, &h).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}

//! `/metrics`, `/healthz` and `/readyz`.
//!
//! `/readyz` says whether this replica can serve (caches synced, and on the
//! leader the controllers running). `/healthz` says whether it should be
//! restarted: a watch loop that exited or keeps failing, or a leader-election
//! loop that stopped making progress. The lease loop that gives up on
//! purpose (it could not renew) makes the process exit, so that is not a
//! `/healthz` matter.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use lvs_runtime::http::Body;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::metrics::Metrics;

/// How long a watch may keep failing (an error, then no successful event
/// before the next error) before `/healthz` reports it: long enough for an
/// API server restart, short enough that a watch that cannot recover (RBAC
/// revoked, a CRD gone) restarts the operator.
pub const WATCH_FAILING_BOUND: Duration = Duration::from_secs(120);

/// A failing watch whose last error is older than this counts as recovered.
/// kube-runtime retries a failing watch at most 30 s apart (jitter can double
/// that), and a watch that reconnects resumes without an event, so silence
/// after errors means it is back.
pub const WATCH_ERROR_FRESH: Duration = Duration::from_secs(90);

/// How long a leader-election candidate may go without finishing an attempt.
pub const CANDIDATE_BOUND: Duration = Duration::from_secs(60);

/// The leader-election loop's role, and how long it may go without progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaderRole {
    /// Trying to acquire: progress is a finished attempt (won or not).
    Candidate,
    /// Holding the lease: progress is a successful renewal, and the bound is
    /// the lease duration (past it another replica may lead).
    Holder { bound: Duration },
}

/// One watch loop, as `/healthz` sees it.
#[derive(Debug, Clone, Default)]
struct WatchLoop {
    ended: bool,
    /// The first error since the last successful event.
    failing_since: Option<Instant>,
    last_error: Option<(Instant, String)>,
}

/// The loops `/healthz` reports on.
#[derive(Debug, Default)]
struct Loops {
    watches: BTreeMap<&'static str, WatchLoop>,
    leader: Option<(LeaderRole, Instant)>,
}

/// What `/readyz` and `/healthz` report on.
#[derive(Debug, Default)]
pub struct Health {
    /// Every reflector has listed its kind once.
    pub stores_synced: AtomicBool,
    /// This replica is the leader (or runs without election).
    pub leading: AtomicBool,
    /// The controllers run.
    pub controllers_running: AtomicBool,
    loops: Mutex<Loops>,
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

    fn loops(&self) -> std::sync::MutexGuard<'_, Loops> {
        self.loops.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The watch of `kind` runs (from now on `/healthz` watches it).
    pub fn watch_started(&self, kind: &'static str) {
        self.loops().watches.insert(kind, WatchLoop::default());
    }

    /// The watch of `kind` delivered an event (a list or a change).
    pub fn watch_event(&self, kind: &'static str) {
        let mut l = self.loops();
        let w = l.watches.entry(kind).or_default();
        w.failing_since = None;
    }

    /// The watch of `kind` failed at `now` (it retries with backoff).
    pub fn watch_error(&self, kind: &'static str, now: Instant, error: &str) {
        let mut l = self.loops();
        let w = l.watches.entry(kind).or_default();
        if w.failing_since.is_none()
            || w.last_error
                .as_ref()
                .is_some_and(|(at, _)| now.saturating_duration_since(*at) > WATCH_ERROR_FRESH)
        {
            w.failing_since = Some(now);
        }
        w.last_error = Some((now, error.to_string()));
    }

    /// The watch loop of `kind` returned or panicked: its store no longer
    /// follows the API server.
    pub fn watch_ended(&self, kind: &'static str) {
        self.loops().watches.entry(kind).or_default().ended = true;
    }

    /// The leader-election loop made progress in `role` at `now`.
    pub fn leader_progress(&self, role: LeaderRole, now: Instant) {
        self.loops().leader = Some((role, now));
    }

    /// The leader-election loop ended on purpose (shutdown, or leadership
    /// lost, after which the process exits): nothing left to watch.
    pub fn leader_stopped(&self) {
        self.loops().leader = None;
    }

    /// Healthy unless a watch loop ended, a watch has kept failing for longer
    /// than [`WATCH_FAILING_BOUND`], or the leader-election loop made no
    /// progress within its bound. Every problem is named.
    pub fn live(&self, now: Instant) -> Result<(), String> {
        let l = self.loops();
        let mut problems = Vec::new();
        for (kind, w) in &l.watches {
            if w.ended {
                problems.push(format!("the {kind} watch loop has exited"));
                continue;
            }
            let (Some(since), Some((last, error))) = (w.failing_since, w.last_error.as_ref())
            else {
                continue;
            };
            let failing = now.saturating_duration_since(since);
            if failing > WATCH_FAILING_BOUND
                && now.saturating_duration_since(*last) <= WATCH_ERROR_FRESH
            {
                problems.push(format!(
                    "the {kind} watch has been failing for {}s (more than {}s): {error}",
                    failing.as_secs(),
                    WATCH_FAILING_BOUND.as_secs()
                ));
            }
        }
        if let Some((role, at)) = l.leader {
            let (bound, what) = match role {
                LeaderRole::Candidate => (CANDIDATE_BOUND, "finished no leader-election attempt"),
                LeaderRole::Holder { bound } => (bound, "renewed no leader lease"),
            };
            let idle = now.saturating_duration_since(at);
            if idle > bound {
                problems.push(format!(
                    "{what} for {}s (more than {}s)",
                    idle.as_secs(),
                    bound.as_secs()
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

impl lvs_runtime::health::Probes for Health {
    fn live(&self) -> Result<(), String> {
        Health::live(self, Instant::now())
    }

    fn ready(&self) -> Result<(), String> {
        Health::ready(self).map_err(str::to_string)
    }
}

fn text(status: StatusCode, body: String, content_type: &'static str) -> Response<Body> {
    let mut resp = Response::new(Body::new(body));
    *resp.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}

/// Answers one request.
pub fn respond(method: &Method, path: &str, metrics: &Metrics, health: &Health) -> Response<Body> {
    const PLAIN: &str = "text/plain; charset=utf-8";
    if method != Method::GET && method != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into(), PLAIN);
    }
    if let Some((code, body)) = lvs_runtime::health::route(path, health) {
        return text(code, body, PLAIN);
    }
    match path {
        "/metrics" => text(
            StatusCode::OK,
            metrics.encode(),
            lvs_runtime::metrics::CONTENT_TYPE,
        ),
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

    #[test]
    fn healthz_reports_a_watch_that_keeps_failing_or_has_exited() {
        let h = Health::default();
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        h.watch_started("VirtualService");
        h.watch_started("Node");
        assert_eq!(h.live(s(1000)), Ok(()), "quiet watches are healthy");

        // Errors every 30 s: healthy up to the bound, then unhealthy.
        for n in (0..=120).step_by(30) {
            h.watch_error("Node", s(n), "403 Forbidden");
        }
        assert_eq!(h.live(s(120)), Ok(()));
        h.watch_error("Node", s(150), "403 Forbidden");
        let why = h.live(s(150)).unwrap_err();
        assert!(
            why.contains("the Node watch has been failing for 150s") && why.contains("403"),
            "{why}"
        );
        // An event (a relist or a change) means it works again.
        h.watch_event("Node");
        assert_eq!(h.live(s(151)), Ok(()));

        // A watch that reconnects quietly after errors: no event, no more
        // errors. It is taken as recovered, and a later error starts a new
        // failing period instead of continuing the old one.
        h.watch_error("Node", s(200), "connection refused");
        assert_eq!(h.live(s(200 + 90 + 60)), Ok(()));
        h.watch_error("Node", s(600), "connection refused");
        assert_eq!(h.live(s(600)), Ok(()));

        h.watch_ended("VirtualService");
        let why = h.live(s(601)).unwrap_err();
        assert!(
            why.contains("the VirtualService watch loop has exited"),
            "{why}"
        );
    }

    #[test]
    fn healthz_reports_a_leader_loop_without_progress() {
        let h = Health::default();
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        h.leader_progress(LeaderRole::Candidate, s(0));
        assert_eq!(h.live(s(60)), Ok(()));
        assert!(
            h.live(s(61))
                .unwrap_err()
                .contains("finished no leader-election attempt for 61s")
        );
        let holder = LeaderRole::Holder {
            bound: Duration::from_secs(15),
        };
        h.leader_progress(holder, s(61));
        assert_eq!(h.live(s(76)), Ok(()));
        let why = h.live(s(77)).unwrap_err();
        assert!(why.contains("renewed no leader lease for 16s"), "{why}");
        // The loop ended on purpose: the process exits, /healthz has nothing to say.
        h.leader_stopped();
        assert_eq!(h.live(s(1000)), Ok(()));
    }

    #[test]
    fn healthz_answers_503_with_the_reason() {
        let h = Health::default();
        let m = Metrics::new();
        assert_eq!(
            respond(&Method::GET, "/healthz", &m, &h).status(),
            StatusCode::OK
        );
        h.watch_ended("LvsNode");
        assert_eq!(
            respond(&Method::GET, "/healthz", &m, &h).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            respond(&Method::GET, "/livez", &m, &h).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}

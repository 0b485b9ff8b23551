//! `/metrics`, `/healthz` (alias `/livez`), `/readyz`, `/status` and `/ha`
//! (the VIPs this node holds, for the other directors' probes) over
//! HTTP/1.1.
//!
//! Served by the shared server of `lvs-runtime` (hyper) within its limits:
//! a connection cap, a header read timeout and a total deadline per
//! request. `/metrics` and `/status` can be megabytes on a large table, so
//! only [`HEAVY_AT_ONCE`] of them are built and held at a time, off the
//! runtime thread; a request that gets no turn within the wait is answered
//! 503.

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use lvs_runtime::health::Probes;
use lvs_runtime::http::{Body, Gate, Limits};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::agent::{AgentStatus, Health};
use crate::metrics::Metrics;

/// What the routes read.
#[derive(Debug, Clone)]
pub struct HttpState {
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    pub status: watch::Receiver<AgentStatus>,
    /// `/healthz` fails when the sync loop has not woken up for this long.
    pub stale_after: Duration,
}

impl Probes for HttpState {
    /// Live while the sync loop wakes up within `stale_after`.
    fn live(&self) -> Result<(), String> {
        let age = self.health.heartbeat_age();
        if age <= self.stale_after.as_secs() {
            Ok(())
        } else {
            Err(format!("sync loop silent for {age}s"))
        }
    }

    /// Ready once a snapshot has been applied after a kernel read.
    fn ready(&self) -> Result<(), String> {
        if self.health.ready() {
            Ok(())
        } else {
            Err("not ready: no configuration applied to the kernel yet".into())
        }
    }
}

/// `/metrics` and `/status` responses built and held at once.
pub const HEAVY_AT_ONCE: usize = 2;

/// Serves the routes on `listener` within `limits` until the task is dropped.
pub async fn serve(listener: TcpListener, state: HttpState, limits: Limits) {
    // A heavy request waits at most half its deadline for a turn, so the
    // 503 still reaches the client in time.
    let gate = Gate::new(HEAVY_AT_ONCE, limits.deadline / 2);
    let state = Arc::new(state);
    lvs_runtime::http::serve(
        listener,
        limits,
        move |req: Request<Incoming>| {
            let (state, gate) = (state.clone(), gate.clone());
            async move { respond(req.method(), req.uri().path(), &state, &gate).await }
        },
        std::future::pending(),
    )
    .await;
}

async fn respond(method: &Method, path: &str, state: &HttpState, gate: &Gate) -> Response<Body> {
    let heavy = matches!(path, "/metrics" | "/status");
    let permit = if heavy && (method == Method::GET || method == Method::HEAD) {
        match gate.enter().await {
            Some(p) => Some(p),
            None => {
                return reply(
                    503,
                    "text/plain; charset=utf-8",
                    format!("busy: {HEAVY_AT_ONCE} responses of {path} in progress, retry\n"),
                    None,
                );
            }
        }
    } else {
        None
    };
    let (code, ctype, body) = if permit.is_some() {
        // Off the runtime thread: a large table takes a while to format,
        // and the probes must not wait for it.
        let (m, p, st) = (method.as_str().to_owned(), path.to_owned(), state.clone());
        tokio::task::spawn_blocking(move || route(&m, &p, &st))
            .await
            .unwrap_or_else(|e| {
                (
                    500,
                    "text/plain; charset=utf-8",
                    format!("building {path} failed: {e}\n"),
                )
            })
    } else {
        route(method.as_str(), path, state)
    };
    reply(code, ctype, body, permit)
}

fn reply(
    code: u16,
    ctype: &'static str,
    body: String,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
) -> Response<Body> {
    let mut resp = Response::new(Body::new(body).holding(permit));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(ctype),
    );
    resp
}

/// The response to one request line: status, content type, body.
pub fn route(method: &str, path: &str, state: &HttpState) -> (u16, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    if method != "GET" && method != "HEAD" {
        return (405, TEXT, "method not allowed\n".into());
    }
    let path = path.split('?').next().unwrap_or_default();
    if let Some((code, body)) = lvs_runtime::health::route(path, state) {
        return (code.as_u16(), TEXT, body);
    }
    match path {
        "/metrics" => (
            200,
            lvs_runtime::metrics::CONTENT_TYPE,
            state.metrics.render(),
        ),
        "/ha" => {
            let s = state.status.borrow();
            let answer = crate::ha::HaAnswer::new(&s.node, &s.vips, &s.ha_settling);
            (
                200,
                "application/json",
                serde_json::to_string(&answer).unwrap_or_default() + "\n",
            )
        }
        "/status" => {
            let s = state.status.borrow().clone();
            (
                200,
                "application/json",
                serde_json::to_string_pretty(&s).unwrap_or_default() + "\n",
            )
        }
        _ => (404, TEXT, "not found\n".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use std::time::Instant;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpSocket, TcpStream};

    use lvs_ipvs::{
        DestConfig, DestEntry, DestKey, DestStats, Destination, Family, FwdMethod, Protocol,
        Service, ServiceConfig, ServiceEntry, ServiceKey, Stats,
    };

    fn state() -> (HttpState, watch::Sender<AgentStatus>) {
        let (tx, rx) = watch::channel(AgentStatus::default());
        (
            HttpState {
                metrics: Arc::new(Metrics::default()),
                health: Arc::new(Health::new()),
                status: rx,
                stale_after: Duration::from_secs(100),
            },
            tx,
        )
    }

    #[test]
    fn ha_answers_the_roles_held() {
        let (s, tx) = state();
        assert_eq!(
            route("GET", "/ha", &s),
            (
                200,
                "application/json",
                "{\"node\":\"\",\"active\":[],\"standby\":[],\"settling\":[]}\n".into()
            )
        );
        tx.send_modify(|st| {
            st.node = "dir1".into();
            st.vips = vec![
                crate::ha::VipState {
                    address: "10.0.0.10".parse().unwrap(),
                    role: crate::ha::Role::Active,
                    since: 1.0,
                },
                crate::ha::VipState {
                    address: "fd00::10".parse().unwrap(),
                    role: crate::ha::Role::Standby,
                    since: 1.0,
                },
            ];
            st.ha_settling = vec!["dir2".into()];
        });
        let (code, _, body) = route("GET", "/ha", &s);
        assert_eq!(code, 200);
        let a: crate::ha::HaAnswer = serde_json::from_str(&body).unwrap();
        assert_eq!(a.node, "dir1");
        assert_eq!(
            a.active,
            vec!["10.0.0.10".parse::<std::net::IpAddr>().unwrap()]
        );
        assert_eq!(
            a.standby,
            vec!["fd00::10".parse::<std::net::IpAddr>().unwrap()]
        );
        assert_eq!(a.settling, vec!["dir2".to_string()]);
        // An older agent's answer, without the field, still reads.
        let old: crate::ha::HaAnswer =
            serde_json::from_str(r#"{"node":"a","active":[],"standby":[]}"#).unwrap();
        assert!(old.settling.is_empty());
    }

    /// A state whose /metrics has `services` services of 10 destinations.
    fn big_state(services: u32) -> HttpState {
        let (s, tx) = state();
        std::mem::forget(tx);
        let stats: Vec<_> = (0..services)
            .map(|i| {
                let svc = ServiceEntry {
                    service: Service {
                        key: ServiceKey::Tuple {
                            addr: std::net::Ipv4Addr::from(0x0a00_0000 + i).into(),
                            protocol: Protocol::TCP,
                            port: 80,
                        },
                        config: ServiceConfig::new(Family::V4, "rr"),
                    },
                    stats: Stats::default(),
                    destinations: (0..10u16)
                        .map(|d| DestEntry {
                            destination: Destination {
                                key: DestKey {
                                    addr: std::net::Ipv4Addr::from(0x0b00_0000 + i).into(),
                                    port: 8000 + d,
                                },
                                config: DestConfig::new(FwdMethod::Masq, 1),
                            },
                            stats: DestStats::default(),
                        })
                        .collect(),
                };
                (svc, Some(format!("default/vs-{i}")))
            })
            .collect();
        let destinations = stats.iter().map(|(e, _)| e.destinations.len()).sum();
        s.metrics.set_stats(stats, destinations);
        s
    }

    /// Short limits, so the tests of them take a few seconds.
    const TEST_LIMITS: Limits = Limits {
        max_connections: 512,
        header_timeout: Duration::from_secs(1),
        deadline: Duration::from_secs(2),
    };

    async fn start(s: HttpState) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, s, TEST_LIMITS));
        addr
    }

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).await.unwrap();
        out
    }

    /// A client with a small receive buffer that sends `request` and then
    /// reads nothing.
    async fn never_reading(addr: SocketAddr, request: &[u8]) -> TcpStream {
        let sock = TcpSocket::new_v4().unwrap();
        sock.set_recv_buffer_size(4096).unwrap();
        let mut c = sock.connect(addr).await.unwrap();
        c.write_all(request).await.unwrap();
        c
    }

    #[test]
    fn routes() {
        let (s, tx) = state();
        assert_eq!(route("GET", "/healthz", &s).0, 200);
        let (code, _, body) = route("GET", "/readyz", &s);
        assert_eq!(code, 503, "{body}");
        assert_eq!(route("GET", "/nope", &s).0, 404);
        assert_eq!(route("POST", "/metrics", &s).0, 405);
        let (code, ctype, body) = route("GET", "/metrics?x=1", &s);
        assert_eq!(
            (code, ctype),
            (
                200,
                "application/openmetrics-text; version=1.0.0; charset=utf-8"
            )
        );
        assert!(body.contains("lvs_agent_syncs_total"), "{body}");
        tx.send(AgentStatus {
            node: "n9".into(),
            ..AgentStatus::default()
        })
        .unwrap();
        let (_, _, body) = route("GET", "/status", &s);
        assert!(body.contains("\"node\": \"n9\""), "{body}");
    }

    #[tokio::test]
    async fn serves_over_tcp() {
        let (s, tx) = state();
        let addr = start(s).await;
        let out = get(addr, "/healthz").await;
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.ends_with("\r\n\r\nok\n"), "{out}");
        let out = get(addr, "/metrics").await;
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(
            out.to_ascii_lowercase().contains(
                "content-type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\n"
            ),
            "{out}"
        );
        assert!(out.contains("lvs_agent_syncs_total"), "{out}");
        tx.send(AgentStatus {
            node: "n9".into(),
            ..AgentStatus::default()
        })
        .unwrap();
        let out = get(addr, "/status").await;
        assert!(out.contains("\"node\": \"n9\""), "{out}");
        assert!(
            get(addr, "/nope")
                .await
                .starts_with("HTTP/1.1 404 Not Found\r\n")
        );
        assert!(
            get(addr, "/readyz")
                .await
                .starts_with("HTTP/1.1 503 Service Unavailable\r\n")
        );
    }

    /// A slow-loris client, one header byte at a time (each read well within
    /// any per-read timeout), is cut at the header timeout.
    #[tokio::test]
    async fn a_slow_loris_is_cut_at_the_header_timeout() {
        let (s, _tx) = state();
        let addr = start(s).await;
        let mut c = TcpStream::connect(addr).await.unwrap();
        let t = Instant::now();
        c.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
        let mut buf = [0u8; 1024];
        let cut = loop {
            if t.elapsed() > Duration::from_secs(8) {
                break false;
            }
            if c.write_all(b"X").await.is_err() {
                break true;
            }
            let read = tokio::time::timeout(Duration::from_millis(200), c.read(&mut buf)).await;
            if let Ok(Ok(0) | Err(_)) = read {
                break true;
            }
        };
        assert!(
            cut && t.elapsed() < TEST_LIMITS.header_timeout + Duration::from_secs(1),
            "a client sending its head one byte per 200 ms was still connected after {:?} (header timeout {:?})",
            t.elapsed(),
            TEST_LIMITS.header_timeout
        );
    }

    /// A client that asks for a multi-megabyte /metrics and never reads is
    /// cut at the deadline: it can never read the whole response.
    #[tokio::test]
    async fn a_metrics_client_that_never_reads_is_cut_at_the_deadline() {
        let s = big_state(1_000);
        let full = s.metrics.render().len();
        assert!(
            full > 4 << 20,
            "the test needs a large /metrics, got {full} bytes"
        );
        let addr = start(s).await;
        let mut c = never_reading(addr, b"GET /metrics HTTP/1.1\r\n\r\n").await;
        tokio::time::sleep(TEST_LIMITS.deadline + Duration::from_secs(1)).await;
        let mut got = 0;
        let mut buf = vec![0u8; 1 << 16];
        let read_all = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match c.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got += n,
                }
            }
        })
        .await;
        assert!(read_all.is_ok(), "the connection was not closed");
        assert!(
            got < full,
            "read {got} bytes after the deadline: the whole {full}-byte /metrics, so the connection outlived its {:?} deadline",
            TEST_LIMITS.deadline
        );
    }

    /// 100 never-reading /metrics clients and 100 slow-loris clients:
    /// /healthz still answers within a second, and at most HEAVY_AT_ONCE
    /// /metrics responses are built.
    #[tokio::test]
    async fn healthz_answers_within_a_second_under_200_abusive_clients() {
        let s = big_state(200);
        let addr = start(s).await;
        let mut held = Vec::new();
        for _ in 0..100 {
            held.push(never_reading(addr, b"GET /metrics HTTP/1.1\r\n\r\n").await);
            held.push(never_reading(addr, b"GET /healthz HTTP/1.1\r\nX-Slow: ").await);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        for _ in 0..3 {
            let t = Instant::now();
            let out = tokio::time::timeout(Duration::from_secs(1), get(addr, "/healthz"))
                .await
                .unwrap_or_else(|_| {
                    panic!("/healthz did not answer within 1 s under 200 abusive clients")
                });
            assert!(out.ends_with("\r\n\r\nok\n"), "{out}");
            assert!(t.elapsed() < Duration::from_secs(1));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

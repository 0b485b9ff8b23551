//! `/metrics`, `/healthz`, `/readyz` and `/status` over plain HTTP/1.1.
//!
//! Four GET routes, one request per connection: a hand-rolled server on a
//! tokio listener is smaller than any framework.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
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

const MAX_REQUEST: usize = 8 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Accepts connections until the task is dropped.
pub async fn serve(listener: TcpListener, state: HttpState) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let state = state.clone();
                tokio::spawn(async move {
                    if let Err(e) = handle(stream, &state).await {
                        tracing::debug!(error = %e, "http connection failed");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The response to one request line: status, content type, body.
pub fn route(method: &str, path: &str, state: &HttpState) -> (u16, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    if method != "GET" && method != "HEAD" {
        return (405, TEXT, "method not allowed\n".into());
    }
    let path = path.split('?').next().unwrap_or_default();
    match path {
        "/metrics" => (
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            state.metrics.render(),
        ),
        "/healthz" => {
            let age = state.health.heartbeat_age();
            if age <= state.stale_after.as_secs() {
                (200, TEXT, "ok\n".into())
            } else {
                (503, TEXT, format!("sync loop silent for {age}s\n"))
            }
        }
        "/readyz" => {
            if state.health.ready() {
                (200, TEXT, "ok\n".into())
            } else {
                (
                    503,
                    TEXT,
                    "not ready: no configuration applied to the kernel yet\n".into(),
                )
            }
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

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

async fn handle(mut stream: TcpStream, state: &HttpState) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let head_end = loop {
        let n = tokio::time::timeout(READ_TIMEOUT, stream.read(&mut chunk))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "request timeout"))??;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_REQUEST {
            break buf.len();
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end.min(buf.len())]);
    let mut parts = head.lines().next().unwrap_or_default().split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let (code, ctype, body) = if path.is_empty() || head_end > MAX_REQUEST {
        (
            400,
            "text/plain; charset=utf-8",
            "bad request\n".to_string(),
        )
    } else {
        route(method, path, state)
    };
    let mut resp = format!(
        "HTTP/1.1 {code} {}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reason(code),
        body.len()
    )
    .into_bytes();
    if method != "HEAD" {
        resp.extend_from_slice(body.as_bytes());
    }
    stream.write_all(&resp).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn routes() {
        let (s, tx) = state();
        assert_eq!(route("GET", "/healthz", &s).0, 200);
        let (code, _, body) = route("GET", "/readyz", &s);
        assert_eq!(code, 503, "{body}");
        assert_eq!(route("GET", "/nope", &s).0, 404);
        assert_eq!(route("POST", "/metrics", &s).0, 405);
        let (code, ctype, body) = route("GET", "/metrics?x=1", &s);
        assert_eq!(
            (code, ctype.starts_with("text/plain; version=0.0.4")),
            (200, true)
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
        let (s, _tx) = state();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve(listener, s));
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.ends_with("\r\n\r\nok\n"), "{out}");
        server.abort();
    }
}

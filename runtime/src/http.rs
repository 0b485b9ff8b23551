//! The HTTP/1.1 server (hyper) of `/metrics` and the health endpoints, with
//! the limits an endpoint on a node's host network needs.
//!
//! An endpoint that anyone on the network can reach must keep answering its
//! probes while clients misbehave. Each limit closes one way to hold it:
//! - [`Limits::max_connections`]: connections served at once; more wait in
//!   the listen backlog, so file descriptors and per-connection buffers are
//!   bounded.
//! - [`Limits::header_timeout`]: a client that does not send its request
//!   head in time (slow loris, idle connection) is cut.
//! - [`Limits::deadline`]: the whole exchange, the response written
//!   included, ends by then; a client that never reads its response is cut.
//! - One request per connection (no keep-alive) and a small read buffer
//!   ([`MAX_HEAD`]), so the deadline is the request's deadline.
//! - [`Gate`]: large responses are built only a few at a time, and a
//!   [`Body`] keeps its gate permit until the client has taken the body
//!   (it is handed to hyper in [`CHUNK`]-sized pieces, so a body stuck
//!   behind a client that does not read still holds its permit).

use std::convert::Infallible;
use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{debug, info, warn};

/// Largest request head (request line and headers) read, in bytes; hyper
/// answers 431 above it. Also the most hyper buffers for writing before it
/// waits for the client.
pub const MAX_HEAD: usize = 16 * 1024;

/// Size of the pieces a [`Body`] hands to hyper.
pub const CHUNK: usize = 64 * 1024;

/// The server's limits (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// Time a client has to send its request head.
    pub header_timeout: Duration,
    /// Time for the whole connection: request, handling and the response
    /// written to the socket.
    pub deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 512,
            header_timeout: Duration::from_secs(5),
            deadline: Duration::from_secs(10),
        }
    }
}

/// A response body held in memory, handed out in [`CHUNK`]s, optionally
/// holding a [`Gate`] permit until the last chunk is taken or the
/// connection ends.
#[derive(Debug, Default)]
pub struct Body {
    data: Bytes,
    permit: Option<OwnedSemaphorePermit>,
}

impl Body {
    pub fn new(data: impl Into<Bytes>) -> Self {
        Self {
            data: data.into(),
            permit: None,
        }
    }

    /// Keeps `permit` until the body has been handed out or dropped.
    pub fn holding(mut self, permit: Option<OwnedSemaphorePermit>) -> Self {
        self.permit = permit;
        self
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.data.is_empty() {
            self.permit = None;
            return Poll::Ready(None);
        }
        let n = self.data.len().min(CHUNK);
        let chunk = self.data.split_to(n);
        if self.data.is_empty() {
            self.permit = None;
        }
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.len() as u64)
    }
}

/// Admits a few expensive responses at a time (a large `/metrics`).
#[derive(Debug, Clone)]
pub struct Gate {
    permits: Arc<Semaphore>,
    wait: Duration,
}

impl Gate {
    /// `size` responses at once; a request waits at most `wait` for a turn.
    pub fn new(size: usize, wait: Duration) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(size.max(1))),
            wait,
        }
    }

    /// A turn, or None when none came free within the wait.
    pub async fn enter(&self) -> Option<OwnedSemaphorePermit> {
        tokio::time::timeout(self.wait, self.permits.clone().acquire_owned())
            .await
            .ok()?
            .ok()
    }
}

/// Serves `handler` on `listener` within `limits` until `shutdown` resolves;
/// connections in progress then end on their own (within the deadline).
pub async fn serve<H, F, B>(
    listener: TcpListener,
    limits: Limits,
    handler: H,
    shutdown: impl Future<Output = ()>,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    if let Ok(addr) = listener.local_addr() {
        info!(
            %addr,
            max_connections = limits.max_connections,
            header_timeout = ?limits.header_timeout,
            deadline = ?limits.deadline,
            "serving HTTP"
        );
    }
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    tokio::pin!(shutdown);
    loop {
        if slots.available_permits() == 0 {
            debug!(
                max_connections = limits.max_connections,
                "HTTP connection limit reached; new connections wait"
            );
        }
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(s) => s,
                // The semaphore is never closed.
                Err(_) => return,
            },
            () = &mut shutdown => return,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and the like: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let svc = service_fn(move |req: Request<Incoming>| {
                let resp = handler(req);
                async move { Ok::<_, Infallible>(resp.await) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .keep_alive(false)
                .max_buf_size(MAX_HEAD);
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
            match tokio::time::timeout(limits.deadline, conn).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => debug!(%peer, error = %e, "HTTP connection ended with an error"),
                Err(_) => {
                    debug!(%peer, deadline = ?limits.deadline, "HTTP connection cut at its deadline")
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    const BIG: usize = 16 << 20;

    async fn start(limits: Limits, gate: Gate) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let big = Bytes::from(vec![b'x'; BIG]);
        tokio::spawn(serve(
            listener,
            limits,
            move |req: Request<Incoming>| {
                let (gate, big) = (gate.clone(), big.clone());
                async move {
                    if req.uri().path() == "/big" {
                        match gate.enter().await {
                            Some(p) => Response::new(Body::new(big).holding(Some(p))),
                            None => {
                                let mut r = Response::new(Body::new("busy\n"));
                                *r.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
                                r
                            }
                        }
                    } else {
                        Response::new(Body::new("ok\n"))
                    }
                }
            },
            std::future::pending(),
        ));
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

    /// Reads until EOF or error; the number of bytes read.
    async fn drain(c: &mut TcpStream) -> usize {
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0;
        loop {
            match c.read(&mut buf).await {
                Ok(0) | Err(_) => return total,
                Ok(n) => total += n,
            }
        }
    }

    #[tokio::test]
    async fn a_client_that_never_reads_is_cut_at_the_deadline() {
        let limits = Limits {
            deadline: Duration::from_millis(500),
            ..Limits::default()
        };
        let addr = start(limits, Gate::new(4, Duration::from_secs(1))).await;
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET /big HTTP/1.1\r\n\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let got = tokio::time::timeout(Duration::from_secs(5), drain(&mut c))
            .await
            .expect("the connection is closed");
        assert!(
            got < BIG,
            "read {got} bytes: the whole {BIG}-byte body came although the client read nothing within the deadline"
        );
    }

    #[tokio::test]
    async fn a_slow_head_is_cut_at_the_header_timeout() {
        let limits = Limits {
            header_timeout: Duration::from_millis(300),
            ..Limits::default()
        };
        let addr = start(limits, Gate::new(4, Duration::from_secs(1))).await;
        let mut c = TcpStream::connect(addr).await.unwrap();
        let t = Instant::now();
        c.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
        // One header byte at a time, each well within any per-read timeout.
        while t.elapsed() < Duration::from_secs(3) {
            if c.write_all(b"X").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out).await;
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "a client dribbling its head still connected after {:?}",
            t.elapsed()
        );
    }

    #[tokio::test]
    async fn probes_answer_while_many_clients_hold_big_responses() {
        let limits = Limits {
            max_connections: 64,
            ..Limits::default()
        };
        let gate = Gate::new(2, Duration::from_millis(200));
        let addr = start(limits, gate.clone()).await;
        let mut held = Vec::new();
        for _ in 0..40 {
            let mut c = TcpStream::connect(addr).await.unwrap();
            c.write_all(b"GET /big HTTP/1.1\r\n\r\n").await.unwrap();
            held.push(c);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let t = Instant::now();
        let out = tokio::time::timeout(Duration::from_secs(1), get(addr, "/healthz"))
            .await
            .expect("/healthz answered within 1 s");
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.ends_with("\r\n\r\nok\n"), "{out}");
        assert!(t.elapsed() < Duration::from_secs(1));
        // Only the gate's two bodies exist; the others were refused a turn.
        assert_eq!(gate.permits.available_permits(), 0);
    }

    #[tokio::test]
    async fn connections_over_the_limit_wait_for_a_free_slot() {
        let limits = Limits {
            max_connections: 2,
            header_timeout: Duration::from_millis(400),
            deadline: Duration::from_secs(5),
        };
        let addr = start(limits, Gate::new(1, Duration::from_secs(1))).await;
        let _idle: Vec<TcpStream> = vec![
            TcpStream::connect(addr).await.unwrap(),
            TcpStream::connect(addr).await.unwrap(),
        ];
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t = Instant::now();
        let out = tokio::time::timeout(Duration::from_secs(3), get(addr, "/healthz"))
            .await
            .expect("served once an idle connection was cut");
        assert!(out.ends_with("ok\n"), "{out}");
        assert!(
            t.elapsed() >= Duration::from_millis(200),
            "served after {:?}: the third connection did not wait for a slot",
            t.elapsed()
        );
    }
}

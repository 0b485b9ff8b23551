//! The byte-level boundary between the client and the kernel.
//!
//! The client only needs "send one datagram" and "receive one datagram", so
//! request-level tests can swap the socket for [`ScriptedTransport`], which
//! records the exact bytes sent and replays replies computed from them.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_GENERIC};

/// Largest datagram the client accepts. The kernel sizes dump datagrams at
/// most 32 KiB; twice that leaves room and lets truncation be detected.
pub const RECV_BUFFER_SIZE: usize = 64 * 1024;

/// Requested socket receive buffer. Every ack of a pipelined batch is queued
/// before `sendmsg` returns, so the buffer must hold a whole batch's acks or
/// the kernel drops them (ENOBUFS). The kernel caps this at 2 * rmem_max.
const SOCKET_RCVBUF: i32 = 1 << 20;

pub trait Transport: Send {
    /// Send one datagram (possibly several netlink messages) in one sendmsg.
    fn send(&mut self, datagram: &[u8]) -> io::Result<()>;

    /// Receive one datagram into `buf` (replacing its contents). Returns the
    /// datagram's real length, which exceeds `buf.len()` if it was truncated.
    fn recv(&mut self, buf: &mut Vec<u8>) -> io::Result<usize>;
}

/// A generic-netlink socket connected to the kernel.
pub struct NetlinkTransport {
    socket: Socket,
}

impl fmt::Debug for NetlinkTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetlinkTransport").finish_non_exhaustive()
    }
}

impl NetlinkTransport {
    /// Open a socket in the caller's network namespace (IPVS tables are per
    /// namespace). Needs CAP_NET_ADMIN for every IPVS command, reads included.
    pub fn open() -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_GENERIC)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        // Capped acks keep error replies small (we match them by sequence
        // number, not by the echoed request), extended acks add the kernel's
        // error text. Both are optional refinements, so failures are ignored.
        if let Err(e) = socket.set_cap_ack(true) {
            tracing::debug!(error = %e, "NETLINK_CAP_ACK not supported");
        }
        if let Err(e) = socket.set_ext_ack(true) {
            tracing::debug!(error = %e, "NETLINK_EXT_ACK not supported");
        }
        if let Err(e) = socket.set_rx_buf_sz(SOCKET_RCVBUF) {
            tracing::debug!(error = %e, "could not raise SO_RCVBUF");
        }
        Ok(Self { socket })
    }
}

impl Transport for NetlinkTransport {
    fn send(&mut self, datagram: &[u8]) -> io::Result<()> {
        let sent = self.socket.send(datagram, 0)?;
        if sent != datagram.len() {
            return Err(io::Error::other(format!(
                "short netlink send: {sent} of {} bytes",
                datagram.len()
            )));
        }
        Ok(())
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        buf.clear();
        buf.reserve(RECV_BUFFER_SIZE);
        // MSG_TRUNC makes recv return the full datagram length, so a reply
        // larger than the buffer is reported instead of silently cut.
        self.socket.recv(buf, libc::MSG_TRUNC)
    }
}

/// Everything a [`ScriptedTransport`] was asked to send, one entry per
/// sendmsg, shared with the test that created it.
#[derive(Debug, Clone, Default)]
pub struct SentLog(Arc<Mutex<Vec<Vec<u8>>>>);

impl SentLog {
    pub fn datagrams(&self) -> Vec<Vec<u8>> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&self) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear()
    }
}

type Responder = Box<dyn FnMut(&[u8]) -> Vec<Vec<u8>> + Send>;

/// A fake kernel for request-level tests: each sent datagram is recorded
/// and handed to `responder`, whose returned datagrams are queued for recv.
/// A recv with nothing queued fails instead of blocking, so a client waiting
/// for a reply that will never come makes the test fail rather than hang.
pub struct ScriptedTransport {
    responder: Responder,
    queue: VecDeque<Vec<u8>>,
    log: SentLog,
}

impl fmt::Debug for ScriptedTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScriptedTransport")
            .field("queued", &self.queue.len())
            .field("sent", &self.log.len())
            .finish()
    }
}

impl ScriptedTransport {
    pub fn new(responder: impl FnMut(&[u8]) -> Vec<Vec<u8>> + Send + 'static) -> (Self, SentLog) {
        let log = SentLog::default();
        let transport = Self {
            responder: Box::new(responder),
            queue: VecDeque::new(),
            log: log.clone(),
        };
        (transport, log)
    }
}

impl Transport for ScriptedTransport {
    fn send(&mut self, datagram: &[u8]) -> io::Result<()> {
        self.log
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(datagram.to_vec());
        self.queue.extend((self.responder)(datagram));
        Ok(())
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        let datagram = self.queue.pop_front().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::WouldBlock,
                "scripted transport has no reply queued",
            )
        })?;
        buf.clear();
        buf.extend_from_slice(&datagram);
        Ok(datagram.len())
    }
}

//! Blocking IPVS client over a [`Transport`].
//!
//! Blocking keeps the client small and lets it run anywhere: the node agent
//! calls it from `tokio::task::spawn_blocking`. Netlink requests to the
//! kernel are answered synchronously during `sendmsg`, so a call never waits
//! on anything but the kernel.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use netlink_packet_core::{NLM_F_ACK, NLM_F_REQUEST, NLMSG_ERROR};

use crate::codec::{IpvsAttr, IpvsCmd, IpvsMessage, Nested};
use crate::error::{Error, OpError, Result};
use crate::ops::Op;
use crate::transport::{NetlinkTransport, Transport};
mod wire;
use wire::{ack_errno, ext_ack_message, ipvs_payload, nested_service, protocol};

use crate::types::{
    DestEntry, Destination, IpvsInfo, Service, ServiceEntry, ServiceKey, Stats, SyncDaemon,
    Timeouts,
};

const GENL_ID_CTRL: u16 = netlink_packet_generic::constants::GENL_ID_CTRL;
const CTRL_ATTR_FAMILY_ID: u16 = netlink_packet_generic::constants::CTRL_ATTR_FAMILY_ID;
const NLMSGERR_ATTR_MSG: u16 = 1;
const NLMSG_HDRLEN: usize = 16;
const GENL_HDRLEN: usize = netlink_packet_generic::constants::GENL_HDRLEN;

/// Default number of netlink messages per sendmsg.
pub const DEFAULT_BATCH_SIZE: usize = 64;

/// Traffic counters of one client, shareable with a metrics exporter while
/// the client itself is busy in a blocking task.
#[derive(Debug, Default)]
pub struct RequestCounters {
    requests: AtomicU64,
    sendmsgs: AtomicU64,
    recvmsgs: AtomicU64,
}

/// Point-in-time copy of [`RequestCounters`]; subtract two to measure one sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestCounts {
    /// Netlink request messages sent (a batch of N ops counts N).
    pub requests: u64,
    /// sendmsg calls made (a batch of N ops counts 1).
    pub sendmsgs: u64,
    /// Datagrams received.
    pub recvmsgs: u64,
}

impl RequestCounters {
    pub fn snapshot(&self) -> RequestCounts {
        RequestCounts {
            requests: self.requests.load(Ordering::Relaxed),
            sendmsgs: self.sendmsgs.load(Ordering::Relaxed),
            recvmsgs: self.recvmsgs.load(Ordering::Relaxed),
        }
    }
}

impl std::ops::Sub for RequestCounts {
    type Output = RequestCounts;
    fn sub(self, rhs: Self) -> Self {
        RequestCounts {
            requests: self.requests.wrapping_sub(rhs.requests),
            sendmsgs: self.sendmsgs.wrapping_sub(rhs.sendmsgs),
            recvmsgs: self.recvmsgs.wrapping_sub(rhs.recvmsgs),
        }
    }
}

/// What one worker of a parallel dump read: (service index, destinations).
type WorkerPart = Vec<(usize, Vec<DestEntry>)>;

enum Flow {
    More,
    Done,
}

/// Client for the kernel's IPVS table in the caller's network namespace.
#[derive(Debug)]
pub struct IpvsClient<T: Transport = NetlinkTransport> {
    transport: T,
    family_id: u16,
    last_seq: u32,
    batch_size: usize,
    counters: Arc<RequestCounters>,
    rx: Vec<u8>,
}

impl IpvsClient<NetlinkTransport> {
    /// Open a netlink socket and resolve the IPVS family id.
    pub fn connect() -> Result<Self> {
        let transport = NetlinkTransport::open().map_err(|source| Error::Io {
            action: "open",
            source,
        })?;
        Self::new(transport)
    }

    /// [`dump_all_parallel_with`](Self::dump_all_parallel_with) on
    /// `connections` fresh netlink sockets in the caller's network namespace.
    pub fn dump_all_parallel(&mut self, connections: usize) -> Result<Vec<ServiceEntry>> {
        self.dump_all_parallel_with(connections, NetlinkTransport::open)
    }
}

impl<T: Transport> IpvsClient<T> {
    /// Wrap a transport and resolve the IPVS family id through nlctrl (the id
    /// is assigned when ip_vs loads, so it cannot be a constant).
    pub fn new(transport: T) -> Result<Self> {
        let mut client = Self::with_family_id(transport, 0);
        client.family_id = client.resolve_family()?;
        tracing::debug!(family_id = client.family_id, "resolved IPVS family");
        Ok(client)
    }

    /// Wrap a transport with an already known family id (no request sent).
    pub fn with_family_id(transport: T, family_id: u16) -> Self {
        Self {
            transport,
            family_id,
            last_seq: 0,
            batch_size: DEFAULT_BATCH_SIZE,
            counters: Arc::default(),
            rx: Vec::new(),
        }
    }

    pub fn family_id(&self) -> u16 {
        self.family_id
    }

    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Messages per sendmsg in [`apply`](Self::apply); at least 1. Larger
    /// batches save syscalls; every ack of a batch must fit in the socket's
    /// receive buffer (256 fits the default limits).
    pub fn set_batch_size(&mut self, batch_size: usize) {
        self.batch_size = batch_size.max(1);
    }

    pub fn counters(&self) -> Arc<RequestCounters> {
        Arc::clone(&self.counters)
    }

    pub fn transport(&self) -> &T {
        &self.transport
    }

    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Apply write operations, pipelining up to `batch_size` of them per
    /// sendmsg, each with its own sequence number and NLM_F_ACK. The kernel
    /// keeps going after a failed message, so the result has one entry per
    /// op, in order. `Err` means the transport failed; the outcome of the
    /// batch in flight is then unknown and the caller should re-read state.
    pub fn apply(&mut self, ops: &[Op]) -> Result<Vec<Result<(), OpError>>> {
        let mut results = Vec::with_capacity(ops.len());
        for (n, chunk) in ops.chunks(self.batch_size).enumerate() {
            let base = n * self.batch_size;
            let mut datagram = Vec::new();
            let mut pending = HashMap::with_capacity(chunk.len());
            for (i, op) in chunk.iter().enumerate() {
                let seq = self.next_seq();
                datagram.extend(self.encode(op.to_message(), NLM_F_REQUEST | NLM_F_ACK, seq));
                pending.insert(seq, i);
            }
            tracing::debug!(
                ops = chunk.len(),
                bytes = datagram.len(),
                "sending IPVS batch"
            );
            self.send(&datagram, chunk.len())?;

            let mut outcome: Vec<Option<Result<(), OpError>>> = vec![None; chunk.len()];
            self.receive(&|| "IPVS batch".to_string(), |header, bytes| {
                let Some(&i) = pending.get(&header.sequence_number) else {
                    tracing::debug!(seq = header.sequence_number, "ignoring stale netlink reply");
                    return Ok(Flow::More);
                };
                if header.message_type != NLMSG_ERROR {
                    tracing::debug!(
                        seq = header.sequence_number,
                        kind = header.message_type,
                        "ignoring non-ack reply to a write"
                    );
                    return Ok(Flow::More);
                }
                let errno = ack_errno(bytes, &chunk[i].to_string())?;
                pending.remove(&header.sequence_number);
                outcome[i] = Some(match errno {
                    None => Ok(()),
                    Some(errno) => {
                        let err = OpError {
                            index: base + i,
                            op: chunk[i].to_string(),
                            errno,
                            ext_ack: ext_ack_message(header.flags, bytes),
                        };
                        tracing::debug!(error = %err, "IPVS operation refused");
                        Err(err)
                    }
                });
                Ok(if pending.is_empty() {
                    Flow::Done
                } else {
                    Flow::More
                })
            })?;
            for (i, o) in outcome.into_iter().enumerate() {
                results.push(o.ok_or_else(|| Error::Protocol {
                    request: chunk[i].to_string(),
                    what: "batch ended without an ack for this operation".into(),
                })?);
            }
        }
        Ok(results)
    }

    /// Every service with its stats (one GET_SERVICE dump).
    pub fn services(&mut self) -> Result<Vec<(Service, Stats)>> {
        let what = "GET_SERVICE dump";
        let mut services = Vec::new();
        let request = IpvsMessage::new(IpvsCmd::GetService, vec![]);
        self.dump_raw(request, &|| what.to_string(), |bytes| {
            if let Some(entry) = crate::fast::service_entry(bytes) {
                services.push(entry);
                return Ok(());
            }
            let msg = ipvs_payload(bytes, what)?;
            let attrs = nested_service(&msg)
                .ok_or_else(|| protocol(what, "reply without a service nest"))?;
            services.push(Service::from_attrs(attrs).map_err(|source| Error::Decode {
                request: what.into(),
                source,
            })?);
            Ok(())
        })?;
        Ok(services)
    }

    /// The destinations of one service (one GET_DEST dump), sorted by key.
    /// A service that does not exist yields ESRCH.
    pub fn destinations(&mut self, service: &ServiceKey) -> Result<Vec<DestEntry>> {
        // Built only for an error: a full read makes one such dump per service.
        let what = || format!("GET_DEST dump of {service}");
        let request = IpvsMessage::new(
            IpvsCmd::GetDest,
            vec![IpvsAttr::Service(Nested::new(service.to_attrs()))],
        );
        let family = service.family();
        let mut dests = Vec::new();
        self.dump_raw(request, &what, |bytes| {
            if let Some(entry) = crate::fast::dest_entry(bytes, family) {
                dests.push(entry);
                return Ok(());
            }
            let msg = ipvs_payload(bytes, &what())?;
            let attrs = msg
                .nlas
                .iter()
                .find_map(|a| match a {
                    IpvsAttr::Dest(n) => Some(n.attrs.as_slice()),
                    _ => None,
                })
                .ok_or_else(|| protocol(&what(), "reply without a destination nest"))?;
            let (destination, stats) =
                Destination::from_attrs(attrs, family).map_err(|source| Error::Decode {
                    request: what(),
                    source,
                })?;
            dests.push(DestEntry { destination, stats });
            Ok(())
        })?;
        dests.sort();
        Ok(dests)
    }

    /// The whole table: every service and its destinations, sorted by key.
    /// Costs 1 + (number of services) requests, since netlink runs one dump
    /// at a time per socket.
    pub fn dump_all(&mut self) -> Result<Vec<ServiceEntry>> {
        let mut entries = Vec::new();
        for (service, stats) in self.services()? {
            let destinations = self.destinations(&service.key)?;
            entries.push(ServiceEntry {
                service,
                stats,
                destinations,
            });
        }
        entries.sort();
        Ok(entries)
    }

    /// The whole table like [`dump_all`](Self::dump_all) (the same result),
    /// with the per-service GET_DEST dumps spread over `connections` extra
    /// sockets opened by `open`, one thread each; this client's socket only
    /// runs the GET_SERVICE dump. Netlink runs one dump at a time per socket
    /// and the kernel serializes the dump callbacks on its IPVS mutex, but
    /// the syscalls around them, the copies and the decoding overlap.
    ///
    /// `open` runs on the calling thread (a socket belongs to the network
    /// namespace of the thread that opens it). Every socket counts in this
    /// client's [`counters`](Self::counters).
    pub fn dump_all_parallel_with(
        &mut self,
        connections: usize,
        open: impl Fn() -> std::io::Result<T>,
    ) -> Result<Vec<ServiceEntry>> {
        let transports = (0..connections.max(1))
            .map(|_| {
                open().map_err(|source| Error::Io {
                    action: "open",
                    source,
                })
            })
            .collect::<Result<Vec<T>>>()?;
        let services = self.services()?;
        let keys: Vec<ServiceKey> = services.iter().map(|(s, _)| s.key).collect();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let failed = std::sync::atomic::AtomicBool::new(false);
        let (family_id, counters) = (self.family_id, &self.counters);
        let (keys, next, failed) = (&keys, &next, &failed);
        let parts: Vec<Result<WorkerPart>> = std::thread::scope(|scope| {
            let workers: Vec<_> = transports
                .into_iter()
                .map(|transport| {
                    scope.spawn(move || {
                        let mut client = IpvsClient::with_family_id(transport, family_id);
                        client.counters = Arc::clone(counters);
                        let mut done = Vec::new();
                        while !failed.load(Ordering::Relaxed) {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(key) = keys.get(i) else { break };
                            match client.destinations(key) {
                                Ok(dests) => done.push((i, dests)),
                                Err(e) => {
                                    failed.store(true, Ordering::Relaxed);
                                    return Err(e);
                                }
                            }
                        }
                        Ok(done)
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        let mut dests: Vec<Option<Vec<DestEntry>>> = vec![None; keys.len()];
        for part in parts {
            for (i, d) in part? {
                dests[i] = Some(d);
            }
        }
        let mut entries = services
            .into_iter()
            .zip(dests)
            .map(|((service, stats), destinations)| {
                let destinations = destinations.ok_or_else(|| Error::Protocol {
                    request: format!("GET_DEST dump of {}", service.key),
                    what: "no worker read this service's destinations".into(),
                })?;
                Ok(ServiceEntry {
                    service,
                    stats,
                    destinations,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        entries.sort();
        Ok(entries)
    }

    /// One service by key; `None` if it does not exist.
    pub fn service(&mut self, key: &ServiceKey) -> Result<Option<(Service, Stats)>> {
        let what = format!("GET_SERVICE {key}");
        let request = IpvsMessage::new(
            IpvsCmd::GetService,
            vec![IpvsAttr::Service(Nested::new(key.to_attrs()))],
        );
        let replies = match self.request(request, &what) {
            Err(Error::Kernel { errno, .. }) if errno == crate::error::errno::ESRCH => {
                return Ok(None);
            }
            other => other?,
        };
        let msg = replies
            .first()
            .ok_or_else(|| protocol(&what, "no reply before the ack"))?;
        let attrs =
            nested_service(msg).ok_or_else(|| protocol(&what, "reply without a service nest"))?;
        Service::from_attrs(attrs)
            .map(Some)
            .map_err(|source| Error::Decode {
                request: what,
                source,
            })
    }

    /// IPVS version and connection table size (GET_INFO).
    pub fn info(&mut self) -> Result<IpvsInfo> {
        let what = "GET_INFO";
        let replies = self.request(IpvsMessage::new(IpvsCmd::GetInfo, vec![]), what)?;
        let (mut version, mut conn_tab_size) = (None, None);
        for attr in replies.iter().flat_map(|m| &m.nlas) {
            match attr {
                IpvsAttr::InfoVersion(v) => version = Some(*v),
                IpvsAttr::InfoConnTabSize(v) => conn_tab_size = Some(*v),
                _ => {}
            }
        }
        Ok(IpvsInfo {
            version: version.ok_or_else(|| protocol(what, "reply without a version"))?,
            conn_tab_size: conn_tab_size
                .ok_or_else(|| protocol(what, "reply without a connection table size"))?,
        })
    }

    /// Global TCP / TCP-FIN / UDP timeouts (GET_CONFIG).
    pub fn timeouts(&mut self) -> Result<Timeouts> {
        let replies = self.request(IpvsMessage::new(IpvsCmd::GetConfig, vec![]), "GET_CONFIG")?;
        let mut t = Timeouts::default();
        for attr in replies.iter().flat_map(|m| &m.nlas) {
            match attr {
                IpvsAttr::TimeoutTcp(v) => t.tcp = *v,
                IpvsAttr::TimeoutTcpFin(v) => t.tcp_fin = *v,
                IpvsAttr::TimeoutUdp(v) => t.udp = *v,
                _ => {}
            }
        }
        Ok(t)
    }

    /// SET_CONFIG; zero fields keep their current value.
    pub fn set_timeouts(&mut self, t: Timeouts) -> Result<()> {
        let msg = IpvsMessage::new(
            IpvsCmd::SetConfig,
            vec![
                IpvsAttr::TimeoutTcp(t.tcp),
                IpvsAttr::TimeoutTcpFin(t.tcp_fin),
                IpvsAttr::TimeoutUdp(t.udp),
            ],
        );
        self.request(msg, "SET_CONFIG").map(drop)
    }

    /// Running connection-sync daemons (GET_DAEMON dump).
    pub fn daemons(&mut self) -> Result<Vec<SyncDaemon>> {
        let what = "GET_DAEMON dump";
        let replies = self.dump(IpvsMessage::new(IpvsCmd::GetDaemon, vec![]), what)?;
        replies
            .iter()
            .flat_map(|m| &m.nlas)
            .filter_map(|a| match a {
                IpvsAttr::Daemon(n) => Some(n),
                _ => None,
            })
            .map(|n| {
                SyncDaemon::from_attrs(&n.attrs).map_err(|source| Error::Decode {
                    request: what.into(),
                    source,
                })
            })
            .collect()
    }

    /// Start a connection-sync daemon (NEW_DAEMON).
    pub fn add_daemon(&mut self, daemon: &SyncDaemon) -> Result<()> {
        let msg = IpvsMessage::new(
            IpvsCmd::NewDaemon,
            vec![IpvsAttr::Daemon(Nested::new(daemon.to_attrs()))],
        );
        self.request(msg, "NEW_DAEMON").map(drop)
    }

    /// Stop the connection-sync daemon of the given role (DEL_DAEMON).
    pub fn del_daemon(&mut self, state: crate::types::DaemonState) -> Result<()> {
        let msg = IpvsMessage::new(
            IpvsCmd::DelDaemon,
            vec![IpvsAttr::Daemon(Nested::new(vec![
                crate::codec::DaemonAttr::State(state.to_wire()),
            ]))],
        );
        self.request(msg, "DEL_DAEMON").map(drop)
    }

    /// Zero the counters of one service, or of all services with `None`.
    /// Not used by the node agent: counters belong to whoever reads them.
    pub fn zero(&mut self, service: Option<&ServiceKey>) -> Result<()> {
        let nlas = service
            .map(|k| vec![IpvsAttr::Service(Nested::new(k.to_attrs()))])
            .unwrap_or_default();
        self.request(IpvsMessage::new(IpvsCmd::Zero, nlas), "ZERO")
            .map(drop)
    }

    /// Delete every service in the namespace. Never used by the node agent,
    /// which must not touch rules it does not own; exists for tests and tools.
    pub fn flush(&mut self) -> Result<()> {
        self.request(IpvsMessage::new(IpvsCmd::Flush, vec![]), "FLUSH")
            .map(drop)
    }
}

//! The real kernel: IPVS through `lvs-ipvs` (generic netlink), addresses
//! and links through `rtnetlink`, fou ports through the "fou" generic
//! netlink family, sysctls through `/proc/sys`. Everything acts on the
//! network namespace the agent runs in.
//!
//! IPVS services and destinations are `lvs-ipvs`'s own types all through
//! the agent, so the IPVS calls here pass them straight to the client.
//!
//! The dataplane is blocking. rtnetlink is async, so the dataplane owns a
//! single-threaded tokio runtime that drives the rtnetlink connection only
//! while a request is in flight. It must therefore be used from a thread
//! that is not itself running a tokio runtime (the agent's reconcile
//! thread).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use lvs_ipvs as ipvs;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use rtnetlink::packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload,
};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use rtnetlink::packet_route::link::{
    GreIOFlags, InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::{
    AddressMessageBuilder, LinkGre, LinkGre6, LinkMessageBuilder, LinkUnspec, RouteMessageBuilder,
};

use super::fou::FouClient;
use super::{Dataplane, DataplaneError, DpResult, errno};
use crate::kernel::{
    AddrKind, Address, DaemonSpec, FouPort, Link, OpText, RTPROT_LVS, Scope, TunnelDevice,
    TunnelKind,
};

/// The kernel of the agent's network namespace.
pub struct NetlinkDataplane {
    ipvs: Option<ipvs::IpvsClient>,
    rt: tokio::runtime::Runtime,
    rtnl: rtnetlink::Handle,
    fou: Option<FouClient>,
    sysctl_root: std::path::PathBuf,
}

impl std::fmt::Debug for NetlinkDataplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetlinkDataplane")
            .field("ipvs_connected", &self.ipvs.is_some())
            .field("sysctl_root", &self.sysctl_root)
            .finish_non_exhaustive()
    }
}

impl NetlinkDataplane {
    /// Opens the rtnetlink connection. IPVS and fou connect on first use,
    /// so a node without the ip_vs module can still be a realserver.
    pub fn new() -> io::Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let rtnl = rt.block_on(async {
            let (conn, handle, _) = rtnetlink::new_connection()?;
            tokio::spawn(conn);
            Ok::<_, io::Error>(handle)
        })?;
        Ok(NetlinkDataplane {
            ipvs: None,
            rt,
            rtnl,
            fou: None,
            sysctl_root: "/proc/sys".into(),
        })
    }

    /// Reads and writes sysctls under `root` instead of `/proc/sys` (a
    /// container gets the host's `/proc/sys/net` mounted elsewhere, because
    /// its own `/proc/sys` is read-only).
    pub fn with_sysctl_root(mut self, root: impl Into<std::path::PathBuf>) -> Self {
        self.sysctl_root = root.into();
        self
    }

    /// The IPVS client, connecting (and so loading ip_vs) if needed.
    pub fn ipvs_client(&mut self, request: &str) -> DpResult<&mut ipvs::IpvsClient> {
        if self.ipvs.is_none() {
            let client = ipvs::IpvsClient::connect().map_err(|e| ipvs_error(request, e))?;
            self.ipvs = Some(client);
        }
        Ok(self.ipvs.as_mut().expect("just connected"))
    }

    fn link_index(&self, name: &str) -> DpResult<u32> {
        let handle = self.rtnl.clone();
        let request = format!("look up interface {name}");
        self.rt.block_on(async {
            let mut links = handle.link().get().match_name(name.to_string()).execute();
            match links.try_next().await {
                Ok(Some(m)) => Ok(m.header.index),
                Ok(None) => Err(DataplaneError::Missing {
                    request: request.clone(),
                    what: format!("interface {name}"),
                }),
                Err(e) => Err(rtnl_error(&request, e)),
            }
        })
    }
}

/// `/proc/sys/<key>`, for keys that cannot leave /proc/sys.
fn sysctl_path(root: &std::path::Path, key: &str) -> DpResult<std::path::PathBuf> {
    let ok = !key.is_empty()
        && !key.starts_with('/')
        && key
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:@".contains(c));
    if !ok {
        return Err(DataplaneError::Other {
            request: format!("sysctl {key:?}"),
            detail: "not a sysctl path like net/ipv4/ip_forward".into(),
        });
    }
    Ok(root.join(key))
}

/// A single IPVS write's error; a socket that failed other than by the
/// kernel's answer is replaced on the next call.
fn ipvs_write_error(
    client: &mut Option<ipvs::IpvsClient>,
    request: &str,
    e: ipvs::Error,
) -> DataplaneError {
    if !matches!(e, ipvs::Error::Kernel { .. }) {
        *client = None;
    }
    ipvs_error(request, e)
}

fn ipvs_error(request: &str, e: ipvs::Error) -> DataplaneError {
    match e {
        ipvs::Error::FamilyNotFound { .. } => DataplaneError::IpvsUnavailable {
            request: request.to_string(),
            detail: e.to_string(),
        },
        ipvs::Error::Kernel { errno, ext_ack, .. } => DataplaneError::Kernel {
            request: request.to_string(),
            errno,
            detail: ext_ack,
        },
        ipvs::Error::Io { source, .. } => DataplaneError::Io {
            request: request.to_string(),
            source,
        },
        other => DataplaneError::Other {
            request: request.to_string(),
            detail: other.to_string(),
        },
    }
}

fn rtnl_errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) if m.raw_code() != 0 => Some(m.raw_code().abs()),
        _ => None,
    }
}

fn rtnl_error(request: &str, e: rtnetlink::Error) -> DataplaneError {
    match e {
        rtnetlink::Error::NetlinkError(m) if m.raw_code() != 0 => DataplaneError::Kernel {
            request: request.to_string(),
            errno: m.raw_code().abs(),
            detail: None,
        },
        other => DataplaneError::Other {
            request: request.to_string(),
            detail: other.to_string(),
        },
    }
}

// ---- rtnetlink helpers ----

fn link_name(m: &LinkMessage) -> Option<String> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.clone()),
        _ => None,
    })
}

fn link_kind(m: &LinkMessage) -> Option<String> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            LinkInfo::Kind(k) => Some(k.to_string()),
            _ => None,
        }),
        _ => None,
    })
}

/// RTM_NEWLINK for a GRE device of the agent's: `local` the realserver
/// address, any remote, no key, input checksum flag (`ip link add NAME type
/// gre|ip6gre local ADDR icsum`), up.
fn checksum_gre_link(dev: &TunnelDevice) -> LinkMessage {
    match dev.local {
        Some(IpAddr::V6(local)) => LinkGre6::new(&dev.name)
            .local(local)
            .iflags(GreIOFlags::Checksum)
            .up()
            .build(),
        Some(IpAddr::V4(local)) => LinkGre::new(&dev.name)
            .local(local)
            .iflags(GreIOFlags::Checksum)
            .up()
            .build(),
        None => LinkGre::new(&dev.name).up().build(),
    }
}

fn info_kind(k: TunnelKind) -> InfoKind {
    match k {
        TunnelKind::Ipip => InfoKind::IpIp,
        TunnelKind::Ip6tnl => InfoKind::Ip6Tnl,
        TunnelKind::Gre => InfoKind::GreTun,
        TunnelKind::Ip6gre => InfoKind::GreTun6,
    }
}

fn to_scope(s: Scope) -> AddressScope {
    match s {
        Scope::Global => AddressScope::Universe,
        Scope::Link => AddressScope::Link,
        Scope::Host => AddressScope::Host,
    }
}

fn from_scope(s: AddressScope) -> Scope {
    match s {
        AddressScope::Link => Scope::Link,
        AddressScope::Host => Scope::Host,
        _ => Scope::Global,
    }
}

fn address_of(m: &AddressMessage, names: &BTreeMap<u32, String>) -> Option<Address> {
    let mut local = None;
    let mut address = None;
    let mut label = None;
    for a in &m.attributes {
        match a {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            AddressAttribute::Label(l) => label = Some(l.clone()),
            _ => {}
        }
    }
    // IPv4 keeps the interface's own address in IFA_LOCAL (IFA_ADDRESS is
    // the peer on point-to-point links); IPv6 only sends IFA_ADDRESS.
    let addr = local.or(address)?;
    let interface = names.get(&m.header.index)?.clone();
    Some(Address {
        label: label.filter(|l| *l != interface),
        interface,
        addr,
        prefix_len: m.header.prefix_len,
        scope: from_scope(m.header.scope),
        kind: AddrKind::Interface,
    })
}

/// The `local` table (`RT_TABLE_LOCAL`).
const RT_TABLE_LOCAL: u8 = 255;

/// One of the agent's local routes (type local, table local, protocol
/// [`RTPROT_LVS`]) as the VIP it holds; `None` for any other route.
fn local_route_of(m: &RouteMessage, names: &BTreeMap<u32, String>) -> Option<Address> {
    let mut table = u32::from(m.header.table);
    let mut dst = None;
    let mut oif = None;
    for a in &m.attributes {
        match a {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(RouteAddress::Inet(ip)) => dst = Some(*ip),
            RouteAttribute::Oif(i) => oif = Some(*i),
            _ => {}
        }
    }
    let ours = m.header.kind == RouteType::Local
        && u8::from(m.header.protocol) == RTPROT_LVS
        && table == u32::from(RT_TABLE_LOCAL);
    if !ours {
        return None;
    }
    Some(Address {
        interface: names.get(&oif?)?.clone(),
        addr: IpAddr::V4(dst?),
        prefix_len: m.header.destination_prefix_length,
        label: None,
        scope: Scope::Host,
        kind: AddrKind::LocalRoute,
    })
}

fn local_route_message(index: u32, a: &Address) -> DpResult<RouteMessage> {
    let IpAddr::V4(v4) = a.addr else {
        return Err(DataplaneError::Other {
            request: format!("local route {}", a.key()),
            detail: "local routes hold IPv4 VIPs only".into(),
        });
    };
    Ok(RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(v4, a.prefix_len)
        .output_interface(index)
        .table_id(u32::from(RT_TABLE_LOCAL))
        .protocol(RouteProtocol::from(RTPROT_LVS))
        .scope(RouteScope::Host)
        .kind(RouteType::Local)
        .build())
}

/// Address or local-route requests kept in flight by `add_addresses`.
const ADDRESSES_IN_FLIGHT: usize = 64;

/// Adds `a` on the interface with `index`: an address, or a local route.
async fn add_at(handle: &rtnetlink::Handle, index: u32, a: &Address) -> DpResult<()> {
    if a.kind == AddrKind::LocalRoute {
        let request = format!("add local route {}", a.key());
        let msg = local_route_message(index, a)?;
        return handle
            .route()
            .add(msg)
            .execute()
            .await
            .map_err(|e| rtnl_error(&request, e));
    }
    let request = format!("add address {}", a.key());
    let mut req = handle.address().add(index, a.addr, a.prefix_len);
    let msg = req.message_mut();
    msg.header.scope = to_scope(a.scope);
    if let (Some(label), true) = (&a.label, a.addr.is_ipv4()) {
        msg.attributes.push(AddressAttribute::Label(label.clone()));
    }
    req.execute().await.map_err(|e| rtnl_error(&request, e))
}

/// Adds local routes (`(interface index, route)`) over a `NETLINK_ROUTE`
/// socket of its own: each window of `ADDRESSES_IN_FLIGHT` requests goes to
/// the kernel in one datagram, and the acks are matched back to their
/// requests by sequence number. Through rtnetlink every request is a
/// datagram, a channel round trip and a future of its own, which costs more
/// than the kernel's work for the route. The requests are the ones
/// rtnetlink sends for `route().add()` (create, exclusive, acked), so
/// EEXIST still says the route is someone else's.
fn add_local_routes(routes: &[(u32, &Address)]) -> Vec<DpResult<()>> {
    let request = |a: &Address| format!("add local route {}", a.key());
    let io = |a: &Address, e: &io::Error| DataplaneError::Io {
        request: request(a),
        source: e.raw_os_error().map_or_else(
            || io::Error::new(e.kind(), e.to_string()),
            io::Error::from_raw_os_error,
        ),
    };
    let socket = Socket::new(NETLINK_ROUTE).and_then(|mut s| {
        s.bind_auto()?;
        s.connect(&SocketAddr::new(0, 0))?;
        Ok(s)
    });
    let socket = match socket {
        Ok(s) => s,
        Err(e) => return routes.iter().map(|(_, a)| Err(io(a, &e))).collect(),
    };
    let mut out: Vec<Option<DpResult<()>>> = (0..routes.len()).map(|_| None).collect();
    let mut datagram = Vec::new();
    let mut answers: Vec<u8> = Vec::with_capacity(64 * 1024);
    for (w, window) in routes.chunks(ADDRESSES_IN_FLIGHT).enumerate() {
        let first = w * ADDRESSES_IN_FLIGHT;
        // Sequence number i + 1 is request i of the whole call.
        let mut pending = 0;
        datagram.clear();
        for (i, (index, a)) in window.iter().enumerate() {
            let msg = match local_route_message(*index, a) {
                Ok(m) => m,
                Err(e) => {
                    out[first + i] = Some(Err(e));
                    continue;
                }
            };
            let mut nl = NetlinkMessage::new(
                Default::default(),
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(msg)),
            );
            nl.header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
            nl.header.sequence_number = (first + i + 1) as u32;
            nl.finalize();
            let at = datagram.len();
            datagram.resize(at + nl.buffer_len(), 0);
            nl.serialize(&mut datagram[at..]);
            pending += 1;
        }
        if pending == 0 {
            continue;
        }
        if let Err(e) = socket.send(&datagram, 0) {
            for (i, (_, a)) in window.iter().enumerate() {
                out[first + i].get_or_insert_with(|| Err(io(a, &e)));
            }
            continue;
        }
        while pending > 0 {
            answers.clear();
            let read = socket.recv(&mut answers, 0).map_err(|e| e.to_string());
            let parsed = read.and_then(|_| super::nft::answers(&answers));
            let acks = match parsed {
                Ok(acks) => acks,
                Err(detail) => {
                    // The unanswered ones may or may not have been added.
                    for (i, (_, a)) in window.iter().enumerate() {
                        out[first + i].get_or_insert_with(|| {
                            Err(DataplaneError::Other {
                                request: request(a),
                                detail: format!("reading the kernel's answer: {detail}"),
                            })
                        });
                    }
                    break;
                }
            };
            for ack in acks {
                let super::nft::Answer::Ack { seq, errno } = ack else {
                    continue;
                };
                let Some(i) = (seq as usize).checked_sub(first + 1) else {
                    continue;
                };
                let (Some((_, a)), Some(slot @ None)) = (window.get(i), out.get_mut(first + i))
                else {
                    continue;
                };
                *slot = Some(match errno {
                    0 => Ok(()),
                    errno => Err(DataplaneError::Kernel {
                        request: request(a),
                        errno,
                        detail: None,
                    }),
                });
                pending -= 1;
            }
        }
    }
    out.into_iter()
        .zip(routes)
        .map(|(r, (_, a))| {
            r.unwrap_or_else(|| {
                Err(DataplaneError::Other {
                    request: request(a),
                    detail: "the kernel did not answer".into(),
                })
            })
        })
        .collect()
}

fn address_message(index: u32, a: &Address) -> AddressMessage {
    match a.addr {
        IpAddr::V4(v4) => AddressMessageBuilder::<Ipv4Addr>::new()
            .index(index)
            .address(v4, a.prefix_len)
            .build(),
        IpAddr::V6(v6) => AddressMessageBuilder::<Ipv6Addr>::new()
            .index(index)
            .address(v6, a.prefix_len)
            .build(),
    }
}

impl Dataplane for NetlinkDataplane {
    fn ipvs_dump(&mut self) -> DpResult<Vec<ipvs::ServiceEntry>> {
        let request = "dump the IPVS table";
        let result = self.ipvs_client(request)?.dump_all();
        match result {
            Ok(entries) => Ok(entries),
            Err(e) => {
                // A broken socket is replaced on the next call.
                self.ipvs = None;
                Err(ipvs_error(request, e))
            }
        }
    }

    fn ipvs_services(&mut self) -> DpResult<Vec<ipvs::ServiceEntry>> {
        let request = "dump the IPVS services";
        let result = self.ipvs_client(request)?.services();
        match result {
            Ok(services) => Ok(services
                .into_iter()
                .map(|(service, stats)| ipvs::ServiceEntry {
                    service,
                    stats,
                    destinations: Vec::new(),
                })
                .collect()),
            Err(e) => {
                self.ipvs = None;
                Err(ipvs_error(request, e))
            }
        }
    }

    fn ipvs_dests(&mut self, service: &ipvs::ServiceKey) -> DpResult<Vec<ipvs::DestEntry>> {
        // Named only for an error: a resync's check reads every service.
        let request = || format!("read the destinations of {service}");
        let result = match self.ipvs.as_mut() {
            Some(client) => client.destinations(service),
            None => self.ipvs_client(&request())?.destinations(service),
        };
        result.map_err(|e| {
            self.ipvs = None;
            ipvs_error(&request(), e)
        })
    }

    fn daemons(&mut self) -> DpResult<Vec<ipvs::SyncDaemon>> {
        let request = "dump the IPVS sync daemons";
        let result = self.ipvs_client(request)?.daemons();
        result.map_err(|e| {
            self.ipvs = None;
            ipvs_error(request, e)
        })
    }

    fn add_daemon(&mut self, daemon: &DaemonSpec) -> DpResult<()> {
        let request = format!("start {daemon}");
        let result = self.ipvs_client(&request)?.add_daemon(&daemon.to_daemon());
        result.map_err(|e| ipvs_write_error(&mut self.ipvs, &request, e))
    }

    fn del_daemon(&mut self, state: ipvs::DaemonState) -> DpResult<()> {
        let request = format!(
            "stop the {} IPVS sync daemon",
            crate::kernel::daemon_role(state)
        );
        let result = self.ipvs_client(&request)?.del_daemon(state);
        result.map_err(|e| ipvs_write_error(&mut self.ipvs, &request, e))
    }

    fn ipvs_apply(&mut self, ops: &[ipvs::Op]) -> DpResult<Vec<DpResult<()>>> {
        let request = format!("apply {} IPVS ops", ops.len());
        let result = self.ipvs_client(&request)?.apply(ops);
        match result {
            Ok(results) => Ok(results
                .into_iter()
                .zip(ops)
                .map(|(r, op)| {
                    r.map_err(|e| DataplaneError::Kernel {
                        request: OpText(op).to_string(),
                        errno: e.errno,
                        detail: e.ext_ack,
                    })
                })
                .collect()),
            Err(e) => {
                self.ipvs = None;
                Err(ipvs_error(&request, e))
            }
        }
    }

    fn addresses(&mut self) -> DpResult<Vec<Address>> {
        let handle = self.rtnl.clone();
        let links = self.links()?;
        let names: BTreeMap<u32, String> = links.into_iter().map(|l| (l.index, l.name)).collect();
        self.rt.block_on(async {
            let msgs: Vec<AddressMessage> = handle
                .address()
                .get()
                .execute()
                .try_collect()
                .await
                .map_err(|e| rtnl_error("dump addresses", e))?;
            let mut out: Vec<Address> = msgs.iter().filter_map(|m| address_of(m, &names)).collect();
            let routes: Vec<RouteMessage> = handle
                .route()
                .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
                .execute()
                .try_collect()
                .await
                .map_err(|e| rtnl_error("dump IPv4 routes", e))?;
            out.extend(routes.iter().filter_map(|m| local_route_of(m, &names)));
            Ok(out)
        })
    }

    fn add_address(&mut self, a: &Address) -> DpResult<()> {
        let index = self.link_index(&a.interface)?;
        let handle = self.rtnl.clone();
        self.rt.block_on(add_at(&handle, index, a))
    }

    fn add_addresses(&mut self, addrs: &[Address]) -> Vec<DpResult<()>> {
        // Each interface is looked up once for the whole batch (not across
        // batches: an interface can be replaced, and its index with it).
        let mut index: BTreeMap<&str, Option<u32>> = BTreeMap::new();
        for a in addrs {
            if !index.contains_key(a.interface.as_str()) {
                let i = self.link_index(&a.interface).ok();
                index.insert(&a.interface, i);
            }
        }
        // Local routes (the VIPs of `--vip-mode route`, thousands on a
        // director) go batched over a socket of their own; addresses through
        // rtnetlink.
        let routes: Vec<(u32, &Address)> = addrs
            .iter()
            .filter(|a| a.kind == AddrKind::LocalRoute)
            .filter_map(|a| Some((index[a.interface.as_str()]?, a)))
            .collect();
        let mut routed = add_local_routes(&routes).into_iter();
        let handle = self.rtnl.clone();
        let sent: Vec<Option<DpResult<()>>> = self.rt.block_on(async {
            futures::stream::iter(addrs.iter().map(|a| {
                let at = index[a.interface.as_str()];
                let handle = &handle;
                async move {
                    match at {
                        Some(i) if a.kind != AddrKind::LocalRoute => {
                            Some(add_at(handle, i, a).await)
                        }
                        _ => None,
                    }
                }
            }))
            .buffered(ADDRESSES_IN_FLIGHT)
            .collect()
            .await
        });
        sent.into_iter()
            .zip(addrs)
            .map(|(r, a)| match (r, index[a.interface.as_str()]) {
                (Some(r), _) => r,
                (None, Some(_)) => routed.next().expect("one result per local route"),
                // The lookup failed: say why, as a single add would.
                (None, None) => self.link_index(&a.interface).map(|_| ()),
            })
            .collect()
    }

    fn del_address(&mut self, a: &Address) -> DpResult<()> {
        let index = match self.link_index(&a.interface) {
            Ok(i) => i,
            // The interface is gone, and its addresses with it.
            Err(DataplaneError::Missing { .. }) => {
                return Err(DataplaneError::Kernel {
                    request: format!("delete address {}", a.key()),
                    errno: errno::EADDRNOTAVAIL,
                    detail: Some("interface gone".into()),
                });
            }
            Err(DataplaneError::Kernel { errno: e, .. }) if e == errno::ENODEV => {
                return Err(DataplaneError::Kernel {
                    request: format!("delete address {}", a.key()),
                    errno: errno::EADDRNOTAVAIL,
                    detail: Some("interface gone".into()),
                });
            }
            Err(e) => return Err(e),
        };
        let handle = self.rtnl.clone();
        if a.kind == AddrKind::LocalRoute {
            let request = format!("delete local route {}", a.key());
            let msg = local_route_message(index, a)?;
            return self.rt.block_on(async {
                match handle.route().del(msg).execute().await {
                    // No such route: gone, as a missing address is.
                    Err(e) if rtnl_errno(&e) == Some(errno::ESRCH) => Err(DataplaneError::Kernel {
                        request,
                        errno: errno::EADDRNOTAVAIL,
                        detail: Some("no such local route".into()),
                    }),
                    r => r.map_err(|e| rtnl_error(&request, e)),
                }
            });
        }
        let request = format!("delete address {}", a.key());
        self.rt.block_on(async {
            handle
                .address()
                .del(address_message(index, a))
                .execute()
                .await
                .map_err(|e| rtnl_error(&request, e))
        })
    }

    fn links(&mut self) -> DpResult<Vec<Link>> {
        let handle = self.rtnl.clone();
        self.rt.block_on(async {
            let msgs: Vec<LinkMessage> = handle
                .link()
                .get()
                .execute()
                .try_collect()
                .await
                .map_err(|e| rtnl_error("dump links", e))?;
            Ok(msgs
                .iter()
                .filter_map(|m| {
                    Some(Link {
                        name: link_name(m)?,
                        index: m.header.index,
                        kind: link_kind(m),
                        up: m.header.flags.contains(LinkFlags::Up),
                    })
                })
                .collect())
        })
    }

    fn ensure_tunnel(&mut self, dev: &TunnelDevice) -> DpResult<()> {
        let request = format!("bring up {} device {}", dev.kind.link_kind(), dev.name);
        let existing = match self.link_index(&dev.name) {
            Ok(i) => Some(i),
            Err(DataplaneError::Missing { .. }) => None,
            Err(DataplaneError::Kernel { errno: e, .. }) if e == errno::ENODEV => None,
            Err(e) => return Err(e),
        };
        let handle = self.rtnl.clone();
        self.rt.block_on(async {
            match existing {
                Some(index) => handle
                    .link()
                    .change(LinkUnspec::new_with_index(index).up().build())
                    .execute()
                    .await
                    .map_err(|e| rtnl_error(&request, e)),
                None if dev.local.is_some() => handle
                    .link()
                    .add(checksum_gre_link(dev))
                    .set_flags(NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)
                    .execute()
                    .await
                    .map_err(|e| rtnl_error(&request, e)),
                None => {
                    // RTM_NEWLINK of this kind makes the kernel load the
                    // tunnel module, which creates the fallback device; without
                    // NLM_F_EXCL the request then just sets it up. Where the
                    // module creates no fallback device in this namespace, a
                    // plain wildcard device of that name is created instead.
                    let msg =
                        LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(info_kind(dev.kind))
                            .name(dev.name.clone())
                            .up()
                            .build();
                    handle
                        .link()
                        .add(msg)
                        .set_flags(NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE)
                        .execute()
                        .await
                        .map_err(|e| rtnl_error(&request, e))
                }
            }
        })
    }

    fn release_tunnel(&mut self, dev: &TunnelDevice) -> DpResult<()> {
        let index = self.link_index(&dev.name).map_err(|e| match e {
            DataplaneError::Missing { request, .. } => DataplaneError::Kernel {
                request,
                errno: errno::ENODEV,
                detail: None,
            },
            e => e,
        })?;
        let handle = self.rtnl.clone();
        if dev.local.is_some() {
            let request = format!("delete {} device {}", dev.kind.link_kind(), dev.name);
            return self.rt.block_on(async {
                handle
                    .link()
                    .del(index)
                    .execute()
                    .await
                    .map_err(|e| rtnl_error(&request, e))
            });
        }
        let request = format!("set {} down", dev.name);
        self.rt.block_on(async {
            handle
                .link()
                .change(LinkUnspec::new_with_index(index).down().build())
                .execute()
                .await
                .map_err(|e| rtnl_error(&request, e))
        })
    }

    fn fou_ports(&mut self) -> DpResult<Vec<FouPort>> {
        match self.fou_client(false)? {
            Some(c) => c.ports(),
            None => Ok(Vec::new()),
        }
    }

    fn add_fou_port(&mut self, port: &FouPort) -> DpResult<()> {
        match self.fou_client(true)? {
            Some(c) => c.add(port),
            None => Err(DataplaneError::Other {
                request: format!("add {port}"),
                detail: "the fou module is not available".into(),
            }),
        }
    }

    fn del_fou_port(&mut self, port: &FouPort) -> DpResult<()> {
        match self.fou_client(false)? {
            Some(c) => c.del(port),
            None => Err(DataplaneError::Kernel {
                request: format!("delete {port}"),
                errno: errno::ENOENT,
                detail: Some("the fou module is not loaded".into()),
            }),
        }
    }

    fn read_sysctl(&mut self, key: &str) -> DpResult<String> {
        if let Some(which) = super::IpvsTimeout::of_key(key) {
            let request = format!("read {key} (IPVS GET_CONFIG)");
            let result = self.ipvs_client(&request)?.timeouts();
            return result
                .map(|t| which.get(&t).to_string())
                .map_err(|e| ipvs_write_error(&mut self.ipvs, &request, e));
        }
        let path = sysctl_path(&self.sysctl_root, key)?;
        fs::read_to_string(&path)
            .map(|v| v.trim().to_string())
            .map_err(|source| io_to_dp(format!("read sysctl {key}"), source))
    }

    fn write_sysctl(&mut self, key: &str, value: &str) -> DpResult<()> {
        if let Some(which) = super::IpvsTimeout::of_key(key) {
            let seconds = super::IpvsTimeout::parse(key, value)?;
            let request = format!("set {key}={seconds} (IPVS SET_CONFIG)");
            let result = self.ipvs_client(&request)?.set_timeouts(which.set(seconds));
            return result.map_err(|e| ipvs_write_error(&mut self.ipvs, &request, e));
        }
        let path = sysctl_path(&self.sysctl_root, key)?;
        fs::write(&path, format!("{value}\n"))
            .map_err(|source| io_to_dp(format!("write sysctl {key}={value}"), source))
    }

    fn nft_table(&mut self) -> DpResult<Option<Vec<String>>> {
        super::nft::client::read_table()
    }

    fn replace_nft(&mut self, rules: &super::nft::Rules) -> DpResult<()> {
        super::nft::client::replace(rules)
    }

    fn delete_nft(&mut self) -> DpResult<()> {
        super::nft::client::delete()
    }

    fn renew_address(&mut self, a: &Address, lifetime_s: u32) -> DpResult<()> {
        let index = self.link_index(&a.interface)?;
        let handle = self.rtnl.clone();
        let request = format!("renew address {} for {lifetime_s}s", a.key());
        let mut req = handle.address().add(index, a.addr, a.prefix_len).replace();
        let msg = req.message_mut();
        msg.header.scope = to_scope(a.scope);
        if let (Some(label), true) = (&a.label, a.addr.is_ipv4()) {
            msg.attributes.push(AddressAttribute::Label(label.clone()));
        }
        let mut info = rtnetlink::packet_route::address::CacheInfo::default();
        info.ifa_preferred = lifetime_s;
        info.ifa_valid = lifetime_s;
        msg.attributes.push(AddressAttribute::CacheInfo(info));
        self.rt
            .block_on(req.execute())
            .map_err(|e| rtnl_error(&request, e))
    }

    fn spawn_renewer(&self, held: super::Renewals, every: std::time::Duration) -> bool {
        let spawned = std::thread::Builder::new()
            .name("vip-renew".into())
            .spawn(move || {
                // Its own rtnetlink connection: the sync loop's is busy
                // exactly when this thread matters.
                let mut dp = match NetlinkDataplane::new() {
                    Ok(dp) => dp,
                    Err(e) => {
                        tracing::error!(error = %e, "VIP lifetime renewal thread: no rtnetlink connection; the sync loop renews alone");
                        return;
                    }
                };
                let mut failing = false;
                // Stops when the reconciler (the other holder) is gone.
                while Arc::strong_count(&held) > 1 {
                    std::thread::sleep(every);
                    let set = super::lock_renewals(&held);
                    let errors: Vec<String> = set
                        .addrs
                        .iter()
                        .filter_map(|a| dp.renew_address(a, set.lifetime_s).err())
                        .map(|e| e.to_string())
                        .collect();
                    drop(set);
                    // Logged on a change of state, never once per round.
                    match (errors.first(), failing) {
                        (Some(e), false) => {
                            tracing::warn!(error = %e, failed = errors.len(), "renewing VIP lifetimes failed");
                            failing = true;
                        }
                        (None, true) => {
                            tracing::info!("renewing VIP lifetimes works again");
                            failing = false;
                        }
                        _ => {}
                    }
                }
            });
        match spawned {
            Ok(_) => true,
            Err(e) => {
                tracing::error!(error = %e, "VIP lifetime renewal thread not started; the sync loop renews alone");
                false
            }
        }
    }

    fn announce(&mut self, interface: &str, addr: IpAddr) {
        let interface = interface.to_string();
        // The repeats are spaced out: off the sync loop.
        let spawned = std::thread::Builder::new()
            .name("announce".into())
            .spawn(move || {
                if let Err(e) = crate::ha::announce::announce(&interface, addr) {
                    tracing::warn!(vip = %addr, interface, error = %e, "announcing the VIP failed");
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(vip = %addr, error = %e, "announcing the VIP failed: no thread");
        }
    }
}

impl NetlinkDataplane {
    /// The fou client. Reads do not load the module (`None` when absent);
    /// `load` resolves the family, which makes the kernel load it.
    fn fou_client(&mut self, load: bool) -> DpResult<Option<&mut FouClient>> {
        if self.fou.is_none() {
            match FouClient::connect(load) {
                Ok(c) => self.fou = Some(c),
                Err(DataplaneError::Missing { .. }) if !load => return Ok(None),
                Err(DataplaneError::Missing { request, what }) => {
                    return Err(DataplaneError::Other {
                        request,
                        detail: format!(
                            "{what} does not exist: load the fou module on this node (modprobe fou); the kernel does not load it on demand"
                        ),
                    });
                }
                Err(e) => return Err(e),
            }
        }
        Ok(self.fou.as_mut())
    }
}

/// An errno from the file system is the kernel's answer: keep it as such
/// (ENOENT for a sysctl of a missing device, EACCES without privilege).
fn io_to_dp(request: String, source: io::Error) -> DataplaneError {
    match source.raw_os_error() {
        Some(errno) => DataplaneError::Kernel {
            request,
            errno,
            detail: None,
        },
        None => DataplaneError::Io { request, source },
    }
}

#[cfg(test)]
mod tests;

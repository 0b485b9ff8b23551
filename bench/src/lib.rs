//! Benchmark support for the kernel lab (`make bench`).
//!
//! Every contender builds the same kernel table, so the end states can be
//! compared with `ipvsadm -Sn`:
//! - [`Table`] defines N services × M destinations drawn from a shared pool
//!   of realservers, and renders it as an `ipvsadm -R` rules file (which is
//!   exactly what `ipvsadm -Sn` prints for it) and as VirtualService /
//!   RealServer / Node manifests for the node agent;
//! - [`parse_rules`] turns a rules file back into lvs-ipvs operations, so the
//!   library contenders are fed the very file `ipvsadm -R` reads;
//! - [`count_netlink`] counts the requests in an nlmon capture, which gives the
//!   number of netlink requests of any process (ipvsadm, Go, the agent)
//!   without instrumenting it.
#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

use lvs_ipvs::{
    DestConfig, DestKey, Destination, Family, FwdMethod, Op, Protocol, Service, ServiceConfig,
    ServiceKey,
};

/// First VIP; service `i` uses `VIP_BASE + i`, port [`SERVICE_PORT`].
pub const VIP_BASE: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 1);
/// First realserver address; pool member `r` uses `RS_BASE + r`.
pub const RS_BASE: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
pub const SERVICE_PORT: u16 = 80;
pub const RS_PORT: u16 = 8080;
pub const SCHEDULER: &str = "rr";
/// Label on every pool RealServer: `<LABEL_PREFIX><M>` = group of size M it belongs to.
pub const LABEL_PREFIX: &str = "bench.lvs-operator.io/g";
/// Label the agent's probe service selects (the one-change measurements).
pub const PROBE_LABEL: &str = "bench.lvs-operator.io/probe";
/// Namespace of every generated object.
pub const NAMESPACE: &str = "bench";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("table: {what} (got n={n}, m={m}, pool={pool})")]
    Table {
        what: &'static str,
        n: u32,
        m: u32,
        pool: u32,
    },
    #[error("rules line {line}: {what}: {text:?}")]
    Rules {
        line: usize,
        what: String,
        text: String,
    },
    #[error("capture: {0}")]
    Capture(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The largest realserver pool (10.1.0.1 up to 10.8.161.32).
pub const MAX_POOL: u32 = 500_000;

fn add(base: Ipv4Addr, offset: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(base).wrapping_add(offset))
}

/// N services × M destinations. Service `i` selects the M consecutive pool
/// members of group `i % (pool / M)`, so groups are shared between services
/// (as RealServers are in a cluster) while the N × M (service, destination)
/// entries are all distinct, the services being distinct.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    pub n: u32,
    pub m: u32,
    pub pool: u32,
}

impl Table {
    pub fn new(n: u32, m: u32, pool: u32) -> Result<Self> {
        let t = Table { n, m, pool };
        let err = |what| Error::Table { what, n, m, pool };
        if n == 0 || m == 0 {
            return Err(err("n and m must be at least 1"));
        }
        if m > pool {
            return Err(err("m must not exceed the pool size"));
        }
        // VIPs stay inside 172.16.0.0/12; realservers start at 10.1.0.1 and
        // stay below 10.9.0.0 (the harness's extra destinations live there).
        if n > 1 << 19 || pool > MAX_POOL {
            return Err(err("n must be at most 524288 and pool at most 500000"));
        }
        Ok(t)
    }

    pub fn groups(&self) -> u32 {
        self.pool / self.m
    }

    pub fn vip(&self, i: u32) -> Ipv4Addr {
        add(VIP_BASE, i)
    }

    /// Pool index of destination `j` of service `i`.
    pub fn member(&self, i: u32, j: u32) -> u32 {
        (i % self.groups()) * self.m + j
    }

    pub fn rs_addr(r: u32) -> Ipv4Addr {
        add(RS_BASE, r)
    }

    pub fn service_key(&self, i: u32) -> ServiceKey {
        ServiceKey::Tuple {
            addr: IpAddr::V4(self.vip(i)),
            protocol: Protocol::TCP,
            port: SERVICE_PORT,
        }
    }

    /// The rules file: exactly the lines `ipvsadm -Sn` prints for the table
    /// (in generation order; ipvsadm lists in hash order, so compare sorted).
    pub fn rules(&self) -> String {
        let mut out = String::with_capacity((self.n as usize) * (1 + self.m as usize) * 48);
        for i in 0..self.n {
            let vip = self.vip(i);
            let _ = writeln!(out, "-A -t {vip}:{SERVICE_PORT} -s {SCHEDULER}");
            for j in 0..self.m {
                let rs = Self::rs_addr(self.member(i, j));
                let _ = writeln!(out, "-a -t {vip}:{SERVICE_PORT} -r {rs}:{RS_PORT} -m -w 1");
            }
        }
        out
    }

    /// The manifests the node agent reads for this table: one file of
    /// RealServers (the whole pool), one of VirtualServices, one Node.
    /// Returns (file name, contents).
    pub fn manifests(&self, node: &str, node_ip: Ipv4Addr) -> Vec<(String, String)> {
        let mut rs = String::with_capacity(self.pool as usize * 260);
        for r in 0..self.pool {
            let _ = write!(
                rs,
                "---\napiVersion: lvs.lvs-operator.io/v1alpha1\nkind: RealServer\nmetadata:\n  name: rs-{r}\n  namespace: {NAMESPACE}\n  labels:\n    {LABEL_PREFIX}{m}: \"{g}\"\nspec:\n  address: {addr}\n  port: {RS_PORT}\n",
                m = self.m,
                g = r / self.m,
                addr = Self::rs_addr(r),
            );
        }
        let mut vs = String::with_capacity(self.n as usize * 420);
        for i in 0..self.n {
            let _ = write!(
                vs,
                "---\n{}",
                virtual_service(
                    &format!("svc-{i}"),
                    self.vip(i),
                    &format!("{LABEL_PREFIX}{}", self.m),
                    &(i % self.groups()).to_string(),
                )
            );
        }
        vec![
            ("00-node.yaml".into(), node_manifest(node, node_ip)),
            ("10-realservers.yaml".into(), rs),
            ("20-virtualservices.yaml".into(), vs),
        ]
    }

    /// lvs-ipvs operations that build the table from empty, services first
    /// within each service's block (the order of [`rules`](Self::rules)).
    pub fn ops(&self) -> Vec<Op> {
        parse_rules(&self.rules()).expect("generated rules parse")
    }
}

/// A VirtualService manifest: NAT, rr, on every director-labelled node.
pub fn virtual_service(name: &str, vip: Ipv4Addr, sel_key: &str, sel_value: &str) -> String {
    format!(
        "apiVersion: lvs.lvs-operator.io/v1alpha1\nkind: VirtualService\nmetadata:\n  name: {name}\n  namespace: {NAMESPACE}\nspec:\n  address: {vip}\n  port: {SERVICE_PORT}\n  protocol: TCP\n  scheduler: {SCHEDULER}\n  forwarding: NAT\n  directors:\n    nodeSelector:\n      matchLabels:\n        lvs.lvs-operator.io/director: \"true\"\n  realServerSelector:\n    matchLabels:\n      {sel_key}: \"{sel_value}\"\n"
    )
}

/// A RealServer manifest with one label.
pub fn real_server(
    name: &str,
    addr: Ipv4Addr,
    weight: u32,
    label_key: &str,
    label_value: &str,
) -> String {
    format!(
        "apiVersion: lvs.lvs-operator.io/v1alpha1\nkind: RealServer\nmetadata:\n  name: {name}\n  namespace: {NAMESPACE}\n  labels:\n    {label_key}: \"{label_value}\"\nspec:\n  address: {addr}\n  port: {RS_PORT}\n  weight: {weight}\n"
    )
}

/// The Node manifest of the director the agent runs as.
pub fn node_manifest(node: &str, ip: Ipv4Addr) -> String {
    format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {node}\n  labels:\n    kubernetes.io/hostname: {node}\n    lvs.lvs-operator.io/director: \"true\"\nstatus:\n  addresses:\n  - type: InternalIP\n    address: {ip}\n"
    )
}

/// Parse an `ipvsadm -R` rules file (the subset [`Table::rules`] and
/// `ipvsadm -Sn` write for TCP/UDP services: `-A`, `-a` with -m/-g/-i and -w)
/// into operations, in file order.
pub fn parse_rules(text: &str) -> Result<Vec<Op>> {
    let mut ops = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |what: &str| Error::Rules {
            line: n + 1,
            what: what.into(),
            text: raw.into(),
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        let mut kind = None;
        let (mut svc, mut rs, mut sched, mut weight, mut fwd) = (None, None, None, 1u32, None);
        let mut it = words.iter();
        while let Some(w) = it.next() {
            match *w {
                "-A" | "-a" => kind = Some(*w),
                "-t" | "-u" => {
                    let proto = if *w == "-t" {
                        Protocol::TCP
                    } else {
                        Protocol::UDP
                    };
                    let a = it.next().ok_or_else(|| bad("-t/-u without an address"))?;
                    let sa: std::net::SocketAddr = a
                        .parse()
                        .map_err(|_| bad("service address is not ADDR:PORT"))?;
                    svc = Some(ServiceKey::Tuple {
                        addr: sa.ip(),
                        protocol: proto,
                        port: sa.port(),
                    });
                }
                "-r" => {
                    let a = it.next().ok_or_else(|| bad("-r without an address"))?;
                    let sa: std::net::SocketAddr = a
                        .parse()
                        .map_err(|_| bad("realserver address is not ADDR:PORT"))?;
                    rs = Some(DestKey {
                        addr: sa.ip(),
                        port: sa.port(),
                    });
                }
                "-s" => sched = Some(*it.next().ok_or_else(|| bad("-s without a scheduler"))?),
                "-w" => {
                    weight = it
                        .next()
                        .and_then(|v| v.parse().ok())
                        .ok_or_else(|| bad("-w without a number"))?
                }
                "-m" => fwd = Some(FwdMethod::Masq),
                "-g" => fwd = Some(FwdMethod::DirectRoute),
                "-i" => fwd = Some(FwdMethod::Tunnel),
                other => return Err(bad(&format!("unsupported word {other:?}"))),
            }
        }
        let svc = svc.ok_or_else(|| bad("no -t/-u service"))?;
        match kind {
            Some("-A") => ops.push(Op::AddService(Service {
                key: svc,
                config: ServiceConfig::new(svc.family(), sched.unwrap_or("wlc")),
            })),
            Some(_) => ops.push(Op::AddDest {
                service: svc,
                dest: Destination {
                    key: rs.ok_or_else(|| bad("-a without -r"))?,
                    config: DestConfig::new(fwd.unwrap_or(FwdMethod::DirectRoute), weight),
                },
            }),
            None => return Err(bad("neither -A nor -a")),
        }
    }
    Ok(ops)
}

/// Render one destination line the way `ipvsadm -Sn` does (for the tools'
/// own dumps, so they can be compared with ipvsadm's).
pub fn dest_line(svc: &ServiceKey, d: &Destination) -> String {
    let fwd = match d.config.fwd {
        FwdMethod::Masq => "-m",
        FwdMethod::Tunnel => "-i",
        _ => "-g",
    };
    format!(
        "-a {} -r {}:{} {fwd} -w {}",
        svc_words(svc),
        d.key.addr,
        d.key.port,
        d.config.weight
    )
}

pub fn service_line(s: &Service) -> String {
    format!("-A {} -s {}", svc_words(&s.key), s.config.scheduler)
}

fn svc_words(k: &ServiceKey) -> String {
    match k {
        ServiceKey::Tuple {
            addr,
            protocol,
            port,
        } => {
            let p = if *protocol == Protocol::UDP {
                "-u"
            } else {
                "-t"
            };
            format!("{p} {}", std::net::SocketAddr::new(*addr, *port))
        }
        ServiceKey::Fwmark { mark, family } => {
            let six = if *family == Family::V6 { " -6" } else { "" };
            format!("-f {mark}{six}")
        }
    }
}

/// Lines of one text missing from or added to another, both taken as
/// multisets (order does not matter, repeats do).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LineDiff<'a> {
    pub missing: Vec<&'a str>,
    pub unexpected: Vec<&'a str>,
}

impl LineDiff<'_> {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty()
    }
}

pub fn line_diff<'a>(expected: &'a str, actual: &'a str) -> LineDiff<'a> {
    let mut e: Vec<&str> = expected.lines().collect();
    let mut a: Vec<&str> = actual.lines().collect();
    e.sort_unstable();
    a.sort_unstable();
    let (mut i, mut j) = (0, 0);
    let mut d = LineDiff::default();
    while i < e.len() || j < a.len() {
        match (e.get(i), a.get(j)) {
            (Some(x), Some(y)) if x == y => {
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x < y => {
                d.missing.push(x);
                i += 1;
            }
            (Some(x), None) => {
                d.missing.push(x);
                i += 1;
            }
            (_, Some(y)) => {
                d.unexpected.push(y);
                j += 1;
            }
            (None, None) => break,
        }
    }
    d
}

/// nlmsg_pid the harness stamps into its own requests (ASCII "BNCH"), so a
/// capture can tell them from the measured process's.
pub const BENCH_PORT_MARK: u32 = 0x4843_4e42;

/// Netlink traffic in a capture, counted per message (a pipelined datagram
/// carries several). Requests stamped with [`BENCH_PORT_MARK`] are counted
/// apart, in `marked_requests`, and in nothing else.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NetlinkCount {
    /// Requests to the IPVS generic-netlink family.
    pub ipvs_requests: u64,
    /// Of those, dump requests (NLM_F_DUMP).
    pub ipvs_dumps: u64,
    /// nlctrl requests (family resolution).
    pub ctrl_requests: u64,
    /// Requests on other netlink protocols (rtnetlink: addresses, links).
    pub other_requests: u64,
    /// Datagrams carrying at least one IPVS request (sendmsg calls).
    pub ipvs_datagrams: u64,
    /// Requests of the harness itself (nlmsg_pid = BENCH_PORT_MARK).
    pub marked_requests: u64,
}

const LINKTYPE_NETLINK: u32 = 253;
const NETLINK_GENERIC: u16 = 16;
const GENL_ID_CTRL: u16 = 16;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;

/// Count the netlink requests in a pcap written by `tcpdump -i nlmon0`
/// (LINKTYPE_NETLINK: a 16-byte cooked header whose last field is the
/// netlink protocol, then the datagram). Requests are told from replies by
/// NLM_F_REQUEST, since nlmon marks both directions alike.
pub fn count_netlink(pcap: &[u8], ipvs_family: u16) -> Result<NetlinkCount> {
    let cap = |s: &str| Error::Capture(s.into());
    if pcap.len() < 24 {
        return Err(cap("shorter than a pcap header"));
    }
    let magic = u32::from_le_bytes(pcap[0..4].try_into().expect("4 bytes"));
    let le = match magic {
        0xa1b2_c3d4 | 0xa1b2_3c4d => true,
        0xd4c3_b2a1 | 0x4d3c_b2a1 => false,
        _ => return Err(cap("not a pcap file (bad magic)")),
    };
    let u32_at = |b: &[u8], o: usize| {
        let a: [u8; 4] = b[o..o + 4].try_into().expect("4 bytes");
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let linktype = u32_at(pcap, 20);
    if linktype != LINKTYPE_NETLINK {
        return Err(Error::Capture(format!(
            "link type {linktype}, expected {LINKTYPE_NETLINK} (LINKTYPE_NETLINK, tcpdump -i nlmon0)"
        )));
    }
    let mut count = NetlinkCount::default();
    let mut off = 24;
    while off + 16 <= pcap.len() {
        let incl = u32_at(pcap, off + 8) as usize;
        let start = off + 16;
        let end = start
            .checked_add(incl)
            .filter(|e| *e <= pcap.len())
            .ok_or_else(|| cap("truncated record"))?;
        off = end;
        let pkt = &pcap[start..end];
        if pkt.len() < 16 {
            return Err(cap("record shorter than the cooked header"));
        }
        let proto = u16::from_be_bytes([pkt[14], pkt[15]]);
        let mut dgram = &pkt[16..];
        let mut ipvs_in_dgram = false;
        // Netlink headers are in host order (the guest is x86_64: little endian).
        while dgram.len() >= 16 {
            let len = u32::from_le_bytes(dgram[0..4].try_into().expect("4 bytes")) as usize;
            let ty = u16::from_le_bytes([dgram[4], dgram[5]]);
            let flags = u16::from_le_bytes([dgram[6], dgram[7]]);
            let pid = u32::from_le_bytes(dgram[12..16].try_into().expect("4 bytes"));
            if len < 16 {
                return Err(cap("netlink message shorter than its header"));
            }
            if flags & NLM_F_REQUEST != 0 {
                if pid == BENCH_PORT_MARK {
                    count.marked_requests += 1;
                } else if proto != NETLINK_GENERIC {
                    count.other_requests += 1;
                } else if ty == GENL_ID_CTRL {
                    count.ctrl_requests += 1;
                } else if ty == ipvs_family {
                    count.ipvs_requests += 1;
                    ipvs_in_dgram = true;
                    if flags & NLM_F_DUMP == NLM_F_DUMP {
                        count.ipvs_dumps += 1;
                    }
                } else {
                    count.other_requests += 1;
                }
            }
            let step = (len + 3) & !3;
            if step >= dgram.len() {
                break;
            }
            dgram = &dgram[step..];
        }
        if ipvs_in_dgram {
            count.ipvs_datagrams += 1;
        }
    }
    Ok(count)
}

/// Median and 99th percentile (nearest rank) of a sample; None when empty.
pub fn percentiles(samples: &[f64]) -> Option<(f64, f64)> {
    if samples.is_empty() {
        return None;
    }
    let mut s = samples.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let rank = |p: f64| {
        let r = (p * s.len() as f64).ceil() as usize;
        s[r.clamp(1, s.len()) - 1]
    };
    Some((rank(0.5), rank(0.99)))
}

#[cfg(test)]
mod tests;

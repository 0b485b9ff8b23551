//! keepalived.conf: the LVS part (`virtual_server`, `virtual_server_group`
//! and their `real_server` blocks with health checkers).
//!
//! The file is read in two steps: a tokenizer builds the block tree
//! (comments start with `#` or `!` anywhere on a line, `{`/`}` open and
//! close blocks, double quotes keep a word with blanks), then each
//! `virtual_server` is interpreted with keepalived's defaults (scheduler
//! wlc, forwarding NAT, weight 1, a failed realserver removed unless
//! `inhibit_on_failure`). Other top-level blocks (`global_defs`,
//! `vrrp_instance`, ...) and `include` are reported, not followed: the
//! parser reads no files.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use lvs_api::{
    DnsRcode, Family, ForwardingMethod, HealthAction, HealthCheck, HealthCheckType, Persistence,
    Protocol, Scheduler, SchedulerFlag, SorryServer, Tunnel, TunnelChecksum, TunnelType,
    VirtualServiceSpec,
};

use super::{CheckDraft, Draft, Note, ParseError, RealServerDraft, ServiceDraft};

/// keepalived's `delay_loop` when unset, seconds.
pub const DEFAULT_DELAY_LOOP: i64 = 60;
/// keepalived's `connect_timeout` when unset, seconds.
pub const DEFAULT_CONNECT_TIMEOUT: i64 = 5;
/// keepalived's `persistence_timeout` without a value, seconds.
pub const DEFAULT_PERSISTENCE: i64 = 360;
/// At most this many services come out of one `virtual_server_group` range.
pub const MAX_RANGE: u32 = 256;

/// One statement: its words, and its block when it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stmt {
    pub line: usize,
    pub words: Vec<String>,
    pub block: Option<Vec<Stmt>>,
}

impl Stmt {
    fn keyword(&self) -> &str {
        self.words.first().map_or("", String::as_str)
    }
    fn arg(&self, i: usize) -> Option<&str> {
        self.words.get(i).map(String::as_str)
    }
}

/// Splits one line into words, `{` and `}`; drops the comment.
fn tokens(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let flush = |cur: &mut String, out: &mut Vec<String>| {
        if !cur.is_empty() {
            out.push(std::mem::take(cur));
        }
    };
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                if !quoted && cur.is_empty() {
                    // An empty quoted word.
                    out.push(String::new());
                }
            }
            _ if quoted => cur.push(c),
            '#' | '!' => break,
            '{' | '}' => {
                flush(&mut cur, &mut out);
                out.push(c.to_string());
            }
            c if c.is_whitespace() => flush(&mut cur, &mut out),
            c => cur.push(c),
        }
    }
    flush(&mut cur, &mut out);
    out
}

/// The block tree of a configuration.
pub fn tree(text: &str) -> Result<Vec<Stmt>, ParseError> {
    // Open blocks: the statement that opened each, and its statements so far.
    let mut stack: Vec<(Stmt, Vec<Stmt>)> = Vec::new();
    let mut top: Vec<Stmt> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        let mut words: Vec<String> = Vec::new();
        for t in tokens(raw) {
            let container = match stack.last_mut() {
                Some((_, c)) => c,
                None => &mut top,
            };
            match t.as_str() {
                "{" => {
                    let opener = if !words.is_empty() {
                        Stmt {
                            line,
                            words: std::mem::take(&mut words),
                            block: None,
                        }
                    } else {
                        // `{` on a line of its own opens the block of the
                        // statement on the line before.
                        match container.pop() {
                            Some(s) if s.block.is_none() => s,
                            Some(s) => {
                                container.push(s);
                                return Err(ParseError::structure(
                                    line,
                                    "`{` follows a block; expected a keyword before it",
                                ));
                            }
                            None => {
                                return Err(ParseError::structure(
                                    line,
                                    "`{` without a keyword before it",
                                ));
                            }
                        }
                    };
                    stack.push((opener, Vec::new()));
                }
                "}" => {
                    if !words.is_empty() {
                        container.push(Stmt {
                            line,
                            words: std::mem::take(&mut words),
                            block: None,
                        });
                    }
                    let Some((mut opener, items)) = stack.pop() else {
                        return Err(ParseError::structure(
                            line,
                            "`}` closes no block (one `}` too many)",
                        ));
                    };
                    opener.block = Some(items);
                    match stack.last_mut() {
                        Some((_, c)) => c.push(opener),
                        None => top.push(opener),
                    }
                }
                _ => words.push(t),
            }
        }
        if !words.is_empty() {
            let container = match stack.last_mut() {
                Some((_, c)) => c,
                None => &mut top,
            };
            container.push(Stmt {
                line,
                words,
                block: None,
            });
        }
    }
    if let Some((opener, _)) = stack.pop() {
        return Err(ParseError::structure(
            opener.line,
            format!(
                "the block of `{}` is never closed (missing `}}`)",
                opener.keyword()
            ),
        ));
    }
    Ok(top)
}

/// One entry of a `virtual_server_group`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum GroupEntry {
    Addr { ip: IpAddr, port: u16 },
    Mark(u32),
}

fn num(s: &Stmt, i: usize, min: i64, max: i64) -> Result<i64, ParseError> {
    let v = s
        .arg(i)
        .ok_or_else(|| ParseError::missing(s.line, s.keyword()))?;
    v.parse::<i64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| {
            ParseError::bad_value(
                s.line,
                s.keyword(),
                v,
                &format!("a number from {min} to {max}"),
            )
        })
}

/// Seconds, as keepalived takes them (decimals allowed), rounded up, at
/// least 1.
fn seconds(s: &Stmt) -> Result<i64, ParseError> {
    let v = s
        .arg(1)
        .ok_or_else(|| ParseError::missing(s.line, s.keyword()))?;
    v.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite() && *f >= 0.0 && *f <= 1e9)
        .map(|f| (f.ceil() as i64).max(1))
        .ok_or_else(|| ParseError::bad_value(s.line, s.keyword(), v, "a number of seconds"))
}

fn ip(s: &Stmt, i: usize) -> Result<IpAddr, ParseError> {
    let v = s
        .arg(i)
        .ok_or_else(|| ParseError::missing(s.line, s.keyword()))?;
    v.parse()
        .map_err(|_| ParseError::bad_value(s.line, s.keyword(), v, "an IPv4 or IPv6 address"))
}

fn port(s: &Stmt, i: usize) -> Result<u16, ParseError> {
    num(s, i, 0, 65535).map(|p| p as u16)
}

/// Why a keyword keepalived knows has no equivalent here.
fn not_carried_reason(k: &str) -> Option<&'static str> {
    Some(match k {
        "hysteresis" => {
            "the quorum has no hysteresis: the sorry server takes over below quorum and leaves at quorum"
        }
        "alpha" => "realservers start as healthy until their checks say otherwise",
        "omega" => "there are no quorum scripts to run at shutdown",
        "sorry_server_inhibit" => {
            "the sorry server is added only while needed, not kept at weight 0"
        }
        "sorry_server_lvs_method" => "the sorry server forwards with the service's method",
        "ha_suspend" => "checks run on every director, active or not",
        "quorum_up" | "quorum_down" | "notify_up" | "notify_down" => {
            "no notification scripts (watch the VirtualService's status and Events instead)"
        }
        "smtp_alert" => "no mail alerts (watch the VirtualService's status and Events instead)",
        "delay_before_retry" => "a failed check is retried at the next interval",
        "warmup" => "checks start at once",
        "nat_mask" | "net_mask" | "lvs_netmask" => "it only applied to old kernels' NAT setup",
        "connect_ip" | "bindto" | "bind_port" | "bind_if" | "source_ip" => {
            "checks go from the director to the realserver's own address"
        }
        "digest" => "response digests are not checked; the status code is",
        "regex" | "regex_no_match" | "regex_options" | "regex_stack" | "regex_min_offset"
        | "regex_max_offset" => "response bodies are matched by literal text only (bodyContains)",
        "enable_sni" | "tls_compliant" | "http_protocol" | "protocol_v6" | "fast_recovery"
        | "close" | "fwmark" | "ip_version" => "the check has no such setting",
        "include" => "included files are not followed; import each file on its own",
        "hashed" => "the kernel sets the hashed flag itself",
        "lvs_sync_daemon" | "lvs_id" | "lvs_flush" | "lvs_timeouts" => {
            "connection synchronisation and timeouts are node settings"
        }
        _ => return None,
    })
}

/// Parses a keepalived configuration.
pub fn parse(text: &str) -> Result<Draft, ParseError> {
    let stmts = tree(text)?;
    let mut draft = Draft::default();
    let mut groups: HashMap<String, (usize, Vec<GroupEntry>)> = HashMap::new();
    for s in &stmts {
        if s.keyword() == "virtual_server_group" {
            let name = s
                .arg(1)
                .ok_or_else(|| ParseError::missing(s.line, "virtual_server_group"))?;
            let entries = group_entries(s, &mut draft.notes)?;
            if groups.insert(name.to_string(), (s.line, entries)).is_some() {
                return Err(ParseError::structure(
                    s.line,
                    format!("virtual_server_group `{name}` is defined twice"),
                ));
            }
        }
    }
    for s in &stmts {
        match s.keyword() {
            "virtual_server_group" => {}
            "virtual_server" => virtual_server(s, &groups, &mut draft)?,
            "include" => draft.notes.push(Note::new(
                s.line,
                "`include` not followed: import each included file on its own",
            )),
            k => draft.notes.push(Note::new(
                s.line,
                format!("`{k}` not carried: only virtual_server and virtual_server_group are imported (the directors' VIP failover is the agents' own)"),
            )),
        }
    }
    Ok(draft)
}

fn group_entries(s: &Stmt, notes: &mut Vec<Note>) -> Result<Vec<GroupEntry>, ParseError> {
    let Some(block) = &s.block else {
        return Err(ParseError::structure(
            s.line,
            "virtual_server_group needs a block `{ ... }`",
        ));
    };
    let mut out = Vec::new();
    for e in block {
        if e.block.is_some() {
            return Err(ParseError::structure(
                e.line,
                "a virtual_server_group entry has no block; expected `IP PORT`, `IP-LAST PORT` or `fwmark N`",
            ));
        }
        if e.keyword() == "fwmark" {
            out.push(GroupEntry::Mark(num(e, 1, 1, u32::MAX.into())? as u32));
            continue;
        }
        let first = e.keyword();
        let p = port(e, 1)?;
        match first.rsplit_once('-') {
            Some((start, last)) if !first.contains(':') || start.contains(':') => {
                let bad_range = || {
                    ParseError::bad_value(
                        e.line,
                        "virtual_server_group",
                        first,
                        "an address range IP-LAST",
                    )
                };
                let start: IpAddr = start.parse().map_err(|_| bad_range())?;
                let radix = if start.is_ipv4() { 10 } else { 16 };
                let last = u32::from_str_radix(last, radix).map_err(|_| bad_range())?;
                let (base, first_n, limit) = match start {
                    IpAddr::V4(a) => (
                        u128::from(u32::from(a)) & !0xff,
                        u32::from(a.octets()[3]),
                        255,
                    ),
                    IpAddr::V6(a) => {
                        let v = u128::from(a);
                        (v & !0xffff, (v & 0xffff) as u32, 0xffff)
                    }
                };
                if last > limit || last <= first_n {
                    return Err(ParseError::bad_value(
                        e.line,
                        "virtual_server_group",
                        first,
                        "a range whose last value is above its first and within the last byte (IPv4) or group (IPv6)",
                    ));
                }
                let mut end = last;
                if last - first_n + 1 > MAX_RANGE {
                    end = first_n + MAX_RANGE - 1;
                    notes.push(Note::new(
                        e.line,
                        format!("the range {first} has more than {MAX_RANGE} addresses; only the first {MAX_RANGE} are imported"),
                    ));
                }
                for n in first_n..=end {
                    let v = base | u128::from(n);
                    let addr = if start.is_ipv4() {
                        IpAddr::V4(Ipv4Addr::from(v as u32))
                    } else {
                        IpAddr::V6(Ipv6Addr::from(v))
                    };
                    out.push(GroupEntry::Addr { ip: addr, port: p });
                }
            }
            _ => out.push(GroupEntry::Addr {
                ip: ip(e, 0)?,
                port: p,
            }),
        }
    }
    Ok(out)
}

/// The settings of one virtual_server block that apply to all its services.
struct Vs {
    spec: VirtualServiceSpec,
    protocol_set: bool,
    forwarding: Option<ForwardingMethod>,
    /// The tunnel of `lvs_method TUN ...`, for realservers without their own.
    tunnel: Option<Tunnel>,
    delay_loop: i64,
    retry: Option<i64>,
    inhibit: bool,
    host: Option<String>,
    flags: Vec<(usize, String)>,
    ops: Option<usize>,
    granularity: Option<(usize, String)>,
    persistence_timeout: Option<i64>,
    family: Option<Family>,
}

fn empty_spec() -> VirtualServiceSpec {
    VirtualServiceSpec {
        scheduler: Scheduler::Wlc,
        ..Default::default()
    }
}

/// A forwarding method and, with TUN, its tunnel:
/// `lvs_method NAT|DR|TUN [type ipip|gue port N|gre] [nocsum|csum|remcsum]`
/// (keepalived 2.x; `lb_kind` is the older name).
fn method(
    s: &Stmt,
    notes: &mut Vec<Note>,
) -> Result<Option<(ForwardingMethod, Option<Tunnel>)>, ParseError> {
    let v = s
        .arg(1)
        .ok_or_else(|| ParseError::missing(s.line, s.keyword()))?;
    let m = match v {
        "NAT" => ForwardingMethod::Nat,
        "DR" => ForwardingMethod::Dr,
        "TUN" => ForwardingMethod::Tun,
        _ => {
            notes.push(Note::new(
                s.line,
                format!(
                    "option `{}` value `{v}` unknown; expected NAT, DR or TUN",
                    s.keyword()
                ),
            ));
            return Ok(None);
        }
    };
    let rest = &s.words[2..];
    if m != ForwardingMethod::Tun {
        if let Some(w) = rest.first() {
            return Err(ParseError::bad_value(
                s.line,
                s.keyword(),
                w,
                &format!("the end of the line: only TUN takes tunnel options, not {v}"),
            ));
        }
        return Ok(Some((m, None)));
    }
    if rest.is_empty() {
        return Ok(Some((m, None)));
    }
    let mut t = Tunnel::default();
    let mut i = 0;
    while i < rest.len() {
        match rest[i].as_str() {
            "type" => {
                let ty = rest
                    .get(i + 1)
                    .ok_or_else(|| ParseError::missing(s.line, "type"))?;
                t.type_ = ty
                    .parse()
                    .map_err(|_| ParseError::bad_value(s.line, "type", ty, "ipip, gue or gre"))?;
                i += 2;
            }
            "port" => {
                let p = rest
                    .get(i + 1)
                    .ok_or_else(|| ParseError::missing(s.line, "port"))?;
                let n = p
                    .parse::<i64>()
                    .ok()
                    .filter(|n| (1..=65535).contains(n))
                    .ok_or_else(|| {
                        ParseError::bad_value(s.line, "port", p, "a number from 1 to 65535")
                    })?;
                t.port = Some(n);
                i += 2;
            }
            "nocsum" => {
                t.checksum = None;
                i += 1;
            }
            "csum" | "remcsum" => {
                t.checksum = Some(TunnelChecksum {
                    enabled: rest[i] == "csum",
                    remote: rest[i] == "remcsum",
                });
                i += 1;
            }
            w => {
                return Err(ParseError::bad_value(
                    s.line,
                    s.keyword(),
                    w,
                    "a tunnel option (type ipip|gue|gre, port N, nocsum, csum or remcsum)",
                ));
            }
        }
    }
    // keepalived's own rule: "gue tunnels require port, otherwise cannot
    // have port".
    if (t.type_ == TunnelType::Gue) != t.port.is_some() {
        return Err(ParseError::structure(
            s.line,
            "a gue tunnel needs `port N`, and only a gue tunnel takes one",
        ));
    }
    Ok(Some((m, Some(t))))
}

fn virtual_server(
    s: &Stmt,
    groups: &HashMap<String, (usize, Vec<GroupEntry>)>,
    draft: &mut Draft,
) -> Result<(), ParseError> {
    // The services this block stands for.
    let targets: Vec<GroupEntry> = match s.arg(1) {
        Some("group") => {
            let name = s
                .arg(2)
                .ok_or_else(|| ParseError::missing(s.line, "virtual_server group"))?;
            match groups.get(name) {
                Some((_, entries)) => entries.clone(),
                None => {
                    return Err(ParseError::structure(
                        s.line,
                        format!(
                            "virtual_server group `{name}`: no virtual_server_group of that name"
                        ),
                    ));
                }
            }
        }
        Some("fwmark") => vec![GroupEntry::Mark(num(s, 2, 1, u32::MAX.into())? as u32)],
        Some(_) => {
            let a = ip(s, 1)?;
            vec![GroupEntry::Addr {
                ip: a,
                port: port(s, 2)?,
            }]
        }
        None => return Err(ParseError::missing(s.line, "virtual_server")),
    };
    let Some(block) = &s.block else {
        return Err(ParseError::structure(
            s.line,
            "virtual_server needs a block `{ ... }`",
        ));
    };
    let notes = &mut draft.notes;
    let mut vs = Vs {
        spec: empty_spec(),
        protocol_set: false,
        forwarding: None,
        tunnel: None,
        delay_loop: DEFAULT_DELAY_LOOP,
        retry: None,
        inhibit: false,
        host: None,
        flags: Vec::new(),
        ops: None,
        granularity: None,
        persistence_timeout: None,
        family: None,
    };
    let mut sched_line = None;
    let mut rs_stmts = Vec::new();
    for k in block {
        let kw = k.keyword();
        match kw {
            "delay_loop" => vs.delay_loop = seconds(k)?,
            "lb_algo" | "lvs_sched" => {
                let v = k.arg(1).ok_or_else(|| ParseError::missing(k.line, kw))?;
                match v.parse::<Scheduler>() {
                    Ok(sch) => {
                        vs.spec.scheduler = sch;
                        sched_line = Some(k.line);
                    }
                    Err(_) => {
                        let names: Vec<&str> = Scheduler::ALL.iter().map(|s| s.as_str()).collect();
                        notes.push(Note::new(
                            k.line,
                            format!(
                                "option `{kw}` value `{v}` unknown; expected {}; wlc used",
                                names.join(", ")
                            ),
                        ));
                    }
                }
            }
            "lb_kind" | "lvs_method" => {
                if let Some((m, t)) = method(k, notes)? {
                    vs.forwarding = Some(m);
                    vs.tunnel = t;
                }
            }
            "persistence_timeout" => {
                vs.persistence_timeout = Some(if k.arg(1).is_some() {
                    num(k, 1, 0, u32::MAX.into())?
                } else {
                    DEFAULT_PERSISTENCE
                });
            }
            "persistence_granularity" => {
                let v = k.arg(1).ok_or_else(|| ParseError::missing(k.line, kw))?;
                vs.granularity = Some((k.line, v.to_string()));
            }
            "protocol" => {
                let v = k.arg(1).ok_or_else(|| ParseError::missing(k.line, kw))?;
                // keepalived compares without case and ignores what it
                // does not know.
                let p = match v.to_ascii_uppercase().as_str() {
                    "TCP" => Some(Protocol::Tcp),
                    "UDP" => Some(Protocol::Udp),
                    "SCTP" => Some(Protocol::Sctp),
                    _ => None,
                };
                match p {
                    Some(p) => {
                        vs.spec.protocol = Some(p);
                        vs.protocol_set = true;
                    }
                    None => notes.push(Note::new(
                        k.line,
                        format!("option `protocol` value `{v}` unknown; expected TCP, UDP or SCTP; ignored, as keepalived does"),
                    )),
                }
            }
            "sorry_server" => {
                let a = ip(k, 1)?;
                let p = if k.arg(2).is_some() { port(k, 2)? } else { 0 };
                vs.spec.sorry_server = Some(Box::new(SorryServer {
                    address: a.to_string(),
                    port: (p != 0).then_some(p.into()),
                }));
            }
            "quorum" => vs.spec.quorum = Some(num(k, 1, 1, i32::MAX.into())?),
            "inhibit_on_failure" => vs.inhibit = true,
            "retry" => vs.retry = Some(num(k, 1, 0, 100)?),
            "virtualhost" => vs.host = k.arg(1).map(str::to_string),
            "ops" => vs.ops = Some(k.line),
            "flag-1" | "flag-2" | "flag-3" | "sh-port" | "sh-fallback" | "mh-port"
            | "mh-fallback" => vs.flags.push((k.line, kw.to_string())),
            "ip_family" => match k.arg(1) {
                Some("inet") => vs.family = Some(Family::IPv4),
                Some("inet6") => vs.family = Some(Family::IPv6),
                Some(v) => return Err(ParseError::bad_value(k.line, kw, v, "inet or inet6")),
                None => return Err(ParseError::missing(k.line, kw)),
            },
            "real_server" => rs_stmts.push(k),
            _ => notes.push(unknown(k)),
        }
    }
    let _ = sched_line;
    // Scheduler flags, now that the scheduler is known.
    let sched = vs.spec.scheduler;
    for (line, f) in &vs.flags {
        let flag = match (f.as_str(), sched) {
            ("sh-fallback" | "flag-1", Scheduler::Sh) => Some(SchedulerFlag::ShFallback),
            ("sh-port" | "flag-2", Scheduler::Sh) => Some(SchedulerFlag::ShPort),
            ("mh-fallback" | "flag-1", Scheduler::Mh) => Some(SchedulerFlag::MhFallback),
            ("mh-port" | "flag-2", Scheduler::Mh) => Some(SchedulerFlag::MhPort),
            _ => None,
        };
        match flag {
            Some(fl) if !vs.spec.scheduler_flags.contains(&fl) => vs.spec.scheduler_flags.push(fl),
            Some(_) => {}
            None => notes.push(Note::new(
                *line,
                format!("scheduler flag `{f}` has no meaning for scheduler {sched} (only sh-* with sh, mh-* with mh); not carried"),
            )),
        }
    }
    // keepalived's default forwarding method.
    let vs_method = vs.forwarding.unwrap_or(ForwardingMethod::Nat);

    // Realservers and their checks.
    let mut rss = Vec::new();
    let mut checks = Vec::new();
    for r in rs_stmts {
        let (d, c) = real_server(r, &vs, vs_method, notes)?;
        rss.push(d);
        checks.push(c);
    }
    if rss.is_empty() {
        notes.push(Note::new(
            s.line,
            "virtual_server has no real_server; keepalived ignores it, and so does the import",
        ));
        return Ok(());
    }

    for t in targets {
        let mut spec = vs.spec.clone();
        let v6 = match t {
            GroupEntry::Addr { ip, port } => {
                if port == 0 {
                    notes.push(Note::new(
                        s.line,
                        format!("a service on port 0 ({ip}, every port) cannot be expressed: a VirtualService has one port; use a fwmark service; left out"),
                    ));
                    continue;
                }
                spec.address = Some(ip.to_string());
                spec.port = Some(port.into());
                if !vs.protocol_set {
                    // keepalived: "no protocol set - defaulting to UDP".
                    notes.push(Note::new(
                        s.line,
                        "virtual_server sets no `protocol`; keepalived programs UDP then, and so does the import",
                    ));
                    spec.protocol = Some(Protocol::Udp);
                }
                ip.is_ipv6()
            }
            GroupEntry::Mark(m) => {
                spec.fwmark = Some(m.into());
                if vs.protocol_set {
                    notes.push(Note::new(
                        s.line,
                        "`protocol` is ignored for a fwmark service (keepalived ignores it too)",
                    ));
                }
                spec.protocol = None;
                // The family of a fwmark service: ip_family, else that of
                // the realservers.
                let v6 = match vs.family {
                    Some(f) => f == Family::IPv6,
                    None => rss.first().is_some_and(|r| r.address.is_ipv6()),
                };
                if v6 {
                    spec.family = Some(Family::IPv6);
                }
                v6
            }
        };
        if let Some(line) = vs.ops {
            if spec.fwmark.is_some() || spec.protocol == Some(Protocol::Udp) {
                spec.scheduler_flags.push(SchedulerFlag::OnePacket);
            } else {
                notes.push(Note::new(
                    line,
                    "`ops` (one-packet scheduling) works only with UDP or fwmark services; not carried",
                ));
            }
        }
        // A granularity alone makes the service persistent with
        // keepalived's default timeout.
        let timeout = match (vs.persistence_timeout, &vs.granularity) {
            (None, Some(_)) => Some(DEFAULT_PERSISTENCE),
            (t, _) => t,
        };
        match (timeout, &vs.granularity) {
            (Some(t), g) if t > 0 => {
                let prefix = match g {
                    None => None,
                    Some((line, m)) => {
                        let p = if v6 {
                            m.parse::<i64>().ok().filter(|p| (1..=128).contains(p))
                        } else {
                            m.parse::<Ipv4Addr>().ok().and_then(super::netmask_prefix)
                        };
                        match p {
                            Some(p) if p == if v6 { 128 } else { 32 } => None,
                            Some(p) => Some(p),
                            None => {
                                notes.push(Note::new(
                                    *line,
                                    format!("option `persistence_granularity` value `{m}` is not {}; persistence is per client address",
                                        if v6 { "a prefix length from 1 to 128" } else { "a contiguous IPv4 netmask" }),
                                ));
                                None
                            }
                        }
                    }
                };
                if t > 2_678_400 {
                    notes.push(Note::new(
                        s.line,
                        format!("persistence_timeout {t} is above 2678400 (31 days); imported as 2678400"),
                    ));
                }
                spec.persistence = Some(Persistence {
                    timeout_seconds: t.min(2_678_400),
                    prefix_length: prefix,
                });
            }
            _ => {}
        }
        draft.services.push(ServiceDraft {
            line: s.line,
            spec,
            real_servers: rss.clone(),
            checks: checks.clone(),
        });
    }
    Ok(())
}

fn unknown(k: &Stmt) -> Note {
    let kw = k.keyword();
    match not_carried_reason(kw) {
        Some(why) => Note::new(k.line, format!("`{kw}` not carried: {why}")),
        None => Note::new(k.line, format!("keyword `{kw}` unknown here; not carried")),
    }
}

fn real_server(
    r: &Stmt,
    vs: &Vs,
    vs_method: ForwardingMethod,
    notes: &mut Vec<Note>,
) -> Result<(RealServerDraft, CheckDraft), ParseError> {
    let address = ip(r, 1)?;
    let rport = if r.arg(2).is_some() {
        Some(port(r, 2)?)
    } else {
        None
    };
    let mut d = RealServerDraft {
        line: r.line,
        address,
        port: rport.filter(|p| *p != 0),
        weight: 1,
        forwarding: vs_method,
        tunnel: None,
        upper_threshold: None,
        lower_threshold: None,
    };
    let mut inhibit = vs.inhibit;
    let mut delay_loop = vs.delay_loop;
    let mut retry = vs.retry;
    let mut tunnel = vs.tunnel.clone();
    let mut check: Option<HealthCheck> = None;
    let mut checkers = 0;
    let mut check_retry = None;
    for k in r.block.iter().flatten() {
        let kw = k.keyword();
        match kw {
            "weight" => d.weight = num(k, 1, 0, i32::MAX.into())?,
            "inhibit_on_failure" => inhibit = true,
            "uthreshold" => d.upper_threshold = Some(num(k, 1, 0, u32::MAX.into())?),
            "lthreshold" => d.lower_threshold = Some(num(k, 1, 0, u32::MAX.into())?),
            "lvs_method" | "lb_kind" => {
                if let Some((m, t)) = method(k, notes)? {
                    d.forwarding = m;
                    tunnel = t;
                }
            }
            "delay_loop" => delay_loop = seconds(k)?,
            "retry" => retry = Some(num(k, 1, 0, 100)?),
            "TCP_CHECK" | "HTTP_GET" | "SSL_GET" | "DNS_CHECK" => {
                checkers += 1;
                if checkers > 1 {
                    notes.push(Note::new(
                        k.line,
                        format!("`{kw}`: only the first checker of a realserver is carried (a service has one health check)"),
                    ));
                    continue;
                }
                let (c, cr) = checker(k, vs, notes)?;
                check = Some(c);
                check_retry = cr;
            }
            "MISC_CHECK" | "SMTP_CHECK" | "UDP_CHECK" | "PING_CHECK" | "FILE_CHECK"
            | "BFD_CHECK" => {
                checkers += 1;
                notes.push(Note::new(
                    k.line,
                    format!("`{kw}` not carried: health checks are TCP, HTTP, HTTPS or DNS"),
                ));
            }
            _ => notes.push(unknown(k)),
        }
    }
    if d.forwarding == ForwardingMethod::Tun {
        d.tunnel = tunnel;
    }
    let action = if inhibit {
        HealthAction::Inhibit
    } else {
        HealthAction::Remove
    };
    if let Some(c) = check.as_mut() {
        let interval = delay_loop.min(3600);
        c.interval_seconds = Some(interval);
        let timeout = c
            .timeout_seconds
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT)
            .min(3600);
        if timeout >= interval {
            let t = (interval - 1).max(1);
            notes.push(Note::new(
                r.line,
                format!("connect_timeout {timeout} is not below delay_loop {interval}; the check's timeout is {t} s (it must end before the next check)"),
            ));
            c.timeout_seconds = Some(t);
            if t >= interval {
                c.interval_seconds = Some(t + 1);
            }
        } else {
            c.timeout_seconds = Some(timeout);
        }
        // keepalived retries a failed check `retry` times before it
        // takes the realserver out: that is retry + 1 failures in a row.
        let retries = check_retry.or(retry).unwrap_or(1);
        c.fall = Some((retries + 1).min(100));
        c.rise = Some(1);
        c.on_failure = Some(action);
    }
    Ok((
        d,
        CheckDraft {
            line: r.line,
            check,
            on_failure: action,
        },
    ))
}

/// A TCP_CHECK, HTTP_GET, SSL_GET or DNS_CHECK block, with its `retry`.
fn checker(
    k: &Stmt,
    vs: &Vs,
    notes: &mut Vec<Note>,
) -> Result<(HealthCheck, Option<i64>), ParseError> {
    let type_ = match k.keyword() {
        "TCP_CHECK" => HealthCheckType::Tcp,
        "HTTP_GET" => HealthCheckType::Http,
        "SSL_GET" => HealthCheckType::Https,
        _ => HealthCheckType::Dns,
    };
    let http = matches!(type_, HealthCheckType::Http | HealthCheckType::Https);
    let mut c = HealthCheck {
        r#type: Some(type_),
        ..Default::default()
    };
    if http {
        c.host = vs.host.clone();
    }
    let mut retry = None;
    let mut urls = 0;
    for o in k.block.iter().flatten() {
        let kw = o.keyword();
        match kw {
            "connect_port" => c.port = Some(num(o, 1, 1, 65535)?),
            "connect_timeout" => c.timeout_seconds = Some(seconds(o)?),
            "retry" | "nb_get_retry" => retry = Some(num(o, 1, 0, 100)?),
            "virtualhost" if http => c.host = o.arg(1).map(str::to_string),
            "url" if http => {
                urls += 1;
                if urls > 1 {
                    notes.push(Note::new(
                        o.line,
                        "only the first `url` of a check is carried (a check GETs one path)",
                    ));
                    continue;
                }
                for u in o.block.iter().flatten() {
                    match u.keyword() {
                        "path" => {
                            let p = u
                                .arg(1)
                                .ok_or_else(|| ParseError::missing(u.line, "path"))?;
                            c.path = Some(p.to_string());
                        }
                        "status_code" => {
                            for v in &u.words[1..] {
                                if lvs_api::validate::status_range(v).is_none() {
                                    return Err(ParseError::bad_value(
                                        u.line,
                                        "status_code",
                                        v,
                                        "an HTTP status code or range (200, 200-299)",
                                    ));
                                }
                                c.expected_status.push(v.clone());
                            }
                            if u.words.len() < 2 {
                                return Err(ParseError::missing(u.line, "status_code"));
                            }
                        }
                        _ => notes.push(unknown(u)),
                    }
                }
            }
            "type" if type_ == HealthCheckType::Dns => match o.arg(1) {
                Some("SOA") => {}
                Some(t) => notes.push(Note::new(
                    o.line,
                    format!("DNS query type `{t}` not carried: DNS checks query SOA"),
                )),
                None => return Err(ParseError::missing(o.line, "type")),
            },
            "name" if type_ == HealthCheckType::Dns => {
                c.dns_name = Some(
                    o.arg(1)
                        .ok_or_else(|| ParseError::missing(o.line, "name"))?
                        .to_string(),
                );
                c.expected_rcode = None;
            }
            _ => notes.push(unknown(o)),
        }
    }
    if type_ == HealthCheckType::Dns && c.dns_name.is_none() {
        c.expected_rcode = None::<DnsRcode>;
    }
    Ok((c, retry))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_handles_comments_quotes_and_braces_on_their_own_line() {
        let t = tree(
            "! header\nvirtual_server 192.0.2.1 80 # trailing\n{\n  lb_algo rr\n  real_server 10.0.0.1 80 { weight 2 }\n}\n",
        )
        .unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].line, 2);
        let b = t[0].block.as_ref().unwrap();
        assert_eq!(b[0].words, ["lb_algo", "rr"]);
        assert_eq!(b[1].block.as_ref().unwrap()[0].words, ["weight", "2"]);
        assert_eq!(tokens("path \"/a b\" ! c"), ["path", "/a b"]);
    }

    #[test]
    fn unbalanced_braces_name_the_line() {
        let e = tree("virtual_server 192.0.2.1 80 {\n lb_algo rr\n").unwrap_err();
        assert_eq!(e.line, 1);
        let e = tree("a {\n}\n}\n").unwrap_err();
        assert_eq!(e.line, 3);
        let e = tree("\n{\n").unwrap_err();
        assert_eq!(e.line, 2);
    }

    #[test]
    fn group_ranges_expand() {
        let d = parse(
            "virtual_server_group web {\n 192.0.2.10-12 80\n fwmark 5\n}\n\
             virtual_server group web {\n protocol TCP\n real_server 10.0.0.1 80 { }\n}\n",
        )
        .unwrap();
        let eps: Vec<String> = d.services.iter().map(|s| s.spec.endpoint()).collect();
        assert_eq!(
            eps,
            [
                "192.0.2.10:80/TCP",
                "192.0.2.11:80/TCP",
                "192.0.2.12:80/TCP",
                "fwmark:5/IPv4"
            ]
        );
        assert_eq!(
            d.notes,
            [Note::new(
                5,
                "`protocol` is ignored for a fwmark service (keepalived ignores it too)"
            )]
        );
    }

    #[test]
    fn keepalived_defaults_follow_its_parser() {
        // A granularity alone makes the service persistent (360 s); the
        // protocol is matched without case; an unknown one is ignored.
        let d = parse(
            "virtual_server 192.0.2.1 80 {\n protocol tcp\n persistence_granularity 255.255.0.0\n real_server 10.0.0.1 80 { }\n}\n\
             virtual_server 192.0.2.2 80 {\n protocol ICMP\n real_server 10.0.0.1 80 { }\n}\n",
        )
        .unwrap();
        let s = &d.services[0].spec;
        assert_eq!(s.protocol, Some(Protocol::Tcp));
        assert_eq!(
            s.persistence,
            Some(Persistence {
                timeout_seconds: 360,
                prefix_length: Some(16)
            })
        );
        assert_eq!(s.scheduler, Scheduler::Wlc);
        assert_eq!(
            d.services[0].real_servers[0].forwarding,
            ForwardingMethod::Nat
        );
        assert_eq!(d.services[1].spec.protocol, Some(Protocol::Udp));
        // Notes come in the parser's order; the report sorts them by line.
        assert_eq!(
            d.notes.iter().map(|n| n.line).collect::<Vec<_>>(),
            [7, 6],
            "{:?}",
            d.notes
        );
    }
}

//! The `ipvsadm -Sn` / `ipvsadm-save -n` format: one ipvsadm command line
//! per line, as `ipvsadm -R` reads it back.
//!
//! Every command `ipvsadm -R` takes is understood: `-A`/`-E` (services),
//! `-a`/`-e` (realservers), `-D`/`-d` and `-C` (deletions, applied in
//! order). Options are ipvsadm's short and long forms. The commands that do
//! not describe the table (`--set`, `--start-daemon`, `-Z`) are reported.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use lvs_api::{
    Family, ForwardingMethod, Persistence, Protocol, Scheduler, SchedulerFlag, Tunnel,
    TunnelChecksum, TunnelType, VirtualServiceSpec,
};

use super::{Draft, Note, ParseError, ParseErrorKind, RealServerDraft, ServiceDraft};

/// ipvsadm's default persistence timeout (`-p` without a value), seconds.
pub const DEFAULT_PERSISTENCE: i64 = 300;

const COMMANDS: &str = "-A, -E, -D, -a, -e, -d or -C";
const OPTIONS: &str = "one of -t, -u, --sctp-service, -f, -6, -s, -p, -M, -b, -o, --pe, -r, -g, -i, -m, -w, -x, -y, --tun-type, --tun-port, --tun-nocsum, --tun-csum, --tun-remcsum";

/// The identity of a service in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Tuple(Protocol, IpAddr, u16),
    Mark(u32, bool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    AddService,
    EditService,
    DelService,
    AddServer,
    EditServer,
    DelServer,
}

/// The options of one line.
#[derive(Debug, Default)]
struct Opts {
    key: Option<(Protocol, String)>,
    fwmark: Option<u32>,
    v6: bool,
    scheduler: Option<Scheduler>,
    persistent: Option<i64>,
    netmask: Option<String>,
    pe: Option<String>,
    flags: Vec<String>,
    ops: bool,
    real_server: Option<String>,
    forwarding: Option<ForwardingMethod>,
    weight: Option<i64>,
    upper: Option<i64>,
    lower: Option<i64>,
    tun_type: Option<TunnelType>,
    tun_port: Option<i64>,
    /// (enabled, remote) from --tun-csum / --tun-remcsum; --tun-nocsum clears.
    tun_csum: Option<(bool, bool)>,
}

fn number(line: usize, option: &str, value: &str, min: i64, max: i64) -> Result<i64, ParseError> {
    value
        .parse::<i64>()
        .ok()
        .filter(|v| (min..=max).contains(v))
        .ok_or_else(|| {
            ParseError::bad_value(
                line,
                option,
                value,
                &format!("a number from {min} to {max}"),
            )
        })
}

/// Splits `--option=value` into its parts.
fn split_long(word: &str) -> (&str, Option<&str>) {
    match word.split_once('=') {
        Some((o, v)) if o.starts_with("--") => (o, Some(v)),
        _ => (word, None),
    }
}

fn parse_opts(line: usize, words: &[&str]) -> Result<Opts, ParseError> {
    let mut o = Opts::default();
    let mut i = 0;
    while i < words.len() {
        let (opt, inline) = split_long(words[i]);
        i += 1;
        // The value of an option that needs one.
        let value = |i: &mut usize| -> Result<String, ParseError> {
            if let Some(v) = inline {
                return Ok(v.to_string());
            }
            match words.get(*i) {
                Some(v) => {
                    *i += 1;
                    Ok(v.to_string())
                }
                None => Err(ParseError::missing(line, opt)),
            }
        };
        match opt {
            "-t" | "--tcp-service" => o.key = Some((Protocol::Tcp, value(&mut i)?)),
            "-u" | "--udp-service" => o.key = Some((Protocol::Udp, value(&mut i)?)),
            "--sctp-service" => o.key = Some((Protocol::Sctp, value(&mut i)?)),
            "-f" | "--fwmark-service" => {
                let v = value(&mut i)?;
                o.fwmark = Some(number(line, opt, &v, 1, u32::MAX.into())? as u32);
            }
            "-6" | "--ipv6" => o.v6 = true,
            "-s" | "--scheduler" => {
                let v = value(&mut i)?;
                let names: Vec<&str> = Scheduler::ALL.iter().map(|s| s.as_str()).collect();
                o.scheduler = Some(v.parse().map_err(|_| {
                    ParseError::bad_value(
                        line,
                        opt,
                        &v,
                        &format!("a scheduler ({})", names.join(", ")),
                    )
                })?);
            }
            "-p" | "--persistent" => {
                // The timeout is optional: take the next word only when it
                // is a number.
                let v = match inline {
                    Some(v) => Some(v.to_string()),
                    None => match words.get(i) {
                        Some(w) if w.bytes().all(|b| b.is_ascii_digit()) && !w.is_empty() => {
                            i += 1;
                            Some(w.to_string())
                        }
                        _ => None,
                    },
                };
                o.persistent = Some(match v {
                    Some(v) => number(line, opt, &v, 1, i64::from(u32::MAX))?,
                    None => DEFAULT_PERSISTENCE,
                });
            }
            "-M" | "--netmask" => o.netmask = Some(value(&mut i)?),
            "--pe" => o.pe = Some(value(&mut i)?),
            "-b" | "--sched-flags" => {
                o.flags
                    .extend(value(&mut i)?.split(',').map(str::to_string));
            }
            "-o" | "--ops" => o.ops = true,
            "-r" | "--real-server" => o.real_server = Some(value(&mut i)?),
            "-g" | "--gatewaying" => o.forwarding = Some(ForwardingMethod::Dr),
            "-i" | "--ipip" => o.forwarding = Some(ForwardingMethod::Tun),
            "-m" | "--masquerading" => o.forwarding = Some(ForwardingMethod::Nat),
            "-w" | "--weight" => {
                let v = value(&mut i)?;
                o.weight = Some(number(line, opt, &v, 0, i32::MAX.into())?);
            }
            "-x" | "--u-threshold" => {
                let v = value(&mut i)?;
                o.upper = Some(number(line, opt, &v, 0, u32::MAX.into())?);
            }
            "-y" | "--l-threshold" => {
                let v = value(&mut i)?;
                o.lower = Some(number(line, opt, &v, 0, u32::MAX.into())?);
            }
            "-T" | "--tun-type" => {
                let v = value(&mut i)?;
                o.tun_type = Some(
                    v.parse()
                        .map_err(|_| ParseError::bad_value(line, opt, &v, "ipip, gue or gre"))?,
                );
            }
            "--tun-port" => {
                let v = value(&mut i)?;
                o.tun_port = Some(number(line, opt, &v, 1, 65535)?);
            }
            "--tun-nocsum" => o.tun_csum = Some((false, false)),
            "--tun-csum" => o.tun_csum = Some((true, false)),
            "--tun-remcsum" => o.tun_csum = Some((false, true)),
            other => {
                return Err(ParseError::new(
                    line,
                    ParseErrorKind::UnknownOption {
                        option: other.to_string(),
                        expected: OPTIONS.to_string(),
                    },
                ));
            }
        }
    }
    Ok(o)
}

/// `addr:port`, `[v6]:port`, or an address alone (port `default`).
fn parse_endpoint(
    line: usize,
    option: &str,
    s: &str,
    default: u16,
) -> Result<(IpAddr, u16), ParseError> {
    let expected =
        "a numeric address with an optional port (a.b.c.d:port or [v6]:port; save with -n)";
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Ok((sa.ip(), sa.port()));
    }
    let bare = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    bare.parse::<IpAddr>()
        .map(|ip| (ip, default))
        .map_err(|_| ParseError::bad_value(line, option, s, expected))
}

fn service_key(line: usize, o: &Opts) -> Result<Key, ParseError> {
    match (&o.key, o.fwmark) {
        (Some((proto, addr)), None) => {
            let opt = match proto {
                Protocol::Tcp => "-t",
                Protocol::Udp => "-u",
                Protocol::Sctp => "--sctp-service",
            };
            let (ip, port) = parse_endpoint(line, opt, addr, 0)?;
            Ok(Key::Tuple(*proto, ip, port))
        }
        (None, Some(mark)) => Ok(Key::Mark(mark, o.v6)),
        _ => Err(ParseError::structure(
            line,
            "the rule names no service; expected exactly one of -t, -u, --sctp-service or -f",
        )),
    }
}

/// Parses an `ipvsadm -Sn` rule set.
pub fn parse(text: &str) -> Result<Draft, ParseError> {
    let mut draft = Draft::default();
    let mut index: HashMap<Key, usize> = HashMap::new();
    // Services left out (already reported): their realservers are skipped quietly.
    let mut skipped: HashMap<Key, usize> = HashMap::new();
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = trimmed.split_whitespace().collect();
        let cmd = match words[0] {
            "-A" | "--add-service" => Command::AddService,
            "-E" | "--edit-service" => Command::EditService,
            "-D" | "--delete-service" => Command::DelService,
            "-a" | "--add-server" => Command::AddServer,
            "-e" | "--edit-server" => Command::EditServer,
            "-d" | "--delete-server" => Command::DelServer,
            "-C" | "--clear" => {
                draft.notes.push(Note::new(
                    line,
                    "`-C` clears the rules above it; they are left out",
                ));
                draft.services.clear();
                index.clear();
                skipped.clear();
                continue;
            }
            w @ ("--set" | "--start-daemon" | "--stop-daemon" | "-Z" | "--zero") => {
                let why = match w {
                    "--set" => {
                        "connection timeouts are node settings (LvsNodeProfile spec.ipvsTimeouts)"
                    }
                    "-Z" | "--zero" => "counters are not configuration",
                    _ => "connection synchronisation is the agents' own (director HA)",
                };
                draft
                    .notes
                    .push(Note::new(line, format!("`{w}` not carried: {why}")));
                continue;
            }
            w => {
                return Err(ParseError::new(
                    line,
                    ParseErrorKind::UnknownCommand {
                        word: w.to_string(),
                        expected: COMMANDS.to_string(),
                    },
                ));
            }
        };
        let o = parse_opts(line, &words[1..])?;
        let key = service_key(line, &o)?;
        match cmd {
            Command::AddService | Command::EditService => {
                let exists = index.contains_key(&key) || skipped.contains_key(&key);
                if cmd == Command::AddService && exists {
                    return Err(ParseError::structure(
                        line,
                        "the service is already defined above (ipvsadm -R refuses it: service already exists)",
                    ));
                }
                if cmd == Command::EditService && !exists {
                    return Err(ParseError::structure(
                        line,
                        "`-E` edits a service not defined above",
                    ));
                }
                match service_spec(line, key, &o, &mut draft.notes) {
                    Some(spec) => {
                        if let Some(&i) = index.get(&key) {
                            draft.services[i].spec = spec;
                        } else {
                            skipped.remove(&key);
                            index.insert(key, draft.services.len());
                            draft.services.push(ServiceDraft {
                                line,
                                spec,
                                real_servers: Vec::new(),
                                checks: Vec::new(),
                            });
                        }
                    }
                    None => {
                        if let Some(i) = index.remove(&key) {
                            remove_service(&mut draft, &mut index, i);
                        }
                        skipped.insert(key, line);
                    }
                }
            }
            Command::DelService => {
                if let Some(i) = index.remove(&key) {
                    remove_service(&mut draft, &mut index, i);
                } else if skipped.remove(&key).is_none() {
                    return Err(ParseError::structure(
                        line,
                        "`-D` deletes a service not defined above",
                    ));
                }
            }
            Command::AddServer | Command::EditServer | Command::DelServer => {
                let Some(r) = o.real_server.as_deref() else {
                    return Err(ParseError::missing(line, "-r"));
                };
                let default_port = match key {
                    Key::Tuple(_, _, p) => p,
                    Key::Mark(..) => 0,
                };
                let (ip, port) = parse_endpoint(line, "-r", r, default_port)?;
                if skipped.contains_key(&key) {
                    continue;
                }
                let Some(&si) = index.get(&key) else {
                    return Err(ParseError::structure(
                        line,
                        "the realserver's service is not defined above (ipvsadm -R refuses it: no such service)",
                    ));
                };
                let svc = &mut draft.services[si];
                let pos = svc
                    .real_servers
                    .iter()
                    .position(|d| d.address == ip && d.port == Some(port));
                match (cmd, pos) {
                    (Command::AddServer, Some(_)) => {
                        return Err(ParseError::structure(
                            line,
                            "the realserver is already defined above for this service (ipvsadm -R refuses it: destination already exists)",
                        ));
                    }
                    (Command::EditServer | Command::DelServer, None) => {
                        return Err(ParseError::structure(
                            line,
                            "the rule changes a realserver not defined above",
                        ));
                    }
                    (Command::DelServer, Some(p)) => {
                        svc.real_servers.remove(p);
                    }
                    _ => {
                        let d = server_draft(line, ip, port, &o, &mut draft.notes);
                        match pos {
                            Some(p) => svc.real_servers[p] = d,
                            None => svc.real_servers.push(d),
                        }
                    }
                }
            }
        }
    }
    Ok(draft)
}

fn remove_service(draft: &mut Draft, index: &mut HashMap<Key, usize>, i: usize) {
    draft.services.remove(i);
    for v in index.values_mut() {
        if *v > i {
            *v -= 1;
        }
    }
}

/// The spec of an `-A`/`-E` line; `None` (reported) when the service cannot
/// be expressed at all.
fn service_spec(
    line: usize,
    key: Key,
    o: &Opts,
    notes: &mut Vec<Note>,
) -> Option<VirtualServiceSpec> {
    let scheduler = o.scheduler.unwrap_or_default();
    let mut spec = VirtualServiceSpec {
        scheduler,
        ..Default::default()
    };
    let v6 = match key {
        Key::Tuple(proto, ip, port) => {
            if port == 0 {
                notes.push(Note::new(
                    line,
                    "a service on port 0 (every port, with -p) cannot be expressed: a VirtualService has one port; use a fwmark service; the service and its realservers are left out",
                ));
                return None;
            }
            spec.address = Some(ip.to_string());
            spec.port = Some(port.into());
            spec.protocol = Some(proto);
            ip.is_ipv6()
        }
        Key::Mark(mark, v6) => {
            spec.fwmark = Some(mark.into());
            if v6 {
                spec.family = Some(Family::IPv6);
            }
            v6
        }
    };
    if o.v6 && matches!(key, Key::Tuple(..)) {
        // -6 only matters with -f; an address says its family itself.
    }
    for f in &o.flags {
        let flag = match (f.as_str(), scheduler) {
            ("sh-fallback" | "flag-1", Scheduler::Sh) => Some(SchedulerFlag::ShFallback),
            ("sh-port" | "flag-2", Scheduler::Sh) => Some(SchedulerFlag::ShPort),
            ("mh-fallback" | "flag-1", Scheduler::Mh) => Some(SchedulerFlag::MhFallback),
            ("mh-port" | "flag-2", Scheduler::Mh) => Some(SchedulerFlag::MhPort),
            (
                "sh-fallback" | "sh-port" | "mh-fallback" | "mh-port" | "flag-1" | "flag-2"
                | "flag-3",
                _,
            ) => None,
            _ => {
                notes.push(Note::new(
                    line,
                    format!("scheduler flag `{f}` unknown; expected sh-fallback, sh-port, mh-fallback, mh-port or flag-1..3; not carried"),
                ));
                continue;
            }
        };
        match flag {
            Some(flag) if !spec.scheduler_flags.contains(&flag) => spec.scheduler_flags.push(flag),
            Some(_) => {}
            None => notes.push(Note::new(
                line,
                format!("scheduler flag `{f}` has no meaning for scheduler {scheduler} (only sh-* with sh, mh-* with mh); not carried"),
            )),
        }
    }
    if o.ops {
        if matches!(key, Key::Tuple(Protocol::Udp, ..) | Key::Mark(..)) {
            spec.scheduler_flags.push(SchedulerFlag::OnePacket);
        } else {
            notes.push(Note::new(
                line,
                "option `-o` (one-packet scheduling) works only with UDP or fwmark services; not carried",
            ));
        }
    }
    if let Some(pe) = &o.pe {
        notes.push(Note::new(
            line,
            format!("option `--pe {pe}` not carried: persistence engines are not supported"),
        ));
    }
    match (o.persistent, &o.netmask) {
        (Some(timeout), mask) => {
            if timeout > 2_678_400 {
                notes.push(Note::new(
                    line,
                    format!("option `-p` value `{timeout}` is above 2678400 (31 days), the most spec.persistence.timeoutSeconds takes; imported as 2678400"),
                ));
            }
            let prefix = match mask {
                None => None,
                Some(m) => match mask_prefix(m, v6) {
                    Some(p) if p == if v6 { 128 } else { 32 } => None,
                    Some(p) => Some(p),
                    None => {
                        notes.push(Note::new(
                            line,
                            format!(
                                "option `-M` value `{m}` is not {}; persistence is per client address",
                                if v6 { "a prefix length from 1 to 128" } else { "a contiguous IPv4 netmask" }
                            ),
                        ));
                        None
                    }
                },
            };
            spec.persistence = Some(Persistence {
                timeout_seconds: timeout.min(2_678_400),
                prefix_length: prefix,
            });
        }
        (None, Some(m)) => notes.push(Note::new(
            line,
            format!("option `-M {m}` has no effect without `-p`; not carried"),
        )),
        (None, None) => {}
    }
    Some(spec)
}

/// A persistence netmask: dotted for IPv4, a prefix length for IPv6.
fn mask_prefix(m: &str, v6: bool) -> Option<i64> {
    if v6 {
        m.parse::<i64>().ok().filter(|p| (1..=128).contains(p))
    } else {
        m.parse::<Ipv4Addr>().ok().and_then(super::netmask_prefix)
    }
}

fn server_draft(
    line: usize,
    ip: IpAddr,
    port: u16,
    o: &Opts,
    notes: &mut Vec<Note>,
) -> RealServerDraft {
    // ipvsadm's default forwarding method is direct routing.
    let forwarding = o.forwarding.unwrap_or(ForwardingMethod::Dr);
    let tunnel = if forwarding == ForwardingMethod::Tun {
        let type_ = o.tun_type.unwrap_or_default();
        let checksum = match o.tun_csum {
            Some((true, _)) | Some((_, true)) => Some(TunnelChecksum {
                enabled: o.tun_csum.is_some_and(|c| c.0),
                remote: o.tun_csum.is_some_and(|c| c.1),
            }),
            _ => None,
        };
        let t = Tunnel {
            type_,
            port: if type_ == TunnelType::Gue {
                o.tun_port
            } else {
                None
            },
            checksum,
        };
        if type_ != TunnelType::Gue && o.tun_port.is_some() {
            notes.push(Note::new(
                line,
                format!("option `--tun-port` is only used with --tun-type gue (got {type_}); not carried"),
            ));
        }
        Some(t)
    } else {
        if o.tun_type.is_some() || o.tun_port.is_some() || o.tun_csum.is_some() {
            notes.push(Note::new(
                line,
                format!("tunnel options are only used with -i (TUN), this realserver forwards with {forwarding}; not carried"),
            ));
        }
        None
    };
    RealServerDraft {
        line,
        address: ip,
        port: Some(port),
        weight: o.weight.unwrap_or(1),
        forwarding,
        tunnel,
        upper_threshold: o.upper,
        lower_threshold: o.lower,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_and_realservers() {
        let d = parse(
            "-A -t 203.0.113.10:80 -s wrr -p 600 -M 255.255.255.0\n\
             -a -t 203.0.113.10:80 -r 10.0.1.11:8080 -m -w 3 -x 100 -y 50\n\
             -a -t 203.0.113.10:80 -r 10.0.1.12\n",
        )
        .unwrap();
        assert!(d.notes.is_empty(), "{:?}", d.notes);
        let s = &d.services[0];
        assert_eq!(s.spec.scheduler, Scheduler::Wrr);
        assert_eq!(
            s.spec.persistence,
            Some(Persistence {
                timeout_seconds: 600,
                prefix_length: Some(24)
            })
        );
        assert_eq!(s.real_servers[0].port, Some(8080));
        assert_eq!(s.real_servers[0].forwarding, ForwardingMethod::Nat);
        assert_eq!(s.real_servers[0].upper_threshold, Some(100));
        assert_eq!(s.real_servers[1].port, Some(80));
        assert_eq!(s.real_servers[1].forwarding, ForwardingMethod::Dr);
        assert_eq!(s.real_servers[1].weight, 1);
    }

    #[test]
    fn persistence_without_timeout_takes_ipvsadms_default() {
        let d = parse("-A -u [2001:db8::1]:53 -p -s rr\n").unwrap();
        assert_eq!(
            d.services[0]
                .spec
                .persistence
                .as_ref()
                .unwrap()
                .timeout_seconds,
            300
        );
        assert_eq!(d.services[0].spec.scheduler, Scheduler::Rr);
    }

    #[test]
    fn errors_name_the_line() {
        let e =
            parse("-A -t 192.0.2.1:80 -s rr\n\n-a -t 192.0.2.1:80 -r 10.0.0.1 -w\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert_eq!(e.to_string(), "line 3: option `-w` needs a value");
        let e = parse("-A -t 192.0.2.1:80 -s roundrobin\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("line 1: option `-s` value `roundrobin` is not a scheduler (rr, wrr"),
            "{e}"
        );
        let e = parse("# saved\n-a -t 192.0.2.1:80 -r 10.0.0.1\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = parse("-X -t 192.0.2.1:80\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 1: `-X` is not a command; expected -A, -E, -D, -a, -e, -d or -C"
        );
        let e = parse("-A -t www.example.com:80\n").unwrap_err();
        assert!(e.to_string().contains("numeric address"), "{e}");
    }

    #[test]
    fn deletions_and_edits_apply_in_order() {
        let d = parse(
            "-A -t 192.0.2.1:80 -s rr\n-a -t 192.0.2.1:80 -r 10.0.0.1:80 -g\n\
             -e -t 192.0.2.1:80 -r 10.0.0.1:80 -g -w 5\n-A -t 192.0.2.2:80\n-D -t 192.0.2.2:80\n\
             -E -t 192.0.2.1:80 -s wlc\n",
        )
        .unwrap();
        assert_eq!(d.services.len(), 1);
        assert_eq!(d.services[0].spec.scheduler, Scheduler::Wlc);
        assert_eq!(d.services[0].real_servers[0].weight, 5);
    }
}

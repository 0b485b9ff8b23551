//! ipvsadm's text formats (`-Ln` listing, `-Sn` rules) for the examples, so
//! their output can be compared with ipvsadm's own in the kernel lab.

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use lvs_ipvs::{
    DestConfig, DestKey, Destination, Family, FwdMethod, IpvsInfo, Op, Protocol, Service,
    ServiceConfig, ServiceEntry, ServiceFlags, ServiceKey, TunnelFlags, TunnelType,
};

fn svc_addr(key: &ServiceKey) -> String {
    match key {
        ServiceKey::Tuple { addr, port, .. } => SocketAddr::new(*addr, *port).to_string(),
        ServiceKey::Fwmark { mark, .. } => mark.to_string(),
    }
}

fn sched_flag_names(config: &ServiceConfig) -> Vec<String> {
    let prefix = match config.scheduler.as_str() {
        "sh" | "mh" => Some(config.scheduler.as_str()),
        _ => None,
    };
    [
        (ServiceFlags::SCHED1, "fallback", "flag-1"),
        (ServiceFlags::SCHED2, "port", "flag-2"),
        (ServiceFlags::SCHED3, "", "flag-3"),
    ]
    .iter()
    .filter(|(f, _, _)| config.flags.contains(*f))
    .map(|(_, named, generic)| match prefix {
        Some(p) if !named.is_empty() => format!("{p}-{named}"),
        _ => generic.to_string(),
    })
    .collect()
}

fn mask_text(family: Family, netmask: u32) -> Option<String> {
    match family {
        Family::V4 if netmask != u32::MAX => Some(Ipv4Addr::from(netmask).to_string()),
        Family::V6 if netmask != 128 => Some(netmask.to_string()),
        _ => None,
    }
}

/// `ipvsadm -Ln`.
pub fn list(info: &IpvsInfo, table: &[ServiceEntry]) -> String {
    let mut out = format!(
        "IP Virtual Server version {} (size={})\n\
         Prot LocalAddress:Port Scheduler Flags\n  \
         -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
        info.version_string(),
        info.conn_tab_size
    );
    for e in table {
        let s = &e.service;
        let prot = match s.key {
            ServiceKey::Tuple { protocol, .. } => protocol.to_string(),
            ServiceKey::Fwmark { .. } => "FWM".into(),
        };
        let mut line = format!("{prot:<4} {} ", svc_addr(&s.key));
        if let ServiceKey::Fwmark {
            family: Family::V6, ..
        } = s.key
        {
            line.push_str("IPv6 ");
        }
        line.push_str(&s.config.scheduler);
        let flags = sched_flag_names(&s.config);
        if !flags.is_empty() {
            line.push_str(&format!(" ({})", flags.join(",")));
        }
        if s.config.flags.contains(ServiceFlags::PERSISTENT) {
            line.push_str(&format!(" persistent {}", s.config.timeout));
            if let Some(m) = mask_text(s.key.family(), s.config.netmask) {
                line.push_str(&format!(" mask {m}"));
            }
        }
        if let Some(pe) = &s.config.pe_name {
            line.push_str(&format!(" pe {pe}"));
        }
        if s.config.flags.contains(ServiceFlags::ONE_PACKET) {
            line.push_str(" ops");
        }
        out.push_str(&line);
        out.push('\n');
        for d in &e.destinations {
            out.push_str(&format!(
                "  -> {:<28} {:<7} {:<6} {:<10} {:<10}\n",
                d.destination.key.to_string(),
                d.destination.config.fwd.to_string(),
                d.destination.config.weight,
                d.stats.active_conns,
                d.stats.inactive_conns
            ));
        }
    }
    out
}

fn svc_switch(key: &ServiceKey) -> String {
    match key {
        ServiceKey::Tuple { protocol, .. } => {
            let flag = match *protocol {
                Protocol::TCP => "-t",
                Protocol::UDP => "-u",
                Protocol::SCTP => "--sctp-service",
                _ => "-t",
            };
            format!("{flag} {}", svc_addr(key))
        }
        ServiceKey::Fwmark { family, mark } => match family {
            Family::V4 => format!("-f {mark}"),
            Family::V6 => format!("-f {mark} -6"),
        },
    }
}

/// `ipvsadm -Sn`.
pub fn save(table: &[ServiceEntry]) -> String {
    let mut out = String::new();
    for e in table {
        let s = &e.service;
        let sw = svc_switch(&s.key);
        let mut line = format!("-A {sw} -s {}", s.config.scheduler);
        if s.config.flags.contains(ServiceFlags::PERSISTENT) {
            line.push_str(&format!(" -p {}", s.config.timeout));
            if let Some(m) = mask_text(s.key.family(), s.config.netmask) {
                line.push_str(&format!(" -M {m}"));
            }
        }
        if let Some(pe) = &s.config.pe_name {
            line.push_str(&format!(" --pe {pe}"));
        }
        if s.config.flags.contains(ServiceFlags::ONE_PACKET) {
            line.push_str(" -o");
        }
        let flags = sched_flag_names(&s.config);
        if !flags.is_empty() {
            line.push_str(&format!(" -b {}", flags.join(",")));
        }
        out.push_str(&line);
        out.push('\n');
        for d in &e.destinations {
            let c = &d.destination.config;
            let fwd = match c.fwd {
                FwdMethod::Masq => "-m",
                FwdMethod::Tunnel => "-i",
                _ => "-g",
            };
            let mut line = format!("-a {sw} -r {} {fwd} -w {}", d.destination.key, c.weight);
            if c.fwd == FwdMethod::Tunnel {
                line.push_str(&tunnel_text(c));
            }
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

fn tunnel_text(c: &DestConfig) -> String {
    let mut s = match c.tun_type {
        TunnelType::IPIP => return " --tun-type ipip".into(),
        TunnelType::GUE => format!(" --tun-type gue --tun-port {}", c.tun_port),
        TunnelType::GRE => " --tun-type gre".into(),
        TunnelType(other) => format!(" --tun-type {other}"),
    };
    s.push_str(if c.tun_flags.0 & TunnelFlags::CSUM.0 != 0 {
        " --tun-csum"
    } else if c.tun_flags.0 & TunnelFlags::REMCSUM.0 != 0 {
        " --tun-remcsum"
    } else {
        " --tun-nocsum"
    });
    s
}

/// Parse one ipvsadm rule (`-A/-E/-D/-a/-e/-d ...`, the subset `-Sn` prints
/// plus thresholds) into an operation.
pub fn parse_rule(line: &str) -> Result<Op, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let cmd = *words.first().ok_or("empty rule")?;
    let mut key_addr = None;
    let mut fwmark = None;
    let mut v6 = false;
    let mut sched = "wlc".to_string();
    let mut flags = ServiceFlags::empty();
    let mut timeout = None;
    let mut mask = None;
    let mut pe = None;
    let mut rs = None;
    let mut fwd = FwdMethod::DirectRoute;
    let mut weight = 1;
    let (mut x, mut y) = (0, 0);
    let mut tun_type = TunnelType::IPIP;
    let mut tun_port = 0;
    let mut tun_flags = TunnelFlags::NOCSUM;
    let need = |it: &mut std::slice::Iter<'_, &str>, what: &str| -> Result<String, String> {
        it.next()
            .map(|s| s.to_string())
            .ok_or(format!("{what} needs a value"))
    };
    fn num<T: std::str::FromStr>(v: String) -> Result<T, String>
    where
        T::Err: std::fmt::Display,
    {
        v.parse().map_err(|e| format!("{v}: {e}"))
    }
    let mut rest = words[1..].iter();
    while let Some(&w) = rest.next() {
        match w {
            "-t" => key_addr = Some((Protocol::TCP, need(&mut rest, w)?)),
            "-u" => key_addr = Some((Protocol::UDP, need(&mut rest, w)?)),
            "--sctp-service" => key_addr = Some((Protocol::SCTP, need(&mut rest, w)?)),
            "-f" => fwmark = Some(num(need(&mut rest, w)?)?),
            "-6" => v6 = true,
            "-s" => sched = need(&mut rest, w)?,
            "-p" => {
                flags = flags | ServiceFlags::PERSISTENT;
                timeout = Some(num(need(&mut rest, w)?)?);
            }
            "-M" => mask = Some(need(&mut rest, w)?),
            "--pe" => pe = Some(need(&mut rest, w)?),
            "-o" => flags = flags | ServiceFlags::ONE_PACKET,
            "-b" => {
                for f in need(&mut rest, w)?.split(',') {
                    flags = flags
                        | match f.rsplit('-').next() {
                            Some("fallback") | Some("1") => ServiceFlags::SCHED1,
                            Some("port") | Some("2") => ServiceFlags::SCHED2,
                            Some("3") => ServiceFlags::SCHED3,
                            _ => return Err(format!("unknown scheduler flag {f}")),
                        };
                }
            }
            "-r" => rs = Some(need(&mut rest, w)?),
            "-g" => fwd = FwdMethod::DirectRoute,
            "-i" => fwd = FwdMethod::Tunnel,
            "-m" => fwd = FwdMethod::Masq,
            "-w" => weight = num(need(&mut rest, w)?)?,
            "-x" => x = num(need(&mut rest, w)?)?,
            "-y" => y = num(need(&mut rest, w)?)?,
            "--tun-type" => {
                tun_type = match need(&mut rest, w)?.as_str() {
                    "ipip" => TunnelType::IPIP,
                    "gue" => TunnelType::GUE,
                    "gre" => TunnelType::GRE,
                    other => return Err(format!("unknown tunnel type {other}")),
                }
            }
            "--tun-port" => tun_port = num(need(&mut rest, w)?)?,
            "--tun-csum" => tun_flags = TunnelFlags::CSUM,
            "--tun-remcsum" => tun_flags = TunnelFlags::REMCSUM,
            "--tun-nocsum" => tun_flags = TunnelFlags::NOCSUM,
            other => return Err(format!("unsupported option {other}")),
        }
    }
    let key = match (key_addr, fwmark) {
        (Some((protocol, a)), None) => {
            let sa: SocketAddr = a.parse().map_err(|e| format!("{a}: {e}"))?;
            ServiceKey::Tuple {
                addr: sa.ip(),
                protocol,
                port: sa.port(),
            }
        }
        (None, Some(mark)) => ServiceKey::Fwmark {
            family: if v6 { Family::V6 } else { Family::V4 },
            mark,
        },
        _ => return Err("need exactly one of -t/-u/--sctp-service/-f".into()),
    };
    let family = key.family();
    let service = || -> Result<Service, String> {
        let mut config = ServiceConfig::new(family, sched.clone());
        config.flags = flags;
        config.timeout = timeout.unwrap_or(0);
        config.pe_name = pe.clone();
        if let Some(m) = &mask {
            config.netmask = match family {
                Family::V4 => u32::from(m.parse::<Ipv4Addr>().map_err(|e| format!("{m}: {e}"))?),
                Family::V6 => m.parse().map_err(|e| format!("{m}: {e}"))?,
            };
        }
        Ok(Service { key, config })
    };
    let dest_key = || -> Result<DestKey, String> {
        let r = rs.as_deref().ok_or("-r is required")?;
        let default_port = match key {
            ServiceKey::Tuple { port, .. } => port,
            ServiceKey::Fwmark { .. } => 0,
        };
        Ok(match r.parse::<SocketAddr>() {
            Ok(sa) => DestKey {
                addr: sa.ip(),
                port: sa.port(),
            },
            Err(_) => DestKey {
                addr: r
                    .trim_matches(|c| c == '[' || c == ']')
                    .parse::<IpAddr>()
                    .map_err(|e| format!("{r}: {e}"))?,
                port: default_port,
            },
        })
    };
    let dest = || -> Result<Destination, String> {
        Ok(Destination {
            key: dest_key()?,
            config: DestConfig {
                u_threshold: x,
                l_threshold: y,
                tun_type,
                tun_port,
                tun_flags,
                ..DestConfig::new(fwd, weight)
            },
        })
    };
    Ok(match cmd {
        "-A" => Op::AddService(service()?),
        "-E" => Op::UpdateService(service()?),
        "-D" => Op::DelService(key),
        "-a" => Op::AddDest {
            service: key,
            dest: dest()?,
        },
        "-e" => Op::UpdateDest {
            service: key,
            dest: dest()?,
        },
        "-d" => Op::DelDest {
            service: key,
            dest: dest_key()?,
        },
        other => return Err(format!("unsupported command {other}")),
    })
}

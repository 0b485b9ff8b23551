//! `lvs-bench`: the benchmark driver that runs inside the kernel lab VM.
//!
//! Every measuring subcommand prints exactly one line of `key=value` pairs on
//! stdout, which `e2e/bench/guest.sh` tags with the metric and contender.
//!
//! Slightly over the usual length: one function per subcommand, each
//! self-contained; the shared parts live in the library (`lib.rs`).
#![forbid(unsafe_code)]

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use lvs_bench::{Table, count_netlink, parse_rules, percentiles};
use lvs_ipvs::{
    DestConfig, DestKey, Destination, FwdMethod, IpvsClient, NetlinkTransport, Op, Protocol,
    Service, ServiceConfig, ServiceKey, Transport,
};
use nix::sys::resource::{UsageWho, getrusage};

#[derive(Debug, Parser)]
#[command(name = "lvs-bench", about = "Benchmark driver for the kernel lab")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Print the rules file (`ipvsadm -R` input, `ipvsadm -Sn` output) of an N×M table.
    GenRules {
        #[arg(long)]
        n: u32,
        #[arg(long)]
        m: u32,
        #[arg(long, default_value_t = 1000)]
        pool: u32,
    },
    /// Write the node agent's manifests for an N×M table into DIR.
    GenManifests {
        #[arg(long)]
        n: u32,
        #[arg(long)]
        m: u32,
        #[arg(long, default_value_t = 1000)]
        pool: u32,
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value = "bench")]
        node: String,
        #[arg(long, default_value = "10.0.0.2")]
        node_ip: Ipv4Addr,
    },
    /// Build the table of a rules file with lvs-ipvs (BATCH messages per sendmsg).
    Converge {
        #[arg(long)]
        rules: PathBuf,
        #[arg(long, default_value_t = 64)]
        batch: usize,
    },
    /// Dump the whole table with lvs-ipvs; optionally write it as rules to FILE.
    Read {
        #[arg(long)]
        save: Option<PathBuf>,
        /// GET_DEST dumps on this many extra sockets, one thread each
        /// (`dump_all_parallel`); 0: all on the client's socket, in turn
        /// (`dump_all`).
        #[arg(long, default_value_t = 0)]
        connections: usize,
        /// Experiment: only the GET_SERVICE dump.
        #[arg(long)]
        services_only: bool,
        /// Experiment: make this many extra no-op syscalls (sched_yield) per service.
        #[arg(long, default_value_t = 0)]
        yields: usize,
    },
    /// Time single changes in the current table with lvs-ipvs: add a
    /// destination, change its weight, delete it, add a service (and delete
    /// it again, untimed), REPEAT times.
    Change {
        /// Service that gets the extra destination.
        #[arg(long)]
        svc: SocketAddr,
        /// The extra destination.
        #[arg(long)]
        dest: SocketAddr,
        /// The extra service.
        #[arg(long)]
        new_svc: SocketAddr,
        #[arg(long, default_value_t = 20)]
        repeat: usize,
        #[arg(long, default_value_t = 64)]
        batch: usize,
    },
    /// Run a command; print its wall time, CPU time (user+sys) and peak RSS.
    Time {
        /// Feed this file on stdin.
        #[arg(long)]
        stdin: Option<PathBuf>,
        /// Send stdout here (default: discarded).
        #[arg(long)]
        stdout: Option<PathBuf>,
        #[arg(required = true, trailing_var_arg = true)]
        command: Vec<String>,
    },
    /// Count the netlink requests in an nlmon capture.
    Nlcount {
        pcap: PathBuf,
        /// The IPVS family id (`lvs-bench family`).
        #[arg(long)]
        family: u16,
    },
    /// Compare two files as multisets of lines (e.g. the rules and
    /// `ipvsadm -Sn` output, which lists in hash order); exit 1 if they differ.
    SameLines { expected: PathBuf, actual: PathBuf },
    /// Print the IPVS generic-netlink family id.
    Family,
    /// Do ACTION (if any) and poll the kernel until the condition holds;
    /// print the elapsed time. For the agent's change latency.
    Wait {
        #[arg(long)]
        svc: SocketAddr,
        /// Destination to look for; without it, the service itself.
        #[arg(long)]
        dest: Option<SocketAddr>,
        /// Wait for this weight.
        #[arg(long)]
        weight: Option<u32>,
        /// Wait until the destination (or service) is gone.
        #[arg(long)]
        absent: bool,
        /// First rename SRC to DST (both paths; atomic manifest write).
        #[arg(long, num_args = 2, value_names = ["SRC", "DST"])]
        rename: Option<Vec<PathBuf>>,
        /// First remove this file.
        #[arg(long)]
        remove: Option<PathBuf>,
        #[arg(long, default_value_t = 120.0)]
        timeout: f64,
        /// Poll period in milliseconds.
        #[arg(long, default_value_t = 2)]
        poll_ms: u64,
    },
    /// Time parsing a manifest file, on one thread and cut into PARTS
    /// parsed on threads of their own (the agent's manifest load),
    /// alternately, REPEAT times each; print the medians.
    Parse {
        file: PathBuf,
        #[arg(long, default_value_t = 2)]
        parts: usize,
        #[arg(long, default_value_t = 5)]
        repeat: usize,
    },
    /// Wait until the table holds at least SERVICES services, checking
    /// every PERIOD seconds (cheap: one GET_SERVICE dump per check).
    WaitServices {
        #[arg(long)]
        services: usize,
        #[arg(long, default_value_t = 600.0)]
        timeout: f64,
        #[arg(long, default_value_t = 1.0)]
        period: f64,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse().cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lvs-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

/// (user, system) CPU milliseconds.
fn cpu_split_ms(who: UsageWho) -> anyhow::Result<(f64, f64)> {
    let u = getrusage(who).context("getrusage")?;
    let tv = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 * 1e3 + t.tv_usec() as f64 / 1e3;
    Ok((tv(u.user_time()), tv(u.system_time())))
}

fn cpu_ms(who: UsageWho) -> anyhow::Result<f64> {
    let (u, s) = cpu_split_ms(who)?;
    Ok(u + s)
}

/// A transport that stamps [`lvs_bench::BENCH_PORT_MARK`] into the
/// nlmsg_pid of every request it sends (the kernel ignores that field in
/// requests), so `nlcount` can leave the harness's own polling out of the
/// agent's request counts.
#[derive(Debug)]
struct MarkedTransport(NetlinkTransport);

impl Transport for MarkedTransport {
    fn send(&mut self, datagram: &[u8]) -> std::io::Result<()> {
        let mut d = datagram.to_vec();
        let mut off = 0;
        while off + 16 <= d.len() {
            let len = u32::from_ne_bytes(d[off..off + 4].try_into().expect("4 bytes")) as usize;
            d[off + 12..off + 16].copy_from_slice(&lvs_bench::BENCH_PORT_MARK.to_ne_bytes());
            if len < 16 {
                break;
            }
            off += (len + 3) & !3;
        }
        self.0.send(&d)
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> std::io::Result<usize> {
        self.0.recv(buf)
    }
}

fn connect_marked() -> anyhow::Result<IpvsClient<MarkedTransport>> {
    let t = NetlinkTransport::open().context("opening a netlink socket")?;
    IpvsClient::new(MarkedTransport(t)).context("connecting to IPVS (needs CAP_NET_ADMIN, ip_vs)")
}

fn connect(batch: usize) -> anyhow::Result<IpvsClient> {
    let mut c = IpvsClient::connect().context("connecting to IPVS (needs CAP_NET_ADMIN, ip_vs)")?;
    c.set_batch_size(batch);
    Ok(c)
}

fn tuple(sa: SocketAddr) -> ServiceKey {
    ServiceKey::Tuple {
        addr: sa.ip(),
        protocol: Protocol::TCP,
        port: sa.port(),
    }
}

fn dest(sa: SocketAddr, weight: u32) -> Destination {
    Destination {
        key: DestKey {
            addr: sa.ip(),
            port: sa.port(),
        },
        config: DestConfig::new(FwdMethod::Masq, weight),
    }
}

fn apply_all(client: &mut IpvsClient, ops: &[Op]) -> anyhow::Result<()> {
    let results = client.apply(ops)?;
    let failed: Vec<String> = results
        .into_iter()
        .filter_map(|r| r.err().map(|e| e.to_string()))
        .collect();
    if !failed.is_empty() {
        bail!(
            "{} of {} operations failed; first: {}",
            failed.len(),
            ops.len(),
            failed[0]
        );
    }
    Ok(())
}

fn run(cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::GenRules { n, m, pool } => {
            let t = Table::new(n, m, pool)?;
            std::io::stdout().lock().write_all(t.rules().as_bytes())?;
        }
        Cmd::GenManifests {
            n,
            m,
            pool,
            dir,
            node,
            node_ip,
        } => {
            let t = Table::new(n, m, pool)?;
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for (name, text) in t.manifests(&node, node_ip) {
                let p = dir.join(name);
                std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
            }
        }
        Cmd::Converge { rules, batch } => {
            let text = std::fs::read_to_string(&rules)
                .with_context(|| format!("reading {}", rules.display()))?;
            let ops = parse_rules(&text)?;
            let mut client = connect(batch)?;
            let counters = client.counters();
            let (c0, cpu0, t0) = (
                counters.snapshot(),
                cpu_ms(UsageWho::RUSAGE_SELF)?,
                Instant::now(),
            );
            apply_all(&mut client, &ops)?;
            let (wall, cpu) = (t0.elapsed(), cpu_ms(UsageWho::RUSAGE_SELF)? - cpu0);
            let d = counters.snapshot() - c0;
            println!(
                "ops={} apply_ms={} apply_cpu_ms={cpu:.3} requests={} sendmsgs={} batch={batch}",
                ops.len(),
                ms(wall),
                d.requests,
                d.sendmsgs
            );
        }
        Cmd::Read {
            save,
            connections,
            services_only,
            yields,
        } => {
            let mut client = connect(64)?;
            let counters = client.counters();
            let (c0, t0) = (counters.snapshot(), Instant::now());
            let table = if services_only || yields > 0 {
                let mut table = Vec::new();
                for (service, stats) in client.services()? {
                    let destinations = if services_only {
                        Vec::new()
                    } else {
                        for _ in 0..yields {
                            std::thread::yield_now();
                        }
                        client.destinations(&service.key)?
                    };
                    table.push(lvs_ipvs::ServiceEntry {
                        service,
                        stats,
                        destinations,
                    });
                }
                table.sort();
                table
            } else if connections > 0 {
                client.dump_all_parallel(connections)?
            } else {
                client.dump_all()?
            };
            let wall = t0.elapsed();
            let d = counters.snapshot() - c0;
            let dests: usize = table.iter().map(|e| e.destinations.len()).sum();
            if let Some(p) = save {
                let mut out = String::new();
                for e in &table {
                    out += &lvs_bench::service_line(&e.service);
                    out.push('\n');
                    for d in &e.destinations {
                        out += &lvs_bench::dest_line(&e.service.key, &d.destination);
                        out.push('\n');
                    }
                }
                std::fs::write(&p, out).with_context(|| format!("writing {}", p.display()))?;
            }
            println!(
                "read_ms={} services={} dests={dests} requests={} recvmsgs={}",
                ms(wall),
                table.len(),
                d.requests,
                d.recvmsgs
            );
        }
        Cmd::Change {
            svc,
            dest: extra,
            new_svc,
            repeat,
            batch,
        } => change(svc, extra, new_svc, repeat, batch)?,
        Cmd::Time {
            stdin,
            stdout,
            command,
        } => {
            let mut c = Command::new(&command[0]);
            c.args(&command[1..]);
            if let Some(p) = &stdin {
                c.stdin(
                    std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?,
                );
            }
            match &stdout {
                Some(p) => c.stdout(
                    std::fs::File::create(p)
                        .with_context(|| format!("creating {}", p.display()))?,
                ),
                None => c.stdout(Stdio::null()),
            };
            let (u0, s0) = cpu_split_ms(UsageWho::RUSAGE_CHILDREN)?;
            let t0 = Instant::now();
            let status = c
                .status()
                .with_context(|| format!("running {}", command[0]))?;
            let wall = t0.elapsed();
            let (u1, s1) = cpu_split_ms(UsageWho::RUSAGE_CHILDREN)?;
            let (user, sys) = (u1 - u0, s1 - s0);
            let maxrss = getrusage(UsageWho::RUSAGE_CHILDREN)?.max_rss();
            println!(
                "wall_ms={} cpu_ms={:.3} user_ms={user:.3} sys_ms={sys:.3} maxrss_kb={maxrss} rc={}",
                ms(wall),
                user + sys,
                status.code().unwrap_or(-1)
            );
            if !status.success() {
                bail!("{} exited with {status}", command.join(" "));
            }
        }
        Cmd::Nlcount { pcap, family } => {
            let bytes =
                std::fs::read(&pcap).with_context(|| format!("reading {}", pcap.display()))?;
            let c = count_netlink(&bytes, family)?;
            println!(
                "ipvs_requests={} ipvs_dumps={} ctrl_requests={} other_requests={} ipvs_datagrams={} harness_requests={}",
                c.ipvs_requests,
                c.ipvs_dumps,
                c.ctrl_requests,
                c.other_requests,
                c.ipvs_datagrams,
                c.marked_requests
            );
        }
        Cmd::SameLines { expected, actual } => {
            let read = |p: &PathBuf| {
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
            };
            let (e, a) = (read(&expected)?, read(&actual)?);
            let d = lvs_bench::line_diff(&e, &a);
            println!(
                "lines={} missing={} unexpected={}",
                e.lines().count(),
                d.missing.len(),
                d.unexpected.len()
            );
            if !d.is_empty() {
                for l in d.missing.iter().take(5) {
                    eprintln!("missing:    {l}");
                }
                for l in d.unexpected.iter().take(5) {
                    eprintln!("unexpected: {l}");
                }
                bail!("{} differs from {}", actual.display(), expected.display());
            }
        }
        Cmd::Parse {
            file,
            parts,
            repeat,
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let (mut one, mut split) = (Vec::new(), Vec::new());
            let mut objects = 0;
            for _ in 0..repeat.max(1) {
                for (k, times) in [(1, &mut one), (parts, &mut split)] {
                    let t0 = Instant::now();
                    let m = lvs_api::manifest::parse_in_parts(&text, k)
                        .with_context(|| format!("parsing {}", file.display()))?;
                    times.push(t0.elapsed().as_secs_f64() * 1e3);
                    objects = m.len();
                }
            }
            let med = |v: &mut Vec<f64>| {
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            let (a, b) = (med(&mut one), med(&mut split));
            println!(
                "objects={objects} bytes={} parts={parts} one_thread_ms={a:.1} parts_ms={b:.1} speedup={:.2}",
                text.len(),
                a / b
            );
        }
        Cmd::Family => println!("family_id={}", connect(1)?.family_id()),
        Cmd::Wait {
            svc,
            dest: want,
            weight,
            absent,
            rename,
            remove,
            timeout,
            poll_ms,
        } => {
            let mut client = connect_marked()?;
            let key = tuple(svc);
            let t0 = Instant::now();
            if let Some(r) = rename {
                std::fs::rename(&r[0], &r[1]).with_context(|| {
                    format!("renaming {} to {}", r[0].display(), r[1].display())
                })?;
            }
            if let Some(p) = remove {
                std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
            }
            let mut polls = 0u64;
            loop {
                polls += 1;
                let present = match want {
                    None => client.service(&key)?.is_some(),
                    Some(d) => {
                        let dests = match client.destinations(&key) {
                            Ok(v) => v,
                            Err(lvs_ipvs::Error::Kernel { errno, .. })
                                if errno == lvs_ipvs::error::errno::ESRCH =>
                            {
                                Vec::new()
                            }
                            Err(e) => return Err(e.into()),
                        };
                        dests.iter().any(|e| {
                            e.destination.key.addr == d.ip()
                                && e.destination.key.port == d.port()
                                && weight.is_none_or(|w| e.destination.config.weight == w)
                        })
                    }
                };
                if present != absent {
                    break;
                }
                if t0.elapsed().as_secs_f64() > timeout {
                    bail!("condition not met after {timeout} s ({polls} polls)");
                }
                std::thread::sleep(Duration::from_millis(poll_ms));
            }
            println!("elapsed_ms={} polls={polls}", ms(t0.elapsed()));
        }
        Cmd::WaitServices {
            services,
            timeout,
            period,
        } => {
            let mut client = connect(1)?;
            let t0 = Instant::now();
            loop {
                let have = client.services()?.len();
                if have >= services {
                    println!("elapsed_ms={} services={have}", ms(t0.elapsed()));
                    break;
                }
                if t0.elapsed().as_secs_f64() > timeout {
                    bail!("only {have} of {services} services after {timeout} s");
                }
                std::thread::sleep(Duration::from_secs_f64(period));
            }
        }
    }
    Ok(())
}

/// REPEAT rounds of the four single changes, each op timed on its own and
/// its requests counted from the client's counters.
fn change(
    svc: SocketAddr,
    extra: SocketAddr,
    new_svc: SocketAddr,
    repeat: usize,
    batch: usize,
) -> anyhow::Result<()> {
    let mut client = connect(batch)?;
    let counters = client.counters();
    let key = tuple(svc);
    let new_key = tuple(new_svc);
    let new_service = Service {
        key: new_key,
        config: ServiceConfig::new(new_key.family(), lvs_bench::SCHEDULER),
    };
    let names = ["add_dest", "set_weight", "del_dest", "add_svc"];
    let mut times: [Vec<f64>; 4] = Default::default();
    let mut reqs = [0u64; 4];
    for round in 0..repeat {
        let ops = [
            Op::AddDest {
                service: key,
                dest: dest(extra, 1),
            },
            Op::UpdateDest {
                service: key,
                dest: dest(extra, 2 + (round as u32 % 50)),
            },
            Op::DelDest {
                service: key,
                dest: dest(extra, 1).key,
            },
            Op::AddService(new_service.clone()),
        ];
        for (k, op) in ops.iter().enumerate() {
            let c0 = counters.snapshot();
            let t0 = Instant::now();
            apply_all(&mut client, std::slice::from_ref(op))?;
            times[k].push(t0.elapsed().as_secs_f64() * 1e3);
            reqs[k] += (counters.snapshot() - c0).requests;
        }
        apply_all(&mut client, &[Op::DelService(new_key)])?;
    }
    let mut line = format!("repeat={repeat}");
    for k in 0..4 {
        let (p50, p99) = percentiles(&times[k]).unwrap_or((f64::NAN, f64::NAN));
        line += &format!(
            " {n}_p50_ms={p50:.3} {n}_max_ms={max:.3} {n}_p99_ms={p99:.3} {n}_requests={r:.2}",
            n = names[k],
            max = times[k].iter().cloned().fold(0.0, f64::max),
            r = reqs[k] as f64 / repeat as f64,
        );
    }
    println!("{line}");
    Ok(())
}

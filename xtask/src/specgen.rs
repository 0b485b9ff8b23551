//! `cargo run -p xtask -- specgen`: random VirtualService and RealServer
//! specs for the kernel lab's `agent-kernel-accepts-valid-specs` scenario.
//!
//! Every field of both kinds is drawn from its schema: every enum value,
//! the edges of every range, and values just outside them, so that part of
//! what is drawn is refused. The Rust validator (the same rules admission
//! enforces) filters the specs; the ones it admits are written as manifests
//! for the agent, which must get every one of them into the kernel.
//!
//! Values that depend on the node rather than on the spec come from the lab:
//! director selectors match the lab's Node labels, `directors.interface` is
//! unset or the lab's `eth0`, and `nodeName` names a lab node. A kernel that
//! refuses what the generator wrote is a validation bug, to be fixed in the
//! rules, never by narrowing the generator.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use lvs_api::{
    Directors, DnsRcode, Drain, Family, ForwardingMethod, HealthAction, HealthCheck,
    HealthCheckType, LabelSelector, LabelSelectorRequirement, Persistence, Protocol,
    RealServerSpec, RealServerState, Scheduler, SchedulerFlag, SelectorOperator, SorryServer,
    Tunnel, TunnelChecksum, TunnelType, VirtualServiceSpec, validate_pair,
};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

mod draw;
use draw::Gen;

/// A lab node that RealServers may name, with its InternalIPs.
#[derive(Debug, Clone)]
pub struct LabNode {
    pub name: String,
    pub ipv4: Ipv4Addr,
    pub ipv6: Ipv6Addr,
}

impl std::str::FromStr for LabNode {
    type Err = anyhow::Error;
    /// `name=IPv4,IPv6`.
    fn from_str(s: &str) -> anyhow::Result<Self> {
        let (name, addrs) = s
            .split_once('=')
            .with_context(|| format!("--node {s:?}: expected NAME=IPv4,IPv6"))?;
        let (v4, v6) = addrs
            .split_once(',')
            .with_context(|| format!("--node {s:?}: expected NAME=IPv4,IPv6"))?;
        Ok(LabNode {
            name: name.to_string(),
            ipv4: v4
                .parse()
                .with_context(|| format!("--node {s:?}: {v4:?} is not IPv4"))?,
            ipv6: v6
                .parse()
                .with_context(|| format!("--node {s:?}: {v6:?} is not IPv6"))?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub seed: u64,
    /// VirtualServices to draw; each gets 0 to 4 RealServers.
    pub services: usize,
    pub nodes: Vec<LabNode>,
    /// Schedulers the target kernel lacks; never drawn.
    pub exclude: Vec<Scheduler>,
}

/// What was drawn and what the validator made of it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub tried_vs: usize,
    pub tried_rs: usize,
    pub refused_vs: usize,
    pub refused_rs: usize,
    /// RealServers valid alone but refused with their service (`validate_pair`).
    pub refused_pair: usize,
    /// Valid RealServers of a refused service: not written.
    pub dropped_with_service: usize,
    /// Valid specs that repeat a service key or a destination of their service
    /// (a conflict between objects, reported by the operator): not written.
    pub duplicates: usize,
    pub valid_vs: usize,
    pub valid_rs: usize,
    /// Destinations the kernel must hold after the agent's sync.
    pub expect_dests: usize,
    /// Source-NATed services: masquerade rules in the agent's nftables table.
    pub expect_snat: usize,
    /// A few refusal messages, one per distinct rule, for the log.
    pub refusals: BTreeMap<String, usize>,
}

/// The manifests (multi-document YAML) and the summary.
pub fn generate(opts: &Options) -> anyhow::Result<(String, Summary)> {
    if opts.nodes.is_empty() {
        bail!("specgen needs at least one --node for RealServers by nodeName");
    }
    let mut g = Gen {
        rng: Xoshiro256PlusPlus::seed_from_u64(opts.seed),
        opts,
    };
    let mut sum = Summary::default();
    let mut out = String::new();
    let mut keys = HashSet::new();
    let mut seen = Coverage::default();
    for i in 0..opts.services {
        let name = format!("gen-{i:04}");
        let vs = g.vs(&name);
        sum.tried_vs += 1;
        let n_rs = g.rng.random_range(0..=4usize);
        let vs_ok = match vs.validate() {
            Ok(()) => true,
            Err(e) => {
                sum.refused_vs += 1;
                note(&mut sum, &e.to_string());
                false
            }
        };
        let unique = vs_ok && keys.insert(service_key(&vs));
        if vs_ok && !unique {
            sum.duplicates += 1;
        }
        if vs_ok && unique {
            sum.valid_vs += 1;
            sum.expect_snat += usize::from(vs.source_nat);
            seen.vs(&vs);
            push_doc(&mut out, "VirtualService", &name, None, &vs)?;
        }
        let mut dests = HashSet::new();
        // (address, port, weight) of the destinations the directors plan.
        let mut planned: Vec<(IpAddr, u16, u64)> = Vec::new();
        for j in 0..n_rs {
            let rs_name = format!("{name}-rs{j}");
            let rs = g.rs(&vs);
            sum.tried_rs += 1;
            if let Err(e) = rs.validate() {
                sum.refused_rs += 1;
                note(&mut sum, &e.to_string());
                continue;
            }
            if !(vs_ok && unique) {
                sum.dropped_with_service += 1;
                continue;
            }
            let ip = rs_ip(&rs, vs.is_ipv6(), &opts.nodes);
            if let Err(e) = validate_pair(&vs, &rs, ip) {
                sum.refused_pair += 1;
                note(&mut sum, &e.to_string());
                continue;
            }
            let port = rs.port.or(vs.port).unwrap_or(0);
            let Some(ip) = ip else {
                bail!("{rs_name}: a valid RealServer without an address");
            };
            if !dests.insert((ip, port)) {
                sum.duplicates += 1;
                continue;
            }
            sum.valid_rs += 1;
            // A Draining RealServer is no destination of the directors: a
            // director drains it only when it had it before.
            let port16 = u16::try_from(port).unwrap_or(0);
            match rs.state.unwrap_or_default() {
                RealServerState::Draining => {}
                RealServerState::Inactive => planned.push((ip, port16, 0)),
                RealServerState::Active => {
                    planned.push((ip, port16, u64::try_from(rs.weight).unwrap_or(0)))
                }
            }
            seen.rs(&rs, &vs);
            push_doc(&mut out, "RealServer", &rs_name, Some(&name), &rs)?;
        }
        if vs_ok && unique {
            sum.expect_dests += expected_dests(&vs, &planned);
        }
    }
    seen.check(&opts.exclude)?;
    Ok((out, sum))
}

/// How many destinations a director programs for `vs` with `planned`
/// (address, port, weight) in one sync, before any probe has run (every
/// destination counts as healthy): with a sorry server and a total weight
/// below `quorum`, the sorry server joins them (replacing one at its own
/// address and port), or replaces them all when a failed check removes.
fn expected_dests(vs: &VirtualServiceSpec, planned: &[(IpAddr, u16, u64)]) -> usize {
    let Some(sorry) = &vs.sorry_server else {
        return planned.len();
    };
    let Some(addr) = lvs_api::validate::parse_ip(&sorry.address) else {
        return planned.len();
    };
    let quorum = vs.quorum.and_then(|q| u64::try_from(q).ok()).unwrap_or(1);
    if planned.iter().map(|p| p.2).sum::<u64>() >= quorum {
        return planned.len();
    }
    if matches!(vs.effective_health_check(), Some((_, HealthAction::Remove))) {
        return 1;
    }
    let port = sorry
        .port
        .or(vs.port)
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(0);
    let others = planned
        .iter()
        .filter(|p| (p.0, p.1) != (addr, port))
        .count();
    others + 1
}

/// Writes `specs.yaml` and `summary.env` (shell variables) to `dir`.
pub fn write(dir: &Path, opts: &Options) -> anyhow::Result<Summary> {
    let (yaml, s) = generate(opts)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let specs = dir.join("specs.yaml");
    std::fs::write(&specs, yaml).with_context(|| format!("writing {}", specs.display()))?;
    let excluded: Vec<&str> = opts.exclude.iter().map(|s| s.as_str()).collect();
    let mut env = String::new();
    for (k, v) in [
        ("SEED", opts.seed.to_string()),
        ("TRIED", (s.tried_vs + s.tried_rs).to_string()),
        ("TRIED_VS", s.tried_vs.to_string()),
        ("TRIED_RS", s.tried_rs.to_string()),
        (
            "REFUSED",
            (s.refused_vs + s.refused_rs + s.refused_pair).to_string(),
        ),
        ("REFUSED_VS", s.refused_vs.to_string()),
        ("REFUSED_RS", s.refused_rs.to_string()),
        ("REFUSED_PAIR", s.refused_pair.to_string()),
        ("DROPPED_WITH_SERVICE", s.dropped_with_service.to_string()),
        ("DUPLICATES", s.duplicates.to_string()),
        ("VALID_VS", s.valid_vs.to_string()),
        ("VALID_RS", s.valid_rs.to_string()),
        ("EXPECT_SERVICES", s.valid_vs.to_string()),
        ("EXPECT_DESTS", s.expect_dests.to_string()),
        ("EXPECT_SNAT", s.expect_snat.to_string()),
        ("EXCLUDED_SCHEDULERS", excluded.join(",")),
    ] {
        writeln!(env, "SPECGEN_{k}='{v}'")?;
    }
    let path = dir.join("summary.env");
    std::fs::write(&path, env).with_context(|| format!("writing {}", path.display()))?;
    Ok(s)
}

pub fn parse_args(args: &[String]) -> anyhow::Result<(Options, PathBuf)> {
    let mut opts = Options {
        seed: clock_seed(),
        services: 500,
        nodes: Vec::new(),
        exclude: Vec::new(),
    };
    let mut out = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .with_context(|| format!("{a} needs a value"))
                .cloned()
        };
        match a.as_str() {
            "--seed" => opts.seed = val()?.parse().context("--seed: expected a u64")?,
            "--services" => {
                opts.services = val()?.parse().context("--services: expected a count")?
            }
            "--node" => opts.nodes.push(val()?.parse()?),
            "--exclude-scheduler" => opts.exclude.push(
                val()?
                    .parse()
                    .map_err(|e| anyhow::anyhow!("--exclude-scheduler: {e}"))?,
            ),
            "--kernel-modules" => {
                let dir = PathBuf::from(val()?);
                let mut have = Vec::new();
                module_names(&dir, &mut have)
                    .with_context(|| format!("--kernel-modules: reading {}", dir.display()))?;
                for s in Scheduler::ALL {
                    let m = format!("ip_vs_{s}.ko");
                    if !have.iter().any(|h| h.starts_with(&m)) && !opts.exclude.contains(s) {
                        opts.exclude.push(*s);
                    }
                }
            }
            "--out" => out = Some(PathBuf::from(val()?)),
            other => bail!(
                "specgen: unknown argument {other:?}; usage: specgen --out DIR [--seed N] \
                 [--services N] --node NAME=IPv4,IPv6... [--exclude-scheduler NAME...] \
                 [--kernel-modules DIR (leave out schedulers without a module there)]"
            ),
        }
    }
    let out = out.context("specgen needs --out DIR")?;
    Ok((opts, out))
}

/// File names under `dir`, recursively (a kernel's `lib/modules/<version>`).
fn module_names(dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            module_names(&e.path(), out)?;
        } else {
            out.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    Ok(())
}

fn clock_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    t.as_secs() ^ u64::from(t.subsec_nanos()).rotate_left(32) ^ u64::from(std::process::id())
}

/// Counts a refusal under its first rule, with numbers and addresses
/// blanked so that one rule is one line.
fn note(sum: &mut Summary, message: &str) {
    let first = message.split("; ").next().unwrap_or(message);
    let rule: Vec<&str> = first
        .split(' ')
        .map(|w| {
            let bare = w.trim_matches(|c: char| c == ':' || c == ',' || c == '"');
            if bare.parse::<i64>().is_ok() || bare.parse::<IpAddr>().is_ok() {
                "_"
            } else {
                w
            }
        })
        .collect();
    *sum.refusals.entry(rule.join(" ")).or_default() += 1;
}

fn service_key(vs: &VirtualServiceSpec) -> String {
    match (&vs.address, vs.fwmark) {
        (Some(a), _) => {
            let ip: IpAddr = a.parse().expect("validated address");
            format!("{ip}/{}/{}", vs.port.unwrap_or(0), vs.protocol_or_default())
        }
        (None, Some(m)) => format!("fwmark {m} {}", vs.is_ipv6()),
        (None, None) => unreachable!("validated"),
    }
}

fn rs_ip(rs: &RealServerSpec, ipv6: bool, nodes: &[LabNode]) -> Option<IpAddr> {
    match (&rs.address, &rs.node_name) {
        (Some(a), _) => lvs_api::validate::parse_ip(a),
        (None, Some(n)) => nodes.iter().find(|l| &l.name == n).map(|l| {
            if ipv6 {
                IpAddr::V6(l.ipv6)
            } else {
                IpAddr::V4(l.ipv4)
            }
        }),
        (None, None) => None,
    }
}

fn push_doc<S: serde::Serialize>(
    out: &mut String,
    kind: &str,
    name: &str,
    app: Option<&str>,
    spec: &S,
) -> anyhow::Result<()> {
    let mut meta = serde_json::json!({ "name": name, "namespace": "default" });
    if let Some(app) = app {
        meta["labels"] = serde_json::json!({ "app": app });
    }
    let doc = serde_json::json!({
        "apiVersion": lvs_api::API_VERSION,
        "kind": kind,
        "metadata": meta,
        "spec": spec,
    });
    out.push_str("---\n");
    out.push_str(&serde_saphyr::to_string(&doc)?);
    Ok(())
}

/// Which enum values made it into the written specs: every one must.
#[derive(Default)]
struct Coverage(BTreeSet<String>);

impl Coverage {
    fn vs(&mut self, vs: &VirtualServiceSpec) {
        let s = &mut self.0;
        s.insert(format!("scheduler {}", vs.scheduler));
        s.insert(format!("forwarding {}", vs.forwarding));
        s.insert(format!(
            "family {}",
            if vs.is_ipv6() { "IPv6" } else { "IPv4" }
        ));
        s.insert(
            if vs.fwmark.is_some() {
                "fwmark"
            } else {
                "address"
            }
            .to_string(),
        );
        if vs.address.is_some() {
            s.insert(format!("protocol {}", vs.protocol_or_default()));
        }
        for f in &vs.scheduler_flags {
            s.insert(format!("flag {f}"));
        }
        if let Some(t) = &vs.tunnel {
            s.insert(format!("tunnel {}", t.type_));
        }
        if let Some(p) = &vs.persistence {
            s.insert("persistence".into());
            if p.prefix_length == Some(0) {
                s.insert("persistence prefix 0".into());
            }
        }
        if let Some(t) = vs.health_check.as_ref().and_then(|h| h.r#type) {
            s.insert(format!("healthCheck {t}"));
        }
    }

    fn rs(&mut self, rs: &RealServerSpec, vs: &VirtualServiceSpec) {
        let method = rs.forwarding.unwrap_or(vs.forwarding);
        self.0.insert(format!("destination {method}"));
        if rs.node_name.is_some() {
            self.0.insert("realserver nodeName".into());
        }
        if rs.lower_threshold.is_some_and(|l| l > 0) {
            self.0.insert("lowerThreshold".into());
        }
        if let Some(t) = &rs.tunnel {
            self.0.insert(format!("realserver tunnel {}", t.type_));
        }
    }

    fn check(&self, exclude: &[Scheduler]) -> anyhow::Result<()> {
        let mut want: Vec<String> = Scheduler::ALL
            .iter()
            .filter(|s| !exclude.contains(s))
            .map(|s| format!("scheduler {s}"))
            .collect();
        want.extend(
            ForwardingMethod::ALL
                .iter()
                .map(|m| format!("forwarding {m}")),
        );
        want.extend(
            ForwardingMethod::ALL
                .iter()
                .map(|m| format!("destination {m}")),
        );
        want.extend(Protocol::ALL.iter().map(|p| format!("protocol {p}")));
        want.extend(TunnelType::ALL.iter().map(|t| format!("tunnel {t}")));
        want.extend(
            TunnelType::ALL
                .iter()
                .map(|t| format!("realserver tunnel {t}")),
        );
        want.extend(SchedulerFlag::ALL.iter().map(|f| format!("flag {f}")));
        want.extend(
            HealthCheckType::ALL
                .iter()
                .map(|t| format!("healthCheck {t}")),
        );
        want.extend(
            [
                "family IPv4",
                "family IPv6",
                "fwmark",
                "address",
                "persistence",
                "persistence prefix 0",
                "realserver nodeName",
                "lowerThreshold",
            ]
            .map(String::from),
        );
        let missing: Vec<&String> = want.iter().filter(|w| !self.0.contains(*w)).collect();
        if !missing.is_empty() {
            bail!(
                "the valid specs do not cover {missing:?}; draw more services (--services) or another seed"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(seed: u64) -> Options {
        Options {
            seed,
            services: 500,
            nodes: vec!["rs1=10.0.1.11,2001:db8:1::11".parse().unwrap()],
            exclude: vec![Scheduler::Twos],
        }
    }

    #[test]
    fn a_seed_gives_the_same_specs() {
        assert_eq!(generate(&opts(7)).unwrap(), generate(&opts(7)).unwrap());
        assert_ne!(generate(&opts(7)).unwrap().0, generate(&opts(8)).unwrap().0);
    }

    #[test]
    fn written_specs_pass_the_validator_and_refused_ones_are_counted() {
        for seed in 0..5 {
            let (yaml, s) = generate(&opts(seed)).unwrap();
            let parsed = lvs_api::manifest::parse(&yaml).unwrap();
            assert_eq!(parsed.len(), s.valid_vs + s.valid_rs, "seed {seed}");
            assert!(
                s.refused_vs > 0 && s.refused_rs > 0 && s.refused_pair > 0,
                "{s:?}"
            );
            assert!(s.valid_vs + s.valid_rs >= 500, "seed {seed}: {s:?}");
            assert!(!yaml.contains("twos"), "an excluded scheduler was drawn");
        }
    }
}

//! Command line and process wiring.
//!
//! Two modes share the sync loop: the standalone mode reads manifests from
//! `--config-dir`; without it the agent runs in Kubernetes mode, watching
//! the API server and reporting to its node's LvsNode.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};

use crate::agent::{Agent, AgentConfig, AgentStatus, Health};
use crate::dataplane::Dataplane;
use crate::dataplane::fake::FakeDataplane;
use crate::dataplane::netlink::NetlinkDataplane;
use crate::http::{HttpState, serve};
use crate::k8s::{KubeSource, Reporter};
use crate::kernel::VipMode;
use crate::ledger::LedgerStore;
use crate::metrics::Metrics;
use crate::reconcile::Reconciler;
use crate::source::{DirSource, Event, SnapshotSink, Source};

/// Which kernel the agent programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DataplaneKind {
    /// The kernel of the agent's network namespace (IPVS, rtnetlink, /proc/sys).
    Netlink,
    /// An in-memory kernel that forgets everything on exit. A test aid: it
    /// lets the agent run where there is no IPVS, to exercise the control
    /// plane (watches, reports) alone. It never touches the host.
    Fake,
}

/// How a director holds its IPv4 VIPs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VipModeArg {
    /// An address on the director interface, labelled `<interface>:lvs`.
    Address,
    /// A local route through the director interface, in the local table
    /// with protocol 76. Much cheaper with thousands of VIPs; ARP is answered
    /// only while the interface's arp_ignore is 0.
    Route,
}

/// Programs this node's IPVS table, VIPs, tunnels and sysctls from
/// VirtualServices, RealServers and Nodes: watched from the Kubernetes API
/// server, or read from manifests in a directory (`--config-dir`).
#[derive(Debug, Parser)]
#[command(name = "node-agent", version)]
pub struct Args {
    /// Standalone mode: a directory of *.yaml / *.yml manifests
    /// (VirtualService, RealServer, v1 Node). Without it the agent runs in
    /// Kubernetes mode.
    #[arg(long, env = "LVS_CONFIG_DIR")]
    pub config_dir: Option<PathBuf>,
    /// Kubernetes mode: the kubeconfig to use. Default: KUBECONFIG,
    /// ~/.kube/config, or the in-cluster ServiceAccount.
    #[arg(long, conflicts_with = "config_dir")]
    pub kubeconfig: Option<PathBuf>,
    /// This node's name, as in its Node object; the LvsNode it reports to
    /// carries the same name.
    #[arg(long, env = "NODE_NAME")]
    pub node_name: String,
    /// Where the ownership ledger lives; it must survive restarts. Required
    /// with the netlink dataplane; the fake dataplane keeps its ledger in
    /// memory.
    #[arg(long, env = "LVS_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Where the sysctls live: DIR/net/ipv4/ip_forward and so on. A container
    /// gets the host's /proc/sys/net mounted elsewhere, since its own
    /// /proc/sys is read-only.
    #[arg(long, env = "LVS_PROC_SYS", default_value = "/proc/sys")]
    pub proc_sys: PathBuf,
    /// netlink: the kernel. fake: an in-memory kernel, a test aid for running
    /// the agent where there is no IPVS (nothing on the host is touched).
    #[arg(long, env = "LVS_DATAPLANE", value_enum, default_value_t = DataplaneKind::Netlink)]
    pub dataplane: DataplaneKind,
    /// With --dataplane fake: an in-memory kernel without IPVS, as on a host
    /// whose kernel lacks ip_vs (a test aid for the node-level error).
    #[arg(long, env = "LVS_FAKE_NO_IPVS", hide = true)]
    pub fake_no_ipvs: bool,
    /// Seconds between full resyncs, which read the kernel and repair drift.
    #[arg(long, env = "LVS_RESYNC_INTERVAL", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub resync_interval: u64,
    /// The most time periodic full resyncs may take, in percent: after a
    /// full resync that took D seconds the next waits at least D*100/PERCENT
    /// seconds (and at least --resync-interval). Changes wait while a full
    /// resync reads a large table.
    #[arg(long, env = "LVS_RESYNC_MAX_SHARE", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub resync_max_share: u32,
    /// Kubernetes mode: seconds between rewrites of an unchanged LvsNode
    /// report, which would only move its lastSyncTime on. A changed report
    /// is written at once.
    #[arg(long, env = "LVS_REPORT_REFRESH_INTERVAL", default_value_t = crate::k8s::lvsnode::REFRESH.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub report_refresh_interval: u64,
    /// Seconds between reads of the kernel's counters of the owned IPVS
    /// services (connections, packets, bytes, rates) and the table hash,
    /// for the LvsNode report and /status. In Kubernetes mode a report
    /// that differs only in these is written at most once per interval.
    /// At least 5. Each read covers the whole IPVS table, in steps between
    /// which changes are synced: on large tables the interval stretches so
    /// that the reads take at most 10% of the time, and a periodic resync's
    /// check stands in for one. A change's own services get their table
    /// hash from the agent's view at once, without a read.
    #[arg(long, env = "LVS_STATUS_COUNTERS_INTERVAL", default_value_t = 10, value_parser = clap::value_parser!(u64).range(5..=86400))]
    pub status_counters_interval: u64,
    /// Kubernetes mode: the shortest time between two answers to the
    /// node's LvsSnapshot requests (`kubectl lvs table|diff|top`); requests
    /// arriving meanwhile are coalesced and the newest is answered. At
    /// least 200ms.
    #[arg(long, env = "LVS_SNAPSHOT_MIN_INTERVAL", default_value = "1s", value_parser = parse_snapshot_interval)]
    pub snapshot_min_interval: Duration,
    /// Address for /metrics, /healthz, /readyz and /status: IP:PORT, with
    /// the IP in brackets for IPv6 (and allowed for IPv4, as in
    /// `[$(HOST_IP)]:9477`). Loopback by default: the agent runs on the host
    /// network, so 0.0.0.0 would expose it on every address of the node.
    /// The chart binds the node IP (status.hostIP) for Prometheus.
    #[arg(long, env = "LVS_LISTEN", default_value = "127.0.0.1:9477", value_parser = parse_listen)]
    pub listen: SocketAddr,
    /// HTTP connections served at once; more wait in the listen backlog.
    #[arg(long, env = "LVS_HTTP_MAX_CONNECTIONS", default_value_t = lvs_runtime::http::Limits::default().max_connections, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=65536))]
    pub http_max_connections: usize,
    /// Seconds one HTTP request may take in all, from the connection to the
    /// last byte of the response; a client that is slower is cut.
    #[arg(long, env = "LVS_HTTP_TIMEOUT", default_value_t = lvs_runtime::http::Limits::default().deadline.as_secs(), value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub http_timeout: u64,
    /// Seconds a client has to send its HTTP request head (at most
    /// --http-timeout).
    #[arg(long, env = "LVS_HTTP_HEADER_TIMEOUT", default_value_t = lvs_runtime::http::Limits::default().header_timeout.as_secs(), value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub http_header_timeout: u64,
    /// Export per-destination series while the owned table has at most this
    /// many destinations (eight series each); above it only per-service
    /// series, and lvs_agent_destination_series_omitted says how many.
    #[arg(long, env = "LVS_METRICS_MAX_DESTINATIONS", default_value_t = crate::metrics::DEFAULT_MAX_DESTINATIONS)]
    pub metrics_max_destinations: usize,
    /// Health check probes in flight at once (directors). Each target is
    /// probed once per interval at its own offset; when probes are slower
    /// than this limit allows, intervals stretch rather than probes pile up.
    #[arg(long, env = "LVS_HEALTH_CONCURRENCY", default_value_t = crate::health::DEFAULT_CONCURRENCY, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=65536))]
    pub health_concurrency: usize,
    /// Reconcile once, print the report as JSON and exit: 0 if it had no
    /// problem, 1 otherwise. Standalone mode only. A leaving destination
    /// with connections left stays at weight 0 (draining) for a later run.
    #[arg(long, requires = "config_dir")]
    pub once: bool,
    /// The node's InternalIP(s), overriding the Node object; picks the
    /// director interface when a VirtualService names none.
    #[arg(long, env = "NODE_IP", value_delimiter = ',')]
    pub node_ip: Vec<IpAddr>,
    /// Milliseconds between checks of the configuration directory.
    #[arg(long, env = "LVS_POLL_INTERVAL_MS", default_value_t = 1000)]
    pub poll_interval_ms: u64,
    /// How director IPv4 VIPs are held: address (`ip addr`) or route (a
    /// local route, `ip route show table local proto 76`). IPv6 VIPs are
    /// always addresses.
    #[arg(long, env = "LVS_VIP_MODE", value_enum, default_value_t = VipModeArg::Address)]
    pub vip_mode: VipModeArg,
    /// Log format: text, or json (one object per line, the event's fields
    /// at the top level). The filter comes from LVS_LOG, else RUST_LOG
    /// (default info).
    #[arg(long, env = "LVS_LOG_FORMAT", value_enum, default_value_t)]
    pub log_format: lvs_runtime::logging::LogFormat,
    /// Director high availability: one director holds each VIP, the others
    /// stand by with the same IPVS services. In Kubernetes mode the roles
    /// come from a Lease election in --ha-namespace; in standalone mode from
    /// --ha-role, and a VIP with several directors and no role is refused.
    #[arg(long, env = "LVS_HA")]
    pub ha: bool,
    /// HA: how long a director's heartbeat stays valid without renewal;
    /// a standby probes the holder once it expired, e.g. 1s.
    #[arg(long, env = "LVS_HA_LEASE_DURATION", default_value = "1s", value_parser = parse_duration)]
    pub ha_lease_duration: Duration,
    /// HA: how often the heartbeat and the VIP lifetime are renewed.
    #[arg(long, env = "LVS_HA_RENEW_INTERVAL", default_value = "250ms", value_parser = parse_duration)]
    pub ha_renew_interval: Duration,
    /// HA: how long to wait for the connection of the direct probe (GET
    /// /ha) of a holder whose heartbeat expired; a holder that accepted it
    /// gets two lease durations to answer.
    #[arg(long, env = "LVS_HA_PROBE_TIMEOUT", default_value = "300ms", value_parser = parse_duration)]
    pub ha_probe_timeout: Duration,
    /// HA: the lifetime of the VIP address on the active (whole seconds,
    /// rounded up), renewed every renew interval: the kernel removes the VIP
    /// this long after the agent stopped renewing it. Longer than the renew
    /// interval, so a busy sync loop does not drop a VIP it still holds.
    #[arg(long, env = "LVS_HA_VIP_LIFETIME", default_value = "2s", value_parser = parse_duration)]
    pub ha_vip_lifetime: Duration,
    /// HA: a VIP moves back to its preferred director only after that
    /// director has been live this long without a break (0: at once), so a
    /// flapping director does not move VIPs back and forth.
    #[arg(long, env = "LVS_HA_PREEMPT_DELAY", default_value = "10s", value_parser = parse_delay)]
    pub ha_preempt_delay: Duration,
    /// HA: the namespace of the election's Leases.
    #[arg(long, env = "POD_NAMESPACE")]
    pub ha_namespace: Option<String>,
    /// HA: the interface of the IPVS connection sync daemons, master and
    /// backup, that every HA director runs (default: the interface holding
    /// the node's InternalIP or --node-ip).
    #[arg(long, env = "LVS_SYNC_INTERFACE")]
    pub sync_interface: Option<String>,
    /// HA: the sync id of the IPVS connection sync daemons.
    #[arg(long, env = "LVS_SYNC_ID", default_value_t = 0)]
    pub sync_id: u8,
    /// Standalone HA: this node's role for a VIP, VIP=active or
    /// VIP=standby; repeatable.
    #[arg(long = "ha-role", value_parser = crate::ha::parse_role)]
    pub ha_role: Vec<(IpAddr, crate::ha::Role)>,

    /// Standalone HA: this node's role for every VIP without an --ha-role
    /// (an active/standby pair of directors without listing the VIPs).
    #[arg(long = "ha-default-role", value_enum)]
    pub ha_default_role: Option<HaDefaultRole>,
}

/// `--ha-default-role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HaDefaultRole {
    Active,
    Standby,
}

impl From<HaDefaultRole> for crate::ha::Role {
    fn from(r: HaDefaultRole) -> Self {
        match r {
            HaDefaultRole::Active => crate::ha::Role::Active,
            HaDefaultRole::Standby => crate::ha::Role::Standby,
        }
    }
}

/// A duration that may be zero (`0`, `0s`), else as [`parse_duration`].
fn parse_delay(s: &str) -> Result<Duration, String> {
    match s.trim().trim_end_matches("ms").trim_end_matches('s') {
        "0" => Ok(Duration::ZERO),
        _ => parse_duration(s),
    }
}

/// A duration: `500ms`, `2s`, or a number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration: expected e.g. 500ms or 2s");
    let (num, unit) = match s.strip_suffix("ms") {
        Some(n) => (n, 1u64),
        None => (s.strip_suffix('s').unwrap_or(s), 1000),
    };
    let n: u64 = num.trim().parse().map_err(|_| bad())?;
    let d = Duration::from_millis(n.checked_mul(unit).ok_or_else(bad)?);
    if d.is_zero() {
        return Err(format!("{s:?}: the duration must be positive"));
    }
    Ok(d)
}

/// `--snapshot-min-interval`: a duration of at least 200ms.
fn parse_snapshot_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    let floor = crate::live_table::MIN_INTERVAL_FLOOR;
    if d < floor {
        return Err(format!(
            "{s:?} is below the minimum of {}ms between two LvsSnapshot answers",
            floor.as_millis()
        ));
    }
    Ok(d)
}

/// `--listen`: a socket address, or `[IP]:PORT` with an IPv4 address in the
/// brackets (the chart writes `[$(HOST_IP)]:PORT` for both families).
fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    let bad = || {
        format!(
            "{s:?} is not an address to listen on: expected IP:PORT or [IP]:PORT (e.g. 127.0.0.1:9477, [fd00::1]:9477)"
        )
    };
    let (ip, port) = s
        .strip_prefix('[')
        .and_then(|r| r.split_once("]:"))
        .ok_or_else(bad)?;
    let ip: IpAddr = ip.parse().map_err(|_| bad())?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    Ok(SocketAddr::new(ip, port))
}

/// The HTTP server's limits from the flags.
fn http_limits(args: &Args) -> lvs_runtime::http::Limits {
    let deadline = Duration::from_secs(args.http_timeout);
    lvs_runtime::http::Limits {
        max_connections: args.http_max_connections,
        header_timeout: deadline.min(Duration::from_secs(args.http_header_timeout)),
        deadline,
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    crate::alloc::limit_malloc_arenas();
    let args = Args::parse();
    lvs_runtime::logging::init(args.log_format);
    let result = match args.dataplane {
        DataplaneKind::Netlink => run(args, netlink_reconciler),
        DataplaneKind::Fake => run(args, fake_reconciler),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "node-agent failed");
            ExitCode::from(1)
        }
    }
}

fn run<D: Dataplane + 'static>(
    args: Args,
    build: fn(&Settings) -> anyhow::Result<Reconciler<D>>,
) -> anyhow::Result<bool> {
    let settings = Settings::from(&args);
    if args.ha && args.config_dir.is_none() && args.ha_namespace.is_none() {
        anyhow::bail!(
            "--ha in Kubernetes mode needs the namespace of the election's Leases: --ha-namespace or POD_NAMESPACE"
        );
    }
    if args.ha && args.ha_vip_lifetime <= args.ha_renew_interval {
        anyhow::bail!(
            "--ha-vip-lifetime {:?} must be longer than --ha-renew-interval {:?}: the VIP would expire between two renewals",
            args.ha_vip_lifetime,
            args.ha_renew_interval
        );
    }
    if args.dataplane == DataplaneKind::Netlink && args.state_dir.is_none() {
        anyhow::bail!(
            "--state-dir (LVS_STATE_DIR) is required with --dataplane netlink: the ledger of what the agent created must survive restarts"
        );
    }
    if args.once {
        run_once(&args, build(&settings)?)
    } else {
        run_daemon(args, settings, build).map(|()| true)
    }
}

/// What building the reconciler needs, movable to the sync thread.
#[derive(Debug, Clone)]
struct Settings {
    state_dir: Option<PathBuf>,
    proc_sys: PathBuf,
    node_ips: Vec<IpAddr>,
    vip_mode: VipMode,
    fake_no_ipvs: bool,
    sync_daemons: Option<crate::reconcile::SyncDaemonSettings>,
}

impl From<&Args> for Settings {
    fn from(a: &Args) -> Self {
        Settings {
            state_dir: a.state_dir.clone(),
            proc_sys: a.proc_sys.clone(),
            node_ips: a.node_ip.clone(),
            vip_mode: match a.vip_mode {
                VipModeArg::Address => VipMode::Address,
                VipModeArg::Route => VipMode::LocalRoute,
            },
            fake_no_ipvs: a.fake_no_ipvs,
            // Every HA director runs them, whatever its roles.
            sync_daemons: (vip_roles(a) != crate::ha::VipRoles::Off).then(|| {
                crate::reconcile::SyncDaemonSettings {
                    interface: a.sync_interface.clone(),
                    sync_id: u32::from(a.sync_id),
                }
            }),
        }
    }
}

fn netlink_reconciler(s: &Settings) -> anyhow::Result<Reconciler<NetlinkDataplane>> {
    let dir = s
        .state_dir
        .as_deref()
        .context("--state-dir is required with --dataplane netlink")?;
    let store = LedgerStore::in_dir(dir)?;
    let dp = NetlinkDataplane::new()
        .context("opening the rtnetlink socket")?
        .with_sysctl_root(&s.proc_sys);
    Ok(Reconciler::new(dp, store)?
        .with_vip_mode(s.vip_mode)
        .with_sync_daemons(s.sync_daemons.clone()))
}

fn fake_reconciler(s: &Settings) -> anyhow::Result<Reconciler<FakeDataplane>> {
    tracing::warn!(
        "--dataplane fake: programming an in-memory kernel (a test aid); nothing on this host changes"
    );
    // A ledger on disk would claim objects that exist only in memory, so a
    // later real agent with the same --state-dir could take foreign rules
    // for its own: the fake keeps its ledger in memory too.
    let mut dp = FakeDataplane::for_node(&s.node_ips);
    dp.ipvs_available = !s.fake_no_ipvs;
    Ok(Reconciler::new(dp, LedgerStore::in_memory())?
        .with_vip_mode(s.vip_mode)
        .with_sync_daemons(s.sync_daemons.clone()))
}

fn agent_config(args: &Args) -> AgentConfig {
    AgentConfig {
        node_name: args.node_name.clone(),
        resync_interval: Duration::from_secs(args.resync_interval),
        resync_max_share: args.resync_max_share,
        node_ips: args.node_ip.clone(),
        vip_roles: vip_roles(args),
        // A finite lifetime needs the agent to renew it: not with --once,
        // whose VIPs stay until the next run.
        vip_lifetime: (vip_roles(args) != crate::ha::VipRoles::Off && !args.once).then(|| {
            crate::agent::VipLifetime {
                // Whole seconds, rounded up: the kernel's unit.
                seconds: u32::try_from(args.ha_vip_lifetime.as_millis().div_ceil(1000))
                    .unwrap_or(u32::MAX)
                    .max(1),
                renew_interval: args.ha_renew_interval,
            }
        }),
        live_interval: (!args.once).then(|| Duration::from_secs(args.status_counters_interval)),
    }
}

/// HA roles: elected in Kubernetes mode with --ha; in standalone mode given
/// by --ha-role and --ha-default-role. Without HA settings a VIP with several
/// directors is refused (see `ha::hold_only_active`).
fn vip_roles(args: &Args) -> crate::ha::VipRoles {
    if args.ha && args.config_dir.is_none() {
        crate::ha::VipRoles::Elected(Default::default())
    } else if args.ha || !args.ha_role.is_empty() || args.ha_default_role.is_some() {
        crate::ha::VipRoles::Assigned {
            roles: args.ha_role.iter().copied().collect(),
            default: args.ha_default_role.map(Into::into),
        }
    } else {
        crate::ha::VipRoles::Off
    }
}

/// One reconcile. Returns whether it was clean.
fn run_once<D: Dataplane>(args: &Args, reconciler: Reconciler<D>) -> anyhow::Result<bool> {
    let dir = args
        .config_dir
        .as_deref()
        .context("--once needs --config-dir")?;
    let started = std::time::Instant::now();
    let snapshot = match DirSource::load(dir) {
        Ok(s) => s,
        Err(errors) => {
            for e in &errors {
                tracing::error!(file = %e.file.display(), error = %e.message, "configuration file rejected");
            }
            anyhow::bail!(
                "{} configuration file(s) rejected; nothing changed",
                errors.len()
            );
        }
    };
    let metrics = Arc::new(Metrics::new(args.metrics_max_destinations));
    let (mut agent, _) = Agent::new(
        reconciler,
        agent_config(args),
        metrics,
        Arc::new(Health::new()),
    );
    let loaded = started.elapsed();
    let objects = snapshot.virtual_services.len() + snapshot.real_servers.len();
    agent.apply_snapshot(snapshot);
    tracing::info!(
        objects,
        load_ms = loaded.as_millis() as u64,
        plan_ms = (started.elapsed() - loaded).as_millis() as u64,
        "configuration loaded and planned"
    );
    let mut report = agent.sync_pending(true);
    // One run cannot wait for drains: destinations that leave with no
    // connection left go now; those with connections stay at weight 0 for a
    // later run (or the daemon) to finish.
    if agent.poll_drains(std::time::Instant::now()) {
        let more = agent.sync_pending(false);
        for (kind, n) in more.ops {
            *report.ops.entry(kind).or_default() += n;
        }
        report.errors.extend(more.errors);
        report.services.extend(more.services);
    }
    println!("{}", serde_json::to_string(&report)?);
    // The process ends now: freeing every object of a large configuration
    // one by one would only make it end later.
    std::mem::forget(agent);
    Ok(report.ok())
}

fn run_daemon<D: Dataplane + 'static>(
    args: Args,
    settings: Settings,
    build: fn(&Settings) -> anyhow::Result<Reconciler<D>>,
) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new(args.metrics_max_destinations));
    let health = Arc::new(Health::new());
    let (tx, rx) = mpsc::channel::<Event>();
    let (status_tx, status_rx) = std::sync::mpsc::sync_channel::<
        anyhow::Result<tokio::sync::watch::Receiver<AgentStatus>>,
    >(1);

    // The dataplane is blocking (the netlink one owns a runtime of its own):
    // it lives on a thread outside the main runtime.
    let cfg = agent_config(&args);
    let (m, h) = (metrics.clone(), health.clone());
    let checks = crate::health::Checks::new();
    metrics.set_health_checks(checks.clone());
    let engine = crate::health::engine::Engine::new(
        checks.clone(),
        args.health_concurrency,
        tx.clone(),
        metrics.clone(),
    );
    // Dropped when the thread ends, panics included.
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel::<()>();
    let worker = std::thread::Builder::new()
        .name("sync".into())
        .spawn(move || {
            let _done = done_tx;
            let reconciler = match build(&settings) {
                Ok(r) => r,
                Err(e) => {
                    let _ = status_tx.send(Err(e));
                    return;
                }
            };
            let (mut agent, status) = Agent::new(reconciler, cfg, m, h);
            agent.set_health_checks(checks);
            let _ = status_tx.send(Ok(status));
            agent.run(&rx);
        })
        .context("starting the sync thread")?;
    let status = status_rx
        .recv()
        .context("the sync thread ended before starting")??;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let http = tokio::spawn(serve(
            listener,
            HttpState {
                metrics: metrics.clone(),
                health,
                status: status.clone(),
                stale_after: Duration::from_secs(args.resync_interval * 3 + 10),
            },
            http_limits(&args),
        ));
        let sink = SnapshotSink::new(tx.clone());
        let hangup = tokio::spawn(resync_on_hangup(tx.clone()));
        let probes = tokio::spawn(engine.run());
        let mut tasks = vec![http, hangup, probes];
        match &args.config_dir {
            Some(dir) => {
                tracing::info!(
                    listen = %args.listen,
                    node = %args.node_name,
                    config_dir = %dir.display(),
                    state_dir = ?args.state_dir,
                    dataplane = ?args.dataplane,
                    resync_interval = args.resync_interval,
                    "node-agent started (standalone mode)"
                );
                let source = DirSource::new(
                    dir,
                    Duration::from_millis(args.poll_interval_ms.max(10)),
                    metrics,
                );
                tasks.push(tokio::spawn(source.run(sink)));
            }
            None => {
                let client = lvs_runtime::kube::client(args.kubeconfig.as_deref()).await?;
                tracing::info!(
                    listen = %args.listen,
                    node = %args.node_name,
                    state_dir = ?args.state_dir,
                    dataplane = ?args.dataplane,
                    resync_interval = args.resync_interval,
                    "node-agent started (Kubernetes mode)"
                );
                let source = KubeSource::new(
                    client.clone(),
                    crate::k8s::source::DEBOUNCE,
                    metrics.clone(),
                )
                .with_sync_feedback(status.clone());
                let unreadable = source.unreadable();
                tasks.push(tokio::spawn(source.run(sink)));
                let answer_metrics = metrics.clone();
                // The LvsNode writer has a thread and a client of its own.
                let node_name = args.node_name.clone();
                let refresh = Duration::from_secs(args.report_refresh_interval);
                let counters = Duration::from_secs(args.status_counters_interval);
                crate::k8s::lvsnode::spawn_writer(
                    args.kubeconfig.clone(),
                    move |client| {
                        Reporter::new(client, &node_name, refresh, metrics)
                            .with_counters_interval(counters)
                            .with_unreadable(unreadable)
                    },
                    status.clone(),
                )
                .await?;
                if args.ha {
                    let settings = crate::ha::leases::HaSettings {
                        node: args.node_name.clone(),
                        namespace: args.ha_namespace.clone().unwrap_or_default(),
                        lease_duration: args.ha_lease_duration,
                        renew_interval: args.ha_renew_interval,
                        probe_timeout: args.ha_probe_timeout,
                        preempt_delay: args.ha_preempt_delay,
                        agent_port: args.listen.port(),
                    };
                    tracing::info!(namespace = %settings.namespace, "director HA: Lease election on");
                    tasks.push(tokio::spawn(crate::ha::leases::run(
                        client.clone(),
                        settings,
                        status.clone(),
                        tx.clone(),
                    )));
                }
                // Readiness gating: the realserver nodes' reports.
                tasks.push(tokio::spawn(crate::k8s::readiness::run(
                    client.clone(),
                    args.node_name.clone(),
                    tx.clone(),
                )));
                let answerer = crate::k8s::lvssnapshot::Answerer::new(
                    client.clone(),
                    &args.node_name,
                    args.snapshot_min_interval,
                    answer_metrics,
                );
                tasks.push(tokio::spawn(answerer.run(tx.clone())));
            }
        }
        let signal = tokio::select! {
            r = lvs_runtime::signal::shutdown_signal() => {
                r.context("installing the SIGTERM and SIGINT handlers")?
            }
            _ = &mut done_rx => anyhow::bail!("the sync thread stopped unexpectedly"),
        };
        tracing::info!(signal, "shutting down without touching the kernel");
        for t in &tasks {
            t.abort();
        }
        let _ = tx.send(Event::Shutdown);
        tokio::task::spawn_blocking(move || worker.join())
            .await
            .context("joining the sync thread")?
            .map_err(|_| anyhow::anyhow!("the sync thread panicked"))?;
        Ok(())
    })
}

/// SIGHUP: a full resync now, as the resync timer does (the kernel's whole
/// table read and every drift repaired), for instance after someone changed
/// the table by hand.
async fn resync_on_hangup(tx: mpsc::Sender<Event>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "no SIGHUP handler; resyncs come from the timer only");
            return;
        }
    };
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP: full resync requested");
        if tx.send(Event::Resync).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests;

//! Command line and process wiring of the standalone mode.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

use crate::agent::{Agent, AgentConfig, Health};
use crate::dataplane::netlink::NetlinkDataplane;
use crate::http::{HttpState, serve};
use crate::ledger::LedgerStore;
use crate::metrics::Metrics;
use crate::reconcile::Reconciler;
use crate::source::{DirSource, Event, SnapshotSink, Source};

/// Programs this node's IPVS table, VIPs, tunnels and sysctls from
/// VirtualService, RealServer and Node manifests in a directory.
#[derive(Debug, Parser)]
#[command(name = "node-agent", version)]
pub struct Args {
    /// Directory of *.yaml / *.yml manifests (VirtualService, RealServer, v1 Node).
    #[arg(long, env = "LVS_CONFIG_DIR")]
    pub config_dir: PathBuf,
    /// This node's name, as in its Node manifest.
    #[arg(long, env = "NODE_NAME")]
    pub node_name: String,
    /// Where the ownership ledger lives; it must survive restarts.
    #[arg(long, env = "LVS_STATE_DIR")]
    pub state_dir: PathBuf,
    /// Seconds between full resyncs, which read the kernel and repair drift.
    #[arg(long, env = "LVS_RESYNC_INTERVAL", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub resync_interval: u64,
    /// Address for /metrics, /healthz, /readyz and /status.
    #[arg(long, env = "LVS_LISTEN", default_value = "0.0.0.0:9477")]
    pub listen: SocketAddr,
    /// Reconcile once, print the report as JSON and exit: 0 if it had no
    /// problem, 1 otherwise.
    #[arg(long)]
    pub once: bool,
    /// The node's InternalIP(s), overriding the Node manifest; picks the
    /// director interface when a VirtualService names none.
    #[arg(long, env = "NODE_IP", value_delimiter = ',')]
    pub node_ip: Vec<IpAddr>,
    /// Milliseconds between checks of the configuration directory.
    #[arg(long, env = "LVS_POLL_INTERVAL_MS", default_value_t = 1000)]
    pub poll_interval_ms: u64,
    /// Log format: text or json.
    #[arg(long, env = "LVS_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
}

fn init_tracing(format: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("LVS_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let args = Args::parse();
    init_tracing(&args.log_format);
    let result = if args.once {
        run_once(&args)
    } else {
        run_daemon(args).map(|()| true)
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

fn agent_config(args: &Args) -> AgentConfig {
    AgentConfig {
        node_name: args.node_name.clone(),
        resync_interval: Duration::from_secs(args.resync_interval),
        node_ips: args.node_ip.clone(),
    }
}

fn reconciler(args: &Args) -> anyhow::Result<Reconciler<NetlinkDataplane>> {
    let store = LedgerStore::in_dir(&args.state_dir)?;
    let dp = NetlinkDataplane::new().context("opening the rtnetlink socket")?;
    Ok(Reconciler::new(dp, store)?)
}

/// One reconcile. Returns whether it was clean.
fn run_once(args: &Args) -> anyhow::Result<bool> {
    let snapshot = match DirSource::load(&args.config_dir) {
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
    let metrics = Arc::new(Metrics::default());
    let (mut agent, _) = Agent::new(
        reconciler(args)?,
        agent_config(args),
        metrics,
        Arc::new(Health::new()),
    );
    let report = agent.sync(&snapshot, true);
    println!("{}", serde_json::to_string(&report)?);
    Ok(report.ok())
}

fn run_daemon(args: Args) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::default());
    let health = Arc::new(Health::new());
    let (tx, rx) = mpsc::channel::<Event>();
    let (status_tx, status_rx) = std::sync::mpsc::sync_channel(1);

    // The dataplane is blocking and owns a runtime of its own: it lives on a
    // thread outside the main runtime.
    let cfg = agent_config(&args);
    let (m, h) = (metrics.clone(), health.clone());
    let state_dir = args.state_dir.clone();
    // Dropped when the thread ends, panics included.
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel::<()>();
    let worker = std::thread::Builder::new()
        .name("sync".into())
        .spawn(move || {
            let _done = done_tx;
            let built = LedgerStore::in_dir(&state_dir)
                .map_err(anyhow::Error::from)
                .and_then(|store| {
                    let dp = NetlinkDataplane::new().context("opening the rtnetlink socket")?;
                    Ok(Reconciler::new(dp, store)?)
                });
            let reconciler = match built {
                Ok(r) => r,
                Err(e) => {
                    let _ = status_tx.send(Err(e));
                    return;
                }
            };
            let (mut agent, status) = Agent::new(reconciler, cfg, m, h);
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
        tracing::info!(
            listen = %args.listen,
            node = %args.node_name,
            config_dir = %args.config_dir.display(),
            state_dir = %args.state_dir.display(),
            resync_interval = args.resync_interval,
            "node-agent started"
        );
        let http = tokio::spawn(serve(
            listener,
            HttpState {
                metrics: metrics.clone(),
                health,
                status,
                stale_after: Duration::from_secs(args.resync_interval * 3 + 10),
            },
        ));
        let source = DirSource::new(
            &args.config_dir,
            Duration::from_millis(args.poll_interval_ms.max(10)),
            metrics,
        );
        let sink = SnapshotSink::new(tx.clone());
        let source = tokio::spawn(source.run(sink));
        tokio::select! {
            r = wait_for_signal() => r?,
            _ = &mut done_rx => anyhow::bail!("the sync thread stopped unexpectedly"),
        }
        tracing::info!("signal received; shutting down without touching the kernel");
        source.abort();
        http.abort();
        let _ = tx.send(Event::Shutdown);
        tokio::task::spawn_blocking(move || worker.join())
            .await
            .context("joining the sync thread")?
            .map_err(|_| anyhow::anyhow!("the sync thread panicked"))?;
        Ok(())
    })
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

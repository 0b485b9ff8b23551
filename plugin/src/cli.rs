//! The command line: `kubectl lvs <command>`. kubectl finds the plugin as
//! `kubectl-lvs` on the PATH and passes the words after `lvs`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::cluster::{Cluster, Scope};
use crate::import::build::{self, DEFAULT_DIRECTORS, Options};
use crate::import::{Format, parse};
use crate::live::{self, Output, diff, get, table, top};

#[derive(Debug, Parser)]
#[command(name = "kubectl-lvs", version, about = "lvs-operator's kubectl plugin")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write VirtualService and RealServer YAML from an existing director's
    /// configuration (stdout), with a report of what was not carried over
    /// (stderr).
    Import(ImportArgs),
    /// VirtualServices with, per director, its role for the VIP, the
    /// programmed generation and table hash, and per destination its
    /// weight, state and the kernel's counters and rates (one snapshot
    /// request per director).
    Get(GetArgs),
    /// One node's live IPVS table, like `ipvsadm -Ln --stats`, with the
    /// VirtualService owning each service (`foreign`: not the agent's).
    Table(TableArgs),
    /// The changes each node's agent would make to its kernel (a dry run:
    /// nothing changes). Exit status 0: no differences, 1: differences,
    /// 2: an error.
    Diff(DiffArgs),
    /// The busiest VirtualServices and destinations over every director
    /// (by connections per second, then active connections, then packets
    /// per second in), refreshed every --interval. Each refresh writes one
    /// small snapshot request per director.
    Top(TopArgs),
}

/// How to reach the API server and how long the node agents have.
#[derive(Debug, Args)]
struct Conn {
    /// The kubeconfig file (default: KUBECONFIG, then ~/.kube/config).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current context).
    #[arg(long)]
    context: Option<String>,
    /// How long each node agent has to answer (e.g. 10s, 500ms, 1m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
}

#[derive(Debug, Args)]
struct GetArgs {
    /// A VirtualService: NAME (in --namespace) or NAMESPACE/NAME; all of the
    /// namespace when left out.
    name: Option<String>,
    /// The namespace (default: the kubeconfig context's).
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: Output,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Debug, Args)]
struct TableArgs {
    /// The node (the name of its LvsNode).
    node: String,
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: Output,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Debug, Args)]
struct DiffArgs {
    /// The node; every node with an LvsNode when left out.
    node: Option<String>,
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: Output,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Debug, Args)]
struct TopArgs {
    /// The namespace (default: the kubeconfig context's).
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// Time between refreshes, at least 1s: each refresh writes one
    /// snapshot request per director to the API server.
    #[arg(long, default_value = "2s", value_parser = parse_interval)]
    interval: Duration,
    /// Stop after this many refreshes (default: until interrupted).
    #[arg(long)]
    count: Option<u32>,
    /// Rows per table.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    #[command(flatten)]
    conn: Conn,
}

/// A wrong argument (exit status 2, as clap's own).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Usage(String);

/// "10s", "500ms", "1m" or plain seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?}: expected a duration like 10s, 500ms or 1m");
    let (n, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = n.parse().map_err(|_| bad())?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(bad()),
    };
    if !(secs > 0.0 && secs <= 3600.0) {
        return Err(format!("{s:?}: expected more than 0 and at most 1h"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_secs(1) {
        return Err(format!(
            "{s:?}: expected at least 1s (each refresh writes a request per director)"
        ));
    }
    Ok(d)
}

/// A DNS label (namespace) or subdomain (object name).
fn dns_name(s: &str, max: usize, dots: bool) -> bool {
    let b = s.as_bytes();
    (1..=max).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || (dots && *c == b'.')
        })
}

/// The VirtualServices `get` shows, from its arguments and the context's
/// namespace.
fn scope(
    name: Option<&str>,
    namespace: Option<&str>,
    all: bool,
    context_ns: &str,
) -> Result<Scope, Usage> {
    if let Some(ns) = namespace
        && !dns_name(ns, 63, false)
    {
        return Err(Usage(format!(
            "--namespace {ns:?}: expected a namespace name (lowercase letters, digits and '-', at most 63)"
        )));
    }
    let Some(name) = name else {
        return Ok(match (all, namespace) {
            (true, None) => Scope::All,
            (true, Some(_)) => {
                return Err(Usage(
                    "--all-namespaces and --namespace: expected one of them".to_string(),
                ));
            }
            (false, ns) => Scope::Namespace(ns.unwrap_or(context_ns).to_string()),
        });
    };
    if all {
        return Err(Usage(format!(
            "{name:?} with --all-namespaces: expected a NAME in one namespace (NAMESPACE/NAME) or --all-namespaces alone"
        )));
    }
    let (ns, n) = match name.split_once('/') {
        Some((ns, n)) => {
            if let Some(flag) = namespace
                && flag != ns
            {
                return Err(Usage(format!(
                    "{name:?}: its namespace {ns:?} differs from --namespace {flag:?}"
                )));
            }
            (ns, n)
        }
        None => (namespace.unwrap_or(context_ns), name),
    };
    if !dns_name(ns, 63, false) || !dns_name(n, 253, true) {
        return Err(Usage(format!(
            "{name:?}: expected NAME or NAMESPACE/NAME (lowercase letters, digits, '-' and '.' in the name)"
        )));
    }
    Ok(Scope::One {
        namespace: ns.to_string(),
        name: n.to_string(),
    })
}

fn check_node_name(node: &str) -> Result<(), Usage> {
    if dns_name(node, 253, true) {
        Ok(())
    } else {
        Err(Usage(format!(
            "node {node:?}: expected a node name (lowercase letters, digits, '-' and '.')"
        )))
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

async fn connect(c: &Conn) -> anyhow::Result<Cluster> {
    Cluster::connect(c.kubeconfig.as_deref(), c.context.as_deref(), c.timeout).await
}

fn emit(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("writing stdout")
}

fn get(a: GetArgs) -> anyhow::Result<ExitCode> {
    if let Some(n) = &a.name {
        // Usage errors before any connection.
        scope(Some(n), a.namespace.as_deref(), a.all_namespaces, "default")?;
    }
    runtime()?.block_on(async {
        let cluster = connect(&a.conn).await?;
        let scope = scope(
            a.name.as_deref(),
            a.namespace.as_deref(),
            a.all_namespaces,
            &cluster.namespace,
        )?;
        let services = cluster.virtual_services(&scope).await?;
        let nodes = cluster.lvs_nodes().await?;
        let keys: Vec<String> = services.iter().map(live::key).collect();
        let requests = live::requests(&nodes, keys.iter().map(String::as_str));
        let answers = cluster.snapshots(&requests, false).await;
        let view = get::build(&services, &nodes, &answers);
        emit(&live::format(&view, a.output, get::render)?)?;
        Ok(if get::has_errors(&view) {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    })
}

fn table(a: TableArgs) -> anyhow::Result<ExitCode> {
    check_node_name(&a.node)?;
    runtime()?.block_on(async {
        let cluster = connect(&a.conn).await?;
        cluster.check_node(&a.node).await?;
        let answer = cluster
            .snapshot(&a.node, Vec::new(), false)
            .await
            .map_err(anyhow::Error::msg)?;
        if !answer.error.is_empty() {
            anyhow::bail!(
                "the agent on {} could not read the kernel: {}",
                a.node,
                answer.error
            );
        }
        let view = table::build(&a.node, answer);
        emit(&live::format(&view, a.output, table::render)?)?;
        Ok(ExitCode::SUCCESS)
    })
}

fn diff(a: DiffArgs) -> anyhow::Result<ExitCode> {
    if let Some(n) = &a.node {
        check_node_name(n)?;
    }
    runtime()?.block_on(async {
        let cluster = connect(&a.conn).await?;
        let nodes: Vec<String> = match &a.node {
            Some(n) => {
                cluster.check_node(n).await?;
                vec![n.clone()]
            }
            None => cluster
                .lvs_nodes()
                .await?
                .into_iter()
                .filter_map(|n| n.metadata.name)
                .collect(),
        };
        if nodes.is_empty() {
            anyhow::bail!("no LvsNode: no node agent has reported yet");
        }
        let requests: BTreeMap<String, Vec<String>> =
            nodes.into_iter().map(|n| (n, Vec::new())).collect();
        let view = diff::build(cluster.snapshots(&requests, true).await);
        emit(&live::format(&view, a.output, diff::render)?)?;
        Ok(ExitCode::from(diff::exit_status(&view)))
    })
}

fn top(a: TopArgs) -> anyhow::Result<ExitCode> {
    if a.all_namespaces && a.namespace.is_some() {
        return Err(
            Usage("--all-namespaces and --namespace: expected one of them".to_string()).into(),
        );
    }
    if let Some(ns) = &a.namespace {
        scope(None, Some(ns), false, "default")?;
    }
    let terminal = std::io::stdout().is_terminal();
    runtime()?.block_on(async {
        let cluster = connect(&a.conn).await?;
        let namespace =
            (!a.all_namespaces).then(|| a.namespace.clone().unwrap_or(cluster.namespace.clone()));
        let mut tick = tokio::time::interval(a.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut refresh = 0u32;
        let mut failed = false;
        while a.count.is_none_or(|c| refresh < c) {
            tick.tick().await;
            refresh += 1;
            let nodes = cluster.lvs_nodes().await?;
            let keys: BTreeSet<String> = nodes
                .iter()
                .filter_map(|n| n.status.as_ref())
                .flat_map(|st| st.services.iter())
                .filter(|r| r.roles.iter().any(|x| x == "director"))
                .map(|r| r.name.clone())
                .filter(|k| {
                    namespace
                        .as_deref()
                        .is_none_or(|ns| k.split_once('/').is_some_and(|(n, _)| n == ns))
                })
                .collect();
            let requests = live::requests(&nodes, keys.iter().map(String::as_str));
            let answers = cluster.snapshots(&requests, false).await;
            let frame = top::build(&answers, namespace.as_deref(), a.limit);
            failed = !frame.failed.is_empty();
            let heading = format!(
                "{}, every {}s, refresh {refresh}",
                namespace
                    .as_deref()
                    .map_or("all namespaces".to_string(), |n| format!("namespace {n}")),
                a.interval.as_secs_f64()
            );
            let mut text = String::new();
            if terminal {
                // Home and clear: the frame replaces the last one.
                text.push_str("\x1b[H\x1b[2J");
            } else if refresh > 1 {
                text.push('\n');
            }
            text.push_str(&top::render(&frame, &heading));
            emit(&text)?;
        }
        Ok(if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    })
}

#[derive(Debug, Args)]
struct ImportArgs {
    /// The input format.
    format: Format,
    /// The file to read; `-` reads stdin.
    file: String,
    /// The namespace of the objects.
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// The nodes that act as directors: labels as key=value[,key=value].
    #[arg(long, default_value = DEFAULT_DIRECTORS)]
    directors: String,
    /// The interface the directors hold the VIPs on (default: the one with
    /// the node's InternalIP).
    #[arg(long)]
    interface: Option<String>,
    /// The start of every object's name.
    #[arg(long, default_value = "imported")]
    name_prefix: String,
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn prefix_ok(p: &str) -> bool {
    let b = p.as_bytes();
    (1..=40).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

fn import(a: ImportArgs) -> anyhow::Result<ExitCode> {
    if !prefix_ok(&a.name_prefix) {
        anyhow::bail!(
            "--name-prefix {:?}: expected 1-40 lowercase letters, digits and '-', starting and ending with a letter or digit",
            a.name_prefix
        );
    }
    let directors = build::parse_selector(&a.directors).map_err(|e| {
        anyhow::anyhow!(
            "--directors {:?}: {e}; expected key=value[,key=value]",
            a.directors
        )
    })?;
    // Bytes, decoded lossily: a stray non-UTF-8 byte in a comment must not
    // stop an import.
    let mut bytes = Vec::new();
    if a.file == "-" {
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("reading stdin")?;
    } else {
        bytes = std::fs::read(&a.file).with_context(|| format!("reading {}", a.file))?;
    }
    let text = String::from_utf8_lossy(&bytes);
    let draft = match parse(a.format, &text) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{}: {e}", if a.file == "-" { "<stdin>" } else { &a.file });
            return Ok(ExitCode::FAILURE);
        }
    };
    let opts = Options {
        namespace: a.namespace,
        directors,
        interface: a.interface,
        prefix: a.name_prefix,
    };
    let out = build::build(draft, &opts);
    let yaml = out.to_yaml().context("writing YAML")?;
    std::io::stdout()
        .write_all(yaml.as_bytes())
        .context("writing stdout")?;
    let mut err = std::io::stderr().lock();
    for n in &out.notes {
        writeln!(err, "{n}")?;
    }
    writeln!(
        err,
        "imported {}, {}; {} not carried over",
        plural(out.services.len(), "VirtualService", "VirtualServices"),
        plural(out.real_server_count(), "RealServer", "RealServers"),
        plural(out.notes.len(), "line or option", "lines or options"),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Runs the plugin; the exit status is 0 on success, 1 on malformed input,
/// an I/O error or a node without an answer, 2 on a usage error (`diff`:
/// 1 means differences, 2 any error).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let is_diff = matches!(cli.command, Command::Diff(_));
    let r = match cli.command {
        Command::Import(a) => import(a),
        Command::Get(a) => get(a),
        Command::Table(a) => table(a),
        Command::Diff(a) => diff(a),
        Command::Top(a) => top(a),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kubectl-lvs: {e:#}");
            if is_diff || e.downcast_ref::<Usage>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(ns: &str, name: &str) -> Scope {
        Scope::One {
            namespace: ns.into(),
            name: name.into(),
        }
    }

    #[test]
    fn get_names_and_namespaces() {
        assert_eq!(
            scope(None, None, false, "ctx").unwrap(),
            Scope::Namespace("ctx".into())
        );
        assert_eq!(
            scope(None, Some("lb"), false, "ctx").unwrap(),
            Scope::Namespace("lb".into())
        );
        assert_eq!(scope(None, None, true, "ctx").unwrap(), Scope::All);
        assert_eq!(
            scope(Some("web"), None, false, "ctx").unwrap(),
            one("ctx", "web")
        );
        assert_eq!(
            scope(Some("web"), Some("lb"), false, "ctx").unwrap(),
            one("lb", "web")
        );
        assert_eq!(
            scope(Some("lb/web.v2"), None, false, "ctx").unwrap(),
            one("lb", "web.v2")
        );
        assert_eq!(
            scope(Some("lb/web"), Some("lb"), false, "ctx").unwrap(),
            one("lb", "web")
        );
    }

    #[test]
    fn bad_get_arguments_say_what_was_expected() {
        let err = |name: Option<&str>, ns: Option<&str>, all: bool| {
            scope(name, ns, all, "ctx").unwrap_err().to_string()
        };
        assert_eq!(
            err(Some("a/b/c"), None, false),
            "\"a/b/c\": expected NAME or NAMESPACE/NAME (lowercase letters, digits, '-' and '.' in the name)"
        );
        assert_eq!(
            err(Some("Web"), None, false),
            "\"Web\": expected NAME or NAMESPACE/NAME (lowercase letters, digits, '-' and '.' in the name)"
        );
        assert_eq!(
            err(Some("lb/web"), Some("prod"), false),
            "\"lb/web\": its namespace \"lb\" differs from --namespace \"prod\""
        );
        assert_eq!(
            err(Some("web"), None, true),
            "\"web\" with --all-namespaces: expected a NAME in one namespace (NAMESPACE/NAME) or --all-namespaces alone"
        );
        assert_eq!(
            err(None, Some("lb"), true),
            "--all-namespaces and --namespace: expected one of them"
        );
        assert_eq!(
            err(None, Some("a.b"), false),
            "--namespace \"a.b\": expected a namespace name (lowercase letters, digits and '-', at most 63)"
        );
    }

    #[test]
    fn durations_and_the_top_interval() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(
            parse_duration("ten"),
            Err("\"ten\": expected a duration like 10s, 500ms or 1m".to_string())
        );
        assert_eq!(
            parse_duration("0s"),
            Err("\"0s\": expected more than 0 and at most 1h".to_string())
        );
        assert_eq!(parse_interval("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(
            parse_interval("500ms"),
            Err(
                "\"500ms\": expected at least 1s (each refresh writes a request per director)"
                    .to_string()
            )
        );
    }

    #[test]
    fn node_names() {
        assert!(check_node_name("dir1.example.org").is_ok());
        assert_eq!(
            check_node_name("Dir_1").unwrap_err().to_string(),
            "node \"Dir_1\": expected a node name (lowercase letters, digits, '-' and '.')"
        );
    }
}

//! The control-plane scale simulation of `make bench` (`e2e/bench/cp.sh`):
//! the operator against many VirtualServices and many node agents in a real
//! API server.
//!
//! 1. `--agents` Nodes (each with an InternalIP and a group label) and
//!    `--virtual-services` VirtualServices, each directed by the
//!    `--directors` nodes of its group, written through the admin
//!    kubeconfig. `operator_status_catchup_s`: the last VirtualService
//!    written → every status current (`status.observedGeneration ==
//!    metadata.generation`).
//! 2. One simulated agent per Node: a client of its own, authenticated by a
//!    token of the agent's ServiceAccount bound to its Node (TokenRequest),
//!    so the chart's own-node admission policy judges every write as it
//!    judges a real agent's. Each agent opens the real agent's watches and
//!    writes its LvsNode as the agent does (server-side apply, field
//!    manager `lvs-node-agent`, one entry per VirtualService it directs
//!    with the generation and role). `cp_converge_s`: the last report
//!    written → every VirtualService `Programmed`.
//! 3. At rest the agents keep their watches and rewrite their report every
//!    refresh interval (the agent's `--report-refresh-interval`).
//!    `agent_api_rps_idle`: the agents' requests, counted by a layer in
//!    every agent's client, over a quiet window, per 100 agents. The window
//!    is one period of the longest interval, so each watch renewal and
//!    each refresh falls into it as often as it falls into any such period.
//!
//! `--write-floor` runs none of that: with no operator running it creates
//! the VirtualServices and times rounds of their status writes as the
//! operator sends them, with and without an Event each
//! (`apiserver_write_floor`), the least time one status step of any
//! operator takes through this API server.
//!
//! Intervals can be scaled (`--time-scale S` divides the refresh interval
//! and the watch timeout by S, and the measured rate is divided by S again,
//! so a short window stands for a long one). The agents' VirtualService,
//! RealServer and LvsNode watches select nothing by default (a label no
//! object has): 500 agents × 10k status writes through one 2-core machine
//! would measure the machine, and a watch at rest costs the same requests
//! either way; `--full-watches` watches everything as the agent does.
//!
//! Output: `metric=... key=value` lines (the bench report's raw format) on
//! stdout; progress on stderr.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, Node, ServiceAccount};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig, NamedAuthInfo};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Config};
use lvs_api::{LvsAddressPool, LvsNode, LvsNodeProfile, LvsSnapshot, RealServer, VirtualService};
use serde_json::json;

#[derive(Parser, Debug)]
#[command(about = "control-plane scale simulation: the operator against N simulated agents")]
struct Args {
    /// The admin kubeconfig (creates the objects, requests the tokens).
    #[arg(long)]
    kubeconfig: PathBuf,
    /// How many agents (and Nodes).
    #[arg(long, default_value_t = 50)]
    agents: usize,
    #[arg(long, default_value_t = 10_000)]
    virtual_services: usize,
    /// Directors per VirtualService.
    #[arg(long, default_value_t = 2)]
    directors: usize,
    /// Namespace of the VirtualServices (created if missing).
    #[arg(long, default_value = "cp-bench")]
    namespace: String,
    /// Namespace and name of the agent's ServiceAccount.
    #[arg(long, default_value = "lvs-system")]
    agent_namespace: String,
    #[arg(long, default_value = "lvs-lvs-operator-agent")]
    agent_service_account: String,
    /// The agent's `--report-refresh-interval`, seconds (its default).
    #[arg(long, default_value_t = 600)]
    refresh_s: u64,
    /// The timeout of the agent's watches, seconds (the agent's
    /// `k8s::WATCH_TIMEOUT_S`).
    #[arg(long, default_value_t = 1800)]
    watch_timeout_s: u32,
    /// Divides the refresh interval and the watch timeout.
    #[arg(long, default_value_t = 1)]
    time_scale: u32,
    /// The quiet window the agents' requests are counted over, seconds of
    /// the scaled run; 0: one period of the longer of the refresh interval
    /// and the watch timeout.
    #[arg(long, default_value_t = 0)]
    idle_window_s: u64,
    /// The operator's pid, for its RSS and CPU time.
    #[arg(long)]
    operator_pid: Option<u32>,
    /// Limit of every wait, seconds.
    #[arg(long, default_value_t = 900)]
    limit_s: u64,
    /// Requests in flight while creating objects and minting tokens.
    #[arg(long, default_value_t = 32)]
    in_flight: usize,
    /// The agents watch every object as the agent does (see above).
    #[arg(long)]
    full_watches: bool,
    /// Leave the objects in place at the end.
    #[arg(long)]
    keep: bool,
    /// Instead of the simulation, measure the API server's write floor with
    /// no operator running: `--virtual-services` objects created, then timed
    /// rounds of their status writes as the operator sends them (server-side
    /// apply of the status subresource), with and without an Event each,
    /// `--in-flight` at a time (the operator's reconcile concurrency).
    #[arg(long)]
    write_floor: bool,
    /// The kubeconfig of the timed writes in `--write-floor` (the
    /// operator's ServiceAccount); default `--kubeconfig`.
    #[arg(long)]
    writer_kubeconfig: Option<PathBuf>,
}

const GROUP_LABEL: &str = "bench.lvs-operator.io/cp-group";
const NODE_PREFIX: &str = "cp-node-";
/// A label no object carries: the watches that select nothing.
const NOTHING: &str = "bench.lvs-operator.io/cp-sim-watches-nothing";

fn log(msg: impl AsRef<str>) {
    eprintln!("[cp-sim] {}", msg.as_ref());
}

fn node_name(j: usize) -> String {
    format!("{NODE_PREFIX}{j:04}")
}

fn vs_name(i: usize) -> String {
    format!("vs-{i:05}")
}

/// The group of node `j` and of VirtualService `i`.
fn groups(args: &Args) -> usize {
    (args.agents / args.directors.max(1)).max(1)
}

/// The operator's VmRSS, VmHWM (KiB) and CPU seconds.
fn operator_usage(pid: Option<u32>) -> Option<(u64, u64, f64)> {
    let pid = pid?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command's closing parenthesis; utime and stime are
    // the 14th and 15th of the whole line.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on Linux.
    Some((kb("VmRSS:")?, kb("VmHWM:")?, ticks as f64 / 100.0))
}

/// Counts the requests of one or more clients.
#[derive(Clone, Default)]
struct Counter {
    all: Arc<AtomicU64>,
    writes: Arc<AtomicU64>,
}

impl Counter {
    fn layer(
        &self,
    ) -> tower::util::MapRequestLayer<
        impl Fn(http::Request<kube::client::Body>) -> http::Request<kube::client::Body> + Clone + use<>,
    > {
        let c = self.clone();
        tower::util::MapRequestLayer::new(move |req: http::Request<kube::client::Body>| {
            c.all.fetch_add(1, Ordering::Relaxed);
            if req.method() != http::Method::GET {
                c.writes.fetch_add(1, Ordering::Relaxed);
            }
            req
        })
    }
    fn get(&self) -> (u64, u64) {
        (
            self.all.load(Ordering::Relaxed),
            self.writes.load(Ordering::Relaxed),
        )
    }
}

/// A client of the admin kubeconfig's cluster that authenticates with `token`
/// alone, its requests counted by `counter`.
async fn token_client(
    admin: &Kubeconfig,
    token: String,
    counter: &Counter,
) -> anyhow::Result<Client> {
    let mut kc = admin.clone();
    kc.auth_infos = vec![NamedAuthInfo {
        name: "agent".into(),
        auth_info: Some(AuthInfo {
            token: Some(token.into()),
            ..Default::default()
        }),
        other: Default::default(),
    }];
    for ctx in &mut kc.contexts {
        if let Some(c) = ctx.context.as_mut() {
            c.user = Some("agent".into());
        }
    }
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    let builder = kube::client::ClientBuilder::try_from(config)?;
    Ok(builder.with_layer(&counter.layer()).build())
}

async fn ensure_namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    api.patch(name, &PatchParams::apply("cp-sim"), &Patch::Apply(&ns))
        .await
        .with_context(|| format!("creating namespace {name}"))?;
    Ok(())
}

async fn create_nodes(client: &Client, args: &Args) -> anyhow::Result<HashMap<String, String>> {
    let api: Api<Node> = Api::all(client.clone());
    let g = groups(args);
    let uids: Vec<(String, String)> = stream::iter(0..args.agents)
        .map(|j| {
            let api = api.clone();
            async move {
                let name = node_name(j);
                let node = json!({
                    "apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": name, "labels": {GROUP_LABEL: (j % g).to_string()}},
                });
                let pp = PatchParams::apply("cp-sim").force();
                let n = api
                    .patch(&name, &pp, &Patch::Apply(&node))
                    .await
                    .with_context(|| format!("creating Node {name}"))?;
                let ip = format!("10.250.{}.{}", j / 250, j % 250 + 1);
                let status = json!({
                    "apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
                    "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
                });
                api.patch_status(&name, &pp, &Patch::Apply(&status))
                    .await
                    .with_context(|| format!("writing the address of Node {name}"))?;
                anyhow::Ok((name, n.metadata.uid.unwrap_or_default()))
            }
        })
        .buffer_unordered(args.in_flight)
        .try_collect()
        .await?;
    Ok(uids.into_iter().collect())
}

/// The VirtualServices' view the simulation waits on.
#[derive(Default)]
struct Progress {
    current: usize,
    programmed: usize,
    total: usize,
}

fn progress_of(store: &kube::runtime::reflector::Store<VirtualService>) -> Progress {
    let mut p = Progress::default();
    for vs in store.state() {
        p.total += 1;
        let Some(s) = vs.status.as_ref() else {
            continue;
        };
        if s.observed_generation.is_some() && s.observed_generation == vs.metadata.generation {
            p.current += 1;
            if s.conditions
                .iter()
                .any(|c| c.type_ == "Programmed" && c.status == "True")
            {
                p.programmed += 1;
            }
        }
    }
    p
}

/// Polls `store` every 100 ms until `done` holds (the time it held first),
/// at most `limit`.
async fn wait_for(
    store: &kube::runtime::reflector::Store<VirtualService>,
    what: &str,
    limit: Duration,
    done: impl Fn(&Progress) -> bool,
) -> anyhow::Result<Instant> {
    let t0 = Instant::now();
    let mut last_log = Instant::now();
    loop {
        let p = progress_of(store);
        if done(&p) {
            return Ok(Instant::now());
        }
        if t0.elapsed() > limit {
            bail!(
                "{what}: not within {}s ({} VirtualServices seen, {} with a current status, {} Programmed)",
                limit.as_secs(),
                p.total,
                p.current,
                p.programmed
            );
        }
        if last_log.elapsed() > Duration::from_secs(10) {
            log(format!(
                "{what}: {} seen, {} current, {} Programmed after {:.0}s",
                p.total,
                p.current,
                p.programmed,
                t0.elapsed().as_secs_f64()
            ));
            last_log = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn create_virtual_services(client: &Client, args: &Args) -> anyhow::Result<()> {
    let api: Api<VirtualService> = Api::namespaced(client.clone(), &args.namespace);
    let g = groups(args);
    stream::iter(0..args.virtual_services)
        .map(|i| {
            let api = api.clone();
            async move {
                let name = vs_name(i);
                let vs: VirtualService = serde_json::from_value(json!({
                    "apiVersion": lvs_api::API_VERSION, "kind": "VirtualService",
                    "metadata": {"name": name},
                    "spec": {
                        "address": format!("10.200.{}.{}", i / 256, i % 256),
                        "port": 80,
                        "directors": {"nodeSelector": {"matchLabels": {GROUP_LABEL: (i % g).to_string()}}},
                        "realServerSelector": {"matchLabels": {"app": format!("cp-{}", i % 100)}},
                    },
                }))?;
                api.create(&PostParams::default(), &vs)
                    .await
                    .with_context(|| format!("creating VirtualService {name}"))?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(args.in_flight)
        .try_collect::<()>()
        .await
}

async fn mint_tokens(
    client: &Client,
    args: &Args,
    uids: &HashMap<String, String>,
) -> anyhow::Result<BTreeMap<String, String>> {
    let sa: Api<ServiceAccount> = Api::namespaced(client.clone(), &args.agent_namespace);
    stream::iter(uids.iter())
        .map(|(node, uid)| {
            let sa = sa.clone();
            async move {
                let req = TokenRequest {
                    spec: TokenRequestSpec {
                        audiences: Vec::new(),
                        expiration_seconds: Some(24 * 3600),
                        bound_object_ref: Some(BoundObjectReference {
                            api_version: Some("v1".into()),
                            kind: Some("Node".into()),
                            name: Some(node.clone()),
                            uid: Some(uid.clone()),
                        }),
                    },
                    ..Default::default()
                };
                let t = sa
                    .create_token_request(&args.agent_service_account, &PostParams::default(), &req)
                    .await
                    .with_context(|| {
                        format!(
                            "TokenRequest for {}/{} bound to Node {node}",
                            args.agent_namespace, args.agent_service_account
                        )
                    })?;
                let token = t.status.map(|s| s.token).unwrap_or_default();
                anyhow::Ok((node.clone(), token))
            }
        })
        .buffer_unordered(args.in_flight)
        .try_collect()
        .await
}

/// Drains a watch of `K` for as long as the agent runs, as the agent's
/// reflector-less watches do.
fn spawn_watch<K>(client: &Client, config: watcher::Config) -> tokio::task::JoinHandle<()>
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + Send + 'static,
{
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ApiResource::erase::<K>(&()));
    tokio::spawn(async move {
        let mut s = std::pin::pin!(watcher(api, config).default_backoff());
        while s.next().await.is_some() {}
    })
}

/// One simulated agent: its watches, and its report.
struct Agent {
    node: String,
    client: Client,
    services: Vec<serde_json::Value>,
}

impl Agent {
    fn watches(&self, args: &Args) -> Vec<tokio::task::JoinHandle<()>> {
        let timeout = (args.watch_timeout_s / args.time_scale.max(1)).max(1);
        let all = watcher::Config::default().timeout(timeout);
        let objects = if args.full_watches {
            all.clone()
        } else {
            all.clone().labels(NOTHING)
        };
        // The source's six, the readiness gate's LvsNodes, and the node's
        // own LvsSnapshot (the live-table requests).
        let own = all.clone().fields(&format!("metadata.name={}", self.node));
        vec![
            spawn_watch::<LvsAddressPool>(&self.client, all.clone()),
            spawn_watch::<Namespace>(&self.client, all.clone()),
            spawn_watch::<LvsNodeProfile>(&self.client, all.clone()),
            spawn_watch::<VirtualService>(&self.client, objects.clone()),
            spawn_watch::<RealServer>(&self.client, objects.clone()),
            spawn_watch::<Node>(&self.client, all),
            spawn_watch::<LvsNode>(&self.client, objects),
            spawn_watch::<LvsSnapshot>(&self.client, own),
        ]
    }

    /// Server-side apply of the LvsNode and its status, as the agent's
    /// reporter writes them.
    async fn report(&self, first: bool) -> anyhow::Result<()> {
        let api: Api<LvsNode> = Api::all(self.client.clone());
        let pp = PatchParams::apply("lvs-node-agent").force();
        if first {
            let obj = json!({
                "apiVersion": lvs_api::API_VERSION, "kind": "LvsNode",
                "metadata": {"name": self.node}, "spec": {"nodeName": self.node},
            });
            api.patch(&self.node, &pp, &Patch::Apply(&obj))
                .await
                .with_context(|| format!("creating LvsNode {} as its agent", self.node))?;
        }
        let now = k8s_openapi::jiff::Timestamp::now().as_second();
        let t = k8s_openapi::jiff::Timestamp::from_second(now)
            .map(|t| t.to_string())
            .unwrap_or_default();
        let status = json!({
            "apiVersion": lvs_api::API_VERSION, "kind": "LvsNode",
            "metadata": {"name": self.node},
            "status": {
                "lastSyncTime": t,
                "programmedCount": self.services.len(),
                "errorCount": 0,
                "services": self.services,
            },
        });
        api.patch_status(&self.node, &pp, &Patch::Apply(&status))
            .await
            .with_context(|| format!("writing the status of LvsNode {} as its agent", self.node))?;
        Ok(())
    }
}

async fn cleanup(client: &Client, args: &Args) -> anyhow::Result<()> {
    let vs: Api<VirtualService> = Api::namespaced(client.clone(), &args.namespace);
    vs.delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .context("deleting the VirtualServices")?;
    let ln: Api<LvsNode> = Api::all(client.clone());
    let nodes: Api<Node> = Api::all(client.clone());
    for j in 0..args.agents {
        let _ = ln.delete(&node_name(j), &DeleteParams::default()).await;
        let _ = nodes.delete(&node_name(j), &DeleteParams::default()).await;
    }
    Ok(())
}

async fn client_of(path: &PathBuf) -> anyhow::Result<(Kubeconfig, Client)> {
    let kc = Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?;
    let client = Client::try_from(
        Config::from_custom_kubeconfig(kc.clone(), &KubeConfigOptions::default()).await?,
    )?;
    Ok((kc, client))
}

/// The status the operator writes for VirtualService `i` at one step:
/// ready and programmed once `programmed`.
fn floor_status(i: usize, generation: i64, programmed: bool) -> serde_json::Value {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let condition = |type_: &str, status: bool, reason: &str, message: &str| {
        json!({
            "type": type_, "status": if status { "True" } else { "False" },
            "reason": reason, "message": message,
            "observedGeneration": generation, "lastTransitionTime": now,
        })
    };
    let directors = [node_name(2 * i), node_name(2 * i + 1)];
    json!({
        "apiVersion": lvs_api::API_VERSION, "kind": "VirtualService",
        "status": {
            "observedGeneration": generation,
            "endpoint": format!("10.200.{}.{}:80/TCP", i / 256, i % 256),
            "directors": directors,
            "realServers": {"selected": 0, "ready": 0, "summary": "0/0"},
            "conditions": [
                condition("Ready", programmed, if programmed { "Ready" } else { "NotProgrammed" },
                    "traffic is served as specified"),
                if programmed {
                    condition("Programmed", true, "Programmed", "every director programmed it")
                } else {
                    condition("Programmed", false, "WaitingForDirectors", "no director has reported it yet")
                },
                condition("Degraded", false, "AsSpecified", "nothing is degraded"),
                condition("Conflict", false, "NoConflict", "no other VirtualService claims this endpoint"),
            ],
        },
    })
}

/// One timed round of the write floor: every VirtualService's status, and
/// with `event` an Event about it after the status, `in_flight` at a time.
/// Returns the seconds it took.
async fn floor_round(
    client: &Client,
    args: &Args,
    generations: &[(String, String, i64)],
    programmed: bool,
    event: bool,
) -> anyhow::Result<f64> {
    use k8s_openapi::api::core::v1::ObjectReference;
    use k8s_openapi::api::events::v1::Event;
    let vs: Api<VirtualService> = Api::namespaced(client.clone(), &args.namespace);
    let events: Api<Event> = Api::namespaced(client.clone(), &args.namespace);
    let params = PatchParams::apply("cp-sim-write-floor").force();
    let t = Instant::now();
    stream::iter(generations.iter().enumerate())
        .map(|(i, (name, uid, generation))| {
            let (vs, events, params) = (vs.clone(), events.clone(), params.clone());
            async move {
                let body = floor_status(i, *generation, programmed);
                vs.patch_status(name, &params, &Patch::Apply(&body))
                    .await
                    .with_context(|| format!("writing the status of VirtualService {name}"))?;
                if event {
                    let ev = Event {
                        metadata: kube::api::ObjectMeta {
                            name: Some(format!("{name}.floor{}", u8::from(programmed))),
                            ..Default::default()
                        },
                        action: Some("Reconcile".into()),
                        reason: Some(if programmed { "Programmed" } else { "Accepted" }.into()),
                        note: Some("write floor".into()),
                        type_: Some("Normal".into()),
                        event_time: Some(
                            k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
                                k8s_openapi::jiff::Timestamp::now(),
                            ),
                        ),
                        reporting_controller: Some("lvs-operator.io/cp-sim".into()),
                        reporting_instance: Some("cp-sim".into()),
                        regarding: Some(ObjectReference {
                            api_version: Some(lvs_api::API_VERSION.into()),
                            kind: Some("VirtualService".into()),
                            namespace: Some(args.namespace.clone()),
                            name: Some(name.clone()),
                            uid: Some(uid.clone()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    };
                    events
                        .create(&PostParams::default(), &ev)
                        .await
                        .with_context(|| {
                            format!("creating an Event about VirtualService {name}")
                        })?;
                }
                anyhow::Ok(())
            }
        })
        .buffer_unordered(args.in_flight)
        .try_collect::<()>()
        .await?;
    Ok(t.elapsed().as_secs_f64())
}

/// `--write-floor`: what the API server itself allows the operator, with no
/// operator running. Each round writes every status once; the first two
/// rounds are the two steps of the operator's catch-up and converge without
/// Events, the last two with an Event per status, as the operator writes
/// them.
async fn write_floor(admin: &Client, args: &Args) -> anyhow::Result<()> {
    let n = args.virtual_services;
    let writer = match &args.writer_kubeconfig {
        Some(p) => client_of(p).await?.1,
        None => admin.clone(),
    };
    ensure_namespace(admin, &args.namespace).await?;
    let t = Instant::now();
    create_virtual_services(admin, args).await?;
    let create_s = t.elapsed().as_secs_f64();
    log(format!("{n} VirtualServices written in {create_s:.1}s"));
    let vs_api: Api<VirtualService> = Api::namespaced(admin.clone(), &args.namespace);
    let mut generations: Vec<(String, String, i64)> = vs_api
        .list(&ListParams::default())
        .await
        .context("listing the VirtualServices")?
        .items
        .into_iter()
        .map(|v| {
            (
                v.metadata.name.unwrap_or_default(),
                v.metadata.uid.unwrap_or_default(),
                v.metadata.generation.unwrap_or(1),
            )
        })
        .collect();
    generations.sort();
    if generations.len() != n {
        bail!("listed {} VirtualServices, wrote {n}", generations.len());
    }
    let status_s = floor_round(&writer, args, &generations, false, false).await?;
    let status2_s = floor_round(&writer, args, &generations, true, false).await?;
    log(format!(
        "{n} status writes in {status_s:.1}s, again in {status2_s:.1}s"
    ));
    let pair_s = floor_round(&writer, args, &generations, false, true).await?;
    let pair2_s = floor_round(&writer, args, &generations, true, true).await?;
    log(format!(
        "{n} status writes with an Event each in {pair_s:.1}s, again in {pair2_s:.1}s"
    ));
    let rate = |writes: usize, s: f64| writes as f64 / s.max(1e-9);
    println!(
        "metric=apiserver_write_floor contender=apiserver n={n} in_flight={} create_s={create_s:.2} \
         status_s={:.2} status_event_s={:.2} status_writes_per_s={:.0} with_events_writes_per_s={:.0}",
        args.in_flight,
        status_s.min(status2_s),
        pair_s.min(pair2_s),
        rate(n, status_s.min(status2_s)),
        rate(2 * n, pair_s.min(pair2_s)),
    );
    if !args.keep {
        vs_api
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await
            .context("deleting the VirtualServices")?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (admin_kc, admin) = client_of(&args.kubeconfig).await?;
    if args.write_floor {
        return write_floor(&admin, &args).await;
    }
    let (n, m) = (args.virtual_services, args.agents);
    let usage0 = operator_usage(args.operator_pid);

    ensure_namespace(&admin, &args.namespace).await?;
    let t = Instant::now();
    let uids = create_nodes(&admin, &args).await?;
    log(format!("{m} Nodes in {:.1}s", t.elapsed().as_secs_f64()));

    // Follow the VirtualServices from before the first is written.
    let (store, writer) = kube::runtime::reflector::store::<VirtualService>();
    let vs_api: Api<VirtualService> = Api::namespaced(admin.clone(), &args.namespace);
    let follow = tokio::spawn(
        watcher(vs_api, watcher::Config::default())
            .default_backoff()
            .reflect(writer)
            .for_each(|_| async {}),
    );
    store.wait_until_ready().await?;
    let limit = Duration::from_secs(args.limit_s);

    // --- phase 1: the operator's status catch-up -----------------------
    let t_create = Instant::now();
    create_virtual_services(&admin, &args).await?;
    let t_written = Instant::now();
    let create_s = t_written.duration_since(t_create).as_secs_f64();
    log(format!("{n} VirtualServices written in {create_s:.1}s"));
    let t_current = wait_for(&store, "status catch-up", limit, |p| {
        p.total == n && p.current == n
    })
    .await?;
    let catchup = t_current.saturating_duration_since(t_written).as_secs_f64();
    let usage1 = operator_usage(args.operator_pid);
    log(format!(
        "every status current {catchup:.1}s after the last VirtualService was written"
    ));
    let cpu = |a: Option<(u64, u64, f64)>, b: Option<(u64, u64, f64)>| match (a, b) {
        (Some(a), Some(b)) => format!("{:.2}", b.2 - a.2),
        _ => "NA".into(),
    };
    let rss = |u: Option<(u64, u64, f64)>| {
        u.map_or(("NA".to_string(), "NA".to_string()), |u| {
            (u.0.to_string(), u.1.to_string())
        })
    };
    println!(
        "metric=operator_status_catchup contender=operator n={n} m={m} catchup_s={catchup:.2} create_s={create_s:.2} \
         operator_cpu_s={} vmrss_kb={} vmhwm_kb={}",
        cpu(usage0, usage1),
        rss(usage1).0,
        rss(usage1).1
    );

    // --- phase 2: the agents report --------------------------------------
    let t = Instant::now();
    let tokens = mint_tokens(&admin, &args, &uids).await?;
    log(format!(
        "{m} node-bound tokens in {:.1}s",
        t.elapsed().as_secs_f64()
    ));
    let g = groups(&args);
    let mut by_group: HashMap<usize, Vec<serde_json::Value>> = HashMap::new();
    for vs in store.state() {
        let i: usize = vs
            .metadata
            .name
            .as_deref()
            .and_then(|n| n.strip_prefix("vs-"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_default();
        by_group.entry(i % g).or_default().push(json!({
            "name": format!("{}/{}", args.namespace, vs.metadata.name.as_deref().unwrap_or_default()),
            "generation": vs.metadata.generation,
            "roles": ["director"],
        }));
    }
    for v in by_group.values_mut() {
        v.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    }
    let counter = Counter::default();
    let mut agents = Vec::with_capacity(m);
    for j in 0..m {
        let node = node_name(j);
        let token = tokens.get(&node).cloned().unwrap_or_default();
        agents.push(Arc::new(Agent {
            client: token_client(&admin_kc, token, &counter).await?,
            services: by_group.get(&(j % g)).cloned().unwrap_or_default(),
            node,
        }));
    }
    let mut tasks = Vec::new();
    for a in &agents {
        tasks.extend(a.watches(&args));
    }
    let usage2 = operator_usage(args.operator_pid);
    let t_reports = Instant::now();
    stream::iter(agents.iter().cloned())
        .map(|a| async move { a.report(true).await })
        .buffer_unordered(args.in_flight)
        .try_collect::<()>()
        .await?;
    let t_reported = Instant::now();
    let report_s = t_reported.duration_since(t_reports).as_secs_f64();
    log(format!("{m} LvsNode reports written in {report_s:.1}s"));
    let t_programmed = wait_for(&store, "every VirtualService Programmed", limit, |p| {
        p.total == n && p.programmed == n
    })
    .await?;
    let converge = t_programmed
        .saturating_duration_since(t_reported)
        .as_secs_f64();
    let usage3 = operator_usage(args.operator_pid);
    log(format!(
        "every VirtualService Programmed {converge:.1}s after the last report"
    ));
    println!(
        "metric=cp_converge contender=operator n={n} m={m} converge_s={converge:.2} reports_s={report_s:.2} \
         directors={} operator_cpu_s={} vmrss_kb={} vmhwm_kb={}",
        args.directors,
        cpu(usage2, usage3),
        rss(usage3).0,
        rss(usage3).1
    );

    // --- phase 3: at rest ----------------------------------------------
    let scale = args.time_scale.max(1);
    let refresh = Duration::from_secs_f64(args.refresh_s as f64 / f64::from(scale));
    for (j, a) in agents.iter().enumerate() {
        let a = a.clone();
        // Agents start at different times: their refreshes are spread over
        // the interval.
        let phase = refresh.mul_f64(j as f64 / m as f64);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(phase).await;
            let mut tick = tokio::time::interval(refresh);
            loop {
                tick.tick().await;
                if let Err(e) = a.report(false).await {
                    log(format!("{e:#}"));
                }
            }
        }));
    }
    // One refresh interval to settle (the first lists and reports are
    // done), then the window.
    tokio::time::sleep(refresh).await;
    let usage4 = operator_usage(args.operator_pid);
    let (r0, w0) = counter.get();
    let window = if args.idle_window_s > 0 {
        Duration::from_secs(args.idle_window_s)
    } else {
        Duration::from_secs(args.refresh_s.max(u64::from(args.watch_timeout_s)))
            .div_f64(f64::from(scale))
    };
    tokio::time::sleep(window).await;
    let (r1, w1) = counter.get();
    let usage5 = operator_usage(args.operator_pid);
    let real_window = window.as_secs_f64() * f64::from(scale);
    let rps = (r1 - r0) as f64 / real_window;
    let per100 = rps * 100.0 / m as f64;
    log(format!(
        "at rest: {} requests ({} writes) in {:.0}s ({:.0}s real time): {per100:.3} requests/s per 100 agents",
        r1 - r0,
        w1 - w0,
        window.as_secs_f64(),
        real_window
    ));
    println!(
        "metric=agent_api_rps_idle contender=agent n={n} m={m} rps={rps:.4} rps_per_100_agents={per100:.4} \
         requests={} writes={} window_s={:.0} time_scale={scale} refresh_s={} watch_timeout_s={} full_watches={} \
         operator_cpu_s={} vmrss_kb={} vmhwm_kb={}",
        r1 - r0,
        w1 - w0,
        window.as_secs_f64(),
        args.refresh_s,
        args.watch_timeout_s,
        args.full_watches,
        cpu(usage4, usage5),
        rss(usage5).0,
        rss(usage5).1
    );

    for t in tasks {
        t.abort();
    }
    follow.abort();
    if !args.keep {
        cleanup(&admin, &args).await?;
    }
    Ok(())
}

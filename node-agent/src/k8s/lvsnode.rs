//! The node's report: the status of the LvsNode named after the node.
//!
//! After each sync the agent's [`AgentStatus`] becomes an [`LvsNodeStatus`]
//! (one entry per VirtualService the node has a role in). It is written with
//! server-side apply (field manager [`FIELD_MANAGER`]) only when its content
//! changed, or, if only the sync time moved on, at most once per refresh
//! interval, to keep the API load low. A failed write is retried with
//! backoff, always with the latest status, so a report that could not be
//! written while the API server was away is written once it is back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::BackoffBuilder as _;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams};
use lvs_api::{LvsNode, LvsNodeStatus};
use serde_json::json;
use tokio::sync::watch;

use super::source::Unreadable;
use crate::agent::AgentStatus;
use crate::metrics::Metrics;

/// The field manager of every write the agent makes.
pub const FIELD_MANAGER: &str = "lvs-node-agent";

/// How often an unchanged report is rewritten just to move `lastSyncTime`
/// (the default of `--report-refresh-interval`). Nothing reads that time
/// but people (`kubectl get lvsnodes`): the operator judges reports by
/// their content, and every change of content is written at once. At rest
/// this rewrite is, with the watch renewals, all an agent asks of the API
/// server, so it is rare.
pub const REFRESH: Duration = Duration::from_secs(600);

const FIRST_RETRY: Duration = Duration::from_secs(1);
pub(crate) const MAX_RETRY: Duration = Duration::from_secs(30);

/// Delays between failed writes: 1 s doubling to at most 30 s, for as long
/// as the writes fail.
pub(crate) fn write_retries() -> backon::ExponentialBuilder {
    backon::ExponentialBuilder::default()
        .with_min_delay(FIRST_RETRY)
        .with_max_delay(MAX_RETRY)
        .with_factor(2.0)
        .without_max_times()
}

/// RFC 3339 in whole seconds, as the API server writes times.
pub fn rfc3339(unix_seconds: f64) -> String {
    Timestamp::from_second(unix_seconds as i64)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| Timestamp::now().to_string())
}

/// At most this many refused VirtualServices are listed in an LvsNode.
const MAX_REFUSED: usize = 50;

/// The LvsNode status for the agent's status; `None` before the first sync.
pub fn lvsnode_status(status: &AgentStatus) -> Option<LvsNodeStatus> {
    lvsnode_status_with(status, &[])
}

/// [`lvsnode_status`] plus the objects the watches could not read; bounded
/// in size by [`crate::report::bounded_status`] and
/// [`crate::report::within_size`].
pub fn lvsnode_status_with(status: &AgentStatus, unreadable: &[String]) -> Option<LvsNodeStatus> {
    let t = status.last_sync?;
    let mut services = status.reports.clone();
    services.sort_by(|a, b| a.name.cmp(&b.name));
    crate::report::with_destinations(&mut services, &status.destinations);
    crate::report::with_live(&mut services, &status.live, &status.drift);
    let vips = status
        .vips
        .iter()
        .map(|v| lvs_api::VipRole {
            address: v.address.to_string(),
            role: v.role,
            since: Some(rfc3339(v.since)),
        })
        .collect();
    let mut out = LvsNodeStatus {
        last_sync_time: Some(rfc3339(t)),
        vips,
        refused: status
            .refused
            .iter()
            .take(MAX_REFUSED)
            .map(|(name, why)| format!("{name}: {why}"))
            .collect(),
        ..crate::report::bounded_status(&services, &status.node_errors, unreadable)
    };
    crate::report::within_size(&mut out);
    Some(out)
}

/// The part of the agent's status [`lvsnode_status_with`] reads, copied.
/// The writer copies it out of the channel, and the sync thread cannot
/// publish while it does, so the rest (each service's sync result, the HA
/// candidates, the nodes' addresses) stays behind.
fn report_part(st: &AgentStatus) -> AgentStatus {
    AgentStatus {
        last_sync: st.last_sync,
        reports: st.reports.clone(),
        node_errors: st.node_errors.clone(),
        destinations: st.destinations.clone(),
        vips: st.vips.clone(),
        refused: st.refused.clone(),
        live: st.live.clone(),
        drift: st.drift.clone(),
        ..AgentStatus::default()
    }
}

/// After building a report, the writer waits this many times as long as
/// the build took before it builds the next: at 10k services each change
/// of the agent's status would otherwise cost a whole build, and the
/// builds would take the CPU the sync and the watches need. On a small
/// node the pause is a few milliseconds.
const BUILD_PAUSE: u32 = 4;

/// The last status written, and when.
#[derive(Debug, Clone)]
pub struct Written {
    pub status: LvsNodeStatus,
    pub at: Instant,
}

fn without_time(s: &LvsNodeStatus) -> LvsNodeStatus {
    LvsNodeStatus {
        last_sync_time: None,
        ..s.clone()
    }
}

/// Whether `new` must be written: nothing written yet, the content differs,
/// or only the sync time moved on and `refresh` has passed since the last
/// write.
pub fn needs_write(
    last: Option<&Written>,
    new: &LvsNodeStatus,
    now: Instant,
    refresh: Duration,
) -> bool {
    let Some(w) = last else {
        return true;
    };
    if without_time(&w.status) != without_time(new) {
        return true;
    }
    w.status.last_sync_time != new.last_sync_time && now.duration_since(w.at) >= refresh
}

/// The shortest time between two writes that differ only in destination
/// states (health checks, readiness, drain): a flapping check or a drain
/// counting down its connections writes at most this often; what else
/// changes (a generation, an error, a role) is written at once.
pub const DESTINATIONS_GAP: Duration = Duration::from_secs(1);

fn without_destinations(s: &LvsNodeStatus) -> LvsNodeStatus {
    LvsNodeStatus {
        last_sync_time: None,
        omitted_destinations: 0,
        services: s
            .services
            .iter()
            .map(|r| lvs_api::ServiceReport {
                healthy: None,
                total: None,
                destinations: Vec::new(),
                ..r.clone()
            })
            .collect(),
        ..s.clone()
    }
}

/// The default of `--status-counters-interval`: the shortest time between
/// two writes that differ only in live state (counters, table hashes).
pub const COUNTERS_INTERVAL: Duration = Duration::from_secs(10);

/// `s` without the live state of its services (counters, their time, table
/// hashes), which changes with the traffic.
fn without_live(s: &LvsNodeStatus) -> LvsNodeStatus {
    LvsNodeStatus {
        services: s
            .services
            .iter()
            .map(|r| lvs_api::ServiceReport {
                counters: None,
                counters_time: None,
                table_hash: None,
                ..r.clone()
            })
            .collect(),
        ..s.clone()
    }
}

/// When `new` is to be written: `None` when it need not be (see
/// [`needs_write`]); otherwise now; or, when it differs from the last write
/// only in live state, no sooner than `counters` after that write; or, when
/// it differs only in destination states (and perhaps live state), no
/// sooner than `gap` after it. Live state rides along with every other
/// write and never makes writes more frequent than `counters`.
pub fn write_at(
    last: Option<&Written>,
    new: &LvsNodeStatus,
    now: Instant,
    refresh: Duration,
    gap: Duration,
    counters: Duration,
) -> Option<Instant> {
    if !needs_write(last, new, now, refresh) {
        return None;
    }
    let Some(w) = last else {
        return Some(now);
    };
    let (was, is) = (without_live(&w.status), without_live(new));
    if without_time(&was) == without_time(&is) {
        return Some((w.at + counters).max(now));
    }
    if without_destinations(&was) == without_destinations(&is) {
        return Some((w.at + gap).max(now));
    }
    Some(now)
}

/// Starts `make(client).run(status)` on a thread of its own, with a tokio
/// runtime and an API client of its own; returns once the client is built.
///
/// At 10k services each write serializes about 1 MiB of JSON, encrypts it,
/// and receives and decodes the object the API server sends back, which is
/// as large. On the agent's runtime, whose one thread the watches, leases
/// and probes share, that held every watch event arriving meanwhile for
/// hundreds of milliseconds on a slow CPU. The client must be built inside
/// the runtime that drives it: its request queue's worker and its
/// connections run there.
pub async fn spawn_writer<F>(
    kubeconfig: Option<std::path::PathBuf>,
    make: F,
    status: watch::Receiver<AgentStatus>,
) -> anyhow::Result<()>
where
    F: FnOnce(kube::Client) -> Reporter + Send + 'static,
{
    use anyhow::Context as _;
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<anyhow::Result<()>>();
    std::thread::Builder::new()
        .name("lvsnode-writer".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e).context("starting the LvsNode writer's runtime"));
                    return;
                }
            };
            rt.block_on(async move {
                match lvs_runtime::kube::client(kubeconfig.as_deref()).await {
                    Ok(client) => {
                        let _ = ready_tx.send(Ok(()));
                        make(client).run(status).await;
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e).context("the LvsNode writer's API client"));
                    }
                }
            });
        })
        .context("starting the LvsNode writer's thread")?;
    ready_rx
        .await
        .context("the LvsNode writer's thread ended before starting")?
}

/// Publishes the agent's status as its node's LvsNode.
#[derive(Clone)]
pub struct Reporter {
    api: Api<LvsNode>,
    node: String,
    refresh: Duration,
    /// The shortest time between writes that differ only in live state.
    counters: Duration,
    metrics: Arc<Metrics>,
    unreadable: Option<Unreadable>,
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporter")
            .field("node", &self.node)
            .field("refresh", &self.refresh)
            .finish_non_exhaustive()
    }
}

impl Reporter {
    pub fn new(client: kube::Client, node: &str, refresh: Duration, metrics: Arc<Metrics>) -> Self {
        Reporter {
            api: Api::all(client),
            node: node.to_string(),
            refresh,
            counters: COUNTERS_INTERVAL,
            metrics,
            unreadable: None,
        }
    }

    /// Writes that differ only in live state (counters, table hashes) come
    /// at most once per `interval` (see [`write_at`]).
    pub fn with_counters_interval(mut self, interval: Duration) -> Self {
        self.counters = interval;
        self
    }

    /// Reports the objects the watches could not read, too.
    pub fn with_unreadable(mut self, unreadable: Unreadable) -> Self {
        self.unreadable = Some(unreadable);
        self
    }

    fn params() -> PatchParams {
        PatchParams::apply(FIELD_MANAGER).force()
    }

    /// Creates the LvsNode (or re-asserts its spec).
    pub async fn apply_object(&self) -> Result<(), kube::Error> {
        let obj = json!({
            "apiVersion": lvs_api::API_VERSION,
            "kind": "LvsNode",
            "metadata": {"name": self.node},
            "spec": {"nodeName": self.node},
        });
        self.api
            .patch(&self.node, &Self::params(), &Patch::Apply(obj))
            .await
            .map(drop)
    }

    /// Writes the status subresource.
    pub async fn apply_status(&self, status: &LvsNodeStatus) -> Result<(), kube::Error> {
        let obj = json!({
            "apiVersion": lvs_api::API_VERSION,
            "kind": "LvsNode",
            "metadata": {"name": self.node},
            "status": status,
        });
        self.api
            .patch_status(&self.node, &Self::params(), &Patch::Apply(obj))
            .await
            .map(drop)
    }

    /// Writes `status`, creating the object first when it is not known to
    /// exist, or when the status write finds it gone.
    pub async fn write(
        &self,
        status: &LvsNodeStatus,
        exists: &mut bool,
    ) -> Result<(), kube::Error> {
        if !*exists {
            self.apply_object().await?;
            *exists = true;
        }
        match self.apply_status(status).await {
            Err(kube::Error::Api(s)) if s.is_not_found() => {
                tracing::info!(node = %self.node, "the LvsNode is gone; creating it again");
                *exists = false;
                self.apply_object().await?;
                *exists = true;
                self.apply_status(status).await
            }
            other => other,
        }
    }

    /// Runs until the agent loop is gone.
    pub async fn run(self, mut rx: watch::Receiver<AgentStatus>) {
        let mut last: Option<Written> = None;
        let mut exists = false;
        let mut retries = write_retries().build();
        let mut failures = crate::quiet::Repeated::default();
        let mut bad_rx = self.unreadable.as_ref().map(Unreadable::subscribe);
        let mut next_build: Option<Instant> = None;
        loop {
            // Changes that come while the last build's pause runs are taken
            // together by the next build.
            if let Some(t) = next_build.filter(|t| *t > Instant::now()) {
                tokio::time::sleep_until(t.into()).await;
            }
            let bad = match (&self.unreadable, &mut bad_rx) {
                (Some(u), Some(b)) => {
                    b.borrow_and_update();
                    u.list()
                }
                _ => Vec::new(),
            };
            // Building the report copies, sorts and sizes every service
            // entry (tens of milliseconds at 10k services, far more on a
            // slow CPU); it runs on the writer's own thread (see
            // [`spawn_writer`]). What it needs of the agent's status is
            // copied out of the channel (building from the borrow would
            // hold the sync thread's next publish longer) and dropped once
            // the report is built.
            let started = Instant::now();
            let new = {
                let current = report_part(&rx.borrow_and_update());
                lvsnode_status_with(&current, &bad)
            };
            let at = new.as_ref().and_then(|n| {
                write_at(
                    last.as_ref(),
                    n,
                    Instant::now(),
                    self.refresh,
                    DESTINATIONS_GAP,
                    self.counters,
                )
            });
            next_build = Some(Instant::now() + started.elapsed() * BUILD_PAUSE);
            if let Some(at) = at.filter(|at| *at > Instant::now()) {
                // Only destination states changed, and the last write was
                // a moment ago: write what is current then.
                tokio::select! {
                    () = tokio::time::sleep_until(at.into()) => {}
                    r = rx.changed() => if r.is_err() { return },
                }
                continue;
            }
            if let (Some(new), Some(_)) = (new, at) {
                match self.write(&new, &mut exists).await {
                    Ok(()) => {
                        self.metrics.report_write(true);
                        tracing::info!(
                            node = %self.node,
                            programmed = new.programmed_count,
                            errors = new.error_count,
                            "LvsNode status written"
                        );
                        last = Some(Written {
                            status: new,
                            at: Instant::now(),
                        });
                        retries = write_retries().build();
                        failures.ok(Instant::now());
                    }
                    Err(e) => {
                        self.metrics.report_write(false);
                        exists = false;
                        let retry = retries.next().unwrap_or(MAX_RETRY);
                        if let Some(f) = failures.fail(Instant::now()) {
                            tracing::warn!(
                                node = %self.node,
                                error = %super::describe(&e),
                                retry_in_s = retry.as_secs(),
                                failing_for_s = f.for_.as_secs(),
                                not_logged = f.unlogged,
                                "writing the LvsNode failed; retrying (logged again at most once a minute while it fails)"
                            );
                        }
                        tokio::time::sleep(retry).await;
                        continue;
                    }
                }
            }
            match &mut bad_rx {
                Some(b) => tokio::select! {
                    r = rx.changed() => if r.is_err() { return },
                    r = b.changed() => if r.is_err() { bad_rx = None },
                },
                None => {
                    if rx.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvs_api::ServiceReport;

    fn svc(name: &str, generation: i64, error: &str) -> ServiceReport {
        ServiceReport {
            name: name.into(),
            generation: Some(generation),
            roles: vec!["director".into()],
            error: error.into(),
            ..Default::default()
        }
    }

    fn status(t: f64, reports: Vec<ServiceReport>) -> AgentStatus {
        AgentStatus {
            node: "n1".into(),
            last_sync: Some(t),
            reports,
            ..AgentStatus::default()
        }
    }

    #[test]
    fn status_counts_and_sorts() {
        assert_eq!(lvsnode_status(&AgentStatus::default()), None, "no sync yet");
        let s = lvsnode_status(&status(
            1_800_000_000.7,
            vec![
                svc("ns/b", 2, "sysctl net/ipv4/ip_forward: EACCES"),
                svc("ns/a", 1, ""),
                svc("ns/c", 9, ""),
            ],
        ))
        .unwrap();
        assert_eq!(s.programmed_count, 2);
        assert_eq!(s.error_count, 1);
        assert_eq!(
            s.services
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>(),
            ["ns/a", "ns/b", "ns/c"]
        );
        assert_eq!(s.last_sync_time.as_deref(), Some("2027-01-15T08:00:00Z"));
        // The JSON the API server gets: camelCase, an empty error omitted.
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["programmedCount"], 2);
        assert_eq!(
            v["services"][0],
            json!({"name": "ns/a", "generation": 1, "roles": ["director"]})
        );
        assert_eq!(
            v["services"][1]["error"],
            "sysctl net/ipv4/ip_forward: EACCES"
        );
        assert!(v.get("vips").is_none(), "no vips without HA");
        let mut st = status(1_800_000_000.0, vec![]);
        st.vips = vec![crate::ha::VipState {
            address: "10.0.0.10".parse().unwrap(),
            role: crate::ha::Role::Standby,
            since: 1_800_000_000.0,
        }];
        let v = serde_json::to_value(lvsnode_status(&st).unwrap()).unwrap();
        assert_eq!(
            v["vips"],
            json!([{"address": "10.0.0.10", "role": "Standby", "since": "2027-01-15T08:00:00Z"}])
        );
    }

    #[test]
    fn the_report_is_built_from_the_part_the_writer_copies() {
        let mut st = status(
            1_800_000_000.0,
            vec![svc("ns/a", 1, ""), svc("ns/b", 2, "VIP taken")],
        );
        st.destinations.insert(
            "ns/a".into(),
            crate::report::DestinationStates {
                healthy: 1,
                total: 2,
                entries: vec![lvs_api::DestinationReport {
                    destination: "10.0.0.5:80".into(),
                    state: lvs_api::DestinationState::Failing,
                    last_error: "refused".into(),
                    ..Default::default()
                }],
            },
        );
        st.vips = vec![crate::ha::VipState {
            address: "10.0.0.10".parse().unwrap(),
            role: crate::ha::Role::Active,
            since: 1_800_000_000.0,
        }];
        st.refused.insert("ns/c".into(), "no pool allows it".into());
        st.live.insert(
            "ns/a".into(),
            crate::report::LiveState {
                counters: lvs_api::TrafficCounters {
                    connections: 7,
                    ..Default::default()
                },
                time: "2027-01-15T08:00:00Z".into(),
                table_hash: "00ff".into(),
            },
        );
        st.drift.insert(
            "ns/a".into(),
            lvs_api::DriftReport {
                count: 1,
                ..Default::default()
            },
        );
        st.services.insert("ns/a".into(), Default::default());
        let part = report_part(&st);
        assert!(part.services.is_empty(), "the sync results stay behind");
        let whole = lvsnode_status_with(&st, &[]).unwrap();
        assert_eq!(lvsnode_status_with(&part, &[]).unwrap(), whole);
        // Every field set above reaches the report.
        let v = serde_json::to_value(&whole).unwrap();
        for field in ["vips", "refused", "services"] {
            assert!(v.get(field).is_some(), "{field} missing: {v}");
        }
        let a = &v["services"][0];
        for field in ["destinations", "counters", "tableHash", "drift"] {
            assert!(a.get(field).is_some(), "ns/a's {field} missing: {a}");
        }
        st.node_errors = vec!["ledger unreadable".into()];
        let whole = lvsnode_status_with(&st, &[]).unwrap();
        assert_eq!(whole.node_errors, ["ledger unreadable"]);
        assert_eq!(lvsnode_status_with(&report_part(&st), &[]).unwrap(), whole);
    }

    /// 5,000 VirtualServices on a director without IPVS: a node-level
    /// error. The LvsNode status must stay far below the API server's
    /// request limit and still say what is wrong.
    #[test]
    fn a_node_level_error_on_thousands_of_services_keeps_the_report_small() {
        use crate::agent::{Agent, AgentConfig, Health};
        use crate::dataplane::fake::FakeDataplane;
        use crate::ledger::LedgerStore;
        use crate::reconcile::Reconciler;
        use std::fmt::Write;

        const N: usize = 5000;
        let mut yaml = String::from(
            "apiVersion: v1\nkind: Node\nmetadata: {name: n1, labels: {lvs: director}}\nstatus: {addresses: [{type: InternalIP, address: 192.0.2.10}]}\n",
        );
        for i in 0..N {
            write!(
                yaml,
                "---\napiVersion: lvs.lvs-operator.io/v1alpha1\nkind: VirtualService\nmetadata: {{name: vs-{i:05}, namespace: report-bounded, generation: 1}}\nspec: {{address: 10.{}.{}.1, port: 80, directors: {{nodeSelector: {{matchLabels: {{lvs: director}}}}}}, realServerSelector: {{matchLabels: {{app: vs-{i:05}}}}}}}\n",
                i / 256,
                i % 256
            )
            .unwrap();
        }
        let mut m = lvs_api::manifest::ManifestSet::default();
        m.extend(lvs_api::manifest::parse(&yaml).unwrap());
        let snapshot = crate::source::Snapshot {
            virtual_services: m.virtual_services,
            real_servers: m.real_servers,
            nodes: m.nodes,
            node_profiles: m.node_profiles,
            origin: "test".into(),
        };
        let mut fake = FakeDataplane::new();
        fake.ipvs_available = false;
        let (mut agent, rx) = Agent::new(
            Reconciler::new(fake, LedgerStore::in_memory()).unwrap(),
            AgentConfig {
                node_name: "n1".into(),
                resync_interval: Duration::from_secs(30),
                resync_max_share: 100,
                node_ips: vec![],
                vip_roles: Default::default(),
                vip_lifetime: None,
                live_interval: None,
            },
            Arc::new(Metrics::default()),
            Arc::new(Health::new()),
        );
        let report = agent.sync(&snapshot, true);
        assert!(report.errors.len() >= N, "{} errors", report.errors.len());
        let st = lvsnode_status(&rx.borrow()).unwrap();
        let bytes = serde_json::to_vec(&st).unwrap().len();
        assert!(
            bytes < 256 * 1024,
            "the LvsNode status of {N} services failing for one node-level reason is {bytes} bytes, expected under 256 KiB"
        );
        assert_eq!(st.error_count as usize, N);
        assert_eq!(st.programmed_count, 0);
        let json = serde_json::to_string(&st).unwrap();
        assert_eq!(
            json.matches("IPVS is not available").count(),
            1,
            "the node-level error once: {}",
            &json[..json.len().min(2000)]
        );
    }

    /// A director under traffic: new counters every second for two
    /// minutes. Writes that differ only in counters come at most once per
    /// counters interval; a real change goes out at once, with the counters
    /// of the moment riding along.
    #[test]
    fn counters_alone_are_written_at_most_once_per_interval() {
        let t0 = Instant::now();
        let every = COUNTERS_INTERVAL;
        let mut last: Option<Written> = None;
        let mut writes: Vec<(Duration, i64)> = Vec::new();
        for sec in 0..120u64 {
            let now = t0 + Duration::from_secs(sec);
            // The generation moves on once, at 47 s.
            let generation = if sec >= 47 { 2 } else { 1 };
            let mut st = status(1000.0, vec![svc("ns/a", generation, "")]);
            st.live.insert(
                "ns/a".into(),
                crate::report::LiveState {
                    counters: lvs_api::TrafficCounters {
                        connections: sec * 7,
                        ..Default::default()
                    },
                    time: format!("t{sec}"),
                    table_hash: "00".into(),
                },
            );
            let new = lvsnode_status(&st).unwrap();
            assert_eq!(
                new.services[0].counters.as_ref().map(|c| c.connections),
                Some(sec * 7)
            );
            let at = write_at(last.as_ref(), &new, now, REFRESH, DESTINATIONS_GAP, every);
            if at.is_some_and(|at| at <= now) {
                writes.push((now - t0, generation));
                last = Some(Written {
                    status: new,
                    at: now,
                });
            }
        }
        let gaps: Vec<Duration> = writes.windows(2).map(|w| w[1].0 - w[0].0).collect();
        let changed_at = writes
            .iter()
            .position(|(_, g)| *g == 2)
            .expect("the new generation is written");
        assert_eq!(
            writes[changed_at].0,
            Duration::from_secs(47),
            "a real change is written at once: {writes:?}"
        );
        for (i, g) in gaps.iter().enumerate() {
            if i + 1 != changed_at {
                assert!(*g >= every, "writes {writes:?}: gap {g:?} below {every:?}");
            }
        }
        // And the bound is a bound, not a stop: about one write per interval.
        assert!(writes.len() >= 12, "{writes:?}");
        // At rest (the same counters), nothing is written.
        let rest = last.unwrap();
        let same = rest.status.clone();
        assert_eq!(
            write_at(
                Some(&rest),
                &same,
                rest.at + every * 3,
                REFRESH,
                DESTINATIONS_GAP,
                every
            ),
            None
        );
    }

    #[test]
    fn writes_only_on_change_or_after_the_refresh_interval() {
        let t0 = Instant::now();
        let r = REFRESH;
        let a = lvsnode_status(&status(1000.0, vec![svc("ns/a", 1, "")])).unwrap();
        assert!(needs_write(None, &a, t0, r), "first report");
        let last = Written {
            status: a.clone(),
            at: t0,
        };
        // A resync 30 s later with the same content: no write.
        let later = lvsnode_status(&status(1030.0, vec![svc("ns/a", 1, "")])).unwrap();
        assert!(!needs_write(
            Some(&last),
            &later,
            t0 + Duration::from_secs(30),
            r
        ));
        // The same resync a refresh interval later: the sync time is
        // refreshed.
        assert!(needs_write(Some(&last), &later, t0 + r, r));
        // Same time, same content, however late: nothing to say.
        assert!(!needs_write(Some(&last), &a, t0 + r * 10, r));
        // A new generation, an error, a new role, a new service: at once.
        let changes = [
            vec![svc("ns/a", 2, "")],
            vec![svc("ns/a", 1, "IPVS is not available")],
            vec![ServiceReport {
                roles: vec!["dr-realserver".into()],
                ..svc("ns/a", 1, "")
            }],
            vec![svc("ns/a", 1, ""), svc("ns/b", 1, "")],
            vec![],
        ];
        for c in changes {
            let new = lvsnode_status(&status(1001.0, c.clone())).unwrap();
            assert!(
                needs_write(Some(&last), &new, t0 + Duration::from_millis(10), r),
                "{c:?}"
            );
        }
        // Only a destination's state changes (no sync error): written too,
        // with the director's counts.
        let mut st = status(1001.0, vec![svc("ns/a", 1, "")]);
        let mut d = crate::report::DestinationStates::new(3);
        d.entries.push(lvs_api::DestinationReport {
            destination: "10.0.0.11:80".into(),
            state: lvs_api::DestinationState::Failing,
            ..Default::default()
        });
        d.finish();
        st.destinations.insert("ns/a".into(), d);
        let new = lvsnode_status(&st).unwrap();
        assert_eq!(
            (new.services[0].healthy, new.services[0].total),
            (Some(2), Some(3))
        );
        assert_eq!(new.services[0].destinations.len(), 1);
        assert!(needs_write(
            Some(&last),
            &new,
            t0 + Duration::from_millis(10),
            r
        ));
        // ... but no sooner than DESTINATIONS_GAP after the last write,
        // while anything else goes out at once.
        let gap = DESTINATIONS_GAP;
        let soon = t0 + Duration::from_millis(10);
        assert_eq!(
            write_at(Some(&last), &new, soon, r, gap, gap),
            Some(t0 + gap)
        );
        assert_eq!(
            write_at(Some(&last), &new, t0 + gap * 2, r, gap, gap),
            Some(t0 + gap * 2)
        );
        let mut regen = st.clone();
        regen.reports[0].generation = Some(2);
        let regen = lvsnode_status(&regen).unwrap();
        assert_eq!(write_at(Some(&last), &regen, soon, r, gap, gap), Some(soon));
        assert_eq!(write_at(None, &new, soon, r, gap, gap), Some(soon));
        assert_eq!(write_at(Some(&last), &later, soon, r, gap, gap), None);
    }
}

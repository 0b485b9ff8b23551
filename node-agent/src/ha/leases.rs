//! The Kubernetes side of the election: this node's heartbeat Lease, the
//! VIP Leases, the direct probes of other directors, and the loop that
//! feeds them to [`super::election::decide`] and hands the roles won to the
//! sync loop.
//!
//! Every Lease it touches carries [`PURPOSE_LABEL`]=[`PURPOSE`], so RBAC and
//! admission can confine the agents to them. Freshness is judged with this
//! observer's clock (as client-go does): a heartbeat is expired when its
//! renewTime has not changed for longer than the lease duration.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use super::HaAnswer;
use super::election::{self, LeaseWrite, Observed, ProbeAnswer, Role, VipLease, WriteKind};
use crate::agent::AgentStatus;
use crate::quiet::Repeated;
use crate::source::Event;

pub const PURPOSE_LABEL: &str = "lvs.lvs-operator.io/purpose";
pub const PURPOSE: &str = "director-ha";
/// The annotation of a VIP Lease naming its VIP.
pub const VIP_ANNOTATION: &str = "lvs.lvs-operator.io/vip";

/// The election's settings.
#[derive(Debug, Clone)]
pub struct HaSettings {
    pub node: String,
    pub namespace: String,
    pub lease_duration: Duration,
    pub renew_interval: Duration,
    pub probe_timeout: Duration,
    /// How long a node must have been live without a break before VIPs it
    /// prefers are handed back to it (zero: at once).
    pub preempt_delay: Duration,
    /// The port of the other agents' HTTP server (`GET /ha`).
    pub agent_port: u16,
}

/// The name of a node's heartbeat Lease.
pub fn heartbeat_name(node: &str) -> String {
    format!("lvs-node-{node}")
}

/// The name of a VIP's Lease: `lvs-vip-` and the address with `.` and `:`
/// replaced by `-`.
pub fn vip_lease_name(vip: IpAddr) -> String {
    format!("lvs-vip-{}", vip.to_string().replace(['.', ':'], "-"))
}

fn meta(name: String, annotations: Option<BTreeMap<String, String>>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        labels: Some(BTreeMap::from([(
            PURPOSE_LABEL.to_string(),
            PURPOSE.to_string(),
        )])),
        annotations,
        ..Default::default()
    }
}

/// The heartbeat Lease, renewed now.
pub fn heartbeat(existing: Option<&Lease>, s: &HaSettings, now: Timestamp) -> Lease {
    let mut l = existing.cloned().unwrap_or_else(|| Lease {
        metadata: meta(heartbeat_name(&s.node), None),
        spec: None,
    });
    let seconds = i32::try_from(s.lease_duration.as_millis().div_ceil(1000)).unwrap_or(i32::MAX);
    let spec = l.spec.get_or_insert_with(LeaseSpec::default);
    spec.holder_identity = Some(s.node.clone());
    spec.lease_duration_seconds = Some(seconds.max(1));
    spec.renew_time = Some(MicroTime(now));
    l
}

/// The VIP Lease after `w`, from the version read (`None`: a new one).
pub fn vip_lease(existing: Option<&Lease>, w: &LeaseWrite, now: Timestamp) -> Lease {
    let mut l = existing.cloned().unwrap_or_else(|| Lease {
        metadata: meta(
            vip_lease_name(w.vip),
            Some(BTreeMap::from([(
                VIP_ANNOTATION.to_string(),
                w.vip.to_string(),
            )])),
        ),
        spec: None,
    });
    let spec = l.spec.get_or_insert_with(LeaseSpec::default);
    spec.holder_identity = Some(w.holder.clone());
    spec.lease_transitions = Some(w.transitions);
    spec.acquire_time = Some(MicroTime(now));
    spec.renew_time = Some(MicroTime(now));
    l
}

/// When each node's heartbeat was last seen to change, on this clock, and
/// since when it has been fresh without a break.
#[derive(Debug, Default)]
pub struct Freshness {
    seen: BTreeMap<String, Beat>,
}

#[derive(Debug, Clone)]
struct Beat {
    renew: Option<MicroTime>,
    changed: Instant,
    live_since: Instant,
}

/// What [`Freshness::observe`] concludes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Liveness {
    /// Nodes whose renewTime changed within the lease duration.
    pub live: BTreeSet<String>,
    /// Live nodes that have been live without a break for the preempt delay.
    pub settled: BTreeSet<String>,
    /// The next instant one of these sets changes by the clock alone (a
    /// heartbeat expires, a node becomes settled): the election looks again
    /// then, instead of at its next tick.
    pub next_change: Option<Instant>,
}

impl Freshness {
    /// Takes the heartbeats read now. A heartbeat that changes after it had
    /// expired starts a new live run (a flapping node is not settled).
    pub fn observe(
        &mut self,
        beats: impl IntoIterator<Item = (String, Option<MicroTime>)>,
        now: Instant,
        duration: Duration,
        preempt_delay: Duration,
    ) -> Liveness {
        let mut listed = BTreeSet::new();
        for (node, renew) in beats {
            listed.insert(node.clone());
            match self.seen.get_mut(&node) {
                Some(b) if b.renew == renew => {}
                Some(b) => {
                    if now.saturating_duration_since(b.changed) > duration {
                        b.live_since = now;
                    }
                    b.renew = renew;
                    b.changed = now;
                }
                None => {
                    self.seen.insert(
                        node,
                        Beat {
                            renew,
                            changed: now,
                            live_since: now,
                        },
                    );
                }
            }
        }
        self.seen.retain(|n, _| listed.contains(n));
        let mut out = Liveness::default();
        // Expired strictly after `duration`: look again just past it.
        let tick = Duration::from_millis(1);
        for (n, b) in &self.seen {
            if now.saturating_duration_since(b.changed) > duration {
                continue;
            }
            out.live.insert(n.clone());
            let mut next = b.changed + duration + tick;
            if now.saturating_duration_since(b.live_since) >= preempt_delay {
                out.settled.insert(n.clone());
            } else {
                next = next.min(b.live_since + preempt_delay);
            }
            out.next_change = Some(out.next_change.map_or(next, |t: Instant| t.min(next)));
        }
        out
    }
}

/// `GET http://addr/ha`: the VIPs the node says it holds, or unreachable.
///
/// The connection must be made within `connect` (a node that is down or
/// off the network makes none; a dead agent's node refuses it at once); a
/// node that accepted it is up, since its kernel answers, and a busy agent
/// on it gets `answer` to reply. So a slow agent is not mistaken for a dead
/// one, without slowing the takeover from a node that is gone.
pub async fn probe(addr: SocketAddr, connect: Duration, answer: Duration) -> ProbeAnswer {
    let Ok(Ok(mut s)) = tokio::time::timeout(connect, tokio::net::TcpStream::connect(addr)).await
    else {
        return ProbeAnswer::Unreachable;
    };
    let ask = async {
        s.write_all(
            format!("GET /ha HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
        let mut buf = Vec::new();
        (&mut s).take(64 * 1024).read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    match tokio::time::timeout(answer, ask).await {
        Ok(Ok(buf)) => parse_probe(&buf),
        _ => ProbeAnswer::Unreachable,
    }
}

/// The answer in an HTTP/1.1 response to `GET /ha`.
pub fn parse_probe(buf: &[u8]) -> ProbeAnswer {
    let text = String::from_utf8_lossy(buf);
    let ok = text.starts_with("HTTP/1.1 200") || text.starts_with("HTTP/1.0 200");
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b);
    match (ok, body.map(serde_json::from_str::<HaAnswer>)) {
        (true, Some(Ok(a))) => ProbeAnswer::Active(a.active.into_iter().collect()),
        _ => ProbeAnswer::Unreachable,
    }
}

/// Runs the election until the task is dropped.
///
/// The Leases come from a watch (a reflector store of the Leases with the
/// purpose label), so a round costs no request: it runs whenever a Lease
/// changes, the plan's candidates change, the heartbeat task reports, a
/// heartbeat is due to expire, or at the latest every renew interval. The
/// heartbeat is renewed by a task of its own, so a slow API server never
/// holds up a round. The roles go to the sync loop whenever they change.
pub async fn run(
    client: kube::Client,
    s: HaSettings,
    mut status: watch::Receiver<AgentStatus>,
    tx: mpsc::Sender<Event>,
) {
    let api: Api<Lease> = Api::namespaced(client, &s.namespace);
    let selector = format!("{PURPOSE_LABEL}={PURPOSE}");
    let (store, writer) = reflector::store::<Lease>();
    let stream = watcher(api.clone(), watcher::Config::default().labels(&selector))
        .backoff(crate::k8s::source::reconnect_backoff())
        .reflect(writer);
    let mut stream = std::pin::pin!(stream);
    let (beat_tx, mut beat_ok) = watch::channel(false);
    let heart = tokio::spawn(renew_heartbeat(api.clone(), s.clone(), beat_tx));
    let _heart = AbortOnDrop(heart);

    let mut fresh = Freshness::default();
    let mut roles: BTreeMap<IpAddr, Role> = BTreeMap::new();
    let mut sent: Option<super::Elected> = None;
    let mut written = Overlay::default();
    // VIP -> the Lease version a write of ours lost a conflict on.
    let mut lost: BTreeMap<IpAddr, String> = BTreeMap::new();
    let mut listed = false;
    let mut watch_log = Repeated::default();
    let mut live_before: BTreeSet<String> = BTreeSet::new();
    let mut next_change: Option<Instant> = None;
    let mut tick = tokio::time::interval(s.renew_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let wake = next_change.map(tokio::time::Instant::from_std);
        tokio::select! {
            _ = tick.tick() => {}
            r = status.changed() => if r.is_err() { return },
            r = beat_ok.changed() => if r.is_err() { return },
            () = sleep_until_some(wake) => {}
            ev = stream.next() => {
                let Some(ev) = ev else { return };
                take_watch_item(ev, &mut listed, &mut watch_log);
            }
        }
        // Everything the watch already delivered goes into this round: a
        // round per event would fall behind whenever rounds are slower
        // than the events come (a slow node, a slow API server), and a
        // store that lags shows live heartbeats as expired.
        loop {
            match stream.next().now_or_never() {
                Some(Some(ev)) => take_watch_item(ev, &mut listed, &mut watch_log),
                Some(None) => return,
                None => break,
            }
        }
        if !listed {
            continue;
        }
        let (candidates, node_ips) = {
            let st = status.borrow();
            (st.ha_candidates.clone(), st.node_ips.clone())
        };
        let leases = written.view(store.state());
        let by_name: BTreeMap<String, &Lease> = leases
            .iter()
            .filter_map(|l| l.metadata.name.clone().map(|n| (n, l)))
            .collect();
        let api_ok = *beat_ok.borrow() && !watch_log.failing();
        let beats = leases.iter().filter_map(|l| {
            let n = l.metadata.name.as_deref()?.strip_prefix("lvs-node-")?;
            Some((
                n.to_string(),
                l.spec.as_ref().and_then(|s| s.renew_time.clone()),
            ))
        });
        let seen_at = Instant::now();
        let Liveness {
            live,
            settled,
            next_change: next,
        } = fresh.observe(beats, seen_at, s.lease_duration, s.preempt_delay);
        next_change = next;
        for gone in live_before.difference(&live) {
            tracing::info!(node = %gone, lease_duration_ms = s.lease_duration.as_millis() as u64, "director heartbeat expired");
        }
        for back in live.difference(&live_before) {
            tracing::info!(node = %back, "director heartbeat fresh");
        }
        live_before = live.clone();
        // This node's own heartbeat, seen through the watch, proves the view
        // current: when its renewals do not show up within the lease
        // duration (a slow API server, a lagging watch), the others'
        // heartbeats look expired for the same reason, so this node writes
        // nothing (no takeover on a stale view) until they show up again.
        let api_ok = api_ok && live.contains(&s.node);
        let vip_leases: BTreeMap<IpAddr, VipLease> =
            leases.iter().filter_map(vip_lease_of).collect();
        let mut seen = Observed {
            candidates,
            live,
            settled,
            leases: vip_leases,
            probes: BTreeMap::new(),
            api_ok,
        };
        let settling = election::settling(&s.node, &seen);
        let mut d = election::decide(&s.node, &seen, &roles);
        if !d.probe.is_empty() {
            // Fresh answers only: a probe is sent after the heartbeat
            // expired, and its answer is good for this round alone.
            let asked = d.probe.iter().map(|n| {
                let ip = node_ips.get(n).and_then(|ips| ips.first()).copied();
                let timeout = s.probe_timeout;
                // A holder that took the connection is up: it gets a few
                // lease durations to answer (a hung agent, not a gone node).
                let answer = s.lease_duration * 2;
                let port = s.agent_port;
                async move {
                    let t = Instant::now();
                    let a = match ip {
                        Some(ip) => probe(SocketAddr::new(ip, port), timeout, answer).await,
                        None => ProbeAnswer::Unreachable,
                    };
                    tracing::info!(node = %n, answer = ?a, elapsed_ms = t.elapsed().as_millis() as u64, "probed a holder whose heartbeat expired");
                    (n.clone(), a)
                }
            });
            seen.probes = futures::future::join_all(asked).await.into_iter().collect();
            d = election::decide(&s.node, &seen, &roles);
        }
        // A write on a version that already lost a conflict would lose
        // again: wait until the watch shows the newer version.
        lost.retain(|vip, rv| {
            seen.leases
                .get(vip)
                .and_then(|l| l.resource_version.as_ref())
                == Some(rv)
        });
        d.writes.retain(|w| {
            w.resource_version.is_none() || lost.get(&w.vip) != w.resource_version.as_ref()
        });
        let sent_writes = d.writes.iter().map(|w| {
            let name = vip_lease_name(w.vip);
            let new = vip_lease(by_name.get(&name).copied(), w, Timestamp::now());
            let api = &api;
            async move {
                let req = async {
                    match &w.resource_version {
                        Some(_) => api.replace(&name, &PostParams::default(), &new).await,
                        None => api.create(&PostParams::default(), &new).await,
                    }
                };
                // A write that outlasts the lease is as good as lost: the
                // next round decides again on what it then sees.
                let r = tokio::time::timeout(s.lease_duration, req).await;
                (w, name, r)
            }
        });
        for (w, name, r) in futures::future::join_all(sent_writes).await {
            match r {
                Ok(Ok(stored)) => {
                    tracing::info!(vip = %w.vip, holder = %w.holder, kind = ?w.kind, "VIP Lease written");
                    written.wrote(&name, w.resource_version.clone(), stored);
                    if w.kind == WriteKind::Takeover {
                        d.roles.insert(w.vip, Role::Active);
                    } else {
                        d.roles.insert(w.vip, Role::Standby);
                    }
                }
                // A conflict: someone else wrote first; the next round reads it.
                Ok(Err(e)) => {
                    tracing::info!(vip = %w.vip, error = %crate::k8s::describe(&e), "VIP Lease write lost");
                    if let Some(rv) = &w.resource_version {
                        lost.insert(w.vip, rv.clone());
                    }
                }
                Err(_) => tracing::info!(vip = %w.vip, "VIP Lease write timed out"),
            }
        }
        roles = d.roles;
        let elected = super::Elected {
            roles: roles.clone(),
            settling,
        };
        if sent.as_ref() != Some(&elected) {
            if tx.send(Event::Roles(elected.clone())).is_err() {
                return;
            }
            sent = Some(elected);
        }
    }
}

/// Takes one item of the Lease watch (the reflector already stored it).
fn take_watch_item(
    ev: Result<watcher::Event<Lease>, watcher::Error>,
    listed: &mut bool,
    log: &mut Repeated,
) {
    match ev {
        Ok(ev) => {
            if let Some(d) = log.ok(Instant::now()) {
                tracing::info!(failed_for_s = d.as_secs(), "the HA Lease watch works again");
            }
            if matches!(ev, watcher::Event::InitDone) {
                *listed = true;
            }
        }
        Err(e) => {
            if let Some(f) = log.fail(Instant::now()) {
                tracing::warn!(
                    error = %e,
                    failing_for_s = f.for_.as_secs(),
                    not_logged = f.unlogged,
                    "the HA Lease watch fails; roles stay as they are until it works again"
                );
            }
        }
    }
}

/// Aborts the task when dropped (when the election task is dropped).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What a VIP Lease says, if it is one.
fn vip_lease_of(l: &Lease) -> Option<(IpAddr, VipLease)> {
    let vip: IpAddr = l
        .metadata
        .annotations
        .as_ref()?
        .get(VIP_ANNOTATION)?
        .parse()
        .ok()?;
    let spec = l.spec.as_ref();
    Some((
        vip,
        VipLease {
            holder: spec
                .and_then(|s| s.holder_identity.clone())
                .filter(|h| !h.is_empty()),
            resource_version: l.metadata.resource_version.clone(),
            transitions: spec.and_then(|s| s.lease_transitions).unwrap_or(0),
        },
    ))
}

/// The VIP Leases this node wrote and the watch has not delivered yet: a
/// round right after a takeover must see this node as the holder, not the
/// version it replaced (that would undo the role until the watch caught
/// up). An entry stands while the store still shows the version the write
/// replaced; once the store moved on (to this write or a later one, the
/// watch delivers in order) the store is at least as new.
#[derive(Debug, Default)]
pub struct Overlay {
    wrote: BTreeMap<String, (Option<String>, Lease)>,
}

impl Overlay {
    /// Records a successful write of Lease `name` over `replaced` (the
    /// resourceVersion read; `None`: created).
    pub fn wrote(&mut self, name: &str, replaced: Option<String>, stored: Lease) {
        self.wrote.insert(name.to_string(), (replaced, stored));
    }

    /// The store's Leases with this node's newer writes in place.
    pub fn view(&mut self, store: Vec<std::sync::Arc<Lease>>) -> Vec<Lease> {
        let mut out: Vec<Lease> = store.iter().map(|l| (**l).clone()).collect();
        self.wrote.retain(|name, (replaced, _)| {
            let now = out
                .iter()
                .find(|l| l.metadata.name.as_deref() == Some(name.as_str()))
                .map(|l| l.metadata.resource_version.clone());
            match replaced {
                // Created: it stands while the store has no such Lease.
                None => now.is_none(),
                Some(r) => now == Some(Some(r.clone())),
            }
        });
        for (name, (_, l)) in &self.wrote {
            out.retain(|x| x.metadata.name.as_deref() != Some(name.as_str()));
            out.push(l.clone());
        }
        out
    }
}

/// Renews this node's heartbeat Lease every renew interval (a merge patch,
/// so it needs no version read first; created when missing) and reports
/// whether the last renewal succeeded. Failures while the API server is
/// away are logged once, then at most once a minute, and the recovery once.
async fn renew_heartbeat(api: Api<Lease>, s: HaSettings, ok: watch::Sender<bool>) {
    let name = heartbeat_name(&s.node);
    let mut tick = tokio::time::interval(s.renew_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut log = Repeated::default();
    loop {
        tick.tick().await;
        let beat = heartbeat(None, &s, Timestamp::now());
        let req = async {
            let patch = Patch::Merge(&beat);
            match api.patch(&name, &PatchParams::default(), &patch).await {
                Err(kube::Error::Api(e)) if e.is_not_found() => {
                    api.create(&PostParams::default(), &beat).await
                }
                other => other,
            }
        };
        // A renewal that hangs (a blackholed API server) counts as failed
        // after a few lease durations; a slow one that succeeds still counts:
        // it only gates this node's own writes.
        let limit = s.lease_duration * 3;
        let r = match tokio::time::timeout(limit, req).await {
            Ok(r) => r.map(drop).map_err(|e| crate::k8s::describe(&e)),
            Err(_) => Err(format!("no answer within {} ms", limit.as_millis())),
        };
        let now = Instant::now();
        match &r {
            Ok(()) => {
                if let Some(d) = log.ok(now) {
                    tracing::info!(
                        failed_for_s = d.as_secs(),
                        "API server reachable again: heartbeat renewed"
                    );
                }
            }
            Err(e) => {
                if let Some(f) = log.fail(now) {
                    tracing::warn!(
                        error = %e,
                        failing_for_s = f.for_.as_secs(),
                        not_logged = f.unlogged,
                        "API server unreachable: heartbeat not renewed; this node keeps its roles and takes over nothing"
                    );
                }
            }
        }
        ok.send_if_modified(|v| std::mem::replace(v, r.is_ok()) != r.is_ok());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_names_and_labels() {
        assert_eq!(
            vip_lease_name("10.0.0.10".parse().unwrap()),
            "lvs-vip-10-0-0-10"
        );
        assert_eq!(
            vip_lease_name("fd00::10".parse().unwrap()),
            "lvs-vip-fd00--10"
        );
        let s = HaSettings {
            node: "dir1".into(),
            namespace: "lvs".into(),
            lease_duration: Duration::from_millis(1500),
            renew_interval: Duration::from_millis(500),
            probe_timeout: Duration::from_millis(300),
            preempt_delay: Duration::from_secs(10),
            agent_port: 9477,
        };
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let b = heartbeat(None, &s, now);
        assert_eq!(b.metadata.name.as_deref(), Some("lvs-node-dir1"));
        assert_eq!(b.metadata.labels.as_ref().unwrap()[PURPOSE_LABEL], PURPOSE);
        let spec = b.spec.unwrap();
        assert_eq!(spec.lease_duration_seconds, Some(2), "rounded up");
        assert_eq!(spec.renew_time, Some(MicroTime(now)));
        let w = LeaseWrite {
            vip: "10.0.0.10".parse().unwrap(),
            holder: "dir2".into(),
            resource_version: None,
            transitions: 1,
            kind: WriteKind::Takeover,
        };
        let v = vip_lease(None, &w, now);
        assert_eq!(
            v.metadata.annotations.as_ref().unwrap()[VIP_ANNOTATION],
            "10.0.0.10"
        );
        assert_eq!(v.metadata.labels.as_ref().unwrap()[PURPOSE_LABEL], PURPOSE);
        assert_eq!(
            v.spec.as_ref().unwrap().holder_identity.as_deref(),
            Some("dir2")
        );
    }

    #[test]
    fn a_heartbeat_expires_on_the_observers_clock() {
        let mut f = Freshness::default();
        let t0 = Instant::now();
        let d = Duration::from_secs(2);
        let at = |s| Some(MicroTime(Timestamp::from_second(s).unwrap()));
        let l = f.observe(
            [("a".to_string(), at(100)), ("b".to_string(), at(100))],
            t0,
            d,
            Duration::ZERO,
        );
        assert_eq!(l.live.len(), 2);
        assert_eq!(l.live, l.settled, "no preempt delay");
        assert_eq!(
            l.next_change,
            Some(t0 + d + Duration::from_millis(1)),
            "looks again right after the expiry"
        );
        // a renews, b does not: only a stays live past the duration, whatever
        // the renewTime values say about the other node's clock.
        let l = f.observe(
            [("a".to_string(), at(101)), ("b".to_string(), at(100))],
            t0 + Duration::from_secs(3),
            d,
            Duration::ZERO,
        );
        assert_eq!(l.live, BTreeSet::from(["a".to_string()]));
    }

    #[test]
    fn a_node_is_settled_after_the_preempt_delay_and_a_flap_starts_it_again() {
        let mut f = Freshness::default();
        let t0 = Instant::now();
        let (d, delay) = (Duration::from_secs(6), Duration::from_secs(10));
        let at = |s| Some(MicroTime(Timestamp::from_second(s).unwrap()));
        let ms = |n| t0 + Duration::from_millis(n);
        // (time, renewTime of b, live, settled)
        let rows = [
            (0, 1, true, false),
            (5_000, 2, true, false),
            (9_900, 3, true, false),
            (10_000, 4, true, true),
            // b stops renewing: expired after the lease duration.
            (17_000, 4, false, false),
            // b is back: a new live run, the delay starts again.
            (18_000, 5, true, false),
            (23_000, 6, true, false),
            (28_000, 7, true, true),
        ];
        for (t, renew, live, settled) in rows {
            let l = f.observe([("b".to_string(), at(renew))], ms(t), d, delay);
            assert_eq!(l.live.contains("b"), live, "at {t} ms");
            assert_eq!(l.settled.contains("b"), settled, "at {t} ms");
            if live && !settled {
                assert!(l.next_change.unwrap() <= ms(t) + d + Duration::from_millis(1));
            }
        }
    }

    #[test]
    fn the_overlay_shows_this_nodes_writes_until_the_watch_delivers_them() {
        let lease = |rv: &str, holder: &str| Lease {
            metadata: ObjectMeta {
                name: Some("lvs-vip-10-0-0-10".into()),
                resource_version: Some(rv.into()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                ..Default::default()
            }),
        };
        let holder = |v: &[Lease]| v[0].spec.as_ref().unwrap().holder_identity.clone().unwrap();
        let mut o = Overlay::default();
        o.wrote("lvs-vip-10-0-0-10", Some("7".into()), lease("8", "b"));
        // The store still has the version replaced: the write shows.
        let v = o.view(vec![std::sync::Arc::new(lease("7", "a"))]);
        assert_eq!((v.len(), holder(&v)), (1, "b".to_string()));
        // The store moved on (to a later write of someone else): it wins,
        // and the overlay entry is gone for good.
        let v = o.view(vec![std::sync::Arc::new(lease("9", "c"))]);
        assert_eq!(holder(&v), "c");
        let v = o.view(vec![std::sync::Arc::new(lease("7", "a"))]);
        assert_eq!(holder(&v), "a");
        // A created Lease shows until the store has it.
        o.wrote("lvs-vip-10-0-0-10", None, lease("1", "b"));
        assert_eq!(holder(&o.view(vec![])), "b");
        assert_eq!(
            holder(&o.view(vec![std::sync::Arc::new(lease("1", "b"))])),
            "b"
        );
        assert!(o.view(vec![]).is_empty());
    }

    #[test]
    fn probe_answers_are_parsed_and_anything_else_is_unreachable() {
        let ok = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{\"node\":\"a\",\"active\":[\"10.0.0.10\"],\"standby\":[]}\n";
        assert_eq!(
            parse_probe(ok),
            ProbeAnswer::Active(BTreeSet::from(["10.0.0.10".parse().unwrap()]))
        );
        assert_eq!(
            parse_probe(b"HTTP/1.1 503 busy\r\n\r\nbusy"),
            ProbeAnswer::Unreachable
        );
        assert_eq!(parse_probe(b""), ProbeAnswer::Unreachable);
    }

    #[tokio::test]
    async fn a_probe_of_a_closed_port_is_unreachable_within_the_timeout() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let t = Instant::now();
        assert_eq!(
            probe(addr, Duration::from_millis(300), Duration::from_secs(2)).await,
            ProbeAnswer::Unreachable
        );
        assert!(t.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn a_slow_agent_that_accepted_the_probe_gets_time_to_answer() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut c, _) = l.accept().await.unwrap();
            let mut req = [0u8; 256];
            let _ = c.read(&mut req).await.unwrap();
            // Longer than the connect timeout, shorter than the answer's.
            tokio::time::sleep(Duration::from_millis(500)).await;
            c.write_all(b"HTTP/1.1 200 OK\r\n\r\n{\"node\":\"a\",\"active\":[\"10.0.0.10\"],\"standby\":[]}")
                .await
                .unwrap();
        });
        let a = probe(addr, Duration::from_millis(300), Duration::from_secs(5)).await;
        assert_eq!(
            a,
            ProbeAnswer::Active(BTreeSet::from(["10.0.0.10".parse().unwrap()]))
        );
        server.await.unwrap();
        // No answer at all within the answer timeout: unreachable.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let _hold = tokio::spawn(async move {
            let (_c, _) = l.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(10)).await;
        });
        let t = Instant::now();
        let a = probe(addr, Duration::from_millis(300), Duration::from_millis(400)).await;
        assert_eq!(a, ProbeAnswer::Unreachable);
        assert!(t.elapsed() < Duration::from_secs(3));
    }
}

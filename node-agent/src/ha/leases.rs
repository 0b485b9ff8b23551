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

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use super::HaAnswer;
use super::election::{self, LeaseWrite, Observed, ProbeAnswer, Role, VipLease, WriteKind};
use crate::agent::AgentStatus;
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

/// When each node's heartbeat was last seen to change, on this clock.
#[derive(Debug, Default)]
pub struct Freshness {
    seen: BTreeMap<String, (Option<MicroTime>, Instant)>,
}

impl Freshness {
    /// Takes the heartbeats listed now; returns the nodes alive: those whose
    /// renewTime changed within `duration` of `now`.
    pub fn observe(
        &mut self,
        beats: impl IntoIterator<Item = (String, Option<MicroTime>)>,
        now: Instant,
        duration: Duration,
    ) -> BTreeSet<String> {
        let mut listed = BTreeSet::new();
        for (node, renew) in beats {
            listed.insert(node.clone());
            match self.seen.get(&node) {
                Some((r, _)) if *r == renew => {}
                _ => {
                    self.seen.insert(node, (renew, now));
                }
            }
        }
        self.seen.retain(|n, _| listed.contains(n));
        self.seen
            .iter()
            .filter(|(_, (_, at))| now.saturating_duration_since(*at) <= duration)
            .map(|(n, _)| n.clone())
            .collect()
    }
}

/// `GET http://addr/ha` within `timeout`: the VIPs the node says it holds,
/// or unreachable.
pub async fn probe(addr: SocketAddr, timeout: Duration) -> ProbeAnswer {
    let ask = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(
            format!("GET /ha HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
        let mut buf = Vec::new();
        s.take(64 * 1024).read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    match tokio::time::timeout(timeout, ask).await {
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

/// Runs the election until the task is dropped: every renew interval, the
/// heartbeat, a read of the Leases, the probes needed, the decision and its
/// writes; the roles go to the sync loop whenever they change.
pub async fn run(
    client: kube::Client,
    s: HaSettings,
    mut status: watch::Receiver<AgentStatus>,
    tx: mpsc::Sender<Event>,
) {
    let api: Api<Lease> = Api::namespaced(client, &s.namespace);
    let mut fresh = Freshness::default();
    let mut roles: BTreeMap<IpAddr, Role> = BTreeMap::new();
    let mut sent: Option<BTreeMap<IpAddr, Role>> = None;
    let mut probes: BTreeMap<String, ProbeAnswer> = BTreeMap::new();
    let mut tick = tokio::time::interval(s.renew_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let selector = format!("{PURPOSE_LABEL}={PURPOSE}");
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            r = status.changed() => if r.is_err() { return },
        }
        let (candidates, node_ips) = {
            let st = status.borrow();
            (st.ha_candidates.clone(), st.node_ips.clone())
        };
        let listed = api.list(&ListParams::default().labels(&selector)).await;
        let leases = match &listed {
            Ok(l) => l.items.clone(),
            Err(e) => {
                tracing::debug!(error = %e, "listing the HA Leases failed");
                Vec::new()
            }
        };
        let by_name: BTreeMap<String, &Lease> = leases
            .iter()
            .filter_map(|l| l.metadata.name.clone().map(|n| (n, l)))
            .collect();
        // Heartbeat: renewed only while the API server answers.
        let mine = heartbeat_name(&s.node);
        let beat = heartbeat(by_name.get(&mine).copied(), &s, Timestamp::now());
        let api_ok = listed.is_ok()
            && match by_name.get(&mine) {
                Some(_) => api
                    .replace(&mine, &PostParams::default(), &beat)
                    .await
                    .is_ok(),
                None => api.create(&PostParams::default(), &beat).await.is_ok(),
            };
        let beats = leases.iter().filter_map(|l| {
            let n = l.metadata.name.as_deref()?.strip_prefix("lvs-node-")?;
            Some((
                n.to_string(),
                l.spec.as_ref().and_then(|s| s.renew_time.clone()),
            ))
        });
        let mut live = fresh.observe(beats, Instant::now(), s.lease_duration);
        if api_ok {
            live.insert(s.node.clone());
        }
        let vip_leases: BTreeMap<IpAddr, VipLease> = leases
            .iter()
            .filter_map(|l| {
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
            })
            .collect();
        // Probe answers are good for one round.
        probes.retain(|n, _| !live.contains(n));
        let seen = Observed {
            candidates,
            live,
            leases: vip_leases,
            probes: probes.clone(),
            api_ok,
        };
        let mut d = election::decide(&s.node, &seen, &roles);
        if !d.probe.is_empty() {
            for n in &d.probe {
                let Some(ip) = node_ips.get(n).and_then(|ips| ips.first()) else {
                    probes.insert(n.clone(), ProbeAnswer::Unreachable);
                    continue;
                };
                let a = probe(SocketAddr::new(*ip, s.agent_port), s.probe_timeout).await;
                probes.insert(n.clone(), a);
            }
            let seen = Observed {
                probes: probes.clone(),
                ..seen
            };
            d = election::decide(&s.node, &seen, &roles);
        }
        for w in &d.writes {
            let name = vip_lease_name(w.vip);
            let new = vip_lease(by_name.get(&name).copied(), w, Timestamp::now());
            let r = match &w.resource_version {
                Some(_) => api
                    .replace(&name, &PostParams::default(), &new)
                    .await
                    .map(drop),
                None => api.create(&PostParams::default(), &new).await.map(drop),
            };
            match r {
                Ok(()) => {
                    tracing::info!(vip = %w.vip, holder = %w.holder, kind = ?w.kind, "VIP Lease written");
                    if w.kind == WriteKind::Takeover {
                        d.roles.insert(w.vip, Role::Active);
                    } else {
                        d.roles.insert(w.vip, Role::Standby);
                    }
                }
                // A conflict: someone else wrote first; the next round reads it.
                Err(e) => tracing::debug!(vip = %w.vip, error = %e, "VIP Lease write lost"),
            }
        }
        roles = d.roles;
        if sent.as_ref() != Some(&roles) {
            if tx.send(Event::Roles(roles.clone())).is_err() {
                return;
            }
            sent = Some(roles.clone());
        }
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
        let live = f.observe(
            [("a".to_string(), at(100)), ("b".to_string(), at(100))],
            t0,
            d,
        );
        assert_eq!(live.len(), 2);
        // a renews, b does not: only a stays live past the duration, whatever
        // the renewTime values say about the other node's clock.
        let live = f.observe(
            [("a".to_string(), at(101)), ("b".to_string(), at(100))],
            t0 + Duration::from_secs(3),
            d,
        );
        assert_eq!(live, BTreeSet::from(["a".to_string()]));
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
            probe(addr, Duration::from_millis(300)).await,
            ProbeAnswer::Unreachable
        );
        assert!(t.elapsed() < Duration::from_secs(2));
    }
}

//! Leader election on a coordination.k8s.io/v1 Lease, so that two replicas
//! can run while only one writes status.
//!
//! The rules follow client-go's: a lease is free when it has no holder, and
//! expired when its record has not changed for a whole lease duration *as
//! seen by our own monotonic clock* (so clock skew between nodes does not
//! matter). Updates use the resourceVersion we read, so two candidates
//! cannot both win: the slower one gets 409 Conflict.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::error::{Error, Result};
use crate::http::{Health, LeaderRole};

/// Timing of the election.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    /// How long a holder's claim lasts without renewal.
    pub duration: Duration,
    /// How often the holder renews.
    pub renew_every: Duration,
    /// The holder gives up leadership when it could not renew for this long.
    pub renew_deadline: Duration,
    /// How often a candidate retries.
    pub retry_every: Duration,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        LeaseTiming {
            duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
            renew_deadline: Duration::from_secs(10),
            retry_every: Duration::from_secs(2),
        }
    }
}

/// What to do with the lease we just read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// There is no Lease object: create it with us as holder.
    Create,
    /// We hold it: renew.
    Renew,
    /// Nobody holds it, or the holder let it expire: take it over.
    TakeOver,
    /// Someone else holds a live lease.
    Follow {
        holder: String,
        expires_in: Duration,
    },
}

/// Decides from the lease, our identity, and how long the lease record has
/// been unchanged in our own view.
pub fn decide(lease: Option<&Lease>, me: &str, unchanged_for: Duration) -> Decision {
    let Some(lease) = lease else {
        return Decision::Create;
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.unwrap_or_default();
    if holder.is_empty() {
        return Decision::TakeOver;
    }
    if holder == me {
        return Decision::Renew;
    }
    let duration =
        Duration::from_secs(u64::try_from(spec.lease_duration_seconds.unwrap_or(0)).unwrap_or(0));
    if unchanged_for >= duration {
        Decision::TakeOver
    } else {
        Decision::Follow {
            holder,
            expires_in: duration - unchanged_for,
        }
    }
}

/// Tracks when the lease record last changed, by our monotonic clock.
#[derive(Debug, Default)]
pub struct Observer {
    last: Option<(String, Instant)>,
}

impl Observer {
    /// Records the lease as read at `now` and returns how long its record has
    /// been unchanged. A record is its holder, renew time and resourceVersion;
    /// the first observation counts as a change.
    pub fn observe(&mut self, lease: Option<&Lease>, now: Instant) -> Duration {
        let fingerprint = lease.map_or_else(String::new, |l| {
            let spec = l.spec.clone().unwrap_or_default();
            format!(
                "{}|{:?}|{}",
                spec.holder_identity.unwrap_or_default(),
                spec.renew_time.map(|t| t.0),
                l.metadata.resource_version.clone().unwrap_or_default()
            )
        });
        match &self.last {
            Some((f, since)) if *f == fingerprint => now.saturating_duration_since(*since),
            _ => {
                self.last = Some((fingerprint, now));
                Duration::ZERO
            }
        }
    }
}

fn seconds(d: Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
}

/// The lease with us as (new) holder: acquire and renew time now, transitions
/// counted when the holder changes. Keeps the resourceVersion for the
/// optimistic update.
pub fn claimed(
    existing: Option<&Lease>,
    name: &str,
    namespace: &str,
    me: &str,
    now: Timestamp,
    timing: LeaseTiming,
) -> Lease {
    let mut lease = existing.cloned().unwrap_or_else(|| Lease {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            ..Default::default()
        },
        spec: None,
    });
    let old = lease.spec.take().unwrap_or_default();
    let same_holder = old.holder_identity.as_deref() == Some(me);
    let transitions = old.lease_transitions.unwrap_or(0);
    lease.spec = Some(LeaseSpec {
        holder_identity: Some(me.to_string()),
        lease_duration_seconds: Some(seconds(timing.duration)),
        acquire_time: if same_holder {
            old.acquire_time.or(Some(MicroTime(now)))
        } else {
            Some(MicroTime(now))
        },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(if same_holder || existing.is_none() {
            transitions
        } else {
            transitions + 1
        }),
        ..old
    });
    lease
}

/// The lease given up on shutdown: no holder and a one-second duration, so
/// the next candidate takes over at once instead of waiting for expiry.
pub fn released(existing: &Lease) -> Lease {
    let mut lease = existing.clone();
    let mut spec = lease.spec.take().unwrap_or_default();
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    lease.spec = Some(spec);
    lease
}

/// One replica's side of the election.
#[derive(Debug)]
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    namespace: String,
    identity: String,
    timing: LeaseTiming,
    observer: Observer,
    health: Option<Arc<Health>>,
}

/// How holding the lease ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// Shutdown was requested; the lease was released.
    Shutdown,
    /// Another replica holds the lease, or renewal failed past the deadline.
    Lost(String),
}

impl LeaderElector {
    pub fn new(
        api: Api<Lease>,
        name: &str,
        namespace: &str,
        identity: &str,
        timing: LeaseTiming,
    ) -> Self {
        LeaderElector {
            api,
            name: name.to_string(),
            namespace: namespace.to_string(),
            identity: identity.to_string(),
            timing,
            observer: Observer::default(),
            health: None,
        }
    }

    /// Reports the loops' progress to `/healthz`.
    pub fn with_health(mut self, health: Arc<Health>) -> Self {
        self.health = Some(health);
        self
    }

    fn progress(&self, role: LeaderRole) {
        if let Some(h) = &self.health {
            h.leader_progress(role, Instant::now());
        }
    }

    fn stopped(&self) {
        if let Some(h) = &self.health {
            h.leader_stopped();
        }
    }

    /// One round, given up after `renew_deadline` so that a hung request
    /// cannot stall the loop (the holder must notice when it cannot renew).
    async fn round(&mut self) -> Result<bool> {
        let limit = self.timing.renew_deadline;
        match tokio::time::timeout(limit, self.try_acquire_or_renew()).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout {
                action: format!(
                    "leader election round on Lease {}/{}",
                    self.namespace, self.name
                ),
                after: limit,
            }),
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// One round: read, decide, write. `Ok(true)` when we hold the lease afterwards.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool> {
        let what = format!("get Lease {}/{}", self.namespace, self.name);
        let lease = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(Error::kube(what))?;
        let unchanged = self.observer.observe(lease.as_ref(), Instant::now());
        let decision = decide(lease.as_ref(), &self.identity, unchanged);
        let now = Timestamp::now();
        let new = claimed(
            lease.as_ref(),
            &self.name,
            &self.namespace,
            &self.identity,
            now,
            self.timing,
        );
        let pp = PostParams {
            field_manager: Some(crate::FIELD_MANAGER.into()),
            ..Default::default()
        };
        let result = match &decision {
            Decision::Follow { holder, expires_in } => {
                debug!(holder, expires_in = ?expires_in, "lease held by another replica");
                return Ok(false);
            }
            Decision::Create => self.api.create(&pp, &new).await,
            Decision::Renew | Decision::TakeOver => self.api.replace(&self.name, &pp, &new).await,
        };
        match result {
            Ok(written) => {
                self.observer.observe(Some(&written), Instant::now());
                if decision != Decision::Renew {
                    info!(identity = %self.identity, lease = %self.name, ?decision, "acquired leadership");
                }
                Ok(true)
            }
            // Someone else wrote first: not ours this round.
            Err(kube::Error::Api(s)) if s.code == 409 => {
                debug!(?decision, "lost the race for the lease");
                Ok(false)
            }
            Err(e) => Err(Error::Kube {
                action: format!("write Lease {}/{}", self.namespace, self.name),
                source: e,
            }),
        }
    }

    /// Retries until we hold the lease (`true`) or shutdown is requested (`false`).
    pub async fn acquire(&mut self, shutdown: &mut watch::Receiver<bool>) -> bool {
        self.progress(LeaderRole::Candidate);
        loop {
            let result = self.round().await;
            self.progress(LeaderRole::Candidate);
            match result {
                Ok(true) => return true,
                Ok(false) => {}
                Err(e) => warn!(error = %e, "leader election attempt failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.timing.retry_every) => {}
                () = crate::stopped(shutdown) => {
                    self.stopped();
                    return false;
                }
            }
        }
    }

    /// Renews until shutdown (then releases) or until leadership is lost.
    pub async fn hold(mut self, shutdown: &mut watch::Receiver<bool>) -> Ended {
        let ended = self.renew(shutdown).await;
        self.stopped();
        ended
    }

    async fn renew(&mut self, shutdown: &mut watch::Receiver<bool>) -> Ended {
        let holder = LeaderRole::Holder {
            bound: self.timing.duration,
        };
        let mut last_renew = Instant::now();
        self.progress(holder);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.timing.renew_every) => {}
                () = crate::stopped(shutdown) => {
                    self.release().await;
                    return Ended::Shutdown;
                }
            }
            match self.round().await {
                Ok(true) => {
                    last_renew = Instant::now();
                    self.progress(holder);
                }
                Ok(false) => {
                    return Ended::Lost("another replica holds the lease".into());
                }
                Err(e) => {
                    warn!(error = %e, "renewing the lease failed");
                    if last_renew.elapsed() >= self.timing.renew_deadline {
                        return Ended::Lost(format!(
                            "could not renew for {:?}: {e}",
                            self.timing.renew_deadline
                        ));
                    }
                }
            }
        }
    }

    async fn release(&self) {
        let lease = match self.api.get_opt(&self.name).await {
            Ok(Some(l)) => l,
            Ok(None) => return,
            Err(e) => {
                warn!(error = %e, "reading the lease to release it failed");
                return;
            }
        };
        let holder = lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref());
        if holder != Some(self.identity.as_str()) {
            return;
        }
        match self
            .api
            .replace(&self.name, &PostParams::default(), &released(&lease))
            .await
        {
            Ok(_) => info!(lease = %self.name, "released leadership"),
            Err(e) => {
                warn!(error = %e, "releasing the lease failed; the next leader waits for expiry")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: Option<&str>, duration: i32, rv: &str) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some("l".into()),
                namespace: Some("ns".into()),
                resource_version: Some(rv.into()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: holder.map(String::from),
                lease_duration_seconds: Some(duration),
                lease_transitions: Some(3),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn missing_lease_is_created() {
        assert_eq!(decide(None, "me", Duration::ZERO), Decision::Create);
    }

    #[test]
    fn own_lease_is_renewed_even_when_old() {
        let l = lease(Some("me"), 15, "1");
        assert_eq!(
            decide(Some(&l), "me", Duration::from_secs(100)),
            Decision::Renew
        );
    }

    #[test]
    fn foreign_live_lease_is_followed_until_it_expires() {
        let l = lease(Some("other"), 15, "1");
        assert_eq!(
            decide(Some(&l), "me", Duration::from_secs(4)),
            Decision::Follow {
                holder: "other".into(),
                expires_in: Duration::from_secs(11)
            }
        );
        assert_eq!(
            decide(Some(&l), "me", Duration::from_secs(15)),
            Decision::TakeOver
        );
    }

    #[test]
    fn released_lease_is_taken_over_at_once() {
        let l = released(&lease(Some("other"), 15, "1"));
        assert_eq!(l.spec.as_ref().unwrap().lease_duration_seconds, Some(1));
        assert_eq!(decide(Some(&l), "me", Duration::ZERO), Decision::TakeOver);
        let empty = lease(Some(""), 15, "1");
        assert_eq!(
            decide(Some(&empty), "me", Duration::ZERO),
            Decision::TakeOver
        );
    }

    #[test]
    fn observer_measures_time_since_the_record_last_changed() {
        let t0 = Instant::now();
        let mut o = Observer::default();
        let a = lease(Some("other"), 15, "1");
        assert_eq!(o.observe(Some(&a), t0), Duration::ZERO);
        assert_eq!(
            o.observe(Some(&a), t0 + Duration::from_secs(7)),
            Duration::from_secs(7)
        );
        // A renewal (new resourceVersion) restarts the clock.
        let b = lease(Some("other"), 15, "2");
        assert_eq!(
            o.observe(Some(&b), t0 + Duration::from_secs(9)),
            Duration::ZERO
        );
        assert_eq!(
            o.observe(Some(&b), t0 + Duration::from_secs(20)),
            Duration::from_secs(11)
        );
        // Expiry is judged by this local clock, not the holder's renewTime.
        let unchanged = o.observe(Some(&b), t0 + Duration::from_secs(24));
        assert_eq!(decide(Some(&b), "me", unchanged), Decision::TakeOver);
    }

    #[test]
    fn claiming_counts_transitions_only_when_the_holder_changes() {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let t = LeaseTiming::default();
        let renewed = claimed(Some(&lease(Some("me"), 15, "5")), "l", "ns", "me", now, t);
        let s = renewed.spec.as_ref().unwrap();
        assert_eq!(s.lease_transitions, Some(3));
        assert_eq!(s.renew_time, Some(MicroTime(now)));
        assert_eq!(renewed.metadata.resource_version.as_deref(), Some("5"));
        let taken = claimed(
            Some(&lease(Some("other"), 15, "6")),
            "l",
            "ns",
            "me",
            now,
            t,
        );
        let s = taken.spec.as_ref().unwrap();
        assert_eq!(s.holder_identity.as_deref(), Some("me"));
        assert_eq!(s.lease_transitions, Some(4));
        assert_eq!(s.acquire_time, Some(MicroTime(now)));
        assert_eq!(s.lease_duration_seconds, Some(15));
        let fresh = claimed(None, "l", "ns", "me", now, t);
        assert_eq!(fresh.metadata.namespace.as_deref(), Some("ns"));
        assert_eq!(fresh.metadata.resource_version, None);
        assert_eq!(fresh.spec.unwrap().lease_transitions, Some(0));
    }
}

//! Runs the probes of a [`Checks`] table on the Tokio runtime.
//!
//! One loop takes the targets that are due (earliest first), starts each
//! probe as a task, and sleeps until the next is due or new targets arrive.
//! A semaphore bounds the probes in flight; a target has at most one probe
//! at a time and is due again one interval after its last one started, so a
//! slow or saturated node stretches the interval instead of piling up
//! probes. Only state transitions reach the sync loop, as
//! [`Event::Health`] with the VirtualServices concerned; the sync thread
//! never waits for a probe.

use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::{Checks, Due, probe};
use crate::metrics::Metrics;
use crate::source::Event;

/// At most this many probes are started per wake-up, so one wake-up never
/// holds the table for long.
const BATCH: usize = 1024;

/// The probe runner.
#[derive(Debug)]
pub struct Engine {
    checks: Checks,
    events: Sender<Event>,
    limit: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

impl Engine {
    /// Probes the targets of `checks` with at most `concurrency` probes in
    /// flight; transitions go to `events`.
    pub fn new(
        checks: Checks,
        concurrency: usize,
        events: Sender<Event>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Engine {
            checks,
            events,
            limit: Arc::new(Semaphore::new(concurrency.max(1))),
            metrics,
        }
    }

    /// Runs until the sync loop is gone.
    pub async fn run(self) {
        let this = Arc::new(self);
        loop {
            let (due, next) = this.checks.lock().take_due(Instant::now(), BATCH);
            let more = due.len() == BATCH;
            for d in due {
                let this = this.clone();
                tokio::spawn(async move { this.probe(d).await });
            }
            if more {
                tokio::task::yield_now().await;
                continue;
            }
            match next {
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at.into()) => {}
                        _ = this.checks.woken() => {}
                    }
                }
                None => this.checks.woken().await,
            }
        }
    }

    async fn probe(&self, d: Due) {
        let Ok(_permit) = self.limit.acquire().await else {
            return;
        };
        let check = &d.key.check;
        let timeout = Duration::from_secs(u64::from(check.timeout_seconds.max(1)));
        let started = Instant::now();
        let result = match tokio::time::timeout(timeout, probe::probe(d.key.addr, check)).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "{} check of {}: no answer within {}s",
                check.type_.as_str(),
                d.key.addr,
                timeout.as_secs()
            )),
        };
        self.metrics
            .health_probe(check.type_.as_str(), started.elapsed(), result.is_ok());
        let owners = self.checks.lock().record(d.id, started, result);
        // The target is due again: the loop may be waiting for new targets
        // or for a later one.
        self.checks.wake();
        if let Some(owners) = owners
            && !owners.is_empty()
        {
            // A closed channel means the sync loop stopped; nothing to do.
            let _ = self.events.send(Event::Health(owners));
        }
    }
}

#[cfg(test)]
mod tests {
    use lvs_api::{HealthAction, HealthCheckType};
    use lvs_planner::PlannedHealthCheck;

    use super::*;
    use crate::health::ProbeKey;

    /// The probes counted so far, whatever their result.
    fn probes(m: &Metrics) -> u64 {
        m.render()
            .lines()
            .filter(|l| l.starts_with("lvs_agent_health_probes_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    /// A target is probed again each interval, not only when the table
    /// changes: the result of a probe wakes the loop for the next one.
    #[tokio::test]
    async fn a_target_is_probed_again_after_each_interval() {
        // Bound, never accepting: the kernel completes the TCP handshake.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let check = Arc::new(PlannedHealthCheck {
            interval_seconds: 1,
            timeout_seconds: 1,
            rise: 1,
            fall: 1,
            ..PlannedHealthCheck::with_defaults(HealthCheckType::Tcp, HealthAction::Inhibit)
        });
        let checks = Checks::new();
        checks.lock().set_owner(
            "default/web",
            vec![(addr, ProbeKey { addr, check })],
            Instant::now(),
        );
        let metrics = Arc::new(Metrics::default());
        let (tx, _rx) = std::sync::mpsc::channel();
        let engine = tokio::spawn(Engine::new(checks.clone(), 4, tx, metrics.clone()).run());
        // Bounded wait for the third probe; without a wake-up after each
        // result the loop stops after the first.
        let third = tokio::time::timeout(Duration::from_secs(60), async {
            while probes(&metrics) < 3 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        engine.abort();
        assert!(
            third.is_ok(),
            "{} probes of a target with a 1 s interval within 60 s",
            probes(&metrics)
        );
    }
}

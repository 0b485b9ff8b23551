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
        if let Some(owners) = owners
            && !owners.is_empty()
        {
            // A closed channel means the sync loop stopped; nothing to do.
            let _ = self.events.send(Event::Health(owners));
        }
    }
}

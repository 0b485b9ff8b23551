//! Answers to the LvsSnapshot named after the node: each new
//! `spec.request` is answered once, with the kernel's IPVS table read by
//! the agent loop (see [`crate::live_table`]), written as the object's
//! status with server-side apply.
//!
//! The write volume stays bounded whatever the requesters do: at most one
//! answer per `min_interval` (requests arriving meanwhile are coalesced,
//! the newest answered), one object per node, its status capped in size.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use backon::BackoffBuilder as _;
use futures::StreamExt;
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use lvs_api::{LvsSnapshot, LvsSnapshotStatus};
use serde_json::json;

use super::lvsnode::{FIELD_MANAGER, MAX_RETRY, write_retries};
use crate::live_table::{answer_at, unanswered};
use crate::metrics::Metrics;
use crate::quiet::Repeated;
use crate::source::{Event, LiveTableRequest};

/// Answers the node's LvsSnapshot requests.
#[derive(Clone)]
pub struct Answerer {
    api: Api<LvsSnapshot>,
    node: String,
    min_interval: Duration,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Answerer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answerer")
            .field("node", &self.node)
            .field("min_interval", &self.min_interval)
            .finish_non_exhaustive()
    }
}

impl Answerer {
    pub fn new(
        client: kube::Client,
        node: &str,
        min_interval: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        Answerer {
            api: Api::all(client),
            node: node.to_string(),
            min_interval,
            metrics,
        }
    }

    /// Writes the status subresource.
    async fn write(&self, status: &LvsSnapshotStatus) -> Result<(), kube::Error> {
        let obj = json!({
            "apiVersion": lvs_api::API_VERSION,
            "kind": "LvsSnapshot",
            "metadata": {"name": self.node},
            "status": status,
        });
        self.api
            .patch_status(
                &self.node,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(obj),
            )
            .await
            .map(drop)
    }

    /// Asks the agent loop for the table; `None` once the loop is gone.
    async fn read(
        tx: &mpsc::Sender<Event>,
        only: Vec<String>,
        diff: bool,
    ) -> Option<LvsSnapshotStatus> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        tx.send(Event::LiveTable(LiveTableRequest {
            virtual_services: only,
            diff,
            reply,
        }))
        .ok()?;
        answer.await.ok()
    }

    /// Runs until the agent loop is gone.
    pub async fn run(self, tx: mpsc::Sender<Event>) {
        let config = super::watch_config().fields(&format!("metadata.name={}", self.node));
        let stream = watcher(self.api.clone(), config).backoff(super::source::reconnect_backoff());
        let mut stream = std::pin::pin!(stream);
        // The newest version of the object seen, the last token answered
        // and when, and a retry after a failed write.
        let mut latest: Option<LvsSnapshot> = None;
        let mut answered: Option<String> = None;
        let mut last_at: Option<Instant> = None;
        let mut retry_at: Option<Instant> = None;
        let mut retries = write_retries().build();
        let mut watch_failures = Repeated::default();
        let mut write_failures = Repeated::default();
        let mut read_failures = Repeated::default();
        loop {
            let due = latest.as_ref().and_then(|s| {
                let status = s.status.as_ref().map(|st| st.request.as_str());
                unanswered(&s.spec.request, status, answered.as_deref())?;
                let at = answer_at(last_at, self.min_interval, Instant::now());
                Some(retry_at.map_or(at, |r| r.max(at)))
            });
            let ev = match due {
                // Once due, the answer goes out before further events are
                // taken; until then, newer requests replace the pending one.
                Some(at) if at <= Instant::now() => None,
                Some(at) => tokio::select! {
                    biased;
                    () = tokio::time::sleep_until(at.into()) => None,
                    ev = stream.next() => Some(ev),
                },
                None => Some(stream.next().await),
            };
            match ev {
                Some(None) => return,
                Some(Some(Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s)))) => {
                    watch_failures.ok(Instant::now());
                    latest = Some(s);
                }
                Some(Some(Ok(watcher::Event::Delete(_)))) => latest = None,
                Some(Some(Ok(_))) => {}
                Some(Some(Err(e))) => {
                    if let Some(f) = watch_failures.fail(Instant::now()) {
                        tracing::warn!(
                            node = %self.node,
                            error = %e,
                            failing_for_s = f.for_.as_secs(),
                            not_logged = f.unlogged,
                            "watching the node's LvsSnapshot failed; retrying"
                        );
                    }
                }
                None => {
                    let Some(s) = latest.as_ref() else { continue };
                    let token = s.spec.request.clone();
                    last_at = Some(Instant::now());
                    let Some(mut status) =
                        Self::read(&tx, s.spec.virtual_services.clone(), s.spec.diff).await
                    else {
                        return;
                    };
                    status.request = token.clone();
                    match self.write(&status).await {
                        Ok(()) => {
                            let ok = status.error.is_empty();
                            self.metrics.snapshot(ok);
                            if ok {
                                read_failures.ok(Instant::now());
                                tracing::debug!(
                                    node = %self.node,
                                    request = %token,
                                    services = status.services.len(),
                                    omitted_destinations = status.omitted_destinations,
                                    changes = status.changes.len(),
                                    "LvsSnapshot answered"
                                );
                            } else if let Some(f) = read_failures.fail(Instant::now()) {
                                tracing::warn!(
                                    node = %self.node,
                                    request = %token,
                                    error = %status.error,
                                    failing_for_s = f.for_.as_secs(),
                                    not_logged = f.unlogged,
                                    "LvsSnapshot answered with an error (logged again at most once a minute while it fails)"
                                );
                            }
                            answered = Some(token);
                            retry_at = None;
                            retries = write_retries().build();
                            write_failures.ok(Instant::now());
                        }
                        Err(kube::Error::Api(e)) if e.is_not_found() => {
                            // Deleted meanwhile: nobody waits for it.
                            self.metrics.snapshot(false);
                            latest = None;
                        }
                        Err(e) => {
                            self.metrics.snapshot(false);
                            let retry = retries.next().unwrap_or(MAX_RETRY);
                            retry_at = Some(Instant::now() + retry);
                            if let Some(f) = write_failures.fail(Instant::now()) {
                                tracing::warn!(
                                    node = %self.node,
                                    request = %token,
                                    error = %super::describe(&e),
                                    retry_in_s = retry.as_secs(),
                                    failing_for_s = f.for_.as_secs(),
                                    not_logged = f.unlogged,
                                    "writing the LvsSnapshot answer failed; retrying with a fresh read"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

//! Readiness gating's input: every node's LvsNode, watched and reduced to
//! what gating reads ([`NodeReadiness`]), sent to the agent loop whenever
//! that part of some node's report changed. A report that only moved its
//! sync time or destination counts sends nothing.

use std::sync::mpsc;

use futures::StreamExt;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, ResourceExt};
use lvs_api::LvsNode;

use crate::gating::{NodeReadiness, Readiness};
use crate::quiet::Repeated;
use crate::source::Event;

/// The readiness of every node in `lvsnodes`.
pub fn readiness_of(lvsnodes: &[std::sync::Arc<LvsNode>]) -> Readiness {
    lvsnodes
        .iter()
        .map(|l| (l.name_any(), NodeReadiness::from_status(l.status.as_ref())))
        .collect()
}

/// Watches LvsNodes until the agent loop is gone. Nothing is sent before
/// the first complete list, so gating never starts from a partial view.
pub async fn run(client: kube::Client, tx: mpsc::Sender<Event>) {
    let api: Api<LvsNode> = Api::all(client);
    let (store, writer) = reflector::store::<LvsNode>();
    let stream = watcher(api, super::watch_config())
        .backoff(super::source::reconnect_backoff())
        .reflect(writer);
    let mut stream = std::pin::pin!(stream);
    let mut current = Readiness::new();
    let mut failures = Repeated::default();
    let mut listed = false;
    while let Some(ev) = stream.next().await {
        // Whether `current` changed (only the node of the event is read
        // again, not every LvsNode).
        let changed = match ev {
            Ok(watcher::Event::InitDone) => {
                let now = readiness_of(&store.state());
                let first = !listed;
                listed = true;
                if first {
                    tracing::info!(nodes = now.len(), "readiness gating on: LvsNodes listed");
                }
                let changed = first || now != current;
                current = now;
                changed
            }
            Ok(watcher::Event::Apply(l)) if listed => {
                let now = NodeReadiness::from_status(l.status.as_ref());
                current.insert(l.name_any(), now.clone()) != Some(now)
            }
            Ok(watcher::Event::Delete(l)) if listed => current.remove(&l.name_any()).is_some(),
            Ok(_) => false,
            Err(e) => {
                if let Some(f) = failures.fail(std::time::Instant::now()) {
                    tracing::warn!(
                        error = %e,
                        failing_for_s = f.for_.as_secs(),
                        not_logged = f.unlogged,
                        "watching LvsNodes for readiness gating failed; retrying (realserver readiness stays as last seen)"
                    );
                }
                continue;
            }
        };
        failures.ok(std::time::Instant::now());
        if changed
            && tx
                .send(Event::Readiness(Box::new(current.clone())))
                .is_err()
        {
            return;
        }
    }
}

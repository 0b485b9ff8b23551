//! Readiness gating's input: every node's LvsNode, watched and reduced to
//! what gating reads ([`NodeReadiness`]), sent to the agent loop whenever
//! that part of some node's report changed. A report that only moved its
//! sync time or destination counts sends nothing.

use std::sync::mpsc;

use futures::StreamExt;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use lvs_api::LvsNode;

use crate::gating::{NodeReadiness, Readiness};
use crate::quiet::Repeated;
use crate::source::Event;

/// Every node's readiness, kept from the watch's events without the
/// objects: a director's LvsNode lists every service it directs with its
/// counters, and every agent watches every LvsNode, so only the part
/// gating reads is held.
#[derive(Debug, Default)]
pub struct ReadinessView {
    current: Readiness,
    /// The list in progress, if any: it replaces `current` once complete.
    relist: Option<Readiness>,
    listed: bool,
}

impl ReadinessView {
    /// Applies one watch event. `true` when the readiness changed: the
    /// first complete list always counts, a relist when its content
    /// differs, a change only when the node's part gating reads does.
    pub fn apply(&mut self, ev: watcher::Event<LvsNode>) -> bool {
        let of = |l: &LvsNode| NodeReadiness::from_status(l.status.as_ref());
        match ev {
            watcher::Event::Init => {
                self.relist = Some(Readiness::new());
                false
            }
            watcher::Event::InitApply(l) => {
                self.relist
                    .get_or_insert_default()
                    .insert(l.name_any(), of(&l));
                false
            }
            watcher::Event::InitDone => {
                let now = self.relist.take().unwrap_or_default();
                let changed = !self.listed || now != self.current;
                if !self.listed {
                    tracing::info!(nodes = now.len(), "readiness gating on: LvsNodes listed");
                }
                self.listed = true;
                self.current = now;
                changed
            }
            watcher::Event::Apply(l) if self.listed => {
                let now = of(&l);
                self.current.insert(l.name_any(), now.clone()) != Some(now)
            }
            watcher::Event::Delete(l) if self.listed => {
                self.current.remove(&l.name_any()).is_some()
            }
            watcher::Event::Apply(_) | watcher::Event::Delete(_) => false,
        }
    }

    /// Every node's readiness as of the last complete list and the changes
    /// since.
    pub fn current(&self) -> &Readiness {
        &self.current
    }
}

/// Watches LvsNodes until the agent loop is gone. Nothing is sent before
/// the first complete list, so gating never starts from a partial view.
pub async fn run(client: kube::Client, tx: mpsc::Sender<Event>) {
    let api: Api<LvsNode> = Api::all(client);
    let stream = watcher(api, super::watch_config()).backoff(super::source::reconnect_backoff());
    let mut stream = std::pin::pin!(stream);
    let mut view = ReadinessView::default();
    let mut failures = Repeated::default();
    while let Some(ev) = stream.next().await {
        let changed = match ev {
            Ok(ev) => view.apply(ev),
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
                .send(Event::Readiness(Box::new(view.current().clone())))
                .is_err()
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvs_api::{LvsNodeSpec, LvsNodeStatus, ServiceReport};

    fn node(name: &str, generation: i64, sync: &str) -> LvsNode {
        let mut l = LvsNode::new(
            name,
            LvsNodeSpec {
                node_name: name.into(),
            },
        );
        l.status = Some(LvsNodeStatus {
            last_sync_time: Some(sync.into()),
            services: vec![ServiceReport {
                name: "ns/web".into(),
                generation: Some(generation),
                roles: vec!["director".into()],
                ..Default::default()
            }],
            ..Default::default()
        });
        l
    }

    #[test]
    fn readiness_follows_lists_and_changes_of_what_gating_reads() {
        use watcher::Event::*;
        let mut v = ReadinessView::default();
        assert!(
            !v.apply(Apply(node("a", 1, "t0"))),
            "nothing before the first list"
        );
        assert!(!v.apply(Init));
        assert!(!v.apply(InitApply(node("a", 1, "t0"))));
        assert!(!v.apply(InitApply(node("b", 1, "t0"))));
        assert!(v.apply(InitDone), "the first list counts");
        assert_eq!(v.current().keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(
            v.current()["a"],
            NodeReadiness::from_status(node("a", 1, "t0").status.as_ref())
        );

        assert!(!v.apply(Apply(node("a", 1, "t1"))), "a new sync time alone");
        assert!(v.apply(Apply(node("a", 2, "t1"))), "a new generation");
        assert_eq!(v.current()["a"].services["ns/web"].generation, Some(2));

        // A relist that no longer holds b replaces the view once complete.
        assert!(!v.apply(Init));
        assert!(!v.apply(InitApply(node("a", 2, "t2"))));
        assert_eq!(v.current().len(), 2, "a relist in progress changes nothing");
        assert!(v.apply(InitDone));
        assert_eq!(v.current().keys().collect::<Vec<_>>(), ["a"]);
        // The same content again is no change.
        assert!(!v.apply(Init));
        assert!(!v.apply(InitApply(node("a", 2, "t3"))));
        assert!(!v.apply(InitDone));

        assert!(v.apply(Delete(node("a", 2, "t3"))));
        assert!(!v.apply(Delete(node("a", 2, "t3"))), "already gone");
        assert!(v.current().is_empty());
    }
}

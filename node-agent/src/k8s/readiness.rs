//! Readiness gating's input: every other node's LvsNode, watched and
//! reduced to what gating reads ([`NodeReadiness`]), sent to the agent loop
//! whenever that part of some node's report changed. A report that only
//! moved its sync time or destination counts sends nothing.
//!
//! A director's LvsNode lists every service it directs with its live state
//! (up to 1 MiB), and each of its writes reaches every agent's watch: the
//! watch reads only the fields gating needs ([`GatedLvsNode`]), and leaves
//! out the agent's own LvsNode, which gating never reads (a destination on
//! the agent's own node is not gated).

use std::borrow::Cow;
use std::sync::mpsc;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use lvs_api::LvsNode;
use serde::Deserialize;

use crate::gating::{NodeReadiness, Readiness};
use crate::quiet::Repeated;
use crate::source::Event;

/// An LvsNode as gating reads it: its name and the part of its status
/// [`NodeReadiness`] keeps; the rest is skipped while parsing.
#[derive(Debug, Clone, Deserialize)]
pub struct GatedLvsNode {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub status: Option<NodeReadiness>,
}

impl Resource for GatedLvsNode {
    type DynamicType = ();
    type Scope = <LvsNode as Resource>::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        LvsNode::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        LvsNode::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        LvsNode::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        LvsNode::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

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
    pub fn apply(&mut self, ev: watcher::Event<GatedLvsNode>) -> bool {
        let of = |l: GatedLvsNode| (l.name_any(), l.status.unwrap_or_default());
        match ev {
            watcher::Event::Init => {
                self.relist = Some(Readiness::new());
                false
            }
            watcher::Event::InitApply(l) => {
                let (name, now) = of(l);
                self.relist.get_or_insert_default().insert(name, now);
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
                let (name, now) = of(l);
                self.current.insert(name, now.clone()) != Some(now)
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

/// The watch's selector: every LvsNode but the one of `this_node`.
pub fn others(this_node: &str) -> String {
    format!("metadata.name!={this_node}")
}

/// Watches the other nodes' LvsNodes until the agent loop is gone. Nothing
/// is sent before the first complete list, so gating never starts from a
/// partial view.
pub async fn run(client: kube::Client, this_node: String, tx: mpsc::Sender<Event>) {
    let api: Api<GatedLvsNode> = Api::all(client);
    let config = super::watch_config().fields(&others(&this_node));
    let stream = watcher(api, config).backoff(super::source::reconnect_backoff());
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

    /// The LvsNode `name` as the watch reads it (through its JSON).
    fn node(name: &str, generation: i64, sync: &str) -> GatedLvsNode {
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
        serde_json::from_value(serde_json::to_value(&l).unwrap()).unwrap()
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
        assert_eq!(v.current()["a"].services["ns/web"].generation, Some(1));
        assert_eq!(v.current()["a"].services["ns/web"].roles, ["director"]);

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

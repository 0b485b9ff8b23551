//! `kubectl lvs diff [NODE]`: per node, the writes its agent would make to
//! bring the kernel to what it wants (a dry run: nothing is changed).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Answer;

/// What `diff -o json|yaml` prints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiffView {
    /// Sorted by node.
    pub nodes: Vec<NodeDiff>,
}

/// One node's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeDiff {
    pub node: String,
    /// When the agent read the kernel (RFC 3339); empty without an answer.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub time: String,
    /// The writes in the agent's order; empty: the kernel is as wanted.
    #[serde(default)]
    pub changes: Vec<String>,
    /// Changes left out of the answer (size cap).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub omitted_changes: u32,
    /// Why this node has no answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

pub fn build(answers: BTreeMap<String, Answer>) -> DiffView {
    let nodes = answers
        .into_iter()
        .map(|(node, a)| match a {
            Err(e) => NodeDiff {
                node,
                error: Some(e),
                ..NodeDiff::default()
            },
            Ok(a) if !a.error.is_empty() => NodeDiff {
                node,
                time: a.time,
                error: Some(format!("the agent could not read the kernel: {}", a.error)),
                ..NodeDiff::default()
            },
            Ok(a) => NodeDiff {
                node,
                time: a.time,
                changes: a.changes,
                omitted_changes: a.omitted_changes,
                error: None,
            },
        })
        .collect();
    DiffView { nodes }
}

/// The exit status, as `kubectl diff`'s: 0 no differences, 1 differences,
/// 2 when a node could not answer.
pub fn exit_status(view: &DiffView) -> u8 {
    if view.nodes.iter().any(|n| n.error.is_some()) {
        2
    } else if view
        .nodes
        .iter()
        .any(|n| !n.changes.is_empty() || n.omitted_changes > 0)
    {
        1
    } else {
        0
    }
}

pub fn render(view: &DiffView) -> String {
    let mut out = String::new();
    for n in &view.nodes {
        if let Some(e) = &n.error {
            out.push_str(&format!("{}: error: {e}\n", n.node));
            continue;
        }
        let count = n.changes.len() + n.omitted_changes as usize;
        if count == 0 {
            out.push_str(&format!(
                "{}: no changes (kernel read at {})\n",
                n.node, n.time
            ));
            continue;
        }
        out.push_str(&format!(
            "{}: {count} {} (kernel read at {})\n",
            n.node,
            if count == 1 { "change" } else { "changes" },
            n.time
        ));
        for c in &n.changes {
            out.push_str(&format!("  {c}\n"));
        }
        if n.omitted_changes > 0 {
            out.push_str(&format!(
                "  ... and {} more (an answer lists at most {})\n",
                n.omitted_changes,
                lvs_api::snapshot::MAX_SNAPSHOT_CHANGES
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use lvs_api::LvsSnapshotStatus;

    fn answer(changes: &[&str], omitted: u32) -> Answer {
        Ok(LvsSnapshotStatus {
            request: "t".into(),
            time: "2026-12-06T17:00:00.123Z".into(),
            changes: changes.iter().map(|c| c.to_string()).collect(),
            omitted_changes: omitted,
            ..LvsSnapshotStatus::default()
        })
    }

    #[test]
    fn changes_no_changes_and_errors() {
        let view = build(BTreeMap::from([
            (
                "dir1".to_string(),
                answer(
                    &[
                        "edit destination 10.0.0.2:80 of TCP 192.0.2.10:80 (default/web): weight 5 -> 1",
                        "add destination [2001:db8::1]:53 of UDP [2001:db8::53]:53 (default/dns6)",
                    ],
                    0,
                ),
            ),
            ("dir2".to_string(), answer(&[], 0)),
            (
                "dir3".to_string(),
                answer(&["add service FWM 7 (prod/mark)"], 3),
            ),
            (
                "dir4".to_string(),
                Ok(LvsSnapshotStatus {
                    error: "reading IPVS services: Operation not permitted".into(),
                    ..LvsSnapshotStatus::default()
                }),
            ),
            (
                "dir5".to_string(),
                Err(crate::live::fixtures::no_answer_from("dir5")),
            ),
        ]));
        assert_eq!(
            render(&view),
            concat!(
                "dir1: 2 changes (kernel read at 2026-12-06T17:00:00.123Z)\n",
                "  edit destination 10.0.0.2:80 of TCP 192.0.2.10:80 (default/web): weight 5 -> 1\n",
                "  add destination [2001:db8::1]:53 of UDP [2001:db8::53]:53 (default/dns6)\n",
                "dir2: no changes (kernel read at 2026-12-06T17:00:00.123Z)\n",
                "dir3: 4 changes (kernel read at 2026-12-06T17:00:00.123Z)\n",
                "  add service FWM 7 (prod/mark)\n",
                "  ... and 3 more (an answer lists at most 500)\n",
                "dir4: error: the agent could not read the kernel: reading IPVS services: Operation not permitted\n",
                "dir5: error: no answer from the node agent on dir5 within 10s (LvsSnapshot/dir5 status.request is \"old\", not the new token): is the agent running on dir5, in Kubernetes mode (--kubeconfig), with RBAC to watch lvssnapshots and patch lvssnapshots/status?\n",
            )
        );
        assert_eq!(exit_status(&view), 2);
    }

    #[test]
    fn the_exit_status_is_kubectl_diffs() {
        let one = |a: Answer| build(BTreeMap::from([("dir1".to_string(), a)]));
        assert_eq!(exit_status(&one(answer(&[], 0))), 0);
        assert_eq!(
            exit_status(&one(answer(&["add service TCP 192.0.2.10:80"], 0))),
            1
        );
        assert_eq!(exit_status(&one(answer(&[], 2))), 1, "only omitted changes");
        assert_eq!(exit_status(&one(Err("no answer".into()))), 2);
        assert_eq!(
            render(&one(answer(&[], 0))),
            "dir1: no changes (kernel read at 2026-12-06T17:00:00.123Z)\n"
        );
    }
}

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

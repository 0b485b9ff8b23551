//! The plugin's only I/O: reads of VirtualServices and LvsNodes, and
//! snapshot requests to the node agents, all through the API server.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Config};
use lvs_api::{LvsNode, LvsSnapshot, LvsSnapshotSpec, VirtualService};

use crate::live::Answer;

/// The field manager of the plugin's writes (LvsSnapshot specs).
pub const FIELD_MANAGER: &str = "kubectl-lvs";

/// Which VirtualServices a command looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    One { namespace: String, name: String },
    Namespace(String),
    All,
}

/// A connection to the API server.
#[derive(Clone)]
pub struct Cluster {
    client: Client,
    /// The kubeconfig context's namespace (`default` when it names none).
    pub namespace: String,
    /// How long a node agent has to answer a snapshot request.
    pub timeout: Duration,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("namespace", &self.namespace)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    pub async fn connect(
        kubeconfig: Option<&Path>,
        context: Option<&str>,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let config: Config = lvs_runtime::kube::config(kubeconfig, context).await?;
        let namespace = config.default_namespace.clone();
        let client = Client::try_from(config).context("building the Kubernetes client")?;
        Ok(Self::from_client(client, namespace, timeout))
    }

    pub fn from_client(client: Client, namespace: String, timeout: Duration) -> Self {
        Cluster {
            client,
            namespace,
            timeout,
        }
    }

    pub async fn virtual_services(&self, scope: &Scope) -> anyhow::Result<Vec<VirtualService>> {
        match scope {
            Scope::One { namespace, name } => {
                let api: Api<VirtualService> = Api::namespaced(self.client.clone(), namespace);
                match api.get_opt(name).await {
                    Ok(Some(vs)) => Ok(vec![vs]),
                    Ok(None) => anyhow::bail!("VirtualService {namespace}/{name} not found"),
                    Err(e) => {
                        Err(e).with_context(|| format!("reading VirtualService {namespace}/{name}"))
                    }
                }
            }
            Scope::Namespace(ns) => Ok(Api::<VirtualService>::namespaced(self.client.clone(), ns)
                .list(&ListParams::default())
                .await
                .with_context(|| format!("listing VirtualServices in namespace {ns}"))?
                .items),
            Scope::All => Ok(Api::<VirtualService>::all(self.client.clone())
                .list(&ListParams::default())
                .await
                .context("listing VirtualServices in all namespaces")?
                .items),
        }
    }

    pub async fn lvs_nodes(&self) -> anyhow::Result<Vec<LvsNode>> {
        let mut items = Api::<LvsNode>::all(self.client.clone())
            .list(&ListParams::default())
            .await
            .context("listing LvsNodes")?
            .items;
        items.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        Ok(items)
    }

    /// Asks each node (with the VirtualServices to list, empty: all) at
    /// once; the answers by node.
    pub async fn snapshots(
        &self,
        requests: &BTreeMap<String, Vec<String>>,
        diff: bool,
    ) -> BTreeMap<String, Answer> {
        let asks = requests.iter().map(|(node, vs)| async move {
            (node.clone(), self.snapshot(node, vs.clone(), diff).await)
        });
        futures::future::join_all(asks).await.into_iter().collect()
    }

    /// Writes `LvsSnapshot/<node>` with a fresh request token and waits for
    /// the node agent's answer to it, at most `self.timeout`.
    pub async fn snapshot(&self, node: &str, virtual_services: Vec<String>, diff: bool) -> Answer {
        let api: Api<LvsSnapshot> = Api::all(self.client.clone());
        let token = token().map_err(|e| format!("no random request token: {e}"))?;
        let spec = LvsSnapshotSpec {
            node_name: node.to_string(),
            request: token.clone(),
            virtual_services,
            diff,
        };
        let body = LvsSnapshot::new(node, spec);
        api.patch(
            node,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(|e| format!("writing LvsSnapshot/{node}: {e}"))?;

        // A watch of the one object; the first list shows an answer that
        // came before the watch started. Errors are retried with backoff
        // until the deadline.
        let cfg = watcher::Config::default().fields(&format!("metadata.name={node}"));
        let mut events = watcher(api, cfg)
            .default_backoff()
            .applied_objects()
            .boxed();
        let mut seen = String::new();
        let mut last_error = None;
        let wait = async {
            while let Some(ev) = events.next().await {
                match ev {
                    Ok(obj) => {
                        let status = obj.status.unwrap_or_default();
                        if status.request == token {
                            return Some(status);
                        }
                        seen = status.request;
                    }
                    Err(e) => last_error = Some(e.to_string()),
                }
            }
            None
        };
        match tokio::time::timeout(self.timeout, wait).await {
            Ok(Some(status)) => Ok(status),
            _ => Err(no_answer(node, self.timeout, &seen, last_error.as_deref())),
        }
    }

    /// Fails naming the known nodes when `node` has no LvsNode.
    pub async fn check_node(&self, node: &str) -> anyhow::Result<()> {
        let api: Api<LvsNode> = Api::all(self.client.clone());
        if api
            .get_opt(node)
            .await
            .with_context(|| format!("reading LvsNode {node}"))?
            .is_some()
        {
            return Ok(());
        }
        let known: Vec<String> = self
            .lvs_nodes()
            .await?
            .into_iter()
            .filter_map(|n| n.metadata.name)
            .collect();
        anyhow::bail!(
            "no LvsNode {node}: no node agent reports from a node of that name; expected one of: {}",
            if known.is_empty() {
                "(none: no agent has reported yet)".to_string()
            } else {
                known.join(", ")
            }
        )
    }
}

/// Why a node gave no answer in time, with what to check.
pub fn no_answer(node: &str, timeout: Duration, seen: &str, watch_error: Option<&str>) -> String {
    let mut s = format!(
        "no answer from the node agent on {node} within {}s (LvsSnapshot/{node} status.request is {:?}, not the new token): \
         is the agent running on {node}, in Kubernetes mode (--kubeconfig), with RBAC to watch lvssnapshots and patch lvssnapshots/status?",
        timeout.as_secs_f64(),
        seen
    );
    if let Some(e) = watch_error {
        s.push_str(&format!(" (watching it failed: {e})"));
    }
    s
}

/// 128 random bits as 32 hex digits.
fn token() -> Result<String, getrandom::Error> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

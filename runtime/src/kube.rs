//! The Kubernetes client, set up the same way by both binaries.

use std::path::{Path, PathBuf};

use kube::config::{InferConfigError, KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::{Client, Config};

/// Why no client could be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("reading kubeconfig {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: KubeconfigError,
    },
    #[error("using kubeconfig {}", path.display())]
    Use {
        path: PathBuf,
        #[source]
        source: KubeconfigError,
    },
    #[error("using context {context:?} of the kubeconfig (KUBECONFIG or ~/.kube/config)")]
    Context {
        context: String,
        #[source]
        source: KubeconfigError,
    },
    #[error(
        "no kubeconfig (--kubeconfig, KUBECONFIG, ~/.kube/config) and not running in a cluster"
    )]
    Infer(#[source] InferConfigError),
    #[error("building the Kubernetes client")]
    Build(#[source] kube::Error),
}

/// A client from `kubeconfig` (its current context) when given; otherwise
/// from `KUBECONFIG`, `~/.kube/config` or the in-cluster ServiceAccount.
pub async fn client(kubeconfig: Option<&Path>) -> Result<Client, ClientError> {
    Client::try_from(config(kubeconfig, None).await?).map_err(ClientError::Build)
}

/// The client configuration from `kubeconfig` when given, else from
/// `KUBECONFIG`, `~/.kube/config` or the in-cluster ServiceAccount; with
/// `context`, that context of the kubeconfig instead of its current one.
pub async fn config(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> Result<Config, ClientError> {
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..KubeConfigOptions::default()
    };
    match (kubeconfig, context) {
        (Some(path), _) => {
            let kc = Kubeconfig::read_from(path).map_err(|source| ClientError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(|source| ClientError::Use {
                    path: path.to_path_buf(),
                    source,
                })
        }
        (None, Some(context)) => {
            Config::from_kubeconfig(&options)
                .await
                .map_err(|source| ClientError::Context {
                    context: context.to_string(),
                    source,
                })
        }
        (None, None) => Config::infer().await.map_err(ClientError::Infer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_kubeconfig_is_named() {
        let Err(e) = client(Some(Path::new("/nonexistent/kubeconfig"))).await else {
            panic!("a client from a kubeconfig that does not exist");
        };
        assert!(matches!(e, ClientError::Read { .. }), "{e:?}");
        assert_eq!(e.to_string(), "reading kubeconfig /nonexistent/kubeconfig");
    }

    #[tokio::test]
    async fn a_context_other_than_the_current_one() {
        let path =
            std::env::temp_dir().join(format!("lvs-runtime-kubeconfig-{}", std::process::id()));
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\n\
             clusters:\n- name: c\n  cluster: {server: \"https://127.0.0.1:6443\"}\n\
             users:\n- name: u\n  user: {token: t}\n\
             contexts:\n- name: a\n  context: {cluster: c, user: u, namespace: ns-a}\n\
             - name: b\n  context: {cluster: c, user: u, namespace: ns-b}\n\
             current-context: a\n",
        )
        .unwrap();
        let current = config(Some(&path), None).await.unwrap();
        assert_eq!(current.default_namespace, "ns-a");
        let other = config(Some(&path), Some("b")).await.unwrap();
        assert_eq!(other.default_namespace, "ns-b");
        let Err(e) = config(Some(&path), Some("nope")).await else {
            panic!("a context that does not exist");
        };
        assert!(matches!(e, ClientError::Use { .. }), "{e:?}");
        std::fs::remove_file(&path).unwrap();
    }
}

//! The Kubernetes client, set up the same way by both binaries.

use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// How long a response may stay silent before the client drops its
/// connection. A watch hears from the API server at least about once a
/// minute (bookmarks, which kube's watcher asks for), so a watch whose
/// connection died without a word (a peer gone, a middlebox that forgot
/// the flow) is noticed after this long, however long the watch itself was
/// asked to last (the agent's run for 30 minutes to keep a fleet at rest
/// quiet).
pub const READ_TIMEOUT: Duration = Duration::from_secs(300);

/// A client from `kubeconfig` (its current context) when given; otherwise
/// from `KUBECONFIG`, `~/.kube/config` or the in-cluster ServiceAccount.
pub async fn client(kubeconfig: Option<&Path>) -> Result<Client, ClientError> {
    client_from(config(kubeconfig, None).await?, READ_TIMEOUT)
}

/// A client from `config` that gives up on a response silent for
/// `read_timeout`.
fn client_from(mut config: Config, read_timeout: Duration) -> Result<Client, ClientError> {
    config.read_timeout = Some(read_timeout);
    Client::try_from(config).map_err(ClientError::Build)
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

    /// A server that answers with headers and the start of a body, then
    /// stays silent with the connection open, as a dead peer would.
    async fn silent_server() -> std::net::SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf).await.unwrap();
            conn.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                  transfer-encoding: chunked\r\n\r\n2\r\n{\"\r\n",
            )
            .await
            .unwrap();
            // Keep the connection open and say nothing more.
            let _ = conn.read(&mut buf).await;
        });
        addr
    }

    #[tokio::test]
    async fn a_silent_response_is_given_up_after_the_read_timeout() {
        let addr = silent_server().await;
        let config = Config::new(format!("http://{addr}").parse().unwrap());
        let client = client_from(config, Duration::from_millis(200)).unwrap();
        let request = http::Request::get("/apis/example/v1/things?watch=true")
            .body(Vec::new())
            .unwrap();
        // Without the read timeout the request would hang for good; the
        // outer bound only keeps a broken test from hanging the suite.
        let outcome = tokio::time::timeout(Duration::from_secs(30), client.request_text(request))
            .await
            .expect("the client gave up on the silent response");
        let Err(e) = outcome else {
            panic!("a body that never ends was read whole: {outcome:?}");
        };
        assert!(format!("{e:?}").contains("TimedOut"), "{e:?}");
    }
}

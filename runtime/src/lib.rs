//! What the operator and the node agent run the same way.
//!
//! - [`logging`]: the tracing subscriber (`--log-format`, the `LVS_LOG`
//!   filter), so both binaries log the same JSON shape;
//! - [`signal`]: the shutdown signals (SIGTERM, SIGINT);
//! - [`kube`]: the Kubernetes client from `--kubeconfig` or the environment;
//! - [`health`]: the probes' answers (200 `ok`, or 503 with the reason);
//! - [`http`]: the HTTP server of `/metrics` and the health endpoints, with
//!   the limits that keep it answering under abuse;
//! - [`metrics`]: the OpenMetrics exposition of a `prometheus-client`
//!   registry, and label values escaped as the format requires.
#![forbid(unsafe_code)]

pub mod health;
pub mod http;
pub mod kube;
pub mod logging;
pub mod metrics;
pub mod signal;

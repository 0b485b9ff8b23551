//! Command-line flags.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{ArgAction, Parser};
use lvs_runtime::logging::LogFormat;

/// The lvs-operator controller: computes VirtualService and RealServer
/// status from the cluster and the agents' LvsNode reports.
#[derive(Debug, Clone, Parser)]
#[command(name = "lvs-operator", version)]
pub struct Cli {
    /// Kubeconfig file. When unset: the KUBECONFIG variable, ~/.kube/config,
    /// or the in-cluster service account.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,

    /// Namespace of the leader Lease (the operator's own namespace). When
    /// unset: the kubeconfig context's or the service account's namespace.
    #[arg(long, env = "POD_NAMESPACE")]
    pub namespace: Option<String>,

    /// Address for /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// Elect a leader among replicas; only the leader writes status.
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    pub leader_elect: bool,

    /// Name of the leader Lease.
    #[arg(long, default_value = "lvs-operator-leader")]
    pub lease_name: String,

    /// Holder identity in the Lease and Events. When unset: hostname and pid.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    /// Log format: text, or json (one object per line, the event's fields
    /// at the top level). The filter comes from LVS_LOG, else RUST_LOG
    /// (default info).
    #[arg(long, env = "LVS_LOG_FORMAT", value_enum, default_value_t)]
    pub log_format: LogFormat,
}

/// `hostname-pid`, the identity when POD_NAME is not set.
pub fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "lvs-operator".into());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_explicit_false() {
        let cli = Cli::try_parse_from(["lvs-operator"]).unwrap();
        assert!(cli.leader_elect);
        assert_eq!(cli.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(cli.log_format, LogFormat::Text);
        assert_eq!(cli.lease_name, "lvs-operator-leader");
        let cli = Cli::try_parse_from([
            "lvs-operator",
            "--leader-elect=false",
            "--log-format",
            "json",
            "--listen",
            "127.0.0.1:9000",
        ])
        .unwrap();
        assert!(!cli.leader_elect);
        assert_eq!(cli.log_format, LogFormat::Json);
        assert!(Cli::try_parse_from(["lvs-operator", "--log-format", "xml"]).is_err());
    }
}

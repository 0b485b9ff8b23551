//! `node-agent`: see `lvs_node_agent::cli`.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    lvs_node_agent::cli::main()
}

//! `kubectl-lvs`: see `lvs_kubectl::cli`.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    lvs_kubectl::cli::main()
}

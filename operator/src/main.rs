#![forbid(unsafe_code)]

use clap::Parser;
use lvs_operator::cli::Cli;
use lvs_operator::run::run;

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    lvs_runtime::logging::init(cli.log_format);
    if let Err(e) = run(cli).await {
        tracing::error!(error = format!("{e:#}"), "exiting");
        std::process::exit(1);
    }
}

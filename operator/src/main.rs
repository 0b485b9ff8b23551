#![forbid(unsafe_code)]

use clap::Parser;
use lvs_operator::cli::Cli;
use lvs_operator::run::{init_logging, run};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    run(cli).await
}

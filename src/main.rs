use std::process::ExitCode;

use asana_docspace_bridge::cli::Cli;
use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    asana_docspace_bridge::commands::run(Cli::parse()).await
}

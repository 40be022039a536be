//! The command line: `serve` (the default) and, later, the operator commands.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "asana-docspace-bridge",
    version,
    about = "Invites Asana task assignees to ONLYOFFICE DocSpace"
)]
pub struct Cli {
    /// A settings file (TOML) layered over the built-in defaults; BRIDGE__* variables override both.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: receive Asana webhooks and invite assignees (the default).
    Serve,
}

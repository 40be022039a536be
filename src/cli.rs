//! The command line: `serve` (the default) and the commands an operator reaches for.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::domain::{Email, Gid, RoomId, WebhookName};
use crate::rooms::RoomAccess;

#[derive(Debug, Parser)]
#[command(
    name = "asana-docspace-bridge",
    version,
    about = "Invites Asana task assignees to ONLYOFFICE DocSpace, exactly once"
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
    /// Run the service: receive Asana webhooks and invite assignees (the default). Creates and migrates the store.
    Serve,
    /// Create the store if missing and apply the migrations it lacks, without starting the service.
    Migrate,
    /// Register, list and delete Asana webhooks that point at this service.
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
    /// See queued, finished and failed jobs; retry failed ones.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// See and change which DocSpace room each Asana project's assignees get access to.
    #[command(subcommand)]
    Rooms(RoomsCommand),
    /// Invite the assignee of one task now, through the same rules as the service.
    InviteTask {
        /// The Asana task gid.
        task_gid: Gid,
    },
    /// Queue the assignees of every incomplete task in a project (people assigned before the webhook existed).
    Backfill(BackfillArgs),
    /// Reconcile passes: read what changed at Asana and queue the assignments no delivery brought.
    #[command(subcommand)]
    Reconcile(ReconcileCommand),
    /// Room access over time: who would lose which room, and every grant and revocation.
    #[command(subcommand)]
    Access(AccessCommand),
    /// Validate the settings and check the Asana token, the DocSpace key and the database.
    CheckConfig,
    /// Write a consistent copy of the SQLite store to PATH while the service runs.
    Backup {
        /// Where to write the copy (a new file).
        path: PathBuf,
    },
    /// Exit 0 when the running service answers /healthz (the container's health check).
    Healthcheck {
        /// The service's base URL; default http://127.0.0.1:<server.port>.
        #[arg(long)]
        url: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Create an Asana webhook for a project, with the handshake answered by the running service.
    Create {
        /// The Asana project gid.
        #[arg(long)]
        project: Gid,
        /// The webhook's name in /webhooks/asana/<name>; an unguessable random one by default.
        #[arg(long)]
        name: Option<WebhookName>,
    },
    /// Registered webhooks with Asana's view of each.
    List {
        /// The Asana workspace gid; default: the token user's only workspace.
        #[arg(long)]
        workspace: Option<Gid>,
    },
    /// Delete a webhook at Asana and forget its secret here.
    Delete {
        /// The webhook's name here, or its Asana gid.
        name_or_gid: String,
    },
    /// Watch a workspace for new projects: each one Asana reports gets a webhook of its own.
    WatchWorkspace {
        /// The Asana workspace gid; default: the token user's only workspace.
        #[arg(long)]
        workspace: Option<Gid>,
        /// The webhook's name in /webhooks/asana/<name>; an unguessable random one by default.
        #[arg(long)]
        name: Option<WebhookName>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReconcileCommand {
    /// Run a reconcile pass now: for every project with a webhook here, or the one named.
    Run {
        /// The Asana project gid; default: every watched project.
        #[arg(long)]
        project: Option<Gid>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccessCommand {
    /// Who would lose which room now, who is inside the grace period and until when, and why.
    /// Reads the store only; changes nothing.
    Plan {
        /// Only this Asana project's room.
        #[arg(long)]
        project: Option<Gid>,
    },
    /// Every grant and revocation, newest first, with the task or event that caused it.
    Log {
        /// Only this person.
        #[arg(long)]
        email: Option<Email>,
        /// Only this Asana project's room.
        #[arg(long)]
        project: Option<Gid>,
        /// At most this many entries (1 to 10000).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=10_000))]
        limit: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum RoomsCommand {
    /// Every known project with its room, its access and the people granted.
    List,
    /// Link an existing DocSpace room to a project (replaces an earlier link).
    Link {
        /// The Asana project gid.
        #[arg(long)]
        project: Gid,
        /// The DocSpace room id.
        #[arg(long)]
        room: RoomId,
        /// What the project's assignees get in the room; default: rooms.access.
        #[arg(long)]
        access: Option<RoomAccess>,
    },
    /// Forget a project's room; the access already granted stays.
    Unlink {
        /// The Asana project gid.
        #[arg(long)]
        project: Gid,
    },
    /// Give a project its room now: adopt the room tagged asana-project:<GID>, or create one.
    Create {
        /// The Asana project gid.
        #[arg(long)]
        project: Gid,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusFilter {
    Pending,
    Running,
    Done,
    Failed,
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// The newest jobs first.
    List {
        #[arg(long, value_enum)]
        status: Option<StatusFilter>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Make a failed job (or every failed job) due again.
    Retry {
        /// The job id.
        #[arg(required_unless_present = "failed", conflicts_with = "failed")]
        id: Option<i64>,
        /// Retry every failed job.
        #[arg(long)]
        failed: bool,
    },
}

#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// The Asana project gid.
    #[arg(long)]
    pub project: Gid,
    /// Only list who would be invited; queue nothing.
    #[arg(long)]
    pub dry_run: bool,
}

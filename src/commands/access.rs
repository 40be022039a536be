//! `access plan | log`: who would lose which room, and every grant and revocation (issue 13).
//! Both read the store only.

use std::process::ExitCode;

use super::Context;
use crate::domain::{Email, Gid};

/// `access plan [--project <GID>]`.
pub async fn plan(ctx: &Context, project: Option<&Gid>) -> anyhow::Result<ExitCode> {
    let _ = (ctx, project);
    todo!("slice A")
}

/// `access log [--email <EMAIL>] [--project <GID>] [--limit N]`.
pub async fn log(
    ctx: &Context,
    email: Option<Email>,
    project: Option<Gid>,
    limit: i64,
) -> anyhow::Result<ExitCode> {
    let _ = (ctx, email, project, limit);
    todo!("slice A")
}

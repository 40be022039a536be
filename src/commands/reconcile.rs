//! `reconcile run`: a reconcile pass now, for every watched project or the one named.

use std::process::ExitCode;

use super::Context;
use crate::domain::Gid;

pub(crate) async fn run(ctx: &Context, project: Option<&Gid>) -> anyhow::Result<ExitCode> {
    let _ = (ctx, project);
    anyhow::bail!("reconcile run: being built (issue 12 slice A)")
}

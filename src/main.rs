use std::process::ExitCode;

use asana_docspace_bridge::app::{Application, shutdown_signal};
use asana_docspace_bridge::cli::{Cli, Command};
use asana_docspace_bridge::settings::Settings;
use asana_docspace_bridge::telemetry::init_logging;
use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("asana-docspace-bridge: {err}");
            return ExitCode::from(2);
        }
    };
    init_logging(settings.log.format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => match serve(settings).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                tracing::error!(
                    error = format!("{err:#}"),
                    "the service stopped with an error"
                );
                eprintln!("asana-docspace-bridge: {err:#}");
                ExitCode::FAILURE
            }
        },
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings).await?;
    app.run_until_stopped(shutdown_signal()).await
}

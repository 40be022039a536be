//! `healthcheck`: the container's health check (the image has no shell and no curl).

use std::process::ExitCode;
use std::time::Duration;

use crate::settings::{Settings, Sources};

const TIMEOUT: Duration = Duration::from_secs(3);

pub async fn run(sources: Sources<'_>, url: Option<&str>) -> ExitCode {
    let base = match url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => match Settings::load_unvalidated(sources) {
            Ok(settings) => format!("http://127.0.0.1:{}", settings.server.port),
            Err(err) => {
                eprintln!("asana-docspace-bridge: {err}");
                return ExitCode::from(2);
            }
        },
    };
    let target = format!("{base}/healthz");
    let client = crate::upstream::http_client(TIMEOUT);
    match client.get(&target).send().await {
        Ok(response) if response.status().is_success() => {
            println!("healthy: {target} answered {}", response.status().as_u16());
            ExitCode::SUCCESS
        }
        Ok(response) => {
            eprintln!(
                "unhealthy: {target} answered {}",
                response.status().as_u16()
            );
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("unhealthy: {target}: {}", err.without_url());
            ExitCode::FAILURE
        }
    }
}

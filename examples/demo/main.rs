//! The whole main job on this machine, without accounts: the bridge on its embedded SQLite store,
//! against local simulators of Asana and DocSpace (the same ones the tests use).
//!
//!     cargo run --example demo
//!
//! It registers a webhook through the real handshake, assigns two tasks to the same person, and
//! shows each step: handshake, signed delivery, job, invitation, the duplicate skipped. Exits 0
//! when exactly one invitation arrived.

mod scenario;

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    match scenario::demo().await {
        Ok(_) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("demo failed: {err:#}");
            ExitCode::FAILURE
        }
    }
}

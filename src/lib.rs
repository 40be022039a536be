//! asana-docspace-bridge: when an Asana task gets an assignee, invite that person to ONLYOFFICE
//! DocSpace, exactly once, surviving restarts and bad input.
//!
//! - [`http`]—webhook ingress and health endpoints
//! - [`webhook`]—the Asana webhook protocol (signatures, events)
//! - [`store`]—durable secrets, job queue and invitations ledger
//! - [`worker`]—claims jobs and carries them out
//! - [`upstream`]—the Asana and DocSpace clients
//! - [`settings`]—configuration

pub mod app;
pub mod cli;
pub mod commands;
pub mod http;
pub mod registration;
pub mod settings;
pub mod store;
pub mod telemetry;
pub mod upstream;
pub mod webhook;
pub mod webhook_health;
pub mod worker;

pub use app::Application;
pub use settings::Settings;

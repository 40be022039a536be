//! asana-docspace-bridge: when an Asana task gets an assignee, invite that person to ONLYOFFICE
//! DocSpace, exactly once, surviving restarts and bad input.
//!
//! - [`http`]—webhook ingress and health endpoints
//! - [`webhook`]—the Asana webhook: its protocol (signatures, events), registering one, watching them
//! - [`domain`]—ids, names, emails and job kinds, parsed once where they enter
//! - [`store`]—durable secrets, job queue and invitations ledger
//! - [`worker`]—claims jobs and carries them out
//! - [`retention`]—deletes finished jobs once they are old enough
//! - [`rooms`]—room access for assignees: the DocSpace role matrix and room titles
//! - [`upstream`]—the Asana and DocSpace clients
//! - [`settings`]—configuration

#![forbid(unsafe_code)]

pub mod access;
pub mod app;
pub mod cli;
pub mod commands;
pub mod domain;
pub mod http;
pub mod reconcile;
pub mod retention;
pub mod rooms;
pub mod settings;
pub mod status;
pub mod store;
pub mod telemetry;
pub mod upstream;
pub mod webhook;
pub mod worker;

pub use app::Application;
pub use settings::Settings;

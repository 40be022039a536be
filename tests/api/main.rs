//! Black-box tests: the bridge on port 0 with a temporary database, against the Asana and
//! DocSpace fakes on loopback.

mod helpers;

mod admin;
mod admin_browser;
mod commands;
mod demo;
mod docspace_client;
mod files;
mod health;
mod lifecycle;
mod migrations;
mod operability;
mod overload;
mod reconcile;
mod reconcile_store;
mod registration;
mod repairs_store;
mod replicas;
mod retention;
mod revocation;
mod revocations_store;
mod rooms;
mod rooms_commands;
mod rooms_store;
mod status_store;
mod webhook_repair;
mod webhooks;
mod worker;
mod workspace;

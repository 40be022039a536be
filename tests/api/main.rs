//! Black-box tests: the bridge on port 0 with a temporary database, against the Asana and
//! DocSpace fakes on loopback.

mod commands;
mod health;
mod helpers;
mod lifecycle;
mod registration;
mod webhooks;
mod worker;

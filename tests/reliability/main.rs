//! The reliability suite: crashes at random moments, upstreams that fail a third of the time, and
//! input meant to break the service. Each scenario runs the bridge as a real process.

#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;

mod bad_input;
mod crashes;
mod dropped;
mod flood;
mod hostile_upstreams;
mod revoke_crash;
mod upstream_faults;

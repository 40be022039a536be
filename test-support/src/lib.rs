//! What the bridge's tests, its demo and its benchmark share to run it: the `BRIDGE__*`
//! environment of a bridge process ([`BridgeEnv`]) and a database of a test's own
//! ([`TestDatabase`]), on SQLite or on the PostgreSQL server `BRIDGE_TEST_DATABASE_URL` names.

mod bridge_env;
mod database;

pub use bridge_env::BridgeEnv;
pub use database::{Backend, TEST_DATABASE_VAR, TestConnection, TestDatabase};

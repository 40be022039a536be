//! The benchmark's sections, in the order they run; each adds its rows, targets and notes to the
//! report.

pub mod assignments;
pub mod ceiling;
pub mod drain;
pub mod e2e;
pub mod heartbeats;
pub mod prefilled;
pub mod reconcile;
pub mod rooms;
pub mod status;

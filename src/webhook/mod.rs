//! The Asana webhook protocol, independent of HTTP framework and storage: signature checking and
//! turning a delivery body into the events the bridge acts on.

pub mod events;
pub mod signature;

pub use events::{Delivery, DeliveryError, EventKind, RelevantEvent, parse_delivery};
pub use signature::{SignatureError, verify_signature};

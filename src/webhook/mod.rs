//! The Asana webhook. Its protocol, independent of HTTP framework and storage: signature checking
//! (`signature`), turning a delivery body into the events the bridge acts on (`events`), the nonce
//! that binds a handshake to its registration (`registration_nonce`). And its life here:
//! registering one at Asana (`register`), watching that each stays alive (`watch`) and registering
//! again one Asana dropped (`repair`).

pub mod events;
pub mod register;
pub mod registration_nonce;
pub mod repair;
pub mod signature;
pub mod watch;

pub use events::{Delivery, DeliveryError, RelevantEvent, Subscription, parse_delivery};
pub use registration_nonce::{RegistrationNonce, nonce_in_query, nonce_matches};
pub use signature::{SignatureError, verify_signature};

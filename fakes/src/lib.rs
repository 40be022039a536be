//! Loopback simulators of the Asana and DocSpace APIs that speak their real wire formats, with
//! switchable faults. The bridge's tests, its demo and its benchmark all use these, so they live
//! in one place and never in the service's own code path.

mod asana;
mod docspace;
mod faults;
mod server;

pub use asana::{
    AsanaFake, DroppedDelivery, FakeTask, FakeUser, FakeWebhook, assignment_delivery,
    completion_delivery, deleted_delivery, removed_delivery, removed_from_section_delivery,
    task_added_delivery, unassignment_delivery,
};
pub use docspace::{DocSpaceFake, FakeRoom, SentInvitation};
pub use faults::{Fault, Gate};
pub use server::RecordedRequest;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// `X-Hook-Signature` for `body`: lowercase hex HMAC-SHA256 keyed with the secret's bytes.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// A fresh 64-hex-character webhook secret, as Asana sends.
pub fn random_secret() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

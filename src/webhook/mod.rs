//! The Asana webhook protocol, independent of HTTP framework and storage: signature checking and
//! turning a delivery body into the events the bridge acts on.

pub mod events;
pub mod registration_nonce;
pub mod signature;

pub use events::{Delivery, DeliveryError, EventKind, RelevantEvent, parse_delivery};
pub use registration_nonce::{RegistrationNonce, nonce_in_query, nonce_matches};
pub use signature::{SignatureError, verify_signature};

/// Webhook names route deliveries (`/webhooks/asana/{name}`): 1 to 64 letters, digits, `-` or `_`.
pub fn is_valid_webhook_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_restricted_to_a_safe_alphabet() {
        assert!(is_valid_webhook_name("default"));
        assert!(is_valid_webhook_name("proj-42_A"));
        assert!(!is_valid_webhook_name(""));
        assert!(!is_valid_webhook_name("a b"));
        assert!(!is_valid_webhook_name("é"));
        assert!(!is_valid_webhook_name("../x"));
        assert!(!is_valid_webhook_name(&"x".repeat(65)));
    }
}

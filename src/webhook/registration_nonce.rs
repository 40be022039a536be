//! The one-time nonce that binds a handshake to the `webhooks create` that asked Asana for it. It
//! travels only in the target URL the command gives Asana (`…/webhooks/asana/{name}?r=<nonce>`);
//! the store keeps its SHA-256, so a forged handshake that does not carry it cannot win the window.

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The query parameter of the target URL that carries the nonce.
pub const NONCE_PARAM: &str = "r";

/// A fresh nonce: 128 random bits as hex. `Debug` never shows it.
#[derive(Debug)]
pub struct RegistrationNonce(SecretString);

impl RegistrationNonce {
    pub fn generate() -> RegistrationNonce {
        RegistrationNonce(hex::encode(rand::random::<[u8; 16]>()).into())
    }

    /// What the store keeps instead of the nonce.
    pub fn hash(&self) -> String {
        nonce_hash(self.0.expose_secret())
    }

    /// `base` with the nonce as its query: the target only Asana learns.
    pub fn target(&self, base: &str) -> String {
        format!("{base}?{NONCE_PARAM}={}", self.0.expose_secret())
    }
}

/// SHA-256 of `nonce`, as lowercase hex.
pub fn nonce_hash(nonce: &str) -> String {
    hex::encode(Sha256::digest(nonce.as_bytes()))
}

/// Whether `given` is the nonce whose hash is `stored_hash`, compared in constant time.
pub fn nonce_matches(given: &str, stored_hash: &str) -> bool {
    bool::from(nonce_hash(given).as_bytes().ct_eq(stored_hash.as_bytes()))
}

/// The nonce in a request's query string (`r=…`), if there is exactly one.
pub fn nonce_in_query(query: Option<&str>) -> Option<String> {
    let mut values = url::form_urlencoded::parse(query?.as_bytes())
        .filter(|(key, _)| key == NONCE_PARAM)
        .map(|(_, value)| value.into_owned());
    let first = values.next()?;
    values.next().is_none().then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nonce_of(target: &str) -> String {
        nonce_in_query(target.split_once('?').map(|(_, q)| q)).expect("a nonce")
    }

    #[test]
    fn a_nonce_is_128_random_bits_in_the_target_and_only_its_hash_is_kept() {
        let nonce = RegistrationNonce::generate();
        let target = nonce.target("https://b.example/webhooks/asana/proj");
        let given = nonce_of(&target);
        assert_eq!(given.len(), 32);
        assert!(given.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(target.starts_with("https://b.example/webhooks/asana/proj?r="));
        assert_ne!(nonce.hash(), given);
        assert!(nonce_matches(&given, &nonce.hash()));
        assert_ne!(given, nonce_of(&RegistrationNonce::generate().target("x")));
        assert!(!format!("{nonce:?}").contains(&given), "Debug hides it");
    }

    #[test]
    fn only_the_right_nonce_matches() {
        let nonce = RegistrationNonce::generate();
        let given = nonce_of(&nonce.target("x"));
        let hash = nonce.hash();
        assert!(!nonce_matches(&given.to_uppercase(), &hash));
        assert!(!nonce_matches("", &hash));
        assert!(
            !nonce_matches(&given, ""),
            "an old window without a nonce admits nothing"
        );
        assert!(!nonce_matches(&hash, &hash));
    }

    #[test]
    fn the_nonce_is_read_from_the_query_once() {
        assert_eq!(nonce_in_query(Some("r=abc")), Some("abc".into()));
        assert_eq!(nonce_in_query(Some("x=1&r=a%62c")), Some("abc".into()));
        assert_eq!(nonce_in_query(Some("r=a&r=b")), None, "ambiguous");
        assert_eq!(nonce_in_query(Some("rr=a")), None);
        assert_eq!(nonce_in_query(None), None);
    }
}

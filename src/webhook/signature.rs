//! `X-Hook-Signature`: lowercase hex HMAC-SHA256 of the raw body, keyed with the secret string's bytes.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("X-Hook-Signature is not hex")]
    NotHex,
    #[error("X-Hook-Signature does not match the body")]
    Mismatch,
}

/// Checks `signature_hex` (the header's raw bytes) against the body in constant time. Upper-case
/// hex is accepted, since hex decoding is case-insensitive; a wrong length is a mismatch.
pub fn verify_signature(
    secret: &[u8],
    body: &[u8],
    signature_hex: impl AsRef<[u8]>,
) -> Result<(), SignatureError> {
    let expected =
        hex::decode(signature_hex.as_ref().trim_ascii()).map_err(|_| SignatureError::NotHex)?;
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// The signature Asana would send for `body`; used by `webhooks` tooling and tests.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn known_vector_from_rfc_4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let sig = sign(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            verify_signature(b"Jefe", b"what do ya want for nothing?", &sig),
            Ok(())
        );
    }

    #[test]
    fn accepts_matching_signature_in_either_case() {
        let body = br#"{"events":[]}"#;
        let sig = sign(SECRET, body);
        assert_eq!(verify_signature(SECRET, body, &sig), Ok(()));
        assert_eq!(verify_signature(SECRET, body, sig.to_uppercase()), Ok(()));
    }

    #[test]
    fn rejects_a_changed_body_or_key() {
        let body = br#"{"events":[]}"#;
        let sig = sign(SECRET, body);
        assert_eq!(
            verify_signature(SECRET, br#"{"events":[] }"#, &sig),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(b"other", body, &sig),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn rejects_non_hex_and_wrong_length() {
        let body = b"{}";
        assert_eq!(
            verify_signature(SECRET, body, "zz"),
            Err(SignatureError::NotHex)
        );
        assert_eq!(
            verify_signature(SECRET, body, "abc"),
            Err(SignatureError::NotHex)
        );
        let sig = sign(SECRET, body);
        assert_eq!(
            verify_signature(SECRET, body, &sig[..62]),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(SECRET, body, format!("{sig}00")),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(SECRET, body, ""),
            Err(SignatureError::Mismatch)
        );
    }
}

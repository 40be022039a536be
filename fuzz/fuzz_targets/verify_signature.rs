//! `X-Hook-Signature` checking, on (secret, body, signature) built by `arbitrary`.
//!
//! Invariants checked:
//! - neither `sign` nor `verify_signature` panics;
//! - `sign` gives 64 lowercase hex digits and is deterministic;
//! - the correct signature verifies, upper-cased and in any mix of cases too;
//! - changing any one hex digit of it to another digit gives `Mismatch`; dropping its last
//!   two digits or appending `00` gives `Mismatch`, dropping one digit gives `NotHex`;
//! - flipping any one bit of the body, or of a non-empty secret, gives `Mismatch`;
//! - the fuzzer's own signature bytes are refused unless they equal the correct signature ignoring
//!   ASCII case, after trimming ASCII whitespace (`trim_ascii`, as the function does); the error is
//!   `NotHex` exactly when the trimmed bytes are not hex digits of an even count, `Mismatch`
//!   otherwise.
#![no_main]

use arbitrary::Arbitrary;
use asana_docspace_bridge::webhook::signature::{SignatureError, sign, verify_signature};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    /// Which hex digit of the correct signature to change (mod 64), and to what (another digit).
    flip_at: u8,
    flip_to: u8,
    /// Bit `i` upper-cases digit `i` of the correct signature.
    case_mask: u64,
    /// Which bit of the body / secret to flip.
    bit: u32,
    secret: &'a [u8],
    /// The `X-Hook-Signature` header's raw bytes.
    signature: &'a [u8],
    body: &'a [u8],
}

fuzz_target!(|input: Input<'_>| {
    let Input {
        flip_at,
        flip_to,
        case_mask,
        bit,
        secret,
        signature,
        body,
    } = input;

    let correct = sign(secret, body);
    assert_eq!(correct, sign(secret, body), "sign is not deterministic");
    assert!(
        correct.len() == 64
            && correct
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "sign gave {correct:?}"
    );

    // The correct signature, in any case.
    assert_eq!(verify_signature(secret, body, &correct), Ok(()));
    assert_eq!(
        verify_signature(secret, body, &correct.to_ascii_uppercase()),
        Ok(())
    );
    let mixed: String = correct
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if case_mask >> (i % 64) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect();
    assert_eq!(
        verify_signature(secret, body, &mixed),
        Ok(()),
        "mixed case {mixed}"
    );

    // One hex digit changed to another value (in either case).
    let at = usize::from(flip_at) % 64;
    let old = u8::from_str_radix(&correct[at..=at], 16).unwrap();
    let new = (old + 1 + flip_to % 15) % 16;
    let mut digit = format!("{new:x}");
    if flip_to & 0x80 != 0 {
        digit.make_ascii_uppercase();
    }
    let flipped = format!("{}{digit}{}", &correct[..at], &correct[at + 1..]);
    assert_ne!(old, new);
    assert_eq!(
        verify_signature(secret, body, &flipped),
        Err(SignatureError::Mismatch),
        "digit {at} changed: {flipped}"
    );

    // Wrong lengths.
    assert_eq!(
        verify_signature(secret, body, &correct[..62]),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify_signature(secret, body, &correct[..63]),
        Err(SignatureError::NotHex)
    );
    assert_eq!(
        verify_signature(secret, body, &format!("{correct}00")),
        Err(SignatureError::Mismatch)
    );

    // Another body, or another secret, one bit apart.
    if !body.is_empty() {
        let mut other = body.to_vec();
        let i = bit as usize % (other.len() * 8);
        other[i / 8] ^= 1 << (i % 8);
        assert_eq!(
            verify_signature(secret, &other, &correct),
            Err(SignatureError::Mismatch),
            "body bit {i} flipped"
        );
    }
    if !secret.is_empty() {
        let mut other = secret.to_vec();
        let i = bit as usize % (other.len() * 8);
        other[i / 8] ^= 1 << (i % 8);
        assert_eq!(
            verify_signature(&other, body, &correct),
            Err(SignatureError::Mismatch),
            "secret bit {i} flipped"
        );
    }

    // The fuzzer's own signature bytes.
    let result = verify_signature(secret, body, signature);
    let trimmed = signature.trim_ascii();
    if trimmed.eq_ignore_ascii_case(correct.as_bytes()) {
        assert_eq!(
            result,
            Ok(()),
            "{:?} is the correct signature",
            signature.escape_ascii().to_string()
        );
    } else {
        let is_hex = trimmed.len() % 2 == 0 && trimmed.iter().all(u8::is_ascii_hexdigit);
        let want = if is_hex {
            SignatureError::Mismatch
        } else {
            SignatureError::NotHex
        };
        assert_eq!(
            result,
            Err(want),
            "signature {:?}",
            signature.escape_ascii().to_string()
        );
    }
});

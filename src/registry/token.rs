//! Operator tokens: generated from the OS random source, shown once, kept
//! only as SHA-256 hashes, checked in constant time.
//!
//! A plain SHA-256 (no salt, no slow hash) is enough here because tokens are
//! 256 random bits, not passwords: there is no dictionary to try, and a
//! leaked store does not let anyone find a token from its hash.
//!
//! [`digests_equal`] is also the admin token's comparison (`admin/auth.rs`),
//! so there is one constant-time comparison in the crate.

use base64::Engine;
use rand::TryRngCore;
use sha2::{Digest, Sha256};

/// What every operator token starts with: recognisable in a leaked log or
/// by a secret scanner, and never mistaken for the admin token.
pub const TOKEN_PREFIX: &str = "mgo_";

/// Random bytes in a token (256 bits).
const TOKEN_BYTES: usize = 32;

/// The OS random source failed; no token can be made safely.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random source failed: {0}")]
pub struct RandomError(String);

/// A new token: [`TOKEN_PREFIX`] and 32 bytes from the OS random source,
/// URL-safe base64 without padding (47 characters in all).
pub fn generate() -> Result<String, RandomError> {
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| RandomError(e.to_string()))?;
    Ok(format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// The hash kept in the store: lowercase hex of SHA-256 of the token.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether `given` is the token whose hash is `stored_hash`. Constant time
/// over the digests, whatever `given` is; a stored hash that is not 64 hex
/// digits (a hand-edited store) matches nothing.
pub fn verify(given: &str, stored_hash: &str) -> bool {
    let mut stored = [0u8; 32];
    if hex::decode_to_slice(stored_hash, &mut stored).is_err() {
        return false;
    }
    digests_equal(&Sha256::digest(given.as_bytes()).into(), &stored)
}

/// Compares two SHA-256 digests without an early exit, so the time taken
/// says nothing about where they differ. Comparing digests rather than the
/// secrets themselves also hides the secret's length.
pub fn digests_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_url_safe_and_distinct() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a, b);
        for t in [&a, &b] {
            let body = t.strip_prefix(TOKEN_PREFIX).expect("prefix");
            let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(body)
                .unwrap();
            assert_eq!(raw.len() * 8, 256, "at least 128 bits of randomness");
            assert!(t
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
        }
    }

    #[test]
    fn verify_accepts_only_the_token_behind_the_hash() {
        let t = generate().unwrap();
        let h = hash(&t);
        assert_eq!(h.len(), 64);
        assert!(
            !h.contains(&t[TOKEN_PREFIX.len()..]),
            "the hash is not the token"
        );
        assert!(verify(&t, &h));
        assert!(!verify(&format!("{t}x"), &h));
        assert!(!verify(&t[..t.len() - 1], &h));
        assert!(!verify("", &h));
        assert!(!verify(&h, &h), "the hash itself is no token");
        assert!(!verify(&t, "not hex"));
        assert!(!verify(&t, &h[..62]));
    }

    #[test]
    fn digests_equal_compares_every_byte() {
        let a = [7u8; 32];
        for i in 0..32 {
            let mut b = a;
            b[i] ^= 0x80;
            assert!(!digests_equal(&a, &b), "byte {i}");
        }
        assert!(digests_equal(&a, &a));
    }
}

//! The admin token: writes carry `Authorization: Bearer <token>`.

use axum::http::{HeaderMap, StatusCode};
use sha2::{Digest, Sha256};

/// Checks the bearer token in constant time: no early exit on the first wrong
/// byte, and no early exit on a wrong length either (see [`token_matches`]).
/// The scheme name is case-insensitive (RFC 7235 section 2.1: `bearer`, `BEARER`).
pub fn check(headers: &HeaderMap, token: Option<&str>) -> Result<(), (StatusCode, &'static str)> {
    let Some(token) = token else {
        return Err((
            StatusCode::FORBIDDEN,
            "admin API writes are disabled: set admin.token in the config\n",
        ));
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_credentials);
    match given {
        Some(g) if token_matches(g, token) => Ok(()),
        Some(_) => Err((StatusCode::FORBIDDEN, "wrong admin token\n")),
        None => Err((
            StatusCode::UNAUTHORIZED,
            "this admin API call needs 'Authorization: Bearer <token>'\n",
        )),
    }
}

/// The credentials of an `Authorization: Bearer <token>` value; the scheme
/// name matches in any case, and one or more spaces may follow it.
fn bearer_credentials(value: &str) -> Option<&str> {
    let (scheme, rest) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

/// Compares the SHA-256 digests of both tokens, so the comparison always runs
/// over 32 bytes whatever the given token's length: comparing the tokens
/// themselves returned early on a length mismatch, which told a caller timing
/// the answers how long the token is.
fn token_matches(given: &str, token: &str) -> bool {
    let (a, b) = comparands(given, token);
    crate::registry::token::digests_equal(&a, &b)
}

fn comparands(given: &str, token: &str) -> ([u8; 32], [u8; 32]) {
    (
        Sha256::digest(given.as_bytes()).into(),
        Sha256::digest(token.as_bytes()).into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(v: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(axum::http::header::AUTHORIZATION, v.parse().unwrap());
        m
    }

    #[test]
    fn token_rules() {
        let t = Some("0123456789abcdef");
        assert!(check(&h("Bearer 0123456789abcdef"), t).is_ok());
        assert_eq!(
            check(&h("Bearer 0123456789abcdeX"), t).unwrap_err().0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            check(&h("Basic xyz"), t).unwrap_err().0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            check(&HeaderMap::new(), t).unwrap_err().0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            check(&h("Bearer anything"), None).unwrap_err().0,
            StatusCode::FORBIDDEN
        );
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        let t = Some("0123456789abcdef");
        for v in [
            "bearer 0123456789abcdef",
            "BEARER 0123456789abcdef",
            "BeArEr  0123456789abcdef",
        ] {
            assert!(check(&h(v), t).is_ok(), "{v:?}");
        }
        // Another scheme, or the scheme glued to the token, is not a bearer token.
        for v in ["Bearer0123456789abcdef", "Bearerx 0123456789abcdef"] {
            assert_eq!(
                check(&h(v), t).unwrap_err().0,
                StatusCode::UNAUTHORIZED,
                "{v:?}"
            );
        }
    }

    #[test]
    fn comparison_length_does_not_depend_on_the_given_token() {
        let token = "0123456789abcdef";
        for given in ["", "0", "0123456789abcde", token, &"x".repeat(4096)] {
            let (a, b) = comparands(given, token);
            // Both sides are fixed-size digests: the work is the same for every length.
            assert_eq!((a.len(), b.len()), (32, 32));
            assert_eq!(a == b, given == token, "{given:?}");
            assert_eq!(token_matches(given, token), given == token, "{given:?}");
        }
    }
}

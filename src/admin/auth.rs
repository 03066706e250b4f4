//! The admin token: writes carry `Authorization: Bearer <token>`.

use axum::http::{HeaderMap, StatusCode};

/// Checks the bearer token in constant time (no early exit on the first wrong byte).
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
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(g) if constant_time_eq(g.as_bytes(), token.as_bytes()) => Ok(()),
        Some(_) => Err((StatusCode::FORBIDDEN, "wrong admin token\n")),
        None => Err((
            StatusCode::UNAUTHORIZED,
            "this admin API call needs 'Authorization: Bearer <token>'\n",
        )),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
}

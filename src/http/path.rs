//! Request paths: decoded, checked and normalised before anything else sees them.
//!
//! A path is percent-decoded once, split into segments, and refused (400) when
//! it could escape the tree or confuse a mirror: `..` in any spelling, NUL and
//! other control bytes, backslashes (a separator to some servers), invalid
//! UTF-8, or more bytes than the configured limit. Empty and `.` segments are
//! dropped, so `//a/./b` is `a/b`. The result is re-encoded one way, so the
//! URL sent to a mirror is the same whatever spelling the client used.

use std::fmt;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

/// Bytes escaped in a path segment when building a mirror URL: everything but
/// unreserved characters and the sub-delimiters that are safe in a path.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b';')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// The bytes of a path that [`SEGMENT`] leaves as they are, the separator
/// included: printable ASCII but for space and the escaped punctuation.
/// A property test holds it to `SEGMENT`.
const PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0x21;
    while b < 0x7f {
        t[b] = !matches!(
            b as u8,
            b'"' | b'#'
                | b'%'
                | b';'
                | b'<'
                | b'>'
                | b'?'
                | b'['
                | b'\\'
                | b']'
                | b'^'
                | b'`'
                | b'{'
                | b'|'
                | b'}'
        );
        b += 1;
    }
    t
};

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    TooLong,
    NotAbsolute,
    Traversal,
    ControlCharacter,
    Backslash,
    InvalidUtf8,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::TooLong => "the path is longer than this server accepts",
            PathError::NotAbsolute => "the path must start with /",
            PathError::Traversal => "the path contains a '..' segment",
            PathError::ControlCharacter => "the path contains a NUL or control character",
            PathError::Backslash => "the path contains a backslash",
            PathError::InvalidUtf8 => "the path is not valid UTF-8 once decoded",
        })
    }
}

/// A checked path: no leading slash, single slashes, no `.` or `..` segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanPath {
    /// Decoded, e.g. `releases/1.0/file name.iso`; empty for the root.
    decoded: String,
    /// The same, percent-encoded for appending to a base URL that ends in
    /// `/`; `None` when that is `decoded` itself (most paths: one string, not two).
    encoded: Option<String>,
}

impl CleanPath {
    /// Checks and normalises the raw path of a request URI (still percent-encoded).
    pub fn parse(raw: &str, max_bytes: usize) -> Result<CleanPath, PathError> {
        if raw.len() > max_bytes {
            return Err(PathError::TooLong);
        }
        if !raw.starts_with('/') {
            return Err(PathError::NotAbsolute);
        }
        if let Some(plain) = CleanPath::plain(raw) {
            return Ok(plain);
        }
        CleanPath::decode(raw)
    }

    /// The common case without decoding: a path of bytes that need no
    /// escaping and no dropping is already its own normal form. `None` when
    /// anything in it needs [`CleanPath::decode`]'s work (or its refusal).
    fn plain(raw: &str) -> Option<CleanPath> {
        let rest = raw.strip_prefix('/')?;
        let bytes = rest.as_bytes();
        let mut segment = 0;
        for (i, &b) in bytes.iter().enumerate() {
            if b == b'/' {
                // An empty segment or a dot segment is `decode`'s to drop or refuse.
                if matches!(&bytes[segment..i], b"" | b"." | b"..") {
                    return None;
                }
                segment = i + 1;
            } else if !PLAIN[usize::from(b)] {
                return None;
            }
        }
        // The last segment may be empty: a trailing slash (or the root) is kept.
        if matches!(&bytes[segment..], b"." | b"..") {
            return None;
        }
        Some(CleanPath {
            decoded: rest.to_owned(),
            encoded: None,
        })
    }

    /// The general case: decode, check, drop empty and `.` segments, re-encode.
    fn decode(raw: &str) -> Result<CleanPath, PathError> {
        let bytes: Vec<u8> = percent_decode_str(raw).collect();
        if bytes.iter().any(|&b| b < 0x20 || b == 0x7f) {
            return Err(PathError::ControlCharacter);
        }
        if bytes.contains(&b'\\') {
            return Err(PathError::Backslash);
        }
        let text = String::from_utf8(bytes).map_err(|_| PathError::InvalidUtf8)?;
        let trailing_slash = text.ends_with('/') && text.len() > 1;
        let mut decoded = String::with_capacity(text.len());
        let mut encoded = String::with_capacity(raw.len());
        for seg in text.split('/') {
            match seg {
                "" | "." => continue,
                ".." => return Err(PathError::Traversal),
                _ => {}
            }
            if !decoded.is_empty() {
                decoded.push('/');
                encoded.push('/');
            }
            decoded.push_str(seg);
            encoded.extend(utf8_percent_encode(seg, SEGMENT));
        }
        if trailing_slash && !decoded.is_empty() {
            decoded.push('/');
            encoded.push('/');
        }
        let encoded = (encoded != decoded).then_some(encoded);
        Ok(CleanPath { decoded, encoded })
    }

    /// The decoded path without its leading slash.
    pub fn as_str(&self) -> &str {
        &self.decoded
    }

    /// The path percent-encoded, without its leading slash.
    pub fn encoded(&self) -> &str {
        self.encoded.as_deref().unwrap_or(&self.decoded)
    }

    /// True for `/` (and `//`, `/./`...).
    pub fn is_root(&self) -> bool {
        self.decoded.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(raw: &str) -> String {
        CleanPath::parse(raw, 4096).unwrap().encoded().to_string()
    }

    fn err(raw: &str) -> PathError {
        CleanPath::parse(raw, 4096).unwrap_err()
    }

    proptest! {
        // The shortcut for plain paths gives what the general way gives.
        #[test]
        fn plain_paths_are_their_own_normal_form(raw in "/[ -~]{0,12}|/[a-z./%~ ?#0-9F]{0,12}") {
            if let Some(plain) = CleanPath::plain(&raw) {
                prop_assert_eq!(Ok(plain), CleanPath::decode(&raw));
            }
        }
    }

    #[test]
    fn plain_bytes_are_those_segment_leaves_alone() {
        for b in 0u8..=255 {
            let s = [b];
            let kept = match std::str::from_utf8(&s) {
                Ok(text) => b == b'/' || utf8_percent_encode(text, SEGMENT).to_string() == text,
                Err(_) => false,
            };
            assert_eq!(PLAIN[usize::from(b)], kept, "byte {b:#04x}");
        }
    }

    #[test]
    fn the_shortcut_takes_plain_paths_only() {
        assert!(CleanPath::plain("/releases/1.0/demo-1.0.iso").is_some());
        assert!(CleanPath::plain("/dir/").is_some());
        assert!(CleanPath::plain("/").is_some());
        for raw in [
            "//a",
            "/a//b",
            "/./a",
            "/a/..",
            "/a%20b",
            "/%25",
            "/?",
            "/a b",
            "/caf\u{e9}",
            "/a?b",
        ] {
            assert!(CleanPath::plain(raw).is_none(), "{raw}");
        }
    }

    #[test]
    fn normalises() {
        assert_eq!(ok("/a/b.iso"), "a/b.iso");
        assert_eq!(ok("//a///./b.iso"), "a/b.iso");
        assert_eq!(ok("/dir/"), "dir/");
        assert_eq!(ok("/"), "");
        assert_eq!(ok("/file%20name.iso"), "file%20name.iso");
        assert_eq!(ok("/file name.iso"), "file%20name.iso");
        assert_eq!(ok("/caf%C3%A9/x"), "caf%C3%A9/x");
        assert_eq!(ok("/a+b/c~d_e-f.g"), "a+b/c~d_e-f.g");
        // A decoded '?' or '#' must stay part of the path at the mirror.
        assert_eq!(ok("/what%3F/x%23y"), "what%3F/x%23y");
        // An encoded slash is a separator after decoding: one spelling for the mirror.
        assert_eq!(ok("/a%2Fb"), "a/b");
    }

    #[test]
    fn refuses_traversal_in_every_spelling() {
        for raw in [
            "/../etc/passwd",
            "/a/../../b",
            "/%2e%2e/x",
            "/%2E%2E/x",
            "/a/%2e%2e",
            "/.%2e/x",
            "/a%2F..%2Fb",
            "/..",
        ] {
            assert_eq!(err(raw), PathError::Traversal, "{raw}");
        }
    }

    #[test]
    fn refuses_bad_bytes() {
        assert_eq!(err("/a%00b"), PathError::ControlCharacter);
        assert_eq!(err("/a%0Ab"), PathError::ControlCharacter);
        assert_eq!(err("/a%5C..%5Cb"), PathError::Backslash);
        assert_eq!(err("/a%FFb"), PathError::InvalidUtf8);
        assert_eq!(err("a/b"), PathError::NotAbsolute);
        assert_eq!(
            CleanPath::parse(&format!("/{}", "a".repeat(5000)), 4096).unwrap_err(),
            PathError::TooLong
        );
    }

    proptest! {
        /// Whatever comes in, what goes out has no traversal and re-parses to itself.
        #[test]
        fn output_is_clean_and_stable(raw in "/[a-zA-Z0-9%./_ -]{0,64}") {
            if let Ok(p) = CleanPath::parse(&raw, 4096) {
                prop_assert!(!p.as_str().split('/').any(|s| s == ".." || s == "."));
                prop_assert!(!p.encoded().starts_with('/'));
                let again = CleanPath::parse(&format!("/{}", p.encoded()), 4096).unwrap();
                prop_assert_eq!(again, p);
            }
        }
    }
}

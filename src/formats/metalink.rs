//! Metalink v4 (RFC 5854) for download managers such as aria2c, and the
//! RFC 6249 `Link: rel=describedby` header that points clients to it.
//!
//! The XML is written by hand: the document is small and fixed in shape, and
//! every piece of outside text goes through one escaper, [`escape`].

use std::fmt::Write as _;
use std::time::SystemTime;

use super::{rfc3339, Listing};

/// The media type of a Metalink v4 document (RFC 5854, section 7).
pub const MEDIA_TYPE: &str = "application/metalink4+xml";

/// RFC 5854 caps `priority` at 999999.
const MAX_PRIORITY: usize = 999_999;

/// The Metalink v4 document for `listing`.
///
/// - `origin_name`: the absolute URL this document is served from, written as
///   `<origin dynamic="true">` so that clients may fetch a fresher copy there;
///   left out when empty.
/// - `published`: when the file was published (`<published>`, UTC); left
///   out outside the years 1970..=9999, which `xsd:dateTime` here cannot say.
///
/// One `<url>` per ranked mirror: `priority` is the rank (1 = best) and
/// `location` the mirror's country code in lowercase, left out when unknown.
/// `<size>` and `<hash type="sha-256">` appear when the origin's index knows
/// them. With no ranked mirror the `<file>` has no `<url>`: RFC 5854 wants at
/// least one, so the caller should answer otherwise (fallback or 503).
pub fn metalink(listing: &Listing, origin_name: &str, published: SystemTime) -> String {
    let mut out = String::with_capacity(512 + 160 * listing.mirrors.len());
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str("<metalink xmlns=\"urn:ietf:params:xml:ns:metalink\">\n");
    let _ = writeln!(
        out,
        "  <generator>mirrorgate/{}</generator>",
        env!("CARGO_PKG_VERSION")
    );
    if !origin_name.is_empty() {
        let _ = writeln!(
            out,
            "  <origin dynamic=\"true\">{}</origin>",
            escape(origin_name)
        );
    }
    if let Some(t) = rfc3339(published) {
        let _ = writeln!(out, "  <published>{t}</published>");
    }
    let _ = writeln!(out, "  <file name=\"{}\">", escape(file_name(listing)));
    if let Some(info) = &listing.file {
        let _ = writeln!(out, "    <size>{}</size>", info.size);
        if let Some(hash) = &info.sha256 {
            let _ = writeln!(
                out,
                "    <hash type=\"sha-256\">{}</hash>",
                hex::encode(hash)
            );
        }
    }
    for m in &listing.mirrors {
        let _ = write!(
            out,
            "    <url priority=\"{}\"",
            m.rank.clamp(1, MAX_PRIORITY)
        );
        if let Some(cc) = m.country {
            let _ = write!(
                out,
                " location=\"{}\"",
                escape(&cc.as_str().to_ascii_lowercase())
            );
        }
        let _ = writeln!(out, ">{}</url>", escape(&m.url));
    }
    out.push_str("  </file>\n</metalink>\n");
    out
}

/// The `name` of the `<file>`: the last segment of the path. RFC 5854 lets a
/// name carry directories, but clients then create them; the basename is what
/// a person downloading one file expects.
fn file_name(listing: &Listing) -> &str {
    let name = listing.path.trim_end_matches('/').rsplit('/').next();
    match name {
        Some(n) if !n.is_empty() => n,
        // The root has no name; a placeholder keeps the document valid.
        _ => "download",
    }
}

/// Escapes text for XML 1.0 character data and attribute values alike.
///
/// The five markup characters become entities. Tab, LF and CR become
/// character references so that attribute-value normalisation does not turn
/// them into spaces. Characters XML 1.0 forbids (other C0 controls, U+FFFE,
/// U+FFFF) cannot be written even as references, so they become U+FFFD.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\u{0}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// The RFC 6249 link to the Metalink of a file: for the `Link` header of a
/// redirect, so that clients such as aria2c can fetch the whole mirror list.
///
/// `path_encoded` is the percent-encoded path (with or without its leading
/// slash). The target is an absolute-path reference, `</path?meta4>`: it
/// resolves against the URL the client asked mirrorgate for (RFC 8288,
/// section 3.2), so it is right whatever host name and scheme the client used,
/// which mirrorgate behind a proxy cannot always know. Any byte that would end
/// the `<...>` or is not allowed in a header is percent-encoded.
pub fn describedby_link(path_encoded: &str) -> String {
    let mut out = Vec::with_capacity(path_encoded.len() + 64);
    push_describedby_link(&mut out, path_encoded);
    // Only ASCII was written: every other byte was percent-encoded.
    String::from_utf8_lossy(&out).into_owned()
}

/// Bytes that would end the `<...>` of a link or are not allowed in a header.
const ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = b <= 0x20
            || b >= 0x7f
            || matches!(
                b as u8,
                b'<' | b'>' | b'"' | b'#' | b'?' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}'
            );
        b += 1;
    }
    t
};

/// [`describedby_link`], appended to `out` (the redirect writes all its
/// header values into one buffer).
pub fn push_describedby_link(out: &mut Vec<u8>, path_encoded: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.extend_from_slice(b"</");
    let path = path_encoded.trim_start_matches('/').as_bytes();
    // A path from the request path is already encoded: copied whole.
    if path.iter().all(|&b| !ESCAPE[usize::from(b)]) {
        out.extend_from_slice(path);
    } else {
        for &b in path {
            if ESCAPE[usize::from(b)] {
                out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
            } else {
                out.push(b);
            }
        }
    }
    out.extend_from_slice(b"?meta4>; rel=describedby; type=\"");
    out.extend_from_slice(MEDIA_TYPE.as_bytes());
    out.push(b'"');
}

//! A redirect, built once and then either turned into hyper's response or
//! written straight onto the wire by the direct HTTP/1.1 path (`conn.rs`).
//!
//! A redirect to a mirror is most of what the public listener answers, and
//! its headers (`Location`, `Cache-Control`, one `Link` line per alternative,
//! the digests) are most of its cost: so every value is written into one
//! buffer, with no header map in between when the direct path writes it.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;

use super::body::ResponseBody;
use super::files;
use super::path::CleanPath;
use super::Resp;
use crate::config::MAX_LINK_MIRRORS;
use crate::content::FileInfo;
use crate::formats;
use crate::state::Snapshot;

/// A redirect: its status, `Location`, `Link` lines and digests.
pub struct Redirect {
    status: StatusCode,
    /// The header lines after the status line, as HTTP/1.1 writes them:
    /// `location`, `cache-control`, then one `link` line per value. A `Vec`
    /// rather than `Bytes`: the direct path only copies it out, and a `Vec`
    /// with spare capacity would cost `Bytes` one more allocation.
    block: Vec<u8>,
    /// Where each value stands in `block`: 0 is `Location`, then the links.
    values: [(u32, u32); MAX_LINK_MIRRORS + 2],
    /// How many of `values` are set.
    count: usize,
    digest: Option<[(HeaderName, HeaderValue); 2]>,
}

/// Builds the header block of a redirect.
struct Block {
    buf: Vec<u8>,
    values: [(u32, u32); MAX_LINK_MIRRORS + 2],
    count: usize,
}

impl Block {
    fn new(capacity: usize) -> Block {
        Block {
            buf: Vec::with_capacity(capacity),
            values: [(0, 0); MAX_LINK_MIRRORS + 2],
            count: 0,
        }
    }

    /// Starts a header line; the bytes pushed until `end_line` are its value.
    fn start_line(&mut self, name_colon_space: &[u8]) {
        self.start_line_with(name_colon_space, name_colon_space.len());
    }

    /// Starts a header line with `opening`, whose value starts after its
    /// first `name_len` bytes (`name: `).
    fn start_line_with(&mut self, opening: &[u8], name_len: usize) {
        self.values[self.count].0 = (self.buf.len() + name_len) as u32;
        self.buf.extend_from_slice(opening);
    }

    fn end_line(&mut self) {
        self.values[self.count].1 = self.buf.len() as u32;
        self.count += 1;
        self.buf.extend_from_slice(b"\r\n");
    }
}

impl Redirect {
    /// To `order[0]`, naming the next mirrors of `order` and the Metalink in
    /// `Link` lines. `None` if the path could not stand in a header value,
    /// which an encoded path never does (checked, not assumed: the direct
    /// path writes these bytes as they are). Mirror URLs need no check: a
    /// parsed URL never holds a control character or a space.
    pub fn to_mirror(snap: &Snapshot, order: &[usize], path: &CleanPath) -> Option<Redirect> {
        let chosen = snap.mirrors.get(*order.first()?)?;
        let encoded = path.encoded().as_bytes();
        if !valid_value(encoded) {
            return None;
        }
        // The alternatives named: a redirect's order holds at most link_mirrors.
        let alternatives = &order[1..order.len().min(1 + MAX_LINK_MIRRORS)];
        let url_len = |i: usize| snap.mirrors[i].mirror.url.as_str().len() + encoded.len();
        let capacity = url_len(order[0])
            + alternatives
                .iter()
                .map(|&i| url_len(i) + snap.mirrors[i].link_geo.len() + 40)
                .sum::<usize>()
            + encoded.len()
            + 160;
        let mut b = Block::new(capacity);
        b.start_line(b"location: ");
        b.buf
            .extend_from_slice(chosen.mirror.url.as_str().as_bytes());
        b.buf.extend_from_slice(encoded);
        b.end_line();
        b.buf.extend_from_slice(CACHE_CONTROL_LINE);
        // RFC 6249: one header line per alternative, because some clients
        // (aria2c) read only the first link of a comma-joined header.
        for (k, &i) in alternatives.iter().enumerate() {
            let e = &snap.mirrors[i];
            b.start_line_with(&e.link_open, b"link: ".len());
            b.buf.extend_from_slice(encoded);
            b.buf.extend_from_slice(b">; rel=duplicate; pri=");
            push_decimal(&mut b.buf, k + 1);
            b.buf.extend_from_slice(e.link_geo.as_bytes());
            b.end_line();
        }
        // RFC 6249: the Metalink that lists every mirror, for clients that can use several.
        b.start_line(b"link: ");
        formats::push_describedby_link(&mut b.buf, path.encoded());
        b.end_line();
        chosen.counters.redirects.inc();
        Some(Redirect::from_block(snap.config.redirect_status, b))
    }

    /// To `target` alone (the fallback); `None` if it could not be a header value.
    pub fn to(status: StatusCode, target: &str) -> Option<Redirect> {
        if !valid_value(target.as_bytes()) {
            return None;
        }
        let mut b = Block::new(target.len() + 64);
        b.start_line(b"location: ");
        b.buf.extend_from_slice(target.as_bytes());
        b.end_line();
        b.buf.extend_from_slice(CACHE_CONTROL_LINE);
        Some(Redirect::from_block(status, b))
    }

    fn from_block(status: StatusCode, b: Block) -> Redirect {
        Redirect {
            status,
            block: b.buf,
            values: b.values,
            count: b.count,
            digest: None,
        }
    }

    /// Adds `Digest` and `Repr-Digest` when the file's hash is known.
    pub fn with_digest(mut self, info: Option<&FileInfo>) -> Redirect {
        self.digest = files::digest_headers(info);
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn location(&self) -> &[u8] {
        let (a, b) = self.values[0];
        &self.block[a as usize..b as usize]
    }

    fn links(&self) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
        self.values[1..self.count]
            .iter()
            .map(|&(a, b)| a as usize..b as usize)
    }

    /// The response hyper writes.
    pub fn into_response(self) -> Resp {
        // No body: every client follows `Location`, and bytes on the wire are
        // most of the cost of an answer this small.
        let mut resp = Response::new(ResponseBody::Full(Full::new(Bytes::new())));
        *resp.status_mut() = self.status;
        // Sized once for Location, Cache-Control, digests and the Link lines.
        let mut h = HeaderMap::with_capacity(8);
        let links: Vec<_> = self.links().collect();
        let (a, b) = self.values[0];
        let block = Bytes::from(self.block);
        // Every value was checked when the redirect was built.
        if let Ok(v) = HeaderValue::from_maybe_shared(block.slice(a as usize..b as usize)) {
            h.insert(header::LOCATION, v);
        }
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-store"),
        );
        for r in links {
            if let Ok(v) = HeaderValue::from_maybe_shared(block.slice(r)) {
                h.append(header::LINK, v);
            }
        }
        for (name, value) in self.digest.into_iter().flatten() {
            h.insert(name, value);
        }
        *resp.headers_mut() = h;
        resp
    }

    /// Writes the whole HTTP/1.1 response head, the bytes hyper would write
    /// for [`Redirect::into_response`] (a test holds the two equal).
    pub fn write_h1(&self, out: &mut Vec<u8>, tail: &Tail<'_>) {
        out.reserve(self.block.len() + 200);
        status_line(out, self.status);
        out.extend_from_slice(&self.block);
        for (name, value) in self.digest.iter().flatten() {
            header_line(out, name.as_str().as_bytes(), value.as_bytes());
        }
        end_head(out, Some(0), tail, false);
    }
}

const CACHE_CONTROL_LINE: &[u8] = b"cache-control: private, no-store\r\n";

/// Every byte may stand in a header value, and none ends one (RFC 9110
/// section 5.5: no CR, LF, NUL or other control but tab).
fn valid_value(b: &[u8]) -> bool {
    b.iter().all(|&c| c == b'\t' || (c >= 0x20 && c != 0x7f))
}

/// `HTTP/1.1 302 Found\r\n`, as hyper writes it.
pub fn status_line(out: &mut Vec<u8>, status: StatusCode) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
    out.extend_from_slice(b"\r\n");
}

pub fn header_line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// What hyper adds after a response's own headers, in its order:
/// `connection: close` when the connection ends here, `content-length`
/// (left out when zero in the answer to `HEAD`, as hyper does), `date`
/// (unless the response has its own, `has_date`), and the blank line.
pub fn end_head(out: &mut Vec<u8>, content_length: Option<usize>, tail: &Tail<'_>, has_date: bool) {
    if tail.close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    if let Some(n) = content_length.filter(|&n| n > 0 || !tail.head) {
        out.extend_from_slice(b"content-length: ");
        push_decimal(out, n);
        out.extend_from_slice(b"\r\n");
    }
    if !has_date {
        header_line(out, b"date", tail.date);
    }
    out.extend_from_slice(b"\r\n");
}

/// What the end of a response head depends on besides the response.
pub struct Tail<'a> {
    /// The value of the `date` header (hyper's format, cached per second).
    pub date: &'a [u8],
    /// The request was `HEAD`.
    pub head: bool,
    /// The connection closes after this response.
    pub close: bool,
}

/// `n` in decimal, without the formatting machinery (a few per redirect).
pub fn push_decimal(buf: &mut Vec<u8>, n: usize) {
    // The priority of a link: nearly always one digit.
    if n < 10 {
        buf.push(b'0' + n as u8);
        return;
    }
    push_digits(buf, n, 10);
}

/// `n` in lower-case hexadecimal (a chunk size).
pub fn push_hex(buf: &mut Vec<u8>, n: usize) {
    push_digits(buf, n, 16);
}

fn push_digits(buf: &mut Vec<u8>, n: usize, base: usize) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    // Enough for usize in base 10 or 16.
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = n;
    loop {
        at -= 1;
        digits[at] = DIGITS[n % base];
        n /= base;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[at..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals() {
        for n in [0usize, 7, 10, 99, 100, 12345, usize::MAX] {
            let mut b = Vec::new();
            push_decimal(&mut b, n);
            assert_eq!(b, n.to_string().as_bytes());
            let mut h = Vec::new();
            push_hex(&mut h, n);
            assert_eq!(h, format!("{n:x}").as_bytes());
        }
    }

    #[test]
    fn a_target_that_cannot_be_a_header_value_is_refused() {
        assert!(Redirect::to(StatusCode::FOUND, "http://a/b\r\nx: y").is_none());
        assert!(Redirect::to(StatusCode::FOUND, "http://a/\0").is_none());
        let r = Redirect::to(StatusCode::FOUND, "http://a/b%20c").unwrap();
        assert_eq!(r.location(), b"http://a/b%20c");
        assert_eq!(r.links().count(), 0);
    }
}

//! What the download handler reads of a request, whoever parsed it: hyper
//! (an `http::Request`) or the direct HTTP/1.1 path of `conn.rs` (the
//! borrowed `httparse` head, never copied into a `HeaderMap`).
//!
//! The handler reads a handful of headers (the forwarding headers, `Accept`,
//! the no-redirect header); [`Headers`] gives it their raw lines in order.

use std::net::IpAddr;

use http::header::HeaderName;
use http::{HeaderMap, HeaderValue, Method, Request};

use crate::content::FileInfo;
use crate::proxy::ProxyRequest;

/// The header lines of a request, by name.
pub trait Headers {
    /// Every line of header `name`, in the order received, as raw bytes.
    fn lines<'a>(&'a self, name: &'a HeaderName) -> impl DoubleEndedIterator<Item = &'a [u8]> + 'a;

    /// The first line of header `name`, if readable as text.
    fn text<'a>(&'a self, name: &'a HeaderName) -> Option<&'a str> {
        self.lines(name).next().and_then(text)
    }

    fn contains(&self, name: &HeaderName) -> bool {
        self.lines(name).next().is_some()
    }
}

impl Headers for HeaderMap {
    fn lines<'a>(&'a self, name: &'a HeaderName) -> impl DoubleEndedIterator<Item = &'a [u8]> + 'a {
        self.get_all(name).into_iter().map(HeaderValue::as_bytes)
    }
}

/// The headers of a head parsed by `httparse`, borrowed from the read buffer.
pub struct RawHeaders<'h, 'b>(pub &'h [httparse::Header<'b>]);

impl Headers for RawHeaders<'_, '_> {
    fn lines<'a>(&'a self, name: &'a HeaderName) -> impl DoubleEndedIterator<Item = &'a [u8]> + 'a {
        // A linear scan: a request has a few headers, and a header map would
        // cost more to build than every lookup of a request costs here.
        let name = name.as_str().as_bytes();
        self.0
            .iter()
            .filter(move |h| h.name.as_bytes().eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }
}

/// A header value as text, by the rule of `HeaderValue::to_str`: visible
/// ASCII, spaces and tabs only; `None` for anything else (obs-text, controls).
pub fn text(v: &[u8]) -> Option<&str> {
    if v.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b)) {
        std::str::from_utf8(v).ok()
    } else {
        None
    }
}

/// Whether a request with `hosts` lines of `Host` must get 400 (RFC 9112,
/// section 3.2): HTTP/1.1 needs exactly one; an HTTP/1.0 request may have
/// none, but never more than one.
pub fn bad_host(http11: bool, hosts: usize) -> bool {
    hosts > 1 || (http11 && hosts == 0)
}

/// The body of the 400 answer to [`bad_host`].
pub const BAD_HOST: &str = "a request needs exactly one Host header (RFC 9112, section 3.2)";

/// A request as the download handler sees it.
pub trait RequestHead {
    type Headers: Headers;
    fn method(&self) -> &Method;
    /// The path of the request target, still percent-encoded.
    fn path(&self) -> &str;
    fn query(&self) -> Option<&str>;
    fn headers(&self) -> &Self::Headers;
    /// What a proxied answer needs of the request.
    fn proxy_request(
        &self,
        client: IpAddr,
        path_encoded: &str,
        info: Option<&FileInfo>,
    ) -> ProxyRequest;
}

impl<B> RequestHead for Request<B> {
    type Headers = HeaderMap;
    fn method(&self) -> &Method {
        Request::method(self)
    }
    fn path(&self) -> &str {
        self.uri().path()
    }
    fn query(&self) -> Option<&str> {
        self.uri().query()
    }
    fn headers(&self) -> &HeaderMap {
        Request::headers(self)
    }
    fn proxy_request(
        &self,
        client: IpAddr,
        path_encoded: &str,
        info: Option<&FileInfo>,
    ) -> ProxyRequest {
        ProxyRequest::new(
            Request::method(self),
            Request::headers(self),
            client,
            path_encoded,
            info,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{ACCEPT, FORWARDED};

    #[test]
    fn raw_and_mapped_headers_read_the_same() {
        let raw = [
            httparse::Header {
                name: "X-Forwarded-For",
                value: b"1.2.3.4",
            },
            httparse::Header {
                name: "accept",
                value: b"*/*",
            },
            httparse::Header {
                name: "x-forwarded-for",
                value: b"5.6.7.8, 9.9.9.9",
            },
        ];
        let mut map = HeaderMap::new();
        for h in &raw {
            map.append(
                HeaderName::from_bytes(h.name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(h.value).unwrap(),
            );
        }
        let xff = HeaderName::from_static("x-forwarded-for");
        let raw = RawHeaders(&raw);
        for name in [&xff, &ACCEPT, &FORWARDED] {
            let a: Vec<_> = raw.lines(name).collect();
            let b: Vec<_> = map.lines(name).collect();
            assert_eq!(a, b, "{name}");
            assert_eq!(raw.text(name), map.text(name));
            assert_eq!(raw.contains(name), map.contains(name));
        }
        assert_eq!(raw.lines(&xff).next_back(), Some(&b"5.6.7.8, 9.9.9.9"[..]));
    }

    #[test]
    fn http11_needs_one_host_and_nothing_has_two() {
        assert!(!bad_host(true, 1));
        assert!(bad_host(true, 0));
        assert!(bad_host(true, 2));
        assert!(!bad_host(false, 0));
        assert!(!bad_host(false, 1));
        assert!(bad_host(false, 2));
    }

    #[test]
    fn text_is_what_header_value_calls_text() {
        for v in [
            &b"plain"[..],
            b"tab\there",
            b"caf\xc3\xa9",
            b"bell\x07",
            b"del\x7f",
            b"",
        ] {
            let ours = text(v);
            let theirs = HeaderValue::from_bytes(v)
                .ok()
                .and_then(|h| h.to_str().ok().map(str::to_string));
            assert_eq!(ours.map(str::to_string), theirs, "{v:?}");
        }
    }
}

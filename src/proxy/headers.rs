//! What goes to a mirror and what comes back: the client headers that shape
//! the answer (ranges, validators, conditions) are forwarded and nothing else
//! (cookies and credentials stay here), hop-by-hop headers are removed both
//! ways, `Via` and `X-Forwarded-For` are added.

use std::net::IpAddr;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Uri};
use http_body_util::Empty;

/// This hop, in `Via` (RFC 9110 §7.6.3).
pub(crate) fn via() -> HeaderValue {
    HeaderValue::from_static("1.1 mirrorgate")
}

/// Client headers forwarded to mirrors: those that decide which bytes and
/// which representation come back. Everything else (cookies, authorization,
/// the client's own proxy headers) is of no business of a mirror.
const FORWARDED: [HeaderName; 11] = [
    header::ACCEPT,
    header::ACCEPT_ENCODING,
    header::CACHE_CONTROL,
    header::IF_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_NONE_MATCH,
    header::IF_RANGE,
    header::IF_UNMODIFIED_SINCE,
    header::PRAGMA,
    header::RANGE,
    header::USER_AGENT,
];

/// Headers that only mean something on one connection (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// True for a header that must not cross a proxy.
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str())
}

/// The client's headers that go on to mirrors, with `Via` and the client's
/// address (as mirrorgate determined it, so an untrusted client's own
/// `X-Forwarded-For` is never passed on).
pub(crate) fn upstream_headers(client: &HeaderMap, client_ip: IpAddr) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(FORWARDED.len() + 2);
    for name in &FORWARDED {
        for v in client.get_all(name) {
            h.append(name.clone(), v.clone());
        }
    }
    h.insert(header::VIA, via());
    if let Ok(v) = HeaderValue::from_str(&client_ip.to_string()) {
        h.insert(HeaderName::from_static("x-forwarded-for"), v);
    }
    h
}

/// A request to a mirror.
pub(crate) fn request(method: &Method, uri: Uri, headers: &HeaderMap) -> Request<Empty<Bytes>> {
    let mut req = Request::new(Empty::new());
    *req.method_mut() = method.clone();
    *req.uri_mut() = uri;
    *req.headers_mut() = headers.clone();
    req
}

/// Cleans a mirror's response headers for the client: hop-by-hop headers and
/// those its `Connection` header names go, cookies go (they would be set for
/// this site), and this hop is added to `Via`.
pub(crate) fn clean_response(h: &mut HeaderMap) {
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        h.remove(n);
    }
    for n in HOP_BY_HOP {
        h.remove(n);
    }
    h.remove(header::SET_COOKIE);
    h.append(header::VIA, via());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_answer_shaping_headers_go_upstream() {
        let mut c = HeaderMap::new();
        c.insert(header::RANGE, HeaderValue::from_static("bytes=0-9"));
        c.insert(header::IF_RANGE, HeaderValue::from_static("\"abc\""));
        c.insert(header::COOKIE, HeaderValue::from_static("session=secret"));
        c.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        c.insert(header::CONNECTION, HeaderValue::from_static("close"));
        c.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        let h = upstream_headers(&c, "192.0.2.1".parse().unwrap());
        assert_eq!(h[header::RANGE], "bytes=0-9");
        assert_eq!(h[header::IF_RANGE], "\"abc\"");
        assert_eq!(h["x-forwarded-for"], "192.0.2.1");
        assert_eq!(h[header::VIA], "1.1 mirrorgate");
        assert!(h.get(header::COOKIE).is_none());
        assert!(h.get(header::AUTHORIZATION).is_none());
        assert!(h.get(header::CONNECTION).is_none());
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-private"),
        );
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::SET_COOKIE, HeaderValue::from_static("a=b"));
        h.insert(header::ETAG, HeaderValue::from_static("\"e\""));
        h.insert(header::VIA, HeaderValue::from_static("1.1 cdn"));
        clean_response(&mut h);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["etag", "via"]);
        let via: Vec<_> = h.get_all(header::VIA).iter().collect();
        assert_eq!(via, ["1.1 cdn", "1.1 mirrorgate"]);
    }
}

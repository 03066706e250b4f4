//! What goes to a mirror and what comes back: the client headers that shape
//! the answer (ranges, validators, conditions) are forwarded and nothing else
//! (cookies and credentials stay here), hop-by-hop headers are removed both
//! ways, `Via` and `X-Forwarded-For` are added.

use std::io::Write;
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
/// Names, not strings: removing by `&str` parses the name on every call.
const HOP_BY_HOP_COUNT: usize = 9;
static HOP_BY_HOP: [HeaderName; HOP_BY_HOP_COUNT] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// [`upstream_headers`] from a head the direct HTTP/1.1 path parsed, read
/// in place: the same headers go to mirrors whichever path took the request.
pub(crate) fn upstream_headers_raw(
    client: &[httparse::Header<'_>],
    client_ip: IpAddr,
) -> HeaderMap {
    let forwarded = client.iter().filter_map(|c| {
        let name = FORWARDED.iter().find(|n| {
            c.name
                .as_bytes()
                .eq_ignore_ascii_case(n.as_str().as_bytes())
        })?;
        // httparse took the value; a header map takes the same bytes.
        Some((name.clone(), HeaderValue::from_bytes(c.value).ok()?))
    });
    with_this_hop(forwarded, client_ip)
}

/// The forwarded client headers, then `Via` and the client's address.
fn with_this_hop(
    forwarded: impl Iterator<Item = (HeaderName, HeaderValue)>,
    client_ip: IpAddr,
) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(8);
    for (name, v) in forwarded {
        h.append(name, v);
    }
    h.insert(header::VIA, via());
    if let Some(v) = ip_value(client_ip) {
        h.insert(X_FORWARDED_FOR, v);
    }
    h
}

/// True for a header that must not cross a proxy.
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name)
}

/// The client's headers that go on to mirrors, with `Via` and the client's
/// address (as mirrorgate determined it, so an untrusted client's own
/// `X-Forwarded-For` is never passed on).
pub(crate) fn upstream_headers(client: &HeaderMap, client_ip: IpAddr) -> HeaderMap {
    // A request carries a handful of headers: one pass over them is cheaper
    // than a lookup for each forwarded name.
    let forwarded = client
        .iter()
        .filter(|(name, _)| FORWARDED.contains(name))
        .map(|(name, v)| (name.clone(), v.clone()));
    with_this_hop(forwarded, client_ip)
}

/// An address as a header value, formatted without a temporary `String`
/// (an IPv4 address by hand: `Display` for it costs about ten times more).
fn ip_value(ip: IpAddr) -> Option<HeaderValue> {
    // The longest address text (IPv4-mapped IPv6) is 45 bytes.
    let mut buf = [0u8; 48];
    let n = match ip {
        IpAddr::V4(v4) => {
            let mut n = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf[n] = b'.';
                    n += 1;
                }
                n += write_u8(&mut buf[n..], octet);
            }
            n
        }
        IpAddr::V6(_) => {
            let mut w = std::io::Cursor::new(&mut buf[..]);
            write!(w, "{ip}").ok()?;
            usize::try_from(w.position()).ok()?
        }
    };
    HeaderValue::from_bytes(buf.get(..n)?).ok()
}

/// Writes `v` in decimal at the start of `out` (at least 3 bytes long);
/// returns the number of bytes written.
fn write_u8(out: &mut [u8], v: u8) -> usize {
    let digits = [v / 100, v / 10 % 10, v % 10];
    let skip = if v >= 100 {
        0
    } else if v >= 10 {
        1
    } else {
        2
    };
    for (o, d) in out.iter_mut().zip(&digits[skip..]) {
        *o = b'0' + d;
    }
    3 - skip
}

/// A request to a mirror. `Host` is set here from the URI (the client would
/// otherwise `format!` it for every request).
pub(crate) fn request(method: &Method, uri: Uri, headers: &HeaderMap) -> Request<Empty<Bytes>> {
    let mut req = Request::new(Empty::new());
    *req.method_mut() = method.clone();
    *req.headers_mut() = headers.clone();
    if let Some(host) = host(&uri).and_then(|h| HeaderValue::from_str(h).ok()) {
        req.headers_mut().insert(header::HOST, host);
    }
    *req.uri_mut() = uri;
    req
}

/// `Host` for a request to `uri`: its host, and its port unless it is the
/// scheme's default; never the user information of a URL.
pub(crate) fn host(uri: &Uri) -> Option<&str> {
    let authority = uri.authority()?;
    let default_port = match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    };
    let text = match authority.port_u16() {
        Some(p) if p != default_port => authority.as_str(),
        _ => authority.host(),
    };
    // With user information, the authority's text starts with it.
    Some(text.rsplit('@').next().unwrap_or(text))
}

/// Cleans a mirror's response headers for the client: hop-by-hop headers and
/// those its `Connection` header names go, cookies go (they would be set for
/// this site), and this hop is added to `Via`.
pub(crate) fn clean_response(h: &mut HeaderMap) {
    // Nearly always just `keep-alive` (already hop-by-hop): the list stays
    // empty and allocates nothing.
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .filter(|n| !is_hop_by_hop(n))
        .collect();
    for n in named {
        h.remove(n);
    }
    // One pass over the answer's few headers finds what must go; removing
    // each of the ten names blindly cost ten hash lookups per request.
    let mut doomed = [false; HOP_BY_HOP_COUNT];
    let mut cookies = false;
    for name in h.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|n| n == name) {
            doomed[i] = true;
        }
        cookies |= name == header::SET_COOKIE;
    }
    for (name, _) in HOP_BY_HOP.iter().zip(doomed).filter(|(_, d)| *d) {
        h.remove(name);
    }
    if cookies {
        h.remove(header::SET_COOKIE);
    }
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

    #[test]
    fn client_address_is_written_as_text() {
        for ip in [
            "0.0.0.0",
            "9.10.99.100",
            "255.255.255.255",
            "192.0.2.1",
            "2001:db8::1",
            "::ffff:192.0.2.255",
        ] {
            let v = ip_value(ip.parse().unwrap()).unwrap();
            assert_eq!(v, ip);
        }
    }

    #[test]
    fn both_header_sources_send_mirrors_the_same() {
        let raw = [
            httparse::Header {
                name: "Range",
                value: b"bytes=0-9",
            },
            httparse::Header {
                name: "cookie",
                value: b"s=1",
            },
            httparse::Header {
                name: "X-Forwarded-For",
                value: b"6.6.6.6",
            },
            httparse::Header {
                name: "user-agent",
                value: b"apt",
            },
            httparse::Header {
                name: "If-None-Match",
                value: b"\"a\"",
            },
        ];
        let mut map = HeaderMap::new();
        for h in &raw {
            map.append(
                HeaderName::from_bytes(h.name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(h.value).unwrap(),
            );
        }
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let a = upstream_headers_raw(&raw, ip);
        assert_eq!(a, upstream_headers(&map, ip));
        assert!(a.get("cookie").is_none());
        assert_eq!(a["x-forwarded-for"], "192.0.2.1");
        assert_eq!(a["range"], "bytes=0-9");
    }

    #[test]
    fn host_carries_the_port_unless_it_is_the_default() {
        let host = |u: &str| super::host(&u.parse().unwrap()).map(str::to_string);
        assert_eq!(
            host("http://127.0.0.1:8080/pub/a").as_deref(),
            Some("127.0.0.1:8080")
        );
        assert_eq!(
            host("http://mirror.example:80/a").as_deref(),
            Some("mirror.example")
        );
        assert_eq!(
            host("https://mirror.example:443/a").as_deref(),
            Some("mirror.example")
        );
        assert_eq!(
            host("https://mirror.example:80/a").as_deref(),
            Some("mirror.example:80")
        );
        assert_eq!(
            host("http://[2001:db8::1]:81/a").as_deref(),
            Some("[2001:db8::1]:81")
        );
        assert_eq!(
            host("http://mirror.example/a").as_deref(),
            Some("mirror.example")
        );
        // User information never goes into Host.
        assert_eq!(
            host("http://u:p@mirror.example/a").as_deref(),
            Some("mirror.example")
        );
        assert_eq!(
            host("http://u:p@mirror.example:81/a").as_deref(),
            Some("mirror.example:81")
        );
        let req = request(
            &Method::GET,
            "http://m.example:81/x".parse().unwrap(),
            &HeaderMap::new(),
        );
        assert_eq!(req.headers()[header::HOST], "m.example:81");
    }

    #[test]
    fn only_cookies_and_hop_by_hop_headers_leave_an_answer() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("10"));
        h.append(header::SET_COOKIE, HeaderValue::from_static("a=b"));
        h.append(header::SET_COOKIE, HeaderValue::from_static("c=d"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        h.insert("proxy-connection", HeaderValue::from_static("keep-alive"));
        h.insert(
            header::LAST_MODIFIED,
            HeaderValue::from_static("Mon, 01 Jan 2024 00:00:00 GMT"),
        );
        clean_response(&mut h);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["content-length", "last-modified", "via"]);
    }
}

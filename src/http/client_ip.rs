//! Who the client is: the peer address, unless the peer is a trusted proxy.
//!
//! Behind trusted proxies, the forwarding header is read right to left,
//! skipping trusted hops; the first untrusted address is the client. Headers
//! from untrusted peers are ignored: anyone can write them. A malformed header
//! never fails a request: the peer address is used instead, since nothing
//! after a malformed hop can be believed. Empty list members are not hops
//! (RFC 9110 section 5.6.1), on either side: `X,` and `,X` both name `X`. A
//! `Forwarded` element that gives a parameter twice (`for=A;for=B`) is
//! malformed: which address is the client cannot be known.
//!
//! Only one header is read, the one the proxies are configured to set
//! (`client_ip_header`): if both were read, a client could put a forged
//! address in the header its proxy does not touch.
//!
//! Pure functions; the request path calls them with the snapshot's settings.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use http::HeaderName;
use ipnet::IpNet;

use super::head::{text, Headers};
use super::ipaddr::{dotted_quad, hex_groups};
use crate::select::Scheme;

/// Which header trusted proxies set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For` (and `X-Forwarded-Proto`), as most proxies send.
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=...;proto=...`.
    Forwarded,
}

/// The client as the request path sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr {
    pub ip: IpAddr,
    /// The scheme the client used, as the nearest trusted proxy says; else the listener's.
    pub scheme: Scheme,
}

/// Trusted proxy networks, borrowed from the config; a short list checked
/// linearly (a handful of CIDRs is typical, and this costs no allocation).
#[derive(Debug, Clone, Copy)]
pub struct TrustedProxies<'a> {
    nets: &'a [IpNet],
}

impl<'a> TrustedProxies<'a> {
    pub fn new(nets: &'a [IpNet]) -> Self {
        TrustedProxies { nets }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets.iter().any(|n| n.contains(&ip))
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }
}

/// IPv4-mapped IPv6 addresses are IPv4 addresses (a dual-stack listener reports them so).
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Finds the client of a request that arrived from `peer` over `listener_scheme`.
pub fn client_addr(
    peer: IpAddr,
    headers: &impl Headers,
    trusted: &TrustedProxies<'_>,
    header: ForwardedHeader,
    listener_scheme: Scheme,
) -> ClientAddr {
    let peer = canonical(peer);
    let direct = ClientAddr {
        ip: peer,
        scheme: listener_scheme,
    };
    if trusted.is_empty() || !trusted.contains(peer) {
        return direct;
    }
    match header {
        ForwardedHeader::XForwardedFor => from_xff(peer, headers, trusted, listener_scheme),
        ForwardedHeader::Forwarded => from_forwarded(peer, headers, trusted, listener_scheme),
    }
    .unwrap_or(direct)
}

/// Walks hops given right to left; the first untrusted one is the client.
/// When every hop is trusted, the leftmost is. `None` on a malformed hop or
/// no hop at all; empty members are not hops.
fn walk<'a>(
    hops_right_to_left: impl Iterator<Item = &'a str>,
    trusted: &TrustedProxies<'_>,
    parse: impl Fn(&str) -> Option<IpAddr>,
) -> Option<IpAddr> {
    let mut last = None;
    for hop in hops_right_to_left {
        let hop = hop.trim();
        // Empty list members are skipped (RFC 9110 section 5.6.1), so `X,` and
        // `,X` name the same client; a list of nothing but empty members names no one.
        if hop.is_empty() {
            continue;
        }
        let ip = canonical(parse(hop)?);
        if !trusted.contains(ip) {
            return Some(ip);
        }
        last = Some(ip);
    }
    last
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

fn header_values<'a>(headers: &'a impl Headers, name: &'a HeaderName) -> Option<Vec<&'a str>> {
    let mut out = Vec::new();
    for v in headers.lines(name) {
        // A non-ASCII header value is malformed: fall back to the peer.
        out.push(text(v)?);
    }
    Some(out)
}

/// The comma-separated items of every line of a header, in order (several
/// lines are one list, RFC 9110 section 5.3); `None` when a line is not ASCII.
/// Borrowed, not collected: this runs on every request behind a proxy.
fn list_items<'a>(
    headers: &'a impl Headers,
    name: &'a HeaderName,
) -> Option<impl DoubleEndedIterator<Item = &'a str>> {
    if headers.lines(name).any(|v| text(v).is_none()) {
        return None;
    }
    Some(
        headers
            .lines(name)
            .flat_map(|v| text(v).unwrap_or_default().split(',')),
    )
}

fn from_xff(
    peer: IpAddr,
    headers: &impl Headers,
    trusted: &TrustedProxies<'_>,
    scheme: Scheme,
) -> Option<ClientAddr> {
    let name = X_FORWARDED_FOR;
    let mut lines = headers.lines(&name);
    let Some(first) = lines.next() else {
        return Some(ClientAddr { ip: peer, scheme });
    };
    let ip = if lines.next().is_none() {
        // One line, as nearly always: read once, from the right.
        walk(text(first)?.rsplit(','), trusted, parse_xff_hop)?
    } else {
        walk(
            list_items(headers, &X_FORWARDED_FOR)?.rev(),
            trusted,
            parse_xff_hop,
        )?
    };
    // The nearest proxy's word on the scheme: the last value of X-Forwarded-Proto.
    let proto = list_items(headers, &X_FORWARDED_PROTO)
        .and_then(|mut items| items.next_back())
        .map(str::trim)
        .and_then(parse_proto);
    Some(ClientAddr {
        ip,
        scheme: proto.unwrap_or(scheme),
    })
}

/// An X-Forwarded-For hop: an address, possibly with a port (`1.2.3.4:80`, `[::1]:80`).
fn parse_xff_hop(s: &str) -> Option<IpAddr> {
    if let Some(ip) = dotted_quad(s) {
        return Some(IpAddr::V4(ip));
    }
    // What `hex_groups` takes has a ':', so std would not read it as IPv4 either.
    if let Some(ip) = hex_groups(s) {
        return Some(IpAddr::V6(ip));
    }
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    parse_host_port(s)
}

fn parse_host_port(s: &str) -> Option<IpAddr> {
    if let Some(rest) = s.strip_prefix('[') {
        let (addr, tail) = rest.split_once(']')?;
        if !(tail.is_empty() || tail.strip_prefix(':').is_some_and(valid_port)) {
            return None;
        }
        return hex_groups(addr)
            .or_else(|| addr.parse::<Ipv6Addr>().ok())
            .map(IpAddr::V6);
    }
    let (addr, port) = s.rsplit_once(':')?;
    if !valid_port(port) {
        return None;
    }
    addr.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

fn valid_port(p: &str) -> bool {
    p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok()
}

fn parse_proto(s: &str) -> Option<Scheme> {
    if s.eq_ignore_ascii_case("https") {
        Some(Scheme::Https)
    } else if s.eq_ignore_ascii_case("http") {
        Some(Scheme::Http)
    } else {
        None
    }
}

/// One `Forwarded` element's `for` and `proto` parameters.
struct Element<'a> {
    for_: Option<&'a str>,
    proto: Option<&'a str>,
}

fn parse_element(el: &str) -> Option<Element<'_>> {
    let mut e = Element {
        for_: None,
        proto: None,
    };
    for pair in el.split(';') {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let (k, v) = pair.split_once('=')?;
        let v = v.trim();
        let v = match v.strip_prefix('"') {
            Some(q) => q.strip_suffix('"')?,
            None => v,
        };
        // A parameter given twice in one element is malformed (RFC 7239 section 4:
        // "each parameter MUST NOT occur more than once per forwarded-pair"):
        // which of `for=A;for=B` would be the client cannot be known.
        let slot = if k.trim().eq_ignore_ascii_case("for") {
            &mut e.for_
        } else if k.trim().eq_ignore_ascii_case("proto") {
            &mut e.proto
        } else {
            continue;
        };
        if slot.replace(v).is_some() {
            return None;
        }
    }
    Some(e)
}

/// A `for=` node: an address (IPv6 in brackets), optionally with a port. Obfuscated
/// identifiers (`_hidden`) and `unknown` are not addresses: the walk stops there.
fn parse_node(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<std::net::Ipv4Addr>() {
        return Some(IpAddr::V4(ip));
    }
    parse_host_port(s)
}

fn from_forwarded(
    peer: IpAddr,
    headers: &impl Headers,
    trusted: &TrustedProxies<'_>,
    scheme: Scheme,
) -> Option<ClientAddr> {
    let values = header_values(headers, &http::header::FORWARDED)?;
    let mut elements = Vec::new();
    for v in &values {
        for el in split_elements(v) {
            elements.push(parse_element(el)?);
        }
    }
    if elements.is_empty() {
        return Some(ClientAddr { ip: peer, scheme });
    }
    let mut fors = Vec::with_capacity(elements.len());
    for e in &elements {
        fors.push(e.for_?);
    }
    let ip = walk(fors.iter().rev().copied(), trusted, parse_node)?;
    let proto = elements.last().and_then(|e| e.proto).and_then(parse_proto);
    Some(ClientAddr {
        ip,
        scheme: proto.unwrap_or(scheme),
    })
}

/// Splits a `Forwarded` value on commas outside quoted strings.
fn split_elements(v: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, b) in v.bytes().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => {
                out.push(&v[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&v[start..]);
    out.into_iter().filter(|s| !s.trim().is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::super::ipaddr::tests::near_v6_text;
    use super::*;

    proptest! {
        // The hop parser, shortcuts and all, reads IPv6 exactly as std does,
        // bare or in brackets with a port.
        #[test]
        fn xff_hop_reads_ipv6_as_std_does(s in near_v6_text()) {
            if let Ok(ip) = s.parse::<IpAddr>() {
                prop_assert_eq!(parse_xff_hop(&s), Some(ip));
            }
            if !s.contains(['[', ']']) {
                let std = s.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
                prop_assert_eq!(parse_xff_hop(&format!("[{s}]:80")), std);
                prop_assert_eq!(parse_xff_hop(&format!("[{s}]")), std);
            }
        }
    }

    #[test]
    fn embedded_ipv4_hops_still_parse() {
        assert_eq!(hex_groups("::ffff:1.2.3.4"), None);
        assert_eq!(parse_xff_hop("::ffff:1.2.3.4"), Some(ip("::ffff:1.2.3.4")));
        assert_eq!(
            xff("127.0.0.1", &[("x-forwarded-for", "::ffff:1.2.3.4")]).ip,
            ip("1.2.3.4")
        );
        assert_eq!(
            parse_xff_hop("[::ffff:1.2.3.4]:80"),
            Some(ip("::ffff:1.2.3.4"))
        );
    }

    #[test]
    fn ipv6_hops_take_any_spelling() {
        for s in ["2001:DB8::1", "2001:0db8:0000:0000:0000:0000:0000:0001"] {
            assert_eq!(
                xff("127.0.0.1", &[("x-forwarded-for", s)]).ip,
                ip("2001:db8::1")
            );
        }
        assert_eq!(
            fwd("127.0.0.1", &[("forwarded", "for=\"[2001:DB8::1]:4711\"")]).ip,
            ip("2001:db8::1")
        );
    }

    use http::{HeaderMap, HeaderValue};
    use proptest::prelude::*;

    fn trusted() -> TrustedProxies<'static> {
        static NETS: std::sync::LazyLock<Vec<IpNet>> = std::sync::LazyLock::new(|| {
            vec![
                "127.0.0.0/8".parse().unwrap(),
                "10.0.0.0/8".parse().unwrap(),
                "::1/128".parse().unwrap(),
            ]
        });
        TrustedProxies::new(&NETS)
    }

    fn hdrs(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn xff(peer: &str, pairs: &[(&str, &str)]) -> ClientAddr {
        client_addr(
            ip(peer),
            &hdrs(pairs),
            &trusted(),
            ForwardedHeader::XForwardedFor,
            Scheme::Http,
        )
    }

    fn fwd(peer: &str, pairs: &[(&str, &str)]) -> ClientAddr {
        client_addr(
            ip(peer),
            &hdrs(pairs),
            &trusted(),
            ForwardedHeader::Forwarded,
            Scheme::Http,
        )
    }

    #[test]
    fn untrusted_peer_headers_are_ignored() {
        let c = xff(
            "198.51.100.7",
            &[
                ("x-forwarded-for", "203.0.113.9"),
                ("x-forwarded-proto", "https"),
            ],
        );
        assert_eq!(c.ip, ip("198.51.100.7"));
        assert_eq!(c.scheme, Scheme::Http);
    }

    #[test]
    fn trusted_peer_gives_rightmost_untrusted_hop() {
        let c = xff(
            "127.0.0.1",
            &[("x-forwarded-for", "192.0.2.1, 203.0.113.9, 10.1.2.3")],
        );
        assert_eq!(
            c.ip,
            ip("203.0.113.9"),
            "the forged leftmost hop must not win"
        );
    }

    #[test]
    fn several_header_lines_are_one_list() {
        let c = xff(
            "127.0.0.1",
            &[
                ("x-forwarded-for", "203.0.113.9"),
                ("x-forwarded-for", "10.0.0.1"),
            ],
        );
        assert_eq!(c.ip, ip("203.0.113.9"));
    }

    #[test]
    fn all_trusted_gives_leftmost() {
        let c = xff("127.0.0.1", &[("x-forwarded-for", "10.0.0.5, 10.0.0.6")]);
        assert_eq!(c.ip, ip("10.0.0.5"));
    }

    #[test]
    fn ports_and_brackets_are_accepted() {
        assert_eq!(
            xff("127.0.0.1", &[("x-forwarded-for", "203.0.113.9:4711")]).ip,
            ip("203.0.113.9")
        );
        assert_eq!(
            xff("127.0.0.1", &[("x-forwarded-for", "[2001:db8::1]:80")]).ip,
            ip("2001:db8::1")
        );
        assert_eq!(
            xff("127.0.0.1", &[("x-forwarded-for", "2001:db8::1")]).ip,
            ip("2001:db8::1")
        );
    }

    #[test]
    fn malformed_falls_back_to_peer() {
        for bad in [
            "garbage",
            "203.0.113.9, nonsense",
            "1.2.3.4:99999",
            "[2001:db8::1",
            "",
            " , ",
        ] {
            let c = xff("127.0.0.1", &[("x-forwarded-for", bad)]);
            assert_eq!(c.ip, ip("127.0.0.1"), "{bad:?}");
        }
    }

    #[test]
    fn empty_members_are_skipped_on_either_side() {
        for v in [
            "203.0.113.9,",
            ",203.0.113.9",
            " , 203.0.113.9 , ",
            "203.0.113.9,,10.0.0.1",
        ] {
            assert_eq!(
                xff("127.0.0.1", &[("x-forwarded-for", v)]).ip,
                ip("203.0.113.9"),
                "{v:?}"
            );
        }
        // An empty line among several is an empty member too.
        let c = xff(
            "127.0.0.1",
            &[("x-forwarded-for", "203.0.113.9"), ("x-forwarded-for", "")],
        );
        assert_eq!(c.ip, ip("203.0.113.9"));
    }

    #[test]
    fn forwarded_parameter_twice_in_one_element_is_malformed() {
        for v in [
            "for=203.0.113.9;for=198.51.100.7",
            "for=203.0.113.9;FOR=203.0.113.9",
            "for=203.0.113.9;proto=https;proto=http",
            "for=10.0.0.1, for=203.0.113.9;for=198.51.100.7",
        ] {
            let c = fwd("127.0.0.1", &[("forwarded", v)]);
            assert_eq!(c.ip, ip("127.0.0.1"), "{v:?}");
            assert_eq!(c.scheme, Scheme::Http, "{v:?}");
        }
        // The same parameter in two elements is two hops, as it should be.
        let c = fwd(
            "127.0.0.1",
            &[("forwarded", "for=203.0.113.9;proto=https, for=10.0.0.1")],
        );
        assert_eq!(c.ip, ip("203.0.113.9"));
    }

    #[test]
    fn malformed_hop_beyond_the_client_is_not_read() {
        // Right to left: the client is found before the junk the client itself wrote.
        let c = xff("127.0.0.1", &[("x-forwarded-for", "junk, 203.0.113.9")]);
        assert_eq!(c.ip, ip("203.0.113.9"));
    }

    #[test]
    fn mapped_addresses_are_ipv4() {
        let c = xff(
            "::ffff:127.0.0.1",
            &[("x-forwarded-for", "::ffff:203.0.113.9")],
        );
        assert_eq!(c.ip, ip("203.0.113.9"));
    }

    #[test]
    fn proto_from_trusted_proxy() {
        let c = xff(
            "127.0.0.1",
            &[
                ("x-forwarded-for", "203.0.113.9"),
                ("x-forwarded-proto", "https"),
            ],
        );
        assert_eq!(c.scheme, Scheme::Https);
    }

    #[test]
    fn forwarded_header() {
        let c = fwd(
            "127.0.0.1",
            &[("forwarded", "for=192.0.2.60;proto=https;by=203.0.113.43")],
        );
        assert_eq!(
            c,
            ClientAddr {
                ip: ip("192.0.2.60"),
                scheme: Scheme::Https
            }
        );
        let c = fwd(
            "127.0.0.1",
            &[(
                "forwarded",
                "for=\"[2001:db8:cafe::17]:4711\", for=10.0.0.1",
            )],
        );
        assert_eq!(c.ip, ip("2001:db8:cafe::17"));
        let c = fwd(
            "127.0.0.1",
            &[("forwarded", "for=198.51.100.17, for=203.0.113.5")],
        );
        assert_eq!(c.ip, ip("203.0.113.5"));
        // An obfuscated node cannot be located: the peer it is.
        assert_eq!(
            fwd("127.0.0.1", &[("forwarded", "for=_hidden")]).ip,
            ip("127.0.0.1")
        );
        assert_eq!(
            fwd("127.0.0.1", &[("forwarded", "for=\"unterminated")]).ip,
            ip("127.0.0.1")
        );
    }

    #[test]
    fn forwarded_mode_ignores_xff_and_vice_versa() {
        let c = fwd("127.0.0.1", &[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(c.ip, ip("127.0.0.1"));
        let c = xff("127.0.0.1", &[("forwarded", "for=203.0.113.9")]);
        assert_eq!(c.ip, ip("127.0.0.1"));
    }

    proptest! {
        /// Whatever the headers say, an untrusted peer is the client.
        #[test]
        fn never_trusts_an_untrusted_peer(a in any::<[u8; 4]>(), v in "[ -~]{0,80}") {
            let peer = IpAddr::from(a);
            prop_assume!(!trusted().contains(peer));
            let mut h = HeaderMap::new();
            if let Ok(val) = HeaderValue::from_str(&v) {
                h.insert("x-forwarded-for", val.clone());
                h.insert("forwarded", val);
            }
            for mode in [ForwardedHeader::XForwardedFor, ForwardedHeader::Forwarded] {
                prop_assert_eq!(client_addr(peer, &h, &trusted(), mode, Scheme::Http).ip, peer);
            }
        }

        /// Behind a trusted proxy the answer is the peer or an address the header names.
        #[test]
        fn answer_is_peer_or_named_in_header(hops in proptest::collection::vec(any::<[u8; 4]>(), 0..6), junk in "[ -~]{0,20}") {
            let mut list: Vec<String> = hops.iter().map(|a| IpAddr::from(*a).to_string()).collect();
            list.push(junk);
            let v = list.join(",");
            let mut h = HeaderMap::new();
            if let Ok(val) = HeaderValue::from_str(&v) {
                h.insert("x-forwarded-for", val);
            }
            let c = client_addr(ip("127.0.0.1"), &h, &trusted(), ForwardedHeader::XForwardedFor, Scheme::Http);
            prop_assert!(c.ip == ip("127.0.0.1") || v.contains(&c.ip.to_string()));
        }
    }
}

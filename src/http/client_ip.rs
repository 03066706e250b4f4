//! Who the client is: the peer address, unless the peer is a trusted proxy.
//!
//! Behind trusted proxies, the forwarding header is read right to left,
//! skipping trusted hops; the first untrusted address is the client. Headers
//! from untrusted peers are ignored: anyone can write them. A malformed header
//! never fails a request: the peer address is used instead, since nothing
//! after a malformed hop can be believed.
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
/// no hop at all.
fn walk<'a>(
    hops_right_to_left: impl Iterator<Item = &'a str>,
    trusted: &TrustedProxies<'_>,
    parse: impl Fn(&str) -> Option<IpAddr>,
) -> Option<IpAddr> {
    let mut last = None;
    for hop in hops_right_to_left {
        let ip = canonical(parse(hop.trim())?);
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

/// An IPv4 address in the one spelling proxies write (`203.0.113.9`: four
/// decimal octets, no leading zeros), read without the general parser, which
/// costs several times more; `None` sends anything else to it. A property
/// test holds the two equal wherever this one answers.
fn dotted_quad(s: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut k = 0;
    let mut value: u16 = 0;
    let mut digits = 0;
    for &c in s.as_bytes() {
        match c {
            b'0'..=b'9' => {
                // A fourth digit, or a digit after a leading zero.
                if digits == 3 || (digits == 1 && value == 0) {
                    return None;
                }
                value = value * 10 + u16::from(c - b'0');
                digits += 1;
            }
            b'.' if digits > 0 && k < 3 => {
                octets[k] = u8::try_from(value).ok()?;
                k += 1;
                value = 0;
                digits = 0;
            }
            _ => return None,
        }
    }
    if k != 3 || digits == 0 {
        return None;
    }
    octets[3] = u8::try_from(value).ok()?;
    Some(Ipv4Addr::from(octets))
}

/// Marks a byte that is no hex digit in `HEX_VALUE`.
const NOT_HEX: u8 = u8::MAX;

/// Each byte's value as a hex digit: one load per character, where a chain
/// of range tests costs several compares and branches.
const HEX_VALUE: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut i = 0;
    while i < 16 {
        table[b"0123456789abcdef"[i] as usize] = i as u8;
        table[b"0123456789ABCDEF"[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// An IPv6 address in the spellings proxies write: eight groups of one to
/// four hex digits in either case, or fewer around one `::`. Std's parser
/// tries an embedded IPv4 address at every group, which makes it cost about
/// three times as many instructions; `None` sends anything else to it
/// (embedded IPv4, zone ids, brackets, ports, junk). A property test holds
/// the two equal wherever this one answers, and holds it to answer for every
/// address without a '.'.
fn hex_groups(s: &str) -> Option<Ipv6Addr> {
    let mut groups = [0u16; 8];
    let mut n = 0;
    // Where `::` stands: the number of groups before it.
    let mut gap = None;
    let mut value: u16 = 0;
    let mut digits = 0;
    // Colons just read (one separates groups, two are the gap); only read
    // while no digit has followed them.
    let mut colons = 0;
    let mut rest = s.as_bytes();
    if let Some(after) = rest.strip_prefix(b":") {
        // Only `::` may open an address; a lone ':' never.
        rest = after.strip_prefix(b":")?;
        gap = Some(0);
        colons = 2;
    }
    for &c in rest {
        let digit = HEX_VALUE[usize::from(c)];
        if digit != NOT_HEX {
            // Std reads at most four digits: a fifth is an error, not a new group.
            if digits == 4 {
                return None;
            }
            value = value << 4 | u16::from(digit);
            digits += 1;
            continue;
        }
        match c {
            b':' if digits > 0 => {
                *groups.get_mut(n)? = value;
                n += 1;
                value = 0;
                digits = 0;
                colons = 1;
                continue;
            }
            b':' if colons == 1 && gap.is_none() => {
                gap = Some(n);
                colons = 2;
                continue;
            }
            // A third colon, a second `::`; '.' (embedded IPv4), '%' (zone),
            // ']' and the rest: std decides.
            _ => return None,
        }
    }
    if digits > 0 {
        *groups.get_mut(n)? = value;
        n += 1;
    } else if colons != 2 {
        // Empty, or a trailing ':' that separates nothing.
        return None;
    }
    match gap {
        None if n == groups.len() => {}
        // `::` stands for at least one zero group, as std reads it.
        Some(g) if n < groups.len() => {
            let zeros_end = groups.len() - (n - g);
            groups.copy_within(g..n, zeros_end);
            groups[g..zeros_end].fill(0);
        }
        _ => return None,
    }
    Some(Ipv6Addr::from(groups))
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
        if k.trim().eq_ignore_ascii_case("for") {
            e.for_ = Some(v);
        } else if k.trim().eq_ignore_ascii_case("proto") {
            e.proto = Some(v);
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
    use super::*;

    proptest! {
        // The shortcut reads exactly what the general parser reads.
        #[test]
        fn dotted_quad_agrees_with_the_parser(s in "[0-9.]{0,16}|[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}") {
            if let Some(ip) = dotted_quad(&s) {
                prop_assert_eq!(Ok(ip), s.parse::<Ipv4Addr>());
            }
        }
    }

    #[test]
    fn dotted_quad_takes_the_plain_spelling_only() {
        assert_eq!(
            dotted_quad("203.0.113.9"),
            Some(Ipv4Addr::new(203, 0, 113, 9))
        );
        assert_eq!(dotted_quad("0.0.0.0"), Some(Ipv4Addr::UNSPECIFIED));
        for s in [
            "256.1.1.1",
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.5",
            "1..2.3",
            "1.2.3.",
            "",
            "1.2.3.4:80",
            " 1.2.3.4",
        ] {
            assert_eq!(dotted_quad(s), None, "{s}");
        }
    }

    /// Text near IPv6: runs of hex (some of five digits), colons, dots,
    /// decimal octets and a few characters a zone, bracket or port brings;
    /// spelled addresses, their near misses, and ones ending in IPv4. About
    /// two in five are addresses std reads, one in nine with an IPv4 part.
    fn near_v6_text() -> impl Strategy<Value = String> {
        let token = prop_oneof![
            4 => "[0-9a-fA-F]{1,5}",
            3 => Just(":".to_owned()),
            2 => Just("::".to_owned()),
            1 => Just(".".to_owned()),
            1 => "[0-9]{1,3}",
            1 => "[%\\[\\] gG+x-]",
        ];
        prop_oneof![
            proptest::collection::vec(token, 0..14).prop_map(|t| t.concat()),
            "[0-9a-fA-F:.%\\] ]{0,41}",
            spelled_v6().prop_map(|(s, _)| s),
            mutated_v6(),
            ipv4_tailed(),
        ]
    }

    /// A spelled address with a piece put in, taken out or changed: the
    /// near misses a hand-written parser gets wrong (a second `::`, a fifth
    /// digit, a stray ':').
    fn mutated_v6() -> impl Strategy<Value = String> {
        const PIECES: [&str; 10] = [":", "::", ".", "0", "f", "F", "g", "%", "]", " "];
        (
            spelled_v6(),
            any::<proptest::sample::Index>(),
            proptest::sample::select(&PIECES[..]),
            0u8..3,
        )
            .prop_map(|((mut s, _), at, piece, op)| {
                let i = at.index(s.len() + 1);
                match op {
                    0 => s.insert_str(i, piece),
                    1 if i < s.len() => {
                        s.remove(i);
                    }
                    _ if i < s.len() => s.replace_range(i..=i, piece),
                    _ => s.push_str(piece),
                }
                s
            })
    }

    /// A spelled address whose last group gives way to an IPv4 part: valid
    /// when the groups leave room for it (`::ffff:1.2.3.4`, six groups and
    /// a quad), else a near miss.
    fn ipv4_tailed() -> impl Strategy<Value = String> {
        (spelled_v6(), any::<Ipv4Addr>(), any::<bool>()).prop_map(|((s, _), v4, drop2)| {
            let head = s.trim_end_matches(|c: char| c.is_ascii_hexdigit());
            let head = if drop2 && !head.ends_with("::") {
                head.trim_end_matches(':')
                    .trim_end_matches(|c: char| c.is_ascii_hexdigit())
            } else {
                head
            };
            format!("{head}{v4}")
        })
    }

    /// Groups as addresses have them: many zero, some small, some anything.
    fn groups() -> impl Strategy<Value = [u16; 8]> {
        let group = prop_oneof![Just(0u16), 0u16..16, any::<u16>()];
        proptest::array::uniform8(group)
    }

    /// An address spelled as a proxy might: each group padded to a random
    /// width, either case, and `::` over a random run of groups (zero or not:
    /// when not, the text names another address, and the parsers must agree
    /// on which). Returns the text and, when the run was all zero, the address.
    fn spelled_v6() -> impl Strategy<Value = (String, Option<Ipv6Addr>)> {
        (
            groups(),
            proptest::array::uniform8(0usize..=4),
            any::<bool>(),
            proptest::option::of((0usize..=8, 1usize..=8)),
        )
            .prop_map(|(g, widths, upper, run)| {
                let spell = |k: usize| {
                    let w = widths[k];
                    let t = format!("{:0w$x}", g[k]);
                    if upper {
                        t.to_ascii_uppercase()
                    } else {
                        t
                    }
                };
                let join = |r: std::ops::Range<usize>| r.map(spell).collect::<Vec<_>>().join(":");
                let addr = Ipv6Addr::from(g);
                match run {
                    None => (join(0..8), Some(addr)),
                    Some((a, len)) => {
                        let b = (a + len).min(8);
                        let a = a.min(b - 1);
                        let text = format!("{}::{}", join(0..a), join(b..8));
                        let zero = g[a..b].iter().all(|&x| x == 0);
                        (text, zero.then_some(addr))
                    }
                }
            })
    }

    proptest! {
        // The shortcut never answers other than std; and since it reads
        // std's whole grammar but for embedded IPv4, without a '.' it always
        // answers when std does.
        #[test]
        fn hex_groups_agrees_with_the_parser(s in near_v6_text()) {
            let fast = hex_groups(&s);
            if let Some(ip) = fast {
                prop_assert_eq!(Ok(ip), s.parse::<Ipv6Addr>());
            }
            if !s.contains('.') {
                prop_assert_eq!(fast, s.parse::<Ipv6Addr>().ok());
            }
        }

        #[test]
        fn hex_groups_reads_spelled_addresses((s, addr) in spelled_v6()) {
            let fast = hex_groups(&s);
            prop_assert_eq!(fast, s.parse::<Ipv6Addr>().ok());
            if let Some(addr) = addr {
                prop_assert_eq!(fast, Some(addr), "{}", s);
            }
        }

        // Std's own spelling takes the fast path, unless it wrote an IPv4 part.
        #[test]
        fn hex_groups_reads_what_std_writes(g in groups(), bits in any::<u128>()) {
            for addr in [Ipv6Addr::from(g), Ipv6Addr::from(bits)] {
                let text = addr.to_string();
                if !text.contains('.') {
                    prop_assert_eq!(hex_groups(&text), Some(addr), "{}", text);
                }
            }
        }

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
    fn hex_groups_edge_cases() {
        let v6 = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        for s in [
            "::",
            "::1",
            "1::",
            "1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7::",
            "::2:3:4:5:6:7:8",
            "1::8",
            "2001:db8::1",
            "2001:DB8::A:bC",
            "FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF",
            "0000:0000:0000:0000:0000:0000:0000:0001",
            "2a02:8109:9a3f:f500:5d1c:e1b3:2bd9:4f0e",
        ] {
            assert_eq!(hex_groups(s), Some(v6(s)), "{s}");
        }
        assert_eq!(hex_groups("::"), Some(Ipv6Addr::UNSPECIFIED));
        assert_eq!(hex_groups("1:2:3:4:5:6:7::"), Some(v6("1:2:3:4:5:6:7:0")));
        assert_eq!(hex_groups("::2:3:4:5:6:7:8"), Some(v6("0:2:3:4:5:6:7:8")));
        assert_eq!(hex_groups("2001:DB8::A"), Some(v6("2001:db8::a")));

        for s in [
            "",
            ":",
            ":1",
            ":1:2:3:4:5:6:7",
            "1:2:3:4:5:6:7:8:9",
            "1:2:3:4:5:6:7:8::",
            "::1:2:3:4:5:6:7:8",
            "1::2:3:4:5:6:7:8",
            "1::2::3",
            "::1::",
            ":::",
            "1:::2",
            "12345::",
            "1:2:3:4:5:6:7:12345",
            "1:2:3::4:5:6:7:8",
            "1:2::3:4:5:6:7:8",
            "1:2:3:4:5:6:7",
            "1:2:3:4::6:7:8:",
            "1:2:3:4:5:6:7:8:",
            "1::2:",
            "1:2:3:4:5:6:7:g",
            " ::1",
            "::1 ",
        ] {
            assert_eq!(hex_groups(s), None, "{s}");
            assert!(s.parse::<Ipv6Addr>().is_err(), "std reads {s}");
        }
        // Std reads these; the shortcut leaves them to it.
        for s in [
            "::ffff:1.2.3.4",
            "::1.2.3.4",
            "1:2:3:4:5:6:1.2.3.4",
            "fe80::1%eth0",
            "fe80::1%1",
            "[::1]",
            "[::1]:80",
        ] {
            assert_eq!(hex_groups(s), None, "{s}");
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

    // Which Display forms carry a '.', and so miss the shortcut: std writes
    // only IPv4-mapped addresses with an IPv4 part, not the old compatible ones.
    #[test]
    fn std_writes_an_ipv4_part_for_mapped_addresses_only() {
        assert_eq!(ip("::ffff:1.2.3.4").to_string(), "::ffff:1.2.3.4");
        assert_eq!(ip("::1.2.3.4").to_string(), "::102:304");
        assert_eq!(ip("::ffff:0:1.2.3.4").to_string(), "::ffff:0:102:304");
        assert_eq!(ip("64:ff9b::1.2.3.4").to_string(), "64:ff9b::102:304");
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

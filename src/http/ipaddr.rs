//! Reading IP addresses as proxies write them, without std's general
//! parser where that is safe: the forwarding header of every request behind
//! a proxy holds one or more. Each shortcut answers only for the spellings it
//! reads completely and returns `None` for anything else, which then goes to
//! std; property tests hold every answer equal to std's.

use std::net::{Ipv4Addr, Ipv6Addr};

/// An IPv4 address in the one spelling proxies write (`203.0.113.9`: four
/// decimal octets, no leading zeros), read without the general parser, which
/// costs several times more; `None` sends anything else to it. A property
/// test holds the two equal wherever this one answers.
pub(super) fn dotted_quad(s: &str) -> Option<Ipv4Addr> {
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
pub(super) fn hex_groups(s: &str) -> Option<Ipv6Addr> {
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use proptest::prelude::*;

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
    pub(in crate::http) fn near_v6_text() -> impl Strategy<Value = String> {
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

    // Which Display forms carry a '.', and so miss the shortcut: std writes
    // only IPv4-mapped addresses with an IPv4 part, not the old compatible ones.
    #[test]
    fn std_writes_an_ipv4_part_for_mapped_addresses_only() {
        assert_eq!(v6("::ffff:1.2.3.4").to_string(), "::ffff:1.2.3.4");
        assert_eq!(v6("::1.2.3.4").to_string(), "::102:304");
        assert_eq!(v6("::ffff:0:1.2.3.4").to_string(), "::ffff:0:102:304");
        assert_eq!(v6("64:ff9b::1.2.3.4").to_string(), "64:ff9b::102:304");
    }

    fn v6(s: &str) -> std::net::IpAddr {
        s.parse().unwrap()
    }
}

//! Which addresses are worth a database lookup, and in which form.
//!
//! Addresses that no GeoIP database can place (private, loopback, link-local,
//! CGNAT, multicast, ...) are answered as unknown before the database is
//! touched. The documentation ranges (192.0.2.0/24, 198.51.100.0/24,
//! 203.0.113.0/24, 2001:db8::/32) are deliberately *not* filtered: the
//! project's demo database places clients in them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The address to look up: IPv4-mapped IPv6 (`::ffff:a.b.c.d`) becomes IPv4,
/// and `None` for addresses that cannot have a location.
pub(crate) fn lookup_form(ip: IpAddr) -> Option<IpAddr> {
    match ip {
        IpAddr::V4(v4) => public_v4(v4).map(IpAddr::V4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => public_v4(v4).map(IpAddr::V4),
            None => public_v6(v6).map(IpAddr::V6),
        },
    }
}

fn public_v4(ip: Ipv4Addr) -> Option<Ipv4Addr> {
    let [a, b, ..] = ip.octets();
    let special = a == 0 // "this network", includes unspecified
        || ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || (a == 100 && (b & 0xc0) == 64) // CGNAT 100.64.0.0/10
        || ip.is_multicast()
        || a >= 240; // reserved 240.0.0.0/4, includes broadcast
    (!special).then_some(ip)
}

fn public_v6(ip: Ipv6Addr) -> Option<Ipv6Addr> {
    let first = ip.segments()[0];
    let special = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (first & 0xffc0) == 0xfe80; // link-local fe80::/10
    (!special).then_some(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(s: &str) -> Option<IpAddr> {
        lookup_form(s.parse().unwrap())
    }

    #[test]
    fn special_addresses_are_not_looked_up() {
        for s in [
            "0.0.0.0",
            "0.1.2.3",
            "10.1.2.3",
            "127.0.0.1",
            "169.254.1.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fe80::1",
            "febf::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:100.64.0.1",
        ] {
            assert_eq!(form(s), None, "{s}");
        }
    }

    #[test]
    fn public_and_documentation_addresses_are_looked_up() {
        for s in [
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.0",
            "172.32.0.1",
            "192.0.2.1",
            "198.51.100.1",
            "203.0.113.1",
            "2001:db8::1",
            "2a00:1450::1",
            "fec0::1",
        ] {
            assert_eq!(form(s), Some(s.parse().unwrap()), "{s}");
        }
    }

    #[test]
    fn mapped_ipv6_becomes_ipv4() {
        assert_eq!(form("::ffff:192.0.2.1"), Some("192.0.2.1".parse().unwrap()));
    }
}

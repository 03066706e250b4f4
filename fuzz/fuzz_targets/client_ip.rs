//! Forwarding headers from the outside world: never a panic, and the answer is
//! the peer or an address the header itself names.
#![no_main]

use std::net::IpAddr;

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use mirrorgate::http::client_ip::{client_addr, ForwardedHeader, TrustedProxies};
use mirrorgate::select::Scheme;

fuzz_target!(|data: &[u8]| {
    let nets = [
        "127.0.0.0/8".parse().unwrap(),
        "10.0.0.0/8".parse().unwrap(),
    ];
    let trusted = TrustedProxies::new(&nets);
    let peer: IpAddr = "127.0.0.1".parse().unwrap();
    let mut headers = HeaderMap::new();
    let Ok(v) = HeaderValue::from_bytes(data) else {
        return;
    };
    headers.insert("x-forwarded-for", v.clone());
    headers.insert("x-forwarded-proto", v.clone());
    headers.insert("forwarded", v);
    for mode in [ForwardedHeader::XForwardedFor, ForwardedHeader::Forwarded] {
        let c = client_addr(peer, &headers, &trusted, mode, Scheme::Http);
        let text = String::from_utf8_lossy(data).to_ascii_lowercase();
        let named = c.ip == peer
            || text.contains(&c.ip.to_string())
            // An IPv4-mapped IPv6 hop comes out as IPv4; any spelling of IPv6 may differ.
            || c.ip.is_ipv6()
            || text.contains("::ffff:");
        assert!(named, "{} not named in {:?}", c.ip, text);
    }
});

//! GeoIP database bytes: opening refuses or accepts, and lookups never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mirrorgate::geo::GeoDb;

fuzz_target!(|data: &[u8]| {
    if let Ok(db) = GeoDb::from_bytes(vec![("fuzz.mmdb".into(), data.to_vec())], None) {
        for ip in ["192.0.2.1", "8.8.8.8", "2001:db8::1", "::ffff:203.0.113.9"] {
            let _ = db.lookup(ip.parse().unwrap());
        }
    }
});

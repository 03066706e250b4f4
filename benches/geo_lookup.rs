//! Time of `GeoDb::lookup` on the demo databases (City + ASN), the cost every
//! request pays: a found IPv4 address, a found IPv6 address, an address with
//! no record, and a private address that is answered before the database.

use std::hint::black_box;
use std::net::IpAddr;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use mirrorgate::geo::GeoDb;

fn demo_db() -> GeoDb {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("geoip");
    GeoDb::open(
        &[dir.join("demo-city.mmdb")],
        Some(&dir.join("demo-asn.mmdb")),
    )
    .expect("demo databases")
}

fn lookup(c: &mut Criterion) {
    let db = demo_db();
    let mut group = c.benchmark_group("geo_lookup");
    for (name, addr) in [
        ("found_v4", "192.0.2.20"),
        ("found_v6", "2001:db8:3::1"),
        ("unknown_no_record", "8.8.8.8"),
        ("unknown_private", "10.1.2.3"),
    ] {
        let ip: IpAddr = addr.parse().expect("address");
        assert!(!db.lookup(ip).1.as_str().is_empty());
        group.bench_function(name, |b| b.iter(|| db.lookup(black_box(ip))));
    }
    group.finish();
}

criterion_group!(benches, lookup);
criterion_main!(benches);

//! Time of `GeoDb::lookup` on the demo databases (City + ASN), the cost every
//! request pays: a found IPv4 address, a found IPv6 address, an address with
//! no record, and a private address that is answered before the database.
//!
//! When the real GeoLite2 City database is cached where `benches/load.sh`
//! keeps it (`~/.cache/mirrorgate-bench/GeoLite2-City.mmdb`, see
//! `benches/README.md`), also lookups of random public addresses in it: a
//! demo file's tree is a few nodes deep, the real one is 3.7 million nodes,
//! so only there does the tree walk show. Skipped with a note otherwise.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use mirrorgate::geo::GeoDb;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Addresses per real-database case: more than the caches hold of the tree,
/// so the walk pays for memory as it does under varied clients.
const REAL_ADDRS: usize = 4096;

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

fn real_city_path() -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    let path = cache.join("mirrorgate-bench/GeoLite2-City.mmdb");
    path.exists().then_some(path)
}

/// Random IPv4 addresses outside the ranges `GeoDb::lookup` answers without
/// the database, so that every one walks the tree.
fn public_v4(rng: &mut SmallRng) -> IpAddr {
    loop {
        let ip = Ipv4Addr::from(rng.random::<u32>());
        let [a, b, ..] = ip.octets();
        let special = a == 0
            || a >= 224
            || ip.is_private()
            || ip.is_loopback()
            || ip.is_link_local()
            || ip.is_documentation()
            || (a == 100 && (64..128).contains(&b));
        if !special {
            return IpAddr::V4(ip);
        }
    }
}

/// Random addresses in 2000::/3, the global unicast block where the data is.
fn global_v6(rng: &mut SmallRng) -> IpAddr {
    let bits = (rng.random::<u128>() >> 3) | (1u128 << 125);
    IpAddr::V6(Ipv6Addr::from(bits))
}

fn lookup_real(c: &mut Criterion) {
    let Some(path) = real_city_path() else {
        eprintln!("NOTE: no cached GeoLite2-City.mmdb (see benches/README.md); real-database cases skipped");
        return;
    };
    let db = GeoDb::open(&[path], None).expect("GeoLite2 City database");
    let mut rng = SmallRng::seed_from_u64(0x0067_656f);
    let mut group = c.benchmark_group("geo_lookup_geolite2_city");
    for (name, make) in [
        ("random_v4", public_v4 as fn(&mut SmallRng) -> IpAddr),
        ("random_v6", global_v6),
    ] {
        let addrs: Vec<IpAddr> = (0..REAL_ADDRS).map(|_| make(&mut rng)).collect();
        let mut i = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % REAL_ADDRS;
                db.lookup(black_box(addrs[i]))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, lookup, lookup_real);
criterion_main!(benches);

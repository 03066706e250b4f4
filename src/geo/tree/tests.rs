//! `SearchTree::offset` against `maxminddb::Reader::lookup(ip)?.offset()`,
//! the walk it replaces: same offset, same "no record", same kind of error,
//! on the committed demo files, on generated files of every record size and
//! both IP versions, on trees with records corrupted on purpose, and on the
//! real GeoLite2 City database when it is cached.

use std::mem::{discriminant, Discriminant};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::OnceLock;

use ipnet::IpNet;
use maxminddb::{MaxMindDbError, Reader, WithinOptions};
use mmdb_writer::{IpVersion, Ipv4Aliasing, RecordSize, Value, Writer};
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::*;

/// What a lookup answered; errors compare by kind, as the request path only
/// tells an error from a result.
type Outcome = Result<Option<usize>, Discriminant<MaxMindDbError>>;

fn ours(tree: &SearchTree, ip: IpAddr) -> Outcome {
    tree.offset(ip).map_err(|e| discriminant(&e))
}

fn theirs(reader: &Reader<Bytes>, ip: IpAddr) -> Outcome {
    reader
        .lookup(ip)
        .map(|r| r.offset())
        .map_err(|e| discriminant(&e))
}

fn open(bytes: Vec<u8>) -> (Reader<Bytes>, SearchTree) {
    let bytes = Bytes::from(bytes);
    let reader = Reader::from_source(bytes.clone()).expect("reader");
    let tree = SearchTree::new(&bytes, reader.metadata()).expect("tree");
    (reader, tree)
}

/// How many lookups found a record, found none, and failed.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    found: usize,
    none: usize,
    errors: usize,
}

/// Asserts that both walks agree on every address.
fn assert_agree(
    reader: &Reader<Bytes>,
    tree: &SearchTree,
    addrs: impl IntoIterator<Item = IpAddr>,
) -> Tally {
    let mut tally = Tally::default();
    for ip in addrs {
        let expected = theirs(reader, ip);
        assert_eq!(ours(tree, ip), expected, "{ip}");
        match expected {
            Ok(Some(_)) => tally.found += 1,
            Ok(None) => tally.none += 1,
            Err(_) => tally.errors += 1,
        }
    }
    tally
}

/// Random addresses of every shape a walk treats differently: any IPv4, any
/// IPv6, global unicast IPv6, and IPv6 forms that alias IPv4 (mapped,
/// IPv4-compatible `::a.b.c.d`, 6to4, Teredo).
fn random_addrs(rng: &mut SmallRng, n: usize) -> Vec<IpAddr> {
    (0..n)
        .map(|i| {
            let v4: u32 = rng.random();
            let v6 = match i % 7 {
                0 | 1 => return IpAddr::V4(Ipv4Addr::from(v4)),
                2 => rng.random::<u128>(),
                3 => (rng.random::<u128>() >> 3) | (1 << 125),
                4 => Ipv4Addr::from(v4).to_ipv6_mapped().to_bits(),
                5 => u128::from(v4),
                _ if i % 2 == 0 => (0x2002u128 << 112) | (u128::from(v4) << 80),
                _ => (0x2001_0000u128 << 96) | u128::from(rng.random::<u64>()),
            };
            IpAddr::V6(Ipv6Addr::from(v6))
        })
        .collect()
}

/// The first and last address of every network in the file (also the
/// aliased ones and those without data), and their outside neighbours: where
/// a walk that takes one wrong turn would answer differently.
fn network_edges(reader: &Reader<Bytes>) -> Vec<IpAddr> {
    let options = WithinOptions::default()
        .include_aliased_networks()
        .include_networks_without_data();
    let mut out = Vec::new();
    for item in reader.networks(options).expect("networks") {
        let net = item.expect("network").network().expect("network");
        let (first, last) = (net.network(), net.broadcast());
        out.extend([first, last]);
        out.extend(neighbours(first, last));
    }
    out
}

fn neighbours(first: IpAddr, last: IpAddr) -> Vec<IpAddr> {
    match (first, last) {
        (IpAddr::V4(a), IpAddr::V4(b)) => [a.to_bits().checked_sub(1), b.to_bits().checked_add(1)]
            .into_iter()
            .flatten()
            .map(|x| IpAddr::V4(Ipv4Addr::from(x)))
            .collect(),
        (IpAddr::V6(a), IpAddr::V6(b)) => [a.to_bits().checked_sub(1), b.to_bits().checked_add(1)]
            .into_iter()
            .flatten()
            .map(|x| IpAddr::V6(Ipv6Addr::from(x)))
            .collect(),
        _ => Vec::new(),
    }
}

fn repo_file(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn demo_databases_agree() {
    for name in ["geoip/demo-city.mmdb", "geoip/demo-asn.mmdb"] {
        let (reader, tree) = open(repo_file(name));
        let edges = network_edges(&reader);
        let mut rng = SmallRng::seed_from_u64(1);
        let tally = assert_agree(&reader, &tree, edges.iter().copied());
        assert!(tally.found > 0 && tally.none > 0, "{name}: {tally:?}");
        // The demo networks are few and small: random addresses mostly miss.
        assert_agree(&reader, &tree, random_addrs(&mut rng, 20_000));
    }
}

/// A file with `count` random networks (IPv6 ones at most `max_v6_prefix`
/// long), each with a value of its own or one of a few shared values (as
/// many networks share a City record).
fn generated(
    ip_version: IpVersion,
    size: RecordSize,
    aliasing: Ipv4Aliasing,
    seed: u64,
    (count, max_v6_prefix): (u32, u8),
) -> Vec<u8> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut w = Writer::builder("Test-Tree")
        .ip_version(ip_version)
        .record_size(size)
        .ipv4_aliasing(aliasing)
        .build();
    let mut inserted = 0;
    for i in 0..count {
        let net: IpNet = if ip_version == IpVersion::V4 || i % 2 == 0 {
            let prefix = rng.random_range(4..=32);
            ipnet::Ipv4Net::new(Ipv4Addr::from(rng.random::<u32>()), prefix)
                .expect("prefix")
                .trunc()
                .into()
        } else {
            let prefix = rng.random_range(8..=max_v6_prefix);
            let bits = if i % 3 == 0 {
                rng.random::<u128>()
            } else {
                (rng.random::<u128>() >> 3) | (1 << 125)
            };
            ipnet::Ipv6Net::new(Ipv6Addr::from(bits), prefix)
                .expect("prefix")
                .trunc()
                .into()
        };
        let value = if i % 3 == 0 {
            Value::from(i % 5)
        } else {
            Value::map([("n", Value::from(i))])
        };
        match w.insert_value(net, value) {
            Ok(()) => inserted += 1,
            // Random IPv6 networks may fall in the IPv4 alias blocks.
            Err(mmdb_writer::Error::AliasedNetwork(_)) => {}
            Err(e) => panic!("{net}: {e}"),
        }
    }
    assert!(inserted > count / 2, "{inserted} of {count}");
    w.to_bytes().expect("write")
}

const SIZES: [(RecordSize, u16); 3] = [
    (RecordSize::Bits24, 24),
    (RecordSize::Bits28, 28),
    (RecordSize::Bits32, 32),
];

#[test]
fn generated_databases_agree_for_every_record_size_and_ip_version() {
    for (size, bits) in SIZES {
        for (version, aliasing) in [
            (IpVersion::V6, Ipv4Aliasing::Enabled),
            (IpVersion::V6, Ipv4Aliasing::Disabled),
            (IpVersion::V4, Ipv4Aliasing::Enabled),
        ] {
            let what = format!("{bits}-bit {version:?} {aliasing:?}");
            let bytes = generated(version, size, aliasing, u64::from(bits), (400, 128));
            let (reader, tree) = open(bytes);
            assert_eq!(reader.metadata().record_size, bits, "{what}");
            let mut rng = SmallRng::seed_from_u64(2);
            let mut addrs = network_edges(&reader);
            addrs.extend(random_addrs(&mut rng, 20_000));
            let tally = assert_agree(&reader, &tree, addrs);
            assert!(tally.found > 0 && tally.none > 0, "{what}: {tally:?}");
            // An IPv4-only file refuses every IPv6 address, as maxminddb does
            // (GeoDb never asks it: `Source::holds`).
            assert_eq!(
                tally.errors > 0,
                version == IpVersion::V4,
                "{what}: {tally:?}"
            );
        }
    }
}

/// Writes record `right` of `node` as the spec lays it out for `bits`.
fn set_record(buf: &mut [u8], bits: u16, node: usize, right: bool, value: u32) {
    let v = value.to_be_bytes();
    match bits {
        24 => {
            let at = node * 6 + if right { 3 } else { 0 };
            buf[at..at + 3].copy_from_slice(&v[1..]);
        }
        28 => {
            let at = node * 7 + if right { 4 } else { 0 };
            buf[at..at + 3].copy_from_slice(&v[1..]);
            let middle = &mut buf[node * 7 + 3];
            let top = v[0] & 0x0f;
            *middle = if right {
                (*middle & 0xf0) | top
            } else {
                (*middle & 0x0f) | (top << 4)
            };
        }
        _ => {
            let at = node * 8 + if right { 4 } else { 0 };
            buf[at..at + 4].copy_from_slice(&v);
        }
    }
}

/// One small file per record size and IP version, built once for the
/// corruption tests below, with its node count, data section length and
/// network edges.
struct Base {
    bytes: Vec<u8>,
    bits: u16,
    node_count: u32,
    data_len: u32,
    edges: Vec<IpAddr>,
}

fn bases() -> &'static [Base] {
    static BASES: OnceLock<Vec<Base>> = OnceLock::new();
    BASES.get_or_init(|| {
        let mut out = Vec::new();
        for (size, bits) in SIZES {
            for version in [IpVersion::V6, IpVersion::V4] {
                let bytes = generated(version, size, Ipv4Aliasing::Enabled, 7, (40, 64));
                let (reader, tree) = open(bytes.clone());
                out.push(Base {
                    bytes,
                    bits,
                    node_count: u32::try_from(tree.nodes.count).expect("nodes"),
                    data_len: u32::try_from(tree.data_section_len).expect("data"),
                    edges: network_edges(&reader),
                });
            }
        }
        out
    })
}

/// A record value that lands in each class the walk tells apart: a node
/// (possibly an earlier one, making a loop), "no data", inside the
/// separator, a pointer at the data section's first and last byte, just past
/// it, the largest value the record size holds, and a node number plus one
/// bit from 2^20 up (for 28-bit records, also the shared middle byte's): a
/// read that lost that bit would walk on where the spec says the file is
/// corrupt. The small trees have fewer than 2^20 nodes and data bytes.
fn corrupt_value(base: &Base, class: u8, pick: u32) -> u32 {
    let (n, d) = (base.node_count, base.data_len);
    let max = if base.bits == 32 {
        u32::MAX
    } else {
        (1 << base.bits) - 1
    };
    match class % 9 {
        0 => pick % n,
        1 => n,
        2 => n + 1 + pick % 15,
        3 => n + 16,
        4 => n + 16 + pick % d,
        5 => n + 16 + d - 1,
        6 => (n + 16 + d).min(max),
        7 => max,
        _ => (1 << (20 + (pick >> 16) % (u32::from(base.bits) - 20))) | ((pick & 0xffff) % n),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// With records of the tree overwritten (pointers past the data section,
    /// into the separator, loops), both walks still answer alike: the same
    /// offset, no record, or an error.
    #[test]
    fn corrupted_trees_agree(
        which in 0..6usize,
        patches in prop::collection::vec((any::<u32>(), any::<bool>(), any::<u8>(), any::<u32>()), 1..6),
        seed in any::<u64>(),
    ) {
        let base = &bases()[which];
        let mut bytes = base.bytes.clone();
        for &(node, right, class, pick) in &patches {
            let value = corrupt_value(base, class, pick);
            set_record(&mut bytes, base.bits, (node % base.node_count) as usize, right, value);
        }
        let (reader, tree) = open(bytes);
        let mut rng = SmallRng::seed_from_u64(seed);
        let addrs = random_addrs(&mut rng, 100);
        for ip in addrs.into_iter().chain(base.edges.iter().copied()) {
            prop_assert_eq!(ours(&tree, ip), theirs(&reader, ip), "{}", ip);
        }
    }
}

/// The error classes, and high bits, in records spread over each small
/// tree, one at a time, with the errors counted, so that corruption is seen
/// to be reached.
#[test]
fn each_corrupt_record_errs_alike() {
    for base in bases() {
        let mut errors = 0;
        let step = (base.node_count as usize / 8).max(1);
        // The lowest and highest bits of each record size's top byte, and of
        // the 28-bit middle nibble: where a wrong mask or shift would show.
        let high_bits = [20, 23, 24, 27, 28, 31]
            .into_iter()
            .filter(|&bit| bit < u32::from(base.bits));
        let corruptions = [(2, 0), (6, 0), (7, 0)]
            .into_iter()
            .chain(high_bits.map(|bit| (8, (bit - 20) << 16)));
        for node in (0..base.node_count as usize).step_by(step) {
            for right in [false, true] {
                for (class, pick) in corruptions.clone() {
                    let mut bytes = base.bytes.clone();
                    let value = corrupt_value(base, class, pick | node as u32);
                    set_record(&mut bytes, base.bits, node, right, value);
                    let (reader, tree) = open(bytes);
                    errors += assert_agree(&reader, &tree, base.edges.iter().copied()).errors;
                }
            }
        }
        assert!(
            errors > 0,
            "{}-bit: no corrupt record was reached",
            base.bits
        );
    }
}

/// The real database, if `benches/load.sh` has cached it (never in CI):
/// 100,000 random addresses.
#[test]
fn geolite2_city_agrees() {
    let Some(home) = std::env::var_os("HOME") else {
        eprintln!("NOTE: no HOME; GeoLite2 City comparison skipped");
        return;
    };
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map_or_else(|| PathBuf::from(home).join(".cache"), PathBuf::from);
    let path = cache.join("mirrorgate-bench/GeoLite2-City.mmdb");
    let Ok(bytes) = std::fs::read(&path) else {
        eprintln!(
            "NOTE: {} absent; GeoLite2 City comparison skipped",
            path.display()
        );
        return;
    };
    let (reader, tree) = open(bytes);
    let mut rng = SmallRng::seed_from_u64(3);
    let tally = assert_agree(&reader, &tree, random_addrs(&mut rng, 100_000));
    assert!(tally.found > 10_000 && tally.none > 0, "{tally:?}");
    eprintln!("GeoLite2 City: {tally:?}");
}

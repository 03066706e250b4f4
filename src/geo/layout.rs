//! Record layouts: how a database shapes its records, how the layout of a file
//! is detected when it is opened, and the small borrowed structs that one
//! lookup decodes.
//!
//! Detection rule (per file): decode the first records of the file into a
//! probe that only notes which top-level keys are present.
//! - `country`, `registered_country`, `continent` or `location`: the MaxMind
//!   layout; City if any sampled record has `location` or `database_type`
//!   says "City", else Country.
//! - otherwise `country_code`: the flat ip-location-db layout; a city file if
//!   any record has `latitude`.
//! - otherwise `autonomous_system_number`: the ASN layout (MaxMind GeoLite2-ASN,
//!   DB-IP ASN lite and ip-location-db ASN files all use this name).
//! - a file without records falls back to `database_type` ("ASN", "City",
//!   "Country" in its name).
//!
//! Record structs only name the fields used; the decoder skips the rest
//! (names in many languages, subdivisions, ...) without allocating, and strings
//! are borrowed from the database.

use std::fmt;

use maxminddb::{MaxMindDbError, Reader, WithinOptions};
use serde::de::{self, IgnoredAny, Visitor};
use serde::{Deserialize, Deserializer};

use super::{Continent, Coords, CountryCode, Location};

/// How many records detection looks at: enough to see past a few sparse
/// records at the start of a real database, cheap even for a 70 MB file.
const PROBE_RECORDS: usize = 64;

/// The shape of a database's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// MaxMind City (GeoIP2/GeoLite2/DB-IP lite City): country, continent, location.
    City,
    /// MaxMind Country: country and continent, no location.
    Country,
    /// ip-location-db: top-level `country_code`, and `latitude`/`longitude` in city files.
    Flat { coords: bool },
    /// MaxMind ASN: `autonomous_system_number`.
    Asn,
}

impl Layout {
    /// True for layouts that locate an address (not ASN).
    pub fn is_location(&self) -> bool {
        !matches!(self, Layout::Asn)
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layout::City => "MaxMind City",
            Layout::Country => "MaxMind Country",
            Layout::Flat { coords: true } => "ip-location-db city",
            Layout::Flat { coords: false } => "ip-location-db country",
            Layout::Asn => "ASN",
        })
    }
}

/// Which top-level keys a record has.
#[derive(Deserialize)]
struct Probe {
    country: Option<IgnoredAny>,
    registered_country: Option<IgnoredAny>,
    continent: Option<IgnoredAny>,
    location: Option<IgnoredAny>,
    country_code: Option<IgnoredAny>,
    latitude: Option<IgnoredAny>,
    autonomous_system_number: Option<IgnoredAny>,
}

/// What detection saw; both answers are kept because one file may carry
/// location and ASN fields together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Detected {
    /// The location layout, if the records have location fields.
    pub location: Option<Layout>,
    /// The records carry `autonomous_system_number`.
    pub asn: bool,
}

/// Detects the layout of an opened database from its records (see the module
/// doc). Fails only if the sampled records cannot be decoded.
pub(crate) fn detect<S: AsRef<[u8]>>(reader: &Reader<S>) -> Result<Detected, MaxMindDbError> {
    let (mut maxmind, mut location, mut flat, mut latitude, mut asn) =
        (false, false, false, false, false);
    let mut seen = 0;
    for item in reader
        .networks(WithinOptions::default())?
        .take(PROBE_RECORDS)
    {
        let Some(p) = item?.decode::<Probe>()? else {
            continue;
        };
        seen += 1;
        maxmind |= p.country.is_some()
            || p.registered_country.is_some()
            || p.continent.is_some()
            || p.location.is_some();
        location |= p.location.is_some();
        flat |= p.country_code.is_some();
        latitude |= p.latitude.is_some();
        asn |= p.autonomous_system_number.is_some();
    }
    let db_type = reader.metadata().database_type.to_ascii_lowercase();
    let says_city = db_type.contains("city");
    let layout = if maxmind {
        Some(if location || says_city {
            Layout::City
        } else {
            Layout::Country
        })
    } else if flat {
        Some(Layout::Flat { coords: latitude })
    } else if seen == 0 && says_city {
        Some(Layout::City)
    } else if seen == 0 && db_type.contains("country") {
        Some(Layout::Country)
    } else {
        None
    };
    Ok(Detected {
        location: layout,
        asn: asn || (seen == 0 && db_type.contains("asn")),
    })
}

/// A coordinate stored as a double (MaxMind) or a float (ip-location-db), or
/// even an integer; the decoder is strict about types, so accept them all.
#[derive(Clone, Copy)]
struct Degrees(f64);

impl<'de> Deserialize<'de> for Degrees {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Degrees;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of degrees")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Degrees, E> {
                Ok(Degrees(v))
            }
            fn visit_f32<E: de::Error>(self, v: f32) -> Result<Degrees, E> {
                Ok(Degrees(f64::from(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Degrees, E> {
                // Coordinates are within ±180; larger values are rejected as invalid later.
                Ok(Degrees(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Degrees, E> {
                Ok(Degrees(v as f64))
            }
        }
        d.deserialize_any(V)
    }
}

/// An AS number stored as any unsigned integer type that fits in 32 bits.
#[derive(Clone, Copy)]
struct AsNumber(u32);

impl<'de> Deserialize<'de> for AsNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = AsNumber;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an AS number")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<AsNumber, E> {
                u32::try_from(v)
                    .map(AsNumber)
                    .map_err(|_| E::custom("AS number above 32 bits"))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<AsNumber, E> {
                u32::try_from(v)
                    .map(AsNumber)
                    .map_err(|_| E::custom("AS number above 32 bits"))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<AsNumber, E> {
                u32::try_from(v)
                    .map(AsNumber)
                    .map_err(|_| E::custom("AS number out of range"))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
struct IsoCode<'a> {
    #[serde(borrow)]
    iso_code: Option<&'a str>,
}

#[derive(Deserialize)]
struct ContinentCode<'a> {
    #[serde(borrow)]
    code: Option<&'a str>,
}

#[derive(Deserialize)]
struct LatLon {
    latitude: Option<Degrees>,
    longitude: Option<Degrees>,
}

/// The fields of a MaxMind City or Country record that a lookup needs.
#[derive(Deserialize)]
pub(crate) struct MaxMindRecord<'a> {
    #[serde(borrow)]
    country: Option<IsoCode<'a>>,
    #[serde(borrow)]
    registered_country: Option<IsoCode<'a>>,
    #[serde(borrow)]
    continent: Option<ContinentCode<'a>>,
    location: Option<LatLon>,
}

/// The fields of an ip-location-db record that a lookup needs.
#[derive(Deserialize)]
pub(crate) struct FlatRecord<'a> {
    #[serde(borrow)]
    country_code: Option<&'a str>,
    latitude: Option<Degrees>,
    longitude: Option<Degrees>,
}

/// The field of an ASN record that a lookup needs.
#[derive(Deserialize)]
pub(crate) struct AsnRecord {
    autonomous_system_number: Option<AsNumber>,
}

impl AsnRecord {
    pub(crate) fn asn(&self) -> Option<u32> {
        self.autonomous_system_number.map(|n| n.0)
    }
}

impl MaxMindRecord<'_> {
    pub(crate) fn location(&self) -> Location {
        // `country` is where the address is used; `registered_country` where
        // its block is registered, the best guess when the former is missing.
        let country = [&self.country, &self.registered_country]
            .into_iter()
            .flatten()
            .find_map(|c| c.iso_code.and_then(CountryCode::from_code));
        let continent = self
            .continent
            .as_ref()
            .and_then(|c| c.code)
            .and_then(Continent::from_code);
        let coords = self
            .location
            .as_ref()
            .and_then(|l| coords(l.latitude, l.longitude));
        complete(country, continent, coords)
    }
}

impl FlatRecord<'_> {
    pub(crate) fn location(&self) -> Location {
        let country = self.country_code.and_then(CountryCode::from_code);
        complete(country, None, coords(self.latitude, self.longitude))
    }
}

fn coords(lat: Option<Degrees>, lon: Option<Degrees>) -> Option<Coords> {
    let c = Coords {
        lat: lat?.0,
        lon: lon?.0,
    };
    c.is_valid().then_some(c)
}

/// Fills what the record lacks from the country table: the continent, and the
/// centroid when there are no coordinates, so that distance still works.
fn complete(
    country: Option<CountryCode>,
    continent: Option<Continent>,
    coords: Option<Coords>,
) -> Location {
    Location {
        country,
        continent: continent.or(country.map(|c| c.continent())),
        coords: coords.or(country.map(|c| c.centroid())),
        asn: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn country_only_gets_continent_and_centroid() {
        let de = CountryCode::from_code("DE").unwrap();
        let loc = complete(Some(de), None, None);
        assert_eq!(loc.continent, Some(Continent::EU));
        assert_eq!(loc.coords, Some(de.centroid()));
    }

    #[test]
    fn record_values_win_over_the_table() {
        let ru = CountryCode::from_code("RU").unwrap();
        let vladivostok = Coords {
            lat: 43.1,
            lon: 131.9,
        };
        let loc = complete(Some(ru), Some(Continent::AS), Some(vladivostok));
        assert_eq!(loc.continent, Some(Continent::AS));
        assert_eq!(loc.coords, Some(vladivostok));
    }

    #[test]
    fn invalid_coordinates_are_dropped() {
        assert!(coords(Some(Degrees(91.0)), Some(Degrees(0.0))).is_none());
        assert!(coords(Some(Degrees(f64::NAN)), Some(Degrees(0.0))).is_none());
        assert!(coords(Some(Degrees(10.0)), None).is_none());
    }
}

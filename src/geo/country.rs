//! ISO 3166-1 alpha-2 country codes and continent codes, with what the country
//! table (`country_table.rs`) knows of each country: its continent and an
//! approximate centroid (for databases without coordinates).
//!
//! Parsing here is on the lookup hot path, so the `from_code` constructors
//! neither allocate nor fail loudly; `FromStr` wraps them for config files.

use std::fmt;
use std::str::FromStr;

use super::country_table::COUNTRIES;
use super::Coords;

/// An ISO 3166-1 alpha-2 code that is in the country table, stored upper-case.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    /// The code for two letters in either case, if the country table lists it.
    /// Does not allocate: databases hand these out on every lookup.
    pub fn from_code(s: &str) -> Option<Self> {
        let code = Self::normalise(s)?;
        code.entry().map(|_| code)
    }

    /// Two ASCII letters, upper-cased; not yet checked against the table.
    fn normalise(s: &str) -> Option<Self> {
        match *s.as_bytes() {
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => Some(CountryCode([
                a.to_ascii_uppercase(),
                b.to_ascii_uppercase(),
            ])),
            _ => None,
        }
    }

    /// The table row of this code; `None` only for codes built by `normalise`
    /// that are not in the table.
    fn entry(&self) -> Option<&'static (&'static str, Continent, f64, f64)> {
        let slot = INDEX.get(slot(self.0[0], self.0[1]))?;
        COUNTRIES.get(usize::from(*slot).checked_sub(1)?)
    }

    /// The code, upper-case (`"DE"`).
    pub fn as_str(&self) -> &str {
        // Only ASCII letters are admitted, so this cannot fail.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }

    /// The continent MaxMind assigns to this country.
    pub fn continent(&self) -> Continent {
        // Every constructed code is in the table; EU is never reached.
        self.entry().map_or(Continent::EU, |row| row.1)
    }

    /// An approximate centroid of the country, good enough to rank mirrors by
    /// distance when a database gives only the country.
    pub fn centroid(&self) -> Coords {
        self.entry()
            .map_or(Coords { lat: 0.0, lon: 0.0 }, |row| Coords {
                lat: row.2,
                lon: row.3,
            })
    }

    /// Every code in the table, in order.
    pub fn all() -> impl Iterator<Item = CountryCode> {
        COUNTRIES.iter().filter_map(|row| Self::normalise(row.0))
    }
}

/// Position of an upper-case two-letter code in [`INDEX`].
const fn slot(a: u8, b: u8) -> usize {
    (a.wrapping_sub(b'A') as usize) * 26 + (b.wrapping_sub(b'A') as usize)
}

/// For every two-letter code, 1 + its row in `COUNTRIES`, or 0: lookups are
/// on the request path (several per GeoIP lookup), so they index, not search.
const INDEX: [u8; 26 * 26] = {
    assert!(COUNTRIES.len() < 255);
    let mut index = [0u8; 26 * 26];
    let mut i = 0;
    while i < COUNTRIES.len() {
        let code = COUNTRIES[i].0.as_bytes();
        // The table has 250 rows: i + 1 fits in a u8.
        index[slot(code[0], code[1])] = (i + 1) as u8;
        i += 1;
    }
    index
};

impl fmt::Debug for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CountryCode {
    type Err = String;
    /// Accepts an ISO 3166-1 alpha-2 code in either case (`"de"`, `"DE"`) that is
    /// in the country table (all assigned ISO codes, plus `XK` for Kosovo);
    /// rejects unassigned codes such as `"XX"` or `"ZZ"` and alpha-3 codes.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_code(s).ok_or_else(|| format!("{s:?} is not an ISO 3166-1 alpha-2 country code"))
    }
}

/// The seven continent codes MaxMind uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Continent {
    AF,
    AN,
    AS,
    EU,
    NA,
    OC,
    SA,
}

impl Continent {
    /// Every continent, in code order.
    pub const ALL: [Continent; 7] = [
        Self::AF,
        Self::AN,
        Self::AS,
        Self::EU,
        Self::NA,
        Self::OC,
        Self::SA,
    ];

    /// The two-letter code (`"EU"`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::AF => "AF",
            Self::AN => "AN",
            Self::AS => "AS",
            Self::EU => "EU",
            Self::NA => "NA",
            Self::OC => "OC",
            Self::SA => "SA",
        }
    }

    /// The continent for a two-letter code in either case; does not allocate.
    pub fn from_code(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for Continent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Continent {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_code(s)
            .ok_or_else(|| format!("{s:?} is not a continent code (AF, AN, AS, EU, NA, OC, SA)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_unique_and_valid() {
        for pair in COUNTRIES.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{} before {}", pair[0].0, pair[1].0);
        }
        for row in COUNTRIES {
            let coords = Coords {
                lat: row.2,
                lon: row.3,
            };
            assert!(coords.is_valid(), "{}", row.0);
            assert!(CountryCode::from_code(row.0).is_some(), "{}", row.0);
        }
        // 249 ISO 3166-1 codes plus XK.
        assert_eq!(COUNTRIES.len(), 250);
        assert_eq!(CountryCode::all().count(), 250);
    }

    #[test]
    fn parses_known_codes_in_either_case() {
        let de: CountryCode = "de".parse().unwrap();
        assert_eq!(de.as_str(), "DE");
        assert_eq!(de, "DE".parse().unwrap());
        assert_eq!(de.continent(), Continent::EU);
        assert_eq!(
            "ru".parse::<CountryCode>().unwrap().continent(),
            Continent::EU
        );
        assert_eq!(
            "tr".parse::<CountryCode>().unwrap().continent(),
            Continent::AS
        );
        assert_eq!(
            "br".parse::<CountryCode>().unwrap().continent(),
            Continent::SA
        );
        assert_eq!(
            "aq".parse::<CountryCode>().unwrap().continent(),
            Continent::AN
        );
    }

    #[test]
    fn rejects_codes_outside_the_table() {
        for bad in ["XX", "ZZ", "D", "DEU", "", "D1", "ÄÖ", "uk"] {
            assert!(bad.parse::<CountryCode>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn centroids_are_inside_the_right_region() {
        let de = CountryCode::from_code("DE").unwrap().centroid();
        let fr = CountryCode::from_code("FR").unwrap().centroid();
        let au = CountryCode::from_code("AU").unwrap().centroid();
        assert!((47.0..55.0).contains(&de.lat) && (5.0..15.0).contains(&de.lon));
        assert!(de.distance_km(&fr) < 1000.0);
        assert!(de.distance_km(&au) > 10_000.0);
    }

    #[test]
    fn continent_codes_round_trip() {
        for c in Continent::ALL {
            assert_eq!(Continent::from_code(&c.as_str().to_lowercase()), Some(c));
        }
        assert!("XX".parse::<Continent>().is_err());
    }
}

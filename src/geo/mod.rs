//! GeoIP: open MaxMind DB files (City, Country and ASN layouts, and the flat
//! `ip-location-db` layout) and answer `lookup(IpAddr) -> Option<Location>`.
//!
//! This module owns reading databases and the country table; it knows nothing
//! of mirrors or requests. Lookups never allocate on the hot path beyond what
//! the reader itself needs, and never fail a request: a broken record is
//! reported as [`LookupOutcome::Error`] and treated as an unknown client.
//!
//! Files: `reader.rs` (`GeoDb`, the lookup), `source.rs` (one opened file and
//! its load-time checks), `layout.rs` (layout detection and the borrowed record
//! structs), `address.rs` (which addresses are looked up at all), `error.rs`,
//! `country.rs` and `country_table.rs` (codes, continents, centroids).

mod address;
mod country;
mod country_table;
mod error;
mod layout;
mod reader;
mod source;

pub use country::{Continent, CountryCode};
pub use layout::Layout;
pub use reader::{DbInfo, GeoDb, GeoError};

/// A point on Earth, in degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Coords {
    pub lat: f64,
    pub lon: f64,
}

impl Coords {
    /// Great-circle distance in kilometres (haversine, mean Earth radius).
    pub fn distance_km(&self, other: &Coords) -> f64 {
        const R: f64 = 6371.0088;
        let (p1, p2) = (self.lat.to_radians(), other.lat.to_radians());
        let dp = p2 - p1;
        let dl = (other.lon - self.lon).to_radians();
        let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
        2.0 * R * a.sqrt().min(1.0).asin()
    }

    /// True when both values are finite and within the ranges of latitude and longitude.
    pub fn is_valid(&self) -> bool {
        self.lat.is_finite()
            && self.lon.is_finite()
            && (-90.0..=90.0).contains(&self.lat)
            && (-180.0..=180.0).contains(&self.lon)
    }
}

/// What the databases say of one address. Every part is optional: a Country
/// database has no coordinates (then the country's centroid is used), an ASN
/// database may be absent.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Location {
    pub country: Option<CountryCode>,
    pub continent: Option<Continent>,
    pub coords: Option<Coords>,
    pub asn: Option<u32>,
}

impl Location {
    /// True when nothing at all is known.
    pub fn is_empty(&self) -> bool {
        self.country.is_none()
            && self.continent.is_none()
            && self.coords.is_none()
            && self.asn.is_none()
    }
}

/// How a lookup went; a bounded metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LookupOutcome {
    /// A record was found.
    Found,
    /// No record, or a private/reserved address.
    Unknown,
    /// The database could not decode the record.
    Error,
}

impl LookupOutcome {
    pub const ALL: [LookupOutcome; 3] = [Self::Found, Self::Unknown, Self::Error];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Found => "found",
            Self::Unknown => "unknown",
            Self::Error => "error",
        }
    }
}

//! GeoIP: open MaxMind DB files (City, Country and ASN layouts, and the flat
//! `ip-location-db` layout) and answer `lookup(IpAddr) -> Option<Location>`.
//!
//! This module owns reading databases and the country table; it knows nothing
//! of mirrors or requests. Lookups never allocate on the hot path beyond what
//! the reader itself needs, and never fail a request: a broken record is
//! reported as [`LookupOutcome::Error`] and treated as an unknown client.
//!
//! Files: `reader.rs` (`GeoDb`, the lookup), `source.rs` (one opened file and
//! its load-time checks), `tree.rs` (the search-tree walk of the request
//! path), `layout.rs` (layout detection and the borrowed record
//! structs), `address.rs` (which addresses are looked up at all), `error.rs`,
//! `country.rs` and `country_table.rs` (codes, continents, centroids).

mod address;
mod country;
mod country_table;
mod error;
mod layout;
mod reader;
mod source;
mod tree;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acos_poly_is_within_its_bound() {
        for i in -100_000..=100_000 {
            let x = f64::from(i) / 100_000.0;
            assert!((acos_poly(x) - x.acos()).abs() < 3e-8, "x = {x}");
        }
        assert_eq!(acos_poly(1.5), acos_poly(1.0));
    }

    #[test]
    fn unit_vector_distance_matches_haversine() {
        let pts = [
            (50.11, 8.68),
            (40.71, -74.01),
            (-33.87, 151.21),
            (35.68, 139.69),
            (0.0, 0.0),
            (0.0, 180.0),
            (89.9, 0.0),
            (50.12, 8.69),
        ];
        for &(a, b) in &pts {
            for &(c, d) in &pts {
                let (p, q) = (Coords { lat: a, lon: b }, Coords { lat: c, lon: d });
                let h = p.distance_km(&q);
                let u = UnitVector::from(p).distance_km(&UnitVector::from(q));
                assert!((h - u).abs() < 0.01, "{p:?} {q:?}: {h} vs {u}");
            }
        }
        // Frankfurt to New York is about 6,200 km.
        let d = Coords {
            lat: 50.11,
            lon: 8.68,
        }
        .distance_km(&Coords {
            lat: 40.71,
            lon: -74.01,
        });
        assert!((6150.0..6250.0).contains(&d), "{d}");
    }
}

pub(crate) use address::lookup_form;
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
        const R: f64 = EARTH_RADIUS_KM;
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

/// Mean Earth radius in kilometres.
const EARTH_RADIUS_KM: f64 = 6371.0088;

/// A point on the unit sphere. Mirrors keep theirs precomputed, so the
/// distance from a client costs a few multiplications and one square root, not the
/// five trigonometric calls of the haversine (selection measures 50 of them per request).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UnitVector([f64; 3]);

impl From<Coords> for UnitVector {
    fn from(c: Coords) -> Self {
        let (lat, lon) = (c.lat.to_radians(), c.lon.to_radians());
        UnitVector([lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()])
    }
}

impl UnitVector {
    /// Great-circle distance in kilometres: the angle between the vectors,
    /// `acos` of their dot product, with one square root and a polynomial.
    pub fn distance_km(&self, other: &UnitVector) -> f64 {
        let [a, b, c] = self.0;
        let [x, y, z] = other.0;
        EARTH_RADIUS_KM * acos_poly(a * x + b * y + c * z)
    }
}

/// `acos(x)` within 2e-8 radians (0.2 m on Earth), for any `x` (clamped to
/// [-1, 1]): `sqrt(1 - x)` times the polynomial of Abramowitz and Stegun,
/// 4.4.46, reflected for negative `x`. Selection takes one per mirror per
/// request, and libm's trigonometry was a tenth of the request path's own time.
fn acos_poly(x: f64) -> f64 {
    const A: [f64; 8] = [
        1.570_796_305_0,
        -0.214_598_801_6,
        0.088_978_987_4,
        -0.050_174_304_6,
        0.030_891_881_0,
        -0.017_088_125_6,
        0.006_670_090_1,
        -0.001_262_491_1,
    ];
    let x = x.clamp(-1.0, 1.0);
    let t = x.abs();
    let poly = ((((((A[7] * t + A[6]) * t + A[5]) * t + A[4]) * t + A[3]) * t + A[2]) * t + A[1])
        * t
        + A[0];
    let r = (1.0 - t).sqrt() * poly;
    if x < 0.0 {
        std::f64::consts::PI - r
    } else {
        r
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

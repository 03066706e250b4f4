//! Opening databases and looking addresses up (stub: filled in by the geo work).

use std::net::IpAddr;
use std::path::PathBuf;

use super::{Location, LookupOutcome};

/// Errors opening a database; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    #[error("{path}: {message}")]
    Open { path: PathBuf, message: String },
}

/// The opened databases: one or more location databases and an optional ASN database.
#[derive(Debug, Default)]
pub struct GeoDb {}

impl GeoDb {
    /// A database that knows nothing: every client is unknown.
    pub fn empty() -> Self {
        GeoDb {}
    }

    /// Opens location databases (City, Country or flat layout, detected from each file)
    /// and an optional ASN database.
    pub fn open(city: &[PathBuf], asn: Option<&PathBuf>) -> Result<Self, GeoError> {
        let _ = (city, asn);
        Ok(GeoDb {})
    }

    /// Looks an address up. IPv4-mapped IPv6 addresses are looked up as IPv4.
    pub fn lookup(&self, ip: IpAddr) -> (Option<Location>, LookupOutcome) {
        let _ = ip;
        (None, LookupOutcome::Unknown)
    }
}

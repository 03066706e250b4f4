//! `GeoDb`: the opened location databases (one or more files, e.g. an IPv4 and
//! an IPv6 file) and the optional ASN database, and the lookup that requests
//! call.
//!
//! `lookup` is on the hot path of every request: it takes no lock, decodes
//! only the fields it needs into structs that borrow from the database, and
//! never panics. Opening, with its checks, happens off the request path (at
//! start and on reload).

use std::io;
use std::net::IpAddr;
use std::path::PathBuf;

use super::address::lookup_form;
pub use super::error::GeoError;
pub use super::source::DbInfo;
use super::source::{Hit, Role, Source};
use super::{Location, LookupOutcome};

/// The opened databases: one or more location databases and an optional ASN database.
#[derive(Debug, Default)]
pub struct GeoDb {
    city: Vec<Source>,
    asn: Option<Source>,
}

impl GeoDb {
    /// A database that knows nothing: every client is unknown.
    pub fn empty() -> Self {
        GeoDb::default()
    }

    /// Opens location databases (City, Country or flat layout, detected from each file)
    /// and an optional ASN database. Each file is checked as it is opened, and an
    /// error names the file.
    pub fn open(city: &[PathBuf], asn: Option<&PathBuf>) -> Result<Self, GeoError> {
        let city = city
            .iter()
            .map(|path| Source::load(path.clone(), read(path)?, Role::Location))
            .collect::<Result<Vec<_>, _>>()?;
        let asn = asn
            .map(|path| Source::load(path.clone(), read(path)?, Role::Asn))
            .transpose()?;
        Ok(GeoDb { city, asn })
    }

    /// Like [`GeoDb::open`], from databases already in memory (e.g. embedded
    /// with `include_bytes!`). Each label stands for the file name in errors
    /// and [`GeoDb::describe`].
    pub fn from_bytes(
        city: Vec<(String, Vec<u8>)>,
        asn: Option<(String, Vec<u8>)>,
    ) -> Result<Self, GeoError> {
        let city = city
            .into_iter()
            .map(|(label, bytes)| Source::load(label.into(), bytes, Role::Location))
            .collect::<Result<Vec<_>, _>>()?;
        let asn = asn
            .map(|(label, bytes)| Source::load(label.into(), bytes, Role::Asn))
            .transpose()?;
        Ok(GeoDb { city, asn })
    }

    /// True when no database is loaded.
    pub fn is_empty(&self) -> bool {
        self.city.is_empty() && self.asn.is_none()
    }

    /// What is loaded, one entry per file: location files in lookup order, then the ASN file.
    pub fn info(&self) -> Vec<DbInfo> {
        self.city
            .iter()
            .chain(self.asn.as_ref())
            .map(Source::info)
            .collect()
    }

    /// [`GeoDb::info`] as one line per file, for logs and `locate`.
    pub fn describe(&self) -> Vec<String> {
        self.info().iter().map(ToString::to_string).collect()
    }

    /// Fully verifies every file (`maxminddb::Reader::verify`: every network
    /// and record). Slow on large files: meant for `check-config`-like tools,
    /// not for loading. Stricter than loading, too: it also refuses metadata
    /// without a `description`, which some third-party files may lack.
    pub fn verify(&self) -> Result<(), GeoError> {
        self.city
            .iter()
            .chain(self.asn.as_ref())
            .try_for_each(Source::verify)
    }

    /// Looks an address up. IPv4-mapped IPv6 addresses are looked up as IPv4;
    /// private, loopback, link-local, CGNAT, multicast and other special
    /// addresses are `Unknown` without touching the databases. The location
    /// files that can hold the address's family are tried in order and the
    /// first record wins; a record that cannot be decoded gives `Error`.
    pub fn lookup(&self, ip: IpAddr) -> (Option<Location>, LookupOutcome) {
        let Some(ip) = lookup_form(ip) else {
            return (None, LookupOutcome::Unknown);
        };
        let mut location = Location::default();
        for source in self.city.iter().filter(|s| s.holds(ip)) {
            match source.decode(ip) {
                Ok(Some(Hit::Location(found))) => {
                    location = found;
                    break;
                }
                Ok(_) => {}
                Err(_) => return (None, LookupOutcome::Error),
            }
        }
        if let Some(source) = self.asn.as_ref().filter(|s| s.holds(ip)) {
            match source.decode(ip) {
                Ok(Some(Hit::Asn(asn))) => location.asn = asn,
                Ok(_) => {}
                Err(_) => return (None, LookupOutcome::Error),
            }
        }
        if location.is_empty() {
            (None, LookupOutcome::Unknown)
        } else {
            (Some(location), LookupOutcome::Found)
        }
    }
}

fn read(path: &PathBuf) -> Result<Vec<u8>, GeoError> {
    std::fs::read(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => GeoError::Missing { path: path.clone() },
        _ => GeoError::Read {
            path: path.clone(),
            source,
        },
    })
}

//! One opened database file: loading it with the checks that let a broken file
//! be refused at load time rather than on the request path, its detected
//! layout, and decoding its record for one address.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use bytes::Bytes;
use maxminddb::{LookupResult, MaxMindDbError, Reader, WithinOptions};

use super::error::GeoError;
use super::layout::{self, AsnRecord, FlatRecord, Layout, MaxMindRecord};
use super::tree::SearchTree;
use super::Location;

/// The marker before the metadata; the MaxMind DB spec puts it within the
/// last 128 KiB of the file.
const METADATA_MARKER: &[u8] = b"\xab\xcd\xefMaxMind.com";
const METADATA_MAX: usize = 128 * 1024;

/// How many addresses per family the open-time check looks up.
const SAMPLE_LOOKUPS: u32 = 4096;

/// What a file is used for, which decides the layouts it may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Location,
    Asn,
}

/// At most this many distinct records are decoded ahead (GeoLite2-City has
/// a few hundred thousand); past it, the rest are decoded per lookup.
const MAX_DECODED: usize = 4_000_000;

/// An opened, checked database file.
#[derive(Debug)]
pub(crate) struct Source {
    pub label: PathBuf,
    pub layout: Layout,
    /// Over `Bytes` so that `tree` can share the file's buffer.
    reader: Reader<Bytes>,
    /// The walk of the request path; `reader` does everything else.
    tree: SearchTree,
    /// Every record decoded once at load, by its offset in the data section:
    /// many networks share a record, and decoding a City record (walking past
    /// its maps of names in many languages) costs more than the tree walk
    /// itself. A lookup is then a tree walk and a hash probe.
    decoded: HashMap<usize, Hit, BuildOffsetHasher>,
}

/// Record offsets are distinct integers chosen by the file, not by clients:
/// one multiply spreads them well, and SipHash's flood resistance buys nothing here.
#[derive(Debug, Default, Clone, Copy)]
struct OffsetHasher(u64);

impl std::hash::Hasher for OffsetHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type BuildOffsetHasher = std::hash::BuildHasherDefault<OffsetHasher>;

/// What a lookup in one file found.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Hit {
    Location(Location),
    Asn(Option<u32>),
}

impl Source {
    /// Parses and checks `bytes` (read from `label`) for use in `role`.
    pub fn load(label: PathBuf, bytes: Vec<u8>, role: Role) -> Result<Self, GeoError> {
        let tail = &bytes[bytes.len().saturating_sub(METADATA_MAX)..];
        if !tail
            .windows(METADATA_MARKER.len())
            .any(|w| w == METADATA_MARKER)
        {
            return Err(GeoError::NotMaxMind {
                path: label,
                detail: "no metadata marker at its end".into(),
            });
        }
        if let Err(e) = check_separator(&bytes) {
            return Err(GeoError::corrupt(label, e));
        }
        let bytes = Bytes::from(bytes);
        let reader = match Reader::from_source(bytes.clone()) {
            Ok(r) => r,
            Err(e) => return Err(GeoError::corrupt(label, e)),
        };
        let tree = match SearchTree::new(&bytes, reader.metadata()) {
            Ok(t) => t,
            Err(e) => return Err(GeoError::corrupt(label, e)),
        };
        let detected = match layout::detect(&reader) {
            Ok(d) => d,
            Err(e) => return Err(GeoError::corrupt(label, e)),
        };
        let layout = match (role, detected.location) {
            (Role::Location, Some(l)) => l,
            (Role::Location, None) if detected.asn => {
                return Err(GeoError::WrongLayout {
                    path: label,
                    found: Layout::Asn.to_string(),
                    expected: "a location (City, Country or ip-location-db)",
                })
            }
            (Role::Asn, _) if detected.asn => Layout::Asn,
            (Role::Asn, Some(l)) => {
                return Err(GeoError::WrongLayout {
                    path: label,
                    found: l.to_string(),
                    expected: "an ASN",
                })
            }
            (_, None) => {
                let detail = format!(
                    "database_type {:?}, records without country, location or ASN fields",
                    reader.metadata().database_type
                );
                return Err(GeoError::UnknownLayout {
                    path: label,
                    detail,
                });
            }
        };
        let mut source = Source {
            label,
            layout,
            reader,
            tree,
            decoded: HashMap::default(),
        };
        if let Err(e) = source.sanity_check() {
            return Err(GeoError::corrupt(source.label, e));
        }
        match source.decode_all() {
            Ok(decoded) => source.decoded = decoded,
            Err(e) => return Err(GeoError::corrupt(source.label, e)),
        }
        Ok(source)
    }

    /// A cheap integrity check at load time. `Reader::verify` walks every
    /// network and record and remembers every record offset: on a 70 MB City
    /// database that is millions of each, on every start and reload. Instead (with
    /// [`check_separator`]): lookups of addresses spread over the whole
    /// address space, each decoding its record exactly as a request would.
    /// Truncation is caught earlier (the metadata is at the end); a
    /// corruption that this misses still gives `LookupOutcome::Error`, never a
    /// panic. [`Source::verify`] runs the full check for tools.
    fn sanity_check(&self) -> Result<(), MaxMindDbError> {
        let meta = self.reader.metadata();
        let step4 = u32::MAX / SAMPLE_LOOKUPS;
        for i in 0..SAMPLE_LOOKUPS {
            self.decode(IpAddr::V4(Ipv4Addr::from(i.wrapping_mul(step4) | 1)))?;
        }
        if meta.ip_version == 6 {
            // Global unicast 2000::/3, where real data lives.
            let step6 = (1u128 << 125) / u128::from(SAMPLE_LOOKUPS);
            for i in 0..u128::from(SAMPLE_LOOKUPS) {
                let ip = (0x2000u128 << 112) + i * step6 + 1;
                self.decode(IpAddr::V6(Ipv6Addr::from(ip)))?;
            }
        }
        Ok(())
    }

    /// Decodes every distinct record once (see [`Source::decoded`]). A record
    /// that fails to decode refuses the file at load, where an operator sees
    /// it, rather than on the request path.
    fn decode_all(&self) -> Result<HashMap<usize, Hit, BuildOffsetHasher>, MaxMindDbError> {
        let mut decoded = HashMap::default();
        for item in self.reader.networks(WithinOptions::default())? {
            let item = item?;
            let Some(offset) = item.offset() else {
                continue;
            };
            if decoded.contains_key(&offset) {
                continue;
            }
            if decoded.len() >= MAX_DECODED {
                break;
            }
            if let Some(hit) = self.decode_result(&item)? {
                decoded.insert(offset, hit);
            }
        }
        Ok(decoded)
    }

    /// Full verification of the file (`Reader::verify`): slow on large files;
    /// for tools such as `check-config`, not for loading.
    pub fn verify(&self) -> Result<(), GeoError> {
        self.reader
            .verify()
            .map_err(|e| GeoError::corrupt(self.label.clone(), e))
    }

    /// True when this file can hold addresses of `ip`'s family.
    pub fn holds(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() || self.reader.metadata().ip_version == 6
    }

    /// The record for `ip`, decoded for this file's layout; `Ok(None)` when the
    /// file has no record for it.
    pub fn decode(&self, ip: IpAddr) -> Result<Option<Hit>, MaxMindDbError> {
        let Some(offset) = self.tree.offset(ip)? else {
            return Ok(None);
        };
        match self.decoded.get(&offset) {
            Some(hit) => Ok(Some(*hit)),
            // Not decoded ahead (past `MAX_DECODED`, or during the load-time
            // checks): `maxminddb` walks again to get a result it can decode.
            None => self.decode_result(&self.reader.lookup(ip)?),
        }
    }

    fn decode_result(
        &self,
        result: &LookupResult<'_, Bytes>,
    ) -> Result<Option<Hit>, MaxMindDbError> {
        Ok(match self.layout {
            Layout::City | Layout::Country => result
                .decode::<MaxMindRecord<'_>>()?
                .map(|r| Hit::Location(r.location())),
            Layout::Flat { .. } => result
                .decode::<FlatRecord<'_>>()?
                .map(|r| Hit::Location(r.location())),
            Layout::Asn => result.decode::<AsnRecord>()?.map(|r| Hit::Asn(r.asn())),
        })
    }

    /// A summary for logs and `locate`.
    pub fn info(&self) -> DbInfo {
        let meta = self.reader.metadata();
        DbInfo {
            file: self.label.clone(),
            layout: self.layout,
            database_type: meta.database_type.clone(),
            build_epoch: meta.build_epoch,
            ip_version: meta.ip_version,
        }
    }
}

/// The 16 zero bytes between the search tree and the data section; their
/// absence means the metadata's node count or record size is wrong.
fn check_separator(bytes: &[u8]) -> Result<(), MaxMindDbError> {
    let reader = Reader::from_source(bytes)?;
    let meta = reader.metadata();
    let tree = (meta.node_count as usize).saturating_mul(usize::from(meta.record_size)) / 4;
    match bytes.get(tree..tree.saturating_add(16)) {
        Some(s) if s.iter().all(|&b| b == 0) => Ok(()),
        _ => Err(MaxMindDbError::invalid_database(
            "no data section separator after the search tree",
        )),
    }
}

/// A description of one opened database file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbInfo {
    /// The path, or the label given to `GeoDb::from_bytes`.
    pub file: PathBuf,
    /// The layout detected from its records.
    pub layout: Layout,
    /// The metadata's `database_type` (e.g. `GeoLite2-City`).
    pub database_type: String,
    /// When the database was built, in seconds since the Unix epoch.
    pub build_epoch: u64,
    /// 4 for an IPv4-only file, 6 for a file that holds both families.
    pub ip_version: u16,
}

impl fmt::Display for DbInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} layout, database_type {:?}, IPv{}, built at epoch {}",
            self.file.display(),
            self.layout,
            self.database_type,
            self.ip_version,
            self.build_epoch
        )
    }
}

//! What the origin publishes and which mirrors have it.
//!
//! - `index.rs`: the compact, immutable [`ContentIndex`] of the origin's files
//!   (path, size, modification time, SHA-256), looked up on the request path.
//! - `manifest.rs`: the manifest format (`mirrorgate manifest DIR`) and its parser.
//! - `tree.rs`: walking a local origin tree (which files, which are left out).
//! - `hasher.rs`: SHA-256 in the background on a bounded number of threads,
//!   never of a half-written file.
//! - `hashcache.rs`: hashes already computed, on disk, across restarts.
//! - `fetch.rs`: getting a manifest when it changed (local file, or URL with
//!   a conditional GET), bounded in time and size.
//! - `indexer.rs`: the long-running task that keeps an index fresh from a
//!   tree or a manifest (local file or URL) and publishes it.
//! - `ondemand.rs`: checking one file on one mirror (HEAD, compare size), cached with a TTL.
//! - `fileset.rs`: per-mirror knowledge as bitsets over file ids.
//! - `scan.rs`: listing a mirror over rsync or its HTTP autoindex pages.
//!
//! Nothing here touches the snapshot: new indexes go to the state owner.

pub mod fetch;
mod fileset;
pub mod hashcache;
pub mod hasher;
mod index;
pub mod indexer;
pub mod manifest;
mod ondemand;
mod scan;
pub mod tree;

pub use fetch::{FetchOptions, PathOrUrl};
pub use fileset::FileSet;
pub use index::{is_clean_path, ContentIndex, FileId, FileInfo, IndexBuilder, IndexError};
pub use indexer::{IndexerStats, OriginSource};
pub use manifest::{parse_manifest, write_manifest, ManifestError};
pub use ondemand::{
    CheckRequest, CheckStats, Checker, CheckerError, CheckerSettings, Clock, Presence,
};
pub use scan::{
    http_scan, parse_http_index, parse_rsync_list, paths_to_fileset, rsync_scan, to_fileset,
    HttpListing, ScanError, MAX_LISTING_BYTES,
};
pub use tree::{walk, TreeError};

//! What the origin publishes and which mirrors have it.
//!
//! - `index.rs`: the compact, immutable [`ContentIndex`] of the origin's files
//!   (path, size, modification time, SHA-256), looked up on the request path.
//! - `manifest.rs`: the manifest format (`mirrorgate manifest DIR`) and its parser.
//! - `tree.rs`: walking a local origin tree, hashing in the background with a
//!   bounded number of threads and an on-disk cache.
//! - `ondemand.rs`: checking one file on one mirror (HEAD, compare size), cached with a TTL.
//! - `fileset.rs`: per-mirror knowledge as bitsets over file ids.
//! - `scan.rs`: listing a mirror over rsync or its HTTP autoindex pages.
//!
//! Nothing here touches the snapshot: new indexes go to the state owner.

mod fileset;
mod index;
mod ondemand;
mod scan;

pub use fileset::FileSet;
pub use index::{ContentIndex, FileId, FileInfo, IndexBuilder, IndexError};
pub use ondemand::{
    CheckRequest, CheckStats, Checker, CheckerError, CheckerSettings, Clock, Presence,
};
pub use scan::{
    http_scan, parse_http_index, parse_rsync_list, paths_to_fileset, rsync_scan, to_fileset,
    HttpListing, ScanError, MAX_LISTING_BYTES,
};

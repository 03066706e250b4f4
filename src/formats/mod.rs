//! Answer formats: the same ranking written for each kind of client.
//!
//! Download managers read Metalink v4 ([`metalink()`]), scripts read JSON
//! ([`json()`]), apt reads a mirror list ([`aptlist`]); [`negotiate`] says which
//! one a request wants. Every renderer is a pure function of a [`Listing`],
//! plain data built from what selection decided: nothing here ranks mirrors,
//! reads the snapshot's health, or does I/O. Wiring them into the request
//! path (status codes, headers, caching) belongs to `http`.

use std::time::{SystemTime, UNIX_EPOCH};

pub mod aptlist;
pub mod json;
mod listing;
pub mod metalink;
pub mod negotiate;

pub use aptlist::apt_mirror_list;
pub use json::json;
pub use listing::{ClientFacts, LeftOut, ListedMirror, Listing, Page, NOT_RANKED};
pub use metalink::{describedby_link, metalink, push_describedby_link};
pub use negotiate::{wanted, Wanted};

/// 10000-01-01T00:00:00Z: RFC 3339 has four-digit years, and humantime's
/// formatter refuses anything later.
const YEAR_10000: u64 = 253_402_300_800;

/// A time as RFC 3339 in UTC to the second; `None` before 1970 or after 9999.
pub(crate) fn rfc3339(t: SystemTime) -> Option<String> {
    let secs = t.duration_since(UNIX_EPOCH).ok()?.as_secs();
    (secs < YEAR_10000).then(|| humantime::format_rfc3339_seconds(t).to_string())
}

//! The mirror list apt's `mirror+http` method reads (`?aptmirrors`), ranked
//! for the client.
//!
//! The format is apt-transport-mirror(1)'s: one mirror URI per line; metadata
//! after a tab, items separated by tabs or spaces; `priority:N`, where the
//! lowest number is tried first and mirrors without one come last, in random
//! order. apt falls back down the list by itself when a mirror fails, so
//! every ranked mirror is listed, with its rank as its priority.

use std::fmt::Write as _;

use super::Listing;

/// The media type apt is happy with; it does not look at it.
pub const MEDIA_TYPE: &str = "text/plain; charset=utf-8";

/// One line per ranked mirror: `<uri>\tpriority:<rank>`.
///
/// The URI is the listing's path taken as a directory on that mirror: for the
/// site's root it is the mirror's base URL; for `/debian/` it is the mirror's
/// base URL followed by `debian/`. apt appends `dists/...` and `pool/...` to
/// it, so it always ends in `/`. A first comment line names the path, for
/// people who read the list; apt skips lines starting with `#`.
pub fn apt_mirror_list(listing: &Listing) -> String {
    let dir = listing.path_encoded.trim_start_matches('/');
    let mut out = String::with_capacity(64 + 96 * listing.mirrors.len());
    // `#` lines are comments for apt; no tab or newline may leak into it.
    let shown: String = listing
        .path
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let _ = writeln!(out, "# mirrors for {shown}, best first");
    for m in &listing.mirrors {
        out.push_str(&m.base_url);
        out.push_str(dir);
        if !out.ends_with('/') {
            out.push('/');
        }
        let _ = writeln!(out, "\tpriority:{}", m.rank);
    }
    out
}

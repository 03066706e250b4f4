//! Per-file decisions on the request path: what the origin says of a path
//! (unknown, a directory, a file that never leaves the origin, a file), and
//! whether each mirror may serve that file (fresh enough, or known to have it).
//!
//! Pure functions of the snapshot and the on-demand checker's cache; the only
//! waiting (for on-demand checks) is done by the caller, bounded by
//! `origin.on_demand.wait`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};

use super::path::CleanPath;
use crate::config::DirectoryPolicy;
use crate::content::{CheckRequest, Checker, FileInfo, Presence};
use crate::select::{self, Client, Reason};
use crate::state::{MirrorEntry, Snapshot};

/// What the origin says of a requested path.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Target {
    /// No origin index: every path may be redirected (freshness unknown).
    Any,
    /// Served by the fallback only (`never_redirect`, `min_redirect_size`, or
    /// a directory with `directories: fallback`); the file, when known, for its digest.
    Origin(Option<FileInfo>),
    /// The origin does not publish it.
    NotFound,
    /// A directory, with `directories: not_found`.
    Directory,
    /// A file the origin publishes.
    File(FileInfo),
}

/// Classifies `path` against the origin's index and rules.
pub(crate) fn classify(snap: &Snapshot, path: &CleanPath) -> Target {
    let Some(origin) = snap.config.origin.as_ref() else {
        return Target::Any;
    };
    let p = path.as_str();
    let never = origin.never_redirect(p.trim_end_matches('/'));
    if !snap.has_index() || !snap.content_loaded {
        // Before the first index arrives nothing can be said per file: the
        // fallback when there is one, else mirrors as without an index.
        if never || (snap.has_index() && snap.config.fallback.is_some()) {
            return Target::Origin(None);
        }
        return Target::Any;
    }
    match snap.content.lookup(p) {
        Some((_, info)) if never || info.size < origin.min_redirect_size => {
            Target::Origin(Some(info))
        }
        Some((_, info)) => Target::File(info),
        None if path.is_root() || snap.content.is_dir(p) => match origin.directories {
            DirectoryPolicy::Fallback => Target::Origin(None),
            DirectoryPolicy::NotFound => Target::Directory,
        },
        None if never => Target::Origin(None),
        None => Target::NotFound,
    }
}

/// Whether mirror `e` may serve `info`: lag first, then freshness (its last
/// sync is newer than the file), then what on-demand checks found.
pub(crate) fn verdict(
    snap: &Snapshot,
    e: &MirrorEntry,
    path: &str,
    info: &FileInfo,
    checker: &Checker,
    now: Instant,
) -> Reason {
    let max_lag = snap.config.origin.as_ref().and_then(|o| o.max_lag);
    if e.lagging(max_lag) {
        return Reason::Lagging;
    }
    if e.health
        .last_sync
        .is_some_and(|sync| synced_after(sync, info.mtime))
    {
        return Reason::Eligible;
    }
    presence_reason(checker.cached(&e.mirror.name, path, info, now))
}

/// [`verdict`] without an on-demand cache (the `explain` subcommand): a mirror
/// synced before the file is "not synced yet".
pub(crate) fn verdict_without_checks(snap: &Snapshot, e: &MirrorEntry, info: &FileInfo) -> Reason {
    let max_lag = snap.config.origin.as_ref().and_then(|o| o.max_lag);
    if e.lagging(max_lag) {
        return Reason::Lagging;
    }
    match e.health.last_sync {
        Some(sync) if synced_after(sync, info.mtime) => Reason::Eligible,
        _ => Reason::NotSyncedYet,
    }
}

/// True when a sync at `sync` holds a file of time `mtime` (Unix seconds):
/// the sync's whole seconds are not before it, a sync before 1970 counting as
/// 1970. Made per mirror for every request for a new file, so it compares
/// times rather than turning each sync into seconds
/// (`SystemTime::duration_since` was half the cost of a verdict).
fn synced_after(sync: SystemTime, mtime: i64) -> bool {
    match u64::try_from(mtime) {
        // A file of 1970 or before: every sync is after it.
        Err(_) | Ok(0) => true,
        // Within a file's own second counts as after it, as whole seconds did.
        Ok(secs) => UNIX_EPOCH
            .checked_add(Duration::from_secs(secs))
            .is_some_and(|file| sync >= file),
    }
}

pub(crate) fn presence_reason(p: Option<Presence>) -> Reason {
    match p {
        Some(Presence::Present) => Reason::Eligible,
        Some(Presence::Missing) => Reason::Missing,
        Some(Presence::SizeMismatch { .. }) => Reason::SizeMismatch,
        Some(Presence::Unknown) | None => Reason::NotSyncedYet,
    }
}

/// The mirrors worth checking now for this request: eligible but for this
/// file, not known either way, and better placed than the mirror chosen
/// without them (or any, when none was). Best first, at most `parallel`.
pub(crate) fn worth_checking(
    snap: &Snapshot,
    client: &Client,
    reasons: &[Reason],
    chosen: Option<usize>,
    parallel: usize,
) -> Vec<usize> {
    let cfg = &snap.config.selection;
    let loc = client.location.as_ref().filter(|l| l.coords.is_some());
    let cost = |i: usize| match loc {
        Some(l) => select::cost(&snap.mirrors[i].mirror, l, cfg),
        // Unknown client: prefer capacity.
        None => 1.0 / f64::from(snap.mirrors[i].mirror.weight.max(1)),
    };
    let limit = chosen.map_or(f64::INFINITY, cost);
    let mut out: Vec<(usize, f64)> = reasons
        .iter()
        .enumerate()
        .filter(|(i, r)| {
            **r == Reason::NotSyncedYet
                && select::eligibility(&snap.mirrors[*i], client) == Reason::Eligible
        })
        .map(|(i, _)| (i, cost(i)))
        .filter(|(_, c)| *c < limit)
        .collect();
    out.sort_by(|a, b| a.1.total_cmp(&b.1));
    out.truncate(parallel);
    out.into_iter().map(|(i, _)| i).collect()
}

/// The check requests for these mirrors.
pub(crate) fn check_requests(
    snap: &Snapshot,
    mirrors: &[usize],
    path: &CleanPath,
    info: &FileInfo,
) -> Vec<CheckRequest> {
    mirrors
        .iter()
        .map(|&i| {
            let m = &snap.mirrors[i].mirror;
            CheckRequest {
                mirror: m.name.clone(),
                base: m.url.clone(),
                path_encoded: path.encoded().to_string(),
                path: path.as_str().to_string(),
                info: *info,
            }
        })
        .collect()
}

const DIGEST: HeaderName = HeaderName::from_static("digest");
const REPR_DIGEST: HeaderName = HeaderName::from_static("repr-digest");

/// `Digest` (RFC 3230) and `Repr-Digest` (RFC 9530) headers for a known hash.
///
/// Built on every redirect: both values are written on the stack and copied
/// into one shared buffer, the only allocation; the names are constants.
pub(crate) fn digest_headers(info: Option<&FileInfo>) -> Option<[(HeaderName, HeaderValue); 2]> {
    let hash = info?.sha256?;
    // "sha-256=" + base64 (44 characters for 32 bytes), then "sha-256=:" + base64 + ":".
    let mut buf = [0u8; 52 + 54];
    buf[..8].copy_from_slice(b"sha-256=");
    if !matches!(
        base64::engine::general_purpose::STANDARD.encode_slice(hash, &mut buf[8..52]),
        Ok(44)
    ) {
        return None;
    }
    buf[52..61].copy_from_slice(b"sha-256=:");
    buf.copy_within(8..52, 61);
    buf[105] = b':';
    let values = Bytes::copy_from_slice(&buf);
    Some([
        (
            DIGEST,
            HeaderValue::from_maybe_shared(values.slice(..52)).ok()?,
        ),
        (
            REPR_DIGEST,
            HeaderValue::from_maybe_shared(values.slice(52..)).ok()?,
        ),
    ])
}

/// The `?sha256` answer: one line in the format `sha256sum -c` reads.
pub(crate) fn sha256_line(path: &CleanPath, hash: &[u8; 32]) -> String {
    let name = path.as_str().rsplit('/').next().unwrap_or("");
    let mut hex = String::with_capacity(64);
    for b in hash {
        hex.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        hex.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    format!("{hex}  {name}\n")
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The rule as it was written first: the sync's whole seconds since 1970
    /// (0 before it) against the file's time.
    fn synced_after_in_seconds(sync: SystemTime, mtime: i64) -> bool {
        let synced = sync
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        synced >= mtime
    }

    proptest! {
        #[test]
        fn synced_after_agrees_with_whole_seconds(
            sync_secs in -100_000i64..4_000_000_000,
            sync_nanos in 0u32..1_000_000_000,
            delta in -3i64..3,
            far in prop::bool::ANY,
        ) {
            let sync = if sync_secs >= 0 {
                UNIX_EPOCH + Duration::new(sync_secs as u64, sync_nanos)
            } else {
                UNIX_EPOCH - Duration::new(sync_secs.unsigned_abs(), sync_nanos)
            };
            // Times around the sync's own second, and far from it either way.
            let mtime = if far { sync_secs.wrapping_mul(3) - 7 } else { sync_secs + delta };
            prop_assert_eq!(synced_after(sync, mtime), synced_after_in_seconds(sync, mtime));
        }
    }

    #[test]
    fn synced_after_at_the_edges() {
        let sync = UNIX_EPOCH + Duration::new(1_700_000_000, 500_000_000);
        assert!(synced_after(sync, 1_700_000_000));
        assert!(!synced_after(sync, 1_700_000_001));
        assert!(synced_after(sync, i64::MIN));
        assert!(!synced_after(sync, i64::MAX));
        assert!(synced_after(UNIX_EPOCH - Duration::from_secs(5), 0));
        assert!(!synced_after(UNIX_EPOCH - Duration::from_secs(5), 1));
    }

    #[test]
    fn digest_headers_are_the_base64_of_the_hash() {
        for hash in [
            [0u8; 32],
            [0xff; 32],
            std::array::from_fn(|i| (i * 37) as u8),
        ] {
            let info = FileInfo {
                size: 1,
                mtime: 0,
                sha256: Some(hash),
            };
            let b64 = base64::engine::general_purpose::STANDARD.encode(hash);
            let got = digest_headers(Some(&info)).unwrap();
            assert_eq!(got[0].0, "digest");
            assert_eq!(got[0].1, format!("sha-256={b64}").as_str());
            assert_eq!(got[1].0, "repr-digest");
            assert_eq!(got[1].1, format!("sha-256=:{b64}:").as_str());
        }
        let unhashed = FileInfo {
            size: 1,
            mtime: 0,
            sha256: None,
        };
        assert!(digest_headers(Some(&unhashed)).is_none());
        assert!(digest_headers(None).is_none());
    }
}

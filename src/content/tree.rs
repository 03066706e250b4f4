//! Walking a local origin tree: which regular files it publishes, with their
//! size and modification time. No hashing here (see `hasher.rs`).
//!
//! What is listed, and why:
//! - Regular files only; directories are descended, FIFOs, sockets and
//!   devices are left out.
//! - A symlink to a regular file is listed under the link's own path, with
//!   its target's size and time, when the target (resolved) lies inside the
//!   root: mirrors copy such links, so clients request them. A symlink that
//!   points outside the root, dangles, or points to a directory is not
//!   followed (a directory link could loop or duplicate a whole subtree);
//!   each is counted in [`Walk::skipped_symlinks`].
//! - rsync's temporary files are skipped: the `.~tmp~` directory of
//!   `--delay-updates` and the `.NAME.XXXXXX` files it writes before the
//!   final rename (a dot, a name, a dot and six letters or digits). A hidden
//!   file of that exact shape is skipped too.
//! - Names that are not UTF-8 cannot be requested through a clean path, so
//!   they are skipped and counted.
//! - A directory that vanishes during the walk (a sync deleting it) is
//!   ignored; one that cannot be read is counted and logged, and the walk
//!   goes on: a single unreadable directory must not freeze the whole index.
//!   Only an unreadable root fails the walk.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Size and modification time of one file, as the walk saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    pub size: u64,
    /// Seconds since the Unix epoch (negative before it).
    pub mtime: i64,
}

impl FileStat {
    pub fn from_metadata(meta: &fs::Metadata) -> FileStat {
        FileStat {
            size: meta.len(),
            mtime: meta.modified().map_or(0, unix_secs),
        }
    }
}

/// Seconds since the Unix epoch, negative before it.
pub fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// The files of one walk, sorted by path, and what was left out.
#[derive(Debug, Default)]
pub struct Walk {
    /// Relative `/`-separated paths, sorted bytewise.
    pub files: Vec<(String, FileStat)>,
    pub skipped_temp: usize,
    pub skipped_non_utf8: usize,
    pub skipped_symlinks: usize,
    /// Directories or entries that could not be read (not counting vanished ones).
    pub unreadable: usize,
}

/// Why a walk failed.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    // The io error is in the message, not a `source`: printed once.
    #[error("{path}: cannot read the origin root: {error}", path = path.display())]
    Root { path: PathBuf, error: io::Error },
}

/// True for rsync's temporary names: `.~tmp~`, and `.NAME.XXXXXX`.
pub fn is_rsync_temp(name: &str) -> bool {
    if name == ".~tmp~" {
        return true;
    }
    let Some(rest) = name.strip_prefix('.') else {
        return false;
    };
    match rest.rsplit_once('.') {
        Some((base, suffix)) => {
            !base.is_empty()
                && suffix.len() == 6
                && suffix.bytes().all(|b| b.is_ascii_alphanumeric())
        }
        None => false,
    }
}

/// Lists the regular files under `root` (see the module doc for what is left out).
pub fn walk(root: &Path) -> Result<Walk, TreeError> {
    let root_err = |error| TreeError::Root {
        path: root.to_path_buf(),
        error,
    };
    let canonical_root = fs::canonicalize(root).map_err(root_err)?;
    let first = fs::read_dir(root).map_err(root_err)?;
    let mut walk = Walk::default();
    // Depth-first with an explicit stack: no recursion limit on deep trees.
    let mut stack: Vec<(String, fs::ReadDir)> = vec![(String::new(), first)];
    while let Some((prefix, mut dir)) = stack.pop() {
        let Some(entry) = dir.next() else { continue };
        stack.push((prefix.clone(), dir));
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                note_unreadable(&mut walk, &root.join(&prefix), &e);
                continue;
            }
        };
        let Ok(name) = entry.file_name().into_string() else {
            walk.skipped_non_utf8 += 1;
            tracing::debug!(path = %entry.path().display(), "origin walk: name is not UTF-8, skipped");
            continue;
        };
        if is_rsync_temp(&name) {
            walk.skipped_temp += 1;
            continue;
        }
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let file_type = match entry.file_type() {
            Ok(t) => t,
            Err(e) => {
                note_unreadable(&mut walk, &entry.path(), &e);
                continue;
            }
        };
        if file_type.is_dir() {
            match fs::read_dir(entry.path()) {
                Ok(d) => stack.push((rel, d)),
                Err(e) => note_unreadable(&mut walk, &entry.path(), &e),
            }
        } else if file_type.is_file() {
            match entry.metadata() {
                Ok(m) => walk.files.push((rel, FileStat::from_metadata(&m))),
                Err(e) => note_unreadable(&mut walk, &entry.path(), &e),
            }
        } else if file_type.is_symlink() {
            match linked_file(&entry.path(), &canonical_root) {
                Some(m) => walk.files.push((rel, FileStat::from_metadata(&m))),
                None => walk.skipped_symlinks += 1,
            }
        }
    }
    if walk.skipped_non_utf8 > 0 {
        tracing::warn!(
            root = %root.display(),
            count = walk.skipped_non_utf8,
            "origin walk: names that are not UTF-8 were skipped"
        );
    }
    walk.files.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(walk)
}

/// The target's metadata when `link` resolves to a regular file inside `root`.
fn linked_file(link: &Path, canonical_root: &Path) -> Option<fs::Metadata> {
    let target = fs::canonicalize(link).ok()?;
    if !target.starts_with(canonical_root) {
        return None;
    }
    let meta = fs::metadata(&target).ok()?;
    meta.is_file().then_some(meta)
}

fn note_unreadable(walk: &mut Walk, path: &Path, e: &io::Error) {
    // Vanished between listing and reading: a sync deleted it; not an error.
    if e.kind() == io::ErrorKind::NotFound {
        return;
    }
    walk.unreadable += 1;
    tracing::warn!(path = %path.display(), error = %e, "origin walk: cannot read, skipped");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsync_temp_names() {
        for t in [".~tmp~", ".hello_2.10.deb.Ab3xZ9", ".a.123456"] {
            assert!(is_rsync_temp(t), "{t}");
        }
        for n in [
            ".htaccess",
            "a.123456",
            ".a.12345",
            "..123456",
            ".a.12345_",
            "x",
        ] {
            assert!(!is_rsync_temp(n), "{n}");
        }
    }

    #[test]
    fn unix_secs_before_and_after_the_epoch() {
        use std::time::Duration;
        assert_eq!(unix_secs(UNIX_EPOCH + Duration::from_millis(1500)), 1);
        assert_eq!(unix_secs(UNIX_EPOCH - Duration::from_secs(5)), -5);
    }
}

//! The hash cache on disk: SHA-256 values already computed, keyed by
//! (path, size, modification time), so a restart does not re-hash an
//! unchanged tree.
//!
//! It is a manifest (see `manifest.rs`) holding only the hashed files, so it
//! can be read with the same parser and even inspected or served by hand.
//! Saving writes a temporary file beside it, fsyncs it, renames it over the
//! old one and fsyncs the directory: a crash leaves the old cache or the new,
//! never a mix. A `kill -9` during a save leaves the temporary file behind:
//! loading removes such leftovers (see [`remove_stale_temps`]). A cache that
//! cannot be read is ignored with a warning: it only saves work, it is never
//! needed. A bad line (cut short by a full disk, edited by hand) costs only
//! its own file's hash: every good line is kept, and the bad ones are counted
//! and logged once.
//!
//! Like rsync's quick check, the key has whole seconds: a file rewritten in
//! the same second with the same size keeps its old hash until it changes
//! again. Hashing itself compares full-precision stats (see `hasher.rs`).

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::Path;

use super::index::{ContentIndex, IndexBuilder, IndexError};
use super::manifest::{parse_line, write_line, HEADER, HEADER_PREFIX};

/// Largest cache file read (a million files take ~130 MB).
const MAX_CACHE_BYTES: u64 = 1 << 30;

/// What loading the cache found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheLoad {
    Loaded(usize),
    /// Some lines were bad and skipped; the good ones were kept.
    Partial {
        files: usize,
        bad_lines: usize,
        /// The first bad line's number (1 is the header).
        first_bad_line: usize,
    },
    Missing,
    /// Unreadable, or not a cache at all (no header): ignored, with the reason.
    Ignored(String),
}

/// Reads the cache; never fails (an unusable cache is an empty one). Removes
/// the temporary files that interrupted saves left beside it first: this runs
/// once, at start, before this process saves anything.
pub fn load(path: &Path) -> (ContentIndex, CacheLoad) {
    for stale in remove_stale_temps(path) {
        tracing::info!(file = %stale.display(), "removed a hash cache temporary file left by an interrupted save");
    }
    let outcome = match fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(CacheLoad::Missing),
        Err(e) => Err(CacheLoad::Ignored(e.to_string())),
        Ok(m) if m.len() > MAX_CACHE_BYTES => Err(CacheLoad::Ignored(format!(
            "larger than {MAX_CACHE_BYTES} bytes"
        ))),
        Ok(_) => fs::read_to_string(path)
            .map_err(|e| CacheLoad::Ignored(e.to_string()))
            .and_then(|text| parse_lenient(&text).map_err(CacheLoad::Ignored)),
    };
    match outcome {
        Ok((index, bad)) => {
            let files = index.len();
            let how = match bad {
                None => {
                    tracing::info!(cache = %path.display(), files, "hash cache loaded");
                    CacheLoad::Loaded(files)
                }
                Some(bad) => {
                    tracing::warn!(
                        cache = %path.display(),
                        files,
                        bad_lines = bad.count,
                        first_bad_line = bad.first_line,
                        reason = %bad.first_reason,
                        "hash cache loaded without its bad lines: their files will be hashed again"
                    );
                    CacheLoad::Partial {
                        files,
                        bad_lines: bad.count,
                        first_bad_line: bad.first_line,
                    }
                }
            };
            (index, how)
        }
        Err(CacheLoad::Ignored(why)) => {
            tracing::warn!(cache = %path.display(), reason = %why, "hash cache ignored: every file will be hashed again");
            (ContentIndex::empty(), CacheLoad::Ignored(why))
        }
        Err(other) => (ContentIndex::empty(), other),
    }
}

/// The bad lines of a cache, for one log line.
struct BadLines {
    count: usize,
    first_line: usize,
    first_reason: String,
}

/// Parses a cache, skipping bad lines; unlike a manifest, whose one bad line
/// refuses it all (a manifest is the truth; the cache only saves work). Only
/// a missing or foreign header refuses the whole text: that is not a cache.
fn parse_lenient(text: &str) -> Result<(ContentIndex, Option<BadLines>), String> {
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    match lines.next() {
        Some(HEADER) => {}
        Some(l) if l.starts_with(HEADER_PREFIX) => {
            return Err(format!("line 1: unsupported version ({l})"))
        }
        _ => return Err(format!("line 1: not a hash cache (expected `{HEADER}`)")),
    }
    let mut builder = IndexBuilder::with_capacity(text.len() / 100, text.len() / 2);
    let mut bad: Option<BadLines> = None;
    let mut note = |line: usize, reason: String| match &mut bad {
        Some(b) => b.count += 1,
        None => {
            bad = Some(BadLines {
                count: 1,
                first_line: line,
                first_reason: reason,
            })
        }
    };
    for (i, line) in lines.enumerate() {
        let line_no = i + 2;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match parse_line(line) {
            Err(problem) => note(line_no, problem.to_string()),
            Ok((p, info)) => match builder.push(&p, info) {
                Ok(_) => {}
                Err(IndexError::TooManyFiles) => {
                    note(line_no, IndexError::TooManyFiles.to_string());
                    break;
                }
                Err(e) => note(line_no, e.to_string()),
            },
        }
    }
    Ok((builder.build(), bad))
}

/// The suffix of this process's temporary files (see [`write_atomically`]).
const TMP_INFIX: &str = ".tmp-";

/// Removes the temporary files that saves of `path` left behind when their
/// process died mid-save (`<name>.tmp-<pid>`, in `path`'s directory), and
/// returns them. Only that exact pattern is touched; a file of this process,
/// or of a process still running (seen in `/proc`, where there is one), is
/// kept, since it may be a save in progress.
pub fn remove_stale_temps(path: &Path) -> Vec<std::path::PathBuf> {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Vec::new();
    };
    let prefix = format!("{name}{TMP_INFIX}");
    let Ok(entries) = fs::read_dir(parent_dir(path)) else {
        return Vec::new();
    };
    let ours = std::process::id();
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix.as_str()))
            .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == ours || Path::new("/proc").join(pid.to_string()).exists() {
            continue;
        }
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if is_file && fs::remove_file(entry.path()).is_ok() {
            removed.push(entry.path());
        }
    }
    removed
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Writes the hashed files of `index` as the new cache, atomically.
pub fn save(path: &Path, index: &ContentIndex) -> io::Result<()> {
    write_atomically(path, |out| {
        writeln!(out, "{HEADER}")?;
        for (_, p, info) in index.iter() {
            if info.sha256.is_some() {
                write_line(out, p, &info)?;
            }
        }
        Ok(())
    })
}

/// Writes `path` through a temporary file in the same directory, fsync and
/// rename, then fsyncs the directory so the rename itself is durable.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let mut tmp_name = name.to_os_string();
    tmp_name.push(format!("{TMP_INFIX}{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let mut out = BufWriter::with_capacity(256 * 1024, File::create(&tmp)?);
        write(&mut out)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    let dir = parent_dir(path);
    // Some filesystems cannot fsync a directory; the file itself is safe.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::{FileInfo, IndexBuilder};

    #[test]
    fn saves_only_hashed_files_and_loads_them_back() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("hashes");
        let mut b = IndexBuilder::new();
        for (p, h) in [("a", Some([1; 32])), ("b", None)] {
            b.push(
                p,
                FileInfo {
                    size: 1,
                    mtime: 2,
                    sha256: h,
                },
            )
            .unwrap();
        }
        save(&cache, &b.build()).unwrap();
        let (idx, how) = load(&cache);
        assert_eq!(how, CacheLoad::Loaded(1));
        assert_eq!(idx.lookup("a").unwrap().1.sha256, Some([1; 32]));
        assert_eq!(idx.lookup("b"), None);
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn a_bad_line_costs_only_its_own_file() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("hashes");
        let h = "ab".repeat(32);
        fs::write(
            &cache,
            format!(
                "{HEADER}\n{h} 1 2 a\nzz 1 2 b\n{h} 1 2 c\n{h} 1 2 a\n{h} 1 2 d\n{}",
                &h[..20]
            ),
        )
        .unwrap();
        let (idx, how) = load(&cache);
        assert_eq!(
            how,
            CacheLoad::Partial {
                files: 3,
                bad_lines: 3,
                first_bad_line: 3
            }
        );
        for p in ["a", "c", "d"] {
            assert_eq!(idx.lookup(p).unwrap().1.sha256, Some([0xab; 32]), "{p}");
        }
        assert_eq!(idx.lookup("b"), None);
    }

    #[test]
    fn stale_temporary_files_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("hashes");
        let ours = format!("hashes.tmp-{}", std::process::id());
        // u32::MAX is above any pid_max: never a live process.
        let stale = format!("hashes.tmp-{}", u32::MAX);
        let keep = [
            ours.as_str(),
            "hashes.tmp-",
            "hashes.tmp-12x",
            "other.tmp-4294967295",
            "hashes",
        ];
        for f in keep.iter().chain([&stale.as_str()]) {
            fs::write(dir.path().join(f), b"x").unwrap();
        }
        assert_eq!(remove_stale_temps(&cache), vec![dir.path().join(&stale)]);
        let mut left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        let mut want: Vec<_> = keep.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(left, want);
    }

    #[test]
    fn a_missing_or_corrupt_cache_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("hashes");
        assert_eq!(load(&cache).1, CacheLoad::Missing);
        fs::write(&cache, b"\x00\xffgarbage").unwrap();
        let (idx, how) = load(&cache);
        assert!(idx.is_empty());
        assert!(matches!(how, CacheLoad::Ignored(_)), "{how:?}");
    }
}

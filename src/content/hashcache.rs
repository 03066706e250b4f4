//! The hash cache on disk: SHA-256 values already computed, keyed by
//! (path, size, modification time), so a restart does not re-hash an
//! unchanged tree.
//!
//! It is a manifest (see `manifest.rs`) holding only the hashed files, so it
//! can be read with the same parser and even inspected or served by hand.
//! Saving writes a temporary file beside it, fsyncs it, renames it over the
//! old one and fsyncs the directory: a crash leaves the old cache or the new,
//! never a mix. A cache that cannot be read or parsed is ignored with a
//! warning: it only saves work, it is never needed.
//!
//! Like rsync's quick check, the key has whole seconds: a file rewritten in
//! the same second with the same size keeps its old hash until it changes
//! again. Hashing itself compares full-precision stats (see `hasher.rs`).

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::Path;

use super::index::ContentIndex;
use super::manifest::{parse_manifest, write_line, HEADER};

/// Largest cache file read (a million files take ~130 MB).
const MAX_CACHE_BYTES: u64 = 1 << 30;

/// What loading the cache found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheLoad {
    Loaded(usize),
    Missing,
    /// Unreadable or corrupt: ignored, with the reason.
    Ignored(String),
}

/// Reads the cache; never fails (an unusable cache is an empty one).
pub fn load(path: &Path) -> (ContentIndex, CacheLoad) {
    let outcome = match fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(CacheLoad::Missing),
        Err(e) => Err(CacheLoad::Ignored(e.to_string())),
        Ok(m) if m.len() > MAX_CACHE_BYTES => Err(CacheLoad::Ignored(format!(
            "larger than {MAX_CACHE_BYTES} bytes"
        ))),
        Ok(_) => fs::read_to_string(path)
            .map_err(|e| CacheLoad::Ignored(e.to_string()))
            .and_then(|text| parse_manifest(&text).map_err(|e| CacheLoad::Ignored(e.to_string()))),
    };
    match outcome {
        Ok(index) => {
            let n = index.len();
            tracing::info!(cache = %path.display(), files = n, "hash cache loaded");
            (index, CacheLoad::Loaded(n))
        }
        Err(CacheLoad::Ignored(why)) => {
            tracing::warn!(cache = %path.display(), reason = %why, "hash cache ignored: every file will be hashed again");
            (ContentIndex::empty(), CacheLoad::Ignored(why))
        }
        Err(other) => (ContentIndex::empty(), other),
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
    tmp_name.push(format!(".tmp-{}", std::process::id()));
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
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
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

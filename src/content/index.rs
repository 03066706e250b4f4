//! The compact, immutable index of the origin's files, looked up on every request.
//!
//! Layout (why: a million files must fit in a few tens of MB, and a lookup
//! must not allocate and should touch few cache lines, since the requests of
//! a busy site spread over far more of the index than the CPU caches hold):
//! every path lives in one `String` arena, in sorted order; file `i` has a
//! 32-byte record (where its path is, its size and time) so that one cache
//! line gives all three; a [`table::Table`] of file ids with a fingerprint of
//! their path's hash finds a record without a detour. A lookup that finds a
//! file reads one line of the table, the record, the path's bytes and the
//! file's hash. Sorted order also answers `is_dir` by binary search.
//!
//! The part that never changes after a walk (paths, records, table) sits
//! behind an `Arc`, so [`ContentIndex::with_hashes`] builds the next index with
//! more SHA-256 values known by copying only the hash column. The caller
//! publishes the whole new index; nothing here is mutated after `build`.
//!
//! This module must not do I/O.

use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::{DefaultHashBuilder, HashTable};

mod table;
use table::Table;

/// A file's number in one index; stable only within that index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub u32);

/// What the origin says of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileInfo {
    pub size: u64,
    /// Modification time, seconds since the Unix epoch.
    pub mtime: i64,
    /// SHA-256 of the content, once known.
    pub sha256: Option<[u8; 32]>,
}

/// Why a path could not be added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexError {
    Duplicate(String),
    BadPath(String),
    /// More files than a `FileId` can number.
    TooManyFiles,
}

impl fmt::Display for IndexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IndexError::Duplicate(p) => write!(f, "{p}: listed twice"),
            IndexError::BadPath(p) => write!(f, "{p}: not a clean relative path"),
            IndexError::TooManyFiles => write!(f, "more than {} files", u32::MAX),
        }
    }
}

impl std::error::Error for IndexError {}

/// True for a path as `CleanPath::as_str` gives them: not empty, no leading or
/// trailing slash, no empty, `.` or `..` segment, no NUL.
pub fn is_clean_path(path: &str) -> bool {
    !path.is_empty()
        && !path.contains('\0')
        && path
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

/// One file: where its path is in the arena, its size and its time. Aligned
/// to 32 bytes so that a record never straddles two cache lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C, align(32))]
struct Record {
    start: u64,
    size: u64,
    mtime: i64,
    len: u32,
}

impl Record {
    fn span(&self) -> std::ops::Range<usize> {
        let start = self.start as usize;
        start..start + self.len as usize
    }
}

/// The columns that a walk decides and hashing never changes.
struct Files {
    /// Every path, concatenated in sorted order.
    arena: String,
    /// One per file, in path order.
    records: Vec<Record>,
    /// File ids, found by the hash of their path.
    table: Table,
    newest_mtime: Option<i64>,
}

impl Files {
    fn path(&self, i: usize) -> &str {
        // Spans come from the builder, always on char boundaries; `get`
        // keeps this free of panics all the same.
        self.records
            .get(i)
            .and_then(|r| self.arena.get(r.span()))
            .unwrap_or("")
    }

    /// True when file `i`'s path is `path`: the length from the record
    /// first, then the bytes (no char-boundary checks on the request path).
    fn path_is(&self, i: usize, path: &str) -> bool {
        self.records.get(i).is_some_and(|r| {
            r.len as usize == path.len()
                && self.arena.as_bytes().get(r.span()) == Some(path.as_bytes())
        })
    }
}

/// Every file the origin publishes; immutable once built.
pub struct ContentIndex {
    files: Arc<Files>,
    /// SHA-256 per file id; the only column a new index with more hashes copies.
    hashes: Vec<Option<[u8; 32]>>,
    hashed: usize,
}

impl Default for ContentIndex {
    fn default() -> Self {
        ContentIndex::empty()
    }
}

impl fmt::Debug for ContentIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContentIndex")
            .field("files", &self.len())
            .field("hashed", &self.hashed)
            .field("path_bytes", &self.files.arena.len())
            .finish()
    }
}

impl ContentIndex {
    pub fn empty() -> Self {
        IndexBuilder::new().build()
    }

    pub fn len(&self) -> usize {
        self.files.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many files have a known SHA-256.
    pub fn hashed(&self) -> usize {
        self.hashed
    }

    /// Approximate heap bytes held by this index (shared columns included).
    pub fn heap_bytes(&self) -> usize {
        let f = &*self.files;
        f.arena.capacity()
            + f.records.capacity() * std::mem::size_of::<Record>()
            + f.table.heap_bytes()
            + self.hashes.capacity() * std::mem::size_of::<Option<[u8; 32]>>()
    }

    /// The sum of every file's size.
    pub fn total_bytes(&self) -> u64 {
        self.files.records.iter().map(|r| r.size).sum()
    }

    /// Looks a decoded path up (no leading slash, as `CleanPath::as_str`).
    /// No allocation: one hash of `path`; then, for the candidates whose
    /// fingerprint matches (usually one, none for most missing paths), a
    /// compare of the whole path.
    pub fn lookup(&self, path: &str) -> Option<(FileId, FileInfo)> {
        self.lookup_hashed(path, self.files.table.hash(path))
    }

    /// [`ContentIndex::lookup`] with the hash of `path` given (tests force
    /// collisions through it).
    fn lookup_hashed(&self, path: &str, hash: u64) -> Option<(FileId, FileInfo)> {
        let files = &*self.files;
        let id = files
            .table
            .candidates(hash)
            .find(|&id| files.path_is(id as usize, path))?;
        Some((FileId(id), self.info_at(id as usize)?))
    }

    /// What this index says of one of its files.
    pub fn info(&self, id: FileId) -> Option<FileInfo> {
        self.info_at(id.0 as usize)
    }

    fn info_at(&self, i: usize) -> Option<FileInfo> {
        let r = self.files.records.get(i)?;
        Some(FileInfo {
            size: r.size,
            mtime: r.mtime,
            sha256: *self.hashes.get(i)?,
        })
    }

    /// The path of a file of this index.
    pub fn path(&self, id: FileId) -> Option<&str> {
        let i = id.0 as usize;
        (i < self.len()).then(|| self.files.path(i))
    }

    /// True when `path` (with or without a trailing `/`) is a directory holding
    /// files. The empty path is the root: a directory when the index has files.
    pub fn is_dir(&self, path: &str) -> bool {
        let dir = path.strip_suffix('/').unwrap_or(path);
        if dir.is_empty() {
            return !self.is_empty();
        }
        // Every path under `dir/` is contiguous in byte order and starts at
        // the first path not less than `dir/`; compare against `dir` then `/`
        // rather than build `dir/` (no allocation).
        let files = &*self.files;
        let first = partition_point(self.len(), |i| below_dir(files.path(i), dir));
        first < self.len() && {
            let p = files.path(first);
            p.len() > dir.len() + 1
                && p.starts_with(dir)
                && p.as_bytes().get(dir.len()) == Some(&b'/')
        }
    }

    /// The newest modification time of any file.
    pub fn newest_mtime(&self) -> Option<i64> {
        self.files.newest_mtime
    }

    /// Every file in path order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (FileId, &str, FileInfo)> + '_ {
        let files = &*self.files;
        files
            .records
            .iter()
            .zip(&self.hashes)
            .enumerate()
            .map(move |(i, (r, &sha256))| {
                let info = FileInfo {
                    size: r.size,
                    mtime: r.mtime,
                    sha256,
                };
                (FileId(i as u32), files.path(i), info)
            })
    }

    /// A new index with the same files and these hashes added (or replaced).
    /// Shares the paths, records and table with `self`: the cost is one
    /// copy of the hash column. Ids out of range are ignored.
    pub fn with_hashes(
        &self,
        hashes: impl IntoIterator<Item = (FileId, [u8; 32])>,
    ) -> ContentIndex {
        let mut column = self.hashes.clone();
        let mut hashed = self.hashed;
        for (FileId(id), h) in hashes {
            if let Some(slot) = column.get_mut(id as usize) {
                if slot.is_none() {
                    hashed += 1;
                }
                *slot = Some(h);
            }
        }
        ContentIndex {
            files: Arc::clone(&self.files),
            hashes: column,
            hashed,
        }
    }
}

/// True when `path` sorts before `dir` followed by `/` (bytewise).
fn below_dir(path: &str, dir: &str) -> bool {
    let (p, d) = (path.as_bytes(), dir.as_bytes());
    let n = p.len().min(d.len());
    match p[..n].cmp(&d[..n]) {
        std::cmp::Ordering::Less => true,
        std::cmp::Ordering::Greater => false,
        // `path` is `dir` or a prefix of it: shorter than `dir/`, so before it.
        std::cmp::Ordering::Equal => p.get(d.len()).is_none_or(|&b| b < b'/'),
    }
}

/// `slice::partition_point` over indices `0..len`.
fn partition_point(len: usize, mut pred: impl FnMut(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, len);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Collects files, then builds the index. It holds the same columns as the
/// index (one arena, records, hashes), so that building from files already in
/// path order copies nothing.
#[derive(Default)]
pub struct IndexBuilder {
    arena: String,
    /// In push order.
    records: Vec<Record>,
    hashes: Vec<Option<[u8; 32]>>,
    /// Push-order ids by path hash: refuses duplicates as they come.
    seen: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

impl fmt::Debug for IndexBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IndexBuilder")
            .field("files", &self.len())
            .finish()
    }
}

/// `col` in the order of `order`.
fn permute<T: Copy>(order: &[u32], col: &[T]) -> Vec<T> {
    order
        .iter()
        .filter_map(|&o| col.get(o as usize).copied())
        .collect()
}

/// Path `i` of a builder's arena.
fn span<'a>(arena: &'a str, records: &[Record], i: usize) -> &'a str {
    records
        .get(i)
        .and_then(|r| arena.get(r.span()))
        .unwrap_or("")
}

impl IndexBuilder {
    pub fn new() -> Self {
        IndexBuilder::default()
    }

    /// Room for `files` files with `path_bytes` bytes of paths in all.
    pub fn with_capacity(files: usize, path_bytes: usize) -> Self {
        IndexBuilder {
            arena: String::with_capacity(path_bytes),
            records: Vec::with_capacity(files),
            hashes: Vec::with_capacity(files),
            seen: HashTable::with_capacity(files),
            hasher: DefaultHashBuilder::default(),
        }
    }

    /// Adds one file. The id is its number in push order; `build` renumbers
    /// by path, so it is only useful to tell files apart while building.
    pub fn push(&mut self, path: &str, info: FileInfo) -> Result<FileId, IndexError> {
        // A record keeps a path's length in a `u32`: longer is refused too.
        let Some(len) = u32::try_from(path.len())
            .ok()
            .filter(|_| is_clean_path(path))
        else {
            return Err(IndexError::BadPath(path.to_owned()));
        };
        let id = u32::try_from(self.records.len()).map_err(|_| IndexError::TooManyFiles)?;
        if id == u32::MAX {
            return Err(IndexError::TooManyFiles);
        }
        let h = self.hasher.hash_one(path);
        let (arena, records) = (&self.arena, &self.records);
        if self
            .seen
            .find(h, |&i| span(arena, records, i as usize) == path)
            .is_some()
        {
            return Err(IndexError::Duplicate(path.to_owned()));
        }
        self.records.push(Record {
            start: self.arena.len() as u64,
            size: info.size,
            mtime: info.mtime,
            len,
        });
        self.arena.push_str(path);
        self.hashes.push(info.sha256);
        let (arena, records, hasher) = (&self.arena, &self.records, &self.hasher);
        self.seen.insert_unique(h, id, |&i| {
            hasher.hash_one(span(arena, records, i as usize))
        });
        Ok(FileId(id))
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn build(self) -> ContentIndex {
        let IndexBuilder {
            arena,
            records,
            hashes,
            seen,
            hasher: _,
        } = self;
        // The table of the index is built anew below, with final ids.
        drop(seen);
        let n = records.len();
        // Push order is usually path order already (manifests and walks are
        // sorted): then every column is kept as it is.
        let sorted = (1..n).all(|i| span(&arena, &records, i - 1) < span(&arena, &records, i));
        let (mut arena, records, mut hashes) = if sorted {
            (arena, records, hashes)
        } else {
            let mut order: Vec<u32> = (0..n as u32).collect();
            order.sort_unstable_by(|&a, &b| {
                span(&arena, &records, a as usize).cmp(span(&arena, &records, b as usize))
            });
            let mut new_arena = String::with_capacity(arena.len());
            let mut new_records = Vec::with_capacity(n);
            for &old in &order {
                let path = span(&arena, &records, old as usize);
                if let Some(r) = records.get(old as usize) {
                    new_records.push(Record {
                        start: new_arena.len() as u64,
                        ..*r
                    });
                }
                new_arena.push_str(path);
            }
            drop(arena);
            (new_arena, new_records, permute(&order, &hashes))
        };
        arena.shrink_to_fit();
        hashes.shrink_to_fit();
        // `records` keeps its spare capacity: it was never written, so it is
        // not resident, and shrinking a vector aligned past 16 bytes copies it
        // (32 MB more at the peak of a 1M-file load).
        let mut table = Table::with_capacity(n);
        for i in 0..n {
            let h = table.hash(span(&arena, &records, i));
            table.insert(h, i as u32);
        }
        let hashed = hashes.iter().filter(|h| h.is_some()).count();
        let newest_mtime = records.iter().map(|r| r.mtime).max();
        ContentIndex {
            files: Arc::new(Files {
                arena,
                records,
                table,
                newest_mtime,
            }),
            hashes,
            hashed,
        }
    }
}

#[cfg(test)]
mod tests;

//! The compact, immutable index of the origin's files, looked up on every request.
//!
//! Layout (why: a million files must fit in a few tens of MB and a lookup must
//! not allocate): every path lives in one `String` arena, in sorted order;
//! `starts[i]..starts[i + 1]` is the path of file `i`; sizes and modification
//! times are parallel vectors; a `hashbrown::HashTable<u32>` of file ids finds
//! a path by its hash. Sorted order also answers `is_dir` by binary search.
//!
//! The part that never changes after a walk (paths, sizes, times, table) sits
//! behind an `Arc`, so [`ContentIndex::with_hashes`] builds the next index with
//! more SHA-256 values known by copying only the hash column. The caller
//! publishes the whole new index; nothing here is mutated after `build`.
//!
//! This module must not do I/O.

use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::{DefaultHashBuilder, HashTable};

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

/// The columns that a walk decides and hashing never changes.
struct Files {
    /// Every path, concatenated in sorted order.
    arena: String,
    /// `len + 1` offsets into `arena`.
    starts: Vec<u64>,
    sizes: Vec<u64>,
    mtimes: Vec<i64>,
    /// File ids, found by the hash of their path.
    table: HashTable<u32>,
    hasher: DefaultHashBuilder,
    newest_mtime: Option<i64>,
}

impl Files {
    fn path(&self, i: usize) -> &str {
        // Offsets come from `build`, always on char boundaries; `get` keeps
        // this free of panics all the same.
        let (Some(&s), Some(&e)) = (self.starts.get(i), self.starts.get(i + 1)) else {
            return "";
        };
        self.arena.get(s as usize..e as usize).unwrap_or("")
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
        self.files.sizes.len()
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
            + f.starts.capacity() * 8
            + f.sizes.capacity() * 8
            + f.mtimes.capacity() * 8
            + f.table.allocation_size()
            + self.hashes.capacity() * std::mem::size_of::<Option<[u8; 32]>>()
    }

    /// The sum of every file's size.
    pub fn total_bytes(&self) -> u64 {
        self.files.sizes.iter().sum()
    }

    /// Looks a decoded path up (no leading slash, as `CleanPath::as_str`).
    /// No allocation: one hash of `path`, then one or two compares.
    pub fn lookup(&self, path: &str) -> Option<(FileId, FileInfo)> {
        let files = &*self.files;
        let h = files.hasher.hash_one(path);
        let &id = files.table.find(h, |&id| files.path(id as usize) == path)?;
        Some((FileId(id), self.info_at(id as usize)?))
    }

    /// What this index says of one of its files.
    pub fn info(&self, id: FileId) -> Option<FileInfo> {
        self.info_at(id.0 as usize)
    }

    fn info_at(&self, i: usize) -> Option<FileInfo> {
        Some(FileInfo {
            size: *self.files.sizes.get(i)?,
            mtime: *self.files.mtimes.get(i)?,
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
        (0..self.len()).map(move |i| {
            let info = FileInfo {
                size: self.files.sizes[i],
                mtime: self.files.mtimes[i],
                sha256: self.hashes[i],
            };
            (FileId(i as u32), self.files.path(i), info)
        })
    }

    /// A new index with the same files and these hashes added (or replaced).
    /// Shares the paths, sizes, times and table with `self`: the cost is one
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
/// index (one arena, offsets, sizes, times, hashes), so that building from
/// files already in path order copies nothing.
#[derive(Default)]
pub struct IndexBuilder {
    arena: String,
    /// Start of each path in `arena`, in push order; a path ends where the
    /// next starts.
    starts: Vec<u64>,
    sizes: Vec<u64>,
    mtimes: Vec<i64>,
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
fn span<'a>(arena: &'a str, starts: &[u64], i: usize) -> &'a str {
    let s = starts.get(i).map_or(arena.len(), |&s| s as usize);
    let e = starts.get(i + 1).map_or(arena.len(), |&e| e as usize);
    arena.get(s..e).unwrap_or("")
}

impl IndexBuilder {
    pub fn new() -> Self {
        IndexBuilder::default()
    }

    /// Room for `files` files with `path_bytes` bytes of paths in all.
    pub fn with_capacity(files: usize, path_bytes: usize) -> Self {
        IndexBuilder {
            arena: String::with_capacity(path_bytes),
            starts: Vec::with_capacity(files + 1),
            sizes: Vec::with_capacity(files),
            mtimes: Vec::with_capacity(files),
            hashes: Vec::with_capacity(files),
            seen: HashTable::with_capacity(files),
            hasher: DefaultHashBuilder::default(),
        }
    }

    /// Adds one file. The id is its number in push order; `build` renumbers
    /// by path, so it is only useful to tell files apart while building.
    pub fn push(&mut self, path: &str, info: FileInfo) -> Result<FileId, IndexError> {
        if !is_clean_path(path) {
            return Err(IndexError::BadPath(path.to_owned()));
        }
        let id = u32::try_from(self.sizes.len()).map_err(|_| IndexError::TooManyFiles)?;
        if id == u32::MAX {
            return Err(IndexError::TooManyFiles);
        }
        let h = self.hasher.hash_one(path);
        let (arena, starts) = (&self.arena, &self.starts);
        if self
            .seen
            .find(h, |&i| span(arena, starts, i as usize) == path)
            .is_some()
        {
            return Err(IndexError::Duplicate(path.to_owned()));
        }
        self.starts.push(self.arena.len() as u64);
        self.arena.push_str(path);
        self.sizes.push(info.size);
        self.mtimes.push(info.mtime);
        self.hashes.push(info.sha256);
        let (arena, starts, hasher) = (&self.arena, &self.starts, &self.hasher);
        self.seen
            .insert_unique(h, id, |&i| hasher.hash_one(span(arena, starts, i as usize)));
        Ok(FileId(id))
    }

    pub fn len(&self) -> usize {
        self.sizes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sizes.is_empty()
    }

    pub fn build(self) -> ContentIndex {
        let IndexBuilder {
            arena,
            mut starts,
            sizes,
            mtimes,
            hashes,
            mut seen,
            hasher,
        } = self;
        let n = sizes.len();
        // Push order is usually path order already (manifests and walks are
        // sorted): then every column is kept as it is.
        let sorted = (1..n).all(|i| span(&arena, &starts, i - 1) < span(&arena, &starts, i));
        let (mut arena, mut starts, mut sizes, mut mtimes, mut hashes) = if sorted {
            starts.push(arena.len() as u64);
            (arena, starts, sizes, mtimes, hashes)
        } else {
            let mut order: Vec<u32> = (0..n as u32).collect();
            order.sort_unstable_by(|&a, &b| {
                span(&arena, &starts, a as usize).cmp(span(&arena, &starts, b as usize))
            });
            let mut new_arena = String::with_capacity(arena.len());
            let mut new_starts = Vec::with_capacity(n + 1);
            for &old in &order {
                new_starts.push(new_arena.len() as u64);
                new_arena.push_str(span(&arena, &starts, old as usize));
            }
            new_starts.push(new_arena.len() as u64);
            drop(arena);
            let (sizes, mtimes, hashes) = (
                permute(&order, &sizes),
                permute(&order, &mtimes),
                permute(&order, &hashes),
            );
            // The table keeps every hash; only the ids it holds change.
            let mut new_id = vec![0u32; n];
            for (new, &old) in order.iter().enumerate() {
                new_id[old as usize] = new as u32;
            }
            for id in seen.iter_mut() {
                *id = new_id[*id as usize];
            }
            (new_arena, new_starts, sizes, mtimes, hashes)
        };
        arena.shrink_to_fit();
        starts.shrink_to_fit();
        sizes.shrink_to_fit();
        mtimes.shrink_to_fit();
        hashes.shrink_to_fit();
        seen.shrink_to_fit(|&id| hasher.hash_one(span(&arena, &starts, id as usize)));
        let hashed = hashes.iter().filter(|h| h.is_some()).count();
        let newest_mtime = mtimes.iter().copied().max();
        ContentIndex {
            files: Arc::new(Files {
                arena,
                starts,
                sizes,
                mtimes,
                table: seen,
                hasher,
                newest_mtime,
            }),
            hashes,
            hashed,
        }
    }
}

#[cfg(test)]
mod tests;

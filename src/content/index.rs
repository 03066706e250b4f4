//! The origin's files (stub: filled in by the content work).

use std::fmt;

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
}

impl fmt::Display for IndexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IndexError::Duplicate(p) => write!(f, "{p}: listed twice"),
            IndexError::BadPath(p) => write!(f, "{p}: not a clean relative path"),
        }
    }
}

impl std::error::Error for IndexError {}

/// Every file the origin publishes; immutable once built.
#[derive(Debug, Default)]
pub struct ContentIndex {}

impl ContentIndex {
    pub fn empty() -> Self {
        ContentIndex {}
    }

    pub fn len(&self) -> usize {
        0
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Looks a decoded path up (no leading slash, as `CleanPath::as_str`).
    pub fn lookup(&self, path: &str) -> Option<(FileId, FileInfo)> {
        let _ = path;
        None
    }

    /// The path of a file of this index.
    pub fn path(&self, id: FileId) -> Option<&str> {
        let _ = id;
        None
    }

    /// True when `path` (with or without a trailing `/`) is a directory holding files.
    pub fn is_dir(&self, path: &str) -> bool {
        let _ = path;
        false
    }

    /// The newest modification time of any file.
    pub fn newest_mtime(&self) -> Option<i64> {
        None
    }
}

/// Collects files, then builds the index.
#[derive(Debug, Default)]
pub struct IndexBuilder {}

impl IndexBuilder {
    pub fn new() -> Self {
        IndexBuilder {}
    }

    pub fn push(&mut self, path: &str, info: FileInfo) -> Result<FileId, IndexError> {
        let _ = (path, info);
        Ok(FileId(0))
    }

    pub fn build(self) -> ContentIndex {
        ContentIndex {}
    }
}

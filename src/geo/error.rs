//! `GeoError`: why a database could not be opened. Every variant names the
//! file (its path, or the label given to `GeoDb::from_bytes`), so that config
//! checks and reload logs say which file to fix.

use std::path::PathBuf;

use maxminddb::MaxMindDbError;

/// Errors opening a database; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    /// The file does not exist.
    #[error("{}: no such file", .path.display())]
    Missing { path: PathBuf },

    /// The file exists but could not be read.
    #[error("{}: cannot read: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// No MaxMind DB metadata: another kind of file, or one cut short.
    #[error("{}: not a MaxMind DB file, or truncated ({detail})", .path.display())]
    NotMaxMind { path: PathBuf, detail: String },

    /// The metadata was found but the file is inconsistent.
    #[error("{}: corrupt or truncated MaxMind DB: {detail}", .path.display())]
    Corrupt { path: PathBuf, detail: String },

    /// A database of another kind than this place expects, such as an ASN
    /// database given as a location database.
    #[error("{}: {found} database given where {expected} database is expected", .path.display())]
    WrongLayout {
        path: PathBuf,
        found: String,
        expected: &'static str,
    },

    /// Records of a shape this reader does not know.
    #[error("{}: unrecognised database ({detail}); expected MaxMind City/Country/ASN or ip-location-db records", .path.display())]
    UnknownLayout { path: PathBuf, detail: String },
}

impl GeoError {
    /// The file this error is about.
    pub fn path(&self) -> &std::path::Path {
        match self {
            GeoError::Missing { path }
            | GeoError::Read { path, .. }
            | GeoError::NotMaxMind { path, .. }
            | GeoError::Corrupt { path, .. }
            | GeoError::WrongLayout { path, .. }
            | GeoError::UnknownLayout { path, .. } => path,
        }
    }

    /// The reader found the file inconsistent while opening `path`.
    pub(crate) fn corrupt(path: PathBuf, err: MaxMindDbError) -> Self {
        GeoError::Corrupt {
            path,
            detail: err.to_string(),
        }
    }
}

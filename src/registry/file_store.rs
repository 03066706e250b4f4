//! The local-file [`Store`] (`registry.path`): the single-node default,
//! needing nothing installed.
//!
//! Durability: every write goes to a new temporary file beside the
//! document (`.<name>.tmp-<pid>-<n>`, mode 0600: it holds token hashes),
//! which is fsynced, renamed over the document, and then the directory is
//! fsynced so the rename itself survives a power cut. Only then does the
//! write return. A crash at any moment therefore leaves the old or the new
//! document, never a mix; a temporary file left by a killed write is
//! removed at the next open (only files of that exact pattern).
//!
//! Writers are serialised by one mutex, held by a blocking-pool thread for
//! the whole read-modify-write: the change, the write and the publication
//! of the new document happen together even if the caller's future is
//! dropped half-way. Readers never wait for it: the committed document is
//! behind an `ArcSwap`.
//!
//! One process owns one document: the file is read once at open, and a
//! second process writing the same file would be overwritten, not merged.
//! Opening never changes a document it cannot parse: it is refused with
//! its file, line and column, byte for byte as it was.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use serde::Deserialize;

use super::document::{Document, DOCUMENT_VERSION};
use super::store::{Mutation, Store, StoreError, StoreFuture};

/// The registry kept in one local JSON file.
#[derive(Debug, Clone)]
pub struct FileStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    dir: PathBuf,
    /// `.<file name>.tmp-`: what this store's temporary files start with.
    tmp_prefix: String,
    /// The last committed document.
    current: ArcSwap<Document>,
    /// Held for each whole read-modify-write.
    writer: Mutex<()>,
    /// Makes each temporary file name unique within the process.
    tmp_counter: AtomicU64,
}

impl FileStore {
    /// Opens the document at `path`, creating an empty one (durably) when
    /// there is none, after removing temporary files a killed write left.
    /// Blocking file I/O: call it at start, or through `spawn_blocking`.
    pub fn open(path: &Path) -> Result<FileStore, StoreError> {
        let io = |e| StoreError::Io {
            path: path.to_path_buf(),
            source: e,
        };
        let file_name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
            io(std::io::Error::new(
                ErrorKind::InvalidInput,
                "not a file name",
            ))
        })?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let inner = Inner {
            path: path.to_path_buf(),
            tmp_prefix: format!(".{file_name}.tmp-"),
            dir,
            current: ArcSwap::from_pointee(Document::default()),
            writer: Mutex::new(()),
            tmp_counter: AtomicU64::new(0),
        };
        inner.remove_stale_temps()?;
        match fs::read(path) {
            Ok(bytes) => inner.current.store(Arc::new(parse_document(path, &bytes)?)),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                // Created now rather than at the first write: a directory
                // that cannot be written fails the start, not a later
                // registration.
                inner.write(&Document::default()).map_err(|(_, e)| e)?;
            }
            Err(e) => return Err(io(e)),
        }
        Ok(FileStore {
            inner: Arc::new(inner),
        })
    }

    /// The document's path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The last committed document, without waiting for a writer.
    pub fn current(&self) -> Arc<Document> {
        self.inner.current.load_full()
    }
}

impl Store for FileStore {
    fn load(&self) -> StoreFuture<'_, Arc<Document>> {
        let doc = self.current();
        Box::pin(async move { Ok(doc) })
    }

    fn apply(&self, change: Mutation) -> StoreFuture<'_, u64> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || inner.apply(change))
                .await
                .map_err(|e| StoreError::Unavailable(format!("the write did not finish: {e}")))?
        })
    }

    fn describe(&self) -> String {
        format!("file {}", self.inner.path.display())
    }
}

impl Inner {
    fn apply(&self, change: Mutation) -> Result<u64, StoreError> {
        // A panic in an earlier change poisoned the lock before anything was
        // published, so the state it guards is still whole.
        let _writing = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let before = self.current.load_full();
        let mut doc = (*before).clone();
        change(&mut doc)?;
        doc.version = DOCUMENT_VERSION;
        doc.revision = before.revision + 1;
        check_writable(&doc)?;
        match self.write(&doc) {
            Ok(()) => {
                self.current.store(Arc::new(doc));
                Ok(before.revision + 1)
            }
            // Renamed but the directory sync failed: the file already holds
            // the new document, so memory follows it; the caller still gets
            // the error because durability was not proven.
            Err((true, e)) => {
                self.current.store(Arc::new(doc));
                Err(e)
            }
            Err((false, e)) => Err(e),
        }
    }

    /// Writes `doc` durably. The error says whether the rename happened.
    fn write(&self, doc: &Document) -> Result<(), (bool, StoreError)> {
        let mut bytes = serde_json::to_vec_pretty(doc).map_err(|e| {
            (
                false,
                StoreError::Unavailable(format!("cannot encode: {e}")),
            )
        })?;
        bytes.push(b'\n');
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .dir
            .join(format!("{}{}-{n}", self.tmp_prefix, std::process::id()));
        let written = write_synced(&tmp, &bytes).and_then(|()| fs::rename(&tmp, &self.path));
        if let Err(e) = written {
            // Best effort: a leftover is also removed at the next open.
            let _ = fs::remove_file(&tmp);
            return Err((false, self.io(e)));
        }
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| {
                (
                    true,
                    StoreError::Io {
                        path: self.dir.clone(),
                        source: e,
                    },
                )
            })
    }

    fn remove_stale_temps(&self) -> Result<(), StoreError> {
        let entries = fs::read_dir(&self.dir).map_err(|e| StoreError::Io {
            path: self.dir.clone(),
            source: e,
        })?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let ours = name
                .to_str()
                .and_then(|n| n.strip_prefix(&self.tmp_prefix))
                .is_some_and(|rest| {
                    !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit() || c == '-')
                });
            if ours {
                let p = entry.path();
                fs::remove_file(&p).map_err(|e| StoreError::Io { path: p, source: e })?;
            }
        }
        Ok(())
    }

    fn io(&self, e: std::io::Error) -> StoreError {
        StoreError::Io {
            path: self.path.clone(),
            source: e,
        }
    }
}

fn write_synced(tmp: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(tmp)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Reads a document's bytes (`path` only names it in errors): the version
/// first, so that a newer format is refused as such rather than with
/// whatever field it added.
pub fn parse_document(path: &Path, bytes: &[u8]) -> Result<Document, StoreError> {
    #[derive(Deserialize)]
    struct Version {
        version: u64,
    }
    let parse_err = |e: serde_json::Error| {
        // serde_json ends its message with the place, which the error
        // already shows as path:line:column.
        let text = e.to_string();
        let place = format!(" at line {} column {}", e.line(), e.column());
        StoreError::Parse {
            path: path.to_path_buf(),
            line: e.line(),
            column: e.column(),
            message: text.strip_suffix(&place).unwrap_or(&text).to_owned(),
        }
    };
    let v: Version = serde_json::from_slice(bytes).map_err(parse_err)?;
    if v.version != u64::from(DOCUMENT_VERSION) {
        return Err(StoreError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: v.version,
            supported: DOCUMENT_VERSION,
        });
    }
    serde_json::from_slice(bytes).map_err(parse_err)
}

/// JSON has no NaN or infinity: serde_json would write `null`, and the
/// next open would refuse the file. Refused before writing instead.
fn check_writable(doc: &Document) -> Result<(), StoreError> {
    for (name, m) in &doc.mirrors {
        if [m.latitude, m.longitude]
            .into_iter()
            .flatten()
            .any(|x| !x.is_finite())
        {
            return Err(StoreError::Conflict(format!(
                "mirror {name:?}: coordinates must be finite numbers"
            )));
        }
    }
    Ok(())
}

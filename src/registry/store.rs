//! The registry store: where the [`Document`] lives, behind one trait so
//! that callers hold an `Arc<dyn Store>` and never learn which backend it is
//! (the local file now, Redis for several nodes next).
//!
//! Every change is one atomic read-modify-write: [`Store::apply`] runs a
//! function over the current document and commits its result, or nothing
//! if the function fails. Checks such as "this name is taken" therefore run
//! inside the same step as the write, never between a read and a write that
//! another writer could slip into (a Redis backend does the same with
//! WATCH/MULTI/EXEC and a retry). [`update`](trait.Store.html#method.update)
//! is the typed way to call it.
//!
//! Methods return boxed futures rather than using `async fn` so that the
//! trait stays object-safe; a store is never on the request path (the
//! snapshot is), so one allocation per call costs nothing that matters.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use super::document::Document;

/// A future a store returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A change to the document, run inside the store's atomic step. On `Err`
/// nothing is written and the error is handed back.
pub type Mutation = Box<dyn FnOnce(&mut Document) -> Result<(), StoreError> + Send>;

/// Why a store operation failed. Callers map these to answers (409, 404,
/// 503) in one place; the store's own messages name the file and place.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading, writing or syncing the store's file failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The stored document is not valid JSON or not a valid document.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// The document was written by a newer (or unknown) format.
    #[error(
        "{}: document version {found} is not supported; this build reads version {supported}",
        path.display()
    )]
    UnsupportedVersion {
        path: PathBuf,
        found: u64,
        supported: u32,
    },
    /// The change clashes with what is there (a name already taken).
    #[error("{0}")]
    Conflict(String),
    /// The change names something that is not there.
    #[error("{0}")]
    NotFound(String),
    /// The store cannot be reached or cannot run the change now.
    #[error("registry store unavailable: {0}")]
    Unavailable(String),
    /// The function given to [`update`](trait.Store.html#method.update)
    /// refused the change with its own error; nothing was written. Only
    /// seen by callers of [`Store::apply`] directly.
    #[error("the change was refused; nothing was written")]
    Aborted,
}

/// A store of the registry document.
pub trait Store: Send + Sync + fmt::Debug {
    /// The current document. Cheap: backends keep the last one they
    /// committed or read.
    fn load(&self) -> StoreFuture<'_, Arc<Document>>;

    /// Runs `change` over the current document and commits the result
    /// durably before returning its new revision. Writes are serialised:
    /// each change sees every change committed before it.
    fn apply(&self, change: Mutation) -> StoreFuture<'_, u64>;

    /// Where the store is, for logs and errors (`file /var/lib/...`).
    fn describe(&self) -> String;
}

impl<'a> dyn Store + 'a {
    /// Runs `f` over the current document in one atomic step: on `Ok(t)`
    /// the changed document is committed and `(t, revision)` returned; on
    /// `Err(e)` nothing is written and `e` is returned. A failure of the
    /// store itself comes back as `E::from(StoreError)`.
    pub async fn update<T, E, F>(&self, f: F) -> Result<(T, u64), E>
    where
        F: FnOnce(&mut Document) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        // The mutation is type-erased to keep the trait object-safe; the
        // typed outcome travels back through this slot.
        let slot: Arc<Mutex<Option<Result<T, E>>>> = Arc::new(Mutex::new(None));
        let inner = Arc::clone(&slot);
        let change: Mutation = Box::new(move |doc| {
            let outcome = f(doc);
            let failed = outcome.is_err();
            *inner.lock().unwrap_or_else(PoisonError::into_inner) = Some(outcome);
            if failed {
                Err(StoreError::Aborted)
            } else {
                Ok(())
            }
        });
        let committed = self.apply(change).await;
        let outcome = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
        match (committed, outcome) {
            (Ok(rev), Some(Ok(t))) => Ok((t, rev)),
            (Err(StoreError::Aborted), Some(Err(e))) => Err(e),
            (Err(e), _) => Err(E::from(e)),
            // A backend that committed without running the change, or ran
            // it and reported success after it failed, is broken.
            (Ok(_), _) => Err(E::from(StoreError::Unavailable(
                "the store did not run the change".into(),
            ))),
        }
    }
}

//! The long-running task that keeps the origin's index fresh and publishes
//! each new one whole on a `watch` channel; the state owner picks it up.
//!
//! - **Tree**: walks the root at start, every `interval`, and when triggered
//!   (SIGHUP). Each walk publishes an index at once, carrying the hashes
//!   already known for unchanged files (same path, size and time) from the
//!   previous index or, at start, the on-disk cache. The files left are
//!   hashed in the background; their hashes are published in batches (every
//!   [`HASH_BATCH`] files or [`FLUSH_EVERY`]), never one index per file. The
//!   cache is saved when a hashing pass ends, at most every [`SAVE_EVERY`]
//!   during a long one, and at shutdown. A file still being written (inside
//!   the settle time) brings the next walk forward to just after it settles.
//! - **Manifest**: re-reads a local file when its size or time changes, or
//!   fetches a URL with a conditional GET, at start, every `interval` and
//!   when triggered. A failed fetch or a bad manifest keeps the old index and
//!   is logged (and shown in [`IndexerStats::last_error`]).
//!
//! Blocking work (walks, builds, cache writes) runs in `spawn_blocking`.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch, Notify};
use tokio::time::{sleep_until, Instant};

use super::fetch::{FetchOptions, Fetcher, PathOrUrl};
use super::hashcache;
use super::hasher::{HashOptions, HashOutcome, HashResult, Hasher};
use super::index::{ContentIndex, FileId, FileInfo, IndexBuilder};
use super::manifest::parse_manifest;
use super::tree::{self, FileStat, Walk};

/// Hashed files gathered before a new index is published.
pub const HASH_BATCH: usize = 1024;
/// Hashes waiting longer than this are published even in a small batch.
pub const FLUSH_EVERY: Duration = Duration::from_secs(2);
/// How often the cache is saved while a long hashing pass runs.
pub const SAVE_EVERY: Duration = Duration::from_secs(60);

/// Where the origin's files are known from.
#[derive(Debug, Clone)]
pub enum OriginSource {
    /// A local tree (the origin's own disk, or a copy of it).
    Tree {
        root: PathBuf,
        /// The hash cache; `None` hashes everything again after a restart.
        cache_file: Option<PathBuf>,
        hash_threads: usize,
        /// Files modified more recently than this are hashed in a later pass.
        settle: Duration,
    },
    /// A manifest written by `mirrorgate manifest` on the origin host.
    Manifest {
        location: PathOrUrl,
        fetch: FetchOptions,
    },
}

/// Counters for metrics; published on their own `watch` after every change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexerStats {
    /// Indexes published so far.
    pub generation: u64,
    pub files: u64,
    pub bytes: u64,
    /// Files of the current index with a known SHA-256.
    pub hashed: u64,
    /// Files of the current index still without one.
    pub pending: u64,
    /// Files read and hashed by this process (not taken from the cache).
    pub hashes_computed: u64,
    /// Walks (tree) or fetches (manifest) finished, successful or not.
    pub checks: u64,
    pub last_walk: Option<Duration>,
    /// Why the last walk or fetch failed; `None` after a success.
    pub last_error: Option<String>,
}

/// Keeps an index fresh until `shutdown` completes. `trigger.notify_one()`
/// forces a walk or fetch now (SIGHUP).
pub async fn run(
    source: OriginSource,
    interval: Duration,
    index_tx: watch::Sender<Arc<ContentIndex>>,
    stats_tx: watch::Sender<IndexerStats>,
    trigger: Arc<Notify>,
    shutdown: impl Future<Output = ()>,
) {
    let out = Publisher {
        index_tx,
        stats_tx,
        stats: IndexerStats::default(),
    };
    tokio::pin!(shutdown);
    match source {
        OriginSource::Tree {
            root,
            cache_file,
            hash_threads,
            settle,
        } => {
            let hash = HashOptions {
                threads: hash_threads,
                settle,
                ..HashOptions::default()
            };
            let tree = TreeIndexer {
                root,
                cache_file,
                hash,
                interval,
                out,
                current: Arc::new(ContentIndex::empty()),
                computed: Arc::new(AtomicU64::new(0)),
            };
            tree.run(&trigger, &mut shutdown).await;
        }
        OriginSource::Manifest { location, fetch } => {
            run_manifest(location, fetch, interval, out, &trigger, &mut shutdown).await;
        }
    }
}

struct Publisher {
    index_tx: watch::Sender<Arc<ContentIndex>>,
    stats_tx: watch::Sender<IndexerStats>,
    stats: IndexerStats,
}

impl Publisher {
    fn index(&mut self, index: Arc<ContentIndex>) {
        self.stats.generation += 1;
        self.stats.files = index.len() as u64;
        self.stats.bytes = index.total_bytes();
        self.stats.hashed = index.hashed() as u64;
        self.stats.pending = (index.len() - index.hashed()) as u64;
        self.index_tx.send_replace(index);
    }

    fn stats(&self) {
        self.stats_tx.send_replace(self.stats.clone());
    }
}

async fn run_manifest(
    location: PathOrUrl,
    opts: FetchOptions,
    interval: Duration,
    mut out: Publisher,
    trigger: &Notify,
    shutdown: &mut (impl Future<Output = ()> + Unpin),
) {
    let mut fetcher = match Fetcher::new(location.clone(), opts) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, "manifest source unusable");
            out.stats.last_error = Some(e.to_string());
            out.stats();
            shutdown.await;
            return;
        }
    };
    loop {
        let started = Instant::now();
        let result = match fetcher.fetch_if_changed().await {
            Ok(None) => Ok(None),
            Ok(Some(text)) => tokio::task::spawn_blocking(move || parse_manifest(&text))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map(Some).map_err(|e| format!("{location}: {e}"))),
            Err(e) => Err(e.to_string()),
        };
        out.stats.checks += 1;
        out.stats.last_walk = Some(started.elapsed());
        match result {
            Ok(Some(index)) => {
                tracing::info!(manifest = %location, files = index.len(), "new origin index from the manifest");
                out.stats.last_error = None;
                out.index(Arc::new(index));
            }
            Ok(None) => out.stats.last_error = None,
            Err(e) => {
                tracing::warn!(error = %e, "manifest not taken: the previous index stays");
                out.stats.last_error = Some(e);
            }
        }
        out.stats();
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = trigger.notified() => {}
            _ = &mut *shutdown => return,
        }
    }
}

/// One background hashing pass and what it has sent so far.
struct Pass {
    hasher: Hasher,
    rx: mpsc::UnboundedReceiver<HashResult>,
    remaining: usize,
}

struct TreeIndexer {
    root: PathBuf,
    cache_file: Option<PathBuf>,
    hash: HashOptions,
    interval: Duration,
    out: Publisher,
    /// The last index published (at start: the cache, never published).
    current: Arc<ContentIndex>,
    computed: Arc<AtomicU64>,
}

impl TreeIndexer {
    async fn run(mut self, trigger: &Notify, shutdown: &mut (impl Future<Output = ()> + Unpin)) {
        if let Some(path) = self.cache_file.clone() {
            let loaded = tokio::task::spawn_blocking(move || hashcache::load(&path).0).await;
            if let Ok(cache) = loaded {
                self.current = Arc::new(cache);
            }
        }
        let mut pass: Option<Pass> = None;
        let mut batch: Vec<(String, FileStat, [u8; 32])> = Vec::new();
        let mut dirty = false;
        let mut last_save = Instant::now();
        loop {
            let mut next_walk = Instant::now() + self.interval;
            if let Some(p) = pass.take() {
                p.hasher.cancel();
                let _ = tokio::task::spawn_blocking(move || p.hasher.join()).await;
            }
            if let Some(to_hash) = self.walk_and_publish().await {
                if !to_hash.is_empty() {
                    pass = Some(self.start_pass(to_hash));
                }
            }
            let mut flush = tokio::time::interval(FLUSH_EVERY);
            loop {
                let recv = async {
                    match pass.as_mut() {
                        Some(p) => p.rx.recv().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    r = recv => {
                        let Some(r) = r else {
                            // Every thread stopped early (could not start): the pass is over.
                            pass = None;
                            continue;
                        };
                        if let Some(p) = pass.as_mut() {
                            p.remaining = p.remaining.saturating_sub(1);
                        }
                        match r.outcome {
                            HashOutcome::Hashed { stat, sha256 } => batch.push((r.path, stat, sha256)),
                            HashOutcome::Unsettled => {
                                // Walk again once it has had time to settle.
                                next_walk = next_walk.min(Instant::now() + self.hash.settle + Duration::from_secs(1));
                            }
                            HashOutcome::Failed(e) => tracing::warn!(path = %self.root.join(&r.path).display(), error = %e, "cannot hash"),
                            HashOutcome::Unstable => tracing::info!(path = %self.root.join(&r.path).display(), "changing while hashed; next pass"),
                            HashOutcome::Gone | HashOutcome::Cancelled => {}
                        }
                        let done = pass.as_ref().is_some_and(|p| p.remaining == 0);
                        if batch.len() >= HASH_BATCH || done {
                            dirty |= self.apply(&mut batch).await;
                        }
                        if done {
                            pass = None;
                            if dirty {
                                self.save_cache().await;
                                dirty = false;
                                last_save = Instant::now();
                            }
                            self.out.stats();
                        }
                    }
                    _ = flush.tick() => {
                        dirty |= self.apply(&mut batch).await;
                        if dirty && last_save.elapsed() >= SAVE_EVERY {
                            self.save_cache().await;
                            dirty = false;
                            last_save = Instant::now();
                        }
                    }
                    _ = sleep_until(next_walk) => break,
                    _ = trigger.notified() => break,
                    _ = &mut *shutdown => {
                        if let Some(p) = pass.take() {
                            p.hasher.cancel();
                            let _ = tokio::task::spawn_blocking(move || p.hasher.join()).await;
                        }
                        dirty |= self.apply(&mut batch).await;
                        if dirty {
                            self.save_cache().await;
                        }
                        return;
                    }
                }
            }
        }
    }

    /// Walks, publishes the new index, and returns the files left to hash.
    async fn walk_and_publish(&mut self) -> Option<Vec<String>> {
        let started = Instant::now();
        let root = self.root.clone();
        let previous = Arc::clone(&self.current);
        let built = tokio::task::spawn_blocking(move || {
            tree::walk(&root).map(|walk| build_from_walk(walk, &previous))
        })
        .await;
        self.out.stats.checks += 1;
        self.out.stats.last_walk = Some(started.elapsed());
        let (index, to_hash) = match built {
            Ok(Ok(built)) => built,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "origin walk failed: the previous index stays");
                self.out.stats.last_error = Some(e.to_string());
                self.out.stats();
                return None;
            }
            Err(e) => {
                self.out.stats.last_error = Some(e.to_string());
                self.out.stats();
                return None;
            }
        };
        tracing::info!(
            root = %self.root.display(),
            files = index.len(),
            to_hash = to_hash.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "origin walked"
        );
        self.out.stats.last_error = None;
        self.current = Arc::new(index);
        self.out.index(Arc::clone(&self.current));
        self.out.stats();
        Some(to_hash)
    }

    fn start_pass(&self, to_hash: Vec<String>) -> Pass {
        let (tx, rx) = mpsc::unbounded_channel();
        let remaining = to_hash.len();
        let hasher = Hasher::start(
            self.root.clone(),
            to_hash,
            self.hash.clone(),
            Arc::clone(&self.computed),
            move |r| {
                let _ = tx.send(r);
            },
        );
        Pass {
            hasher,
            rx,
            remaining,
        }
    }

    /// Publishes the hashes gathered so far; true when any was new.
    async fn apply(&mut self, batch: &mut Vec<(String, FileStat, [u8; 32])>) -> bool {
        self.out.stats.hashes_computed = self.computed.load(Ordering::Relaxed);
        if batch.is_empty() {
            return false;
        }
        let found: Vec<(FileId, [u8; 32])> = batch
            .drain(..)
            .filter_map(|(path, stat, sha)| {
                // A hash of content the index no longer describes is dropped:
                // the next walk sees the new size or time and hashes again.
                let (id, info) = self.current.lookup(&path)?;
                (info.size == stat.size && info.mtime == stat.mtime).then_some((id, sha))
            })
            .collect();
        if found.is_empty() {
            return false;
        }
        let current = Arc::clone(&self.current);
        match tokio::task::spawn_blocking(move || current.with_hashes(found)).await {
            Ok(next) => {
                self.current = Arc::new(next);
                self.out.index(Arc::clone(&self.current));
                self.out.stats();
                true
            }
            Err(_) => false,
        }
    }

    async fn save_cache(&self) {
        let Some(path) = self.cache_file.clone() else {
            return;
        };
        let index = Arc::clone(&self.current);
        let shown = path.display().to_string();
        match tokio::task::spawn_blocking(move || hashcache::save(&path, &index)).await {
            Ok(Ok(())) => tracing::debug!(cache = %shown, "hash cache saved"),
            Ok(Err(e)) => tracing::warn!(cache = %shown, error = %e, "cannot save the hash cache"),
            Err(e) => tracing::warn!(cache = %shown, error = %e, "cannot save the hash cache"),
        }
    }
}

/// The index of a walk, with the hashes `previous` knows for files of the
/// same size and time, and the paths still to hash. Consumes the walk so
/// that its strings are freed as the index grows (a lower peak).
pub fn build_from_walk(walk: Walk, previous: &ContentIndex) -> (ContentIndex, Vec<String>) {
    let path_bytes = walk.files.iter().map(|(p, _)| p.len()).sum();
    let mut builder = IndexBuilder::with_capacity(walk.files.len(), path_bytes);
    let mut to_hash = Vec::new();
    for (path, stat) in walk.files {
        let sha256 = previous
            .lookup(&path)
            .filter(|(_, i)| i.size == stat.size && i.mtime == stat.mtime)
            .and_then(|(_, i)| i.sha256);
        let needs_hash = sha256.is_none();
        let info = FileInfo {
            size: stat.size,
            mtime: stat.mtime,
            sha256,
        };
        // A walk's paths are clean and unique; one that is not is left out.
        match builder.push(&path, info) {
            Ok(_) if needs_hash => to_hash.push(path),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "origin walk: file left out of the index"),
        }
    }
    (builder.build(), to_hash)
}

//! Keeping the origin's index fresh for a running app: starts the content
//! indexer for the configured source, forwards each new index to the state
//! owner, turns its counters into metrics, and restarts it when a reload
//! changes the source. Wiring only: the work is in `crate::content::indexer`.

use crate::tls::TlsRoots;
use std::sync::Arc;

use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::config::{OriginConfig, OriginSource as ConfigSource};
use crate::content::{indexer, ContentIndex, FetchOptions, IndexerStats, OriginSource, PathOrUrl};
use crate::metrics::Metrics;
use crate::state::State;

/// The running indexer of one source; dropping it stops it.
pub struct OriginIndexer {
    source: ConfigSource,
    trigger: Arc<Notify>,
    stop: watch::Sender<bool>,
    run: Option<JoinHandle<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for OriginIndexer {
    fn drop(&mut self) {
        // Asks the indexer to stop (it saves its hash cache on the way out).
        let _ = self.stop.send(true);
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl OriginIndexer {
    /// Starts indexing `cfg`'s source, if it has one.
    pub fn start(
        cfg: &OriginConfig,
        roots: &TlsRoots,
        state: Arc<State>,
        metrics: Metrics,
    ) -> Option<OriginIndexer> {
        let source = cfg.source.clone()?;
        let content_source = match &source {
            ConfigSource::Root(root) => OriginSource::Tree {
                root: root.clone(),
                cache_file: cfg.hash_cache.clone(),
                hash_threads: cfg.hash_threads,
                settle: cfg.settle,
            },
            ConfigSource::ManifestFile(p) => OriginSource::Manifest {
                location: PathOrUrl::Path(p.clone()),
                fetch: FetchOptions::default(),
            },
            ConfigSource::ManifestUrl(u) => OriginSource::Manifest {
                location: PathOrUrl::Url(u.clone()),
                fetch: FetchOptions {
                    roots: roots.clone(),
                    ..FetchOptions::default()
                },
            },
        };
        let (index_tx, mut index_rx) = watch::channel(Arc::new(ContentIndex::empty()));
        let (stats_tx, mut stats_rx) = watch::channel(IndexerStats::default());
        let trigger = Arc::new(Notify::new());
        let (stop, mut stop_rx) = watch::channel(false);
        let run = tokio::spawn(indexer::run(
            content_source,
            cfg.rescan_interval,
            index_tx,
            stats_tx,
            trigger.clone(),
            async move {
                let _ = stop_rx.wait_for(|s| *s).await;
            },
        ));
        let forward = tokio::spawn(async move {
            while index_rx.changed().await.is_ok() {
                let index = index_rx.borrow_and_update().clone();
                if state.set_content(index).await.is_none() {
                    break;
                }
            }
        });
        let stats = tokio::spawn(async move {
            while stats_rx.changed().await.is_ok() {
                let s = stats_rx.borrow_and_update().clone();
                metrics.origin_stats(s.hashed as i64, s.pending as i64);
                if let Some(e) = &s.last_error {
                    tracing::warn!(error = %e, "origin index: the last walk or fetch failed; the previous index keeps serving");
                }
            }
        });
        Some(OriginIndexer {
            source,
            trigger,
            stop,
            run: Some(run),
            tasks: vec![forward, stats],
        })
    }

    /// Stops the indexer and waits (a bounded time) for it to save its hash cache.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(run) = self.run.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), run).await;
        }
    }

    /// Walks or fetches now (SIGHUP).
    pub fn rescan(&self) {
        self.trigger.notify_one();
    }

    /// True when `cfg` names the source this indexer already follows.
    pub fn follows(&self, cfg: Option<&OriginConfig>) -> bool {
        cfg.and_then(|c| c.source.as_ref()) == Some(&self.source)
    }
}

//! On-demand checks: does this mirror have this file, right now?
//!
//! When a mirror's trace file is older than a file's publication, the request
//! path may ask the mirror directly: a HEAD of the file, its `Content-Length`
//! compared with the index's size. This module owns those checks and a
//! bounded cache of their answers. The request path reads the cache with
//! [`Checker::cached`] (no I/O, no waiting) and, when it can afford a short
//! wait, calls [`Checker::check_many`] with a deadline.
//!
//! Answers are cached per (mirror, path, size, mtime), not per [`FileId`]:
//! ids are renumbered by every rescan of the origin, while a path with the
//! same size and mtime is still the same file. A republished file (new size
//! or mtime) therefore misses the cache and is checked again.
//!
//! Checks of one key in flight at once share one request (single-flight);
//! the request runs in a task of its own, so a caller that stops waiting (a
//! deadline) does not waste it: its answer still fills the cache. Concurrent
//! requests are bounded per mirror and overall.
//!
//! [`FileId`]: super::FileId

use crate::tls::TlsRoots;
use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use url::Url;

use super::FileInfo;
use crate::health::within_base;

/// Shards of the cache: a lookup on the request path locks one shard for
/// reading, so requests rarely meet and never wait behind I/O.
const SHARDS: usize = 16;

/// Redirects followed while they stay under the mirror's base URL.
const MAX_REDIRECTS: usize = 3;

/// What a mirror was found to have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Presence {
    /// Answered 2xx with the index's size.
    Present,
    /// Answered 404 or 410.
    Missing,
    /// Answered 2xx with another size: a partial or stale copy.
    SizeMismatch { found: u64 },
    /// No usable answer (network error, timeout, 5xx, no length, a redirect
    /// off the mirror...): neither present nor missing.
    Unknown,
}

impl Presence {
    /// A bounded label for metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Present => "present",
            Self::Missing => "missing",
            Self::SizeMismatch { .. } => "size_mismatch",
            Self::Unknown => "unknown",
        }
    }
}

/// Limits and lifetimes of checks.
#[derive(Debug, Clone)]
pub struct CheckerSettings {
    /// The bound on one check, redirects included.
    pub timeout: Duration,
    /// How long `Present` is believed.
    pub positive_ttl: Duration,
    /// How long `Missing` and `SizeMismatch` are believed: shorter, since a
    /// mirror in the middle of a sync will soon have the file.
    pub negative_ttl: Duration,
    /// How long `Unknown` is kept, only to avoid asking a failing mirror on
    /// every request; zero keeps nothing.
    pub unknown_ttl: Duration,
    /// The most answers cached; the oldest go first.
    pub max_entries: usize,
    /// Concurrent checks against one mirror.
    pub per_mirror: usize,
    /// Trusted for HTTPS mirrors besides the web PKI roots.
    pub roots: TlsRoots,
    /// Concurrent checks overall.
    pub overall: usize,
}

impl Default for CheckerSettings {
    fn default() -> Self {
        CheckerSettings {
            timeout: Duration::from_secs(3),
            positive_ttl: Duration::from_secs(600),
            negative_ttl: Duration::from_secs(60),
            unknown_ttl: Duration::from_secs(5),
            max_entries: 100_000,
            per_mirror: 4,
            overall: 64,
            roots: TlsRoots::default(),
        }
    }
}

/// Counts since the checker was made, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckStats {
    /// Requests sent (one per single-flight group).
    pub requests: u64,
    pub present: u64,
    pub missing: u64,
    pub size_mismatch: u64,
    pub unknown: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    present: AtomicU64,
    missing: AtomicU64,
    size_mismatch: AtomicU64,
    unknown: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
}

/// Why the checker could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the on-demand check HTTP client: {0}")]
pub struct CheckerError(#[source] reqwest::Error);

/// One file on one mirror, for [`Checker::check_many`].
#[derive(Debug, Clone)]
pub struct CheckRequest {
    pub mirror: Arc<str>,
    /// The mirror's base URL.
    pub base: Url,
    /// The path, percent-encoded, relative to `base`.
    pub path_encoded: String,
    /// The decoded path, as the index knows it.
    pub path: String,
    pub info: FileInfo,
}

/// The time source of cache lifetimes; tests inject one they move by hand.
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// Checks files on mirrors and remembers the answers; cheap to clone.
#[derive(Clone)]
pub struct Checker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Checker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checker")
            .field("settings", &self.inner.settings)
            .field("cached", &self.cache_len())
            .finish()
    }
}

struct Inner {
    http: reqwest::Client,
    settings: CheckerSettings,
    clock: Clock,
    hasher: RandomState,
    shards: Box<[RwLock<Shard>]>,
    pending: Mutex<HashMap<PendingKey, watch::Receiver<Option<Presence>>>>,
    overall: Arc<Semaphore>,
    per_mirror: Mutex<HashMap<Arc<str>, Arc<Semaphore>>>,
    counters: Counters,
}

/// A cache slot: the hash of (mirror, path) with the file's size and mtime.
/// The entry keeps mirror and path to tell a hash collision from a hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    hash: u64,
    size: u64,
    mtime: i64,
}

/// The exact identity of a check in flight.
type PendingKey = (Arc<str>, Box<str>, u64, i64);

#[derive(Debug)]
struct Entry {
    mirror: Arc<str>,
    path: Box<str>,
    presence: Presence,
    expires: Instant,
    /// Insertion number, to tell the live entry from stale queue items.
    seq: u64,
}

/// One shard of the cache: a map, and insertion order for eviction.
#[derive(Debug, Default)]
struct Shard {
    map: HashMap<Key, Entry>,
    /// (key, seq) in insertion order; items whose seq no longer matches
    /// the map's entry are stale and skipped.
    order: VecDeque<(Key, u64)>,
    seq: u64,
    cap: usize,
}

impl Shard {
    fn get(&self, key: &Key, mirror: &str, path: &str, now: Instant) -> Option<Presence> {
        self.map
            .get(key)
            .filter(|e| &*e.mirror == mirror && &*e.path == path && e.expires > now)
            .map(|e| e.presence)
    }

    fn insert(&mut self, key: Key, mut entry: Entry) {
        self.seq += 1;
        entry.seq = self.seq;
        self.map.insert(key, entry);
        self.order.push_back((key, self.seq));
        while self.map.len() > self.cap {
            let Some((old, seq)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&old).is_some_and(|e| e.seq == seq) {
                self.map.remove(&old);
            }
        }
        // Re-inserted keys leave stale items behind; drop them before the
        // queue outgrows the map by much.
        if self.order.len() > 2 * self.cap + 16 {
            let map = &self.map;
            self.order
                .retain(|(k, seq)| map.get(k).is_some_and(|e| e.seq == *seq));
        }
    }
}

impl Checker {
    /// A checker on the system clock.
    pub fn new(settings: CheckerSettings) -> Result<Checker, CheckerError> {
        Self::with_clock(settings, Arc::new(Instant::now))
    }

    /// A checker whose cache lifetimes follow `clock`.
    pub fn with_clock(settings: CheckerSettings, clock: Clock) -> Result<Checker, CheckerError> {
        let http = settings
            .roots
            .add_to_reqwest(reqwest::Client::builder())
            .map_err(CheckerError)?
            .use_rustls_tls()
            .user_agent(concat!("mirrorgate/", env!("CARGO_PKG_VERSION"), " check"))
            // Followed by hand, so that one leaving the mirror is refused.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.timeout)
            .build()
            .map_err(CheckerError)?;
        let cap = settings.max_entries.div_ceil(SHARDS).max(1);
        let shards = (0..SHARDS)
            .map(|_| {
                RwLock::new(Shard {
                    cap,
                    ..Shard::default()
                })
            })
            .collect();
        Ok(Checker {
            inner: Arc::new(Inner {
                http,
                overall: Arc::new(Semaphore::new(settings.overall.max(1))),
                settings,
                clock,
                hasher: RandomState::new(),
                shards,
                pending: Mutex::default(),
                per_mirror: Mutex::default(),
                counters: Counters::default(),
            }),
        })
    }

    /// The checker's current time, to pass to [`Checker::cached`].
    pub fn now(&self) -> Instant {
        (self.inner.clock)()
    }

    /// The cached answer for `path` (decoded) on `mirror`, if still valid at
    /// `now`. No I/O and no waiting: the request path calls it.
    pub fn cached(
        &self,
        mirror: &str,
        path: &str,
        info: &FileInfo,
        now: Instant,
    ) -> Option<Presence> {
        let (key, shard) = self.inner.slot(mirror, path, info);
        let found = read(shard).get(&key, mirror, path, now);
        let counter = match found {
            Some(_) => &self.inner.counters.cache_hits,
            None => &self.inner.counters.cache_misses,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Whether `mirror` has `path`: from the cache, else a HEAD of
    /// `base` + `path_encoded` (shared with any check of the same file
    /// in flight).
    pub async fn check(
        &self,
        mirror: &str,
        base: &Url,
        path_encoded: &str,
        path: &str,
        info: &FileInfo,
    ) -> Presence {
        if let Some(p) = self.cached(mirror, path, info, self.now()) {
            return p;
        }
        self.fetch_shared(mirror, base, path_encoded, path, info)
            .await
    }

    /// Checks `candidates` (at most `max_parallel` at a time) and returns an
    /// answer for each, by index, once all are known or `deadline` has
    /// passed, whichever is first; unfinished ones are `Unknown`. Checks cut
    /// off by the deadline still complete in the background and fill the cache.
    pub async fn check_many(
        &self,
        candidates: Vec<CheckRequest>,
        deadline: Duration,
        max_parallel: usize,
    ) -> Vec<(usize, Presence)> {
        let mut out: Vec<(usize, Presence)> = (0..candidates.len())
            .map(|i| (i, Presence::Unknown))
            .collect();
        let now = self.now();
        let limit = Arc::new(Semaphore::new(max_parallel.max(1)));
        let mut set = JoinSet::new();
        for (i, c) in candidates.into_iter().enumerate() {
            if let Some(p) = self.cached(&c.mirror, &c.path, &c.info, now) {
                out[i].1 = p;
                continue;
            }
            let (checker, limit) = (self.clone(), Arc::clone(&limit));
            set.spawn(async move {
                // The semaphore is never closed; without a permit, no check.
                let Ok(_permit) = limit.acquire_owned().await else {
                    return (i, Presence::Unknown);
                };
                let p = checker
                    .fetch_shared(&c.mirror, &c.base, &c.path_encoded, &c.path, &c.info)
                    .await;
                (i, p)
            });
        }
        let collect = async {
            while let Some(done) = set.join_next().await {
                if let Ok((i, p)) = done {
                    out[i].1 = p;
                }
            }
        };
        // Past the deadline the rest stay `Unknown`; dropping `set` stops
        // the waiting, not the requests.
        let _ = tokio::time::timeout(deadline, collect).await;
        out
    }

    /// Counts since the checker was made.
    pub fn stats(&self) -> CheckStats {
        let c = &self.inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CheckStats {
            requests: get(&c.requests),
            present: get(&c.present),
            missing: get(&c.missing),
            size_mismatch: get(&c.size_mismatch),
            unknown: get(&c.unknown),
            cache_hits: get(&c.cache_hits),
            cache_misses: get(&c.cache_misses),
        }
    }

    /// Answers held in the cache, expired ones included until evicted.
    pub fn cache_len(&self) -> usize {
        self.inner.shards.iter().map(|s| read(s).map.len()).sum()
    }

    /// Joins the check in flight for this file, or starts one.
    async fn fetch_shared(
        &self,
        mirror: &str,
        base: &Url,
        path_encoded: &str,
        path: &str,
        info: &FileInfo,
    ) -> Presence {
        let mirror: Arc<str> = Arc::from(mirror);
        let key: PendingKey = (mirror.clone(), path.into(), info.size, info.mtime);
        let mut rx = {
            let mut pending = lock(&self.inner.pending);
            // A check that finished since the caller's cache lookup has left
            // the pending map for the cache: look again rather than repeat it.
            let (slot, shard) = self.inner.slot(&mirror, path, info);
            if let Some(p) = read(shard).get(&slot, &mirror, path, self.now()) {
                return p;
            }
            match pending.get(&key) {
                Some(rx) => rx.clone(),
                None => {
                    let (tx, rx) = watch::channel(None);
                    pending.insert(key.clone(), rx.clone());
                    let job = Job {
                        inner: Arc::clone(&self.inner),
                        key,
                        url: file_url(base, path_encoded),
                        base: base.clone(),
                        info: *info,
                    };
                    tokio::spawn(job.run(tx));
                    rx
                }
            }
        };
        // An error means the job died without an answer (runtime shutdown).
        let answer = rx.wait_for(Option::is_some).await.map(|v| *v);
        answer.ok().flatten().unwrap_or(Presence::Unknown)
    }
}

impl Inner {
    fn slot(&self, mirror: &str, path: &str, info: &FileInfo) -> (Key, &RwLock<Shard>) {
        let hash = self.hasher.hash_one((mirror, path));
        let key = Key {
            hash,
            size: info.size,
            mtime: info.mtime,
        };
        (key, &self.shards[(hash % SHARDS as u64) as usize])
    }

    fn store(&self, mirror: &Arc<str>, path: &str, info: &FileInfo, presence: Presence) {
        let s = &self.settings;
        let ttl = match presence {
            Presence::Present => s.positive_ttl,
            Presence::Missing | Presence::SizeMismatch { .. } => s.negative_ttl,
            Presence::Unknown => s.unknown_ttl,
        };
        let (key, shard) = self.slot(mirror, path, info);
        let mut shard = write(shard);
        if ttl.is_zero() {
            // An older answer must not outlive a newer "don't know".
            if shard
                .map
                .get(&key)
                .is_some_and(|e| e.mirror == *mirror && &*e.path == path)
            {
                shard.map.remove(&key);
            }
            return;
        }
        let entry = Entry {
            mirror: Arc::clone(mirror),
            path: path.into(),
            presence,
            expires: (self.clock)() + ttl,
            seq: 0,
        };
        shard.insert(key, entry);
    }

    fn mirror_limit(&self, mirror: &Arc<str>) -> Arc<Semaphore> {
        let mut map = lock(&self.per_mirror);
        let per = self.settings.per_mirror.max(1);
        Arc::clone(
            map.entry(Arc::clone(mirror))
                .or_insert_with(|| Arc::new(Semaphore::new(per))),
        )
    }

    fn count(&self, presence: Presence) {
        let c = &self.counters;
        let counter = match presence {
            Presence::Present => &c.present,
            Presence::Missing => &c.missing,
            Presence::SizeMismatch { .. } => &c.size_mismatch,
            Presence::Unknown => &c.unknown,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// One request, run in a task of its own so that it outlives impatient callers.
struct Job {
    inner: Arc<Inner>,
    key: PendingKey,
    url: Option<Url>,
    base: Url,
    info: FileInfo,
}

impl Job {
    async fn run(self, tx: watch::Sender<Option<Presence>>) {
        let presence = self.request().await;
        let inner = &self.inner;
        inner.count(presence);
        inner.store(&self.key.0, &self.key.1, &self.info, presence);
        // Cache first, then leave the pending map: a newcomer finds one or the other.
        lock(&inner.pending).remove(&self.key);
        tx.send_replace(Some(presence));
    }

    async fn request(&self) -> Presence {
        let Some(url) = self.url.clone() else {
            return Presence::Unknown;
        };
        let inner = &self.inner;
        // Per mirror first: a slow mirror's queue must not hold overall permits.
        let mirror_limit = inner.mirror_limit(&self.key.0);
        let Ok(_mine) = mirror_limit.acquire_owned().await else {
            return Presence::Unknown;
        };
        let Ok(_all) = Arc::clone(&inner.overall).acquire_owned().await else {
            return Presence::Unknown;
        };
        inner.counters.requests.fetch_add(1, Ordering::Relaxed);
        let head = head(&inner.http, url, &self.base, self.info.size);
        tokio::time::timeout(inner.settings.timeout, head)
            .await
            .unwrap_or(Presence::Unknown)
    }
}

/// HEAD (or GET when HEAD is refused) of `url`, following redirects that
/// stay under `base`, and what the answer says of a file of `size` bytes.
async fn head(http: &reqwest::Client, mut url: Url, base: &Url, size: u64) -> Presence {
    let mut method = Method::HEAD;
    let mut redirects = 0;
    loop {
        let Ok(response) = http.request(method.clone(), url.clone()).send().await else {
            return Presence::Unknown;
        };
        let status = response.status();
        if status.is_success() {
            // Read from the header: reqwest reports a HEAD body's length as 0.
            let length = response
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            return match length {
                Some(n) if n == size => Presence::Present,
                Some(found) => Presence::SizeMismatch { found },
                None => Presence::Unknown,
            };
        }
        match status {
            StatusCode::NOT_FOUND | StatusCode::GONE => return Presence::Missing,
            StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED
                if method == Method::HEAD =>
            {
                method = Method::GET;
                continue;
            }
            _ => {}
        }
        if !status.is_redirection() || redirects == MAX_REDIRECTS {
            return Presence::Unknown;
        }
        let next = response
            .headers()
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| url.join(v).ok());
        match next {
            Some(next) if within_base(&next, base) => url = next,
            // A file kept elsewhere cannot be vouched for.
            _ => return Presence::Unknown,
        }
        redirects += 1;
    }
}

/// `base` + `path_encoded`, if the result stays under `base` (a `..` in the
/// path must not reach outside the mirror).
fn file_url(base: &Url, path_encoded: &str) -> Option<Url> {
    let mut s = base.as_str().to_owned();
    if !s.ends_with('/') {
        s.push('/');
    }
    s.push_str(path_encoded.trim_start_matches('/'));
    Url::parse(&s).ok().filter(|u| within_base(u, base))
}

// A poisoned lock only means a panic elsewhere mid-update of a cache; the
// data is still a valid cache, so carry on with it.
fn read(l: &RwLock<Shard>) -> std::sync::RwLockReadGuard<'_, Shard> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

fn write(l: &RwLock<Shard>) -> std::sync::RwLockWriteGuard<'_, Shard> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(presence: Presence, expires: Instant) -> Entry {
        Entry {
            mirror: "m".into(),
            path: "p".into(),
            presence,
            expires,
            seq: 0,
        }
    }

    fn key(n: u64) -> Key {
        Key {
            hash: n,
            size: 1,
            mtime: 2,
        }
    }

    #[test]
    fn a_full_shard_evicts_the_oldest() {
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        let mut s = Shard {
            cap: 2,
            ..Shard::default()
        };
        s.insert(key(1), entry(Presence::Present, later));
        s.insert(key(2), entry(Presence::Present, later));
        // Refreshing 1 makes 2 the oldest.
        s.insert(key(1), entry(Presence::Missing, later));
        s.insert(key(3), entry(Presence::Present, later));
        assert_eq!(s.map.len(), 2);
        assert_eq!(s.get(&key(1), "m", "p", now), Some(Presence::Missing));
        assert_eq!(s.get(&key(2), "m", "p", now), None);
        assert_eq!(s.get(&key(3), "m", "p", now), Some(Presence::Present));
    }

    #[test]
    fn stale_order_items_do_not_pile_up() {
        let later = Instant::now() + Duration::from_secs(60);
        let mut s = Shard {
            cap: 4,
            ..Shard::default()
        };
        for _ in 0..1000 {
            s.insert(key(7), entry(Presence::Present, later));
        }
        assert_eq!(s.map.len(), 1);
        assert!(s.order.len() <= 2 * 4 + 16 + 1, "{}", s.order.len());
    }

    #[test]
    fn a_hash_collision_is_a_miss_not_a_wrong_answer() {
        let now = Instant::now();
        let mut s = Shard {
            cap: 4,
            ..Shard::default()
        };
        s.insert(
            key(1),
            entry(Presence::Present, now + Duration::from_secs(1)),
        );
        assert_eq!(s.get(&key(1), "other", "p", now), None);
        assert_eq!(s.get(&key(1), "m", "q", now), None);
        assert_eq!(s.get(&key(1), "m", "p", now + Duration::from_secs(1)), None);
    }

    #[test]
    fn the_file_url_stays_under_the_base() {
        let base = Url::parse("http://m.example/pub/").unwrap();
        let u = |p| file_url(&base, p).map(|u| u.to_string());
        assert_eq!(
            u("a/b%20c.iso").as_deref(),
            Some("http://m.example/pub/a/b%20c.iso")
        );
        assert_eq!(u("/a").as_deref(), Some("http://m.example/pub/a"));
        assert_eq!(u("../../etc/passwd"), None);
        let bare = Url::parse("http://m.example/pub").unwrap();
        assert_eq!(
            file_url(&bare, "a").map(|u| u.to_string()).as_deref(),
            Some("http://m.example/pub/a")
        );
    }

    #[test]
    fn labels_are_bounded() {
        assert_eq!(
            Presence::SizeMismatch { found: 3 }.as_str(),
            "size_mismatch"
        );
        assert_eq!(Presence::Unknown.as_str(), "unknown");
    }
}

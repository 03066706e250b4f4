//! The origin's content index end to end: manifests, tree walks, background
//! hashing with its cache, and the indexer task over a tree, a file and HTTP.
//! Every wait is on an event (a channel) with a safety deadline; no sleeps.

use std::convert::Infallible;
use std::fs;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use sha2::{Digest, Sha256};
use tokio::sync::{oneshot, watch, Notify};
use tokio::task::JoinHandle;

use mirrorgate::content::hasher::{hash_stable, HashOptions, HashOutcome};
use mirrorgate::content::manifest::{write_manifest, ManifestOptions, HEADER};
use mirrorgate::content::{
    hashcache, indexer, parse_manifest, walk, ContentIndex, FetchOptions, IndexerStats,
    OriginSource, PathOrUrl,
};

const DEADLINE: Duration = Duration::from_secs(20);

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn write(root: &Path, rel: &str, content: &[u8]) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, content).unwrap();
}

/// A small tree, with the awkward cases: spaces, `%`, rsync temporaries.
fn sample_tree(root: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let files: Vec<(&'static str, Vec<u8>)> = vec![
        ("README", b"hello\n".to_vec()),
        (
            "pool/main/h/hello/hello_2.10-3_amd64.deb",
            vec![7u8; 300_000],
        ),
        ("releases/1.0/file name 100%.iso", b"iso".to_vec()),
        ("empty", Vec::new()),
    ];
    for (p, c) in &files {
        write(root, p, c);
    }
    write(
        root,
        "pool/main/h/hello/.hello_2.10-3_arm64.deb.a1B2c3",
        b"partial",
    );
    write(root, ".~tmp~/pool/x.deb", b"delayed");
    files
}

#[test]
fn manifest_round_trip_has_the_real_sha256() {
    let dir = tempfile::tempdir().unwrap();
    let files = sample_tree(dir.path());
    let mut opts = ManifestOptions::default();
    opts.hash.settle = Duration::ZERO;
    let mut out = Vec::new();
    let stats = write_manifest(dir.path(), &mut out, &opts).unwrap();
    assert_eq!((stats.files, stats.hashed, stats.skipped_temp), (4, 4, 2));
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with(&format!("{HEADER}\n")));
    assert!(
        text.contains(" releases/1.0/file%20name%20100%25.iso\n"),
        "{text}"
    );

    let index = parse_manifest(&text).unwrap();
    assert_eq!(index.len(), files.len());
    for (path, content) in &files {
        let (_, info) = index.lookup(path).unwrap();
        assert_eq!(info.size, content.len() as u64, "{path}");
        assert_eq!(info.sha256, Some(sha256(content)), "{path}");
        let meta = fs::metadata(dir.path().join(path)).unwrap();
        let secs = meta
            .modified()
            .unwrap()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert_eq!(info.mtime, secs as i64);
    }
    assert!(index.is_dir("pool/main"));
    assert_eq!(index.lookup(".~tmp~/pool/x.deb"), None);
}

#[test]
fn manifest_errors_name_their_line_and_refuse_the_whole_text() {
    let h = hex::encode(sha256(b"x"));
    let text = format!("{HEADER}\n{h} 1 5 ok\n{h} 1 5 ../etc/passwd\n");
    let err = parse_manifest(&text).unwrap_err().to_string();
    assert!(
        err.starts_with("line 3: unsafe path \"../etc/passwd\""),
        "{err}"
    );
    let text = format!("{HEADER}\n{h} 1 5 ok\n{}x 1 5 other\n", &h[..63]);
    let err = parse_manifest(&text).unwrap_err().to_string();
    assert!(err.starts_with("line 3: bad hash"), "{err}");
}

#[cfg(unix)]
#[test]
fn walk_skips_temporaries_and_links_that_leave_the_root() {
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret"), b"s").unwrap();
    let dir = tempfile::tempdir().unwrap();
    sample_tree(dir.path());
    let root = dir.path();
    std::os::unix::fs::symlink("README", root.join("README.link")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret"), root.join("escape")).unwrap();
    std::os::unix::fs::symlink("pool", root.join("pool-alias")).unwrap();
    std::os::unix::fs::symlink("nowhere", root.join("dangling")).unwrap();

    let w = walk(root).unwrap();
    let paths: Vec<&str> = w.files.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "README",
            "README.link",
            "empty",
            "pool/main/h/hello/hello_2.10-3_amd64.deb",
            "releases/1.0/file name 100%.iso",
        ]
    );
    assert_eq!(w.skipped_temp, 2);
    assert_eq!(w.skipped_symlinks, 3);
    assert!(walk(&root.join("missing")).is_err());
}

#[test]
fn a_file_changing_while_hashed_gets_the_hash_of_its_final_content() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.iso");
    fs::write(&path, vec![1u8; 1 << 20]).unwrap();
    let final_content = vec![2u8; 1 << 20];
    let rewrite = final_content.clone();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&calls);
    let opts = HashOptions {
        threads: 1,
        settle: Duration::ZERO,
        max_attempts: 3,
        // Between the first read and the second stat: the writer finishes
        // (same size, so only the time, inode change time or inode tells).
        after_read: Some(Arc::new(move |p: &Path, attempt: u32| {
            seen.lock().unwrap().push(attempt);
            if attempt == 0 {
                let tmp = p.with_extension("tmp");
                fs::write(&tmp, &rewrite).unwrap();
                fs::rename(&tmp, p).unwrap();
            }
        })),
    };
    let out = hash_stable(&path, &opts, &AtomicBool::new(false));
    let HashOutcome::Hashed { stat, sha256: got } = out else {
        panic!("{out:?}");
    };
    assert_eq!(got, sha256(&final_content));
    assert_eq!(stat.size, 1 << 20);
    assert_eq!(*calls.lock().unwrap(), [0, 1], "read twice");
}

/// The indexer on a task, with its channels.
struct Running {
    index: watch::Receiver<Arc<ContentIndex>>,
    stats: watch::Receiver<IndexerStats>,
    trigger: Arc<Notify>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Running {
    fn start(source: OriginSource) -> Running {
        let (index_tx, index) = watch::channel(Arc::new(ContentIndex::empty()));
        let (stats_tx, stats) = watch::channel(IndexerStats::default());
        let trigger = Arc::new(Notify::new());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(indexer::run(
            source,
            // Long: the tests drive every pass through the trigger.
            Duration::from_secs(3600),
            index_tx,
            stats_tx,
            Arc::clone(&trigger),
            async move {
                let _ = stopped.await;
            },
        ));
        Running {
            index,
            stats,
            trigger,
            stop: Some(stop),
            task,
        }
    }

    async fn index_where(&mut self, f: impl Fn(&ContentIndex) -> bool) -> Arc<ContentIndex> {
        let got = tokio::time::timeout(DEADLINE, self.index.wait_for(|i| f(i)))
            .await
            .expect("deadline")
            .expect("indexer stopped");
        Arc::clone(&got)
    }

    async fn stats_where(&mut self, f: impl Fn(&IndexerStats) -> bool) -> IndexerStats {
        tokio::time::timeout(DEADLINE, self.stats.wait_for(|s| f(s)))
            .await
            .expect("deadline")
            .expect("indexer stopped")
            .clone()
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .unwrap()
            .unwrap();
    }
}

fn tree_source(root: &Path, cache: &Path) -> OriginSource {
    OriginSource::Tree {
        root: root.to_path_buf(),
        cache_file: Some(cache.to_path_buf()),
        hash_threads: 2,
        settle: Duration::ZERO,
    }
}

fn all_hashed(n: usize) -> impl Fn(&ContentIndex) -> bool {
    move |i| i.len() == n && i.hashed() == n
}

#[tokio::test]
async fn hash_cache_is_reused_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let cache = state.path().join("hashes");
    let files = sample_tree(dir.path());

    let mut first = Running::start(tree_source(dir.path(), &cache));
    let index = first.index_where(all_hashed(files.len())).await;
    for (p, c) in &files {
        assert_eq!(index.lookup(p).unwrap().1.sha256, Some(sha256(c)), "{p}");
    }
    let stats = first.stats_where(|s| s.pending == 0 && s.hashed == 4).await;
    assert_eq!(stats.hashes_computed, 4);
    first.stop().await;
    assert_eq!(hashcache::load(&cache).1, hashcache::CacheLoad::Loaded(4));

    // The restart: the first index published already has every hash.
    let mut second = Running::start(tree_source(dir.path(), &cache));
    let index = second.index_where(|i| !i.is_empty()).await;
    assert_eq!(index.hashed(), files.len());
    let stats = second.stats_where(|s| s.generation >= 1).await;
    assert_eq!(stats.hashes_computed, 0, "nothing hashed again");
    assert_eq!(stats.pending, 0);
    second.stop().await;
}

#[tokio::test]
async fn a_corrupt_cache_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let cache = state.path().join("hashes");
    fs::write(&cache, format!("{HEADER}\nnot a line at all\n")).unwrap();
    let files = sample_tree(dir.path());
    let mut run = Running::start(tree_source(dir.path(), &cache));
    run.index_where(all_hashed(files.len())).await;
    let stats = run
        .stats_where(|s| s.pending == 0 && s.hashes_computed == 4)
        .await;
    assert_eq!(stats.last_error, None);
    run.stop().await;
    // Replaced by a good one.
    assert_eq!(hashcache::load(&cache).1, hashcache::CacheLoad::Loaded(4));
}

#[tokio::test]
async fn a_truncated_cache_keeps_its_good_lines_and_stale_temporaries_go() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let cache = state.path().join("hashes");
    let files = sample_tree(dir.path());
    let mut first = Running::start(tree_source(dir.path(), &cache));
    first.index_where(all_hashed(files.len())).await;
    first.stats_where(|s| s.pending == 0 && s.hashed == 4).await;
    first.stop().await;

    // Cut the last line in the middle, as a full disk or a bad copy would.
    let text = fs::read_to_string(&cache).unwrap();
    let last = text.trim_end().rfind('\n').unwrap() + 1;
    fs::write(&cache, &text[..last + 10]).unwrap();
    // What a save killed with SIGKILL leaves behind (u32::MAX is never a live pid).
    let stale = state.path().join(format!("hashes.tmp-{}", u32::MAX));
    fs::write(&stale, &text[..last]).unwrap();
    let unrelated = state.path().join("hashes.bak");
    fs::write(&unrelated, "keep me").unwrap();

    let mut second = Running::start(tree_source(dir.path(), &cache));
    second.index_where(all_hashed(files.len())).await;
    let stats = second
        .stats_where(|s| s.pending == 0 && s.hashed == 4)
        .await;
    assert_eq!(
        stats.hashes_computed, 1,
        "only the file of the cut line is hashed again"
    );
    second.stop().await;
    assert!(
        !stale.exists(),
        "the stale temporary file is removed at start"
    );
    assert!(unrelated.exists(), "a file of another name is left alone");
    assert_eq!(hashcache::load(&cache).1, hashcache::CacheLoad::Loaded(4));
}

#[tokio::test]
async fn a_new_file_is_published_after_a_trigger() {
    let dir = tempfile::tempdir().unwrap();
    let files = sample_tree(dir.path());
    let mut run = Running::start(OriginSource::Tree {
        root: dir.path().to_path_buf(),
        cache_file: None,
        hash_threads: 1,
        settle: Duration::ZERO,
    });
    run.index_where(all_hashed(files.len())).await;
    write(dir.path(), "releases/2.0/new.iso", b"new release");
    run.trigger.notify_one();
    let index = run
        .index_where(|i| {
            i.lookup("releases/2.0/new.iso")
                .is_some_and(|(_, f)| f.sha256.is_some())
        })
        .await;
    assert_eq!(
        index.lookup("releases/2.0/new.iso").unwrap().1.sha256,
        Some(sha256(b"new release"))
    );
    assert!(index.is_dir("releases/2.0"));
    run.stop().await;
}

#[tokio::test]
async fn a_bad_local_manifest_keeps_the_old_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manifest");
    fs::write(&path, format!("{HEADER}\n- 3 1700000000 a/b\n")).unwrap();
    let mut run = Running::start(OriginSource::Manifest {
        location: PathOrUrl::Path(path.clone()),
        fetch: FetchOptions::default(),
    });
    let good = run.index_where(|i| i.len() == 1).await;
    // Different length, so the change is seen whatever the clock's resolution.
    fs::write(&path, format!("{HEADER}\n- 3 1700000000 a/b\n- x 1 c\n")).unwrap();
    run.trigger.notify_one();
    let stats = run.stats_where(|s| s.checks >= 2).await;
    assert!(
        stats
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("line 3: bad size")),
        "{stats:?}"
    );
    assert_eq!(stats.generation, 1);
    assert!(Arc::ptr_eq(&good, &run.index.borrow()));
    run.stop().await;
}

/// A manifest server that answers 304 to a matching `If-None-Match` and
/// reports every request's conditional header.
async fn manifest_server(
    body: String,
) -> (
    std::net::SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<Option<String>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen_tx, seen) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (body, seen_tx) = (body.clone(), seen_tx.clone());
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let inm = req
                    .headers()
                    .get("if-none-match")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let _ = seen_tx.send(inm.clone());
                let resp = if inm.as_deref() == Some("\"v1\"") {
                    Response::builder()
                        .status(StatusCode::NOT_MODIFIED)
                        .header("etag", "\"v1\"")
                        .body(Full::new(Bytes::new()))
                } else {
                    Response::builder()
                        .header("etag", "\"v1\"")
                        .header("last-modified", "Tue, 14 Nov 2023 22:13:20 GMT")
                        .body(Full::new(Bytes::from(body.clone())))
                };
                async move { Ok::<_, Infallible>(resp.unwrap()) }
            });
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    (addr, seen)
}

async fn next_request(
    seen: &mut tokio::sync::mpsc::UnboundedReceiver<Option<String>>,
) -> Option<String> {
    tokio::time::timeout(DEADLINE, seen.recv())
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn manifest_over_http_uses_conditional_requests() {
    let h = hex::encode(sha256(b"x"));
    let (addr, mut seen) =
        manifest_server(format!("{HEADER}\n{h} 1 1700000000 dists/stable/Release\n")).await;
    let url = format!("http://{addr}/manifest");
    let mut run = Running::start(OriginSource::Manifest {
        location: PathOrUrl::parse(&url),
        fetch: FetchOptions {
            timeout: Duration::from_secs(5),
            max_bytes: 1 << 20,
            ..FetchOptions::default()
        },
    });
    let first = run.index_where(|i| i.len() == 1).await;
    assert_eq!(
        first.lookup("dists/stable/Release").unwrap().1.sha256,
        Some(sha256(b"x"))
    );
    assert_eq!(
        next_request(&mut seen).await,
        None,
        "the first fetch is unconditional"
    );

    run.trigger.notify_one();
    assert_eq!(next_request(&mut seen).await.as_deref(), Some("\"v1\""));
    let stats = run.stats_where(|s| s.checks >= 2).await;
    assert_eq!(stats.last_error, None);
    assert_eq!(stats.generation, 1, "304: nothing new published");
    assert!(Arc::ptr_eq(&first, &run.index.borrow()));
    run.stop().await;
}

#[tokio::test]
async fn an_oversized_manifest_is_refused() {
    let (addr, _seen) = manifest_server(format!("{HEADER}\n{}", "- 1 1 a\n".repeat(1000))).await;
    let mut run = Running::start(OriginSource::Manifest {
        location: PathOrUrl::parse(&format!("http://{addr}/m")),
        fetch: FetchOptions {
            timeout: Duration::from_secs(5),
            max_bytes: 1000,
            ..FetchOptions::default()
        },
    });
    let stats = run.stats_where(|s| s.checks >= 1).await;
    assert!(
        stats
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("larger than the limit")),
        "{stats:?}"
    );
    assert_eq!(stats.generation, 0);
    run.stop().await;
}

//! What each mirror has: trace files read by the prober, and (below) on-demand
//! checks of single files, against fake mirrors on 127.0.0.1.
//!
//! Socket tests run on the real clock and wait for events, never for time.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use mirrorgate::health::{
    ProbeClient, ProbeReport, ProbeTarget, Prober, ProberSettings, TraceError,
};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use url::Url;

/// The longest a socket test waits for an event before failing.
const DEADLINE: Duration = Duration::from_secs(10);

type Reply = Response<Full<Bytes>>;
type ReplyFuture = Pin<Box<dyn Future<Output = Reply> + Send>>;

/// A small HTTP/1 server on `127.0.0.1:0`; `handler` may take its time.
struct FakeMirror {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl FakeMirror {
    async fn start(handler: impl Fn(&Method, &str) -> ReplyFuture + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let handler = Arc::new(handler);
        let count = Arc::clone(&requests);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (handler, count) = (Arc::clone(&handler), Arc::clone(&count));
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        count.fetch_add(1, Ordering::SeqCst);
                        let reply = handler(req.method(), req.uri().path());
                        async move { Ok::<_, Infallible>(reply.await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        FakeMirror {
            addr,
            requests,
            task,
        }
    }

    /// Answers at once with what `f` says.
    async fn simple(f: impl Fn(&Method, &str) -> Reply + Send + Sync + 'static) -> Self {
        Self::start(move |m, p| {
            let r = f(m, p);
            Box::pin(async move { r })
        })
        .await
    }

    fn url(&self, path: &str) -> Url {
        Url::parse(&format!("http://{}{path}", self.addr)).unwrap()
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for FakeMirror {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn status(code: StatusCode) -> Reply {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = code;
    r
}

fn body(text: &'static str) -> Reply {
    Response::new(Full::new(Bytes::from_static(text.as_bytes())))
}

// ---- trace files through the prober ----

/// 2026-11-29T10:00:01Z.
const TRACE_TIME: u64 = 1_795_946_401;

async fn one_round(targets: Vec<ProbeTarget>) -> Vec<ProbeReport> {
    let settings = ProberSettings {
        // Far beyond the test: one round is all it sees.
        interval: Duration::from_secs(3600),
        timeout: Duration::from_secs(5),
        jitter: 0.0,
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let n = targets.len();
    let _prober = Prober::spawn(
        targets,
        settings,
        ProbeClient::new(Duration::from_secs(5)).unwrap(),
        tx,
    );
    let mut got = Vec::new();
    for _ in 0..n {
        let r = timeout(DEADLINE, rx.recv())
            .await
            .expect("a report in time");
        got.push(r.expect("prober still running"));
    }
    got.sort_by(|a, b| a.mirror.cmp(&b.mirror));
    got
}

fn target(m: &FakeMirror, name: &str, trace: Option<&str>) -> ProbeTarget {
    ProbeTarget {
        mirror: name.into(),
        url: m.url("/pub/"),
        base: m.url("/pub/"),
        trace_url: trace.map(|p| m.url(p)),
    }
}

#[tokio::test]
async fn a_probe_round_reads_the_trace_file_and_a_missing_one_keeps_the_mirror_up() {
    let m = FakeMirror::simple(|_, path| match path {
        "/pub/" => status(StatusCode::OK),
        "/pub/project/trace/origin" => body("Sun Nov 29 10:00:01 UTC 2026\nUsed ftpsync 20\n"),
        "/pub/project/trace/garbled" => body("<html>oops</html>\n"),
        _ => status(StatusCode::NOT_FOUND),
    })
    .await;
    let got = one_round(vec![
        target(&m, "a-synced", Some("/pub/project/trace/origin")),
        target(&m, "b-missing", Some("/pub/project/trace/nothing")),
        target(&m, "c-garbled", Some("/pub/project/trace/garbled")),
        target(&m, "d-none", None),
    ])
    .await;
    assert!(got.iter().all(|r| r.result.is_ok()), "{got:?}");
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(TRACE_TIME);
    assert_eq!(got[0].trace, Some(Ok(t)));
    assert_eq!(
        got[1].trace,
        Some(Err(TraceError::Fetch(
            mirrorgate::health::FailureReason::HttpStatus(404)
        )))
    );
    assert!(
        matches!(&got[2].trace, Some(Err(TraceError::Unrecognized(l))) if l.contains("oops")),
        "{:?}",
        got[2].trace
    );
    assert_eq!(got[3].trace, None);
}

#[tokio::test]
async fn an_oversized_trace_is_refused_without_reading_it_all() {
    let m = FakeMirror::simple(|_, path| match path {
        "/pub/huge" => Response::new(Full::new(Bytes::from(vec![b'1'; 100 * 1024]))),
        _ => status(StatusCode::OK),
    })
    .await;
    let got = one_round(vec![target(&m, "huge", Some("/pub/huge"))]).await;
    assert!(got[0].result.is_ok());
    assert_eq!(got[0].trace, Some(Err(TraceError::TooLarge)));
}

#[tokio::test]
async fn a_trace_redirected_off_the_mirror_is_refused() {
    let m = FakeMirror::simple(|_, path| match path {
        "/pub/trace" => {
            let mut r = status(StatusCode::FOUND);
            r.headers_mut()
                .insert(http::header::LOCATION, "/elsewhere/trace".parse().unwrap());
            r
        }
        _ => status(StatusCode::OK),
    })
    .await;
    let got = one_round(vec![target(&m, "moved", Some("/pub/trace"))]).await;
    assert!(got[0].result.is_ok());
    assert_eq!(
        got[0].trace,
        Some(Err(TraceError::Fetch(
            mirrorgate::health::FailureReason::RedirectOffSite
        )))
    );
    assert_eq!(
        m.requests(),
        2,
        "the probe and the trace, nothing off the base"
    );
}

// ---- on-demand checks ----

use mirrorgate::content::{CheckRequest, Checker, CheckerSettings, FileInfo, Presence};
use std::sync::atomic::AtomicU64;
use std::time::Instant;
use tokio::sync::{watch, Notify};

/// A file of `size` bytes as the index would describe it.
fn info(size: u64) -> FileInfo {
    FileInfo {
        size,
        mtime: 1_795_946_401,
        sha256: None,
    }
}

/// A 2xx answer declaring `len` bytes (HEAD carries no body).
fn sized(len: u64) -> Reply {
    let mut r = status(StatusCode::OK);
    r.headers_mut()
        .insert(http::header::CONTENT_LENGTH, len.into());
    r
}

/// A mirror with `/pub/a.iso` (1000 bytes), `/pub/short.iso` (10 of 1000),
/// `/pub/gone.iso` (410), `/pub/broken.iso` (503) and nothing else.
async fn shelf() -> FakeMirror {
    FakeMirror::simple(|_, path| match path {
        "/pub/a.iso" => sized(1000),
        "/pub/short.iso" => sized(10),
        "/pub/gone.iso" => status(StatusCode::GONE),
        "/pub/broken.iso" => status(StatusCode::SERVICE_UNAVAILABLE),
        "/pub/moved.iso" => {
            let mut r = status(StatusCode::FOUND);
            r.headers_mut().insert(
                http::header::LOCATION,
                "http://127.0.0.1:9/pub/a.iso".parse().unwrap(),
            );
            r
        }
        _ => status(StatusCode::NOT_FOUND),
    })
    .await
}

/// A clock that moves only when told.
#[derive(Clone)]
struct ManualClock {
    start: Instant,
    offset_ms: Arc<AtomicU64>,
}

impl ManualClock {
    fn new() -> Self {
        ManualClock {
            start: Instant::now(),
            offset_ms: Arc::default(),
        }
    }

    fn advance(&self, by: Duration) {
        self.offset_ms
            .fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }

    fn checker(&self, settings: CheckerSettings) -> Checker {
        let me = self.clone();
        Checker::with_clock(
            settings,
            Arc::new(move || me.start + Duration::from_millis(me.offset_ms.load(Ordering::SeqCst))),
        )
        .unwrap()
    }
}

async fn check(c: &Checker, m: &FakeMirror, path: &str, size: u64) -> Presence {
    let (base, info) = (m.url("/pub/"), info(size));
    let f = c.check("m", &base, path, path, &info);
    timeout(DEADLINE, f).await.expect("a check in time")
}

#[tokio::test]
async fn present_missing_and_size_mismatch() {
    let m = shelf().await;
    let c = Checker::new(CheckerSettings::default()).unwrap();
    assert_eq!(check(&c, &m, "a.iso", 1000).await, Presence::Present);
    assert_eq!(check(&c, &m, "nothing.iso", 1000).await, Presence::Missing);
    assert_eq!(check(&c, &m, "gone.iso", 1000).await, Presence::Missing);
    assert_eq!(
        check(&c, &m, "short.iso", 1000).await,
        Presence::SizeMismatch { found: 10 }
    );
    assert_eq!(check(&c, &m, "broken.iso", 1000).await, Presence::Unknown);
    // Redirected off the mirror: not vouched for, and not followed.
    assert_eq!(check(&c, &m, "moved.iso", 1000).await, Presence::Unknown);
    assert_eq!(m.requests(), 6);
    let s = c.stats();
    assert_eq!(
        (s.present, s.missing, s.size_mismatch, s.unknown),
        (1, 2, 1, 2)
    );
    assert_eq!(s.requests, 6);
}

#[tokio::test]
async fn the_cache_answers_the_second_time_without_a_request() {
    let m = shelf().await;
    let clock = ManualClock::new();
    let c = clock.checker(CheckerSettings::default());
    let now = c.now();
    assert_eq!(c.cached("m", "a.iso", &info(1000), now), None);
    assert_eq!(check(&c, &m, "a.iso", 1000).await, Presence::Present);
    assert_eq!(check(&c, &m, "a.iso", 1000).await, Presence::Present);
    assert_eq!(
        c.cached("m", "a.iso", &info(1000), now),
        Some(Presence::Present)
    );
    assert_eq!(m.requests(), 1);
    // Another mirror, or the file republished with a new size, is another question.
    assert_eq!(c.cached("n", "a.iso", &info(1000), now), None);
    assert_eq!(c.cached("m", "a.iso", &info(1001), now), None);
    let s = c.stats();
    assert!(s.cache_hits >= 2, "{s:?}");
}

#[tokio::test]
async fn answers_expire_positive_later_than_negative() {
    let m = shelf().await;
    let clock = ManualClock::new();
    let settings = CheckerSettings {
        positive_ttl: Duration::from_secs(600),
        negative_ttl: Duration::from_secs(60),
        unknown_ttl: Duration::ZERO,
        ..CheckerSettings::default()
    };
    let c = clock.checker(settings);
    check(&c, &m, "a.iso", 1000).await;
    check(&c, &m, "nothing.iso", 1000).await;
    check(&c, &m, "broken.iso", 1000).await;
    assert_eq!(m.requests(), 3);
    // "Don't know" is not kept at all with a zero lifetime.
    check(&c, &m, "broken.iso", 1000).await;
    assert_eq!(m.requests(), 4);

    clock.advance(Duration::from_secs(59));
    check(&c, &m, "a.iso", 1000).await;
    check(&c, &m, "nothing.iso", 1000).await;
    assert_eq!(m.requests(), 4, "both still cached");

    clock.advance(Duration::from_secs(2));
    check(&c, &m, "a.iso", 1000).await;
    check(&c, &m, "nothing.iso", 1000).await;
    assert_eq!(m.requests(), 5, "only the negative answer expired");

    clock.advance(Duration::from_secs(540));
    assert_eq!(c.cached("m", "a.iso", &info(1000), c.now()), None);
    check(&c, &m, "a.iso", 1000).await;
    assert_eq!(m.requests(), 6);
}

/// A mirror that answers `sized(1000)` only once `release` says so, and
/// signals each request's arrival.
async fn holding(release: watch::Receiver<bool>, arrived: Arc<Notify>) -> FakeMirror {
    FakeMirror::start(move |_, _| {
        let mut release = release.clone();
        arrived.notify_one();
        Box::pin(async move {
            let _ = release.wait_for(|r| *r).await;
            sized(1000)
        })
    })
    .await
}

#[tokio::test]
async fn concurrent_checks_of_one_file_share_one_request() {
    let (release, released) = watch::channel(false);
    let arrived = Arc::new(Notify::new());
    let m = holding(released, Arc::clone(&arrived)).await;
    let c = Checker::new(CheckerSettings::default()).unwrap();
    let base = m.url("/pub/");
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (c, base) = (c.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            c.check("m", &base, "a.iso", "a.iso", &info(1000)).await
        }));
    }
    // The request is in the fake's hands, and every caller is waiting on it.
    timeout(DEADLINE, arrived.notified())
        .await
        .expect("the request");
    release.send_replace(true);
    for t in tasks {
        let p = timeout(DEADLINE, t).await.expect("in time").unwrap();
        assert_eq!(p, Presence::Present);
    }
    assert_eq!(m.requests(), 1);
    assert_eq!(c.stats().requests, 1);
}

#[tokio::test]
async fn check_many_returns_by_the_deadline_when_a_mirror_hangs() {
    let fine = shelf().await;
    // Never released: this mirror hangs on every request.
    let (_never, held) = watch::channel(false);
    let arrived = Arc::new(Notify::new());
    let hung = holding(held, Arc::clone(&arrived)).await;
    let c = Checker::new(CheckerSettings {
        timeout: Duration::from_secs(60),
        ..CheckerSettings::default()
    })
    .unwrap();
    let req = |mirror: &str, m: &FakeMirror, path: &str| CheckRequest {
        mirror: mirror.into(),
        base: m.url("/pub/"),
        path_encoded: path.into(),
        path: path.into(),
        info: info(1000),
    };
    let candidates = vec![
        req("hung", &hung, "a.iso"),
        req("fine", &fine, "a.iso"),
        req("fine", &fine, "nothing.iso"),
    ];
    let got = timeout(
        DEADLINE,
        c.check_many(candidates, Duration::from_millis(300), 3),
    )
    .await
    .expect("check_many keeps its deadline");
    assert_eq!(
        got,
        [
            (0, Presence::Unknown),
            (1, Presence::Present),
            (2, Presence::Missing)
        ]
    );
    // The hung check is still in flight: a second round joins it rather
    // than sending another request, and again keeps its deadline.
    timeout(DEADLINE, arrived.notified())
        .await
        .expect("the hung request arrived");
    let again = timeout(
        DEADLINE,
        c.check_many(
            vec![req("hung", &hung, "a.iso")],
            Duration::from_millis(50),
            1,
        ),
    )
    .await
    .expect("in time");
    assert_eq!(again, [(0, Presence::Unknown)]);
    assert_eq!(hung.requests(), 1);
}

// ---- scans ----

use mirrorgate::content::{http_scan, rsync_scan, to_fileset, IndexBuilder};

fn page(html: &'static str) -> Reply {
    body(html)
}

#[tokio::test]
async fn http_scan_walks_the_autoindex_under_the_base_only() {
    let m = FakeMirror::simple(|_, path| match path {
        "/pub/" => page(
            r#"<a href="../">../</a><a href="?C=N;O=D">sort</a>
<a href="releases/">releases/</a><a href="README.txt">README.txt</a>
<a href="/private/">private</a><a href="http://127.0.0.1:9/pub/x">x</a>"#,
        ),
        "/pub/releases/" => {
            page(r#"<a href="../">../</a><a href="1.0/">1.0/</a><a href="../releases/">loop</a>"#)
        }
        "/pub/releases/1.0/" => page(r#"<a href="demo%201.0.iso">demo 1.0.iso</a>"#),
        _ => status(StatusCode::NOT_FOUND),
    })
    .await;
    let client = reqwest::Client::new();
    let got = http_scan(&client, &m.url("/pub/"), 10, DEADLINE)
        .await
        .unwrap();
    assert!(got.complete);
    let mut files = got.files.clone();
    files.sort();
    assert_eq!(files, ["README.txt", "releases/1.0/demo 1.0.iso"]);
    assert_eq!(m.requests(), 3, "each directory once, nothing outside");

    let partial = http_scan(&client, &m.url("/pub/"), 2, DEADLINE)
        .await
        .unwrap();
    assert!(!partial.complete, "the page budget cut it short");
    assert_eq!(partial.files, ["README.txt"]);
}

#[tokio::test]
async fn http_scan_of_a_missing_index_is_an_error() {
    let m = FakeMirror::simple(|_, _| status(StatusCode::FORBIDDEN)).await;
    let err = http_scan(&reqwest::Client::new(), &m.url("/pub/"), 10, DEADLINE)
        .await
        .unwrap_err();
    assert_eq!(err.as_str(), "http");
}

/// Whether the `rsync` binary is here; under CI its absence is a failure.
fn have_rsync() -> bool {
    let found = std::process::Command::new("rsync")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "rsync is not installed (apt-get install rsync): CI must run the rsync scan test"
        );
        eprintln!("NOTE: rsync not installed; skipping the rsync scan test");
    }
    found
}

/// An rsync daemon serving `dir` as module `pub` on a loopback port; killed on drop.
struct RsyncDaemon {
    child: tokio::process::Child,
    port: u16,
}

impl RsyncDaemon {
    async fn start(dir: &std::path::Path, conf_dir: &std::path::Path) -> Self {
        let conf = conf_dir.join("rsyncd.conf");
        std::fs::write(
            &conf,
            format!(
                "use chroot = no\npid file = {}\n[pub]\npath = {}\nread only = yes\n",
                conf_dir.join("pid").display(),
                dir.display()
            ),
        )
        .unwrap();
        // The port of a socket just closed: free unless something takes it
        // in between, which the connect loop below would then report.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = tokio::process::Command::new("rsync")
            .args(["--daemon", "--no-detach", "--address=127.0.0.1"])
            .arg(format!("--port={port}"))
            .arg(format!("--config={}", conf.display()))
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        // Ready once it accepts a connection.
        timeout(DEADLINE, async {
            loop {
                if tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
                {
                    return;
                }
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("rsync daemon listening");
        RsyncDaemon { child, port }
    }
}

impl Drop for RsyncDaemon {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

#[tokio::test]
async fn rsync_scan_lists_a_real_module() {
    if !have_rsync() {
        return;
    }
    let tree = tempfile::tempdir().unwrap();
    let conf = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tree.path().join("releases/1.0")).unwrap();
    std::fs::write(tree.path().join("README.txt"), b"hello\n").unwrap();
    std::fs::write(
        tree.path().join("releases/1.0/demo 1.0.iso"),
        vec![0u8; 12_345],
    )
    .unwrap();
    let daemon = RsyncDaemon::start(tree.path(), conf.path()).await;
    let url = format!("rsync://127.0.0.1:{}/pub/", daemon.port);
    let mut got = rsync_scan(&url, DEADLINE).await.unwrap();
    got.sort();
    assert_eq!(
        got,
        [
            ("README.txt".to_string(), 6),
            ("releases/1.0/demo 1.0.iso".to_string(), 12_345)
        ]
    );
    let missing = format!("rsync://127.0.0.1:{}/nomodule/", daemon.port);
    let err = rsync_scan(&missing, DEADLINE).await.unwrap_err();
    assert_eq!(err.as_str(), "exit", "{err}");
}

#[test]
fn a_listing_marks_the_files_whose_size_matches() {
    let mut b = IndexBuilder::new();
    for (path, size) in [("a.iso", 10), ("b.iso", 20), ("c.iso", 30)] {
        b.push(path, info(size)).unwrap();
    }
    let index = b.build();
    let Some((a, _)) = index.lookup("a.iso") else {
        // The index in this tree is a stub whose lookup finds nothing.
        eprintln!("NOTE: ContentIndex::lookup finds nothing yet; skipping to_fileset matching");
        return;
    };
    let listing = [
        ("a.iso".to_string(), 10),
        ("b.iso".to_string(), 21),
        ("stranger.iso".to_string(), 5),
    ];
    let set = to_fileset(&index, &listing);
    assert_eq!(set.len(), 1);
    assert!(set.contains(a));
}

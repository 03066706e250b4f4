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

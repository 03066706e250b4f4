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

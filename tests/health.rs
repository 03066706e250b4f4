//! Health checking against fake mirrors on loopback, and the probe schedule
//! under tokio's paused clock.
//!
//! Socket tests run on the real clock and wait for results, never for time;
//! nothing leaves 127.0.0.1 (IP literals, or a resolver made for the test).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use mirrorgate::health::{
    probe, FailureReason, Probe, ProbeClient, ProbeReport, ProbeTarget, Prober, ProberSettings,
    TraceError,
};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};
use url::Url;

/// The longest a socket test waits for an event before failing.
const DEADLINE: Duration = Duration::from_secs(10);
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

type Reply = Response<Full<Bytes>>;

/// What a fake mirror saw: method, path and user-agent of each request.
type Seen = Arc<Mutex<Vec<(Method, String, String)>>>;

/// A small HTTP/1 server on `127.0.0.1:0` answering with `handler`.
struct FakeMirror {
    addr: SocketAddr,
    seen: Seen,
    task: JoinHandle<()>,
}

impl FakeMirror {
    async fn start(handler: impl Fn(&Method, &str) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Seen = Arc::default();
        let handler = Arc::new(handler);
        let log = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (handler, log) = (Arc::clone(&handler), Arc::clone(&log));
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let ua = req
                            .headers()
                            .get(http::header::USER_AGENT)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned();
                        let path = req.uri().path().to_owned();
                        log.lock()
                            .unwrap()
                            .push((req.method().clone(), path.clone(), ua));
                        let reply = handler(req.method(), &path);
                        async move { Ok::<_, Infallible>(reply) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        FakeMirror { addr, seen, task }
    }

    fn url(&self, path: &str) -> Url {
        Url::parse(&format!("http://{}{path}", self.addr)).unwrap()
    }

    /// A target probing `path` on a mirror whose base is `/pub/`.
    fn target(&self, path: &str) -> ProbeTarget {
        ProbeTarget {
            mirror: "fake".into(),
            url: self.url(path),
            base: self.url("/pub/"),
            trace_url: None,
        }
    }

    fn methods(&self) -> Vec<Method> {
        let seen = self.seen.lock().unwrap();
        seen.iter().map(|(m, _, _)| m.clone()).collect()
    }
}

impl Drop for FakeMirror {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn status(code: StatusCode) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from_static(b"body")));
    *r.status_mut() = code;
    r
}

fn redirect(to: &str) -> Reply {
    let mut r = status(StatusCode::FOUND);
    r.headers_mut()
        .insert(http::header::LOCATION, to.parse().unwrap());
    r
}

fn client() -> ProbeClient {
    ProbeClient::new(PROBE_TIMEOUT).unwrap()
}

async fn probe_once(client: &ProbeClient, target: &ProbeTarget) -> Result<Duration, FailureReason> {
    timeout(DEADLINE, probe(client, target))
        .await
        .expect("probe finished")
}

#[tokio::test]
async fn ok_reports_an_rtt_and_identifies_itself() {
    let m = FakeMirror::start(|_, _| status(StatusCode::OK)).await;
    let rtt = probe_once(&client(), &m.target("/pub/trace"))
        .await
        .unwrap();
    assert!(rtt > Duration::ZERO);
    let seen = m.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, Method::HEAD);
    assert_eq!(seen[0].1, "/pub/trace");
    assert_eq!(
        seen[0].2,
        concat!("mirrorgate/", env!("CARGO_PKG_VERSION"), " health-check")
    );
}

#[tokio::test]
async fn head_refused_falls_back_to_get() {
    for refused in [StatusCode::METHOD_NOT_ALLOWED, StatusCode::NOT_IMPLEMENTED] {
        let m = FakeMirror::start(move |method, _| match *method {
            Method::HEAD => status(refused),
            _ => status(StatusCode::OK),
        })
        .await;
        assert!(probe_once(&client(), &m.target("/pub/")).await.is_ok());
        assert_eq!(m.methods(), [Method::HEAD, Method::GET]);
    }
}

#[tokio::test]
async fn get_refused_too_is_that_status() {
    let m = FakeMirror::start(|_, _| status(StatusCode::METHOD_NOT_ALLOWED)).await;
    let result = probe_once(&client(), &m.target("/pub/")).await;
    assert_eq!(result, Err(FailureReason::HttpStatus(405)));
    assert_eq!(m.methods(), [Method::HEAD, Method::GET]);
}

#[tokio::test]
async fn server_error_is_http_status() {
    let m = FakeMirror::start(|_, _| status(StatusCode::INTERNAL_SERVER_ERROR)).await;
    let result = probe_once(&client(), &m.target("/pub/")).await;
    assert_eq!(result, Err(FailureReason::HttpStatus(500)));
    assert_eq!(result.unwrap_err().to_string(), "HTTP status 500");
}

#[tokio::test]
async fn closed_port_is_connect_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url = Url::parse(&format!("http://{addr}/pub/")).unwrap();
    let target = ProbeTarget {
        mirror: "gone".into(),
        url: url.clone(),
        base: url,
        trace_url: None,
    };
    let result = probe_once(&client(), &target).await;
    assert_eq!(result, Err(FailureReason::ConnectRefused));
}

#[tokio::test]
async fn silent_server_is_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts and holds every connection without a byte in reply.
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let url = Url::parse(&format!("http://{addr}/pub/")).unwrap();
    let target = ProbeTarget {
        mirror: "silent".into(),
        url: url.clone(),
        base: url,
        trace_url: None,
    };
    let short = ProbeClient::new(Duration::from_millis(200)).unwrap();
    let result = probe_once(&short, &target).await;
    assert_eq!(result, Err(FailureReason::Timeout));
    holder.abort();
}

#[tokio::test]
async fn redirect_within_the_base_is_followed() {
    let m = FakeMirror::start(|_, path| match path {
        "/pub/trace" => redirect("/pub/moved/trace"),
        "/pub/moved/trace" => status(StatusCode::OK),
        _ => status(StatusCode::NOT_FOUND),
    })
    .await;
    assert!(probe_once(&client(), &m.target("/pub/trace")).await.is_ok());
    let seen = m.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].1, "/pub/moved/trace");
}

#[tokio::test]
async fn redirect_to_another_port_is_off_site() {
    let other = FakeMirror::start(|_, _| status(StatusCode::OK)).await;
    let elsewhere = other.url("/pub/trace").to_string();
    let m = FakeMirror::start(move |_, _| redirect(&elsewhere)).await;
    let result = probe_once(&client(), &m.target("/pub/trace")).await;
    assert_eq!(result, Err(FailureReason::RedirectOffSite));
    assert!(other.methods().is_empty());
}

#[tokio::test]
async fn redirect_out_of_the_base_path_is_off_site() {
    let m = FakeMirror::start(|_, _| redirect("/private/trace")).await;
    let result = probe_once(&client(), &m.target("/pub/trace")).await;
    assert_eq!(result, Err(FailureReason::RedirectOffSite));
}

#[tokio::test]
async fn endless_redirects_stop_after_five() {
    let m = FakeMirror::start(|_, _| redirect("/pub/again")).await;
    let result = probe_once(&client(), &m.target("/pub/trace")).await;
    assert_eq!(result, Err(FailureReason::HttpStatus(302)));
    assert_eq!(m.methods().len(), 6);
}

#[tokio::test]
async fn https_to_a_plain_http_server_is_tls() {
    let m = FakeMirror::start(|_, _| status(StatusCode::OK)).await;
    let url = Url::parse(&format!("https://{}/pub/", m.addr)).unwrap();
    let target = ProbeTarget {
        mirror: "plain".into(),
        url: url.clone(),
        base: url,
        trace_url: None,
    };
    let result = probe_once(&client(), &target).await;
    assert_eq!(result, Err(FailureReason::Tls));
}

/// Knows one made-up name, `mirror.test`, at 127.0.0.1; fails every other.
struct TestResolver;

impl Resolve for TestResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let known = name.as_str() == "mirror.test";
        Box::pin(async move {
            if known {
                let addr = SocketAddr::from(([127, 0, 0, 1], 0));
                Ok(Box::new(std::iter::once(addr)) as Addrs)
            } else {
                Err("no such host".into())
            }
        })
    }
}

fn named_target(host: &str, port: u16) -> ProbeTarget {
    let url = Url::parse(&format!("http://{host}:{port}/pub/")).unwrap();
    ProbeTarget {
        mirror: "named".into(),
        url: url.clone(),
        base: url,
        trace_url: None,
    }
}

#[tokio::test]
async fn unresolvable_name_is_dns() {
    let c = ProbeClient::with_resolver(PROBE_TIMEOUT, Arc::new(TestResolver)).unwrap();
    let result = probe_once(&c, &named_target("nowhere.test", 9)).await;
    assert_eq!(result, Err(FailureReason::Dns));
}

#[tokio::test]
async fn custom_resolver_reaches_the_mirror() {
    let m = FakeMirror::start(|_, _| status(StatusCode::OK)).await;
    let c = ProbeClient::with_resolver(PROBE_TIMEOUT, Arc::new(TestResolver)).unwrap();
    let result = probe_once(&c, &named_target("mirror.test", m.addr.port())).await;
    assert!(result.is_ok(), "{result:?}");
}

async fn next_report(rx: &mut mpsc::UnboundedReceiver<ProbeReport>) -> ProbeReport {
    timeout(DEADLINE, rx.recv())
        .await
        .expect("a report in time")
        .expect("prober still running")
}

#[tokio::test]
async fn prober_reports_every_mirror_and_probes_on_demand() {
    let up = FakeMirror::start(|_, _| status(StatusCode::OK)).await;
    let broken = FakeMirror::start(|_, _| status(StatusCode::SERVICE_UNAVAILABLE)).await;
    let mut targets = vec![up.target("/pub/"), broken.target("/pub/")];
    targets[0].mirror = "up".into();
    targets[1].mirror = "broken".into();
    let settings = ProberSettings {
        // Far beyond the test: every report after the first round is on demand.
        interval: Duration::from_secs(3600),
        timeout: PROBE_TIMEOUT,
        jitter: 0.1,
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let prober = Prober::spawn(targets, settings, client(), tx);
    for _round in 0..2 {
        let mut got = [next_report(&mut rx).await, next_report(&mut rx).await];
        got.sort_by(|a, b| a.mirror.cmp(&b.mirror));
        assert_eq!(&*got[0].mirror, "broken");
        assert_eq!(got[0].result, Err(FailureReason::HttpStatus(503)));
        assert_eq!(&*got[1].mirror, "up");
        assert!(got[1].result.is_ok());
        prober.probe_all_now();
    }
    drop(prober);
    // Every task (and with it every sender) is gone.
    let end = timeout(DEADLINE, async { while rx.recv().await.is_some() {} }).await;
    assert!(end.is_ok());
}

/// A probe that records when it is called and answers at once.
struct Recorder {
    calls: mpsc::UnboundedSender<(Arc<str>, Instant)>,
}

impl Probe for Recorder {
    fn probe(
        &self,
        target: &ProbeTarget,
    ) -> impl Future<Output = Result<Duration, FailureReason>> + Send {
        let _ = self
            .calls
            .send((Arc::clone(&target.mirror), Instant::now()));
        async { Ok(Duration::from_millis(1)) }
    }

    async fn trace(&self, _: &ProbeTarget) -> Option<Result<SystemTime, TraceError>> {
        None
    }
}

fn paused_settings(jitter: f64) -> ProberSettings {
    ProberSettings {
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(3),
        jitter,
    }
}

fn fake_target(name: &str) -> ProbeTarget {
    let url = Url::parse("http://127.0.0.1:9/pub/").unwrap();
    ProbeTarget {
        mirror: name.into(),
        url: url.clone(),
        base: url,
        trace_url: None,
    }
}

/// Safety deadline for paused-clock tests: virtual time, far past any schedule.
const VIRTUAL_DEADLINE: Duration = Duration::from_secs(24 * 3600);

async fn next_call(rx: &mut mpsc::UnboundedReceiver<(Arc<str>, Instant)>) -> (Arc<str>, Instant) {
    timeout(VIRTUAL_DEADLINE, rx.recv())
        .await
        .expect("a probe in time")
        .expect("prober still running")
}

/// The gaps between the first `n + 1` probes of a single mirror.
async fn gaps(seed: u64, jitter: f64, n: usize) -> Vec<Duration> {
    let (calls, mut rx) = mpsc::unbounded_channel();
    let (tx, _reports) = mpsc::unbounded_channel();
    let _p = Prober::spawn_with(
        vec![fake_target("a")],
        paused_settings(jitter),
        Recorder { calls },
        tx,
        seed,
    );
    let mut last = next_call(&mut rx).await.1;
    let mut out = Vec::new();
    for _ in 0..n {
        let at = next_call(&mut rx).await.1;
        out.push(at - last);
        last = at;
    }
    out
}

#[tokio::test(start_paused = true)]
async fn first_probe_is_immediate_for_every_mirror() {
    let start = Instant::now();
    let (calls, mut rx) = mpsc::unbounded_channel();
    let (tx, _reports) = mpsc::unbounded_channel();
    let _p = Prober::spawn_with(
        vec![fake_target("a"), fake_target("b")],
        paused_settings(0.2),
        Recorder { calls },
        tx,
        7,
    );
    let mut names = Vec::new();
    for _ in 0..2 {
        let (name, at) = next_call(&mut rx).await;
        assert_eq!(at, start);
        names.push(name.to_string());
    }
    names.sort();
    assert_eq!(names, ["a", "b"]);
}

#[tokio::test(start_paused = true)]
async fn waits_stay_within_the_jitter_band_and_vary() {
    let got = gaps(42, 0.2, 30).await;
    for gap in &got {
        assert!(
            (Duration::from_secs(8)..=Duration::from_secs(12)).contains(gap),
            "{gap:?}"
        );
    }
    assert!(got.iter().any(|g| *g != got[0]), "jitter applied");
    // The same seed gives the same schedule.
    assert_eq!(gaps(42, 0.2, 30).await, got);
}

#[tokio::test(start_paused = true)]
async fn no_jitter_means_the_exact_interval() {
    for gap in gaps(1, 0.0, 5).await {
        assert_eq!(gap, Duration::from_secs(10));
    }
}

#[tokio::test(start_paused = true)]
async fn probe_all_now_probes_at_once_then_resumes_the_schedule() {
    let (calls, mut rx) = mpsc::unbounded_channel();
    let (tx, mut reports) = mpsc::unbounded_channel();
    let p = Prober::spawn_with(
        vec![fake_target("a")],
        paused_settings(0.0),
        Recorder { calls },
        tx,
        3,
    );
    next_call(&mut rx).await;
    reports.recv().await.unwrap();
    // Let the task reach its wait, then move part-way into it.
    tokio::time::advance(Duration::from_secs(4)).await;
    let asked = Instant::now();
    p.probe_all_now();
    let (_, at) = next_call(&mut rx).await;
    assert_eq!(at, asked);
    let (_, next) = next_call(&mut rx).await;
    assert_eq!(next - at, Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn dropping_the_prober_stops_probing() {
    let (calls, mut rx) = mpsc::unbounded_channel();
    let (tx, _reports) = mpsc::unbounded_channel();
    let p = Prober::spawn_with(
        vec![fake_target("a"), fake_target("b")],
        paused_settings(0.2),
        Recorder { calls },
        tx,
        5,
    );
    next_call(&mut rx).await;
    next_call(&mut rx).await;
    drop(p);
    // The tasks, and the probe with its sender, are dropped: no call comes again.
    let rest = timeout(VIRTUAL_DEADLINE, rx.recv()).await;
    assert!(matches!(rest, Ok(None)), "{rest:?}");
}

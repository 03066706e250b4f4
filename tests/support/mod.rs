//! Shared test support: `TestApp` (the real server on 127.0.0.1:0) and
//! `FakeMirror` (a small hyper server on 127.0.0.1:0). Tests wait for events
//! (snapshot generations, readiness), never for time.
#![allow(dead_code)]

pub mod html;
pub mod misbehaving;
pub mod process;
pub mod slow;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use mirrorgate::app::{App, StartOptions};
use mirrorgate::config::Config;
use mirrorgate::health::HealthState;
use mirrorgate::state::Snapshot;

/// How long any awaited event may take before the test fails (a safety net, not a sleep).
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Client addresses of the committed demo GeoIP database (`geoip/demo-networks.csv`).
pub const DE: &str = "192.0.2.1";
pub const FR: &str = "192.0.2.17";
pub const US: &str = "192.0.2.65";
pub const BR: &str = "192.0.2.97";
pub const JP: &str = "192.0.2.113";
pub const AU: &str = "192.0.2.161";
pub const ZA: &str = "192.0.2.177";
/// In the documentation range but without a record.
pub const NO_RECORD: &str = "192.0.2.250";

pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Runs `fut` with the deadline; panics with `what` when it passes.
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(DEADLINE, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// A fake mirror: answers 200 (or the status set) to everything, counts requests.
pub struct FakeMirror {
    pub addr: SocketAddr,
    status: Arc<AtomicU16>,
    hits: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl FakeMirror {
    pub async fn start() -> FakeMirror {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake mirror");
        let addr = listener.local_addr().unwrap();
        let status = Arc::new(AtomicU16::new(200));
        let hits = Arc::new(AtomicUsize::new(0));
        let (s, h) = (status.clone(), hits.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (s, h) = (s.clone(), h.clone());
                let svc = service_fn(move |_req: Request<hyper::body::Incoming>| {
                    h.fetch_add(1, Ordering::SeqCst);
                    let code = StatusCode::from_u16(s.load(Ordering::SeqCst)).unwrap();
                    let mut r = Response::new(Full::new(Bytes::from_static(b"fake mirror\n")));
                    *r.status_mut() = code;
                    std::future::ready(Ok::<_, Infallible>(r))
                });
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), svc));
            }
        });
        FakeMirror {
            addr,
            status,
            hits,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/pub/", self.addr)
    }

    /// Every later request gets this status (503 makes probes fail).
    pub fn set_status(&self, code: u16) {
        self.status.store(code, Ordering::SeqCst);
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for FakeMirror {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One mirror line of a test config.
pub struct M<'a> {
    pub name: &'a str,
    pub url: String,
    pub cc: &'a str,
    pub lat: f64,
    pub lon: f64,
    pub extra: &'a str,
}

impl M<'_> {
    /// The Frankfurt mirror most tests use: `de-fra`, in DE, nothing extra.
    pub fn de_fra(url: String) -> Self {
        M {
            name: "de-fra",
            url,
            cc: "DE",
            lat: 50.11,
            lon: 8.68,
            extra: "",
        }
    }
}

/// One fake mirror started for each site (name, country, latitude,
/// longitude), and the config entries that place them there; `extra` gives
/// each entry's extra lines by mirror name.
pub async fn mirrors_at(
    sites: &[(&'static str, &'static str, f64, f64)],
    extra: impl Fn(&str) -> &'static str,
) -> (Vec<FakeMirror>, Vec<M<'static>>) {
    let mut mirrors = Vec::new();
    for _ in sites {
        mirrors.push(FakeMirror::start().await);
    }
    let entries = sites
        .iter()
        .zip(&mirrors)
        .map(|(&(name, cc, lat, lon), f)| M {
            name,
            url: f.url(),
            cc,
            lat,
            lon,
            extra: extra(name),
        })
        .collect();
    (mirrors, entries)
}

/// A config in YAML for mirrors at these places; `extra_top` is added at top level.
pub fn config_yaml(mirrors: &[M<'_>], extra_top: &str) -> String {
    let mut y = format!(
        "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\n\
         geoip:\n  city: {}\n  asn: {}\n\
         {extra_top}\nmirrors:\n",
        repo_path("geoip/demo-city.mmdb").display(),
        repo_path("geoip/demo-asn.mmdb").display(),
    );
    for m in mirrors {
        y.push_str(&format!(
            "  - name: {}\n    url: {}\n    country: {}\n    latitude: {}\n    longitude: {}\n",
            m.name, m.url, m.cc, m.lat, m.lon
        ));
        for line in m.extra.lines().filter(|l| !l.trim().is_empty()) {
            y.push_str(&format!("    {}\n", line.trim()));
        }
    }
    y
}

/// Default top-level settings for tests: loopback trusted, probes only when asked.
pub const TRUSTED_MANUAL_PROBES: &str = "trusted_proxies: [127.0.0.0/8]\nhealth:\n  interval: 1h\n  timeout: 2s\n  rise: 2\n  fall: 2\nadmin:\n  token: test-token-0123456789";

/// The real app on loopback, and a client that does not follow redirects.
pub struct TestApp {
    pub app: App,
    pub http: reqwest::Client,
}

impl TestApp {
    pub async fn start(yaml: &str) -> TestApp {
        let config = Config::from_yaml(yaml, Path::new("."))
            .unwrap_or_else(|e| panic!("test config: {e}\n{yaml}"));
        let app = App::start(config, StartOptions::default())
            .await
            .expect("app starts");
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .unwrap();
        let t = TestApp { app, http };
        t.wait_for("readiness", |s| s.ready).await;
        t
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.app.public_addr(), path)
    }

    pub fn admin(&self, path: &str) -> String {
        format!("http://{}{}", self.app.admin_addr(), path)
    }

    /// Waits until the published snapshot satisfies `cond`.
    pub async fn wait_for(&self, what: &str, cond: impl Fn(&Snapshot) -> bool) -> Arc<Snapshot> {
        let state = self.app.state().clone();
        let mut rx = state.watch();
        within(what, async move {
            loop {
                let snap = state.load_full();
                if cond(&snap) {
                    return snap;
                }
                rx.changed().await.expect("state owner alive");
            }
        })
        .await
    }

    pub async fn wait_state(&self, mirror: &str, want: HealthState) {
        self.wait_for(&format!("{mirror} to be {want:?}"), |s| {
            s.mirror(mirror).is_some_and(|e| e.health.state == want)
        })
        .await;
    }

    /// Triggers one probe of every mirror and waits until `mirror` reports.
    pub async fn probe_round(&self, mirror: &str) {
        let before = self
            .app
            .state()
            .load()
            .mirror(mirror)
            .and_then(|e| e.health.last_check);
        self.app.state().probe_now();
        self.wait_for(&format!("a probe of {mirror}"), |s| {
            s.mirror(mirror)
                .is_some_and(|e| e.health.last_check != before)
        })
        .await;
    }

    /// GET `path` as a client at `ip` (through X-Forwarded-For); returns status and Location.
    pub async fn get_from(&self, ip: &str, path: &str) -> (u16, Option<String>) {
        let r = self
            .http
            .get(self.url(path))
            .header("x-forwarded-for", ip)
            .send()
            .await
            .expect("request");
        let loc = r
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string());
        (r.status().as_u16(), loc)
    }
}

/// Sends raw bytes as a request (paths a URL library would normalise) and returns the status.
pub async fn raw_status(addr: SocketAddr, request: &str) -> u16 {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = s.read(&mut chunk).await.unwrap();
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let head = String::from_utf8_lossy(&buf);
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Polls `check` every 20 ms until it holds (for events only visible from
/// outside a process, like a metric of the real binary), within the deadline.
pub async fn poll_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    within(what, async {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        loop {
            tick.tick().await;
            if check().await {
                return;
            }
        }
    })
    .await
}

/// A fake mirror with a file tree under `/pub/`: GET and HEAD answer with the
/// file (and its `Content-Length`), or the one range asked for (206), 404
/// otherwise. Files can change at any time.
pub struct TreeMirror {
    pub addr: SocketAddr,
    files: Arc<std::sync::Mutex<std::collections::HashMap<String, Bytes>>>,
    hits: Arc<std::sync::Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl TreeMirror {
    pub async fn start() -> TreeMirror {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind tree mirror");
        let addr = listener.local_addr().unwrap();
        let files: Arc<std::sync::Mutex<std::collections::HashMap<String, Bytes>>> = Arc::default();
        let hits: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
        let (f, h) = (files.clone(), hits.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (f, h) = (f.clone(), h.clone());
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let path = req.uri().path().to_string();
                    h.lock().unwrap().push(path.clone());
                    let rel = path.strip_prefix("/pub/").unwrap_or("");
                    let body = if rel.is_empty() {
                        Some(Bytes::from_static(b"index\n"))
                    } else {
                        f.lock().unwrap().get(rel).cloned()
                    };
                    let range = req
                        .headers()
                        .get("range")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.strip_prefix("bytes="))
                        .and_then(|v| v.split_once('-'))
                        .map(|(a, b)| (a.parse::<usize>().ok(), b.parse::<usize>().ok()));
                    let r = match body {
                        // One range, as download managers ask: 206 with its slice.
                        Some(b) if matches!(range, Some((Some(a), _)) if a < b.len()) => {
                            let Some((Some(a), end)) = range else {
                                unreachable!()
                            };
                            let end = end.map_or(b.len() - 1, |e| e.min(b.len() - 1));
                            let mut r = Response::new(Full::new(b.slice(a..=end)));
                            *r.status_mut() = StatusCode::PARTIAL_CONTENT;
                            r.headers_mut().insert(
                                "content-range",
                                format!("bytes {a}-{end}/{}", b.len()).parse().unwrap(),
                            );
                            r
                        }
                        Some(b) => Response::new(Full::new(b)),
                        None => {
                            let mut r =
                                Response::new(Full::new(Bytes::from_static(b"not found\n")));
                            *r.status_mut() = StatusCode::NOT_FOUND;
                            r
                        }
                    };
                    std::future::ready(Ok::<_, Infallible>(r))
                });
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), svc));
            }
        });
        TreeMirror {
            addr,
            files,
            hits,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/pub/", self.addr)
    }

    pub fn put(&self, path: &str, body: impl Into<Bytes>) {
        self.files
            .lock()
            .unwrap()
            .insert(path.to_string(), body.into());
    }

    /// How many requests asked for this path (under `/pub/`).
    pub fn hits_of(&self, path: &str) -> usize {
        let want = format!("/pub/{path}");
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|p| **p == want)
            .count()
    }
}

impl Drop for TreeMirror {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestApp {
    /// GET on the admin listener, parsed as JSON.
    pub async fn admin_json(&self, path: &str) -> serde_json::Value {
        let text = self
            .http
            .get(self.admin(path))
            .send()
            .await
            .expect("admin request")
            .text()
            .await
            .expect("admin body");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}"))
    }

    /// GET of any URL (public or admin listener); the body as text.
    pub async fn get_text(&self, url: String) -> String {
        let r = self.http.get(&url).send().await.expect("request");
        r.text().await.expect("body")
    }

    /// GET on the admin listener; the status.
    pub async fn admin_status(&self, path: &str) -> u16 {
        self.http
            .get(self.admin(path))
            .send()
            .await
            .expect("admin request")
            .status()
            .as_u16()
    }
}

/// True when `tool` runs here. Missing: under CI (`CI` set) the test fails,
/// naming the Debian package; elsewhere it says so and the caller skips.
pub fn have_tool(tool: &str, package: &str) -> bool {
    let found = std::process::Command::new(tool)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is missing and CI is set: .ci/run must install Debian's {package}"
        );
        eprintln!(
            "NOTE: {tool} is not installed (apt-get install {package}): this check is NOT run"
        );
    }
    found
}

/// Headless Chromium's DOM of `url` after load, as a person's browser would build it.
pub fn chromium_dom(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=2000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Length of the repeating pattern of [`BigMirror`]'s file: a prime, so that
/// a byte misplaced by any power-of-two amount shows.
pub const PERIOD: usize = 65_521;

/// Two periods of the pattern, so any window up to `PERIOD` is one slice.
pub fn pattern() -> &'static Bytes {
    static P: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
    P.get_or_init(|| {
        (0..2 * PERIOD)
            .map(|j| ((j % PERIOD) * 7 + (j % PERIOD) / 256) as u8)
            .collect::<Vec<u8>>()
            .into()
    })
}

/// The file's bytes from `offset`, `len` of them (for small expectations).
pub fn expected(offset: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut pos = offset;
    while out.len() < len {
        let at = (pos % PERIOD as u64) as usize;
        let n = (len - out.len()).min(PERIOD);
        out.extend_from_slice(&pattern()[at..at + n]);
        pos += n as u64;
    }
    out
}

/// True when `got` is the file's bytes from `offset` on.
pub fn matches_file(offset: u64, got: &[u8]) -> bool {
    let mut pos = offset;
    for chunk in got.chunks(PERIOD) {
        let at = (pos % PERIOD as u64) as usize;
        if chunk != &pattern()[at..at + chunk.len()] {
            return false;
        }
        pos += chunk.len() as u64;
    }
    true
}

/// Shared, switchable behaviour of a [`BigMirror`].
pub struct BigState {
    pub len: u64,
    /// Non-zero: every request gets this status.
    status: AtomicU16,
    /// Set: requests are never answered.
    hang: std::sync::atomic::AtomicBool,
    /// The next body of the file breaks after this many bytes.
    die_once_after: std::sync::Mutex<Option<u64>>,
    /// The next body of the file stops (without breaking) after this many bytes.
    stall_once_after: std::sync::Mutex<Option<u64>>,
    etag: std::sync::Mutex<String>,
    last_modified: std::sync::Mutex<String>,
    /// Body bytes handed to the connection so far.
    produced: Arc<std::sync::atomic::AtomicU64>,
    /// (path, Range header) of every request.
    hits: std::sync::Mutex<Vec<(String, Option<String>)>>,
    /// Headers of the last request for the file.
    last_headers: std::sync::Mutex<Option<hyper::HeaderMap>>,
}

/// A fake mirror with one large generated file, `/pub/big.bin` (the bytes of
/// [`pattern`], generated as they are sent, never held whole), answering
/// `HEAD`, single and multiple `Range`s, `If-Range`, `If-None-Match` and
/// `If-Modified-Since`. `/pub/moved.bin` redirects to it; `/pub/` answers
/// probes. It can fail on demand: a status for everything, hanging before
/// the first byte, breaking a body after N bytes, refusing connections.
pub struct BigMirror {
    pub addr: SocketAddr,
    pub state: Arc<BigState>,
    task: JoinHandle<()>,
    conns: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>,
}

type TestBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

impl BigMirror {
    pub async fn start(len: u64) -> BigMirror {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind big mirror");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(BigState {
            len,
            status: AtomicU16::new(0),
            hang: Default::default(),
            die_once_after: Default::default(),
            stall_once_after: Default::default(),
            etag: std::sync::Mutex::new("\"big-v1\"".into()),
            last_modified: std::sync::Mutex::new("Tue, 14 Nov 2023 22:13:20 GMT".into()),
            produced: Default::default(),
            hits: Default::default(),
            last_headers: Default::default(),
        });
        let conns: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (st, cs) = (state.clone(), conns.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let st = st.clone();
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let st = st.clone();
                    async move { Ok::<_, Infallible>(big_answer(&st, req).await) }
                });
                let conn = tokio::spawn(async move {
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
                cs.lock().unwrap().push(conn);
            }
        });
        BigMirror {
            addr,
            state,
            task,
            conns,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/pub/", self.addr)
    }

    /// Every later request gets `code` (0: normal answers again).
    pub fn set_status(&self, code: u16) {
        self.state.status.store(code, Ordering::SeqCst);
    }

    /// Later requests are never answered (or are again).
    pub fn set_hang(&self, hang: bool) {
        self.state.hang.store(hang, Ordering::SeqCst);
    }

    /// The next body of the file breaks after `n` bytes.
    pub fn die_once_after(&self, n: u64) {
        *self.state.die_once_after.lock().unwrap() = Some(n);
    }

    /// The next body of the file stops after `n` bytes, its connection left open.
    pub fn stall_once_after(&self, n: u64) {
        *self.state.stall_once_after.lock().unwrap() = Some(n);
    }

    /// Another copy of the file, as far as validators say.
    pub fn set_validators(&self, etag: &str, last_modified: &str) {
        *self.state.etag.lock().unwrap() = etag.into();
        *self.state.last_modified.lock().unwrap() = last_modified.into();
    }

    /// Stops listening and closes every connection: connections are refused from now on.
    pub fn refuse(&self) {
        self.task.abort();
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    pub fn produced(&self) -> u64 {
        self.state.produced.load(Ordering::SeqCst)
    }

    /// Waits until every connection accepted so far has been closed (those
    /// are then no longer counted by [`BigMirror::connections`]).
    pub async fn all_closed(&self) {
        let conns: Vec<_> = self.conns.lock().unwrap().drain(..).collect();
        within("every connection to the mirror closed", async {
            for c in conns {
                let _ = c.await;
            }
        })
        .await;
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.conns.lock().unwrap().len()
    }

    /// Requests for the file (path under `/pub/`), with their Range headers.
    pub fn file_hits(&self) -> Vec<Option<String>> {
        self.state
            .hits
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p.ends_with(".bin"))
            .map(|(_, r)| r.clone())
            .collect()
    }

    pub fn last_headers(&self) -> Option<hyper::HeaderMap> {
        self.state.last_headers.lock().unwrap().clone()
    }
}

impl Drop for BigMirror {
    fn drop(&mut self) {
        self.refuse();
    }
}

fn full(status: u16, body: impl Into<Bytes>) -> Response<TestBody> {
    use http_body_util::BodyExt;
    let mut r = Response::new(Full::new(body.into()).map_err(|e| match e {}).boxed());
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    r
}

async fn big_answer(st: &BigState, req: Request<hyper::body::Incoming>) -> Response<TestBody> {
    let path = req.uri().path().to_string();
    let h = req.headers();
    let range = h
        .get("range")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    st.hits.lock().unwrap().push((path.clone(), range.clone()));
    if st.hang.load(Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
    let code = st.status.load(Ordering::SeqCst);
    if code != 0 {
        return full(code, "failing on purpose\n");
    }
    match path.as_str() {
        "/pub/" => return full(200, "index\n"),
        "/pub/moved.bin" => {
            let mut r = full(302, "");
            r.headers_mut()
                .insert("location", "big.bin".parse().unwrap());
            return r;
        }
        "/pub/big.bin" => {}
        _ => return full(404, "not found\n"),
    }
    *st.last_headers.lock().unwrap() = Some(h.clone());
    let etag = st.etag.lock().unwrap().clone();
    let lm = st.last_modified.lock().unwrap().clone();
    let validators = |r: &mut Response<TestBody>| {
        let h = r.headers_mut();
        h.insert("etag", etag.parse().unwrap());
        h.insert("last-modified", lm.parse().unwrap());
        h.insert("accept-ranges", "bytes".parse().unwrap());
        h.insert("connection", "keep-alive".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("set-cookie", "mirror=1".parse().unwrap());
    };
    let header = |n: &str| h.get(n).and_then(|v| v.to_str().ok());
    if header("if-none-match") == Some(etag.as_str())
        || header("if-modified-since") == Some(lm.as_str())
    {
        let mut r = full(304, "");
        validators(&mut r);
        return r;
    }
    let if_range_ok = header("if-range").is_none_or(|v| v == etag || v == lm);
    let ranges = match range.as_deref().filter(|_| if_range_ok) {
        None => None,
        Some(spec) => match parse_ranges(spec, st.len) {
            Some(r) => Some(r),
            None => {
                let mut r = full(416, "");
                r.headers_mut().insert(
                    "content-range",
                    format!("bytes */{}", st.len).parse().unwrap(),
                );
                return r;
            }
        },
    };
    let head = req.method() == hyper::Method::HEAD;
    let mut resp = match ranges.as_deref() {
        Some([(a, b)]) => {
            let mut r = stream(st, *a, *b + 1, head);
            *r.status_mut() = StatusCode::PARTIAL_CONTENT;
            r.headers_mut().insert(
                "content-range",
                format!("bytes {a}-{b}/{}", st.len).parse().unwrap(),
            );
            r
        }
        Some(many) => {
            let mut body = Vec::new();
            for (a, b) in many {
                body.extend_from_slice(
                    format!(
                        "\r\n--BOUNDARY\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes {a}-{b}/{}\r\n\r\n",
                        st.len
                    )
                    .as_bytes(),
                );
                body.extend_from_slice(&expected(*a, (*b - *a + 1) as usize));
            }
            body.extend_from_slice(b"\r\n--BOUNDARY--\r\n");
            let mut r = full(206, if head { Vec::new() } else { body });
            r.headers_mut().insert(
                "content-type",
                "multipart/byteranges; boundary=BOUNDARY".parse().unwrap(),
            );
            r
        }
        None => stream(st, 0, st.len, head),
    };
    validators(&mut resp);
    resp
}

/// `bytes=a-b,c-,-n` within `len`; None when nothing is satisfiable.
fn parse_ranges(spec: &str, len: u64) -> Option<Vec<(u64, u64)>> {
    let spec = spec.strip_prefix("bytes=")?;
    let mut out = Vec::new();
    for part in spec.split(',') {
        let (a, b) = part.trim().split_once('-')?;
        let (a, b) = if a.is_empty() {
            let n: u64 = b.parse().ok()?;
            (len.saturating_sub(n), len - 1)
        } else {
            let a: u64 = a.parse().ok()?;
            let b = if b.is_empty() {
                len - 1
            } else {
                b.parse::<u64>().ok()?.min(len - 1)
            };
            (a, b)
        };
        if a <= b && a < len {
            out.push((a, b));
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The file's bytes `from..to`, generated as the connection asks for them.
fn stream(st: &BigState, from: u64, to: u64, head: bool) -> Response<TestBody> {
    use http_body_util::BodyExt;
    let once = |m: &std::sync::Mutex<Option<u64>>| {
        if head {
            None
        } else {
            m.lock().unwrap().take().map(|n| from + n)
        }
    };
    let body = PatternStream {
        pos: from,
        end: if head { from } else { to },
        die_at: once(&st.die_once_after),
        stall_at: once(&st.stall_once_after),
        produced: st.produced.clone(),
    };
    let mut r = Response::new(body.boxed());
    r.headers_mut()
        .insert("content-length", (to - from).to_string().parse().unwrap());
    r
}

/// A body of the pattern's bytes, 32 KiB a frame, that may break on purpose.
struct PatternStream {
    pos: u64,
    end: u64,
    die_at: Option<u64>,
    stall_at: Option<u64>,
    produced: Arc<std::sync::atomic::AtomicU64>,
}

impl hyper::body::Body for PatternStream {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        use std::task::Poll;
        if self.pos >= self.end {
            return Poll::Ready(None);
        }
        if self.die_at.is_some_and(|d| self.pos >= d) {
            return Poll::Ready(Some(Err(std::io::Error::other("dying on purpose"))));
        }
        if self.stall_at.is_some_and(|d| self.pos >= d) {
            // Never woken: the body just stops, as a mirror that hangs.
            return Poll::Pending;
        }
        let limit = self
            .die_at
            .unwrap_or(u64::MAX)
            .min(self.stall_at.unwrap_or(u64::MAX))
            .min(self.end);
        let n = (limit - self.pos).min(32 * 1024) as usize;
        let at = (self.pos % PERIOD as u64) as usize;
        let chunk = pattern().slice(at..at + n);
        self.pos += n as u64;
        self.produced.fetch_add(n as u64, Ordering::SeqCst);
        Poll::Ready(Some(Ok(hyper::body::Frame::data(chunk))))
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.end - self.pos)
    }
}

/// One TCP connection to a listener, for requests written byte for byte and
/// responses read as they arrive on the wire (parsed with `httparse`, hyper's
/// own parser). Every read is under the [`DEADLINE`].
pub struct RawConn {
    stream: TcpStream,
    /// Bytes read and not yet taken as part of a response.
    buf: Vec<u8>,
}

/// One response, as received.
pub struct RawResponse {
    /// Every byte of it, head and body.
    pub bytes: Vec<u8>,
    /// `1` for `HTTP/1.1`, `0` for `HTTP/1.0`.
    pub version: u8,
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    /// Where the body starts in `bytes`.
    pub head_len: usize,
    /// The body of a chunked answer, its chunks joined.
    pub dechunked: Option<Vec<u8>>,
}

impl RawResponse {
    /// The value of the first header named `name`, as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.all(name).into_iter().next()
    }

    /// The values of every header named `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| std::str::from_utf8(v).expect("header value is text"))
            .collect()
    }

    /// The body; for a chunked answer, its chunks joined.
    pub fn body(&self) -> &[u8] {
        match &self.dechunked {
            Some(b) => b,
            None => &self.bytes[self.head_len..],
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

impl RawConn {
    pub async fn connect(addr: SocketAddr) -> RawConn {
        let stream = within("a connection", TcpStream::connect(addr))
            .await
            .expect("connect");
        RawConn {
            stream,
            buf: Vec::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write request");
    }

    /// Writes `bytes` as far as the server takes them: a server that
    /// answers and closes before reading them all is no error here.
    pub async fn send_until_closed(&mut self, bytes: &[u8]) {
        let _ = within(
            "the server to take or refuse bytes",
            self.stream.write_all(bytes),
        )
        .await;
    }

    /// Reads more bytes into the buffer; 0 at the end of the stream.
    async fn fill(&mut self) -> usize {
        self.try_fill().await.expect("read")
    }

    async fn try_fill(&mut self) -> std::io::Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        let n = within("bytes from the server", self.stream.read(&mut chunk)).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Reads the next response: the head up to the blank line, then the body
    /// its `Content-Length` says (none for the answer to `HEAD`, or for 1xx,
    /// 204 and 304), its chunks up to the last one when chunked, or up to
    /// the end of the stream when it says nothing.
    pub async fn response(&mut self, to_head: bool) -> RawResponse {
        let (head_len, version, status, headers) = loop {
            let mut slots = [httparse::EMPTY_HEADER; 128];
            let mut r = httparse::Response::new(&mut slots);
            match r.parse(&self.buf).expect("a response head that parses") {
                httparse::Status::Complete(n) => {
                    let headers = r
                        .headers
                        .iter()
                        .map(|h| (h.name.to_string(), h.value.to_vec()))
                        .collect::<Vec<_>>();
                    break (n, r.version.unwrap(), r.code.unwrap(), headers);
                }
                httparse::Status::Partial => {
                    if self.fill().await == 0 {
                        panic!(
                            "the stream ended inside a response head: {:?}",
                            String::from_utf8_lossy(&self.buf)
                        );
                    }
                }
            }
        };
        let named = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| std::str::from_utf8(v).unwrap().to_string())
        };
        let bodiless = to_head || status < 200 || status == 204 || status == 304;
        let chunked = named("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked"));
        let mut dechunked = None;
        let end = match named("content-length") {
            _ if bodiless => head_len,
            None if chunked => {
                let mut body = Vec::new();
                let mut at = head_len;
                loop {
                    // The size line.
                    let line_end = loop {
                        if let Some(i) = self.buf[at..].windows(2).position(|w| w == b"\r\n") {
                            break at + i;
                        }
                        assert!(
                            self.fill().await > 0,
                            "the stream ended inside a chunk size"
                        );
                    };
                    let size = usize::from_str_radix(
                        std::str::from_utf8(&self.buf[at..line_end]).expect("a chunk size"),
                        16,
                    )
                    .expect("a hexadecimal chunk size");
                    at = line_end + 2;
                    while self.buf.len() < at + size + 2 {
                        assert!(self.fill().await > 0, "the stream ended inside a chunk");
                    }
                    body.extend_from_slice(&self.buf[at..at + size]);
                    assert_eq!(
                        &self.buf[at + size..at + size + 2],
                        b"\r\n",
                        "a chunk's end"
                    );
                    at += size + 2;
                    if size == 0 {
                        break;
                    }
                }
                dechunked = Some(body);
                at
            }
            Some(n) => head_len + n.parse::<usize>().expect("a numeric content-length"),
            None => {
                while self.fill().await > 0 {}
                self.buf.len()
            }
        };
        while self.buf.len() < end {
            if self.fill().await == 0 {
                panic!("the stream ended inside a response body");
            }
        }
        let bytes: Vec<u8> = self.buf.drain(..end).collect();
        RawResponse {
            bytes,
            version,
            status,
            headers,
            head_len,
            dechunked,
        }
    }

    /// Waits for the server to close the connection; fails on any byte
    /// that comes first (an answer nobody asked for).
    pub async fn eof(&mut self) {
        while self.fill().await > 0 {}
        assert!(
            self.buf.is_empty(),
            "bytes before the end of the stream: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
    }

    /// As [`RawConn::eof`], but a reset ends the stream too: the kernel
    /// resets a connection its server closed with bytes left unread.
    pub async fn closed(&mut self) {
        loop {
            match self.try_fill().await {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!("read: {e}"),
            }
        }
        assert!(
            self.buf.is_empty(),
            "bytes before the end of the stream: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
    }
}

//! Shared test support: `TestApp` (the real server on 127.0.0.1:0) and
//! `FakeMirror` (a small hyper server on 127.0.0.1:0). Tests wait for events
//! (snapshot generations, readiness), never for time.
#![allow(dead_code)]

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
/// file (and its `Content-Length`), 404 otherwise. Files can change at any time.
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
                    let r = match body {
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

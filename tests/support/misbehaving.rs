//! Fake mirrors whose probe path (`/pub/`) answers while their files do not:
//! [`RedirectMirror`] redirects every other request to a `Location` the test
//! sets, possibly once the app is running (to point at its admin listener,
//! say); [`HangingMirror`] never answers one.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub struct RedirectMirror {
    pub addr: SocketAddr,
    location: Arc<Mutex<String>>,
    task: JoinHandle<()>,
}

impl RedirectMirror {
    pub async fn start(location: &str) -> RedirectMirror {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind redirecting mirror");
        let addr = listener.local_addr().unwrap();
        let location = Arc::new(Mutex::new(location.to_string()));
        let loc = location.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let loc = loc.clone();
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let mut r = Response::new(Full::new(Bytes::from_static(b"moved\n")));
                    if req.uri().path() != "/pub/" {
                        *r.status_mut() = StatusCode::FOUND;
                        let to = loc.lock().unwrap().clone();
                        r.headers_mut().insert("location", to.parse().unwrap());
                    }
                    std::future::ready(Ok::<_, Infallible>(r))
                });
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), svc));
            }
        });
        RedirectMirror {
            addr,
            location,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/pub/", self.addr)
    }

    /// Where later requests are redirected.
    pub fn redirect_to(&self, location: &str) {
        *self.location.lock().unwrap() = location.to_string();
    }
}

impl Drop for RedirectMirror {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Answers probes (`/pub/`) at once and never answers anything else.
pub struct HangingMirror {
    pub addr: SocketAddr,
    file_hits: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl HangingMirror {
    pub async fn start() -> HangingMirror {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind hanging mirror");
        let addr = listener.local_addr().unwrap();
        let file_hits = Arc::new(AtomicUsize::new(0));
        let hits = file_hits.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let hits = hits.clone();
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let hits = hits.clone();
                    async move {
                        if req.uri().path() != "/pub/" {
                            hits.fetch_add(1, Ordering::SeqCst);
                            std::future::pending::<()>().await;
                        }
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok\n"))))
                    }
                });
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), svc));
            }
        });
        HangingMirror {
            addr,
            file_hits,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/pub/", self.addr)
    }

    /// Requests for anything but the probe path so far.
    pub fn file_hits(&self) -> usize {
        self.file_hits.load(Ordering::SeqCst)
    }
}

impl Drop for HangingMirror {
    fn drop(&mut self) {
        self.task.abort();
    }
}

//! A small mirror for the demo: serves an in-memory file tree over HTTP on a
//! loopback port, and can be switched off and on (`POST /_demo/down`, `/_demo/up`)
//! so that a person can watch traffic move away from it and back.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

/// Files by path (no leading slash).
pub type Tree = Arc<BTreeMap<String, Bytes>>;

/// The trace file, relative to a mirror's URL: the time of its last sync.
pub const TRACE_FILE: &str = "project/trace";

/// The demo's file tree: a release with its checksum file, a readme, and
/// the trace file saying the mirror synced at `synced` (seconds since the epoch).
pub fn demo_tree(synced: u64) -> Tree {
    let mut files = BTreeMap::new();
    // Deterministic bytes, so every mirror serves identical copies.
    let iso: Vec<u8> = (0u32..256 * 1024)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    files.insert(
        "README.txt".to_string(),
        Bytes::from_static(b"mirrorgate demo tree\n"),
    );
    let sums = format!("{}  demo-1.0.iso\n", hex::encode(Sha256::digest(&iso)));
    files.insert("releases/1.0/demo-1.0.iso".to_string(), Bytes::from(iso));
    files.insert("releases/1.0/SHA256SUMS".to_string(), Bytes::from(sums));
    files.insert(TRACE_FILE.to_string(), Bytes::from(format!("{synced}\n")));
    Arc::new(files)
}

/// A running demo mirror.
pub struct DemoMirror {
    pub addr: SocketAddr,
}

impl DemoMirror {
    /// Serves `tree` under `/pub/` on a new loopback port.
    pub async fn start(tree: Tree) -> std::io::Result<DemoMirror> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let down = Arc::new(AtomicBool::new(false));
        let flag = down.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (tree, flag) = (tree.clone(), flag.clone());
                let svc = service_fn(move |req| {
                    std::future::ready(Ok::<_, Infallible>(answer(&tree, &flag, &req)))
                });
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), svc));
            }
        });
        Ok(DemoMirror { addr })
    }
}

fn answer<B>(tree: &Tree, down: &AtomicBool, req: &Request<B>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if req.method() == Method::POST {
        match path {
            "/_demo/down" => down.store(true, Ordering::Relaxed),
            "/_demo/up" => down.store(false, Ordering::Relaxed),
            _ => return reply(StatusCode::NOT_FOUND, Bytes::from_static(b"not found\n")),
        }
        return reply(
            StatusCode::OK,
            Bytes::from(format!("down: {}\n", down.load(Ordering::Relaxed))),
        );
    }
    if down.load(Ordering::Relaxed) {
        return reply(
            StatusCode::SERVICE_UNAVAILABLE,
            Bytes::from_static(b"this demo mirror is switched off\n"),
        );
    }
    let Some(rel) = path.strip_prefix("/pub/") else {
        return reply(StatusCode::NOT_FOUND, Bytes::from_static(b"not found\n"));
    };
    let rel = percent_encoding::percent_decode_str(rel).decode_utf8_lossy();
    if rel.is_empty() || rel.ends_with('/') {
        let listing: String = tree
            .keys()
            .filter(|k| k.starts_with(rel.as_ref()))
            .map(|k| format!("{k}\n"))
            .collect();
        return reply(StatusCode::OK, Bytes::from(listing));
    }
    match tree.get(rel.as_ref()) {
        Some(body) => reply(StatusCode::OK, body.clone()),
        None => reply(StatusCode::NOT_FOUND, Bytes::from_static(b"not found\n")),
    }
}

fn reply(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r
}

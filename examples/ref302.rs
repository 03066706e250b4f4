//! The reference server of the load benchmark (`benches/load.sh`): the least
//! a hyper 1 server can do to answer a download request with a redirect.
//!
//! Every request, whatever its method, path or headers, gets the same
//! `302 Found` with the same `Location` and an empty body. HTTP/1.1 with
//! keep-alive, `TCP_NODELAY` (as mirrorgate sets it), tokio's multi-thread
//! runtime with its default number of workers (one per CPU the process may
//! run on, so `taskset` limits it as it limits mirrorgate).
//!
//! mirrorgate's requests/s is reported as a fraction of this server's,
//! measured in the same run with the same client: the ratio says how much
//! of the cost of a redirect is mirrorgate's own work (client address,
//! GeoIP, selection, headers, metrics) rather than HTTP and the kernel.
//!
//! Usage: `ref302 [ADDR] [LOCATION]`, by default `127.0.0.1:0` and a
//! loopback mirror URL of the length mirrorgate's redirects have in the
//! benchmark. Prints `listening on ADDR` once bound; stops on SIGTERM/SIGINT
//! or when killed.

use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;

use bytes::Bytes;
use http::header::{HeaderValue, LOCATION};
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const DEFAULT_LOCATION: &str = "http://127.0.0.1:40000/pub/releases/1.0/demo-1.0.iso";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args.next().as_deref().unwrap_or("127.0.0.1:0").parse()?;
    let location = HeaderValue::from_str(&args.next().unwrap_or_else(|| DEFAULT_LOCATION.into()))?;
    if args.next().is_some() {
        anyhow::bail!("usage: ref302 [ADDR] [LOCATION]");
    }

    let listener = TcpListener::bind(addr).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on {}", listener.local_addr()?)?;
    out.flush()?;
    drop(out);

    let mut builder = http1::Builder::new();
    builder.keep_alive(true);
    let serve = async {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(conn) => conn,
                // Out of descriptors and the like: say so, pause, keep accepting.
                Err(e) => {
                    eprintln!("ref302: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let location = location.clone();
            let svc = service_fn(move |_req| {
                let mut resp = Response::new(Full::new(Bytes::new()));
                *resp.status_mut() = StatusCode::FOUND;
                resp.headers_mut().insert(LOCATION, location.clone());
                std::future::ready(Ok::<_, Infallible>(resp))
            });
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
            tokio::spawn(async move {
                // wrk closes its connections when it stops: not worth a word.
                let _ = conn.await;
            });
        }
    };
    tokio::select! {
        () = serve => {}
        () = shutdown_signal() => {}
    }
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

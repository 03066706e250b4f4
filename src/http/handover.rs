//! The hand-over of a connection from the direct path (`conn.rs`) to
//! hyper, for good: the bytes already read are replayed first
//! ([`Prefixed`]), the request head at hand keeps the deadline it had on the
//! direct path, and every write to the client is held to
//! `limits.send_timeout` as on the direct path.
//!
//! hyper's own header timer starts when hyper starts reading a head, so on
//! its own it would give a head that was half read on the direct path a
//! fresh timeout; and hyper has no timeout on writes at all.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use super::conn::ConnSettings;
use super::download::PublicHandler;

/// Gives the connection to hyper, with what was read and not answered yet;
/// `deadline` is the one of the request head at hand.
pub(super) async fn hand_over(
    stream: TcpStream,
    read: Bytes,
    peer: SocketAddr,
    handler: PublicHandler,
    settings: &ConnSettings,
    deadline: Instant,
    watcher: Watcher,
) {
    let io = Prefixed::new(read, stream, settings.send_timeout);
    // Set by the service as hyper hands it a request: the head is complete.
    let started = Arc::new(AtomicBool::new(false));
    let on_head = started.clone();
    let svc = super::server::service(handler, peer, move || {
        on_head.store(true, Ordering::Relaxed);
    });
    let conn = watcher.watch(settings.hyper.serve_connection(TokioIo::new(io), svc));
    tokio::pin!(conn);
    let ended = tokio::select! {
        r = &mut conn => Some(r),
        () = tokio::time::sleep_until(deadline.into()) => None,
    };
    let result = match ended {
        Some(r) => r,
        // Later heads are hyper's to time (`idle_timeout`, set in `server.rs`).
        None if started.load(Ordering::Relaxed) => conn.await,
        None => {
            tracing::debug!(%peer, "request head not received in time (limits.header_timeout or idle_timeout)");
            return;
        }
    };
    // Client resets and timeouts are normal on a public listener.
    if let Err(e) = result {
        tracing::debug!(error = %e, %peer, "connection ended with an error");
    }
}

/// A connection whose first bytes were already read; its writes fail with
/// `TimedOut` once the client has taken nothing for `send_timeout`. The
/// admin listener wraps its connections in it too, with nothing read yet.
pub(crate) struct Prefixed {
    read: Bytes,
    stream: TcpStream,
    send_timeout: Duration,
    /// Made the first time the socket is full, then reused.
    stall: Option<Pin<Box<Sleep>>>,
    /// The last write was refused for want of room: `stall` is running.
    stalled: bool,
}

impl Prefixed {
    pub(crate) fn new(read: Bytes, stream: TcpStream, send_timeout: Duration) -> Self {
        Prefixed {
            read,
            stream,
            send_timeout,
            stall: None,
            stalled: false,
        }
    }

    /// Passes on what a write returned; a pending one starts the stall timer
    /// (unless running), and an error replaces it once the timer is done.
    fn progress<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if r.is_ready() {
            self.stalled = false;
            return r;
        }
        let deadline = tokio::time::Instant::now() + self.send_timeout;
        let stall = match &mut self.stall {
            Some(stall) => {
                if !self.stalled {
                    stall.as_mut().reset(deadline);
                }
                stall
            }
            None => self
                .stall
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        self.stalled = true;
        match stall.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client took nothing within limits.send_timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.read.is_empty() {
            let n = this.read.len().min(buf.remaining());
            buf.put_slice(&this.read[..n]);
            this.read.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.progress(cx, r)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.progress(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_prefixed_stream_reads_the_prefix_first() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b" world").await.unwrap();
        });
        let (stream, _) = l.accept().await.unwrap();
        let mut p = Prefixed::new(Bytes::from_static(b"hello"), stream, Duration::from_secs(1));
        let mut got = Vec::new();
        p.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"hello world");
        client.await.unwrap();
    }

    #[tokio::test]
    async fn a_write_the_client_never_takes_fails_after_the_send_timeout() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        // Connected, and never read.
        let _client = TcpStream::connect(addr).await.unwrap();
        let (stream, _) = l.accept().await.unwrap();
        let mut p = Prefixed::new(Bytes::new(), stream, Duration::from_millis(200));
        let chunk = vec![0u8; 64 * 1024];
        let err = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                if let Err(e) = p.write_all(&chunk).await {
                    return e;
                }
            }
        })
        .await
        .expect("the write fails in time");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}

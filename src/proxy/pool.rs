//! The connection pool for plain `http://` mirrors: HTTP/1.1 connections
//! kept open per mirror address and reused, each driven by its own task.
//!
//! hyper-util's pooled client (still used for `https://` mirrors, where TLS
//! and HTTP/2 come in) does more per request than a proxy of small files can
//! afford: its pool key is hashed with SipHash byte by byte, a connect future
//! is built and dropped even when an idle connection is at hand, and one more
//! task is spawned per response to put the connection back once its body is
//! read. Here a response's body puts its connection back itself when it has
//! been read to the end (see [`UpstreamBody`]).
//!
//! Connecting (DNS, the connect timeout, `TCP_NODELAY`) is hyper-util's
//! `HttpConnector`, as before. A request that a reused connection dropped
//! before sending it (the mirror closed the connection while it was idle) is
//! sent again, on another idle connection or a new one, as hyper-util's
//! client does; a request on a new connection is never sent twice.
//!
//! Idle connections are closed after `idle_timeout` even when the pool is
//! not used again: a task sweeps the pool every half of that time, so a
//! mirror is not left holding connections nobody will use.

use std::collections::VecDeque;
use std::error::Error as StdError;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{Request, Response, Uri};
use http_body_util::Empty;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::client::legacy::connect::HttpConnector;
use tower_service::Service;

use super::UpstreamError;

type Sender = SendRequest<Empty<Bytes>>;

/// Idle connections to plain-http mirrors; cheap to clone.
#[derive(Clone)]
pub(crate) struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    connector: HttpConnector,
    /// Idle connections by `host:port`, oldest first.
    idle: Mutex<hashbrown::HashMap<String, VecDeque<Idle>>>,
    max_idle: usize,
    idle_timeout: Duration,
}

struct Idle {
    sender: Sender,
    since: Instant,
}

impl Idle {
    /// Idle for `timeout` or more at `now`: to be closed, not used.
    fn expired(&self, now: Instant, timeout: Duration) -> bool {
        now.duration_since(self.since) >= timeout
    }
}

/// Takes the oldest connection of `list` if it has expired (the oldest are first).
fn pop_expired(list: &mut VecDeque<Idle>, now: Instant, timeout: Duration) -> Option<Idle> {
    if list.front()?.expired(now, timeout) {
        list.pop_front()
    } else {
        None
    }
}

impl Pool {
    /// A pool that keeps at most `max_idle` idle connections per mirror, for
    /// at most `idle_timeout` each, and connects with `connector`.
    /// Made within a tokio runtime, it sweeps out expired idle connections
    /// on its own; elsewhere only when it is next used.
    pub fn new(connector: HttpConnector, max_idle: usize, idle_timeout: Duration) -> Pool {
        let pool = Pool {
            inner: Arc::new(Inner {
                connector,
                idle: Mutex::new(hashbrown::HashMap::new()),
                max_idle,
                idle_timeout,
            }),
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(sweep(Arc::downgrade(&pool.inner), idle_timeout));
        }
        pool
    }

    /// Idle connections kept, over all mirrors.
    #[cfg(test)]
    fn idle_count(&self) -> usize {
        let idle = self
            .inner
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        idle.values().map(VecDeque::len).sum()
    }

    /// Sends `req` (an absolute `http://` URI, `Host` set) on an idle
    /// connection to its mirror, or on a new one.
    pub async fn send(
        &self,
        mut req: Request<Empty<Bytes>>,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        let uri = req.uri().clone();
        let key = uri.authority().ok_or(UpstreamError::Other)?.as_str();
        // The request line carries the path only (origin form); built from
        // the parsed parts rather than parsed once more.
        let mut origin_form = http::uri::Parts::default();
        origin_form.path_and_query = Some(
            uri.path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
        );
        *req.uri_mut() = Uri::from_parts(origin_form).map_err(|_| UpstreamError::Other)?;
        loop {
            let (mut sender, reused) = match self.checkout(key) {
                Some(s) => (s, true),
                // Boxed: connecting is rare, and its large future would
                // otherwise be moved along with every request's.
                None => (Box::pin(self.connect(&uri)).await?, false),
            };
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    let back = Checkin {
                        pool: self.clone(),
                        key: key.into(),
                        sender,
                    };
                    return Ok(resp.map(|body| UpstreamBody::new(body, Some(back))));
                }
                Err(mut e) => match e.take_message() {
                    // Never sent, on a connection the mirror had closed:
                    // harmless to send again. Each retry uses up an idle
                    // connection, so the loop ends on a new one at the latest.
                    Some(unsent) if reused => req = unsent,
                    _ => return Err(classify_send(e.error())),
                },
            }
        }
    }

    /// The most recently used idle connection that is still usable.
    fn checkout(&self, key: &str) -> Option<Sender> {
        let mut idle = self
            .inner
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let list = idle.get_mut(key)?;
        let now = Instant::now();
        while let Some(c) = list.pop_back() {
            if c.sender.is_ready() && !c.expired(now, self.inner.idle_timeout) {
                return Some(c.sender);
            }
        }
        None
    }

    /// Puts a connection whose last answer was read to the end back.
    fn checkin(&self, key: &str, sender: Sender) {
        let now = Instant::now();
        let mut idle = self
            .inner
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let list = idle.entry_ref(key).or_default();
        // Those past the idle time go (and are closed).
        while pop_expired(list, now, self.inner.idle_timeout).is_some() {}
        if list.len() >= self.inner.max_idle {
            list.pop_front();
        }
        list.push_back(Idle { sender, since: now });
    }

    async fn connect(&self, uri: &Uri) -> Result<Sender, UpstreamError> {
        let mut connector = self.inner.connector.clone();
        let io = connector
            .call(uri.clone())
            .await
            .map_err(|e| classify_connect(&e))?;
        let (mut sender, conn) = http1::handshake::<_, Empty<Bytes>>(io)
            .await
            .map_err(|e| classify_send(&e))?;
        tokio::spawn(async move {
            // A mirror closing or resetting its end is routine; the request
            // on it (if any) has its own error.
            if let Err(e) = conn.await {
                tracing::trace!(error = %e, "connection to a mirror ended");
            }
        });
        sender.ready().await.map_err(|e| classify_send(&e))?;
        Ok(sender)
    }
}

/// Closes idle connections past `idle_timeout`, every half of it, until the
/// pool is gone. Dropping a connection's sender ends its task, which closes it.
async fn sweep(pool: Weak<Inner>, idle_timeout: Duration) {
    let period = (idle_timeout / 2).max(Duration::from_millis(10));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = pool.upgrade() else {
            return;
        };
        let now = Instant::now();
        // Taken out under the lock, dropped (closed) after it.
        let mut expired = Vec::new();
        {
            let mut idle = inner.idle.lock().unwrap_or_else(PoisonError::into_inner);
            for list in idle.values_mut() {
                while let Some(c) = pop_expired(list, now, idle_timeout) {
                    expired.push(c);
                }
            }
            idle.retain(|_, list| !list.is_empty());
        }
        drop(expired);
    }
}

/// A connection to put back in the pool once its answer is read.
struct Checkin {
    pool: Pool,
    key: Box<str>,
    sender: Sender,
}

impl Checkin {
    fn put_back(self) {
        if self.sender.is_ready() {
            self.pool.checkin(&self.key, self.sender);
        } else if !self.sender.is_closed() {
            // The connection's task has not yet taken in the end of the
            // answer: wait for it in a task of its own, as hyper-util does.
            let Checkin {
                pool,
                key,
                mut sender,
            } = self;
            tokio::spawn(async move {
                if sender.ready().await.is_ok() {
                    pool.checkin(&key, sender);
                }
            });
        }
    }
}

/// A mirror's response body; its connection goes back to the pool when the
/// body has been read to the end, and is closed when it is dropped before.
pub struct UpstreamBody {
    inner: Incoming,
    back: Option<Checkin>,
    done: bool,
}

impl UpstreamBody {
    fn new(inner: Incoming, back: Option<Checkin>) -> Self {
        let done = inner.is_end_stream();
        UpstreamBody { inner, back, done }
    }

    /// A body that belongs to no pool (from hyper-util's client).
    pub(crate) fn unpooled(inner: Incoming) -> Self {
        UpstreamBody::new(inner, None)
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        if self.done {
            if let Some(back) = self.back.take() {
                back.put_back();
            }
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        match &r {
            Poll::Ready(None) => self.done = true,
            Poll::Ready(Some(Ok(_))) => self.done = self.inner.is_end_stream(),
            // A broken body leaves its connection unusable.
            Poll::Ready(Some(Err(_))) => self.back = None,
            Poll::Pending => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The closed reason for a failed connect.
fn classify_connect(e: &(dyn StdError + 'static)) -> UpstreamError {
    let mut source = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return UpstreamError::ConnectRefused;
            }
        }
        // hyper-util's resolver error has no type of its own to test for.
        if s.to_string().starts_with("dns error") {
            return UpstreamError::Dns;
        }
        source = s.source();
    }
    UpstreamError::Connect
}

/// The closed reason for a request that failed on an open connection.
fn classify_send(e: &hyper::Error) -> UpstreamError {
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return UpstreamError::ConnectRefused;
            }
        }
        source = s.source();
    }
    UpstreamError::Other
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use std::convert::Infallible;
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    /// A mirror that answers `ok`, counts connections and reports when each ends.
    async fn mirror() -> (
        std::net::SocketAddr,
        Arc<std::sync::atomic::AtomicUsize>,
        mpsc::UnboundedReceiver<()>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (ended, rx) = mpsc::unbounded_channel();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let ended = ended.clone();
                tokio::spawn(async move {
                    let svc = service_fn(|_req| async {
                        Ok::<_, Infallible>(Response::new(http_body_util::Full::new(
                            Bytes::from_static(b"ok"),
                        )))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                    let _ = ended.send(());
                });
            }
        });
        (addr, accepted, rx)
    }

    async fn get(pool: &Pool, addr: std::net::SocketAddr) {
        let req = Request::get(format!("http://{addr}/f"))
            .header(http::header::HOST, addr.to_string())
            .body(Empty::new())
            .unwrap();
        let resp = pool.send(req).await.unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"ok");
    }

    /// Waits until the connection is put back, once its task has read the
    /// end of the answer.
    async fn back_in(pool: &Pool) {
        tokio::time::timeout(Duration::from_secs(20), async {
            while pool.idle_count() == 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the connection goes back to the pool");
    }

    #[tokio::test]
    async fn an_idle_connection_is_closed_without_another_request() {
        let (addr, _, mut ended) = mirror().await;
        let pool = Pool::new(HttpConnector::new(), 4, Duration::from_millis(200));
        get(&pool, addr).await;
        back_in(&pool).await;
        // No request follows: only the sweep can close it.
        tokio::time::timeout(Duration::from_secs(20), ended.recv())
            .await
            .expect("the mirror sees the idle connection closed")
            .unwrap();
        assert_eq!(pool.idle_count(), 0);
    }

    #[tokio::test]
    async fn a_connection_is_reused_while_fresh() {
        let (addr, accepted, mut ended) = mirror().await;
        let pool = Pool::new(HttpConnector::new(), 4, Duration::from_secs(3600));
        for _ in 0..3 {
            get(&pool, addr).await;
            // The next request finds it idle.
            back_in(&pool).await;
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(ended.try_recv().is_err(), "no connection was closed");
    }
}

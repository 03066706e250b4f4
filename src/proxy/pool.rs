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

use std::collections::VecDeque;
use std::error::Error as StdError;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
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

impl Pool {
    /// A pool that keeps at most `max_idle` idle connections per mirror, for
    /// at most `idle_timeout` each, and connects with `connector`.
    pub fn new(connector: HttpConnector, max_idle: usize, idle_timeout: Duration) -> Pool {
        Pool {
            inner: Arc::new(Inner {
                connector,
                idle: Mutex::new(hashbrown::HashMap::new()),
                max_idle,
                idle_timeout,
            }),
        }
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
        while let Some(c) = list.pop_back() {
            if c.sender.is_ready() && c.since.elapsed() < self.inner.idle_timeout {
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
        // The oldest are first: those past the idle time go (and are closed).
        while list
            .front()
            .is_some_and(|c| now.duration_since(c.since) >= self.inner.idle_timeout)
        {
            list.pop_front();
        }
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

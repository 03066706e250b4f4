//! The connection pool for plain `http://` mirrors: HTTP/1.1 connections
//! kept open per mirror address and reused. A connection is driven by the
//! request that uses it (see `h1.rs`), never by a task of its own, and a body
//! read to its end puts its connection back itself.
//!
//! hyper-util's pooled client (still used for `https://` mirrors, where TLS
//! and HTTP/2 come in) does more per request than a proxy of small files can
//! afford: its pool key is hashed with SipHash byte by byte, a connect future
//! is built and dropped even when an idle connection is at hand, and one more
//! task is spawned per response to put the connection back.
//!
//! Connecting (DNS, the connect timeout, `TCP_NODELAY`) is hyper-util's
//! `HttpConnector`. An idle connection on which the mirror has sent anything
//! (its close, or an unasked answer such as the `408` some servers send
//! before closing an idle connection) is not used; the socket is asked only
//! when the connection has been idle for [`PEEK_AFTER`] or more, since no
//! mirror times out an idle connection sooner, and asking costs a system
//! call that most requests, on connections idle for microseconds, need not
//! pay. A `GET` or `HEAD` that a
//! reused connection dropped before any byte of an answer came (the mirror
//! closed it while it was idle) is sent again, on another idle connection or
//! a new one; a request on a new connection is never sent twice.
//!
//! Idle connections are closed after `idle_timeout` even when the pool is
//! not used again: a task sweeps the pool every half of that time, so a
//! mirror is not left holding connections nobody will use.

use std::collections::VecDeque;
use std::error::Error as StdError;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use http::header::{self, HeaderMap};
use http::{Method, Response, Uri};
use tower_service::Service;

use super::client::UpstreamBody;
use super::h1::{Conn, ExchangeError, H1Body};
use super::headers::host;
use super::own::{is_self_connect, Guarded};
use super::UpstreamError;

/// Idle for this long, a connection is checked for anything the mirror sent
/// before it is used (see the module's doc).
const PEEK_AFTER: Duration = Duration::from_secs(1);

/// Idle connections to plain-http mirrors; cheap to clone.
#[derive(Clone)]
pub(crate) struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    connector: Guarded,
    /// Idle connections by `host:port`, oldest first.
    idle: Mutex<hashbrown::HashMap<String, VecDeque<Idle>>>,
    max_idle: usize,
    idle_timeout: Duration,
    peek_after: Duration,
}

struct Idle {
    conn: Conn,
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
    pub fn new(connector: impl Into<Guarded>, max_idle: usize, idle_timeout: Duration) -> Pool {
        Pool::with_peek_after(connector, max_idle, idle_timeout, PEEK_AFTER)
    }

    /// [`Pool::new`], checking connections idle for `peek_after` or more.
    fn with_peek_after(
        connector: impl Into<Guarded>,
        max_idle: usize,
        idle_timeout: Duration,
        peek_after: Duration,
    ) -> Pool {
        let pool = Pool {
            inner: Arc::new(Inner {
                connector: connector.into(),
                idle: Mutex::new(hashbrown::HashMap::new()),
                max_idle,
                idle_timeout,
                peek_after,
            }),
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(sweep(Arc::downgrade(&pool.inner), idle_timeout));
        }
        pool
    }

    /// The most idle connections kept per mirror, and for how long.
    #[cfg(test)]
    pub(crate) fn limits(&self) -> (usize, Duration) {
        (self.inner.max_idle, self.inner.idle_timeout)
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

    /// Sends a request for `uri` (an absolute `http://` URI) with `headers`
    /// on an idle connection to its mirror, or on a new one.
    pub async fn send(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        let key = uri.authority().ok_or(UpstreamError::Other)?.as_str();
        let head = request_head(method, uri, headers);
        let idempotent = matches!(*method, Method::GET | Method::HEAD);
        loop {
            let (mut conn, reused) = match self.checkout(key) {
                Some(c) => (c, true),
                // Boxed: connecting is rare, and its large future would
                // otherwise be moved along with every request's.
                None => (Box::pin(self.connect(uri)).await?, false),
            };
            match conn.exchange(&head, method).await {
                Ok(answer) => {
                    let back = answer.keep_alive.then(|| Checkin {
                        pool: self.clone(),
                        key: key.into(),
                    });
                    let body = H1Body::new(conn, answer.framing, back);
                    return Ok(answer.head.map(|()| UpstreamBody::Plain(body)));
                }
                // Each retry uses up an idle connection, so the loop ends
                // on a new one at the latest.
                Err(ExchangeError::NoAnswer) if reused && idempotent => {}
                Err(ExchangeError::NoAnswer) => return Err(UpstreamError::Other),
                Err(ExchangeError::Failed(kind)) => return Err(kind),
            }
        }
    }

    /// The most recently used idle connection that is still usable.
    fn checkout(&self, key: &str) -> Option<Conn> {
        let mut idle = self
            .inner
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let list = idle.get_mut(key)?;
        let now = Instant::now();
        while let Some(c) = list.pop_back() {
            if c.expired(now, self.inner.idle_timeout) {
                continue;
            }
            if now.duration_since(c.since) < self.inner.peek_after || c.conn.is_quiet() {
                return Some(c.conn);
            }
        }
        None
    }

    /// Puts a connection whose last answer was read to the end back.
    fn checkin(&self, key: &str, conn: Conn) {
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
        list.push_back(Idle { conn, since: now });
    }

    async fn connect(&self, uri: &Uri) -> Result<Conn, UpstreamError> {
        let mut connector = self.inner.connector.clone();
        let io = connector
            .call(uri.clone())
            .await
            .map_err(|e| classify_connect(e.as_ref()))?;
        Ok(Conn::new(io.into_inner()))
    }
}

/// The request head for `uri` in origin form: request line, `Host` (from
/// the URI, as `headers::host` makes it) unless the headers have one, the
/// headers, and the blank line.
fn request_head(method: &Method, uri: &Uri, headers: &HeaderMap) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(uri.path_and_query().map_or("/", |p| p.as_str()).as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if !headers.contains_key(header::HOST) {
        if let Some(host) = host(uri) {
            out.extend_from_slice(b"host: ");
            out.extend_from_slice(host.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Closes idle connections past `idle_timeout`, every half of it, until the
/// pool is gone.
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

/// Where a connection goes back once its answer is read to the end.
pub(crate) struct Checkin {
    pool: Pool,
    key: Box<str>,
}

impl Checkin {
    pub fn put_back(self, conn: Conn) {
        self.pool.checkin(&self.key, conn);
    }
}

/// The closed reason for a failed connect.
fn classify_connect(e: &(dyn StdError + 'static)) -> UpstreamError {
    if is_self_connect(e) {
        return UpstreamError::SelfAddress;
    }
    if crate::fds::out_of_descriptors(e) {
        return UpstreamError::OutOfDescriptors;
    }
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

#[cfg(test)]
mod tests;

//! The direct HTTP/1.1 path of the public listener.
//!
//! Nearly every request a download redirector sees is a `GET` with a few
//! headers, answered by a redirect of a few hundred bytes. Through hyper,
//! building a header map for the request and another for the response was
//! most of the cost of such an answer. So every connection starts here: each
//! request head is parsed in place by `httparse` (hyper's own parser), the
//! download handler reads it borrowed ([`super::head::RawHeaders`]), and the
//! answer is written straight into the connection's output buffer, several
//! at once when a client pipelines.
//!
//! A proxied answer is streamed from here too, frame by frame as the mirror
//! sends it: each frame is written before the next is asked for, so a slow
//! client slows the mirror's read and memory stays bounded. Its length is
//! the mirror's `Content-Length`, or chunked when the mirror gave none; a
//! body that ends short, or fails beyond what the proxy can resume, closes
//! the connection, so the client sees a truncated body and can resume with
//! `Range`, as with hyper.
//!
//! Whatever this path does not handle hands the connection to hyper, for
//! good, together with the bytes read so far, starting with the request at
//! hand: a method other than `GET` and `HEAD`; a version other than
//! HTTP/1.1; a target not in origin form or with a character outside
//! RFC 3986's; a body or body framing (`Content-Length`,
//! `Transfer-Encoding`), `Expect` or `Upgrade`; no `Host`, or more than one
//! (hyper's service answers 400); a head that does not parse,
//! has more than [`MAX_HEADERS`] headers or is over [`MAX_HEAD`] bytes.
//! hyper then answers with its own rules and limits (400, 431 past
//! [`HEAD_LIMIT`]), so anything unusual meets the general, well-trodden code; a
//! test holds the bytes of both paths' answers equal, so a client cannot
//! tell which one answered.
//!
//! Limits kept here as hyper keeps them. A new connection must deliver its
//! first request head complete within `limits.header_timeout`, and a
//! kept-alive one each later head within `limits.idle_timeout` of the
//! answer before it, or it is closed: one deadline per head, whoever
//! parses it, so a head handed to hyper part-read keeps the deadline it had
//! here. That timer is one per connection, checked lazily when it fires,
//! so a request costs no timer operation. A write to the client that makes
//! no progress for `limits.send_timeout` closes the connection (a proxied
//! body's mirror connection is dropped with it, never reused); its timer
//! is made only when the socket is full. Answers to pipelined requests are
//! written out whenever [`QUEUED`] bytes of them are waiting, and no more
//! is read meanwhile, so a client that sends and never reads holds a
//! bounded amount of memory until the send timeout closes it. On shutdown
//! an idle connection closes at once and a busy one after its answer.

use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes, BytesMut};
use http::{Method, StatusCode};
use hyper::body::Body as _;
use hyper::server::conn::http1;
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::body::ResponseBody;
use super::download::{Answer, Direct, PublicHandler};
use super::handover::hand_over;
use super::head::{RawHeaders, RequestHead};
use super::redirect::{end_head, header_line, push_hex, status_line, Tail};
use super::stop::StopWait;
use super::Resp;
use crate::content::FileInfo;
use crate::proxy::ProxyRequest;

/// Headers a request may have on this path (hyper takes up to 100).
pub const MAX_HEADERS: usize = 64;
/// The longest request head read on this path; a longer one goes to hyper,
/// whose limit is [`HEAD_LIMIT`].
pub const MAX_HEAD: usize = 16 * 1024;
/// The longest request head served at all: hyper refuses a longer one with
/// 431 and closes the connection, and every head over [`MAX_HEAD`] goes to
/// hyper, so the limit holds on both paths (`server.rs` sets it).
pub const HEAD_LIMIT: usize = 64 * 1024;

/// Answers held for a client, in bytes, before they are written: past it,
/// the pipelined requests still buffered wait until the client has taken
/// these.
pub const QUEUED: usize = 64 * 1024;

/// What every connection needs from the listener.
pub struct ConnSettings {
    /// For the first request head of a connection.
    pub header_timeout: Duration,
    /// For every later head, from the answer before it.
    pub idle_timeout: Duration,
    /// Longest a write to the client may make no progress.
    pub send_timeout: Duration,
    /// hyper's settings, for connections handed to it.
    pub hyper: http1::Builder,
}

/// Serves one connection until the client closes it, a timeout or shutdown
/// closes it, or it is handed to hyper (then until hyper is done with it).
/// `watcher` keeps graceful shutdown waiting until then.
pub async fn serve_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    handler: PublicHandler,
    settings: Arc<ConnSettings>,
    stop: StopWait,
    watcher: Watcher,
) {
    let mut buf = BytesMut::with_capacity(4096);
    let mut out: Vec<u8> = Vec::with_capacity(1024);
    let mut date = DateCache::default();
    let send = settings.send_timeout;
    // The time the head being read has: `header_timeout` for the first,
    // `idle_timeout` once one was answered.
    let time_for = |first_head: bool| {
        if first_head {
            settings.header_timeout
        } else {
            settings.idle_timeout
        }
    };
    let mut first_head = true;
    // Set once the timer follows `idle_timeout`.
    let mut kept_alive = false;
    // When the connection became ready for the head it is reading.
    let mut ready_since = Instant::now();
    let timer = tokio::time::sleep_until((ready_since + time_for(true)).into());
    tokio::pin!(timer);
    let mut stopping = false;
    loop {
        // Answer every complete request read so far.
        let mut close = false;
        while !buf.is_empty() && !close {
            // One clock reading per request serves the handler's timing, the
            // header timeout and the date (each reading costs, in a VM more so).
            let now = Instant::now();
            match step(&buf, &mut out, &handler, peer, now, date.at(now)) {
                Step::Answered { used, closes } => {
                    buf.advance(used);
                    close = closes;
                    ready_since = now;
                    first_head = false;
                    // A client that pipelines and does not read gets its
                    // answers as they are made, not all held here.
                    if out.len() >= QUEUED && write(&stream, &mut out, send).await.is_err() {
                        return;
                    }
                }
                Step::Wait { used, tail, answer } => {
                    // Earlier answers first: the client may be waiting on them.
                    if write(&stream, &mut out, send).await.is_err() {
                        return;
                    }
                    let answer = answer.await;
                    let now = Instant::now();
                    let tail = tail.tail(date.at(now));
                    let written = match answer {
                        Answer::Response(resp) if is_streamed(&resp) => {
                            write_streamed(&stream, &mut out, resp, &tail, send).await
                        }
                        answer => {
                            write_answer(&mut out, answer, &tail);
                            Ok(())
                        }
                    };
                    if written.is_err() {
                        // Cut short: the client sees it and may resume.
                        return;
                    }
                    buf.advance(used);
                    close = tail.close;
                    ready_since = Instant::now();
                    first_head = false;
                }
                Step::Partial if buf.len() <= MAX_HEAD => break,
                Step::Partial | Step::General => {
                    if write(&stream, &mut out, send).await.is_err() {
                        return;
                    }
                    // The head at hand keeps the deadline it has here.
                    let deadline = ready_since + time_for(first_head);
                    let read = buf.freeze();
                    hand_over(stream, read, peer, handler, &settings, deadline, watcher).await;
                    return;
                }
            }
        }
        if !first_head && !kept_alive {
            kept_alive = true;
            if settings.idle_timeout < settings.header_timeout {
                // The timer must not fire after the deadline (it is checked
                // when it fires); from here on deadlines only grow.
                timer
                    .as_mut()
                    .reset((ready_since + settings.idle_timeout).into());
            }
        }
        if write(&stream, &mut out, send).await.is_err() {
            return;
        }
        if close || (stopping && buf.is_empty()) {
            // The answer is out; the client sees the end of the stream.
            let _ = stream.shutdown().await;
            return;
        }
        // Wait for more of the next head.
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(4096);
        }
        tokio::select! {
            biased;
            () = std::future::poll_fn(|cx| stop.poll_stopped(cx)), if !stopping => stopping = true,
            r = stream.read_buf(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
            () = &mut timer => {
                let deadline = ready_since + time_for(first_head);
                if Instant::now() >= deadline {
                    tracing::debug!(%peer, first_head, "request head not received in time (limits.header_timeout or idle_timeout)");
                    return;
                }
                timer.as_mut().reset(deadline.into());
            }
        }
    }
}

/// What became of the request at the start of the buffer.
enum Step {
    /// Answered into the output buffer; `used` bytes of input consumed.
    Answered { used: usize, closes: bool },
    /// To be answered when `answer` resolves (on-demand checks).
    Wait {
        used: usize,
        tail: TailOwned,
        answer: Pin<Box<dyn Future<Output = Answer> + Send>>,
    },
    /// The head is not complete yet.
    Partial,
    /// For hyper, from this request on.
    General,
}

/// The parts of [`Tail`] a waiting answer keeps.
struct TailOwned {
    head: bool,
    close: bool,
}

impl TailOwned {
    fn tail<'a>(&self, date: &'a [u8]) -> Tail<'a> {
        Tail {
            date,
            head: self.head,
            close: self.close,
        }
    }
}

fn step(
    buf: &[u8],
    out: &mut Vec<u8>,
    handler: &PublicHandler,
    peer: SocketAddr,
    now: Instant,
    date: &[u8],
) -> Step {
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let used = match req.parse_with_uninit_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Step::Partial,
        // Malformed or too many headers: hyper's answer is the one to give.
        Err(_) => return Step::General,
    };
    // A long head that came whole in one read: hyper's limits apply to it.
    if used > MAX_HEAD {
        return Step::General;
    }
    let Some(head) = DirectHead::new(&req) else {
        return Step::General;
    };
    let tail = TailOwned {
        head: head.method == Method::HEAD,
        close: head.close,
    };
    match handler.handle_direct(peer, &head, now) {
        // A body to stream is written where the connection can be awaited.
        Direct::Now(Answer::Response(resp)) if is_streamed(&resp) => Step::Wait {
            used,
            tail,
            answer: Box::pin(std::future::ready(Answer::Response(resp))),
        },
        Direct::Now(answer) => {
            write_answer(out, answer, &tail.tail(date));
            Step::Answered {
                used,
                closes: tail.close,
            }
        }
        Direct::Later(answer) => Step::Wait { used, tail, answer },
    }
}

/// A request head this path answers, borrowed from the read buffer.
struct DirectHead<'h, 'b> {
    method: Method,
    path: &'b str,
    query: Option<&'b str>,
    headers: RawHeaders<'h, 'b>,
    /// The client said `Connection: close`.
    close: bool,
}

impl<'h, 'b> DirectHead<'h, 'b> {
    /// `None` for anything hyper is to answer (see the module's doc).
    fn new(req: &'h httparse::Request<'h, 'b>) -> Option<Self> {
        let method = match req.method? {
            "GET" => Method::GET,
            "HEAD" => Method::HEAD,
            _ => return None,
        };
        if req.version? != 1 {
            return None;
        }
        let target = req.path?;
        if !target.starts_with('/') || !target.bytes().all(|b| TARGET[usize::from(b)]) {
            return None;
        }
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        let mut close = false;
        let mut hosts = 0;
        for h in req.headers.iter() {
            let name = h.name.as_bytes();
            if name.len() == 4 && name.eq_ignore_ascii_case(b"host") {
                hosts += 1;
            }
            // By length first: most headers are none of these.
            let refused: &[u8] = match name.len() {
                14 => b"content-length",
                17 => b"transfer-encoding",
                6 => b"expect",
                7 => b"upgrade",
                _ => b"",
            };
            if !refused.is_empty() && name.eq_ignore_ascii_case(refused) {
                return None;
            }
            if name.len() == 10 && name.eq_ignore_ascii_case(b"connection") {
                for token in h.value.split(|&b| b == b',') {
                    let token = token.trim_ascii();
                    if token.eq_ignore_ascii_case(b"close") {
                        close = true;
                    } else if token.eq_ignore_ascii_case(b"upgrade") {
                        return None;
                    }
                }
            }
        }
        // The 400 it needs is the general path's (`server.rs`).
        if super::head::bad_host(true, hosts) {
            return None;
        }
        Some(DirectHead {
            method,
            path,
            query,
            headers: RawHeaders(req.headers),
            close,
        })
    }
}

impl<'h, 'b> RequestHead for DirectHead<'h, 'b> {
    type Headers = RawHeaders<'h, 'b>;
    fn method(&self) -> &Method {
        &self.method
    }
    fn path(&self) -> &str {
        self.path
    }
    fn query(&self) -> Option<&str> {
        self.query
    }
    fn headers(&self) -> &RawHeaders<'h, 'b> {
        &self.headers
    }
    fn proxy_request(
        &self,
        client: std::net::IpAddr,
        path_encoded: &str,
        info: Option<&FileInfo>,
    ) -> ProxyRequest {
        ProxyRequest::from_raw(&self.method, self.headers.0, client, path_encoded, info)
    }
}

/// The bytes of a request target this path reads: RFC 3986's unreserved,
/// sub-delims, `:`, `@`, `/`, `?` and `%`, every one of which `http::Uri`
/// takes as it is, so both paths see the same path and query.
static TARGET: [bool; 256] = {
    let mut t = [false; 256];
    let allowed =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/?%";
    let mut i = 0;
    while i < allowed.len() {
        t[allowed[i] as usize] = true;
        i += 1;
    }
    t
};

/// Writes `answer` as hyper would write it; a body to stream goes to
/// [`write_streamed`] instead (`step` sees to it).
fn write_answer(out: &mut Vec<u8>, answer: Answer, tail: &Tail<'_>) {
    match answer {
        Answer::Redirect(r) => r.write_h1(out, tail),
        Answer::Response(resp) => write_response(out, resp, tail),
    }
}

fn write_response(out: &mut Vec<u8>, resp: Resp, tail: &Tail<'_>) {
    let (parts, body) = resp.into_parts();
    let body = match full_bytes(body) {
        Some(b) => b,
        // Not reached: streamed bodies go to `write_streamed`.
        None => {
            let resp = super::text(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
            return write_response(out, resp, tail);
        }
    };
    write_head_lines(out, &parts);
    // A length set by the answer stands.
    let bodiless = no_body(parts.status);
    let length = (!bodiless && !parts.headers.contains_key(http::header::CONTENT_LENGTH))
        .then_some(body.len());
    end_head(
        out,
        length,
        tail,
        parts.headers.contains_key(http::header::DATE),
    );
    if !bodiless && !tail.head {
        out.extend_from_slice(&body);
    }
}

/// The status line and the response's own header lines.
fn write_head_lines(out: &mut Vec<u8>, parts: &http::response::Parts) {
    status_line(out, parts.status);
    for (name, value) in &parts.headers {
        header_line(out, name.as_str().as_bytes(), value.as_bytes());
    }
}

/// As hyper: no length and no body for 1xx, 204 and 304.
fn no_body(status: StatusCode) -> bool {
    status.is_informational() || matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED)
}

/// A response whose body comes from a mirror, to be streamed.
fn is_streamed(resp: &Resp) -> bool {
    matches!(resp.body(), ResponseBody::Proxied(_))
}

/// Frames up to this size are gathered with what is pending in the output
/// buffer (one write for the head and a small file); larger ones are
/// written from where they are.
const GATHER: usize = 16 * 1024;

/// Writes a proxied response: its head, then its body as it arrives, each
/// frame written before the next is asked for. An error means the
/// connection must close: the body could not be completed.
async fn write_streamed(
    stream: &TcpStream,
    out: &mut Vec<u8>,
    resp: Resp,
    tail: &Tail<'_>,
    send: Duration,
) -> io::Result<()> {
    let (parts, body) = resp.into_parts();
    write_head_lines(out, &parts);
    // No body for HEAD either; the mirror's length when it gave one, else chunks.
    let bodiless = tail.head || no_body(parts.status);
    let length = match parts.headers.get(http::header::CONTENT_LENGTH) {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| io::Error::other("a mirror's Content-Length is not a number"))?,
        ),
        None => None,
    };
    let chunked = !bodiless && length.is_none();
    if chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    end_head(
        out,
        None,
        tail,
        parts.headers.contains_key(http::header::DATE),
    );
    let ResponseBody::Proxied(mut body) = body else {
        return write(stream, out, send).await;
    };
    if bodiless {
        return write(stream, out, send).await;
    }
    let mut sent: u64 = 0;
    // The next frame, read from the mirror while the last one was written.
    let mut ahead = None;
    loop {
        let frame = match ahead.take() {
            Some(frame) => frame,
            None => std::future::poll_fn(|cx| Pin::new(body.as_mut()).poll_frame(cx)).await,
        };
        let data = match frame {
            None => break,
            Some(Err(e)) => return Err(io::Error::other(e)),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) if !data.is_empty() => data,
                // Trailers, and empty frames: nothing to write.
                _ => continue,
            },
        };
        sent += data.len() as u64;
        if length.is_some_and(|len| sent > len) {
            return Err(io::Error::other(
                "a mirror sent more than its Content-Length",
            ));
        }
        if chunked {
            push_hex(out, data.len());
            out.extend_from_slice(b"\r\n");
        }
        let end: &[u8] = if chunked { b"\r\n" } else { b"" };
        // Out before the next frame is awaited (the client may be waiting),
        // in one system call either way.
        if out.len() + data.len() <= GATHER {
            out.extend_from_slice(&data);
            out.extend_from_slice(end);
            read_ahead(write(stream, out, send), &mut body, &mut ahead).await?;
        } else {
            let w = write_all_vectored(stream, [out.as_slice(), &data, end], send);
            read_ahead(w, &mut body, &mut ahead).await?;
            out.clear();
        }
    }
    if length.is_some_and(|len| sent != len) {
        return Err(io::Error::other("a mirror's body ended short"));
    }
    if chunked {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    write(stream, out, send).await
}

/// The bytes of a body held in memory; `None` for a proxied body.
fn full_bytes(body: ResponseBody) -> Option<Bytes> {
    let ResponseBody::Full(mut full) = body else {
        return None;
    };
    if full.is_end_stream() {
        return Some(Bytes::new());
    }
    // A `Full` body is ready at once: one poll, no waker needed.
    let mut cx = Context::from_waker(Waker::noop());
    match Pin::new(&mut full).poll_frame(&mut cx) {
        Poll::Ready(Some(Ok(frame))) => Some(frame.into_data().unwrap_or_default()),
        _ => Some(Bytes::new()),
    }
}

/// A frame of a proxied body, as polled.
type Polled = Option<Result<hyper::body::Frame<Bytes>, crate::proxy::StreamError>>;

/// Drives `write` to its end while the body's next frame is read into
/// `ahead` (one at most): the mirror keeps sending while the client takes
/// the last frame, as two tasks joined by a channel would let it, without
/// the second task. Memory stays bounded: one frame in flight, one ahead.
async fn read_ahead(
    write: impl Future<Output = io::Result<()>>,
    body: &mut crate::proxy::ProxyBody,
    ahead: &mut Option<Polled>,
) -> io::Result<()> {
    let mut write = std::pin::pin!(write);
    std::future::poll_fn(|cx| {
        if ahead.is_none() {
            if let Poll::Ready(frame) = Pin::new(&mut *body).poll_frame(cx) {
                *ahead = Some(frame);
            }
        }
        write.as_mut().poll(cx)
    })
    .await
}

/// Writes all of `parts`, in order, gathered in as few system calls as the
/// socket takes them. An error (`TimedOut`) when the client takes none of
/// them for `send`: a client that does not read is not kept forever.
async fn write_all_vectored<const N: usize>(
    stream: &TcpStream,
    mut parts: [&[u8]; N],
    send: Duration,
) -> io::Result<()> {
    loop {
        let slices = parts.map(io::IoSlice::new);
        let first = parts.iter().position(|p| !p.is_empty());
        let Some(first) = first else {
            return Ok(());
        };
        // Tried before any wait: most writes are taken at once, and then
        // cost no timer.
        let mut n = match stream.try_write_vectored(&slices[first..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                match tokio::time::timeout(send, stream.writable()).await {
                    Ok(ready) => ready?,
                    Err(_) => {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the client took nothing within limits.send_timeout",
                        ))
                    }
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        for p in &mut parts[first..] {
            let k = n.min(p.len());
            *p = &p[k..];
            n -= k;
        }
    }
}

/// Writes `out` (see [`write_all_vectored`]) and empties it.
async fn write(stream: &TcpStream, out: &mut Vec<u8>, send: Duration) -> io::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    let r = write_all_vectored(stream, [out.as_slice()], send).await;
    out.clear();
    r
}

/// The `date` header's value, formatted once per second, as hyper does;
/// the wall clock is read only when the second is over.
#[derive(Default)]
struct DateCache {
    /// When the formatted second ends, on the monotonic clock.
    until: Option<Instant>,
    value: Vec<u8>,
}

impl DateCache {
    fn at(&mut self, now: Instant) -> &[u8] {
        if self.until.is_none_or(|until| now >= until) {
            let wall = SystemTime::now();
            let into_second = wall.duration_since(UNIX_EPOCH).map_or(Duration::ZERO, |d| {
                Duration::from_nanos(d.subsec_nanos().into())
            });
            self.until = Some(now + (Duration::from_secs(1) - into_second));
            self.value = httpdate::fmt_http_date(wall).into_bytes();
        }
        &self.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head_of(raw: &[u8], check: impl Fn(Option<DirectHead<'_, '_>>)) {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        assert!(matches!(req.parse(raw), Ok(httparse::Status::Complete(_))));
        check(DirectHead::new(&req));
    }

    #[test]
    fn plain_gets_and_heads_stay_here() {
        head_of(b"GET /a/b.iso?x=1 HTTP/1.1\r\nHost: h\r\n\r\n", |h| {
            let h = h.unwrap();
            assert_eq!(h.path, "/a/b.iso");
            assert_eq!(h.query, Some("x=1"));
            assert!(!h.close);
        });
        head_of(
            b"HEAD /a HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Close\r\n\r\n",
            |h| {
                let h = h.unwrap();
                assert_eq!(h.method, Method::HEAD);
                assert!(h.close);
            },
        );
    }

    #[test]
    fn everything_unusual_goes_to_hyper() {
        for raw in [
            &b"POST /a HTTP/1.1\r\nHost: h\r\n\r\n"[..],
            b"GET /a HTTP/1.0\r\nHost: h\r\n\r\n",
            b"GET http://h/a HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET /a{b} HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET /a#frag HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET /a HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
            b"GET /a HTTP/1.1\r\nHost: h\r\ntransfer-encoding: chunked\r\n\r\n",
            b"GET /a HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n",
            b"GET /a HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            b"GET /a HTTP/1.1\r\nUser-Agent: no-host\r\n\r\n",
            b"GET /a HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n",
        ] {
            head_of(raw, |h| {
                assert!(h.is_none(), "{}", String::from_utf8_lossy(raw));
            });
        }
    }

    proptest::proptest! {
        // Whatever target this path takes, hyper's URI parser takes too and
        // reads the same path and query: both paths answer the same request.
        #[test]
        fn targets_read_here_read_the_same_in_hyper(
            target in "/[A-Za-z0-9._~!$&'()*+,;=:@/?%-]{0,40}|/[ -~\\x80-\\xff]{0,40}"
        ) {
            let raw = format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n");
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut req = httparse::Request::new(&mut headers);
            if !matches!(req.parse(raw.as_bytes()), Ok(httparse::Status::Complete(_))) {
                return Ok(());
            }
            let accepted = DirectHead::new(&req);
            // Every RFC 3986 target is read here.
            if target.bytes().all(|b| TARGET[usize::from(b)]) {
                proptest::prop_assert!(accepted.is_some(), "{}", target);
            }
            if let Some(h) = accepted {
                let uri: http::Uri = target.parse().expect("hyper takes what the direct path takes");
                proptest::prop_assert_eq!(uri.path(), h.path);
                proptest::prop_assert_eq!(uri.query(), h.query);
            }
        }
    }

    #[test]
    fn the_date_is_hypers_format() {
        let mut d = DateCache::default();
        let now = Instant::now();
        let v = String::from_utf8(d.at(now).to_vec()).unwrap();
        assert_eq!(d.at(now), v.as_bytes(), "cached within the second");
        assert_eq!(v.len(), 29, "{v}");
        assert!(v.ends_with(" GMT"), "{v}");
        assert!(httpdate::parse_http_date(&v).is_ok());
    }
}

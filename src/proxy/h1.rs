//! HTTP/1.1 to plain-`http://` mirrors on connections this crate drives
//! itself: the request's own task writes the request head and reads the
//! answer's head, and the body is read from the socket only when the client's
//! side asks for the next frame (so backpressure is the socket's).
//!
//! Why not hyper's client connection: there, every request crosses to the
//! connection's own task and back through channels (the request in, the head
//! out, each body frame out), waking two tasks per step. For small files that
//! traffic cost more than the HTTP itself. Here nothing is spawned and nothing
//! crosses a channel; a body read to its end puts its connection back in the
//! pool at once (see `pool.rs`).
//!
//! What is read (RFC 9112): the status line and headers (httparse; at most
//! [`MAX_HEAD`] bytes and [`MAX_HEADERS`] headers); interim 1xx answers are
//! skipped; the body's framing follows §6.3: none for `HEAD`, 1xx, 204 and
//! 304; chunked when `Transfer-Encoding` ends in `chunked` (any
//! `Content-Length` is then dropped), to the close for another
//! `Transfer-Encoding`; else `Content-Length` (several values must agree);
//! else to the close. Chunk extensions and trailers are read and dropped.
//!
//! A connection is kept for another request only when its answer was
//! HTTP/1.1 without `Connection: close`, its body had a length or chunks and
//! was read to its end, and nothing came after it.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode, Version};
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::pool::Checkin;
use super::UpstreamError;

/// The longest answer head read (hyper's client allows about as much).
pub const MAX_HEAD: usize = 64 * 1024;
/// The most headers an answer may have.
pub const MAX_HEADERS: usize = 100;
/// The most interim (1xx) answers read before the answer.
pub const MAX_INTERIM: usize = 8;
/// Free room made before each read: a small file's head and body arrive in
/// one read. While a body fills every read, the room doubles up to
/// [`MAX_READ_SIZE`]: fewer, larger frames halve the system calls of a large
/// transfer, and memory stays bounded per transfer.
const READ_SIZE: usize = 64 * 1024;
const MAX_READ_SIZE: usize = 256 * 1024;
/// The longest chunk-size line (with its extensions) and the most trailer
/// bytes read; beyond them the answer is refused.
const MAX_CHUNK_LINE: usize = 4 * 1024;
const MAX_TRAILERS: usize = 16 * 1024;

/// An open connection to a mirror, with what was read ahead.
pub(crate) struct Conn {
    io: TcpStream,
    buf: BytesMut,
    /// Room for the next body read (see [`READ_SIZE`]).
    read_size: usize,
}

/// Why an exchange got no usable answer head.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ExchangeError {
    /// The connection failed or closed before any byte of an answer came:
    /// on a reused connection, the mirror closed it while it was idle, and
    /// an idempotent request may be sent again (RFC 9112 §9.3.1).
    NoAnswer,
    /// Anything else: a malformed or oversized answer, or a connection that
    /// broke in the middle of one.
    Failed(UpstreamError),
}

/// An answer's head, and how its body is framed.
pub(crate) struct Answer {
    pub head: Response<()>,
    pub framing: Framing,
    /// The connection may carry another request once the body is read.
    pub keep_alive: bool,
}

impl Conn {
    pub fn new(io: TcpStream) -> Conn {
        Conn {
            io,
            buf: BytesMut::new(),
            read_size: READ_SIZE,
        }
    }

    /// Made ready to wait in the pool: a large body's big buffer is let go
    /// rather than held while idle, and kept from the next, likely small, body.
    fn rest(&mut self) {
        if self.read_size > READ_SIZE {
            self.read_size = READ_SIZE;
            self.buf = BytesMut::new();
        }
    }

    /// True when the mirror has sent nothing since the last answer: no
    /// close, and no unasked answer (some servers send a `408` before they
    /// close an idle connection, which must not be read as the next answer).
    pub fn is_quiet(&self) -> bool {
        // Asked of the socket itself, not of tokio's idea of its readiness,
        // which lags until the reactor next runs; peeking consumes nothing.
        let mut probe = [MaybeUninit::<u8>::uninit(); 1];
        matches!(
            socket2::SockRef::from(&self.io).peek(&mut probe),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock
        )
    }

    /// Sends `request` (a request head, no body) and reads the answer's head.
    pub async fn exchange(
        &mut self,
        request: &[u8],
        method: &Method,
    ) -> Result<Answer, ExchangeError> {
        // A connection with anything left unread is never put back (see
        // `H1Body::finish`): this one is new or ended its last answer cleanly.
        debug_assert!(self.buf.is_empty());
        if self.io.write_all(request).await.is_err() {
            return Err(ExchangeError::NoAnswer);
        }
        let mut got_any = false;
        let mut interim = 0;
        loop {
            if !self.buf.is_empty() {
                if let Some(answer) = parse_answer(&mut self.buf, method, &mut interim)? {
                    return Ok(answer);
                }
            }
            self.buf.reserve(READ_SIZE);
            match self.io.read_buf(&mut self.buf).await {
                Ok(n) if n > 0 => got_any = true,
                _ if got_any => return Err(ExchangeError::Failed(UpstreamError::Other)),
                _ => return Err(ExchangeError::NoAnswer),
            }
        }
    }

    /// The next bytes of a body, or None when it has ended; `Err` for a body
    /// that broke or is malformed.
    fn poll_data(
        &mut self,
        framing: &mut Framing,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Bytes>, UpstreamError>> {
        loop {
            if let Some(data) = framing.take(&mut self.buf)? {
                return Poll::Ready(Ok(Some(data)));
            }
            if framing.is_done() {
                return Poll::Ready(Ok(None));
            }
            self.buf.reserve(self.read_size);
            let room = self.buf.capacity() - self.buf.len();
            let n = ready!(poll_read_buf(&self.io, &mut self.buf, cx))
                .map_err(|_| UpstreamError::Body)?;
            if n == room {
                self.read_size = (self.read_size * 2).min(MAX_READ_SIZE);
            }
            if n == 0 {
                return Poll::Ready(match framing {
                    Framing::Close => {
                        *framing = Framing::Done;
                        Ok(None)
                    }
                    _ => Err(UpstreamError::Body),
                });
            }
        }
    }
}

/// The answer to `method` whose head starts `buf`, when `buf` holds all of
/// that head (interim answers taken out and counted in `interim`); the head
/// is taken out of `buf`. None when more must be read.
fn parse_answer(
    buf: &mut BytesMut,
    method: &Method,
    interim: &mut usize,
) -> Result<Option<Answer>, ExchangeError> {
    let refuse = || ExchangeError::Failed(UpstreamError::Other);
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut headers);
        // The limit holds however the head arrived: whole in one read, too.
        let len = match parsed.parse(buf) {
            Ok(httparse::Status::Complete(len)) if len <= MAX_HEAD => len,
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Ok(None),
            _ => return Err(refuse()),
        };
        let status = parsed
            .code
            .and_then(|c| StatusCode::from_u16(c).ok())
            .ok_or_else(refuse)?;
        let version = match parsed.version {
            Some(1) => Version::HTTP_11,
            _ => Version::HTTP_10,
        };
        if status.is_informational() {
            // 100 and 103 say nothing about the answer to come; a switch
            // of protocol was never asked for.
            // A stream of them would keep the request waiting until
            // its timeout; a few are plenty.
            *interim += 1;
            if status == StatusCode::SWITCHING_PROTOCOLS || *interim > MAX_INTERIM {
                return Err(refuse());
            }
            buf.advance(len);
            continue;
        }
        // One copy of the head holds every value: one allocation per
        // answer rather than one per header.
        let head = Bytes::copy_from_slice(&buf[..len]);
        let start = buf.as_ptr() as usize;
        let mut map = HeaderMap::with_capacity(parsed.headers.len());
        for h in parsed.headers.iter() {
            let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| refuse())?;
            // httparse's values are slices of the buffer parsed.
            let at = (h.value.as_ptr() as usize)
                .checked_sub(start)
                .ok_or_else(refuse)?;
            let raw = head.get(at..at + h.value.len()).ok_or_else(refuse)?;
            let value =
                HeaderValue::from_maybe_shared(head.slice_ref(raw)).map_err(|_| refuse())?;
            map.append(name, value);
        }
        buf.advance(len);
        let (framing, framed) = framing(method, status, &mut map).ok_or_else(refuse)?;
        let keep_alive = framed && version == Version::HTTP_11 && !asks_close(&map);
        let mut head = Response::new(());
        *head.status_mut() = status;
        *head.version_mut() = version;
        *head.headers_mut() = map;
        return Ok(Some(Answer {
            head,
            framing,
            keep_alive,
        }));
    }
}

/// `data` read as a mirror's answer to a `GET`, arriving `step` bytes at a
/// time, through the same head parser and body framing as a real answer:
/// its status and body, or None when it is refused (or ends early, unless
/// its body runs to the close). For the fuzz target and property tests: the
/// result must not depend on `step`, and nothing may panic.
#[doc(hidden)]
pub fn read_answer(data: &[u8], step: usize) -> Option<(u16, Vec<u8>)> {
    let step = step.max(1);
    let mut rest = data;
    let mut buf = BytesMut::new();
    let mut more = |buf: &mut BytesMut| {
        let n = step.min(rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        n > 0
    };
    let mut interim = 0;
    let answer = loop {
        if !buf.is_empty() {
            if let Some(a) = parse_answer(&mut buf, &Method::GET, &mut interim).ok()? {
                break a;
            }
        }
        if !more(&mut buf) {
            return None;
        }
    };
    let mut framing = answer.framing;
    let mut body = Vec::new();
    loop {
        match framing.take(&mut buf).ok()? {
            Some(data) => body.extend_from_slice(&data),
            None if framing.is_done() => break,
            None => {
                if !more(&mut buf) {
                    // The close ends a body read to the close, and breaks any other.
                    if framing != Framing::Close {
                        return None;
                    }
                    break;
                }
            }
        }
    }
    Some((answer.head.status().as_u16(), body))
}

/// Reads what the socket has into the free room of `buf`.
fn poll_read_buf(
    io: &TcpStream,
    buf: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    loop {
        ready!(io.poll_read_ready(cx))?;
        match io.try_read_buf(buf) {
            // The readiness was stale; it is cleared, so the next poll waits.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            r => return Poll::Ready(r),
        }
    }
}

/// The comma-separated tokens of every `name` header, trimmed.
fn tokens<'h>(h: &'h HeaderMap, name: &HeaderName) -> impl DoubleEndedIterator<Item = &'h [u8]> {
    h.get_all(name)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
}

/// True when the answer's `Connection` header says `close`.
fn asks_close(h: &HeaderMap) -> bool {
    tokens(h, &header::CONNECTION).any(|t| t.eq_ignore_ascii_case(b"close"))
}

/// How the body of an answer to `method` is framed, and whether that framing
/// lets the connection carry another request; None for an answer whose
/// length cannot be known (disagreeing or malformed `Content-Length`).
fn framing(method: &Method, status: StatusCode, h: &mut HeaderMap) -> Option<(Framing, bool)> {
    if method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Some((Framing::Done, true));
    }
    if h.contains_key(header::TRANSFER_ENCODING) {
        let chunked = tokens(h, &header::TRANSFER_ENCODING)
            .rfind(|t| !t.is_empty())
            .is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"));
        // The encoding decides the length; a length beside it is wrong
        // (RFC 9112 §6.3) and must not reach the client.
        let had_length = h.remove(header::CONTENT_LENGTH).is_some();
        return Some(if chunked {
            (Framing::Chunked(Chunk::Size), !had_length)
        } else {
            (Framing::Close, false)
        });
    }
    let mut length = None;
    for t in tokens(h, &header::CONTENT_LENGTH) {
        let n = parse_length(t)?;
        if length.is_some_and(|l| l != n) {
            return None;
        }
        length = Some(n);
    }
    Some(match length {
        Some(0) => (Framing::Done, true),
        Some(n) => (Framing::Length(n), true),
        None => (Framing::Close, false),
    })
}

/// A `Content-Length` value: digits only.
fn parse_length(t: &[u8]) -> Option<u64> {
    if t.is_empty() || t.len() > 19 || !t.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(t).ok()?.parse().ok()
}

/// Where a body is in its framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// This many bytes still to come.
    Length(u64),
    Chunked(Chunk),
    /// Everything until the mirror closes the connection.
    Close,
    /// Read to its end.
    Done,
}

/// Up to `left` bytes of what `buf` holds, taken out of it and counted off
/// `left`; None when `buf` is empty.
fn take_up_to(left: &mut u64, buf: &mut BytesMut) -> Option<Bytes> {
    if buf.is_empty() {
        return None;
    }
    let n = (*left).min(buf.len() as u64);
    *left -= n;
    // n is at most buf.len(), a usize.
    Some(buf.split_to(n as usize).freeze())
}

/// Where a chunked body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunk {
    /// Before a chunk-size line.
    Size,
    /// This many bytes of chunk data still to come.
    Data(u64),
    /// Before the line end that follows chunk data.
    DataEnd,
    /// In the trailer section; this many bytes of it read.
    Trailers(usize),
}

impl Framing {
    pub fn is_done(&self) -> bool {
        *self == Framing::Done
    }

    /// Takes the next body bytes out of `buf`, as far as it holds them;
    /// None when more must be read (or the body is done).
    fn take(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, UpstreamError> {
        let malformed = UpstreamError::Body;
        loop {
            match self {
                Framing::Done => return Ok(None),
                Framing::Close => {
                    return Ok((!buf.is_empty()).then(|| buf.split().freeze()));
                }
                Framing::Length(left) => {
                    let data = take_up_to(left, buf);
                    if *left == 0 {
                        *self = Framing::Done;
                    }
                    return Ok(data);
                }
                Framing::Chunked(Chunk::Size) => match httparse::parse_chunk_size(buf) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        buf.advance(used);
                        *self = Framing::Chunked(if size == 0 {
                            Chunk::Trailers(0)
                        } else {
                            Chunk::Data(size)
                        });
                    }
                    Ok(httparse::Status::Partial) if buf.len() < MAX_CHUNK_LINE => return Ok(None),
                    _ => return Err(malformed),
                },
                Framing::Chunked(Chunk::Data(left)) => {
                    let data = take_up_to(left, buf);
                    if *left == 0 {
                        *self = Framing::Chunked(Chunk::DataEnd);
                    }
                    return Ok(data);
                }
                Framing::Chunked(Chunk::DataEnd) => {
                    if buf.len() < 2 {
                        return Ok(None);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(malformed);
                    }
                    buf.advance(2);
                    *self = Framing::Chunked(Chunk::Size);
                }
                Framing::Chunked(Chunk::Trailers(seen)) => {
                    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
                        if *seen + buf.len() > MAX_TRAILERS {
                            return Err(malformed);
                        }
                        return Ok(None);
                    };
                    buf.advance(end + 2);
                    if end == 0 {
                        *self = Framing::Done;
                    } else {
                        *seen += end + 2;
                        if *seen > MAX_TRAILERS {
                            return Err(malformed);
                        }
                    }
                }
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Framing::Length(n) => SizeHint::with_exact(*n),
            Framing::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

/// A mirror's body read from its connection; the connection is handed to
/// `reuse` the moment the body ends (when it may carry another request) and
/// closed otherwise, or when the body is dropped unfinished.
pub(crate) struct H1Body {
    conn: Option<Conn>,
    framing: Framing,
    reuse: Option<Checkin>,
}

impl H1Body {
    pub fn new(conn: Conn, answer_framing: Framing, reuse: Option<Checkin>) -> H1Body {
        let mut body = H1Body {
            conn: Some(conn),
            framing: answer_framing,
            reuse,
        };
        if body.framing.is_done() {
            body.finish();
        }
        body
    }

    /// The body has ended: its connection goes back, or is closed.
    fn finish(&mut self) {
        let (Some(mut conn), Some(reuse)) = (self.conn.take(), self.reuse.take()) else {
            return;
        };
        // Bytes after the end answer no request: the connection is out of step.
        if conn.buf.is_empty() {
            conn.rest();
            reuse.put_back(conn);
        }
    }
}

impl Body for H1Body {
    type Data = Bytes;
    type Error = UpstreamError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, UpstreamError>>> {
        let this = &mut *self;
        let Some(conn) = this.conn.as_mut() else {
            return Poll::Ready(None);
        };
        let r = ready!(conn.poll_data(&mut this.framing, cx));
        match r {
            Ok(data) => {
                if this.framing.is_done() {
                    this.finish();
                }
                Poll::Ready(data.map(|d| Ok(Frame::data(d))))
            }
            Err(e) => {
                this.conn = None;
                this.reuse = None;
                Poll::Ready(Some(Err(e)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.framing.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        self.framing.size_hint()
    }
}

#[cfg(test)]
mod tests;

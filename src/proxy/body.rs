//! A proxied body: the mirror's body passed on frame by frame.
//!
//! Memory per transfer is two frames at most (one being written to the
//! client, one read ahead; see `write_streamed` in `http/conn.rs`) plus the
//! sockets' buffers, whatever the file's size: the mirror's body is polled
//! only when the client's connection asks for the next frame, so a slow
//! client slows the reading from the mirror (TCP flow control does the rest). The idle timeout runs
//! only while waiting on the mirror, never while the client is slow.
//!
//! When the mirror fails mid-body, the body resumes on the next mirror when
//! the answer allows it (see `resume.rs`); otherwise it ends with an error,
//! and hyper closes the client's connection so that the client sees a short
//! body (not a complete-looking one) and can resume with `Range`.
//!
//! The request's outcome (`mirrorgate_requests_total`) is counted here, when
//! the body ends, not when its headers leave: `proxied` for a body passed on
//! whole (or one the client stopped reading), `proxy_error` for one cut
//! short by its mirrors.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use prometheus::IntGauge;
use tokio::time::{Instant, Sleep};

use super::client::UpstreamBody;
use super::failover::Job;
use super::resume::{resume, ResumePlan};
use super::{StreamError, UpstreamError};
use crate::metrics::Outcome;

type Resuming = Pin<Box<dyn Future<Output = Result<(usize, UpstreamBody), UpstreamError>> + Send>>;

/// A body streamed from a mirror.
pub struct ProxyBody {
    job: Arc<Job>,
    /// The hop serving now.
    hop: usize,
    /// None once finished, or while resuming.
    inner: Option<UpstreamBody>,
    resuming: Option<Resuming>,
    plan: Option<ResumePlan>,
    /// Bytes passed on so far.
    sent: u64,
    /// Hops tried so far (they are tried in order, each once).
    tried: usize,
    /// Made at the first wait on the mirror: a small body usually arrives
    /// whole with its headers and never needs a timer.
    idle: Option<Pin<Box<Sleep>>>,
    /// True while the last poll of the mirror's body was pending.
    waiting: bool,
    /// True once the request's outcome has been counted.
    settled: bool,
    _active: Active,
}

/// Counts the transfer in `mirrorgate_proxy_active_transfers` while it lives.
struct Active(IntGauge);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl ProxyBody {
    pub(crate) fn new(
        job: Arc<Job>,
        hop: usize,
        inner: UpstreamBody,
        plan: Option<ResumePlan>,
    ) -> Self {
        let gauge = job.ctx.metrics.proxy_active.clone();
        gauge.inc();
        ProxyBody {
            job,
            hop,
            inner: Some(inner),
            resuming: None,
            plan,
            sent: 0,
            tried: hop + 1,
            idle: None,
            waiting: false,
            settled: false,
            _active: Active(gauge),
        }
    }

    /// Counts the request's outcome, once.
    fn settle(&mut self, outcome: Outcome) {
        if !std::mem::replace(&mut self.settled, true) {
            self.job.ctx.metrics.request(outcome);
        }
    }

    /// Ends the body with `err`: the client gets a short body.
    fn cut_short(&mut self, err: StreamError) -> Poll<Option<Result<Frame<Bytes>, StreamError>>> {
        self.settle(Outcome::ProxyError);
        Poll::Ready(Some(Err(err)))
    }

    /// The mirror failed: resume elsewhere when the plan allows, else the
    /// error that ends the body.
    fn fail(&mut self, kind: UpstreamError) -> Option<StreamError> {
        let hop = &self.job.hops[self.hop];
        self.job.record(hop, kind);
        self.inner = None;
        let tries = self.job.tries_left(self.tried);
        if let Some(plan) = &self.plan {
            let offset = plan.start + self.sent;
            if tries > 0 && offset <= plan.end {
                self.resuming = Some(Box::pin(resume(
                    self.job.clone(),
                    plan.clone(),
                    offset,
                    self.tried,
                    tries,
                )));
                return None;
            }
        }
        Some(StreamError {
            mirror: hop.mirror.name.clone(),
            kind,
        })
    }
}

impl Drop for ProxyBody {
    /// A body dropped before its end: the client left, or it had none to
    /// read (`HEAD`, 304). Nothing a mirror did wrong reached the client.
    fn drop(&mut self) {
        self.settle(Outcome::Proxied);
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = StreamError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamError>>> {
        let this = self.get_mut();
        loop {
            if let Some(fut) = this.resuming.as_mut() {
                let done = match fut.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(r) => r,
                };
                this.resuming = None;
                match done {
                    Ok((hop, body)) => {
                        this.tried = hop + 1;
                        this.hop = hop;
                        this.inner = Some(body);
                        this.waiting = false;
                    }
                    Err(kind) => {
                        let mirror = this.job.hops[this.hop].mirror.name.clone();
                        return this.cut_short(StreamError { mirror, kind });
                    }
                }
            }
            let Some(inner) = this.inner.as_mut() else {
                return Poll::Ready(None);
            };
            match Pin::new(inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    this.waiting = false;
                    if let Some(data) = frame.data_ref() {
                        let n = data.len() as u64;
                        this.sent += n;
                        this.job.hops[this.hop].counters.proxied_bytes.inc_by(n);
                    }
                    // The connection may not ask again once it knows the
                    // body is complete.
                    if this.inner.as_ref().is_some_and(Body::is_end_stream) {
                        this.settle(Outcome::Proxied);
                    }
                    return Poll::Ready(Some(Ok(frame)));
                }
                Poll::Ready(Some(Err(kind))) => {
                    if let Some(err) = this.fail(kind) {
                        return this.cut_short(err);
                    }
                }
                Poll::Ready(None) => {
                    this.inner = None;
                    this.settle(Outcome::Proxied);
                    return Poll::Ready(None);
                }
                Poll::Pending => {
                    let idle_timeout = this.job.settings.idle_timeout;
                    let idle = this
                        .idle
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle_timeout)));
                    if !this.waiting {
                        this.waiting = true;
                        idle.as_mut().reset(Instant::now() + idle_timeout);
                    }
                    if idle.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    this.waiting = false;
                    if let Some(err) = this.fail(UpstreamError::Idle) {
                        return this.cut_short(err);
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.resuming.is_none() && self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.inner, &self.resuming) {
            (Some(b), None) => b.size_hint(),
            _ => SizeHint::default(),
        }
    }
}

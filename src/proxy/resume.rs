//! Resuming a body on the next mirror when its mirror dies mid-body.
//!
//! Only when it is safe to splice two mirrors' bytes: a `GET` answered 200 or
//! a single-range 206, not encoded on the fly (`Content-Encoding`), with a
//! known total size and a validator (`Last-Modified`, or a strong `ETag`).
//! The next mirror is asked for the rest with `Range` and `If-Range`, and its
//! answer is used only when it is a 206 for exactly those bytes of a file of
//! the same size, with the same `ETag` or `Last-Modified`. Otherwise the
//! client's connection is closed and the client resumes by itself.

use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};

use super::client::UpstreamBody;
use super::failover::{attempt, Job};
use super::UpstreamError;
use crate::metrics::FailoverPhase;

/// What a body needs to be resumed elsewhere.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ResumePlan {
    /// Offset of the body's first byte in the file.
    pub start: u64,
    /// Offset of its last byte (inclusive).
    pub end: u64,
    /// The file's size.
    pub total: u64,
    pub etag: Option<HeaderValue>,
    pub last_modified: Option<HeaderValue>,
}

impl ResumePlan {
    /// The plan for an answer, when it can be resumed.
    pub fn new(method: &Method, status: StatusCode, h: &HeaderMap) -> Option<ResumePlan> {
        if method != Method::GET || h.contains_key(header::CONTENT_ENCODING) {
            return None;
        }
        // A weak ETag may not be used in If-Range (RFC 9110 §13.1.5).
        let etag = h
            .get(header::ETAG)
            .filter(|v| !v.as_bytes().starts_with(b"W/"))
            .cloned();
        let last_modified = h.get(header::LAST_MODIFIED).cloned();
        if etag.is_none() && last_modified.is_none() {
            return None;
        }
        let (start, end, total) = match status {
            StatusCode::OK => {
                let total: u64 = h.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()?;
                (0, total.checked_sub(1)?, total)
            }
            StatusCode::PARTIAL_CONTENT => content_range(h.get(header::CONTENT_RANGE)?)?,
            _ => return None,
        };
        Some(ResumePlan {
            start,
            end,
            total,
            etag,
            last_modified,
        })
    }

    /// True when `h` (of a 206) holds exactly `from..=end` of the same file.
    fn matches(&self, from: u64, h: &HeaderMap) -> bool {
        let same_range = h
            .get(header::CONTENT_RANGE)
            .and_then(content_range)
            .is_some_and(|r| r == (from, self.end, self.total));
        let same_etag = self
            .etag
            .as_ref()
            .is_some_and(|e| h.get(header::ETAG) == Some(e));
        let same_time = self
            .last_modified
            .as_ref()
            .is_some_and(|t| h.get(header::LAST_MODIFIED) == Some(t));
        same_range && (same_etag || same_time) && !h.contains_key(header::CONTENT_ENCODING)
    }
}

/// `bytes a-b/total` (a single range of a known size).
pub(crate) fn content_range(v: &HeaderValue) -> Option<(u64, u64, u64)> {
    let s = v.to_str().ok()?.trim().strip_prefix("bytes ")?;
    let (range, total) = s.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    let (a, b, total) = (
        a.trim().parse().ok()?,
        b.trim().parse().ok()?,
        total.trim().parse().ok()?,
    );
    (a <= b && b < total).then_some((a, b, total))
}

/// Asks the hops from `from` on (at most `tries` of them) for the bytes from
/// `offset` on; the hop that answered and its body.
pub(crate) async fn resume(
    job: Arc<Job>,
    plan: ResumePlan,
    offset: u64,
    from: usize,
    tries: usize,
) -> Result<(usize, UpstreamBody), UpstreamError> {
    let deadline = Instant::now() + job.settings.max_total_time;
    let mut h = job.headers.clone();
    for name in [
        header::RANGE,
        header::IF_RANGE,
        header::IF_MATCH,
        header::IF_NONE_MATCH,
        header::IF_MODIFIED_SINCE,
        header::IF_UNMODIFIED_SINCE,
    ] {
        h.remove(name);
    }
    // Bytes are spliced by offset: they must be the file's own bytes.
    h.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    let range = format!("bytes={offset}-{}", plan.end);
    h.insert(
        header::RANGE,
        HeaderValue::from_str(&range).map_err(|_| UpstreamError::Other)?,
    );
    // Mirrors copy files with their times (rsync -t), while ETags are often
    // made from an inode: the time is the validator most likely to agree.
    if let Some(v) = plan.last_modified.as_ref().or(plan.etag.as_ref()) {
        h.insert(header::IF_RANGE, v.clone());
    }
    let mut last = UpstreamError::Other;
    for i in from..(from + tries).min(job.hops.len()) {
        if Instant::now() >= deadline {
            break;
        }
        job.ctx.metrics.proxy_failover(FailoverPhase::MidBody);
        let hop = &job.hops[i];
        match attempt(&job, hop, &h, deadline).await {
            Ok(resp)
                if resp.status() == StatusCode::PARTIAL_CONTENT
                    && plan.matches(offset, resp.headers()) =>
            {
                job.ctx.passive.success(hop);
                return Ok((i, resp.into_body()));
            }
            Ok(_) => {
                job.record(hop, UpstreamError::Mismatch);
                last = UpstreamError::Mismatch;
            }
            Err(kind) => {
                job.record(hop, kind);
                last = kind;
            }
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    #[test]
    fn content_ranges() {
        let p = |s: &str| content_range(&HeaderValue::from_str(s).unwrap());
        assert_eq!(p("bytes 0-9/100"), Some((0, 9, 100)));
        assert_eq!(p("bytes 10-99/100"), Some((10, 99, 100)));
        assert_eq!(p("bytes 10-100/100"), None);
        assert_eq!(p("bytes 5-4/100"), None);
        assert_eq!(p("bytes 0-9/*"), None);
        assert_eq!(p("bytes */100"), None);
        assert_eq!(p("items 0-9/100"), None);
    }

    #[test]
    fn plans_need_a_validator_a_size_and_plain_bytes() {
        let lm = ("last-modified", "Tue, 14 Nov 2023 22:13:20 GMT");
        let full = h(&[("content-length", "100"), lm]);
        let p = ResumePlan::new(&Method::GET, StatusCode::OK, &full).unwrap();
        assert_eq!((p.start, p.end, p.total), (0, 99, 100));
        let part = h(&[("content-range", "bytes 10-19/100"), ("etag", "\"x\"")]);
        let p = ResumePlan::new(&Method::GET, StatusCode::PARTIAL_CONTENT, &part).unwrap();
        assert_eq!((p.start, p.end, p.total), (10, 19, 100));
        assert!(ResumePlan::new(&Method::HEAD, StatusCode::OK, &full).is_none());
        let no_validator = h(&[("content-length", "100")]);
        assert!(ResumePlan::new(&Method::GET, StatusCode::OK, &no_validator).is_none());
        let weak = h(&[("content-length", "100"), ("etag", "W/\"x\"")]);
        assert!(ResumePlan::new(&Method::GET, StatusCode::OK, &weak).is_none());
        let gz = h(&[("content-length", "100"), lm, ("content-encoding", "gzip")]);
        assert!(ResumePlan::new(&Method::GET, StatusCode::OK, &gz).is_none());
        let multipart = h(&[lm, ("content-type", "multipart/byteranges; boundary=x")]);
        assert!(ResumePlan::new(&Method::GET, StatusCode::PARTIAL_CONTENT, &multipart).is_none());
    }

    #[test]
    fn a_resumed_answer_must_be_the_same_file() {
        let lm = ("last-modified", "Tue, 14 Nov 2023 22:13:20 GMT");
        let p = ResumePlan::new(
            &Method::GET,
            StatusCode::OK,
            &h(&[("content-length", "100"), lm]),
        )
        .unwrap();
        assert!(p.matches(40, &h(&[("content-range", "bytes 40-99/100"), lm])));
        assert!(!p.matches(40, &h(&[("content-range", "bytes 40-99/101"), lm])));
        assert!(!p.matches(40, &h(&[("content-range", "bytes 41-99/100"), lm])));
        assert!(!p.matches(
            40,
            &h(&[
                ("content-range", "bytes 40-99/100"),
                ("last-modified", "Wed, 15 Nov 2023 22:13:20 GMT")
            ])
        ));
    }
}

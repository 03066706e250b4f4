//! The body of every answer on the public listener: a small buffer (a
//! redirect's empty body, a one-line error) or a body proxied from a mirror.
//! An enum rather than a boxed body, so that a redirect allocates nothing for it.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, SizeHint};

use crate::proxy::{ProxyBody, StreamError};

/// The response body of the public listener.
pub enum ResponseBody {
    Full(Full<Bytes>),
    // Boxed: a redirect's response stays as small as it was.
    Proxied(Box<ProxyBody>),
}

impl From<Full<Bytes>> for ResponseBody {
    fn from(b: Full<Bytes>) -> Self {
        ResponseBody::Full(b)
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = StreamError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamError>>> {
        // Both variants are Unpin: no projection needed.
        match self.get_mut() {
            ResponseBody::Full(b) => Pin::new(b).poll_frame(cx).map_err(|never| match never {}),
            ResponseBody::Proxied(b) => Pin::new(b.as_mut()).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Full(b) => b.is_end_stream(),
            ResponseBody::Proxied(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Full(b) => b.size_hint(),
            ResponseBody::Proxied(b) => b.size_hint(),
        }
    }
}

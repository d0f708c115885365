//! The one body type of authgate's responses and of the requests it sends upstream.
//!
//! An enum of the bodies authgate actually passes along rather than a boxed trait object: the
//! proxied path (an upstream's response to the client, a client's request to the upstream)
//! and the fixed answers need no allocation and no dynamic call per frame. Anything else (a
//! static file, a size-limited request body) is boxed.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub struct Body(Kind);

enum Kind {
    /// Streamed from the other side of the proxy.
    Incoming(Incoming),
    Full(Full<Bytes>),
    Empty,
    Boxed(UnsyncBoxBody<Bytes, BoxError>),
}

impl Body {
    /// A body streamed from a client or an upstream, passed on as it arrives.
    pub fn incoming(body: Incoming) -> Body {
        Body(Kind::Incoming(body))
    }

    /// Any other body, boxed.
    pub fn boxed<B>(body: B) -> Body
    where
        B: HttpBody<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Body(Kind::Boxed(body.map_err(Into::into).boxed_unsync()))
    }
}

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Body(Kind::Full(Full::new(bytes.into())))
}

pub fn empty() -> Body {
    Body(Kind::Empty)
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        // Every variant is Unpin, so the body is too.
        match &mut self.get_mut().0 {
            Kind::Incoming(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            Kind::Full(b) => Pin::new(b).poll_frame(cx).map_err(|never| match never {}),
            Kind::Empty => Poll::Ready(None),
            Kind::Boxed(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Kind::Incoming(b) => b.is_end_stream(),
            Kind::Full(b) => b.is_end_stream(),
            Kind::Empty => true,
            Kind::Boxed(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Incoming(b) => b.size_hint(),
            Kind::Full(b) => b.size_hint(),
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Boxed(b) => b.size_hint(),
        }
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.0 {
            Kind::Incoming(_) => "incoming",
            Kind::Full(_) => "full",
            Kind::Empty => "empty",
            Kind::Boxed(_) => "boxed",
        };
        f.debug_tuple("Body").field(&kind).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fixed_bodies_read_back_and_say_their_size() {
        let b = full("denied\n");
        assert_eq!(b.size_hint().exact(), Some(7));
        let bytes = b.collect().await.expect("full body").to_bytes();
        assert_eq!(&bytes[..], b"denied\n");
        let e = empty();
        assert!(e.is_end_stream());
        assert!(e.collect().await.expect("empty body").to_bytes().is_empty());
        let boxed = Body::boxed(Full::new(Bytes::from_static(b"x")));
        assert_eq!(boxed.size_hint().exact(), Some(1));
        assert_eq!(&boxed.collect().await.expect("boxed").to_bytes()[..], b"x");
    }
}

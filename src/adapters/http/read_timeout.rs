//! A request body that fails when the client stalls: no frame for
//! `timeout` while the body is being read.
//!
//! Like `tower_http::timeout::TimeoutBody`, but the timer is armed only
//! when the body actually has to wait. A small JSON body has usually arrived
//! with the headers, so most requests never touch the runtime's timer wheel
//! (tower-http's arms a `Sleep` for every frame: three timer-wheel
//! operations per request, ~2 % of server CPU on the verify benchmark).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use http_body::{Frame, SizeHint};

/// How long a client may take to send a request body once its headers
/// arrived (the header read timeout is in `server.rs`): a stalled upload
/// cannot hold a connection, or a graceful shutdown, open. The edge proxy
/// uses the same bound.
pub(crate) const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The error a stalled body ends with.
#[derive(Debug)]
pub struct BodyReadTimeout;

impl std::fmt::Display for BodyReadTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request body read timed out")
    }
}

impl std::error::Error for BodyReadTimeout {}

/// Wraps the connection's body directly (hyper's `Incoming`), so a request
/// body is boxed once, into axum's `Body`, not twice.
pub struct ReadTimeoutBody<B = Body> {
    inner: B,
    timeout: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<B> ReadTimeoutBody<B> {
    pub fn new(inner: B, timeout: Duration) -> Self {
        ReadTimeoutBody {
            inner,
            timeout,
            sleep: None,
        }
    }
}

impl<B> http_body::Body for ReadTimeoutBody<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                // Progress: the next wait gets a fresh timeout.
                this.sleep = None;
                Poll::Ready(frame.map(|r| r.map_err(Into::into)))
            }
            Poll::Pending => {
                let timeout = this.timeout;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(BodyReadTimeout.into()))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use tokio::sync::mpsc;

    use super::*;

    /// A body fed through a channel: pending until a chunk is sent.
    fn channel_body() -> (mpsc::Sender<Result<Frame<Bytes>, std::io::Error>>, Body) {
        let (tx, rx) = mpsc::channel(4);
        let body = http_body_util::StreamBody::new(tokio_stream_from(rx));
        (tx, Body::new(body))
    }

    fn tokio_stream_from<T>(
        mut rx: mpsc::Receiver<T>,
    ) -> impl futures::Stream<Item = T> + Send + 'static
    where
        T: Send + 'static,
    {
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }

    #[tokio::test]
    async fn a_body_already_there_is_read_without_a_timer() {
        let body = ReadTimeoutBody::new(
            Body::from("{\"credential\":\"x\"}"),
            Duration::from_secs(10),
        );
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"{\"credential\":\"x\"}");
    }

    #[tokio::test]
    async fn a_stalled_body_fails_after_the_timeout() {
        let (tx, body) = channel_body();
        tx.send(Ok(Frame::data(Bytes::from_static(b"part one"))))
            .await
            .unwrap();
        let start = tokio::time::Instant::now();
        let err = ReadTimeoutBody::new(body, Duration::from_millis(300))
            .collect()
            .await
            .expect_err("the client never sends the rest");
        assert!(err.is::<BodyReadTimeout>(), "{err}");
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(300) && waited < Duration::from_secs(10),
            "{waited:?}"
        );
        drop(tx);
    }

    #[tokio::test]
    async fn each_frame_resets_the_timeout() {
        let (tx, body) = channel_body();
        let feeder = tokio::spawn(async move {
            for i in 0..5 {
                tokio::time::sleep(Duration::from_millis(250)).await;
                tx.send(Ok(Frame::data(Bytes::from(format!("{i}")))))
                    .await
                    .unwrap();
            }
        });
        // 1.25 s in all, more than the timeout, but 250 ms between frames.
        let bytes = ReadTimeoutBody::new(body, Duration::from_secs(1))
            .collect()
            .await
            .expect("a slow but steady client is served")
            .to_bytes();
        assert_eq!(&bytes[..], b"01234");
        feeder.await.unwrap();
    }
}

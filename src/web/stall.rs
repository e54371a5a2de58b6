//! A time limit on writes that a client does not read.
//!
//! hyper has a timeout for reading a request's headers but none for writing a response. A
//! client that sends a request and then reads nothing keeps its response in progress for as
//! long as the connection stays open: for `/metrics` that holds a permit of
//! `--web.max-requests` and the chunks already written. [`StallLimit`] fails a write that
//! could not proceed for [`WRITE_STALL_TIMEOUT`], so hyper closes the connection and drops
//! the response.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// How long one write may wait for the client to read before the connection is closed. The
/// limit applies to each wait, not to the whole response, so a slow client that keeps
/// reading is never cut, however long the response takes.
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A connection whose writes fail once they have waited [`WRITE_STALL_TIMEOUT`] for the
/// client. Reads pass through unchanged: the header read timeout covers them.
pub(super) struct StallLimit<Io> {
    io: Io,
    limit: Duration,
    /// Started when a write could not proceed, and cleared by the next one that did.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<Io> StallLimit<Io> {
    /// Wraps `io` with the limit [`WRITE_STALL_TIMEOUT`].
    pub(super) fn new(io: Io) -> StallLimit<Io> {
        StallLimit::with_limit(io, WRITE_STALL_TIMEOUT)
    }

    fn with_limit(io: Io, limit: Duration) -> StallLimit<Io> {
        StallLimit {
            io,
            limit,
            stalled: None,
        }
    }

    /// Passes on a write's outcome. A write that is pending starts the stall timer, or fails
    /// once the timer has run out; one that proceeds clears it.
    fn track<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.stalled = None;
            return poll;
        }
        let limit = self.limit;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the client read nothing for {}",
                    humantime::format_duration(limit)
                ),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<Io: AsyncRead + Unpin> AsyncRead for StallLimit<Io> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for StallLimit<Io> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write(cx, buf);
        self.track(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.track(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_flush(cx);
        self.track(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Over TLS a shutdown writes close_notify, which also waits for the client to read.
        let poll = Pin::new(&mut self.io).poll_shutdown(cx);
        self.track(cx, poll)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::time::Instant;

    #[tokio::test(start_paused = true)]
    async fn unread_writes_fail_after_the_limit() {
        let (server, _client) = tokio::io::duplex(1024);
        let mut server = StallLimit::with_limit(server, Duration::from_secs(30));
        let started = Instant::now();
        let error = server
            .write_all(&[0; 4096])
            .await
            .expect_err("wrote 4 KiB that nobody read");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(error.to_string(), "the client read nothing for 30s");
        assert_eq!(started.elapsed(), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn slow_reader_that_keeps_reading_is_never_cut() {
        let (server, mut client) = tokio::io::duplex(1024);
        let mut server = StallLimit::with_limit(server, Duration::from_secs(30));
        // The client reads 1 KiB every 20s: each wait is below the limit, the total is not.
        let reader = tokio::spawn(async move {
            let mut received = 0;
            let mut buffer = [0; 1024];
            while received < 8192 {
                tokio::time::sleep(Duration::from_secs(20)).await;
                received += client.read(&mut buffer).await.unwrap();
            }
            received
        });
        let started = Instant::now();
        server.write_all(&[0; 8192]).await.unwrap();
        assert!(started.elapsed() > Duration::from_secs(30));
        assert_eq!(reader.await.unwrap(), 8192);
    }
}

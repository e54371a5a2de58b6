//! The accept loop of the daemon's HTTP server: HTTP/1.1 on any listener, a limit on how
//! long a client may take to send its request headers, a limit on how long a response may
//! wait for the client to read it ([`super::stall`]), and a graceful stop.
//!
//! `axum::serve` has no header read timeout, so a client that opens connections and sends
//! nothing would hold each one forever. This loop builds the same hyper connections with the
//! timeout set.

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::serve::Listener;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;

use super::stall::StallLimit;

/// How long a client may take to send the request line and headers of each HTTP/1 request,
/// counted from the connection's start or the end of its previous response.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long open connections may take to finish after `stop` before they are dropped.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Turns off Nagle's algorithm on an accepted connection. A streamed or compressed response
/// ends in small writes, and with Nagle on, the last one waits for the client's delayed ACK
/// (40ms on Linux) before it is sent.
pub fn disable_nagle(stream: &tokio::net::TcpStream) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(error = %error, "cannot set TCP_NODELAY on a connection");
    }
}

/// Serves `router` on `listener` until `stop` completes, then lets open connections finish
/// their requests for at most [`DRAIN_TIMEOUT`].
pub async fn serve<L>(mut listener: L, router: Router, stop: impl Future<Output = ()>)
where
    L: Listener,
    L::Addr: Debug,
{
    // HTTP/1.1 only: Prometheus and browsers use it here, and HTTP/2 would bring idle
    // connections that the header read timeout does not cover.
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let graceful = GracefulShutdown::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let (io, peer) = tokio::select! {
            biased;
            () = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        let service = TowerToHyperService::new(router.clone());
        let connection = builder
            .serve_connection(TokioIo::new(StallLimit::new(io)), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(peer = ?peer, error = %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(timeout = ?DRAIN_TIMEOUT, "connections still open after the drain timeout were dropped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::time::Instant;

    use crate::web::WRITE_STALL_TIMEOUT;

    async fn start() -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let router = Router::new().route("/", get(|| async { "hello" }));
        tokio::spawn(serve(listener, router, std::future::pending()));
        address
    }

    #[tokio::test(start_paused = true)]
    async fn silent_client_is_cut_after_header_timeout() {
        let address = start().await;
        let mut client = TcpStream::connect(address).await.unwrap();
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let started = Instant::now();

        let mut reply = Vec::new();
        client.read_to_end(&mut reply).await.unwrap();
        let waited = started.elapsed();
        assert!(waited >= HEADER_READ_TIMEOUT, "cut after {waited:?}");
        assert!(
            waited < HEADER_READ_TIMEOUT + Duration::from_secs(1),
            "cut after {waited:?}"
        );
        assert!(
            !String::from_utf8_lossy(&reply).contains("hello"),
            "a request without its end of headers was answered"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn client_sending_nothing_is_cut_after_header_timeout() {
        let address = start().await;
        let mut client = TcpStream::connect(address).await.unwrap();
        let started = Instant::now();

        let mut reply = Vec::new();
        let limit = HEADER_READ_TIMEOUT + Duration::from_secs(5);
        tokio::time::timeout(limit, client.read_to_end(&mut reply))
            .await
            .expect("the connection was still open")
            .unwrap();
        let waited = started.elapsed();
        assert!(waited >= HEADER_READ_TIMEOUT, "cut after {waited:?}");
        assert!(
            waited < HEADER_READ_TIMEOUT + Duration::from_secs(1),
            "cut after {waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn http2_preface_is_not_served() {
        let address = start().await;
        let mut client = TcpStream::connect(address).await.unwrap();
        client
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .unwrap();
        let started = Instant::now();

        let mut reply = Vec::new();
        let limit = HEADER_READ_TIMEOUT + Duration::from_secs(5);
        let read = tokio::time::timeout(limit, client.read_to_end(&mut reply)).await;
        assert!(read.is_ok(), "the connection was still open");
        assert!(
            started.elapsed() <= HEADER_READ_TIMEOUT + Duration::from_secs(1),
            "an HTTP/2 connection was held for {:?}",
            started.elapsed()
        );
        assert!(
            !String::from_utf8_lossy(&reply).contains("hello"),
            "HTTP/2 was served"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn complete_request_is_answered() {
        let address = start().await;
        let mut client = TcpStream::connect(address).await.unwrap();
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut reply = Vec::new();
        client.read_to_end(&mut reply).await.unwrap();
        let reply = String::from_utf8_lossy(&reply);
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(reply.ends_with("hello"), "{reply}");
    }

    #[tokio::test(start_paused = true)]
    async fn client_that_stops_reading_is_cut() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};

        /// Sets its flag when the response body that owns it is dropped.
        struct Dropped(Arc<AtomicBool>);
        impl Drop for Dropped {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }

        let dropped = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&dropped);
        // 256 MiB, far more than the socket buffers of the loopback connection hold.
        let router = Router::new().route(
            "/",
            get(move || {
                let guard = Dropped(Arc::clone(&flag));
                let chunks = futures_util::stream::iter((0..256).map(move |_| {
                    let _owned = &guard;
                    Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![b'x'; 1 << 20]))
                }));
                async move { axum::body::Body::from_stream(chunks) }
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, router, std::future::pending()));

        let mut client = TcpStream::connect(address).await.unwrap();
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let started = Instant::now();
        while !dropped.load(Ordering::SeqCst) {
            assert!(
                started.elapsed() < WRITE_STALL_TIMEOUT + Duration::from_secs(10),
                "the response was still held after {:?}",
                started.elapsed()
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        assert!(
            started.elapsed() >= WRITE_STALL_TIMEOUT,
            "cut after {:?}",
            started.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn stop_drops_idle_connections() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let router = Router::new().route("/", get(|| async { "hello" }));
        let server = tokio::spawn(serve(listener, router, async {
            let _ = stopped.await;
        }));
        let mut client = TcpStream::connect(address).await.unwrap();
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut first = [0u8; 12];
        client.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"HTTP/1.1 200");

        stop.send(()).unwrap();
        tokio::time::timeout(DRAIN_TIMEOUT + Duration::from_secs(1), server)
            .await
            .expect("the server did not stop")
            .unwrap();
    }
}

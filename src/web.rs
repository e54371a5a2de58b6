//! The daemon's HTTP server: `/metrics`, the status page, the JSON API, and the lifecycle
//! endpoints in the Prometheus style.
//!
//! Handlers only read the status board and the registry; a reload goes through a channel to
//! the task that owns the scheduler. With `--web.config.file`, every route, `/-/healthy`
//! included, requires basic authentication when users are configured, and every response
//! carries the configured headers.

mod page;
mod serve;
mod stall;

pub use serve::{DRAIN_TIMEOUT, HEADER_READ_TIMEOUT, disable_nagle, serve};
pub use stall::WRITE_STALL_TIMEOUT;

use std::sync::{Arc, OnceLock};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tower_http::CompressionLevel;
use tower_http::compression::CompressionLayer;

use crate::metrics::{self, Metrics, Scrape};
use crate::status::{Snapshot, StatusBoard};
use crate::webconfig::LiveWebConfig;

/// A reload request: the reply carries the outcome for the HTTP caller.
pub type ReloadRequest = oneshot::Sender<Result<String, String>>;

/// The state the handlers read.
#[derive(Clone)]
pub struct AppState {
    /// The metric families and their registries.
    pub metrics: Metrics,
    /// The latest state of every endpoint.
    pub board: Arc<StatusBoard>,
    /// The channel that `POST /-/reload` sends its request to; `None` unless `--web.enable-lifecycle`.
    pub reload: Option<mpsc::Sender<ReloadRequest>>,
    /// The web configuration file in force; `None` without `--web.config.file`.
    pub web: Option<Arc<LiveWebConfig>>,
    /// The bound on scrapes of `/metrics` in progress.
    pub scrapes: ScrapeLimit,
}

/// The default of `--web.max-requests`, the value Prometheus's `node_exporter` uses for its flag
/// of the same name.
pub const DEFAULT_MAX_REQUESTS: usize = 40;

/// The maximum number of scrapes of `/metrics` in progress at once. A scrape is in progress until its
/// response body is dropped, whether it was sent in full or the client went away. Each one
/// holds up to a few MiB of chunks, so without a bound many slow clients could take memory
/// without limit.
#[derive(Clone)]
pub struct ScrapeLimit {
    /// One permit per scrape allowed at once.
    permits: Arc<Semaphore>,
    /// The bound, 0 for none.
    max: usize,
}

impl ScrapeLimit {
    /// Returns a bound of `max` scrapes, or no bound for 0: then the semaphore has the most
    /// permits tokio allows, more than there can be connections.
    #[must_use]
    pub fn new(max: usize) -> ScrapeLimit {
        let permits = if max == 0 {
            Semaphore::MAX_PERMITS
        } else {
            max
        };
        ScrapeLimit {
            permits: Arc::new(Semaphore::new(permits)),
            max,
        }
    }

    /// Returns a permit for one scrape, or `None` when `max` scrapes are in progress.
    fn try_start(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.permits).try_acquire_owned().ok()
    }
}

/// Builds the router with every route.
pub fn router(state: AppState) -> Router {
    let web = state.web.clone();
    let router = Router::new()
        .route("/", get(status_page))
        .route("/metrics", get(metrics).layer(metrics_compression()))
        .route("/api/v1/status", get(status_json))
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        .route("/-/reload", post(reload).put(reload))
        .with_state(state);
    match web {
        Some(web) => router.layer(axum::middleware::from_fn_with_state(web, apply_web_config)),
        None => router,
    }
}

/// Checks basic authentication, when users are configured, and adds the configured headers to
/// every response, 401 included.
async fn apply_web_config(
    State(web): State<Arc<LiveWebConfig>>,
    request: Request,
    next: Next,
) -> Response {
    let config = web.current();
    let allowed = match &config.basic_auth {
        Some(auth) => {
            auth.verify(request.headers().get(header::AUTHORIZATION))
                .await
        }
        None => true,
    };
    let mut response = if allowed {
        next.run(request).await
    } else {
        // Neither the user name nor the password is logged: a mistyped user name is often a
        // password pasted into the wrong field.
        tracing::debug!(path = %request.uri().path(), "basic authentication failed");
        (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"ratewatch\", charset=\"UTF-8\""),
            )],
            "Unauthorized\n",
        )
            .into_response()
    };
    for (name, value) in &config.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

/// Chunks of a scrape that wait for the client before the next chunk is written. Each chunk
/// is about 1 MiB.
const SCRAPE_CHUNKS_QUEUED: usize = 2;

/// Compresses a scrape with gzip when the request accepts it, as Prometheus does by default. The
/// fastest level keeps the CPU cost of a scrape low; a scrape's text is repetitive, so even
/// that level shrinks it several times.
fn metrics_compression() -> CompressionLayer {
    CompressionLayer::new()
        .gzip(true)
        .quality(CompressionLevel::Fastest)
}

/// Limits how many blocking threads write scrape chunks at once, to the number of CPUs. A
/// client that aborts scrapes and reconnects at once would otherwise start a writer per
/// scrape, and each writer thread can keep a glibc memory arena of its own. A permit is held
/// only while chunks are written, never while they wait for a slow client.
fn scrape_writers() -> &'static Semaphore {
    static WRITERS: OnceLock<Semaphore> = OnceLock::new();
    WRITERS.get_or_init(|| {
        Semaphore::new(std::thread::available_parallelism().map_or(1, std::num::NonZero::get))
    })
}

/// A scrape that failed while its response was being sent.
#[derive(Debug, thiserror::Error)]
#[error("writing the scrape failed: {0}")]
struct ScrapeError(#[from] tokio::task::JoinError);

/// A chunk of a scrape, or the error that ends its response early.
type ScrapeChunk = Result<Bytes, ScrapeError>;

/// Streams a scrape. A task writes it on blocking threads while earlier chunks are sent, so no
/// runtime worker writes it and no buffer holds all of it.
async fn metrics(State(state): State<AppState>) -> Response {
    let Some(permit) = state.scrapes.try_start() else {
        state.metrics.scrapes_rejected.inc();
        // Debug only, so a flood of scrapes cannot flood the log; the counter shows them.
        tracing::debug!(
            max_requests = state.scrapes.max,
            "scrape of /metrics rejected because the maximum is in progress"
        );
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "{} scrapes of /metrics are in progress, the maximum that --web.max-requests allows; retry when one has ended, or raise the flag\n",
                state.scrapes.max
            ),
        )
            .into_response();
    };
    let (sender, mut receiver) = mpsc::channel(SCRAPE_CHUNKS_QUEUED);
    tokio::spawn(send_scrape(state.metrics.scrape(), sender));
    // The stream owns the permit, so the scrape counts as in progress until the server drops
    // the body: after its last chunk, or when the client goes away.
    let chunks = futures_util::stream::poll_fn(move |context| {
        let _in_progress = &permit;
        receiver.poll_recv(context)
    });
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        Body::from_stream(chunks),
    )
        .into_response()
}

/// The outcome of sending a scrape.
#[derive(Debug, PartialEq, Eq)]
enum ScrapeEnd {
    /// Every chunk was sent.
    Complete,
    /// The response body was dropped, because the client closed the connection or the
    /// request was a `HEAD`, so the rest of the scrape was not written.
    Dropped,
    /// Writing a chunk failed, and the response ends with an error.
    Failed,
}

/// Writes the chunks of a scrape, a few families at a time on a blocking thread, and sends
/// each to `sender`. Writing stops as soon as the receiver is dropped.
async fn send_scrape(mut scrape: Scrape, sender: mpsc::Sender<ScrapeChunk>) -> ScrapeEnd {
    loop {
        if sender.is_closed() {
            return ScrapeEnd::Dropped;
        }
        // The semaphore is never closed, so acquiring it cannot fail.
        let Ok(permit) = scrape_writers().acquire().await else {
            return ScrapeEnd::Failed;
        };
        if sender.is_closed() {
            return ScrapeEnd::Dropped;
        }
        let written = tokio::task::spawn_blocking(move || {
            let chunks = scrape.next_chunks();
            (scrape, chunks)
        })
        .await;
        drop(permit);
        let chunks = match written {
            Ok((rest, chunks)) => {
                scrape = rest;
                chunks
            }
            Err(e) => {
                let error = ScrapeError::from(e);
                tracing::error!(error = %error, "writing the scrape failed, so its response ends early");
                // An error in the body makes the server abort the response, so the client
                // does not take the text sent so far for a whole scrape.
                let _ = sender.send(Err(error)).await;
                return ScrapeEnd::Failed;
            }
        };
        if chunks.is_empty() {
            return ScrapeEnd::Complete;
        }
        for chunk in chunks {
            if sender.send(Ok(Bytes::from_owner(chunk))).await.is_err() {
                return ScrapeEnd::Dropped;
            }
        }
    }
}

async fn healthy() -> &'static str {
    "ratewatch is healthy.\n"
}

async fn ready(State(state): State<AppState>) -> Response {
    if state.metrics.ready.get() == 1 {
        (StatusCode::OK, "ratewatch is ready.\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "ratewatch is not ready.\n").into_response()
    }
}

#[derive(Serialize)]
struct StatusDocument {
    version: &'static str,
    /// Whether probes are sent, as `/-/ready` reports it.
    ready: bool,
    endpoints: Vec<EndpointDocument>,
}

#[derive(Serialize)]
struct EndpointDocument {
    health: &'static str,
    /// Whether a probe was sent whose result has not arrived yet.
    probe_running: bool,
    #[serde(flatten)]
    snapshot: Snapshot,
}

impl EndpointDocument {
    fn new(snapshot: Snapshot) -> EndpointDocument {
        EndpointDocument {
            health: snapshot.health(),
            probe_running: snapshot.probe_running(),
            snapshot,
        }
    }
}

async fn status_json(State(state): State<AppState>) -> Json<StatusDocument> {
    let endpoints = state
        .board
        .snapshot()
        .into_iter()
        .map(EndpointDocument::new)
        .collect();
    Json(StatusDocument {
        version: env!("CARGO_PKG_VERSION"),
        ready: state.metrics.ready.get() == 1,
        endpoints,
    })
}

async fn status_page(State(state): State<AppState>) -> Html<String> {
    Html(page::render(
        &state.board.snapshot(),
        std::time::SystemTime::now(),
        state.metrics.ready.get() == 1,
    ))
}

async fn reload(State(state): State<AppState>) -> Response {
    let Some(sender) = state.reload else {
        return (
            StatusCode::FORBIDDEN,
            "Lifecycle API is not enabled; start ratewatch with --web.enable-lifecycle.\n",
        )
            .into_response();
    };
    let (reply, outcome) = oneshot::channel();
    if sender.send(reply).await.is_err() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "ratewatch is shutting down.\n",
        )
            .into_response();
    }
    match outcome.await {
        Ok(Ok(summary)) => (StatusCode::OK, format!("{summary}\n")).into_response(),
        Ok(Err(error)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reload failed: {error}\n"),
        )
            .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "ratewatch is shutting down.\n",
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use futures_util::StreamExt as _;
    use tower::ServiceExt as _;

    use super::*;
    use crate::config;
    use crate::metrics::EndpointMetrics;
    use crate::secret::SecretSource;
    use crate::status::EndpointStatus;

    /// Returns metrics with `count` endpoints, and their handles, which keep the series.
    fn metrics_with_endpoints(count: usize) -> (Metrics, Vec<EndpointMetrics>) {
        let mut text =
            String::from("apis:\n  - name: a\n    base_url: http://127.0.0.1:9/\n    endpoints:\n");
        for i in 0..count {
            writeln!(text, "      - {{ name: e{i}, path: p{i}, interval: 10s }}").unwrap();
        }
        let config = config::parse(&text, "t.yml", &SecretSource::from_env()).unwrap();
        let metrics = Metrics::new().unwrap();
        let handles = config
            .endpoints
            .iter()
            .map(|e| metrics.endpoint(e))
            .collect();
        (metrics, handles)
    }

    /// Returns the state of a router with no endpoints on its status board, no reload and no
    /// web config.
    fn state_with(metrics: Metrics) -> AppState {
        AppState {
            metrics,
            board: Arc::new(StatusBoard::default()),
            reload: None,
            web: None,
            scrapes: ScrapeLimit::new(DEFAULT_MAX_REQUESTS),
        }
    }

    #[tokio::test]
    async fn metrics_body_equals_encode() {
        // About 4.4 KiB per endpoint, so the scrape spans two chunks of 1 MiB.
        let (metrics, _handles) = metrics_with_endpoints(400);
        let expected = metrics.encode().1;
        let state = state_with(metrics);
        let request = Request::get("/metrics").body(Body::empty()).unwrap();
        let response = router(state).oneshot(request).await.unwrap();

        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/plain; version=0.0.4"
        );
        let mut frames = 0;
        let mut body = Vec::new();
        let mut stream = response.into_body().into_data_stream();
        while let Some(chunk) = stream.next().await {
            body.extend_from_slice(&chunk.unwrap());
            frames += 1;
        }
        assert!(frames > 1, "the body came in {frames} frame");
        assert_eq!(body.len(), expected.len());
        assert!(body == expected, "the streamed body differs from encode()");
    }

    #[tokio::test]
    async fn metrics_gzip_only_when_accepted() {
        let (metrics, _handles) = metrics_with_endpoints(400);
        let expected = metrics.encode().1;
        let state = state_with(metrics);

        let request = Request::get("/metrics")
            .header(header::ACCEPT_ENCODING, "gzip")
            .body(Body::empty())
            .unwrap();
        let response = router(state.clone()).oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/plain; version=0.0.4"
        );
        let compressed = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let mut text = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(&compressed[..]),
            &mut text,
        )
        .unwrap();
        assert!(text == expected, "the gzip body differs from encode()");
        assert!(
            compressed.len() * 4 < expected.len(),
            "{} bytes compressed to {}",
            expected.len(),
            compressed.len()
        );

        for accept in [None, Some("identity"), Some("br")] {
            let mut request = Request::get("/metrics");
            if let Some(accept) = accept {
                request = request.header(header::ACCEPT_ENCODING, accept);
            }
            let response = router(state.clone())
                .oneshot(request.body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(
                response.headers().get(header::CONTENT_ENCODING),
                None,
                "{accept:?}"
            );
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            assert!(body == expected, "plain body differs for {accept:?}");
        }
    }

    #[tokio::test]
    async fn scrape_waits_for_writer_permit() {
        let (metrics, _handles) = metrics_with_endpoints(20);
        let writers = scrape_writers();
        let all =
            u32::try_from(std::thread::available_parallelism().map_or(1, std::num::NonZero::get))
                .unwrap();
        let permits = writers.acquire_many(all).await.unwrap();
        let (sender, mut receiver) = mpsc::channel(1);
        let task = tokio::spawn(send_scrape(metrics.scrape_in_chunks(1024), sender));
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert!(
            matches!(receiver.try_recv(), Err(mpsc::error::TryRecvError::Empty)),
            "a chunk was written without a permit"
        );

        drop(permits);
        let mut body = Vec::new();
        while let Some(chunk) = receiver.recv().await {
            body.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(task.await.unwrap(), ScrapeEnd::Complete);
        assert!(body == metrics.encode().1);
    }

    #[tokio::test]
    async fn send_scrape_sends_every_chunk() {
        let (metrics, _handles) = metrics_with_endpoints(20);
        let (sender, mut receiver) = mpsc::channel(1);
        let task = tokio::spawn(send_scrape(metrics.scrape_in_chunks(1024), sender));
        let mut body = Vec::new();
        while let Some(chunk) = receiver.recv().await {
            body.extend_from_slice(&chunk.unwrap());
        }

        assert_eq!(task.await.unwrap(), ScrapeEnd::Complete);
        assert!(
            body == metrics.encode().1,
            "the sent chunks differ from encode()"
        );
    }

    #[tokio::test]
    async fn send_scrape_stops_when_receiver_dropped() {
        // About 88 chunks of 1 KiB, far more than the channel holds.
        let (metrics, _handles) = metrics_with_endpoints(20);
        let (sender, mut receiver) = mpsc::channel(1);
        let task = tokio::spawn(send_scrape(metrics.scrape_in_chunks(1024), sender));
        let first = receiver.recv().await.unwrap().unwrap();
        assert!(!first.is_empty());
        drop(receiver);

        assert_eq!(task.await.unwrap(), ScrapeEnd::Dropped);
    }

    #[tokio::test]
    async fn dropped_body_returns_chunk_buffers() {
        // About 4.4 MiB, five chunks, more than the channel and the first frame contain.
        let (metrics, _handles) = metrics_with_endpoints(1000);
        let state = state_with(metrics.clone());
        for accept in ["identity", "gzip"] {
            let request = Request::get("/metrics")
                .header(header::ACCEPT_ENCODING, accept)
                .body(Body::empty())
                .unwrap();
            let response = router(state.clone()).oneshot(request).await.unwrap();
            let mut stream = response.into_body().into_data_stream();
            let first = stream.next().await.unwrap().unwrap();
            assert!(!first.is_empty(), "{accept}: empty first frame");
            assert!(
                metrics.chunk_buffers_in_use() > 0,
                "{accept}: no chunk buffer in use while the body is read"
            );
            // The server drops the body when the client closes the connection.
            drop(first);
            drop(stream);

            // The writer runs on a blocking thread, so wait in real time for it to stop.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while metrics.chunk_buffers_in_use() > 0 && std::time::Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            assert_eq!(
                metrics.chunk_buffers_in_use(),
                0,
                "{accept}: chunk buffers still in use after the body was dropped"
            );
        }
    }

    #[tokio::test]
    async fn scrapes_beyond_the_limit_get_503() {
        let (metrics, _handles) = metrics_with_endpoints(10);
        let state = AppState {
            scrapes: ScrapeLimit::new(2),
            ..state_with(metrics.clone())
        };
        let scrape = || {
            let request = Request::get("/metrics").body(Body::empty()).unwrap();
            router(state.clone()).oneshot(request)
        };
        // Two scrapes whose bodies are not read yet, as from slow clients.
        let first = scrape().await.unwrap();
        let second = scrape().await.unwrap();
        assert_eq!(first.status(), StatusCode::OK);
        assert_eq!(second.status(), StatusCode::OK);

        let rejected = scrape().await.unwrap();
        assert_eq!(rejected.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(rejected.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            "2 scrapes of /metrics are in progress, the maximum that --web.max-requests allows; retry when one has ended, or raise the flag\n"
        );
        assert_eq!(metrics.scrapes_rejected.get(), 1);

        // A body read to its end, and one dropped by a client that went away, each end a scrape.
        axum::body::to_bytes(first.into_body(), usize::MAX)
            .await
            .unwrap();
        drop(second);
        for _ in 0..2 {
            let response = scrape().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            let text = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            assert!(
                text.starts_with(b"# HELP"),
                "{}",
                String::from_utf8_lossy(&text)
            );
        }
        assert_eq!(metrics.scrapes_rejected.get(), 1);
    }

    #[tokio::test]
    async fn zero_max_requests_means_no_limit() {
        let (metrics, _handles) = metrics_with_endpoints(1);
        let state = AppState {
            scrapes: ScrapeLimit::new(0),
            ..state_with(metrics.clone())
        };
        let mut open = Vec::new();
        for _ in 0..100 {
            let request = Request::get("/metrics").body(Body::empty()).unwrap();
            let response = router(state.clone()).oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            open.push(response);
        }
        assert_eq!(metrics.scrapes_rejected.get(), 0);
    }

    #[test]
    fn status_json_has_each_key_once() {
        let text = "apis:\n  - name: a\n    base_url: http://127.0.0.1:9/\n    endpoints:\n      - { name: e, path: e, interval: 10s }\n";
        let config = config::parse(text, "t.yml", &SecretSource::from_env()).unwrap();
        let board = StatusBoard::default();
        board.set_endpoints(vec![Arc::new(EndpointStatus::new(&config.endpoints[0]))]);
        let endpoints: Vec<EndpointDocument> = board
            .snapshot()
            .into_iter()
            .map(EndpointDocument::new)
            .collect();
        let json = serde_json::to_string(&endpoints[0]).unwrap();
        assert_eq!(json.matches("\"health\"").count(), 1, "{json}");
        assert!(json.contains("\"health\":\"pending\""), "{json}");
        assert!(json.contains("\"probe_running\":false"), "{json}");
        assert!(json.contains("\"expect\":\"200-299\""), "{json}");
    }
}

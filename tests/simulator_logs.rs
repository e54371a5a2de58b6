//! The simulator's debug log names the endpoint and status but never the key or cookie.
//!
//! This test sets a thread-local subscriber, so it lives in its own test binary: tests running
//! in parallel threads of one binary would race on tracing's per-callsite interest cache.

use axum::body::Body;
use http::{Request, StatusCode};
use ratewatch::simulate::{Scenario, router};
use tower::ServiceExt;

/// A writer that collects log output in memory.
#[derive(Clone, Default)]
struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn debug_log_names_endpoint_not_key() {
    let buffer = LogBuffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // The test runtime is single-threaded, so the in-process router logs on this thread.
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = router(Scenario::default());
    let request = Request::builder()
        .uri("/frontend-api/check-credit")
        .header("authorization", "Bearer secret-key-1")
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let request = Request::builder()
        .uri("/frontend-api/check-credit")
        .header("cookie", "session=secret-cookie-2")
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let logs = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    assert_eq!(
        logs.matches("endpoint=\"check-credit\"").count(),
        2,
        "{logs}"
    );
    assert!(logs.contains("status=200"), "{logs}");
    assert!(!logs.contains("secret-key-1"), "{logs}");
    assert!(!logs.contains("secret-cookie-2"), "{logs}");
}

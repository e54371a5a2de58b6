//! The HTTP prober against small loopback servers: redirects within and across origins,
//! decompressed body caps, truncated bodies, malformed responses, timeouts and
//! name-resolution failures.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use ratewatch::classify::Class;
use ratewatch::config::{self, Endpoint};
use ratewatch::probe::{HttpProber, Prober};
use ratewatch::secret::SecretSource;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    address
}

fn app() -> Router {
    Router::new()
        .route("/ok", get(|| async { "fine" }))
        .route(
            "/moved",
            get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/ok")]) }),
        )
        .route(
            "/zipped",
            get(|| async {
                // 64 KiB of zeros compress to a few hundred bytes.
                let body = gzip(&vec![0u8; 64 * 1024]);
                ([(header::CONTENT_ENCODING, "gzip")], body)
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .route(
            "/echo-auth",
            get(|headers: HeaderMap| async move {
                let seen = headers.get(header::AUTHORIZATION).is_some();
                if seen {
                    StatusCode::OK
                } else {
                    StatusCode::UNAUTHORIZED
                }
                .into_response()
            }),
        )
}

fn endpoint(address: SocketAddr, extra: &str) -> Endpoint {
    let text = format!(
        "apis:\n  - name: t\n    base_url: http://{address}/\n    auth: {{ bearer: {{ env: RW_PROBE_TEST_TOKEN }} }}\n    endpoints:\n      - {{ name: e, interval: 10s, {extra} }}\n"
    );
    let secrets = SecretSource::from_env().with_fallback("RW_PROBE_TEST_TOKEN", "t0ken");
    config::parse(&text, "probe-test.yml", &secrets)
        .unwrap()
        .endpoints
        .remove(0)
}

#[tokio::test]
async fn redirect_is_not_followed_by_default() {
    let address = serve(app()).await;
    let prober = HttpProber::new().unwrap();
    let outcome = prober.probe(&endpoint(address, "path: moved")).await;
    assert_eq!(outcome.class, Class::Redirect);
    assert_eq!(outcome.status, Some(302));
    assert!(!outcome.success);

    let outcome = prober
        .probe(&endpoint(address, "path: moved, follow_redirects: true"))
        .await;
    assert_eq!(outcome.class, Class::Ok);
    assert_eq!(outcome.status, Some(200));
    assert!(outcome.success);
}

#[tokio::test]
async fn body_cap_counts_decompressed_bytes() {
    let address = serve(app()).await;
    let prober = HttpProber::new().unwrap();
    let outcome = prober
        .probe(&endpoint(address, "path: zipped, body_limit: 32KiB"))
        .await;
    assert_eq!(outcome.class, Class::BodyError);
    assert_eq!(outcome.detail, "body over the size limit");
    assert!(!outcome.success);

    let outcome = prober
        .probe(&endpoint(address, "path: zipped, body_limit: 64KiB"))
        .await;
    assert_eq!(outcome.class, Class::Ok);
}

#[tokio::test]
async fn timeout_cuts_a_slow_answer() {
    let address = serve(app()).await;
    let prober = HttpProber::new().unwrap();
    let started = std::time::Instant::now();
    let outcome = prober
        .probe(&endpoint(address, "path: slow, timeout: 300ms"))
        .await;
    assert_eq!(outcome.class, Class::Timeout);
    assert_eq!(outcome.status, None);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn secret_header_is_sent() {
    let address = serve(app()).await;
    let outcome = HttpProber::new()
        .unwrap()
        .probe(&endpoint(address, "path: echo-auth"))
        .await;
    assert_eq!(outcome.status, Some(200));
}

#[tokio::test]
async fn truncated_body_is_a_body_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buffer = [0u8; 2048];
        let _ = socket.read(&mut buffer).await;
        let head = "HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\nonly a little";
        socket.write_all(head.as_bytes()).await.unwrap();
    });
    let outcome = HttpProber::new()
        .unwrap()
        .probe(&endpoint(address, "path: x"))
        .await;
    assert_eq!(outcome.class, Class::BodyError);
    assert_eq!(outcome.status, Some(200));
}

/// Serves one connection on loopback: reads the request, then writes `answer` and closes.
async fn answer_once(answer: Vec<u8>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buffer = [0u8; 2048];
        let _ = socket.read(&mut buffer).await;
        let _ = socket.write_all(&answer).await;
    });
    address
}

#[tokio::test]
async fn garbage_answer_is_named_invalid_response() {
    let address = answer_once(b"this is not http\r\n\r\n".to_vec()).await;
    let outcome = HttpProber::new()
        .unwrap()
        .probe(&endpoint(address, "path: x"))
        .await;
    assert_eq!(outcome.class, Class::ConnectError);
    assert_eq!(outcome.detail, "invalid HTTP response");
    assert_eq!(outcome.status, None);
}

#[tokio::test]
async fn control_byte_in_header_is_invalid_response() {
    let answer = b"HTTP/1.1 200 OK\r\nx-bad: a\x01b\r\ncontent-length: 0\r\n\r\n".to_vec();
    let address = answer_once(answer).await;
    let outcome = HttpProber::new()
        .unwrap()
        .probe(&endpoint(address, "path: x"))
        .await;
    assert_eq!(outcome.class, Class::ConnectError);
    assert_eq!(outcome.detail, "invalid HTTP response");
}

#[tokio::test]
async fn huge_header_section_is_named() {
    let mut answer = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..2000 {
        answer.extend_from_slice(format!("x-filler-{i}: {}\r\n", "a".repeat(1000)).as_bytes());
    }
    answer.extend_from_slice(b"content-length: 0\r\n\r\n");
    let address = answer_once(answer).await;
    let outcome = HttpProber::new()
        .unwrap()
        .probe(&endpoint(address, "path: x"))
        .await;
    assert_eq!(outcome.class, Class::ConnectError);
    assert_eq!(
        outcome.detail,
        "invalid HTTP response: header section too large"
    );
}

#[tokio::test]
async fn closed_connection_without_answer_is_named() {
    let address = answer_once(Vec::new()).await;
    let outcome = HttpProber::new()
        .unwrap()
        .probe(&endpoint(address, "path: x"))
        .await;
    assert_eq!(outcome.class, Class::ConnectError);
    assert_eq!(
        outcome.detail,
        "connection closed before a complete response"
    );
}

#[tokio::test]
async fn refused_connection_is_named() {
    // Bind and drop a listener, so the port is very likely closed.
    let address = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let outcome = HttpProber::new()
        .unwrap()
        .probe(&endpoint(address, "path: x"))
        .await;
    assert_eq!(outcome.class, Class::ConnectError);
    assert_eq!(outcome.detail, "connection refused");
}

/// Headers of every request that reached the other origin.
type Seen = Arc<Mutex<Vec<HeaderMap>>>;

/// Serves `/landing` on a second loopback port and records the headers it receives.
async fn other_origin() -> (SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    let recorder = seen.clone();
    let router = Router::new().route(
        "/landing",
        get(move |headers: HeaderMap| async move {
            recorder.lock().unwrap().push(headers);
            "landed"
        }),
    );
    (serve(router).await, seen)
}

/// Serves the routes of [`app`] and `/away`, which redirects to `target`.
async fn redirecting_origin(target: String) -> SocketAddr {
    let router = app().route(
        "/away",
        get(move || async move { (StatusCode::FOUND, [(header::LOCATION, target)]) }),
    );
    serve(router).await
}

fn endpoint_with_key(address: SocketAddr, path: &str) -> Endpoint {
    let text = format!(
        "apis:\n  - name: t\n    base_url: http://{address}/\n    headers:\n      X-Api-Key: {{ env: RW_PROBE_TEST_KEY }}\n    endpoints:\n      - {{ name: e, interval: 10s, path: {path}, follow_redirects: true }}\n"
    );
    let secrets = SecretSource::from_env().with_fallback("RW_PROBE_TEST_KEY", "k3y-canary");
    config::parse(&text, "probe-test.yml", &secrets)
        .unwrap()
        .endpoints
        .remove(0)
}

#[tokio::test]
async fn secret_header_never_follows_cross_origin_redirect() {
    let (other, seen) = other_origin().await;
    let origin = redirecting_origin(format!("http://{other}/landing")).await;
    let prober = HttpProber::new().unwrap();

    let outcome = prober.probe(&endpoint_with_key(origin, "away")).await;
    assert_eq!(outcome.class, Class::Redirect);
    assert_eq!(outcome.status, Some(302));
    assert!(!outcome.success);
    assert_eq!(
        outcome.detail,
        "redirect to another origin not followed because the request carries secrets"
    );
    assert!(seen.lock().unwrap().is_empty(), "a request left the origin");

    let outcome = prober
        .probe(&endpoint(origin, "path: away, follow_redirects: true"))
        .await;
    assert_eq!(
        outcome.class,
        Class::Redirect,
        "auth stops at the origin too"
    );
    assert!(seen.lock().unwrap().is_empty(), "a request left the origin");
}

#[tokio::test]
async fn secret_header_follows_same_origin_redirect() {
    let address = serve(app()).await;
    let outcome = HttpProber::new()
        .unwrap()
        .probe(&endpoint_with_key(address, "moved"))
        .await;
    assert_eq!(outcome.class, Class::Ok);
    assert_eq!(outcome.status, Some(200));
    assert_eq!(outcome.detail, "");
}

#[tokio::test]
async fn request_without_secrets_follows_cross_origin_redirect() {
    let (other, seen) = other_origin().await;
    let origin = redirecting_origin(format!("http://{other}/landing")).await;
    let text = format!(
        "apis:\n  - name: t\n    base_url: http://{origin}/\n    headers:\n      X-Trace: plain\n    endpoints:\n      - {{ name: e, interval: 10s, path: away, follow_redirects: true }}\n"
    );
    let endpoint = config::parse(&text, "probe-test.yml", &SecretSource::from_env())
        .unwrap()
        .endpoints
        .remove(0);
    let outcome = HttpProber::new().unwrap().probe(&endpoint).await;
    assert_eq!(outcome.class, Class::Ok);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].get("x-trace").unwrap(), "plain");
    assert!(seen[0].get(header::REFERER).is_none(), "no Referer is sent");
}

/// A resolver that fails every lookup, so the test touches no real DNS server.
struct FailingResolver;

impl reqwest::dns::Resolve for FailingResolver {
    fn resolve(&self, _name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async {
            let error: Box<dyn std::error::Error + Send + Sync> = Box::new(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such host",
            ));
            Err(error)
        })
    }
}

#[tokio::test]
async fn failed_lookup_is_a_dns_error() {
    let prober = HttpProber::with_resolver(&Arc::new(FailingResolver)).unwrap();
    let text = "apis:\n  - name: t\n    base_url: http://api.invalid/\n    endpoints:\n      - { name: e, path: x, interval: 10s }\n";
    let endpoint = config::parse(text, "t.yml", &SecretSource::from_env())
        .unwrap()
        .endpoints
        .remove(0);
    let outcome = prober.probe(&endpoint).await;
    assert_eq!(outcome.class, Class::DnsError);
    assert_eq!(outcome.status, None);
}

//! Headroom headers read from real responses: an axum server on loopback sends several header
//! styles, reqwest fetches them over HTTP/1.1 and over HTTP/2 with prior knowledge, and both
//! header maps must give the same report. A hand-written HTTP/1.1 server also sends the names
//! in mixed case on the wire.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Version};
use axum::routing::get;
use ratewatch::headroom::{
    HeaderReport, HeadroomConfig, PolicyState, RetryAfter, RetryAfterForm, Source, pace,
    read_headers,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// 2025-01-01T00:00:00Z as Unix seconds; the time every response is read at.
const NOW_UNIX: u64 = 1_735_689_600;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Returns the header lines every server sends, with names in mixed case.
fn header_lines() -> Vec<(&'static str, String)> {
    vec![
        ("Retry-After", "Wed, 01 Jan 2025 00:02:00 GMT".to_owned()),
        ("X-RateLimit-Limit", "5000".to_owned()),
        ("x-RATELIMIT-remaining", "4990".to_owned()),
        ("X-Ratelimit-Reset", (NOW_UNIX + 3000).to_string()),
        ("RateLimit-Policy", r#""default";q=100;w=3600"#.to_owned()),
        ("RATELIMIT-POLICY", r#""daily";q=1000;w=86400"#.to_owned()),
        (
            "RateLimit",
            r#""default";r=42;t=1800, "daily";r=900;t=50000"#.to_owned(),
        ),
    ]
}

fn expected_report() -> HeaderReport {
    let ietf = |name: &str, limit, remaining, reset, window| PolicyState {
        source: Source::Ietf,
        policy: Some(name.to_owned()),
        limit: Some(limit),
        remaining: Some(remaining),
        reset_after: Some(Duration::from_secs(reset)),
        window: Some(Duration::from_secs(window)),
    };
    HeaderReport {
        retry_after: Some(RetryAfter::Delay {
            wait: Duration::from_secs(120),
            form: RetryAfterForm::HttpDate,
            clamped: false,
        }),
        policies: vec![
            PolicyState {
                source: Source::XRateLimit,
                policy: None,
                limit: Some(5000),
                remaining: Some(4990),
                reset_after: Some(Duration::from_secs(3000)),
                window: None,
            },
            ietf("default", 100, 42, 1800, 3600),
            ietf("daily", 1000, 900, 50_000, 86_400),
        ],
        errors: Vec::new(),
    }
}

fn read(headers: &HeaderMap) -> HeaderReport {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(NOW_UNIX);
    read_headers(headers, now, &HeadroomConfig::default())
}

/// Starts an axum server on loopback that responds to every request with 429 and
/// [`header_lines`]. Names are built from mixed-case bytes, which `HeaderName` lowercases.
async fn start_axum() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let app = Router::new().route(
        "/",
        get(|| async {
            let mut headers = HeaderMap::new();
            for (name, value) in header_lines() {
                headers.append(
                    HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_str(&value).unwrap(),
                );
            }
            (StatusCode::TOO_MANY_REQUESTS, headers, "slow down")
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (address, server)
}

/// Starts a one-shot HTTP/1.1 server on loopback that writes [`header_lines`] with their
/// names exactly as written, so the names reach the client in mixed case.
async fn start_raw_http1() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buffer = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let read = stream.read(&mut buffer).await.unwrap();
            assert!(read > 0, "client closed before sending a full request");
            request.extend_from_slice(&buffer[..read]);
        }
        let mut response = String::from("HTTP/1.1 429 Too Many Requests\r\n");
        for (name, value) in header_lines() {
            write!(response, "{name}: {value}\r\n").unwrap();
        }
        response.push_str("Content-Length: 0\r\nConnection: close\r\n\r\n");
        stream.write_all(response.as_bytes()).await.unwrap();
        stream.shutdown().await.unwrap();
    });
    (address, server)
}

async fn fetch(client: &reqwest::Client, address: SocketAddr) -> (Version, HeaderMap) {
    let response = client
        .get(format!("http://{address}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    (response.version(), response.headers().clone())
}

fn http1_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .http1_only()
        .build()
        .unwrap()
}

fn http2_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .http2_prior_knowledge()
        .build()
        .unwrap()
}

#[tokio::test]
async fn http1_and_http2_reports_match() {
    let (address, server) = start_axum().await;

    let (version_1, headers_1) = fetch(&http1_client(), address).await;
    let (version_2, headers_2) = fetch(&http2_client(), address).await;
    server.abort();

    assert_eq!(version_1, Version::HTTP_11);
    assert_eq!(version_2, Version::HTTP_2);
    let report_1 = read(&headers_1);
    let report_2 = read(&headers_2);
    assert_eq!(report_1, expected_report());
    assert_eq!(report_2, report_1);
}

#[tokio::test]
async fn http_report_paces_by_most_restrictive_policy() {
    let (address, server) = start_axum().await;
    let (_, headers) = fetch(&http2_client(), address).await;
    server.abort();

    let report = read(&headers);
    let chosen = report.most_restrictive().unwrap();
    assert_eq!(chosen.policy.as_deref(), Some("daily"));
    // The daily quota allows 900 requests in 50000 s, one per 55.5 s.
    let expected = Duration::from_secs(50_000) / 900;
    assert_eq!(pace(&report, Duration::from_secs(1)), Some(expected));
    assert_eq!(
        pace(&report, Duration::from_secs(120)),
        Some(Duration::from_secs(120))
    );
}

#[tokio::test]
async fn mixed_case_wire_names_match() {
    let (address, server) = start_raw_http1().await;
    let (version, headers) = fetch(&http1_client(), address).await;
    server.await.unwrap();

    assert_eq!(version, Version::HTTP_11);
    assert_eq!(read(&headers), expected_report());
}

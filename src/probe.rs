//! One probe: one request, one attempt, bounded in time and in body bytes.
//!
//! A failed probe is data, not an error: every call returns an [`Outcome`] with its class.
//! There are no retries, and redirects are followed only when the endpoint says so.

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use reqwest::redirect::Policy;
use tokio::time::Instant;

use crate::classify::Class;
use crate::config::{Endpoint, HeaderText};

/// The maximum number of redirects followed when an endpoint enables them.
const MAX_REDIRECTS: usize = 5;

/// The result of one probe.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The class of the result.
    pub class: Class,
    /// The status code, when a response arrived.
    pub status: Option<u16>,
    /// Whether the status is one the endpoint expects and the body was read in full, judged
    /// by the `expect` the probe was sent under. The status board judges the response again
    /// by the `expect` in force when it arrives, and the metrics record that verdict.
    pub success: bool,
    /// From sending the request to the end of the body, or to the failure.
    pub duration: Duration,
    /// The response headers; empty when no response arrived.
    pub headers: HeaderMap,
    /// The body, kept only for endpoints that read a credit balance from it.
    pub body: Option<Vec<u8>>,
    /// A short, bounded description of a failure for debug logs; never contains a URL or secret.
    pub detail: &'static str,
}

impl Outcome {
    fn failure(class: Class, detail: &'static str, started: Instant) -> Outcome {
        Outcome {
            class,
            status: None,
            success: false,
            duration: started.elapsed(),
            headers: HeaderMap::new(),
            body: None,
            detail,
        }
    }
}

/// Something that probes endpoints. The daemon uses [`HttpProber`]; scheduler tests use
/// probers that respond in virtual time.
pub trait Prober: Send + Sync + 'static {
    /// Sends one request to the endpoint and reports what happened.
    fn probe(&self, endpoint: &Endpoint) -> impl Future<Output = Outcome> + Send;
}

/// A client that cannot be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client: {0}")]
pub struct ProbeError(#[from] reqwest::Error);

/// The HTTP prober, with one client that does not follow redirects and two that do. The
/// second serves endpoints without secrets. The third serves endpoints that send a secret
/// header or auth, and stops at the first redirect to another origin (scheme, host, port).
#[derive(Clone)]
pub struct HttpProber {
    direct: reqwest::Client,
    following: reqwest::Client,
    following_same_origin: reqwest::Client,
}

impl HttpProber {
    /// Builds the clients with the system resolver.
    pub fn new() -> Result<HttpProber, ProbeError> {
        Self::build(|b| b)
    }

    /// Builds the clients with a custom resolver, for tests that must not touch real DNS.
    pub fn with_resolver<R: reqwest::dns::Resolve + 'static>(
        resolver: &Arc<R>,
    ) -> Result<HttpProber, ProbeError> {
        Self::build(|b| b.dns_resolver(resolver.clone()))
    }

    fn build(
        customise: impl Fn(reqwest::ClientBuilder) -> reqwest::ClientBuilder,
    ) -> Result<HttpProber, ProbeError> {
        let base = || {
            // A fresh connection per probe measures what a new client sees (DNS, connect,
            // TLS) and keeps no idle sockets across long intervals. No Referer is sent,
            // because the previous URL may carry a query string with a key.
            reqwest::Client::builder()
                .user_agent(concat!("ratewatch/", env!("CARGO_PKG_VERSION")))
                .pool_max_idle_per_host(0)
                .referer(false)
        };
        Ok(HttpProber {
            direct: customise(base().redirect(Policy::none())).build()?,
            following: customise(base().redirect(Policy::limited(MAX_REDIRECTS))).build()?,
            following_same_origin: customise(base().redirect(same_origin_policy())).build()?,
        })
    }

    fn client(&self, endpoint: &Endpoint) -> &reqwest::Client {
        if !endpoint.follow_redirects {
            &self.direct
        } else if carries_secrets(endpoint) {
            &self.following_same_origin
        } else {
            &self.following
        }
    }

    async fn send(&self, endpoint: &Endpoint, started: Instant) -> Outcome {
        let mut request = self
            .client(endpoint)
            .request(endpoint.method.clone(), endpoint.url.clone());
        for (name, text) in &endpoint.headers {
            let value = match text {
                HeaderText::Literal(text) => http::HeaderValue::from_str(text),
                HeaderText::Secret(secret) => {
                    http::HeaderValue::from_str(secret.expose()).map(|mut v| {
                        v.set_sensitive(true);
                        v
                    })
                }
            };
            // Values were checked at load; a value that fails here is skipped, not logged.
            if let Ok(value) = value {
                request = request.header(name, value);
            }
        }
        if let Some(body) = &endpoint.body {
            request = request.body(body.clone());
        }

        let mut response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                let (class, detail) = classify_error(&e);
                return Outcome::failure(class, detail, started);
            }
        };
        let status = response.status().as_u16();
        let final_url = response.url().clone();
        let headers = std::mem::take(response.headers_mut());
        let keep = endpoint.credit.is_some();
        let (body, failure) = read_body(response, endpoint.body_limit, keep).await;
        let class = failure.map_or_else(|| Class::from_status(status), |_| Class::BodyError);
        let stopped = endpoint.follow_redirects
            && class == Class::Redirect
            && leaves_origin(&endpoint.url, &final_url, &headers);
        let detail = match failure {
            Some(failure) => failure,
            None if stopped => {
                "redirect to another origin not followed because the request carries secrets"
            }
            None => "",
        };
        Outcome {
            class,
            status: Some(status),
            success: failure.is_none() && endpoint.expect.matches(status),
            duration: started.elapsed(),
            headers,
            body,
            detail,
        }
    }
}

impl Prober for HttpProber {
    async fn probe(&self, endpoint: &Endpoint) -> Outcome {
        let started = Instant::now();
        match tokio::time::timeout(endpoint.timeout, self.send(endpoint, started)).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::failure(
                Class::Timeout,
                "no complete response within the timeout",
                started,
            ),
        }
    }
}

/// Reports whether the endpoint sends a header given as a secret reference. Auth counts,
/// because it is stored as a secret `Authorization` header.
fn carries_secrets(endpoint: &Endpoint) -> bool {
    endpoint
        .headers
        .iter()
        .any(|(_, text)| matches!(text, HeaderText::Secret(_)))
}

/// Returns a redirect policy that follows at most [`MAX_REDIRECTS`] redirects and stops,
/// returning the 3xx response, at the first one whose target has another origin than the
/// first request. reqwest drops `Authorization` and `Cookie` on a cross-origin redirect but
/// forwards every other header, such as `X-Api-Key`, so a request that carries a secret
/// never leaves its origin.
fn same_origin_policy() -> Policy {
    Policy::custom(|attempt| {
        let Some(first) = attempt.previous().first() else {
            return attempt.stop();
        };
        if attempt.url().origin() != first.origin() {
            attempt.stop()
        } else if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error("too many redirects")
        } else {
            attempt.follow()
        }
    })
}

/// Reports whether a 3xx response at `current` points, through its `Location` header, to an
/// origin other than the endpoint's.
fn leaves_origin(endpoint: &url::Url, current: &url::Url, headers: &HeaderMap) -> bool {
    let Some(location) = headers
        .get(http::header::LOCATION)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    current
        .join(location)
        .is_ok_and(|next| next.origin() != endpoint.origin())
}

/// Reads the body up to `limit` bytes after decompression. Returns the bytes when `keep` is
/// set, and a failure description when the body could not be read in full.
async fn read_body(
    mut response: reqwest::Response,
    limit: u64,
    keep: bool,
) -> (Option<Vec<u8>>, Option<&'static str>) {
    let mut kept = Vec::new();
    let mut total: u64 = 0;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                total = total.saturating_add(chunk.len() as u64);
                if total > limit {
                    return (None, Some("body over the size limit"));
                }
                if keep {
                    kept.extend_from_slice(&chunk);
                }
            }
            Ok(None) => return (keep.then_some(kept), None),
            Err(e) if e.is_decode() => return (None, Some("body failed to decode")),
            Err(_) => return (None, Some("body could not be read")),
        }
    }
}

/// Maps a request error to its class by walking the error chain. hyper and rustls do not
/// expose stable error kinds through reqwest, so DNS and TLS failures are matched by message.
/// The class list is fixed, so a malformed response stays `connect_error`, but its detail
/// names what happened.
///
/// NOTE: the message matching depends on the wording of hyper-util's "dns error" and of
/// rustls's messages; an unrecognised connect failure falls back to `connect_error`.
fn classify_error(error: &reqwest::Error) -> (Class, &'static str) {
    if error.is_timeout() {
        return (Class::Timeout, "no complete response within the timeout");
    }
    if error.is_redirect() {
        return (Class::Redirect, "too many redirects");
    }
    if error.is_body() || error.is_decode() {
        return (Class::BodyError, "body could not be read");
    }
    let chain = error_chain_text(error);
    if chain.contains("dns error") || chain.contains("failed to lookup address") {
        return (Class::DnsError, "name resolution failed");
    }
    let tls_words = [
        "tls",
        "certificate",
        "handshake",
        "corrupt message",
        "invalidcontenttype",
        "peer sent",
    ];
    if tls_words.iter().any(|w| chain.contains(w)) {
        return (Class::TlsError, "TLS handshake failed");
    }
    (Class::ConnectError, transport_detail(error))
}

/// Describes a transport failure from the first hyper or I/O error in the chain.
fn transport_detail(error: &reqwest::Error) -> &'static str {
    let mut source: Option<&dyn StdError> = error.source();
    while let Some(e) = source {
        if let Some(hyper_error) = e.downcast_ref::<hyper::Error>() {
            if hyper_error.is_parse_too_large() {
                return "invalid HTTP response: header section too large";
            }
            if hyper_error.is_parse_status() {
                return "invalid HTTP response: bad status code";
            }
            if hyper_error.is_parse() {
                return "invalid HTTP response";
            }
            if hyper_error.is_incomplete_message() {
                return "connection closed before a complete response";
            }
        }
        if let Some(io_error) = e.downcast_ref::<std::io::Error>() {
            match io_error.kind() {
                std::io::ErrorKind::ConnectionRefused => return "connection refused",
                std::io::ErrorKind::ConnectionReset => return "connection reset",
                std::io::ErrorKind::ConnectionAborted => return "connection aborted",
                std::io::ErrorKind::UnexpectedEof => {
                    return "connection closed before a complete response";
                }
                _ => {}
            }
        }
        source = e.source();
    }
    "connection failed"
}

fn error_chain_text(error: &reqwest::Error) -> String {
    let mut text = String::new();
    let mut source: Option<&dyn StdError> = error.source();
    while let Some(e) = source {
        text.push_str(&e.to_string().to_ascii_lowercase());
        text.push('\n');
        source = e.source();
    }
    text
}

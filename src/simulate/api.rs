//! Request handling: authentication, rate limits, faults, validation and the responses.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use axum::Json;
use axum::body::Bytes;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::json;
use tokio::time::Instant;
use tracing::debug;

use super::bodies::{self, ValidBody};
use super::endpoint::Endpoint;
use super::headers::{ceil_seconds, insert_rate_limit_headers};
use super::keys::{KeyTable, MAX_TRACKED_KEYS};
use super::scenario::{Fault, Scenario};
use super::stats::{EndpointReport, EndpointStats};
use super::window::{Admission, Quota};

/// The simulator's shared state.
#[derive(Debug)]
pub(crate) struct Simulator {
    scenario: Scenario,
    started: Instant,
    hasher: RandomState,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    keys: KeyTable,
    stats: Vec<EndpointStats>,
    /// Requests counted by each fault, per endpoint, in the order of the scenario's faults.
    fault_counts: Vec<Vec<u64>>,
    issued_keys: u64,
}

/// The outcome of the checks made under the lock, before any delay.
enum Gate<'a> {
    MethodNotAllowed,
    Unauthorized,
    Forbidden,
    RateLimited {
        retry_after: std::time::Duration,
        quotas: Vec<Quota>,
    },
    Passed {
        key: String,
        quotas: Vec<Quota>,
        fault: Option<&'a Fault>,
    },
}

impl Simulator {
    /// Creates the state for `scenario`, starting the fault clock now.
    pub(crate) fn new(scenario: Scenario) -> Self {
        let stats = Endpoint::ALL
            .iter()
            .map(|&e| EndpointStats::new(e, &scenario.endpoint(e).limits))
            .collect();
        let fault_counts = Endpoint::ALL
            .iter()
            .map(|&e| vec![0; scenario.endpoint(e).faults.len()])
            .collect();
        let inner = Inner {
            keys: KeyTable::new(MAX_TRACKED_KEYS, scenario.credit.start_micros),
            stats,
            fault_counts,
            issued_keys: 0,
        };
        Self {
            scenario,
            started: Instant::now(),
            hasher: RandomState::new(),
            inner: Mutex::new(inner),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every critical section leaves the state consistent, so a panic elsewhere does not
        // make it unusable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Builds the stats report, keyed by endpoint name.
    pub(crate) fn stats(&self) -> BTreeMap<&'static str, EndpointReport> {
        let inner = self.lock();
        Endpoint::ALL
            .iter()
            .map(|&e| (e.name(), inner.stats[e.index()].report()))
            .collect()
    }

    /// Responds to one request to `endpoint` and counts it in the stats.
    pub(crate) async fn handle(
        self: Arc<Self>,
        endpoint: Endpoint,
        method: Method,
        headers: HeaderMap,
        body: Bytes,
    ) -> Response {
        let response = self.respond(endpoint, &method, &headers, &body).await;
        let status = response.status().as_u16();
        self.lock().stats[endpoint.index()].record_status(status);
        debug!(
            endpoint = endpoint.name(),
            status, "simulator sent response"
        );
        response
    }

    async fn respond(
        &self,
        endpoint: Endpoint,
        method: &Method,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Response {
        let key = request_key(headers);
        let (key, quotas, fault) = match self.gate(endpoint, method, key) {
            Gate::MethodNotAllowed => {
                let mut response = error_response(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    &format!("use {} for this endpoint", endpoint.method()),
                );
                response.headers_mut().insert(
                    header::ALLOW,
                    HeaderValue::from_str(endpoint.method().as_str())
                        .expect("method names are valid header values"),
                );
                return response;
            }
            Gate::Unauthorized => {
                return error_response(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "missing API key: send Authorization: Bearer KEY or Cookie: session=KEY",
                );
            }
            Gate::Forbidden => {
                return error_response(StatusCode::FORBIDDEN, "forbidden", "this key is blocked");
            }
            Gate::RateLimited {
                retry_after,
                quotas,
            } => {
                let mut response = error_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    "rate limit reached: wait for the time in Retry-After",
                );
                let seconds = ceil_seconds(retry_after).max(1);
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
                self.add_rate_limit_headers(endpoint, &mut response, &quotas);
                return response;
            }
            Gate::Passed { key, quotas, fault } => (key, quotas, fault),
        };

        if let Some(delay) = fault.and_then(|f| f.delay) {
            tokio::time::sleep(delay).await;
        }
        let mut response = match fault.and_then(|f| f.response.as_ref()) {
            Some(injected) => {
                let mut response = (injected.status, Json(injected.body.clone())).into_response();
                if let Some(retry_after) = &injected.retry_after {
                    response
                        .headers_mut()
                        .insert(header::RETRY_AFTER, retry_after.clone());
                }
                response
            }
            None => match bodies::validate(endpoint, body) {
                Err(message) => error_response(StatusCode::BAD_REQUEST, "bad_request", &message),
                Ok(valid) => self.serve_endpoint(endpoint, &key, valid),
            },
        };
        self.add_rate_limit_headers(endpoint, &mut response, &quotas);
        response
    }

    /// Counts the arrival and runs the checks that need the shared state: method,
    /// authentication, the key's rate limit and the fault selection.
    fn gate(&self, endpoint: Endpoint, method: &Method, key: Option<String>) -> Gate<'_> {
        let now = Instant::now();
        let config = self.scenario.endpoint(endpoint);
        let mut inner = self.lock();
        inner.stats[endpoint.index()].record_arrival(now);
        if *method != endpoint.method() {
            return Gate::MethodNotAllowed;
        }
        let Some(key) = key else {
            return Gate::Unauthorized;
        };
        if self.scenario.blocked_keys.contains(&key) {
            return Gate::Forbidden;
        }

        let window = &mut inner.keys.touch(&key).windows[endpoint.index()];
        let admission = window.try_admit(now, &config.limits);
        let quotas = window.quotas(now, &config.limits);
        if let Admission::Rejected { retry_after } = admission {
            return Gate::RateLimited {
                retry_after,
                quotas,
            };
        }

        let elapsed = now.saturating_duration_since(self.started);
        let counts = &mut inner.fault_counts[endpoint.index()];
        let mut chosen = None;
        for (fault, count) in config.faults.iter().zip(counts.iter_mut()) {
            if !fault.is_active(elapsed) {
                continue;
            }
            // Every active fault counts the request, even when an earlier one is chosen, so
            // `requests` and `every` count the requests the endpoint received.
            *count += 1;
            if chosen.is_none() && fault.selects(*count) {
                chosen = Some(fault);
            }
        }
        Gate::Passed {
            key,
            quotas,
            fault: chosen,
        }
    }

    fn add_rate_limit_headers(
        &self,
        endpoint: Endpoint,
        response: &mut Response,
        quotas: &[Quota],
    ) {
        let style = self.scenario.endpoint(endpoint).headers;
        insert_rate_limit_headers(
            response.headers_mut(),
            style,
            quotas,
            Instant::now(),
            SystemTime::now(),
        );
    }

    /// Builds the normal response to a request whose body passed validation.
    fn serve_endpoint(&self, endpoint: Endpoint, key: &str, body: ValidBody) -> Response {
        let json = match (endpoint, body) {
            (Endpoint::Model, _) => bodies::model_list(),
            (Endpoint::GenerateKey, ValidBody::GenerateKey { name }) => {
                let serial = {
                    let mut inner = self.lock();
                    inner.issued_keys += 1;
                    inner.issued_keys
                };
                let random = self.hasher.hash_one(serial);
                json!({ "key": format!("sim-{serial:08x}{random:016x}"), "name": name })
            }
            (Endpoint::CheckCredit, _) => {
                let micros = self.lock().keys.touch(key).credit_micros;
                json!({ "credit": micros_to_credit(micros) })
            }
            (Endpoint::GetXmrWallet, _) => {
                let payment_id = self.hasher.hash_one(key);
                json!({
                    "address": SIMULATED_XMR_ADDRESS,
                    "payment_id": format!("{payment_id:016x}"),
                })
            }
            (Endpoint::ConfirmXmrPayment, ValidBody::ConfirmXmrPayment { tx_id }) => {
                json!({ "tx_id": tx_id, "status": "pending" })
            }
            (Endpoint::SendMail, _) => json!({ "status": "sent" }),
            (Endpoint::Inference, ValidBody::Inference { model, max_tokens }) => {
                return self.complete(key, &model, max_tokens);
            }
            (endpoint, body) => {
                unreachable!("validation returned {body:?} for {}", endpoint.name())
            }
        };
        Json(json).into_response()
    }

    /// Spends the cost of one inference call from the key's credit, or returns 402 when the
    /// credit left is less than the cost.
    fn complete(&self, key: &str, model: &str, max_tokens: u64) -> Response {
        let cost = self.scenario.credit.cost_micros;
        let left = {
            let mut inner = self.lock();
            let state = inner.keys.touch(key);
            if state.credit_micros < cost {
                None
            } else {
                state.credit_micros -= cost;
                Some(state.credit_micros)
            }
        };
        let Some(left) = left else {
            return error_response(
                StatusCode::PAYMENT_REQUIRED,
                "insufficient_credit",
                "credit exhausted: top up the key's credit",
            );
        };
        let tokens = max_tokens.min(16);
        let text = "sim ".repeat(tokens as usize);
        Json(json!({
            "object": "text_completion",
            "model": model,
            "choices": [{ "index": 0, "text": text.trim_end(), "finish_reason": "length" }],
            "usage": { "completion_tokens": tokens },
            "credit_remaining": micros_to_credit(left),
        }))
        .into_response()
    }
}

/// A fixed, made-up wallet address in the shape of a Monero address (95 characters).
const SIMULATED_XMR_ADDRESS: &str = "4SimulatedXmrAddressForRatewatchTestsOnly000000000000000000000000000000000000000000000000000000";

fn micros_to_credit(micros: u64) -> f64 {
    micros as f64 / 1_000_000.0
}

/// Extracts the API key from `Authorization: Bearer KEY`, or else from `Cookie: session=KEY`.
/// Returns `None` when neither carries a non-empty key.
fn request_key(headers: &HeaderMap) -> Option<String> {
    let bearer = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|value| {
            let (scheme, token) = value.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    let cookie = || {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .find_map(|pair| pair.trim().strip_prefix("session="))
            .map(str::trim)
    };
    bearer
        .filter(|key| !key.is_empty())
        .or_else(|| cookie().filter(|key| !key.is_empty()))
        .map(str::to_owned)
}

fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(bodies::error_body(code, message))).into_response()
}

/// Builds the 404 response for a path the API does not have.
pub(crate) fn not_found() -> Response {
    // The path is not logged because a client may put anything in it, secrets included.
    debug!(status = 404, "simulator sent response for unknown path");
    error_response(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint: see the API's endpoint list",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn key_from_bearer_or_cookie() {
        type Pairs = &'static [(&'static str, &'static str)];
        let cases: [(Pairs, Option<&str>); 7] = [
            (&[("authorization", "Bearer abc")], Some("abc")),
            (&[("authorization", "bearer  abc ")], Some("abc")),
            (&[("cookie", "theme=dark; session=xyz")], Some("xyz")),
            (
                &[("authorization", "Bearer abc"), ("cookie", "session=xyz")],
                Some("abc"),
            ),
            (&[("authorization", "Basic abc")], None),
            (
                &[("authorization", "Bearer "), ("cookie", "session=")],
                None,
            ),
            (&[], None),
        ];
        for (pairs, expected) in cases {
            assert_eq!(
                request_key(&headers(pairs)).as_deref(),
                expected,
                "{pairs:?}"
            );
        }
    }
}

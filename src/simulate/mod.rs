//! A loopback simulator of the documented API, so the whole product can run and be tested
//! with no outside network.
//!
//! # Endpoints
//!
//! Paths are relative to the base URL. Names are used in scenarios and in the stats.
//!
//! | name | method and path | documented limit | normal response |
//! | --- | --- | --- | --- |
//! | `model` | `GET frontend-api/model/` | 20/s | JSON list of models with pricing |
//! | `generate-key` | `POST frontend-api/generate-key` | 100/day | `{"key": ...}` for `{"name": "..."}` |
//! | `check-credit` | `GET frontend-api/check-credit` | 100/hour | `{"credit": <number>}` |
//! | `get-xmr-wallet` | `GET frontend-api/get-xmr-wallet` | 100/day | `{"address": ..., "payment_id": ...}` |
//! | `confirm-xmr-payment` | `POST frontend-api/confirm-xmr-payment` | 100/day | for `{"tx_id": <64 hex>}` |
//! | `send-mail` | `POST frontend-api/send-mail` | 1/day | for `{"email", "subject", "message"}` |
//! | `inference` | `POST v1/completions` | none | a completion for `{"model", "prompt", "max_tokens"}` |
//!
//! Checks run in this order: an unknown path gets 404 and a wrong method 405; a request with
//! no key (`Authorization: Bearer KEY` or `Cookie: session=KEY`) gets 401 and a blocked key
//! 403; past the key's limit the response is 429 with `Retry-After`; then the scenario's faults
//! apply; then a malformed body gets 400; and last the endpoint responds, with 402 from
//! `inference` when the key's credit is less than the cost of a call. Any other non-empty key
//! is valid. Error bodies are JSON: `{"error": "<code>", "message": "..."}`.
//!
//! Limits are enforced per key and per endpoint over a sliding window of arrival times: a
//! request at `t` counts the admitted requests in `(t - W, t]`. A rejected request occupies no
//! slot. `Retry-After` is the time until enough requests leave the window for one to fit, in
//! whole seconds rounded up, at least 1.
//!
//! `GET /_sim/stats` (no key, not limited, not counted) returns, per endpoint name: `path`,
//! `limit` and `window_seconds` (null when there is no limit), `total` requests received,
//! `max_in_window` (the most requests received in any window of the limit's length, counting
//! every request whatever its status, null when there is no limit), `status_counts` by code,
//! and `limits`, a list with the same three numbers for each limit when an endpoint has
//! several. The first limit fills the top-level fields.
//!
//! # Scenario files
//!
//! A scenario is YAML. Every key is optional, unknown keys are errors, and an empty file means
//! the documented API with no faults.
//!
//! ```yaml
//! credit:
//!   start: 100          # credit of each key on first use (default 100)
//!   cost_per_call: 1    # credit one accepted inference call spends (default 1)
//! blocked_keys: [blocked-key]      # these keys get 403
//! endpoints:
//!   check-credit:                  # any endpoint name from the table above
//!     limit: 3/10s                 # replaces the documented limit; also a list such as
//!                                  # [2/1s, 5/1m], or `none`
//!     rate_limit_headers:
//!       style: x-ratelimit         # none (default), x-ratelimit or ietf
//!       reset: delta_seconds       # x-ratelimit only: delta_seconds (default), unix_seconds
//!                                  # or unix_millis
//!     faults:
//!       - status: 503              # respond with this code instead (200 to 599)
//!         retry_after: 30          # optional: seconds, or a text such as an HTTP-date
//!         after: 1m                # active from 1 minute after the simulator start
//!         for: 30s                 # and for 30 seconds (default: to the end)
//!       - status: 500
//!         every: 5                 # every 5th request while active
//!       - delay: 2s                # respond 2 seconds late
//!         requests: 3              # the first 3 requests while active
//!       - error_body: { error: internal }   # 200 with this JSON body
//! ```
//!
//! With `style: ietf` the response carries `RateLimit-Policy: "default";q=100;w=3600` and
//! `RateLimit: "default";r=42;t=1800`. With several limits each gets one list member, named
//! after its window (`"1s"`, `"1d"`), and `split: true` sends each member on its own header
//! line. The remaining count is taken after the request is admitted, and the reset time is
//! when the oldest request in the key's window leaves it. These headers go on every response
//! to a key that passed authentication, 429s included.
//!
//! A fault needs at least one of `status`, `error_body` (the JSON body to send; the status
//! defaults to 200, and a `status` fault without it sends `{"error": "<reason>"}`) and `delay`
//! (a delay alone then lets the request go on to the normal response). `requests` and `every`
//! count the requests that reach the fault stage while the fault is active, from 1. Each
//! active fault counts every such request, and the first fault in list order that selects a
//! request decides its response.
//!
//! Times use [`tokio::time::Instant`], so tests can drive the simulator on a paused clock.

mod api;
mod bodies;
mod endpoint;
mod headers;
mod keys;
mod scenario;
mod stats;
mod window;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::{any, get};
use tracing::info;

use self::api::Simulator;
use self::endpoint::Endpoint;
pub use self::scenario::{Scenario, ScenarioError};

/// Builds the simulator application for `scenario`. Its fault clock starts now.
pub fn router(scenario: Scenario) -> Router {
    let simulator = Arc::new(Simulator::new(scenario));
    let mut router = Router::new().route(
        "/_sim/stats",
        get(|State(simulator): State<Arc<Simulator>>| async move { axum::Json(simulator.stats()) }),
    );
    for endpoint in Endpoint::ALL {
        // NOTE: axum's `Bytes` extractor rejects bodies over 2 MiB with 413 before the
        // handler runs, so such requests are neither counted in the stats nor logged.
        router = router.route(
            &format!("/{}", endpoint.path()),
            any(
                move |State(simulator): State<Arc<Simulator>>,
                      method: http::Method,
                      headers: http::HeaderMap,
                      body: axum::body::Bytes| {
                    simulator.handle(endpoint, method, headers, body)
                },
            ),
        );
    }
    router
        .fallback(|| async { api::not_found() })
        .with_state(simulator)
}

/// Serves the simulator for `scenario` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    scenario: Scenario,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let address = listener.local_addr()?;
    info!(%address, "simulator listening");
    axum::serve(listener, router(scenario))
        .with_graceful_shutdown(shutdown)
        .await?;
    info!(%address, "simulator stopped");
    Ok(())
}

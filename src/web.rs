//! The daemon's HTTP server: `/metrics`, the status page, the JSON API, and the lifecycle
//! endpoints in the Prometheus style.
//!
//! Handlers only read the status board and the registry; a reload goes through a channel to
//! the task that owns the scheduler. With `--web.config.file`, every route, `/-/healthy`
//! included, requires basic authentication when users are configured, and every response
//! carries the configured headers.

mod page;
mod serve;

pub use serve::{DRAIN_TIMEOUT, HEADER_READ_TIMEOUT, serve};

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::metrics::Metrics;
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
}

/// Builds the router with every route.
pub fn router(state: AppState) -> Router {
    let web = state.web.clone();
    let router = Router::new()
        .route("/", get(status_page))
        .route("/metrics", get(metrics))
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

async fn metrics(State(state): State<AppState>) -> Response {
    let (content_type, body) = state.metrics.encode();
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
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
    endpoints: Vec<EndpointDocument>,
}

#[derive(Serialize)]
struct EndpointDocument {
    health: &'static str,
    #[serde(flatten)]
    snapshot: Snapshot,
}

async fn status_json(State(state): State<AppState>) -> Json<StatusDocument> {
    let endpoints = state
        .board
        .snapshot()
        .into_iter()
        .map(|snapshot| EndpointDocument {
            health: snapshot.health(),
            snapshot,
        })
        .collect();
    Json(StatusDocument {
        version: env!("CARGO_PKG_VERSION"),
        endpoints,
    })
}

async fn status_page(State(state): State<AppState>) -> Html<String> {
    Html(page::render(
        &state.board.snapshot(),
        std::time::SystemTime::now(),
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
            format!("failed to reload config: {error}\n"),
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
    use super::*;
    use crate::config;
    use crate::secret::SecretSource;
    use crate::status::EndpointStatus;

    #[test]
    fn status_json_has_each_key_once() {
        let text = "apis:\n  - name: a\n    base_url: http://127.0.0.1:9/\n    endpoints:\n      - { name: e, path: e, interval: 10s }\n";
        let config = config::parse(text, "t.yml", &SecretSource::from_env()).unwrap();
        let board = StatusBoard::default();
        board.set_endpoints(vec![Arc::new(EndpointStatus::new(&config.endpoints[0]))]);
        let endpoints: Vec<EndpointDocument> = board
            .snapshot()
            .into_iter()
            .map(|snapshot| EndpointDocument {
                health: snapshot.health(),
                snapshot,
            })
            .collect();
        let json = serde_json::to_string(&endpoints[0]).unwrap();
        assert_eq!(json.matches("\"health\"").count(), 1, "{json}");
        assert!(json.contains("\"health\":\"pending\""), "{json}");
    }
}

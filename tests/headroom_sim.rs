//! The scheduler against the simulator on tokio's paused clock: the simulator's router is
//! called in-process, so minutes of schedule run in milliseconds and the simulator's windows
//! use the same virtual time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use http::Request;
use ratewatch::classify::Class;
use ratewatch::config::{self, Config, Endpoint, HeaderText};
use ratewatch::metrics::Metrics;
use ratewatch::probe::{Outcome, Prober};
use ratewatch::schedule::Scheduler;
use ratewatch::secret::SecretSource;
use ratewatch::simulate::{Scenario, router};
use ratewatch::status::StatusBoard;
use tokio::time::Instant;
use tower::ServiceExt;

/// Sends each probe straight into the simulator's router and logs when it went out.
struct RouterProber {
    app: Router,
    sent: Mutex<Vec<(String, Instant)>>,
}

impl RouterProber {
    fn new(scenario: &str) -> Arc<RouterProber> {
        let scenario = Scenario::from_yaml(scenario, "test scenario").unwrap();
        Arc::new(RouterProber {
            app: router(scenario),
            sent: Mutex::new(Vec::new()),
        })
    }

    fn sends(&self, name: &str) -> Vec<Instant> {
        let sent = self.sent.lock().unwrap();
        sent.iter()
            .filter(|(n, _)| n == name)
            .map(|&(_, t)| t)
            .collect()
    }

    async fn stats(&self) -> serde_json::Value {
        let request = Request::get("/_sim/stats").body(Body::empty()).unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }
}

impl Prober for RouterProber {
    async fn probe(&self, endpoint: &Endpoint) -> Outcome {
        let started = Instant::now();
        self.sent
            .lock()
            .unwrap()
            .push((endpoint.name.clone(), started));
        let mut request = Request::builder()
            .method(endpoint.method.clone())
            .uri(endpoint.url.path());
        for (name, text) in &endpoint.headers {
            let value = match text {
                HeaderText::Literal(text) => text.as_str(),
                HeaderText::Secret(secret) => secret.expose(),
            };
            request = request.header(name, value);
        }
        let body = endpoint.body.clone().unwrap_or_default();
        let response = self
            .app
            .clone()
            .oneshot(request.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        Outcome {
            class: Class::from_status(status),
            status: Some(status),
            success: endpoint.expect.matches(status),
            duration: started.elapsed(),
            headers,
            body: endpoint.credit.is_some().then(|| bytes.to_vec()),
            detail: "",
        }
    }
}

fn config(endpoints: &str) -> Config {
    let text = format!(
        "apis:\n  - name: sim\n    base_url: http://127.0.0.1:9/\n    auth: {{ bearer: {{ env: RW_HEADROOM_KEY }} }}\n    endpoints:\n{endpoints}"
    );
    let secrets = SecretSource::from_env().with_fallback("RW_HEADROOM_KEY", "key");
    config::parse(&text, "test.yml", &secrets).unwrap()
}

fn scheduler(prober: &Arc<RouterProber>) -> Scheduler<RouterProber> {
    Scheduler::new(
        prober.clone(),
        Metrics::new().unwrap(),
        Arc::new(StatusBoard::default()),
    )
}

#[tokio::test(start_paused = true)]
async fn retry_after_30_means_no_request_for_30_seconds() {
    let prober = RouterProber::new(
        "endpoints:\n  check-credit: { faults: [ { status: 429, retry_after: 30, requests: 1 } ] }\n",
    );
    let config =
        config("      - { name: check-credit, path: frontend-api/check-credit, interval: 5s }\n");
    let mut scheduler = scheduler(&prober);
    scheduler.apply(&config);
    tokio::time::sleep(Duration::from_secs(120)).await;
    scheduler.shutdown(Duration::from_secs(1)).await;

    let sends = prober.sends("check-credit");
    let gap = sends[1] - sends[0];
    assert!(
        gap >= Duration::from_secs(30),
        "the simulator got a request {gap:?} after the 429"
    );
    assert!(gap < Duration::from_secs(36), "the pause lasted {gap:?}");
    for pair in sends[1..].windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            Duration::from_secs(5),
            "back on the 5s grid"
        );
    }
    let stats = prober.stats().await;
    assert_eq!(stats["check-credit"]["status_counts"]["429"], 1);
}

#[tokio::test(start_paused = true)]
async fn low_reported_quota_keeps_requests_within_it() {
    // The simulator allows 10 per minute and says so in its headers; the config probes every
    // second with no documented limit, so only the headers can hold ratewatch back.
    let prober = RouterProber::new(
        "endpoints:
  check-credit: { limit: 10/60s, rate_limit_headers: { style: x-ratelimit } }
  model: { limit: 10/60s, rate_limit_headers: { style: ietf, split: true } }
",
    );
    let config = config(
        "      - { name: check-credit, path: frontend-api/check-credit, interval: 1s, credit: { json_path: $.credit } }
      - { name: model, path: frontend-api/model/, interval: 1s }
",
    );
    let mut scheduler = scheduler(&prober);
    scheduler.apply(&config);
    tokio::time::sleep(Duration::from_secs(600)).await;
    scheduler.shutdown(Duration::from_secs(1)).await;

    let stats = prober.stats().await;
    for endpoint in ["check-credit", "model"] {
        let max = stats[endpoint]["max_in_window"].as_u64().unwrap();
        let total = stats[endpoint]["total"].as_u64().unwrap();
        eprintln!(
            "{endpoint}: {total} requests in 600s, at most {max} in one 60s window (quota 10)"
        );
        assert!(
            max <= 10,
            "{endpoint}: {max} requests in one window, quota 10"
        );
        assert!(
            stats[endpoint]["status_counts"].get("429").is_none(),
            "{endpoint} got a 429: {}",
            stats[endpoint]
        );
        // Paced, not stopped: most of the quota is used.
        assert!(total >= 60, "{endpoint}: only {total} requests in 600s");
    }
}

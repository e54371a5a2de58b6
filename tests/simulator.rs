//! End-to-end tests of the simulator: real loopback HTTP with reqwest, and the in-process
//! router on tokio's paused clock where a test needs exact times.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use http::{HeaderMap, Request, StatusCode};
use ratewatch::simulate::{Scenario, ScenarioError, router, serve};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower::ServiceExt;

const TX_ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A simulator served on a loopback port for one test.
struct Sim {
    base: String,
    client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

/// A response read in full.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    json: Value,
}

fn scenario(yaml: &str) -> Scenario {
    Scenario::from_yaml(yaml, "test scenario").expect("test scenario is valid")
}

async fn start(yaml: &str) -> Sim {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/", listener.local_addr().unwrap());
    let (shutdown, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, scenario(yaml), async move {
        let _ = stopped.await;
    }));
    Sim {
        base,
        client: reqwest::Client::new(),
        shutdown: Some(shutdown),
        task,
    }
}

impl Sim {
    async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("simulator responds");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {text}"));
        Reply {
            status,
            headers,
            json,
        }
    }

    async fn get(&self, path: &str, key: Option<&str>) -> Reply {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        self.send(request).await
    }

    async fn post(&self, path: &str, key: Option<&str>, body: &str) -> Reply {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        self.send(request).await
    }

    async fn stats(&self) -> Value {
        self.get("_sim/stats", None).await.json
    }

    async fn stop(mut self) {
        self.shutdown.take().unwrap().send(()).unwrap();
        let result = tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("serve returns after shutdown");
        result.unwrap().unwrap();
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("missing header {name}"))
        .to_str()
        .unwrap()
}

fn header_u64(headers: &HeaderMap, name: &str) -> u64 {
    header(headers, name)
        .parse()
        .unwrap_or_else(|e| panic!("header {name} is not a whole number: {e}"))
}

/// Calls the in-process router, for tests on the paused clock.
async fn call(app: &Router, method: &str, path: &str, key: Option<&str>, body: &str) -> Reply {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    let request = request.body(Body::from(body.to_owned())).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    Reply {
        status,
        headers,
        json: serde_json::from_slice(&bytes).unwrap(),
    }
}

/// Parses a structured-field list of `"name";a=1;b=2` members into (name, parameters).
fn parse_members(text: &str) -> Vec<(String, Vec<(String, u64)>)> {
    text.split(',')
        .map(|member| {
            let mut parts = member.trim().split(';');
            let name = parts.next().unwrap();
            assert!(
                name.starts_with('"') && name.ends_with('"'),
                "name {name:?}"
            );
            let params = parts
                .map(|param| {
                    let (key, value) = param.split_once('=').unwrap();
                    (key.to_owned(), value.parse().unwrap())
                })
                .collect();
            (name.trim_matches('"').to_owned(), params)
        })
        .collect()
}

fn param(member: &(String, Vec<(String, u64)>), key: &str) -> u64 {
    member
        .1
        .iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("member {member:?} has no {key}"))
        .1
}

#[tokio::test]
async fn endpoints_return_documented_bodies() {
    let sim = start("").await;
    let key = Some("alice");

    let models = sim.get("frontend-api/model/", key).await;
    assert_eq!(models.status, StatusCode::OK);
    let list = models.json.as_array().expect("model list is an array");
    assert!(!list.is_empty());
    assert!(list[0]["pricing"].is_object());

    let generated = sim
        .post("frontend-api/generate-key", key, r#"{"name": "ci"}"#)
        .await;
    assert_eq!(generated.status, StatusCode::OK);
    assert!(
        generated.json["key"]
            .as_str()
            .is_some_and(|k| !k.is_empty())
    );

    let credit = sim.get("frontend-api/check-credit", key).await;
    assert_eq!(credit.status, StatusCode::OK);
    assert_eq!(credit.json["credit"], 100.0);

    let wallet = sim.get("frontend-api/get-xmr-wallet", key).await;
    assert_eq!(wallet.status, StatusCode::OK);
    assert!(wallet.json["address"].is_string());
    assert!(wallet.json["payment_id"].is_string());

    let body = format!(r#"{{"tx_id": "{TX_ID}"}}"#);
    let confirmed = sim
        .post("frontend-api/confirm-xmr-payment", key, &body)
        .await;
    assert_eq!(confirmed.status, StatusCode::OK);

    let mail = r#"{"email": "a@example.test", "subject": "hi", "message": "hello"}"#;
    assert_eq!(
        sim.post("frontend-api/send-mail", key, mail).await.status,
        StatusCode::OK
    );

    let completion = r#"{"model": "sim-small", "prompt": "hi", "max_tokens": 4}"#;
    let completed = sim.post("v1/completions", key, completion).await;
    assert_eq!(completed.status, StatusCode::OK);
    assert!(completed.json["choices"][0]["text"].is_string());

    sim.stop().await;
}

#[tokio::test]
async fn malformed_bodies_get_400() {
    let sim = start("").await;
    let cases = [
        ("frontend-api/generate-key", "{}"),
        ("frontend-api/generate-key", ""),
        ("frontend-api/generate-key", "{not json"),
        ("frontend-api/generate-key", r#"{"name": ""}"#),
        ("frontend-api/confirm-xmr-payment", r#"{"tx_id": "abc"}"#),
        ("frontend-api/send-mail", r#"{"email": "a@example.test"}"#),
        (
            "v1/completions",
            r#"{"model": "m", "prompt": "p", "max_tokens": 0}"#,
        ),
    ];
    // A different key per case, so the 1/day send-mail limit does not interfere.
    for (index, (path, body)) in cases.iter().enumerate() {
        let key = format!("key-{index}");
        let reply = sim.post(path, Some(&key), body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path} {body}");
        assert_eq!(reply.json["error"], "bad_request", "{path} {body}");
        assert!(reply.json["message"].is_string(), "{path} {body}");
    }
    sim.stop().await;
}

#[tokio::test]
async fn authentication_gets_401_and_403() {
    let sim = start("blocked_keys: [banned]").await;

    let anonymous = sim.get("frontend-api/check-credit", None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.json["error"], "unauthorized");

    let blocked = sim.get("frontend-api/check-credit", Some("banned")).await;
    assert_eq!(blocked.status, StatusCode::FORBIDDEN);

    let cookie = sim
        .send(
            sim.client
                .get(format!("{}frontend-api/check-credit", sim.base))
                .header("cookie", "theme=dark; session=cookie-key"),
        )
        .await;
    assert_eq!(cookie.status, StatusCode::OK);

    let blocked_cookie = sim
        .send(
            sim.client
                .get(format!("{}frontend-api/check-credit", sim.base))
                .header("cookie", "session=banned"),
        )
        .await;
    assert_eq!(blocked_cookie.status, StatusCode::FORBIDDEN);
    sim.stop().await;
}

#[tokio::test]
async fn unknown_path_and_wrong_method() {
    let sim = start("").await;
    let missing = sim.get("frontend-api/nothing", Some("alice")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json["error"], "not_found");

    let wrong = sim.get("frontend-api/generate-key", Some("alice")).await;
    assert_eq!(wrong.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header(&wrong.headers, "allow"), "POST");

    let stats = sim.stats().await;
    assert_eq!(stats["generate-key"]["status_counts"]["405"], 1);
    sim.stop().await;
}

#[tokio::test]
async fn limits_are_per_key() {
    let sim = start("endpoints: { check-credit: { limit: 3/10s } }").await;
    for _ in 0..3 {
        let reply = sim.get("frontend-api/check-credit", Some("alice")).await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    let limited = sim.get("frontend-api/check-credit", Some("alice")).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.json["error"], "rate_limited");
    let retry_after = header_u64(&limited.headers, "retry-after");
    assert!((1..=10).contains(&retry_after), "Retry-After {retry_after}");

    // The second key has its own window.
    for _ in 0..3 {
        let reply = sim.get("frontend-api/check-credit", Some("bob")).await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    let bob_limited = sim.get("frontend-api/check-credit", Some("bob")).await;
    assert_eq!(bob_limited.status, StatusCode::TOO_MANY_REQUESTS);

    let stats = sim.stats().await;
    let check = &stats["check-credit"];
    assert_eq!(check["path"], "frontend-api/check-credit");
    assert_eq!(check["limit"], 3);
    assert_eq!(check["window_seconds"], 10.0);
    assert_eq!(check["total"], 8);
    assert_eq!(check["max_in_window"], 8);
    assert_eq!(check["status_counts"]["200"], 6);
    assert_eq!(check["status_counts"]["429"], 2);
    assert_eq!(stats["inference"]["limit"], Value::Null);
    assert_eq!(stats["inference"]["max_in_window"], Value::Null);
    assert_eq!(stats["model"]["limit"], 20);
    assert_eq!(stats["send-mail"]["window_seconds"], 86_400.0);
    sim.stop().await;
}

#[tokio::test]
async fn faults_send_503_burst_and_500s() {
    let yaml = r"
endpoints:
  model:
    faults:
      - { status: 503, retry_after: 30, requests: 2 }
      - { status: 500, every: 2 }
";
    let sim = start(yaml).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let reply = sim.get("frontend-api/model/", Some("alice")).await;
        if reply.status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(header(&reply.headers, "retry-after"), "30");
            assert_eq!(reply.json["error"], "service unavailable");
        }
        statuses.push(reply.status.as_u16());
    }
    // The 500 fault counts every request, so it selects the 2nd, 4th and 6th, and the 503
    // fault before it in the list wins the 2nd.
    assert_eq!(statuses, [503, 503, 200, 500, 200, 500]);
    sim.stop().await;
}

#[tokio::test]
async fn error_body_fault_returns_200() {
    let yaml = "endpoints: { check-credit: { faults: [ { error_body: { error: internal } } ] } }";
    let sim = start(yaml).await;
    let reply = sim.get("frontend-api/check-credit", Some("alice")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json, serde_json::json!({"error": "internal"}));
    sim.stop().await;
}

#[tokio::test]
async fn delay_fault_responds_late() {
    let yaml = "endpoints: { model: { faults: [ { delay: 300ms, requests: 1 } ] } }";
    let sim = start(yaml).await;
    let started = std::time::Instant::now();
    let slow = sim.get("frontend-api/model/", Some("alice")).await;
    let slow_time = started.elapsed();
    assert_eq!(slow.status, StatusCode::OK);
    assert!(slow_time >= Duration::from_millis(300), "{slow_time:?}");
    assert!(slow.json.is_array());

    let started = std::time::Instant::now();
    let fast = sim.get("frontend-api/model/", Some("alice")).await;
    assert_eq!(fast.status, StatusCode::OK);
    assert!(started.elapsed() < Duration::from_millis(300));
    sim.stop().await;
}

#[tokio::test]
async fn credit_runs_down_to_402() {
    let sim = start("credit: { start: 2, cost_per_call: 0.5 }").await;
    let completion = r#"{"model": "sim-small", "prompt": "hi", "max_tokens": 1}"#;
    let mut balances = Vec::new();
    for _ in 0..4 {
        let reply = sim.post("v1/completions", Some("alice"), completion).await;
        assert_eq!(reply.status, StatusCode::OK);
        let credit = sim.get("frontend-api/check-credit", Some("alice")).await;
        balances.push(credit.json["credit"].as_f64().unwrap());
    }
    assert_eq!(balances, [1.5, 1.0, 0.5, 0.0]);

    let exhausted = sim.post("v1/completions", Some("alice"), completion).await;
    assert_eq!(exhausted.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(exhausted.json["error"], "insufficient_credit");

    // Credit is per key.
    let other = sim.post("v1/completions", Some("bob"), completion).await;
    assert_eq!(other.status, StatusCode::OK);
    sim.stop().await;
}

#[tokio::test]
async fn header_styles_parse_over_http() {
    let yaml = r"
endpoints:
  model:
    limit: 3/10s
    rate_limit_headers: { style: x-ratelimit, reset: unix_seconds }
  check-credit:
    limit: 3/10s
    rate_limit_headers: { style: x-ratelimit, reset: unix_millis }
  get-xmr-wallet:
    limit: [3/10s, 5/1m]
    rate_limit_headers: { style: ietf, split: true }
";
    let sim = start(yaml).await;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();

    let seconds = sim.get("frontend-api/model/", Some("alice")).await;
    assert_eq!(header_u64(&seconds.headers, "x-ratelimit-limit"), 3);
    assert_eq!(header_u64(&seconds.headers, "x-ratelimit-remaining"), 2);
    let reset = header_u64(&seconds.headers, "x-ratelimit-reset");
    assert!(
        (now.as_secs() + 9..=now.as_secs() + 12).contains(&reset),
        "reset {reset}, now {now:?}"
    );

    let millis = sim.get("frontend-api/check-credit", Some("alice")).await;
    let reset = header_u64(&millis.headers, "x-ratelimit-reset");
    let now_ms = now.as_millis() as u64;
    assert!(
        (now_ms + 9_000..=now_ms + 11_000).contains(&reset),
        "reset {reset}, now {now_ms}"
    );

    let ietf = sim.get("frontend-api/get-xmr-wallet", Some("alice")).await;
    let policies: Vec<&str> = ietf
        .headers
        .get_all("ratelimit-policy")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(policies.len(), 2, "{policies:?}");
    let joined = parse_members(&policies.join(", "));
    assert_eq!(joined[0].0, "10s");
    assert_eq!(param(&joined[0], "q"), 3);
    assert_eq!(param(&joined[0], "w"), 10);
    assert_eq!(joined[1].0, "1m");
    assert_eq!(param(&joined[1], "q"), 5);
    assert_eq!(param(&joined[1], "w"), 60);
    let states: Vec<&str> = ietf
        .headers
        .get_all("ratelimit")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    let states = parse_members(&states.join(", "));
    assert_eq!(param(&states[0], "r"), 2);
    assert_eq!(param(&states[1], "r"), 4);
    assert!((9..=10).contains(&param(&states[0], "t")));
    assert!((59..=60).contains(&param(&states[1], "t")));
    sim.stop().await;
}

#[tokio::test(start_paused = true)]
async fn header_values_follow_window_state() {
    let yaml = r"
endpoints:
  check-credit:
    limit: 3/10s
    rate_limit_headers: { style: x-ratelimit }
  model:
    limit: 100/1h
    rate_limit_headers: { style: ietf }
";
    let app = router(scenario(yaml));
    let expectations = [(0, 2, 10), (2000, 1, 8), (4000, 0, 6)];
    let mut clock = 0;
    for (at_ms, remaining, reset) in expectations {
        tokio::time::advance(Duration::from_millis(at_ms - clock)).await;
        clock = at_ms;
        let reply = call(&app, "GET", "/frontend-api/check-credit", Some("a"), "").await;
        assert_eq!(reply.status, StatusCode::OK, "at {at_ms}ms");
        assert_eq!(
            header_u64(&reply.headers, "x-ratelimit-remaining"),
            remaining,
            "at {at_ms}ms"
        );
        assert_eq!(
            header_u64(&reply.headers, "x-ratelimit-reset"),
            reset,
            "at {at_ms}ms"
        );
    }
    // The 429 carries the same headers, with nothing left.
    let limited = call(&app, "GET", "/frontend-api/check-credit", Some("a"), "").await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header_u64(&limited.headers, "x-ratelimit-remaining"), 0);
    assert_eq!(header_u64(&limited.headers, "retry-after"), 6);

    let ietf = call(&app, "GET", "/frontend-api/model/", Some("a"), "").await;
    assert_eq!(
        header(&ietf.headers, "ratelimit-policy"),
        "\"default\";q=100;w=3600"
    );
    assert_eq!(
        header(&ietf.headers, "ratelimit"),
        "\"default\";r=99;t=3600"
    );
}

#[tokio::test(start_paused = true)]
async fn stats_max_in_window_for_known_sequence() {
    let app = router(scenario("endpoints: { model: { limit: 3/10s } }"));
    // Arrival times in milliseconds since start, and the expected status of each.
    let sequence = [
        (0, 200),
        (1000, 200),
        (2000, 200),
        (3000, 429),
        (9500, 429),
        (9900, 429),
        (10_500, 200),
        (25_000, 200),
    ];
    let mut clock = 0;
    let mut retry_afters = Vec::new();
    for (at_ms, status) in sequence {
        tokio::time::advance(Duration::from_millis(at_ms - clock)).await;
        clock = at_ms;
        let reply = call(&app, "GET", "/frontend-api/model/", Some("k"), "").await;
        assert_eq!(reply.status.as_u16(), status, "at {at_ms}ms");
        if status == 429 {
            retry_afters.push(header_u64(&reply.headers, "retry-after"));
        }
    }
    // The oldest admitted request (at 0s) leaves the window at 10s.
    assert_eq!(retry_afters, [7, 1, 1]);

    let stats = call(&app, "GET", "/_sim/stats", None, "").await.json;
    let model = &stats["model"];
    assert_eq!(model["total"], 8);
    // The window (0.5s, 10.5s] contains the arrivals at 1, 2, 3, 9.5, 9.9 and 10.5 seconds.
    assert_eq!(model["max_in_window"], 6);
    assert_eq!(model["status_counts"]["200"], 5);
    assert_eq!(model["status_counts"]["429"], 3);
    assert_eq!(model["limits"][0]["max_in_window"], 6);
}

#[tokio::test(start_paused = true)]
async fn faults_follow_time_since_start() {
    let yaml = "endpoints: { model: { faults: [ { status: 503, after: 5s, for: 10s } ] } }";
    let app = router(scenario(yaml));
    let steps = [(0, 200), (5000, 503), (14_999, 503), (15_000, 200)];
    let mut clock = 0;
    for (at_ms, status) in steps {
        tokio::time::advance(Duration::from_millis(at_ms - clock)).await;
        clock = at_ms;
        let reply = call(&app, "GET", "/frontend-api/model/", Some("k"), "").await;
        assert_eq!(reply.status.as_u16(), status, "at {at_ms}ms");
    }
}

#[tokio::test(start_paused = true)]
async fn delay_fault_on_paused_clock() {
    let yaml = "endpoints: { check-credit: { faults: [ { delay: 2s, status: 500 } ] } }";
    let app = router(scenario(yaml));
    let started = tokio::time::Instant::now();
    let reply = call(&app, "GET", "/frontend-api/check-credit", Some("k"), "").await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(started.elapsed(), Duration::from_secs(2));
}

#[tokio::test]
async fn unknown_scenario_key_rejected_with_location() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yml");
    std::fs::write(&path, "endpoints:\n  model:\n    limt: 3/10s\n").unwrap();
    let error = Scenario::load(&path).unwrap_err();
    let ScenarioError::Invalid {
        line,
        column,
        ref message,
        ..
    } = error
    else {
        panic!("expected an invalid scenario, got {error:?}");
    };
    assert_eq!(line, Some(3));
    assert_eq!(column, Some(5));
    assert!(message.contains("limt"), "{message}");
    assert!(message.contains("rate_limit_headers"), "{message}");
    let text = error.to_string();
    assert!(text.contains(&format!("{}:3:5", path.display())), "{text}");
}

#[test]
fn example_scenarios_load() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/scenarios");
    let mut loaded = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yml") {
            Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
            loaded += 1;
        }
    }
    assert!(loaded >= 1, "no scenarios in {}", dir.display());
}

//! The daemon against the simulator over loopback: every status the simulator produces lands
//! in its class and counters, and the simulator sees every endpoint within its budget.

#![allow(
    clippy::too_many_lines,
    reason = "a test reads best as one sequence of steps"
)]

mod common;

use std::time::Duration;

use common::{Process, Simulator, free_port, get, ratewatch_bin, sample, wait_for};

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

fn start_daemon(config: &str, dir: &std::path::Path, env: &[(&str, &str)]) -> (Process, u16) {
    let port = free_port();
    let config = write(dir, "ratewatch.yml", config);
    let args = [
        format!("--config.file={config}"),
        format!("--web.listen-address=127.0.0.1:{port}"),
        "--log.level=debug".to_owned(),
        format!("--storage.path={}", dir.join("state").display()),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let daemon = Process::start_logged(ratewatch_bin(), &args, env, dir, "daemon");
    wait_for("the daemon", Duration::from_secs(20), || {
        get(&format!("http://127.0.0.1:{port}/-/ready")).filter(|(s, _)| *s == 200)
    });
    (daemon, port)
}

const CLASSES_SCENARIO: &str = "
blocked_keys: [blocked-key]
endpoints:
  check-credit: { limit: 2/1h }
  confirm-xmr-payment: { faults: [ { status: 500 } ] }
  send-mail: { limit: none, faults: [ { status: 503 } ] }
  inference: { faults: [ { status: 502 } ] }
  get-xmr-wallet: { faults: [ { delay: 3s } ] }
";

#[test]
fn every_simulated_status_lands_in_its_class() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::start(dir.path(), CLASSES_SCENARIO);
    let sim_port = sim.port;
    let closed_port = free_port();
    let config = format!(
        r#"
global: {{ interval: 1s, timeout: 2s }}
apis:
  - name: sim
    base_url: http://127.0.0.1:{sim_port}/
    auth: {{ bearer: {{ env: RW_TEST_KEY }} }}
    endpoints:
      - {{ name: model, path: frontend-api/model/, rate_limit: 20/s }}
      - {{ name: generate-key, path: frontend-api/generate-key, method: POST, body: "{{}}", expect: [400], interval: 1s }}
      - {{ name: check-credit, path: frontend-api/check-credit, interval: 1s, credit: {{ json_path: $.credit }} }}
      - {{ name: confirm-xmr-payment, path: frontend-api/confirm-xmr-payment, method: POST, body: "{{}}", interval: 1s }}
      - {{ name: send-mail, path: frontend-api/send-mail, method: POST, body: "{{}}", interval: 1s }}
      - {{ name: inference, path: v1/completions, method: POST, body: '{{"model":"m","prompt":"p","max_tokens":1}}', interval: 1s }}
      - {{ name: get-xmr-wallet, path: frontend-api/get-xmr-wallet, interval: 5s, timeout: 1s }}
      - {{ name: not-found, path: frontend-api/nope, interval: 1s }}
  # One API may not send the same request twice, so the capped model list has its own.
  - name: capped
    base_url: http://127.0.0.1:{sim_port}/
    auth: {{ bearer: {{ env: RW_TEST_KEY }} }}
    endpoints:
      - {{ name: small-body, path: frontend-api/model/, interval: 1s, body_limit: 16 }}
  - name: anonymous
    base_url: http://127.0.0.1:{sim_port}/
    endpoints:
      - {{ name: wallet, path: frontend-api/get-xmr-wallet, interval: 1s }}
  - name: blocked
    base_url: http://127.0.0.1:{sim_port}/
    auth: {{ bearer: {{ env: RW_TEST_BLOCKED }} }}
    endpoints:
      - {{ name: model, path: frontend-api/model/, interval: 1s }}
  - name: closed
    base_url: http://127.0.0.1:{closed_port}/
    endpoints:
      - {{ name: model, path: frontend-api/model/, interval: 1s }}
  - name: tls
    base_url: https://127.0.0.1:{sim_port}/
    endpoints:
      - {{ name: model, path: frontend-api/model/, interval: 1s }}
"#
    );
    let env = [
        ("RW_TEST_KEY", "good-key"),
        ("RW_TEST_BLOCKED", "blocked-key"),
    ];
    let (_daemon, port) = start_daemon(&config, dir.path(), &env);

    let expected = [
        ("sim", "model", "ok", Some("200")),
        ("sim", "generate-key", "bad_request", Some("400")),
        ("sim", "check-credit", "rate_limited", Some("429")),
        ("sim", "confirm-xmr-payment", "server_error", Some("500")),
        ("sim", "send-mail", "unavailable", Some("503")),
        ("sim", "inference", "other_5xx", Some("502")),
        ("sim", "get-xmr-wallet", "timeout", None),
        ("sim", "not-found", "other_4xx", Some("404")),
        ("capped", "small-body", "body_error", Some("200")),
        ("anonymous", "wallet", "unauthorized", Some("401")),
        ("blocked", "model", "forbidden", Some("403")),
        ("closed", "model", "connect_error", None),
        ("tls", "model", "tls_error", None),
    ];
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    // get-xmr-wallet takes longest, up to two 5s intervals and then its 1s timeout.
    let text = wait_for("every class counter", Duration::from_secs(60), || {
        let (_, text) = get(&metrics_url)?;
        expected
            .iter()
            .all(|(api, endpoint, class, _)| {
                let prefix = format!("ratewatch_probe_results_total{{api=\"{api}\",class=\"{class}\",endpoint=\"{endpoint}\"}}");
                sample(&text, &prefix).is_some_and(|v| v >= 1.0)
            })
            .then_some(text)
    });
    for (api, endpoint, _, code) in expected {
        if let Some(code) = code {
            let prefix = format!(
                "ratewatch_probe_http_responses_total{{api=\"{api}\",code=\"{code}\",endpoint=\"{endpoint}\"}}"
            );
            assert!(
                sample(&text, &prefix).is_some_and(|v| v >= 1.0),
                "{prefix} missing"
            );
        }
    }
    // The 429 carried Retry-After, so the endpoint paused and the 429 counted as unexpected.
    let paused = sample(
        &text,
        "ratewatch_paused_until_timestamp_seconds{api=\"sim\",endpoint=\"check-credit\"}",
    );
    assert!(
        paused.is_some_and(|v| v > 0.0),
        "check-credit not paused: {paused:?}"
    );
    let unexpected = sample(
        &text,
        "ratewatch_rate_limited_unexpected_total{api=\"sim\",endpoint=\"check-credit\"}",
    );
    assert_eq!(unexpected, Some(1.0));
    let form = sample(
        &text,
        "ratewatch_retry_after_total{api=\"sim\",endpoint=\"check-credit\",form=\"seconds\"}",
    );
    assert_eq!(form, Some(1.0));
    let credit = sample(
        &text,
        "ratewatch_credit_balance{api=\"sim\",endpoint=\"check-credit\"}",
    );
    assert_eq!(credit, Some(100.0));
    // A transport failure leaves no status code behind.
    assert!(
        sample(
            &text,
            "ratewatch_probe_http_status_code{api=\"closed\",endpoint=\"model\"}"
        )
        .is_none()
    );
    assert_eq!(
        sample(
            &text,
            "ratewatch_probe_http_status_code{api=\"sim\",endpoint=\"send-mail\"}"
        ),
        Some(503.0)
    );
    assert_eq!(
        sample(
            &text,
            "ratewatch_probe_success{api=\"sim\",endpoint=\"generate-key\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "ratewatch_probe_success{api=\"sim\",endpoint=\"send-mail\"}"
        ),
        Some(0.0)
    );
}

const SHORT_WINDOWS: &str = "
endpoints:
  model: { limit: 5/2s, rate_limit_headers: { style: ietf } }
  generate-key: { limit: 2/10s }
  check-credit: { limit: 3/10s, rate_limit_headers: { style: x-ratelimit } }
  get-xmr-wallet: { limit: 3/10s }
  confirm-xmr-payment: { limit: 3/10s }
  send-mail: { limit: 1/10s }
";

#[test]
fn simulator_sees_every_endpoint_within_budget() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::start(dir.path(), SHORT_WINDOWS);
    let sim_port = sim.port;
    // A 50% share and a 200ms default interval, so each share-bound interval sits exactly at
    // its budget: the tightest grid the plan allows.
    let config = format!(
        r#"
global: {{ probe_share: 50%, interval: 200ms, timeout: 1s }}
apis:
  - name: sim
    base_url: http://127.0.0.1:{sim_port}/
    auth: {{ bearer: {{ env: RW_TEST_KEY }} }}
    endpoints:
      - {{ name: model, path: frontend-api/model/, rate_limit: 5/2s }}
      - {{ name: generate-key, path: frontend-api/generate-key, method: POST, body: "{{}}", expect: [400], rate_limit: 2/10s }}
      - {{ name: check-credit, path: frontend-api/check-credit, rate_limit: 3/10s }}
      - {{ name: get-xmr-wallet, path: frontend-api/get-xmr-wallet, rate_limit: 3/10s }}
      - {{ name: confirm-xmr-payment, path: frontend-api/confirm-xmr-payment, method: POST, body: "{{}}", expect: [400], rate_limit: 3/10s }}
      - {{ name: send-mail, path: frontend-api/send-mail, method: POST, body: "{{}}", expect: [400], rate_limit: 1/10s }}
"#
    );
    let (_daemon, _port) = start_daemon(&config, dir.path(), &[("RW_TEST_KEY", "good-key")]);
    // A new store delays each first probe by one interval and its start offset: up to about
    // 20s for send-mail's 10s interval.
    std::thread::sleep(Duration::from_secs(30));

    let stats = sim.stats();
    // Budgets at 50%: max(1, floor(limit / 2)).
    let budgets = [
        ("model", 2),
        ("generate-key", 1),
        ("check-credit", 1),
        ("get-xmr-wallet", 1),
        ("confirm-xmr-payment", 1),
        ("send-mail", 1),
    ];
    for (endpoint, budget) in budgets {
        let entry = &stats[endpoint];
        let max = entry["max_in_window"].as_u64().unwrap();
        let total = entry["total"].as_u64().unwrap();
        eprintln!("{endpoint}: {total} requests, at most {max} in one window, budget {budget}");
        assert!(total >= 1, "{endpoint} was never probed");
        assert!(
            max <= budget,
            "{endpoint}: {max} in one window, budget {budget}"
        );
        assert!(
            entry["status_counts"].get("429").is_none(),
            "{endpoint} got a 429: {entry}"
        );
    }
    // model: 1.025s apart for 23s is about 22 probes.
    assert!(stats["model"]["total"].as_u64().unwrap() >= 18);
}

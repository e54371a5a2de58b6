//! `degraded_after` end to end: the daemon probes the simulator, whose wallet endpoint responds
//! late, and `/api/v1/status` and the status page show that endpoint degraded while the fast
//! one stays up.

mod common;

use std::time::Duration;

use common::{Process, Simulator, free_port, get, ratewatch_bin, wait_for};

/// Every wallet request waits 1s before the normal 200 response.
const SCENARIO: &str = "
endpoints:
  get-xmr-wallet:
    faults:
      - { delay: 1s }
";

/// Returns the daemon config. The threshold is set on the API, so both endpoints inherit it,
/// and it is well below the wallet's delay and well above a loopback response.
fn config(sim_port: u16) -> String {
    format!(
        r"
global: {{ interval: 1s, timeout: 3s }}
apis:
  - name: sim
    base_url: http://127.0.0.1:{sim_port}/
    auth: {{ bearer: {{ env: RW_SLOW_KEY }} }}
    degraded_after: 500ms
    endpoints:
      - {{ name: model, path: frontend-api/model/, rate_limit: 20/s }}
      - {{ name: get-xmr-wallet, path: frontend-api/get-xmr-wallet, interval: 2s }}
"
    )
}

#[test]
fn slow_success_shows_degraded_and_fast_one_up() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::start(dir.path(), SCENARIO);
    let config_path = dir.path().join("ratewatch.yml");
    std::fs::write(&config_path, config(sim.port)).unwrap();
    let port = free_port();
    let args = [
        format!("--config.file={}", config_path.display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
        format!("--storage.path={}", dir.path().join("state").display()),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let _daemon = Process::start(ratewatch_bin(), &args, &[("RW_SLOW_KEY", "slow-key")]);
    let base = format!("http://127.0.0.1:{port}");

    // A new store makes every endpoint wait one interval before its first probe, so both
    // results are in after about 2s plus the wallet's 1s delay.
    let endpoints = wait_for(
        "model up and get-xmr-wallet degraded",
        Duration::from_secs(60),
        || {
            let (_, body) = get(&format!("{base}/api/v1/status"))?;
            let status: serde_json::Value = serde_json::from_str(&body).ok()?;
            let endpoints = status["endpoints"].as_array()?.clone();
            let health = |name: &str| {
                endpoints
                    .iter()
                    .find(|e| e["endpoint"] == name)
                    .and_then(|e| e["health"].as_str().map(str::to_owned))
            };
            (health("model")? == "up" && health("get-xmr-wallet")? == "degraded")
                .then_some(endpoints)
        },
    );

    let wallet = endpoints
        .iter()
        .find(|e| e["endpoint"] == "get-xmr-wallet")
        .unwrap();
    assert_eq!(wallet["class"], "ok", "{wallet}");
    assert_eq!(wallet["status_code"], 200, "{wallet}");
    assert_eq!(wallet["success"], true, "{wallet}");
    assert!(
        wallet["consecutive_successes"].as_u64() >= Some(1),
        "a slow success still counts as a success: {wallet}"
    );
    assert_eq!(wallet["consecutive_failures"], 0, "{wallet}");
    let detail = wallet["detail"].as_str().unwrap_or_default();
    assert!(detail.starts_with("took "), "{wallet}");
    assert!(
        detail.ends_with(", longer than degraded_after 500ms"),
        "{wallet}"
    );
    let took = wallet["duration_seconds"].as_f64().unwrap();
    assert!((1.0..3.0).contains(&took), "{wallet}");

    let model = endpoints.iter().find(|e| e["endpoint"] == "model").unwrap();
    assert_eq!(model["class"], "ok", "{model}");
    assert!(model["detail"].is_null(), "{model}");

    let (status, page) = get(&format!("{base}/")).unwrap();
    assert_eq!(status, 200);
    assert!(
        page.contains(
            "<tr class=\"degraded\"><td>sim</td><td>get-xmr-wallet</td><td class=\"health\">degraded</td>"
        ),
        "{page}"
    );
    assert!(
        page.contains(", longer than degraded_after 500ms\">ok</td>"),
        "{page}"
    );
}

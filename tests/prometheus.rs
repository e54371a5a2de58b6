//! End to end: `ratewatch demo` probes its simulator, a real Prometheus (the Debian
//! `prometheus` package) scrapes the daemon, and `promtool check metrics` reads a live scrape.

#![allow(
    clippy::too_many_lines,
    reason = "a test reads best as one sequence of steps"
)]

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Process, free_port, get, ratewatch_bin, require, wait_for};

const ENDPOINTS: [&str; 7] = [
    "model",
    "generate-key",
    "check-credit",
    "get-xmr-wallet",
    "confirm-xmr-payment",
    "send-mail",
    "inference",
];

fn query(prometheus: u16, expr: &str) -> Option<serde_json::Value> {
    let url = format!(
        "http://127.0.0.1:{prometheus}/api/v1/query?query={}",
        url::form_urlencoded::byte_serialize(expr.as_bytes()).collect::<String>()
    );
    let (status, body) = get(&url)?;
    let body: serde_json::Value = serde_json::from_str(&body).ok()?;
    (status == 200 && body["status"] == "success").then(|| body["data"]["result"].clone())
}

#[test]
fn prometheus_scrapes_every_endpoint() {
    if !require("prometheus") || !require("promtool") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let daemon_port = free_port();
    let sim_port = free_port();
    let daemon_address = format!("--web.listen-address=127.0.0.1:{daemon_port}");
    let sim_address = format!("--simulator.listen-address=127.0.0.1:{sim_port}");
    // The demo writes its config to a temporary file, which a killed demo cannot remove.
    let temp = dir.path().to_str().unwrap();
    let _demo = Process::start_logged(
        ratewatch_bin(),
        &["demo", &daemon_address, &sim_address],
        &[("TMPDIR", temp)],
        dir.path(),
        "demo",
    );
    wait_for("the demo daemon", Duration::from_secs(20), || {
        get(&format!("http://127.0.0.1:{daemon_port}/-/ready"))
    });
    let printed = std::fs::read_to_string(dir.path().join("demo.stdout")).unwrap();
    assert!(
        printed.contains(&format!("http://127.0.0.1:{daemon_port}/metrics")),
        "{printed}"
    );

    let prometheus_port = free_port();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: ratewatch\n    static_configs:\n      - targets: ['127.0.0.1:{daemon_port}']\n"
        ),
    )
    .unwrap();
    let storage = dir.path().join("tsdb");
    let args = [
        format!("--config.file={}", config.display()),
        format!("--storage.tsdb.path={}", storage.display()),
        format!("--web.listen-address=127.0.0.1:{prometheus_port}"),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let _prometheus = Process::start_logged("prometheus", &args, &[], dir.path(), "prometheus");

    wait_for(
        "Prometheus to scrape ratewatch",
        Duration::from_secs(60),
        || {
            let (_, body) = get(&format!(
                "http://127.0.0.1:{prometheus_port}/api/v1/targets"
            ))?;
            let body: serde_json::Value = serde_json::from_str(&body).ok()?;
            let targets = body["data"]["activeTargets"].as_array()?;
            targets.iter().any(|t| t["health"] == "up").then_some(())
        },
    );
    let results = wait_for(
        "ratewatch_probe_results_total in Prometheus",
        Duration::from_secs(30),
        || {
            let result = query(
                prometheus_port,
                "count by (endpoint) (ratewatch_probe_results_total{job=\"ratewatch\"})",
            )?;
            (result.as_array()?.len() == ENDPOINTS.len()).then_some(result)
        },
    );
    for endpoint in ENDPOINTS {
        let found = results
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["metric"]["endpoint"] == endpoint)
            .unwrap_or_else(|| panic!("{endpoint} missing from {results}"));
        assert_eq!(
            found["value"][1], "15",
            "{endpoint} has one series per class"
        );
    }
    // model is the first endpoint probed (15s after start on its 30s grid).
    wait_for(
        "a probe of model in Prometheus",
        Duration::from_secs(40),
        || {
            let result = query(
                prometheus_port,
                "ratewatch_probe_results_total{endpoint=\"model\",class=\"ok\"} > 0",
            )?;
            (!result.as_array()?.is_empty()).then_some(())
        },
    );

    let (_, scrape) = get(&format!("http://127.0.0.1:{daemon_port}/metrics")).unwrap();
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.as_bytes())
        .unwrap();
    let output = promtool.wait_with_output().unwrap();
    let problems = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{problems}"
    );
    assert!(
        problems.trim().is_empty(),
        "promtool check metrics reported:\n{problems}"
    );
}

//! The status page in a real headless Chromium: the daemon probes the simulator until one
//! endpoint is up, one degraded and one down, and the page Chromium renders shows each state
//! in a well-formed table.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Process, Simulator, free_port, get, ratewatch_bin, require, wait_for};

/// `check-credit` returns 503 throughout, and `get-xmr-wallet` allows one request an hour, so
/// the daemon's second probe of it gets 429.
const SCENARIO: &str = "
endpoints:
  check-credit:
    faults:
      - { status: 503 }
  get-xmr-wallet:
    limit: 1/1h
";

fn config(sim_port: u16) -> String {
    format!(
        r"
global: {{ interval: 1s, timeout: 2s }}
apis:
  - name: sim
    base_url: http://127.0.0.1:{sim_port}/
    auth: {{ bearer: {{ env: RW_PAGE_KEY }} }}
    endpoints:
      - {{ name: model, path: frontend-api/model/, rate_limit: 20/s }}
      - {{ name: check-credit, path: frontend-api/check-credit, rate_limit: 10/s }}
      - {{ name: get-xmr-wallet, path: frontend-api/get-xmr-wallet, rate_limit: 10/s }}
"
    )
}

/// Returns the text of each cell, per `<tr>` in the body of the rendered table.
fn body_rows(dom: &str) -> Vec<Vec<String>> {
    let body = dom
        .split_once("<tbody>")
        .and_then(|(_, rest)| rest.split_once("</tbody>"))
        .map_or("", |(body, _)| body);
    body.split("<tr")
        .skip(1)
        .map(|row| {
            row.split("<td")
                .skip(1)
                .map(|cell| {
                    let text = cell.split_once('>').map_or("", |(_, t)| t);
                    text.split_once("</td>").map_or(text, |(t, _)| t).to_owned()
                })
                .collect()
        })
        .collect()
}

#[test]
fn chromium_renders_each_health_state() {
    if !require("chromium") {
        return;
    }
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
    let _daemon = Process::start(ratewatch_bin(), &args, &[("RW_PAGE_KEY", "page-key")]);
    let base = format!("http://127.0.0.1:{port}");

    // A new store makes every endpoint wait one interval (about 1s) before its first probe.
    let expected = [
        ("model", "up"),
        ("check-credit", "down"),
        ("get-xmr-wallet", "degraded"),
    ];
    wait_for(
        "each endpoint to reach its state",
        Duration::from_secs(30),
        || {
            let (_, body) = get(&format!("{base}/api/v1/status"))?;
            let status: serde_json::Value = serde_json::from_str(&body).ok()?;
            let endpoints = status["endpoints"].as_array()?;
            expected
                .iter()
                .all(|(name, health)| {
                    endpoints
                        .iter()
                        .any(|e| e["endpoint"] == *name && e["health"] == *health)
                })
                .then_some(())
        },
    );

    let profile = dir.path().join("chromium-profile");
    let output = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            // Every name resolves to nothing, so the browser can reach only the loopback page.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            &format!("--user-data-dir={}", profile.display()),
            "--dump-dom",
            &format!("{base}/"),
        ])
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        dom.contains("<title>"),
        "no title in the rendered page:\n{dom}"
    );

    let headers = dom.matches("<th>").count();
    assert_eq!(headers, 11, "header cells in the rendered page:\n{dom}");
    let rows = body_rows(&dom);
    assert_eq!(
        rows.len(),
        expected.len(),
        "rows in the rendered page:\n{dom}"
    );
    for row in &rows {
        assert_eq!(row.len(), headers, "a row with a wrong cell count: {row:?}");
    }
    for (name, health) in expected {
        let row = rows
            .iter()
            .find(|row| row[1] == name)
            .unwrap_or_else(|| panic!("no row for {name}:\n{dom}"));
        assert_eq!(row[0], "sim", "{row:?}");
        assert_eq!(row[2], health, "{name}: {row:?}");
        assert!(
            dom.contains(&format!("<tr class=\"{health}\">")),
            "no row styled {health}:\n{dom}"
        );
    }
    let wallet = rows.iter().find(|row| row[1] == "get-xmr-wallet").unwrap();
    assert_eq!(wallet[3], "rate_limited", "{wallet:?}");
    assert_eq!(wallet[4], "429", "{wallet:?}");
    let credit = rows.iter().find(|row| row[1] == "check-credit").unwrap();
    assert_eq!(credit[3], "unavailable", "{credit:?}");
    assert_eq!(credit[4], "503", "{credit:?}");
    assert!(!dom.contains("page-key"), "the API key reached the page");
}

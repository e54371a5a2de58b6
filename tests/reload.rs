//! Reloads over real processes: a valid change, an invalid change, and a storm of 100 reloads
//! in a few seconds through `POST /-/reload` and SIGHUP. None of them sends an extra probe.

#![allow(
    clippy::too_many_lines,
    reason = "a test reads best as one sequence of steps"
)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Process, Simulator, free_port, get, ratewatch_bin, sample, wait_for};

fn config(sim_port: u16, timeout: &str, extra: &str) -> String {
    format!(
        r"
global: {{ timeout: {timeout} }}
apis:
  - name: sim
    base_url: http://127.0.0.1:{sim_port}/
    auth: {{ bearer: {{ env: RW_RELOAD_KEY }} }}
    endpoints:
      - {{ name: model, path: frontend-api/model/, interval: 4s }}
      - {{ name: wallet, path: frontend-api/get-xmr-wallet, interval: 6s }}
{extra}"
    )
}

fn totals(sim_port: u16) -> (u64, u64) {
    let (_, body) = get(&format!("http://127.0.0.1:{sim_port}/_sim/stats")).unwrap();
    let stats: serde_json::Value = serde_json::from_str(&body).unwrap();
    (
        stats["model"]["total"].as_u64().unwrap(),
        stats["get-xmr-wallet"]["total"].as_u64().unwrap(),
    )
}

fn reload(base: &str) -> (u16, String) {
    let reply = reqwest::blocking::Client::new()
        .post(format!("{base}/-/reload"))
        .timeout(Duration::from_secs(10))
        .send()
        .unwrap();
    (reply.status().as_u16(), reply.text().unwrap())
}

fn metric(base: &str, name: &str) -> Option<f64> {
    let (_, text) = get(&format!("{base}/metrics"))?;
    sample(&text, name)
}

#[test]
fn reloads_never_send_an_extra_probe() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::start(dir.path(), "");
    let sim_port = sim.port;

    let config_path = dir.path().join("ratewatch.yml");
    std::fs::write(&config_path, config(sim_port, "2s", "")).unwrap();
    let port = free_port();
    let args = [
        format!("--config.file={}", config_path.display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
        format!("--storage.path={}", dir.path().join("state").display()),
        "--web.enable-lifecycle".to_owned(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // The probe bounds below count from the daemon's start, however long it takes to become
    // ready on a loaded machine.
    let started = Instant::now();
    let daemon = Process::start_logged(
        ratewatch_bin(),
        &args,
        &[("RW_RELOAD_KEY", "k")],
        dir.path(),
        "daemon",
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_for("the daemon", Duration::from_secs(20), || {
        get(&format!("{base}/-/ready"))
    });

    // A fresh store waits one interval, then each endpoint probes on its grid.
    wait_for("two probes of model", Duration::from_secs(20), || {
        (totals(sim_port).0 >= 2).then_some(())
    });

    // An invalid change is rejected and the old config keeps running.
    std::fs::write(
        &config_path,
        config(sim_port, "2s", "      - { name: broken, path: x }\n"),
    )
    .unwrap();
    let (status, body) = reload(&base);
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("must set interval"), "{body}");
    assert_eq!(
        metric(&base, "ratewatch_config_last_reload_successful"),
        Some(0.0)
    );

    // Two misspelt keys are both reported by one reload, and the old config keeps running.
    std::fs::write(
        &config_path,
        config(
            sim_port,
            "2s",
            "      - { name: typo, path: x, intervl: 1s, rate_limt: 1/s }\n",
        ),
    )
    .unwrap();
    let (status, body) = reload(&base);
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("unknown key intervl"), "{body}");
    assert!(body.contains("unknown key rate_limt"), "{body}");
    assert_eq!(
        metric(&base, "ratewatch_config_last_reload_successful"),
        Some(0.0)
    );

    // A valid change: a new timeout for every endpoint, which restarts their tasks with the
    // budget they already spent.
    std::fs::write(&config_path, config(sim_port, "3s", "")).unwrap();
    let (status, body) = reload(&base);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("2 changed"), "{body}");
    assert_eq!(
        metric(&base, "ratewatch_config_last_reload_successful"),
        Some(1.0)
    );

    // A storm: 100 reloads in a few seconds, alternating changed, unchanged and invalid
    // configs, through the API and SIGHUP.
    let storm = Instant::now();
    for i in 0..100 {
        let text = match i % 3 {
            0 => config(sim_port, "2s", ""),
            1 => config(sim_port, "3s", ""),
            _ => config(sim_port, "3s", "      - { name: broken, path: x }\n"),
        };
        std::fs::write(&config_path, text).unwrap();
        if i % 2 == 0 {
            reload(&base);
        } else {
            Command::new("kill")
                .args(["-HUP", &daemon.id().to_string()])
                .status()
                .unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let storm_took = storm.elapsed();
    eprintln!("100 reloads took {storm_took:?}");
    assert!(storm_took < Duration::from_secs(20));
    std::fs::write(&config_path, config(sim_port, "3s", "")).unwrap();
    assert_eq!(reload(&base).0, 200);

    // A reload that probed at once would have done so by now.
    std::thread::sleep(Duration::from_secs(5));
    wait_for(
        "model to go on probing after the reloads",
        Duration::from_secs(20),
        || (totals(sim_port).0 >= 3).then_some(()),
    );
    let elapsed = started.elapsed();
    let (model, wallet) = totals(sim_port);
    // A 4s grid over `elapsed` fits at most elapsed / 4 + 1 probes, less the first interval
    // a fresh store waits; the 6s grid likewise. A reload that probed again would exceed it.
    let most_model = elapsed.as_secs_f64() / 4.0 + 1.0;
    let most_wallet = elapsed.as_secs_f64() / 6.0 + 1.0;
    eprintln!(
        "after {elapsed:?}: model {model} probes (at most {most_model:.1}), wallet {wallet} (at most {most_wallet:.1})"
    );
    assert!(
        (model as f64) <= most_model,
        "model: {model} probes in {elapsed:?}"
    );
    assert!(
        (wallet as f64) <= most_wallet,
        "wallet: {wallet} probes in {elapsed:?}"
    );
    assert_eq!(get(&format!("{base}/-/ready")).map(|(s, _)| s), Some(200));
}

//! Three daemons share one budget through a real Redis (the Debian `redis-server` package):
//! their combined requests stay within the budget, probing goes on when one dies, and stopping
//! Redis stops probing and makes the replicas not ready until it returns.

#![allow(
    clippy::too_many_lines,
    reason = "a test reads best as one sequence of steps"
)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::redis_server::Redis;
use common::{Process, Simulator, free_port, get, ratewatch_bin, require, wait_for};

const SCENARIO: &str = "
endpoints:
  model: { limit: 5/2s }
  check-credit: { limit: 2/6s }
";

const BUDGETS: [(&str, u64); 2] = [("model", 2), ("check-credit", 1)];

/// Starts Redis with append-only persistence and fsync on every write in `dir`, as the README
/// recommends for a shared budget, so the budget survives the restart in the test.
fn start_redis(dir: &Path) -> Redis {
    let dir = dir.display().to_string();
    Redis::start(&[
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--dir",
        &dir,
    ])
}

fn stats(sim_port: u16) -> serde_json::Value {
    let (_, body) = get(&format!("http://127.0.0.1:{sim_port}/_sim/stats")).unwrap();
    serde_json::from_str(&body).unwrap()
}

fn total(sim_port: u16) -> u64 {
    let stats = stats(sim_port);
    BUDGETS
        .iter()
        .map(|(e, _)| stats[e]["total"].as_u64().unwrap())
        .sum()
}

fn ready(port: u16) -> Option<u16> {
    get(&format!("http://127.0.0.1:{port}/-/ready")).map(|(status, _)| status)
}

fn assert_within_budget(sim_port: u16, when: &str) {
    let stats = stats(sim_port);
    for (endpoint, budget) in BUDGETS {
        let max = stats[endpoint]["max_in_window"].as_u64().unwrap();
        let count = stats[endpoint]["total"].as_u64().unwrap();
        eprintln!(
            "{when}: {endpoint}: {count} requests, at most {max} in one window, budget {budget}"
        );
        assert!(
            max <= budget,
            "{when}: {endpoint} had {max} in one window, budget {budget}"
        );
    }
}

#[test]
fn replicas_share_one_budget_through_redis() {
    if !require("redis-server") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let redis_dir = dir.path().join("redis");
    std::fs::create_dir_all(&redis_dir).unwrap();
    let mut redis = start_redis(&redis_dir);
    let redis_port = redis.port;

    let sim = Simulator::start(dir.path(), SCENARIO);
    let sim_port = sim.port;

    let config = dir.path().join("ratewatch.yml");
    std::fs::write(
        &config,
        format!(
            r"
global: {{ interval: 200ms, timeout: 1s }}
apis:
  - name: sim
    base_url: http://127.0.0.1:{sim_port}/
    auth: {{ bearer: {{ env: RW_REPLICA_KEY }} }}
    endpoints:
      - {{ name: model, path: frontend-api/model/, rate_limit: 5/2s, probe_share: 50% }}
      - {{ name: check-credit, path: frontend-api/check-credit, rate_limit: 2/6s, probe_share: 50% }}
"
        ),
    )
    .unwrap();

    let redis_url = format!("--storage.redis-url=redis://127.0.0.1:{redis_port}/");
    let started = Instant::now();
    let mut replicas = Vec::new();
    for i in 0..3 {
        let port = free_port();
        let args = [
            format!("--config.file={}", config.display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            format!(
                "--storage.path={}",
                dir.path().join(format!("state-{i}")).display()
            ),
            redis_url.clone(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let process = Process::start_logged(
            ratewatch_bin(),
            &args,
            &[("RW_REPLICA_KEY", "shared-key")],
            dir.path(),
            &format!("replica-{i}"),
        );
        replicas.push((process, port));
    }
    for (_, port) in &replicas {
        wait_for("a ready replica", Duration::from_secs(20), || {
            (ready(*port) == Some(200)).then_some(())
        });
    }

    std::thread::sleep(Duration::from_secs(12));
    assert_within_budget(sim_port, "three replicas");
    let model = stats(sim_port)["model"]["total"].as_u64().unwrap();
    // One probe per 1.025s slot across all replicas, not one per replica. The slots count
    // from the first replica's start, because a loaded machine may take seconds to make all
    // three ready. A slot cut at each end adds one.
    let running = started.elapsed();
    let slots = running.as_secs_f64() / 1.025 + 2.0;
    eprintln!("three replicas: model probed {model} times in {running:?}, {slots:.1} slots");
    assert!(
        model as f64 <= slots,
        "model probed {model} times in {running:?} by three replicas"
    );
    assert!(model >= 6, "model probed only {model} times");

    // One replica dies: the others keep probing on schedule.
    let (mut dead, _) = replicas.remove(0);
    Command::new("kill")
        .args(["-KILL", &dead.id().to_string()])
        .status()
        .unwrap();
    dead.terminate(Duration::from_secs(1));
    // About five probes are due in 5s, and the wait allows twice that time for a loaded machine.
    let before = total(sim_port);
    wait_for(
        "three more probes after one replica died",
        Duration::from_secs(10),
        || (total(sim_port) >= before + 3).then_some(()),
    );
    assert_within_budget(sim_port, "two replicas");

    // Redis stops: no more probes, and the replicas report not ready.
    redis.stop();
    for (_, port) in &replicas {
        wait_for(
            "a replica to report not ready",
            Duration::from_secs(30),
            || (ready(*port) == Some(503)).then_some(()),
        );
    }
    let stopped = total(sim_port);
    std::thread::sleep(Duration::from_secs(4));
    let still = total(sim_port);
    assert!(
        still <= stopped + 1,
        "replicas probed without Redis: {stopped} -> {still}"
    );
    for (_, port) in &replicas {
        let (_, metrics) = get(&format!("http://127.0.0.1:{port}/metrics")).unwrap();
        let skipped = common::sample(
            &metrics,
            "ratewatch_probes_skipped_total{api=\"sim\",endpoint=\"model\",reason=\"budget_store_unavailable\"}",
        );
        assert!(
            skipped.is_some_and(|v| v >= 1.0),
            "no budget_store_unavailable skips: {skipped:?}"
        );
        assert_eq!(common::sample(&metrics, "ratewatch_ready"), Some(0.0));
    }

    // Redis returns: probing resumes and the replicas are ready again.
    redis.restart();
    for (_, port) in &replicas {
        wait_for(
            "a replica to be ready again",
            Duration::from_secs(20),
            || (ready(*port) == Some(200)).then_some(()),
        );
    }
    let resumed = total(sim_port);
    wait_for(
        "three more probes after Redis returned",
        Duration::from_secs(10),
        || (total(sim_port) >= resumed + 3).then_some(()),
    );
    assert_within_budget(sim_port, "after the Redis restart");
    drop(redis);
}

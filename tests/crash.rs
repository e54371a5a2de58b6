//! Crash safety over real processes: the daemon is killed with SIGKILL at random moments and
//! restarted on the same state, at least 20 times, and the simulator never sees more than the
//! budget in any window.

#![allow(
    clippy::too_many_lines,
    reason = "a test reads best as one sequence of steps"
)]

mod common;

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Process, Simulator, free_port, ratewatch_bin};

const SCENARIO: &str = "
endpoints:
  model: { limit: 5/2s }
  check-credit: { limit: 2/6s }
  get-xmr-wallet: { limit: 1/4s }
";

/// Budgets of the config below: 50% of 5/2s, 100% of 2/6s and of 1/4s.
const BUDGETS: [(&str, u64); 3] = [("model", 2), ("check-credit", 2), ("get-xmr-wallet", 1)];

fn config(sim_port: u16) -> String {
    format!(
        r"
global: {{ interval: 200ms, timeout: 1s }}
apis:
  - name: sim
    base_url: http://127.0.0.1:{sim_port}/
    auth: {{ bearer: {{ env: RW_CRASH_KEY }} }}
    endpoints:
      - {{ name: model, path: frontend-api/model/, rate_limit: 5/2s, probe_share: 50% }}
      - {{ name: check-credit, path: frontend-api/check-credit, rate_limit: 2/6s, probe_share: 100% }}
      - {{ name: get-xmr-wallet, path: frontend-api/get-xmr-wallet, rate_limit: 1/4s, probe_share: 100% }}
"
    )
}

#[test]
fn kill_nine_never_spends_budget_twice() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::start(dir.path(), SCENARIO);
    let sim_port = sim.port;
    let config_path = dir.path().join("ratewatch.yml");
    std::fs::write(&config_path, config(sim_port)).unwrap();
    let storage = dir.path().join("state");

    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("crash test seed {seed}");
    let mut random = seed;
    let mut next = move |below: u64| {
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        random % below
    };

    let kills = 24;
    for round in 0..kills {
        let port = free_port();
        let args = [
            format!("--config.file={}", config_path.display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            format!("--storage.path={}", storage.display()),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let daemon = Process::start(ratewatch_bin(), &args, &[("RW_CRASH_KEY", "crash-key")]);
        let alive = Duration::from_millis(200 + next(2800));
        std::thread::sleep(alive);
        let status = Command::new("kill")
            .args(["-KILL", &daemon.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "round {round}: kill -9 failed");
        drop(daemon);
    }

    let stats = sim.stats();
    let mut probed = 0;
    for (endpoint, budget) in BUDGETS {
        let max = stats[endpoint]["max_in_window"].as_u64().unwrap();
        let total = stats[endpoint]["total"].as_u64().unwrap();
        eprintln!(
            "{endpoint}: {total} requests over {kills} kill -9 restarts, at most {max} in one window, budget {budget}"
        );
        assert!(
            max <= budget,
            "{endpoint}: {max} in one window after kill -9 restarts, budget {budget} (seed {seed})"
        );
        assert!(
            stats[endpoint]["status_counts"].get("429").is_none(),
            "{endpoint} got a 429 (seed {seed})"
        );
        probed += total;
    }
    assert!(
        probed >= 10,
        "the daemon hardly probed: {probed} requests (seed {seed})"
    );
}

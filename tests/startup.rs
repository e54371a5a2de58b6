//! Start-up of a large config: the daemon accepts connections at once, but reports ready only
//! once every endpoint is scheduled.

mod common;

use std::fmt::Write;
use std::time::{Duration, Instant};

use common::{Process, free_port, get, ratewatch_bin, wait_for};

const ENDPOINTS: usize = 2000;

#[test]
fn ready_only_after_every_endpoint_is_loaded() {
    let dir = tempfile::tempdir().unwrap();
    // Port 9 on loopback (discard) is never probed: the hour-long interval keeps every first
    // slot far away.
    let mut config = String::from(
        "global: { interval: 1h }\napis:\n  - name: big\n    base_url: http://127.0.0.1:9/\n    endpoints:\n",
    );
    for i in 0..ENDPOINTS {
        writeln!(
            config,
            "      - {{ name: e{i}, path: p{i}, rate_limit: 10/hour }}"
        )
        .unwrap();
    }
    let config_path = dir.path().join("ratewatch.yml");
    std::fs::write(&config_path, config).unwrap();
    let storage = dir.path().join("state");

    let port = free_port();
    let args = [
        format!("--config.file={}", config_path.display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
        format!("--storage.path={}", storage.display()),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let _daemon = Process::start(ratewatch_bin(), &args, &[]);
    let base = format!("http://127.0.0.1:{port}");

    let started = Instant::now();
    let mut not_ready = 0;
    wait_for("/-/ready to answer 200", Duration::from_secs(120), || {
        let (code, _) = get(&format!("{base}/-/ready"))?;
        if code == 200 {
            return Some(());
        }
        not_ready += 1;
        std::thread::sleep(Duration::from_millis(20));
        None
    });
    let (_, body) = get(&format!("{base}/api/v1/status")).unwrap();
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    let loaded = status["endpoints"].as_array().unwrap().len();
    eprintln!(
        "{ENDPOINTS} endpoints: ready after {:?}, {not_ready} answers of 503 before",
        started.elapsed()
    );
    assert_eq!(
        loaded, ENDPOINTS,
        "/-/ready said 200 with {loaded} of {ENDPOINTS} endpoints loaded"
    );
}

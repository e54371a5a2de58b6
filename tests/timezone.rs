//! A `Retry-After` HTTP-date is read in UTC whatever the host's time zone is. The daemon runs
//! against the simulator under time zones far from UTC. The simulator responds to the first
//! probe with a 503 and a date one hour ahead, so the pause the daemon reports must end just
//! after that date. Read as local time, it would be off by the zone's offset.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Process, Simulator, free_port, get, ratewatch_bin, sample, wait_for};

#[test]
fn retry_after_date_ignores_time_zone() {
    let dir = tempfile::tempdir().unwrap();
    // Whole seconds, because an HTTP-date carries no fraction.
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let until = UNIX_EPOCH + Duration::from_secs(now.as_secs() + 3600);
    let date = httpdate::fmt_http_date(until);
    let expected = until.duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    // UTC+13:45 as a POSIX rule, which needs no tzdata, and UTC-3:30 (UTC-2:30 in summer)
    // from the zone database.
    for zone in ["UTC", "CHAST-13:45", "America/St_Johns"] {
        // A simulator of its own, since the fault applies only to its first request.
        let sim = Simulator::start(
            dir.path(),
            &format!(
                "endpoints:\n  model:\n    faults:\n      - {{ status: 503, retry_after: \"{date}\", requests: 1 }}\n"
            ),
        );
        let config = dir.path().join("ratewatch.yml");
        std::fs::write(
            &config,
            format!(
                "global: {{ interval: 200ms, timeout: 1s }}\napis:\n  - name: sim\n    base_url: http://127.0.0.1:{}/\n    auth: {{ bearer: {{ env: RW_TZ_TEST_KEY }} }}\n    endpoints:\n      - {{ name: model, path: frontend-api/model/, rate_limit: 5/2s, probe_share: 50% }}\n",
                sim.port
            ),
        )
        .unwrap();
        let port = free_port();
        let args = [
            format!("--config.file={}", config.display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            format!("--storage.path={}", dir.path().join(zone).display()),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut daemon = Process::start_logged(
            ratewatch_bin(),
            &args,
            &[("TZ", zone), ("RW_TZ_TEST_KEY", "timezone-test-key")],
            dir.path(),
            &format!("daemon-{}", zone.replace('/', "-")),
        );
        let series = "ratewatch_paused_until_timestamp_seconds{api=\"sim\",endpoint=\"model\"}";
        let paused_until = wait_for("the pause from the 503", Duration::from_secs(20), || {
            let (_, text) = get(&format!("http://127.0.0.1:{port}/metrics"))?;
            sample(&text, series).filter(|&until| until > 0.0)
        });
        eprintln!("TZ={zone}: paused until {paused_until}, the date is {expected}");
        // The pause ends at the first slot of the grid at or after the date, so less than one
        // interval (1s 25ms here) later. Read as local time, it would be hours off.
        assert!(
            paused_until >= expected - 0.01,
            "TZ={zone}: paused until {paused_until}, before {date} ({expected})"
        );
        assert!(
            paused_until < expected + 2.0,
            "TZ={zone}: paused until {paused_until}, long after {date} ({expected})"
        );
        assert!(
            daemon.terminate(Duration::from_secs(10)),
            "daemon did not stop"
        );
    }
}

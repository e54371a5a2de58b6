//! A canary secret, given as a bearer token, a cookie and a file, is sent to the API but never
//! reaches a log line, a metric, the status page, the JSON API, the plan table or an error
//! message.

#![allow(
    clippy::too_many_lines,
    reason = "a test reads best as one sequence of steps"
)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Process, Simulator, free_port, get, ratewatch_bin, wait_for};

const TOKEN: &str = "canary-token-7d3f0b2a";
const COOKIE: &str = "session=canary-cookie-91ce44";
const FILE_SECRET: &str = "canary-file-5be1";

fn config(sim_port: u16, secret_file: &str, extra: &str) -> String {
    format!(
        r"
global: {{ interval: 1s, timeout: 2s }}
apis:
  - name: sim
    base_url: http://127.0.0.1:{sim_port}/
    auth: {{ bearer: {{ env: RW_CANARY_TOKEN }} }}
    endpoints:
      - {{ name: model, path: frontend-api/model/, rate_limit: 20/s }}
      - name: wallet
        path: frontend-api/get-xmr-wallet
        interval: 1s
        headers:
          Cookie: {{ env: RW_CANARY_COOKIE }}
          X-Api-Key: {{ file: {secret_file} }}
{extra}"
    )
}

fn assert_clean(what: &str, text: &str) {
    for canary in [TOKEN, "canary-cookie-91ce44", FILE_SECRET] {
        assert!(
            !text.contains(canary),
            "{what} contains the secret {canary}:\n{text}"
        );
    }
}

#[test]
fn canary_secret_never_leaks() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("api-key");
    std::fs::write(&secret_file, format!("{FILE_SECRET}\n")).unwrap();
    let secret_file = secret_file.to_string_lossy().into_owned();
    let env = [("RW_CANARY_TOKEN", TOKEN), ("RW_CANARY_COOKIE", COOKIE)];

    let sim = Simulator::start(dir.path(), "");
    let sim_port = sim.port;

    let config_path = dir.path().join("ratewatch.yml");
    std::fs::write(&config_path, config(sim_port, &secret_file, "")).unwrap();
    let port = free_port();
    let config_flag = format!("--config.file={}", config_path.display());
    let listen = format!("--web.listen-address=127.0.0.1:{port}");
    let storage = format!("--storage.path={}", dir.path().join("state").display());
    let args = [
        config_flag.as_str(),
        listen.as_str(),
        "--log.level=debug",
        "--web.enable-lifecycle",
        storage.as_str(),
    ];
    let mut daemon = Process::start_logged(ratewatch_bin(), &args, &env, dir.path(), "daemon");
    let base = format!("http://127.0.0.1:{port}");
    wait_for(
        "two probes of each endpoint",
        Duration::from_secs(20),
        || {
            let (_, text) = get(&format!("{base}/metrics"))?;
            let ok = |endpoint: &str| {
                common::sample(&text, &format!("ratewatch_probe_results_total{{api=\"sim\",class=\"ok\",endpoint=\"{endpoint}\"}}"))
                .is_some_and(|v| v >= 2.0)
            };
            (ok("model") && ok("wallet")).then_some(())
        },
    );

    // The secrets were sent: the simulator answered 200, not 401.
    let stats = sim.stats();
    assert!(
        stats["get-xmr-wallet"]["status_counts"]["200"]
            .as_u64()
            .unwrap()
            >= 2,
        "{stats}"
    );
    assert!(
        stats["get-xmr-wallet"]["status_counts"]
            .get("401")
            .is_none(),
        "{stats}"
    );

    for path in ["/metrics", "/", "/api/v1/status", "/-/ready"] {
        let (_, body) = get(&format!("{base}{path}")).unwrap();
        assert_clean(path, &body);
    }

    // A reload with an invalid config: the error names the problem, not the secrets.
    std::fs::write(
        &config_path,
        config(
            sim_port,
            &secret_file,
            "      - { name: broken, path: x }\n",
        ),
    )
    .unwrap();
    let reply = reqwest::blocking::Client::new()
        .post(format!("{base}/-/reload"))
        .send()
        .unwrap();
    assert_eq!(reply.status().as_u16(), 500);
    let message = reply.text().unwrap();
    assert!(message.contains("must set interval"), "{message}");
    assert_clean("reload error", &message);

    // A reload with the token written into the file where its reference belongs: the error
    // and the log line name the key, not the token.
    let literal = config(sim_port, &secret_file, "").replace(
        "{ bearer: { env: RW_CANARY_TOKEN } }",
        &format!("{{ bearer: {TOKEN} }}"),
    );
    assert!(literal.contains(TOKEN), "the literal token was not written");
    std::fs::write(&config_path, literal).unwrap();
    let reply = reqwest::blocking::Client::new()
        .post(format!("{base}/-/reload"))
        .send()
        .unwrap();
    assert_eq!(reply.status().as_u16(), 500);
    let message = reply.text().unwrap();
    assert!(message.contains("invalid bearer"), "{message}");
    assert_clean("literal token reload error", &message);

    assert!(
        daemon.terminate(Duration::from_secs(10)),
        "daemon did not stop on SIGTERM"
    );
    for stream in ["daemon.stdout", "daemon.stderr"] {
        let text = std::fs::read_to_string(dir.path().join(stream)).unwrap();
        assert!(
            text.contains("probe finished") || stream.ends_with("stdout"),
            "debug log missing in {stream}"
        );
        assert_clean(stream, &text);
    }

    // The plan table and check errors.
    std::fs::write(&config_path, config(sim_port, &secret_file, "")).unwrap();
    let check = Command::new(ratewatch_bin())
        .args(["check", &config_flag])
        .envs(env)
        .output()
        .unwrap();
    assert!(check.status.success());
    assert_clean("check output", &String::from_utf8_lossy(&check.stdout));
    assert_clean("check warnings", &String::from_utf8_lossy(&check.stderr));

    let bad = config(
        sim_port,
        &secret_file,
        "      - { name: bad, path: x, interval: soon }\n",
    )
    .replace("interval: 1s }", "interval: 1s, bogus: true }");
    std::fs::write(&config_path, bad).unwrap();
    let check = Command::new(ratewatch_bin())
        .args(["check", &config_flag])
        .envs(env)
        .output()
        .unwrap();
    assert!(!check.status.success());
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(stderr.contains("ratewatch.yml:"), "{stderr}");
    assert_clean("check error", &stderr);
}

#[test]
fn check_lists_secret_mistakes_without_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("ratewatch.yml");
    // The token written where its reference belongs, a header line with its colon missing,
    // and a misspelt key, in one file.
    let text = format!(
        "apis:\n  - name: a\n    base_url: http://127.0.0.1:9/\n    auth: {{ bearer: {TOKEN} }}\n    endpoints:\n      - name: e\n        path: p\n        rate_limt: 1/hour\n        headers: {{ Authorization Bearer {TOKEN} }}\n"
    );
    std::fs::write(&config_path, text).unwrap();
    let check = Command::new(ratewatch_bin())
        .args(["check", &format!("--config.file={}", config_path.display())])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(!check.status.success(), "{stderr}");
    for place in [
        ":4:21: invalid bearer",
        ":8:9: unknown key rate_limt",
        ":9:",
    ] {
        assert!(stderr.contains(place), "{place} not in:\n{stderr}");
    }
    assert_clean("check error", &stderr);
    assert_clean("check output", &String::from_utf8_lossy(&check.stdout));
}

#[test]
fn invalid_redis_url_stops_startup_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("ratewatch.yml");
    std::fs::write(
        &config_path,
        "apis:\n  - name: a\n    base_url: http://127.0.0.1:9/\n    endpoints:\n      - { name: e, path: p, rate_limit: 1/hour }\n",
    )
    .unwrap();
    let port = free_port();
    let run = Command::new(ratewatch_bin())
        .args([
            format!("--config.file={}", config_path.display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            format!("--storage.path={}", dir.path().join("state").display()),
            format!("--storage.redis-url=redis://:{TOKEN}@bad host:x/0"),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("invalid budget store URL redis://xxxxx@bad host:x/0"),
        "{stderr}"
    );
    assert_clean("redis URL error", &stderr);
    assert_clean("redis URL output", &String::from_utf8_lossy(&run.stdout));
}

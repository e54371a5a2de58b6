//! The persistence check of the shared budget store against a real `redis-server` (the Debian
//! package). A Redis that can lose debits on a restart gets one warning, and a Redis with
//! `appendonly yes` and `appendfsync always` gets none. A Redis whose `CONFIG` command is
//! renamed, as managed services do, gets one info line, and a Redis that requires a password
//! the URL does not give gets one warning that authentication is missing. The daemon starts in
//! every case.

mod common;

use std::path::Path;
use std::time::Duration;

use common::redis_server::Redis;
use common::{Process, free_port, get, ratewatch_bin, require, wait_for};
use ratewatch::shared::{AuthFailure, Persistence, SharedBudget, SharedError};

const PREFIX: &str = "ratewatch-persistence-test";
const PASSWORD: &str = "persistence-canary-82ad";
const WARNING: &str = "shared budget store does not write every debit to disk";
const UNKNOWN: &str = "cannot check whether the shared budget store writes every debit to disk";
const UNAUTHENTICATED: &str =
    "shared budget store requires authentication and the URL gives no password";

fn url(redis: &Redis) -> String {
    format!("redis://:{PASSWORD}@127.0.0.1:{}/", redis.port)
}

/// Arguments of a Redis that writes every debit to disk before it replies, in `dir`.
fn durable_args(dir: &Path) -> Vec<String> {
    [
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--dir",
        &dir.display().to_string(),
        "--requirepass",
        PASSWORD,
    ]
    .map(str::to_owned)
    .to_vec()
}

async fn persistence(redis: &Redis) -> Persistence {
    let budget = SharedBudget::connect(&url(redis), PREFIX, Duration::from_secs(2))
        .await
        .unwrap();
    budget.persistence().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistence_reads_redis_settings() {
    if !require("redis-server") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();

    let redis = Redis::start(&["--requirepass", PASSWORD]);
    let expected = Persistence::Lossy {
        appendonly: "no".to_owned(),
        appendfsync: "everysec".to_owned(),
    };
    assert_eq!(persistence(&redis).await, expected);
    drop(redis);

    let redis = Redis::start(&[
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--dir",
        &dir.path().display().to_string(),
        "--requirepass",
        PASSWORD,
    ]);
    let expected = Persistence::Lossy {
        appendonly: "yes".to_owned(),
        appendfsync: "everysec".to_owned(),
    };
    assert_eq!(persistence(&redis).await, expected);
    drop(redis);

    let durable = durable_args(dir.path());
    let durable: Vec<&str> = durable.iter().map(String::as_str).collect();
    let redis = Redis::start(&durable);
    assert_eq!(persistence(&redis).await, Persistence::Durable);
    drop(redis);

    let redis = Redis::start(&["--rename-command", "CONFIG", "", "--requirepass", PASSWORD]);
    let unknown = persistence(&redis).await;
    let Persistence::Unknown { reason } = &unknown else {
        panic!("expected Unknown with CONFIG renamed, got {unknown:?}");
    };
    assert!(reason.contains("config_get failed"), "{reason}");
    assert!(reason.contains("unknown command"), "{reason}");
    assert!(!reason.contains(PASSWORD), "{reason}");
}

/// Starts the daemon at debug level with `redis_url` as its budget store. Returns the daemon,
/// whose log goes to `daemon.stderr` in `dir`, and its listen port.
fn start_daemon(dir: &Path, redis_url: &str) -> (Process, u16) {
    let config = dir.join("ratewatch.yml");
    std::fs::write(
        &config,
        "global: { interval: 1s, timeout: 1s }\napis:\n  - name: local\n    base_url: http://127.0.0.1:9/\n    endpoints:\n      - { name: health, path: health, rate_limit: 1/s }\n",
    )
    .unwrap();

    let port = free_port();
    let args = [
        format!("--config.file={}", config.display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
        format!("--storage.path={}", dir.join("state").display()),
        format!("--storage.redis-prefix={PREFIX}"),
        "--log.level=debug".to_owned(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let env = [("RATEWATCH_REDIS_URL", redis_url)];
    let daemon = Process::start_logged(ratewatch_bin(), &args, &env, dir, "daemon");
    (daemon, port)
}

/// Stops the daemon and returns its log, which must not contain the password.
fn stop_daemon(dir: &Path, mut daemon: Process) -> String {
    assert!(
        daemon.terminate(Duration::from_secs(10)),
        "daemon did not stop"
    );
    let log = std::fs::read_to_string(dir.join("daemon.stderr")).unwrap();
    assert!(
        !log.contains(PASSWORD),
        "the log contains the password:\n{log}"
    );
    log
}

/// Runs the daemon against `redis` at debug level until it reports ready, lets it run 5s
/// more, stops it and returns its log.
fn daemon_log(dir: &Path, redis: &Redis) -> String {
    let (daemon, port) = start_daemon(dir, &url(redis));
    wait_for("a ready daemon", Duration::from_secs(20), || {
        let (status, _) = get(&format!("http://127.0.0.1:{port}/-/ready"))?;
        (status == 200).then_some(())
    });
    // The readiness check runs every 2s and the probe task uses the store on every slot, so a
    // second persistence check would happen in this time.
    std::thread::sleep(Duration::from_secs(5));
    stop_daemon(dir, daemon)
}

fn lines_with<'a>(log: &'a str, text: &str) -> Vec<&'a str> {
    log.lines().filter(|line| line.contains(text)).collect()
}

#[test]
fn lossy_redis_logs_one_warning() {
    if !require("redis-server") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(&["--requirepass", PASSWORD]);
    let log = daemon_log(dir.path(), &redis);

    let warnings = lines_with(&log, WARNING);
    assert_eq!(warnings.len(), 1, "expected one warning:\n{log}");
    let warning = warnings[0];
    assert!(warning.contains("level=warn"), "{warning}");
    assert!(warning.contains("appendonly=no"), "{warning}");
    assert!(warning.contains("appendfsync=everysec"), "{warning}");
    assert!(warning.contains("RDB snapshot"), "{warning}");
    assert!(
        warning.contains("replicas can spend the budget of a window again"),
        "{warning}"
    );
    assert!(
        warning.contains("set appendonly yes and appendfsync always"),
        "{warning}"
    );
    assert!(
        warning.contains(&format!("redis://xxxxx@127.0.0.1:{}/", redis.port)),
        "{warning}"
    );
    assert!(lines_with(&log, UNKNOWN).is_empty(), "{log}");
}

#[test]
fn durable_redis_logs_no_warning() {
    if !require("redis-server") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let redis_dir = dir.path().join("redis");
    std::fs::create_dir_all(&redis_dir).unwrap();
    let args = durable_args(&redis_dir);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let redis = Redis::start(&args);
    let log = daemon_log(dir.path(), &redis);

    assert!(lines_with(&log, WARNING).is_empty(), "{log}");
    assert!(lines_with(&log, UNKNOWN).is_empty(), "{log}");
    // The check ran: at debug level it logs the settings it found.
    let checked = lines_with(&log, "persists every debit before replying");
    assert_eq!(checked.len(), 1, "{log}");
}

#[test]
fn renamed_config_logs_one_info_line() {
    if !require("redis-server") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(&["--rename-command", "CONFIG", "", "--requirepass", PASSWORD]);
    let log = daemon_log(dir.path(), &redis);

    let unknown = lines_with(&log, UNKNOWN);
    assert_eq!(unknown.len(), 1, "expected one info line:\n{log}");
    assert!(unknown[0].contains("level=info"), "{}", unknown[0]);
    assert!(unknown[0].contains("unknown command"), "{}", unknown[0]);
    assert!(
        unknown[0].contains("run Redis with appendonly yes and appendfsync always"),
        "{}",
        unknown[0]
    );
    assert!(lines_with(&log, WARNING).is_empty(), "{log}");
    let ready = lines_with(&log, "shared budget store reachable; ready");
    assert_eq!(
        ready.len(),
        1,
        "the daemon did not start normally:
{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_password_is_named() {
    if !require("redis-server") {
        return;
    }
    let redis = Redis::start(&["--requirepass", PASSWORD]);
    let without_password = format!("redis://127.0.0.1:{}/", redis.port);
    // The server accepts the connection and rejects each command with NOAUTH.
    let budget = SharedBudget::connect(&without_password, PREFIX, Duration::from_secs(2))
        .await
        .unwrap();

    let persistence = budget.persistence().await;
    let Persistence::Unauthenticated { reason } = &persistence else {
        panic!("expected Unauthenticated without a password, got {persistence:?}");
    };
    assert!(reason.contains("config_get failed"), "{reason}");
    assert!(reason.contains("NOAUTH"), "{reason}");

    let error = budget.ping().await.unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(
            error,
            SharedError::Authentication {
                failure: AuthFailure::Missing,
                ..
            }
        ),
        "{message}"
    );
    assert!(
        message.ends_with("the Redis server requires a password, so add it to the URL in --storage.redis-url or RATEWATCH_REDIS_URL, as redis://:PASSWORD@HOST:PORT"),
        "{message}"
    );
}

#[test]
fn missing_password_logs_one_warning() {
    if !require("redis-server") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(&["--requirepass", PASSWORD]);
    let without_password = format!("redis://127.0.0.1:{}/", redis.port);
    let (daemon, port) = start_daemon(dir.path(), &without_password);
    wait_for(
        "the authentication warning",
        Duration::from_secs(20),
        || {
            let log = std::fs::read_to_string(dir.path().join("daemon.stderr")).ok()?;
            log.contains(UNAUTHENTICATED).then_some(())
        },
    );
    // A second persistence check would log again within a few readiness checks.
    std::thread::sleep(Duration::from_secs(5));
    let (status, _) = get(&format!("http://127.0.0.1:{port}/-/ready")).unwrap();
    assert_eq!(status, 503, "ready without a password");
    let log = stop_daemon(dir.path(), daemon);

    let warnings = lines_with(&log, UNAUTHENTICATED);
    assert_eq!(warnings.len(), 1, "expected one warning:\n{log}");
    assert!(warnings[0].contains("level=warn"), "{}", warnings[0]);
    assert!(warnings[0].contains("NOAUTH"), "{}", warnings[0]);
    assert!(
        warnings[0]
            .contains("add the password to the URL in --storage.redis-url or RATEWATCH_REDIS_URL"),
        "{}",
        warnings[0]
    );
    assert!(lines_with(&log, UNKNOWN).is_empty(), "{log}");
}

//! The shared budget over TLS (`rediss://`) against a real `redis-server` (the Debian package,
//! built with TLS). Each test starts Redis on a loopback port with a CA and certificates
//! generated for it. A trusted CA debits the budget, an untrusted server certificate makes a
//! replica not ready, and mutual TLS works with a client certificate and fails without one.
//! The start-up checks of the TLS flags run the daemon binary without Redis.

#![allow(
    clippy::too_many_lines,
    reason = "a test reads best as one sequence of steps"
)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::redis_server::{ClientAuth, Pki, Redis};
use common::{Process, Simulator, free_port, get, post, ratewatch_bin, require, sample, wait_for};
use ratewatch::plan::WindowBudget;
use ratewatch::ratelimit::RateLimit;
use ratewatch::shared::{Debit, LazyBudget, SharedError, StoreOptions, TlsFiles};

const PREFIX: &str = "ratewatch-tls-test";
const ENDPOINT: &str = "api/endpoint";
const TIMEOUT: Duration = Duration::from_secs(2);
const PASSWORD: &str = "tls-canary-5e0d1c";

/// A window long enough that the six debits of a test fit in it on a loaded machine.
fn window() -> WindowBudget {
    WindowBudget {
        limit: RateLimit {
            limit: 10,
            window: Duration::from_secs(60),
        },
        budget: 5,
    }
}

fn tls_url(redis: &Redis) -> String {
    format!("rediss://:{PASSWORD}@127.0.0.1:{}/", redis.port)
}

fn budget(url: &str, tls: TlsFiles) -> LazyBudget {
    let options = StoreOptions {
        url: url.to_owned(),
        prefix: PREFIX.to_owned(),
        tls,
    };
    LazyBudget::new(&options, TIMEOUT).unwrap()
}

fn ca_only(pki: &Pki) -> TlsFiles {
    TlsFiles {
        ca_file: Some(pki.ca.clone()),
        ..TlsFiles::default()
    }
}

fn with_client_cert(ca: &Pki, client: &Pki) -> TlsFiles {
    TlsFiles {
        ca_file: Some(ca.ca.clone()),
        cert_file: Some(client.client_cert.clone()),
        key_file: Some(client.client_key.clone()),
    }
}

/// Connects with `budget` and debits once; returns the error of the first step that failed.
async fn debit_once(budget: &LazyBudget) -> Result<Debit, SharedError> {
    let connection = budget.get().await?;
    connection
        .debit(ENDPOINT, &[window()], Duration::ZERO)
        .await
}

/// Returns the number of debits stored under the test endpoint's key, read over TLS by a
/// client of its own.
async fn stored_debits(redis: &Redis, pki: &Pki) -> i64 {
    let certificates = redis::TlsCertificates {
        client_tls: Some(redis::ClientTlsConfig {
            client_cert: std::fs::read(&pki.client_cert).unwrap(),
            client_key: std::fs::read(&pki.client_key).unwrap(),
        }),
        root_cert: Some(std::fs::read(&pki.ca).unwrap()),
    };
    let client = redis::Client::build_with_tls(tls_url(redis), certificates).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("ZCARD")
        .arg(format!("{PREFIX}:budget:{ENDPOINT}"))
        .query_async(&mut connection)
        .await
        .unwrap()
}

fn assert_no_password(label: &str, text: &str) {
    assert!(
        !text.contains(PASSWORD),
        "{label} contains the password:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_ca_debits_budget() {
    if !require("redis-server") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(dir.path(), "trusted");
    let redis = Redis::start_tls(&pki, ClientAuth::None, &["--requirepass", PASSWORD]);

    let budget = budget(&tls_url(&redis), ca_only(&pki));
    for _ in 0..5 {
        let debit = debit_once(&budget).await.unwrap();
        assert!(matches!(debit, Debit::Granted { .. }), "{debit:?}");
    }
    let denied = debit_once(&budget).await.unwrap();
    assert!(
        matches!(denied, Debit::Denied { .. }),
        "a sixth debit in a window of budget 5 was granted: {denied:?}"
    );
    assert_eq!(stored_debits(&redis, &pki).await, 5);
    assert_no_password("the budget's Debug output", &format!("{budget:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_server_certificate_is_rejected() {
    if !require("redis-server") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server_pki = Pki::generate(dir.path(), "server");
    let other_pki = Pki::generate(dir.path(), "other");
    let redis = Redis::start_tls(&server_pki, ClientAuth::None, &["--requirepass", PASSWORD]);

    // A CA file that did not sign the server's certificate, and the system's CA certificates.
    for (label, tls) in [
        ("another CA", ca_only(&other_pki)),
        ("the system CAs", TlsFiles::default()),
    ] {
        let budget = budget(&tls_url(&redis), tls);
        let error = debit_once(&budget)
            .await
            .expect_err("debited with an untrusted server certificate");
        let message = error.to_string();
        eprintln!("{label}: {message}");
        assert!(
            matches!(error, SharedError::Redis { .. }),
            "{label}: {message}"
        );
        assert!(message.contains("connect failed"), "{label}: {message}");
        assert!(
            message.contains("invalid peer certificate"),
            "{label}: {message}"
        );
        assert!(message.contains("UnknownIssuer"), "{label}: {message}");
        assert!(
            message.contains("not signed by a trusted CA, so name the CA that signed it with --storage.redis-tls-ca-file"),
            "{label}: {message}"
        );
        assert!(
            message.contains(&format!("rediss://xxxxx@127.0.0.1:{}/", redis.port)),
            "{label}: {message}"
        );
        assert_no_password(label, &message);
        assert_no_password(label, &format!("{error:?}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_plain_port_fails_with_hint() {
    if !require("redis-server") {
        return;
    }
    let redis = Redis::start(&["--requirepass", PASSWORD]);
    let budget = budget(&tls_url(&redis), TlsFiles::default());
    let error = debit_once(&budget)
        .await
        .expect_err("debited over TLS from a server without TLS");
    let message = error.to_string();
    eprintln!("plain port: {message}");
    // Redis 7 waits for a command and never replies to the handshake, so the connect times
    // out. A server that replied with an error would fail the handshake instead.
    assert!(
        matches!(
            error,
            SharedError::Timeout {
                operation: "connect",
                ..
            } | SharedError::Redis {
                operation: "connect",
                ..
            }
        ),
        "{message}"
    );
    assert!(
        message.contains("check that the port is Redis's tls-port"),
        "{message}"
    );
    assert_no_password("the error", &message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_to_tls_port_fails_with_hint() {
    if !require("redis-server") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(dir.path(), "plain");
    let redis = Redis::start_tls(&pki, ClientAuth::None, &["--requirepass", PASSWORD]);
    let plain_url = format!("redis://:{PASSWORD}@127.0.0.1:{}/", redis.port);
    let budget = budget(&plain_url, TlsFiles::default());
    let error = debit_once(&budget)
        .await
        .expect_err("debited without TLS from a TLS port");
    let message = error.to_string();
    assert!(matches!(error, SharedError::Redis { .. }), "{message}");
    assert!(
        message.ends_with("; the port may be Redis's tls-port, which closes a connection that does not start with a TLS handshake, so use rediss:// to connect to it"),
        "{message}"
    );
    assert_no_password("the error", &message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_needs_client_certificate() {
    if !require("redis-server") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(dir.path(), "mutual");
    let stranger = Pki::generate(dir.path(), "stranger");
    let redis = Redis::start_tls(&pki, ClientAuth::Required, &["--requirepass", PASSWORD]);
    let url = tls_url(&redis);

    // Without a client certificate the server ends the handshake.
    let error = debit_once(&budget(&url, ca_only(&pki)))
        .await
        .expect_err("debited without a client certificate");
    let message = error.to_string();
    eprintln!("no client certificate: {message}");
    assert!(matches!(error, SharedError::Redis { .. }), "{message}");
    assert!(
        message.contains("requires a client certificate"),
        "{message}"
    );
    assert!(
        message.contains("set --storage.redis-tls-cert-file and --storage.redis-tls-key-file"),
        "{message}"
    );
    assert_no_password("the error without a client certificate", &message);

    // A client certificate from a CA that the server does not trust is rejected too.
    let error = debit_once(&budget(&url, with_client_cert(&pki, &stranger)))
        .await
        .expect_err("debited with a client certificate of an untrusted CA");
    let message = error.to_string();
    eprintln!("untrusted client certificate: {message}");
    assert!(matches!(error, SharedError::Redis { .. }), "{message}");
    assert!(
        message.contains("rejected the client certificate of --storage.redis-tls-cert-file"),
        "{message}"
    );
    assert_no_password("the error with an untrusted client certificate", &message);

    // The client certificate that the server's CA signed is accepted.
    let budget = budget(&url, with_client_cert(&pki, &pki));
    let debit = debit_once(&budget).await.unwrap();
    assert!(matches!(debit, Debit::Granted { .. }), "{debit:?}");
    budget.get().await.unwrap().ping().await.unwrap();
    assert_eq!(stored_debits(&redis, &pki).await, 1);
}

/// Writes a config whose endpoint probes `port` every 200ms, and returns its path.
fn write_config(dir: &Path, port: u16) -> String {
    let path = dir.join("ratewatch.yml");
    std::fs::write(
        &path,
        format!(
            "global: {{ interval: 200ms, timeout: 1s }}\napis:\n  - name: sim\n    base_url: http://127.0.0.1:{port}/\n    endpoints:\n      - {{ name: model, path: frontend-api/model/, rate_limit: 5/2s, probe_share: 50% }}\n"
        ),
    )
    .unwrap();
    path.display().to_string()
}

/// Starts the daemon on a free port with `flags` and `env`, logging to `daemon.stderr` in
/// `dir`; returns the process and its port.
fn start_daemon(
    dir: &Path,
    config: &str,
    flags: &[String],
    env: &[(&str, &str)],
) -> (Process, u16) {
    let port = free_port();
    let mut args = vec![
        format!("--config.file={config}"),
        format!("--web.listen-address=127.0.0.1:{port}"),
        format!("--storage.path={}", dir.join("state").display()),
    ];
    args.extend_from_slice(flags);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let process = Process::start_logged(ratewatch_bin(), &args, env, dir, "daemon");
    (process, port)
}

/// Starts the daemon with the URL of `redis` and the CA file `ca` in the environment, as a
/// deployment would set them, and with `flags`.
fn start_tls_replica(
    dir: &Path,
    config: &str,
    redis: &Redis,
    ca: &Path,
    flags: &[String],
) -> (Process, u16) {
    let url = tls_url(redis);
    let ca = ca.display().to_string();
    let env = [
        ("RATEWATCH_REDIS_URL", url.as_str()),
        ("RATEWATCH_REDIS_TLS_CA_FILE", ca.as_str()),
    ];
    start_daemon(dir, config, flags, &env)
}

fn ready_status(port: u16) -> Option<u16> {
    get(&format!("http://127.0.0.1:{port}/-/ready")).map(|(status, _)| status)
}

#[test]
fn untrusted_certificate_makes_replica_not_ready() {
    if !require("redis-server") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server_pki = Pki::generate(dir.path(), "server");
    let other_pki = Pki::generate(dir.path(), "other");
    let redis = Redis::start_tls(&server_pki, ClientAuth::None, &["--requirepass", PASSWORD]);
    let sim = Simulator::start(dir.path(), "");
    let config = write_config(dir.path(), sim.port);

    let (mut daemon, port) = start_tls_replica(dir.path(), &config, &redis, &other_pki.ca, &[]);

    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    let skips = "ratewatch_probes_skipped_total{api=\"sim\",endpoint=\"model\",reason=\"budget_store_unavailable\"}";
    let metrics = wait_for(
        "skips counted as budget_store_unavailable",
        Duration::from_secs(20),
        || {
            let (_, text) = get(&metrics_url)?;
            sample(&text, skips)
                .is_some_and(|v| v >= 2.0)
                .then_some(text)
        },
    );
    assert_eq!(sample(&metrics, "ratewatch_ready"), Some(0.0));
    assert_eq!(ready_status(port), Some(503));
    let (_, page) = get(&format!("http://127.0.0.1:{port}/")).unwrap();
    assert!(page.contains("Not ready, so no probes are sent"), "{page}");
    let (_, status) = get(&format!("http://127.0.0.1:{port}/api/v1/status")).unwrap();
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["ready"], false, "{status}");
    let sent = sim.stats()["model"]["total"].as_u64().unwrap();
    assert_eq!(sent, 0, "probes were sent without the shared budget");
    assert_no_password("/metrics", &metrics);

    assert!(
        daemon.terminate(Duration::from_secs(10)),
        "daemon did not stop"
    );
    let stderr = std::fs::read_to_string(dir.path().join("daemon.stderr")).unwrap();
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("shared budget store unreachable"))
        .collect();
    assert_eq!(errors.len(), 1, "expected one unreachable line:\n{stderr}");
    assert!(errors[0].contains("level=error"), "{}", errors[0]);
    assert!(
        errors[0].contains("invalid peer certificate"),
        "{}",
        errors[0]
    );
    assert!(errors[0].contains("UnknownIssuer"), "{}", errors[0]);
    assert!(
        errors[0].contains("--storage.redis-tls-ca-file"),
        "{}",
        errors[0]
    );
    assert_no_password("the daemon's log", &stderr);
}

#[test]
fn mutual_tls_replica_probes() {
    if !require("redis-server") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(dir.path(), "mutual");
    let redis = Redis::start_tls(&pki, ClientAuth::Required, &["--requirepass", PASSWORD]);
    let sim = Simulator::start(dir.path(), "");
    let config = write_config(dir.path(), sim.port);

    let flags = [
        format!("--storage.redis-url={}", tls_url(&redis)),
        format!("--storage.redis-prefix={PREFIX}"),
        format!("--storage.redis-tls-ca-file={}", pki.ca.display()),
        format!(
            "--storage.redis-tls-cert-file={}",
            pki.client_cert.display()
        ),
        format!("--storage.redis-tls-key-file={}", pki.client_key.display()),
    ];
    let (mut daemon, port) = start_daemon(dir.path(), &config, &flags, &[]);
    wait_for("a ready replica", Duration::from_secs(20), || {
        (ready_status(port) == Some(200)).then_some(())
    });
    wait_for(
        "two probes through the shared budget",
        Duration::from_secs(20),
        || (sim.stats()["model"]["total"].as_u64()? >= 2).then_some(()),
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = redis::Client::build_with_tls(
        tls_url(&redis),
        redis::TlsCertificates {
            client_tls: Some(redis::ClientTlsConfig {
                client_cert: std::fs::read(&pki.client_cert).unwrap(),
                client_key: std::fs::read(&pki.client_key).unwrap(),
            }),
            root_cert: Some(std::fs::read(&pki.ca).unwrap()),
        },
    )
    .unwrap();
    let keys: Vec<String> = runtime.block_on(async {
        let mut connection = client.get_multiplexed_async_connection().await.unwrap();
        redis::cmd("KEYS")
            .arg(format!("{PREFIX}:budget:*"))
            .query_async(&mut connection)
            .await
            .unwrap()
    });
    assert_eq!(keys.len(), 1, "budget keys in Redis: {keys:?}");

    assert!(
        daemon.terminate(Duration::from_secs(10)),
        "daemon did not stop"
    );
    let stderr = std::fs::read_to_string(dir.path().join("daemon.stderr")).unwrap();
    assert!(
        !stderr.contains("shared budget store unreachable"),
        "{stderr}"
    );
    assert_no_password("the daemon's log", &stderr);
}

/// Runs the daemon with `flags` and no Redis, expecting it to stop at start-up; returns
/// stderr.
fn failed_start(dir: &Path, flags: &[String]) -> String {
    let config = write_config(dir, 9);
    let mut args = vec![
        format!("--config.file={config}"),
        format!("--web.listen-address=127.0.0.1:{}", free_port()),
        format!("--storage.path={}", dir.join("state").display()),
    ];
    args.extend_from_slice(flags);
    let output = Command::new(ratewatch_bin())
        .args(&args)
        .env_remove("RATEWATCH_REDIS_URL")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{args:?}:\n{stderr}");
    assert_no_password("the start-up error", &stderr);
    stderr
}

#[test]
fn invalid_tls_flags_stop_startup() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(dir.path(), "startup");
    let missing = dir.path().join("missing-ca.pem");
    let url = format!("--storage.redis-url=rediss://:{PASSWORD}@127.0.0.1:1/");
    let ca = format!("--storage.redis-tls-ca-file={}", pki.ca.display());

    let stderr = failed_start(
        dir.path(),
        &[
            url.clone(),
            format!("--storage.redis-tls-ca-file={}", missing.display()),
        ],
    );
    assert!(stderr.contains("cannot read"), "{stderr}");
    assert!(stderr.contains("--storage.redis-tls-ca-file"), "{stderr}");
    assert!(stderr.contains(&missing.display().to_string()), "{stderr}");

    let stderr = failed_start(
        dir.path(),
        &[
            url.clone(),
            format!("--storage.redis-tls-ca-file={}", pki.client_key.display()),
        ],
    );
    assert!(stderr.contains("contains no PEM certificate"), "{stderr}");
    assert!(stderr.contains("-----BEGIN CERTIFICATE-----"), "{stderr}");

    let stderr = failed_start(
        dir.path(),
        &[
            url.clone(),
            ca.clone(),
            format!("--storage.redis-tls-key-file={}", pki.client_key.display()),
        ],
    );
    assert!(
        stderr.contains("--storage.redis-tls-key-file (or RATEWATCH_REDIS_TLS_KEY_FILE) is set but --storage.redis-tls-cert-file"),
        "{stderr}"
    );

    let stderr = failed_start(
        dir.path(),
        &[
            format!("--storage.redis-url=redis://:{PASSWORD}@127.0.0.1:1/"),
            ca.clone(),
        ],
    );
    assert!(
        stderr.contains("--storage.redis-tls-ca-file is set but the budget store URL redis://xxxxx@127.0.0.1:1/ does not use TLS; write rediss://HOST:PORT to connect over TLS, or remove --storage.redis-tls-ca-file\n"),
        "{stderr}"
    );

    let stderr = failed_start(dir.path(), std::slice::from_ref(&ca));
    assert!(
        stderr.contains("--storage.redis-tls-ca-file is set but no budget store URL is set; set --storage.redis-url or RATEWATCH_REDIS_URL to a rediss:// URL, or remove --storage.redis-tls-ca-file\n"),
        "{stderr}"
    );
}

#[test]
fn renewed_ca_file_takes_effect_on_reload() {
    if !require("redis-server") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server_pki = Pki::generate(dir.path(), "server");
    let old_pki = Pki::generate(dir.path(), "old");
    let redis = Redis::start_tls(&server_pki, ClientAuth::None, &["--requirepass", PASSWORD]);
    let sim = Simulator::start(dir.path(), "");
    let config = write_config(dir.path(), sim.port);

    // The CA file still contains the CA that signed the server's previous certificate.
    let ca_file = dir.path().join("redis-ca.pem");
    std::fs::copy(&old_pki.ca, &ca_file).unwrap();
    let lifecycle = ["--web.enable-lifecycle".to_owned()];
    let (mut daemon, port) = start_tls_replica(dir.path(), &config, &redis, &ca_file, &lifecycle);
    let base = format!("http://127.0.0.1:{port}");
    wait_for("the daemon to answer", Duration::from_secs(20), || {
        ready_status(port)
    });
    assert_eq!(ready_status(port), Some(503), "ready with an untrusted CA");

    // A CA file caught half written is rejected, and the daemon keeps the old one.
    std::fs::write(&ca_file, "-----BEGIN CERTIFICATE-----\nMIIB\n").unwrap();
    let (status, reply) = post(&format!("{base}/-/reload")).unwrap();
    eprintln!("truncated CA file: {status} {reply}");
    assert_eq!(status, 500, "{reply}");
    assert!(reply.contains("redis-ca.pem"), "{reply}");
    assert!(reply.contains("--storage.redis-tls-ca-file"), "{reply}");
    assert!(
        reply.contains("the -----END CERTIFICATE----- line is missing"),
        "{reply}"
    );
    let (_, metrics) = get(&format!("{base}/metrics")).unwrap();
    assert_eq!(
        sample(&metrics, "ratewatch_config_last_reload_successful"),
        Some(0.0)
    );

    // The renewed CA file takes effect at the next reload, without a restart.
    std::fs::copy(&server_pki.ca, &ca_file).unwrap();
    let (status, reply) = post(&format!("{base}/-/reload")).unwrap();
    eprintln!("renewed CA file: {status} {reply}");
    assert_eq!(status, 200, "{reply}");
    assert!(
        reply.contains("Redis TLS files reloaded, and the budget store connected with them"),
        "{reply}"
    );
    wait_for(
        "the replica to become ready",
        Duration::from_secs(20),
        || (ready_status(port) == Some(200)).then_some(()),
    );
    wait_for(
        "a probe through the shared budget",
        Duration::from_secs(20),
        || {
            let sent = sim.stats()["model"]["total"].as_u64().unwrap();
            (sent > 0).then_some(sent)
        },
    );
    let (_, metrics) = get(&format!("{base}/metrics")).unwrap();
    assert_eq!(
        sample(&metrics, "ratewatch_config_last_reload_successful"),
        Some(1.0)
    );

    // A renewed CA file that the server's certificate does not match is not taken: the
    // replica keeps its working connection and stays ready.
    std::fs::copy(&old_pki.ca, &ca_file).unwrap();
    let (status, reply) = post(&format!("{base}/-/reload")).unwrap();
    eprintln!("mismatched CA file: {status} {reply}");
    assert_eq!(status, 500, "{reply}");
    assert!(
        reply.contains("Redis TLS files not reloaded, so the previous files stay in use"),
        "{reply}"
    );
    assert!(reply.contains("not signed by a trusted CA"), "{reply}");
    assert_no_password("the reload reply", &reply);
    let before = sim.stats()["model"]["total"].as_u64().unwrap();
    wait_for(
        "probes after the rejected CA file",
        Duration::from_secs(20),
        || (sim.stats()["model"]["total"].as_u64()? >= before + 3).then_some(()),
    );
    assert_eq!(
        ready_status(port),
        Some(200),
        "not ready after a rejected CA file"
    );

    // A bundle of both CAs is new content that connects, so it is taken; reading it again
    // finds nothing changed.
    let bundle = [
        std::fs::read(&old_pki.ca).unwrap(),
        std::fs::read(&server_pki.ca).unwrap(),
    ]
    .concat();
    std::fs::write(&ca_file, bundle).unwrap();
    let (status, reply) = post(&format!("{base}/-/reload")).unwrap();
    assert_eq!(status, 200, "{reply}");
    assert!(reply.contains("Redis TLS files reloaded"), "{reply}");
    let (status, reply) = post(&format!("{base}/-/reload")).unwrap();
    assert_eq!(status, 200, "{reply}");
    assert!(reply.contains("Redis TLS files unchanged"), "{reply}");
    assert_no_password("the reload replies", &reply);
    assert_eq!(ready_status(port), Some(200));

    assert!(
        daemon.terminate(Duration::from_secs(10)),
        "daemon did not stop"
    );
    let stderr = std::fs::read_to_string(dir.path().join("daemon.stderr")).unwrap();
    assert_no_password("the daemon's log", &stderr);
    assert!(
        stderr.contains("Redis TLS files reload failed; the previous files stay in use"),
        "{stderr}"
    );
    assert!(
        stderr.contains("Redis TLS files changed, and the budget store connected with them"),
        "{stderr}"
    );
}

//! End to end: the daemon serves HTTPS with basic authentication from `--web.config.file`,
//! with a CA and certificates generated per test. A real Prometheus (the Debian `prometheus`
//! package) scrapes it over HTTPS, `promtool check web-config` accepts the example file, and
//! a reload applies a new certificate and password or keeps the old ones when the file is bad.

#![allow(
    clippy::too_many_lines,
    reason = "a test reads best as one sequence of steps"
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::serve::Listener;
use ratewatch::webconfig::{LiveWebConfig, TlsListener};
use rustls::pki_types::pem::PemObject;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;

use common::{Process, free_port, get, ratewatch_bin, require, wait_for};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, KeyUsagePurpose};
use reqwest::blocking::Client;

const USER: &str = "prometheus";
const PASSWORD: &str = "correct horse battery staple";
const NEW_PASSWORD: &str = "a different passphrase";

/// Writes a new CA as `{name}-ca.pem` and returns its PEM. The server certificate it signs,
/// for `localhost` and 127.0.0.1, goes to `{name}.pem` and its key to `{name}-key.pem`.
fn write_pki(dir: &Path, name: &str) -> String {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    std::fs::write(dir.join(format!("{name}-ca.pem")), ca.pem()).unwrap();
    std::fs::write(dir.join(format!("{name}.pem")), server.pem()).unwrap();
    std::fs::write(dir.join(format!("{name}-key.pem")), key.serialize_pem()).unwrap();
    ca.pem()
}

fn web_config(cert: &str, hash: &str) -> String {
    format!(
        "tls_server_config:\n  cert_file: {cert}.pem\n  key_file: {cert}-key.pem\n  min_version: TLS12\nhttp_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\nbasic_auth_users:\n  {USER}: {hash}\n"
    )
}

/// Builds a client that trusts only `ca_pem`.
fn client(ca_pem: &str) -> Client {
    Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap()])
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// Sends a request with optional basic credentials; returns the status, headers and body.
fn fetch(
    client: &Client,
    method: reqwest::Method,
    url: &str,
    credentials: Option<(&str, &str)>,
) -> reqwest::Result<(u16, reqwest::header::HeaderMap, String)> {
    let mut request = client.request(method, url);
    if let Some((user, password)) = credentials {
        request = request.basic_auth(user, Some(password));
    }
    let response = request.send()?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    Ok((status, headers, response.text()?))
}

fn query(prometheus: u16, expr: &str) -> Option<serde_json::Value> {
    let url = format!(
        "http://127.0.0.1:{prometheus}/api/v1/query?query={}",
        url::form_urlencoded::byte_serialize(expr.as_bytes()).collect::<String>()
    );
    let (status, body) = get(&url)?;
    let body: serde_json::Value = serde_json::from_str(&body).ok()?;
    (status == 200 && body["status"] == "success").then(|| body["data"]["result"].clone())
}

/// Writes a probe config whose one endpoint points at a loopback port with nothing listening.
fn write_probe_config(dir: &Path) -> PathBuf {
    let path = dir.join("ratewatch.yml");
    let port = free_port();
    std::fs::write(
        &path,
        format!("apis:\n  - name: local\n    base_url: http://127.0.0.1:{port}/\n    endpoints:\n      - {{ name: health, path: health, interval: 10s }}\n"),
    )
    .unwrap();
    path
}

#[test]
fn https_with_basic_auth_serves_prometheus() {
    if !require("prometheus") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let first_ca = write_pki(dir.path(), "first");
    let second_ca = write_pki(dir.path(), "second");
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(&web, web_config("first", &hash)).unwrap();
    let config = write_probe_config(dir.path());

    let port = free_port();
    let args = [
        format!("--config.file={}", config.display()),
        format!("--web.config.file={}", web.display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
        format!("--storage.path={}", dir.path().join("data").display()),
        "--web.enable-lifecycle".to_owned(),
        "--log.level=debug".to_owned(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut daemon = Process::start_logged(ratewatch_bin(), &args, &[], dir.path(), "daemon");

    let https = format!("https://127.0.0.1:{port}");
    let trusting_first = client(&first_ca);
    let right = Some((USER, PASSWORD));
    wait_for("ratewatch over HTTPS", Duration::from_secs(20), || {
        fetch(
            &trusting_first,
            reqwest::Method::GET,
            &format!("{https}/-/ready"),
            right,
        )
        .ok()
    });

    // Plain HTTP on the HTTPS port gets no HTTP response.
    assert_eq!(get(&format!("http://127.0.0.1:{port}/metrics")), None);

    // Every route needs credentials, /-/healthy included; 401 carries the configured headers.
    for path in ["/metrics", "/-/healthy", "/", "/api/v1/status"] {
        let (status, headers, _) = fetch(
            &trusting_first,
            reqwest::Method::GET,
            &format!("{https}{path}"),
            None,
        )
        .unwrap();
        assert_eq!(status, 401, "{path} without credentials");
        let challenge = headers["www-authenticate"].to_str().unwrap();
        assert!(challenge.starts_with("Basic "), "{path}: {challenge}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
    }
    for credentials in [
        (USER, "wrong password"),
        ("someone-else", PASSWORD),
        (USER, ""),
    ] {
        let (status, _, _) = fetch(
            &trusting_first,
            reqwest::Method::GET,
            &format!("{https}/metrics"),
            Some(credentials),
        )
        .unwrap();
        assert_eq!(status, 401, "{credentials:?}");
    }
    let (status, headers, body) = fetch(
        &trusting_first,
        reqwest::Method::GET,
        &format!("{https}/metrics"),
        right,
    )
    .unwrap();
    assert_eq!(status, 200);
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(body.contains("ratewatch_"), "{body}");

    // A real Prometheus scrapes over HTTPS, trusting the test CA, with basic auth.
    let prometheus_port = free_port();
    let prometheus_config = dir.path().join("prometheus.yml");
    std::fs::write(
        &prometheus_config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: ratewatch\n    scheme: https\n    tls_config:\n      ca_file: {}\n    basic_auth:\n      username: {USER}\n      password: {PASSWORD}\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n",
            dir.path().join("first-ca.pem").display()
        ),
    )
    .unwrap();
    let prometheus_args = [
        format!("--config.file={}", prometheus_config.display()),
        format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()),
        format!("--web.listen-address=127.0.0.1:{prometheus_port}"),
    ];
    let prometheus_args: Vec<&str> = prometheus_args.iter().map(String::as_str).collect();
    let prometheus = Process::start_logged(
        "prometheus",
        &prometheus_args,
        &[],
        dir.path(),
        "prometheus",
    );
    wait_for(
        "Prometheus to scrape ratewatch over HTTPS with up == 1",
        Duration::from_secs(60),
        || {
            let result = query(prometheus_port, "up{job=\"ratewatch\"}")?;
            (result.get(0)?["value"][1] == "1").then_some(())
        },
    );
    let result = query(prometheus_port, "ratewatch_build_info{job=\"ratewatch\"}");
    assert!(
        result.is_some_and(|r| r.as_array().is_some_and(|a| !a.is_empty())),
        "Prometheus stored no ratewatch series"
    );
    drop(prometheus);

    // A reload with an invalid file keeps the running web config.
    std::fs::write(&web, web_config("first", "not-a-bcrypt-hash")).unwrap();
    let (status, _, body) = fetch(
        &trusting_first,
        reqwest::Method::POST,
        &format!("{https}/-/reload"),
        right,
    )
    .unwrap();
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("invalid bcrypt hash"), "{body}");
    assert!(body.contains("web.yml:9:15:"), "{body}");
    assert!(!body.contains("not-a-bcrypt-hash"), "{body}");
    let (status, _, _) = fetch(
        &trusting_first,
        reqwest::Method::GET,
        &format!("{https}/metrics"),
        right,
    )
    .unwrap();
    assert_eq!(
        status, 200,
        "the old password stops working after a failed reload"
    );

    // A valid reload puts the new certificate and password in force for new connections.
    let new_hash = bcrypt::hash(NEW_PASSWORD, 4).unwrap();
    std::fs::write(&web, web_config("second", &new_hash)).unwrap();
    let (status, _, body) = fetch(
        &trusting_first,
        reqwest::Method::POST,
        &format!("{https}/-/reload"),
        right,
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("web config reloaded: HTTPS, 1 basic auth user"),
        "{body}"
    );
    assert!(
        fetch(
            &client(&first_ca),
            reqwest::Method::GET,
            &format!("{https}/metrics"),
            right
        )
        .is_err(),
        "a client trusting only the first CA still connects after the reload"
    );
    let trusting_second = client(&second_ca);
    let (status, _, _) = fetch(
        &trusting_second,
        reqwest::Method::GET,
        &format!("{https}/metrics"),
        right,
    )
    .unwrap();
    assert_eq!(status, 401, "the old password still works after the reload");
    let (status, _, _) = fetch(
        &trusting_second,
        reqwest::Method::GET,
        &format!("{https}/metrics"),
        Some((USER, NEW_PASSWORD)),
    )
    .unwrap();
    assert_eq!(status, 200);

    assert!(
        daemon.terminate(Duration::from_secs(20)),
        "daemon did not stop"
    );
    let log = std::fs::read_to_string(dir.path().join("daemon.stderr")).unwrap();
    assert!(log.contains("web config loaded"), "{log}");
    assert!(log.contains("web config reload failed"), "{log}");
    for secret in [PASSWORD, NEW_PASSWORD, &hash, &new_hash] {
        assert!(!log.contains(secret), "a secret reached the log:\n{log}");
    }
    let key = std::fs::read_to_string(dir.path().join("first-key.pem")).unwrap();
    let key_body = key.lines().nth(1).unwrap();
    assert!(!log.contains(key_body), "key material reached the log");
}

#[test]
fn invalid_web_config_stops_startup_before_binding() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        "tls_server_config:\n  cert_file: missing.pem\n  key_file: missing-key.pem\n",
    )
    .unwrap();
    let config = write_probe_config(dir.path());

    // The test keeps the port bound, so a daemon that bound before reading the web config
    // would fail with a listen error instead.
    let occupied = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = occupied.local_addr().unwrap().port();
    let mut child = Command::new(ratewatch_bin())
        .args([
            format!("--config.file={}", config.display()),
            format!("--web.config.file={}", web.display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            format!("--storage.path={}", dir.path().join("data").display()),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("ratewatch kept running with an invalid web config");
        }
        std::thread::sleep(Duration::from_millis(50));
    };

    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:2:14: cannot read cert_file", web.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{}:3:13: cannot read key_file", web.display())),
        "{stderr}"
    );
    assert!(!stderr.contains("cannot listen"), "{stderr}");
}

#[test]
fn example_web_config_passes_promtool_and_check() {
    if !require("promtool") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The example names ratewatch.crt and ratewatch.key next to it.
    write_pki(dir.path(), "ratewatch");
    std::fs::rename(
        dir.path().join("ratewatch.pem"),
        dir.path().join("ratewatch.crt"),
    )
    .unwrap();
    std::fs::rename(
        dir.path().join("ratewatch-key.pem"),
        dir.path().join("ratewatch.key"),
    )
    .unwrap();
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/web-config.yml"),
    )
    .unwrap();
    let web = dir.path().join("web-config.yml");
    std::fs::write(&web, &example).unwrap();

    // The example's hash is documented as the hash of "change-me".
    let hash = example
        .lines()
        .find_map(|line| line.trim().strip_prefix("prometheus: "))
        .unwrap();
    assert!(bcrypt::verify("change-me", hash).unwrap());

    let promtool = Command::new("promtool")
        .args(["check", "web-config"])
        .arg(&web)
        .output()
        .unwrap();
    let promtool_output = format!(
        "{}{}",
        String::from_utf8_lossy(&promtool.stdout),
        String::from_utf8_lossy(&promtool.stderr)
    );
    assert!(
        promtool.status.success(),
        "promtool check web-config failed:\n{promtool_output}"
    );
    assert!(promtool_output.contains("SUCCESS"), "{promtool_output}");

    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ratewatch.yml");
    let check = Command::new(ratewatch_bin())
        .args([
            "check".to_owned(),
            format!("--config.file={}", config.display()),
            format!("--web.config.file={}", web.display()),
        ])
        .env("RATEWATCH_API_KEY", "test-key")
        .env("RATEWATCH_SESSION_COOKIE", "session=test")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&check.stdout);
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("is valid: HTTPS, 1 basic auth user, 3 extra headers"),
        "{stdout}"
    );
    assert!(!stdout.contains(hash), "{stdout}");

    // promtool and ratewatch reject the same header that exporter-toolkit does not allow.
    std::fs::write(
        &web,
        "http_server_config:\n  headers:\n    Server: ratewatch\n",
    )
    .unwrap();
    let promtool = Command::new("promtool")
        .args(["check", "web-config"])
        .arg(&web)
        .output()
        .unwrap();
    assert!(!promtool.status.success());
    let check = Command::new(ratewatch_bin())
        .args([
            "check".to_owned(),
            format!("--config.file={}", config.display()),
            format!("--web.config.file={}", web.display()),
        ])
        .env("RATEWATCH_API_KEY", "test-key")
        .env("RATEWATCH_SESSION_COOKIE", "session=test")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(!check.status.success());
    assert!(
        stderr.contains(":3:13: http_server_config.headers cannot set \"Server\""),
        "{stderr}"
    );
}

/// Opens `count` TCP connections from 127.0.0.1 that never send a byte.
async fn silent_connections(address: std::net::SocketAddr, count: usize) -> Vec<TcpStream> {
    let mut streams = Vec::with_capacity(count);
    for _ in 0..count {
        streams.push(TcpStream::connect(address).await.unwrap());
    }
    streams
}

/// Completes a TLS handshake with `address` from the source address `source`, trusting only
/// `ca_pem`.
async fn handshake_from(
    source: std::net::IpAddr,
    address: std::net::SocketAddr,
    ca_pem: &str,
) -> std::io::Result<()> {
    let mut roots = rustls::RootCertStore::empty();
    let ca = rustls::pki_types::CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap();
    roots.add(ca).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let socket = TcpSocket::new_v4()?;
    socket.bind(std::net::SocketAddr::new(source, 0))?;
    let stream = socket.connect(address).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    TlsConnector::from(Arc::new(config))
        .connect(name, stream)
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_from_one_source_leave_others_served() {
    let dir = tempfile::tempdir().unwrap();
    let ca_pem = write_pki(dir.path(), "server");
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\n",
    )
    .unwrap();
    let web = Arc::new(LiveWebConfig::load(web).unwrap());
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = tcp.local_addr().unwrap();
    let metrics = ratewatch::metrics::Metrics::new().unwrap();
    let failures = metrics.tls_handshake_failures.clone();
    let mut listener = TlsListener::new(tcp, web, failures.clone()).unwrap();
    let server = tokio::spawn(async move {
        loop {
            // Finished connections are dropped: the test only needs the handshakes.
            drop(listener.accept().await);
        }
    });

    // More silent connections from 127.0.0.1 than the listener ever had handshake slots.
    let silent = silent_connections(address, 200).await;

    // Linux routes all of 127.0.0.0/8 to the loopback interface, so 127.0.0.2 is another source.
    let started = Instant::now();
    let other_source = "127.0.0.2".parse().unwrap();
    let handshake = tokio::time::timeout(
        Duration::from_secs(3),
        handshake_from(other_source, address, &ca_pem),
    )
    .await;
    let waited = started.elapsed();
    assert!(
        handshake.is_ok(),
        "the handshake from 127.0.0.2 was still waiting after {waited:?}"
    );
    handshake.unwrap().unwrap();

    // The connections over the per-source cap are closed at once, so a read returns end of file.
    // The other connections stay open: a closed one would fail its handshake and be counted.
    let mut silent = silent;
    let last = silent.last_mut().unwrap();
    let mut buffer = [0_u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(2), last.read(&mut buffer)).await;
    assert!(
        matches!(read, Ok(Ok(0) | Err(_))),
        "a connection over the per-source cap stayed open: {read:?}"
    );
    // 16 handshakes may be in progress from one source, so 184 of the 200 were rejected.
    let count = |reason: &str| failures.with_label_values(&[reason]).get();
    assert_eq!(count("source_limit"), 200 - 16, "per-source rejections");
    assert_eq!(count("total_limit"), 0);

    // A plain HTTP request from a third source fails its handshake, and is counted.
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(std::net::SocketAddr::new("127.0.0.3".parse().unwrap(), 0))
        .unwrap();
    let mut plain = socket.connect(address).await.unwrap();
    plain
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), plain.read_to_end(&mut reply)).await;
    let deadline = Instant::now() + Duration::from_secs(3);
    while count("error") == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(count("error"), 1, "failed handshakes");
    drop(silent);
    let text = String::from_utf8(metrics.encode().1).unwrap();
    assert!(
        text.contains("ratewatch_web_tls_handshake_failures_total{reason=\"source_limit\"} 184"),
        "{text}"
    );
    server.abort();
}

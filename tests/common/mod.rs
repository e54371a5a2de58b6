//! Helpers shared by the integration tests: free ports, child processes that die with the
//! test, polling HTTP, and the rule for real components that are missing.

#![allow(dead_code, unreachable_pub)]

pub mod redis_server;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Returns a port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Reports whether `tool` is on PATH. When it is not: under `CI=true` the test fails, because
/// CI must exercise the real component; elsewhere the test prints a loud SKIPPED line and the
/// caller returns.
pub fn require(tool: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()));
    if found {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{tool} is not installed, and CI=true requires the real component; run .ci/run or install it"
    );
    eprintln!("\n*** SKIPPED: {tool} is not installed; this test needs the real {tool}. ***\n");
    false
}

/// A child process killed when the test ends, pass or fail.
pub struct Process {
    child: Child,
}

impl Process {
    /// Starts `program` with `args` and extra environment, output discarded unless
    /// `RATEWATCH_TEST_VERBOSE` is set.
    pub fn start(program: &str, args: &[&str], env: &[(&str, &str)]) -> Process {
        if std::env::var_os("RATEWATCH_TEST_VERBOSE").is_some() {
            Self::spawn(program, args, env, Stdio::inherit(), Stdio::inherit())
        } else {
            Self::spawn(program, args, env, Stdio::null(), Stdio::null())
        }
    }

    /// Starts `program` with stdout and stderr written to files in `dir`.
    pub fn start_logged(
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
        dir: &Path,
        stem: &str,
    ) -> Process {
        let stdout = std::fs::File::create(dir.join(format!("{stem}.stdout"))).unwrap();
        let stderr = std::fs::File::create(dir.join(format!("{stem}.stderr"))).unwrap();
        Self::spawn(program, args, env, stdout.into(), stderr.into())
    }

    fn spawn(
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
        stdout: Stdio,
        stderr: Stdio,
    ) -> Process {
        let child = Command::new(program)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        Process { child }
    }

    /// Reports whether the process has exited.
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Returns the process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits up to `timeout` for the process to exit; returns whether it
    /// exited on its own.
    pub fn terminate(&mut self, timeout: Duration) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Returns the path of the ratewatch binary that cargo built for these tests.
pub fn ratewatch_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ratewatch")
}

/// Fetches `url` with a blocking client, `None` on any failure.
pub fn get(url: &str) -> Option<(u16, String)> {
    send(reqwest::Method::GET, url, Duration::from_secs(5))
}

/// Sends an empty POST to `url` with a blocking client, `None` on any failure. A reload
/// responds only once it is done, so the timeout is longer than that of [`get`].
pub fn post(url: &str) -> Option<(u16, String)> {
    send(reqwest::Method::POST, url, Duration::from_secs(10))
}

fn send(method: reqwest::Method, url: &str, timeout: Duration) -> Option<(u16, String)> {
    let client = reqwest::blocking::Client::builder()
        .timeout(timeout)
        .build()
        .ok()?;
    let response = client.request(method, url).send().ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().ok()?))
}

/// Polls `check` every 100ms until it returns `Some`, or panics after `timeout` with `what`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Returns the value of the first sample line that starts with `prefix`.
pub fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.starts_with(prefix))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// A `ratewatch simulate` process on a free loopback port.
pub struct Simulator {
    /// The process, killed when the simulator is dropped.
    pub process: Process,
    /// The port it listens on.
    pub port: u16,
}

impl Simulator {
    /// Starts the simulator with `scenario` (YAML, written to `dir`; empty for the documented
    /// API without faults) and waits until it answers.
    pub fn start(dir: &Path, scenario: &str) -> Simulator {
        let port = free_port();
        let path = dir.join("scenario.yml");
        std::fs::write(&path, scenario).unwrap();
        let args = [
            "simulate".to_owned(),
            format!("--web.listen-address=127.0.0.1:{port}"),
            format!("--scenario={}", path.display()),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let process = Process::start(ratewatch_bin(), &args, &[]);
        let simulator = Simulator { process, port };
        wait_for("the simulator", Duration::from_secs(20), || {
            get(&format!("http://127.0.0.1:{port}/_sim/stats"))
        });
        simulator
    }

    /// Returns the simulator's `/_sim/stats` document.
    pub fn stats(&self) -> serde_json::Value {
        let (_, body) = get(&format!("http://127.0.0.1:{}/_sim/stats", self.port)).unwrap();
        serde_json::from_str(&body).unwrap()
    }
}

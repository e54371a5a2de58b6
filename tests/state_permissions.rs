//! A state store the daemon may not open stops start-up with an error that names the path and
//! the fix, instead of moving the file aside as if it were damaged.
//!
//! Root may open any file, so under root the daemon runs as `nobody` through `setpriv`, from a
//! copy of the binary in a directory that `nobody` can read.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, ratewatch_bin, require};

const CONFIG: &str = "global: { interval: 1h }\napis:\n  - name: demo\n    base_url: http://127.0.0.1:9/\n    endpoints:\n      - { name: e, path: e, rate_limit: 10/hour }\n";

fn is_root() -> bool {
    let output = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&output.stdout).trim() == "0"
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Runs the daemon with `storage` as its state directory, as a user that does not own it, and
/// returns its output once it exits. Panics if it is still running after 20 seconds.
fn run_without_access(dir: &Path, storage: &Path) -> Output {
    let config = dir.join("ratewatch.yml");
    std::fs::write(&config, CONFIG).unwrap();
    chmod(&config, 0o644);
    let binary = dir.join("ratewatch");
    std::fs::copy(ratewatch_bin(), &binary).unwrap();
    chmod(&binary, 0o755);

    let args = [
        format!("--config.file={}", config.display()),
        format!("--web.listen-address=127.0.0.1:{}", free_port()),
        format!("--storage.path={}", storage.display()),
    ];
    let mut command = if is_root() {
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(&binary);
        command
    } else {
        Command::new(&binary)
    };

    let mut child = command
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "timed out after 20s: the daemon kept running with a state store it may not open"
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn assert_permission_error(output: &Output, store: &Path) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(1),
        "exit status; stderr: {stderr}"
    );
    let expected = format!(
        "cannot open state at {}: permission denied; give the user running ratewatch read and write access to it, or choose another directory with --storage.path",
        store.display()
    );
    assert!(
        stderr.contains(&expected),
        "stderr lacks {expected:?}: {stderr}"
    );
}

fn setup() -> Option<tempfile::TempDir> {
    if is_root() && !require("setpriv") {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    chmod(dir.path(), 0o755);
    Some(dir)
}

#[test]
fn unreadable_store_stops_start_up() {
    let Some(dir) = setup() else { return };
    let storage = dir.path().join("state");
    std::fs::create_dir(&storage).unwrap();
    chmod(&storage, 0o755);
    let store = storage.join("ratewatch.redb");
    let content = b"not readable by the daemon";
    std::fs::write(&store, content).unwrap();
    // Mode 0600 keeps `nobody` out of a file root owns. A user other than root owns the file
    // itself, so only mode 0000 keeps it out.
    chmod(&store, if is_root() { 0o600 } else { 0o000 });

    let output = run_without_access(dir.path(), &storage);
    assert_permission_error(&output, &store);
    chmod(&store, 0o600);
    assert_eq!(
        std::fs::read(&store).unwrap(),
        content,
        "the store was changed"
    );
    let names: Vec<_> = std::fs::read_dir(&storage)
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(names, ["ratewatch.redb"], "the store was moved aside");
}

#[test]
fn read_only_state_directory_stops_start_up() {
    let Some(dir) = setup() else { return };
    let storage = dir.path().join("state");
    std::fs::create_dir(&storage).unwrap();
    chmod(&storage, 0o555);

    let output = run_without_access(dir.path(), &storage);
    assert_permission_error(&output, &storage.join("ratewatch.redb"));
    assert_eq!(
        std::fs::read_dir(&storage).unwrap().count(),
        0,
        "a file was created in a read-only directory"
    );
}

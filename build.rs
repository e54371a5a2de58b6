//! Records the git revision for `ratewatch_build_info`.

use std::path::Path;
use std::process::Command;

/// Runs git with `args` and returns its trimmed output, or `None` outside a repository.
fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn main() {
    let revision = std::env::var("RATEWATCH_REVISION")
        .ok()
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]));
    println!(
        "cargo:rustc-env=RATEWATCH_REVISION={}",
        revision.unwrap_or_else(|| "unknown".to_owned())
    );
    println!("cargo:rerun-if-env-changed=RATEWATCH_REVISION");
    // Cargo reruns a build script on every build when a watched path is missing, so only the
    // files git really uses are watched: in a worktree HEAD lives outside `.git/`, and a
    // source tarball has none at all.
    println!("cargo:rerun-if-changed=build.rs");
    for file in ["HEAD", "refs/heads", "packed-refs"] {
        if let Some(path) = git(&["rev-parse", "--git-path", file])
            && Path::new(&path).exists()
        {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}

//! The deploy scripts as the board and package tests run them: `deploy/boards.sh`,
//! `deploy/deb.sh` and `deploy/debian-image.sh` print what they built, one line each,
//! and exit 3 when a tool they need is missing, which skips a test outside CI.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The workspace's root directory.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate sits in the workspace")
}

/// Whether CI=true, where a missing tool fails a test instead of skipping it.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Whether `tool` is on the PATH.
pub fn on_path(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Skips the calling test (returns `None`) when `tool` is missing, or fails it in CI.
pub fn require(tool: &str, how: &str) -> Option<()> {
    if on_path(tool) {
        return Some(());
    }
    assert!(!in_ci(), "{tool} is missing ({how})");
    eprintln!("skipped: {tool} is missing ({how})");
    None
}

/// Runs `deploy/SCRIPT` with `env` from the workspace root, its progress on the
/// test's output; returns what it printed on standard output, line by line, split on
/// whitespace. `None` (skip) when it exits 3 outside CI; any other failure fails the test.
pub fn script(script: &str, env: &[(&str, &Path)]) -> Option<Vec<Vec<String>>> {
    let mut command = bash(script);
    let out = command
        .envs(env.iter().map(|(k, v)| (k, v.as_os_str())))
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("bash runs deploy/{script}: {e}"));
    if out.status.code() == Some(3) && !in_ci() {
        eprintln!("skipped: deploy/{script} is missing a tool (above)");
        return None;
    }
    assert!(
        out.status.success(),
        "deploy/{script} failed: {}",
        out.status
    );
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split_whitespace().map(str::to_owned).collect())
            .collect(),
    )
}

/// `bash deploy/SCRIPT` from the workspace root, without the variables Cargo sets for a
/// test: those (the package's name and version, OUT_DIR...) would reach the build
/// scripts of the script's own builds, and those that watch such variables (ring) would
/// rebuild what the same script, run by hand or by another test, built already.
pub fn bash(script: &str) -> Command {
    let mut command = Command::new("bash");
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_MANIFEST_")
            || matches!(
                &*key,
                "OUT_DIR" | "CARGO_CRATE_NAME" | "CARGO_PRIMARY_PACKAGE" | "CARGO_TARGET_TMPDIR"
            )
        {
            command.env_remove(&*key);
        }
    }
    command
        .arg(root().join("deploy").join(script))
        .current_dir(root());
    command
}

/// What `deploy/boards.sh` or `deploy/deb.sh` built: `(target, path)` per line.
pub fn built(lines: Vec<Vec<String>>) -> Vec<(String, PathBuf)> {
    lines
        .into_iter()
        .filter_map(|mut l| {
            (l.len() >= 2).then(|| (std::mem::take(&mut l[0]), PathBuf::from(&l[1])))
        })
        .collect()
}

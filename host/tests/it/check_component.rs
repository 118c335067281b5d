//! `tether-host check-component`, run as a user would.

use std::process::Command;

use crate::support::MISBEHAVING;

fn check(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tether-host"))
        .arg("check-component")
        .args(args)
        .output()
        .expect("the binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_built_in_component_checks_out_with_its_figures() {
    let (ok, stdout, stderr) = check(&[]);
    assert!(ok, "{stdout}\n{stderr}");
    for needle in [
        "world        tether:pairing/pairing@0.1.0: ok",
        "exports      pairing",
        "size         ",
        "instantiate  ",
        "health       ok",
        "status       awaiting-credentials",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }
}

#[test]
fn a_file_that_is_not_a_component_fails_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("junk.wasm");
    std::fs::write(&path, b"definitely not wasm").expect("written");
    let (ok, _, stderr) = check(&[path.to_str().expect("utf-8 path")]);
    assert!(!ok);
    assert!(stderr.contains("not a valid pairing component"), "{stderr}");
}

#[test]
fn a_missing_file_fails_with_its_path() {
    let (ok, _, stderr) = check(&["/nonexistent/component.wasm"]);
    assert!(!ok);
    assert!(
        stderr.contains("failed to read /nonexistent/component.wasm"),
        "{stderr}"
    );
}

#[test]
fn an_unhealthy_component_fails_the_check() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("misbehaving.wasm");
    std::fs::write(&path, MISBEHAVING).expect("written");
    let (ok, stdout, stderr) = check(&[path.to_str().expect("utf-8 path")]);
    assert!(!ok, "{stdout}");
    assert!(stdout.contains(": ok"), "the world matches: {stdout}");
    assert!(stderr.contains("unhealthy"), "{stderr}");
}

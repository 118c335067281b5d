//! The board hosts under emulation: `deploy/boards.sh` builds `tether-host` without the
//! compiler for aarch64 (static musl, native code) and armv7 (glibc, Pulley), and each
//! runs under qemu-user against the real service: credentials over the encrypted
//! channel, online, a command and its report, a hot update to code precompiled for it
//! (`tether module sign --target`), code for the other board refused by the cloud and by
//! the host with the reason in the rollout state, and a restart that comes back online
//! without activating again. Its own test binary, so it never competes with the other
//! end-to-end tests for the two cores. Without qemu or the cross compilers it skips,
//! unless CI=true.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use serde_json::{Value, json};
use tether_e2e::{Cloud, DeviceHost, User, WIFI_PASSWORD, bin, deploy, eventually};

/// A board: its target, its emulator and where that finds the board's libraries.
struct Board {
    target: &'static str,
    qemu: &'static str,
    sysroot: Option<&'static str>,
    engine: &'static str,
}

const AARCH64: Board = Board {
    target: "aarch64-unknown-linux-musl",
    qemu: "qemu-aarch64-static",
    sysroot: None,
    engine: "native",
};

const ARMV7: Board = Board {
    target: "armv7-unknown-linux-gnueabihf",
    qemu: "qemu-arm-static",
    sysroot: Some("/usr/arm-linux-gnueabihf"),
    engine: "pulley",
};

const OK_ACTIVATIONS: &str = "tether_activations_total{result=\"ok\"}";

/// The board binaries by target, built once; `None` when a tool is missing outside CI.
fn binaries() -> Option<&'static Vec<(String, PathBuf)>> {
    static BUILT: OnceLock<Option<Vec<(String, PathBuf)>>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            for qemu in [AARCH64.qemu, ARMV7.qemu] {
                deploy::require(qemu, "apt-get install qemu-user-static")?;
            }
            deploy::script("boards.sh", &[]).map(deploy::built)
        })
        .as_ref()
}

/// One board at a time: two emulated hosts on two cores would each take twice as long.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs `tether ARGS` without an account (key generation, signing).
fn tether(args: &[&str]) -> Value {
    let out = Command::new(bin("tether"))
        .args(args)
        .arg("--json")
        .output()
        .expect("tether runs");
    assert!(
        out.status.success(),
        "tether {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// `tether module sign` of `component` as `version` with code precompiled for `target`;
/// returns the portable bundle and the precompiled one.
fn sign(
    key: &Path,
    version: &str,
    target: &str,
    out: &Path,
    component: &Path,
) -> (PathBuf, String) {
    let signed = tether(&[
        "module",
        "sign",
        "--key",
        s(key),
        "--version",
        version,
        "--target",
        target,
        "-o",
        s(out),
        s(component),
    ]);
    let variant = signed["precompiled"][0]["bundle"]
        .as_str()
        .expect("a precompiled bundle")
        .to_owned();
    (out.to_path_buf(), variant)
}

fn s(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

fn device(user: &User, dev_id: &str) -> Value {
    user.json(&["device", dev_id])
}

fn wait_for_device(user: &User, dev_id: &str, what: &str, check: impl Fn(&Value) -> bool) {
    eventually(
        what,
        || check(&device(user, dev_id)).then_some(()),
        || device(user, dev_id).to_string(),
    );
}

fn run_board(board: &Board) {
    let Some(binaries) = binaries() else { return };
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let binary = &binaries
        .iter()
        .find(|(t, _)| t == board.target)
        .expect("deploy/boards.sh built the board")
        .1;
    let dir = tempfile::tempdir().expect("temp dir");
    let keys = dir.path().join("keys");
    let made = tether(&["module", "keygen", "--out", s(&keys)]);
    let public = made["public"].as_str().expect("a public key").to_owned();
    let key = keys.join("module.key");

    let cloud = Cloud::start_with(&["--module-key", &public]);
    let license = cloud.licenses(1).remove(0);
    let ops = User::admin(&cloud, "ops");
    let ann = User::new(&cloud, "ann");

    // The factory image: the built-in component precompiled for the board.
    let component = dir.path().join("pairing.cwasm");
    let out = Command::new(bin("tether-host"))
        .args(["precompile", "--target", board.target, "-o", s(&component)])
        .output()
        .expect("tether-host precompile runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut config = DeviceHost::config(&cloud, &license, dir.path());
    config.component = Some(component);
    config.update.trusted_keys = vec![public.clone()];
    config.update.probation_secs = 3;
    // Emulation runs the board's code many times slower than the board would.
    config.call_budget_ms = 30_000;
    let mut runner: Vec<OsString> = vec![board.qemu.into()];
    if let Some(sysroot) = board.sysroot {
        runner.extend(["-L".into(), sysroot.into()]);
    }
    runner.push(binary.into());
    let mut host = DeviceHost::start_under(runner, &config, &license);

    // Credentials over the encrypted channel, then online.
    let started = Instant::now();
    let paired = ann.provision(&host, WIFI_PASSWORD, &["--json"]).json();
    let dev_id = paired["dev_id"].as_str().expect("a device id").to_owned();
    eprintln!(
        "{}: user-cfg to online in {:.1} s under {}",
        board.target,
        started.elapsed().as_secs_f64(),
        board.qemu
    );
    let platform = device(&ann, &dev_id)["platform"].clone();
    assert_eq!(
        platform,
        json!(format!(
            "target={}; engine={}; compiler=no; runtime={}",
            board.target,
            board.engine,
            tether_host::platform::RUNTIME
        )),
    );

    // A command and its report.
    ann.tether(&["send", &dev_id, r#"{"1":true}"#]).success();
    wait_for_device(&ann, &dev_id, "the report", |d| {
        d["last_report"] == json!({"1": true})
    });

    // A hot update with code precompiled for the board, through the cloud.
    let next = dir.path().join("next.wasm");
    std::fs::write(&next, tether_host::component::NEXT_COMPONENT).expect("written");
    let (bundle, variant) = sign(
        &key,
        "0.2.0",
        board.target,
        &dir.path().join("next.bundle"),
        &next,
    );
    ops.json(&["module", "upload", s(&bundle)]);
    let module = ops.json(&["module", "upload", &variant]);
    let id = module["id"].to_string();
    assert_eq!(
        module["variants"].as_array().map(Vec::len),
        Some(2),
        "{module}"
    );
    ops.json(&["module", "rollout", &id, "--device", &dev_id]);
    wait_for_device(&ann, &dev_id, "the update applied", |d| {
        d["rollout"]["state"] == "applied" && d["module_version"] == "0.2.0"
    });

    // Code for the other board: the cloud has nothing this board can run...
    let other = if board.target == AARCH64.target {
        &ARMV7
    } else {
        &AARCH64
    };
    let (_, wrong_variant) = sign(
        &key,
        "0.3.0",
        other.target,
        &dir.path().join("wrong.bundle"),
        &next,
    );
    let module = ops.json(&["module", "upload", &wrong_variant]);
    ops.json(&[
        "module",
        "rollout",
        &module["id"].to_string(),
        "--device",
        &dev_id,
    ]);
    wait_for_device(&ann, &dev_id, "the cloud's refusal", |d| {
        d["rollout"]["state"] == "refused"
            && d["rollout"]["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("no_bundle_for_platform"))
    });
    // ...and the host refuses it when handed it directly, telling the cloud why.
    let out = host.ctl(&["module", "load", &wrong_variant]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("update refused (wrong_target)"),
        "{}",
        out.stderr
    );
    wait_for_device(&ann, &dev_id, "the host's refusal in the cloud", |d| {
        d["rollout"]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("wrong_target"))
    });

    // A restart comes back online on the updated component, without activating again.
    host.restart();
    let back = host.wait_for("online after the restart", |s| s["state"] == "online");
    assert_eq!(back["dev_id"], dev_id.as_str());
    assert_eq!(cloud.metric(OK_ACTIVATIONS), 1, "activated once");
    wait_for_device(&ann, &dev_id, "online in the cloud again", |d| {
        d["online"] == true && d["module_version"] == "0.2.0"
    });
}

#[test]
fn aarch64_host_pairs_updates_and_restarts_under_qemu() {
    run_board(&AARCH64);
}

#[test]
fn armv7_host_on_pulley_pairs_updates_and_restarts_under_qemu() {
    run_board(&ARMV7);
}

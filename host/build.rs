//! Builds the pairing component (and the misbehaving test component) for `wasm32-wasip2`
//! with a nested cargo, so `cargo build` of the host needs no manual step. The nested
//! build uses its own target directory, so it never waits on the lock the outer build
//! holds, and it runs without the outer build's flags and wrappers.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Packages built, and the file each produces.
const COMPONENTS: &[(&str, &str)] = &[
    ("tether-guest", "tether_guest.wasm"),
    ("tether-testguest", "tether_testguest.wasm"),
];
const WASM_TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "guest";

/// Variables the outer cargo sets for build scripts, or that configure it, which must not
/// leak into the nested build (they name the wrong target, flags or wrapper).
const SCRUBBED: &[&str] = &[
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_RUSTFLAGS",
    "RUSTFLAGS",
    "RUSTDOCFLAGS",
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTC_LINKER",
    "CLIPPY_ARGS",
    "TARGET",
    "HOST",
    "OPT_LEVEL",
    "PROFILE",
    "DEBUG",
    "NUM_JOBS",
    "OUT_DIR",
];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let workspace = manifest_dir
        .parent()
        .expect("the host crate sits inside the workspace")
        .to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets it"));

    for input in [
        "wit",
        "guest",
        "testguest",
        "proto",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", workspace.join(input).display());
    }

    // The platform the host reports (`platform.rs`): its target and Wasmtime's version.
    let target = env::var("TARGET").expect("cargo sets it");
    println!("cargo:rustc-env=TETHER_HOST_TARGET={target}");
    println!(
        "cargo:rustc-env=TETHER_WASMTIME_VERSION={}",
        locked_version(&workspace.join("Cargo.lock"), "wasmtime")
    );

    ensure_wasm_target(&workspace);

    let target_dir = nested_target_dir(&out_dir);
    let mut cmd = nested_cargo(&workspace, &target_dir);
    for (package, _) in COMPONENTS {
        cmd.args(["-p", package]);
    }
    run(cmd);

    let artifacts = target_dir.join(WASM_TARGET).join(PROFILE);
    for (_, file) in COMPONENTS {
        copy(&artifacts.join(file), &out_dir.join(file));
    }

    // The `demo` feature also embeds the demonstration update (`tether demo --update`):
    // the pairing component built with its `next` feature.
    // Its own target dir: the variant has the same file name, and a build of the other
    // variant in between must not replace it before it is copied.
    if env::var_os("CARGO_FEATURE_DEMO").is_some() {
        let next_dir = target_dir.with_file_name("wasm-components-next");
        let mut next = nested_cargo(&workspace, &next_dir);
        next.args(["-p", "tether-guest", "--features", "tether-guest/next"]);
        run(next);
        copy(
            &next_dir
                .join(WASM_TARGET)
                .join(PROFILE)
                .join("tether_guest.wasm"),
            &out_dir.join("tether_guest_next.wasm"),
        );
    }
}

/// The version of `package` that `Cargo.lock` pins.
fn locked_version(lock: &Path, package: &str) -> String {
    let text = std::fs::read_to_string(lock).expect("the workspace has a Cargo.lock");
    let name = format!("name = \"{package}\"");
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line == name {
            let version = lines.next().and_then(|l| l.strip_prefix("version = \""));
            if let Some(v) = version.and_then(|v| v.strip_suffix('"')) {
                return v.to_owned();
            }
        }
    }
    panic!("Cargo.lock pins no {package}");
}

/// Makes sure the standard library for the wasm target is there before the nested build
/// needs it. Where the toolchain is rustup's and lacks it (rustup does not add a listed
/// target by itself when `RUSTUP_AUTO_INSTALL=0`, or when the toolchain was installed
/// before `rust-toolchain.toml` listed it), adds it through rustup, saying so. Elsewhere,
/// fails at once with the command to run, instead of after the nested build's errors.
fn ensure_wasm_target(workspace: &Path) {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let libdir = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", WASM_TARGET])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    if libdir.as_deref().is_some_and(has_core) {
        return;
    }
    let toolchain = env::var("RUSTUP_TOOLCHAIN").ok();
    let mut add = Command::new("rustup");
    add.current_dir(workspace)
        .args(["target", "add", WASM_TARGET]);
    if let Some(toolchain) = &toolchain {
        add.args(["--toolchain", toolchain]);
    }
    let named = toolchain.as_deref().unwrap_or("the workspace's toolchain");
    println!(
        "cargo:warning=the {WASM_TARGET} target is missing from {named}; \
         adding it with `rustup target add {WASM_TARGET}`"
    );
    let added = add.status().map(|status| status.success());
    if matches!(added, Ok(true)) && libdir.as_deref().is_none_or(has_core) {
        return;
    }
    let why = match added {
        Err(e) => format!("rustup could not be run ({e})"),
        Ok(false) => "`rustup target add` failed (its message is above)".to_owned(),
        Ok(true) => "rustup added it, but this rustc still does not find it".to_owned(),
    };
    panic!(
        "the Rust standard library for {WASM_TARGET} is not installed for {} ({why}).\n\
         The pairing component is built for it. Install it and build again:\n    \
         rustup target add {WASM_TARGET}{}\n\
         (with a toolchain not managed by rustup, install that toolchain's rust-std for \
         {WASM_TARGET} from where it came)",
        rustc.to_string_lossy(),
        toolchain
            .as_deref()
            .map(|t| format!(" --toolchain {t}"))
            .unwrap_or_default(),
    );
}

/// Whether a target's library directory holds its `core`.
fn has_core(libdir: &Path) -> bool {
    std::fs::read_dir(libdir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("libcore-"))
    })
}

/// `cargo build` of components for the wasm target into `target_dir`, without the outer
/// build's environment.
fn nested_cargo(workspace: &Path, target_dir: &Path) -> Command {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args(["build", "--profile", PROFILE, "--target", WASM_TARGET])
        .arg("--target-dir")
        .arg(target_dir);
    for (key, _) in env::vars_os() {
        let key = key.to_string_lossy();
        if SCRUBBED.contains(&key.as_ref())
            || key.starts_with("CARGO_PROFILE_")
            || key.starts_with("CARGO_TARGET_")
            || key.starts_with("CARGO_FEATURE_")
        {
            cmd.env_remove(key.as_ref());
        }
    }
    cmd
}

fn run(mut cmd: Command) {
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("failed to run cargo for the {WASM_TARGET} components: {e}"));
    if !output.status.success() {
        panic!(
            "building the pairing component for {WASM_TARGET} failed ({}).\n\
             Is the target installed? rust-toolchain.toml lists it, so `rustup toolchain install` \
             adds it.\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("failed to copy {}: {e}", from.display()));
}

/// `<target>/wasm-components`, next to the profile directories, so that debug, release
/// and clippy builds of the host share one build of the components. Falls back to a
/// directory inside `OUT_DIR` when the layout is not the usual one.
fn nested_target_dir(out_dir: &Path) -> PathBuf {
    // OUT_DIR is <target>[/<triple>]/<profile>/build/<pkg>-<hash>/out.
    let build = out_dir.ancestors().nth(2);
    match build {
        Some(dir) if dir.file_name().is_some_and(|n| n == "build") => dir
            .parent()
            .and_then(Path::parent)
            .map(|target| target.join("wasm-components"))
            .unwrap_or_else(|| out_dir.join("wasm-components")),
        _ => out_dir.join("wasm-components"),
    }
}

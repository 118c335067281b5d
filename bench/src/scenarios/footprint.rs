//! `footprint`: the hosts for boards, per target. It builds `tether-host` with
//! `deploy/boards.sh`: the default build (`release`, with Cranelift) for x86_64 and
//! aarch64, and the board build (`device-min`, no compiler) for x86_64, aarch64 and armv7.
//! It reports each one's stripped size, then runs each board build as a device on the
//! built-in component precompiled for it (native code, Pulley on armv7) against a
//! service: its RSS once online, the user-cfg → online time, and the instantiate and
//! `handle` call times of `check-component`. x86_64 runs natively; aarch64 and armv7 run
//! under qemu-user, marked as emulated: their times are the emulator's and their RSS
//! includes it. The default x86_64 build is measured online too, compiling at boot.
//!
//! `--quick` measures the `tether-host` next to this executable instead, so CI checks
//! the measuring itself.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;
use tether_host::platform::{engine_for, wasmtime_target};
use tether_host::{Runtime, RuntimeConfig};

use crate::Options;
use crate::cloud::Seeded;
use crate::procs::Memory;
use crate::report::Report;
use crate::rig;

/// A target and how its binaries run here.
struct Target {
    triple: &'static str,
    /// The emulator and its arguments; empty for native.
    qemu: &'static [&'static str],
}

const X86_64: Target = Target {
    triple: "x86_64-unknown-linux-musl",
    qemu: &[],
};
const AARCH64: Target = Target {
    triple: "aarch64-unknown-linux-musl",
    qemu: &["qemu-aarch64-static"],
};
const ARMV7: Target = Target {
    triple: "armv7-unknown-linux-gnueabihf",
    qemu: &["qemu-arm-static", "-L", "/usr/arm-linux-gnueabihf"],
};

/// What one host measured online.
struct Online {
    memory: Memory,
    to_online: Duration,
}

/// Runs the scenario.
pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let mut report = Report::new("footprint", &["build", "size", "stripped"]);
    if options.quick {
        let exe = std::env::current_exe()?;
        let host = exe.with_file_name("tether-host");
        anyhow::ensure!(
            host.exists(),
            "{} is not built (cargo build --bins)",
            host.display()
        );
        let size = std::fs::metadata(&host)?.len();
        report.row(vec![
            "this build's tether-host (not stripped)".into(),
            mib(size),
            "-".into(),
        ]);
        let online = online(&[host.clone().into()], &host, None, false).await?;
        memory_row(&mut report, "this build, built-in component", &online);
        return Ok(report);
    }

    let mut sizes = Vec::new();
    for target in [&X86_64, &AARCH64] {
        let binary = build(target.triple, true)?;
        let stripped = strip(&binary)?;
        report.row(vec![
            format!("{} release, with the compiler", target.triple),
            mib(std::fs::metadata(&binary)?.len()),
            mib(stripped),
        ]);
        sizes.push(json!({"target": target.triple, "profile": "release", "compiler": true, "stripped_bytes": stripped}));
    }
    let mut boards = Vec::new();
    for target in [&X86_64, &AARCH64, &ARMV7] {
        let binary = build(target.triple, false)?;
        let stripped = strip(&binary)?;
        report.row(vec![
            format!("{} device-min, no compiler", target.triple),
            mib(std::fs::metadata(&binary)?.len()),
            mib(stripped),
        ]);
        sizes.push(json!({"target": target.triple, "profile": "device-min", "compiler": false, "stripped_bytes": stripped}));
        boards.push((target, binary, stripped));
    }
    let aarch64 = boards[1].2;
    report.target(
        "aarch64 host without the compiler, stripped",
        "<= 4 MiB",
        mib(aarch64),
        aarch64 <= 4 << 20,
    );
    report.target(
        "armv7 host smaller than the aarch64 one",
        "< aarch64",
        mib(boards[2].2),
        boards[2].2 < aarch64,
    );
    report.data("sizes", json!(sizes));

    // The default build online, natively: it compiles its component at boot.
    let full = build_dir(X86_64.triple, "release").join("tether-host");
    let ctl = boards[0].1.clone();
    let default = online(&[full.into()], &ctl, None, false).await?;
    memory_row(&mut report, "x86_64 release, compiles at boot", &default);

    let mut per_target = Vec::new();
    for (target, binary, stripped) in &boards {
        let engine = engine_for(target.triple, false);
        let code = Runtime::precompile(
            RuntimeConfig::default(),
            Some(&wasmtime_target(target.triple, engine)),
            tether_host::component::DEFAULT_COMPONENT,
        )?;
        let component = binary.with_file_name("pairing.cwasm");
        std::fs::write(&component, &code)?;
        let mut line: Vec<OsString> = target.qemu.iter().map(OsString::from).collect();
        line.push(binary.into());
        let emulated = !target.qemu.is_empty();
        let label = format!(
            "{} device-min ({}){}",
            target.triple,
            engine.name(),
            if emulated { ", emulated" } else { "" }
        );
        let measured = online(&line, &ctl, Some(&component), false).await?;
        memory_row(&mut report, &label, &measured);
        if !emulated {
            report.target(
                "host RSS online, no compiler (x86_64, natively)",
                "<= 8 MiB",
                format!("{:.1} MiB", measured.memory.rss_mib()),
                measured.memory.rss_kib <= 8 * 1024,
            );
        }
        let (instantiate, handle) = call_times(&line, &component)?;
        report.row(vec![
            format!("calls: {label}"),
            format!("instantiate {instantiate}"),
            format!("handle {handle}"),
        ]);
        per_target.push(json!({
            "target": target.triple, "engine": engine.name(), "emulated": emulated,
            "stripped_bytes": stripped, "component_bytes": code.len(),
            "rss_kib": measured.memory.rss_kib, "to_online_ms": measured.to_online.as_millis(),
            "instantiate_median": instantiate, "handle_median": handle,
        }));
    }
    report.data("per_target", json!(per_target));
    Ok(report)
}

fn memory_row(report: &mut Report, label: &str, online: &Online) {
    let m = &online.memory;
    report.row(vec![
        format!("online: {label}"),
        format!("RSS {:.1} MiB", m.rss_mib()),
        format!(
            "user-cfg → online {} ms; peak {:.1} MiB, anon {:.1} MiB, file {:.1} MiB",
            online.to_online.as_millis(),
            m.peak_kib as f64 / 1024.0,
            m.anon_kib as f64 / 1024.0,
            m.file_kib as f64 / 1024.0
        ),
    ]);
}

/// The medians `check-component` prints for instantiation and `handle`.
fn call_times(line: &[OsString], component: &Path) -> anyhow::Result<(String, String)> {
    let out = Command::new(&line[0])
        .args(&line[1..])
        .arg("check-component")
        .arg(component)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "check-component failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let median = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.trim().split(" median").next())
            .map(str::to_owned)
            .with_context(|| format!("no {key} line in: {text}"))
    };
    Ok((median("instantiate")?, median("handle")?))
}

fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / (1 << 20) as f64)
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn build_dir(target: &str, profile: &str) -> PathBuf {
    workspace().join("target").join(target).join(profile)
}

/// `deploy/boards.sh` for one build: the board build, or the default one.
fn build(target: &str, compiler: bool) -> anyhow::Result<PathBuf> {
    let mut script = Command::new("bash");
    script
        .arg(workspace().join("deploy/boards.sh"))
        .arg(target)
        .stderr(std::process::Stdio::inherit());
    if compiler {
        script
            .env("BOARDS_PROFILE", "release")
            .env("BOARDS_COMPILER", "1");
    }
    let out = script.output().context("cannot run deploy/boards.sh")?;
    if !out.status.success() {
        bail!("deploy/boards.sh {target} failed (its message is above)");
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let path = text
        .split_whitespace()
        .nth(1)
        .context("deploy/boards.sh printed no path")?;
    Ok(PathBuf::from(path))
}

/// Size after `llvm-strip` of a copy.
fn strip(binary: &Path) -> anyhow::Result<u64> {
    let copy = binary.with_extension("stripped");
    std::fs::copy(binary, &copy)?;
    let status = Command::new("llvm-strip").arg(&copy).status();
    let status = match status {
        Ok(s) => s,
        Err(_) => Command::new("strip")
            .arg(&copy)
            .status()
            .context("neither llvm-strip nor strip runs")?,
    };
    anyhow::ensure!(status.success(), "strip failed on {}", copy.display());
    Ok(std::fs::metadata(&copy)?.len())
}

/// Runs the host `line` names (a binary, or an emulator and its arguments up to the
/// binary) as a device, on `component` if given, against a service (over TLS when `tls`),
/// pairs it through `ctl` (a native build) and reads its memory once it is online (after
/// a second to settle).
async fn online(
    line: &[OsString],
    ctl: &Path,
    component: Option<&Path>,
    tls: bool,
) -> anyhow::Result<Online> {
    let seeded = Seeded::new(1).await?;
    let service = seeded.serve_with(tls)?;
    let dir = tempfile::tempdir()?;
    let license = &seeded.licenses[0];
    let config = dir.path().join("host.toml");
    let mut host_config = rig::device_config_for(&dir.path().join("data"), &service, license);
    host_config.component = component.map(Path::to_path_buf);
    std::fs::write(&config, host_config.to_toml()?)?;
    let mut host = Command::new(&line[0])
        .args(&line[1..])
        .arg("run")
        .arg("--config")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("host.log"))?)
        .spawn()
        .with_context(|| format!("cannot run {line:?}"))?;
    let result = async {
        let ctl = |args: &[&str]| {
            Command::new(ctl)
                .arg("ctl")
                .arg("--config")
                .arg(&config)
                .args(args)
                .output()
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let sent = loop {
            let out = ctl(&[
                "user-cfg",
                "--ssid",
                rig::SSID,
                "--passwd",
                rig::WIFI_PASSWORD,
                "--token",
                seeded.token(0),
            ])?;
            if out.status.success() {
                break Instant::now();
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the host did not take user-cfg: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let to_online = loop {
            let out = ctl(&["status", "--json"])?;
            let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            if status["state"] == "online" {
                break sent.elapsed();
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the host did not come online: {status}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok(Online {
            memory: Memory::of(host.id()),
            to_online,
        })
    }
    .await;
    let _ = host.kill();
    let _ = host.wait();
    result
}

/// [`online`] for a host binary run natively: its memory online.
pub(super) async fn online_rss(binary: &Path, tls: bool) -> anyhow::Result<Memory> {
    Ok(online(&[binary.into()], binary, None, tls).await?.memory)
}

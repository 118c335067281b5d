//! `footprint`: the size of a stripped `tether-host` for x86_64 and aarch64 (static
//! musl), in the default release build and in the size-optimised `device-min` profile
//! without the compiler, and the resident memory of a host that is online: one that
//! compiles its built-in component, and one without the compiler running a precompiled
//! component.
//!
//! Full runs build the four binaries with cargo (minutes each). `--quick` measures the
//! `tether-host` next to this executable instead, so CI checks the measuring itself.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;

use crate::Options;
use crate::cloud::Seeded;
use crate::procs::Memory;
use crate::report::Report;
use crate::rig;

/// A build measured.
struct Build {
    target: &'static str,
    profile: &'static str,
    /// With Cranelift (the default features), or without the compiler.
    compiler: bool,
}

/// The default build, and the size-optimised one without the compiler, for each target.
const BUILDS: [Build; 4] = [
    Build {
        target: "x86_64-unknown-linux-musl",
        profile: "release",
        compiler: true,
    },
    Build {
        target: "aarch64-unknown-linux-musl",
        profile: "release",
        compiler: true,
    },
    Build {
        target: "x86_64-unknown-linux-musl",
        profile: "device-min",
        compiler: false,
    },
    Build {
        target: "aarch64-unknown-linux-musl",
        profile: "device-min",
        compiler: false,
    },
];

/// Runs the scenario.
pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let mut report = Report::new("footprint", &["build", "size", "stripped"]);
    // (label, binary, component file it runs)
    let mut online = Vec::new();
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
        online.push(("this build, built-in component".to_owned(), host, None));
    } else {
        let mut sizes = Vec::new();
        for b in &BUILDS {
            let binary = build(b)?;
            let size = std::fs::metadata(&binary)?.len();
            let stripped = strip(&binary)?;
            let label = format!(
                "{} {}{}",
                b.target,
                b.profile,
                if b.compiler { "" } else { ", no compiler" }
            );
            report.row(vec![label.clone(), mib(size), mib(stripped)]);
            sizes.push(json!({"target": b.target, "profile": b.profile, "compiler": b.compiler, "bytes": size, "stripped_bytes": stripped}));
            if b.target.starts_with("aarch64") && !b.compiler {
                report.target(
                    "aarch64 host without the compiler, stripped",
                    "<= 4 MiB",
                    mib(stripped),
                    stripped <= 4 << 20,
                );
            }
        }
        report.data("sizes", json!(sizes));
        let full = build_dir("x86_64-unknown-linux-musl", "release").join("tether-host");
        let small = build_dir("x86_64-unknown-linux-musl", "device-min").join("tether-host");
        let compiled = build_dir("x86_64-unknown-linux-musl", "device-min").join("pairing.cwasm");
        let out = Command::new(&full)
            .args(["precompile", "-o"])
            .arg(&compiled)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "precompile failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        online.push((
            "x86_64 release, compiles the built-in component".to_owned(),
            full,
            None,
        ));
        online.push((
            "x86_64 device-min, no compiler, precompiled component".to_owned(),
            small,
            Some(compiled),
        ));
    }
    let mut rss_json = Vec::new();
    for (label, binary, component) in online {
        let rss = online_rss(&binary, component.as_deref(), false).await?;
        report.row(vec![
            format!("RSS online: {label}"),
            format!("{:.1} MiB", rss.rss_mib()),
            format!(
                "peak {:.1} MiB; anon {:.1} MiB, file {:.1} MiB",
                rss.peak_kib as f64 / 1024.0,
                rss.anon_kib as f64 / 1024.0,
                rss.file_kib as f64 / 1024.0
            ),
        ]);
        report.target(
            &format!("host RSS online ({label})"),
            "<= 10 MiB",
            format!("{:.1} MiB", rss.rss_mib()),
            rss.rss_kib <= 10 * 1024,
        );
        rss_json.push(json!({"label": label, "rss_kib": rss.rss_kib, "peak_kib": rss.peak_kib, "anon_kib": rss.anon_kib, "file_kib": rss.file_kib, "binary": binary}));
    }
    report.data("rss_online", json!(rss_json));
    Ok(report)
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

/// `cargo build -p tether-host` for one build; cargo's progress shows.
fn build(b: &Build) -> anyhow::Result<PathBuf> {
    let (target, profile) = (b.target, b.profile);
    eprintln!(
        "footprint: building tether-host for {target}, profile {profile}, compiler {}",
        b.compiler
    );
    let started = Instant::now();
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo.current_dir(workspace()).args([
        "build",
        "--locked",
        "-p",
        "tether-host",
        "--target",
        target,
        "--profile",
        profile,
    ]);
    if !b.compiler {
        cargo.arg("--no-default-features");
    }
    if target.starts_with("aarch64") {
        // Rust's own linker links the self-contained musl; the C parts need a cross gcc.
        cargo
            .env("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER", "rust-lld")
            .env("CC_aarch64_unknown_linux_musl", "aarch64-linux-gnu-gcc");
    }
    let status = cargo.status().context("cannot run cargo")?;
    if !status.success() {
        bail!(
            "the {target} {profile} build failed (aarch64 needs gcc-aarch64-linux-gnu, x86_64 musl-tools)"
        );
    }
    eprintln!(
        "footprint: built in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(build_dir(target, profile).join("tether-host"))
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

/// Runs `binary` as a device (on `component` if given) against a service (over TLS when
/// `tls`), pairs it, and reads its memory once it is online (after a second to settle).
pub(super) async fn online_rss(
    binary: &Path,
    component: Option<&Path>,
    tls: bool,
) -> anyhow::Result<Memory> {
    let seeded = Seeded::new(1).await?;
    let service = seeded.serve_with(tls)?;
    let dir = tempfile::tempdir()?;
    let license = &seeded.licenses[0];
    let config = dir.path().join("host.toml");
    let mut host_config = rig::device_config_for(&dir.path().join("data"), &service, license);
    host_config.component = component.map(Path::to_path_buf);
    std::fs::write(&config, host_config.to_toml()?)?;
    let mut host = Command::new(binary)
        .arg("run")
        .arg("--config")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("host.log"))?)
        .spawn()
        .with_context(|| format!("cannot run {}", binary.display()))?;
    let result = async {
        let ctl = |args: &[&str]| {
            Command::new(binary)
                .arg("ctl")
                .arg("--config")
                .arg(&config)
                .args(args)
                .output()
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
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
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the host did not take user-cfg: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        loop {
            let out = ctl(&["status", "--json"])?;
            let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            if status["state"] == "online" {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the host did not come online: {status}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok(Memory::of(host.id()))
    }
    .await;
    let _ = host.kill();
    let _ = host.wait();
    result
}

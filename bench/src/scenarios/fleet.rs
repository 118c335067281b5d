//! `fleet`: many devices in one process, each a real host (`Device`: its own instance of
//! the component, providers, data channel and control socket) on one shared runtime,
//! paired at once against one service.

use std::time::{Duration, Instant};

use serde_json::json;
use tether_host::daemon::Device;
use tether_host::{RuntimeConfig, RuntimeSource, SharedRuntime};

use crate::Options;
use crate::cloud::Seeded;
use crate::procs::{Memory, PeakWatch};
use crate::report::Report;
use crate::rig;
use crate::stats::show;

/// Runs the scenario for each fleet size.
pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let mut report = Report::new(
        "fleet",
        &[
            "devices",
            "start all",
            "pair all",
            "devices/s",
            "fleet RSS peak",
            "per device",
            "service RSS peak",
            "fds open",
            "stopped",
        ],
    );
    let mut results = Vec::new();
    for &n in &options.fleet {
        let needed = n * FDS_PER_DEVICE + 256;
        if let Some(limit) = open_files_limit().filter(|limit| needed > *limit) {
            let why = format!(
                "{n} devices do not fit: they need about {needed} open files in one process, its limit is {limit} (ulimit -n)"
            );
            eprintln!("fleet: {why}");
            report.note(why);
            continue;
        }
        let r = fleet(n).await?;
        report.row(vec![
            n.to_string(),
            show(r.start),
            show(r.pair),
            format!("{:.0}", n as f64 / r.pair.as_secs_f64()),
            format!("{:.0} MiB", r.fleet_peak_kib as f64 / 1024.0),
            format!(
                "{:.0} KiB",
                r.fleet_peak_kib.saturating_sub(r.base_kib) as f64 / n as f64
            ),
            format!("{:.0} MiB", r.service_peak_kib as f64 / 1024.0),
            r.fds.to_string(),
            r.stopped.to_string(),
        ]);
        report.target(
            &format!("healthy components stopped, {n} devices"),
            "0",
            r.stopped.to_string(),
            r.stopped == 0,
        );
        results.push(json!({
            "devices": n, "start_secs": r.start.as_secs_f64(), "pair_secs": r.pair.as_secs_f64(),
            "fleet_peak_kib": r.fleet_peak_kib, "fleet_base_kib": r.base_kib, "service_peak_kib": r.service_peak_kib, "fds": r.fds, "stopped": r.stopped,
        }));
    }
    report.note("RSS peaks are the highest of samples taken every 100 ms; per device = (fleet peak − RSS before the devices started) / devices");
    report.note("the fleet's runtime has the default call deadline (1 s of CPU time per call); 'stopped' counts components stopped for a trap, a missed deadline or memory");
    report.data("runs", json!(results));
    Ok(report)
}

struct Fleet {
    /// Open file descriptors of the fleet process with every device online.
    fds: usize,
    start: Duration,
    pair: Duration,
    base_kib: u64,
    fleet_peak_kib: u64,
    service_peak_kib: u64,
    /// Components stopped while the fleet paired.
    stopped: u64,
}

/// Open files a device takes: data channel, control socket, MQTT and HTTP connections.
const FDS_PER_DEVICE: usize = 4;

/// The soft limit on open files, from `/proc/self/limits`.
fn open_files_limit() -> Option<usize> {
    std::fs::read_to_string("/proc/self/limits")
        .ok()?
        .lines()
        .find(|l| l.starts_with("Max open files"))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()
}

async fn fleet(n: usize) -> anyhow::Result<Fleet> {
    eprintln!("fleet: {n} devices; seeding");
    let seeded = Seeded::new(n).await?;
    let service = seeded.serve()?;
    let dir = tempfile::tempdir()?;
    let base_kib = Memory::own().rss_kib;
    let watch = PeakWatch::start(vec![std::process::id(), service.pid()]);
    // The default deadline: CPU time, so a call that waits its turn for a core among
    // thousands of device threads is not taken for a runaway.
    let failures_before = tether_host::daemon::component_failures();
    let shared = SharedRuntime::new(RuntimeConfig {
        instance_slots: u32::try_from(n + 4)?,
        ..RuntimeConfig::default()
    })?;

    let started = Instant::now();
    let mut devices = Vec::with_capacity(n);
    for (i, license) in seeded.licenses.iter().enumerate() {
        let config = rig::device_config_for(&dir.path().join(format!("d{i}")), &service, license);
        devices.push(Device::start_with(config, RuntimeSource::Shared(shared.clone())).await?);
        if (i + 1) % 1000 == 0 {
            eprintln!("  … {} devices started", i + 1);
        }
    }
    let start = started.elapsed();

    eprintln!("fleet: pairing {n} devices at once");
    let devices: Vec<std::sync::Arc<Device>> =
        devices.into_iter().map(std::sync::Arc::new).collect();
    let started = Instant::now();
    let mut pairing = tokio::task::JoinSet::new();
    for (i, device) in devices.iter().enumerate() {
        let device = device.clone();
        let token = seeded.token(i).to_owned();
        pairing.spawn(async move {
            device
                .user_cfg(rig::SSID, rig::WIFI_PASSWORD, &token)
                .await
                .map_err(|e| anyhow::anyhow!("user-cfg refused: {}", e.name()))?;
            rig::wait_online(&device, Duration::from_millis(20), Duration::from_secs(300)).await
        });
    }
    let mut online = 0;
    while let Some(joined) = pairing.join_next().await {
        joined??;
        online += 1;
        if online % 1000 == 0 {
            eprintln!(
                "  … {online}/{n} online ({:.1} s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
    let pair = started.elapsed();
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count);
    let peaks = watch.finish();
    for device in devices {
        if let Some(device) = std::sync::Arc::into_inner(device) {
            tokio::task::spawn_blocking(move || device.stop()).await?;
        }
    }
    drop(service);
    Ok(Fleet {
        fds,
        start,
        pair,
        base_kib,
        fleet_peak_kib: peaks.first().copied().unwrap_or(0),
        service_peak_kib: peaks.get(1).copied().unwrap_or(0),
        stopped: tether_host::daemon::component_failures() - failures_before,
    })
}

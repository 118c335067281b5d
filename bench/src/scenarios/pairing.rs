//! `pairing`: `user-cfg` to MQTT online on one real host (simulated radio, no air time)
//! against the real service over loopback HTTP and MQTT, repeated: a local reset between
//! rounds sends the device back to waiting for credentials.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tether_host::daemon::Device;
use tether_host::{RuntimeConfig, RuntimeSource, SharedRuntime};

use crate::Options;
use crate::cloud::Seeded;
use crate::report::Report;
use crate::rig;
use crate::stats::{Samples, show};

/// Pairings per device in one run, under the service's 30 activations a minute.
const PER_DEVICE: usize = 25;

/// The times of repeated pairings.
pub struct Pairings {
    /// `user-cfg` to online, wall clock.
    pub total: Samples,
    /// The device's own timing of each phase.
    pub phases: [(&'static str, Samples); 4],
}

/// Runs the scenario.
pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let rounds: usize = if options.quick { 5 } else { 300 };
    let Pairings { total, phases } = measure(rounds, false).await?;

    let mut report = Report::new("pairing", &["phase", "n", "p50", "p99", "max"]);
    for (name, samples) in &phases {
        report.row(vec![
            format!("{name} (device's own timing, ms resolution)"),
            samples.len().to_string(),
            show(samples.p50()),
            show(samples.p99()),
            show(samples.max()),
        ]);
        report.data(name, samples.json());
    }
    report.row(vec![
        "user-cfg to online (wall clock)".into(),
        total.len().to_string(),
        show(total.p50()),
        show(total.p99()),
        show(total.max()),
    ]);
    report.data("total", total.json());
    report.note("wall clock: from the user-cfg call to the first status poll that reads online (polled every 100 µs)");
    report.target(
        "user-cfg to online p50",
        "<= 5 ms",
        show(total.p50()),
        total.p50() <= Duration::from_millis(5),
    );
    report.data("rounds", json!(rounds));
    Ok(report)
}

/// Pairs `rounds` times against a service of its own (over TLS when `tls`, the devices
/// pinning its CA). The service allows a device 30 activations a minute: rounds go round a
/// few devices (one runtime for all), each paired at most `PER_DEVICE` times.
pub async fn measure(rounds: usize, tls: bool) -> anyhow::Result<Pairings> {
    let seeded = Seeded::new(rounds.div_ceil(PER_DEVICE)).await?;
    let service = seeded.serve_with(tls)?;
    let dir = tempfile::tempdir()?;
    let shared = SharedRuntime::new(RuntimeConfig {
        instance_slots: u32::try_from(seeded.licenses.len() + 4)?,
        ..RuntimeConfig::default()
    })?;
    let mut devices = Vec::new();
    for (i, license) in seeded.licenses.iter().enumerate() {
        let config = rig::device_config_for(&dir.path().join(format!("d{i}")), &service, license);
        let source = RuntimeSource::Shared(shared.clone());
        devices.push(Arc::new(Device::start_with(config, source).await?));
    }

    let mut total = Samples::with_capacity(rounds);
    let mut phases: [(&'static str, Samples); 4] = [
        ("wifi", Samples::default()),
        ("dns", Samples::default()),
        ("activate", Samples::default()),
        ("mqtt", Samples::default()),
    ];
    for round in 0..rounds {
        let i = round % devices.len();
        let device = &devices[i];
        if round >= devices.len() {
            anyhow::ensure!(device.reset().await, "the device did not reset");
        }
        let (took, status) = pair_once(device, seeded.token(i)).await?;
        total.push(took);
        let t = &status.timings;
        for ((_, samples), ms) in
            phases
                .iter_mut()
                .zip([t.wifi_ms, t.dns_ms, t.activate_ms, t.mqtt_ms])
        {
            samples.push(Duration::from_millis(u64::from(ms.unwrap_or(0))));
        }
    }
    for device in devices {
        let device =
            Arc::into_inner(device).ok_or_else(|| anyhow::anyhow!("device still shared"))?;
        tokio::task::spawn_blocking(move || device.stop()).await?;
    }
    drop(service);
    Ok(Pairings { total, phases })
}

/// One pairing: `user-cfg`, then status polls on a blocking thread (finer than the async
/// timer's millisecond) until online.
async fn pair_once(
    device: &Arc<Device>,
    token: &str,
) -> anyhow::Result<(Duration, tether_proto::status::DeviceStatus)> {
    let started = Instant::now();
    device
        .user_cfg(rig::SSID, rig::WIFI_PASSWORD, token)
        .await
        .map_err(|e| anyhow::anyhow!("user-cfg refused: {}", e.name()))?;
    let device = device.clone();
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let deadline = started + Duration::from_secs(10);
        loop {
            let status = handle.block_on(device.status());
            if let Some(s) = status.filter(|s| s.state == tether_proto::status::NetState::Online) {
                return Ok((started.elapsed(), s));
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "not online within 10 s: {:?}",
                handle.block_on(device.status())
            );
            std::thread::sleep(Duration::from_micros(100));
        }
    })
    .await?
}

//! Rotating the service's CA with devices paired: one online throughout, one asleep for
//! the first half of the overlap, one asleep through all of it. The first two learn the
//! new CA through IoT DNS and are back after the previous CA is retired; the third,
//! which never looked up during the overlap, reports `tls_failed`.

use std::path::{Path, PathBuf};

use serde_json::json;
use tether_host::RuntimeConfig;
use tether_host::daemon::Device;
use tether_proto::ErrorCode;
use tether_service::tls::{self, TlsSource};

use crate::device::{Cloud, host_config, pair_online, until};

/// A paired device's config and data dir, so it can sleep (stop) and wake (start).
struct Sleeper {
    dir: tempfile::TempDir,
    config: tether_host::config::HostConfig,
}

impl Sleeper {
    fn new(cloud: &Cloud, license: usize, factory_ca: &Path) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = host_config(cloud, license, dir.path());
        // The CA the factory wrote: the service's CA as it was then.
        config.cloud_ca = Some(factory_ca.to_path_buf());
        Self { dir, config }
    }

    async fn wake(&self) -> Device {
        Device::start(self.config.clone(), RuntimeConfig::default())
            .await
            .expect("the device starts")
    }

    /// How many CAs the host keeps from IoT DNS.
    fn cas(&self) -> usize {
        std::fs::read(self.dir.path().join("endpoints.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["ca"].as_array().map(Vec::len))
            .unwrap_or(0)
    }
}

/// A command and its report: the device is online with the service as it runs now. A
/// command sent while the device is still reconnecting is lost, so it is sent again
/// every second until the report comes (for at most 30 s).
async fn round_trip(cloud: &Cloud, dev_id: &str, n: u32) {
    let point = json!({"5": n});
    for _ in 0..30 {
        cloud.command(dev_id, point.clone()).await;
        for _ in 0..20 {
            if cloud.device(dev_id).await["last_report"] == point {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    panic!("no report {point} from {dev_id}");
}

async fn wait_for_cas(sleeper: &Sleeper, count: usize) {
    crate::support::wait(
        &format!("{count} CAs from IoT DNS"),
        std::time::Duration::from_millis(50),
        || async {
            let cas = sleeper.cas();
            if cas == count { Ok(()) } else { Err(cas) }
        },
    )
    .await;
}

/// Stops the service, changes its CA files with `change`, and starts it again.
async fn restart_with(cloud: &mut Cloud, change: fn(&Path) -> anyhow::Result<()>) {
    cloud.stop().await;
    change(&cloud.data_dir()).expect("the CA files change");
    cloud.restart().await;
    // The test's user takes the new CA, as users of the API would.
    cloud.trust_current_ca();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_ca_reaches_online_and_waking_devices_through_iot_dns() {
    let mut cloud = Cloud::start_with(3, |c| {
        c.tls = TlsSource::LocalCa;
        c.dns_ttl_secs = 2;
    })
    .await;
    let factory = tempfile::tempdir().expect("temp dir");
    let factory_ca: PathBuf = factory.path().join("cloud-ca.pem");
    std::fs::copy(cloud.local_ca().expect("a local CA"), &factory_ca).expect("copied");

    let sleepers: Vec<Sleeper> = (0..3)
        .map(|i| Sleeper::new(&cloud, i, &factory_ca))
        .collect();
    let mut ids = Vec::new();
    let mut devices = Vec::new();
    for sleeper in &sleepers {
        let device = sleeper.wake().await;
        ids.push(pair_online(&cloud, &device).await);
        devices.push(device);
    }
    // Devices 1 and 2 fall asleep.
    let mut asleep = devices.split_off(1);
    for device in asleep.drain(..) {
        device.stop();
    }
    let online = devices.remove(0);

    // The overlap: a new CA, the previous one trusted through the cross certificate.
    restart_with(&mut cloud, tls::rotate_local_ca).await;
    wait_for_cas(&sleepers[0], 2).await;
    round_trip(&cloud, &ids[0], 1).await;
    // Device 1 wakes halfway through and comes back, learning both CAs.
    let woken = sleepers[1].wake().await;
    wait_for_cas(&sleepers[1], 2).await;
    round_trip(&cloud, &ids[1], 2).await;

    // The previous CA retired: the two that looked up during the overlap are back.
    restart_with(&mut cloud, tls::retire_previous_ca).await;
    wait_for_cas(&sleepers[0], 1).await;
    round_trip(&cloud, &ids[0], 3).await;
    round_trip(&cloud, &ids[1], 4).await;
    online.stop();
    woken.stop();

    // Device 2 slept through the whole overlap: it trusts only the retired CA.
    let late = sleepers[2].wake().await;
    let status = until(&late, "tls_failed", |s| {
        s.last_error == Some(ErrorCode::TlsFailed)
    })
    .await;
    assert_ne!(status.state.name(), "online");
    late.stop();
}

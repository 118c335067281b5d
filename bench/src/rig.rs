//! Devices for the scenarios: the real host (`Device`) on the simulated radio with no air
//! time, pointed at a service, and waiting for a device to come online.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;
use tether_host::config::{HostConfig, IdentityConfig, SimAp};
use tether_host::daemon::Device;
use tether_proto::status::{DeviceStatus, NetState};
use tether_service::licenses::License;

/// The simulated router.
pub const SSID: &str = "bench-router";
/// Its password.
pub const WIFI_PASSWORD: &str = "bench-router-pw";

/// The config of a device with `licence`, on data dir `dir`, against the service at `url`.
pub fn device_config(dir: &Path, url: &str, licence: &License) -> HostConfig {
    let identity = IdentityConfig {
        uuid: licence.uuid.clone(),
        authkey: licence.authkey.clone(),
        product_key: licence.product_key.clone(),
    };
    HostConfig::simulated(dir, url, identity, SimAp::instant(SSID, WIFI_PASSWORD))
}

/// Polls the device's status every `every` until it is online; fails on a pairing error or
/// after `within`.
pub async fn wait_online(
    device: &Device,
    every: Duration,
    within: Duration,
) -> anyhow::Result<DeviceStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = device.status().await {
            if status.state == NetState::Online {
                return Ok(status);
            }
            if let Some(error) = &status.last_error
                && status.state == NetState::AwaitingCredentials
            {
                bail!("pairing failed: {error}");
            }
        }
        if Instant::now() > deadline {
            bail!(
                "the device was not online within {within:?} (status {:?})",
                device.status().await
            );
        }
        tokio::time::sleep(every).await;
    }
}

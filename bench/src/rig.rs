//! Devices for the scenarios: the real host (`Device`) on the simulated radio with no air
//! time, pointed at a service, and waiting for a device to come online.

use std::path::Path;
use std::time::Duration;

use anyhow::bail;
use tether_host::config::{HostConfig, IdentityConfig, SimAp};
use tether_host::daemon::Device;
use tether_proto::status::{DeviceStatus, NetState};
use tether_service::licenses::License;
use tether_service::local;

use crate::procs::Server;

/// The simulated router.
pub const SSID: &str = "bench-router";
/// Its password.
pub const WIFI_PASSWORD: &str = "bench-router-pw";

/// The config of a device with `license`, on data dir `dir`, against the service at `url`.
pub fn device_config(dir: &Path, url: &str, license: &License) -> HostConfig {
    let identity = IdentityConfig {
        uuid: license.uuid.clone(),
        authkey: license.authkey.clone(),
        product_key: license.product_key.clone(),
        pairing_verifier: Some(license.pairing_verifier.clone()),
    };
    HostConfig::simulated(dir, url, identity, SimAp::instant(SSID, WIFI_PASSWORD))
}

/// The config of a device with `license` against `service`, trusting its CA (as a
/// factory writes it) when it serves TLS.
pub fn device_config_for(dir: &Path, service: &Server, license: &License) -> HostConfig {
    let mut config = device_config(dir, &service.url(), license);
    config.cloud_ca = service.ca().map(Path::to_path_buf);
    config
}

/// Polls the device's status every `every` until it is online; fails on a pairing error or
/// after `within`.
pub async fn wait_online(
    device: &Device,
    every: Duration,
    within: Duration,
) -> anyhow::Result<DeviceStatus> {
    // Online, or a pairing that failed (which ends the wait too); otherwise the last
    // status seen.
    let seen = local::eventually(within, every, || async {
        match device.status().await {
            Some(status) if status.state == NetState::Online => Ok(Ok(status)),
            Some(status)
                if status.state == NetState::AwaitingCredentials && status.last_error.is_some() =>
            {
                Ok(Err(status.last_error))
            }
            other => Err(other),
        }
    })
    .await;
    match seen {
        Ok(Ok(status)) => Ok(status),
        Ok(Err(error)) => bail!("pairing failed: {error:?}"),
        Err(last) => bail!("the device was not online within {within:?} (status {last:?})"),
    }
}

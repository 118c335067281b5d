//! Wi-Fi backends behind one trait: the simulated radio (`sim`) for tests and demos, and
//! real radios through wpa_supplicant. Operations are async; the device runtime turns
//! their outcomes into events for the component.

pub mod sim;
pub mod wpa;

use async_trait::async_trait;
use tether_proto::ErrorCode;

use crate::runtime::wit::wifi::{AccessPoint, Link, SoftAp};

/// A Wi-Fi radio.
#[async_trait]
pub trait WifiBackend: Send + Sync {
    /// Joins a network (association, then DHCP), dropping any current link.
    async fn connect(&self, ssid: &str, passwd: &str) -> Result<Link, ErrorCode>;
    /// Drops the station link.
    async fn disconnect(&self);
    /// Scans for access points.
    async fn scan(&self) -> Result<Vec<AccessPoint>, ErrorCode>;
    /// Starts the soft access point.
    async fn start_ap(&self, config: SoftAp) -> Result<(), ErrorCode>;
    /// Stops the soft access point.
    async fn stop_ap(&self);
    /// Whether the station has a link, so network requests can get out.
    fn link_up(&self) -> bool;
}

//! The simulated radio: access points from the config, with wrong-password, not-found,
//! DHCP-failure, refusal and delay behaviours. Until an association succeeds the
//! network is unreachable, as on a real device.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tether_proto::ErrorCode;

use super::WifiBackend;
use crate::config::{SimAp, SimBehaviour};
use crate::runtime::wit::wifi::{AccessPoint, Link, Security, SoftAp};

/// How long a simulated DHCP waits before giving up.
const DHCP_TIMEOUT: Duration = Duration::from_millis(50);

/// A simulated radio.
#[derive(Debug)]
pub struct SimWifi {
    aps: Vec<SimAp>,
    up: AtomicBool,
    /// Counts association attempts, so an older attempt cannot mark a newer link up.
    attempt: AtomicU32,
    soft_ap: Mutex<Option<String>>,
}

impl SimWifi {
    /// A radio that sees `aps`.
    pub fn new(aps: Vec<SimAp>) -> Self {
        Self {
            aps,
            up: AtomicBool::new(false),
            attempt: AtomicU32::new(0),
            soft_ap: Mutex::new(None),
        }
    }
}

#[async_trait]
impl WifiBackend for SimWifi {
    async fn connect(&self, ssid: &str, passwd: &str) -> Result<Link, ErrorCode> {
        let attempt = self.attempt.fetch_add(1, Ordering::SeqCst) + 1;
        self.up.store(false, Ordering::SeqCst);
        let ap = self
            .aps
            .iter()
            .find(|ap| ap.ssid == ssid)
            .ok_or(ErrorCode::ApNotFound)?;
        if ap.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(ap.delay_ms)).await;
        }
        if ap.behaviour == SimBehaviour::Refuse {
            return Err(ErrorCode::CantConnectAp);
        }
        if ap.passwd.expose() != passwd {
            return Err(ErrorCode::PasswdError);
        }
        if ap.behaviour == SimBehaviour::DhcpFailure {
            tokio::time::sleep(DHCP_TIMEOUT).await;
            return Err(ErrorCode::DhcpFailed);
        }
        if self.attempt.load(Ordering::SeqCst) == attempt {
            self.up.store(true, Ordering::SeqCst);
        }
        Ok(Link {
            ssid: ssid.to_owned(),
            bssid: bssid(&ap.ssid),
            ip: "192.168.1.23".into(),
            gateway: Some("192.168.1.1".into()),
            rssi: ap.rssi,
        })
    }

    async fn disconnect(&self) {
        self.attempt.fetch_add(1, Ordering::SeqCst);
        self.up.store(false, Ordering::SeqCst);
    }

    async fn scan(&self) -> Result<Vec<AccessPoint>, ErrorCode> {
        Ok(self
            .aps
            .iter()
            .map(|ap| AccessPoint {
                ssid: ap.ssid.clone(),
                bssid: bssid(&ap.ssid),
                rssi: ap.rssi,
                channel: 6,
                security: if ap.passwd.expose().is_empty() {
                    Security::Open
                } else {
                    Security::Wpa2Psk
                },
            })
            .collect())
    }

    async fn start_ap(&self, config: SoftAp) -> Result<(), ErrorCode> {
        *self.soft_ap.lock().unwrap_or_else(|p| p.into_inner()) = Some(config.ssid);
        Ok(())
    }

    async fn stop_ap(&self) {
        *self.soft_ap.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn link_up(&self) -> bool {
        self.up.load(Ordering::SeqCst)
    }
}

/// A stable, locally administered hardware address per SSID.
fn bssid(ssid: &str) -> String {
    let h = ssid
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    let b = h.to_be_bytes();
    format!("02:00:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3])
}

#[cfg(test)]
mod tests {
    use tether_proto::Secret;

    use super::*;

    fn ap(ssid: &str, passwd: &str, behaviour: SimBehaviour) -> SimAp {
        SimAp {
            ssid: ssid.into(),
            passwd: Secret::new(passwd),
            behaviour,
            delay_ms: 0,
            rssi: -40,
        }
    }

    #[tokio::test]
    async fn each_behaviour_gives_its_outcome_and_only_success_brings_the_link_up() {
        let wifi = SimWifi::new(vec![
            ap("home", "correct horse", SimBehaviour::Normal),
            ap("dhcp", "12345678", SimBehaviour::DhcpFailure),
            ap("picky", "12345678", SimBehaviour::Refuse),
        ]);
        assert_eq!(
            wifi.connect("nowhere", "x").await.map(|_| ()),
            Err(ErrorCode::ApNotFound)
        );
        assert_eq!(
            wifi.connect("home", "wrong").await.map(|_| ()),
            Err(ErrorCode::PasswdError)
        );
        assert_eq!(
            wifi.connect("dhcp", "12345678").await.map(|_| ()),
            Err(ErrorCode::DhcpFailed)
        );
        assert_eq!(
            wifi.connect("picky", "12345678").await.map(|_| ()),
            Err(ErrorCode::CantConnectAp)
        );
        assert!(!wifi.link_up());
        let link = wifi.connect("home", "correct horse").await.expect("joins");
        assert_eq!(link.ssid, "home");
        assert!(wifi.link_up());
        wifi.disconnect().await;
        assert!(!wifi.link_up());
        assert_eq!(wifi.scan().await.expect("scans").len(), 3);
    }
}

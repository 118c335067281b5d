//! The `wpa_supplicant` backend: its control interface (unix datagram sockets, one for
//! requests and one `ATTACH`ed for events). Joining a network is `ADD_NETWORK`,
//! `SET_NETWORK`, `SELECT_NETWORK`, then waiting for `CTRL-EVENT-CONNECTED` (or a
//! wrong-key, not-found or reject event), then for the board's DHCP client to give the
//! interface an address (`STATUS` shows `ip_address`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tether_proto::ErrorCode;
use tokio::net::UnixDatagram;
use tokio::sync::{Mutex, broadcast};

use super::WifiBackend;
use crate::runtime::wit::wifi::{AccessPoint, Link, Security, SoftAp};

/// How long one request may wait for its reply.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long association may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the DHCP client may take after association.
const DHCP_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a scan may take.
const SCAN_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest datagram read.
const MAX_REPLY: usize = 16 * 1024;

/// A radio managed by wpa_supplicant.
#[derive(Debug)]
pub struct WpaSupplicant {
    requests: Mutex<UnixDatagram>,
    events: broadcast::Sender<String>,
    up: AtomicBool,
    local: Vec<PathBuf>,
    dhcp_timeout: Duration,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// How every host's client sockets are named: this prefix, the pid, a counter, a role.
const LOCAL_PREFIX: &str = "tether-wpa-";

/// The prefix of this process's client sockets.
fn own_prefix() -> String {
    format!("{LOCAL_PREFIX}{}-", std::process::id())
}

fn local_path(dir: &Path, role: &str) -> PathBuf {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    dir.join(format!("{}{n}-{role}", own_prefix()))
}

/// Removes client sockets that earlier processes left in `dir`: a host killed or aborted
/// (the board build aborts on panic) never ran its drop, and the supervisor restarts it
/// with another pid, so without this every crash would leave two sockets behind.
fn sweep_stale(dir: &Path) {
    let ours = own_prefix();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(LOCAL_PREFIX) && !name.starts_with(&ours) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

impl WpaSupplicant {
    /// Connects to the control socket at `ctrl` (such as `/var/run/wpa_supplicant/wlan0`),
    /// binding the client sockets in `local_dir`.
    pub async fn open(ctrl: &Path, local_dir: &Path) -> anyhow::Result<Self> {
        Self::open_with(ctrl, local_dir, DHCP_TIMEOUT).await
    }

    async fn open_with(
        ctrl: &Path,
        local_dir: &Path,
        dhcp_timeout: Duration,
    ) -> anyhow::Result<Self> {
        use anyhow::Context;
        sweep_stale(local_dir);
        let (req_path, ev_path) = (local_path(local_dir, "req"), local_path(local_dir, "ev"));
        let requests = UnixDatagram::bind(&req_path)
            .with_context(|| format!("failed to bind {}", req_path.display()))?;
        requests
            .connect(ctrl)
            .with_context(|| format!("cannot reach wpa_supplicant at {}", ctrl.display()))?;
        let monitor = UnixDatagram::bind(&ev_path)
            .with_context(|| format!("failed to bind {}", ev_path.display()))?;
        monitor.connect(ctrl)?;
        monitor.send(b"ATTACH").await?;
        let mut buf = vec![0u8; MAX_REPLY];
        let n = tokio::time::timeout(REQUEST_TIMEOUT, monitor.recv(&mut buf))
            .await
            .context("wpa_supplicant did not answer ATTACH")??;
        anyhow::ensure!(buf[..n].starts_with(b"OK"), "wpa_supplicant refused ATTACH");
        let (events, _) = broadcast::channel(64);
        let sender = events.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; MAX_REPLY];
            while let Ok(n) = monitor.recv(&mut buf).await {
                let text = String::from_utf8_lossy(&buf[..n]);
                // Unsolicited events start with a priority, such as "<3>".
                let event = text
                    .split_once('>')
                    .filter(|_| text.starts_with('<'))
                    .map_or(&*text, |(_, e)| e);
                let _ = sender.send(event.trim_end().to_owned());
            }
        });
        Ok(Self {
            requests: Mutex::new(requests),
            events,
            up: AtomicBool::new(false),
            local: vec![req_path, ev_path],
            dhcp_timeout,
        })
    }

    async fn request(&self, command: &str) -> Result<String, ErrorCode> {
        let socket = self.requests.lock().await;
        socket
            .send(command.as_bytes())
            .await
            .map_err(|_| ErrorCode::Internal)?;
        let mut buf = vec![0u8; MAX_REPLY];
        let n = tokio::time::timeout(REQUEST_TIMEOUT, socket.recv(&mut buf))
            .await
            .map_err(|_| ErrorCode::Timeout)?
            .map_err(|_| ErrorCode::Internal)?;
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    async fn ok(&self, command: &str) -> Result<(), ErrorCode> {
        let reply = self.request(command).await?;
        if reply.trim_end() == "OK" {
            Ok(())
        } else {
            tracing::warn!(
                command = command.split(' ').take(3).collect::<Vec<_>>().join(" "),
                reply = reply.trim_end(),
                "wpa_supplicant refused"
            );
            Err(ErrorCode::Internal)
        }
    }

    async fn status(&self) -> Result<Vec<(String, String)>, ErrorCode> {
        let reply = self.request("STATUS").await?;
        Ok(reply
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect())
    }

    async fn associate(&self, events: &mut broadcast::Receiver<String>) -> Result<(), ErrorCode> {
        let wait = async {
            loop {
                let Ok(event) = events.recv().await else {
                    return Err(ErrorCode::Internal);
                };
                if event.starts_with("CTRL-EVENT-CONNECTED") {
                    return Ok(());
                }
                if event.starts_with("CTRL-EVENT-SSID-TEMP-DISABLED")
                    && event.contains("reason=WRONG_KEY")
                {
                    return Err(ErrorCode::PasswdError);
                }
                if event.starts_with("CTRL-EVENT-NETWORK-NOT-FOUND") {
                    return Err(ErrorCode::ApNotFound);
                }
                if event.starts_with("CTRL-EVENT-ASSOC-REJECT")
                    || event.starts_with("CTRL-EVENT-AUTH-REJECT")
                {
                    return Err(ErrorCode::CantConnectAp);
                }
            }
        };
        tokio::time::timeout(CONNECT_TIMEOUT, wait)
            .await
            .map_err(|_| ErrorCode::Timeout)?
    }
}

impl Drop for WpaSupplicant {
    fn drop(&mut self) {
        for path in &self.local {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The `SET_NETWORK … psk` value: 64 hex digits raw, a passphrase quoted.
fn psk_value(passwd: &str) -> String {
    if passwd.len() == 64 && passwd.bytes().all(|b| b.is_ascii_hexdigit()) {
        passwd.to_owned()
    } else {
        format!("\"{passwd}\"")
    }
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

#[async_trait]
impl WifiBackend for WpaSupplicant {
    async fn connect(&self, ssid: &str, passwd: &str) -> Result<Link, ErrorCode> {
        self.up.store(false, Ordering::SeqCst);
        let mut events = self.events.subscribe();
        self.ok("REMOVE_NETWORK all").await?;
        let id: u32 = self
            .request("ADD_NETWORK")
            .await?
            .trim()
            .parse()
            .map_err(|_| ErrorCode::Internal)?;
        self.ok(&format!("SET_NETWORK {id} ssid {}", hex(ssid)))
            .await?;
        if passwd.is_empty() {
            self.ok(&format!("SET_NETWORK {id} key_mgmt NONE")).await?;
        } else {
            self.ok(&format!("SET_NETWORK {id} psk {}", psk_value(passwd)))
                .await?;
        }
        self.ok(&format!("SELECT_NETWORK {id}")).await?;
        self.associate(&mut events).await?;
        // Associated; now the board's DHCP client must give the interface an address.
        let deadline = tokio::time::Instant::now() + self.dhcp_timeout;
        loop {
            let status = self.status().await?;
            let field = |k: &str| {
                status
                    .iter()
                    .find(|(key, _)| key == k)
                    .map(|(_, v)| v.clone())
            };
            if let Some(ip) = field("ip_address") {
                self.up.store(true, Ordering::SeqCst);
                return Ok(Link {
                    ssid: ssid.to_owned(),
                    bssid: field("bssid").unwrap_or_default(),
                    ip,
                    gateway: None,
                    rssi: 0,
                });
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ErrorCode::DhcpFailed);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn disconnect(&self) {
        self.up.store(false, Ordering::SeqCst);
        let _ = self.ok("DISCONNECT").await;
    }

    async fn scan(&self) -> Result<Vec<AccessPoint>, ErrorCode> {
        let mut events = self.events.subscribe();
        // FAIL-BUSY means a scan is already running; its results will do.
        let reply = self.request("SCAN").await?;
        if !reply.starts_with("OK") && !reply.starts_with("FAIL-BUSY") {
            return Err(ErrorCode::Internal);
        }
        let done = async {
            while let Ok(event) = events.recv().await {
                if event.starts_with("CTRL-EVENT-SCAN-RESULTS") {
                    return;
                }
            }
        };
        tokio::time::timeout(SCAN_TIMEOUT, done)
            .await
            .map_err(|_| ErrorCode::Timeout)?;
        let results = self.request("SCAN_RESULTS").await?;
        Ok(results.lines().skip(1).filter_map(parse_scan_row).collect())
    }

    async fn start_ap(&self, _config: SoftAp) -> Result<(), ErrorCode> {
        // On boards the soft AP belongs to hostapd, set up with the board's image.
        tracing::warn!(
            "the wpa_supplicant backend does not run the soft AP; configure hostapd on the board"
        );
        Err(ErrorCode::Internal)
    }

    async fn stop_ap(&self) {}

    fn link_up(&self) -> bool {
        self.up.load(Ordering::SeqCst)
    }
}

/// `bssid \t frequency \t signal level \t flags \t ssid`.
fn parse_scan_row(row: &str) -> Option<AccessPoint> {
    let mut cols = row.split('\t');
    let (bssid, freq, signal, flags) = (cols.next()?, cols.next()?, cols.next()?, cols.next()?);
    let ssid = cols.next().unwrap_or_default();
    let freq: u32 = freq.parse().ok()?;
    let channel = match freq {
        2412..=2472 => (freq - 2407) / 5,
        2484 => 14,
        5000..=5900 => (freq - 5000) / 5,
        _ => 0,
    };
    let security = if flags.contains("EAP") {
        Security::Enterprise
    } else if flags.contains("SAE") {
        Security::Wpa3Sae
    } else if flags.contains("WPA2-PSK") || flags.contains("RSN-PSK") {
        Security::Wpa2Psk
    } else if flags.contains("WPA-PSK") {
        Security::WpaPsk
    } else if flags.contains("WEP") {
        Security::Wep
    } else {
        Security::Open
    };
    Some(AccessPoint {
        ssid: ssid.to_owned(),
        bssid: bssid.to_owned(),
        rssi: signal.parse().ok()?,
        channel: u8::try_from(channel).unwrap_or(0),
        security,
    })
}

#[cfg(test)]
mod tests;

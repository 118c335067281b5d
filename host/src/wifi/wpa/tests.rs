//! The backend against a scripted peer that answers as wpa_supplicant does.

use std::collections::HashMap;
use std::os::unix::net::SocketAddr as UnixAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tether_proto::ErrorCode;
use tokio::net::UnixDatagram;

use super::*;

/// A fake wpa_supplicant: networks by SSID with their passphrase, and whether the
/// board's DHCP client gets an address on them.
fn spawn_peer(ctrl: &Path, networks: HashMap<&'static str, (&'static str, bool)>) {
    let socket = UnixDatagram::bind(ctrl).expect("peer binds");
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        let mut monitor: Option<PathBuf> = None;
        let (mut ssid, mut psk, mut connected) = (String::new(), String::new(), false);
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let from: UnixAddr = from.into();
            let reply_to = from
                .as_pathname()
                .expect("client sockets have paths")
                .to_path_buf();
            let cmd = String::from_utf8_lossy(&buf[..n]).into_owned();
            let mut event = None;
            let reply = if cmd == "ATTACH" {
                monitor = Some(reply_to.clone());
                "OK\n".to_owned()
            } else if cmd == "ADD_NETWORK" {
                "0\n".to_owned()
            } else if let Some(hex) = cmd.strip_prefix("SET_NETWORK 0 ssid ") {
                let bytes: Vec<u8> = (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
                    .collect();
                ssid = String::from_utf8(bytes).expect("utf-8");
                "OK\n".to_owned()
            } else if let Some(value) = cmd.strip_prefix("SET_NETWORK 0 psk ") {
                psk = value.trim_matches('"').to_owned();
                "OK\n".to_owned()
            } else if cmd == "SELECT_NETWORK 0" {
                event = Some(match networks.get(ssid.as_str()) {
                    None => "<3>CTRL-EVENT-NETWORK-NOT-FOUND".to_owned(),
                    Some((pass, _)) if *pass != psk => format!(
                        "<3>CTRL-EVENT-SSID-TEMP-DISABLED id=0 ssid=\"{ssid}\" auth_failures=1 duration=10 reason=WRONG_KEY"
                    ),
                    Some(_) => {
                        connected = true;
                        "<3>CTRL-EVENT-CONNECTED - Connection to 02:00:00:00:00:01 completed [id=0 id_str=]".to_owned()
                    }
                });
                "OK\n".to_owned()
            } else if cmd == "STATUS" {
                let dhcp = networks.get(ssid.as_str()).is_some_and(|(_, d)| *d);
                if connected && dhcp {
                    format!(
                        "bssid=02:00:00:00:00:01\nssid={ssid}\nwpa_state=COMPLETED\nip_address=192.168.1.50\n"
                    )
                } else {
                    "wpa_state=SCANNING\n".to_owned()
                }
            } else if cmd == "SCAN" {
                event = Some("<2>CTRL-EVENT-SCAN-RESULTS ".to_owned());
                "OK\n".to_owned()
            } else if cmd == "SCAN_RESULTS" {
                "bssid / frequency / signal level / flags / ssid\n02:00:00:00:00:01\t2437\t-42\t[WPA2-PSK-CCMP][ESS]\thome\n02:00:00:00:00:02\t5180\t-70\t[ESS]\tcafe\n".to_owned()
            } else if cmd == "REMOVE_NETWORK all"
                || cmd.starts_with("SET_NETWORK 0 key_mgmt")
                || cmd == "DISCONNECT"
            {
                connected = false;
                "OK\n".to_owned()
            } else {
                "UNKNOWN COMMAND\n".to_owned()
            };
            let _ = socket.send_to(reply.as_bytes(), &reply_to).await;
            if let (Some(event), Some(monitor)) = (event, &monitor) {
                tokio::time::sleep(Duration::from_millis(5)).await;
                let _ = socket.send_to(event.as_bytes(), monitor).await;
            }
        }
    });
}

async fn backend(dir: &Path) -> WpaSupplicant {
    let ctrl = dir.join("wlan0");
    spawn_peer(
        &ctrl,
        HashMap::from([
            ("home", ("correct horse", true)),
            ("no-dhcp", ("12345678", false)),
        ]),
    );
    WpaSupplicant::open_with(&ctrl, dir, Duration::from_millis(300))
        .await
        .expect("attaches")
}

#[tokio::test]
async fn joining_a_network_gives_a_link_once_dhcp_answers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let wpa = backend(dir.path()).await;
    let link = wpa.connect("home", "correct horse").await.expect("joins");
    assert_eq!(
        (link.ssid.as_str(), link.ip.as_str(), link.bssid.as_str()),
        ("home", "192.168.1.50", "02:00:00:00:00:01")
    );
    assert!(wpa.link_up());
    wpa.disconnect().await;
    assert!(!wpa.link_up());
}

#[tokio::test]
async fn client_sockets_left_by_a_crashed_process_are_swept_and_others_kept() {
    let dir = tempfile::tempdir().expect("temp dir");
    let stale = [
        dir.path().join("tether-wpa-1-0-req"),
        dir.path().join("tether-wpa-1-1-ev"),
    ];
    for path in &stale {
        std::os::unix::net::UnixDatagram::bind(path).expect("a stale socket");
    }
    let unrelated = dir.path().join("binding.json");
    std::fs::write(&unrelated, "{}").expect("written");
    let wpa = backend(dir.path()).await;
    for path in &stale {
        assert!(!path.exists(), "{} left behind", path.display());
    }
    assert!(unrelated.exists(), "only client sockets are swept");
    let ours = std::fs::read_dir(dir.path())
        .expect("listed")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("tether-wpa-"))
        .count();
    assert_eq!(ours, 2, "this process's two sockets");
    drop(wpa);
}

#[tokio::test]
async fn failures_are_typed_from_wpa_supplicant_events() {
    let dir = tempfile::tempdir().expect("temp dir");
    let wpa = backend(dir.path()).await;
    assert_eq!(
        wpa.connect("home", "wrong password").await.map(|_| ()),
        Err(ErrorCode::PasswdError)
    );
    assert_eq!(
        wpa.connect("nowhere", "12345678").await.map(|_| ()),
        Err(ErrorCode::ApNotFound)
    );
    assert_eq!(
        wpa.connect("no-dhcp", "12345678").await.map(|_| ()),
        Err(ErrorCode::DhcpFailed)
    );
    assert!(!wpa.link_up());
}

#[tokio::test]
async fn scans_parse_wpa_supplicant_results() {
    let dir = tempfile::tempdir().expect("temp dir");
    let wpa = backend(dir.path()).await;
    let aps = wpa.scan().await.expect("scans");
    assert_eq!(aps.len(), 2);
    assert_eq!(
        (aps[0].ssid.as_str(), aps[0].channel, aps[0].rssi),
        ("home", 6, -42)
    );
    assert!(matches!(aps[0].security, Security::Wpa2Psk));
    assert_eq!((aps[1].ssid.as_str(), aps[1].channel), ("cafe", 36));
    assert!(matches!(aps[1].security, Security::Open));
}

#[tokio::test]
async fn an_unreachable_control_socket_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let err = WpaSupplicant::open(&dir.path().join("missing"), dir.path())
        .await
        .expect_err("no peer");
    assert!(
        format!("{err:#}").contains("cannot reach wpa_supplicant"),
        "{err:#}"
    );
}

#[test]
fn passphrases_are_quoted_and_raw_keys_are_not() {
    assert_eq!(psk_value("correct horse"), "\"correct horse\"");
    let raw = "ab".repeat(32);
    assert_eq!(psk_value(&raw), raw);
    assert_eq!(hex("home"), "686f6d65");
}

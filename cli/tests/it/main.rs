//! The `tether` binary as a user runs it, against the real service on free ports and a
//! real device host with simulated Wi-Fi.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use tether_host::RuntimeConfig;
use tether_host::config::{HostConfig, IdentityConfig, SimAp};
use tether_host::daemon::Device;
use tether_service::ServeConfig;
use tether_service::local::{self, Account, LocalCloud};
use tether_service::users::Role;

/// The product of the test license.
const PRODUCT: &str = "p0123456789abcde";

const BIN: &str = env!("CARGO_BIN_EXE_tether");

mod secure;

struct World {
    _cloud_dir: tempfile::TempDir,
    _cloud: LocalCloud,
    _device_dir: tempfile::TempDir,
    home: tempfile::TempDir,
    server: String,
    device: Device,
    /// The setup code on the device's label.
    setup_code: String,
    /// The payload of the label's QR code.
    qr: String,
}

impl World {
    async fn new() -> Self {
        Self::with(|_| {}).await
    }

    /// A world whose device config `edit` changed.
    async fn with(edit: impl FnOnce(&mut HostConfig)) -> Self {
        let cloud_dir = tempfile::tempdir().expect("temp dir");
        let ann = Account {
            name: "ann",
            password: "ann-passw0rd",
            role: Role::User,
        };
        let license = local::seed(cloud_dir.path(), None, &[ann], PRODUCT, 1)
            .await
            .expect("seeded")
            .licenses
            .remove(0);
        let cloud = LocalCloud::start(ServeConfig::ephemeral(cloud_dir.path()))
            .await
            .expect("service starts");
        let server = cloud.api_url();
        let device_dir = tempfile::tempdir().expect("temp dir");
        let setup_code = license.setup_code.expose().to_owned();
        let qr = license.qr.expose().to_owned();
        let identity = IdentityConfig {
            uuid: license.uuid,
            authkey: license.authkey,
            product_key: PRODUCT.into(),
            pairing_verifier: Some(license.pairing_verifier),
        };
        let ap = SimAp::instant("home", "correct horse");
        let mut config = HostConfig::simulated(device_dir.path(), &server, identity, ap);
        config
            .wifi
            .sim
            .ap
            .push(SimAp::instant("office", "office password"));
        edit(&mut config);
        let device = Device::start(config, RuntimeConfig::default())
            .await
            .expect("device starts");
        Self {
            _cloud_dir: cloud_dir,
            _cloud: cloud,
            _device_dir: device_dir,
            home: tempfile::tempdir().expect("temp dir"),
            server,
            device,
            setup_code,
            qr,
        }
    }

    /// Runs `tether` with the user's environment; returns (exit code, stdout, stderr).
    fn tether(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(BIN)
            .args(args)
            .env("TETHER_SERVER", &self.server)
            .env("TETHER_USER", "ann")
            .env("TETHER_PASSWORD", "ann-passw0rd")
            .env("XDG_CONFIG_HOME", self.home.path())
            .output()
            .expect("tether runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn json(&self, args: &[&str]) -> Value {
        let (code, out, err) = self.tether(args);
        assert_eq!(code, 0, "{args:?}: {out}{err}");
        serde_json::from_str(out.trim())
            .unwrap_or_else(|_| panic!("{args:?} printed no JSON: {out}"))
    }

    /// `tether provision` at this world's device and router, with `args` after.
    fn provision(&self, args: &[&str]) -> (i32, String, String) {
        self.provision_at(&self.channel(), args)
    }

    /// Like [`World::provision`], through the channel at `device` (a relay, say).
    fn provision_at(&self, device: &str, args: &[&str]) -> (i32, String, String) {
        let mut all = vec![
            "provision",
            "--device",
            device,
            "--setup-code",
            &self.setup_code,
            "--ssid",
            "home",
        ];
        all.extend_from_slice(args);
        self.tether(&all)
    }

    /// Like [`World::provision`], for a run that succeeds and prints JSON.
    fn provision_json(&self, args: &[&str]) -> Value {
        let (code, out, err) = self.provision(args);
        assert_eq!(code, 0, "{args:?}: {out}{err}");
        serde_json::from_str(out.trim())
            .unwrap_or_else(|_| panic!("{args:?} printed no JSON: {out}"))
    }

    /// `tether scan` of this world's device with `code`, with `args` after.
    fn scan(&self, code: &str, args: &[&str]) -> (i32, String, String) {
        let channel = self.channel();
        let mut all = vec!["scan", "--device", &channel, "--setup-code", code];
        all.extend_from_slice(args);
        self.tether(&all)
    }

    /// `tether scan --plaintext` of this world's device.
    fn scan_plaintext(&self) -> (i32, String, String) {
        self.tether(&["scan", "--device", &self.channel(), "--plaintext"])
    }

    fn channel(&self) -> String {
        self.device.channel_addr().to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_brings_the_device_online_and_send_gets_the_report_back() {
    let w = World::new().await;
    let (code, out, _) = w.tether(&["login"]);
    assert_eq!(code, 0);
    assert!(out.contains("logged in"));
    let done = w.provision_json(&["--password", "correct horse", "--json"]);
    let dev_id = done["dev_id"].as_str().expect("dev_id").to_owned();
    assert!(done["timings"]["mqtt_ms"].is_u64(), "{done}");

    let devices = w.json(&["devices", "--json"]);
    assert_eq!(devices[0]["dev_id"], dev_id.as_str());
    let (code, _, err) = w.tether(&["send", &dev_id, r#"{"1":true}"#]);
    assert_eq!(code, 0, "{err}");
    let every = Duration::from_millis(100);
    let reported = local::eventually(Duration::from_secs(20), every, || async {
        let device = w.json(&["device", &dev_id, "--json"]);
        if device["last_report"] == serde_json::json!({"1": true}) {
            Ok(())
        } else {
            Err(device)
        }
    })
    .await;
    if let Err(device) = reported {
        panic!("no report: {device}");
    }
    let (code, out, _) = w.tether(&["unbind", &dev_id]);
    assert_eq!(
        (code, out.trim()),
        (0, format!("unbound {dev_id}").as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_ends_with_passwd_error_and_its_exit_code_then_the_right_one_succeeds() {
    let w = World::new().await;
    let (code, _, err) = w.provision(&["--password", "wrong password"]);
    assert_eq!(code, 7, "{err}");
    assert!(err.contains("passwd_error"), "{err}");
    let (code, out, err) = w.provision(&["--password", "correct horse"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("online as d"), "{out}");
    assert!(err.contains("… online"), "phases are shown: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_errors_have_their_commands_and_exit_codes() {
    let w = World::new().await;
    let created = w.json(&["token", "create", "--max-devices", "3", "--json"]);
    let token = created["token"].as_str().expect("token");
    assert_eq!(created["max_devices"], 3);
    let status = w.json(&["token", "status", token, "--json"]);
    assert_eq!(status["state"], "pending");
    let (code, ..) = w.tether(&["token", "revoke", token]);
    assert_eq!(code, 0);
    assert_eq!(
        w.json(&["token", "status", token, "--json"])["state"],
        "revoked"
    );

    let (code, _, err) = w.tether(&["send", "dnope", "not json"]);
    assert_eq!(code, 10, "{err}");
    let (code, _, err) = w.tether(&["device", "dnope"]);
    assert_eq!(code, 5, "{err}");
    let (code, _, err) = w.provision(&["--password", "correct horse", "--token", "EUaaaaaaaaAAAA"]);
    assert_eq!(code, 6, "a token the cloud does not know: {err}");
    let (code, _, err) = w.provision(&["--password-file", "/nonexistent/wifi-password"]);
    assert_eq!(code, 10, "an unreadable password file: {err}");
    assert!(err.contains("/nonexistent/wifi-password"), "{err}");

    let out = Command::new(BIN)
        .args(["devices"])
        .env("TETHER_SERVER", &w.server)
        .env("XDG_CONFIG_HOME", tempfile::tempdir().expect("dir").path())
        .env_remove("TETHER_USER")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(4), "not logged in");
    let out = Command::new(BIN)
        .args(["devices", "--server", "http://127.0.0.1:9"])
        .env("XDG_CONFIG_HOME", w.home.path())
        .env("TETHER_USER", "ann")
        .env("TETHER_PASSWORD", "x")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(3), "server down");
    let help = Command::new(BIN).arg("--help").output().expect("runs");
    assert!(String::from_utf8_lossy(&help.stdout).contains("7 Wi-Fi failure"));
}

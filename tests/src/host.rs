//! A device: `tether-host run` with a simulated radio (one router, [`SSID`]), its data
//! channel on a free port, and `tether-host ctl` to read its status.

use std::path::PathBuf;
use std::process::{Child, Command};

use serde_json::Value;
use tether_host::config::{HostConfig, IdentityConfig, SimAp};
use tether_proto::Secret;

use crate::process::{Output, spawn_logged, terminate};
use crate::{Cloud, License, PRODUCT_KEY, SSID, WIFI_PASSWORD, bins, eventually, read_log};

/// A running (or stopped) `tether-host run`.
#[derive(Debug)]
pub struct DeviceHost {
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// The data channel address of the current process.
    pub channel: String,
}

impl DeviceHost {
    /// Writes the config for `license` and starts the host.
    pub fn start(cloud: &Cloud, license: &License) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let identity = IdentityConfig {
            uuid: license.uuid.clone(),
            authkey: Secret::new(&license.authkey),
            product_key: PRODUCT_KEY.into(),
        };
        let ap = SimAp::instant(SSID, WIFI_PASSWORD);
        let config = HostConfig::simulated(&dir.path().join("data"), &cloud.url, identity, ap);
        let text = config.to_toml().expect("a config writes as TOML");
        std::fs::write(dir.path().join("host.toml"), text).expect("config written");
        let mut host = Self {
            dir,
            child: None,
            channel: String::new(),
        };
        host.spawn();
        host
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts the process and waits for the line naming its data channel.
    fn spawn(&mut self) {
        let out = self.path("host.out");
        let _ = std::fs::remove_file(&out);
        let mut command = Command::new(&bins().host);
        command
            .args(["run", "--config"])
            .arg(self.path("host.toml"))
            .env("RUST_LOG", "debug");
        let mut child = spawn_logged(command, &out, &self.path("host.log"));
        self.channel = eventually(
            "the device host starting",
            || {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("the host exited ({status}):\n{}", self.logs());
                }
                read_log(&out)
                    .lines()
                    .find_map(|l| l.strip_prefix("device running; data channel on "))
                    .map(str::to_owned)
            },
            || self.logs(),
        );
        self.child = Some(child);
    }

    /// The process id of the running host.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the host with SIGTERM (as a board's init does) and starts it again.
    pub fn restart(&mut self) {
        let code = self.stop();
        assert_eq!(code, Some(0), "the host stops cleanly on SIGTERM");
        self.spawn();
    }

    /// Stops the host with SIGTERM; returns its exit code.
    pub fn stop(&mut self) -> Option<i32> {
        self.child
            .take()
            .and_then(|mut child| terminate(&mut child))
    }

    /// `tether-host ctl status --json`.
    pub fn status(&self) -> Option<Value> {
        let mut command = Command::new(&bins().host);
        command
            .args(["ctl", "--config"])
            .arg(self.path("host.toml"))
            .args(["status", "--json"]);
        let out = Output::of(command, None);
        (out.code == 0)
            .then(|| serde_json::from_str(out.stdout.trim()).ok())
            .flatten()
    }

    /// Waits until the status satisfies `check`.
    pub fn wait_for(&self, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        eventually(
            what,
            || self.status().filter(|s| check(s)),
            || format!("status {:?}\nlog:\n{}", self.status(), self.logs()),
        )
    }

    /// Everything the host logged so far.
    pub fn logs(&self) -> String {
        read_log(&self.path("host.log"))
    }
}

impl Drop for DeviceHost {
    fn drop(&mut self) {
        self.stop();
    }
}

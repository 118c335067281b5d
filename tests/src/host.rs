//! A device: `tether-host run` as a process, with its configuration file (by default a
//! simulated radio with one router, [`SSID`], and the data channel on a free port), its
//! logs, and `tether-host ctl` to read its status. The end-to-end tests and the host's
//! own process tests both use it.

use std::path::PathBuf;
use std::process::{Child, Command};

use serde_json::Value;
use tether_host::config::{HostConfig, IdentityConfig, SimAp};
use tether_proto::Secret;

use crate::process::{Output, spawn_logged, terminate};
use crate::{Cloud, License, PRODUCT_KEY, SSID, WIFI_PASSWORD, bin, eventually, read_log};

/// A running (or stopped) `tether-host run`.
#[derive(Debug)]
pub struct DeviceHost {
    dir: tempfile::TempDir,
    child: Option<Child>,
    socket: PathBuf,
    /// The data channel address of the current process.
    pub channel: String,
    /// The setup code on the device's label, when the host was started from a license.
    pub setup_code: Option<String>,
    /// How to run the host: `None` for the workspace's own build, or a command line that
    /// ends in a host binary (a board's build under its emulator, say).
    runner: Option<Vec<std::ffi::OsString>>,
}

impl DeviceHost {
    /// Writes the config for `license` and starts the host.
    pub fn start(cloud: &Cloud, license: &License) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = Self::config(cloud, license, dir.path());
        let mut host = Self::start_in(dir, &config, None);
        host.setup_code = Some(license.setup_code.clone());
        host
    }

    /// Starts a host that runs with `config`.
    pub fn start_with(config: &HostConfig) -> Self {
        Self::start_in(tempfile::tempdir().expect("temp dir"), config, None)
    }

    /// Starts another build of the host with `config` for `license`: `runner` is the
    /// command line up to and including the binary (such as `qemu-arm-static -L SYSROOT
    /// PATH`); `tether-host run --config FILE` follows it.
    pub fn start_under(
        runner: Vec<std::ffi::OsString>,
        config: &HostConfig,
        license: &License,
    ) -> Self {
        let mut host = Self::start_in(tempfile::tempdir().expect("temp dir"), config, Some(runner));
        host.setup_code = Some(license.setup_code.clone());
        host
    }

    /// The config a device with `license` starts with against `cloud` (a simulated
    /// radio with [`SSID`], the cloud's CA), its data dir under `dir`.
    pub fn config(cloud: &Cloud, license: &License, dir: &std::path::Path) -> HostConfig {
        let identity = IdentityConfig {
            uuid: license.uuid.clone(),
            authkey: Secret::new(&license.authkey),
            product_key: PRODUCT_KEY.into(),
            pairing_verifier: Some(license.pairing_verifier.clone()),
        };
        let ap = SimAp::instant(SSID, WIFI_PASSWORD);
        let mut config = HostConfig::simulated(&dir.join("data"), &cloud.url, identity, ap);
        // The CA a factory writes into the device's config.
        config.cloud_ca = cloud.ca();
        config
    }

    fn start_in(
        dir: tempfile::TempDir,
        config: &HostConfig,
        runner: Option<Vec<std::ffi::OsString>>,
    ) -> Self {
        let text = config.to_toml().expect("a config writes as TOML");
        std::fs::write(dir.path().join("host.toml"), text).expect("config written");
        let mut host = Self {
            dir,
            child: None,
            socket: config.ctl.socket.clone(),
            channel: String::new(),
            setup_code: None,
            runner,
        };
        host.spawn();
        host
    }

    /// The control socket, for clients of the C API.
    pub fn socket(&self) -> &std::path::Path {
        &self.socket
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts the process (again) and waits for the line naming its data channel.
    pub fn spawn(&mut self) {
        let out = self.path("host.out");
        let _ = std::fs::remove_file(&out);
        let mut command = match &self.runner {
            Some(line) => {
                let mut command = Command::new(&line[0]);
                command.args(&line[1..]);
                command
            }
            None => Command::new(bin("tether-host")),
        };
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

    /// Kills the host with SIGKILL, as a power cut would, and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL");
            child.wait().expect("reaped");
        }
    }

    /// Stops the host with SIGTERM; returns its exit code.
    pub fn stop(&mut self) -> Option<i32> {
        self.child
            .take()
            .and_then(|mut child| terminate(&mut child))
    }

    /// `tether-host ctl ARGS` against this host.
    pub fn ctl(&self, args: &[&str]) -> Output {
        let mut command = Command::new(bin("tether-host"));
        command
            .args(["ctl", "--config"])
            .arg(self.path("host.toml"))
            .args(args);
        Output::of(command, None)
    }

    /// `tether-host ctl status --json`.
    pub fn status(&self) -> Option<Value> {
        let out = self.ctl(&["status", "--json"]);
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

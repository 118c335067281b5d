//! A Debian container booted with systemd as PID 1, on the host's network (so the device
//! inside reaches the cloud on loopback and the provisioner reaches its data channel),
//! removed when dropped.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use tether_e2e::{Output, eventually};
use tether_host::config::HostConfig;

use crate::CONFIG;

/// A running container.
pub struct Container {
    name: String,
}

fn docker(args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = Command::new("docker");
    command.args(args);
    Output::of(command, stdin)
}

impl Container {
    /// Starts `image` with systemd and waits until it has booted. systemd needs to mount
    /// (CAP_SYS_ADMIN) and the cgroup tree; the rest of `--privileged` is not needed.
    pub fn boot(image: &str) -> Self {
        let name = format!("tether-deb-{}", std::process::id());
        let _ = docker(&["rm", "-f", &name], None);
        docker(
            &[
                "run",
                "-d",
                "--name",
                &name,
                "--network",
                "host",
                "--cap-add",
                "SYS_ADMIN",
                "--security-opt",
                "seccomp=unconfined",
                "--security-opt",
                "apparmor=unconfined",
                "--tmpfs",
                "/run",
                "--tmpfs",
                "/run/lock",
                "--cgroupns",
                "host",
                "-v",
                "/sys/fs/cgroup:/sys/fs/cgroup:rw",
                image,
                "/sbin/init",
            ],
            None,
        )
        .success();
        let container = Self { name };
        // "degraded" is fine: a container has units that cannot start (no devices).
        eventually(
            "systemd booted",
            || {
                let state = container.exec("systemctl is-system-running", None).stdout;
                matches!(state.trim(), "running" | "degraded").then_some(())
            },
            || {
                let out = container.exec("systemctl --failed --no-pager", None);
                format!("{}{}", out.stdout, out.stderr)
            },
        );
        container
    }

    fn exec(&self, script: &str, stdin: Option<&str>) -> Output {
        docker(&["exec", "-i", &self.name, "sh", "-c", script], stdin)
    }

    /// Runs `script` with `sh -c` inside, asserts it succeeded, returns its output.
    #[track_caller]
    pub fn sh(&self, script: &str) -> String {
        let out = self.exec(script, None);
        assert_eq!(
            out.code, 0,
            "`{script}` failed:\n{}{}",
            out.stdout, out.stderr
        );
        out.stdout
    }

    /// Copies the file `from` here to `to` inside.
    pub fn copy_in(&self, from: &Path, to: &str) {
        let from = from.to_str().expect("a UTF-8 path");
        docker(&["cp", from, &format!("{}:{to}", self.name)], None).success();
    }

    /// Writes the device's config where the unit reads it, as a factory does.
    pub fn write_config(&self, config: &HostConfig) {
        self.write_config_text(&config.to_toml().expect("a config writes as TOML"));
    }

    /// Writes `text` as the config, readable by root and the group tether only.
    pub fn write_config_text(&self, text: &str) {
        let out = self.exec(
            &format!(
                "umask 027 && cat > {CONFIG} && \
                 chgrp tether {CONFIG} && chmod 640 {CONFIG}"
            ),
            Some(text),
        );
        assert_eq!(out.code, 0, "{}", out.stderr);
    }

    /// A property of the tether-host unit (`systemctl show`).
    pub fn unit(&self, property: &str) -> String {
        self.sh(&format!("systemctl show -p {property} --value tether-host"))
            .trim()
            .to_owned()
    }

    /// What the unit logged (the journal).
    pub fn journal(&self) -> String {
        self.exec("journalctl -u tether-host --no-pager -o cat", None)
            .stdout
    }

    /// Waits until the unit has logged `text`.
    pub fn wait_for_log(&self, text: &str) {
        eventually(
            text,
            || self.journal().contains(text).then_some(()),
            || self.journal(),
        );
    }

    /// The data channel's address, from the log line of the host running now.
    pub fn channel(&self) -> String {
        eventually(
            "the data channel in the log",
            || {
                let pid = self.unit("MainPID");
                let journal = self
                    .exec(&format!("journalctl _PID={pid} --no-pager -o cat"), None)
                    .stdout;
                let line = journal
                    .lines()
                    .find(|l| l.contains("device running channel="))?;
                let addr = line.split("channel=").nth(1)?.split_whitespace().next()?;
                Some(addr.to_owned())
            },
            || self.journal(),
        )
    }

    /// `tether-host ctl status --json` inside, as root (`Null` while it cannot answer).
    pub fn status(&self) -> Value {
        let out = self.exec(
            &format!("tether-host ctl --config {CONFIG} status --json"),
            None,
        );
        serde_json::from_str(out.stdout.trim()).unwrap_or(Value::Null)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.name], None);
    }
}

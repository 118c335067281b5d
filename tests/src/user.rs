//! A user at a terminal: an account on the cloud and the `tether` CLI with its own
//! config dir (where `tether login` keeps the session).

use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::process::Output;
use crate::{Cloud, bin};

/// One account and its `tether` config dir.
#[derive(Debug)]
pub struct User {
    home: tempfile::TempDir,
    server: String,
    ca: Option<std::path::PathBuf>,
    /// Account name.
    pub name: String,
    password: String,
}

impl User {
    /// Creates the account on `cloud` and logs in with `tether login`.
    pub fn new(cloud: &Cloud, name: &str) -> Self {
        Self::with_role(cloud, name, false)
    }

    /// Creates an admin account on `cloud` and logs in.
    pub fn admin(cloud: &Cloud, name: &str) -> Self {
        Self::with_role(cloud, name, true)
    }

    fn with_role(cloud: &Cloud, name: &str, admin: bool) -> Self {
        let password = format!("{name}-passw0rd-e2e");
        cloud.add_user(name, &password, admin);
        let user = Self {
            home: tempfile::tempdir().expect("temp dir"),
            server: cloud.url.clone(),
            ca: cloud.ca(),
            name: name.to_owned(),
            password,
        };
        let out = user.tether(&["login"]).success();
        assert!(out.stdout.contains("logged in"), "{}", out.stdout);
        user
    }

    /// The account's password (for checking that logs never show it).
    pub fn password(&self) -> &str {
        &self.password
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(bin("tether"));
        command
            .args(args)
            .env("TETHER_SERVER", &self.server)
            .env("TETHER_USER", &self.name)
            .env("TETHER_PASSWORD", &self.password)
            .env("XDG_CONFIG_HOME", self.home.path());
        if let Some(ca) = &self.ca {
            command.env("TETHER_CA", ca);
        }
        command
    }

    /// Runs `tether ARGS` to the end.
    pub fn tether(&self, args: &[&str]) -> Output {
        Output::of(self.command(args), None)
    }

    /// Runs `tether ARGS --json`, which must succeed, and parses its output.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        self.tether(&args).json()
    }

    /// Starts `tether ARGS` without waiting; finish it with [`Output::wait`].
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tether starts")
    }

    /// `tether provision` of `host` with its setup code and `password` (passed in a
    /// file, as a user should), plus any extra arguments.
    pub fn provision(&self, host: &crate::DeviceHost, password: &str, extra: &[&str]) -> Output {
        let code = host
            .setup_code
            .as_deref()
            .expect("a host with a setup code");
        self.provision_at(&host.channel, code, password, extra)
    }

    /// `tether provision` of the device whose data channel is at `channel` and whose
    /// label carries `code`, as [`User::provision`] does.
    pub fn provision_at(
        &self,
        channel: &str,
        code: &str,
        password: &str,
        extra: &[&str],
    ) -> Output {
        let file = self.home.path().join("wifi-password");
        std::fs::write(&file, format!("{password}\n")).expect("password file written");
        let file = file.to_str().expect("a UTF-8 path").to_owned();
        let mut args = vec![
            "provision",
            "--device",
            channel,
            "--setup-code",
            code,
            "--ssid",
            crate::SSID,
            "--password-file",
            &file,
        ];
        args.extend_from_slice(extra);
        self.tether(&args)
    }
}

//! The cloud: `tether-service serve` on free ports with its own data dir, and its admin
//! commands (`user add`, `license issue`) run against that data dir while it serves.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command};

use serde_json::Value;

use crate::process::{Output, spawn_logged, terminate};
use crate::{PRODUCT_KEY, bin, eventually, read_log};

/// A device identity from `tether-service license issue`.
#[derive(Debug, Clone)]
pub struct License {
    /// The license uuid.
    pub uuid: String,
    /// Its authkey.
    pub authkey: String,
    /// The setup code on its label.
    pub setup_code: String,
    /// What the device keeps of the code.
    pub pairing_verifier: String,
}

/// A running `tether-service serve`.
#[derive(Debug)]
pub struct Cloud {
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// The API base URL.
    pub url: String,
}

impl Cloud {
    /// Starts the service as it starts by default, on TLS from a local CA in its data
    /// dir, and waits until it listens.
    pub fn start() -> Self {
        Self::start_in(tempfile::tempdir().expect("temp dir"), &[])
    }

    /// Starts the service (on TLS) with extra `serve` arguments, such as `--module-key`.
    pub fn start_with(args: &[&str]) -> Self {
        Self::start_in(tempfile::tempdir().expect("temp dir"), args)
    }

    /// Starts the service with `--plain`: HTTP and MQTT without TLS.
    pub fn start_plain() -> Self {
        Self::start_in(tempfile::tempdir().expect("temp dir"), &["--plain"])
    }

    /// Starts the service with an admin account `name` made at start from a
    /// `--bootstrap-admin-file` (mode 0600), as an operator deploys it.
    pub fn start_with_admin(name: &str, password: &str) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("admin.secret");
        std::fs::write(&file, format!("{name}:{password}\n")).expect("admin file written");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
            .expect("admin file mode");
        let file = file.to_str().expect("a UTF-8 temp path").to_owned();
        Self::start_in(dir, &["--bootstrap-admin-file", &file])
    }

    fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> Self {
        let mut command = Command::new(bin("tether-service"));
        command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--mqtt-listen",
                "127.0.0.1:0",
            ])
            .args(["--log-format", "json", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(extra)
            .env("RUST_LOG", "debug");
        let log = dir.path().join("service.log");
        let mut child = spawn_logged(command, &dir.path().join("service.out"), &log);
        let url = eventually(
            "the service listening",
            || {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("the service exited ({status}):\n{}", read_log(&log));
                }
                read_log(&log).lines().find_map(|line| {
                    let line: Value = serde_json::from_str(line).ok()?;
                    line["fields"]["public_http"].as_str().map(str::to_owned)
                })
            },
            || read_log(&log),
        );
        Self {
            dir,
            child: Some(child),
            url,
        }
    }

    /// Runs a `tether-service` admin command on this service's data dir.
    pub fn admin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut command = Command::new(bin("tether-service"));
        command.args(args).arg("--data-dir").arg(self.data_dir());
        Output::of(command, stdin)
    }

    /// Creates an account; with `admin`, one with the admin role.
    pub fn add_user(&self, name: &str, password: &str, admin: bool) {
        let args: &[&str] = if admin {
            &["user", "add", "--admin", name]
        } else {
            &["user", "add", name]
        };
        self.admin(args, Some(&format!("{password}\n"))).success();
    }

    /// Issues `count` licenses for [`PRODUCT_KEY`].
    pub fn licenses(&self, count: usize) -> Vec<License> {
        let count = count.to_string();
        let out = self
            .admin(
                &[
                    "license",
                    "issue",
                    "--product-key",
                    PRODUCT_KEY,
                    "--count",
                    &count,
                ],
                None,
            )
            .success();
        out.stdout
            .lines()
            .map(|line| {
                let v: Value = serde_json::from_str(line).expect("one JSON license per line");
                License {
                    uuid: v["uuid"].as_str().expect("uuid").to_owned(),
                    authkey: v["authkey"].as_str().expect("authkey").to_owned(),
                    setup_code: v["setup_code"].as_str().expect("setup code").to_owned(),
                    pairing_verifier: v["pairing_verifier"]
                        .as_str()
                        .expect("pairing verifier")
                        .to_owned(),
                }
            })
            .collect()
    }

    /// A sample from `GET /metrics`, such as `tether_activations_total{result="ok"}`
    /// (0 when absent).
    pub fn metric(&self, sample: &str) -> u64 {
        self.get("/metrics")
            .lines()
            .find_map(|line| line.strip_prefix(sample)?.trim().parse().ok())
            .unwrap_or(0)
    }

    /// The whole HTTP/1.0 answer to `GET path`, over TLS when the service serves it.
    pub fn get(&self, path: &str) -> String {
        let addr = self.addr();
        let stream = TcpStream::connect(addr).expect("the service accepts connections");
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        let mut answer = String::new();
        match self.ca() {
            None => exchange(stream, &request, &mut answer),
            Some(ca) => {
                let config = tether_service::tls::client_trusting(&ca).expect("the CA loads");
                let name = addr.ip().into();
                let client = rustls::ClientConnection::new(config, name).expect("a TLS client");
                exchange(
                    rustls::StreamOwned::new(client, stream),
                    &request,
                    &mut answer,
                );
            }
        }
        answer
    }

    /// The API's socket address.
    pub fn addr(&self) -> std::net::SocketAddr {
        let rest = self
            .url
            .split_once("://")
            .map_or(self.url.as_str(), |(_, r)| r);
        rest.parse().expect("the API URL names an address")
    }

    /// The broker's socket address, as the service logged it.
    pub fn mqtt_addr(&self) -> std::net::SocketAddr {
        self.logs()
            .lines()
            .find_map(|line| {
                let line: Value = serde_json::from_str(line).ok()?;
                line["fields"]["mqtt"].as_str()?.parse().ok()
            })
            .expect("the service logged its broker's address")
    }

    /// The local CA devices and clients must trust, when the service serves TLS.
    pub fn ca(&self) -> Option<PathBuf> {
        self.url
            .starts_with("https://")
            .then(|| tether_service::tls::local_ca_file(&self.data_dir()))
    }

    /// A client of the API that trusts the service's CA.
    pub fn http_client(&self) -> reqwest::Client {
        crate::api_client(self.ca().as_deref())
    }

    /// The service's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The service's resident memory now and at its peak, in KiB (`VmRSS`, `VmHWM`).
    pub fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the service runs");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| {
                    l.strip_prefix(name)?
                        .trim()
                        .strip_suffix("kB")?
                        .trim()
                        .parse()
                        .ok()
                })
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// The service's data dir.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Everything the service logged so far.
    pub fn logs(&self) -> String {
        read_log(&self.dir.path().join("service.log"))
    }

    /// Stops the service with SIGTERM and returns its exit code.
    pub fn stop(&mut self) -> Option<i32> {
        self.child
            .take()
            .and_then(|mut child| terminate(&mut child))
    }
}

impl Drop for Cloud {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Writes `request` and reads the answer to the end (the server closes after HTTP/1.0).
fn exchange(mut stream: impl Read + Write, request: &str, answer: &mut String) {
    stream.write_all(request.as_bytes()).expect("request sent");
    // A TLS peer that closes without close_notify ends the read with an error after the
    // whole answer; what was read is kept.
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    answer.push_str(&String::from_utf8_lossy(&bytes));
}

//! Servers under test run as child processes of the bench (this same executable, started
//! as `tether-bench serve …`), so that their memory can be read on their own and they
//! run on a runtime of their own, as they would in production. Also reads the resident
//! memory of a process.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A server started by [`Server::start`]. It stops when this is dropped: its stdin
/// closes, which it takes as the signal to shut down.
#[derive(Debug)]
pub struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Its HTTP address.
    pub http: SocketAddr,
    /// Its MQTT address (a service's).
    pub mqtt: Option<SocketAddr>,
    /// The CA to trust when it serves TLS.
    ca: Option<PathBuf>,
}

/// Which server to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A bare axum handler answering "hello".
    Hello,
    /// The Tether service on the data dir given, plain HTTP and MQTT.
    Service,
    /// The same over HTTPS and MQTTS, with a local CA in the data dir.
    ServiceTls,
}

impl Server {
    /// Starts the server and waits for its `ready` line.
    pub fn start(kind: Kind, data_dir: &Path) -> anyhow::Result<Self> {
        Self::start_on(kind, data_dir, None)
    }

    /// Starts the server with its registry on the PostgreSQL `database` when given.
    pub fn start_on(
        kind: Kind,
        data_dir: &Path,
        database: Option<&tether_proto::Secret>,
    ) -> anyhow::Result<Self> {
        let env: Vec<(&str, String)> = database
            .map(|url| (crate::serve::DATABASE_ENV, url.expose().to_owned()))
            .into_iter()
            .collect();
        Self::start_with(kind, data_dir, &env)
    }

    /// Starts the server with `env` set (see `serve.rs` for what it reads).
    pub fn start_with(kind: Kind, data_dir: &Path, env: &[(&str, String)]) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find the bench executable")?;
        // TETHER_BENCH_SERVER_WRAPPER runs the server under a profiler, such as
        // `heaptrack` (where a session's memory goes) or `perf record -g`.
        let wrapper = std::env::var("TETHER_BENCH_SERVER_WRAPPER").unwrap_or_default();
        let mut words = wrapper.split_whitespace();
        let mut command = match words.next() {
            Some(tool) => {
                let mut command = Command::new(tool);
                command.args(words).arg(exe);
                command
            }
            None => Command::new(exe),
        };
        command.arg("serve");
        match kind {
            Kind::Hello => command.arg("hello"),
            Kind::Service => command.arg("service"),
            Kind::ServiceTls => command.arg("service-tls"),
        };
        command
            .arg("--data")
            .arg(data_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        command.envs(env.iter().map(|(k, v)| (k, v)));
        let mut child = command.spawn().context("cannot start a server process")?;
        let stdout = child.stdout.take().context("no stdout")?;
        // Its `ready` line; a wrapper may print lines of its own first.
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        while !line.starts_with("ready ") {
            line.clear();
            if reader
                .read_line(&mut line)
                .context("the server process said nothing")?
                == 0
            {
                break;
            }
        }
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .and_then(|a| a.parse::<SocketAddr>().ok())
        };
        let Some(http) = field("http=") else {
            let _ = child.kill();
            bail!("the server process did not start: {line:?}");
        };
        let ca = (kind == Kind::ServiceTls).then(|| tether_service::tls::local_ca_file(data_dir));
        Ok(Self {
            stdin: child.stdin.take(),
            http,
            mqtt: field("mqtt="),
            ca,
            child,
        })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        let scheme = if self.ca.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.http)
    }

    /// The CA its TLS is verified with (none when it serves plain).
    pub fn ca(&self) -> Option<&Path> {
        self.ca.as_deref()
    }

    /// An HTTP client of its API (trusting its CA when it serves TLS).
    pub fn client(&self) -> anyhow::Result<reqwest::Client> {
        let mut builder = reqwest::Client::builder();
        if let Some(ca) = &self.ca {
            let pem = std::fs::read(ca).with_context(|| format!("cannot read {}", ca.display()))?;
            builder = builder
                .tls_built_in_root_certs(false)
                .add_root_certificate(reqwest::Certificate::from_pem(&pem)?);
        }
        Ok(builder.build()?)
    }

    /// A TLS client configuration trusting its CA, for MQTT clients (none when plain).
    pub fn mqtt_tls(&self) -> anyhow::Result<Option<std::sync::Arc<rustls::ClientConfig>>> {
        self.ca
            .as_deref()
            .map(tether_service::tls::client_trusting)
            .transpose()
    }

    /// Kills it at once (SIGKILL), as a machine that dies would.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Its resident memory now and its peak, in KiB.
    pub fn memory(&self) -> Memory {
        Memory::of(self.child.id())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Resident memory of a process, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    /// VmRSS in KiB.
    pub rss_kib: u64,
    /// VmHWM (peak resident) in KiB.
    pub peak_kib: u64,
    /// RssAnon (heap, stacks, anonymous mappings) in KiB.
    pub anon_kib: u64,
    /// RssFile (pages of the binary and other files) in KiB.
    pub file_kib: u64,
}

impl Memory {
    /// Reads the memory of process `pid` (zeros if it cannot be read).
    pub fn of(pid: u32) -> Self {
        Self::parse(&std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default())
    }

    /// This process's memory.
    pub fn own() -> Self {
        Self::of(std::process::id())
    }

    fn parse(status: &str) -> Self {
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        Self {
            rss_kib: field("VmRSS:"),
            peak_kib: field("VmHWM:"),
            anon_kib: field("RssAnon:"),
            file_kib: field("RssFile:"),
        }
    }

    /// The RSS gained since `before`, per one of `items` (KiB).
    pub fn rss_growth_per(self, before: Self, items: usize) -> f64 {
        self.rss_kib.saturating_sub(before.rss_kib) as f64 / items.max(1) as f64
    }

    /// RSS in MiB.
    pub fn rss_mib(self) -> f64 {
        self.rss_kib as f64 / 1024.0
    }
}

/// Keeps the highest RSS seen of some processes, sampling every 100 ms until dropped.
#[derive(Debug)]
pub struct PeakWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<u64>>>,
}

impl PeakWatch {
    /// Starts sampling `pids`.
    pub fn start(pids: Vec<u32>) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peaks = vec![0u64; pids.len()];
            loop {
                for (peak, pid) in peaks.iter_mut().zip(&pids) {
                    *peak = (*peak).max(Memory::of(*pid).rss_kib);
                }
                if flag.load(std::sync::atomic::Ordering::Relaxed) {
                    return peaks;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops and returns each process's highest RSS in KiB.
    pub fn finish(mut self) -> Vec<u64> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_read_from_proc_status() {
        let m = Memory::parse(
            "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\nRssAnon:\t 1000 kB\nRssFile:\t 24 kB\n",
        );
        assert_eq!(m.rss_kib, 1024);
        assert_eq!(m.peak_kib, 2048);
        assert_eq!((m.anon_kib, m.file_kib), (1000, 24));
        assert!(Memory::own().rss_kib > 0);
    }
}

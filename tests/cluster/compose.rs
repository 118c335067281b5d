//! compose.yaml's `cluster` profile under a project of its own: up in order (PostgreSQL,
//! node1, which makes the keys and the local CA, then nodes 2 and 3, then the balancer),
//! the admin commands run in a node's image, faults (`docker kill -s KILL`, restarts),
//! and everything taken down, volumes included, when dropped.

use std::process::Command;
use std::time::{Duration, Instant};

use tether_e2e::Output;
use tether_e2e::deploy::root;

/// The project name, so the containers and volumes never meet the container test's.
const PROJECT: &str = "tether-cluster";

/// A running cluster.
pub struct Cluster {
    password: String,
    /// The balancer's HTTPS port on the host's loopback.
    pub https_port: u16,
    /// Its MQTTS port.
    pub mqtts_port: u16,
}

impl Cluster {
    /// Brings the profile up and waits until the nodes are healthy and the balancer
    /// listens.
    pub fn up() -> Self {
        let password = tether_proto::random::string(tether_proto::random::ALPHANUMERIC, 24)
            .expect("random source");
        let mut cluster = Self {
            password,
            https_port: 0,
            mqtts_port: 0,
        };
        // What an interrupted earlier run left behind goes first.
        cluster.down();
        cluster
            .compose(&["up", "-d", "postgres", "node1"])
            .success();
        cluster.wait_healthy("node1", Duration::from_secs(120));
        cluster
            .compose(&["up", "-d", "node2", "node3", "lb"])
            .success();
        for node in ["node2", "node3"] {
            cluster.wait_healthy(node, Duration::from_secs(120));
        }
        cluster.https_port = cluster.port("8080");
        cluster.mqtts_port = cluster.port("1883");
        cluster
    }

    /// Runs `docker-compose` with the profile and the database password.
    pub fn compose(&self, args: &[&str]) -> Output {
        self.compose_with_stdin(args, None)
    }

    fn compose_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut command = Command::new("docker-compose");
        command
            .current_dir(root())
            .args(["-p", PROJECT, "-f", "compose.yaml", "--profile", "cluster"])
            .args(args)
            .env("TETHER_CLUSTER_DB_PASSWORD", &self.password);
        Output::of(command, stdin)
    }

    /// Runs a `tether-service` command in node1's image, on the shared data volume and
    /// database.
    pub fn admin(&self, args: &[&str], stdin: Option<&str>) -> String {
        let mut all = vec!["run", "--rm", "-T", "--no-deps", "node1"];
        all.extend_from_slice(args);
        self.compose_with_stdin(&all, stdin).success().stdout
    }

    /// The container of `service`.
    pub fn container(&self, service: &str) -> String {
        self.compose(&["ps", "-q", service])
            .success()
            .stdout
            .trim()
            .to_owned()
    }

    /// Kills `service` at once (SIGKILL): no goodbye to anyone.
    pub fn kill(&self, service: &str) {
        docker(&["kill", "-s", "KILL", &self.container(service)]).success();
    }

    /// Starts a stopped `service` again.
    pub fn start(&self, service: &str) {
        self.compose(&["start", service]).success();
    }

    /// Whether `service`'s health check passes now.
    pub fn healthy(&self, service: &str) -> bool {
        let id = self.container(service);
        !id.is_empty()
            && docker(&["inspect", "-f", "{{.State.Health.Status}}", &id])
                .stdout
                .trim()
                == "healthy"
    }

    /// Whether node `service` answers /readyz with 200 now (its own health check, run
    /// in its container).
    pub fn ready(&self, service: &str) -> bool {
        let id = self.container(service);
        let probe = [
            "exec",
            id.as_str(),
            "/tether-service",
            "healthcheck",
            "--addr",
            "127.0.0.1:8080",
        ];
        docker(&probe).code == 0
    }

    /// Waits until `service` is healthy; fails with its logs after `limit`.
    pub fn wait_healthy(&self, service: &str, limit: Duration) -> Duration {
        let since = Instant::now();
        while !self.healthy(service) {
            assert!(
                since.elapsed() < limit,
                "{service} not healthy within {limit:?}:\n{}",
                self.logs(service)
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        since.elapsed()
    }

    /// The last lines `service` logged.
    pub fn logs(&self, service: &str) -> String {
        self.compose(&["logs", "--no-color", "--tail", "60", service])
            .stdout
    }

    /// The host port the balancer's `port` is published on.
    fn port(&self, port: &str) -> u16 {
        let out = self.compose(&["port", "lb", port]).success().stdout;
        out.trim()
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or_else(|| panic!("no published port for lb:{port}: {out:?}"))
    }

    fn down(&self) {
        let _ = self.compose(&["down", "-v", "--remove-orphans"]);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for service in ["node1", "node2", "node3", "lb", "postgres"] {
                eprintln!("--- {service} ---\n{}", self.logs(service));
            }
        }
        self.down();
    }
}

/// Runs `docker` with `args`.
fn docker(args: &[&str]) -> Output {
    let mut command = Command::new("docker");
    command.args(args);
    Output::of(command, None)
}

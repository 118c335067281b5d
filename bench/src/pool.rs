//! Device pools: MQTT devices held by child processes of the bench (`tether-bench devices`,
//! this same executable), so that more sessions than one process may open files for can
//! be held at once. The parent hands a pool its devices as one JSON line on stdin and
//! reads `up I` on its stdout each time device I holds a subscribed session; the pool
//! disconnects its devices and exits when its stdin closes.
//!
//! A pool's device I connects to node I mod N of the addresses given and, once it loses
//! its session, to another node after a backoff like the pairing component's (from
//! [`RECONNECT_AFTER`], doubling up to a minute, each delay drawn from its upper half), as
//! a device of a cluster would: a dead node's devices spread evenly over the others.

use std::io::{BufRead, BufReader, Write as _};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rumqttc::{AsyncClient, Event, MqttOptions, NetworkOptions, Packet, QoS};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::{Semaphore, mpsc};

/// How long a device waits before it first tries another node (at most; the delay is
/// drawn from [half, whole] of it, and doubles with each failed try up to a minute).
pub const RECONNECT_AFTER: Duration = Duration::from_secs(1);
const RECONNECT_CAP: Duration = Duration::from_secs(60);
/// Devices a pool holds at most: each is a socket, and a process may open only so many
/// files (20 000 on the machines this runs on, a limit even root cannot raise).
pub const PER_POOL: usize = 10_000;

/// One device of a pool.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Device {
    /// Its index in the whole run (the node it starts on is this mod the node count).
    pub index: usize,
    pub client_id: String,
    pub username: String,
    pub password: String,
    /// The topic it subscribes to.
    pub inbound: String,
}

/// What a pool is handed on stdin.
#[derive(Debug, Serialize, Deserialize)]
struct Spec {
    nodes: Vec<SocketAddr>,
    /// Connection attempts in flight at once.
    concurrency: usize,
    devices: Vec<Device>,
}

/// A device session came up: (device index, when the parent heard of it).
pub type Up = mpsc::UnboundedReceiver<(usize, Instant)>;

/// The parent's side: pools of at most [`PER_POOL`] devices, all reporting on one channel.
#[derive(Debug)]
pub struct Pools {
    children: Vec<(Child, Option<ChildStdin>)>,
}

impl Pools {
    /// Starts enough pools for `devices` on `nodes`, with `concurrency` connection
    /// attempts in flight in all.
    pub fn start(
        nodes: &[SocketAddr],
        devices: Vec<Device>,
        concurrency: usize,
    ) -> anyhow::Result<(Self, Up)> {
        let (tx, rx) = mpsc::unbounded_channel();
        let count = devices.len().div_ceil(PER_POOL).max(1);
        let mut children = Vec::with_capacity(count);
        let exe = std::env::current_exe().context("cannot find the bench executable")?;
        for chunk in devices.chunks(PER_POOL) {
            let mut child = Command::new(&exe)
                .arg("devices")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .context("cannot start a device pool")?;
            let mut stdin = child.stdin.take().context("no stdin")?;
            let spec = Spec {
                nodes: nodes.to_vec(),
                concurrency: (concurrency / count).max(1),
                devices: chunk.to_vec(),
            };
            serde_json::to_writer(&mut stdin, &spec).context("cannot write a pool's devices")?;
            stdin.write_all(b"\n")?;
            stdin.flush()?;
            let stdout = child.stdout.take().context("no stdout")?;
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { return };
                    let index = line.strip_prefix("up ").and_then(|i| i.parse().ok());
                    if let Some(index) = index
                        && tx.send((index, Instant::now())).is_err()
                    {
                        return;
                    }
                }
            });
            children.push((child, Some(stdin)));
        }
        Ok((Self { children }, rx))
    }

    /// Processes holding devices.
    pub fn len(&self) -> usize {
        self.children.len()
    }
}

impl Drop for Pools {
    fn drop(&mut self) {
        for (_, stdin) in &mut self.children {
            drop(stdin.take());
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for (child, _) in &mut self.children {
            while Instant::now() < deadline && !matches!(child.try_wait(), Ok(Some(_))) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The child's side: reads its spec, holds its devices, and reports each subscribed
/// session until stdin closes.
pub async fn serve() -> anyhow::Result<()> {
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
    let mut line = String::new();
    stdin
        .read_line(&mut line)
        .await
        .context("cannot read the pool's devices")?;
    let spec: Spec = serde_json::from_str(&line).context("a pool's devices are not valid")?;
    raise_open_files(spec.devices.len() as u64 + 1024)?;
    let nodes = Arc::new(spec.nodes);
    let gate = Arc::new(Semaphore::new(spec.concurrency));
    let (up_tx, mut up_rx) = mpsc::unbounded_channel();
    let clients: Vec<AsyncClient> = spec
        .devices
        .into_iter()
        .map(|d| device(d, nodes.clone(), gate.clone(), up_tx.clone()))
        .collect();
    drop(up_tx);
    let report = tokio::spawn(async move {
        let mut out = tokio::io::stdout();
        while let Some(index) = up_rx.recv().await {
            let line = format!("up {index}\n");
            if out.write_all(line.as_bytes()).await.is_err() || out.flush().await.is_err() {
                return;
            }
        }
    });
    // The parent closes stdin to stop the pool.
    let mut rest = Vec::new();
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut stdin, &mut rest).await;
    for client in &clients {
        let _ = client.try_disconnect();
    }
    report.abort();
    Ok(())
}

/// A device's client: on node `index mod N`, and on another node a second after it loses
/// its own. Reports every subscribed session on `up`.
fn device(
    d: Device,
    nodes: Arc<Vec<SocketAddr>>,
    gate: Arc<Semaphore>,
    up: mpsc::UnboundedSender<usize>,
) -> AsyncClient {
    let Device {
        index,
        client_id,
        username,
        password,
        inbound,
    } = d;
    let count = nodes.len();
    let options = move |node: usize| {
        let addr = nodes[node % nodes.len()];
        let mut mqtt = MqttOptions::new(&client_id, addr.ip().to_string(), addr.port());
        mqtt.set_credentials(&username, &password);
        mqtt.set_keep_alive(Duration::from_secs(60));
        mqtt
    };
    let (client, mut events) = AsyncClient::new(options(index), 8);
    let sender = client.clone();
    let mut node = index;
    // The devices of one node step to different others.
    let step = 1 + (index / count) % (count - 1).max(1);
    // Kept by the event loop across reconnections.
    let mut network = NetworkOptions::new();
    network.set_tcp_nodelay(true);
    events.set_network_options(network);
    tokio::spawn(async move {
        let mut permit = gate.acquire_owned().await.ok();
        let mut backoff = Backoff::new(index as u64);
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    permit.take();
                    let _ = sender.subscribe(&inbound, QoS::AtLeastOnce).await;
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    backoff.attempt = 0;
                    if up.send(index).is_err() {
                        return;
                    }
                }
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => return,
                Ok(_) => {}
                Err(_) => {
                    tokio::time::sleep(backoff.next()).await;
                    node += step;
                    events.mqtt_options = options(node);
                }
            }
        }
    });
    client
}

/// A device's reconnect delays: doubling from [`RECONNECT_AFTER`] up to
/// [`RECONNECT_CAP`], each drawn from the upper half of its span, as the pairing
/// component's MQTT backoff is.
struct Backoff {
    attempt: u32,
    state: u64,
}

impl Backoff {
    fn new(seed: u64) -> Self {
        Self {
            attempt: 0,
            state: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
        }
    }

    fn next(&mut self) -> Duration {
        let span = RECONNECT_AFTER
            .saturating_mul(1 << self.attempt.min(16))
            .min(RECONNECT_CAP);
        self.attempt += 1;
        // xorshift64: cheap, and enough to spread a herd.
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let fraction = (self.state % 1001) as f64 / 1000.0;
        span.mul_f64(0.5 + fraction / 2.0)
    }
}

/// Lets this process hold `n` open files (sockets), raising its soft limit up to the
/// hard one (and the hard one when it may).
fn raise_open_files(n: u64) -> anyhow::Result<()> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_none_or(|c| c >= n) {
        return Ok(());
    }
    let maximum = limit.maximum.map(|m| m.max(n));
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(n),
            maximum,
        },
    )
    .or_else(|_| {
        let hard = limit.maximum.unwrap_or(n);
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(hard.min(n)),
                maximum: limit.maximum,
            },
        )
    })
    .context("cannot raise the open-files limit")?;
    let now = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    anyhow::ensure!(
        now >= n,
        "{n} devices need {n} open files in a pool; the limit is {now} (ulimit -n, as root)"
    );
    Ok(())
}

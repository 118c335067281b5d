//! `cluster`: three service nodes on one PostgreSQL database with their brokers in one
//! cluster (loopback ports), and N devices spread over them (device i on node i mod 3).
//! Measures the sessions held and each node's memory per session, commands acknowledged
//! by the device (`?wait`) when posted to the node that holds its session against
//! another node, and, after one node is killed (SIGKILL), how long its devices take to
//! hold sessions on the others again (each tries the next node after a second).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rumqttc::{AsyncClient, Event, MqttOptions, NetworkOptions, Packet, QoS};
use serde_json::json;
use tether_proto::Secret;
use tether_proto::activation::ActivateResponse;
use tokio::sync::{Semaphore, mpsc};

use crate::Options;
use crate::cloud::{self, Seeded};
use crate::procs::{Kind, Memory, Server};
use crate::report::Report;
use crate::serve::{DATABASE_ENV, NODE_ENV, PEERS_ENV};
use crate::stats::{Samples, show};

/// Nodes in the cluster.
const NODES: usize = 3;
/// How long a device waits before it tries the next node.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// A device's session came up: (device index, when).
type Up = mpsc::UnboundedSender<(usize, Instant)>;

/// Runs the scenario.
pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let n = options.cluster_sessions;
    let samples = if options.quick { 10 } else { 300 };
    raise_open_files(n as u64 + 4096)?;
    let server = match tether_testpg::Server::start_durable() {
        Ok(server) => server,
        // The quick run checks the harness where it can; the real one needs PostgreSQL.
        Err(e) if options.quick => {
            let mut report = Report::new("cluster", &["measure", "value"]);
            report.row(vec!["skipped".into(), format!("no PostgreSQL: {e}")]);
            return Ok(report);
        }
        Err(e) => anyhow::bail!("the cluster runs on PostgreSQL (apt-get install postgresql): {e}"),
    };
    let database = Secret::new(server.create_database().await?);
    eprintln!("cluster: seeding {n} licenses");
    let seeded = Seeded::new_on(n, Some(database.clone())).await?;
    let peers = tether_service::local::loopback_cluster_peers(NODES).join(",");
    let mut nodes = Vec::new();
    for id in 1..=NODES {
        let env = [
            (DATABASE_ENV, database.expose().to_owned()),
            (NODE_ENV, id.to_string()),
            (PEERS_ENV, peers.clone()),
        ];
        nodes.push(Server::start_with(Kind::Service, seeded.dir.path(), &env)?);
        eprintln!("cluster: node {id} up");
    }
    let devices = cloud::activate_all(&seeded, &nodes[0], 32).await?;
    let before: Vec<Memory> = nodes.iter().map(Server::memory).collect();
    let addrs: Arc<Vec<SocketAddr>> = Arc::new(
        nodes
            .iter()
            .map(|s| s.mqtt.context("a node without an MQTT address"))
            .collect::<anyhow::Result<_>>()?,
    );

    eprintln!("cluster: connecting {n} devices, a third to each node");
    let (up_tx, mut up) = mpsc::unbounded_channel();
    let gate = Arc::new(Semaphore::new(128));
    let started = Instant::now();
    let clients: Vec<AsyncClient> = devices
        .iter()
        .enumerate()
        .map(|(i, d)| device(i, d, addrs.clone(), gate.clone(), up_tx.clone()))
        .collect();
    for done in 1..=n {
        tokio::time::timeout(Duration::from_secs(120), up.recv())
            .await
            .context("devices stopped connecting")?
            .context("the devices' tasks ended")?;
        if done % 5000 == 0 {
            eprintln!("  … {done}/{n} ({:.1} s)", started.elapsed().as_secs_f64());
        }
    }
    let connect_time = started.elapsed();
    let after: Vec<Memory> = nodes.iter().map(Server::memory).collect();

    eprintln!("cluster: {samples} commands each to the same node and across nodes");
    let http = nodes[0].client()?;
    let access = super::sessions::login(&http, &nodes[0].url()).await?;
    let (mut same, mut across) = (
        Samples::with_capacity(samples),
        Samples::with_capacity(samples),
    );
    for k in 0..samples {
        let i = (k * 7919) % n;
        let home = i % NODES;
        for (api, samples) in [(home, &mut same), ((home + 1) % NODES, &mut across)] {
            let url = format!(
                "{}/v1/devices/{}/commands?wait=5",
                nodes[api].url(),
                devices[i].dev_id
            );
            let sent = Instant::now();
            http.post(url)
                .bearer_auth(&access)
                .json(&json!({"data": {"2": k}}))
                .send()
                .await?
                .error_for_status()
                .context("a command was not acknowledged")?;
            samples.push(sent.elapsed());
        }
    }

    eprintln!("cluster: killing node 3");
    while up.try_recv().is_ok() {}
    let victim = nodes.pop().context("three nodes")?;
    let moving = devices
        .iter()
        .enumerate()
        .filter(|(i, _)| i % NODES == NODES - 1)
        .count();
    let killed = Instant::now();
    victim.kill();
    let mut back = 0;
    while back < moving {
        let (i, _) = tokio::time::timeout(Duration::from_secs(120), up.recv())
            .await
            .context("the killed node's devices did not all come back")?
            .context("the devices' tasks ended")?;
        if i % NODES == NODES - 1 {
            back += 1;
        }
    }
    let moved_in = killed.elapsed();
    for client in &clients {
        let _ = client.try_disconnect();
    }

    let per_session: Vec<f64> = before
        .iter()
        .zip(&after)
        .map(|(b, a)| a.rss_growth_per(*b, n / NODES))
        .collect();
    let mut report = Report::new("cluster", &["measure", "value"]);
    report.row(vec!["nodes".into(), NODES.to_string()]);
    report.row(vec!["sessions held across the nodes".into(), n.to_string()]);
    report.row(vec!["all sessions up in".into(), show(connect_time)]);
    for (id, kib) in per_session.iter().enumerate() {
        report.row(vec![
            format!("node {} RSS per session", id + 1),
            format!("{kib:.1} KiB"),
        ]);
    }
    for (what, s) in [
        (
            "command acknowledged, posted to the session's node, p50/p99",
            &same,
        ),
        (
            "command acknowledged, posted to another node, p50/p99",
            &across,
        ),
    ] {
        report.row(vec![
            what.into(),
            format!("{} / {}", show(s.p50()), show(s.p99())),
        ]);
    }
    report.row(vec![
        "cross-node / same-node p50".into(),
        format!(
            "{:.2} ×",
            across.p50().as_secs_f64() / same.p50().as_secs_f64().max(1e-9)
        ),
    ]);
    report.row(vec![
        format!("node 3 killed: its {moving} devices on the others in"),
        show(moved_in),
    ]);
    report.note(format!(
        "devices try the next node {RECONNECT_AFTER:?} after losing theirs; each node \
         holds {} sessions, under the open-files limit",
        n / NODES
    ));
    report.target(
        "sessions across three nodes",
        ">= 30000",
        n.to_string(),
        n >= 30_000,
    );
    report.data("sessions", json!(n));
    report.data("connect_secs", json!(connect_time.as_secs_f64()));
    report.data("rss_per_session_kib", json!(per_session));
    report.data("command_same_node", same.json());
    report.data("command_across_nodes", across.json());
    report.data(
        "killed_node_devices_back_secs",
        json!(moved_in.as_secs_f64()),
    );
    Ok(report)
}

/// Device `i`'s client: on node `i mod 3`, and on the next node a second after it loses
/// its own. Reports every subscribed session on `up`.
fn device(
    i: usize,
    answer: &ActivateResponse,
    addrs: Arc<Vec<SocketAddr>>,
    gate: Arc<Semaphore>,
    up: Up,
) -> AsyncClient {
    let (client_id, username) = (answer.mqtt.client_id.clone(), answer.mqtt.username.clone());
    let password = answer.mqtt.password.expose().to_owned();
    let options = move |node: usize| {
        let addr = addrs[node % addrs.len()];
        let mut mqtt = MqttOptions::new(&client_id, addr.ip().to_string(), addr.port());
        mqtt.set_credentials(&username, &password);
        mqtt.set_keep_alive(Duration::from_secs(60));
        mqtt
    };
    let (client, mut events) = AsyncClient::new(options(i), 8);
    let inbound = answer.topics.inbound.clone();
    let sender = client.clone();
    let mut node = i;
    // Kept by the event loop across reconnections.
    let mut network = NetworkOptions::new();
    network.set_tcp_nodelay(true);
    events.set_network_options(network);
    tokio::spawn(async move {
        let mut permit = gate.acquire_owned().await.ok();
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    permit.take();
                    let _ = sender.subscribe(&inbound, QoS::AtLeastOnce).await;
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if up.send((i, Instant::now())).is_err() {
                        return;
                    }
                }
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => return,
                Ok(_) => {}
                Err(_) => {
                    tokio::time::sleep(RECONNECT_AFTER).await;
                    node += 1;
                    events.mqtt_options = options(node);
                }
            }
        }
    });
    client
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
        "{n} devices need {n} open files in the bench; the limit is {now} (ulimit -n, as root)"
    );
    Ok(())
}

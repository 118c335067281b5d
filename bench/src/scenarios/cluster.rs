//! `cluster`: three service nodes on one PostgreSQL database with their brokers in one
//! cluster (loopback ports), and N devices spread over them (device i on node i mod 3).
//! Measures the sessions held and each node's memory per session, commands acknowledged
//! by the device (`?wait`) when posted to the node that holds its session against
//! another node, and, after one node is killed (SIGKILL), how long its devices take to
//! hold sessions on the others again (each tries another node after a jittered backoff from a second). The
//! devices live in device pools ([`crate::pool`]), child processes of at most 10 000
//! sockets each, as a process here may open only 20 000 files.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use tether_proto::Secret;

use crate::Options;
use crate::cloud::{self, Seeded};
use crate::pool::{self, Pools, RECONNECT_AFTER};
use crate::procs::{Kind, Memory, Server};
use crate::report::Report;
use crate::serve::{DATABASE_ENV, NODE_ENV, PEERS_ENV};
use crate::stats::{Samples, show};

/// How long the bench waits for the killed node's devices to come back.
const BACK_WITHIN: Duration = Duration::from_secs(120);

/// Nodes in the cluster.
const NODES: usize = 3;

/// Runs the scenario.
pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let n = options.cluster_sessions;
    let samples = if options.quick { 10 } else { 300 };
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
    let addrs: Vec<SocketAddr> = nodes
        .iter()
        .map(|s| s.mqtt.context("a node without an MQTT address"))
        .collect::<anyhow::Result<_>>()?;
    let held: Vec<pool::Device> = devices
        .iter()
        .enumerate()
        .map(|(index, d)| pool::Device {
            index,
            client_id: d.mqtt.client_id.clone(),
            username: d.mqtt.username.clone(),
            password: d.mqtt.password.expose().to_owned(),
            inbound: d.topics.inbound.clone(),
        })
        .collect();

    let started = Instant::now();
    let (pools, mut up) = Pools::start(&addrs, held, 128)?;
    eprintln!(
        "cluster: connecting {n} devices from {} processes, a third to each node",
        pools.len()
    );
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
    // A device of the others may lose its session in the storm too: counted once back.
    let mut churned = 0usize;
    while back < moving {
        let deadline = tokio::time::Instant::from_std(killed + BACK_WITHIN);
        let Ok(next) = tokio::time::timeout_at(deadline, up.recv()).await else {
            break;
        };
        let (i, _) = next.context("the devices' tasks ended")?;
        if i % NODES != NODES - 1 {
            churned += 1;
        }
        if i % NODES == NODES - 1 {
            back += 1;
            if back % 2000 == 0 {
                eprintln!(
                    "  … {back}/{moving} back ({:.1} s)",
                    killed.elapsed().as_secs_f64()
                );
            }
        }
    }
    let moved_in = killed.elapsed();
    let all_back = back == moving;
    let pools_count = pools.len();
    drop(pools);

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
        if all_back {
            show(moved_in)
        } else {
            format!("not all: {back} back within {} s", BACK_WITHIN.as_secs())
        },
    ]);
    report.row(vec![
        "sessions of the surviving nodes' own devices re-established meanwhile".into(),
        churned.to_string(),
    ]);
    report.note(format!(
        "devices try another node {RECONNECT_AFTER:?} (jittered, doubling) after losing theirs; each node \
         holds {} sessions, under the open-files limit, and the devices live in {} \
         processes of at most {} sockets",
        n / NODES,
        pools_count,
        pool::PER_POOL
    ));
    report.target(
        "the killed node's devices all back on the others",
        &format!("{moving}"),
        back.to_string(),
        all_back,
    );
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
        json!(all_back.then_some(moved_in.as_secs_f64())),
    );
    report.data("killed_node_devices_back", json!(back));
    report.data("survivors_sessions_reestablished", json!(churned));
    Ok(report)
}

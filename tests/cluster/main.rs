//! The cluster container test: compose.yaml's `cluster` profile (PostgreSQL, three
//! service nodes whose brokers form one cluster, haproxy in front) with devices that are
//! real MQTT clients holding real credentials, under activation and command load, and
//! these faults:
//!   1. `kill -9` one node: its devices reconnect through the balancer to the others,
//!      no acknowledged activation is lost, no token is used past its limit, and every
//!      command is either delivered or refused with a clear error;
//!   2. start it again: it rejoins, and commands reach every device;
//!   3. restart PostgreSQL: the nodes say not ready meanwhile, then recover.
//!
//! It prints a report (JSON) of what it counted and measured. Its own test binary, so it
//! never competes with the other container tests for the two cores; without Docker,
//! docker-compose or musl-gcc it skips, except under CI=true.

mod compose;
mod fleet;
mod load;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tether_e2e::deploy::{in_ci, require, script};

use compose::Cluster;
use fleet::Device;
use load::{Api, Licence};

/// Devices connected before the faults.
const CONNECTED: usize = 30;
/// Devices activated during the first fault, with tokens of [`TOKEN_LIMIT`] devices and
/// half as many devices again as the tokens allow, so some must be refused.
const ACTIVATED_UNDER_FAULT: usize = 30;
/// Devices per pairing token.
const TOKEN_LIMIT: usize = 10;
/// How long the load runs around the kill, and when the kill comes.
const LOAD_FOR: Duration = Duration::from_secs(14);
const KILL_AT: Duration = Duration::from_secs(3);
/// How long the devices of the killed node may take to be back (their one-second
/// reconnection, the balancer's two failed checks a second apart, and the cluster's
/// hand-over of their client ids).
const BACK_WITHIN: Duration = Duration::from_secs(30);

#[test]
fn a_three_node_cluster_loses_nothing_when_a_node_is_killed_or_postgres_restarts() {
    if require("docker-compose", "apt-get install docker-compose").is_none() {
        return;
    }
    let engine = std::process::Command::new("docker").arg("info").output();
    if !engine.is_ok_and(|o| o.status.success()) {
        assert!(
            !in_ci(),
            "the cluster test needs a Docker engine (docker info failed)"
        );
        eprintln!("skipped: the cluster test needs a Docker engine (docker info failed)");
        return;
    }
    if std::env::var_os("TETHER_E2E_SKIP_BUILD").is_none() {
        if require("musl-gcc", "apt-get install musl-tools").is_none() {
            return;
        }
        script("build.sh", &[]).expect("deploy/build.sh builds the images");
    }
    if script("cluster-images.sh", &[]).is_none() {
        return;
    }
    assert!(
        in_ci()
            || std::process::Command::new("docker")
                .arg("info")
                .output()
                .is_ok()
    );
    let started = Instant::now();
    let cluster = Cluster::up();
    eprintln!("==> cluster up in {:.0?}", started.elapsed());
    let ca = cluster.admin(&["tls", "ca"], None);
    cluster.admin(&["user", "add", "ann"], Some("ann-passw0rd\n"));
    let count = (CONNECTED + ACTIVATED_UNDER_FAULT).to_string();
    let issued = cluster.admin(
        &[
            "license",
            "issue",
            "--product-key",
            tether_e2e::PRODUCT_KEY,
            "--count",
            &count,
        ],
        None,
    );
    let licences: Vec<Licence> = issued.lines().map(Licence::parse).collect();
    assert_eq!(licences.len(), CONNECTED + ACTIVATED_UNDER_FAULT);

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let report = runtime.block_on(scenario(&cluster, ca.as_bytes(), licences));
    println!("{}", serde_json::to_string_pretty(&report).expect("JSON"));
}

async fn scenario(cluster: &Cluster, ca: &[u8], licences: Vec<Licence>) -> Value {
    let api = Api::new(cluster.https_port, ca, "ann", "ann-passw0rd").await;
    let (before, during) = licences.split_at(CONNECTED);

    eprintln!("==> {CONNECTED} devices activated and connected through the balancer");
    let mut devices = Vec::new();
    for chunk in before.chunks(TOKEN_LIMIT) {
        let token = api.token(TOKEN_LIMIT).await;
        for licence in chunk {
            let answer = api.activate(licence, &token).await.expect("activated");
            devices.push(Device::connect(
                &answer.dev_id,
                &answer.password,
                cluster.mqtts_port,
                tether_e2e::mqtt_tls(ca),
            ));
        }
    }
    api.until_online(&devices, Duration::from_secs(60)).await;

    eprintln!("==> fault 1: load for {LOAD_FOR:?}, node2 killed at {KILL_AT:?}");
    let tokens = pairing_tokens(&api, ACTIVATED_UNDER_FAULT.div_ceil(TOKEN_LIMIT * 3 / 2)).await;
    let killer = async {
        tokio::time::sleep(KILL_AT).await;
        tokio::task::block_in_place(|| cluster.kill("node2"));
        Instant::now()
    };
    let (outcome, killed_at) = tokio::join!(
        load::run(&api, &devices, (during, &tokens), LOAD_FOR),
        killer
    );
    let back = api.until_online(&devices, BACK_WITHIN).await;
    let moved = devices.iter().filter(|d| d.connections() > 1).count();
    let back_after = devices
        .iter()
        .filter(|d| d.connections() > 1)
        .filter_map(|d| d.connected_at())
        .map(|at| at.saturating_duration_since(killed_at))
        .max()
        .unwrap_or_default();
    eprintln!(
        "    {moved} devices moved to another node, all back {back_after:.1?} after the kill (API: {back:.1?} after the load)"
    );
    // Deliveries still under way arrive within a second or two.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let commands = outcome.commands.verdict(&devices);
    let activations = outcome
        .activations
        .verdict(&api, &tokens, TOKEN_LIMIT)
        .await;
    eprintln!("    commands: {commands}\n    activations: {activations}");
    assert_eq!(commands["lost"], 0, "{commands}");
    assert_eq!(activations["lost"], 0, "{activations}");
    assert_eq!(activations["over_used"], 0, "{activations}");

    eprintln!("==> fault 2: node2 started again");
    let since = Instant::now();
    tokio::task::block_in_place(|| {
        cluster.start("node2");
        cluster.wait_healthy("node2", Duration::from_secs(120));
    });
    let rejoined = since.elapsed();
    let round = api.command_round(&devices, 1_000_000).await;
    assert_eq!(round["lost"], 0, "after node2 rejoined: {round}");

    eprintln!("==> fault 3: PostgreSQL stopped and started again");
    let (not_ready_after, recovered) = tokio::task::block_in_place(|| {
        cluster.compose(&["stop", "-t", "10", "postgres"]).success();
        let not_ready_after = wait_for(Duration::from_secs(20), || !cluster.ready("node1"))
            .expect("a node without its database says it is not ready");
        cluster.start("postgres");
        let since_start = Instant::now();
        wait_for(Duration::from_secs(60), || {
            ["node1", "node2", "node3"].iter().all(|n| cluster.ready(n))
        })
        .expect("the nodes recover once PostgreSQL is back");
        (not_ready_after, since_start.elapsed())
    });
    let after = api.command_round(&devices, 2_000_000).await;
    assert_eq!(after["lost"], 0, "after PostgreSQL restarted: {after}");
    for device in &devices {
        device.disconnect().await;
    }

    json!({
        "devices": devices.len(),
        "kill": {
            "devices_moved": moved,
            "back_online_s": back_after.as_secs_f64(),
            "commands": commands,
            "activations": activations,
        },
        "rejoin": {"healthy_after_s": rejoined.as_secs_f64(), "commands": round},
        "postgres_restart": {
            "not_ready_after_stop_s": not_ready_after.as_secs_f64(),
            "ready_again_after_start_s": recovered.as_secs_f64(),
            "commands": after,
        },
    })
}

/// Polls `check` every 250 ms until it holds: how long that took, or `None` after `limit`.
fn wait_for(limit: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let since = Instant::now();
    while !check() {
        if since.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Some(since.elapsed())
}

/// `n` fresh pairing tokens of [`TOKEN_LIMIT`] devices.
async fn pairing_tokens(api: &Api, n: usize) -> Vec<String> {
    let mut tokens = Vec::new();
    for _ in 0..n {
        tokens.push(api.token(TOKEN_LIMIT).await);
    }
    tokens
}

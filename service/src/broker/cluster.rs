//! Joining the broker cluster: rmqtt's Raft plugin (`rmqtt-cluster-raft`) keeps the
//! routes and client-id locks of every node in one replicated log, and each broker
//! forwards publishes and session kicks to the others over gRPC. Publishes routed by
//! [`super::Broker::publish`] so reach a device on any node, and a client id connected
//! to a second node closes its session on the first.
//!
//! Neither channel is authenticated or encrypted by the plugin: the cluster ports belong
//! on a private network between the nodes (see the README's "Cluster").

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, anyhow};
use async_trait::async_trait;
use rmqtt::context::{ServerContext, ServerContextBuilder};
use rmqtt::subscribe::SharedSubscription;
use rmqtt::types::{
    ClientId, Id, IsOnline, NodeId, SharedGroup, SubscriptionIdentifier, SubscriptionOptions,
    TopicName,
};

use crate::cluster::ClusterConfig;
use crate::db::Db;
use crate::devices::store;

/// The plugin's name, which keys its settings.
const PLUGIN: &str = "rmqtt-cluster-raft";

/// How long a node's own address may take to resolve (a container's name may not be in
/// DNS at the moment it starts).
const RESOLVE_FOR: Duration = Duration::from_secs(30);

/// The broker's context for node `cluster.node_id`, with the plugin's settings.
pub(super) async fn context(cluster: &ClusterConfig) -> anyhow::Result<ServerContextBuilder> {
    let settings = settings(cluster).await?;
    Ok(ServerContext::new()
        .node_id(cluster.node_id)
        .plugins_config_map_add(PLUGIN, settings))
}

/// Which member of a shared subscription group gets a message: one on the publisher's
/// node when there is one (each node's service client stores the reports of the devices
/// it holds, with no hop between nodes), else the first that is online.
struct PublisherNodeFirst;

#[async_trait]
impl SharedSubscription for PublisherNodeFirst {
    fn is_supported(&self) -> bool {
        true
    }

    async fn choice(
        &self,
        _scx: &ServerContext,
        _group: &SharedGroup,
        publisher: &Id,
        _topic: &TopicName,
        members: &[(
            NodeId,
            ClientId,
            SubscriptionOptions,
            Option<Vec<SubscriptionIdentifier>>,
            Option<IsOnline>,
        )],
    ) -> Option<(usize, IsOnline)> {
        let online = |m: &(_, _, _, _, Option<IsOnline>)| m.4 != Some(false);
        members
            .iter()
            .position(|m| m.0 == publisher.node_id && online(m))
            .or_else(|| members.iter().position(online))
            .map(|i| (i, true))
    }
}

/// Starts this node's gRPC server and joins the cluster: the first node leads when it
/// finds no leader, the others (and a restarted first node) join the leader they find.
/// Returns once this node's Raft member runs.
pub(super) async fn join(scx: &ServerContext, cluster: &ClusterConfig) -> anyhow::Result<()> {
    *scx.extends.shared_subscription_mut().await = Box::new(PublisherNodeFirst);
    let me = cluster.me();
    let grpc = resolve(&me.grpc_addr()).await?;
    scx.node.start_grpc_server(scx.clone(), grpc, true, false);
    tracing::info!(
        node = cluster.node_id,
        grpc = %grpc,
        peers = cluster.peers.len(),
        "joining the broker cluster"
    );
    rmqtt_cluster_raft::register(scx, true, false)
        .await
        .map_err(|e| anyhow!("failed to join the broker cluster: {e}"))?;
    tracing::info!(node = cluster.node_id, "joined the broker cluster");
    Ok(())
}

/// How often a node records that it is alive.
const ALIVE_EVERY: Duration = Duration::from_secs(5);
/// How long a node may be silent before the others mark its devices offline.
pub const SILENT_FOR: Duration = Duration::from_secs(30);

/// Records every [`ALIVE_EVERY`] that this node is alive, and marks offline the devices
/// of nodes silent for [`SILENT_FOR`]: a node killed at once cannot mark its own.
pub(super) fn watch_nodes(db: Db, node: u64) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(ALIVE_EVERY);
        // Since when this node has reached the database without a gap: after an outage,
        // the others need a while to record themselves again before any looks silent.
        let mut reachable_since: Option<tokio::time::Instant> = None;
        loop {
            every.tick().await;
            if db.is_closed() {
                return;
            }
            let now = crate::unix_now();
            if let Err(e) = store::node_alive(&db, node, crate::db_time(now)).await {
                tracing::warn!(error = %e, "failed to record that this node is alive");
                reachable_since = None;
                continue;
            }
            let since = *reachable_since.get_or_insert_with(tokio::time::Instant::now);
            if since.elapsed() < SILENT_FOR {
                continue;
            }
            let before = crate::db_time(now.saturating_sub(SILENT_FOR.as_secs()));
            match store::mark_offline_on_silent_nodes(&db, before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(devices = n, "marked offline the devices of a silent node"),
                Err(e) => tracing::warn!(error = %e, "failed to check for silent nodes"),
            }
        }
    });
}

/// The plugin's settings (TOML), from ours.
async fn settings(cluster: &ClusterConfig) -> anyhow::Result<String> {
    let me = cluster.me();
    let raft_listen = resolve(&me.raft_addr()).await?;
    let list = |addr: fn(&crate::cluster::Peer) -> String| {
        cluster
            .peers
            .iter()
            .map(|p| toml::Value::String(format!("{}@{}", p.id, addr(p))))
            .collect::<Vec<_>>()
    };
    let mut table = toml::Table::new();
    table.insert("node_grpc_addrs".into(), list(|p| p.grpc_addr()).into());
    table.insert("raft_peer_addrs".into(), list(|p| p.raft_addr()).into());
    table.insert("laddr".into(), raft_listen.to_string().into());
    table.insert("leader_id".into(), to_toml_int(cluster.first())?);
    // Peers' names are resolved when connecting, not at start: the first node starts
    // before the others' names exist, and a restarted node may come back elsewhere.
    table.insert("verify_addr".into(), false.into());
    // Two cores are the smallest node; Raft's own runtime needs no more threads.
    table.insert("worker_threads".into(), 2.into());
    // Also how long a device connecting to another node waits for a dead node to give up
    // its client id: short, for the nodes are on one network.
    table.insert("node_grpc_client_timeout".into(), "2s".into());
    toml::to_string(&table).context("cluster settings")
}

fn to_toml_int(n: u64) -> anyhow::Result<toml::Value> {
    Ok(i64::try_from(n).context("node id")?.into())
}

/// The first address `addr` resolves to, retried while the name is not known yet.
async fn resolve(addr: &str) -> anyhow::Result<SocketAddr> {
    let deadline = tokio::time::Instant::now() + RESOLVE_FOR;
    loop {
        match tokio::net::lookup_host(addr).await {
            Ok(mut found) => {
                if let Some(first) = found.next() {
                    return Ok(first);
                }
            }
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(e)
                    .with_context(|| format!("cannot resolve this node's address {addr}"));
            }
            Err(_) => {}
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("{addr} resolves to no address");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

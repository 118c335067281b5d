//! Cluster settings of `serve`: this node's id and every node's cluster address, from
//! `--node-id` and `--cluster-peers ID@HOST:PORT,…`. Each node takes gRPC between brokers
//! (routed publishes, session kicks) on PORT and Raft (routes, client-id locks) on
//! PORT + 1. Membership is static: every node is given the same list.

use std::collections::HashSet;
use std::str::FromStr;

use anyhow::{Context, bail};

/// Largest node id: ids are small numbers an operator picks.
pub const MAX_NODE_ID: u64 = 1024;

/// One node of the cluster, as every node's `--cluster-peers` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its node id.
    pub id: u64,
    /// A name or address the other nodes reach it at.
    pub host: String,
    /// Its gRPC port; Raft listens on the next one.
    pub port: u16,
}

impl Peer {
    /// Where its broker takes gRPC from the other nodes.
    pub fn grpc_addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Where its Raft member listens.
    pub fn raft_addr(&self) -> String {
        format!("{}:{}", self.host, self.raft_port())
    }

    /// The Raft port: the gRPC port's successor.
    pub fn raft_port(&self) -> u16 {
        self.port + 1
    }
}

impl FromStr for Peer {
    type Err = anyhow::Error;

    fn from_str(spec: &str) -> anyhow::Result<Self> {
        let wanted =
            || format!("cluster peer {spec:?}: expected ID@HOST:PORT, such as 1@node1:7100");
        let (id, addr) = spec.split_once('@').with_context(wanted)?;
        let (host, port) = addr.rsplit_once(':').with_context(wanted)?;
        let id: u64 = id.parse().ok().with_context(wanted)?;
        let port: u16 = port.parse().ok().with_context(wanted)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if !(1..=MAX_NODE_ID).contains(&id) {
            bail!("cluster peer {spec:?}: node ids go from 1 to {MAX_NODE_ID}");
        }
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == '/') {
            bail!("cluster peer {spec:?}: the host must be a name or an address");
        }
        if port == 0 || port == u16::MAX {
            bail!("cluster peer {spec:?}: the port must be 1 to 65534 (Raft takes the next one)");
        }
        Ok(Self {
            id,
            host: host.to_owned(),
            port,
        })
    }
}

/// This node and its peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// This node's id.
    pub node_id: u64,
    /// Every node, this one included.
    pub peers: Vec<Peer>,
}

impl ClusterConfig {
    /// The settings from `--node-id` and `--cluster-peers`: `None` when neither is given
    /// (one node, the default), an error when they do not describe a cluster this node is
    /// part of, or when the nodes would not share a database.
    pub fn from_parts(
        node_id: Option<u64>,
        peers: &[String],
        shared_database: bool,
    ) -> anyhow::Result<Option<Self>> {
        let node_id = match (node_id, peers.is_empty()) {
            (None, true) => return Ok(None),
            (Some(id), false) => id,
            (Some(_), true) => bail!("--node-id needs --cluster-peers, the list of every node"),
            (None, false) => bail!("--cluster-peers needs --node-id, this node's id in the list"),
        };
        if !cfg!(feature = "cluster") {
            bail!("this tether-service was built without the `cluster` feature");
        }
        let peers = peers
            .iter()
            .map(|p| p.trim().parse())
            .collect::<anyhow::Result<Vec<Peer>>>()?;
        let mut ids = HashSet::new();
        let mut addrs = HashSet::new();
        for peer in &peers {
            if !ids.insert(peer.id) {
                bail!("--cluster-peers names node {} twice", peer.id);
            }
            if !addrs.insert(peer.grpc_addr()) || !addrs.insert(peer.raft_addr()) {
                bail!(
                    "--cluster-peers: node {} shares a port with another node (each takes PORT and PORT + 1)",
                    peer.id
                );
            }
        }
        if !ids.contains(&node_id) {
            bail!("--node-id {node_id} is not in --cluster-peers");
        }
        if !shared_database {
            bail!(
                "the nodes of a cluster share one PostgreSQL database: give each the same --database-url"
            );
        }
        Ok(Some(Self { node_id, peers }))
    }

    /// This node's entry.
    pub fn me(&self) -> &Peer {
        self.peers
            .iter()
            .find(|p| p.id == self.node_id)
            .expect("checked when parsed: the node is among its peers")
    }

    /// The node that starts the cluster when no leader is found: the lowest id. A
    /// restarted node finds the others' leader instead.
    pub fn first(&self) -> u64 {
        self.peers
            .iter()
            .map(|p| p.id)
            .min()
            .unwrap_or(self.node_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peers(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn peers_parse_with_names_addresses_and_brackets() {
        let peer: Peer = "2@node2:7100".parse().expect("valid");
        assert_eq!(peer.grpc_addr(), "node2:7100");
        assert_eq!(peer.raft_addr(), "node2:7101");
        let peer: Peer = "3@[::1]:7100".parse().expect("valid");
        assert_eq!(peer.host, "::1");
        for bad in [
            "node2:7100",
            "x@node2:7100",
            "0@node2:7100",
            "2000@node2:7100",
            "2@node2",
            "2@:7100",
            "2@node2:0",
            "2@node2:65535",
            "2@no de:7100",
        ] {
            assert!(bad.parse::<Peer>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn a_cluster_needs_both_flags_this_node_among_its_peers_and_a_shared_database() {
        let three = peers(&["1@a:7100", "2@b:7100", "3@c:7100"]);
        assert_eq!(
            ClusterConfig::from_parts(None, &[], false).expect("one node"),
            None
        );
        let cluster = ClusterConfig::from_parts(Some(2), &three, true)
            .expect("valid")
            .expect("a cluster");
        assert_eq!(cluster.me().host, "b");
        assert_eq!(cluster.first(), 1);
        let refused = [
            ClusterConfig::from_parts(Some(2), &[], true),
            ClusterConfig::from_parts(None, &three, true),
            ClusterConfig::from_parts(Some(4), &three, true),
            ClusterConfig::from_parts(Some(2), &three, false),
            ClusterConfig::from_parts(Some(1), &peers(&["1@a:7100", "1@b:7100"]), true),
            ClusterConfig::from_parts(Some(1), &peers(&["1@a:7100", "2@a:7101"]), true),
        ];
        for result in refused {
            assert!(result.is_err(), "{result:?}");
        }
    }
}

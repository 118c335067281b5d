//! Three service nodes whose brokers form one cluster (rmqtt's Raft plugin), on one
//! PostgreSQL database and one data dir's keys: a device connected to any node gets
//! commands posted to any node, its reports and presence are seen by every node, its
//! client id is held by one node at a time, and an unbind posted to one node reaches the
//! session on another. The nodes run in this test process, each with its own broker,
//! gRPC server and Raft member on loopback ports.

use reqwest::StatusCode;
use rumqttc::{Packet, SubscribeReasonCode};
use serde_json::{Value, json};
use tether_service::cluster::ClusterConfig;

use crate::broker::{Login, Mqtt, activated, device_until_at, mqtt_client_to, next_json};
use crate::support::{Service, World};

/// A node's cluster settings among `peers`.
fn node(id: u64, peers: &[String]) -> ClusterConfig {
    ClusterConfig::from_parts(Some(id), peers, true)
        .expect("valid cluster settings")
        .expect("a cluster")
}

/// Node 1 (the world's service, which starts the cluster) and nodes 2 and 3; `None` when
/// this run has no PostgreSQL (a cluster needs one).
async fn three_nodes(devices: u32) -> Option<(World, Vec<Service>)> {
    if let Err(why) = tether_testpg::shared() {
        assert!(
            std::env::var("CI").is_err(),
            "the cluster tests need PostgreSQL: {why}"
        );
        eprintln!("SKIPPED: a broker cluster needs PostgreSQL ({why})");
        return None;
    }
    let peers = tether_service::local::loopback_cluster_peers(3);
    let first = node(1, &peers);
    let w = World::configured(devices, |config| config.cluster = Some(first)).await;
    let mut others = Vec::new();
    for id in [2, 3] {
        let mut config = tether_service::ServeConfig::ephemeral(w.dir.path());
        config.cluster = Some(node(id, &peers));
        others.push(Service::start_with(config).await);
    }
    Some((w, others))
}

/// The device's client on `service`'s broker, connected and subscribed to its in-topic.
async fn connect(service: &Service, login: &Login) -> Mqtt {
    let mut device = mqtt_client_to(service, &login.dev_id, &login.dev_id, &login.password);
    device.connect().await.expect("accepted");
    device
        .subscribe(&format!("smart/device/in/{}", login.dev_id))
        .await;
    device
}

#[tokio::test]
async fn a_device_on_one_node_gets_commands_posted_to_another_and_every_node_sees_it() {
    let Some((w, nodes)) = three_nodes(1).await else {
        return;
    };
    let login = activated(&w, 0).await;
    let mut device = connect(&nodes[0], &login).await;
    for service in [&w.service, &nodes[0], &nodes[1]] {
        device_until_at(service, &w.ann, &login.dev_id, |d| d["online"] == true).await;
    }

    // Posted to node 3, routed to node 2's session.
    let path = format!("/v1/devices/{}/commands", login.dev_id);
    let (status, body) = nodes[1]
        .post(&path, Some(&w.ann), json!({"data": {"1": true}}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let command = next_json(&mut device).await;
    assert_eq!(command["protocol"], 5);
    assert_eq!(command["data"], json!({"1": true}));

    // Waited for at node 1: the acknowledgement at node 2 comes back to it.
    let (status, body) = w
        .service
        .post(
            &format!("{path}?wait=5"),
            Some(&w.ann),
            json!({"data": {"1": false}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["delivered"], true);
    assert_eq!(next_json(&mut device).await["data"], json!({"1": false}));

    // A report published at node 2 is stored once and seen at node 1.
    device.report(&login.dev_id, json!({"2": 7})).await;
    device_until_at(&w.service, &w.ann, &login.dev_id, |d| {
        d["last_report"] == json!({"2": 7})
    })
    .await;

    // Offline everywhere once it leaves.
    device.client.disconnect().await.expect("queued");
    device_until_at(&nodes[1], &w.ann, &login.dev_id, |d| d["online"] == false).await;
}

#[tokio::test]
async fn a_client_id_is_held_by_one_node_and_an_unbind_reaches_the_node_that_holds_it() {
    let Some((w, nodes)) = three_nodes(1).await else {
        return;
    };
    let login = activated(&w, 0).await;
    let mut first = connect(&nodes[0], &login).await;
    device_until_at(&w.service, &w.ann, &login.dev_id, |d| d["online"] == true).await;

    // The same device at node 3: its session at node 2 ends, and it stays online.
    let mut second = connect(&nodes[1], &login).await;
    first.closed().await;
    let seen = device_until_at(&w.service, &w.ann, &login.dev_id, |d| d["online"] == true).await;
    assert_eq!(seen["online"], true, "{seen}");

    // Commands now reach the session at node 3, whichever node they are posted to.
    let path = format!("/v1/devices/{}/commands", login.dev_id);
    let (status, body) = w
        .service
        .post(&path, Some(&w.ann), json!({"data": {"3": 1}}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let command = next_json(&mut second).await;
    assert_eq!(command["data"], json!({"3": 1}));

    // Unbound at node 1: the session at node 3 hears protocol 8 and is closed.
    let (status, _) = w
        .service
        .delete(&format!("/v1/devices/{}", login.dev_id), Some(&w.ann))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let notice: Value = second
        .next(|p| match p {
            Packet::Publish(publish) => serde_json::from_slice(&publish.payload).ok(),
            _ => None,
        })
        .await;
    assert_eq!(notice["protocol"], 8, "{notice}");
    second.closed().await;
}

#[tokio::test]
async fn a_device_cannot_join_the_services_shared_subscription_or_read_another_device() {
    let Some((w, nodes)) = three_nodes(2).await else {
        return;
    };
    let a = activated(&w, 0).await;
    let b = activated(&w, 1).await;
    let mut attacker = connect(&nodes[0], &a).await;
    for filter in [
        "$share/tether-service/smart/device/out/+".to_owned(),
        format!("$share/g/smart/device/in/{}", b.dev_id),
        "$share/g/#".to_owned(),
    ] {
        let codes = attacker.subscribe(&filter).await;
        assert_eq!(codes, vec![SubscribeReasonCode::Failure], "{filter}");
    }
    // The service still stores the other device's reports.
    let victim = connect(&nodes[1], &b).await;
    victim.report(&b.dev_id, json!({"5": 1})).await;
    device_until_at(&w.service, &w.ann, &b.dev_id, |d| {
        d["last_report"] == json!({"5": 1})
    })
    .await;
}

//! The service's privileged MQTT client: stores the data-point reports devices publish
//! (protocol 4) as their `last_report`. It only subscribes: messages to devices go
//! through [`super::Broker::publish`], so no request can make this client send a packet
//! it would refuse, and it reads more than the broker lets any device send.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, NetworkOptions, Packet, QoS};
use tether_proto::mqtt::{Envelope, Protocol};
use tether_proto::random::{self, LOWER_ALPHANUMERIC};
use tokio::sync::watch;

use super::{MAX_PACKET_BYTES, SERVICE_USERNAME};
use crate::db::Db;
use tether_proto::Secret;

/// Topic filter of every device's reports.
const REPORTS: &str = "smart/device/out/+";
/// The same as a shared subscription: in a cluster, each report goes to one of the
/// nodes' clients, not to all.
const SHARED_REPORTS: &str = "$share/tether-service/smart/device/out/+";

/// The largest packet this client reads: twice what the broker accepts from a device.
pub const MAX_INCOMING: usize = 2 * MAX_PACKET_BYTES as usize;

/// A handle to the service's MQTT client.
#[derive(Clone)]
pub struct Bridge {
    connected: watch::Receiver<bool>,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge")
            .field("connected", &*self.connected.borrow())
            .finish()
    }
}

impl Bridge {
    /// Connects to the broker at `addr` and starts storing reports; `shared` when other
    /// nodes' clients store them too.
    pub fn start(
        addr: SocketAddr,
        password: &Secret,
        db: Db,
        shared: bool,
    ) -> anyhow::Result<Self> {
        let suffix = random::string(LOWER_ALPHANUMERIC, 8).context("random source")?;
        let mut options = MqttOptions::new(
            format!("{SERVICE_USERNAME}-{suffix}"),
            addr.ip().to_string(),
            addr.port(),
        );
        options.set_credentials(SERVICE_USERNAME, password.expose());
        options.set_keep_alive(Duration::from_secs(30));
        // It sends only its CONNECT, SUBSCRIBE, acks and pings.
        options.set_max_packet_size(MAX_INCOMING, 4 * 1024);
        let (client, mut events) = AsyncClient::new(options, 16);
        let mut network = NetworkOptions::new();
        network.set_tcp_nodelay(true);
        events.set_network_options(network);
        let (connected_tx, connected) = watch::channel(false);
        let filter = if shared { SHARED_REPORTS } else { REPORTS };
        tokio::spawn(run(client, events, db, connected_tx, filter));
        Ok(Self { connected })
    }

    /// Whether the client is connected to the broker.
    pub fn is_connected(&self) -> bool {
        *self.connected.borrow()
    }
}

async fn run(
    client: AsyncClient,
    mut events: EventLoop,
    db: Db,
    connected: watch::Sender<bool>,
    filter: &'static str,
) {
    // Runs until every `Bridge` handle (each holds a receiver) is dropped.
    while !connected.is_closed() {
        match events.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                if let Err(e) = client.subscribe(filter, QoS::AtLeastOnce).await {
                    tracing::error!(error = %e, "failed to subscribe to device reports");
                }
                connected.send_replace(true);
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                store_report(&db, &publish.topic, &publish.payload).await
            }
            Ok(_) => {}
            Err(e) => {
                if connected.send_replace(false) {
                    tracing::warn!(error = %e, "service MQTT client disconnected; reconnecting");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

async fn store_report(db: &Db, topic: &str, payload: &[u8]) {
    let Some(dev_id) = topic.strip_prefix("smart/device/out/") else {
        return;
    };
    let envelope: Envelope = match serde_json::from_slice(payload) {
        Ok(e) => e,
        Err(e) => {
            tracing::info!(dev_id, error = %e, "ignored a malformed device message");
            return;
        }
    };
    if envelope.protocol != Protocol::DpReport {
        tracing::debug!(
            dev_id,
            protocol = envelope.protocol.number(),
            "ignored a device message"
        );
        return;
    }
    let now = crate::db_time(crate::unix_now());
    let result = crate::devices::store::set_last_report(db, dev_id, &envelope.data, now).await;
    if let Err(e) = result {
        tracing::error!(error = %e, dev_id, "failed to store a report");
    }
}

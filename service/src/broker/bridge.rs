//! The service's privileged MQTT client: publishes commands, unbind and reset notices to
//! devices, and stores the data-point reports devices publish (protocol 4) as their
//! `last_report`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, NetworkOptions, Outgoing, Packet, QoS};
use sqlx::SqlitePool;
use tether_proto::mqtt::{Envelope, Protocol, in_topic};
use tether_proto::random::{self, LOWER_ALPHANUMERIC};
use tokio::sync::{oneshot, watch};

use super::SERVICE_USERNAME;
use tether_proto::Secret;

/// Topic filter of every device's reports.
const REPORTS: &str = "smart/device/out/+";

/// How long `send` waits for the broker to acknowledge a publish.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// Waiters for broker acknowledgements. The event loop sends publishes in the order they
/// were queued, so each outgoing packet id belongs to the oldest waiter without one.
#[derive(Default)]
struct Acks {
    unsent: VecDeque<oneshot::Sender<()>>,
    sent: HashMap<u16, oneshot::Sender<()>>,
}

/// A handle to the service's MQTT client.
#[derive(Clone)]
pub struct Bridge {
    client: AsyncClient,
    connected: watch::Receiver<bool>,
    acks: Arc<Mutex<Acks>>,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge")
            .field("connected", &*self.connected.borrow())
            .finish()
    }
}

impl Bridge {
    /// Connects to the broker at `addr` and starts storing reports.
    pub fn start(addr: SocketAddr, password: &Secret, db: SqlitePool) -> anyhow::Result<Self> {
        let suffix = random::string(LOWER_ALPHANUMERIC, 8).context("random source")?;
        let mut options = MqttOptions::new(
            format!("{SERVICE_USERNAME}-{suffix}"),
            addr.ip().to_string(),
            addr.port(),
        );
        options.set_credentials(SERVICE_USERNAME, password.expose());
        options.set_keep_alive(Duration::from_secs(30));
        options.set_max_packet_size(64 * 1024, 64 * 1024);
        let (client, mut events) = AsyncClient::new(options, 256);
        // Commands go out one small packet at a time: no Nagle delay.
        let mut network = NetworkOptions::new();
        network.set_tcp_nodelay(true);
        events.set_network_options(network);
        let (connected_tx, connected) = watch::channel(false);
        let acks = Arc::new(Mutex::new(Acks::default()));
        tokio::spawn(run(client.clone(), events, db, connected_tx, acks.clone()));
        Ok(Self {
            client,
            connected,
            acks,
        })
    }

    /// Whether the client is connected to the broker.
    pub fn is_connected(&self) -> bool {
        *self.connected.borrow()
    }

    /// Publishes an envelope to a device's in-topic and waits until the broker has
    /// acknowledged it, so it is routed to the device's session before anything later.
    pub async fn send(
        &self,
        dev_id: &str,
        protocol: Protocol,
        data: serde_json::Value,
    ) -> anyhow::Result<()> {
        let envelope = Envelope {
            protocol,
            t: crate::unix_now(),
            data,
        };
        let payload = serde_json::to_vec(&envelope).context("envelope")?;
        let (acked, ack) = oneshot::channel();
        {
            let mut acks = self.acks.lock().unwrap_or_else(|p| p.into_inner());
            acks.unsent.push_back(acked);
            // Queue while holding the lock, so waiters and publishes keep the same order.
            self.client
                .try_publish(in_topic(dev_id), QoS::AtLeastOnce, false, payload)
                .context("failed to queue an MQTT publish")?;
        }
        match tokio::time::timeout(ACK_TIMEOUT, ack).await {
            Ok(Ok(())) => Ok(()),
            _ => anyhow::bail!("the broker did not acknowledge the publish in time"),
        }
    }
}

async fn run(
    client: AsyncClient,
    mut events: EventLoop,
    db: SqlitePool,
    connected: watch::Sender<bool>,
    acks: Arc<Mutex<Acks>>,
) {
    // Runs until every `Bridge` handle (each holds a receiver) is dropped.
    while !connected.is_closed() {
        match events.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                if let Err(e) = client.subscribe(REPORTS, QoS::AtLeastOnce).await {
                    tracing::error!(error = %e, "failed to subscribe to device reports");
                }
                connected.send_replace(true);
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                store_report(&db, &publish.topic, &publish.payload).await
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                let mut acks = acks.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(waiter) = acks.unsent.pop_front() {
                    acks.sent.insert(pkid, waiter);
                }
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                let waiter = acks
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .sent
                    .remove(&ack.pkid);
                if let Some(waiter) = waiter {
                    let _ = waiter.send(());
                }
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

async fn store_report(db: &SqlitePool, topic: &str, payload: &[u8]) {
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
    let result = sqlx::query("UPDATE devices SET last_report = ?, last_seen = ? WHERE dev_id = ?")
        .bind(envelope.data.to_string())
        .bind(crate::db_time(crate::unix_now()))
        .bind(dev_id)
        .execute(db)
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, dev_id, "failed to store a report");
    }
}

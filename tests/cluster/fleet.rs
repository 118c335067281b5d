//! The devices of the cluster test, as real MQTT clients with the credentials their real
//! activations returned, connected through the balancer: each reconnects one second
//! after it loses its broker (what a device's backoff does at its first step), counts
//! its connections and records every command it receives.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, Transport};
use serde_json::Value;

/// How long a device waits before it connects again.
pub const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// One device's state, shared with its event loop.
#[derive(Debug, Default)]
struct Seen {
    connected: bool,
    /// When it last got a CONNACK.
    connected_at: Option<Instant>,
    /// Connections made so far.
    connections: u32,
    /// The `seq` of every command received.
    commands: HashSet<u64>,
}

/// A connected device.
pub struct Device {
    pub dev_id: String,
    client: AsyncClient,
    seen: Arc<Mutex<Seen>>,
}

impl Device {
    /// Connects `dev_id` with `password` to the broker at `localhost:port` over TLS.
    pub fn connect(dev_id: &str, password: &str, port: u16, tls: Transport) -> Self {
        let mut options = MqttOptions::new(dev_id, "localhost", port);
        options.set_credentials(dev_id, password);
        options.set_keep_alive(Duration::from_secs(5));
        options.set_transport(tls);
        let (client, mut events) = AsyncClient::new(options, 64);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let in_topic = format!("smart/device/in/{dev_id}");
        let (task_client, task_seen) = (client.clone(), seen.clone());
        tokio::spawn(async move {
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        // A clean session: subscribe again after every connection.
                        let _ = task_client
                            .subscribe(in_topic.clone(), QoS::AtLeastOnce)
                            .await;
                        let mut seen = lock(&task_seen);
                        seen.connected = true;
                        seen.connected_at = Some(Instant::now());
                        seen.connections += 1;
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        let command: Option<Value> = serde_json::from_slice(&publish.payload).ok();
                        if let Some(seq) = command.as_ref().and_then(|c| c["data"]["1"].as_u64()) {
                            lock(&task_seen).commands.insert(seq);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => {
                        lock(&task_seen).connected = false;
                        tokio::time::sleep(RECONNECT_AFTER).await;
                    }
                }
            }
        });
        Self {
            dev_id: dev_id.to_owned(),
            client,
            seen,
        }
    }

    /// Whether it holds a session now.
    pub fn connected(&self) -> bool {
        lock(&self.seen).connected
    }

    /// When it last connected.
    pub fn connected_at(&self) -> Option<Instant> {
        lock(&self.seen).connected_at
    }

    /// How many connections it made.
    pub fn connections(&self) -> u32 {
        lock(&self.seen).connections
    }

    /// Whether it received the command `seq`.
    pub fn got(&self, seq: u64) -> bool {
        lock(&self.seen).commands.contains(&seq)
    }

    /// Leaves.
    pub async fn disconnect(&self) {
        let _ = self.client.disconnect().await;
    }
}

fn lock(seen: &Mutex<Seen>) -> std::sync::MutexGuard<'_, Seen> {
    seen.lock().unwrap_or_else(|p| p.into_inner())
}

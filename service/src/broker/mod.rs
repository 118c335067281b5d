//! The embedded MQTT broker (rmqtt) with Tether's hooks, and the service's own privileged
//! MQTT client (rumqttc) that publishes to devices and stores their reports.

mod bridge;
mod hooks;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use rmqtt::codec::types::{Publish as CodecPublish, QoS};
use rmqtt::context::ServerContext;
use rmqtt::hook::Type;
use rmqtt::net::Builder;
use rmqtt::server::MqttServer;
use rmqtt::types::{From as MessageFrom, Publish};
use rmqtt::utils::timestamp_millis;
use sqlx::SqlitePool;
use tether_proto::Secret;
use tether_proto::mqtt::{self, Envelope};
use tether_proto::random::{self, ALPHANUMERIC};
use tokio::task::JoinHandle;

pub use bridge::Bridge;
pub use hooks::{SERVICE_USERNAME, Sessions};

use crate::keys::Keys;

/// How long a device has to acknowledge a notice before its session is closed anyway.
pub const NOTICE_ACK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Most simultaneous MQTT connections.
pub const MAX_CONNECTIONS: usize = 20_000;

/// A running broker.
pub struct Broker {
    addr: SocketAddr,
    scx: ServerContext,
    sessions: Arc<Sessions>,
    service_password: Secret,
    db: SqlitePool,
    subscribed: std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<String>>>,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Broker {
    /// Binds `listen` and starts the broker with the hooks registered.
    pub async fn start(
        listen: SocketAddr,
        db: SqlitePool,
        keys: Arc<Keys>,
    ) -> anyhow::Result<Self> {
        let scx = ServerContext::new().build().await;
        let sessions = Arc::new(Sessions::default());
        // The service's own client authenticates with a password that lives only in this
        // process.
        let service_password =
            Secret::new(random::string(ALPHANUMERIC, 40).context("random source")?);
        let (subscribed_tx, subscribed) = tokio::sync::mpsc::unbounded_channel();
        let hooks = || {
            Box::new(hooks::Hooks {
                scx: scx.clone(),
                db: db.clone(),
                keys: keys.clone(),
                service_password: service_password.clone(),
                sessions: sessions.clone(),
                subscribed: subscribed_tx.clone(),
            })
        };
        let register = scx.extends.hook_mgr().register();
        for typ in [
            Type::ClientAuthenticate,
            Type::ClientSubscribeCheckAcl,
            Type::MessagePublishCheckAcl,
            Type::ClientConnected,
            Type::ClientDisconnected,
            Type::SessionSubscribed,
            Type::ClientKeepalive,
            Type::MessageAcked,
        ] {
            register.add(typ, hooks()).await;
        }
        register.start().await;
        // No session exists yet: whatever the database says after a crash is stale.
        mark_all_offline(&db).await?;

        let listener = Builder::new()
            .name("tcp")
            .laddr(listen)
            .allow_anonymous(false)
            // A restarted service must be able to bind again while old connections linger.
            .reuseaddr(Some(true))
            // MQTT packets are small and answered one by one: without this, Nagle's
            // algorithm meets the peer's delayed ACK and a command waits ~40 ms.
            .nodelay(true)
            .max_connections(MAX_CONNECTIONS)
            .bind()
            .with_context(|| format!("failed to listen for MQTT on {listen}"))?
            .tcp()
            .context("MQTT listener")?;
        let addr = listener.local_addr().context("bound MQTT address")?;
        // The one listener of this broker; an explicit id since the port may be 0.
        let server = MqttServer::new(scx.clone())
            .listener_by_id(listener, 1)
            .build();
        let task = tokio::spawn(async move {
            if let Err(e) = server.run().await {
                tracing::error!(error = %e, "the MQTT broker stopped");
            }
        });
        tracing::info!(mqtt = %addr, "MQTT broker listening");
        Ok(Self {
            addr,
            scx,
            sessions,
            service_password,
            db,
            subscribed: std::sync::Mutex::new(Some(subscribed)),
            task: std::sync::Mutex::new(Some(task)),
        })
    }

    /// The dev-ids of devices as they subscribe to their in-topic (once; the first caller
    /// gets the stream).
    pub fn take_subscriptions(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<String>> {
        self.subscribed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Live device sessions.
    pub fn sessions(&self) -> &Arc<Sessions> {
        &self.sessions
    }

    /// The password of the service's own client.
    pub fn service_password(&self) -> &Secret {
        &self.service_password
    }

    /// Delivers `envelope` (QoS 1) to a device's live session and closes the session once
    /// the device acknowledged it, or after [`NOTICE_ACK_TIMEOUT`] if it does not.
    pub async fn notify_and_close(&self, dev_id: &str, envelope: &Envelope, why: &str) {
        let Some(id) = self.sessions.latest(dev_id) else {
            return;
        };
        let payload = match serde_json::to_vec(envelope) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "failed to encode a notice");
                return;
            }
        };
        let packet = CodecPublish {
            dup: false,
            retain: false,
            qos: QoS::AtLeastOnce,
            topic: mqtt::in_topic(dev_id).into(),
            packet_id: None,
            payload: payload.into(),
            properties: None,
        };
        let publish = Publish::new(Box::new(packet), None, None, Some(timestamp_millis()));
        let acked = self.sessions.expect_ack(dev_id);
        {
            let shared = self.scx.extends.shared().await;
            if shared
                .entry(id.clone())
                .publish(MessageFrom::from_system(id.clone()), publish)
                .await
                .is_err()
            {
                tracing::debug!(dev_id, "the session ended before the notice");
            }
        }
        if tokio::time::timeout(NOTICE_ACK_TIMEOUT, acked)
            .await
            .is_err()
        {
            tracing::info!(
                dev_id,
                "the device did not acknowledge the notice; closing anyway"
            );
        }
        hooks::Hooks::close(&self.scx, id, why).await;
    }

    /// Whether the broker task still runs.
    pub fn is_running(&self) -> bool {
        self.task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|t| !t.is_finished())
    }

    /// Closes every device session, stops accepting and waits until the listener is gone.
    pub async fn stop(&self) {
        for id in self.sessions.all() {
            hooks::Hooks::close(&self.scx, id, "service stopping").await;
        }
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
        // Sessions closed just now may not have run their presence hooks yet.
        if let Err(e) = mark_all_offline(&self.db).await {
            tracing::warn!(error = %e, "failed to mark devices offline at stop");
        }
    }
}

/// Marks every device offline: at start (sessions do not survive the service) and at stop.
async fn mark_all_offline(db: &SqlitePool) -> anyhow::Result<()> {
    let done = sqlx::query("UPDATE devices SET online = 0 WHERE online = 1")
        .execute(db)
        .await
        .context("failed to reset device presence")?;
    if done.rows_affected() > 0 {
        tracing::info!(devices = done.rows_affected(), "marked devices offline");
    }
    Ok(())
}

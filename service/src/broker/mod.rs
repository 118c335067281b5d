//! The embedded MQTT broker (rmqtt) with Tether's hooks, and the service's own privileged
//! MQTT client (rumqttc) that stores device reports. The service publishes to devices
//! in-process, through the broker's own routing ([`Broker::publish`]): no device or user
//! can make it send a packet its client would refuse.

mod acks;
mod bridge;
#[cfg(feature = "cluster")]
mod cluster;
mod hooks;
mod local;
mod remote;
mod subscribed;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use rmqtt::codec::types::{Publish as CodecPublish, QoS};
use rmqtt::context::ServerContext;
use rmqtt::hook::Type;
use rmqtt::net::Builder;
use rmqtt::server::MqttServer;
use rmqtt::session::SessionState;
use rmqtt::types::{ClientId, From as MessageFrom, Id, Publish};
use rmqtt::utils::timestamp_millis;
use tether_proto::Secret;
use tether_proto::mqtt::{self, Envelope, Protocol};
use tether_proto::random::{self, ALPHANUMERIC};
use tokio::task::JoinHandle;

pub use acks::Acks;
pub use bridge::Bridge;
pub use hooks::{SERVICE_USERNAME, Sessions};
pub use subscribed::Subscribed;

use crate::cluster::ClusterConfig;
use crate::db::{Db, Engine};
use crate::keys::Keys;
use crate::tls::Tls;
use local::Local;
use remote::Remote;

/// How long a device has to acknowledge a notice before its session is closed anyway.
pub const NOTICE_ACK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Most simultaneous MQTT connections.
pub const MAX_CONNECTIONS: usize = 20_000;

/// Largest MQTT packet the broker accepts from anyone (a device's report, a client's
/// CONNECT): a larger one ends that client's connection, as MQTT prescribes. The service's
/// own client reads up to [`bridge::MAX_INCOMING`], which is more, so nothing a device
/// sends can exceed what the service reads.
pub const MAX_PACKET_BYTES: u32 = 32 * 1024;

/// Keep-alive bounds for a client's CONNECT (seconds; MQTT 3.1.1 clients outside them
/// are refused, MQTT 5 ones are fitted). Zero (no keep-alive) is refused: a silent dead
/// connection would hold its session forever.
const KEEPALIVE_SECS: (u16, u16) = (1, 1200);

/// The largest payload a message to a device may have: below [`MAX_PACKET_BYTES`] with
/// room for the topic and the packet's header.
pub const MAX_DEVICE_PAYLOAD: usize = MAX_PACKET_BYTES as usize - 1024;

/// Why a message for a device was not routed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The payload is over [`MAX_DEVICE_PAYLOAD`].
    #[error("the message is {0} bytes; a device takes at most {MAX_DEVICE_PAYLOAD}")]
    TooLarge(usize),
    /// Routing failed.
    #[error("the broker could not route the message: {0}")]
    Routing(String),
}

/// A running broker.
pub struct Broker {
    addr: SocketAddr,
    /// The plain listener on loopback for the service's own client, when devices get TLS.
    internal: Option<SocketAddr>,
    scx: ServerContext,
    local: Local,
    /// The other processes on the same PostgreSQL database, which may hold a session.
    remote: Option<Remote>,
    service_password: Secret,
    db: Db,
    subscribed: Arc<Subscribed>,
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
    /// Binds `listen` (over TLS when `tls` is given) and starts the broker with the hooks
    /// registered, joined in `cluster` if given. `database_url` is the PostgreSQL server
    /// shared with other processes, if any.
    pub async fn start(
        listen: SocketAddr,
        tls: Option<&Tls>,
        (db, database_url): (Db, Option<&Secret>),
        keys: Arc<Keys>,
        cluster: Option<&ClusterConfig>,
    ) -> anyhow::Result<Self> {
        if cluster.is_some() && Engine::of(&db) != Engine::Postgres {
            anyhow::bail!("the nodes of a cluster share one PostgreSQL database (--database-url)");
        }
        let scx = context(cluster).await?;
        let sessions = Arc::new(Sessions::default());
        let acks = Arc::new(Acks::default());
        // The service's own client authenticates with a password that lives only in this
        // process.
        let service_password =
            Secret::new(random::string(ALPHANUMERIC, 40).context("random source")?);
        let subscribed = Arc::new(Subscribed::default());
        let hooks = || {
            Box::new(hooks::Hooks {
                scx: scx.clone(),
                db: db.clone(),
                keys: keys.clone(),
                service_password: service_password.clone(),
                sessions: sessions.clone(),
                acks: acks.clone(),
                subscribed: subscribed.clone(),
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
            Type::MessageAcked,
        ] {
            register.add(typ, hooks()).await;
        }
        register.start().await;
        // (Without the feature, `context` refused a cluster already.)
        #[cfg(feature = "cluster")]
        if let Some(cluster) = cluster {
            cluster::join(&scx, cluster).await?;
            cluster::watch_nodes(db.clone(), cluster.node_id);
        }
        // No session exists here yet: whatever the database says of this node's devices
        // after a crash is stale.
        mark_all_offline(&db, scx.node.id()).await?;

        let (listener, internal) = match tls {
            None => (listener(listen)?.tcp().context("MQTT listener")?, None),
            Some(tls) => {
                let public = Builder::new()
                    .tls_cert(Some(tls.cert_file.to_string_lossy()))
                    .tls_key(Some(tls.key_file.to_string_lossy()));
                let public = configure(public, listen)
                    .bind()
                    .with_context(|| format!("failed to listen for MQTT on {listen}"))?
                    .tls()
                    .context("MQTT over TLS listener")?;
                // The service's own client stays on this host: plain, on loopback.
                let inside = listener(SocketAddr::from(([127, 0, 0, 1], 0)))?
                    .tcp()
                    .context("internal MQTT listener")?;
                (public, Some(inside))
            }
        };
        let addr = listener.local_addr().context("bound MQTT address")?;
        let internal_addr = match &internal {
            Some(l) => Some(l.local_addr().context("bound internal MQTT address")?),
            None => None,
        };
        // Explicit ids, since the ports may be 0.
        let mut server = MqttServer::new(scx.clone()).listener_by_id(listener, 1);
        if let Some(inside) = internal {
            server = server.listener_by_id(inside, 2);
        }
        let server = server.build();
        let task = tokio::spawn(async move {
            if let Err(e) = server.run().await {
                tracing::error!(error = %e, "the MQTT broker stopped");
            }
        });
        tracing::info!(mqtt = %addr, tls = tls.is_some(), "MQTT broker listening");
        let local = Local {
            scx: scx.clone(),
            sessions,
            acks,
        };
        let remote = match database_url {
            Some(url) if Engine::of(&db) == Engine::Postgres => {
                Some(Remote::start(local.clone(), db.clone(), url)?)
            }
            _ => None,
        };
        Ok(Self {
            addr,
            internal: internal_addr,
            scx,
            local,
            remote,
            service_password,
            db,
            subscribed,
            task: std::sync::Mutex::new(Some(task)),
        })
    }

    /// The dev-ids of devices as they subscribe to their in-topic.
    pub fn subscriptions(&self) -> Arc<Subscribed> {
        self.subscribed.clone()
    }

    /// Routes a message of `protocol` (QoS 1) to whoever subscribes to the device's
    /// in-topic, as a publish from a client would be, and returns once it is queued to
    /// their sessions. A device that is offline does not get it.
    pub async fn publish(
        &self,
        dev_id: &str,
        protocol: Protocol,
        data: serde_json::Value,
    ) -> Result<(), PublishError> {
        self.route(dev_id, envelope(protocol, data)?).await
    }

    /// Routes a message as [`Broker::publish`] does and waits up to `wait` for the
    /// device to acknowledge it, wherever its session is; whether it did.
    pub async fn publish_acknowledged(
        &self,
        dev_id: &str,
        protocol: Protocol,
        data: serde_json::Value,
        wait: std::time::Duration,
    ) -> Result<bool, PublishError> {
        let payload = envelope(protocol, data)?;
        let digest = acks::digest(&payload);
        let acked = self.local.acks.wait(dev_id, digest);
        self.route(dev_id, payload).await?;
        let delivered = matches!(tokio::time::timeout(wait, acked).await, Ok(Ok(())));
        if !delivered {
            self.local.acks.forget(dev_id, digest);
        }
        Ok(delivered)
    }

    async fn route(&self, dev_id: &str, payload: Vec<u8>) -> Result<(), PublishError> {
        let publish = publish_packet(dev_id, payload);
        let from = MessageFrom::from_system(Id::new(
            self.scx.node.id(),
            0,
            None,
            None,
            ClientId::from_static(SERVICE_USERNAME),
            None,
        ));
        SessionState::forwards(&self.scx, from, publish, false, None)
            .await
            .map_err(|e| PublishError::Routing(e.to_string()))
    }

    /// Closes a device's live session, if any, here or at the node that holds it (its
    /// credentials were replaced).
    pub async fn close_device(&self, dev_id: &str, why: &str) {
        if !self.local.close(dev_id, why).await
            && let Some(remote) = &self.remote
        {
            remote.send(dev_id, None, why).await;
        }
    }

    /// The bound address devices use.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the service's own client connects: the plain loopback listener when devices
    /// get TLS, else the one listener.
    pub fn internal_addr(&self) -> SocketAddr {
        self.internal.unwrap_or(self.addr)
    }

    /// Live device sessions on this node.
    pub fn sessions(&self) -> &Arc<Sessions> {
        &self.local.sessions
    }

    /// This node's id in its cluster; 0 alone.
    pub fn node_id(&self) -> u64 {
        self.scx.node.id()
    }

    /// The password of the service's own client.
    pub fn service_password(&self) -> &Secret {
        &self.service_password
    }

    /// Delivers a notice of `protocol` (QoS 1) to a device's live session, here or at the
    /// node that holds it, and closes the session once the device acknowledged it, or
    /// after [`NOTICE_ACK_TIMEOUT`] if it does not.
    pub async fn notify_and_close(&self, dev_id: &str, protocol: Protocol, why: &str) {
        if !self.local.notify_and_close(dev_id, protocol, why).await
            && let Some(remote) = &self.remote
        {
            remote.send(dev_id, Some(protocol), why).await;
        }
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
        self.subscribed.close();
        for id in self.local.sessions.all() {
            hooks::Hooks::close(&self.scx, id, "service stopping").await;
        }
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
        // Sessions closed just now may not have run their presence hooks yet.
        if let Err(e) = mark_all_offline(&self.db, self.node_id()).await {
            tracing::warn!(error = %e, "failed to mark devices offline at stop");
        }
    }
}

/// The encoded envelope of a message sent now, refused when a device could not take it.
fn envelope(protocol: Protocol, data: serde_json::Value) -> Result<Vec<u8>, PublishError> {
    let envelope = Envelope {
        protocol,
        t: crate::unix_now(),
        data,
    };
    let payload =
        serde_json::to_vec(&envelope).map_err(|e| PublishError::Routing(e.to_string()))?;
    if payload.len() > MAX_DEVICE_PAYLOAD {
        return Err(PublishError::TooLarge(payload.len()));
    }
    Ok(payload)
}

/// A QoS 1 publish of `payload` to a device's in-topic.
fn publish_packet(dev_id: &str, payload: Vec<u8>) -> Publish {
    let packet = CodecPublish {
        dup: false,
        retain: false,
        qos: QoS::AtLeastOnce,
        topic: mqtt::in_topic(dev_id).into(),
        packet_id: None,
        payload: payload.into(),
        properties: None,
    };
    Publish::new(Box::new(packet), None, None, Some(timestamp_millis()))
}

/// The broker's context: node 0 alone, or a node of `cluster` with the plugin's settings.
async fn context(cluster: Option<&ClusterConfig>) -> anyhow::Result<ServerContext> {
    match cluster {
        None => Ok(ServerContext::new().build().await),
        #[cfg(feature = "cluster")]
        Some(cluster) => Ok(cluster::context(cluster).await?.build().await),
        #[cfg(not(feature = "cluster"))]
        Some(_) => anyhow::bail!("this tether-service was built without the `cluster` feature"),
    }
}

/// Marks offline every device whose session was on node `node`: at start (sessions do
/// not survive the service) and at stop.
async fn mark_all_offline(db: &Db, node: u64) -> anyhow::Result<()> {
    let done = crate::devices::store::mark_all_offline(db, node)
        .await
        .context("failed to reset device presence")?;
    if done > 0 {
        tracing::info!(devices = done, "marked devices offline");
    }
    Ok(())
}

/// A plain listener on `listen` with the broker's limits.
fn listener(listen: SocketAddr) -> anyhow::Result<rmqtt::net::Listener> {
    configure(Builder::new(), listen)
        .bind()
        .with_context(|| format!("failed to listen for MQTT on {listen}"))
}

/// The broker's limits on a listener builder.
fn configure(builder: Builder, listen: SocketAddr) -> Builder {
    builder
        .name("tcp")
        .laddr(listen)
        .allow_anonymous(false)
        // A restarted service must be able to bind again while old connections linger.
        .reuseaddr(Some(true))
        // MQTT packets are small and answered one by one: without this, Nagle's
        // algorithm meets the peer's delayed ACK and a command waits ~40 ms.
        .nodelay(true)
        .max_connections(MAX_CONNECTIONS)
        .max_packet_size(MAX_PACKET_BYTES)
        .allow_zero_keepalive(false)
        .min_keepalive(KEEPALIVE_SECS.0)
        .max_keepalive(KEEPALIVE_SECS.1)
}

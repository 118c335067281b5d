//! The broker's in-process hooks: device JWT authentication (signature, audience, expiry,
//! and the device generation, so unbound or re-activated devices' passwords stop
//! working), the per-device topic ACL (subscribes, publishes, retained flags and last
//! wills), presence from connect and disconnect, and closing sessions at the moment their
//! credentials expire.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rmqtt::acl::AuthInfo;
use rmqtt::codec::v5::SubscribeAckReason;
use rmqtt::context::ServerContext;
use rmqtt::hook::{Handler, HookResult, Parameter, ReturnType};
use rmqtt::session::Session;
use rmqtt::types::{
    AuthResult, ConnectInfo, Disconnect, Id, LastWill, Message, PublishAclResult, Reason,
    SubscribeAclResult,
};
use subtle::ConstantTimeEq;
use tether_proto::{Secret, mqtt};
use tokio::sync::oneshot;

use super::Subscribed;
use crate::db::Db;
use crate::keys::{DeviceClaims, Keys, MQTT_AUDIENCE};

/// The MQTT username of the service's own privileged client.
pub const SERVICE_USERNAME: &str = "tether-service";

/// A device's live sessions: how many connections (a reconnect may overlap the old one),
/// the id of the newest, for closing it, and the timer that closes it when its
/// credentials expire.
struct Live {
    count: u32,
    id: Id,
    expiry: tokio::task::AbortHandle,
}

/// Live sessions by dev-id.
#[derive(Default)]
pub struct Sessions {
    live: Mutex<HashMap<String, Live>>,
    /// Waiters for a device's acknowledgement of a notice (see `Broker::notify_and_close`).
    acks: Mutex<HashMap<String, oneshot::Sender<()>>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("online", &self.online())
            .finish_non_exhaustive()
    }
}

impl Sessions {
    /// Records a new session; `expiry` closes it when its credentials expire (the timer
    /// of a session it replaces is stopped). Whether the device just came online.
    fn connected(&self, dev_id: &str, id: Id, expiry: tokio::task::AbortHandle) -> bool {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        match live.get_mut(dev_id) {
            Some(entry) => {
                entry.count += 1;
                entry.id = id;
                std::mem::replace(&mut entry.expiry, expiry).abort();
                false
            }
            None => {
                live.insert(
                    dev_id.to_owned(),
                    Live {
                        count: 1,
                        id,
                        expiry,
                    },
                );
                true
            }
        }
    }

    /// Whether the device just went offline.
    fn disconnected(&self, dev_id: &str) -> bool {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        match live.get_mut(dev_id) {
            Some(entry) if entry.count > 1 => {
                entry.count -= 1;
                false
            }
            Some(_) => {
                if let Some(entry) = live.remove(dev_id) {
                    entry.expiry.abort();
                }
                true
            }
            None => false,
        }
    }

    /// The newest session of a device.
    pub fn latest(&self, dev_id: &str) -> Option<Id> {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.get(dev_id).map(|entry| entry.id.clone())
    }

    /// Waits for the next message the device acknowledges.
    pub fn expect_ack(&self, dev_id: &str) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        self.acks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(dev_id.to_owned(), tx);
        rx
    }

    fn acked(&self, dev_id: &str) {
        if let Some(waiter) = self
            .acks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(dev_id)
        {
            let _ = waiter.send(());
        }
    }

    /// The newest session of every online device.
    pub fn all(&self) -> Vec<Id> {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|entry| entry.id.clone())
            .collect()
    }

    /// How many devices are online.
    pub fn online(&self) -> usize {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// The hook handler.
pub struct Hooks {
    pub(super) scx: ServerContext,
    pub(super) db: Db,
    pub(super) keys: Arc<Keys>,
    pub(super) service_password: Secret,
    pub(super) sessions: Arc<Sessions>,
    pub(super) acks: Arc<super::Acks>,
    /// Dev-ids of devices that just subscribed to their in-topic.
    pub(super) subscribed: Arc<Subscribed>,
}

fn refuse(result: AuthResult) -> ReturnType {
    (false, Some(HookResult::AuthResult(result)))
}

impl Hooks {
    async fn authenticate(&self, info: &ConnectInfo) -> ReturnType {
        let client_id = info.client_id().as_ref();
        let username = info.username().map(|u| u.as_ref()).unwrap_or_default();
        let password = info.password().map(|p| p.as_ref()).unwrap_or_default();
        if username == SERVICE_USERNAME {
            let ok: bool = password
                .ct_eq(self.service_password.expose().as_bytes())
                .into();
            if !ok {
                return refuse(AuthResult::BadUsernameOrPassword);
            }
            let auth = AuthInfo {
                superuser: true,
                expire_at: None,
                rules: Vec::new(),
            };
            return (
                false,
                Some(HookResult::AuthResult(AuthResult::Allow(true, Some(auth)))),
            );
        }
        let Ok(token) = std::str::from_utf8(password) else {
            return refuse(AuthResult::BadUsernameOrPassword);
        };
        let Some(claims) = self.keys.verify::<DeviceClaims>(token, MQTT_AUDIENCE) else {
            tracing::info!(
                client_id,
                "MQTT login refused: invalid or expired credentials"
            );
            return refuse(AuthResult::BadUsernameOrPassword);
        };
        if claims.sub != client_id || claims.sub != username {
            tracing::info!(
                client_id,
                "MQTT login refused: client id and username must be the dev-id"
            );
            return refuse(AuthResult::NotAuthorized);
        }
        if let Err(why) = device_connect_allowed(info, &claims.sub) {
            tracing::info!(client_id, "MQTT login refused: {why}");
            return refuse(AuthResult::NotAuthorized);
        }
        let generation = match crate::devices::store::generation(&self.db, &claims.sub).await {
            Ok(g) => g,
            Err(e) => {
                tracing::error!(error = %e, "MQTT login refused: database unavailable");
                return refuse(AuthResult::NotAuthorized);
            }
        };
        if generation != Some(claims.generation) {
            tracing::info!(client_id, "MQTT login refused: credentials revoked");
            return refuse(AuthResult::NotAuthorized);
        }
        let auth = AuthInfo {
            superuser: false,
            expire_at: Some(Duration::from_secs(claims.exp)),
            rules: Vec::new(),
        };
        (
            false,
            Some(HookResult::AuthResult(AuthResult::Allow(false, Some(auth)))),
        )
    }

    async fn presence(&self, session: &Session, online: bool) {
        let Some(dev_id) = device_of(session) else {
            return;
        };
        let changed = if online {
            let expiry = self.expiry_timer(session);
            self.sessions.connected(&dev_id, session.id.clone(), expiry)
        } else {
            self.sessions.disconnected(&dev_id)
        };
        if !changed {
            return;
        }
        let now = crate::db_time(crate::unix_now());
        let node = self.scx.node.id();
        let result =
            crate::devices::store::set_presence(&self.db, &dev_id, online, now, node).await;
        match result {
            Ok(true) => {
                tracing::info!(dev_id, online, "device presence")
            }
            Ok(_) if !online => {
                tracing::debug!(
                    dev_id,
                    "a session ended after the device connected elsewhere, or was unbound"
                )
            }
            Ok(_) => tracing::warn!(dev_id, online, "presence of a device that is not bound"),
            // The service is stopping; `Broker::stop` marks every device offline.
            Err(_) if self.db.is_closed() => {
                tracing::debug!(dev_id, online, "presence after the database closed")
            }
            Err(e) => tracing::error!(error = %e, dev_id, "failed to record presence"),
        }
    }

    /// A task that closes the session when its credentials expire, even if it sends
    /// nothing (a keep-alive check alone would wait for its next packet).
    fn expiry_timer(&self, session: &Session) -> tokio::task::AbortHandle {
        let expire_at = session
            .auth_info
            .as_ref()
            .and_then(|a| a.expire_at)
            .unwrap_or_default();
        let left = expire_at.saturating_sub(Duration::from_secs(crate::unix_now()));
        let scx = self.scx.clone();
        let id = session.id.clone();
        tokio::spawn(async move {
            tokio::time::sleep(left).await;
            tracing::info!(client = %id.client_id, "closing a session whose credentials expired");
            Self::close(&scx, id, "credentials expired").await;
        })
        .abort_handle()
    }

    /// Closes a session.
    pub(super) async fn close(scx: &ServerContext, id: Id, why: &str) {
        if let Some(tx) = scx.extends.shared().await.entry(id).tx() {
            let reason = Reason::ConnectDisconnect(Some(Disconnect::Other(why.to_owned().into())));
            if tx.unbounded_send(Message::Closed(reason)).is_err() {
                tracing::debug!("session already gone");
            }
        }
    }
}

/// What a device may ask for when it connects, beyond its credentials: a last will only
/// on its own out-topic and not retained. The broker publishes a will for the device
/// after it is gone, past the publish ACL, so a will on another device's in-topic would
/// command that device. (Keep-alive 0 is refused by the listener itself.)
fn device_connect_allowed(info: &ConnectInfo, dev_id: &str) -> Result<(), &'static str> {
    if let Some(will) = info.last_will() {
        if will.retain() {
            return Err("a retained last will is not accepted");
        }
        let topic = match will {
            LastWill::V3(lw) => &lw.topic,
            LastWill::V5(lw) => &lw.topic,
        };
        if topic.as_ref() as &str != mqtt::out_topic(dev_id) {
            return Err("a last will may name only the device's own out-topic");
        }
    }
    Ok(())
}

/// The dev-id of a device session; `None` for the service's own client.
fn device_of(session: &Session) -> Option<String> {
    let superuser = session.auth_info.as_ref().is_some_and(|a| a.superuser);
    (!superuser).then(|| session.id.client_id.to_string())
}

#[async_trait]
impl Handler for Hooks {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        match param {
            Parameter::ClientAuthenticate(info) => return self.authenticate(info).await,
            Parameter::ClientSubscribeCheckAcl(session, subscribe) => {
                let allowed = match device_of(session) {
                    None => true,
                    Some(dev_id) => {
                        subscribe.topic_filter.as_ref() as &str == mqtt::in_topic(&dev_id)
                    }
                };
                let result = if allowed {
                    SubscribeAclResult::new_success(subscribe.opts.qos(), None)
                } else {
                    tracing::info!(client = %session.id.client_id, topic = %subscribe.topic_filter, "subscribe refused by ACL");
                    SubscribeAclResult::new_failure(SubscribeAckReason::NotAuthorized)
                };
                return (false, Some(HookResult::SubscribeAclResult(result)));
            }
            Parameter::MessagePublishCheckAcl(session, publish) => {
                // Devices publish only on their own out-topic, and never retained: a
                // retained message would outlive the session and its credentials.
                let allowed = match device_of(session) {
                    None => true,
                    Some(dev_id) => {
                        publish.topic.as_ref() as &str == mqtt::out_topic(&dev_id)
                            && !publish.retain
                    }
                };
                let result = if allowed {
                    PublishAclResult::allow()
                } else {
                    tracing::info!(client = %session.id.client_id, topic = %publish.topic, "publish refused by ACL");
                    PublishAclResult::rejected(true, Some("publish refused by ACL".into()))
                };
                return (false, Some(HookResult::PublishAclResult(result)));
            }
            Parameter::ClientConnected(session) => self.presence(session, true).await,
            Parameter::SessionSubscribed(session, _) => {
                // The device now receives its in-topic: notices waiting for it can go.
                if let Some(dev_id) = device_of(session) {
                    self.subscribed.push(dev_id);
                }
            }
            Parameter::MessageAcked(session, _, publish) => {
                if let Some(dev_id) = device_of(session) {
                    self.sessions.acked(&dev_id);
                    self.acks.acked_payload(&dev_id, &publish.payload);
                }
            }
            Parameter::ClientDisconnected(session, _) => self.presence(session, false).await,
            _ => {}
        }
        (true, acc)
    }
}

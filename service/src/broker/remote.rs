//! Session actions for the other service processes that share this one's PostgreSQL
//! database: a device's session may be held by another node (a cluster, or nodes behind
//! a balancer), so closing it or delivering a notice is also published on one channel
//! ([`crate::notify`]) and done by whichever process holds the session (client ids are
//! held once across a cluster, so at most one acts); and a device's acknowledgement of a
//! message that no request here waits for goes to the others, one of which may wait.
//!
//! A gap in listening loses the actions sent meanwhile: the sessions they named keep
//! running until their credentials expire, a request waiting for an acknowledgement
//! answers that the message was not delivered, and the gap is logged.

use serde::{Deserialize, Serialize};
use tether_proto::Secret;
use tether_proto::mqtt::Protocol;
use tokio::sync::mpsc;

use super::local::Local;
use crate::db::Db;

/// The PostgreSQL channel the actions travel on.
const CHANNEL: &str = "tether_session_actions";
/// What the channel carries, for log lines.
const WHAT: &str = "session action";

/// One message on the channel.
#[derive(Debug, Serialize, Deserialize)]
struct Message {
    /// The sending process (it already did its part).
    from: u64,
    dev_id: String,
    action: Action,
}

/// What the message asks.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Action {
    /// Close the device's session, after a notice if given.
    Close {
        notice: Option<Protocol>,
        why: String,
    },
    /// The device acknowledged the message with this digest.
    Acked { digest: u64 },
}

/// Sends this process's actions to the others and does theirs.
#[derive(Debug)]
pub(super) struct Remote {
    me: u64,
    tx: mpsc::Sender<String>,
}

impl Remote {
    /// Publishes through `db` and listens with a connection of its own to `url`.
    pub(super) fn start(local: Local, db: Db, url: &Secret) -> anyhow::Result<Self> {
        let mut me = [0u8; 8];
        getrandom::fill(&mut me).map_err(|e| anyhow::anyhow!("random source: {e}"))?;
        let me = u64::from_le_bytes(me);
        let tx = crate::notify::sender(db, CHANNEL, WHAT);
        let relay = tx.clone();
        local.acks.send_to_others(Box::new(move |dev_id, digest| {
            let message = Message {
                from: me,
                dev_id: dev_id.to_owned(),
                action: Action::Acked { digest },
            };
            // Not awaited in the broker's hook: a full queue loses this acknowledgement,
            // and the waiting request answers `not_delivered`, which it may retry.
            if let Some(payload) = encode(&message)
                && relay.try_send(payload).is_err()
            {
                tracing::warn!(
                    dev_id,
                    "too many session actions queued; an acknowledgement was not passed on"
                );
            }
        }));
        crate::notify::listen(url.clone(), CHANNEL, WHAT, move |payload| {
            let Some(payload) = payload else {
                tracing::warn!("session actions sent while the listener was away are lost");
                return;
            };
            let message: Message = match serde_json::from_str(payload) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "ignored a malformed session action");
                    return;
                }
            };
            if message.from != me {
                act(&local, message);
            }
        });
        Ok(Self { me, tx })
    }

    /// Asks the other processes to close the device's session, after `notice` if given.
    pub(super) async fn send(&self, dev_id: &str, notice: Option<Protocol>, why: &str) {
        let message = Message {
            from: self.me,
            dev_id: dev_id.to_owned(),
            action: Action::Close {
                notice,
                why: why.to_owned(),
            },
        };
        // Waits while the queue is full rather than drop an action.
        if let Some(payload) = encode(&message)
            && self.tx.send(payload).await.is_err()
        {
            tracing::error!(dev_id, "the session action sender stopped");
        }
    }
}

/// Does another process's `message` here.
fn act(local: &Local, message: Message) {
    let Message { dev_id, action, .. } = message;
    match action {
        Action::Acked { digest } => {
            local.acks.acked_here(&dev_id, digest);
        }
        Action::Close { notice, why } => {
            let local = local.clone();
            // A notice waits for the device's acknowledgement: not in the listener.
            tokio::spawn(async move {
                let held = match notice {
                    Some(protocol) => local.notify_and_close(&dev_id, protocol, &why).await,
                    None => local.close(&dev_id, &why).await,
                };
                if held {
                    tracing::info!(dev_id, why, "closed a session at another node's request");
                }
            });
        }
    }
}

fn encode(message: &Message) -> Option<String> {
    serde_json::to_string(message)
        .inspect_err(|e| tracing::error!(error = %e, "failed to encode a session action"))
        .ok()
}

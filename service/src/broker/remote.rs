//! Session actions for the other service processes that share this one's PostgreSQL
//! database: a device's session may be held by another node (a cluster, or nodes behind
//! a balancer), so closing it or delivering a notice is also published on one channel
//! ([`crate::notify`]) and done by whichever process holds the session. Client ids are
//! held once across a cluster, so at most one acts.
//!
//! A gap in listening loses the actions sent meanwhile; the sessions they named keep
//! running until their credentials expire, and the gap is logged.

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

/// One action, as sent.
#[derive(Debug, Serialize, Deserialize)]
struct Action {
    /// The sending process (it already acted itself).
    from: u64,
    dev_id: String,
    /// A notice to deliver before closing; none: close at once.
    notice: Option<Protocol>,
    why: String,
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
        crate::notify::listen(url.clone(), CHANNEL, WHAT, move |payload| {
            let Some(payload) = payload else {
                tracing::warn!("session actions sent while the listener was away are lost");
                return;
            };
            let action: Action = match serde_json::from_str(payload) {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "ignored a malformed session action");
                    return;
                }
            };
            if action.from == me {
                return;
            }
            let local = local.clone();
            // A notice waits for the device's acknowledgement: not in the listener.
            tokio::spawn(async move {
                let held = match action.notice {
                    Some(protocol) => {
                        local
                            .notify_and_close(&action.dev_id, protocol, &action.why)
                            .await
                    }
                    None => local.close(&action.dev_id, &action.why).await,
                };
                if held {
                    tracing::info!(
                        dev_id = action.dev_id,
                        why = action.why,
                        "closed a session at another node's request"
                    );
                }
            });
        });
        Ok(Self {
            me,
            tx: crate::notify::sender(db, CHANNEL, WHAT),
        })
    }

    /// Asks the other processes to close the device's session, after `notice` if given.
    pub(super) async fn send(&self, dev_id: &str, notice: Option<Protocol>, why: &str) {
        let action = Action {
            from: self.me,
            dev_id: dev_id.to_owned(),
            notice,
            why: why.to_owned(),
        };
        let payload = match serde_json::to_string(&action) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "failed to encode a session action");
                return;
            }
        };
        // Waits while the queue is full rather than drop an action.
        if self.tx.send(payload).await.is_err() {
            tracing::error!(dev_id, "the session action sender stopped");
        }
    }
}

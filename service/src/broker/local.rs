//! What this node does to the device sessions it holds: close one (its credentials were
//! replaced), or deliver a notice first and close it once the device acknowledged it.
//! [`super::Broker`] asks here first, and asks the other nodes ([`super::remote`]) for
//! a session held elsewhere.

use std::sync::Arc;

use rmqtt::context::ServerContext;
use rmqtt::types::From as MessageFrom;
use tether_proto::mqtt::Protocol;

use super::{Acks, NOTICE_ACK_TIMEOUT, Sessions, envelope, hooks, publish_packet};

/// This node's device sessions and the broker that holds them.
#[derive(Clone)]
pub(super) struct Local {
    pub(super) scx: ServerContext,
    pub(super) sessions: Arc<Sessions>,
    /// Waiters for devices' acknowledgements of single messages.
    pub(super) acks: Arc<Acks>,
}

impl Local {
    /// Closes the device's session here, if it has one; whether it had.
    pub(super) async fn close(&self, dev_id: &str, why: &str) -> bool {
        let Some(id) = self.sessions.latest(dev_id) else {
            return false;
        };
        hooks::Hooks::close(&self.scx, id, why).await;
        true
    }

    /// Delivers a notice of `protocol` (QoS 1) to the device's session here, if it has
    /// one, and closes the session once the device acknowledged it, or after
    /// [`NOTICE_ACK_TIMEOUT`] if it does not; whether it had one.
    pub(super) async fn notify_and_close(
        &self,
        dev_id: &str,
        protocol: Protocol,
        why: &str,
    ) -> bool {
        let Some(id) = self.sessions.latest(dev_id) else {
            return false;
        };
        // Unbind and reset carry no data: an empty object.
        let payload = match envelope(protocol, serde_json::Map::new().into()) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "failed to encode a notice");
                return true;
            }
        };
        let publish = publish_packet(dev_id, payload);
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
        true
    }
}

//! Waiting for a device to acknowledge one message (its PUBACK), for commands sent with
//! `?wait`: a message is known by its device and a digest of its payload, so the node
//! that holds the session can tell the node that waits without either keeping an id. An
//! acknowledgement nobody here waits for is handed to the other processes (when some
//! share the database), whose API request may be the one waiting.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

/// Where acknowledgements nobody here waits for go.
type Relay = Box<dyn Fn(&str, u64) + Send + Sync>;

/// Waiters by (dev-id, payload digest).
type Waiting = HashMap<(String, u64), Vec<oneshot::Sender<()>>>;

/// Waiters by (dev-id, payload digest).
#[derive(Default)]
pub struct Acks {
    waiting: Mutex<Waiting>,
    others: OnceLock<Relay>,
}

impl std::fmt::Debug for Acks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acks").finish_non_exhaustive()
    }
}

/// The digest a message is known by.
pub fn digest(payload: &[u8]) -> u64 {
    let hash = Sha256::digest(payload);
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash[..8]);
    u64::from_le_bytes(first)
}

impl Acks {
    /// Resolves once `dev_id` acknowledges the message with `digest`.
    pub fn wait(&self, dev_id: &str, digest: u64) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        self.lock()
            .entry((dev_id.to_owned(), digest))
            .or_default()
            .push(tx);
        rx
    }

    /// Drops the waiters of a message that was not acknowledged in time.
    pub fn forget(&self, dev_id: &str, digest: u64) {
        let mut waiting = self.lock();
        let key = (dev_id.to_owned(), digest);
        if let Some(waiters) = waiting.get_mut(&key) {
            waiters.retain(|w| !w.is_closed());
            if waiters.is_empty() {
                waiting.remove(&key);
            }
        }
    }

    /// A device acknowledged the message with `payload` on this node: wakes its
    /// waiters here, or tells the other processes when there are none. Nothing to hash
    /// when no request here waits and no other process could.
    pub fn acked_payload(&self, dev_id: &str, payload: &[u8]) {
        if self.others.get().is_some() || !self.lock().is_empty() {
            self.acked(dev_id, digest(payload));
        }
    }

    /// A device acknowledged the message with `digest` on this node: wakes its waiters
    /// here, or tells the other processes when there are none.
    pub fn acked(&self, dev_id: &str, digest: u64) {
        if !self.acked_here(dev_id, digest)
            && let Some(relay) = self.others.get()
        {
            relay(dev_id, digest);
        }
    }

    /// Wakes the waiters of this process; whether there were any.
    pub fn acked_here(&self, dev_id: &str, digest: u64) -> bool {
        let waiters = self.lock().remove(&(dev_id.to_owned(), digest));
        let Some(waiters) = waiters else {
            return false;
        };
        for waiter in waiters {
            let _ = waiter.send(());
        }
        true
    }

    /// Hands acknowledgements nobody here waits for to `relay`; false if one was set.
    pub fn send_to_others(&self, relay: Relay) -> bool {
        self.others.set(relay).is_ok()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_ack_wakes_the_waiters_of_its_message_only_and_others_get_the_rest() {
        let acks = Acks::default();
        let relayed = std::sync::Arc::new(Mutex::new(Vec::new()));
        let seen = relayed.clone();
        assert!(acks.send_to_others(Box::new(move |dev, d| {
            seen.lock().expect("lock").push((dev.to_owned(), d))
        })));
        let a = acks.wait("d1", 1);
        let b = acks.wait("d1", 2);
        acks.acked("d1", 1);
        a.await.expect("woken");
        acks.acked("d2", 1);
        assert_eq!(*relayed.lock().expect("lock"), vec![("d2".to_owned(), 1)]);
        drop(b);
        acks.forget("d1", 2);
        assert!(acks.lock().is_empty(), "a forgotten wait leaves nothing");
        assert_ne!(digest(b"x"), digest(b"y"));
    }
}

//! The devices that just subscribed to their in-topic, waiting for the notices kept for
//! them: a set, so a device that subscribes in a loop takes one place, not one per
//! subscribe, and the queue never holds more than one entry per device.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// A de-duplicated queue of dev-ids.
#[derive(Debug, Default)]
pub struct Subscribed {
    queue: Mutex<(VecDeque<String>, HashSet<String>)>,
    wake: Notify,
    closed: AtomicBool,
}

impl Subscribed {
    /// Queues `dev_id` unless it is already waiting.
    pub fn push(&self, dev_id: String) {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let (order, waiting) = &mut *queue;
        if waiting.insert(dev_id.clone()) {
            order.push_back(dev_id);
            self.wake.notify_one();
        }
    }

    /// The next dev-id, waiting for one; `None` once the broker stopped.
    pub async fn next(&self) -> Option<String> {
        loop {
            let notified = self.wake.notified();
            if self.closed.load(Ordering::Acquire) {
                return None;
            }
            if let Some(dev_id) = self.try_next() {
                return Some(dev_id);
            }
            notified.await;
        }
    }

    /// Ends every wait: the broker stopped.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.wake.notify_waiters();
    }

    fn try_next(&self) -> Option<String> {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let (order, waiting) = &mut *queue;
        let dev_id = order.pop_front()?;
        waiting.remove(&dev_id);
        Some(dev_id)
    }

    /// How many devices wait.
    pub fn len(&self) -> usize {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).0.len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_device_that_subscribes_again_and_again_waits_once() {
        let queue = Subscribed::default();
        for _ in 0..10_000 {
            queue.push("d1".into());
        }
        queue.push("d2".into());
        assert_eq!(queue.len(), 2);
        assert_eq!(queue.next().await.as_deref(), Some("d1"));
        assert_eq!(queue.next().await.as_deref(), Some("d2"));
        assert!(queue.is_empty());
        // Once taken, it may wait again.
        queue.push("d1".into());
        assert_eq!(queue.next().await.as_deref(), Some("d1"));
        // Closing ends a wait.
        let queue = std::sync::Arc::new(queue);
        let waiting = tokio::spawn({
            let queue = queue.clone();
            async move { queue.next().await }
        });
        tokio::task::yield_now().await;
        queue.close();
        assert_eq!(waiting.await.expect("ends"), None);
    }
}

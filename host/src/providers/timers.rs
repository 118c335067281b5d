//! One-shot timers by id; setting an id again replaces its timer.

use std::collections::HashMap;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::Events;
use crate::runtime::wit::Event;

/// The armed timers.
pub struct Timers {
    armed: HashMap<u32, JoinHandle<()>>,
    events: Events,
}

impl Timers {
    pub fn new(events: Events) -> Self {
        Self {
            armed: HashMap::new(),
            events,
        }
    }

    pub fn set(&mut self, id: u32, after_ms: u32) {
        self.cancel(id);
        let events = self.events.clone();
        self.armed.retain(|_, task| !task.is_finished());
        let task = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(u64::from(after_ms))).await;
            let _ = events.send(Event::TimerFired(id));
        });
        self.armed.insert(id, task);
    }

    pub fn cancel(&mut self, id: u32) {
        if let Some(task) = self.armed.remove(&id) {
            task.abort();
        }
    }
}

//! Bounds on guessing the setup code: every handshake counts as a failure until its key
//! confirmation passes; after a failure the next handshake waits, twice as long each
//! time; after [`MAX_FAILURES`] the channel locks until the pairing window is opened on
//! the device. The count and the lock are kept in `kv`, so a restart does not reset them.

use serde::{Deserialize, Serialize};

/// Failed handshakes that lock the channel.
pub const MAX_FAILURES: u32 = 5;
/// The wait after the first failure; it doubles with each further one.
pub const BACKOFF_BASE_MS: u64 = 500;

/// What the guard keeps across restarts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardRecord {
    /// Handshakes since the last success that did not confirm.
    pub failures: u32,
}

/// Why a handshake may not start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Locked until the window is opened locally.
    Locked,
    /// Wait this long.
    Backoff(u64),
}

/// The guard: the record and, in memory, when the last handshake began.
#[derive(Debug, Default)]
pub struct Guard {
    record: GuardRecord,
    last_attempt_ms: Option<u64>,
}

impl Guard {
    /// A guard from what `kv` held.
    pub fn new(record: GuardRecord) -> Self {
        Self {
            record,
            last_attempt_ms: None,
        }
    }

    /// The record to keep.
    pub fn record(&self) -> GuardRecord {
        self.record
    }

    /// Whether the channel is locked.
    pub fn locked(&self) -> bool {
        self.record.failures >= MAX_FAILURES
    }

    /// Whether a handshake may start at `now_ms`.
    pub fn check(&self, now_ms: u64) -> Result<(), Refusal> {
        if self.locked() {
            return Err(Refusal::Locked);
        }
        match (self.record.failures, self.last_attempt_ms) {
            (0, _) | (_, None) => Ok(()),
            (failures, Some(last)) => {
                let wait = BACKOFF_BASE_MS << (failures - 1).min(20);
                let ready = last.saturating_add(wait);
                if now_ms >= ready {
                    Ok(())
                } else {
                    Err(Refusal::Backoff(ready - now_ms))
                }
            }
        }
    }

    /// A handshake begins: it counts as failed until [`Guard::confirmed`].
    pub fn attempt(&mut self, now_ms: u64) {
        self.record.failures = self.record.failures.saturating_add(1);
        self.last_attempt_ms = Some(now_ms);
    }

    /// A handshake confirmed: the count starts over.
    pub fn confirmed(&mut self) {
        self.record.failures = 0;
        self.last_attempt_ms = None;
    }

    /// The window was opened locally: unlocked, count cleared.
    pub fn reset(&mut self) {
        self.confirmed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_exponentially_then_lock_until_reset() {
        let mut guard = Guard::default();
        let mut now = 1_000;
        let mut waits = Vec::new();
        for _ in 0..MAX_FAILURES {
            assert_eq!(guard.check(now), Ok(()));
            guard.attempt(now);
            match guard.check(now) {
                Err(Refusal::Backoff(ms)) => {
                    waits.push(ms);
                    assert_eq!(guard.check(now + ms - 1), Err(Refusal::Backoff(1)));
                    now += ms;
                }
                Err(Refusal::Locked) => break,
                Ok(()) => panic!("no wait after a failure"),
            }
        }
        assert_eq!(waits, [500, 1_000, 2_000, 4_000]);
        assert!(guard.locked());
        assert_eq!(guard.check(now + 1_000_000), Err(Refusal::Locked));
        // Kept across a restart.
        let restarted = Guard::new(guard.record());
        assert_eq!(restarted.check(0), Err(Refusal::Locked));
        guard.reset();
        assert_eq!(guard.check(now), Ok(()));
    }

    #[test]
    fn a_confirmed_handshake_clears_the_count() {
        let mut guard = Guard::default();
        guard.attempt(0);
        guard.confirmed();
        assert_eq!(guard.record(), GuardRecord::default());
        assert_eq!(guard.check(0), Ok(()));
    }
}

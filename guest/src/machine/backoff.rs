//! Jittered exponential backoff ("equal jitter": half the delay fixed, half random), with
//! its own small PRNG so the machine stays deterministic for a given seed.

use serde::{Deserialize, Serialize};

/// Retry delays for one kind of work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backoff {
    base_ms: u32,
    cap_ms: u32,
    attempt: u32,
    rng: u64,
}

impl Backoff {
    /// Cloud requests: 0.5 s doubling to 30 s.
    pub fn cloud(seed: u64) -> Self {
        Self::new(500, 30_000, seed)
    }

    /// MQTT and network reconnects: 1 s doubling to 60 s.
    pub fn mqtt(seed: u64) -> Self {
        Self::new(1_000, 60_000, seed)
    }

    fn new(base_ms: u32, cap_ms: u32, seed: u64) -> Self {
        // xorshift needs a non-zero state.
        Self {
            base_ms,
            cap_ms,
            attempt: 0,
            rng: if seed == 0 {
                0x9e37_79b9_7f4a_7c15
            } else {
                seed
            },
        }
    }

    /// The next delay: between half and all of `base · 2^attempt`, capped.
    pub fn next_ms(&mut self) -> u32 {
        let exp = u64::from(self.base_ms) << self.attempt.min(16);
        let full = exp.min(u64::from(self.cap_ms));
        self.attempt = self.attempt.saturating_add(1);
        let half = full / 2;
        let delay = half + self.random() % (half + 1);
        u32::try_from(delay).unwrap_or(self.cap_ms)
    }

    /// Starts over after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The PRNG state, to seed a fresh machine.
    pub fn seed(&self) -> u64 {
        self.rng
    }

    fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_within_their_jitter_band_up_to_the_cap_and_reset() {
        let mut b = Backoff::cloud(42);
        let mut full = 500u32;
        for _ in 0..10 {
            let d = b.next_ms();
            assert!(
                (full / 2..=full).contains(&d),
                "{d} outside {}..={full}",
                full / 2
            );
            full = (full * 2).min(30_000);
        }
        b.reset();
        assert!(b.next_ms() <= 500);
    }

    #[test]
    fn different_seeds_spread_retries() {
        let a: Vec<u32> = {
            let mut b = Backoff::cloud(1);
            (0..5).map(|_| b.next_ms()).collect()
        };
        let c: Vec<u32> = {
            let mut b = Backoff::cloud(2);
            (0..5).map(|_| b.next_ms()).collect()
        };
        assert_ne!(a, c);
    }
}

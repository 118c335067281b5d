//! Fixed-window rate limits kept in memory, per key (a client address, a username, a
//! user, a device, a token's public id). A refusal says how many seconds remain in the
//! window, for `Retry-After`. Keys are validated and short before they get here, and the
//! maps sweep windows that ended, so a flood of new keys costs bounded memory.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::ApiError;
use crate::expiring::Expiring;

/// A limit of `max` events per `window` for each key.
#[derive(Debug)]
pub struct RateLimit {
    max: u32,
    window: Duration,
    windows: Mutex<Expiring<String, (Instant, u32)>>,
}

impl RateLimit {
    /// A limit of `max` events per `window`.
    pub fn new(max: u32, window: Duration) -> Self {
        Self {
            max,
            window,
            windows: Mutex::default(),
        }
    }

    /// Refuses when `key` has spent its events in the current window, without counting.
    pub fn refuse_if_spent(&self, key: &str) -> Result<(), ApiError> {
        let now = Instant::now();
        let windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        match windows.get(key) {
            Some((start, n)) if *n >= self.max && now.duration_since(*start) < self.window => {
                let left = self.window.saturating_sub(now.duration_since(*start));
                Err(ApiError::RateLimited(left.as_secs().max(1)))
            }
            _ => Ok(()),
        }
    }

    /// Counts one event for `key`, or refuses with the seconds left in the window.
    pub fn check(&self, key: &str) -> Result<(), ApiError> {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let windows = windows.swept(|_, (start, _)| now.duration_since(*start) < self.window);
        let entry = windows.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        if entry.1 >= self.max {
            let left = self.window.saturating_sub(now.duration_since(entry.0));
            return Err(ApiError::RateLimited(left.as_secs().max(1)));
        }
        entry.1 += 1;
        Ok(())
    }
}

/// The service's limits.
#[derive(Debug)]
pub struct RateLimits {
    /// Login attempts per client address (checked first, so a flood of made-up names
    /// from one address never reaches the per-account map).
    pub login_client: RateLimit,
    /// Failed logins per account. Its window ends, so the owner is never locked out for
    /// good; an attacker's attempts from one address are stopped by `login_client` first.
    pub login_account: RateLimit,
    /// Token creations per user.
    pub tokens: RateLimit,
    /// Activation attempts per device uuid.
    pub activation: RateLimit,
    /// Pairing reports per signing device.
    pub reports: RateLimit,
    /// Wrong secrets presented per token public id.
    pub token_guesses: RateLimit,
}

impl Default for RateLimits {
    fn default() -> Self {
        let minute = Duration::from_secs(60);
        Self {
            login_client: RateLimit::new(30, minute),
            login_account: RateLimit::new(10, minute),
            tokens: RateLimit::new(60, minute),
            activation: RateLimit::new(30, minute),
            reports: RateLimit::new(20, minute),
            token_guesses: crate::pairing_tokens::guess_limit(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_refused_past_its_limit_with_the_time_left_and_others_are_not() {
        let limit = RateLimit::new(2, Duration::from_secs(30));
        assert!(limit.check("a").is_ok());
        assert!(limit.check("a").is_ok());
        match limit.check("a") {
            Err(ApiError::RateLimited(secs)) => assert!((1..=30).contains(&secs)),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(limit.check("b").is_ok());
    }

    #[test]
    fn the_window_resets() {
        let limit = RateLimit::new(1, Duration::from_millis(20));
        assert!(limit.check("a").is_ok());
        assert!(limit.check("a").is_err());
        std::thread::sleep(Duration::from_millis(25));
        assert!(limit.check("a").is_ok());
    }
}

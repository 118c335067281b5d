//! Rate limits kept in memory, per key (a client address, a username, a user, a device, a
//! token's public id). Event limits run on `governor`'s keyed GCRA limiter; failure
//! limits, which must be asked before the work they guard without counting, are fixed
//! windows over a swept map (governor cannot be asked without spending a cell). A refusal
//! says how many seconds to wait, for `Retry-After`. Keys are validated and short before
//! they get here, and both kinds forget idle keys, so a flood of new keys costs bounded
//! memory (`tether-bench limits` measures both against each other).

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::db::{Db, Engine};
use crate::error::ApiError;
use crate::expiring::Expiring;

/// The fewest checks between two sweeps of an event limit.
const MIN_SWEEP: usize = 4096;

/// At most `max` events per `window` for each key, `max` of them at once (a burst), then
/// one more each `window / max`.
#[derive(Debug)]
pub struct RateLimit {
    limiter: DefaultKeyedRateLimiter<String>,
    /// Checks since the last sweep.
    checks: AtomicUsize,
    /// Checks between sweeps: the keys the last sweep kept, at least `MIN_SWEEP`.
    sweep_every: AtomicUsize,
}

impl RateLimit {
    /// A limit of `max` events per `window`.
    pub fn new(max: u32, window: Duration) -> Self {
        let burst = NonZeroU32::new(max).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(window / burst.get())
            .unwrap_or_else(|| Quota::per_second(burst))
            .allow_burst(burst);
        Self {
            limiter: DefaultKeyedRateLimiter::keyed(quota),
            checks: AtomicUsize::new(0),
            sweep_every: AtomicUsize::new(MIN_SWEEP),
        }
    }

    /// Counts one event for `key`, or refuses with the seconds until the next is allowed.
    pub fn check(&self, key: &str) -> Result<(), ApiError> {
        self.sweep();
        self.limiter.check_key(&key.to_owned()).map_err(|until| {
            let wait = until.wait_time_from(self.limiter.clock().now());
            ApiError::RateLimited(wait.as_secs().max(1))
        })
    }

    /// Forgets keys whose state is back to fresh once there have been as many checks
    /// since the last sweep as keys were kept by it, so sweeping costs a constant per check.
    fn sweep(&self) {
        let due = self.sweep_every.load(Ordering::Relaxed);
        if self.checks.fetch_add(1, Ordering::Relaxed) + 1 < due {
            return;
        }
        // One thread sweeps; the others go on checking.
        if self.checks.swap(0, Ordering::AcqRel) < due {
            return;
        }
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
        let kept = self.limiter.len();
        self.sweep_every
            .store(kept.max(MIN_SWEEP), Ordering::Relaxed);
    }
}

/// At most `max` failures per `window` for each key: the work a failure follows (a
/// password hash, a token lookup) is refused until the window ends. Kept in memory, or
/// (see [`FailureLimit::shared`]) in the database that several service processes share,
/// so that guesses spread over the nodes of a cluster count together.
#[derive(Debug)]
pub struct FailureLimit {
    max: u32,
    window: Duration,
    windows: Mutex<Expiring<String, (Instant, u32)>>,
    /// The database and this limit's name in `failure_windows`, when shared.
    shared: Option<(Db, &'static str)>,
}

impl FailureLimit {
    /// A limit of `max` failures per `window`, in memory.
    pub fn new(max: u32, window: Duration) -> Self {
        Self {
            max,
            window,
            windows: Mutex::default(),
            shared: None,
        }
    }

    /// The same limit kept in `db`'s `failure_windows` under `kind` (whole seconds).
    pub fn shared(self, db: Db, kind: &'static str) -> Self {
        Self {
            shared: Some((db, kind)),
            ..self
        }
    }

    /// Refuses when `key` has spent its failures in the current window, without counting.
    pub async fn refuse_if_spent(&self, key: &str) -> Result<(), ApiError> {
        if let Some((db, kind)) = &self.shared {
            let row: Option<(i64, i64)> = sqlx::query_as(
                "SELECT window_start, failures FROM failure_windows WHERE kind = $1 AND key = $2",
            )
            .bind(*kind)
            .bind(key)
            .fetch_optional(db)
            .await?;
            return match row {
                Some((start, n)) => self.judge_shared(start, n, false),
                None => Ok(()),
            };
        }
        self.refuse_if_spent_here(key)
    }

    /// Counts one failure for `key`; refuses when it was over the limit.
    pub async fn fail(&self, key: &str) -> Result<(), ApiError> {
        if let Some((db, kind)) = &self.shared {
            let now = crate::db_time(crate::unix_now());
            // One statement, so failures on several nodes at once all count.
            let (start, n): (i64, i64) = sqlx::query_as(
                "INSERT INTO failure_windows (kind, key, window_start, failures) VALUES ($1, $2, $3, 1)
                 ON CONFLICT (kind, key) DO UPDATE SET
                   failures = CASE WHEN failure_windows.window_start + $4 <= $3 THEN 1
                                   ELSE failure_windows.failures + 1 END,
                   window_start = CASE WHEN failure_windows.window_start + $4 <= $3 THEN $3
                                       ELSE failure_windows.window_start END
                 RETURNING window_start, failures",
            )
            .bind(*kind)
            .bind(key)
            .bind(now)
            .bind(self.window_secs())
            .fetch_one(db)
            .await?;
            return self.judge_shared(start, n, true);
        }
        self.fail_here(key)
    }

    fn window_secs(&self) -> i64 {
        i64::try_from(self.window.as_secs().max(1)).unwrap_or(i64::MAX)
    }

    /// The verdict on a shared window that began at `start` with `n` failures (`counted`:
    /// `n` includes the failure just recorded).
    fn judge_shared(&self, start: i64, n: i64, counted: bool) -> Result<(), ApiError> {
        let now = crate::db_time(crate::unix_now());
        let left = start + self.window_secs() - now;
        let spent = if counted {
            n > i64::from(self.max)
        } else {
            n >= i64::from(self.max)
        };
        if left > 0 && spent {
            return Err(ApiError::RateLimited(
                u64::try_from(left).unwrap_or(1).max(1),
            ));
        }
        Ok(())
    }

    fn refuse_if_spent_here(&self, key: &str) -> Result<(), ApiError> {
        let now = Instant::now();
        let windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        match windows.get(key) {
            Some((start, n)) if *n >= self.max && now.duration_since(*start) < self.window => {
                Err(self.refusal(now, *start))
            }
            _ => Ok(()),
        }
    }

    /// [`FailureLimit::fail`] in this process's memory, whether or not the limit is
    /// shared (for measuring the in-memory windows).
    pub fn fail_here(&self, key: &str) -> Result<(), ApiError> {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let windows = windows.swept(|_, (start, _)| now.duration_since(*start) < self.window);
        let entry = windows.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        if entry.1 >= self.max {
            return Err(self.refusal(now, entry.0));
        }
        entry.1 += 1;
        Ok(())
    }

    fn refusal(&self, now: Instant, start: Instant) -> ApiError {
        let left = self.window.saturating_sub(now.duration_since(start));
        ApiError::RateLimited(left.as_secs().max(1))
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
    pub login_account: FailureLimit,
    /// Token creations per user.
    pub tokens: RateLimit,
    /// Activation attempts per device uuid.
    pub activation: RateLimit,
    /// Pairing reports per signing device.
    pub reports: RateLimit,
    /// Wrong secrets presented per token public id.
    pub token_guesses: FailureLimit,
}

impl Default for RateLimits {
    fn default() -> Self {
        let minute = Duration::from_secs(60);
        Self {
            login_client: RateLimit::new(30, minute),
            login_account: FailureLimit::new(10, minute),
            tokens: RateLimit::new(60, minute),
            activation: RateLimit::new(30, minute),
            reports: RateLimit::new(20, minute),
            token_guesses: crate::pairing_tokens::guess_limit(),
        }
    }
}

impl RateLimits {
    /// The limits of a service on `db`. On PostgreSQL, which several processes share,
    /// the failure limits that guard secrets (passwords, a token's 4-character secret)
    /// are kept in the database, so an attacker cannot multiply them by spreading
    /// guesses over the nodes; the event limits, which guard capacity, stay per process.
    pub fn for_db(db: &Db) -> Self {
        let limits = Self::default();
        match Engine::of(db) {
            Engine::Sqlite => limits,
            Engine::Postgres => Self {
                login_account: limits.login_account.shared(db.clone(), "login_account"),
                token_guesses: limits.token_guesses.shared(db.clone(), "token_guesses"),
                ..limits
            },
        }
    }
}

/// Forgets shared failure windows that have ended (at most `keep` old), every minute.
pub fn sweep_failure_windows(db: Db, keep: Duration) {
    if Engine::of(&db) != Engine::Postgres {
        return;
    }
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        while !db.is_closed() {
            every.tick().await;
            let before = crate::db_time(crate::unix_now().saturating_sub(keep.as_secs()));
            if let Err(e) = sqlx::query("DELETE FROM failure_windows WHERE window_start < $1")
                .bind(before)
                .execute(&db)
                .await
            {
                tracing::warn!(error = %e, "failed to sweep the failure windows");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_refused_past_its_burst_with_a_wait_and_others_are_not() {
        let limit = RateLimit::new(2, Duration::from_secs(30));
        assert!(limit.check("a").is_ok());
        assert!(limit.check("a").is_ok());
        match limit.check("a") {
            Err(ApiError::RateLimited(secs)) => assert!((1..=15).contains(&secs)),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(limit.check("b").is_ok());
    }

    #[test]
    fn an_event_limit_refills() {
        let limit = RateLimit::new(1, Duration::from_millis(20));
        assert!(limit.check("a").is_ok());
        assert!(limit.check("a").is_err());
        std::thread::sleep(Duration::from_millis(25));
        assert!(limit.check("a").is_ok());
    }

    #[test]
    fn a_flood_of_new_keys_is_swept_once_they_are_fresh_again() {
        let limit = RateLimit::new(1, Duration::from_millis(5));
        for i in 1..MIN_SWEEP {
            assert!(limit.check(&format!("k{i}")).is_ok());
        }
        std::thread::sleep(Duration::from_millis(10));
        // The MIN_SWEEP-th check sweeps.
        assert!(limit.check("last").is_ok());
        assert!(
            limit.limiter.len() < 16,
            "{} keys kept",
            limit.limiter.len()
        );
    }

    #[test]
    fn failures_are_asked_without_counting_and_refused_until_the_window_ends() {
        let limit = FailureLimit::new(2, Duration::from_millis(40));
        for _ in 0..5 {
            assert!(
                limit.refuse_if_spent_here("a").is_ok(),
                "asking does not count"
            );
        }
        assert!(limit.fail_here("a").is_ok());
        assert!(limit.fail_here("a").is_ok());
        assert!(matches!(
            limit.refuse_if_spent_here("a"),
            Err(ApiError::RateLimited(1))
        ));
        assert!(limit.refuse_if_spent_here("b").is_ok());
        std::thread::sleep(Duration::from_millis(45));
        assert!(limit.refuse_if_spent_here("a").is_ok());
    }
}

//! `limits`: the service's two in-memory limiters side by side in one run: the fixed
//! windows over a swept map that count failures (`FailureLimit`, written here) and the
//! event limits on `governor`'s keyed GCRA limiter (`RateLimit`). Each sees a flood of
//! distinct keys (what a login flood from many addresses does to a per-client map: time
//! per check and resident memory per key), then a few hot keys checked from two threads.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tether_service::rate_limit::{FailureLimit, RateLimit};

use crate::Options;
use crate::procs::Memory;
use crate::report::Report;

/// The login limit per client address: 30 a minute.
const MAX: u32 = 30;
const WINDOW: Duration = Duration::from_secs(60);

/// One limiter under test.
trait Limiter: Send + Sync {
    fn allow(&self, key: &str) -> bool;
}

impl Limiter for RateLimit {
    fn allow(&self, key: &str) -> bool {
        self.check(key).is_ok()
    }
}

impl Limiter for FailureLimit {
    fn allow(&self, key: &str) -> bool {
        self.fail_here(key).is_ok()
    }
}

/// What one limiter did.
struct Measured {
    flood_ns: f64,
    bytes_per_key: f64,
    hot_ns: f64,
    refused_in_hot: u64,
}

/// Checks `keys` distinct keys once each, then `hot` checks spread over 16 keys from two
/// threads. The limiter is kept alive by the caller so its memory is not reused by the next.
fn measure(limiter: Arc<dyn Limiter>, keys: usize, hot: usize) -> Measured {
    let names: Vec<String> = (0..keys)
        .map(|i| format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255))
        .collect();
    let before = Memory::own();
    let started = Instant::now();
    for name in &names {
        limiter.allow(name);
    }
    let flood = started.elapsed();
    let after = Memory::own();
    let grown = after.anon_kib.saturating_sub(before.anon_kib) * 1024;

    let started = Instant::now();
    let refused: u64 = std::thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|t| {
                let limiter = Arc::clone(&limiter);
                s.spawn(move || {
                    let mut refused = 0u64;
                    for i in 0..hot / 2 {
                        let key = format!("hot-{}", (i + t) % 16);
                        refused += u64::from(!limiter.allow(&key));
                    }
                    refused
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or(0)).sum()
    });
    let hot_time = started.elapsed();
    Measured {
        flood_ns: flood.as_nanos() as f64 / keys as f64,
        bytes_per_key: grown as f64 / keys as f64,
        hot_ns: hot_time.as_nanos() as f64 / hot as f64,
        refused_in_hot: refused,
    }
}

/// Runs the scenario.
pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let (keys, hot) = if options.quick {
        (5_000, 20_000)
    } else {
        (500_000, 2_000_000)
    };
    let ours: Arc<dyn Limiter> = Arc::new(FailureLimit::new(MAX, WINDOW));
    let theirs: Arc<dyn Limiter> = Arc::new(RateLimit::new(MAX, WINDOW));
    let (a, b, ours, theirs) = tokio::task::spawn_blocking(move || {
        let a = measure(Arc::clone(&ours), keys, hot);
        let b = measure(Arc::clone(&theirs), keys, hot);
        (a, b, ours, theirs)
    })
    .await?;
    let mut report = Report::new(
        "limits",
        &[
            "limiter",
            "new key ns/check",
            "bytes/key",
            "hot key ns/check (2 threads)",
            "refused of hot",
        ],
    );
    for (name, m) in [
        ("FailureLimit (fixed windows)", &a),
        ("RateLimit (governor 0.10)", &b),
    ] {
        report.row(vec![
            name.into(),
            format!("{:.0}", m.flood_ns),
            format!("{:.0}", m.bytes_per_key),
            format!("{:.0}", m.hot_ns),
            m.refused_in_hot.to_string(),
        ]);
    }
    report.note(format!(
        "{keys} distinct keys, then {hot} checks over 16 keys; {MAX} per {}s per key",
        WINDOW.as_secs()
    ));
    report.note(format!(
        "ratios fixed windows / governor: new key {:.2}x, memory {:.2}x, hot key {:.2}x",
        a.flood_ns / b.flood_ns.max(f64::MIN_POSITIVE),
        a.bytes_per_key / b.bytes_per_key.max(f64::MIN_POSITIVE),
        a.hot_ns / b.hot_ns.max(f64::MIN_POSITIVE)
    ));
    report.data(
        "limits",
        serde_json::json!({
            "keys": keys, "hot_checks": hot,
            "fixed_windows": {"new_key_ns": a.flood_ns, "bytes_per_key": a.bytes_per_key, "hot_ns": a.hot_ns},
            "governor": {"new_key_ns": b.flood_ns, "bytes_per_key": b.bytes_per_key, "hot_ns": b.hot_ns},
        }),
    );
    drop((ours, theirs));
    Ok(report)
}

//! A closed-loop HTTP load generator: `concurrency` workers, each with its own keep-alive
//! connection, send one request after another until the time is up or the requests run
//! out. Every answer is read whole and must be a 2xx.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::stats::Samples;

/// Makes request number `i`, or `None` when there are no more.
pub type MakeRequest =
    Arc<dyn Fn(&reqwest::Client, usize) -> Option<reqwest::RequestBuilder> + Send + Sync>;

/// What a load run measured.
#[derive(Debug)]
pub struct Outcome {
    /// Answers with a 2xx status.
    pub ok: usize,
    /// Other answers and failed requests.
    pub errors: usize,
    /// The first error, for the report.
    pub first_error: Option<String>,
    /// From the first request sent to the last answer read.
    pub elapsed: Duration,
    /// Latency of each successful request.
    pub latencies: Samples,
}

impl Outcome {
    /// Successful requests per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs `concurrency` workers for `duration` (or until `make` runs out).
pub async fn run(
    concurrency: usize,
    duration: Duration,
    make: MakeRequest,
) -> anyhow::Result<Outcome> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        // One client per worker: one connection each, as separate clients would have.
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()
            .context("HTTP client")?;
        let next = next.clone();
        let make = make.clone();
        workers.spawn(async move {
            let mut latencies = Samples::with_capacity(4096);
            let (mut errors, mut first_error) = (0usize, None);
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(request) = make(&client, i) else {
                    break;
                };
                let sent = Instant::now();
                match answer(request).await {
                    Ok(()) => latencies.push(sent.elapsed()),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            (latencies, errors, first_error)
        });
    }
    let mut outcome = Outcome {
        ok: 0,
        errors: 0,
        first_error: None,
        elapsed: Duration::ZERO,
        latencies: Samples::default(),
    };
    while let Some(joined) = workers.join_next().await {
        let (latencies, errors, first_error) = joined.context("a load worker failed")?;
        outcome.ok += latencies.len();
        outcome.latencies.extend(latencies);
        outcome.errors += errors;
        if outcome.first_error.is_none() {
            outcome.first_error = first_error;
        }
    }
    outcome.elapsed = started.elapsed();
    Ok(outcome)
}

async fn answer(request: reqwest::RequestBuilder) -> Result<(), String> {
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("{status}: {}", String::from_utf8_lossy(&body)))
    }
}

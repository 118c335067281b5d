//! Prometheus metrics in the text exposition format, kept in memory: activations by
//! result, pairing tokens issued, devices online, and HTTP latency by route.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::app::AppState;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 11] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum_secs: f64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        for (bound, count) in BUCKETS.iter().zip(self.counts.iter_mut()) {
            if secs <= *bound {
                *count += 1;
            }
        }
        self.count += 1;
        self.sum_secs += secs;
    }
}

/// The service's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    activations: Mutex<BTreeMap<&'static str, u64>>,
    tokens_issued: AtomicU64,
    http: Mutex<BTreeMap<(String, String), Histogram>>,
}

impl Metrics {
    /// Counts an activation attempt that ended with `result` (`ok` or an error code).
    pub fn activation(&self, result: &'static str) {
        *self
            .activations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(result)
            .or_default() += 1;
    }

    /// Counts a pairing token issued.
    pub fn token_issued(&self) {
        self.tokens_issued.fetch_add(1, Ordering::Relaxed);
    }

    fn request(&self, method: &str, route: &str, took: Duration) {
        let mut http = self.http.lock().unwrap_or_else(|p| p.into_inner());
        http.entry((method.to_owned(), route.to_owned()))
            .or_default()
            .observe(took.as_secs_f64());
    }

    /// The exposition text; `online` is the current number of devices with a session.
    pub fn render(&self, online: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP tether_activations_total Activation attempts by result."
        );
        let _ = writeln!(out, "# TYPE tether_activations_total counter");
        for (result, n) in self
            .activations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(out, "tether_activations_total{{result=\"{result}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP tether_pairing_tokens_issued_total Pairing tokens created."
        );
        let _ = writeln!(out, "# TYPE tether_pairing_tokens_issued_total counter");
        let _ = writeln!(
            out,
            "tether_pairing_tokens_issued_total {}",
            self.tokens_issued.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP tether_mqtt_sessions_online Devices with a live MQTT session."
        );
        let _ = writeln!(out, "# TYPE tether_mqtt_sessions_online gauge");
        let _ = writeln!(out, "tether_mqtt_sessions_online {online}");
        let _ = writeln!(
            out,
            "# HELP tether_http_request_duration_seconds HTTP request latency by route."
        );
        let _ = writeln!(out, "# TYPE tether_http_request_duration_seconds histogram");
        for ((method, route), h) in self.http.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let labels = format!("method=\"{method}\",route=\"{route}\"");
            for (bound, count) in BUCKETS.iter().zip(h.counts.iter()) {
                let _ = writeln!(
                    out,
                    "tether_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "tether_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "tether_http_request_duration_seconds_sum{{{labels}}} {}",
                h.sum_secs
            );
            let _ = writeln!(
                out,
                "tether_http_request_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
        out
    }
}

/// Middleware timing every request by its matched route (never the raw path).
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(req).await;
    state.metrics.request(&method, &route, started.elapsed());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_has_counters_gauge_and_cumulative_buckets() {
        let m = Metrics::default();
        m.activation("ok");
        m.activation("ok");
        m.activation("token_used");
        m.token_issued();
        m.request("POST", "/v1/devices/activate", Duration::from_millis(3));
        m.request("POST", "/v1/devices/activate", Duration::from_millis(30));
        let text = m.render(7);
        assert!(
            text.contains("tether_activations_total{result=\"ok\"} 2"),
            "{text}"
        );
        assert!(text.contains("tether_activations_total{result=\"token_used\"} 1"));
        assert!(text.contains("tether_pairing_tokens_issued_total 1"));
        assert!(text.contains("tether_mqtt_sessions_online 7"));
        let labels = "method=\"POST\",route=\"/v1/devices/activate\"";
        assert!(text.contains(&format!("_bucket{{{labels},le=\"0.0025\"}} 0")));
        assert!(text.contains(&format!("_bucket{{{labels},le=\"0.005\"}} 1")));
        assert!(text.contains(&format!("_bucket{{{labels},le=\"0.05\"}} 2")));
        assert!(text.contains(&format!("_count{{{labels}}} 2")));
    }
}

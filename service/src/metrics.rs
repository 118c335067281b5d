//! The service's metrics, on `prometheus-client` (one registry per service, so services
//! in one process, as in the tests, never mix their counts): activations by result,
//! pairing tokens issued, devices online, and HTTP latency by route. `/metrics` serves
//! them in the OpenMetrics text format.

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::app::AppState;

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 11] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

/// The service's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    activations: Family<ResultLabel, Counter>,
    tokens_issued: Counter,
    online: Gauge,
    http: Family<RouteLabels, Histogram, fn() -> Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        let activations = Family::<ResultLabel, Counter>::default();
        let tokens_issued = Counter::default();
        let online = Gauge::default();
        let http: Family<RouteLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(BUCKETS));
        let mut registry = Registry::default();
        registry.register(
            "tether_activations",
            "Activation attempts by result",
            activations.clone(),
        );
        registry.register(
            "tether_pairing_tokens_issued",
            "Pairing tokens created",
            tokens_issued.clone(),
        );
        registry.register(
            "tether_mqtt_sessions_online",
            "Devices with a live MQTT session",
            online.clone(),
        );
        registry.register(
            "tether_http_request_duration_seconds",
            "HTTP request latency by route",
            http.clone(),
        );
        Self {
            registry,
            activations,
            tokens_issued,
            online,
            http,
        }
    }
}

impl Metrics {
    /// Counts an activation attempt that ended with `result` (`ok` or an error code).
    pub fn activation(&self, result: &'static str) {
        self.activations
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    /// Counts a pairing token issued.
    pub fn token_issued(&self) {
        self.tokens_issued.inc();
    }

    fn request(&self, method: &str, route: &str, took: Duration) {
        let labels = RouteLabels {
            method: method.to_owned(),
            route: route.to_owned(),
        };
        self.http.get_or_create(&labels).observe(took.as_secs_f64());
    }

    /// The exposition text; `online` is the current number of devices with a session.
    pub fn render(&self, online: usize) -> String {
        self.online.set(i64::try_from(online).unwrap_or(i64::MAX));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
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
        // The library puts `le` first.
        assert!(text.contains(&format!("_bucket{{le=\"0.0025\",{labels}}} 0")));
        assert!(text.contains(&format!("_bucket{{le=\"0.005\",{labels}}} 1")));
        assert!(text.contains(&format!("_bucket{{le=\"0.05\",{labels}}} 2")));
        assert!(
            text.ends_with("# EOF\n"),
            "OpenMetrics ends with EOF: {text}"
        );
        assert!(text.contains(&format!("_count{{{labels}}} 2")));
    }
}

//! The service's metrics, on `prometheus-client` (one registry per service, so services
//! in one process, as in the tests, never mix their counts): activations by result,
//! pairing tokens issued, devices online, HTTP latency by route, and what devices report
//! of their pairings (outcomes by reason, each phase's time). `/metrics` serves them in
//! the OpenMetrics text format; `deploy/grafana/tether.json` is a dashboard of them.

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

/// Upper bounds of the pairing phase buckets, in seconds (joining a router takes
/// seconds; a phase may retry for minutes).
const PHASE_BUCKETS: [f64; 12] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0,
];

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReportLabels {
    outcome: &'static str,
    /// The failure's code; `none` for a success.
    code: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PhaseLabel {
    phase: &'static str,
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
    reports: Family<ReportLabels, Counter>,
    phases: Family<PhaseLabel, Histogram, fn() -> Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        let activations = Family::<ResultLabel, Counter>::default();
        let tokens_issued = Counter::default();
        let online = Gauge::default();
        let http: Family<RouteLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(BUCKETS));
        let reports = Family::<ReportLabels, Counter>::default();
        let phases: Family<PhaseLabel, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(PHASE_BUCKETS));
        let mut registry = Registry::default();
        registry.register(
            "tether_pairing_reports",
            "Pairing attempts devices reported, by outcome and failure code",
            reports.clone(),
        );
        registry.register(
            "tether_pairing_phase_seconds",
            "Time of each pairing phase as devices measured it (wifi, dns, activation, mqtt)",
            phases.clone(),
        );
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
            reports,
            phases,
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

    /// Counts a device's pairing report and observes the phase times it measured.
    pub fn pairing_report(
        &self,
        outcome: &'static str,
        code: Option<&'static str>,
        timings: &tether_proto::activation::PhaseTimings,
    ) {
        let code = code.unwrap_or("none");
        self.reports
            .get_or_create(&ReportLabels { outcome, code })
            .inc();
        for (phase, ms) in [
            ("wifi", timings.wifi_ms),
            ("dns", timings.dns_ms),
            ("activation", timings.activate_ms),
            ("mqtt", timings.mqtt_ms),
        ] {
            if let Some(ms) = ms {
                self.phases
                    .get_or_create(&PhaseLabel { phase })
                    .observe(f64::from(ms) / 1000.0);
            }
        }
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

    #[test]
    fn pairing_reports_count_by_reason_and_time_each_phase() {
        use tether_proto::activation::PhaseTimings;
        let m = Metrics::default();
        let timings = PhaseTimings {
            wifi_ms: Some(3000),
            dns_ms: Some(20),
            ..PhaseTimings::default()
        };
        m.pairing_report("failure", Some("passwd_error"), &timings);
        m.pairing_report("failure", Some("passwd_error"), &PhaseTimings::default());
        m.pairing_report("success", None, &timings);
        let text = m.render(0);
        assert!(
            text.contains(
                "tether_pairing_reports_total{outcome=\"failure\",code=\"passwd_error\"} 2"
            ),
            "{text}"
        );
        assert!(text.contains("tether_pairing_reports_total{outcome=\"success\",code=\"none\"} 1"));
        assert!(text.contains("tether_pairing_phase_seconds_bucket{le=\"2.5\",phase=\"wifi\"} 0"));
        assert!(text.contains("tether_pairing_phase_seconds_bucket{le=\"5.0\",phase=\"wifi\"} 2"));
        assert!(text.contains("tether_pairing_phase_seconds_count{phase=\"dns\"} 2"));
        assert!(
            !text.contains("phase=\"mqtt\""),
            "no time, no sample: {text}"
        );
    }
}

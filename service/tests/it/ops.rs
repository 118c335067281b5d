//! Operations endpoints: metrics, the OpenAPI document and the docs page.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::World;

#[tokio::test]
async fn metrics_count_tokens_activations_sessions_and_latency() {
    let w = World::new(1).await;
    let token = w.service.pairing_token(&w.ann, json!({})).await;
    let (status, _) = w.service.activate(&w.devices[0], &token, false).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = w
        .service
        .activate(&w.devices[0], "EUaaaaaaaaAAAA", false)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, text) = w.service.get("/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    let text = text.as_str().expect("plain text").to_owned();
    for needle in [
        "tether_activations_total{result=\"ok\"} 1",
        "tether_activations_total{result=\"token_invalid\"} 1",
        "tether_pairing_tokens_issued_total 1",
        "tether_mqtt_sessions_online 0",
        "tether_http_request_duration_seconds_count{method=\"POST\",route=\"/v1/devices/activate\"} 2",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
}

#[tokio::test]
async fn the_openapi_document_lists_every_endpoint_and_error_code() {
    let w = World::new(0).await;
    let (status, doc) = w.service.get("/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/v1/auth/token",
        "/v1/pairing-tokens/{token}",
        "/v2/url_config",
        "/v1/devices/activate",
        "/v1/devices/{dev_id}/commands",
        "/v1/licenses",
        "/v1/modules",
        "/v1/modules/{id}/rollouts",
        "/v1/modules/{id}/bundle",
        "/v1/devices/{dev_id}/module-status",
        "/metrics",
    ] {
        assert!(doc["paths"][path].is_object(), "missing {path}");
    }
    let codes: Vec<&str> = doc["components"]["x-error-codes"]
        .as_array()
        .expect("codes")
        .iter()
        .filter_map(|c| c["code"].as_str())
        .collect();
    for code in [
        "token_expired",
        "dev_already_bound",
        "rate_limited",
        "region_unknown",
        "signature_error",
        "payload_too_large",
        "bundle_untrusted_key",
        "bundle_corrupted",
    ] {
        assert!(codes.contains(&code), "missing {code}");
    }
    let (status, page) = w.service.get("/docs", None).await;
    assert_eq!(status, StatusCode::OK);
    let page = page.as_str().expect("html");
    assert!(
        page.contains("<h1>Tether cloud API</h1>")
            && page.contains("/v1/pairing-tokens/{token}")
            && page.contains("token_used")
    );
}

#[tokio::test]
async fn pairing_reports_feed_the_metrics_the_grafana_dashboard_reads() {
    let w = World::new(1).await;
    let token = w.service.pairing_token(&w.ann, json!({})).await;
    let report = json!({"token": token, "outcome": "failure", "code": "passwd_error",
        "phase": "wifi", "timings": {"wifi_ms": 3000}});
    let (status, body, _) = w
        .service
        .signed(&w.devices[0], "/v1/pairing-reports", &report)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    // Families without a sample are not printed: one activation fills the rest.
    let (status, _) = w.service.activate(&w.devices[0], &token, false).await;
    assert_eq!(status, StatusCode::OK);
    let (_, text) = w.service.get("/metrics", None).await;
    let text = text.as_str().expect("plain text").to_owned();
    assert!(
        text.contains("tether_pairing_reports_total{outcome=\"failure\",code=\"passwd_error\"} 1"),
        "{text}"
    );
    assert!(text.contains("tether_pairing_phase_seconds_count{phase=\"wifi\"} 1"));

    // Every series the dashboard queries is one the service exports.
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/grafana/tether.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("the dashboard")).expect("JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 3);
    for panel in panels {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("an expression");
            let names: Vec<&str> = expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("tether_"))
                .collect();
            assert!(!names.is_empty(), "{expr}");
            for name in names {
                let family = ["_bucket", "_total", "_count", "_sum"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s))
                    .unwrap_or(name);
                assert!(
                    text.contains(&format!("# TYPE {family} ")),
                    "{name} (panel {}) is not exported",
                    panel["title"]
                );
            }
        }
    }
}

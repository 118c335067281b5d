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

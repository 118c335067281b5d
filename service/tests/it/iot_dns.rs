//! IoT DNS.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{World, assert_error};

#[tokio::test]
async fn the_own_region_answers_the_bound_endpoints() {
    let w = World::new(0).await;
    let req = json!({"region": "EU", "env": "pro", "config": [{"key": "httpUrl", "need_ca": false}, {"key": "mqttUrl", "need_ca": false}]});
    let (status, body) = w.service.post("/v2/url_config", None, req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["httpUrl"]["addr"],
        format!("http://{}", w.service.addr)
    );
    assert!(
        body["mqttUrl"]["addr"]
            .as_str()
            .is_some_and(|a| a.starts_with("127.0.0.1:")),
        "{body}"
    );
    assert_eq!(body["ttl"], tether_service::iot_dns::TTL_SECS);
    assert_eq!(body["caArr"], json!([]));
}

#[tokio::test]
async fn an_unknown_region_is_region_unknown() {
    let w = World::new(0).await;
    let req = json!({"region": "ZZ", "config": [{"key": "httpUrl"}]});
    let (status, body) = w.service.post("/v2/url_config", None, req).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "region_unknown");
}

//! Pairing reports show in the token's status.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{World, assert_error, public_id};

#[tokio::test]
async fn a_failure_report_shows_in_the_token_status_and_wakes_the_long_poll() {
    let w = World::new(1).await;
    let token = w.service.pairing_token(&w.ann, json!({})).await;
    let poll = {
        let http = w.service.http.clone();
        let url = w
            .service
            .url(&format!("/v1/pairing-tokens/{}?wait=20", public_id(&token)));
        let bearer = w.ann.clone();
        tokio::spawn(async move {
            http.get(url)
                .bearer_auth(bearer)
                .send()
                .await
                .expect("answers")
                .json::<serde_json::Value>()
                .await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let device = &w.devices[0];
    let report = json!({"token": token, "outcome": "failure", "code": "passwd_error", "phase": "wifi", "message": "4-way handshake failed", "timings": {"wifi_ms": 3000}});
    let (status, body, _) = w
        .service
        .signed(device, "/v1/pairing-reports", &report)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let status_body = poll.await.expect("task").expect("json");
    let failure = &status_body["failures"][0];
    assert_eq!(failure["code"], "passwd_error", "{status_body}");
    assert_eq!(failure["phase"], "wifi");
    assert_eq!(failure["uuid"], device.uuid.as_str());
}

#[tokio::test]
async fn reports_need_a_valid_token_and_a_code_for_failures() {
    let w = World::new(1).await;
    let device = &w.devices[0];
    let report = json!({"token": "EUaaaaaaaaAAAA", "outcome": "success"});
    let (status, body, _) = w
        .service
        .signed(device, "/v1/pairing-reports", &report)
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "token_invalid");
    let token = w.service.pairing_token(&w.ann, json!({})).await;
    let report = json!({"token": token, "outcome": "failure"});
    let (status, body, _) = w
        .service
        .signed(device, "/v1/pairing-reports", &report)
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    let (status, _) = w.service.get("/readyz", None).await;
    assert_eq!(status, StatusCode::OK);
}

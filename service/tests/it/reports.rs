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
    assert_eq!(failure["timings"]["wifi_ms"], 3000);
}

#[tokio::test]
async fn a_success_report_adds_its_timings_to_the_device_and_wakes_a_complete_token() {
    let w = World::new(1).await;
    let token = w.service.pairing_token(&w.ann, json!({})).await;
    let device = &w.devices[0];
    let (status, body) = w.service.activate(device, &token, false).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let path = format!("/v1/pairing-tokens/{}", public_id(&token));
    let (_, before) = w.service.get(&path, Some(&w.ann)).await;
    assert_eq!(before["state"], "complete", "{before}");
    assert_eq!(before["devices"][0].get("timings"), None, "{before}");

    // A long-poll on the complete token waits for the device's report.
    let poll = {
        let (http, url, bearer) = (
            w.service.http.clone(),
            w.service.url(&format!("{path}?wait=20")),
            w.ann.clone(),
        );
        tokio::spawn(async move {
            let sent = std::time::Instant::now();
            let body = http.get(url).bearer_auth(bearer).send().await?.json().await;
            body.map(|b: serde_json::Value| (b, sent.elapsed()))
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let timings = json!({"wifi_ms": 800, "dns_ms": 20, "activate_ms": 40, "mqtt_ms": 10});
    let report = json!({"token": token, "outcome": "success", "timings": timings});
    let (status, body, _) = w
        .service
        .signed(device, "/v1/pairing-reports", &report)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (after, waited) = poll.await.expect("task").expect("json");
    assert!(
        waited.as_millis() >= 250,
        "it waited for the report: {waited:?}"
    );
    assert_eq!(after["devices"][0]["timings"], timings, "{after}");
    assert_eq!(after["failures"], json!([]));
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

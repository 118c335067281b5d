//! Bad input gets a clear 4xx in the standard error body, never a panic.

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{World, assert_error};

async fn raw(w: &World, content_type: Option<&str>, body: Vec<u8>) -> (StatusCode, Value) {
    let mut req = w
        .service
        .http
        .post(w.service.url("/v1/pairing-tokens"))
        .bearer_auth(&w.ann)
        .body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let resp = req.send().await.expect("answers");
    let status = resp.status();
    (status, resp.json().await.expect("a JSON error body"))
}

#[tokio::test]
async fn malformed_json_is_bad_request() {
    let w = World::new(0).await;
    let (status, body) = raw(&w, Some("application/json"), b"{\"max_devices\": ".to_vec()).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
}

#[tokio::test]
async fn an_unknown_field_is_bad_request_naming_it() {
    let w = World::new(0).await;
    let (status, body) = raw(
        &w,
        Some("application/json"),
        br#"{"max_device": 2}"#.to_vec(),
    )
    .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("max_device")),
        "{body}"
    );
}

#[tokio::test]
async fn a_wrong_content_type_is_unsupported_media_type() {
    let w = World::new(0).await;
    let (status, body) = raw(&w, Some("text/plain"), b"{}".to_vec()).await;
    assert_error(
        status,
        &body,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    let (status, body) = raw(&w, None, b"{}".to_vec()).await;
    assert_error(
        status,
        &body,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
}

#[tokio::test]
async fn a_body_over_64_kib_is_payload_too_large() {
    let w = World::new(0).await;
    let mut big = b"{\"ttl_secs\": 60, \"pad\": \"".to_vec();
    big.extend(std::iter::repeat_n(b'x', 70 * 1024));
    big.extend(b"\"}");
    let (status, body) = raw(&w, Some("application/json"), big).await;
    assert_error(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
}

#[tokio::test]
async fn an_unknown_endpoint_is_a_json_404() {
    let w = World::new(0).await;
    let (status, body) = w
        .service
        .call(reqwest::Method::GET, "/v1/nothing-here", None, None)
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn a_signed_request_with_garbage_is_refused_cleanly() {
    let w = World::new(1).await;
    let device = &w.devices[0];
    // A valid signature over a body that is not an activation request.
    let (status, body, _) = w
        .service
        .signed_at(
            device.principal(),
            &device.authkey,
            crate::support::now(),
            "/v1/devices/activate",
            &serde_json::json!({"uuid": 5}),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    // No signature at all.
    let (status, body, _) = w
        .service
        .send_signed("/v1/devices/activate", "Bearer x", b"{}".to_vec())
        .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "signature_error");
}

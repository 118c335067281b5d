//! Pairing tokens: creation, status, long-poll, revocation and isolation between users.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{World, assert_error, public_id};

#[tokio::test]
async fn a_new_token_is_pending_with_its_limits() {
    let w = World::new(0).await;
    let (status, body) = w
        .service
        .post(
            "/v1/pairing-tokens",
            Some(&w.ann),
            json!({"ttl_secs": 120, "max_devices": 20}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let token = body["token"].as_str().expect("token");
    assert_eq!(token.len(), 14);
    assert_eq!(&token[..2], "EU");
    assert_eq!(body["max_devices"], 20);
    let expires = body["expires_at"].as_u64().expect("expiry");
    assert!(expires >= crate::support::now() + 119);

    let (status, status_body) = w
        .service
        .get(
            &format!("/v1/pairing-tokens/{}", public_id(token)),
            Some(&w.ann),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{status_body}");
    assert_eq!(status_body["state"], "pending");
    assert_eq!(status_body["token"], public_id(token));
    assert_eq!(status_body["devices"], json!([]));
    assert!(
        !status_body.to_string().contains(&token[10..]),
        "the secret is never shown again"
    );
}

#[tokio::test]
async fn out_of_range_limits_are_refused() {
    let w = World::new(0).await;
    for body in [
        json!({"max_devices": 0}),
        json!({"max_devices": 51}),
        json!({"ttl_secs": 5}),
    ] {
        let (status, resp) = w
            .service
            .post("/v1/pairing-tokens", Some(&w.ann), body)
            .await;
        assert_error(status, &resp, StatusCode::BAD_REQUEST, "bad_request");
    }
}

#[tokio::test]
async fn another_users_token_is_not_found() {
    let w = World::new(0).await;
    let token = w.service.pairing_token(&w.ann, json!({})).await;
    let bob = w.user("bob").await;
    let path = format!("/v1/pairing-tokens/{}", public_id(&token));
    let (status, body) = w.service.get(&path, Some(&bob)).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = w.service.delete(&path, Some(&bob)).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, _) = w.service.get(&path, Some(&w.ann)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_revoked_token_shows_revoked_and_cannot_activate() {
    let w = World::new(1).await;
    let token = w.service.pairing_token(&w.ann, json!({})).await;
    let path = format!("/v1/pairing-tokens/{}", public_id(&token));
    let (status, _) = w.service.delete(&path, Some(&w.ann)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, body) = w.service.get(&path, Some(&w.ann)).await;
    assert_eq!(body["state"], "revoked");
    let (status, body) = w.service.activate(&w.devices[0], &token, false).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "token_invalid");
}

#[tokio::test]
async fn long_poll_returns_as_soon_as_the_device_activates() {
    let w = World::new(1).await;
    let token = w.service.pairing_token(&w.ann, json!({})).await;
    let path = format!("/v1/pairing-tokens/{}?wait=30", public_id(&token));
    let started = Instant::now();
    let poll = {
        let http = w.service.http.clone();
        let url = w.service.url(&path);
        let bearer = w.ann.clone();
        tokio::spawn(async move {
            let resp = http
                .get(url)
                .bearer_auth(bearer)
                .send()
                .await
                .expect("answers");
            resp.json::<serde_json::Value>().await.expect("json")
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, activated) = w.service.activate(&w.devices[0], &token, false).await;
    assert_eq!(status, StatusCode::OK, "{activated}");
    let body = poll.await.expect("poll finished");
    let waited = started.elapsed();
    assert_eq!(body["state"], "complete", "{body}");
    assert_eq!(body["devices"][0]["dev_id"], activated["dev_id"]);
    assert!(
        waited < Duration::from_secs(10),
        "returned after {waited:?}, not at the 30 s timeout"
    );
}

#[tokio::test]
async fn long_poll_times_out_with_the_unchanged_status() {
    let w = World::new(0).await;
    let token = w.service.pairing_token(&w.ann, json!({})).await;
    let started = Instant::now();
    let (status, body) = w
        .service
        .get(
            &format!("/v1/pairing-tokens/{}?wait=1", public_id(&token)),
            Some(&w.ann),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["state"], "pending");
    assert!(started.elapsed() >= Duration::from_millis(900));
    let (status, body) = w
        .service
        .get(
            &format!("/v1/pairing-tokens/{}?wait=61", public_id(&token)),
            Some(&w.ann),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
}

//! Two service processes on one PostgreSQL database, as behind a load balancer: what one
//! node counts, records or changes, the other sees. Each test starts node A (the
//! `World`) and node B on the same data dir (the same keys) and database.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tether_service::pairing_tokens::MAX_WRONG_SECRETS;

use crate::support::{Device, Service, World, assert_error, public_id};

/// Node A (in the world) and node B.
async fn two_nodes(devices: u32) -> (World, Service) {
    let w = World::new(devices).await;
    assert!(
        !crate::engine::on_sqlite(w.dir.path()) || std::env::var("CI").is_err(),
        "these tests need PostgreSQL"
    );
    let b = Service::start(w.dir.path()).await;
    (w, b)
}

/// Every device activates with `token`, half on each node, all at once.
async fn race(w: &World, b: &Service, token: &str) -> Vec<(StatusCode, Value)> {
    let targets = w.devices.iter().enumerate().map(|(i, device)| {
        let addr = if i % 2 == 0 { w.service.addr } else { b.addr };
        (addr, device.clone())
    });
    crate::support::race(targets.collect(), token).await
}

#[tokio::test]
async fn a_token_is_never_used_past_its_limit_across_two_nodes() {
    let (w, b) = two_nodes(40).await;
    let single = w.service.pairing_token(&w.ann, json!({})).await;
    let results = race(&w, &b, &single).await;
    let ok = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(ok, 1, "{results:?}");
    for (status, body) in results.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_error(*status, body, StatusCode::CONFLICT, "token_used");
    }
    // A ten-device token, raced by forty devices over both nodes: exactly ten.
    let ten = b.pairing_token(&w.ann, json!({"max_devices": 10})).await;
    let results = race(&w, &b, &ten).await;
    let ok = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(ok, 10, "{results:?}");
    let (_, status) = w
        .service
        .get(
            &format!("/v1/pairing-tokens/{}", public_id(&ten)),
            Some(&w.ann),
        )
        .await;
    assert_eq!(status["state"], "complete", "{status}");
    assert_eq!(status["devices"].as_array().map(Vec::len), Some(10));
    b.stop().await;
}

#[tokio::test]
async fn a_request_replayed_to_the_other_node_is_refused() {
    let (w, b) = two_nodes(1).await;
    let token = w.service.pairing_token(&w.ann, json!({})).await;
    let (header, body) = w.devices[0].signed_activation(&token);
    let path = crate::support::ACTIVATE;
    let (status, first, _) = w.service.send_signed(path, &header, body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, again, _) = b.send_signed(path, &header, body).await;
    assert_error(status, &again, StatusCode::UNAUTHORIZED, "signature_error");
    assert!(again.get("dev_secret").is_none());
    b.stop().await;
}

#[tokio::test]
async fn a_long_poll_on_one_node_ends_when_the_device_activates_on_the_other() {
    let (w, b) = two_nodes(1).await;
    let token = w.service.pairing_token(&w.ann, json!({})).await;
    let url = w
        .service
        .url(&format!("/v1/pairing-tokens/{}?wait=30", public_id(&token)));
    let poll = tokio::spawn(w.service.http.get(url).bearer_auth(w.ann.clone()).send());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let (status, activated) = b.activate(&w.devices[0], &token, false).await;
    assert_eq!(status, StatusCode::OK, "{activated}");
    let body: Value = poll
        .await
        .expect("poll finished")
        .expect("answers")
        .json()
        .await
        .expect("json");
    let waited = started.elapsed();
    assert_eq!(body["state"], "complete", "{body}");
    assert_eq!(body["devices"][0]["dev_id"], activated["dev_id"]);
    assert!(
        waited < Duration::from_secs(5),
        "woke {waited:?} after the activation, not at the 30 s timeout"
    );
    b.stop().await;
}

#[tokio::test]
async fn wrong_token_secrets_spread_over_two_nodes_count_together() {
    let (w, b) = two_nodes(1).await;
    let token = w.service.pairing_token(&w.ann, json!({})).await;
    let public = public_id(&token);
    let mut wrong = (0..10_000)
        .map(|n| format!("{public}{n:04}"))
        .filter(|guess| *guess != token);
    for i in 0..MAX_WRONG_SECRETS {
        let node = if i % 2 == 0 { &w.service } else { &b };
        let status = report(node, &w.devices[0], &wrong.next().expect("a guess")).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "guess {i} on {}",
            node.addr
        );
    }
    // The limit is spent on both nodes, even for the right secret.
    for node in [&w.service, &b] {
        let status = report(node, &w.devices[0], &wrong.next().expect("a guess")).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "on {}", node.addr);
        let status = report(node, &w.devices[0], &token).await;
        assert_eq!(
            status,
            StatusCode::TOO_MANY_REQUESTS,
            "right secret on {}",
            node.addr
        );
    }
    b.stop().await;
}

/// A failure report for `token` from `device` on `node`.
async fn report(node: &Service, device: &Device, token: &str) -> StatusCode {
    let body = json!({"token": token, "outcome": "failure", "code": "passwd_error", "timings": {}});
    node.signed(device, "/v1/pairing-reports", &body).await.0
}

async fn login(node: &Service, password: &str) -> (StatusCode, Value) {
    node.post(
        "/v1/auth/token",
        None,
        json!({"username": "ann", "password": password}),
    )
    .await
}

#[tokio::test]
async fn failed_logins_spread_over_two_nodes_count_together() {
    let (w, b) = two_nodes(0).await;
    for i in 0..10 {
        let node = if i % 2 == 0 { &w.service } else { &b };
        let (status, body) = login(node, "wrong-password").await;
        assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    }
    for node in [&w.service, &b] {
        let (status, body) = login(node, "ann-password").await;
        assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    }
    b.stop().await;
}

#[tokio::test]
async fn a_token_revoked_on_one_node_cannot_activate_on_the_other() {
    let (w, b) = two_nodes(2).await;
    let token = w
        .service
        .pairing_token(&w.ann, json!({"max_devices": 2}))
        .await;
    // Node A reads the token (and keeps it) for the first device.
    let (status, body) = w.service.activate(&w.devices[0], &token, false).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let path = format!("/v1/pairing-tokens/{}", public_id(&token));
    let (status, _) = b.delete(&path, Some(&w.ann)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // Node A's writer reads the token again in its transaction.
    let (status, body) = w.service.activate(&w.devices[1], &token, false).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "token_invalid");
    assert!(body.get("dev_secret").is_none());
    b.stop().await;
}

//! Signed activation and its typed failures (docs/PROTOCOL.md).

use reqwest::StatusCode;
use serde_json::json;
use tether_proto::signing::{AuthHeader, MAX_SKEW_SECS, new_nonce};

use crate::support::{World, assert_error, now, public_id, sql};

#[tokio::test]
async fn a_signed_activation_returns_identity_credentials_and_topics() {
    let w = World::new(1).await;
    let token = w.service.pairing_token(&w.ann, json!({})).await;
    let (status, body) = w.service.activate(&w.devices[0], &token, false).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let dev_id = body["dev_id"].as_str().expect("dev_id");
    assert_eq!(body["dev_secret"].as_str().map(str::len), Some(32));
    assert_eq!(body["mqtt"]["client_id"], dev_id);
    assert_eq!(body["mqtt"]["username"], dev_id);
    assert!(body["mqtt"]["expires_at"].as_u64().expect("expiry") > now() + 23 * 3600);
    assert_eq!(body["topics"]["in"], format!("smart/device/in/{dev_id}"));
    assert_eq!(body["topics"]["out"], format!("smart/device/out/{dev_id}"));
    assert!(body["server_time"].as_u64().expect("time").abs_diff(now()) <= 2);
}

/// Activates `device` with `token`, its host saying `platform` in `Tether-Platform`.
async fn activate_on(
    w: &World,
    device: &crate::support::Device,
    token: &str,
    platform: &str,
) -> (StatusCode, serde_json::Value) {
    let path = "/v1/devices/activate";
    let bytes = serde_json::to_vec(&device.activation_body(token, false)).expect("json");
    let nonce = new_nonce().expect("random source");
    let principal = device.principal();
    let auth = AuthHeader::sign(
        principal,
        device.authkey.as_bytes(),
        now(),
        nonce,
        "POST",
        path,
        &bytes,
    );
    let (status, body, _) = w
        .service
        .send_signed_with(
            path,
            &auth.to_string(),
            bytes,
            &[("tether-platform", platform)],
        )
        .await;
    (status, body)
}

#[tokio::test]
async fn the_hosts_platform_is_stored_and_a_malformed_one_refused_without_using_the_token() {
    let w = World::new(1).await;
    let token = w.service.pairing_token(&w.ann, json!({})).await;
    let device = &w.devices[0];
    for hostile in [
        "target=x; engine=jit; compiler=no; runtime=w",
        "target=x; engine=native; compiler=no; runtime=w; extra=1",
        &"target=x;".repeat(100),
    ] {
        let (status, body) = activate_on(&w, device, &token, hostile).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    }
    // The token is still good for one device.
    let platform =
        "target=armv7-unknown-linux-gnueabihf; engine=pulley; compiler=no; runtime=wasmtime-48.0.8";
    let (status, body) = activate_on(&w, device, &token, platform).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let dev_id = body["dev_id"].as_str().expect("dev_id");
    let (status, view) = w
        .service
        .get(&format!("/v1/devices/{dev_id}"), Some(&w.ann))
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["platform"], platform);
}

#[tokio::test]
async fn a_wrong_key_is_signature_error() {
    let w = World::new(1).await;
    let token = w.service.pairing_token(&w.ann, json!({})).await;
    let device = &w.devices[0];
    let body = device.activation_body(&token, false);
    let (status, resp, _) = w
        .service
        .signed_at(
            device.principal(),
            "not-the-authkey-not-the-authkey!",
            now(),
            "/v1/devices/activate",
            &body,
        )
        .await;
    assert_error(status, &resp, StatusCode::UNAUTHORIZED, "signature_error");
}

#[tokio::test]
async fn an_unlicensed_uuid_is_refused_like_a_bad_signature() {
    let w = World::new(1).await;
    let token = w.service.pairing_token(&w.ann, json!({})).await;
    let stranger = crate::support::Device {
        uuid: "zzzzzzzzzzzzzzzzzzzz".into(),
        authkey: "k".repeat(32),
    };
    let (status, body) = w.service.activate(&stranger, &token, false).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "signature_error");
    // A licensed uuid with a wrong key gets the very same answer.
    let forger = crate::support::Device {
        uuid: w.devices[0].uuid.clone(),
        authkey: "k".repeat(32),
    };
    let (status, forged) = w.service.activate(&forger, &token, false).await;
    assert_error(status, &forged, StatusCode::UNAUTHORIZED, "signature_error");
    assert_eq!(
        body, forged,
        "an unknown uuid and a bad signature answer alike"
    );
}

#[tokio::test]
async fn malformed_unknown_and_wrong_secret_tokens_are_token_invalid() {
    let w = World::new(1).await;
    let token = w.service.pairing_token(&w.ann, json!({})).await;
    let wrong_secret = format!(
        "{}{}",
        &public_id(&token),
        if &token[10..] == "AAAA" {
            "BBBB"
        } else {
            "AAAA"
        }
    );
    for bad in ["nope", "EUaaaaaaaaAAAA", wrong_secret.as_str()] {
        let (status, body) = w.service.activate(&w.devices[0], bad, false).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "token_invalid");
    }
}

#[tokio::test]
async fn an_expired_token_is_token_expired() {
    let w = World::new(1).await;
    let token = w.service.pairing_token(&w.ann, json!({})).await;
    sql(
        w.dir.path(),
        &format!(
            "UPDATE pairing_tokens SET expires_at = 1 WHERE public_id = '{}'",
            &public_id(&token)
        ),
    )
    .await;
    let (status, body) = w.service.activate(&w.devices[0], &token, false).await;
    assert_error(status, &body, StatusCode::GONE, "token_expired");
}

#[tokio::test]
async fn a_used_single_use_token_is_token_used_but_a_retry_by_the_same_device_is_not() {
    let w = World::new(2).await;
    let token = w.service.pairing_token(&w.ann, json!({})).await;
    let (status, first) = w.service.activate(&w.devices[0], &token, false).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, again) = w.service.activate(&w.devices[0], &token, false).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a retried activation succeeds: {again}"
    );
    assert_eq!(
        again["dev_id"], first["dev_id"],
        "re-activation keeps the dev_id"
    );
    let (status, body) = w.service.activate(&w.devices[1], &token, false).await;
    assert_error(status, &body, StatusCode::CONFLICT, "token_used");
}

#[tokio::test]
async fn a_device_bound_to_another_user_is_dev_already_bound_unless_reset() {
    let w = World::new(1).await;
    let ann_token = w.service.pairing_token(&w.ann, json!({})).await;
    let (status, first) = w.service.activate(&w.devices[0], &ann_token, false).await;
    assert_eq!(status, StatusCode::OK, "{first}");

    let bob = w.user("bob").await;
    let bob_token = w
        .service
        .pairing_token(&bob, json!({"max_devices": 2}))
        .await;
    let (status, body) = w.service.activate(&w.devices[0], &bob_token, false).await;
    assert_error(status, &body, StatusCode::CONFLICT, "dev_already_bound");

    let (status, moved) = w.service.activate(&w.devices[0], &bob_token, true).await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_ne!(
        moved["dev_id"], first["dev_id"],
        "a moved device gets a new dev_id"
    );
}

#[tokio::test]
async fn a_replayed_nonce_is_refused() {
    let w = World::new(1).await;
    let token = w
        .service
        .pairing_token(&w.ann, json!({"max_devices": 2}))
        .await;
    let device = &w.devices[0];
    let bytes = serde_json::to_vec(&device.activation_body(&token, false)).expect("serialises");
    let header = AuthHeader::sign(
        device.principal(),
        device.authkey.as_bytes(),
        now(),
        new_nonce().expect("nonce"),
        "POST",
        "/v1/devices/activate",
        &bytes,
    );
    let (status, body, _) = w
        .service
        .send_signed("/v1/devices/activate", &header.to_string(), bytes.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body, _) = w
        .service
        .send_signed("/v1/devices/activate", &header.to_string(), bytes)
        .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "signature_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("nonce")),
        "{body}"
    );
}

#[tokio::test]
async fn a_skewed_timestamp_is_refused() {
    let w = World::new(1).await;
    let token = w.service.pairing_token(&w.ann, json!({})).await;
    let device = &w.devices[0];
    let body = device.activation_body(&token, false);
    for t in [now() - MAX_SKEW_SECS - 60, now() + MAX_SKEW_SECS + 60] {
        let (status, resp, _) = w
            .service
            .signed_at(
                device.principal(),
                &device.authkey,
                t,
                "/v1/devices/activate",
                &body,
            )
            .await;
        assert_error(status, &resp, StatusCode::UNAUTHORIZED, "signature_error");
    }
}

#[tokio::test]
async fn too_many_activation_attempts_are_rate_limited_with_retry_after() {
    let w = World::new(1).await;
    let device = &w.devices[0];
    let mut last = None;
    for _ in 0..31 {
        let body = device.activation_body("EUaaaaaaaaAAAA", false);
        last = Some(
            w.service
                .signed(device, "/v1/devices/activate", &body)
                .await,
        );
    }
    let (status, body, headers) = last.expect("sent");
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(headers.get("retry-after").is_some());
}

#[tokio::test]
async fn fifty_devices_racing_on_one_single_use_token_yield_exactly_one_activation() {
    let w = World::new(50).await;
    let token = w.service.pairing_token(&w.ann, json!({})).await;
    let results = race(&w, &token).await;
    let ok = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(ok, 1, "{results:?}");
    for (status, body) in results.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_error(*status, body, StatusCode::CONFLICT, "token_used");
    }
}

#[tokio::test]
async fn fifty_devices_on_a_fifty_device_token_all_activate() {
    let w = World::new(50).await;
    let token = w
        .service
        .pairing_token(&w.ann, json!({"max_devices": 50}))
        .await;
    let results = race(&w, &token).await;
    assert!(
        results.iter().all(|(s, _)| *s == StatusCode::OK),
        "{results:?}"
    );
    let (_, status) = w
        .service
        .call(
            reqwest::Method::GET,
            &format!("/v1/pairing-tokens/{}", &public_id(&token)),
            Some(&w.ann),
            None,
        )
        .await;
    assert_eq!(status["state"], "complete");
    assert_eq!(status["devices"].as_array().map(Vec::len), Some(50));
}

async fn race(w: &World, token: &str) -> Vec<(StatusCode, serde_json::Value)> {
    let targets = w.devices.iter().map(|d| (w.service.addr, d.clone()));
    crate::support::race(targets.collect(), token).await
}

#[tokio::test]
async fn an_activated_device_refreshes_its_credentials_with_its_dev_secret() {
    let w = World::new(1).await;
    let token = w.service.pairing_token(&w.ann, json!({})).await;
    let (_, activated) = w.service.activate(&w.devices[0], &token, false).await;
    let dev_id = activated["dev_id"].as_str().expect("dev_id");
    let path = format!("/v1/devices/{dev_id}/mqtt-credentials");
    let (status, body) = w.service.refresh_credentials(&activated).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["mqtt"]["client_id"], dev_id);
    // Signed with the authkey instead: refused.
    let device = &w.devices[0];
    let (status, body, _) = w.service.signed(device, &path, &json!({})).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "signature_error");
}

#[tokio::test]
async fn one_device_activating_many_times_at_once_is_counted_once() {
    let w = World::new(1).await;
    let token = w.service.pairing_token(&w.ann, json!({})).await;
    // The same device, eight requests in flight (each its own nonce): the writer takes
    // them in one batch, a round each, so every later one sees the earlier ones.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (addr, device, token) = (w.service.addr, w.devices[0].clone(), token.clone());
            tokio::spawn(async move { device.activate_at(addr, &token).await })
        })
        .collect();
    let mut dev_ids = std::collections::HashSet::new();
    for task in tasks {
        let (status, body) = task.await.expect("task");
        assert_eq!(status, StatusCode::OK, "{body}");
        dev_ids.insert(body["dev_id"].as_str().expect("dev_id").to_owned());
    }
    assert_eq!(dev_ids.len(), 1, "one device, one dev-id: {dev_ids:?}");
    let (_, status) = w
        .service
        .get(
            &format!("/v1/pairing-tokens/{}", public_id(&token)),
            Some(&w.ann),
        )
        .await;
    assert_eq!(
        status["devices"].as_array().map(Vec::len),
        Some(1),
        "{status}"
    );
    assert_eq!(status["state"], "complete", "{status}");
}

//! A restart on the same data dir keeps users, devices, tokens and keys.

use reqwest::StatusCode;
use serde_json::json;

use crate::broker::mqtt_client;
use crate::support::{Service, World, public_id};

#[tokio::test]
async fn a_restart_keeps_users_tokens_devices_and_keys() {
    let mut w = World::new(1).await;
    let token = w
        .service
        .pairing_token(&w.ann, json!({"max_devices": 2}))
        .await;
    let (_, activated) = w.service.activate(&w.devices[0], &token, false).await;
    let jwks_before = w.service.get("/.well-known/jwks.json", None).await.1;
    let old = std::mem::replace(&mut w.service, Service::start(w.dir.path()).await);
    old.stop().await;

    // The access token issued before the restart still works: the key was reused.
    let path = format!("/v1/pairing-tokens/{}", public_id(&token));
    let (status, token_status) = w.service.get(&path, Some(&w.ann)).await;
    assert_eq!(status, StatusCode::OK, "{token_status}");
    assert_eq!(token_status["devices"][0]["dev_id"], activated["dev_id"]);
    assert_eq!(
        w.service.get("/.well-known/jwks.json", None).await.1,
        jwks_before
    );

    // The device's dev-secret still signs.
    let (status, body) = w.service.refresh_credentials(&activated).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let dev_id = activated["dev_id"].as_str().expect("dev_id");

    // The MQTT password issued before the restart still connects.
    let password = activated["mqtt"]["password"].as_str().expect("password");
    let mut device = mqtt_client(&w, dev_id, dev_id, password);
    device
        .connect()
        .await
        .expect("a JWT from before the restart connects");

    // And the user can still log in.
    w.service.login("ann", "ann-password").await;
}

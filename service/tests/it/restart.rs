//! A restart on the same data dir keeps users, devices, tokens and keys.

use reqwest::{Method, StatusCode};
use serde_json::json;
use tether_proto::signing::Principal;

use crate::support::{Service, World, now};

#[tokio::test]
async fn a_restart_keeps_users_tokens_devices_and_keys() {
    let w = World::new(1).await;
    let token = w
        .service
        .pairing_token(&w.ann, json!({"max_devices": 2}))
        .await;
    let (_, activated) = w.service.activate(&w.devices[0], &token, false).await;
    let jwks_before = w
        .service
        .call(Method::GET, "/.well-known/jwks.json", None, None)
        .await
        .1;
    let World {
        dir,
        service,
        ann,
        devices,
    } = w;
    service.stop().await;

    let service = Service::start(dir.path()).await;
    // The access token issued before the restart still works: the key was reused.
    let (status, status_body) = service
        .call(
            Method::GET,
            &format!("/v1/pairing-tokens/{}", &token[..10]),
            Some(&ann),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{status_body}");
    assert_eq!(status_body["devices"][0]["dev_id"], activated["dev_id"]);
    assert_eq!(
        service
            .call(Method::GET, "/.well-known/jwks.json", None, None)
            .await
            .1,
        jwks_before
    );
    // The device's dev-secret still signs.
    let dev_id = activated["dev_id"].as_str().expect("dev_id");
    let path = format!("/v1/devices/{dev_id}/mqtt-credentials");
    let secret = activated["dev_secret"].as_str().expect("secret");
    let (status, body, _) = service
        .signed_at(
            Principal::DevId(dev_id.into()),
            secret,
            now(),
            &path,
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The user can still log in.
    service.login("ann", "ann-password").await;
    drop(devices);
    service.stop().await;
}

//! Someone with a copy of the data dir, a local account on the machine, or a request
//! captured on the wire: what they hold must not be enough.

use std::os::unix::fs::PermissionsExt;

use reqwest::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::support::{Service, World, assert_error, now, public_id};

#[tokio::test]
async fn the_data_dir_and_database_are_the_owners_alone() {
    let w = World::new(0).await;
    let mode = |name: &str| {
        std::fs::metadata(w.dir.path().join(name))
            .expect("exists")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(""), 0o700);
    assert_eq!(mode(tether_service::keys::TOKEN_HASH_FILE), 0o600);
    if !crate::engine::on_sqlite(w.dir.path()) {
        // The registry is on the PostgreSQL server: its files are the server's.
        return;
    }
    assert_eq!(mode("tether.db"), 0o600);
    // A data dir left world-readable by an older version is narrowed at start.
    std::fs::set_permissions(
        w.dir.path().join("tether.db"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    let second = Service::start(w.dir.path()).await;
    assert_eq!(mode("tether.db"), 0o600);
    second.stop().await;
}

#[tokio::test]
async fn a_dumped_token_hash_is_keyed_and_not_the_plain_hash() {
    let w = World::new(0).await;
    let token = w.service.pairing_token(&w.ann, json!({})).await;
    let pool = crate::engine::open(w.dir.path()).await;
    let (hash, scheme): (Vec<u8>, String) =
        sqlx::query_as("SELECT secret_hash, hash_scheme FROM pairing_tokens WHERE public_id = $1")
            .bind(public_id(&token))
            .fetch_one(&pool)
            .await
            .expect("stored");
    pool.close().await;
    assert_eq!(scheme, "hmac-sha256");
    // The old scheme let a dump test guesses offline: SHA-256 of token ‖ secret.
    assert_ne!(hash, Sha256::digest(&token.as_bytes()[2..]).to_vec());
}

#[tokio::test]
async fn a_captured_activation_cannot_be_replayed_after_a_restart() {
    let mut w = World::new(1).await;
    let token = w
        .service
        .pairing_token(&w.ann, json!({"max_devices": 1}))
        .await;
    let (header, body) = w.devices[0].signed_activation(&token);
    let path = crate::support::ACTIVATE;
    let (status, first, _) = w.service.send_signed(path, &header, body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, again, _) = w.service.send_signed(path, &header, body.clone()).await;
    assert_error(status, &again, StatusCode::UNAUTHORIZED, "signature_error");

    // The same captured request after a restart, within its timestamp window.
    let old = std::mem::replace(&mut w.service, Service::start(w.dir.path()).await);
    old.stop().await;
    let (status, replayed, _) = w.service.send_signed(path, &header, body).await;
    assert_error(
        status,
        &replayed,
        StatusCode::UNAUTHORIZED,
        "signature_error",
    );
    assert!(replayed.get("dev_secret").is_none());

    // Kept only while a request could still pass the timestamp check (±300 s).
    let pool = crate::engine::open(w.dir.path()).await;
    let forget = |at| tether_service::device_auth::forget_expired_nonces(&pool, at);
    assert_eq!(
        forget(now()).await.expect("sweeps"),
        0,
        "still in the window"
    );
    assert!(forget(now() + 601).await.expect("sweeps") >= 1);
    pool.close().await;
}

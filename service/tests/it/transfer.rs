//! Ownership transfer without a factory reset: the owner offers a device, the other
//! account accepts it, and the device (a real MQTT client) stays online and takes the new
//! owner's commands. Attacked: a third account accepts, the old owner commands it, an
//! offer of another's device, to an unknown account or to oneself, an expired offer, and
//! an offer whose device was unbound meanwhile.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::broker::{activated, next_json, online_device};
use crate::support::{World, assert_error, sql};

fn offer_path(dev_id: &str) -> String {
    format!("/v1/devices/{dev_id}/transfer")
}

async fn offer(w: &World, bearer: &str, dev_id: &str, to: &str) -> (StatusCode, Value) {
    w.service
        .post(&offer_path(dev_id), Some(bearer), json!({ "to": to }))
        .await
}

async fn answer(w: &World, bearer: &str, dev_id: &str, verb: &str) -> (StatusCode, Value) {
    w.service
        .post(
            &format!("/v1/transfers/{dev_id}/{verb}"),
            Some(bearer),
            json!({}),
        )
        .await
}

async fn command(w: &World, bearer: &str, dev_id: &str) -> (StatusCode, Value) {
    w.service
        .post(
            &format!("/v1/devices/{dev_id}/commands"),
            Some(bearer),
            json!({"data": {"1": true}}),
        )
        .await
}

#[tokio::test]
async fn an_accepted_offer_hands_the_device_over_online_and_only_to_its_addressee() {
    let w = World::new(1).await;
    let login = activated(&w, 0).await;
    let mut device = online_device(&w, &login).await;
    let bob = w.user("bob").await;
    let carol = w.user("carol").await;

    let (status, body) = offer(&w, &w.ann, &login.dev_id, "bob").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["from"], "ann");
    assert_eq!(body["to"], "bob");
    assert!(body["expires_at"].as_u64().is_some(), "{body}");
    // Both sides see it; a third account does not, and cannot take it.
    for bearer in [&w.ann, &bob] {
        let (_, list) = w.service.get("/v1/transfers", Some(bearer)).await;
        assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
        assert_eq!(list[0]["dev_id"], login.dev_id.as_str());
    }
    let (_, list) = w.service.get("/v1/transfers", Some(&carol)).await;
    assert_eq!(list, json!([]));
    let (status, body) = answer(&w, &carol, &login.dev_id, "accept").await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    // Until bob accepts, the device is ann's.
    let (status, _) = command(&w, &bob, &login.dev_id).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, body) = answer(&w, &bob, &login.dev_id, "accept").await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = w
        .service
        .get(&format!("/v1/devices/{}", login.dev_id), Some(&w.ann))
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = command(&w, &w.ann, &login.dev_id).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    // The device kept its session: bob's command reaches it at once.
    let (status, body) = command(&w, &bob, &login.dev_id).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let heard = next_json(&mut device).await;
    assert_eq!(heard["protocol"], 5, "{heard}");
    assert_eq!(heard["data"], json!({"1": true}));
    let (_, seen) = w
        .service
        .get(&format!("/v1/devices/{}", login.dev_id), Some(&bob))
        .await;
    assert_eq!(seen["online"], true, "{seen}");
    // The offer is spent: accepting twice finds nothing, and the list is empty.
    let (status, _) = answer(&w, &bob, &login.dev_id, "accept").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = w.service.get("/v1/transfers", Some(&bob)).await;
    assert_eq!(list, json!([]));
    // Pairing it again with ann's token is refused: it is bound to bob.
    let token = w.service.pairing_token(&w.ann, json!({})).await;
    let (status, body) = w.service.activate(&w.devices[0], &token, false).await;
    assert_error(status, &body, StatusCode::CONFLICT, "dev_already_bound");
}

#[tokio::test]
async fn offers_of_others_devices_to_unknown_accounts_or_to_oneself_are_refused() {
    let w = World::new(1).await;
    let login = activated(&w, 0).await;
    let bob = w.user("bob").await;
    let (status, body) = offer(&w, &bob, &login.dev_id, "bob").await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = offer(&w, &bob, &login.dev_id, "carol").await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = offer(&w, &w.ann, &login.dev_id, "nobody").await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = offer(&w, &w.ann, &login.dev_id, "ann").await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    let (status, body) = offer(&w, &w.ann, "nosuchdevice", "bob").await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = w
        .service
        .post(
            &offer_path(&login.dev_id),
            Some(&w.ann),
            json!({"to": "bob", "owner": "ann"}),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    let (status, _) = w
        .service
        .post(&offer_path(&login.dev_id), None, json!({"to": "bob"}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, list) = w.service.get("/v1/transfers", Some(&bob)).await;
    assert_eq!(list, json!([]));
}

#[tokio::test]
async fn declined_cancelled_expired_and_stale_offers_cannot_be_accepted() {
    let w = World::new(1).await;
    let login = activated(&w, 0).await;
    let dev = login.dev_id.as_str();
    let bob = w.user("bob").await;

    // Declined.
    assert_eq!(offer(&w, &w.ann, dev, "bob").await.0, StatusCode::CREATED);
    assert_eq!(
        answer(&w, &bob, dev, "decline").await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        answer(&w, &bob, dev, "accept").await.0,
        StatusCode::NOT_FOUND
    );
    // Cancelled; only its maker may cancel it.
    assert_eq!(offer(&w, &w.ann, dev, "bob").await.0, StatusCode::CREATED);
    let (status, _) = w.service.delete(&offer_path(dev), Some(&bob)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = w.service.delete(&offer_path(dev), Some(&w.ann)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        answer(&w, &bob, dev, "accept").await.0,
        StatusCode::NOT_FOUND
    );
    let (status, body) = w.service.delete(&offer_path(dev), Some(&w.ann)).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    // Expired: not listed and not accepted.
    assert_eq!(offer(&w, &w.ann, dev, "bob").await.0, StatusCode::CREATED);
    sql(w.dir.path(), "UPDATE device_transfers SET expires_at = 1").await;
    let (_, list) = w.service.get("/v1/transfers", Some(&bob)).await;
    assert_eq!(list, json!([]));
    let (status, body) = answer(&w, &bob, dev, "accept").await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    // Stale: the device was unbound after the offer was made.
    assert_eq!(offer(&w, &w.ann, dev, "bob").await.0, StatusCode::CREATED);
    let (status, _) = w
        .service
        .delete(&format!("/v1/devices/{dev}"), Some(&w.ann))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        answer(&w, &bob, dev, "accept").await.0,
        StatusCode::NOT_FOUND
    );
    let (_, list) = w.service.get("/v1/devices", Some(&bob)).await;
    assert_eq!(list, json!([]));
}

//! Licenses for operators: listed with their state (as JSON and CSV), and revoked, with
//! a real MQTT client as the device: its session is closed, its credentials stop
//! working and it cannot activate again. Only admins may do either.

use reqwest::StatusCode;
use rumqttc::ConnectionError;
use serde_json::{Value, json};
use tether_service::users::Role;

use crate::broker::{activated, mqtt_client, next_json, online_device};
use crate::support::{World, add_user, assert_error};

async fn admin(w: &World) -> String {
    let password = add_user(w.dir.path(), "root", Role::Admin).await;
    w.service.login("root", &password).await
}

fn states(list: &Value) -> Vec<(String, String)> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|l| {
            (
                l["uuid"].as_str().expect("uuid").to_owned(),
                l["state"].as_str().expect("state").to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn licenses_list_with_their_state_and_export_as_csv_for_admins_only() {
    let w = World::new(3).await;
    let root = admin(&w).await;
    let login = activated(&w, 0).await;
    let (status, list) = w.service.get("/v1/licenses", Some(&root)).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let all = states(&list);
    assert_eq!(all.len(), 3);
    let active: Vec<_> = list
        .as_array()
        .expect("list")
        .iter()
        .filter(|l| l["state"] == "active")
        .collect();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0]["uuid"], w.devices[0].uuid.as_str());
    assert_eq!(active[0]["dev_id"], login.dev_id.as_str());
    assert_eq!(active[0]["owner"], "ann");
    let text = list.to_string();
    assert!(
        !text.contains(&w.devices[1].authkey),
        "no authkey is listed"
    );

    // Filters and pages.
    let (_, unused) = w
        .service
        .get("/v1/licenses?state=unused", Some(&root))
        .await;
    assert_eq!(states(&unused).len(), 2);
    let first = &all[0].0;
    let (_, page) = w
        .service
        .get(&format!("/v1/licenses?after={first}&limit=1"), Some(&root))
        .await;
    assert_eq!(states(&page), vec![all[1].clone()]);

    // CSV, for a spreadsheet.
    let resp = w
        .service
        .http
        .get(w.service.url("/v1/licenses?format=csv"))
        .bearer_auth(&root)
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/csv")
    );
    let csv = resp.text().await.expect("text");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "uuid,product_key,state,dev_id,owner,created_at,revoked_at"
    );
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(
        csv.contains(&format!("{},", w.devices[0].uuid)) && csv.contains(",active,"),
        "{csv}"
    );

    // Bad input and other users.
    for query in [
        "state=gone",
        "limit=0",
        "limit=10001",
        "format=xml",
        "colour=red",
    ] {
        let (status, body) = w
            .service
            .get(&format!("/v1/licenses?{query}"), Some(&root))
            .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    }
    let (status, body) = w.service.get("/v1/licenses", Some(&w.ann)).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = w
        .service
        .post(
            &format!("/v1/licenses/{}/revoke", w.devices[0].uuid),
            Some(&w.ann),
            json!({}),
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, _) = w.service.get("/v1/licenses", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_revoked_license_is_disconnected_refused_at_login_and_at_activation() {
    let w = World::new(2).await;
    let root = admin(&w).await;
    let login = activated(&w, 0).await;
    let mut device = online_device(&w, &login).await;

    let path = format!("/v1/licenses/{}/revoke", w.devices[0].uuid);
    let (status, body) = w.service.post(&path, Some(&root), json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    // The device hears it is unbound (protocol 8) and its session ends.
    let notice = next_json(&mut device).await;
    assert_eq!(notice["protocol"], 8, "{notice}");
    device.closed().await;
    // Its MQTT password no longer works, nor does activating again with a fresh token.
    let mut again = mqtt_client(&w, &login.dev_id, &login.dev_id, &login.password);
    assert!(matches!(
        again.connect().await,
        Err(ConnectionError::ConnectionRefused(_))
    ));
    let token = w.service.pairing_token(&w.ann, json!({})).await;
    let (status, body) = w.service.activate(&w.devices[0], &token, false).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "license_revoked");
    let (status, body) = w.service.activate(&w.devices[0], &token, true).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "license_revoked");
    // The other license still works; revoking twice is fine; an unknown one is not found.
    let (status, body) = w.service.activate(&w.devices[1], &token, false).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = w.service.post(&path, Some(&root), json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = w
        .service
        .post(
            "/v1/licenses/nosuchlicense0000000/revoke",
            Some(&root),
            json!({}),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (_, list) = w
        .service
        .get("/v1/licenses?state=revoked", Some(&root))
        .await;
    assert_eq!(
        states(&list),
        vec![(w.devices[0].uuid.clone(), "revoked".into())]
    );
    assert!(list[0]["revoked_at"].as_u64().is_some(), "{list}");
}

//! Login and access tokens.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{World, assert_error};

#[tokio::test]
async fn login_gives_a_bearer_token_that_opens_the_api() {
    let w = World::new(0).await;
    let (status, body) = w
        .service
        .post("/v1/pairing-tokens", Some(&w.ann), json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_get_the_same_401() {
    let w = World::new(0).await;
    for (user, password) in [("ann", "not-her-password"), ("nobody", "whatever-password")] {
        let (status, body) = w
            .service
            .post(
                "/v1/auth/token",
                None,
                json!({"username": user, "password": password}),
            )
            .await;
        assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
        assert_eq!(body["error"]["message"], "wrong username or password");
    }
}

#[tokio::test]
async fn user_endpoints_refuse_missing_or_forged_tokens() {
    let w = World::new(0).await;
    for bearer in [None, Some("not.a.jwt"), Some(&w.ann[..w.ann.len() - 2])] {
        let (status, body) = w
            .service
            .call(Method::POST, "/v1/pairing-tokens", bearer, Some(json!({})))
            .await;
        assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    }
}

#[tokio::test]
async fn repeated_failed_logins_are_rate_limited_with_retry_after() {
    let w = World::new(0).await;
    let mut last = None;
    for _ in 0..12 {
        let resp = w
            .service
            .http
            .post(w.service.url("/v1/auth/token"))
            .json(&json!({"username": "ann", "password": "guess-guess"}))
            .send()
            .await
            .expect("answers");
        last = Some(resp);
    }
    let resp = last.expect("sent");
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry));
}

#[tokio::test]
async fn licenses_need_the_admin_role() {
    let w = World::new(0).await;
    let (status, body) = w
        .service
        .post(
            "/v1/licenses",
            Some(&w.ann),
            json!({"product_key": "p0123456789abcde", "count": 1}),
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");

    let password =
        crate::support::add_user(w.dir.path(), "root", tether_service::users::Role::Admin).await;
    let admin = w.service.login("root", &password).await;
    let (status, body) = w
        .service
        .post(
            "/v1/licenses",
            Some(&admin),
            json!({"product_key": "p0123456789abcde", "count": 3}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let issued = body.as_array().expect("a list");
    assert_eq!(issued.len(), 3);
    assert_eq!(issued[0]["uuid"].as_str().map(str::len), Some(20));
    assert_eq!(issued[0]["authkey"].as_str().map(str::len), Some(32));
    let (status, body) = w
        .service
        .post(
            "/v1/licenses",
            Some(&admin),
            json!({"product_key": "short", "count": 1}),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
}

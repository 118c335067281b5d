//! The web console over HTTP, as a browser and as an attacker send it: the sign-in form
//! and its cookies, CSRF (missing, another session's, sent by another site), another
//! account's objects, a signed-out cookie, non-admins on admin pages, oversize and
//! mistyped forms, the live streams and their limit. (`tests/e2e/console.rs` drives the
//! same pages in a real browser.)

use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Client, RequestBuilder, StatusCode};
use serde_json::json;
use tether_service::users::Role;

use crate::support::{World, add_user};

/// A browser's view of one signed-in account: its session cookie and its CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

fn client(w: &World) -> Client {
    let mut builder = Client::builder().redirect(reqwest::redirect::Policy::none());
    if let Some(pem) = &w.service.ca {
        builder = builder.add_root_certificate(reqwest::Certificate::from_pem(pem).expect("PEM"));
    }
    builder.build().expect("client")
}

/// The first cookie `name=value` the answer sets, with its attributes.
fn set_cookie(answer: &reqwest::Response, name: &str) -> Option<String> {
    answer
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

fn pair(cookie: &str) -> String {
    cookie.split(';').next().unwrap_or_default().to_owned()
}

/// The value of the first hidden `_csrf` field of a page.
fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"_csrf\" value=\"").expect("a CSRF field") + 20;
    html[at..].split('"').next().unwrap_or_default().to_owned()
}

async fn sign_in(w: &World, http: &Client, name: &str, password: &str) -> Session {
    let prefix = if w.service.ca.is_some() {
        "__Host-"
    } else {
        ""
    };
    let form = http
        .get(w.service.url("/login"))
        .send()
        .await
        .expect("answers");
    let login_cookie =
        pair(&set_cookie(&form, &format!("{prefix}tether_login")).expect("a login cookie"));
    let csrf = csrf_of(&form.text().await.expect("a page"));
    let answer = http
        .post(w.service.url("/login"))
        .header(COOKIE, login_cookie)
        .form(&[
            ("_csrf", csrf.as_str()),
            ("username", name),
            ("password", password),
        ])
        .send()
        .await
        .expect("answers");
    assert_eq!(answer.status(), StatusCode::SEE_OTHER, "signed in");
    let cookie = set_cookie(&answer, &format!("{prefix}tether_session")).expect("a session cookie");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    let cookie = pair(&cookie);
    let page = get(http, w, "/tokens", &cookie).await;
    assert_eq!(page.0, StatusCode::OK);
    Session {
        csrf: csrf_of(&page.1),
        cookie,
    }
}

/// `GET path` with the session cookie, the answer as it came.
async fn open(http: &Client, w: &World, path: &str, cookie: &str) -> reqwest::Response {
    http.get(w.service.url(path))
        .header(COOKIE, cookie)
        .send()
        .await
        .expect("answers")
}

async fn get(http: &Client, w: &World, path: &str, cookie: &str) -> (StatusCode, String) {
    let answer = open(http, w, path, cookie).await;
    (answer.status(), answer.text().await.expect("a body"))
}

fn post(http: &Client, w: &World, path: &str, cookie: &str) -> RequestBuilder {
    http.post(w.service.url(path)).header(COOKIE, cookie)
}

async fn sent(request: RequestBuilder) -> (StatusCode, String) {
    let answer = request.send().await.expect("answers");
    (answer.status(), answer.text().await.expect("a body"))
}

fn error_code(page: &str) -> &str {
    page.split("data-code=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or("")
}

/// An account with a password, a bearer token, and a device bound to it.
async fn owner_with_device(w: &World, name: &str) -> (String, String) {
    let password = add_user(w.dir.path(), name, Role::User).await;
    let bearer = w.service.login(name, &password).await;
    let token = w.service.pairing_token(&bearer, json!({})).await;
    let (status, body) = w.service.activate(&w.devices[0], &token, false).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (
        password,
        body["dev_id"].as_str().expect("dev_id").to_owned(),
    )
}

#[tokio::test]
async fn signing_in_sets_a_strict_http_only_cookie_and_signing_out_ends_the_session() {
    let w = World::with_tls(0).await;
    let http = client(&w);
    let password = add_user(w.dir.path(), "cara", Role::User).await;
    // A wrong password: the form again, 401, no session.
    let form = http
        .get(w.service.url("/login"))
        .send()
        .await
        .expect("answers");
    let login_cookie = pair(&set_cookie(&form, "__Host-tether_login").expect("a login cookie"));
    let csrf = csrf_of(&form.text().await.expect("a page"));
    let wrong = http
        .post(w.service.url("/login"))
        .header(COOKIE, &login_cookie)
        .form(&[
            ("_csrf", csrf.as_str()),
            ("username", "cara"),
            ("password", "not her password"),
        ])
        .send()
        .await
        .expect("answers");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookie(&wrong, "__Host-tether_session").is_none());
    assert!(
        wrong
            .text()
            .await
            .expect("a page")
            .contains("wrong username or password")
    );
    // The login form without its cookie (a form posted from another site): refused.
    let (status, page) = sent(http.post(w.service.url("/login")).form(&[
        ("_csrf", csrf.as_str()),
        ("username", "cara"),
        ("password", password.as_str()),
    ]))
    .await;
    assert_eq!((status, error_code(&page)), (StatusCode::FORBIDDEN, "csrf"));

    let cara = sign_in(&w, &http, "cara", &password).await;
    let (status, page) = get(&http, &w, "/devices", &cara.cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("cara"), "the page names the user");
    let answer = open(&http, &w, "/devices", &cara.cookie).await;
    let csp = answer.headers()["content-security-policy"]
        .to_str()
        .expect("text");
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(answer.headers()["x-frame-options"], "DENY");

    let (status, _) =
        sent(post(&http, &w, "/logout", &cara.cookie).form(&[("_csrf", cara.csrf.as_str())])).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    // The same cookie, kept by an attacker, is worthless now.
    let answer = open(&http, &w, "/devices", &cara.cookie).await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert_eq!(answer.headers()[LOCATION], "/login");
}

#[tokio::test]
async fn a_form_without_this_sessions_csrf_token_or_from_another_site_is_refused() {
    let w = World::new(0).await;
    let http = client(&w);
    let cara = add_user(w.dir.path(), "cara", Role::User).await;
    let dan = add_user(w.dir.path(), "dan", Role::User).await;
    let cara = sign_in(&w, &http, "cara", &cara).await;
    let dan = sign_in(&w, &http, "dan", &dan).await;
    let fields = |csrf: &str| {
        vec![
            ("_csrf", csrf.to_owned()),
            ("ttl_minutes", "10".into()),
            ("max_devices", "1".into()),
        ]
    };
    let without = vec![
        ("ttl_minutes", "10".to_owned()),
        ("max_devices", "1".into()),
    ];
    for (what, form) in [
        ("no token", without),
        ("another session's token", fields(&dan.csrf)),
        ("an empty token", fields("")),
    ] {
        let (status, page) = sent(post(&http, &w, "/tokens", &cara.cookie).form(&form)).await;
        assert_eq!(
            (status, error_code(&page)),
            (StatusCode::FORBIDDEN, "csrf"),
            "{what}"
        );
    }
    let (status, page) = sent(
        post(&http, &w, "/tokens", &cara.cookie)
            .header("sec-fetch-site", "cross-site")
            .form(&fields(&cara.csrf)),
    )
    .await;
    assert_eq!(
        (status, error_code(&page)),
        (StatusCode::FORBIDDEN, "csrf"),
        "cross-site"
    );
    let (_, list) = get(&http, &w, "/tokens", &cara.cookie).await;
    assert!(
        list.contains("No tokens yet"),
        "no refused form made a token"
    );

    // Mistyped and oversized forms: typed errors, no token.
    let (status, page) = sent(
        post(&http, &w, "/tokens", &cara.cookie)
            .header(CONTENT_TYPE, "application/json")
            .body(r#"{"ttl_minutes": 10}"#),
    )
    .await;
    assert_eq!(
        (status, error_code(&page)),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
    );
    let huge = "9".repeat(200_000);
    let (status, _) = sent(post(&http, &w, "/tokens", &cara.cookie).form(&[
        ("_csrf", cara.csrf.as_str()),
        ("ttl_minutes", huge.as_str()),
    ]))
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, page) = sent(post(&http, &w, "/tokens", &cara.cookie).form(&[
        ("_csrf", cara.csrf.as_str()),
        ("ttl_minutes", "100000"),
        ("max_devices", "1"),
    ]))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        page.contains("1 to 1440 minutes") && page.contains("value=\"100000\""),
        "the form again, as typed"
    );

    let (status, page) =
        sent(post(&http, &w, "/tokens", &cara.cookie).form(&fields(&cara.csrf))).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(page.contains("id=\"token-text\""), "the new token");
}

#[tokio::test]
async fn another_accounts_devices_and_tokens_are_neither_shown_nor_reachable() {
    let w = World::new(1).await;
    let http = client(&w);
    let (password, dev_id) = owner_with_device(&w, "cara").await;
    let eve = add_user(w.dir.path(), "eve", Role::User).await;
    let cara = sign_in(&w, &http, "cara", &password).await;
    let eve = sign_in(&w, &http, "eve", &eve).await;
    let (_, mine) = get(&http, &w, "/devices", &cara.cookie).await;
    assert!(mine.contains(&dev_id));
    let (_, tokens) = get(&http, &w, "/tokens", &cara.cookie).await;
    let token = tokens
        .split("href=\"/tokens/")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("cara's token")
        .to_owned();

    let (_, theirs) = get(&http, &w, "/devices", &eve.cookie).await;
    assert!(!theirs.contains(&dev_id), "cara's device in eve's list");
    for path in [
        format!("/devices/{dev_id}"),
        format!("/devices/{dev_id}/live"),
        format!("/tokens/{token}"),
        format!("/tokens/{token}/live"),
    ] {
        let (status, page) = get(&http, &w, &path, &eve.cookie).await;
        assert_eq!(
            (status, error_code(&page)),
            (StatusCode::NOT_FOUND, "not_found"),
            "{path}"
        );
        assert!(!page.contains(&w.devices[0].uuid), "{path}");
    }
    for (path, form) in [
        (
            format!("/devices/{dev_id}/unbind"),
            vec![("_csrf", eve.csrf.clone())],
        ),
        (
            format!("/devices/{dev_id}/command"),
            vec![
                ("_csrf", eve.csrf.clone()),
                ("data", r#"{"1":true}"#.into()),
            ],
        ),
        (
            format!("/tokens/{token}/revoke"),
            vec![("_csrf", eve.csrf.clone())],
        ),
    ] {
        let (status, page) = sent(post(&http, &w, &path, &eve.cookie).form(&form)).await;
        assert_eq!(
            (status, error_code(&page)),
            (StatusCode::NOT_FOUND, "not_found"),
            "{path}"
        );
    }
    let (status, page) = get(&http, &w, &format!("/devices/{dev_id}"), &cara.cookie).await;
    assert_eq!(status, StatusCode::OK, "still cara's");
    assert!(page.contains(&w.devices[0].uuid));
    let (_, page) = get(&http, &w, &format!("/tokens/{token}"), &cara.cookie).await;
    assert!(
        page.contains("data-state=\"complete\""),
        "not revoked: {page}"
    );

    // Admin pages: refused to a user, with a page that says so.
    for path in ["/admin/licenses", "/admin/modules", "/admin/licenses.csv"] {
        let (status, page) = get(&http, &w, path, &eve.cookie).await;
        assert_eq!(
            (status, error_code(&page)),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{path}"
        );
    }
    let (status, page) = get(&http, &w, "/admin/modules/not-a-number", &eve.cookie).await;
    assert_eq!(
        (status, error_code(&page)),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    // Signed out: pages send to the sign-in form; a browser's unknown path gets a page,
    // an API client's gets JSON.
    let answer = http
        .get(w.service.url("/tokens"))
        .send()
        .await
        .expect("answers");
    assert_eq!(answer.headers()[LOCATION], "/login");
    let (status, page) = sent(
        http.get(w.service.url("/nowhere"))
            .header("accept", "text/html"),
    )
    .await;
    assert_eq!(
        (status, error_code(&page)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let (status, body) = w.service.get("/nowhere", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
}

#[tokio::test]
async fn live_streams_send_the_current_state_and_are_limited_per_user() {
    let w = World::new(1).await;
    let http = client(&w);
    let (password, dev_id) = owner_with_device(&w, "cara").await;
    let cara = sign_in(&w, &http, "cara", &password).await;
    let mut first = open(&http, &w, "/devices/live", &cara.cookie).await;
    assert_eq!(first.headers()[CONTENT_TYPE], "text/event-stream");
    let chunk = first.chunk().await.expect("reads").expect("an event");
    let event = String::from_utf8_lossy(&chunk);
    assert!(
        event.starts_with("event: update") && event.contains(&dev_id),
        "{event}"
    );
    assert!(event.contains("data-presence=\"offline\""), "{event}");
    let mut held = vec![first];
    for _ in 1..tether_service::console::live::MAX_STREAMS_PER_USER {
        let answer = open(&http, &w, "/devices/live", &cara.cookie).await;
        assert_eq!(answer.status(), StatusCode::OK);
        held.push(answer);
    }
    let (status, page) = get(&http, &w, "/devices/live", &cara.cookie).await;
    assert_eq!(
        (status, error_code(&page)),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
    );
    // Closing one gives its place back.
    drop(held.pop());
    let every = std::time::Duration::from_millis(50);
    let again =
        tether_service::local::eventually(std::time::Duration::from_secs(10), every, || async {
            let answer = http
                .get(w.service.url("/devices/live"))
                .header(COOKIE, &cara.cookie)
                .send()
                .await
                .map_err(|_| ())?;
            if answer.status() == StatusCode::OK {
                Ok(answer)
            } else {
                Err(())
            }
        })
        .await
        .expect("a place again");
    held.push(again);
    // Signing out ends the streams: each says so and closes.
    let (status, _) =
        sent(post(&http, &w, "/logout", &cara.cookie).form(&[("_csrf", cara.csrf.as_str())])).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let mut last = held.pop().expect("a stream");
    let mut seen = String::new();
    while let Ok(Some(chunk)) = last.chunk().await {
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("event: gone"), "{seen}");
}

/// A multipart form with `fields` in order (name, file name, bytes), as a browser sends
/// a file upload.
fn multipart(fields: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "----tether-console-test-boundary";
    let mut body = Vec::new();
    for (name, file, bytes) in fields {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let disposition = match file {
            Some(file) => format!(
                "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            ),
            None => format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n"),
        };
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn an_admin_upload_is_checked_for_its_csrf_token_first_and_a_bad_bundle_is_a_typed_page() {
    let w = World::configured(0, |config| {
        config.module_keys = vec!["11".repeat(32)];
    })
    .await;
    let http = client(&w);
    let ops = add_user(w.dir.path(), "ops", Role::Admin).await;
    let ops = sign_in(&w, &http, "ops", &ops).await;
    let upload = |fields: &[(&str, Option<&str>, &[u8])]| {
        let (kind, body) = multipart(fields);
        post(&http, &w, "/admin/modules", &ops.cookie)
            .header(CONTENT_TYPE, kind)
            .body(body)
    };
    let junk: &[u8] = b"not a bundle at all";
    // The token must come first, before any of the file is read.
    for (what, fields) in [
        ("no token", vec![("bundle", Some("x.bundle"), junk)]),
        (
            "the file first",
            vec![
                ("bundle", Some("x.bundle"), junk),
                ("_csrf", None, ops.csrf.as_bytes()),
            ],
        ),
        (
            "a wrong token",
            vec![
                ("_csrf", None, &b"00"[..]),
                ("bundle", Some("x.bundle"), junk),
            ],
        ),
    ] {
        let (status, page) = sent(upload(&fields)).await;
        assert_eq!(
            (status, error_code(&page)),
            (StatusCode::FORBIDDEN, "csrf"),
            "{what}"
        );
    }
    let (status, page) = sent(upload(&[
        ("_csrf", None, ops.csrf.as_bytes()),
        ("bundle", Some("x.bundle"), junk),
    ]))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        page.contains("tether module sign"),
        "says what to do: {page}"
    );
    let (status, _) = sent(upload(&[
        ("_csrf", None, ops.csrf.as_bytes()),
        ("bundle", Some("x.bundle"), b""),
    ]))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "an empty file");
    let (status, page) =
        sent(post(&http, &w, "/admin/modules", &ops.cookie).form(&[("_csrf", ops.csrf.as_str())]))
            .await;
    assert_eq!(
        (status, error_code(&page)),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
    );
    let (_, list) = get(&http, &w, "/admin/modules", &ops.cookie).await;
    assert!(list.contains("None yet."), "nothing was stored");
}

#[tokio::test]
async fn an_owner_revokes_a_token_and_an_admin_a_licence_from_their_pages() {
    let w = World::new(1).await;
    let http = client(&w);
    let (password, dev_id) = owner_with_device(&w, "cara").await;
    let cara = sign_in(&w, &http, "cara", &password).await;
    let (status, page) = sent(post(&http, &w, "/tokens", &cara.cookie).form(&[
        ("_csrf", cara.csrf.as_str()),
        ("ttl_minutes", "5"),
        ("max_devices", "3"),
    ]))
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let whole = page
        .split("id=\"token-text\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .expect("the token")
        .to_owned();
    let public_id = &whole[..10];
    let (status, page) = get(&http, &w, &format!("/tokens/{public_id}"), &cara.cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!page.contains(&whole), "the whole token is shown once only");
    let (status, _) = sent(
        post(
            &http,
            &w,
            &format!("/tokens/{public_id}/revoke"),
            &cara.cookie,
        )
        .form(&[("_csrf", cara.csrf.as_str())]),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, page) = get(&http, &w, &format!("/tokens/{public_id}"), &cara.cookie).await;
    assert!(page.contains("data-state=\"revoked\""), "{page}");

    let ops = add_user(w.dir.path(), "ops", Role::Admin).await;
    let ops = sign_in(&w, &http, "ops", &ops).await;
    let uuid = &w.devices[0].uuid;
    let (status, _) = sent(
        post(
            &http,
            &w,
            &format!("/admin/licenses/{uuid}/revoke"),
            &ops.cookie,
        )
        .form(&[("_csrf", ops.csrf.as_str())]),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, page) = get(&http, &w, "/admin/licenses?state=revoked", &ops.cookie).await;
    assert!(page.contains(uuid.as_str()), "listed as revoked");
    let (_, mine) = get(&http, &w, "/devices", &cara.cookie).await;
    assert!(!mine.contains(&dev_id), "its device was unbound");
    let (status, page) = get(&http, &w, "/admin/licenses.csv?state=revoked", &ops.cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.starts_with("uuid,") && page.contains(uuid.as_str()),
        "{page}"
    );
}

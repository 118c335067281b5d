//! Strangers and other tenants against the HTTP API: login floods, slow clients, a
//! pairing-report oracle, long-poll hoarding, and uploads by non-admins.

use std::net::IpAddr;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{World, assert_error, public_id};

/// A client whose connections come from `ip` (a loopback address).
fn client_from(ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::from(ip))
        .build()
        .expect("client")
}

async fn login_status(
    w: &World,
    http: &reqwest::Client,
    name: &str,
    password: &str,
) -> (StatusCode, Option<String>) {
    let resp = http
        .post(w.service.url("/v1/auth/token"))
        .json(&json!({"username": name, "password": password}))
        .send()
        .await
        .expect("answers");
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (resp.status(), retry)
}

#[tokio::test]
async fn a_login_flood_from_one_address_is_limited_and_the_owner_still_logs_in() {
    let w = World::new(0).await;
    let attacker = client_from([127, 0, 0, 11]);
    let mut limited = 0;
    for i in 0..200 {
        let (status, retry) = login_status(&w, &attacker, &format!("u{i}"), "guess-guess").await;
        match status {
            StatusCode::UNAUTHORIZED => {}
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(retry.is_some(), "429 without Retry-After");
                limited += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(limited >= 150, "only {limited} of 200 were limited");
    // Malformed names are refused before they become a rate-limit key.
    let (status, _) = login_status(&w, &attacker, &"n".repeat(1000), "guess-guess").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // The owner, elsewhere, logs in.
    let owner = client_from([127, 0, 0, 12]);
    let password =
        crate::support::add_user(w.dir.path(), "owner", tether_service::users::Role::User).await;
    let (status, _) = login_status(&w, &owner, "owner", &password).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn guessing_one_accounts_password_from_many_addresses_is_limited_for_a_window() {
    let w = World::new(0).await;
    let mut statuses = Vec::new();
    for i in 0..12u8 {
        let http = client_from([127, 0, 1, i + 1]);
        statuses.push(login_status(&w, &http, "ann", "wrong-password").await.0);
    }
    assert_eq!(statuses[..10], [StatusCode::UNAUTHORIZED; 10]);
    assert_eq!(statuses[10], StatusCode::TOO_MANY_REQUESTS);
}

/// Reads until the server closes the connection; the time it took.
async fn closed_after(mut stream: TcpStream, trickle: bool) -> Duration {
    let started = tokio::time::Instant::now();
    let mut buf = [0u8; 256];
    loop {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {}
            },
            () = tokio::time::sleep(Duration::from_secs(2)), if trickle => {
                if stream.write_all(b"X").await.is_err() {
                    return started.elapsed();
                }
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the connection was held"
        );
    }
}

#[tokio::test]
async fn slow_and_idle_clients_are_disconnected() {
    let w = World::new(0).await;
    let idle = TcpStream::connect(w.service.addr).await.expect("connects");
    let mut slow = TcpStream::connect(w.service.addr).await.expect("connects");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .expect("writes");
    let (idle, slow) = tokio::join!(closed_after(idle, false), closed_after(slow, true));
    let limit = tether_service::server::HEADER_TIMEOUT + Duration::from_secs(3);
    assert!(idle <= limit, "an idle connection was held {idle:?}");
    assert!(slow <= limit, "a slowloris was held {slow:?}");
    // The service still answers.
    let (status, _) = w.service.get("/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
}

async fn report(w: &World, device: usize, token: &str) -> StatusCode {
    let d = &w.devices[device];
    let body = json!({"token": token, "outcome": "failure", "code": "passwd_error", "timings": {}});
    w.service.signed(d, "/v1/pairing-reports", &body).await.0
}

#[tokio::test]
async fn pairing_reports_are_no_oracle_for_a_tokens_secret() {
    let w = World::new(2).await;
    let token = w.service.pairing_token(&w.ann, json!({})).await;
    let public = &public_id(&token);
    // Wrong guesses of the secret, from one device, then from another.
    let mut answers = Vec::new();
    for guess in 0..12 {
        let wrong = format!("{public}{guess:04}");
        if wrong == token {
            continue;
        }
        answers.push(report(&w, usize::from(guess >= 6), &wrong).await);
    }
    let bad: Vec<_> = answers
        .iter()
        .filter(|s| **s == StatusCode::BAD_REQUEST)
        .collect();
    assert_eq!(
        bad.len(),
        tether_service::pairing_tokens::MAX_WRONG_SECRETS as usize
    );
    assert_eq!(answers.last(), Some(&StatusCode::TOO_MANY_REQUESTS));
    // Even the right secret is refused until the window ends: guessing cannot go on.
    assert_eq!(report(&w, 0, &token).await, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn one_device_cannot_flood_reports() {
    let w = World::new(1).await;
    let token = w
        .service
        .pairing_token(&w.ann, json!({"max_devices": 5}))
        .await;
    let mut limited = false;
    for _ in 0..25 {
        match report(&w, 0, &token).await {
            StatusCode::NO_CONTENT => {}
            StatusCode::TOO_MANY_REQUESTS => limited = true,
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        limited,
        "25 reports a minute from one device were all stored"
    );
}

#[tokio::test]
async fn a_user_cannot_hoard_long_polls() {
    let w = World::new(0).await;
    let token = w.service.pairing_token(&w.ann, json!({})).await;
    let url = w
        .service
        .url(&format!("/v1/pairing-tokens/{}?wait=5", &public_id(&token)));
    let polls: Vec<_> = (0..tether_service::pairing_tokens::MAX_POLLS_PER_USER)
        .map(|_| {
            let req = w.service.http.get(&url).bearer_auth(&w.ann).send();
            tokio::spawn(req)
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = w
        .service
        .get(
            &format!("/v1/pairing-tokens/{}?wait=5", &public_id(&token)),
            Some(&w.ann),
        )
        .await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    // Another user's long-poll is not affected.
    let bob = w.user("bob").await;
    let bob_token = w.service.pairing_token(&bob, json!({})).await;
    let (status, _) = w
        .service
        .get(
            &format!("/v1/pairing-tokens/{}?wait=1", &public_id(&bob_token)),
            Some(&bob),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    for poll in polls {
        assert_eq!(
            poll.await.expect("task").expect("answers").status(),
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn a_non_admin_upload_is_refused_before_its_body_is_read() {
    let w = World::new(0).await;
    let mut stream = TcpStream::connect(w.service.addr).await.expect("connects");
    // Announces 16 MiB and sends none of it: the refusal must not wait for the body.
    let head = format!(
        "POST /v1/modules HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        w.ann,
        16 * 1024 * 1024
    );
    stream.write_all(head.as_bytes()).await.expect("writes");
    let mut answer = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut answer))
        .await
        .expect("answered without the body")
        .expect("reads");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
}

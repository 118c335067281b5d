//! The `tether-service` binary as a user runs it: `serve`, with `user add` and
//! `license issue` on the same data dir while it runs, a graceful stop on SIGTERM, and
//! logs that carry no secret.

use std::process::Command;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tether_e2e::{Cloud, Output, PRODUCT_KEY, bin};
use tether_proto::setup_code::{PairingVerifier, QrPayload, SetupCode};

/// `tether-service ARGS` with `stdin`, with no service running.
fn cli(args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut command = Command::new(bin("tether-service"));
    command.args(args);
    let out = Output::of(command, stdin);
    (out.code == 0, out.stdout, out.stderr)
}

/// Logs in to the service at `base`; the access token.
async fn login(http: &reqwest::Client, base: &str, user: &str, password: &str) -> String {
    let answer: Value = http
        .post(format!("{base}/v1/auth/token"))
        .json(&json!({"username": user, "password": password}))
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    answer["access_token"]
        .as_str()
        .expect("access token")
        .to_owned()
}

#[tokio::test]
async fn the_binary_serves_takes_cli_changes_while_running_stops_on_sigterm_and_logs_no_secret() {
    // The admin's password comes from a file, not the command line or the environment.
    // The harness blocks while it waits for the process, so it starts off the runtime.
    let mut cloud =
        tokio::task::spawn_blocking(|| Cloud::start_with_admin("root", "r00t-passw0rd"))
            .await
            .expect("the service starts");
    let base = cloud.url.clone();
    let http = cloud.http_client();

    // Account and license made with the CLI while the service runs on the same data dir.
    cloud.add_user("ann", "ann-passw0rd", false);
    let license = cloud.licenses(1).remove(0);
    let (uuid, authkey) = (license.uuid.as_str(), license.authkey.as_str());

    let access = &login(&http, &base, "ann", "ann-passw0rd").await;
    let token: Value = http
        .post(format!("{base}/v1/pairing-tokens"))
        .bearer_auth(access)
        .json(&json!({}))
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    let token = token["token"].as_str().expect("token");
    let request = json!({"uuid": uuid, "product_key": PRODUCT_KEY, "token": token, "sw_ver": "1", "module_version": "1", "reset": false});
    let resp = tether_e2e::post_activation(&http, &base, (uuid, authkey), &request).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let activated: Value = resp.json().await.expect("json");
    let (dev_secret, mqtt_password) = (
        activated["dev_secret"].as_str().expect("secret"),
        activated["mqtt"]["password"].as_str().expect("jwt"),
    );

    // The health check the container images use.
    let addr = cloud.addr().to_string();
    let ca = cloud.ca().expect("TLS by default");
    let ca = ca.to_str().expect("a UTF-8 path");
    let (ok, out, err) = cli(&["healthcheck", "--addr", &addr, "--ca", ca], None);
    assert!(ok && out.trim() == "ready", "{out}{err}");
    // Without the CA it speaks plain HTTP to a TLS port, and gets no answer it accepts.
    let (ok, _, err) = cli(&["healthcheck", "--addr", &addr], None);
    assert!(!ok, "plain HTTP to the TLS port passed: {err}");
    let logs = cloud.logs();
    assert!(
        logs.contains("created a local CA") && !logs.contains("--plain"),
        "TLS by default, without a warning:\n{logs}"
    );

    // SIGTERM: the service finishes and exits 0.
    assert_eq!(cloud.stop(), Some(0), "a clean exit on SIGTERM");
    let (ok, _, err) = cli(&["healthcheck", "--addr", &addr, "--ca", ca], None);
    assert!(!ok && err.contains("nothing answers"), "{err}");
    let logs = cloud.logs();
    assert!(logs.contains("\"stopped\""), "no clean stop in:\n{logs}");
    for secret in [
        "r00t-passw0rd",
        "ann-passw0rd",
        authkey,
        // The whole token: its four-character secret alone may occur by chance in ids.
        token,
        dev_secret,
        mqtt_password,
        access,
    ] {
        assert!(
            !logs.contains(secret),
            "secret {secret:?} reached the logs:\n{logs}"
        );
    }
}

#[test]
fn cli_errors_are_clear_and_exit_non_zero() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().to_str().expect("utf-8 path");
    let (ok, _, err) = cli(&["user", "add", "ann", "--data-dir", data], Some("short\n"));
    assert!(!ok);
    assert!(err.contains("at least 8 characters"), "{err}");
    let (ok, _, err) = cli(&["user", "add", "ann", "--data-dir", data], Some(""));
    assert!(!ok);
    assert!(err.contains("no password on standard input"), "{err}");
    let (ok, _, err) = cli(
        &[
            "license",
            "issue",
            "--product-key",
            "short",
            "--count",
            "1",
            "--data-dir",
            data,
        ],
        None,
    );
    assert!(!ok);
    assert!(err.contains("16 letters or digits"), "{err}");
    let (ok, _, err) = cli(&["serve", "--region", "europe", "--data-dir", data], None);
    assert!(!ok);
    assert!(err.contains("two upper-case letters"), "{err}");
}

#[test]
fn license_issue_prints_labels_and_verifiers_and_draws_the_qr_codes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let qr_dir = dir.path().join("labels");
    let (data, qr) = (
        data.to_str().expect("utf-8"),
        qr_dir.to_str().expect("utf-8"),
    );
    let (ok, out, err) = cli(
        &[
            "license",
            "issue",
            "--product-key",
            PRODUCT_KEY,
            "--count",
            "2",
            "--qr",
            "--qr-dir",
            qr,
            "--data-dir",
            data,
        ],
        None,
    );
    assert!(ok, "{err}");
    let licenses: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON license per line"))
        .collect();
    assert_eq!(licenses.len(), 2);
    for license in &licenses {
        let uuid = license["uuid"].as_str().expect("uuid");
        let code = SetupCode::parse(license["setup_code"].as_str().expect("code")).expect("a code");
        let qr: QrPayload = license["qr"]
            .as_str()
            .expect("qr")
            .parse()
            .expect("a payload");
        assert_eq!(
            (qr.uuid.as_str(), qr.product_key.as_str()),
            (uuid, PRODUCT_KEY)
        );
        assert_eq!(qr.code, code);
        // The verifier is the code's: the same salt and code give the same record.
        let verifier: PairingVerifier = license["pairing_verifier"]
            .as_str()
            .expect("verifier")
            .parse()
            .expect("a verifier");
        let again =
            tether_proto::setup_code::verifier_for(&code, *verifier.salt()).expect("derives");
        assert_eq!(again.encode(), verifier.encode());
        // Drawn on stderr with its code, written as SVG and PNG.
        assert!(
            err.contains(uuid) && err.contains(&code.to_string()),
            "{err}"
        );
        let svg = std::fs::read_to_string(qr_dir.join(format!("{uuid}.svg"))).expect("svg");
        assert!(svg.contains("<svg"));
        let png = std::fs::read(qr_dir.join(format!("{uuid}.png"))).expect("png");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    }
    assert_ne!(licenses[0]["setup_code"], licenses[1]["setup_code"]);
    // The service keeps no setup code or verifier.
    let mut db = Vec::new();
    for entry in std::fs::read_dir(data).expect("the data dir") {
        let path = entry.expect("an entry").path();
        if path.to_string_lossy().contains(tether_service::db::FILE) {
            db.extend(std::fs::read(&path).expect("readable"));
        }
    }
    assert!(!db.is_empty(), "the database files were read");
    for license in &licenses {
        let digits = SetupCode::parse(license["setup_code"].as_str().expect("code"))
            .expect("a code")
            .digits()
            .to_owned();
        assert!(!db.windows(digits.len()).any(|w| w == digits.as_bytes()));
    }
}

#[tokio::test]
async fn a_callers_trace_context_reaches_the_logs_and_comes_back_and_a_bad_one_starts_a_new_trace()
{
    let cloud = tokio::task::spawn_blocking(|| Cloud::start_with_admin("root", "r00t-passw0rd"))
        .await
        .expect("the service starts");
    let (base, http) = (cloud.url.clone(), cloud.http_client());
    let access = &login(&http, &base, "root", "r00t-passw0rd").await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let sent = format!("00-{trace}-00f067aa0ba902b7-01");
    let resp = http
        .post(format!("{base}/v1/pairing-tokens"))
        .bearer_auth(access)
        .header("traceparent", &sent)
        .json(&json!({}))
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), StatusCode::CREATED);
    let back = resp.headers()["traceresponse"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let back = tether_proto::trace::TraceParent::parse(&back).expect("a valid traceresponse");
    assert_eq!(back.trace_id_hex(), trace, "the caller's trace");
    assert_ne!(back.to_string(), sent, "the service's own span");

    // Outside input: a malformed one is not an error, and starts a trace of its own.
    let resp = http
        .get(format!("{base}/readyz"))
        .header("traceparent", "00-ZZZ-not-a-trace")
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), StatusCode::OK);
    let fresh = resp.headers()["traceresponse"].to_str().expect("ascii");
    assert!(!fresh.contains(trace), "{fresh}");

    let logs = cloud.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("pairing token created"))
        .unwrap_or_else(|| panic!("no creation logged:\n{logs}"));
    assert!(
        line.contains(trace),
        "the log line carries the trace: {line}"
    );
}

//! The `tether-service` binary as a user runs it: `serve`, with `user add` and
//! `license issue` on the same data dir while it runs, a graceful stop on SIGTERM, and
//! logs that carry no secret.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tether_proto::signing::{AuthHeader, Principal, new_nonce};

const BIN: &str = env!("CARGO_BIN_EXE_tether-service");

fn cli(args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("written");
    }
    let out = child.wait_with_output().expect("it ends");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Starts `serve` and returns the child, its log lines as they come, and the bound
/// HTTP address.
fn serve(data_dir: &str) -> (Child, mpsc::Receiver<String>, String) {
    // The admin's password comes from a file, not the command line or the environment.
    let admin_file = format!("{data_dir}/admin.secret");
    std::fs::write(&admin_file, "root:r00t-passw0rd\n").expect("admin file written");
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--mqtt-listen",
            "127.0.0.1:0",
            "--data-dir",
            data_dir,
            "--log-format",
            "json",
            "--bootstrap-admin-file",
            &admin_file,
        ])
        .env("RUST_LOG", "debug")
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    loop {
        let Ok(line) = lines.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no listening line in {seen:?}");
        };
        let parsed: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        if let Some(url) = parsed["fields"]["public_http"].as_str() {
            let url = url.to_owned();
            seen.push(line);
            return (child, lines, url);
        }
        seen.push(line);
    }
}

#[tokio::test]
async fn the_binary_serves_takes_cli_changes_while_running_stops_on_sigterm_and_logs_no_secret() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().to_str().expect("utf-8 path");
    let (mut child, lines, base) = serve(data);
    let http = reqwest::Client::new();

    // Account and license made with the CLI while the service runs on the same data dir.
    let (ok, _, err) = cli(
        &["user", "add", "ann", "--data-dir", data],
        Some("ann-passw0rd\n"),
    );
    assert!(ok, "{err}");
    let (ok, out, err) = cli(
        &[
            "license",
            "issue",
            "--product-key",
            "p0123456789abcde",
            "--count",
            "1",
            "--data-dir",
            data,
        ],
        None,
    );
    assert!(ok, "{err}");
    let license: Value = serde_json::from_str(out.lines().next().expect("one line")).expect("json");
    let (uuid, authkey) = (
        license["uuid"].as_str().expect("uuid"),
        license["authkey"].as_str().expect("authkey"),
    );

    let login: Value = http
        .post(format!("{base}/v1/auth/token"))
        .json(&json!({"username": "ann", "password": "ann-passw0rd"}))
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    let access = login["access_token"].as_str().expect("access token");
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
    let body = serde_json::to_vec(&json!({"uuid": uuid, "product_key": "p0123456789abcde", "token": token, "sw_ver": "1", "module_version": "1", "reset": false})).expect("json");
    let header = AuthHeader::sign(
        Principal::Uuid(uuid.into()),
        authkey.as_bytes(),
        tether_service::unix_now(),
        new_nonce().expect("nonce"),
        "POST",
        "/v1/devices/activate",
        &body,
    );
    let resp = http
        .post(format!("{base}/v1/devices/activate"))
        .header("authorization", header.to_string())
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), StatusCode::OK);
    let activated: Value = resp.json().await.expect("json");
    let (dev_secret, mqtt_password) = (
        activated["dev_secret"].as_str().expect("secret"),
        activated["mqtt"]["password"].as_str().expect("jwt"),
    );

    // The health check the container images use.
    let addr = base.trim_start_matches("http://");
    let (ok, out, err) = cli(&["healthcheck", "--addr", addr], None);
    assert!(ok && out.trim() == "ready", "{out}{err}");

    // SIGTERM: the service finishes and exits 0.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let exit = child.wait().expect("it exits");
    assert!(exit.success(), "exit status {exit}");
    let (ok, _, err) = cli(&["healthcheck", "--addr", addr], None);
    assert!(!ok && err.contains("nothing answers"), "{err}");
    let logs: Vec<String> = lines.try_iter().collect();
    let logs = logs.join("\n");
    assert!(logs.contains("\"stopped\""), "no clean stop in:\n{logs}");
    for secret in [
        "r00t-passw0rd",
        "ann-passw0rd",
        authkey,
        &token[10..],
        dev_secret,
        mqtt_password,
        access,
    ] {
        assert!(!logs.contains(secret), "a secret reached the logs:\n{logs}");
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

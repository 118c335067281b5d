//! One device through its life: provisioned with `tether provision`, commanded with
//! `tether send`, a wrong Wi-Fi password and a retry, unbound and provisioned for
//! another user, and restarted without provisioning.

use serde_json::{Value, json};
use tether_e2e::{Cloud, DeviceHost, License, User, WIFI_PASSWORD, eventually};

/// One cloud, one device, one user.
struct World {
    cloud: Cloud,
    license: License,
    host: DeviceHost,
    ann: User,
}

impl World {
    fn new() -> Self {
        let cloud = Cloud::start();
        let license = cloud.licenses(1).remove(0);
        let host = DeviceHost::start(&cloud, &license);
        let ann = User::new(&cloud, "ann");
        Self {
            cloud,
            license,
            host,
            ann,
        }
    }

    /// Provisions with the right password and returns `tether provision --json`'s answer.
    fn provision(&self, user: &User) -> Value {
        let out = user.provision(&self.host, WIFI_PASSWORD, &["--json"]);
        out.json()
    }
}

const OK_ACTIVATIONS: &str = "tether_activations_total{result=\"ok\"}";

fn device(user: &User, dev_id: &str) -> Value {
    user.json(&["device", dev_id])
}

#[test]
fn provision_brings_the_device_online_and_send_gets_the_report_back() {
    let w = World::new();
    let out = w.ann.provision(&w.host, WIFI_PASSWORD, &[]).success();
    assert!(out.stdout.starts_with("online as d"), "{}", out.stdout);
    assert!(out.stdout.contains("timings: wifi"), "{}", out.stdout);
    assert!(
        out.stderr.contains("… credentials accepted"),
        "{}",
        out.stderr
    );
    let dev_id = out.stdout["online as ".len()..]
        .split_whitespace()
        .next()
        .expect("a device id")
        .to_owned();
    assert_eq!(w.host.status().expect("status")["state"], "online");
    let listed = w.ann.json(&["devices"]);
    assert_eq!(listed[0]["dev_id"], dev_id.as_str());
    assert_eq!(listed[0]["online"], true);

    let sent = w.ann.tether(&["send", &dev_id, r#"{"1":true,"3":"warm"}"#]);
    assert_eq!(sent.success().stdout.trim(), format!("sent to {dev_id}"));
    eventually(
        "the device's report",
        || {
            (device(&w.ann, &dev_id)["last_report"] == json!({"1": true, "3": "warm"}))
                .then_some(())
        },
        || device(&w.ann, &dev_id).to_string(),
    );

    // Nothing secret in either log, at debug level.
    let logs = format!("{}{}", w.cloud.logs(), w.host.logs());
    assert!(logs.contains("activat"), "the logs are real logs");
    for secret in [
        WIFI_PASSWORD,
        w.ann.password(),
        &w.license.authkey,
        &w.license.setup_code,
    ] {
        assert!(!logs.contains(secret), "a secret is in the logs");
    }
}

#[test]
fn a_wrong_password_fails_with_passwd_error_then_the_right_one_succeeds_without_a_restart() {
    let w = World::new();
    let pid = w.host.pid();
    let out = w.ann.provision(&w.host, "not the password", &[]);
    assert_eq!(
        out.code, 7,
        "the Wi-Fi exit code: {}{}",
        out.stdout, out.stderr
    );
    assert!(out.stderr.contains("passwd_error"), "{}", out.stderr);
    let status = w.host.status().expect("status");
    assert_eq!(status["state"], "awaiting-credentials");
    assert_eq!(status["last_error"], "passwd_error");

    let done = w.provision(&w.ann);
    assert!(done["dev_id"].as_str().is_some_and(|d| d.starts_with('d')));
    assert_eq!(w.host.pid(), pid, "the same device process");
    assert_eq!(w.host.status().expect("status")["state"], "online");
}

#[test]
fn a_paired_device_given_a_wrong_password_says_passwd_error_and_stays_online() {
    let w = World::new();
    let dev_id = w.provision(&w.ann)["dev_id"]
        .as_str()
        .expect("dev_id")
        .to_owned();
    // Paired: the channel takes nothing until the window is opened on the device.
    let out = w.ann.provision(&w.host, WIFI_PASSWORD, &[]);
    assert_eq!(out.code, 13, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("window_closed"), "{}", out.stderr);
    let open = w.host.ctl(&["pairing", "open", "--secs", "60"]);
    assert_eq!(open.code, 0, "{}", open.stderr);
    let out = w.ann.provision(&w.host, "not the password", &[]);
    assert_eq!(out.code, 7, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("passwd_error"), "{}", out.stderr);
    assert!(out.stderr.contains("previous network"), "{}", out.stderr);
    let status = w.host.status().expect("status");
    assert_eq!(
        (&status["state"], &status["dev_id"]),
        (&json!("online"), &json!(dev_id))
    );
    assert_eq!(device(&w.ann, &dev_id)["online"], true);
}

#[test]
fn unbind_returns_the_device_to_awaiting_credentials_and_another_user_can_pair_it() {
    let w = World::new();
    let first = w.provision(&w.ann)["dev_id"]
        .as_str()
        .expect("dev_id")
        .to_owned();
    let out = w.ann.tether(&["unbind", &first]).success();
    assert_eq!(out.stdout.trim(), format!("unbound {first}"));
    w.host.wait_for("awaiting credentials after unbind", |s| {
        s["state"] == "awaiting-credentials"
    });
    assert_eq!(w.ann.tether(&["device", &first]).code, 5, "gone for ann");

    let bob = User::new(&w.cloud, "bob");
    let second = w.provision(&bob)["dev_id"]
        .as_str()
        .expect("dev_id")
        .to_owned();
    assert_eq!(device(&bob, &second)["online"], true);
    assert_eq!(w.ann.json(&["devices"]), json!([]), "ann no longer sees it");
    assert_eq!(w.ann.tether(&["device", &second]).code, 5);
}

#[test]
fn a_device_unbound_while_offline_forgets_its_binding_when_it_next_connects() {
    let mut w = World::new();
    let dev_id = w.provision(&w.ann)["dev_id"]
        .as_str()
        .expect("dev_id")
        .to_owned();
    // Powered off: the unbind cannot reach it.
    w.host.kill();
    eventually(
        "the cloud seeing the device offline",
        || (device(&w.ann, &dev_id)["online"] == false).then_some(()),
        || device(&w.ann, &dev_id).to_string(),
    );
    let out = w.ann.tether(&["unbind", &dev_id]).success();
    assert_eq!(out.stdout.trim(), format!("unbound {dev_id}"));
    // Back on: its old MQTT password is refused, the cloud no longer knows it, and it
    // forgets the binding and waits for credentials.
    w.host.spawn();
    let status = w.host.wait_for("the binding forgotten", |s| {
        s["state"] == "awaiting-credentials" && s["dev_id"].is_null()
    });
    assert_eq!(status["dev_id"], Value::Null);
    assert_eq!(w.ann.tether(&["device", &dev_id]).code, 5, "gone for ann");
    // And it can be paired again, for anyone.
    let bob = User::new(&w.cloud, "bob");
    let again = w.provision(&bob);
    assert!(again["dev_id"].as_str().is_some(), "{again}");
}

#[test]
fn a_restarted_device_comes_back_online_without_provisioning() {
    let mut w = World::new();
    let dev_id = w.provision(&w.ann)["dev_id"]
        .as_str()
        .expect("dev_id")
        .to_owned();
    let before = device(&w.ann, &dev_id);
    let activations = w.cloud.metric(OK_ACTIVATIONS);
    assert_eq!(activations, 1);

    w.host.restart();
    let status = w
        .host
        .wait_for("online after the restart", |s| s["state"] == "online");
    assert_eq!(status["dev_id"], dev_id.as_str());
    let after = eventually(
        "the cloud seeing the device online",
        || Some(device(&w.ann, &dev_id)).filter(|d| d["online"] == true),
        || device(&w.ann, &dev_id).to_string(),
    );
    assert_eq!(
        after["activated_at"], before["activated_at"],
        "no new activation"
    );
    assert_eq!(
        w.cloud.metric(OK_ACTIVATIONS),
        activations,
        "no new activation"
    );
}

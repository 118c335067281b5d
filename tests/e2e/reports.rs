//! Pairing reports, from the real component in the real host to the service and back out
//! through `tether token status`: a wrong Wi-Fi password (told at the next pairing that
//! reaches the cloud), an expired token (told at once) and a device bound to another
//! account (told from its previous network), each with its reason and timings; and a
//! success with all four phases timed.

use std::time::{Duration, Instant};

use serde_json::Value;
use tether_e2e::{Cloud, DeviceHost, User, WIFI_PASSWORD, eventually};

/// `tether token create` with `args`; the whole token.
fn token(user: &User, args: &[&str]) -> String {
    let mut all = vec!["token", "create"];
    all.extend_from_slice(args);
    user.json(&all)["token"]
        .as_str()
        .expect("a token")
        .to_owned()
}

/// The token's status once it lists a failure: that failure.
fn reported_failure(user: &User, host: &DeviceHost, token: &str) -> Value {
    eventually(
        "the device's report in the token's status",
        || {
            let status = user.json(&["token", "status", token]);
            status["failures"].get(0).cloned()
        },
        || {
            let status = user.json(&["token", "status", token]);
            format!("{status}\nthe device's log:\n{}", host.logs())
        },
    )
}

#[test]
fn failures_and_successes_reach_the_token_status_with_reasons_and_timings() {
    let cloud = Cloud::start();
    let license = cloud.licenses(1).remove(0);
    let host = DeviceHost::start(&cloud, &license);
    let ann = User::new(&cloud, "ann");
    let bob = User::new(&cloud, "bob");
    let expiring = token(&ann, &["--ttl", "30"]);
    let created = Instant::now();

    // A wrong password: no network to tell the cloud on, so the device keeps the report.
    let wrong = token(&ann, &[]);
    let out = ann.provision(&host, "not the password", &["--token", &wrong]);
    assert_eq!(out.code, 7, "{}{}", out.stdout, out.stderr);
    assert_eq!(
        ann.json(&["token", "status", &wrong])["failures"],
        serde_json::json!([]),
        "not told yet"
    );

    // An expired token: the cloud refuses it, and hears of the earlier failure too.
    std::thread::sleep(Duration::from_secs(31).saturating_sub(created.elapsed()));
    let out = ann.provision(&host, WIFI_PASSWORD, &["--token", &expiring]);
    assert_eq!(out.code, 6, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("token_expired"), "{}", out.stderr);
    let failure = reported_failure(&ann, &host, &wrong);
    assert_eq!(failure["code"], "passwd_error", "{failure}");
    assert_eq!(failure["phase"], "wifi");
    assert!(
        failure["timings"]["wifi_ms"].as_u64().is_some(),
        "{failure}"
    );
    assert_eq!(failure["uuid"], license.uuid.as_str());
    let failure = reported_failure(&ann, &host, &expiring);
    assert_eq!(failure["code"], "token_expired", "{failure}");
    assert_eq!(failure["phase"], "activation");
    for phase in ["wifi_ms", "dns_ms", "activate_ms"] {
        assert!(failure["timings"][phase].as_u64().is_some(), "{failure}");
    }

    // A success: the device's report adds every phase's time to the token.
    let paired = token(&ann, &[]);
    let done = ann
        .provision(&host, WIFI_PASSWORD, &["--token", &paired, "--json"])
        .json();
    let dev_id = done["dev_id"].as_str().expect("dev_id").to_owned();
    let timings = eventually(
        "the success report",
        || {
            let status = ann.json(&["token", "status", &paired]);
            let device = status["devices"].get(0)?.clone();
            device.get("timings").cloned()
        },
        || ann.json(&["token", "status", &paired]).to_string(),
    );
    for phase in ["wifi_ms", "dns_ms", "activate_ms", "mqtt_ms"] {
        assert!(timings[phase].as_u64().is_some(), "{timings}");
    }

    // Bound to ann: bob's token is refused, and the device says so from its old network.
    let theirs = token(&bob, &[]);
    let open = host.ctl(&["pairing", "open", "--secs", "60"]);
    assert_eq!(open.code, 0, "{}", open.stderr);
    let out = bob.provision(&host, WIFI_PASSWORD, &["--token", &theirs]);
    assert_eq!(out.code, 8, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("dev_already_bound"), "{}", out.stderr);
    let failure = reported_failure(&bob, &host, &theirs);
    assert_eq!(failure["code"], "dev_already_bound", "{failure}");
    assert_eq!(failure["phase"], "activation");
    assert!(failure["timings"]["activate_ms"].as_u64().is_some());
    assert_eq!(host.status().expect("status")["dev_id"], dev_id.as_str());

    // The text form names each outcome and its times; ann cannot read bob's token.
    let text = bob.tether(&["token", "status", &theirs]).success().stdout;
    assert!(
        text.contains("failed  dev_already_bound  in activation"),
        "{text}"
    );
    assert!(text.contains("activate "), "{text}");
    let text = ann.tether(&["token", "status", &paired]).success().stdout;
    assert!(text.contains(&format!("online  {dev_id}")), "{text}");
    let theft = ann.tether(&["token", "status", &theirs]);
    assert_ne!(theft.code, 0, "another user's token is not shown");
    assert!(!theft.stdout.contains("dev_already_bound"));
}

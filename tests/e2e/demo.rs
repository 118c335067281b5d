//! `tether demo`, the README's first command, as a process: it exits 0 and shows every
//! phase, over HTTPS and MQTTS (CI also runs it through `cargo run --release -p tether -- demo`); and
//! `tether demo --update`, which updates the device's component live through the cloud.

use std::process::Command;

use tether_e2e::{Output, bin};

/// Runs `tether demo ARGS` as a user would; it must succeed, print each of `steps` on
/// stdout and no warning on stderr. Returns stdout.
fn demo(home: &std::path::Path, args: &[&str], steps: &[&str]) -> String {
    let mut command = Command::new(bin("tether"));
    command
        .arg("demo")
        .args(args)
        .env("XDG_CONFIG_HOME", home)
        .env_remove("TETHER_SERVER")
        .env_remove("RUST_LOG");
    let out = Output::of(command, None).success();
    for step in steps {
        assert!(
            out.stdout.contains(step),
            "`tether demo {args:?}` lacks {step:?}:\n{}",
            out.stdout
        );
    }
    // With --json the steps go to stderr; otherwise nothing does.
    if !args.contains(&"--json") {
        assert!(out.stderr.is_empty(), "warnings or errors: {}", out.stderr);
    }
    out.stdout
}

#[test]
fn the_demo_exits_0_and_shows_every_phase() {
    let home = tempfile::tempdir().expect("temp dir");
    demo(
        home.path(),
        &[],
        &[
            "cloud service up: API https://127.0.0.1:",
            "MQTT mqtts://127.0.0.1:",
            "HTTPS and MQTTS with a local CA",
            "device host up: pairing component",
            "pairing token",
            "· credentials accepted by the device",
            "· online",
            "is online",
            "sent {\"1\":true,\"2\":42} to the device over MQTT",
            "report received: {\"1\":true,\"2\":42}",
            "wifi ",
            "dns ",
            "activate ",
            "mqtt ",
            "credentials received to MQTT online",
            " online\n",
            "temporary data removed",
        ],
    );

    let json = demo(home.path(), &["--json"], &[]);
    let json: serde_json::Value = serde_json::from_str(json.trim()).expect("one JSON summary");
    assert_eq!(json["report"], serde_json::json!({"1": true, "2": 42}));
    assert!(
        json["online_ms"].is_u64() && json["elapsed_ms"].is_u64(),
        "{json}"
    );
}

#[test]
fn the_update_demo_swaps_the_component_live_and_the_cloud_shows_it() {
    let home = tempfile::tempdir().expect("temp dir");
    demo(
        home.path(),
        &["--update"],
        &[
            "rolled out: 1 device notified over MQTT (protocol 15)",
            "the device runs 0.2.0: swap pause ",
            "still online as d",
            "before the update, the channel's info reply: uuid ",
            "component 0.1.0, protocol 2",
            "after the update, the channel's info reply:  uuid ",
            "component 0.2.0, protocol 2",
            "running 0.2.0 (rollout applied)",
        ],
    );
}

//! `tether demo`, the README's first command, as a process: it exits 0 and shows every
//! phase. (CI also runs it through `cargo run --release -p tether -- demo`.)

use std::process::Command;

use tether_e2e::{Output, bins};

#[test]
fn the_demo_exits_0_and_shows_every_phase() {
    let home = tempfile::tempdir().expect("temp dir");
    let mut command = Command::new(&bins().tether);
    command
        .arg("demo")
        .env("XDG_CONFIG_HOME", home.path())
        .env_remove("TETHER_SERVER")
        .env_remove("RUST_LOG");
    let out = Output::of(command, None).success();
    let text = out.stdout;
    for step in [
        "cloud service up: API http://127.0.0.1:",
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
    ] {
        assert!(
            text.contains(step),
            "the demo output lacks {step:?}:\n{text}"
        );
    }
    assert!(
        out.stderr.is_empty(),
        "no warnings or errors: {}",
        out.stderr
    );

    let json = {
        let mut command = Command::new(&bins().tether);
        command
            .args(["demo", "--json"])
            .env("XDG_CONFIG_HOME", home.path());
        Output::of(command, None).json()
    };
    assert_eq!(json["report"], serde_json::json!({"1": true, "2": 42}));
    assert!(
        json["online_ms"].is_u64() && json["elapsed_ms"].is_u64(),
        "{json}"
    );
}

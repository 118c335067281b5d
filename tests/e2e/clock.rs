//! A board without a real-time clock: the real `tether-host` under libfaketime, its clock
//! 50 years behind, pairs over TLS, renews its MQTT credentials, and after a reboot (its
//! clock behind again, its session then refused when the credentials expire) renews them
//! once more and keeps its binding, setting its clock by the cloud's answers each time.

use std::ffi::OsString;
use std::path::Path;

use tether_e2e::{Cloud, DeviceHost, User, WIFI_PASSWORD, bin, eventually};

/// Fifty years, in the days libfaketime takes.
const FIFTY_YEARS_BEHIND: &str = "FAKETIME=-18262d";

/// The command line that runs the host with the clock 50 years behind; only the wall
/// clock is faked, timers run on the real monotonic clock as on a board. None (skip)
/// without libfaketime, outside CI.
fn behind() -> Option<Vec<OsString>> {
    tether_e2e::deploy::require("faketime", "apt-get install faketime")?;
    let lib = ["x86_64-linux-gnu", "aarch64-linux-gnu"]
        .iter()
        .map(|arch| format!("/usr/lib/{arch}/faketime/libfaketimeMT.so.1"))
        .find(|path| Path::new(path).exists())
        .expect("the faketime package installs libfaketimeMT");
    Some(vec![
        "env".into(),
        format!("LD_PRELOAD={lib}").into(),
        FIFTY_YEARS_BEHIND.into(),
        "FAKETIME_DONT_FAKE_MONOTONIC=1".into(),
        bin("tether-host").into(),
    ])
}

fn count(logs: &str, line: &str) -> usize {
    logs.matches(line).count()
}

#[test]
fn a_device_fifty_years_behind_pairs_renews_its_credentials_and_keeps_its_binding() {
    let Some(runner) = behind() else {
        return;
    };
    let cloud = Cloud::start_with(&["--mqtt-credentials-ttl", "30"]);
    let license = cloud.licenses(1).remove(0);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = DeviceHost::config(&cloud, &license, dir.path());
    let mut host = DeviceHost::start_under(runner, &config, &license);
    let ann = User::new(&cloud, "ann");

    let paired = ann.provision(&host, WIFI_PASSWORD, &["--json"]).json();
    let dev_id = paired["dev_id"].as_str().expect("dev_id").to_owned();
    assert!(
        host.logs()
            .contains("the system clock is off; using the cloud's time"),
        "the host ran 50 years behind: {}",
        host.logs()
    );
    // Credentials of 30 s are renewed at 80 % of their life, signed at the right time.
    eventually(
        "the device renewing its credentials",
        || (count(&host.logs(), "MQTT credentials renewed") >= 1).then_some(()),
        || host.logs(),
    );
    assert_eq!(host.status().expect("status")["state"], "online");

    // A reboot: the clock is 50 years behind again and the session's credentials run out
    // without a timely renewal; the renewal signed at the old time is refused, and sent
    // again with the cloud's time.
    let renewed = count(&host.logs(), "MQTT credentials renewed");
    host.restart();
    eventually(
        "the rebooted device renewing its credentials",
        || {
            (count(&host.logs(), "MQTT credentials renewed") > renewed
                && host.status()?["state"] == "online")
                .then_some(())
        },
        || format!("{:?}\n{}", host.status(), host.logs()),
    );
    let status = host.status().expect("status");
    assert_eq!(status["dev_id"], dev_id.as_str(), "the binding is kept");
    let device = ann.json(&["device", &dev_id]);
    assert_eq!(device["online"], true, "{device}");
    assert!(
        !host
            .logs()
            .contains("the cloud no longer knows this device")
    );
}

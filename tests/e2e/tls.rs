//! The README's TLS commands against the real service as it starts by default: `curl
//! --cacert` reaches the API, `mosquitto_sub --cafile` completes the TLS handshake with the
//! broker (and is then refused, not being a device), and both fail without the CA.
//! Without curl or mosquitto_sub the test skips with a message, except under CI=true.

use std::process::Command;

use tether_e2e::Cloud;
use tether_e2e::Output;

/// Whether `tool` runs; under CI=true a missing tool is a failure.
fn have(tool: &str) -> bool {
    let found = Command::new(tool).arg("--help").output().is_ok();
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{tool} is missing, and CI=true needs this test (apt-get install curl mosquitto-clients)"
        );
        eprintln!("skipped: {tool} is missing");
    }
    found
}

fn run(tool: &str, args: &[&str]) -> Output {
    let mut command = Command::new(tool);
    command.args(args);
    Output::of(command, None)
}

#[test]
fn curl_and_mosquitto_sub_work_with_the_services_ca_and_fail_without_it() {
    if !have("curl") || !have("mosquitto_sub") {
        return;
    }
    let cloud = Cloud::start();
    let ca_path = cloud.ca().expect("TLS by default");
    let ca = ca_path.to_str().expect("a UTF-8 path");
    let api = format!("https://localhost:{}", cloud.addr().port());
    let mqtt_port = cloud.mqtt_addr().port().to_string();

    let ok = run("curl", &["-sS", "--cacert", ca, &format!("{api}/healthz")]);
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);
    // Without the CA, curl refuses the certificate (exit 60).
    let untrusted = run("curl", &["-sS", &format!("{api}/healthz")]);
    assert_eq!(untrusted.code, 60, "{}", untrusted.stderr);

    let sub = |extra: &[&str]| {
        let mut args = vec!["-h", "localhost", "-p", &mqtt_port, "-t", "#"];
        args.extend(["-u", "u", "-P", "p", "-C", "1", "-W", "5"]);
        args.extend(extra);
        run("mosquitto_sub", &args)
    };
    // With the CA the handshake succeeds and the broker answers: not a device.
    let refused = sub(&["--cafile", ca]);
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("Connection Refused"),
        "{}",
        refused.stderr
    );
    // With another CA the client refuses the broker's certificate.
    let other = tempfile::tempdir().expect("temp dir");
    let other_ca = tether_service::tls::local_ca_pem(other.path()).expect("another CA");
    let other_file = other.path().join("other-ca.pem");
    std::fs::write(&other_file, other_ca).expect("written");
    let wrong = sub(&["--cafile", other_file.to_str().expect("a UTF-8 path")]);
    assert_ne!(wrong.code, 0);
    assert!(
        wrong.stderr.contains("TLS error") && !wrong.stderr.contains("Connection Refused"),
        "the broker was reached with the wrong CA: {}",
        wrong.stderr
    );
    // And plain MQTT to the TLS port gets no session either.
    let plain = sub(&[]);
    assert!(
        plain.code != 0 && !plain.stderr.contains("Connection Refused"),
        "{}",
        plain.stderr
    );
}

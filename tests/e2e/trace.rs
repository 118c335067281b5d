//! One trace across a pairing: the trace id `tether provision --json` prints is in the
//! device host's log (the component joined the provisioner's trace) and on the service's
//! log lines of that pairing (IoT DNS, activation, the device's report), from the
//! `traceparent` the device's requests carried.

use tether_e2e::{Cloud, DeviceHost, User, WIFI_PASSWORD, eventually};

#[test]
fn one_trace_id_is_in_the_cli_json_the_host_log_and_the_service_log() {
    let cloud = Cloud::start();
    let license = cloud.licenses(1).remove(0);
    let host = DeviceHost::start(&cloud, &license);
    let ann = User::new(&cloud, "ann");
    let done = ann.provision(&host, WIFI_PASSWORD, &["--json"]).json();
    let trace = done["trace_id"].as_str().expect("a trace id").to_owned();
    assert_eq!(trace.len(), 32, "{done}");
    assert!(trace.bytes().all(|b| b.is_ascii_hexdigit()), "{trace}");

    let host_log = host.logs();
    assert!(
        host_log.contains(&format!("pairing in trace {trace}")),
        "the component joined the trace:\n{host_log}"
    );
    // The device's own requests carried it: its activation is logged in the trace.
    let activated = eventually(
        "the activation's log line",
        || {
            cloud
                .logs()
                .lines()
                .find(|l| l.contains("device activated"))
                .map(str::to_owned)
        },
        || cloud.logs(),
    );
    assert!(activated.contains(&trace), "{activated}");
    // So is the device's report, and the CLI's own calls: one grep finds them all.
    eventually(
        "the device's report in the trace",
        || {
            let logs = cloud.logs();
            logs.lines()
                .any(|l| l.contains("pairing report") && l.contains(&trace))
                .then_some(())
        },
        || cloud.logs(),
    );
    let service_lines = cloud.logs().lines().filter(|l| l.contains(&trace)).count();
    assert!(service_lines >= 3, "{service_lines} lines in the trace");
}

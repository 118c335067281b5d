//! `tls`: what TLS costs, against plain HTTP and MQTT side by side in one run. The same
//! measurements twice, once on a plain service and once on one serving HTTPS and MQTTS
//! from its local CA (devices and clients verifying it): `user-cfg` to online on a real
//! device, sessions connected per second and the service's memory per held session, and
//! the resident memory of a `tether-host` process online.

use std::time::Duration;

use serde_json::json;

use super::{footprint, pairing, sessions};
use crate::Options;
use crate::report::Report;
use crate::stats::show;

/// What one mode measured.
struct Costs {
    pairing_p50: Duration,
    pairing_p99: Duration,
    connects_per_sec: f64,
    kib_per_session: f64,
    host_rss_kib: u64,
}

async fn measure(options: &Options, tls: bool) -> anyhow::Result<Costs> {
    let rounds = if options.quick { 5 } else { 200 };
    let mode = if tls { "TLS" } else { "plain" };
    eprintln!("tls: {rounds} pairings, {mode}");
    let pairings = pairing::measure(rounds, tls).await?;
    let held = sessions::hold(options.sessions, tls).await?;
    let (connects_per_sec, kib_per_session) = (held.connect_rate(), held.per_session_kib());
    drop(held);
    eprintln!("tls: a tether-host process online, {mode}");
    let host = std::env::current_exe()?.with_file_name("tether-host");
    anyhow::ensure!(
        host.exists(),
        "{} is not built (cargo build --release -p tether-host, or --bins)",
        host.display()
    );
    let rss = footprint::online_rss(&host, tls).await?;
    Ok(Costs {
        pairing_p50: pairings.total.p50(),
        pairing_p99: pairings.total.p99(),
        connects_per_sec,
        kib_per_session,
        host_rss_kib: rss.rss_kib,
    })
}

/// Runs the scenario.
pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let plain = measure(options, false).await?;
    let tls = measure(options, true).await?;
    let mut report = Report::new("tls", &["measure", "plain", "TLS", "TLS / plain"]);
    let ratio = |t: f64, p: f64| format!("{:.2}", t / p);
    for (what, p, t) in [
        ("p50", plain.pairing_p50, tls.pairing_p50),
        ("p99", plain.pairing_p99, tls.pairing_p99),
    ] {
        report.row(vec![
            format!("user-cfg to online, {what}"),
            show(p),
            show(t),
            ratio(t.as_secs_f64(), p.as_secs_f64()),
        ]);
    }
    report.row(vec![
        format!("MQTT connects per second ({} sessions)", options.sessions),
        format!("{:.0}", plain.connects_per_sec),
        format!("{:.0}", tls.connects_per_sec),
        ratio(tls.connects_per_sec, plain.connects_per_sec),
    ]);
    report.row(vec![
        format!("service RSS per held session ({} held)", options.sessions),
        format!("{:.1} KiB", plain.kib_per_session),
        format!("{:.1} KiB", tls.kib_per_session),
        ratio(tls.kib_per_session, plain.kib_per_session),
    ]);
    report.row(vec![
        "tether-host RSS online".into(),
        format!("{:.1} MiB", plain.host_rss_kib as f64 / 1024.0),
        format!("{:.1} MiB", tls.host_rss_kib as f64 / 1024.0),
        ratio(tls.host_rss_kib as f64, plain.host_rss_kib as f64),
    ]);
    report.note(
        "each mode runs on a service of its own; TLS is the service's default, plain is --plain",
    );
    for (key, c) in [("plain", &plain), ("tls", &tls)] {
        report.data(
            key,
            json!({
                "pairing_p50_secs": c.pairing_p50.as_secs_f64(),
                "pairing_p99_secs": c.pairing_p99.as_secs_f64(),
                "connects_per_sec": c.connects_per_sec,
                "kib_per_session": c.kib_per_session,
                "host_rss_kib": c.host_rss_kib,
                "sessions": options.sessions,
            }),
        );
    }
    Ok(report)
}

//! Text forms of what the cloud answers, for the commands' human output (`--json` prints
//! the answers themselves).

use tether_proto::activation::PhaseTimings;
use tether_proto::token_status::TokenStatus;

/// `wifi 812 ms, dns 20 ms, activate -, mqtt -`: each phase's time, `-` where unmeasured.
pub fn timings(t: &PhaseTimings) -> String {
    let ms = |v: Option<u32>| v.map_or_else(|| "-".to_owned(), |n| format!("{n} ms"));
    format!(
        "wifi {}, dns {}, activate {}, mqtt {}",
        ms(t.wifi_ms),
        ms(t.dns_ms),
        ms(t.activate_ms),
        ms(t.mqtt_ms)
    )
}

/// A token's state, then a line for each device that tried it: activated (with its
/// timings once it reported them) or failed (with the reason, the phase and timings).
pub fn token_status(status: &TokenStatus) -> String {
    let mut out = format!(
        "{}  {}  {} device(s), {} failure(s)",
        status.token,
        status.state.name(),
        status.devices.len(),
        status.failures.len()
    );
    for d in &status.devices {
        out.push_str(&format!(
            "\n  online  {}  license {}  at {}",
            d.dev_id, d.uuid, d.activated_at
        ));
        if let Some(t) = &d.timings {
            out.push_str(&format!("\n          {}", timings(t)));
        }
    }
    for f in &status.failures {
        let phase = f.phase.map_or_else(
            || "-".to_owned(),
            |p| {
                serde_json::to_value(p)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            },
        );
        out.push_str(&format!(
            "\n  failed  {}  in {phase}: {}  license {}  at {}\n          {}",
            f.code.name(),
            f.code.description(),
            f.uuid,
            f.at,
            timings(&f.timings)
        ));
        if let Some(message) = &f.message {
            out.push_str(&format!("\n          {message}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use tether_proto::ErrorCode;
    use tether_proto::reports::Phase;
    use tether_proto::token_status::{TokenDevice, TokenFailure, TokenState};

    use super::*;

    #[test]
    fn a_token_shows_each_device_with_its_outcome_and_timings() {
        let status = TokenStatus {
            token: "EUab12CD34".into(),
            state: TokenState::Complete,
            expires_at: 1,
            devices: vec![TokenDevice {
                dev_id: "d-1".into(),
                uuid: "u1".into(),
                activated_at: 5,
                timings: Some(PhaseTimings {
                    wifi_ms: Some(800),
                    dns_ms: Some(20),
                    activate_ms: Some(40),
                    mqtt_ms: Some(10),
                }),
            }],
            failures: vec![TokenFailure {
                uuid: "u2".into(),
                code: ErrorCode::PasswdError,
                phase: Some(Phase::Wifi),
                message: None,
                timings: PhaseTimings {
                    wifi_ms: Some(3000),
                    ..PhaseTimings::default()
                },
                at: 7,
            }],
        };
        let text = token_status(&status);
        assert!(text.starts_with("EUab12CD34  complete  1 device(s), 1 failure(s)"));
        assert!(text.contains("online  d-1  license u1"), "{text}");
        assert!(text.contains("wifi 800 ms, dns 20 ms, activate 40 ms, mqtt 10 ms"));
        assert!(text.contains("failed  passwd_error  in wifi:"), "{text}");
        assert!(
            text.contains("wifi 3000 ms, dns -, activate -, mqtt -"),
            "{text}"
        );
    }
}

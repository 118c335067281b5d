//! Pairing reports: a success once online, a cloud refusal at once, a wrong password at
//! the next chance to reach the cloud; bounded, retried a few times, kept across reboots.

use super::*;
use crate::machine::reports::{MAX_QUEUED, MAX_TRIES};

/// The report requests among `actions`.
fn reports(actions: &[Action]) -> Vec<Value> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Http(r) if r.purpose == Purpose::Report => {
                assert_eq!(r.url, "http://api:8080/v1/pairing-reports");
                assert_eq!(r.path, "/v1/pairing-reports");
                assert_eq!(r.sign, Some(SignWith::Authkey));
                Some(serde_json::from_slice(&r.body).expect("json"))
            }
            _ => None,
        })
        .collect()
}

/// What `actions` keep in `kv` for reports: `Some(n)` reports, `Some(0)` forgotten.
fn kept(actions: &[Action]) -> Option<usize> {
    actions.iter().rev().find_map(|a| match a {
        Action::KvSet(keys::REPORTS, bytes) => Some(
            serde_json::from_slice::<Vec<Value>>(bytes)
                .expect("json")
                .len(),
        ),
        Action::KvDelete(keys::REPORTS) => Some(0),
        _ => None,
    })
}

/// Fails joining `ssid` three times with a wrong password.
fn wrong_password(d: &mut Device) -> Vec<Action> {
    let mut all = Vec::new();
    for _ in 0..WIFI_ATTEMPTS {
        d.wait(500);
        all.extend(d.on(Event::WifiFailed(ErrorCode::PasswdError)));
        all.extend(d.on(Event::TimerFired(Timer::WifiRetry)));
    }
    all
}

#[test]
fn a_success_is_reported_once_online_with_every_phase_timed() {
    let mut d = Device::online();
    // Device::online waits 800, 20, 40 and 10 ms before each phase ends.
    let sent = &d.m.reports[0].report;
    assert_eq!(sent.token.expose(), TOKEN);
    assert_eq!(
        serde_json::to_value(sent).expect("json")["timings"],
        json!({"wifi_ms": 800, "dns_ms": 20, "activate_ms": 40, "mqtt_ms": 10})
    );
    assert_eq!(sent.code, None);
    assert!(d.report_id.is_some(), "sent once online");
    let a = d.answer_report(204);
    assert_eq!(kept(&a), Some(0), "forgotten once the cloud has it");
    assert!(reports(&a).is_empty());
    assert!(d.m.reports.is_empty());
}

#[test]
fn a_refusal_by_the_cloud_is_reported_at_once_with_its_phase() {
    let mut d = Device::new();
    d.cfg("home", "correct horse");
    d.wait(800);
    d.on(Event::WifiConnected {
        ssid: "home".into(),
    });
    d.answer(200, dns_ok());
    d.wait(30);
    let a = d.answer(409, error_body("dev_already_bound"));
    assert_eq!(d.state(), NetState::AwaitingCredentials);
    let sent = reports(&a);
    assert_eq!(sent.len(), 1, "{a:?}");
    assert_eq!(sent[0]["outcome"], "failure");
    assert_eq!(sent[0]["code"], "dev_already_bound");
    assert_eq!(sent[0]["phase"], "activation");
    assert_eq!(sent[0]["timings"]["activate_ms"], 30);
    assert_eq!(sent[0]["timings"]["wifi_ms"], 800);
}

#[test]
fn a_wrong_password_waits_for_the_next_pairing_to_reach_the_cloud() {
    let mut d = Device::new();
    d.cfg("home", "wrong horse");
    let a = wrong_password(&mut d);
    assert_eq!(d.m.status().last_error, Some(ErrorCode::PasswdError));
    assert!(reports(&a).is_empty(), "no network to tell it on");
    assert_eq!(kept(&a), Some(1));

    // The next pairing, with another token, reaches the cloud: the old report goes too.
    let clock = d.clock();
    let a =
        d.m.user_cfg(clock, "home", "correct horse", "EUzz99YY88abCD")
            .expect("valid");
    d.started(a);
    d.on(Event::WifiConnected {
        ssid: "home".into(),
    });
    let a = d.answer(200, dns_ok());
    assert_eq!(http(&a).purpose, Purpose::Activate);
    let sent = reports(&a);
    assert_eq!(sent.len(), 1, "{a:?}");
    assert_eq!(sent[0]["token"], TOKEN);
    assert_eq!(sent[0]["code"], "passwd_error");
    assert_eq!(sent[0]["phase"], "wifi");
    assert!(sent[0]["timings"]["wifi_ms"].as_u64().is_some());
}

#[test]
fn a_paired_device_reports_a_failed_repairing_from_its_previous_network() {
    let mut d = Device::online();
    d.answer_report(204);
    let clock = d.clock();
    let a =
        d.m.user_cfg(clock, "office", "wrong horse", "EUzz99YY88abCD")
            .expect("valid");
    d.started(a);
    let a = wrong_password(&mut d);
    assert!(reports(&a).is_empty(), "not while going back: {a:?}");
    d.on(Event::WifiConnected {
        ssid: "home".into(),
    });
    let a = d.on(Event::MqttConnected);
    assert_eq!(d.state(), NetState::Online);
    let sent = reports(&a);
    assert_eq!(sent.len(), 1, "{a:?}");
    assert_eq!(sent[0]["token"], "EUzz99YY88abCD");
    assert_eq!(sent[0]["code"], "passwd_error");
}

#[test]
fn reports_are_bounded_and_dropped_after_a_few_tries() {
    let mut d = Device::new();
    for _ in 0..MAX_QUEUED + 2 {
        d.cfg("home", "wrong horse");
        wrong_password(&mut d);
    }
    assert_eq!(d.m.reports.len(), MAX_QUEUED);

    d.cfg("home", "correct horse");
    d.on(Event::WifiConnected {
        ssid: "home".into(),
    });
    let a = d.answer(200, dns_ok());
    assert_eq!(reports(&a).len(), 1, "one at a time");
    // A busy cloud: tried again at the next chance, then dropped.
    for _ in 1..MAX_TRIES {
        let a = d.answer_report(503);
        assert!(reports(&a).is_empty(), "no retry loop: {a:?}");
        assert_eq!(d.m.reports.len(), MAX_QUEUED);
        let a = d.m.send_report();
        d.started(a);
    }
    let a = d.answer_report(503);
    assert_eq!(d.m.reports.len(), MAX_QUEUED - 1);
    assert_eq!(reports(&a).len(), 1, "the next one goes");
    // A definitive refusal ends a report at once.
    let a = d.answer_report(400);
    assert_eq!(d.m.reports.len(), MAX_QUEUED - 2);
    assert_eq!(reports(&a).len(), 1);
}

#[test]
fn waiting_reports_survive_a_reboot() {
    let mut d = Device::new();
    d.cfg("home", "wrong horse");
    let a = wrong_password(&mut d);
    let Some(Action::KvSet(_, bytes)) = a
        .iter()
        .rev()
        .find(|a| matches!(a, Action::KvSet(keys::REPORTS, _)))
    else {
        panic!("kept in kv: {a:?}");
    };
    let stored = Stored {
        reports: serde_json::from_slice(bytes).expect("readable"),
        ..Stored::default()
    };
    let (m, _) = Machine::boot(d.clock(), identity(), stored, 1);
    assert_eq!(m.reports.len(), 1);
    assert_eq!(m.reports[0].report.code, Some(ErrorCode::PasswdError));
}

#[test]
fn the_provisioners_trace_follows_the_pairings_requests_and_its_report_only() {
    const TRACE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut d = Device::new();
    d.cfg("home", "correct horse");
    let a = d.m.set_trace("not a trace");
    assert!(matches!(&a[..], [Action::Log(Level::Warn, _)]), "{a:?}");
    let a = d.m.set_trace(TRACE);
    assert!(
        matches!(&a[..], [Action::Log(Level::Info, l)] if l.contains("4bf92f3577b34da6a3ce929d0e0e4736")),
        "{a:?}"
    );
    let a = d.on(Event::WifiConnected {
        ssid: "home".into(),
    });
    assert_eq!(http(&a).trace.as_deref(), Some(TRACE), "IoT DNS");
    let a = d.answer(200, dns_ok());
    assert_eq!(http(&a).trace.as_deref(), Some(TRACE), "activation");
    d.answer(200, activated("d-1"));
    let a = d.on(Event::MqttConnected);
    let report = a
        .iter()
        .find_map(|a| match a {
            Action::Http(r) if r.purpose == Purpose::Report => Some(r),
            _ => None,
        })
        .expect("a report");
    assert_eq!(report.trace.as_deref(), Some(TRACE));
    // The pairing is over: later requests are not in its trace.
    let a = d.on(Event::TimerFired(Timer::RefreshCredentials));
    assert_eq!(http(&a).trace, None);
    // Nor is a trace taken with no pairing under way.
    assert!(d.m.set_trace(TRACE).is_empty());
}

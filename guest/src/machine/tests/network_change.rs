//! A paired device moving to another router without pairing again.

use super::*;

fn wifi_connect(actions: &[Action]) -> Option<&str> {
    actions.iter().find_map(|a| match a {
        Action::WifiConnect(n) => Some(n.ssid.as_str()),
        _ => None,
    })
}

fn stored_network(actions: &[Action]) -> Option<String> {
    actions.iter().find_map(|a| match a {
        Action::KvSet(keys::NETWORK, bytes) => {
            let n: Network = serde_json::from_slice(bytes).expect("json");
            Some(n.ssid)
        }
        _ => None,
    })
}

fn change(d: &mut Device, ssid: &str) -> Vec<Action> {
    let clock = d.clock();
    d.m.change_network(clock, ssid, "new password")
        .expect("accepted")
}

#[test]
fn a_move_keeps_the_binding_and_replaces_the_network_only_once_online() {
    let mut d = Device::online();
    let actions = change(&mut d, "office");
    assert_eq!(wifi_connect(&actions), Some("office"));
    assert!(actions.contains(&Action::MqttDisconnect));
    assert_eq!(
        timer(&actions, Timer::NetworkChange),
        Some(NETWORK_CHANGE_MS)
    );
    assert!(
        stored_network(&actions).is_none(),
        "the old network is kept for now"
    );
    assert_eq!(d.state(), NetState::Connecting);

    let actions = d.on(Event::WifiConnected {
        ssid: "office".into(),
    });
    assert!(
        !actions.iter().any(|a| matches!(a, Action::Http(_))),
        "no activation"
    );
    assert_eq!(d.state(), NetState::MqttConnecting);
    let actions = d.on(Event::MqttConnected);
    assert_eq!(stored_network(&actions).as_deref(), Some("office"));
    assert!(actions.contains(&Action::CancelTimer(Timer::NetworkChange)));
    let status = d.m.status();
    assert_eq!(
        (status.state, status.dev_id.as_deref()),
        (NetState::Online, Some("d-1"))
    );
    assert_eq!(status.last_error, None);
}

#[test]
fn a_move_that_fails_goes_back_to_the_old_network_with_the_reason() {
    // A wrong password for the new network.
    let mut d = Device::online();
    change(&mut d, "office");
    let mut actions = Vec::new();
    for _ in 0..WIFI_ATTEMPTS {
        actions = d.on(Event::WifiFailed(ErrorCode::PasswdError));
        d.wait(u64::from(WIFI_RETRY_MS));
        if timer(&actions, Timer::WifiRetry).is_some() {
            d.on(Event::TimerFired(Timer::WifiRetry));
        }
    }
    assert_eq!(
        wifi_connect(&actions),
        Some("home"),
        "back to the old network"
    );
    d.on(Event::WifiConnected {
        ssid: "home".into(),
    });
    let actions = d.on(Event::MqttConnected);
    assert!(stored_network(&actions).is_none());
    let status = d.m.status();
    assert_eq!(status.state, NetState::Online);
    assert_eq!(status.last_error, Some(ErrorCode::PasswdError));
    assert_eq!(status.ssid.as_deref(), Some("home"));

    // A network that does not reach the broker.
    let mut d = Device::online();
    change(&mut d, "office");
    d.on(Event::WifiConnected {
        ssid: "office".into(),
    });
    let actions = d.on(Event::MqttDisconnected(ErrorCode::NetworkUnreachable));
    assert_eq!(wifi_connect(&actions), Some("home"));

    // Nothing at all before the deadline.
    let mut d = Device::online();
    change(&mut d, "office");
    let actions = d.on(Event::TimerFired(Timer::NetworkChange));
    assert_eq!(wifi_connect(&actions), Some("home"));
    assert_eq!(d.m.status().last_error, Some(ErrorCode::Timeout));
}

#[test]
fn only_a_paired_idle_device_moves_and_bad_networks_are_refused() {
    let mut fresh = Device::new();
    let clock = fresh.clock();
    assert_eq!(
        fresh
            .m
            .change_network(clock, "office", "new password")
            .err(),
        Some(ErrorCode::InvalidParm),
        "nothing to keep: an unpaired device pairs instead"
    );
    let mut d = Device::online();
    let clock = d.clock();
    assert_eq!(
        d.m.change_network(clock, "", "new password").err(),
        Some(ErrorCode::InvalidParm)
    );
    assert_eq!(
        d.m.change_network(clock, "office", "short").err(),
        Some(ErrorCode::InvalidParm)
    );
    d.cfg("other", "other password");
    let clock = d.clock();
    assert_eq!(
        d.m.change_network(clock, "office", "new password").err(),
        Some(ErrorCode::Busy)
    );
}

#[test]
fn a_move_survives_a_snapshot() {
    let mut d = Device::online();
    change(&mut d, "office");
    d.m = Machine::restore(&d.m.snapshot()).expect("restores");
    d.on(Event::WifiConnected {
        ssid: "office".into(),
    });
    let actions = d.on(Event::MqttConnected);
    assert_eq!(stored_network(&actions).as_deref(), Some("office"));
}

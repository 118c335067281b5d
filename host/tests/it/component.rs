//! The built-in pairing component in the real host: `user-cfg` validation, the commands it
//! issues, events, snapshot and restore.

use tether_host::capabilities::Command;
use tether_host::component::DEFAULT_COMPONENT;
use tether_host::runtime::wit::{Event, Link, NetState, WitErrorCode};
use tether_proto::ErrorCode;

use crate::support::{TOKEN, configured_device, default_device, runtime, state};

#[test]
fn a_malformed_token_is_refused_with_token_invalid() {
    let rt = runtime();
    let mut device = default_device(&rt);
    for token in [
        "",
        "EUab12CD34",
        "euab12CD34wxYZ",
        "EUab12CD34wx!Z",
        "EUab12CD34wxYZZ",
    ] {
        let result = device
            .user_cfg("home", "correct horse", token)
            .expect("no trap");
        assert_eq!(result, Err(ErrorCode::TokenInvalid), "{token:?}");
    }
    assert!(
        device.take_commands().is_empty(),
        "a refused call starts no work"
    );
    assert_eq!(
        device.status().expect("status").state,
        NetState::AwaitingCredentials
    );
}

#[test]
fn a_70_character_password_is_refused_with_invalid_parm() {
    let rt = runtime();
    let mut device = default_device(&rt);
    let result = device
        .user_cfg("home", &"p".repeat(70), TOKEN)
        .expect("no trap");
    assert_eq!(result, Err(ErrorCode::InvalidParm));
    let result = device
        .user_cfg(&"s".repeat(33), "correct horse", TOKEN)
        .expect("no trap");
    assert_eq!(result, Err(ErrorCode::InvalidParm));
    assert!(device.take_commands().is_empty());
}

#[test]
fn valid_input_is_accepted_and_starts_joining_the_router() {
    let rt = runtime();
    let mut device = default_device(&rt);
    assert_eq!(
        device
            .user_cfg("home", "correct horse", TOKEN)
            .expect("no trap"),
        Ok(())
    );
    let commands = device.take_commands();
    let joins: Vec<_> = commands
        .iter()
        .filter_map(|c| match c {
            Command::WifiConnect { ssid, passwd } => Some((ssid.as_str(), passwd.expose())),
            _ => None,
        })
        .collect();
    assert_eq!(joins, vec![("home", "correct horse")], "{commands:?}");
    let status = device.status().expect("status");
    assert_eq!(status.state, NetState::Connecting);
    assert_eq!(status.ssid.as_deref(), Some("home"));
    assert_eq!(status.version, env!("CARGO_PKG_VERSION"));
}

#[test]
fn wifi_failures_return_the_device_to_awaiting_credentials_with_the_reason() {
    let rt = runtime();
    let mut device = default_device(&rt);
    assert_eq!(
        device
            .user_cfg("home", "wrong password", TOKEN)
            .expect("no trap"),
        Ok(())
    );
    // The component retries a bounded number of times, with a timer between attempts.
    for _ in 0..2 {
        device
            .handle(&Event::WifiFailed(WitErrorCode::PasswdError))
            .expect("no trap");
        assert!(
            device
                .take_commands()
                .iter()
                .any(|c| matches!(c, Command::TimerSet { .. }))
        );
        device.handle(&Event::TimerFired(1)).expect("no trap");
        assert!(
            device
                .take_commands()
                .iter()
                .any(|c| matches!(c, Command::WifiConnect { .. }))
        );
    }
    device
        .handle(&Event::WifiFailed(WitErrorCode::PasswdError))
        .expect("no trap");
    let status = device.status().expect("status");
    assert_eq!(status.state, NetState::AwaitingCredentials);
    assert_eq!(
        status.last_error.map(ErrorCode::from),
        Some(ErrorCode::PasswdError)
    );
    assert!(status.timings.wifi_ms.is_some());
}

#[test]
fn joining_the_router_starts_the_iot_dns_lookup() {
    let rt = runtime();
    let mut device = configured_device(&rt);
    device.take_commands();
    let link = Link {
        ssid: "home".into(),
        bssid: "02:00:00:00:00:01".into(),
        ip: "192.168.1.23".into(),
        gateway: Some("192.168.1.1".into()),
        rssi: -48,
    };
    device.handle(&Event::WifiConnected(link)).expect("no trap");
    assert_eq!(
        device.status().expect("status").state,
        NetState::EndpointLookup
    );
    let lookups: Vec<_> = device
        .take_commands()
        .into_iter()
        .filter_map(|c| match c {
            Command::HttpStart { request, .. } => Some(request.url),
            _ => None,
        })
        .collect();
    assert_eq!(lookups, vec!["http://127.0.0.1:9/v2/url_config".to_owned()]);
}

#[test]
fn a_snapshot_restores_the_pairing_under_way_into_a_new_instance() {
    let rt = runtime();
    let component = rt.load(DEFAULT_COMPONENT).expect("loads");
    let mut old = rt
        .instantiate(&component, state(&rt))
        .expect("instantiates");
    old.init(None).expect("no trap").expect("starts");
    assert_eq!(
        old.user_cfg("home", "correct horse", TOKEN)
            .expect("no trap"),
        Ok(())
    );
    let snapshot = old.snapshot().expect("snapshot");
    drop(old);

    let mut new = rt
        .instantiate(&component, state(&rt))
        .expect("instantiates");
    new.init(Some(&snapshot))
        .expect("no trap")
        .expect("restores");
    let status = new.status().expect("status");
    assert_eq!(status.state, NetState::Connecting);
    assert_eq!(status.ssid.as_deref(), Some("home"));
    assert_eq!(new.health().expect("no trap"), Ok(()));
}

#[test]
fn a_corrupt_snapshot_is_refused_by_init_without_a_trap() {
    let rt = runtime();
    let component = rt.load(DEFAULT_COMPONENT).expect("loads");
    let mut device = rt
        .instantiate(&component, state(&rt))
        .expect("instantiates");
    let refused = device.init(Some(b"\xff not a snapshot")).expect("no trap");
    assert!(refused.is_err());
    assert!(
        device.failure().is_none(),
        "a refusal is not a failure of the instance"
    );
}

#[test]
fn reset_forgets_the_pairing() {
    let rt = runtime();
    let mut device = configured_device(&rt);
    device.reset().expect("no trap");
    let status = device.status().expect("status");
    assert_eq!(status.state, NetState::AwaitingCredentials);
    assert_eq!(status.ssid, None);
}

#[test]
fn a_host_with_the_compiler_precompiles_for_hosts_without_and_runs_only_what_it_compiles() {
    let compiled = tether_host::Runtime::precompile(
        tether_host::RuntimeConfig::default(),
        None,
        DEFAULT_COMPONENT,
    )
    .expect("precompiles");
    assert_eq!(
        wasmtime::Engine::detect_precompiled(&compiled),
        Some(wasmtime::Precompiled::Component)
    );
    // Native code is trusted only where it is the only option: a host that can compile
    // refuses precompiled bytes, even in a signed bundle.
    let refused = runtime().load(&compiled).expect_err("refused");
    assert!(
        matches!(refused, tether_host::RuntimeError::Invalid(_)),
        "{refused:?}"
    );
    let bad_target = tether_host::Runtime::precompile(
        tether_host::RuntimeConfig::default(),
        Some("nonsense-triple"),
        DEFAULT_COMPONENT,
    );
    assert!(
        matches!(bad_target, Err(tether_host::RuntimeError::Setup(_))),
        "{bad_target:?}"
    );
}

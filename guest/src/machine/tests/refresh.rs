//! Looking the endpoints up again: in the background while online when IoT DNS's TTL
//! runs out (new CAs reach the host while the session goes on), and before a reconnect
//! when they are stale or the session failed its TLS check.

use super::*;

fn dns_with_cas(cas: &[&str]) -> Value {
    json!({"httpUrl": {"addr": "http://api:8080"}, "mqttUrl": {"addr": "broker:1883"},
           "caArr": cas, "ttl": 600})
}

#[test]
fn online_it_looks_up_again_when_the_ttl_runs_out_and_hands_new_cas_to_the_host() {
    let mut d = Device::new();
    d.cfg("home", "correct horse");
    d.on(Event::WifiConnected {
        ssid: "home".into(),
    });
    d.answer(200, dns_ok());
    d.answer(200, activated("d-1"));
    let a = d.on(Event::MqttConnected);
    let due = timer(&a, Timer::EndpointRefresh).expect("a lookup is planned");
    assert!(
        (595_000..=600_000).contains(&due),
        "at the TTL, got {due} ms"
    );

    d.wait(600_000);
    let a = d.on(Event::TimerFired(Timer::EndpointRefresh));
    assert_eq!(http(&a).url, "http://cloud:8080/v2/url_config");
    assert_eq!(d.state(), NetState::Online, "the session goes on");
    let a = d.answer(200, dns_with_cas(&["new", "old"]));
    assert!(
        a.contains(&Action::SetEndpoints {
            http_url: "http://api:8080".into(),
            mqtt_url: "broker:1883".into(),
            ca: vec!["new".into(), "old".into()],
        }),
        "{a:?}"
    );
    assert!(
        a.iter()
            .any(|x| matches!(x, Action::KvSet(keys::ENDPOINTS, _)))
    );
    assert!(!a.iter().any(|x| matches!(x, Action::MqttConnect(_))));
    assert!(
        timer(&a, Timer::EndpointRefresh).is_some(),
        "and the next one"
    );
    assert_eq!(d.state(), NetState::Online);
}

#[test]
fn a_failed_background_lookup_keeps_the_session_and_the_endpoints_and_tries_later() {
    for fail in [503, 404, 0] {
        let mut d = Device::online();
        let before = d.m.endpoints.clone();
        d.on(Event::TimerFired(Timer::EndpointRefresh));
        let a = if fail == 0 {
            let id = d.last_id();
            d.on(Event::HttpFailed {
                id,
                code: ErrorCode::TlsFailed,
            })
        } else {
            d.answer(fail, json!({}))
        };
        assert_eq!(timer(&a, Timer::EndpointRefresh), Some(60_000), "{fail}");
        assert!(timer(&a, Timer::CloudRetry).is_none(), "{fail}");
        assert_eq!(d.state(), NetState::Online, "{fail}");
        assert_eq!(d.m.endpoints, before, "{fail}");
        assert_eq!(d.m.status().last_error, None, "{fail}");
    }
    // An answer without endpoints is no better.
    let mut d = Device::online();
    d.on(Event::TimerFired(Timer::EndpointRefresh));
    let a = d.answer(200, json!({"ttl": 600}));
    assert_eq!(timer(&a, Timer::EndpointRefresh), Some(60_000));
    assert_eq!(d.state(), NetState::Online);
}

#[test]
fn a_reconnect_with_stale_endpoints_or_after_a_tls_failure_looks_them_up_first() {
    // Stale: offline past the TTL.
    let mut d = Device::online();
    d.on(Event::MqttDisconnected(ErrorCode::NetworkUnreachable));
    d.wait(700_000);
    let a = d.on(Event::TimerFired(Timer::MqttRetry));
    assert_eq!(http(&a).url, "http://cloud:8080/v2/url_config");
    assert_eq!(d.state(), NetState::EndpointLookup);
    let a = d.answer(200, dns_with_cas(&["new"]));
    assert!(a.iter().any(|x| matches!(x, Action::MqttConnect(_))));
    d.on(Event::MqttConnected);
    assert_eq!(d.state(), NetState::Online);

    // A TLS failure: the CA may have changed, so even fresh endpoints are looked up.
    let mut d = Device::online();
    d.on(Event::MqttDisconnected(ErrorCode::TlsFailed));
    let a = d.on(Event::TimerFired(Timer::MqttRetry));
    assert_eq!(http(&a).url, "http://cloud:8080/v2/url_config");

    // A background lookup under way when the session drops is dropped with it.
    let mut d = Device::online();
    d.on(Event::TimerFired(Timer::EndpointRefresh));
    let id = d.last_id();
    d.on(Event::MqttDisconnected(ErrorCode::NetworkUnreachable));
    let late = d.on(Event::HttpResponse {
        id,
        status: 200,
        retry_after: None,
        body: dns_with_cas(&[]).to_string().into_bytes(),
    });
    assert!(late.is_empty(), "{late:?}");
    assert_eq!(d.state(), NetState::Offline);
}

//! A device whose factory IoT DNS URL is HTTPS: it asks only for TLS endpoints with their
//! CAs, refuses a plain or CA-less answer, names `mqtts://` for the broker, and shows a
//! TLS failure in its status while it retries, over TLS only.

use super::*;

fn tls_device() -> Device {
    let mut identity = identity();
    identity.iot_dns_url = "https://cloud:8443".into();
    let mut device = Device::new();
    device.m = Machine::new(identity, 7);
    device
}

fn tls_dns_ok() -> Value {
    json!({"httpsSelfUrl": {"addr": "https://api:8443"}, "mqttsSelfUrl": {"addr": "broker:8883"},
           "caArr": ["MIIBca"], "ttl": 600})
}

/// Runs a TLS device to the answer of its IoT DNS request.
fn to_dns(d: &mut Device) -> HttpRequest {
    d.cfg("home", "correct horse");
    d.wait(800);
    let a = d.on(Event::WifiConnected {
        ssid: "home".into(),
    });
    http(&a).clone()
}

#[test]
fn it_asks_for_tls_endpoints_with_their_cas_and_hands_them_to_the_host() {
    let mut d = tls_device();
    let dns = to_dns(&mut d);
    assert_eq!(dns.url, "https://cloud:8443/v2/url_config");
    let body: Value = serde_json::from_slice(&dns.body).expect("json");
    assert_eq!(
        body["config"],
        json!([{"key": "httpsSelfUrl", "need_ca": true}, {"key": "mqttsSelfUrl", "need_ca": true}])
    );
    let a = d.answer(200, tls_dns_ok());
    assert!(
        a.contains(&Action::SetEndpoints {
            http_url: "https://api:8443".into(),
            mqtt_url: "broker:8883".into(),
            ca: vec!["MIIBca".into()],
        }),
        "{a:?}"
    );
    assert_eq!(http(&a).url, "https://api:8443/v1/devices/activate");
    let a = d.answer(200, activated("d-1"));
    let connect = a
        .iter()
        .find_map(|x| match x {
            Action::MqttConnect(activation) => Some(activation.mqtt_url.clone()),
            _ => None,
        })
        .expect("connects");
    assert_eq!(connect, "mqtts://broker:1883", "the scheme is named");
}

#[test]
fn a_plain_or_ca_less_answer_is_dns_failed() {
    let plain = json!({"httpUrl": {"addr": "http://api:8080"}, "mqttUrl": {"addr": "broker:1883"}, "caArr": [], "ttl": 600});
    let no_ca = json!({"httpsSelfUrl": {"addr": "https://api:8443"}, "mqttsSelfUrl": {"addr": "broker:8883"},
                       "caArr": [], "ttl": 600});
    let downgraded = json!({"httpsSelfUrl": {"addr": "http://api:8080"}, "mqttsSelfUrl": {"addr": "broker:8883"},
                            "caArr": ["MIIBca"], "ttl": 600});
    for answer in [plain, no_ca, downgraded] {
        let mut d = tls_device();
        to_dns(&mut d);
        let a = d.answer(200, answer.clone());
        assert!(
            !a.iter().any(|x| matches!(x, Action::SetEndpoints { .. })),
            "{answer}"
        );
        assert_eq!(
            d.m.status().last_error,
            Some(ErrorCode::DnsFailed),
            "{answer}"
        );
    }
}

#[test]
fn a_tls_failure_shows_in_the_status_and_is_retried_over_tls() {
    let mut d = tls_device();
    to_dns(&mut d);
    let id = d.last_id();
    let a = d.on(Event::HttpFailed {
        id,
        code: ErrorCode::TlsFailed,
    });
    assert_eq!(d.m.status().last_error, Some(ErrorCode::TlsFailed));
    assert!(timer(&a, Timer::CloudRetry).is_some(), "{a:?}");
    d.wait(60_000);
    let a = d.on(Event::TimerFired(Timer::CloudRetry));
    assert!(http(&a).url.starts_with("https://"), "retried over TLS");
}

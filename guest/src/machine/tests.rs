//! The state machine driven through the whole flow and its failures, with no host.

use serde_json::{Value, json};
use tether_proto::{ErrorCode, Secret};

use super::*;

const TOKEN: &str = "EUab12CD34wxYZ";
const T0: u64 = 1_700_000_000;

fn identity() -> Identity {
    Identity {
        uuid: "tether0123456789abcd".into(),
        product_key: "p0123456789abcde".into(),
        sw_ver: "1.0.0".into(),
        iot_dns_url: "http://cloud:8080".into(),
    }
}

/// A machine with a clock and request ids, as the bindings would drive it.
struct Device {
    m: Machine,
    mono_ms: u64,
    next_id: u32,
    /// The last flow request (not a report) started.
    flow_id: u32,
    /// The last pairing report started.
    report_id: Option<u32>,
    /// Seconds the wall clock was set forward by (as the host does by the cloud's time).
    unix_offset: u64,
}

impl Device {
    fn new() -> Self {
        Self {
            m: Machine::new(identity(), 7),
            mono_ms: 0,
            next_id: 1,
            flow_id: 0,
            report_id: None,
            unix_offset: 0,
        }
    }

    fn clock(&self) -> Clock {
        Clock {
            mono_ms: self.mono_ms,
            unix: T0 + self.mono_ms / 1000 + self.unix_offset,
        }
    }

    fn wait(&mut self, ms: u64) {
        self.mono_ms += ms;
    }

    fn cfg(&mut self, ssid: &str, passwd: &str) -> Vec<Action> {
        let clock = self.clock();
        let actions = self
            .m
            .user_cfg(clock, ssid, passwd, TOKEN)
            .expect("valid credentials");
        self.started(actions)
    }

    fn on(&mut self, event: Event) -> Vec<Action> {
        let clock = self.clock();
        let actions = self.m.handle(clock, event);
        self.started(actions)
    }

    /// Gives every started request an id, as the bindings do.
    fn started(&mut self, actions: Vec<Action>) -> Vec<Action> {
        for action in &actions {
            if let Action::Http(request) = action {
                let unix = self.clock().unix;
                self.m.request_started(request.purpose, self.next_id, unix);
                if request.purpose == Purpose::Report {
                    self.report_id = Some(self.next_id);
                } else {
                    self.flow_id = self.next_id;
                }
                self.next_id += 1;
            }
        }
        actions
    }

    fn last_id(&self) -> u32 {
        self.flow_id
    }

    /// Answers the pairing report in flight.
    fn answer_report(&mut self, status: u16) -> Vec<Action> {
        let id = self.report_id.take().expect("a report in flight");
        self.on(Event::HttpResponse {
            id,
            status,
            retry_after: None,
            body: b"{}".to_vec(),
        })
    }

    fn answer(&mut self, status: u16, body: Value) -> Vec<Action> {
        let id = self.last_id();
        self.on(Event::HttpResponse {
            id,
            status,
            retry_after: None,
            body: body.to_string().into_bytes(),
        })
    }

    fn state(&self) -> NetState {
        self.m.status().state
    }

    /// Runs the happy path to online.
    fn online() -> Self {
        let mut d = Self::new();
        d.cfg("home", "correct horse");
        d.wait(800);
        d.on(Event::WifiConnected {
            ssid: "home".into(),
        });
        d.wait(20);
        d.answer(200, dns_ok());
        d.wait(40);
        d.answer(200, activated("d-1"));
        d.wait(10);
        d.on(Event::MqttConnected);
        assert_eq!(d.state(), NetState::Online);
        d
    }
}

fn dns_ok() -> Value {
    json!({"httpUrl": {"addr": "http://api:8080"}, "mqttUrl": {"addr": "broker:1883"}, "caArr": [], "ttl": 600})
}

fn activated(dev_id: &str) -> Value {
    json!({
        "dev_id": dev_id, "dev_secret": "devsecret",
        "mqtt": {"url": "broker:1883", "client_id": dev_id, "username": dev_id, "password": "jwt.jwt.jwt", "expires_at": T0 + 86_400},
        "topics": {"in": format!("smart/device/in/{dev_id}"), "out": format!("smart/device/out/{dev_id}")},
        "server_time": T0,
    })
}

fn http(actions: &[Action]) -> &HttpRequest {
    actions
        .iter()
        .find_map(|a| {
            if let Action::Http(r) = a {
                Some(r)
            } else {
                None
            }
        })
        .expect("an HTTP request")
}

fn timer(actions: &[Action], which: Timer) -> Option<u32> {
    actions.iter().find_map(|a| match a {
        Action::SetTimer(t, ms) if *t == which => Some(*ms),
        _ => None,
    })
}

fn error_body(code: &str) -> Value {
    json!({"error": {"code": code, "message": "x"}})
}

#[test]
fn the_happy_path_goes_from_credentials_to_online_with_every_timing() {
    let mut d = Device::new();
    let a = d.cfg("home", "correct horse");
    assert!(a.contains(&Action::WifiConnect(Network {
        ssid: "home".into(),
        passwd: Secret::new("correct horse")
    })));
    assert_eq!(d.state(), NetState::Connecting);

    d.wait(800);
    let a = d.on(Event::WifiConnected {
        ssid: "home".into(),
    });
    let dns = http(&a);
    assert_eq!(dns.url, "http://cloud:8080/v2/url_config");
    assert_eq!(dns.sign, None);
    let body: Value = serde_json::from_slice(&dns.body).expect("json");
    assert_eq!(body["region"], "EU");
    assert_eq!(d.state(), NetState::EndpointLookup);

    d.wait(20);
    let a = d.answer(200, dns_ok());
    assert!(
        a.contains(&Action::SetEndpoints {
            http_url: "http://api:8080".into(),
            mqtt_url: "broker:1883".into(),
            ca: Vec::new(),
        }),
        "the host is told the endpoints: {a:?}"
    );
    let activate = http(&a);
    assert_eq!(activate.url, "http://api:8080/v1/devices/activate");
    assert_eq!(activate.sign, Some(SignWith::Authkey));
    let body: Value = serde_json::from_slice(&activate.body).expect("json");
    assert_eq!(body["uuid"], "tether0123456789abcd");
    assert_eq!(body["token"], TOKEN);
    assert_eq!(body["reset"], false);
    assert_eq!(body["timings"], json!({"wifi_ms": 800, "dns_ms": 20}));
    assert_eq!(d.state(), NetState::Activating);

    d.wait(40);
    let a = d.answer(200, activated("d-1"));
    assert!(a.contains(&Action::SetBinding(Some((
        "d-1".into(),
        Secret::new("devsecret")
    )))));
    assert!(
        a.iter().any(
            |x| matches!(x, Action::MqttConnect(act) if act.password.expose() == "jwt.jwt.jwt")
        )
    );
    assert!(
        a.iter()
            .any(|x| matches!(x, Action::KvSet(keys::ACTIVATION, _)))
    );

    d.wait(10);
    let a = d.on(Event::MqttConnected);
    assert!(a.contains(&Action::MqttSubscribe("smart/device/in/d-1".into())));
    assert!(
        a.iter()
            .any(|x| matches!(x, Action::KvSet(keys::NETWORK, _))),
        "the network is committed once online"
    );
    assert!(a.contains(&Action::KvDelete(keys::PENDING)));
    let refresh = timer(&a, Timer::RefreshCredentials).expect("a refresh is planned");
    assert!(
        refresh > 60_000_000,
        "renewal at 80 % of a day, got {refresh} ms"
    );
    let s = d.m.status();
    assert_eq!(s.state, NetState::Online);
    assert_eq!(s.dev_id.as_deref(), Some("d-1"));
    assert_eq!(
        s.timings,
        PhaseTimings {
            wifi_ms: Some(800),
            dns_ms: Some(20),
            activate_ms: Some(40),
            mqtt_ms: Some(10)
        }
    );
    assert_eq!(s.last_error, None);
}

#[test]
fn wifi_failures_stop_after_bounded_attempts_with_the_reason() {
    for code in [
        ErrorCode::PasswdError,
        ErrorCode::ApNotFound,
        ErrorCode::DhcpFailed,
        ErrorCode::CantConnectAp,
    ] {
        let mut d = Device::new();
        d.cfg("home", "wrong password");
        for attempt in 1..WIFI_ATTEMPTS {
            let a = d.on(Event::WifiFailed(code));
            assert_eq!(
                timer(&a, Timer::WifiRetry),
                Some(WIFI_RETRY_MS),
                "attempt {attempt}"
            );
            let a = d.on(Event::TimerFired(Timer::WifiRetry));
            assert!(a.iter().any(|x| matches!(x, Action::WifiConnect(_))));
        }
        let a = d.on(Event::WifiFailed(code));
        assert!(a.contains(&Action::KvDelete(keys::PENDING)));
        let s = d.m.status();
        assert_eq!(
            (s.state, s.last_error),
            (NetState::AwaitingCredentials, Some(code))
        );
    }
}

#[test]
fn definitive_cloud_answers_end_the_pairing_at_once() {
    let cases = [
        (400, "token_invalid", ErrorCode::TokenInvalid),
        (410, "token_expired", ErrorCode::TokenExpired),
        (409, "token_used", ErrorCode::TokenUsed),
        (409, "dev_already_bound", ErrorCode::DevAlreadyBound),
        (401, "signature_error", ErrorCode::SignatureError),
        (404, "device_unknown", ErrorCode::ActivateFailed),
    ];
    for (status, name, code) in cases {
        let mut d = Device::new();
        d.cfg("home", "correct horse");
        d.on(Event::WifiConnected {
            ssid: "home".into(),
        });
        d.answer(200, dns_ok());
        let a = d.answer(status, error_body(name));
        assert_eq!(timer(&a, Timer::CloudRetry), None, "{name} is not retried");
        let s = d.m.status();
        assert_eq!(
            (s.state, s.last_error),
            (NetState::AwaitingCredentials, Some(code)),
            "{name}"
        );
    }
}

#[test]
fn an_unknown_region_is_dns_failed() {
    let mut d = Device::new();
    d.cfg("home", "correct horse");
    d.on(Event::WifiConnected {
        ssid: "home".into(),
    });
    d.answer(404, error_body("region_unknown"));
    assert_eq!(d.m.status().last_error, Some(ErrorCode::DnsFailed));
}

#[test]
fn transient_failures_retry_with_growing_backoff_then_succeed() {
    let mut d = Device::new();
    d.cfg("home", "correct horse");
    d.on(Event::WifiConnected {
        ssid: "home".into(),
    });
    d.answer(200, dns_ok());
    let mut delays = Vec::new();
    for _ in 0..4 {
        let id = d.last_id();
        let a = d.on(Event::HttpFailed {
            id,
            code: ErrorCode::NetworkUnreachable,
        });
        delays.push(timer(&a, Timer::CloudRetry).expect("retried"));
        assert_eq!(d.state(), NetState::Activating);
        assert_eq!(d.m.status().last_error, Some(ErrorCode::NetworkUnreachable));
        let a = d.on(Event::TimerFired(Timer::CloudRetry));
        assert_eq!(http(&a).purpose, Purpose::Activate);
    }
    assert!(delays[3] > delays[0], "{delays:?}");
    d.answer(503, error_body("internal"));
    d.on(Event::TimerFired(Timer::CloudRetry));
    d.answer(200, activated("d-1"));
    d.on(Event::MqttConnected);
    assert_eq!(d.m.status().last_error, None);
    assert_eq!(d.state(), NetState::Online);
}

#[test]
fn rate_limiting_waits_at_least_retry_after() {
    let mut d = Device::new();
    d.cfg("home", "correct horse");
    d.on(Event::WifiConnected {
        ssid: "home".into(),
    });
    d.answer(200, dns_ok());
    let id = d.last_id();
    let a = d.on(Event::HttpResponse {
        id,
        status: 429,
        retry_after: Some(7),
        body: error_body("rate_limited").to_string().into_bytes(),
    });
    assert!(timer(&a, Timer::CloudRetry).expect("retried") >= 7_000);
}

#[test]
fn retries_stop_when_the_pairing_window_is_over() {
    let mut d = Device::new();
    d.cfg("home", "correct horse");
    d.on(Event::WifiConnected {
        ssid: "home".into(),
    });
    d.wait((cloud::PAIRING_WINDOW_SECS + 1) * 1000);
    let id = d.last_id();
    d.on(Event::HttpFailed {
        id,
        code: ErrorCode::Timeout,
    });
    let s = d.m.status();
    assert_eq!(
        (s.state, s.last_error),
        (NetState::AwaitingCredentials, Some(ErrorCode::Timeout))
    );
}

#[test]
fn answers_to_stale_requests_are_ignored() {
    let mut d = Device::new();
    d.cfg("home", "correct horse");
    d.on(Event::WifiConnected {
        ssid: "home".into(),
    });
    let before = d.m.clone();
    d.on(Event::HttpResponse {
        id: 999,
        status: 200,
        retry_after: None,
        body: dns_ok().to_string().into_bytes(),
    });
    assert_eq!(d.m, before);
}

#[test]
fn commands_update_data_points_and_are_reported_back() {
    let mut d = Device::online();
    let command = json!({"protocol": 5, "t": T0, "data": {"1": true, "2": 40}});
    let a = d.on(Event::MqttMessage {
        topic: "smart/device/in/d-1".into(),
        payload: command.to_string().into_bytes(),
    });
    assert!(
        a.iter()
            .any(|x| matches!(x, Action::KvSet(keys::DATA_POINTS, _)))
    );
    let report = a.iter().find_map(|x| match x {
        Action::MqttPublish { topic, payload } => Some((
            topic.clone(),
            serde_json::from_slice::<Value>(payload).expect("json"),
        )),
        _ => None,
    });
    let (topic, report) = report.expect("a report");
    assert_eq!(topic, "smart/device/out/d-1");
    assert_eq!(report["protocol"], 4);
    assert_eq!(report["data"], json!({"1": true, "2": 40}));
    assert_eq!(d.m.data_points()["2"], 40);
    // Garbage and other topics change nothing.
    let before = d.m.clone();
    d.on(Event::MqttMessage {
        topic: "smart/device/in/d-1".into(),
        payload: b"{not json".to_vec(),
    });
    d.on(Event::MqttMessage {
        topic: "smart/device/in/d-2".into(),
        payload: command.to_string().into_bytes(),
    });
    assert_eq!(d.m, before);
}

#[test]
fn unbind_and_reset_from_the_cloud_return_to_awaiting_credentials() {
    for (protocol, forgets_network) in [(8, false), (11, true)] {
        let mut d = Device::online();
        let msg = json!({"protocol": protocol, "t": T0, "data": {}});
        let a = d.on(Event::MqttMessage {
            topic: "smart/device/in/d-1".into(),
            payload: msg.to_string().into_bytes(),
        });
        assert!(a.contains(&Action::SetBinding(None)));
        assert!(a.contains(&Action::KvDelete(keys::ACTIVATION)));
        assert!(a.contains(&Action::MqttDisconnect));
        assert_eq!(
            a.contains(&Action::KvDelete(keys::NETWORK)),
            forgets_network
        );
        let s = d.m.status();
        assert_eq!((s.state, s.dev_id), (NetState::AwaitingCredentials, None));
    }
}

#[test]
fn an_auth_refusal_renews_credentials_with_the_dev_secret_and_reconnects() {
    let mut d = Device::online();
    let a = d.on(Event::MqttDisconnected(ErrorCode::MqttAuthFailed));
    let renew = http(&a);
    assert_eq!(renew.url, "http://api:8080/v1/devices/d-1/mqtt-credentials");
    assert_eq!(renew.sign, Some(SignWith::DevSecret));
    let fresh = json!({"mqtt": {"url": "broker:1883", "client_id": "d-1", "username": "d-1", "password": "new.jwt.x", "expires_at": T0 + 90_000}, "server_time": T0});
    let a = d.answer(200, fresh);
    assert!(
        a.iter()
            .any(|x| matches!(x, Action::MqttConnect(act) if act.password.expose() == "new.jwt.x"))
    );
    d.on(Event::MqttConnected);
    assert_eq!(d.state(), NetState::Online);
}

#[test]
fn a_signature_refused_for_a_wrong_clock_is_signed_again_and_the_binding_kept() {
    for renew_after in [
        Event::MqttDisconnected(ErrorCode::MqttAuthFailed),
        Event::TimerFired(Timer::RefreshCredentials),
    ] {
        let mut d = Device::online();
        d.on(renew_after);
        // The refusal's `Date` set the host's clock 50 years forward.
        d.unix_offset = 50 * 31_557_600;
        let refused = json!({"error": {"code": "signature_error", "message": "t is off"}});
        let a = d.answer(401, refused.clone());
        assert!(!a.contains(&Action::SetBinding(None)), "{a:?}");
        assert_eq!(
            http(&a).url,
            "http://api:8080/v1/devices/d-1/mqtt-credentials"
        );
        assert!(d.m.status().dev_id.is_some());
        // Signed at the right time and still refused: the cloud forgot the device.
        let a = d.answer(401, refused);
        assert!(a.contains(&Action::SetBinding(None)), "{a:?}");
    }
}

#[test]
fn an_activation_refused_for_a_wrong_clock_is_signed_again() {
    let mut d = Device::new();
    d.cfg("home", "correct horse");
    d.on(Event::WifiConnected {
        ssid: "home".into(),
    });
    d.answer(200, dns_ok());
    d.unix_offset = 50 * 31_557_600;
    let refused = json!({"error": {"code": "signature_error", "message": "t is off"}});
    let a = d.answer(401, refused.clone());
    assert_eq!(http(&a).url, "http://api:8080/v1/devices/activate");
    assert_eq!(d.state(), NetState::Activating);
    let a = d.answer(401, refused);
    assert!(
        !a.iter()
            .any(|x| matches!(x, Action::Http(r) if r.purpose == Purpose::Activate)),
        "{a:?}"
    );
    assert_eq!(d.m.status().last_error, Some(ErrorCode::SignatureError));
}

#[test]
fn a_lost_session_reconnects_with_backoff() {
    let mut d = Device::online();
    let a = d.on(Event::MqttDisconnected(ErrorCode::NetworkUnreachable));
    assert!(timer(&a, Timer::MqttRetry).is_some());
    assert_eq!(d.state(), NetState::Offline);
    let a = d.on(Event::TimerFired(Timer::MqttRetry));
    assert!(a.iter().any(|x| matches!(x, Action::MqttConnect(_))));
    // The broker is still down: every failed attempt schedules the next, later one.
    let mut last = 0;
    for _ in 0..4 {
        let a = d.on(Event::MqttDisconnected(ErrorCode::NetworkUnreachable));
        let delay = timer(&a, Timer::MqttRetry).expect("another attempt is scheduled");
        assert!(delay >= last, "{delay} after {last}");
        last = delay;
        assert_eq!(d.state(), NetState::Offline);
        let a = d.on(Event::TimerFired(Timer::MqttRetry));
        assert!(a.iter().any(|x| matches!(x, Action::MqttConnect(_))));
    }
    d.on(Event::MqttConnected);
    assert_eq!(d.state(), NetState::Online);
}

#[test]
fn new_credentials_that_fail_fall_back_to_the_previous_network() {
    let mut d = Device::online();
    d.cfg("new-router", "wrong password");
    for _ in 1..WIFI_ATTEMPTS {
        d.on(Event::WifiFailed(ErrorCode::PasswdError));
        d.on(Event::TimerFired(Timer::WifiRetry));
    }
    let a = d.on(Event::WifiFailed(ErrorCode::PasswdError));
    assert!(a.contains(&Action::WifiConnect(Network {
        ssid: "home".into(),
        passwd: Secret::new("correct horse")
    })));
    assert!(
        !a.iter()
            .any(|x| matches!(x, Action::KvSet(keys::NETWORK, _))),
        "the new network is never committed"
    );
    d.on(Event::WifiConnected {
        ssid: "home".into(),
    });
    d.on(Event::MqttConnected);
    let s = d.m.status();
    assert_eq!(s.state, NetState::Online, "{s:?}");
    assert_eq!(
        s.last_error,
        Some(ErrorCode::PasswdError),
        "the reason stays readable"
    );
}

#[test]
fn an_activated_device_boots_into_wifi_then_mqtt_without_activation() {
    let online = Device::online();
    let stored = Stored {
        network: online.m.network.clone(),
        activation: online.m.activation.clone(),
        endpoints: online.m.endpoints.clone(),
        ..Stored::default()
    };
    let clock = Clock {
        mono_ms: 0,
        unix: T0 + 60,
    };
    let (mut m, a) = Machine::boot(clock, identity(), stored.clone(), 3);
    assert!(
        a.iter()
            .any(|x| matches!(x, Action::WifiConnect(n) if n.ssid == "home"))
    );
    assert!(
        a.iter().any(
            |x| matches!(x, Action::SetEndpoints { http_url, .. } if http_url == "http://api:8080")
        ),
        "a host that kept no endpoints learns them at boot"
    );
    let a = m.handle(
        clock,
        Event::WifiConnected {
            ssid: "home".into(),
        },
    );
    assert!(
        a.iter().any(|x| matches!(x, Action::MqttConnect(_))),
        "fresh endpoints: straight to MQTT"
    );
    assert!(!a.iter().any(|x| matches!(x, Action::Http(_))));

    // With stale endpoints it looks them up again, then MQTT: still no activation.
    let late = Clock {
        mono_ms: 0,
        unix: T0 + 10_000,
    };
    let (mut m, _) = Machine::boot(late, identity(), stored, 3);
    let a = m.handle(
        late,
        Event::WifiConnected {
            ssid: "home".into(),
        },
    );
    assert_eq!(http(&a).purpose, Purpose::Dns);
    m.request_started(Purpose::Dns, 1, 0);
    let a = m.handle(
        late,
        Event::HttpResponse {
            id: 1,
            status: 200,
            retry_after: None,
            body: dns_ok().to_string().into_bytes(),
        },
    );
    assert!(a.iter().any(|x| matches!(x, Action::MqttConnect(_))));
    assert!(!a.iter().any(|x| matches!(x, Action::Http(_))));
}

#[test]
fn a_half_paired_device_boots_into_awaiting_credentials_with_the_reason() {
    let stored = Stored {
        pending: Some(Pending {
            ssid: "home".into(),
            last_error: Some(ErrorCode::NetworkUnreachable),
        }),
        ..Stored::default()
    };
    let (m, a) = Machine::boot(
        Clock {
            mono_ms: 0,
            unix: T0,
        },
        identity(),
        stored,
        3,
    );
    assert!(a.contains(&Action::KvDelete(keys::PENDING)));
    let s = m.status();
    assert_eq!(
        (s.state, s.last_error),
        (
            NetState::AwaitingCredentials,
            Some(ErrorCode::NetworkUnreachable)
        )
    );
    let stored = Stored {
        pending: Some(Pending {
            ssid: "home".into(),
            last_error: None,
        }),
        ..Stored::default()
    };
    let (m, _) = Machine::boot(
        Clock {
            mono_ms: 0,
            unix: T0,
        },
        identity(),
        stored,
        3,
    );
    assert_eq!(m.status().last_error, Some(ErrorCode::Internal));
}

#[test]
fn a_snapshot_taken_while_activating_completes_that_pairing_after_restore() {
    let mut d = Device::new();
    d.cfg("home", "correct horse");
    d.on(Event::WifiConnected {
        ssid: "home".into(),
    });
    d.answer(200, dns_ok());
    let snapshot = d.m.snapshot();
    d.m = Machine::restore(&snapshot).expect("restores");
    d.answer(200, activated("d-9"));
    d.on(Event::MqttConnected);
    assert_eq!(d.m.status().dev_id.as_deref(), Some("d-9"));
}

#[test]
fn a_local_reset_is_told_to_the_cloud_at_the_next_activation() {
    let mut d = Device::online();
    let clock = d.clock();
    let a = d.m.reset(clock);
    assert!(a.contains(&Action::KvSet(keys::RESET, b"true".to_vec())));
    assert!(a.contains(&Action::SetBinding(None)));
    d.cfg("home", "correct horse");
    d.on(Event::WifiConnected {
        ssid: "home".into(),
    });
    let a = d.answer(200, dns_ok());
    let body: Value = serde_json::from_slice(&http(&a).body).expect("json");
    assert_eq!(body["reset"], true);
}

#[test]
fn log_lines_never_carry_secrets() {
    let mut d = Device::new();
    let mut all = d.cfg("home", "correct horse");
    all.extend(d.on(Event::WifiConnected {
        ssid: "home".into(),
    }));
    all.extend(d.answer(200, dns_ok()));
    all.extend(d.answer(200, activated("d-1")));
    all.extend(d.on(Event::MqttConnected));
    for action in all {
        if let Action::Log(_, line) = action {
            for secret in ["correct horse", "wxYZ", "devsecret", "jwt.jwt.jwt"] {
                assert!(!line.contains(secret), "{line}");
            }
        }
    }
}

#[test]
fn invalid_arguments_leave_the_machine_untouched() {
    let mut d = Device::online();
    let before = d.m.clone();
    let clock = d.clock();
    assert_eq!(
        d.m.user_cfg(clock, "home", &"p".repeat(70), TOKEN),
        Err(ErrorCode::InvalidParm)
    );
    assert_eq!(
        d.m.user_cfg(clock, "home", "correct horse", "bad"),
        Err(ErrorCode::TokenInvalid)
    );
    assert_eq!(d.m, before);
}

#[test]
fn restore_refuses_garbage_other_versions_and_broken_invariants() {
    assert!(Machine::restore(b"not json").is_err());
    let mut other = serde_json::to_value(Machine::new(identity(), 1)).expect("serialises");
    other["version"] = 1.into();
    assert!(
        Machine::restore(other.to_string().as_bytes())
            .expect_err("old")
            .contains("version 1")
    );
    let mut broken = serde_json::to_value(Machine::new(identity(), 1)).expect("serialises");
    broken["state"] = "online".into();
    assert!(
        Machine::restore(broken.to_string().as_bytes())
            .expect_err("broken")
            .contains("without an activation")
    );
}

mod network_change;
mod refresh;
mod reports;
mod tls;

//! The embedded broker with real MQTT clients (rumqttc) acting as devices: the whole path,
//! the ACL, refused credentials, and sessions closed on unbind.

use std::time::Duration;

use reqwest::StatusCode;
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, MqttOptions, Outgoing, Packet, QoS,
    SubscribeReasonCode,
};
use serde_json::{Value, json};
use tether_service::keys::{Acl, DeviceClaims, Keys, MQTT_AUDIENCE};
use tokio::sync::mpsc;

use crate::support::{Service, World, assert_error, now};

const WAIT: Duration = Duration::from_secs(10);

/// An activated device's MQTT login, from the activation response.
pub struct Login {
    pub dev_id: String,
    pub password: String,
}

pub async fn activated(w: &World, index: usize) -> Login {
    let token = w.service.pairing_token(&w.ann, json!({})).await;
    let (status, body) = w.service.activate(&w.devices[index], &token, false).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    Login {
        dev_id: body["dev_id"].as_str().expect("dev_id").into(),
        password: body["mqtt"]["password"].as_str().expect("password").into(),
    }
}

/// A device's MQTT client whose event loop runs in a task, so that queued publishes go
/// out while the test does other things; events arrive on `events`.
pub struct Mqtt {
    pub client: AsyncClient,
    events: mpsc::UnboundedReceiver<Result<Event, ConnectionError>>,
}

pub fn mqtt_client(w: &World, id: &str, user: &str, password: &str) -> Mqtt {
    mqtt_client_to(&w.service, id, user, password)
}

/// A client of `service`'s broker.
pub fn mqtt_client_to(service: &Service, id: &str, user: &str, password: &str) -> Mqtt {
    let addr = service.mqtt_addr;
    let mut options = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    options.set_credentials(user, password);
    options.set_keep_alive(Duration::from_secs(5));
    if let Some(ca) = &service.ca {
        options.set_transport(crate::tls::mqtt_tls(ca));
    }
    Mqtt::spawn(options)
}

impl Mqtt {
    /// Starts a client with `options`.
    pub fn spawn(options: MqttOptions) -> Self {
        let (client, mut eventloop) = AsyncClient::new(options, 16);
        let (tx, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let event = eventloop.poll().await;
                // Stop after an error or our own DISCONNECT: polling again would reconnect.
                let last = matches!(event, Err(_) | Ok(Event::Outgoing(Outgoing::Disconnect)));
                if tx.send(event).is_err() || last {
                    return;
                }
            }
        });
        Mqtt { client, events }
    }

    pub async fn recv(&mut self) -> Result<Event, ConnectionError> {
        tokio::time::timeout(WAIT, self.events.recv())
            .await
            .expect("the broker answers in time")
            .expect("the event loop reports how it ended")
    }

    /// Waits for the CONNACK, returning the refusal if the broker refuses.
    pub async fn connect(&mut self) -> Result<(), ConnectionError> {
        loop {
            if let Event::Incoming(Packet::ConnAck(_)) = self.recv().await? {
                return Ok(());
            }
        }
    }

    /// Waits for a packet matching `want`.
    pub async fn next<T>(&mut self, mut want: impl FnMut(&Packet) -> Option<T>) -> T {
        loop {
            if let Ok(Event::Incoming(packet)) = self.recv().await
                && let Some(found) = want(&packet)
            {
                return found;
            }
        }
    }

    /// Subscribes to `filter` and returns the broker's answer codes.
    pub async fn subscribe(&mut self, filter: &str) -> Vec<SubscribeReasonCode> {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .expect("queued");
        self.next(|p| match p {
            Packet::SubAck(ack) => Some(ack.return_codes.clone()),
            _ => None,
        })
        .await
    }

    /// Publishes a data-point report (protocol 4) of `data` on the device's out-topic.
    pub async fn report(&self, dev_id: &str, data: Value) {
        let report = json!({"protocol": 4, "t": now(), "data": data});
        self.client
            .publish(
                format!("smart/device/out/{dev_id}"),
                QoS::AtLeastOnce,
                false,
                report.to_string(),
            )
            .await
            .expect("queued");
    }

    /// Waits until the connection drops.
    pub async fn closed(&mut self) {
        loop {
            if let Err(_) | Ok(Event::Incoming(Packet::Disconnect)) = self.recv().await {
                return;
            }
        }
    }
}

/// An activated device, connected, subscribed to its in-topic, and seen online by the API.
pub async fn online_device(w: &World, login: &Login) -> Mqtt {
    let mut tries = 0;
    let mut device = loop {
        let mut device = mqtt_client(w, &login.dev_id, &login.dev_id, &login.password);
        match device.connect().await {
            Ok(()) => break device,
            // The broker refuses a connection that takes over a client id whose previous
            // session is still ending (rmqtt's kick finds it gone); devices retry, so
            // does this one.
            Err(ConnectionError::ConnectionRefused(ConnectReturnCode::ServiceUnavailable))
                if tries < 5 =>
            {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("accepted: {e:?}"),
        }
    };
    let in_topic = format!("smart/device/in/{}", login.dev_id);
    device.subscribe(&in_topic).await;
    device_until(w, &login.dev_id, |d| d["online"] == true).await;
    device
}

/// The next JSON message the device receives.
pub async fn next_json(device: &mut Mqtt) -> Value {
    device
        .next(|p| match p {
            Packet::Publish(publish) => serde_json::from_slice(&publish.payload).ok(),
            _ => None,
        })
        .await
}

/// Unbinds the device over the API (`query` may ask for a reset), then checks the device
/// hears `protocol` and its session is closed.
async fn unbind_and_expect_notice(
    w: &World,
    login: &Login,
    device: &mut Mqtt,
    query: &str,
    protocol: u32,
) {
    let path = format!("/v1/devices/{}{query}", login.dev_id);
    let (status, _) = w.service.delete(&path, Some(&w.ann)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let notice = next_json(device).await;
    assert_eq!(notice["protocol"], protocol);
    device.closed().await;
}

/// Polls the API until `check` holds for the device.
pub async fn device_until(w: &World, dev_id: &str, check: impl Fn(&Value) -> bool) -> Value {
    device_until_at(&w.service, &w.ann, dev_id, check).await
}

/// Polls `service`'s API, as the owner logged in with `bearer`, until `check` holds.
pub async fn device_until_at(
    service: &Service,
    bearer: &str,
    dev_id: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, body) = service
            .get(&format!("/v1/devices/{dev_id}"), Some(bearer))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if check(&body) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "device never reached the expected state: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_whole_path_from_login_to_report_and_presence() {
    whole_path(World::new(1).await).await;
}

#[tokio::test]
async fn the_whole_path_runs_over_tls_with_the_local_ca() {
    whole_path(World::with_tls(1).await).await;
}

/// Activation, MQTT login, a command, a report and presence.
async fn whole_path(w: World) {
    let login = activated(&w, 0).await;
    let mut device = mqtt_client(&w, &login.dev_id, &login.dev_id, &login.password);
    device
        .connect()
        .await
        .expect("the issued credentials are accepted");
    let in_topic = format!("smart/device/in/{}", login.dev_id);
    let granted = device.subscribe(&in_topic).await;
    assert_eq!(
        granted,
        vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)]
    );
    device_until(&w, &login.dev_id, |d| d["online"] == true).await;

    let (status, body) = w
        .service
        .post(
            &format!("/v1/devices/{}/commands", login.dev_id),
            Some(&w.ann),
            json!({"data": {"1": true, "2": 40}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let command: Value = device
        .next(|p| match p {
            Packet::Publish(publish) if publish.topic == in_topic => {
                serde_json::from_slice(&publish.payload).ok()
            }
            _ => None,
        })
        .await;
    assert_eq!(command["protocol"], 5);
    assert_eq!(command["data"], json!({"1": true, "2": 40}));

    device
        .report(&login.dev_id, json!({"1": true, "2": 40}))
        .await;
    let seen = device_until(&w, &login.dev_id, |d| {
        d["last_report"] == json!({"1": true, "2": 40})
    })
    .await;
    assert_eq!(seen["online"], true);

    device.client.disconnect().await.expect("queued");
    device_until(&w, &login.dev_id, |d| d["online"] == false).await;
}

#[tokio::test]
async fn a_device_cannot_subscribe_to_another_devices_topic_or_to_everything() {
    let w = World::new(2).await;
    let a = activated(&w, 0).await;
    let b = activated(&w, 1).await;
    let mut device = mqtt_client(&w, &a.dev_id, &a.dev_id, &a.password);
    device.connect().await.expect("accepted");
    for filter in [
        format!("smart/device/in/{}", b.dev_id),
        "#".to_owned(),
        "smart/device/out/+".to_owned(),
    ] {
        let codes = device.subscribe(&filter).await;
        assert_eq!(codes, vec![SubscribeReasonCode::Failure], "{filter}");
    }
}

#[tokio::test]
async fn a_device_cannot_publish_on_another_devices_out_topic() {
    let w = World::new(2).await;
    let a = activated(&w, 0).await;
    let b = activated(&w, 1).await;
    let mut device = mqtt_client(&w, &a.dev_id, &a.dev_id, &a.password);
    device.connect().await.expect("accepted");
    let forged = json!({"protocol": 4, "t": now(), "data": {"1": "forged"}});
    device
        .client
        .publish(
            format!("smart/device/out/{}", b.dev_id),
            QoS::AtLeastOnce,
            false,
            forged.to_string(),
        )
        .await
        .expect("queued");
    device.closed().await;
    let (_, device_b) = w
        .service
        .get(&format!("/v1/devices/{}", b.dev_id), Some(&w.ann))
        .await;
    assert_eq!(
        device_b["last_report"],
        Value::Null,
        "the forged report was dropped"
    );
}

#[tokio::test]
async fn wrong_expired_and_foreign_credentials_are_refused_at_connect() {
    let w = World::new(1).await;
    let login = activated(&w, 0).await;
    let keys = Keys::load_or_create(w.dir.path()).expect("the service's key");
    let claims = |exp: u64, generation: i64| DeviceClaims {
        sub: login.dev_id.clone(),
        aud: MQTT_AUDIENCE.into(),
        exp,
        iat: now() - 100,
        generation,
        acl: Acl {
            publish: vec![],
            subscribe: vec![],
        },
    };
    let expired = keys.sign(&claims(now() - 10, 1)).expect("signs");
    let stale_generation = keys.sign(&claims(now() + 600, 7)).expect("signs");
    let cases = [
        (login.dev_id.clone(), "not-a-jwt".to_owned()),
        (login.dev_id.clone(), expired),
        (login.dev_id.clone(), stale_generation),
        ("someone-else".to_owned(), login.password.clone()),
    ];
    for (user, password) in cases {
        let mut device = mqtt_client(&w, &user, &user, &password);
        match device.connect().await {
            Err(ConnectionError::ConnectionRefused(_)) => {}
            other => panic!("expected a refusal for {user}, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn unbinding_a_connected_device_closes_its_session_and_revokes_its_credentials() {
    let w = World::new(1).await;
    let login = activated(&w, 0).await;
    let mut device = online_device(&w, &login).await;

    unbind_and_expect_notice(&w, &login, &mut device, "", 8).await;

    let mut device = mqtt_client(&w, &login.dev_id, &login.dev_id, &login.password);
    assert!(matches!(
        device.connect().await,
        Err(ConnectionError::ConnectionRefused(_))
    ));
    let (status, body) = w
        .service
        .get(&format!("/v1/devices/{}", login.dev_id), Some(&w.ann))
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn another_users_devices_and_commands_are_not_found() {
    let w = World::new(1).await;
    let login = activated(&w, 0).await;
    let bob = w.user("bob").await;
    let (status, body) = w
        .service
        .get(&format!("/v1/devices/{}", login.dev_id), Some(&bob))
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = w
        .service
        .post(
            &format!("/v1/devices/{}/commands", login.dev_id),
            Some(&bob),
            json!({"data": {"1": false}}),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = w
        .service
        .delete(&format!("/v1/devices/{}", login.dev_id), Some(&bob))
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (_, list) = w.service.get("/v1/devices", Some(&bob)).await;
    assert_eq!(list, json!([]));
    let (_, list) = w.service.get("/v1/devices", Some(&w.ann)).await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_session_is_closed_when_its_credentials_expire() {
    let w = World::new(1).await;
    let login = activated(&w, 0).await;
    // Credentials for the same device generation that expire in two seconds.
    let keys = Keys::load_or_create(w.dir.path()).expect("the service's key");
    let short = keys
        .sign(&DeviceClaims {
            sub: login.dev_id.clone(),
            aud: MQTT_AUDIENCE.into(),
            exp: now() + 2,
            iat: now(),
            generation: 1,
            acl: Acl {
                publish: vec![],
                subscribe: vec![],
            },
        })
        .expect("signs");
    let addr = w.service.mqtt_addr;
    let mut options = MqttOptions::new(&login.dev_id, addr.ip().to_string(), addr.port());
    options.set_credentials(&login.dev_id, &short);
    options.set_keep_alive(Duration::from_secs(1));
    let mut device = Mqtt::spawn(options);
    device.connect().await.expect("accepted while valid");
    device.closed().await;
    device_until(&w, &login.dev_id, |d| d["online"] == false).await;
}

#[tokio::test]
async fn unbinding_with_reset_sends_protocol_11() {
    let w = World::new(1).await;
    let login = activated(&w, 0).await;
    let mut device = online_device(&w, &login).await;
    unbind_and_expect_notice(&w, &login, &mut device, "?reset=true", 11).await;
}

#[tokio::test]
async fn a_command_sent_with_wait_is_answered_once_the_device_acknowledges_it() {
    let w = World::new(2).await;
    let login = activated(&w, 0).await;
    let mut device = online_device(&w, &login).await;
    let path = format!("/v1/devices/{}/commands?wait=5", login.dev_id);
    let (status, body) = w
        .service
        .post(&path, Some(&w.ann), json!({"data": {"1": 7}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["delivered"], true);
    assert_eq!(next_json(&mut device).await["data"], json!({"1": 7}));

    // A device that takes the command but never acknowledges it: a clear 504.
    let silent = activated(&w, 1).await;
    let mut options = MqttOptions::new(
        silent.dev_id.as_str(),
        w.service.mqtt_addr.ip().to_string(),
        w.service.mqtt_addr.port(),
    );
    options.set_credentials(silent.dev_id.as_str(), silent.password.as_str());
    options.set_manual_acks(true);
    let mut never_acks = Mqtt::spawn(options);
    never_acks.connect().await.expect("accepted");
    never_acks
        .subscribe(&format!("smart/device/in/{}", silent.dev_id))
        .await;
    device_until(&w, &silent.dev_id, |d| d["online"] == true).await;
    let path = format!("/v1/devices/{}/commands?wait=1", silent.dev_id);
    let (status, body) = w
        .service
        .post(&path, Some(&w.ann), json!({"data": {"1": 8}}))
        .await;
    assert_error(status, &body, StatusCode::GATEWAY_TIMEOUT, "not_delivered");
    assert_eq!(next_json(&mut never_acks).await["data"], json!({"1": 8}));

    // Offline: refused at once, without waiting.
    device.client.disconnect().await.expect("queued");
    device_until(&w, &login.dev_id, |d| d["online"] == false).await;
    let path = format!("/v1/devices/{}/commands?wait=30", login.dev_id);
    let started = std::time::Instant::now();
    let (status, body) = w
        .service
        .post(&path, Some(&w.ann), json!({"data": {"1": 9}}))
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "device_offline");
    assert!(started.elapsed() < Duration::from_secs(5));
    for wait in ["0", "31", "x"] {
        let path = format!("/v1/devices/{}/commands?wait={wait}", login.dev_id);
        let (status, body) = w
            .service
            .post(&path, Some(&w.ann), json!({"data": {"1": 1}}))
            .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    }
}

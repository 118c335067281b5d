//! A device that its owner (or a buyer) controls attacks others through the broker: last
//! wills, retained messages, oversized packets, silent sessions, replaced credentials.

use std::time::Duration;

use reqwest::StatusCode;
use rumqttc::{ConnectReturnCode, ConnectionError, LastWill, MqttOptions, Packet, QoS};
use serde_json::json;

use crate::broker::{Login, Mqtt, activated, device_until, next_json, online_device};
use crate::support::{World, assert_error};

/// MQTT options for a device's own login.
fn options(w: &World, login: &Login) -> MqttOptions {
    let addr = w.service.mqtt_addr;
    let mut options = MqttOptions::new(&login.dev_id, addr.ip().to_string(), addr.port());
    options.set_credentials(&login.dev_id, &login.password);
    options.set_keep_alive(Duration::from_secs(5));
    options
}

fn refused(result: Result<(), ConnectionError>) -> bool {
    matches!(
        result,
        Err(ConnectionError::ConnectionRefused(
            ConnectReturnCode::NotAuthorized | ConnectReturnCode::BadUserNamePassword
        ))
    )
}

/// Nothing arrives on `device` for a while.
async fn hears_nothing(device: &mut Mqtt) {
    let quiet = tokio::time::timeout(Duration::from_millis(800), async {
        loop {
            if let Ok(rumqttc::Event::Incoming(Packet::Publish(p))) = device.recv().await {
                return p;
            }
        }
    })
    .await;
    assert!(quiet.is_err(), "the victim received {quiet:?}");
}

#[tokio::test]
async fn a_last_will_on_another_devices_topics_or_retained_is_refused_at_connect() {
    let w = World::new(2).await;
    let victim = activated(&w, 0).await;
    let attacker = activated(&w, 1).await;
    let mut victim_mqtt = online_device(&w, &victim).await;
    let reset = json!({"protocol": 11, "t": 0, "data": {}}).to_string();
    let report = json!({"protocol": 4, "t": 0, "data": {"1": "forged"}}).to_string();
    let own_out = format!("smart/device/out/{}", attacker.dev_id);
    for (topic, payload, retain) in [
        (format!("smart/device/in/{}", victim.dev_id), &reset, false),
        (
            format!("smart/device/out/{}", victim.dev_id),
            &report,
            false,
        ),
        (own_out.clone(), &report, true),
    ] {
        let mut opts = options(&w, &attacker);
        opts.set_last_will(LastWill::new(
            &topic,
            payload.clone(),
            QoS::AtLeastOnce,
            retain,
        ));
        let mut mqtt = Mqtt::spawn(opts);
        assert!(
            refused(mqtt.connect().await),
            "a will on {topic} (retain {retain}) was accepted"
        );
    }
    hears_nothing(&mut victim_mqtt).await;
    let seen = device_until(&w, &victim.dev_id, |d| d["online"] == true).await;
    assert_eq!(seen["last_report"], serde_json::Value::Null);

    // A will on its own out-topic is the legitimate use, and is accepted.
    let mut opts = options(&w, &attacker);
    opts.set_last_will(LastWill::new(&own_out, report, QoS::AtLeastOnce, false));
    let mut own = Mqtt::spawn(opts);
    own.connect()
        .await
        .expect("a will on the device's own out-topic");
}

#[tokio::test]
async fn a_retained_publish_is_refused_and_not_stored() {
    let w = World::new(1).await;
    let login = activated(&w, 0).await;
    let mut device = online_device(&w, &login).await;
    let report = json!({"protocol": 4, "t": 0, "data": {"1": "retained"}}).to_string();
    device
        .client
        .publish(
            format!("smart/device/out/{}", login.dev_id),
            QoS::AtLeastOnce,
            true,
            report,
        )
        .await
        .expect("queued");
    device.closed().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = device_until(&w, &login.dev_id, |_| true).await;
    assert_eq!(seen["last_report"], serde_json::Value::Null);
}

#[tokio::test]
async fn a_keep_alive_of_zero_is_refused() {
    let w = World::new(1).await;
    let login = activated(&w, 0).await;
    let mut opts = options(&w, &login);
    opts.set_keep_alive(Duration::ZERO);
    let mut mqtt = Mqtt::spawn(opts);
    assert!(mqtt.connect().await.is_err(), "keep-alive 0 was accepted");
}

#[tokio::test]
async fn oversized_packets_and_commands_disconnect_nobody_but_the_sender() {
    let w = World::new(2).await;
    let big = activated(&w, 0).await;
    let other = activated(&w, 1).await;
    let mut big_mqtt = online_device(&w, &big).await;
    let mut other_mqtt = online_device(&w, &other).await;

    // A report over the broker's packet limit ends only the sender's connection.
    let payload = json!({"protocol": 4, "t": 0, "data": {"1": "x".repeat(40 * 1024)}});
    big_mqtt
        .client
        .publish(
            format!("smart/device/out/{}", big.dev_id),
            QoS::AtLeastOnce,
            false,
            payload.to_string(),
        )
        .await
        .expect("queued");
    big_mqtt.closed().await;

    // A 40 KiB command is refused with 413 at once; the next one is delivered.
    let started = tokio::time::Instant::now();
    let path = format!("/v1/devices/{}/commands", other.dev_id);
    let (status, body) = w
        .service
        .post(
            &path,
            Some(&w.ann),
            json!({"data": {"1": "y".repeat(40 * 1024)}}),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let (status, body) = w
        .service
        .post(&path, Some(&w.ann), json!({"data": {"1": true}}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(next_json(&mut other_mqtt).await["data"], json!({"1": true}));
    let (status, _) = w.service.get("/readyz", None).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the service's own client is still connected"
    );

    // The other device's reports are still stored.
    other_mqtt
        .client
        .publish(
            format!("smart/device/out/{}", other.dev_id),
            QoS::AtLeastOnce,
            false,
            json!({"protocol": 4, "t": 0, "data": {"2": 7}}).to_string(),
        )
        .await
        .expect("queued");
    device_until(&w, &other.dev_id, |d| d["last_report"] == json!({"2": 7})).await;
}

#[tokio::test]
async fn a_silent_session_ends_when_its_credentials_expire() {
    use tether_service::keys::{Acl, DeviceClaims, Keys, MQTT_AUDIENCE};
    let w = World::new(1).await;
    let login = activated(&w, 0).await;
    let keys = Keys::load_or_create(w.dir.path()).expect("the service's key");
    let now = crate::support::now();
    let short = keys
        .sign(&DeviceClaims {
            sub: login.dev_id.clone(),
            aud: MQTT_AUDIENCE.into(),
            exp: now + 2,
            iat: now,
            generation: 1,
            acl: Acl {
                publish: vec![],
                subscribe: vec![],
            },
        })
        .expect("signs");
    let mut opts = options(&w, &login);
    opts.set_credentials(&login.dev_id, &short);
    // No ping for 20 minutes: only a timer can end the session in time.
    opts.set_keep_alive(Duration::from_secs(1200));
    let mut device = Mqtt::spawn(opts);
    device.connect().await.expect("accepted while valid");
    let started = tokio::time::Instant::now();
    device.closed().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn activating_again_ends_the_session_on_the_old_credentials() {
    let w = World::new(1).await;
    let login = activated(&w, 0).await;
    let mut device = online_device(&w, &login).await;
    let again = activated(&w, 0).await;
    assert_eq!(again.dev_id, login.dev_id);
    device.closed().await;
    // The old password no longer logs in; the new one does.
    let mut old = Mqtt::spawn(options(&w, &login));
    assert!(refused(old.connect().await));
    online_device(&w, &again).await;
}

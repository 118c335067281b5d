//! The API and the broker over TLS with a local CA, against real HTTPS and MQTT clients:
//! a client that trusts the CA gets answers under every name the certificate is for; one
//! that does not (no CA, another service's CA) and one that speaks plain HTTP or MQTT get
//! nothing; IoT DNS gives the TLS endpoints and the CA; a client that never finishes its
//! handshake is dropped. (The whole device path over TLS is in `broker.rs`.)

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::StatusCode;
use rustls::pki_types::pem::PemObject;
use serde_json::{Value, json};
use tether_service::ServeConfig;
use tether_service::local::LocalCloud;
use tether_service::tls::{TLS_DIR, TlsSource};
use tokio::io::AsyncReadExt;

/// An MQTT transport that trusts the CA in `ca_pem` alone.
pub use tether_e2e::mqtt_tls;

async fn start(data_dir: &Path) -> LocalCloud {
    let mut config = ServeConfig::ephemeral(data_dir);
    config.tls = TlsSource::LocalCa;
    LocalCloud::start(config).await.expect("the service starts")
}

fn ca_pem(data_dir: &Path) -> Vec<u8> {
    std::fs::read(data_dir.join(TLS_DIR).join("ca.pem")).expect("the local CA")
}

fn trusting(pem: &[u8]) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem).expect("PEM"))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

#[tokio::test]
async fn only_clients_that_trust_the_local_ca_get_answers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cloud = start(dir.path()).await;
    let port = cloud.http_addr().port();
    let client = trusting(&ca_pem(dir.path()));
    for host in ["localhost", "127.0.0.1"] {
        let resp = client
            .get(format!("https://{host}:{port}/healthz"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{host}: {e:#}"));
        assert_eq!(resp.status(), StatusCode::OK);
    }

    let url = format!("https://127.0.0.1:{port}/healthz");
    let no_ca = reqwest::Client::new();
    assert!(no_ca.get(&url).send().await.is_err(), "public roots only");
    let other = tempfile::tempdir().expect("temp dir");
    tether_service::tls::Tls::load(&TlsSource::LocalCa, other.path(), &["127.0.0.1".into()])
        .expect("another CA");
    let wrong_ca = trusting(&ca_pem(other.path()));
    assert!(
        wrong_ca.get(&url).send().await.is_err(),
        "another service's CA"
    );
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await;
    assert!(
        plain.is_err() || !plain.is_ok_and(|r| r.status().is_success()),
        "plain HTTP is not served"
    );
    // The server still answers those who trust it.
    let resp = client.get(&url).send().await.expect("answers");
    assert_eq!(resp.status(), StatusCode::OK);
    cloud.stop().await.expect("stops");
}

#[tokio::test]
async fn iot_dns_gives_the_https_endpoint_and_the_ca_and_no_plain_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cloud = start(dir.path()).await;
    let addr = cloud.http_addr();
    let req = json!({"region": "EU", "config": [
        {"key": "httpUrl"}, {"key": "httpsSelfUrl", "need_ca": true},
        {"key": "mqttUrl"}, {"key": "mqttsSelfUrl", "need_ca": true}]});
    let body: Value = trusting(&ca_pem(dir.path()))
        .post(format!("https://localhost:{}/v2/url_config", addr.port()))
        .json(&req)
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    assert_eq!(body["httpsSelfUrl"]["addr"], format!("https://{addr}"));
    assert!(body.get("httpUrl").is_none(), "{body}");
    assert_eq!(body["mqttsSelfUrl"]["addr"], cloud.mqtt_addr().to_string());
    assert!(body.get("mqttUrl").is_none(), "{body}");
    let pem = ca_pem(dir.path());
    let der = PemObject::from_pem_slice(&pem)
        .map(|c: rustls::pki_types::CertificateDer<'_>| c.to_vec())
        .expect("PEM");
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    assert_eq!(body["caArr"], json!([b64]));
    cloud.stop().await.expect("stops");
}

#[tokio::test]
async fn a_client_that_never_finishes_its_handshake_is_dropped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cloud = start(dir.path()).await;
    let started = Instant::now();
    let mut stream = tokio::net::TcpStream::connect(cloud.http_addr())
        .await
        .expect("connects");
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buf))
        .await
        .expect("the server closes the connection");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "closed at the timeout"
    );
    cloud.stop().await.expect("stops");
}

#[tokio::test]
async fn the_broker_refuses_clients_that_do_not_trust_its_ca_or_speak_plain_mqtt() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cloud = start(dir.path()).await;
    let addr = cloud.mqtt_addr();
    let other = tempfile::tempdir().expect("temp dir");
    tether_service::tls::Tls::load(&TlsSource::LocalCa, other.path(), &["127.0.0.1".into()])
        .expect("another CA");
    let attempts = [
        ("plain MQTT", None),
        ("another CA", Some(mqtt_tls(&ca_pem(other.path())))),
    ];
    for (what, transport) in attempts {
        let mut options = rumqttc::MqttOptions::new("probe", addr.ip().to_string(), addr.port());
        options.set_credentials("probe", "not-a-jwt");
        if let Some(transport) = transport {
            options.set_transport(transport);
        }
        let (_client, mut events) = rumqttc::AsyncClient::new(options, 4);
        let Ok(first) = tokio::time::timeout(Duration::from_secs(15), events.poll()).await else {
            panic!("{what}: no answer in time");
        };
        // Refused below MQTT: the login (which would also fail) is never reached.
        assert!(
            first.is_err() && !matches!(first, Err(rumqttc::ConnectionError::ConnectionRefused(_))),
            "{what}: {first:?}"
        );
    }
    // Trusting the right CA gets as far as the login, which the wrong password fails.
    let mut options = rumqttc::MqttOptions::new("probe", addr.ip().to_string(), addr.port());
    options.set_credentials("probe", "not-a-jwt");
    options.set_transport(mqtt_tls(&ca_pem(dir.path())));
    let (_client, mut events) = rumqttc::AsyncClient::new(options, 4);
    let answer = tokio::time::timeout(Duration::from_secs(15), events.poll())
        .await
        .expect("answers");
    assert!(
        matches!(answer, Err(rumqttc::ConnectionError::ConnectionRefused(_))),
        "{answer:?}"
    );
    cloud.stop().await.expect("stops");
}

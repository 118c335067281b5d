//! A device pinned to its cloud's CA against the real service serving TLS: it pairs, goes
//! online and round-trips a command over HTTPS and MQTTS; given the wrong CA, a wrong
//! name or an expired certificate it reports `tls_failed` and never comes online.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use tether_host::RuntimeConfig;
use tether_host::daemon::Device;
use tether_proto::ErrorCode;
use tether_service::tls::{TLS_DIR, Tls, TlsSource};

use crate::device::{Cloud, host_config, pair_online, until};

async fn tls_cloud() -> Cloud {
    Cloud::start_with(1, |c| c.tls = TlsSource::LocalCa).await
}

/// Starts license 0's device with `edit` applied to its config.
async fn device(
    cloud: &Cloud,
    edit: impl FnOnce(&mut tether_host::config::HostConfig),
) -> (tempfile::TempDir, Device) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = host_config(cloud, 0, dir.path());
    edit(&mut config);
    let device = Device::start(config, RuntimeConfig::default())
        .await
        .expect("the device starts");
    (dir, device)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_device_pairs_and_round_trips_a_command_over_https_and_mqtts() {
    let cloud = tls_cloud().await;
    assert!(cloud.base.starts_with("https://"));
    let (dir, device) = device(&cloud, |_| {}).await;
    let dev_id = pair_online(&cloud, &device).await;
    cloud.command(&dev_id, json!({"1": true})).await;
    cloud.await_report(&dev_id, &json!({"1": true})).await;

    // The host keeps the TLS endpoints with the CA IoT DNS delivered.
    let stored: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("endpoints.json")).expect("endpoints"),
    )
    .expect("json");
    assert!(
        stored["http_url"]
            .as_str()
            .is_some_and(|u| u.starts_with("https://"))
    );
    assert_eq!(stored["ca"].as_array().map(Vec::len), Some(1), "{stored}");
    device.stop();
}

/// Pairs and expects `tls_failed`, and that the device stays off the cloud.
async fn refused(cloud: &Cloud, device: &Device) {
    let token = cloud.token().await;
    device
        .user_cfg("home", "correct horse", &token)
        .await
        .expect("accepted");
    let status = until(device, "tls_failed", |s| {
        s.last_error == Some(ErrorCode::TlsFailed)
    })
    .await;
    assert_eq!(status.state.name(), "endpoint-lookup");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let later = device.status().await.expect("status");
    assert_eq!(later.state.name(), "endpoint-lookup", "{later:?}");
    assert!(later.dev_id.is_none(), "never activated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wrong_ca_and_a_wrong_name_are_tls_failed() {
    let mut cloud = Cloud::start_with(1, |c| {
        c.tls = TlsSource::LocalCa;
        // Reachable on every loopback address, but the certificate names 127.0.0.1 only.
        c.listen = "0.0.0.0:0".parse().expect("address");
    })
    .await;
    let other = tempfile::tempdir().expect("temp dir");
    Tls::load(&TlsSource::LocalCa, other.path(), &["127.0.0.1".into()]).expect("another CA");
    let other_ca = other.path().join(TLS_DIR).join("ca.pem");
    let (_a, wrong_ca) = device(&cloud, |c| c.cloud_ca = Some(other_ca)).await;
    refused(&cloud, &wrong_ca).await;
    wrong_ca.stop();

    let port = cloud.base.rsplit(':').next().expect("a port").to_owned();
    let (_b, wrong_name) = device(&cloud, |c| {
        c.iot_dns_url = format!("https://127.0.0.2:{port}")
    })
    .await;
    refused(&cloud, &wrong_name).await;
    wrong_name.stop();
    cloud.stop().await;
}

/// A CA and a server certificate for 127.0.0.1 that expired yesterday, as PEM files.
fn expired_chain(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let now = time::OffsetDateTime::now_utc();
    let ca_key = KeyPair::generate().expect("key");
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).expect("CA");
    let issuer = Issuer::new(ca, &ca_key);
    let key = KeyPair::generate().expect("key");
    let mut server = CertificateParams::new(vec!["127.0.0.1".into()]).expect("names");
    server.not_before = now - time::Duration::days(30);
    server.not_after = now - time::Duration::days(1);
    let cert = server.signed_by(&key, &issuer).expect("signed");
    let paths = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    );
    std::fs::write(&paths.0, ca_cert.pem()).expect("written");
    std::fs::write(&paths.1, cert.pem()).expect("written");
    std::fs::write(&paths.2, key.serialize_pem()).expect("written");
    paths
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_is_tls_failed() {
    let files = tempfile::tempdir().expect("temp dir");
    let (ca, cert, key) = expired_chain(files.path());
    let mut cloud = Cloud::start_with(1, |c| {
        c.tls = TlsSource::Files {
            cert,
            key,
            ca: vec![ca.clone()],
        }
    })
    .await;
    let (_dir, device) = device(&cloud, |c| c.cloud_ca = Some(ca)).await;
    refused(&cloud, &device).await;
    device.stop();
    cloud.stop().await;
}

//! Hot update of the pairing component on a paired, online device against the real
//! service: a good bundle keeps the device online and commits after probation; every
//! bad one is refused or rolled back with its reason while the device stays online on
//! the old component.

use std::time::Duration;

use ed25519_dalek::SigningKey;
use serde_json::{Value, json};
use tether_host::RuntimeConfig;
use tether_host::component::DEFAULT_COMPONENT;
use tether_host::config::{HostConfig, UpdateConfig};
use tether_host::daemon::Device;
use tether_host::runtime::WORLD;
use tether_proto::bundle::Bundle;

use crate::device::{Cloud, channel, host_config, until};
use crate::support::{MISBEHAVING, wait};

fn key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

fn bundle(component: &[u8], version: &str, sequence: u64) -> Vec<u8> {
    Bundle::sign(component, version, sequence, WORLD, "0.1.0", &key()).expect("signs")
}

/// The misbehaving component with its fault marker set to `mode`.
fn variant(mode: u8) -> Vec<u8> {
    let marker = b"TESTGUEST-MODE:0";
    let mut bytes = MISBEHAVING.to_vec();
    let at = bytes
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("the marker is in the component");
    bytes[at + marker.len() - 1] = mode;
    bytes
}

/// A device config for `cloud`'s first license that trusts `key`, with `probation_secs`
/// of probation, watching `watch_dir` for bundles if given.
pub(crate) fn trusting(
    cloud: &Cloud,
    dir: &std::path::Path,
    key: &SigningKey,
    probation_secs: u64,
    watch_dir: Option<std::path::PathBuf>,
) -> HostConfig {
    let mut config = host_config(cloud, 0, dir);
    config.update = UpdateConfig {
        trusted_keys: vec![hex::encode(key.verifying_key().as_bytes())],
        probation_secs,
        watch_dir,
    };
    config
}

/// Pairs `device` over its data channel with a new token; returns its dev-id once online.
pub(crate) async fn pair(cloud: &Cloud, device: &Device) -> String {
    let token = cloud.token().await;
    let ack = channel(
        cloud,
        0,
        device,
        json!({"type": "config", "ssid": "home", "passwd": "correct horse", "token": token}),
    )
    .await;
    assert_eq!(ack["code"], "ok");
    let status = until(device, "online", |s| s.state.name() == "online").await;
    status.dev_id.expect("dev id")
}

/// An online device whose config trusts [`key`].
async fn online_device(cloud: &Cloud, probation_secs: u64) -> (tempfile::TempDir, Device, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = trusting(cloud, dir.path(), &key(), probation_secs, None);
    let device = Device::start(config, RuntimeConfig::default())
        .await
        .expect("the device starts");
    let dev_id = pair(cloud, &device).await;
    (dir, device, dev_id)
}

/// The module status as JSON, the form `ctl module status` prints.
async fn module(device: &Device) -> Value {
    serde_json::to_value(device.module_status().await.expect("module status")).expect("JSON")
}

async fn until_module(device: &Device, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    wait(what, Duration::from_millis(50), || async {
        let status = module(device).await;
        if check(&status) {
            Ok(status)
        } else {
            Err(status)
        }
    })
    .await
}

/// Waits until the service holds the device's report of an outcome with `result` and a
/// reason starting with `reason`.
async fn reported(cloud: &Cloud, dev_id: &str, result: &str, reason: &str) {
    let what = format!("the service got {result} {reason}");
    wait(&what, Duration::from_millis(100), || async {
        let outcome = cloud.device(dev_id).await["module_outcome"].clone();
        let reason_ok = outcome["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with(reason));
        if outcome["result"] == result && reason_ok {
            Ok(())
        } else {
            Err(outcome)
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_keeps_the_device_online_and_commits_after_probation() {
    let cloud = Cloud::start(1).await;
    let (_dir, device, dev_id) = online_device(&cloud, 1).await;
    cloud.command(&dev_id, json!({"1": true})).await;
    cloud.await_report(&dev_id, &json!({"1": true})).await;

    let report = device
        .update(bundle(DEFAULT_COMPONENT, "0.2.0", 1))
        .await
        .expect("the update applies");
    eprintln!("update: {}", serde_json::to_string(&report).expect("json"));
    assert_eq!((report.version.as_str(), report.sequence), ("0.2.0", 1));
    let status = device.status().await.expect("status");
    assert_eq!(
        (status.state.name(), status.dev_id.as_deref()),
        ("online", Some(dev_id.as_str())),
        "still online, same device"
    );
    assert_eq!(module(&device).await["on_probation"], true);

    // The MQTT session was never dropped: a command reaches the new component at once.
    cloud.command(&dev_id, json!({"2": 5})).await;
    cloud.await_report(&dev_id, &json!({"2": 5})).await;
    assert_eq!(cloud.device(&dev_id).await["online"], true);

    let done = until_module(&device, "committed", |m| m["on_probation"] == false).await;
    assert_eq!(done["version"], "0.2.0");

    // The data points came across in the snapshot: after a broker restart the new
    // component reconnects and reports every data point it holds.
    let mut cloud = cloud;
    cloud.stop().await;
    cloud.restart().await;
    cloud
        .await_report(&dev_id, &json!({"1": true, "2": 5}))
        .await;
    assert_eq!(done["slots"]["active"]["version"], "0.2.0");
    assert_eq!(done["slots"]["last_outcome"]["result"], "applied");

    // The same bundle again is a replay; an older version is a downgrade.
    let again = device.update(bundle(DEFAULT_COMPONENT, "0.2.0", 1)).await;
    assert_eq!(again.map(|_| ()).map_err(|e| e.name()), Err("replayed"));
    let older = device.update(bundle(DEFAULT_COMPONENT, "0.1.5", 9)).await;
    assert_eq!(older.map(|_| ()).map_err(|e| e.name()), Err("downgrade"));
    assert_eq!(module(&device).await["version"], "0.2.0");
    device.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bundles_are_refused_and_the_device_stays_online_on_the_old_component() {
    let cloud = Cloud::start(1).await;
    let (_dir, device, dev_id) = online_device(&cloud, 30).await;

    let good = bundle(DEFAULT_COMPONENT, "0.2.0", 1);
    let mut bad_signature = good.clone();
    let manifest_len = u32::from_be_bytes(good[8..12].try_into().expect("len")) as usize;
    bad_signature[12 + manifest_len] ^= 1;
    let mut corrupted = good.clone();
    let last = corrupted.len() - 1;
    corrupted[last] ^= 1;
    let untrusted = Bundle::sign(
        DEFAULT_COMPONENT,
        "0.2.0",
        1,
        WORLD,
        "0.1.0",
        &SigningKey::from_bytes(&[8; 32]),
    )
    .expect("signs");
    // An empty component: valid bytes, none of the world's exports.
    let empty_component = bundle(b"\0asm\x0d\x00\x01\x00", "0.2.0", 1);
    let cases: [(&str, Vec<u8>, &str); 7] = [
        ("bad signature", bad_signature, "bad_signature"),
        ("untrusted key", untrusted, "untrusted_key"),
        ("corrupted bytes", corrupted, "corrupted"),
        ("missing export", empty_component, "invalid_component"),
        (
            "traps in init",
            bundle(&variant(b'i'), "0.2.0", 1),
            "start_failed",
        ),
        (
            "health fails",
            bundle(&variant(b'0'), "0.2.0", 1),
            "unhealthy",
        ),
        (
            "downgrade",
            bundle(DEFAULT_COMPONENT, "0.0.9", 5),
            "downgrade",
        ),
    ];
    for (what, bytes, reason) in cases {
        let result = device.update(bytes).await;
        assert_eq!(
            result.map(|_| ()).map_err(|e| e.name()),
            Err(reason),
            "{what}"
        );
        let m = module(&device).await;
        assert_eq!(m["version"], "0.1.0", "{what}: still the old component");
        let outcome = &m["slots"]["last_outcome"];
        assert_eq!(outcome["result"], "refused", "{what}");
        assert!(
            outcome["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with(reason)),
            "{what}: {outcome}"
        );
        assert_eq!(
            device.status().await.expect("status").state.name(),
            "online",
            "{what}"
        );
        reported(&cloud, &dev_id, "refused", reason).await;
    }

    // A component that fails on its first event after the swap is rolled back.
    for (sequence, what, mode) in [
        (2, "loops in handle", b'h'),
        (3, "grows memory past the cap", b'g'),
    ] {
        device
            .update(bundle(&variant(mode), "0.2.0", sequence))
            .await
            .unwrap_or_else(|e| panic!("{what}: healthy at first: {e}"));
        // Any event reaches `handle`: open the data channel.
        let _poke = tokio::net::TcpStream::connect(device.channel_addr()).await;
        let m = until_module(&device, "rolled back", |m| {
            m["slots"]["last_outcome"]["result"] == "rolled_back"
        })
        .await;
        assert_eq!(m["version"], "0.1.0", "{what}");
        assert!(
            m["slots"]["last_outcome"]["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("failed_on_probation")),
            "{what}: {m}"
        );
        let status = until(&device, "online again", |s| s.state.name() == "online").await;
        assert_eq!(status.dev_id.as_deref(), Some(dev_id.as_str()), "{what}");
        reported(&cloud, &dev_id, "rolled_back", "failed_on_probation").await;
    }
    cloud.command(&dev_id, json!({"4": 1})).await;
    cloud.await_report(&dev_id, &json!({"4": 1})).await;
    device.stop();
}

/// A TCP proxy that holds every connection for `delay` before forwarding it to the
/// address sent on the returned channel: the activation request waits in it.
async fn slow_proxy(delay: Duration) -> (String, tokio::sync::watch::Sender<Option<String>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("proxy binds");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (target_tx, target) = tokio::sync::watch::channel::<Option<String>>(None);
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let Some(addr) = target.borrow().clone() else {
                    return;
                };
                if let Ok(mut upstream) = tokio::net::TcpStream::connect(addr).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
            });
        }
    });
    (url, target_tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_while_the_activation_answer_is_awaited_completes_that_pairing() {
    let (proxy, target) = slow_proxy(Duration::from_millis(1500)).await;
    let cloud = Cloud::start_with(1, |c| c.public_http_url = Some(proxy)).await;
    target.send_replace(Some(cloud.base.trim_start_matches("http://").to_owned()));
    let dir = tempfile::tempdir().expect("temp dir");
    let config = trusting(&cloud, dir.path(), &key(), 1, None);
    let device = Device::start(config, RuntimeConfig::default())
        .await
        .expect("starts");
    let token = cloud.token().await;
    device
        .user_cfg("home", "correct horse", &token)
        .await
        .expect("accepted");
    until(&device, "activating", |s| s.state.name() == "activating").await;

    let report = device
        .update(bundle(DEFAULT_COMPONENT, "0.2.0", 1))
        .await
        .expect("applies mid-activation");
    assert_eq!(
        device.status().await.expect("status").state.name(),
        "activating",
        "the new component carries on where the old one was"
    );
    let online = until(&device, "online on the new component", |s| {
        s.state.name() == "online"
    })
    .await;
    assert!(online.dev_id.is_some());
    assert!(
        online.timings.activate_ms.is_some_and(|ms| ms >= 1000),
        "{online:?}"
    );
    assert_eq!(module(&device).await["version"], "0.2.0");
    eprintln!("mid-activation update: pause {} µs", report.pause_us);
    device.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundles_dropped_into_the_watched_directory_are_applied_or_refused_once() {
    let cloud = Cloud::start(1).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let watch = dir.path().join("updates");
    let device = Device::start(
        trusting(&cloud, dir.path(), &key(), 1, Some(watch.clone())),
        RuntimeConfig::default(),
    )
    .await
    .expect("starts");
    std::fs::create_dir_all(&watch).expect("watch dir");
    let mut corrupted = bundle(DEFAULT_COMPONENT, "0.2.0", 1);
    let last = corrupted.len() - 1;
    corrupted[last] ^= 1;
    std::fs::write(watch.join("a-bad.bundle"), corrupted).expect("written");
    std::fs::write(
        watch.join("b-good.bundle"),
        bundle(DEFAULT_COMPONENT, "0.2.0", 1),
    )
    .expect("written");
    until_module(&device, "0.2.0 from the directory", |m| {
        m["version"] == "0.2.0"
    })
    .await;
    let applied = watch.join("b-good.bundle.applied");
    wait("marked applied", Duration::from_millis(50), || async {
        if applied.exists() { Ok(()) } else { Err(()) }
    })
    .await;
    assert!(watch.join("a-bad.bundle.refused").exists());
    assert!(!watch.join("a-bad.bundle").exists() && !watch.join("b-good.bundle").exists());
    device.stop();
}

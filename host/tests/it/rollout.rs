//! Updates through the cloud: an admin uploads a signed bundle and rolls it out; online
//! devices get the protocol 15 notice at once, offline ones when they come back; each
//! downloads the bundle with a signed request, swaps it in and reports the outcome, which
//! the device's API view shows.

use std::time::Duration;

use ed25519_dalek::SigningKey;
use serde_json::{Value, json};
use tether_host::RuntimeConfig;
use tether_host::component::DEFAULT_COMPONENT;
use tether_host::daemon::Device;
use tether_host::runtime::WORLD;
use tether_proto::bundle::Bundle;

use crate::device::Cloud;
use crate::support::wait;
use crate::update::{pair, trusting};

fn key() -> SigningKey {
    SigningKey::from_bytes(&[11; 32])
}

fn public() -> String {
    hex::encode(key().verifying_key().as_bytes())
}

async fn upload(cloud: &Cloud, admin: &str, bytes: Vec<u8>) -> (u16, Value) {
    let resp = cloud
        .http
        .post(format!("{}/v1/modules", cloud.base))
        .bearer_auth(admin)
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .expect("upload");
    (resp.status().as_u16(), resp.json().await.expect("json"))
}

async fn rollout(cloud: &Cloud, admin: &str, module: i64, target: Value) -> Value {
    let resp = cloud
        .http
        .post(format!("{}/v1/modules/{module}/rollouts", cloud.base))
        .bearer_auth(admin)
        .json(&target)
        .send()
        .await
        .expect("rollout");
    assert_eq!(resp.status().as_u16(), 201);
    resp.json().await.expect("json")
}

async fn cloud_view_until(
    cloud: &Cloud,
    dev_id: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    wait(what, Duration::from_millis(100), || async {
        let device = cloud.device(dev_id).await;
        if check(&device) {
            Ok(device)
        } else {
            Err(device)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_reaches_online_and_later_devices_and_the_api_shows_the_outcome() {
    let cloud = Cloud::start_with(1, |c| c.module_keys = vec![public()]).await;
    let admin = cloud.admin().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = trusting(&cloud, dir.path(), &key(), 1, None);
    let device = Device::start(config.clone(), RuntimeConfig::default())
        .await
        .expect("starts");
    let dev_id = pair(&cloud, &device).await;

    // Uploads are checked: an untrusted key and a non-admin are refused.
    let other = Bundle::sign(
        DEFAULT_COMPONENT,
        "0.2.0",
        1,
        WORLD,
        "0.1.0",
        &SigningKey::from_bytes(&[12; 32]),
    )
    .expect("signs");
    let (status, body) = upload(&cloud, &admin, other).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("bundle_untrusted_key"))
    );
    let good = Bundle::sign(DEFAULT_COMPONENT, "0.2.0", 1, WORLD, "0.1.0", &key()).expect("signs");
    // A small body: the service refuses a non-admin before reading the body, and a
    // client still sending a large one may see the connection close instead of the 403.
    let (status, _) = upload(&cloud, &cloud.user_access(), good[..64].to_vec()).await;
    assert_eq!(status, 403, "users may not upload modules");
    let (status, module) = upload(&cloud, &admin, good.clone()).await;
    assert_eq!(status, 201, "{module}");
    let module_id = module["id"].as_i64().expect("id");
    // The same bundle again, or another version under its key and sequence: conflicts,
    // and the stored module keeps its one bundle.
    let clash = Bundle::sign(DEFAULT_COMPONENT, "0.2.1", 1, WORLD, "0.1.0", &key()).expect("signs");
    for bytes in [good, clash] {
        let (status, body) = upload(&cloud, &admin, bytes).await;
        assert_eq!(status, 409, "{body}");
    }
    let listed: Value = cloud
        .http
        .get(format!("{}/v1/modules", cloud.base))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(listed[0]["variants"], json!(["portable"]), "{listed}");
    assert_eq!(listed[0]["version"], "0.2.0", "{listed}");

    // Online: notified at once, applied, committed after probation, reported.
    let created = rollout(&cloud, &admin, module_id, json!({"devices": [dev_id]})).await;
    assert_eq!(
        (created["targeted"].as_u64(), created["notified"].as_u64()),
        (Some(1), Some(1))
    );
    let view = cloud_view_until(&cloud, &dev_id, "applied", |d| {
        d["rollout"]["state"] == "applied"
    })
    .await;
    assert_eq!(view["module_version"], "0.2.0");
    assert_eq!(view["online"], true);
    assert_eq!(
        device.status().await.expect("status").state.name(),
        "online"
    );

    // Offline during the rollout: the notice comes when the device is back.
    device.stop();
    let next = Bundle::sign(DEFAULT_COMPONENT, "0.3.0", 2, WORLD, "0.1.0", &key()).expect("signs");
    let (status, module) = upload(&cloud, &admin, next).await;
    assert_eq!(status, 201);
    cloud_view_until(&cloud, &dev_id, "offline", |d| d["online"] == false).await;
    let created = rollout(
        &cloud,
        &admin,
        module["id"].as_i64().expect("id"),
        json!({"product_key": "p0123456789abcde"}),
    )
    .await;
    assert_eq!(
        (created["targeted"].as_u64(), created["notified"].as_u64()),
        (Some(1), Some(0))
    );
    let device = Device::start(config, RuntimeConfig::default())
        .await
        .expect("starts again");
    let view = cloud_view_until(&cloud, &dev_id, "0.3.0 applied", |d| {
        d["rollout"]["version"] == "0.3.0" && d["rollout"]["state"] == "applied"
    })
    .await;
    assert_eq!(view["module_version"], "0.3.0");
    assert_eq!(
        device.module_status().await.expect("status").version,
        "0.3.0"
    );
    device.stop();
}

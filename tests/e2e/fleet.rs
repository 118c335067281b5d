//! A batch: 20 device processes provisioned at once, by 20 concurrent `tether provision`
//! processes sharing one token created with `--max-devices 20`.

use std::collections::BTreeSet;

use tether_e2e::{Cloud, DeviceHost, Output, User, WIFI_PASSWORD, eventually};

const DEVICES: usize = 20;

#[test]
fn twenty_devices_paired_at_once_with_one_batch_token_are_all_online() {
    let cloud = Cloud::start();
    let ann = User::new(&cloud, "ann");
    let hosts: Vec<DeviceHost> = cloud
        .licenses(DEVICES)
        .iter()
        .map(|license| DeviceHost::start(&cloud, license))
        .collect();
    let max = DEVICES.to_string();
    let token = ann.json(&["token", "create", "--max-devices", &max]);
    let token = token["token"].as_str().expect("token").to_owned();

    let running: Vec<_> = hosts
        .iter()
        .map(|host| {
            ann.spawn(&[
                "provision",
                "--device",
                &host.channel,
                "--setup-code",
                host.setup_code.as_deref().expect("a setup code"),
                "--ssid",
                tether_e2e::SSID,
                "--password",
                WIFI_PASSWORD,
                "--token",
                &token,
                "--json",
            ])
        })
        .collect();
    let mut dev_ids = BTreeSet::new();
    for (host, child) in hosts.iter().zip(running) {
        let done = Output::wait(child).json();
        let dev_id = done["dev_id"].as_str().expect("dev_id").to_owned();
        assert_eq!(host.status().expect("status")["dev_id"], dev_id.as_str());
        dev_ids.insert(dev_id);
    }
    assert_eq!(dev_ids.len(), DEVICES, "20 distinct devices");

    let status = ann.json(&["token", "status", &token]);
    assert_eq!(status["failures"], serde_json::json!([]), "{status}");
    assert_eq!(status["devices"].as_array().map(Vec::len), Some(DEVICES));
    let online = eventually(
        "all 20 online in the cloud",
        || {
            let devices = ann.json(&["devices"]);
            let online: BTreeSet<String> = devices
                .as_array()?
                .iter()
                .filter(|d| d["online"] == true)
                .filter_map(|d| d["dev_id"].as_str().map(str::to_owned))
                .collect();
            (online.len() == DEVICES).then_some(online)
        },
        || ann.json(&["devices"]).to_string(),
    );
    assert_eq!(online, dev_ids);
    assert_eq!(
        cloud.metric("tether_activations_total{result=\"ok\"}"),
        DEVICES as u64
    );
}

//! A device handed to another account with `tether transfer`, as two owners do it: the
//! real component stays online on its binding and session, and takes the new owner's
//! commands; the old owner and a third account cannot reach it.

use serde_json::json;
use tether_e2e::{Cloud, DeviceHost, User, WIFI_PASSWORD, eventually};

#[test]
fn an_owner_hands_an_online_device_to_another_account_which_accepts_it() {
    let cloud = Cloud::start();
    let license = cloud.licenses(1).remove(0);
    let host = DeviceHost::start(&cloud, &license);
    let ann = User::new(&cloud, "ann");
    let bob = User::new(&cloud, "bob");
    let carol = User::new(&cloud, "carol");
    let dev_id = ann.provision(&host, WIFI_PASSWORD, &["--json"]).json()["dev_id"]
        .as_str()
        .expect("dev_id")
        .to_owned();
    let pid = host.pid();

    let offered = ann
        .tether(&["transfer", "offer", &dev_id, "--to", "bob"])
        .success();
    assert!(
        offered
            .stdout
            .starts_with(&format!("offered {dev_id} to bob")),
        "{}",
        offered.stdout
    );
    let listed = bob.json(&["transfer", "list"]);
    assert_eq!(listed[0]["from"], "ann", "{listed}");
    let stolen = carol.tether(&["transfer", "accept", &dev_id]);
    assert_eq!(stolen.code, 5, "not carol's offer: {}", stolen.stderr);
    let unknown = ann.tether(&["transfer", "offer", &dev_id, "--to", "nobody"]);
    assert_eq!(unknown.code, 5, "{}", unknown.stderr);

    let accepted = bob.tether(&["transfer", "accept", &dev_id]).success();
    assert_eq!(accepted.stdout.trim(), format!("{dev_id} is yours now"));
    let gone = ann.tether(&["device", &dev_id]);
    assert_eq!(gone.code, 5, "no longer ann's: {}", gone.stderr);
    // Nothing changed for the device: the same process, online, and bob's command
    // comes back as its report.
    assert_eq!(host.pid(), pid);
    assert_eq!(host.status().expect("status")["state"], "online");
    bob.tether(&["send", &dev_id, r#"{"1":true}"#]).success();
    eventually(
        "the device's report to its new owner",
        || (bob.json(&["device", &dev_id])["last_report"] == json!({"1": true})).then_some(()),
        || format!("{}\n{}", bob.json(&["device", &dev_id]), host.logs()),
    );
    assert_eq!(bob.json(&["devices"])[0]["online"], true);
    assert_eq!(ann.json(&["devices"]), json!([]));
}

//! Licenses as an operator handles them with `tether license`: listed with their state,
//! exported as CSV, and revoked, which unbinds the real device at once (its component
//! hears it over MQTT and forgets its binding) and keeps it from pairing again.

use tether_e2e::{Cloud, DeviceHost, User, WIFI_PASSWORD, eventually};

#[test]
fn an_operator_lists_exports_and_revokes_and_the_device_is_unbound_at_once() {
    let cloud = Cloud::start();
    let license = cloud.licenses(1).remove(0);
    let host = DeviceHost::start(&cloud, &license);
    let ann = User::new(&cloud, "ann");
    let root = User::admin(&cloud, "root");
    let dev_id = ann.provision(&host, WIFI_PASSWORD, &["--json"]).json()["dev_id"]
        .as_str()
        .expect("dev_id")
        .to_owned();

    let list = root.json(&["license", "list"]);
    assert_eq!(list[0]["uuid"], license.uuid.as_str(), "{list}");
    assert_eq!(list[0]["state"], "active");
    assert_eq!(list[0]["dev_id"], dev_id.as_str());
    assert_eq!(list[0]["owner"], "ann");
    let csv = root.tether(&["license", "list", "--csv"]).success().stdout;
    assert!(csv.starts_with("uuid,product_key,state,dev_id,owner,created_at,revoked_at"));
    assert!(csv.contains(&format!("{},", license.uuid)) && csv.contains(",active,"));
    assert!(!csv.contains(&license.authkey), "no authkey in the export");
    let table = root
        .tether(&["license", "list", "--state", "active"])
        .success()
        .stdout;
    assert!(table.starts_with("1 license(s)"), "{table}");
    let refused = ann.tether(&["license", "list"]);
    assert_eq!(refused.code, 4, "not an admin: {}", refused.stderr);
    let bad = root.tether(&["license", "list", "--state", "lost"]);
    assert_eq!(bad.code, 10, "{}", bad.stderr);

    let out = root.tether(&["license", "revoke", &license.uuid]).success();
    assert!(out.stdout.contains("revoked"), "{}", out.stdout);
    eventually(
        "the device forgetting its binding",
        || {
            let status = host.status()?;
            (status["state"] == "awaiting-credentials" && status["dev_id"].is_null()).then_some(())
        },
        || format!("{:?}\n{}", host.status(), host.logs()),
    );
    assert_eq!(root.json(&["license", "list"])[0]["state"], "revoked");
    // Pairing it again is refused by the cloud.
    let again = ann.provision(&host, WIFI_PASSWORD, &[]);
    assert_eq!(again.code, 8, "{}{}", again.stdout, again.stderr);
    let missing = root.tether(&["license", "revoke", "nosuchlicense0000000"]);
    assert_eq!(missing.code, 5, "{}", missing.stderr);
}

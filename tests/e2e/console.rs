//! The web console in a real browser (headless Chromium through chromedriver), against
//! the real service, device host and CLI: a user signs in, makes a pairing token and sees
//! its QR code, pairs a simulated device with `tether provision` and watches it arrive
//! and come online without reloading, sends it a command and sees its report, unbinds
//! it; an admin issues licences and rolls out a module and watches the outcome; another
//! user reaches none of the first user's objects, and a form without its CSRF token is
//! refused. The test's screenshots are the ones in `docs/console/`.

use std::path::{Path, PathBuf};

use serde_json::json;
use tether_e2e::browser::{Browser, Driver};
use tether_e2e::deploy::require;
use tether_e2e::{Cloud, DeviceHost, PRODUCT_KEY, User, WIFI_PASSWORD, bin};

/// Where the screenshots go: `docs/console/` with `TETHER_SCREENSHOTS=docs`, so that a
/// plain test run leaves the work tree alone; `target/console-screenshots/` otherwise.
fn shots() -> PathBuf {
    let root = tether_e2e::deploy::root();
    if std::env::var("TETHER_SCREENSHOTS").is_ok_and(|v| v == "docs") {
        root.join("docs/console")
    } else {
        root.join("target/console-screenshots")
    }
}

fn sign_in(browser: &Browser, cloud: &Cloud, user: &User) {
    browser.open(&format!("{}/login", cloud.url));
    browser.fill("#username", &user.name);
    browser.fill("#password", user.password());
    browser.click("button[type=submit]");
    browser.wait("the devices page after signing in", || {
        browser.url().ends_with("/devices").then_some(())
    });
}

/// The error code of the error page the browser shows now.
fn error_code(browser: &Browser) -> String {
    browser
        .wait("an error page", || {
            browser.find("p.error[data-code]")?;
            Some(browser.run(
                "return document.querySelector('p.error[data-code]').dataset.code;",
                json!([]),
            ))
        })
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Sets a mark in the page that a reload would clear.
fn mark(browser: &Browser) {
    browser.run("window.tetherMark = 'kept'; return true;", json!([]));
}

fn assert_not_reloaded(browser: &Browser) {
    assert_eq!(
        browser.run("return window.tetherMark || 'reloaded';", json!([])),
        json!("kept"),
        "the page reloaded"
    );
}

fn s(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

#[test]
fn the_console_pairs_controls_and_updates_a_device_in_a_real_browser() {
    let how = "apt-get install chromium chromium-driver";
    if require("chromedriver", how).is_none() || require("chromium", how).is_none() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let keys = dir.path().join("keys");
    let made = std::process::Command::new(bin("tether"))
        .args(["module", "keygen", "--out", s(&keys), "--json"])
        .output()
        .expect("tether module keygen runs");
    let made: serde_json::Value = serde_json::from_slice(&made.stdout).expect("JSON");
    let public = made["public"].as_str().expect("a public key").to_owned();
    let cloud = Cloud::start_with(&["--module-key", &public]);
    let license = cloud.licenses(1).remove(0);
    let mut config = DeviceHost::config(&cloud, &license, dir.path());
    config.update.trusted_keys = vec![public];
    config.update.probation_secs = 2;
    let mut host = DeviceHost::start_with(&config);
    host.setup_code = Some(license.setup_code.clone());
    let ann = User::new(&cloud, "ann");
    let bob = User::new(&cloud, "bob");
    let ops = User::admin(&cloud, "ops");
    let shots = shots();
    let driver = Driver::start();

    // Ann signs in with the keyboard alone (the field has the focus, Tab moves to the
    // password, Enter sends the form), then makes a token: its text and QR code are on
    // the page.
    let a = driver.browser();
    a.open(&format!("{}/login", cloud.url));
    assert_eq!(a.focused(), "username");
    a.type_keys(&format!("{}\u{E004}", ann.name));
    assert_eq!(a.focused(), "password");
    a.type_keys(&format!("{}\u{E007}", ann.password()));
    a.wait("the devices page after signing in", || {
        a.url().ends_with("/devices").then_some(())
    });
    a.screenshot(&shots.join("devices-empty.png"));
    a.open(&format!("{}/tokens", cloud.url));
    a.fill("#ttl_minutes", "15");
    a.fill("#max_devices", "1");
    a.click("form[action='/tokens'] button[type=submit]");
    let token = a.text("#token-text");
    assert_eq!(token.len(), 14, "a whole token: {token:?}");
    let qr = a.run(
        "const svg = document.querySelector('#token-qr svg'); \
         return svg ? svg.getBoundingClientRect().width : 0;",
        json!([]),
    );
    assert!(
        qr.as_f64().unwrap_or(0.0) > 100.0,
        "the QR code is drawn: {qr}"
    );
    a.screenshot(&shots.join("token.png"));
    let public_id = token[..10].to_owned();

    // The CLI pairs the device with that token; the token page shows it arrive, live.
    mark(&a);
    let paired = ann
        .provision(&host, WIFI_PASSWORD, &["--token", &token, "--json"])
        .json();
    let dev_id = paired["dev_id"].as_str().expect("dev_id").to_owned();
    a.element(&format!("#token-live tr[data-dev-id='{dev_id}']"));
    assert_not_reloaded(&a);
    assert_eq!(a.text("#token-live [data-state]"), "complete");

    // The devices page shows it online; after a restart of the host it goes offline and
    // online again on the same page.
    a.open(&format!("{}/devices", cloud.url));
    let presence = format!("#devices-live tr[data-dev-id='{dev_id}'] [data-presence]");
    a.wait("the device online in the list", || {
        (a.text(&presence) == "online").then_some(())
    });
    mark(&a);
    host.kill();
    a.wait("the device offline in the list", || {
        (a.text(&presence) == "offline").then_some(())
    });
    host.spawn();
    a.wait("the device online again", || {
        (a.text(&presence) == "online").then_some(())
    });
    assert_not_reloaded(&a);
    a.screenshot(&shots.join("devices.png"));

    // A command from the device's page, and the device's report on it.
    a.click(&format!("a[href='/devices/{dev_id}']"));
    a.fill("#data", r#"{"1": true}"#);
    a.click(&format!("form[action='/devices/{dev_id}/command'] button"));
    a.element("p.notice");
    a.wait("the report", || {
        (a.text("#last-report") == r#"{"1":true}"#).then_some(())
    });
    a.screenshot(&shots.join("device.png"));
    a.resize(390, 844);
    a.screenshot(&shots.join("device-phone.png"));
    a.resize(1280, 900);

    // A form posted without its CSRF token is refused, and nothing is sent.
    a.run(
        "const form = document.querySelector('form[action$=\"/command\"]'); \
         form.querySelector('input[name=_csrf]').remove(); \
         form.querySelector('#data').value = '{\"1\": false}'; \
         form.submit(); return true;",
        json!([]),
    );
    assert_eq!(error_code(&a), "csrf");
    assert_eq!(
        ann.json(&["device", &dev_id])["last_report"],
        json!({"1": true})
    );

    // Bob signs in: none of ann's objects is listed or reachable, by page, by live
    // stream, or by a form he builds with his own valid CSRF token.
    let b = driver.browser();
    sign_in(&b, &cloud, &bob);
    assert!(!b.source().contains(&dev_id), "ann's device in bob's list");
    for path in [
        format!("/devices/{dev_id}"),
        format!("/tokens/{public_id}"),
        format!("/tokens/{token}"),
    ] {
        b.open(&format!("{}{path}", cloud.url));
        assert_eq!(error_code(&b), "not_found", "{path}");
        assert!(
            !b.source().contains(&license.uuid),
            "{path} shows ann's device"
        );
    }
    b.open(&format!("{}/tokens", cloud.url));
    let live = b.run(
        "return fetch(arguments[0]).then((r) => r.status);",
        json!([format!("/devices/{dev_id}/live")]),
    );
    assert_eq!(live, json!(404), "bob follows ann's device live");
    for action in [
        format!("/devices/{dev_id}/unbind"),
        format!("/tokens/{public_id}/revoke"),
    ] {
        b.open(&format!("{}/tokens", cloud.url));
        b.run(
            "const csrf = document.querySelector('input[name=_csrf]').value; \
             const form = document.createElement('form'); \
             form.method = 'post'; form.action = arguments[0]; \
             const field = document.createElement('input'); \
             field.type = 'hidden'; field.name = '_csrf'; field.value = csrf; \
             form.appendChild(field); document.body.appendChild(form); form.submit(); return true;",
            json!([action]),
        );
        assert_eq!(error_code(&b), "not_found", "{action}");
    }
    b.open(&format!("{}/admin/licenses", cloud.url));
    assert_eq!(error_code(&b), "forbidden");
    assert_eq!(ann.json(&["devices"])[0]["dev_id"], json!(dev_id));

    // The admin issues licences (secrets shown once) and downloads the list as CSV.
    let o = driver.browser();
    sign_in(&o, &cloud, &ops);
    o.open(&format!("{}/admin/licenses", cloud.url));
    o.fill("#product_key", PRODUCT_KEY);
    o.fill("#count", "2");
    o.click("form[action='/admin/licenses'] button[type=submit]");
    let issued = o.text("h1");
    assert_eq!(issued, "Licences issued");
    let sheet = o.run("return document.querySelector('#issued').value;", json!([]));
    let sheet = sheet.as_str().unwrap_or_default().to_owned();
    assert_eq!(sheet.lines().count(), 3, "{sheet}");
    o.screenshot(&shots.join("licenses-issued.png"));
    o.open(&format!("{}/admin/licenses", cloud.url));
    let csv = o.run(
        "return fetch(document.querySelector('#csv').href).then((r) => r.text());",
        json!([]),
    );
    let csv = csv.as_str().unwrap_or_default();
    assert!(csv.starts_with("uuid,"), "{csv}");
    assert_eq!(csv.lines().count(), 4, "three licences: {csv}");
    for line in sheet.lines().skip(1) {
        let authkey = line.split(',').nth(1).expect("an authkey");
        assert!(!csv.contains(authkey), "the CSV holds an authkey");
        assert!(
            !o.source().contains(authkey),
            "the list shows an authkey again"
        );
    }
    o.screenshot(&shots.join("licenses.png"));

    // The admin uploads a signed bundle of the next component and rolls it out to the
    // device; the outcome arrives on the module's page without reloading.
    let next = dir.path().join("next.wasm");
    std::fs::write(&next, tether_host::component::NEXT_COMPONENT).expect("written");
    let bundle = dir.path().join("next.bundle");
    ops.json(&[
        "module",
        "sign",
        "--key",
        s(&keys.join("module.key")),
        "--version",
        "0.2.0",
        s(&next),
        "-o",
        s(&bundle),
    ]);
    o.open(&format!("{}/admin/modules", cloud.url));
    o.attach("#bundle", &bundle);
    o.click("form[action='/admin/modules'] button[type=submit]");
    o.element("p.notice");
    o.fill("#devices", &dev_id);
    o.click("form[action$='/rollout'] button[type=submit]");
    o.element("p.notice");
    mark(&o);
    let outcome = format!("#rollout-live tr[data-dev-id='{dev_id}'] [data-state]");
    o.wait("the rollout applied", || {
        (o.find(&outcome).is_some() && o.text(&outcome) == "applied").then_some(())
    });
    assert_not_reloaded(&o);
    o.screenshot(&shots.join("module.png"));
    assert_eq!(ann.json(&["device", &dev_id])["module_version"], "0.2.0");

    // Ann unbinds the device from its page (confirming the dialog); it leaves her list.
    a.open(&format!("{}/devices/{dev_id}", cloud.url));
    a.click(&format!("form[action='/devices/{dev_id}/unbind'] button"));
    a.accept_dialog();
    a.wait("the unbound notice", || {
        a.url().contains("notice=unbound").then_some(())
    });
    assert!(a.text("#devices-live").contains("No devices yet"));
    assert_eq!(ann.json(&["devices"]), json!([]));

    // Signing out ends the session: the pages ask to sign in again.
    a.click("form.signout button");
    a.wait("the sign-in page", || {
        a.url().ends_with("/login").then_some(())
    });
    a.open(&format!("{}/devices", cloud.url));
    assert!(a.url().ends_with("/login"), "{}", a.url());
    b.open(&format!("{}/nowhere", cloud.url));
    assert_eq!(error_code(&b), "not_found");

    // No secret reached the service's log.
    let logs = cloud.logs();
    for secret in [
        token.as_str(),
        ann.password(),
        bob.password(),
        WIFI_PASSWORD,
    ] {
        assert!(!logs.contains(secret), "a secret in the service's log");
    }
}

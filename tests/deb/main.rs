//! The Debian packages: `deploy/deb.sh` builds tether-host's package for amd64, arm64 and
//! armhf with cargo-deb. Each package carries a host that runs the component it ships
//! (checked under qemu for the ARM ones), and the amd64 one is installed with dpkg in a
//! Debian container running systemd (`deploy/debian-image.sh`), where its unit starts
//! the host sandboxed, reaches a real wpa_supplicant's control socket, pairs against the
//! real service, comes back after a crash without activating again, and is purged. Its
//! own test binary, so it never competes with the other end-to-end tests for the two
//! cores. Without Docker, debootstrap, cargo-deb or the cross tools it skips, unless
//! CI=true.

mod container;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;
use tether_e2e::{Cloud, DeviceHost, SSID, User, WIFI_PASSWORD, bin, deploy, eventually};
use tether_host::config::{HostConfig, WifiBackendKind};

use container::Container;

const OK_ACTIVATIONS: &str = "tether_activations_total{result=\"ok\"}";
/// Where the unit reads its config, and where the package puts the component.
const CONFIG: &str = "/etc/tether/host.toml";
const COMPONENT: &str = "/usr/lib/tether-host/pairing.cwasm";
/// The highest `systemd-analyze security` exposure the unit may have (0 best, 10 worst).
const MAX_EXPOSURE: f64 = 2.0;

/// The three packages by target, built once; `None` when a tool is missing outside CI.
fn packages() -> Option<&'static Vec<(String, PathBuf)>> {
    static BUILT: OnceLock<Option<Vec<(String, PathBuf)>>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            deploy::require("docker", "Docker Engine")?;
            deploy::require("dpkg-deb", "Debian's dpkg")?;
            let precompiler = bin("tether-host");
            deploy::script("deb.sh", &[("TETHER_PRECOMPILER", &precompiler)]).map(deploy::built)
        })
        .as_ref()
}

/// The package built for `target`.
fn package(target: &str) -> Option<&'static Path> {
    let (_, path) = packages()?
        .iter()
        .find(|(t, _)| t == target)
        .expect("deploy/deb.sh built the target");
    Some(path)
}

/// `dpkg-deb ARGS DEB [DIR]`'s output.
fn dpkg_deb(args: &[&str], deb: &Path, dir: Option<&Path>) -> String {
    let out = Command::new("dpkg-deb")
        .args(args)
        .arg(deb)
        .args(dir)
        .output()
        .expect("dpkg-deb runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The control field `name` of `deb`.
fn field(deb: &Path, name: &str) -> String {
    dpkg_deb(&["--field"], deb, None)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_owned))
        .unwrap_or_default()
}

/// Checks one package's metadata and contents, then runs the host it ships against the
/// component it ships (`check-component`: loads, checks the world, instantiates), under
/// `runner` for another architecture.
fn check_package(target: &str, arch: &str, depends: &str, runner: &[&str]) {
    let Some(deb) = package(target) else {
        return;
    };
    assert_eq!(field(deb, "Package"), "tether-host");
    assert_eq!(field(deb, "Architecture"), arch);
    assert_eq!(field(deb, "Depends"), depends);
    let contents = dpkg_deb(&["--contents"], deb, None);
    for path in [
        "./usr/bin/tether-host",
        COMPONENT,
        "/tether-host.service",
        "./usr/share/doc/tether-host/examples/host.toml",
        "./usr/share/doc/tether-host/README.Debian",
    ] {
        assert!(
            contents.contains(path),
            "{path} missing from {deb:?}:\n{contents}"
        );
    }
    // The maintainer scripts: ours (the netdev group, purge) with systemd's enable/start.
    let info = dpkg_deb(&["--info"], deb, None);
    for script in ["postinst", "prerm", "postrm"] {
        assert!(info.contains(script), "no {script} in {deb:?}:\n{info}");
    }
    let unpacked = tempfile::tempdir().expect("temp dir");
    dpkg_deb(&["-x"], deb, Some(unpacked.path()));
    let host = unpacked.path().join("usr/bin/tether-host");
    let component = unpacked.path().join(COMPONENT.trim_start_matches('/'));
    let mut command = match runner.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(&host);
            c
        }
        None => Command::new(&host),
    };
    let out = command
        .args(["check-component", "--deadline-ms", "30000"])
        .arg(&component)
        .output()
        .expect("the packaged host runs");
    assert!(
        out.status.success(),
        "{target}: the packaged host cannot run the packaged component:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains(": ok"), "{report}");
    eprintln!(
        "{target}: package {} bytes; packaged component {}",
        std::fs::metadata(deb).expect("the package").len(),
        report
            .lines()
            .find(|l| l.starts_with("instantiate"))
            .unwrap_or("")
    );
}

#[test]
fn each_package_ships_a_host_that_runs_its_component() {
    check_package("x86_64-unknown-linux-musl", "amd64", "", &[]);
    if deploy::require("qemu-aarch64-static", "apt-get install qemu-user-static").is_some() {
        check_package(
            "aarch64-unknown-linux-musl",
            "arm64",
            "",
            &["qemu-aarch64-static"],
        );
        check_package(
            "armv7-unknown-linux-gnueabihf",
            "armhf",
            "libc6 (>= 2.34)",
            &["qemu-arm-static", "-L", "/usr/arm-linux-gnueabihf"],
        );
    }
}

/// The device's config as a factory writes it for the packaged host.
fn factory_config(cloud: &Cloud, license: &tether_e2e::License) -> HostConfig {
    let mut config = DeviceHost::config(cloud, license, Path::new("/unused"));
    config.data_dir = "/var/lib/tether".into();
    config.ctl.socket = "/run/tether/ctl.sock".into();
    config.component = Some(COMPONENT.into());
    config.cloud_ca = Some("/etc/tether/cloud-ca.pem".into());
    config
}

#[test]
fn the_package_installs_and_its_unit_runs_the_host_sandboxed_and_pairs() {
    let Some(package) = package("x86_64-unknown-linux-musl") else {
        return;
    };
    let Some(printed) = deploy::script("debian-image.sh", &[]) else {
        return;
    };
    let image = printed.concat().concat();
    let cloud = Cloud::start();
    let license = cloud.licenses(1).remove(0);
    let ann = User::new(&cloud, "ann");
    let debian = Container::boot(&image);

    // Installed, the unit is enabled but waits for the factory's config.
    debian.copy_in(package, "/tmp/tether-host.deb");
    debian.sh("dpkg -i /tmp/tether-host.deb");
    assert_eq!(
        debian.sh("systemctl is-enabled tether-host").trim(),
        "enabled"
    );
    assert_eq!(debian.unit("ActiveState"), "inactive");
    assert_eq!(debian.unit("ConditionResult"), "no");

    // A broken config stops the unit with the reason, without a restart loop.
    debian.write_config_text("data_dir = \"/var/lib/tether\"\n[identity\n");
    debian.sh("systemctl start tether-host");
    eventually(
        "the unit failed on the broken config",
        || (debian.unit("ActiveState") == "failed").then_some(()),
        || debian.journal(),
    );
    assert_eq!(debian.unit("NRestarts"), "0");
    assert_eq!(debian.unit("ExecMainStatus"), "78");
    assert!(
        debian.journal().contains("invalid config file"),
        "{}",
        debian.journal()
    );
    debian.sh("systemctl reset-failed tether-host");

    // The factory's config: the real radio first, through a wpa_supplicant (wired driver,
    // in a network namespace of its own: there is no radio here) whose control socket is
    // root:netdev, as on a board.
    let ca = cloud.ca().expect("the cloud's CA");
    debian.copy_in(&ca, "/etc/tether/cloud-ca.pem");
    debian.sh(
        "printf 'ctrl_interface=DIR=/run/wpa_supplicant GROUP=netdev\\n' \
             > /etc/wpa_supplicant/wired.conf && \
         unshare -n sh -c 'ip link set lo up; wpa_supplicant -B -D wired -i lo \
             -c /etc/wpa_supplicant/wired.conf' >/dev/null",
    );
    let mut config = factory_config(&cloud, &license);
    config.wifi.backend = WifiBackendKind::WpaSupplicant;
    config.wifi.wpa_supplicant.ctrl_socket = "/run/wpa_supplicant/lo".into();
    debian.write_config(&config);
    debian.sh("systemctl start tether-host");
    debian.wait_for_log("attached to wpa_supplicant");
    assert_eq!(debian.unit("ActiveState"), "active");
    assert_eq!(debian.unit("NRestarts"), "0");
    // Unprivileged, in the unit's sandbox, and reachable over its control socket.
    let pid = debian.unit("MainPID");
    let user = debian.sh(&format!("stat -c %U /proc/{pid}"));
    assert_eq!(user.trim(), "tether", "the host runs as the package's user");
    assert_eq!(
        debian.sh(&format!("stat -c %a:%U:%G {CONFIG}")).trim(),
        "640:root:tether"
    );
    let exposure = debian.sh("systemd-analyze security tether-host --no-pager | tail -n 1");
    eprintln!("{}", exposure.trim());
    let score: f64 = exposure
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .expect("an exposure score");
    assert!(score <= MAX_EXPOSURE, "{exposure}");
    assert!(debian.status()["state"].is_string(), "{}", debian.journal());

    // Then the simulated radio (the one part simulated here): it pairs.
    debian.sh("systemctl stop tether-host");
    debian.write_config(&factory_config(&cloud, &license));
    debian.sh("systemctl start tether-host");
    let channel = debian.channel();
    let paired = ann
        .provision_at(&channel, &license.setup_code, WIFI_PASSWORD, &["--json"])
        .json();
    let dev_id = paired["dev_id"].as_str().expect("a device id").to_owned();
    assert_eq!(debian.status()["dev_id"], dev_id.as_str());
    assert_eq!(debian.status()["ssid"], SSID);
    round_trip(&ann, &dev_id, 1);

    // A crash: systemd restarts it, and it comes back online without activating again.
    debian.sh("systemctl kill --signal=SIGKILL tether-host");
    eventually(
        "the unit restarted",
        || {
            (debian.unit("NRestarts") == "1" && debian.unit("ActiveState") == "active")
                .then_some(())
        },
        || debian.journal(),
    );
    eventually(
        "online after the restart",
        || (debian.status()["state"] == "online").then_some(()),
        || debian.journal(),
    );
    assert_eq!(debian.status()["dev_id"], dev_id.as_str());
    assert_eq!(cloud.metric(OK_ACTIVATIONS), 1, "activated once");
    round_trip(&ann, &dev_id, 2);

    // Its log never holds a secret.
    let journal = debian.journal();
    for secret in [license.authkey.as_str(), WIFI_PASSWORD, &license.setup_code] {
        assert!(
            !journal.contains(secret),
            "a secret in the journal:\n{journal}"
        );
    }

    // Purged: stopped, the unit gone, the device's state deleted.
    debian.sh("dpkg --purge tether-host");
    assert_eq!(
        debian.sh("systemctl is-active tether-host || true").trim(),
        "inactive"
    );
    debian.sh("test ! -e /var/lib/private/tether && test ! -e /var/lib/tether");
    debian.sh("test ! -e /usr/bin/tether-host");
}

/// A command and its report, numbered `n` so each round trip is new.
fn round_trip(user: &User, dev_id: &str, n: u32) {
    let points = format!(r#"{{"2":{n}}}"#);
    user.tether(&["send", dev_id, &points]).success();
    let want: Value = serde_json::from_str(&points).expect("JSON");
    eventually(
        "the report",
        || (user.json(&["device", dev_id])["last_report"] == want).then_some(()),
        || user.json(&["device", dev_id]).to_string(),
    );
}

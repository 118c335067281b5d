//! `tether-host run` as a separate process, as on a board: pairing with `tether-host ctl`
//! and with the C API, SIGKILL at several phases and restart, and logs free of secrets.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use tether_e2e::DeviceHost;
use tether_host::config::HostConfig;

use crate::device::{Cloud, host_config};

/// A device host process (the end-to-end harness's [`DeviceHost`]) driven from these
/// async tests: its waits run with `block_in_place`, so the in-process cloud keeps
/// serving meanwhile.
pub(crate) struct Host {
    config: HostConfig,
    socket: PathBuf,
    device: Option<DeviceHost>,
}

impl Host {
    pub(crate) fn new(cloud: &Cloud, dir: &Path) -> Self {
        Self::configured(&host_config(cloud, 0, dir), dir)
    }

    /// A host that runs with `config` (its data dir is `dir`).
    pub(crate) fn configured(config: &HostConfig, _dir: &Path) -> Self {
        Self {
            config: config.clone(),
            socket: config.ctl.socket.clone(),
            device: None,
        }
    }

    fn device(&self) -> &DeviceHost {
        self.device.as_ref().expect("the host was started")
    }

    /// Starts `tether-host run` (again) and waits until it serves.
    pub(crate) async fn start(&mut self) {
        tokio::task::block_in_place(|| match &mut self.device {
            Some(device) => device.spawn(),
            None => self.device = Some(DeviceHost::start_with(&self.config)),
        });
    }

    /// SIGKILL, as a power cut.
    pub(crate) fn kill(&mut self) {
        if let Some(device) = &mut self.device {
            device.kill();
        }
    }

    pub(crate) async fn status_until(&self, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        tokio::task::block_in_place(|| self.device().wait_for(what, check))
    }

    pub(crate) fn ctl(&self, args: &[&str]) -> (bool, String, String) {
        let out = self.device().ctl(args);
        (out.code == 0, out.stdout, out.stderr)
    }

    /// `ctl user-cfg`, which must be accepted.
    fn user_cfg(&self, ssid: &str, passwd: &str, token: &str) {
        let (ok, out, err) = self.ctl(&[
            "user-cfg", "--ssid", ssid, "--passwd", passwd, "--token", token,
        ]);
        assert!(ok, "{out}{err}");
    }

    /// Pairs the device with a new token through `ctl user-cfg` and waits until it is
    /// online; returns the token and the online status.
    pub(crate) async fn pair(&self, cloud: &Cloud) -> (String, Value) {
        let token = cloud.token().await;
        let (ok, out, err) = self.ctl(&[
            "user-cfg",
            "--ssid",
            "home",
            "--passwd",
            "correct horse",
            "--token",
            &token,
        ]);
        assert!(ok, "{out}{err}");
        assert_eq!(out.trim(), "ok");
        let online = self
            .status_until("online", |s| s["state"] == "online")
            .await;
        (token, online)
    }

    /// SIGKILL, start again, and wait until the device awaits credentials.
    async fn restart_until_settled(&mut self) -> Value {
        self.kill();
        self.start().await;
        self.status_until("settled", |s| s["state"] == "awaiting-credentials")
            .await
    }

    fn logs(&self) -> String {
        self.device().logs()
    }
}

async fn activations(cloud: &Cloud, uuid: &str) -> i64 {
    let db = tether_service::db::open(cloud._dir.path(), None)
        .await
        .expect("db");
    let n = sqlx::query_scalar("SELECT COUNT(*) FROM activations WHERE uuid = $1")
        .bind(uuid)
        .fetch_one(&db)
        .await
        .expect("count");
    db.close().await;
    n
}

/// Builds a small C program around the C API.
fn c_program(dir: &Path) -> PathBuf {
    let c = Path::new(env!("CARGO_MANIFEST_DIR")).join("c");
    let main = dir.join("pair.c");
    std::fs::write(
        &main,
        "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n#include \"tether_pairing.h\"\nint main(int argc, char **argv) {\n  OPERATE_RET r;\n  if (argc == 3 && strcmp(argv[1], \"window\") == 0) r = tether_pairing_window_open((unsigned)atoi(argv[2]));\n  else if (argc == 4) r = tuya_iot_gw_wf_user_cfg(argv[1], argv[2], argv[3]);\n  else return 2;\n  printf(\"%d\\n\", r);\n  return 0;\n}\n",
    )
    .expect("written");
    let exe = dir.join("pair");
    let status = Command::new("cc")
        .arg("-Wall")
        .arg("-Werror")
        .arg("-I")
        .arg(&c)
        .arg(&main)
        .arg(c.join("tether_pairing.c"))
        .arg("-o")
        .arg(&exe)
        .status()
        .expect("cc runs");
    assert!(status.success(), "the C API compiles cleanly");
    exe
}

fn run_c(exe: &Path, socket: &Path, args: &[&str]) -> i32 {
    let out = Command::new(exe)
        .args(args)
        .env("TETHER_CTL_SOCKET", socket)
        .output()
        .expect("runs");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a number")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_activated_device_comes_back_online_without_reactivation_and_the_c_api_works() {
    let cloud = Cloud::start(1).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut host = Host::new(&cloud, dir.path());
    host.start().await;

    let (token, online) = host.pair(&cloud).await;
    let dev_id = online["dev_id"].as_str().expect("dev-id").to_owned();
    let uuid = cloud.licenses[0].uuid.clone();
    assert_eq!(activations(&cloud, &uuid).await, 1);

    host.kill();
    host.start().await;
    let back = host
        .status_until("back online", |s| s["state"] == "online")
        .await;
    assert_eq!(back["dev_id"], dev_id.as_str());
    assert_eq!(
        activations(&cloud, &uuid).await,
        1,
        "no new activation after the restart"
    );

    // The C API, compiled with cc, against the running host.
    let exe = c_program(dir.path());
    assert_eq!(
        run_c(
            &exe,
            &host.socket,
            &["home", "correct horse", "not-a-token"]
        ),
        -2001
    );
    assert_eq!(
        run_c(&exe, &host.socket, &["home", &"p".repeat(70), &token]),
        -2
    );
    let fresh = cloud.token().await;
    assert_eq!(
        run_c(&exe, &host.socket, &["home", "correct horse", &fresh]),
        0
    );
    host.status_until("online again", |s| {
        s["state"] == "online" && s["dev_id"] == dev_id.as_str()
    })
    .await;
    assert_eq!(
        run_c(
            &exe,
            &dir.path().join("no.sock"),
            &["home", "correct horse", &fresh]
        ),
        -1,
        "no host: OPRT_COM_ERROR"
    );

    // `ctl status` and a refused `ctl user-cfg`.
    let (ok, out, _) = host.ctl(&["status"]);
    assert!(ok && out.contains("state       online"), "{out}");
    assert!(out.contains("pairing     window closed"), "{out}");

    // The pairing window, from C (as a button handler would) and from `ctl`.
    for bad in ["0", "3601"] {
        assert_eq!(run_c(&exe, &host.socket, &["window", bad]), -2, "{bad} s");
    }
    assert_eq!(run_c(&exe, &host.socket, &["window", "60"]), 0);
    let (ok, out, _) = host.ctl(&["status"]);
    assert!(
        ok && out.contains("pairing     window open, 60 s left"),
        "{out}"
    );
    let (ok, _, err) = host.ctl(&["pairing", "open", "--secs", "0"]);
    assert!(!ok && err.contains("invalid_parm"), "{err}");
    let (ok, _, err) = host.ctl(&["pairing", "close"]);
    assert!(ok, "{err}");
    let (_, out, _) = host.ctl(&["status"]);
    assert!(out.contains("pairing     window closed"), "{out}");
    let (ok, _, err) = host.ctl(&[
        "user-cfg",
        "--ssid",
        "home",
        "--passwd",
        "correct horse",
        "--token",
        "bad",
    ]);
    assert!(!ok);
    assert!(err.contains("token_invalid (OPRT -2001)"), "{err}");

    host.kill();
    let logs = host.logs();
    assert!(logs.contains("device running"), "the log was captured");
    for secret in [
        "correct horse",
        cloud.licenses[0].authkey.expose(),
        // Whole tokens: a four-character secret alone may occur by chance in the log's ids.
        &token,
        &fresh,
    ] {
        assert!(
            !logs.contains(secret),
            "secret {secret:?} reached the logs:\n{logs}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_killed_mid_pairing_returns_to_awaiting_credentials_with_the_reason() {
    let mut cloud = Cloud::start(1).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut host = Host::new(&cloud, dir.path());
    host.start().await;
    let token = cloud.token().await;

    // Killed while joining a slow access point.
    let (ok, ..) = host.ctl(&[
        "user-cfg", "--ssid", "slow", "--passwd", "12345678", "--token", &token,
    ]);
    assert!(ok);
    host.status_until("connecting", |s| s["state"] == "connecting")
        .await;
    let status = host.restart_until_settled().await;
    assert_eq!(
        status["last_error"], "internal",
        "interrupted pairing: {status}"
    );

    // Killed while the cloud is down and the device retries its endpoint lookup.
    cloud.stop().await;
    host.user_cfg("home", "correct horse", &token);
    host.status_until("retrying", |s| s["last_error"] == "network_unreachable")
        .await;
    let status = host.restart_until_settled().await;
    assert_eq!(status["last_error"], "network_unreachable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_killed_while_activating_returns_to_awaiting_credentials_with_the_reason() {
    let cloud = Cloud::start(1).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut host = Host::new(&cloud, dir.path());
    host.start().await;
    let token = cloud.token().await;
    // Use up the device's activation rate limit, so the cloud answers 429 and the device
    // stays in the activating phase, retrying.
    let (uuid, authkey) = (
        cloud.licenses[0].uuid.clone(),
        cloud.licenses[0].authkey.expose().to_owned(),
    );
    let http = reqwest::Client::new();
    for _ in 0..40 {
        let request = json!({"uuid": uuid, "product_key": "p0123456789abcde", "token": "EUaaaaaaaaAAAA", "sw_ver": "1", "module_version": "1", "reset": false});
        tether_e2e::post_activation(&http, &cloud.base, (&uuid, &authkey), &request).await;
    }
    host.user_cfg("home", "correct horse", &token);
    host.status_until("rate limited while activating", |s| {
        s["state"] == "activating" && s["last_error"] == "busy"
    })
    .await;
    let status = host.restart_until_settled().await;
    assert_eq!(status["last_error"], "busy");
}

/// A config file that cannot be read or parsed is exit 78 (EX_CONFIG), which the systemd
/// unit does not restart on; the message names the file and the fault, and nothing of
/// the file's contents (it holds the authkey).
#[test]
fn a_bad_config_file_exits_78_with_the_reason_and_no_secret() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing.toml");
    let broken = dir.path().join("broken.toml");
    std::fs::write(
        &broken,
        "data_dir = \"/var/lib/tether\"\n[identity]\nauthkey = \"s3cret-authkey-value\"\n",
    )
    .expect("written");
    for (file, fault) in [
        (&missing, "failed to read the config file"),
        (&broken, "invalid config file"),
    ] {
        let out = Command::new(tether_e2e::bin("tether-host"))
            .arg("run")
            .arg("--config")
            .arg(file)
            .output()
            .expect("tether-host runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{stderr}");
        assert!(stderr.contains(fault), "{stderr}");
        assert!(stderr.contains(&file.display().to_string()), "{stderr}");
        assert!(!stderr.contains("s3cret-authkey-value"), "{stderr}");
    }
}

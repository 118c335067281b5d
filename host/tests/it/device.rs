//! The whole device against the real service on free ports: the real host runtime, the
//! real component, simulated Wi-Fi; credentials over the data channel and over the
//! control socket.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tether_cli::channel::{DeviceChannel, Security};
use tether_cli::failure::Failure;
use tether_host::RuntimeConfig;
use tether_host::config::HostConfig;
use tether_host::config::{IdentityConfig, SimAp, SimBehaviour};
use tether_host::ctl::CtlClient;
use tether_host::daemon::Device;
use tether_proto::ErrorCode;
use tether_proto::Secret;
use tether_proto::channel::ChannelRequest;
use tether_proto::ctl::CtlRequest;
use tether_proto::setup_code::SetupCode;
use tether_proto::status::DeviceStatus;
use tether_service::ServeConfig;
use tether_service::licenses::License;
use tether_service::tls::TlsSource;

use crate::support::wait;
use tether_service::local::{self, Account, LocalCloud};
use tether_service::users::Role;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(30);
/// The product of every test license.
const PRODUCT: &str = "p0123456789abcde";

/// The cloud with one user logged in.
pub(crate) struct Cloud {
    pub(crate) _dir: tempfile::TempDir,
    pub(crate) base: String,
    service: LocalCloud,
    access: String,
    pub(crate) licenses: Vec<License>,
    pub(crate) http: reqwest::Client,
}

impl Cloud {
    pub(crate) async fn start(devices: u32) -> Self {
        Self::start_with(devices, |_| {}).await
    }

    /// Like [`Cloud::start`], with the service's settings changed by `edit`.
    pub(crate) async fn start_with(devices: u32, edit: impl FnOnce(&mut ServeConfig)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let accounts = [
            Account {
                name: "ann",
                password: "ann-passw0rd",
                role: Role::User,
            },
            Account {
                name: "root",
                password: "r00t-passw0rd",
                role: Role::Admin,
            },
        ];
        let licenses = local::seed(dir.path(), None, &accounts, PRODUCT, devices as usize)
            .await
            .expect("seeded")
            .licenses;
        let mut config = ServeConfig::ephemeral(dir.path());
        edit(&mut config);
        let service = LocalCloud::start(config).await.expect("service starts");
        let base = service.api_url();
        let http = user_client(&service);
        let access = login(&http, &base, "ann", "ann-passw0rd").await;
        Self {
            _dir: dir,
            access,
            licenses,
            base,
            service,
            http,
        }
    }

    /// The access token of `ann`, a user without the admin role.
    pub(crate) fn user_access(&self) -> String {
        self.access.clone()
    }

    /// The local CA's file when the service serves TLS.
    pub(crate) fn local_ca(&self) -> Option<std::path::PathBuf> {
        self.service.local_ca()
    }

    /// Rebuilds the user's client to trust the service's local CA as it is now.
    pub(crate) fn trust_current_ca(&mut self) {
        self.http = user_client(&self.service);
    }

    /// The service's data dir.
    pub(crate) fn data_dir(&self) -> std::path::PathBuf {
        self.service.config().data_dir.clone()
    }

    /// The service's bound API and MQTT addresses.
    pub(crate) fn addrs(&self) -> (std::net::SocketAddr, std::net::SocketAddr) {
        (self.service.http_addr(), self.service.mqtt_addr())
    }

    /// An access token of the `root` admin.
    pub(crate) async fn admin(&self) -> String {
        login(&self.http, &self.base, "root", "r00t-passw0rd").await
    }

    /// Stops the service and waits until it is down.
    pub(crate) async fn stop(&mut self) {
        self.service.stop().await.expect("the service stops");
    }

    /// Starts the service again on the same data dir and addresses.
    pub(crate) async fn restart(&mut self) {
        self.service.restart().await.expect("the service restarts");
    }

    pub(crate) async fn token(&self) -> String {
        let body: Value = self
            .http
            .post(format!("{}/v1/pairing-tokens", self.base))
            .bearer_auth(&self.access)
            .json(&json!({}))
            .send()
            .await
            .expect("token")
            .json()
            .await
            .expect("json");
        body["token"].as_str().expect("token").to_owned()
    }

    /// Sends data points to a device; the service accepts with 202.
    pub(crate) async fn command(&self, dev_id: &str, data: Value) {
        let sent = self
            .http
            .post(format!("{}/v1/devices/{dev_id}/commands", self.base))
            .bearer_auth(&self.access)
            .json(&json!({ "data": data }))
            .send()
            .await
            .expect("command");
        assert_eq!(sent.status(), reqwest::StatusCode::ACCEPTED);
    }

    /// Waits until the service holds `report` as the device's last report.
    pub(crate) async fn await_report(&self, dev_id: &str, report: &Value) {
        let what = format!("the report {report}");
        wait(&what, Duration::from_millis(25), || async {
            let device = self.device(dev_id).await;
            if device["last_report"] == *report {
                Ok(())
            } else {
                Err(device)
            }
        })
        .await;
    }

    pub(crate) async fn device(&self, dev_id: &str) -> Value {
        self.http
            .get(format!("{}/v1/devices/{dev_id}", self.base))
            .bearer_auth(&self.access)
            .send()
            .await
            .expect("device")
            .json()
            .await
            .expect("json")
    }
}

async fn login(http: &reqwest::Client, base: &str, name: &str, password: &str) -> String {
    let login: Value = http
        .post(format!("{base}/v1/auth/token"))
        .json(&json!({"username": name, "password": password}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    login["access_token"].as_str().expect("token").to_owned()
}

/// A test device: the simulated radio with a working router (`home`), one whose DHCP
/// never answers and a slow one; its data channel on a free port.
/// The test's own user client: it trusts the service's local CA. It is not under test:
/// with operator files (such as an expired certificate made to fail devices) it takes
/// what the service serves.
fn user_client(service: &LocalCloud) -> reqwest::Client {
    if matches!(service.config().tls, TlsSource::Files { .. }) {
        let any = reqwest::Client::builder().danger_accept_invalid_certs(true);
        return any.build().expect("client");
    }
    tether_e2e::api_client(service.local_ca().as_deref())
}

pub(crate) fn host_config(cloud: &Cloud, license: usize, dir: &Path) -> HostConfig {
    let license = &cloud.licenses[license];
    let identity = IdentityConfig {
        uuid: license.uuid.clone(),
        authkey: license.authkey.clone(),
        product_key: PRODUCT.into(),
        pairing_verifier: Some(license.pairing_verifier.clone()),
    };
    let mut config = HostConfig::simulated(
        dir,
        &cloud.base,
        identity,
        SimAp::instant("home", "correct horse"),
    );
    // The factory writes the CA the cloud's TLS is verified with.
    config.cloud_ca = cloud.local_ca();
    config.wifi.sim.ap.extend([
        SimAp {
            behaviour: SimBehaviour::DhcpFailure,
            ..SimAp::instant("broken-dhcp", "12345678")
        },
        SimAp {
            delay_ms: 5000,
            ..SimAp::instant("slow", "12345678")
        },
    ]);
    config
}

/// A device with its own data dir, configured for `cloud`'s license `license`.
pub(crate) async fn start_device(cloud: &Cloud, license: usize) -> (tempfile::TempDir, Device) {
    let dir = tempfile::tempdir().expect("temp dir");
    let device = Device::start(
        host_config(cloud, license, dir.path()),
        RuntimeConfig::default(),
    )
    .await
    .expect("the device starts");
    (dir, device)
}

/// Pairs `device` with a fresh token of `cloud` and waits until it is online; its dev-id.
pub(crate) async fn pair_online(cloud: &Cloud, device: &Device) -> String {
    pair_with(device, &cloud.token().await).await
}

/// Pairs `device` with `token` and waits until it is online; its dev-id.
pub(crate) async fn pair_with(device: &Device, token: &str) -> String {
    device
        .user_cfg("home", "correct horse", token)
        .await
        .expect("accepted");
    let status = until(device, "online", |s| s.state.name() == "online").await;
    status.dev_id.expect("a dev-id")
}

pub(crate) async fn until(
    device: &Device,
    what: &str,
    check: impl Fn(&DeviceStatus) -> bool,
) -> DeviceStatus {
    wait(what, Duration::from_millis(25), || async {
        let status = device.status().await.expect("a status");
        if check(&status) {
            Ok(status)
        } else {
            Err(status)
        }
    })
    .await
}

impl Cloud {
    /// The setup code on the label of license `i`.
    pub(crate) fn setup_code(&self, i: usize) -> SetupCode {
        SetupCode::parse(self.licenses[i].setup_code.expose()).expect("a valid setup code")
    }
}

/// Proves license `license`'s setup code on the device's data channel, sends `request`
/// sealed and returns the answer as JSON (a refusal as `{"type": "refused", "code"}`).
pub(crate) async fn channel(
    cloud: &Cloud,
    license: usize,
    device: &Device,
    request: Value,
) -> Value {
    let request: ChannelRequest = serde_json::from_value(request).expect("a channel request");
    let addr = device.channel_addr().to_string();
    let security = Security::SetupCode(cloud.setup_code(license));
    let asked = async {
        DeviceChannel::open(&addr, &security)
            .await?
            .ask(&request)
            .await
    };
    match asked.await {
        Ok(reply) => serde_json::to_value(reply).expect("json"),
        Err(Failure::Channel { code, message }) => {
            json!({"type": "refused", "code": code.name(), "message": message})
        }
        Err(e) => panic!("the channel failed: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_over_the_channel_bring_the_device_online_and_a_command_round_trips() {
    let cloud = Cloud::start(1).await;
    let (_dir, device) = start_device(&cloud, 0).await;
    let token = cloud.token().await;

    let ack = channel(
        &cloud,
        0,
        &device,
        json!({"type": "config", "ssid": "home", "passwd": "correct horse", "token": token}),
    )
    .await;
    assert_eq!(ack, json!({"type": "ack", "code": "ok"}));
    let status = until(&device, "online", |s| s.state.name() == "online").await;
    let dev_id = status.dev_id.clone().expect("a dev-id");
    for phase in [
        status.timings.wifi_ms,
        status.timings.dns_ms,
        status.timings.activate_ms,
        status.timings.mqtt_ms,
    ] {
        assert!(phase.is_some(), "{status:?}");
    }

    // The cloud lists it online, and a command comes back as a report.
    let deadline = tokio::time::Instant::now() + WAIT;
    while cloud.device(&dev_id).await["online"] != true {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the service never saw the device online"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let sent = cloud
        .http
        .post(format!("{}/v1/devices/{dev_id}/commands", cloud.base))
        .bearer_auth(&cloud.access)
        .json(&json!({"data": {"1": true, "3": 21}}))
        .send()
        .await
        .expect("command");
    assert_eq!(sent.status(), reqwest::StatusCode::ACCEPTED);
    let deadline = tokio::time::Instant::now() + WAIT;
    while cloud.device(&dev_id).await["last_report"] != json!({"1": true, "3": 21}) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the report never arrived"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    // Paired and outside its pairing window, the device answers no handshake; inside
    // it, the channel's status answer agrees.
    let answer = channel(&cloud, 0, &device, json!({"type": "status"})).await;
    assert_eq!(answer["code"], "window_closed", "{answer}");
    assert!(device.pairing_window(Some(60)).await);
    let answer = channel(&cloud, 0, &device, json!({"type": "status"})).await;
    assert_eq!(answer["state"], "online");
    assert_eq!(answer["dev_id"], dev_id.as_str());
    assert_eq!(answer["channel"]["window_secs"], 60, "{answer}");
    device.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_names_the_component_file_to_run_and_a_missing_one_stops_the_start() {
    let cloud = Cloud::start(1).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("pairing.wasm");
    std::fs::write(&file, tether_host::component::DEFAULT_COMPONENT).expect("written");
    let mut config = host_config(&cloud, 0, &dir.path().join("data"));
    config.component = Some(file);
    let device = Device::start(config.clone(), RuntimeConfig::default())
        .await
        .expect("device starts on the file's component");
    pair_online(&cloud, &device).await;
    device.stop();

    config.component = Some(dir.path().join("missing.cwasm"));
    let failed = Device::start(config, RuntimeConfig::default())
        .await
        .expect_err("no component, no start");
    assert!(
        format!("{failed:#}").contains("missing.cwasm"),
        "{failed:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_over_the_control_socket_bring_the_device_online() {
    let cloud = Cloud::start(1).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = host_config(&cloud, 0, dir.path());
    let socket = config.ctl.socket.clone();
    let device = Device::start(config, RuntimeConfig::default())
        .await
        .expect("device starts");
    let token = cloud.token().await;
    let ctl = CtlClient::new(&socket);
    let answer: Value = ctl
        .ask(&CtlRequest::UserCfg {
            ssid: "home".into(),
            passwd: Secret::new("correct horse"),
            token: Secret::new(token),
        })
        .await
        .expect("answer");
    assert_eq!(answer, json!({"code": "ok", "oprt": 0}));
    until(&device, "online", |s| s.state.name() == "online").await;
    let answer: Value = ctl.ask(&CtlRequest::Status {}).await.expect("answer");
    assert_eq!(answer["state"], "online");
    let bad: Value = ctl
        .ask(&CtlRequest::UserCfg {
            ssid: "home".into(),
            passwd: Secret::new("correct horse"),
            token: Secret::new("nope"),
        })
        .await
        .expect("answer");
    assert_eq!(bad["code"], "token_invalid");
    assert_eq!(bad["oprt"], -2001);
    device.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wifi_failures_are_typed_and_readable_in_status_and_over_the_channel() {
    let cloud = Cloud::start(1).await;
    let (_dir, device) = start_device(&cloud, 0).await;
    let token = cloud.token().await;
    for (ssid, passwd, code) in [
        ("home", "wrong password", "passwd_error"),
        ("nowhere", "12345678", "ap_not_found"),
        ("broken-dhcp", "12345678", "dhcp_failed"),
    ] {
        assert_eq!(device.user_cfg(ssid, passwd, &token).await, Ok(()));
        let status = until(&device, code, |s| {
            s.last_error.map(ErrorCode::name) == Some(code)
        })
        .await;
        assert_eq!(status.state.name(), "awaiting-credentials");
        let answer = channel(&cloud, 0, &device, json!({"type": "status"})).await;
        assert_eq!(answer["last_error"], code);
    }
    // The right password then succeeds without restarting the device.
    assert_eq!(
        device.user_cfg("home", "correct horse", &token).await,
        Ok(())
    );
    until(&device, "online", |s| s.state.name() == "online").await;
    device.stop();
}

/// Sends raw bytes on a fresh channel connection and returns every line until close.
async fn raw_channel(device: &Device, bytes: &[u8], then_close_write: bool) -> Vec<Value> {
    let mut stream = TcpStream::connect(device.channel_addr())
        .await
        .expect("channel accepts");
    stream.write_all(bytes).await.expect("sent");
    if then_close_write {
        stream.shutdown().await.expect("half-closed");
    }
    let mut lines = BufReader::new(stream).lines();
    let mut out = Vec::new();
    let read = tokio::time::timeout(WAIT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            out.push(serde_json::from_str(&line).unwrap_or(Value::String(line)));
        }
    });
    read.await.expect("the device closes the connection");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_channel_input_gets_an_error_and_a_close_and_the_device_keeps_working() {
    let cloud = Cloud::start(1).await;
    let (_dir, device) = start_device(&cloud, 0).await;
    let long = vec![b'x'; 70 * 1024];
    let config =
        br#"{"type":"config","ssid":"home","passwd":"correct horse","token":"EUab12CD34wxYZ"}
"#;
    for (bad, code) in [
        (&b"garbage\n"[..], "bad_request"),
        (b"\xff\xfe\xfd\n", "bad_request"),
        (&long, "bad_request"),
        (b"{\"type\":\"format-disk\"}\n", "bad_request"),
        (
            b"{\"type\":\"pake3\",\"confirm_p\":\"AAAA\"}\n",
            "bad_request",
        ),
        (b"{\"type\":\"sealed\",\"data\":\"AAAA\"}\n", "bad_request"),
        // Plaintext protocol 1 is off by default.
        (config, "unsupported"),
    ] {
        let lines = raw_channel(&device, bad, false).await;
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["type"], "refused");
        assert_eq!(lines[0]["code"], code, "{lines:?}");
    }
    // A half-sent frame followed by a close is dropped without an answer.
    let lines = raw_channel(&device, b"{\"type\":\"sta", true).await;
    assert!(lines.is_empty(), "{lines:?}");
    // `info` in clear tells only the product, the protocols and the security modes.
    let mut stream = TcpStream::connect(device.channel_addr())
        .await
        .expect("channel accepts");
    stream
        .write_all(b"{\"type\":\"info\"}\n")
        .await
        .expect("sent");
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .await
        .expect("answer");
    assert_eq!(
        serde_json::from_str::<Value>(&line).expect("json"),
        json!({"type": "info", "product_key": PRODUCT, "protocols": [2],
            "security": [tether_proto::secure::SECURITY_MODE]})
    );
    // The device still answers and still pairs.
    let info = channel(&cloud, 0, &device, json!({"type": "info"})).await;
    assert_eq!(info["protocol"], 2);
    assert_eq!(info["uuid"], cloud.licenses[0].uuid.as_str());
    let token = cloud.token().await;
    let ack = channel(
        &cloud,
        0,
        &device,
        json!({"type": "config", "ssid": "home", "passwd": "correct horse", "token": token}),
    )
    .await;
    assert_eq!(ack["code"], "ok");
    until(&device, "online", |s| s.state.name() == "online").await;
    device.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_or_used_token_ends_pairing_with_its_code_and_no_retry_loop() {
    let cloud = Cloud::start(2).await;
    let used = cloud.token().await;
    // Another device uses up the single-use token first.
    let (_first_dir, first) = start_device(&cloud, 1).await;
    first
        .user_cfg("home", "correct horse", &used)
        .await
        .expect("accepted");
    until(&first, "online", |s| s.state.name() == "online").await;
    first.stop();

    let (_dir, device) = start_device(&cloud, 0).await;
    device
        .user_cfg("home", "correct horse", &used)
        .await
        .expect("accepted");
    let status = until(&device, "refused", |s| {
        s.last_error.map(ErrorCode::name) == Some("token_used")
    })
    .await;
    assert_eq!(status.state.name(), "awaiting-credentials");
    // It stays there: no retry loop.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let later = device.status().await.expect("status");
    assert_eq!(
        (later.state.name(), later.last_error.map(ErrorCode::name)),
        ("awaiting-credentials", Some("token_used"))
    );

    let expired = cloud.token().await;
    let db = tether_service::db::open(cloud._dir.path(), None)
        .await
        .expect("db");
    sqlx::query("UPDATE pairing_tokens SET expires_at = 1 WHERE public_id = $1")
        .bind(
            tether_proto::token::PairingToken::parse(&expired)
                .expect("a token")
                .public()
                .to_string(),
        )
        .execute(&db)
        .await
        .expect("aged");
    db.close().await;
    device
        .user_cfg("home", "correct horse", &expired)
        .await
        .expect("accepted");
    until(&device, "refused", |s| {
        s.last_error.map(ErrorCode::name) == Some("token_expired")
    })
    .await;
    device.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_cloud_down_the_device_retries_with_backoff_and_goes_online_once_it_is_back() {
    let mut cloud = Cloud::start(1).await;
    let token = cloud.token().await;
    cloud.stop().await;
    let (_dir, device) = start_device(&cloud, 0).await;
    device
        .user_cfg("home", "correct horse", &token)
        .await
        .expect("accepted");
    // Joined the router, but the cloud does not answer: the device keeps retrying.
    let waiting = until(&device, "retrying", |s| {
        s.last_error.map(ErrorCode::name) == Some("network_unreachable")
    })
    .await;
    assert_eq!(waiting.state.name(), "endpoint-lookup");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        device.status().await.expect("status").state.name(),
        "endpoint-lookup",
        "still trying, not given up"
    );
    cloud.restart().await;
    let online = until(&device, "online", |s| s.state.name() == "online").await;
    assert_eq!(online.last_error, None);
    device.stop();
}

//! A running service and a client that speaks its API as a user and as a device.

use std::net::SocketAddr;
use std::path::Path;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tether_proto::signing::{AuthHeader, Principal, new_nonce};
use tether_service::ServeConfig;
use tether_service::local::{self, Account, LocalCloud};
use tether_service::tls::{TLS_DIR, TlsSource};
use tether_service::users::Role;

/// Product key used by the tests.
pub const PRODUCT: &str = "p0123456789abcde";

/// A service running on free ports over a data dir.
pub struct Service {
    pub addr: SocketAddr,
    pub mqtt_addr: SocketAddr,
    pub http: reqwest::Client,
    /// The local CA's PEM when the service serves TLS.
    pub ca: Option<Vec<u8>>,
    cloud: LocalCloud,
}

impl Service {
    /// Starts the service on `data_dir`.
    pub async fn start(data_dir: &Path) -> Self {
        Self::start_with(ServeConfig::ephemeral(data_dir)).await
    }

    /// Starts the service with `config`; with a local CA, the client trusts it.
    pub async fn start_with(mut config: ServeConfig) -> Self {
        init_logs();
        if config.database_url.is_none() {
            config.database_url = crate::engine::database_url(&config.data_dir).await;
        }
        let tls = config.tls != TlsSource::Off;
        let ca_file = config.data_dir.join(TLS_DIR).join("ca.pem");
        let cloud = LocalCloud::start(config).await.expect("the service starts");
        let ca = tls.then(|| std::fs::read(&ca_file).expect("the local CA"));
        let mut http = reqwest::Client::builder();
        if let Some(pem) = &ca {
            http = http.add_root_certificate(reqwest::Certificate::from_pem(pem).expect("PEM"));
        }
        Self {
            addr: cloud.http_addr(),
            mqtt_addr: cloud.mqtt_addr(),
            http: http.build().expect("client"),
            ca,
            cloud,
        }
    }

    /// Stops the service gracefully and waits until it is down.
    pub async fn stop(mut self) {
        self.cloud.stop().await.expect("the server stops cleanly");
    }

    pub fn url(&self, path: &str) -> String {
        let scheme = if self.ca.is_some() { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.addr)
    }

    /// Sends a request with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, self.url(path));
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("the service answers");
        let status = resp.status();
        let text = resp.text().await.expect("a body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// `GET path`.
    pub async fn get(&self, path: &str, bearer: Option<&str>) -> (StatusCode, Value) {
        self.call(Method::GET, path, bearer, None).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str, bearer: Option<&str>) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, bearer, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, bearer: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, bearer, Some(body)).await
    }

    /// Logs in and returns the access token.
    pub async fn login(&self, name: &str, password: &str) -> String {
        let (status, body) = self
            .post(
                "/v1/auth/token",
                None,
                json!({"username": name, "password": password}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"].as_str().expect("a token").to_owned()
    }

    /// Creates a pairing token and returns all 14 characters.
    pub async fn pairing_token(&self, bearer: &str, body: Value) -> String {
        let (status, resp) = self.post("/v1/pairing-tokens", Some(bearer), body).await;
        assert_eq!(status, StatusCode::CREATED, "{resp}");
        resp["token"].as_str().expect("a token").to_owned()
    }

    /// Sends a device request signed with `key` as `principal`, at Unix time `t`.
    pub async fn signed_at(
        &self,
        principal: Principal,
        key: &str,
        t: u64,
        path: &str,
        body: &Value,
    ) -> (StatusCode, Value, reqwest::header::HeaderMap) {
        let bytes = serde_json::to_vec(body).expect("serialises");
        let nonce = new_nonce().expect("random source");
        let header = AuthHeader::sign(principal, key.as_bytes(), t, nonce, "POST", path, &bytes);
        self.send_signed(path, &header.to_string(), bytes).await
    }

    /// Sends a device request signed now with its authkey.
    pub async fn signed(
        &self,
        device: &Device,
        path: &str,
        body: &Value,
    ) -> (StatusCode, Value, reqwest::header::HeaderMap) {
        self.signed_at(device.principal(), &device.authkey, now(), path, body)
            .await
    }

    /// Sends a pre-signed device request.
    pub async fn send_signed(
        &self,
        path: &str,
        authorization: &str,
        bytes: Vec<u8>,
    ) -> (StatusCode, Value, reqwest::header::HeaderMap) {
        self.send_signed_with(path, authorization, bytes, &[]).await
    }

    /// Sends a pre-signed device request with `extra` headers.
    pub async fn send_signed_with(
        &self,
        path: &str,
        authorization: &str,
        bytes: Vec<u8>,
        extra: &[(&str, &str)],
    ) -> (StatusCode, Value, reqwest::header::HeaderMap) {
        let mut req = self
            .http
            .post(self.url(path))
            .header("authorization", authorization)
            .header("content-type", "application/json");
        for (name, value) in extra {
            req = req.header(*name, *value);
        }
        let resp = req.body(bytes).send().await.expect("the service answers");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("a body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
            headers,
        )
    }

    /// Asks for fresh MQTT credentials as the device `activated` (an activation answer)
    /// names, signed with its dev-secret.
    pub async fn refresh_credentials(&self, activated: &Value) -> (StatusCode, Value) {
        let dev_id = activated["dev_id"].as_str().expect("dev_id");
        let secret = activated["dev_secret"].as_str().expect("secret");
        let path = format!("/v1/devices/{dev_id}/mqtt-credentials");
        let principal = Principal::DevId(dev_id.into());
        let (status, body, _) = self
            .signed_at(principal, secret, now(), &path, &json!({}))
            .await;
        (status, body)
    }

    /// Activates `device` with `token`.
    pub async fn activate(&self, device: &Device, token: &str, reset: bool) -> (StatusCode, Value) {
        let body = device.activation_body(token, reset);
        let (status, body, _) = self.signed(device, "/v1/devices/activate", &body).await;
        (status, body)
    }
}

/// A licensed device.
#[derive(Debug, Clone)]
pub struct Device {
    pub uuid: String,
    pub authkey: String,
}

impl Device {
    pub fn principal(&self) -> Principal {
        Principal::Uuid(self.uuid.clone())
    }

    pub fn activation_body(&self, token: &str, reset: bool) -> Value {
        json!({
            "uuid": self.uuid,
            "product_key": PRODUCT,
            "token": token,
            "sw_ver": "0.1.0",
            "module_version": "0.1.0",
            "reset": reset,
            "timings": {"wifi_ms": 800, "dns_ms": 20},
        })
    }

    /// An activation with `token` signed now with a fresh nonce: the `Authorization`
    /// value and the body, to send (and send again) as they are.
    pub fn signed_activation(&self, token: &str) -> (String, Vec<u8>) {
        let body = serde_json::to_vec(&self.activation_body(token, false)).expect("json");
        let header = AuthHeader::sign(
            self.principal(),
            self.authkey.as_bytes(),
            now(),
            new_nonce().expect("random source"),
            "POST",
            ACTIVATE,
            &body,
        );
        (header.to_string(), body)
    }

    /// Activates with `token` at the service at `addr` on a connection of its own (for
    /// requests raced from many tasks).
    pub async fn activate_at(&self, addr: SocketAddr, token: &str) -> (StatusCode, Value) {
        let resp = tether_e2e::post_activation(
            &reqwest::Client::new(),
            &format!("http://{addr}"),
            (&self.uuid, &self.authkey),
            &self.activation_body(token, false),
        )
        .await;
        let status = resp.status();
        (status, resp.json::<Value>().await.expect("json"))
    }
}

/// The activation path.
pub const ACTIVATE: &str = "/v1/devices/activate";

/// Each device activates with `token` at its service address, all at once; the answers
/// in the order given.
pub async fn race(targets: Vec<(SocketAddr, Device)>, token: &str) -> Vec<(StatusCode, Value)> {
    let tasks: Vec<_> = targets
        .into_iter()
        .map(|(addr, device)| {
            let token = token.to_owned();
            tokio::spawn(async move { device.activate_at(addr, &token).await })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("task"));
    }
    results
}

/// Unix seconds now.
/// The public part of a pairing token, as the API names it.
pub fn public_id(token: &str) -> String {
    tether_proto::token::PairingToken::parse(token)
        .expect("a pairing token")
        .public()
        .to_string()
}

pub fn now() -> u64 {
    tether_service::unix_now()
}

/// A user account created straight in the database.
pub async fn add_user(data_dir: &Path, name: &str, role: Role) -> String {
    let password = format!("{name}-password");
    let account = Account {
        name,
        password: &password,
        role,
    };
    let url = crate::engine::database_url(data_dir).await;
    local::seed(data_dir, url.as_ref(), &[account], PRODUCT, 0)
        .await
        .expect("user created");
    password
}

/// Licenses issued straight in the database.
pub async fn add_devices(data_dir: &Path, count: u32) -> Vec<Device> {
    let url = crate::engine::database_url(data_dir).await;
    let issued = local::seed(data_dir, url.as_ref(), &[], PRODUCT, count as usize)
        .await
        .expect("licenses issued")
        .licenses;
    issued
        .into_iter()
        .map(|l| Device {
            uuid: l.uuid,
            authkey: l.authkey.expose().to_owned(),
        })
        .collect()
}

/// Runs SQL against the service's database from outside (to age a token, say).
pub async fn sql(data_dir: &Path, statement: &str) {
    let pool = crate::engine::open(data_dir).await;
    sqlx::query(statement)
        .execute(&pool)
        .await
        .expect("statement runs");
    pool.close().await;
}

/// A started service with one user ("ann") logged in and `devices` licensed devices.
pub struct World {
    pub dir: tempfile::TempDir,
    pub service: Service,
    pub ann: String,
    pub devices: Vec<Device>,
}

impl World {
    pub async fn new(devices: u32) -> Self {
        Self::with(devices, TlsSource::Off).await
    }

    /// A world whose service serves the API and MQTT over TLS with a local CA.
    pub async fn with_tls(devices: u32) -> Self {
        Self::with(devices, TlsSource::LocalCa).await
    }

    async fn with(devices: u32, tls: TlsSource) -> Self {
        Self::configured(devices, |config| config.tls = tls).await
    }

    /// A world whose service runs with the settings `configure` makes of the defaults.
    pub async fn configured(devices: u32, configure: impl FnOnce(&mut ServeConfig)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let password = add_user(dir.path(), "ann", Role::User).await;
        let devices = add_devices(dir.path(), devices).await;
        let mut config = ServeConfig::ephemeral(dir.path());
        configure(&mut config);
        let service = Service::start_with(config).await;
        let ann = service.login("ann", &password).await;
        Self {
            dir,
            service,
            ann,
            devices,
        }
    }

    /// Another user, logged in.
    pub async fn user(&self, name: &str) -> String {
        let password = add_user(self.dir.path(), name, Role::User).await;
        self.service.login(name, &password).await
    }
}

/// Asserts the standard error body with `code`.
pub fn assert_error(status: StatusCode, body: &Value, want_status: StatusCode, want_code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["code"], want_code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

/// Sends the service's logs to the test's captured output (shown for failing tests).
fn init_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}

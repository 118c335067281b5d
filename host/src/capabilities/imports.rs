//! The WIT import traits, implemented on [`HostState`]. Each method only checks its
//! bounds, converts WIT types, and records a command or answers from local state.

use std::sync::OnceLock;
use std::time::Instant;

use tether_proto::{ErrorCode, Secret};

use super::HostState;
use super::commands::{Command, MqttConnect};
use super::device::Key;
use super::kv::KvError;
use crate::runtime::bindings::{
    WitErrorCode, channel, device, http, kv, log, mqtt, timer, types, wifi,
};

/// Largest body, payload or channel write a component may hand the host, in bytes.
pub const MAX_TRANSFER_BYTES: usize = 64 * 1024;
/// Longest URL or topic.
const MAX_NAME_BYTES: usize = 2048;
/// Most headers on one request.
const MAX_HEADERS: usize = 32;
/// Longest whole-request deadline an HTTP request may ask for.
const MAX_HTTP_TIMEOUT_MS: u32 = 30_000;
/// Longest log line kept; the rest is cut.
const MAX_LOG_BYTES: usize = 4096;

type WitResult<T> = Result<T, WitErrorCode>;

fn refuse<T>(code: ErrorCode) -> WitResult<T> {
    Err(code.into())
}

impl HostState {
    fn queue(&mut self, command: Command) -> WitResult<()> {
        self.outbox.push(command).map_err(WitErrorCode::from)
    }
}

impl types::Host for HostState {}

impl log::Host for HostState {
    fn log(&mut self, level: log::Level, message: String) {
        let mut end = message.len().min(MAX_LOG_BYTES);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let line = &message[..end];
        match level {
            log::Level::Trace => tracing::trace!(target: "component", "{line}"),
            log::Level::Debug => tracing::debug!(target: "component", "{line}"),
            log::Level::Info => tracing::info!(target: "component", "{line}"),
            log::Level::Warn => tracing::warn!(target: "component", "{line}"),
            log::Level::Error => tracing::error!(target: "component", "{line}"),
        }
    }
}

impl wifi::Host for HostState {
    fn scan(&mut self) -> WitResult<()> {
        self.queue(Command::WifiScan)
    }

    fn connect(&mut self, ssid: String, passwd: String) -> WitResult<()> {
        if ssid.is_empty() || ssid.len() > 32 || passwd.len() > 64 {
            return refuse(ErrorCode::InvalidParm);
        }
        self.queue(Command::WifiConnect {
            ssid,
            passwd: Secret::new(passwd),
        })
    }

    fn disconnect(&mut self) {
        // A full outbox drops the request; the component sees no wifi-disconnected event
        // and may retry.
        let _ = self.queue(Command::WifiDisconnect);
    }

    fn station(&mut self) -> wifi::StationState {
        self.station.clone()
    }

    fn start_ap(&mut self, config: wifi::SoftAp) -> WitResult<()> {
        if config.ssid.is_empty() || config.ssid.len() > 32 || config.passwd.len() > 63 {
            return refuse(ErrorCode::InvalidParm);
        }
        self.queue(Command::WifiStartAp(config))
    }

    fn stop_ap(&mut self) {
        let _ = self.queue(Command::WifiStopAp);
    }
}

impl http::Host for HostState {
    fn start(&mut self, mut req: http::Request) -> WitResult<http::RequestId> {
        let scheme_ok = req.url.starts_with("http://") || req.url.starts_with("https://");
        if !scheme_ok
            || req.url.len() > MAX_NAME_BYTES
            || req.headers.len() > MAX_HEADERS
            || req.body.len() > MAX_TRANSFER_BYTES
        {
            return refuse(ErrorCode::InvalidParm);
        }
        req.timeout_ms = req.timeout_ms.clamp(1, MAX_HTTP_TIMEOUT_MS);
        let id = self.request_id();
        self.queue(Command::HttpStart { id, request: req })?;
        Ok(id)
    }

    fn cancel(&mut self, id: http::RequestId) {
        let _ = self.queue(Command::HttpCancel(id));
    }
}

impl mqtt::Host for HostState {
    fn connect(&mut self, o: mqtt::ConnectOptions) -> WitResult<()> {
        if o.url.is_empty() || o.url.len() > MAX_NAME_BYTES || o.client_id.is_empty() {
            return refuse(ErrorCode::InvalidParm);
        }
        self.queue(Command::MqttConnect(MqttConnect {
            url: o.url,
            client_id: o.client_id,
            username: o.username,
            password: Secret::new(o.password),
            keep_alive_secs: o.keep_alive_secs,
        }))
    }

    fn subscribe(&mut self, topic: String, qos: mqtt::Qos) -> WitResult<()> {
        if topic.is_empty() || topic.len() > MAX_NAME_BYTES {
            return refuse(ErrorCode::InvalidParm);
        }
        self.queue(Command::MqttSubscribe { topic, qos })
    }

    fn publish(&mut self, topic: String, payload: Vec<u8>, qos: mqtt::Qos) -> WitResult<()> {
        if topic.is_empty() || topic.len() > MAX_NAME_BYTES || payload.len() > MAX_TRANSFER_BYTES {
            return refuse(ErrorCode::InvalidParm);
        }
        self.queue(Command::MqttPublish {
            topic,
            payload,
            qos,
        })
    }

    fn disconnect(&mut self) {
        let _ = self.queue(Command::MqttDisconnect);
    }
}

impl channel::Host for HostState {
    fn send(&mut self, conn: channel::Connection, data: Vec<u8>) -> WitResult<()> {
        if data.len() > MAX_TRANSFER_BYTES {
            return refuse(ErrorCode::InvalidParm);
        }
        self.queue(Command::ChannelSend { conn, data })
    }

    fn close(&mut self, conn: channel::Connection) {
        let _ = self.queue(Command::ChannelClose(conn));
    }
}

impl timer::Host for HostState {
    fn set(&mut self, id: u32, after_ms: u32) {
        let _ = self.queue(Command::TimerSet { id, after_ms });
    }

    fn cancel(&mut self, id: u32) {
        let _ = self.queue(Command::TimerCancel(id));
    }

    fn monotonic_ms(&mut self) -> u64 {
        static EPOCH: OnceLock<Instant> = OnceLock::new();
        let elapsed = EPOCH.get_or_init(Instant::now).elapsed();
        u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
    }

    fn unix_secs(&mut self) -> u64 {
        crate::clock::unix_secs()
    }
}

impl kv::Host for HostState {
    fn get(&mut self, key: String) -> Option<Vec<u8>> {
        match self.kv.get(&key) {
            Ok(value) => value,
            Err(e) => {
                tracing::warn!(error = %e, "kv read failed");
                None
            }
        }
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> WitResult<()> {
        self.kv.set(&key, &value).map_err(kv_error)
    }

    fn delete(&mut self, key: String) -> WitResult<()> {
        self.kv.delete(&key).map_err(kv_error)
    }
}

fn kv_error(e: KvError) -> WitErrorCode {
    match e {
        KvError::BadKey | KvError::ValueTooLarge => ErrorCode::InvalidParm.into(),
        KvError::Full => ErrorCode::Busy.into(),
        KvError::Io(e) => {
            tracing::error!(error = %e, "kv write failed");
            ErrorCode::Internal.into()
        }
    }
}

impl device::Host for HostState {
    fn identity(&mut self) -> device::DeviceIdentity {
        let id = self.device.identity();
        device::DeviceIdentity {
            uuid: id.map(|i| i.uuid.clone()).unwrap_or_default(),
            product_key: id.map(|i| i.product_key.clone()).unwrap_or_default(),
            sw_ver: env!("CARGO_PKG_VERSION").to_owned(),
            iot_dns_url: id.map(|i| i.iot_dns_url.clone()).unwrap_or_default(),
        }
    }

    fn sign_request(
        &mut self,
        method: String,
        path: String,
        body: Vec<u8>,
        signer: device::Signer,
    ) -> WitResult<String> {
        if path.len() > MAX_NAME_BYTES || body.len() > MAX_TRANSFER_BYTES {
            return refuse(ErrorCode::InvalidParm);
        }
        let key = match signer {
            device::Signer::Authkey => Key::Authkey,
            device::Signer::DevSecret => Key::DevSecret,
        };
        self.device
            .sign_request(&method, &path, &body, key)
            .map_err(WitErrorCode::from)
    }

    fn set_binding(&mut self, binding: Option<device::Binding>) -> WitResult<()> {
        let binding = binding.map(|b| (b.dev_id, Secret::new(b.dev_secret)));
        self.device.set_binding(binding).map_err(WitErrorCode::from)
    }

    fn dev_id(&mut self) -> Option<String> {
        self.device.dev_id().map(str::to_owned)
    }

    fn pairing_setup(&mut self) -> device::ChannelSecurity {
        let id = self.device.identity();
        device::ChannelSecurity {
            verifier: id.and_then(|i| i.pairing_verifier.clone()),
            plaintext: id.is_some_and(|i| i.plaintext_channel),
        }
    }

    fn set_endpoints(&mut self, endpoints: device::CloudEndpoints) -> WitResult<()> {
        let endpoints = crate::capabilities::CloudEndpoints {
            http_url: endpoints.http_url,
            mqtt_url: endpoints.mqtt_url,
            ca: endpoints.ca,
        };
        self.device
            .set_endpoints(endpoints)
            .map_err(WitErrorCode::from)
    }
}

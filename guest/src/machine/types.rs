//! The machine's vocabulary: the events it reacts to, the actions it asks for, and the
//! records it keeps in `kv` across reboots.

use serde::{Deserialize, Serialize};
use tether_proto::{ErrorCode, Secret};

pub use tether_proto::activation::PhaseTimings;
pub use tether_proto::status::{DeviceStatus, NetState};

/// The device's identity as the host tells it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Identity {
    /// License uuid.
    pub uuid: String,
    /// Product key.
    pub product_key: String,
    /// Firmware version.
    pub sw_ver: String,
    /// IoT DNS base URL.
    pub iot_dns_url: String,
}

/// Why an HTTP request was made, so its answer goes to the right place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Purpose {
    /// IoT DNS lookup.
    Dns,
    /// Activation.
    Activate,
    /// MQTT credential refresh.
    Credentials,
    /// A pairing report.
    Report,
}

/// Which secret signs a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignWith {
    /// The factory authkey.
    Authkey,
    /// The dev-secret from activation.
    DevSecret,
}

/// An HTTP request to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// Why.
    pub purpose: Purpose,
    /// Absolute URL.
    pub url: String,
    /// Path and query as signed.
    pub path: String,
    /// JSON body (may hold the pairing token: never logged).
    pub body: Vec<u8>,
    /// How to sign, if at all.
    pub sign: Option<SignWith>,
    /// Deadline.
    pub timeout_ms: u32,
    /// The provisioner's trace context (`traceparent`) this request belongs to: the
    /// bindings send it from a span of the device's own.
    pub trace: Option<String>,
}

/// Timers the machine arms, by purpose (the WIT timer id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u32)]
pub enum Timer {
    /// Retry joining the router.
    WifiRetry = 1,
    /// Retry the cloud request of the current phase.
    CloudRetry = 2,
    /// Reconnect MQTT.
    MqttRetry = 3,
    /// Refresh MQTT credentials before they expire.
    RefreshCredentials = 4,
    /// A network change that is not online by now goes back to the previous network.
    NetworkChange = 5,
    /// Look the endpoints up again while online (IoT DNS's TTL ran out).
    EndpointRefresh = 6,
}

impl Timer {
    /// The timer for a WIT id.
    pub fn from_id(id: u32) -> Option<Self> {
        [
            Self::WifiRetry,
            Self::CloudRetry,
            Self::MqttRetry,
            Self::RefreshCredentials,
            Self::NetworkChange,
            Self::EndpointRefresh,
        ]
        .into_iter()
        .find(|t| *t as u32 == id)
    }
}

/// MQTT login and topics from activation, kept so a reboot reconnects without it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activation {
    /// Device id.
    pub dev_id: String,
    /// Broker address.
    pub mqtt_url: String,
    /// Client id.
    pub client_id: String,
    /// Username.
    pub username: String,
    /// Password (a JWT).
    pub password: Secret,
    /// When the password expires, Unix seconds.
    pub expires_at: u64,
    /// Cloud-to-device topic.
    pub topic_in: String,
    /// Device-to-cloud topic.
    pub topic_out: String,
}

/// The cloud endpoints from IoT DNS, with when they stop being fresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoints {
    /// The region they serve.
    pub region: String,
    /// API base URL.
    pub http_url: String,
    /// Broker address.
    pub mqtt_url: String,
    /// The CA certificates IoT DNS delivered (base64 DER), for the host's TLS.
    #[serde(default)]
    pub ca: Vec<String>,
    /// Unix seconds after which they are looked up again.
    pub fresh_until: u64,
}

impl Endpoints {
    /// The action that hands them to the host.
    pub fn for_host(&self) -> Action {
        Action::SetEndpoints {
            http_url: self.http_url.clone(),
            mqtt_url: self.mqtt_url.clone(),
            ca: self.ca.clone(),
        }
    }
}

/// A router network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// Name.
    pub ssid: String,
    /// Password.
    pub passwd: Secret,
}

/// Happenings the machine reacts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The station joined `ssid`.
    WifiConnected {
        /// Network joined.
        ssid: String,
    },
    /// Joining failed.
    WifiFailed(ErrorCode),
    /// An established link was lost.
    WifiDisconnected(ErrorCode),
    /// An HTTP answer arrived.
    HttpResponse {
        /// Request id.
        id: u32,
        /// Status.
        status: u16,
        /// `Retry-After` in seconds, if given.
        retry_after: Option<u32>,
        /// Body.
        body: Vec<u8>,
    },
    /// An HTTP request failed without an answer.
    HttpFailed {
        /// Request id.
        id: u32,
        /// Why.
        code: ErrorCode,
    },
    /// The MQTT session is up.
    MqttConnected,
    /// An MQTT message arrived.
    MqttMessage {
        /// Topic.
        topic: String,
        /// Payload.
        payload: Vec<u8>,
    },
    /// The MQTT session ended.
    MqttDisconnected(ErrorCode),
    /// A timer fired.
    TimerFired(Timer),
}

/// Work for the bindings layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Join a network.
    WifiConnect(Network),
    /// Start an HTTP request; the bindings report its id with `request_started`.
    Http(HttpRequest),
    /// Connect MQTT with the activation's login.
    MqttConnect(Activation),
    /// Subscribe.
    MqttSubscribe(String),
    /// Publish (QoS 1).
    MqttPublish {
        /// Topic.
        topic: String,
        /// Payload.
        payload: Vec<u8>,
    },
    /// End the MQTT session.
    MqttDisconnect,
    /// Arm a timer.
    SetTimer(Timer, u32),
    /// Disarm a timer.
    CancelTimer(Timer),
    /// Store a record durably.
    KvSet(&'static str, Vec<u8>),
    /// Forget a record.
    KvDelete(&'static str),
    /// Hand the host the dev-secret (or, with `None`, make it forget it).
    SetBinding(Option<(String, Secret)>),
    /// Hand the host the cloud endpoints, for its own cloud requests.
    SetEndpoints {
        /// API base URL.
        http_url: String,
        /// Broker address.
        mqtt_url: String,
        /// CA certificates (base64 DER) that verify them.
        ca: Vec<String>,
    },
    /// Write a log line (never with secrets).
    Log(Level, String),
}

/// Log levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Progress.
    Info,
    /// A handled failure.
    Warn,
}

/// Keys of the records in `kv`.
pub mod keys {
    /// The network that last went online with the device.
    pub const NETWORK: &str = "network";
    /// The activation (MQTT login, topics).
    pub const ACTIVATION: &str = "activation";
    /// Cached IoT DNS answer.
    pub const ENDPOINTS: &str = "endpoints";
    /// Data points.
    pub const DATA_POINTS: &str = "dp";
    /// A pairing under way (its network, token and last error), so a reboot mid-pairing
    /// can say what happened.
    pub const PENDING: &str = "pending";
    /// A local factory reset happened since the last activation.
    pub const RESET: &str = "reset";
    /// Pairing reports the cloud has not had yet.
    pub const REPORTS: &str = "reports";
}

/// Everything the machine keeps in `kv`, as read at boot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    /// Committed network.
    pub network: Option<Network>,
    /// Activation.
    pub activation: Option<Activation>,
    /// Cached endpoints.
    pub endpoints: Option<Endpoints>,
    /// Data points.
    pub data_points: serde_json::Map<String, serde_json::Value>,
    /// A pairing that was under way.
    pub pending: Option<Pending>,
    /// A local reset happened.
    pub reset: bool,
    /// Pairing reports the cloud has not had yet.
    pub reports: Vec<super::reports::QueuedReport>,
}

/// A pairing under way, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// Network being joined.
    pub ssid: String,
    /// The error the pairing last met, if any.
    pub last_error: Option<ErrorCode>,
}

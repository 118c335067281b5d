//! The device's pairing progress, as the pairing component reports it on its data
//! channel and the host on its control socket: one type for both.

use serde::{Deserialize, Serialize};

use crate::ErrorCode;
use crate::activation::PhaseTimings;

/// The network-config state, after TuyaOS's `GW_WIFI_NW_STAT_E`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetState {
    /// Waiting for credentials.
    AwaitingCredentials,
    /// Joining the router.
    Connecting,
    /// Joined the router.
    StaConnected,
    /// Asking IoT DNS for the endpoints.
    EndpointLookup,
    /// Activating with the token.
    Activating,
    /// Connecting to MQTT.
    MqttConnecting,
    /// Online.
    Online,
    /// Activated, not online; reconnecting.
    Offline,
}

impl NetState {
    /// The kebab-case name the wire and the logs use.
    pub const fn name(self) -> &'static str {
        match self {
            NetState::AwaitingCredentials => "awaiting-credentials",
            NetState::Connecting => "connecting",
            NetState::StaConnected => "sta-connected",
            NetState::EndpointLookup => "endpoint-lookup",
            NetState::Activating => "activating",
            NetState::MqttConnecting => "mqtt-connecting",
            NetState::Online => "online",
            NetState::Offline => "offline",
        }
    }
}

/// Where a device is in the pairing flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceStatus {
    /// The state.
    pub state: NetState,
    /// The last failure, cleared by success.
    pub last_error: Option<ErrorCode>,
    /// Per-phase durations.
    pub timings: PhaseTimings,
    /// The device id, once activated.
    pub dev_id: Option<String>,
    /// The router network in use or being joined.
    pub ssid: Option<String>,
    /// The pairing component's version.
    pub version: String,
    /// The data channel's guard and window (absent from components that predate it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<ChannelView>,
}

/// The data channel's guard and pairing window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelView {
    /// Seconds the locally opened pairing window has left; none when closed.
    pub window_secs: Option<u32>,
    /// Locked by failed handshakes until the window is opened.
    pub locked: bool,
    /// Failed handshakes since the last success.
    pub failures: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_missing_field, assert_round_trip};

    #[test]
    fn names_match_the_serde_form() {
        for state in [
            NetState::AwaitingCredentials,
            NetState::Connecting,
            NetState::StaConnected,
            NetState::EndpointLookup,
            NetState::Activating,
            NetState::MqttConnecting,
            NetState::Online,
            NetState::Offline,
        ] {
            assert_eq!(
                serde_json::to_value(state).expect("serialises"),
                state.name()
            );
        }
    }

    #[test]
    fn a_status_round_trips_and_needs_its_state() {
        let json = r#"{"state":"online","last_error":null,"timings":{"wifi_ms":120,"dns_ms":null},"dev_id":"d-1","ssid":"home","version":"0.1.0"}"#;
        let status: DeviceStatus = serde_json::from_str(json).expect("parses");
        assert_eq!(status.state, NetState::Online);
        assert_eq!(status.timings.wifi_ms, Some(120));
        assert_eq!(status.timings.dns_ms, None);
        assert_round_trip(&status);
        assert_missing_field::<DeviceStatus>(
            r#"{"last_error":null,"timings":{},"dev_id":null,"ssid":null,"version":"1"}"#,
            "state",
        );
    }
}

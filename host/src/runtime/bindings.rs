//! The one place where wasmtime generates Rust types and traits from `wit/pairing.wit`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "pairing",
});

pub use exports::pairing as export;
pub use tether::pairing::types::ErrorCode as WitErrorCode;
pub use tether::pairing::{channel, device, http, kv, log, mqtt, timer, types, wifi};

tether_proto::wit_error_code_conversions!(WitErrorCode);

impl From<export::NetState> for tether_proto::status::NetState {
    fn from(state: export::NetState) -> Self {
        use tether_proto::status::NetState as N;
        match state {
            export::NetState::AwaitingCredentials => N::AwaitingCredentials,
            export::NetState::Connecting => N::Connecting,
            export::NetState::StaConnected => N::StaConnected,
            export::NetState::EndpointLookup => N::EndpointLookup,
            export::NetState::Activating => N::Activating,
            export::NetState::MqttConnecting => N::MqttConnecting,
            export::NetState::Online => N::Online,
            export::NetState::Offline => N::Offline,
        }
    }
}

impl From<export::PairingStatus> for tether_proto::status::DeviceStatus {
    fn from(s: export::PairingStatus) -> Self {
        Self {
            state: s.state.into(),
            last_error: s.last_error.map(tether_proto::ErrorCode::from),
            timings: tether_proto::activation::PhaseTimings {
                wifi_ms: s.timings.wifi_ms,
                dns_ms: s.timings.dns_ms,
                activate_ms: s.timings.activate_ms,
                mqtt_ms: s.timings.mqtt_ms,
            },
            dev_id: s.dev_id,
            ssid: s.ssid,
            version: s.version,
            channel: None,
        }
    }
}

impl From<export::ChannelState> for tether_proto::status::ChannelView {
    fn from(c: export::ChannelState) -> Self {
        Self {
            window_secs: c.window_secs,
            locked: c.locked,
            failures: c.failures,
        }
    }
}

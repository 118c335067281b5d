//! The one place where wasmtime generates Rust types and traits from `wit/pairing.wit`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "pairing",
});

pub use exports::pairing as export;
pub use tether::pairing::types::ErrorCode as WitErrorCode;
pub use tether::pairing::{channel, device, http, kv, log, mqtt, timer, types, wifi};

tether_proto::wit_error_code_conversions!(WitErrorCode);

impl export::NetState {
    /// The state's WIT (kebab-case) name, as `status --json` and logs show it.
    pub fn name(self) -> &'static str {
        match self {
            export::NetState::AwaitingCredentials => "awaiting-credentials",
            export::NetState::Connecting => "connecting",
            export::NetState::StaConnected => "sta-connected",
            export::NetState::EndpointLookup => "endpoint-lookup",
            export::NetState::Activating => "activating",
            export::NetState::MqttConnecting => "mqtt-connecting",
            export::NetState::Online => "online",
            export::NetState::Offline => "offline",
        }
    }
}

//! Wire types shared by every part of Tether: the pairing token, error codes, request
//! signing, the JSON bodies of the cloud API and MQTT, and the messages of the device's data
//! channel and control socket. Nothing here does IO, so the
//! crate builds for the native targets and for `wasm32-wasip2` alike.

pub mod activation;
pub mod api;
pub mod api_error;
pub mod b64;
#[cfg(feature = "bundle")]
pub mod bundle;
pub mod channel;
pub mod ctl;
pub mod error_code;
pub mod iot_dns;
pub mod module;
pub mod mqtt;
#[cfg(feature = "openapi")]
mod openapi;
pub mod platform;
pub mod random;
pub mod reply_code;
pub mod reports;
pub mod secret;
pub mod secure;
pub mod setup_code;
pub mod signing;
pub mod status;
pub mod token;
pub mod token_status;
pub mod trace;
pub mod version;

pub use error_code::ErrorCode;
pub use reply_code::ReplyCode;
pub use secret::Secret;
pub use token::{PairingToken, PublicId, TokenError};

/// One line of a JSON-lines protocol (the data channel, the control socket): the value
/// as compact JSON and a newline.
pub fn json_line(value: &impl serde::Serialize) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(value).expect("protocol messages always serialise");
    bytes.push(b'\n');
    bytes
}

#[cfg(test)]
mod test_support;

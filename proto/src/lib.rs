//! Wire types shared by every part of Tether: the pairing token, error codes, request
//! signing and the JSON bodies of the cloud API and MQTT. Nothing here does IO, so the
//! crate builds for the native targets and for `wasm32-wasip2` alike.

pub mod activation;
pub mod api_error;
#[cfg(feature = "bundle")]
pub mod bundle;
pub mod error_code;
pub mod iot_dns;
pub mod mqtt;
#[cfg(feature = "openapi")]
mod openapi;
pub mod random;
pub mod reports;
pub mod secret;
pub mod signing;
pub mod token;
pub mod token_status;
pub mod version;

pub use error_code::ErrorCode;
pub use secret::Secret;
pub use token::{PairingToken, TokenError};

#[cfg(test)]
mod test_support;

//! The JSON bodies a device reads from the cloud (IoT DNS, activation, credentials, API
//! errors) and the service reads from devices and users.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tether_proto::activation::{ActivateRequest, ActivateResponse, CredentialsResponse};
use tether_proto::api_error::ApiErrorBody;
use tether_proto::iot_dns::{UrlConfigRequest, UrlConfigResponse};
use tether_proto::reports::PairingReport;
use tether_proto::token_status::{CreateTokenRequest, TokenStatus};

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<UrlConfigRequest>(data);
    if let Ok(answer) = serde_json::from_slice::<UrlConfigResponse>(data) {
        let bytes = serde_json::to_vec(&answer).expect("encodes");
        serde_json::from_slice::<UrlConfigResponse>(&bytes).expect("round trip");
    }
    let _ = serde_json::from_slice::<ActivateRequest>(data);
    let _ = serde_json::from_slice::<ActivateResponse>(data);
    let _ = serde_json::from_slice::<CredentialsResponse>(data);
    let _ = serde_json::from_slice::<ApiErrorBody>(data);
    let _ = serde_json::from_slice::<PairingReport>(data);
    let _ = serde_json::from_slice::<CreateTokenRequest>(data);
    let _ = serde_json::from_slice::<TokenStatus>(data);
});

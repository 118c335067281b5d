//! Activation (`POST /v1/devices/activate`) and MQTT credential refresh
//! (`POST /v1/devices/{dev_id}/mqtt-credentials`), the two calls that give a device its
//! cloud identity and broker login.

use serde::{Deserialize, Serialize};

use crate::Secret;

/// How long each pairing phase took, in milliseconds; every field is optional.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseTimings {
    /// Joining the router.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wifi_ms: Option<u32>,
    /// IoT DNS lookup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_ms: Option<u32>,
    /// Activation request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activate_ms: Option<u32>,
    /// MQTT connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt_ms: Option<u32>,
}

/// What a device sends to activate, signed with its authkey.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivateRequest {
    /// License uuid.
    pub uuid: String,
    /// Product key the license belongs to.
    pub product_key: String,
    /// The 14-character pairing token (parsed by the service, so that a malformed one is
    /// answered `token_invalid` rather than a generic bad request).
    pub token: Secret,
    /// Firmware version.
    pub sw_ver: String,
    /// Pairing component version.
    pub module_version: String,
    /// True when a local factory reset happened since the last activation.
    pub reset: bool,
    /// Timings measured so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timings: Option<PhaseTimings>,
}

/// A device's MQTT login.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MqttCredentials {
    /// Broker address, `host:port` or `mqtt(s)://host:port`.
    pub url: String,
    /// MQTT client id (the dev-id).
    pub client_id: String,
    /// MQTT username (the dev-id).
    pub username: String,
    /// MQTT password: a JWT signed by the service.
    pub password: Secret,
    /// When the password stops working, Unix seconds.
    pub expires_at: u64,
}

/// The device's own topics.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topics {
    /// Cloud to device: `smart/device/in/<dev_id>`.
    #[serde(rename = "in")]
    pub inbound: String,
    /// Device to cloud: `smart/device/out/<dev_id>`.
    pub out: String,
}

/// The cloud's answer to a successful activation.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivateResponse {
    /// The device id, kept across re-activations by the same owner.
    pub dev_id: String,
    /// The secret the device signs later requests with.
    pub dev_secret: Secret,
    /// MQTT login.
    pub mqtt: MqttCredentials,
    /// The device's topics.
    pub topics: Topics,
    /// The cloud's clock, Unix seconds, so the device can correct its own.
    pub server_time: u64,
}

/// Body of a credential refresh: empty today, strict so that a misspelt future field is
/// noticed.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsRequest {}

/// The cloud's answer to a credential refresh.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialsResponse {
    /// Fresh MQTT login.
    pub mqtt: MqttCredentials,
    /// The cloud's clock, Unix seconds.
    pub server_time: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{
        assert_missing_field, assert_round_trip, assert_unknown_field_refused,
    };

    const REQUEST: &str = r#"{"uuid":"tether0123456789abcd","product_key":"p0123456789abcde","token":"EUab12CD34wxYZ","sw_ver":"0.1.0","module_version":"0.1.0","reset":false,"timings":{"wifi_ms":812,"dns_ms":35}}"#;
    const RESPONSE: &str = r#"{"dev_id":"d-01","dev_secret":"s3cr3t","mqtt":{"url":"127.0.0.1:1883","client_id":"d-01","username":"d-01","password":"jwt.jwt.jwt","expires_at":1700086400},"topics":{"in":"smart/device/in/d-01","out":"smart/device/out/d-01"},"server_time":1700000000}"#;

    #[test]
    fn the_activation_request_round_trips_and_hides_the_token_in_debug() {
        let req: ActivateRequest = serde_json::from_str(REQUEST).expect("parses");
        assert_eq!(req.timings.and_then(|t| t.wifi_ms), Some(812));
        assert_eq!(req.token.expose(), "EUab12CD34wxYZ");
        assert!(!format!("{req:?}").contains("EUab12CD34wxYZ"));
        assert_round_trip(&req);
        let without_timings = REQUEST.replace(r#","timings":{"wifi_ms":812,"dns_ms":35}"#, "");
        let req: ActivateRequest =
            serde_json::from_str(&without_timings).expect("timings are optional");
        assert_eq!(req.timings, None);
    }

    #[test]
    fn the_activation_request_is_strict() {
        assert_missing_field::<ActivateRequest>(&REQUEST.replace(r#""reset":false,"#, ""), "reset");
        assert_missing_field::<ActivateRequest>(
            &REQUEST.replace(r#""uuid":"tether0123456789abcd","#, ""),
            "uuid",
        );
        assert_unknown_field_refused::<ActivateRequest>(
            &REQUEST.replace(r#""reset""#, r#""resett""#),
            "resett",
        );
        assert_unknown_field_refused::<ActivateRequest>(
            &REQUEST.replace("dns_ms", "dnsms"),
            "dnsms",
        );
    }

    #[test]
    fn the_activation_response_round_trips_hides_secrets_and_ignores_unknown_fields() {
        let resp: ActivateResponse = serde_json::from_str(RESPONSE).expect("parses");
        assert_eq!(resp.topics.inbound, "smart/device/in/d-01");
        let shown = format!("{resp:?}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("jwt.jwt.jwt"),
            "{shown}"
        );
        assert_round_trip(&resp);
        let newer = RESPONSE.replace(r#""server_time""#, r#""region":"EU","server_time""#);
        assert_eq!(
            serde_json::from_str::<ActivateResponse>(&newer).expect("parses"),
            resp
        );
        assert_missing_field::<ActivateResponse>(
            &RESPONSE.replace(r#""dev_id":"d-01","#, ""),
            "dev_id",
        );
    }

    #[test]
    fn credential_refresh_bodies_round_trip() {
        let req: CredentialsRequest = serde_json::from_str("{}").expect("parses");
        assert_round_trip(&req);
        assert_unknown_field_refused::<CredentialsRequest>(r#"{"force":true}"#, "force");
        let resp = CredentialsResponse {
            mqtt: serde_json::from_str::<ActivateResponse>(RESPONSE)
                .expect("parses")
                .mqtt,
            server_time: 5,
        };
        assert_round_trip(&resp);
        assert_missing_field::<CredentialsResponse>(r#"{"server_time":5}"#, "mqtt");
    }
}

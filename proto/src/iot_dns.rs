//! IoT DNS (`POST /v2/url_config`): the device names its region and the endpoints it
//! wants; the cloud answers with their addresses. Field names follow TuyaOS so the shape
//! is familiar.

use serde::{Deserialize, Serialize};

/// The request a device sends.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UrlConfigRequest {
    /// Two-letter region from the pairing token, such as `EU`.
    pub region: String,
    /// Environment; `pro` unless a test deployment says otherwise.
    #[serde(default = "default_env")]
    pub env: String,
    /// The endpoints wanted.
    pub config: Vec<UrlConfigItem>,
}

fn default_env() -> String {
    "pro".to_owned()
}

/// One endpoint wanted.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UrlConfigItem {
    /// Which endpoint.
    pub key: EndpointKey,
    /// Whether the CA certificates that verify it should come along in `caArr`.
    #[serde(default)]
    pub need_ca: bool,
}

/// The endpoints IoT DNS knows.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EndpointKey {
    /// Plain HTTP API base URL.
    HttpUrl,
    /// Plain MQTT broker address, `host:port`.
    MqttUrl,
    /// HTTPS API base URL, where TLS is configured.
    HttpsSelfUrl,
    /// MQTT over TLS broker address, where TLS is configured.
    MqttsSelfUrl,
}

/// One endpoint's address.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// URL or `host:port`.
    pub addr: String,
}

/// The cloud's answer. Keys not configured on the service are absent.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UrlConfigResponse {
    /// Plain HTTP API base URL.
    #[serde(rename = "httpUrl", default, skip_serializing_if = "Option::is_none")]
    pub http_url: Option<Endpoint>,
    /// Plain MQTT broker address.
    #[serde(rename = "mqttUrl", default, skip_serializing_if = "Option::is_none")]
    pub mqtt_url: Option<Endpoint>,
    /// HTTPS API base URL.
    #[serde(
        rename = "httpsSelfUrl",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub https_self_url: Option<Endpoint>,
    /// MQTT over TLS broker address.
    #[serde(
        rename = "mqttsSelfUrl",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub mqtts_self_url: Option<Endpoint>,
    /// Base64 DER CA certificates, when `need_ca` was asked for.
    #[serde(rename = "caArr", default)]
    pub ca_arr: Vec<String>,
    /// How long the device may cache the answer, in seconds.
    pub ttl: u32,
}

impl UrlConfigResponse {
    /// The endpoint for `key`, if the cloud answered it.
    pub fn endpoint(&self, key: EndpointKey) -> Option<&Endpoint> {
        match key {
            EndpointKey::HttpUrl => self.http_url.as_ref(),
            EndpointKey::MqttUrl => self.mqtt_url.as_ref(),
            EndpointKey::HttpsSelfUrl => self.https_self_url.as_ref(),
            EndpointKey::MqttsSelfUrl => self.mqtts_self_url.as_ref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{
        assert_missing_field, assert_round_trip, assert_unknown_field_refused,
    };

    #[test]
    fn the_tuyaos_shaped_request_parses() {
        let json = r#"{"region":"EU","env":"pro","config":[{"key":"httpUrl","need_ca":false},{"key":"mqttUrl","need_ca":false}]}"#;
        let req: UrlConfigRequest = serde_json::from_str(json).expect("parses");
        assert_eq!(req.config[1].key, EndpointKey::MqttUrl);
        assert_round_trip(&req);
        let minimal: UrlConfigRequest =
            serde_json::from_str(r#"{"region":"US","config":[{"key":"mqttsSelfUrl"}]}"#)
                .expect("parses");
        assert_eq!(minimal.env, "pro");
        assert!(!minimal.config[0].need_ca);
    }

    #[test]
    fn request_errors_name_the_field() {
        assert_missing_field::<UrlConfigRequest>(r#"{"env":"pro","config":[]}"#, "region");
        assert_unknown_field_refused::<UrlConfigRequest>(
            r#"{"region":"EU","config":[],"extra":1}"#,
            "extra",
        );
        let err = serde_json::from_str::<UrlConfigRequest>(
            r#"{"region":"EU","config":[{"key":"ftpUrl"}]}"#,
        )
        .expect_err("unknown key");
        assert!(err.to_string().contains("ftpUrl"), "{err}");
    }

    #[test]
    fn the_response_round_trips_and_ignores_unknown_fields() {
        let json = r#"{"httpUrl":{"addr":"http://127.0.0.1:8080"},"mqttUrl":{"addr":"127.0.0.1:1883"},"caArr":[],"ttl":600,"future":true}"#;
        let resp: UrlConfigResponse = serde_json::from_str(json).expect("parses");
        assert_eq!(
            resp.endpoint(EndpointKey::MqttUrl).map(|e| e.addr.as_str()),
            Some("127.0.0.1:1883")
        );
        assert_eq!(resp.endpoint(EndpointKey::HttpsSelfUrl), None);
        assert_round_trip(&resp);
        assert_missing_field::<UrlConfigResponse>(r#"{"caArr":[]}"#, "ttl");
    }
}

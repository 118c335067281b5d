//! The data channel, protocol v1: one JSON object per line between a provisioner and an
//! unpaired device. The pairing component parses [`ChannelRequest`]s and answers with
//! [`ChannelReply`]s; the CLI sends the one and reads the other. Framing and its bounds
//! are the component's business.

use serde::{Deserialize, Serialize};

use crate::status::DeviceStatus;
use crate::{ErrorCode, ReplyCode, Secret};

/// The protocol version `info` reports.
pub const PROTOCOL_VERSION: u32 = 1;

/// What a provisioner asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ChannelRequest {
    /// The seed API: router credentials and a pairing token. `ack` answers.
    Config {
        /// The router's network name.
        ssid: String,
        /// Its password.
        passwd: Secret,
        /// The pairing token, all 14 characters (checked by the component, which
        /// answers a malformed one with `token_invalid`).
        token: Secret,
    },
    /// Progress; `status` answers.
    Status {},
    /// Scan for access points; `scan` answers once the scan is done.
    Scan {},
    /// Identity and versions; `info` answers.
    Info {},
}

/// What a device answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ChannelReply {
    /// The answer to `config`: `ok` or the error that refused the settings.
    Ack {
        /// How the request ended.
        code: ReplyCode,
    },
    /// The answer to `status`.
    Status(DeviceStatus),
    /// The answer to `info`.
    Info(DeviceInfo),
    /// The answer to `scan`.
    Scan {
        /// The access points seen.
        aps: Vec<AccessPoint>,
    },
    /// A refused request. A malformed line or too many connections also closes the
    /// connection.
    Error {
        /// Why.
        code: ErrorCode,
        /// Detail for people.
        message: String,
    },
}

/// Who the device is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// Its license uuid.
    pub uuid: String,
    /// Its product key.
    pub product_key: String,
    /// Its firmware version.
    pub sw_ver: String,
    /// The pairing component's version.
    pub module_version: String,
    /// The channel protocol version.
    pub protocol: u32,
}

/// An access point a scan found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessPoint {
    /// Network name.
    pub ssid: String,
    /// Hardware address.
    pub bssid: String,
    /// Signal strength, dBm.
    pub rssi: i16,
    /// Radio channel.
    pub channel: u8,
    /// Security, such as `open` or `wpa2`.
    pub security: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_round_trip, assert_unknown_field_refused};

    #[test]
    fn requests_parse_from_their_wire_form_and_hide_secrets() {
        let config: ChannelRequest = serde_json::from_str(
            r#"{"type":"config","ssid":"home","passwd":"correct horse","token":"EUab12CD34wxYZ"}"#,
        )
        .expect("parses");
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("correct horse") && !shown.contains("wxYZ"),
            "{shown}"
        );
        assert_round_trip(&config);
        assert_eq!(
            crate::json_line(&ChannelRequest::Status {}),
            b"{\"type\":\"status\"}\n".to_vec()
        );
        assert_unknown_field_refused::<ChannelRequest>(r#"{"type":"status","x":1}"#, "x");
        assert!(serde_json::from_str::<ChannelRequest>(r#"{"type":"reboot"}"#).is_err());
    }

    #[test]
    fn replies_carry_their_type_and_round_trip() {
        assert_eq!(
            crate::json_line(&ChannelReply::Ack {
                code: ReplyCode::Ok
            }),
            b"{\"type\":\"ack\",\"code\":\"ok\"}\n".to_vec()
        );
        let error = ChannelReply::Error {
            code: ErrorCode::Busy,
            message: "too many".into(),
        };
        assert_round_trip(&error);
        let scan = ChannelReply::Scan {
            aps: vec![AccessPoint {
                ssid: "home".into(),
                bssid: "aa:bb:cc:dd:ee:ff".into(),
                rssi: -40,
                channel: 6,
                security: "wpa2".into(),
            }],
        };
        assert_round_trip(&scan);
        let info: ChannelReply = serde_json::from_str(
            r#"{"type":"info","uuid":"u","product_key":"p","sw_ver":"1","module_version":"0.1.0","protocol":1}"#,
        )
        .expect("parses");
        assert!(matches!(
            info,
            ChannelReply::Info(DeviceInfo { protocol: 1, .. })
        ));
    }
}

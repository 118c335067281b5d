//! The data channel: one JSON object per line between a provisioner and a device.
//!
//! Protocol v2 (the default): the provisioner sends [`ClearRequest`]s and the device
//! answers [`ClearReply`]s — `info`, the SPAKE2+ handshake (`pake_params`, `pake1`,
//! `pake3`), then `sealed` frames (see [`crate::secure`]). A sealed frame from the
//! provisioner holds one [`ChannelRequest`], one from the device one [`ChannelReply`].
//!
//! Protocol v1 (only behind the device's development switch): the same
//! [`ChannelRequest`]s and [`ChannelReply`]s in clear. The pairing component parses and
//! answers; the CLI sends and reads. Framing and its bounds are the component's business.

use serde::{Deserialize, Serialize};

use crate::b64::B64;
use crate::status::DeviceStatus;
use crate::{ErrorCode, ReplyCode, Secret};

/// The protocol version of the secure channel.
pub const PROTOCOL_VERSION: u32 = 2;
/// The plaintext protocol, offered only behind the development switch.
pub const PLAINTEXT_PROTOCOL: u32 = 1;

/// A line from the provisioner, in clear (protocol v2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClearRequest {
    /// What the device offers; [`PublicInfo`] answers. Nothing in it is private.
    Info {},
    /// Starts a handshake: the salt of the device's setup code; `pake_params` answers.
    PakeParams {},
    /// SPAKE2+'s `shareP`; `pake2` answers.
    Pake1 {
        /// The prover's share, an uncompressed P-256 point.
        share_p: B64,
    },
    /// SPAKE2+'s `confirmP`; a sealed [`ChannelReply::Ready`] answers.
    Pake3 {
        /// The prover's key confirmation.
        confirm_p: B64,
    },
    /// One sealed [`ChannelRequest`].
    Sealed {
        /// Ciphertext and tag.
        data: B64,
    },
}

/// A line from the device, in clear (protocol v2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClearReply {
    /// The answer to `info`.
    Info(PublicInfo),
    /// The answer to `pake_params`.
    PakeParams {
        /// The security mode the handshake runs ([`crate::secure::SECURITY_MODE`]).
        mode: String,
        /// The salt the setup code is hashed with.
        salt: B64,
    },
    /// SPAKE2+'s `shareV` and `confirmV`.
    Pake2 {
        /// The verifier's share.
        share_v: B64,
        /// The verifier's key confirmation.
        confirm_v: B64,
    },
    /// One sealed [`ChannelReply`].
    Sealed {
        /// Ciphertext and tag.
        data: B64,
    },
    /// The device refused; most refusals also close the connection.
    Refused(Refusal),
}

/// What anyone in range may learn: no uuid, no device id, no network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicInfo {
    /// The product key.
    pub product_key: String,
    /// The protocol versions the device speaks (1 only behind its development switch).
    pub protocols: Vec<u32>,
    /// The security modes of protocol 2.
    pub security: Vec<String>,
}

/// A refusal on the channel, with its typed reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// Why.
    pub code: ChannelError,
    /// Detail for people.
    pub message: String,
    /// When `backoff`: how long to wait before the next handshake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// Why the channel refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelError {
    /// The key confirmation failed: the setup code is wrong.
    AuthFailed,
    /// Too soon after a failed handshake; wait `retry_after_ms`.
    Backoff,
    /// Too many failed handshakes: open the pairing window on the device to unlock it.
    Locked,
    /// The device is paired and its pairing window is closed.
    WindowClosed,
    /// Too many connections or handshakes at once.
    Busy,
    /// A line that is not a request, or a request out of order.
    BadRequest,
    /// A sealed frame that failed to open; the session is over.
    BadFrame,
    /// The handshake or the session took too long or sat idle.
    Timeout,
    /// Plaintext (v1) is off, or the device has no pairing verifier.
    Unsupported,
}

impl ChannelError {
    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            Self::AuthFailed => "auth_failed",
            Self::Backoff => "backoff",
            Self::Locked => "locked",
            Self::WindowClosed => "window_closed",
            Self::Busy => "busy",
            Self::BadRequest => "bad_request",
            Self::BadFrame => "bad_frame",
            Self::Timeout => "timeout",
            Self::Unsupported => "unsupported",
        }
    }
}

impl std::fmt::Display for ChannelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

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
        /// The provisioner's W3C trace context (`traceparent`), which the device carries
        /// into its cloud requests for this pairing. Sent only to a device whose
        /// [`DeviceInfo::features`] lists [`FEATURE_TRACE`]; a malformed one is ignored.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        traceparent: Option<String>,
    },
    /// Progress; `status` answers.
    Status {},
    /// Scan for access points; `scan` answers once the scan is done.
    Scan {},
    /// Identity and versions; `info` answers (inside a session only: `info` in clear is
    /// [`ClearRequest::Info`]).
    Info {},
    /// A paired device moves to another router without pairing again: it tries the new
    /// network and keeps the old one until it is online on the new one. `ack` answers.
    Wifi {
        /// The new router's network name.
        ssid: String,
        /// Its password.
        passwd: Secret,
    },
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
    /// The session is established (the answer to `pake3`).
    Ready {
        /// Seconds the pairing window stays open, if it was opened locally.
        window_secs: Option<u32>,
    },
    /// A request the channel refused inside a session (such as `config` after the
    /// window closed).
    Refused(Refusal),
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
    /// What this device's component understands beyond its protocol version, such as
    /// [`FEATURE_TRACE`] (absent from older components).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
}

/// A [`DeviceInfo::features`] entry: `config` may carry a `traceparent`.
pub const FEATURE_TRACE: &str = "trace";

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

    #[test]
    fn v2_lines_have_their_wire_form() {
        let pake1: ClearRequest =
            serde_json::from_str(r#"{"type":"pake1","share_p":"BAEC"}"#).expect("parses");
        assert_eq!(
            pake1,
            ClearRequest::Pake1 {
                share_p: B64(vec![4, 1, 2])
            }
        );
        assert_round_trip(&pake1);
        assert_unknown_field_refused::<ClearRequest>(r#"{"type":"info","uuid":"x"}"#, "uuid");
        // A v1 request is not a v2 line (the component tries v1 only behind its switch).
        assert!(serde_json::from_str::<ClearRequest>(r#"{"type":"status"}"#).is_err());
        let refused = ClearReply::Refused(Refusal {
            code: ChannelError::Backoff,
            message: "wait".into(),
            retry_after_ms: Some(500),
        });
        assert_eq!(
            String::from_utf8(crate::json_line(&refused)).expect("utf-8"),
            "{\"type\":\"refused\",\"code\":\"backoff\",\"message\":\"wait\",\"retry_after_ms\":500}\n"
        );
        assert_round_trip(&refused);
        let info = ClearReply::Info(PublicInfo {
            product_key: "p".into(),
            protocols: vec![2],
            security: vec![crate::secure::SECURITY_MODE.into()],
        });
        assert_round_trip(&info);
        let wifi: ChannelRequest =
            serde_json::from_str(r#"{"type":"wifi","ssid":"new","passwd":"correct horse"}"#)
                .expect("parses");
        assert!(!format!("{wifi:?}").contains("correct horse"));
        assert_round_trip(&ChannelReply::Ready {
            window_secs: Some(60),
        });
        for code in [
            ChannelError::AuthFailed,
            ChannelError::Locked,
            ChannelError::WindowClosed,
            ChannelError::BadFrame,
        ] {
            assert_eq!(serde_json::to_value(code).expect("serialises"), code.name());
        }
    }
}

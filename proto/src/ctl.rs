//! The host's control socket: one JSON object per line over a unix socket, used by
//! `tether-host ctl` and the C API. Requests are [`CtlRequest`]s. `status` answers with
//! a [`DeviceStatus`](crate::status::DeviceStatus), `module-status` with a
//! [`ModuleStatus`](crate::module::ModuleStatus), everything else (and any refusal) with
//! a [`CtlReply`], whose `oprt` is what the C API returns.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::module::UpdateReport;
use crate::{ErrorCode, ReplyCode, Secret};

/// Longest request line the host reads.
pub const MAX_LINE: usize = 4096;

/// What a local client asks the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case", deny_unknown_fields)]
pub enum CtlRequest {
    /// The seed API.
    UserCfg {
        /// The router's network name.
        ssid: String,
        /// Its password.
        passwd: Secret,
        /// The pairing token.
        token: Secret,
    },
    /// The device's pairing status.
    Status {},
    /// Local factory reset.
    Reset {},
    /// Apply the bundle file at `path` (read by the host).
    ModuleLoad {
        /// An absolute path.
        path: PathBuf,
    },
    /// The component in use and the update slots.
    ModuleStatus {},
    /// Opens the data channel's pairing window (a local action, as a button press is):
    /// an authenticated provisioner may then configure a paired device, and a channel
    /// locked by failed handshakes unlocks.
    PairingOpen {
        /// How long, in seconds (1-3600).
        secs: u32,
    },
    /// Closes the pairing window.
    PairingClose {},
}

/// How long `pairing open` keeps the window open unless told otherwise.
pub const DEFAULT_WINDOW_SECS: u32 = 180;
/// The longest pairing window.
pub const MAX_WINDOW_SECS: u32 = 3_600;

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CtlReply {
    /// `ok`, an error's name or `update_refused`.
    pub code: ReplyCode,
    /// The OPRT number of `code`.
    pub oprt: i32,
    /// Detail for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// For `update_refused`: the refusal's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For a `module-load` that worked: what the swap measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<UpdateReport>,
}

impl CtlReply {
    /// `ok`, or the error with its description.
    pub fn of(result: Result<(), ErrorCode>) -> Self {
        match result {
            Ok(()) => Self::with(ReplyCode::Ok, None),
            Err(code) => Self::error(code, code.description()),
        }
    }

    /// A refusal with its detail.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::with(ReplyCode::Error(code), Some(message.into()))
    }

    /// A bundle installed.
    pub fn applied(report: UpdateReport) -> Self {
        Self {
            report: Some(report),
            ..Self::with(ReplyCode::Ok, None)
        }
    }

    /// A bundle refused: `reason` names the refusal.
    pub fn update_refused(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            reason: Some(reason.into()),
            ..Self::with(ReplyCode::UpdateRefused, Some(message.into()))
        }
    }

    fn with(code: ReplyCode, message: Option<String>) -> Self {
        Self {
            code,
            oprt: code.oprt(),
            message,
            reason: None,
            report: None,
        }
    }
}

/// An answer that is either the value asked for or a refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CtlAnswer<T> {
    /// The value.
    Value(T),
    /// Why there is none.
    Refused(CtlReply),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::DeviceStatus;
    use crate::test_support::assert_unknown_field_refused;

    #[test]
    fn replies_keep_the_c_api_shape() {
        assert_eq!(
            serde_json::to_string(&CtlReply::of(Ok(()))).expect("serialises"),
            r#"{"code":"ok","oprt":0}"#
        );
        let refused = CtlReply::of(Err(ErrorCode::TokenInvalid));
        assert_eq!(refused.oprt, ErrorCode::TokenInvalid.oprt());
        assert_eq!(
            refused.message.as_deref(),
            Some(ErrorCode::TokenInvalid.description())
        );
        let update = CtlReply::update_refused("replay", "sequence 1 is not above 2");
        assert_eq!(update.oprt, ErrorCode::Internal.oprt());
        assert_eq!(update.code.name(), "update_refused");
    }

    #[test]
    fn requests_hide_secrets_and_refuse_unknown_fields() {
        let request: CtlRequest = serde_json::from_str(
            r#"{"cmd":"user-cfg","ssid":"home","passwd":"hunter22","token":"EUab12CD34wxYZ"}"#,
        )
        .expect("parses");
        assert!(!format!("{request:?}").contains("hunter22"));
        assert_eq!(
            crate::json_line(&CtlRequest::ModuleStatus {}),
            b"{\"cmd\":\"module-status\"}\n".to_vec()
        );
        assert_unknown_field_refused::<CtlRequest>(r#"{"cmd":"reset","now":true}"#, "now");
    }

    #[test]
    fn an_answer_is_the_value_or_the_refusal() {
        let refused: CtlAnswer<DeviceStatus> =
            serde_json::from_str(r#"{"code":"internal","oprt":-1}"#).expect("parses");
        assert!(matches!(
            refused,
            CtlAnswer::Refused(CtlReply {
                code: ReplyCode::Error(ErrorCode::Internal),
                ..
            })
        ));
    }
}

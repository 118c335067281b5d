//! Pairing reports (`POST /v1/pairing-reports`): a device tells the cloud how a pairing
//! with a token went, failures included, once it can reach the cloud again.

use serde::{Deserialize, Serialize};

use crate::activation::PhaseTimings;
use crate::{ErrorCode, Secret};

/// A phase of the pairing flow.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Joining the router.
    Wifi,
    /// IoT DNS lookup.
    Dns,
    /// Activation.
    Activation,
    /// MQTT connect.
    Mqtt,
}

/// How the pairing ended.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The device went online.
    Success,
    /// The device gave up; `code` and `phase` say why and where.
    Failure,
}

/// A report, signed by the device.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairingReport {
    /// The pairing token the report is about (all 14 characters: proof the device held it).
    pub token: Secret,
    /// Success or failure.
    pub outcome: Outcome,
    /// The failure's code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<ErrorCode>,
    /// The phase that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Detail for people, at most a line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Timings measured.
    #[serde(default)]
    pub timings: PhaseTimings,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{
        assert_missing_field, assert_round_trip, assert_unknown_field_refused,
    };

    #[test]
    fn a_failure_report_round_trips() {
        let json = r#"{"token":"EUab12CD34wxYZ","outcome":"failure","code":"passwd_error","phase":"wifi","message":"4-way handshake failed","timings":{"wifi_ms":3000}}"#;
        let report: PairingReport = serde_json::from_str(json).expect("parses");
        assert_eq!(report.code, Some(ErrorCode::PasswdError));
        assert_eq!(report.phase, Some(Phase::Wifi));
        assert_round_trip(&report);
    }

    #[test]
    fn a_success_report_needs_only_token_and_outcome() {
        let report: PairingReport =
            serde_json::from_str(r#"{"token":"EUab12CD34wxYZ","outcome":"success"}"#)
                .expect("parses");
        assert_eq!(report.timings, PhaseTimings::default());
        assert_missing_field::<PairingReport>(r#"{"token":"EUab12CD34wxYZ"}"#, "outcome");
        assert_unknown_field_refused::<PairingReport>(
            r#"{"token":"EUab12CD34wxYZ","outcome":"success","uuid":"x"}"#,
            "uuid",
        );
    }
}

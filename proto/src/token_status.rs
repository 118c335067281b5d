//! Pairing tokens as the provisioner sees them: creating one (`POST /v1/pairing-tokens`)
//! and following it (`GET /v1/pairing-tokens/{token}`), with the devices it activated and
//! the failures devices reported.

use serde::{Deserialize, Serialize};

use crate::activation::PhaseTimings;
use crate::reports::Phase;
use crate::{ErrorCode, Secret};

/// Body of a token request; the service applies its defaults to absent fields.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// Lifetime in seconds, 30-86400 (default 600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 30, maximum = 86400))]
    pub ttl_secs: Option<u32>,
    /// How many devices the token may activate, 1-50 (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 50))]
    pub max_devices: Option<u32>,
}

/// A new token. Only this answer carries the secret part.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateTokenResponse {
    /// All 14 characters, for the device.
    pub token: Secret,
    /// Region the token is for.
    pub region: String,
    /// Expiry, Unix seconds.
    pub expires_at: u64,
    /// How many devices it may activate.
    pub max_devices: u32,
}

/// Where a token stands.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenState {
    /// Still able to activate devices.
    Pending,
    /// Has activated as many devices as it allows.
    Complete,
    /// Its lifetime passed.
    Expired,
    /// Its owner revoked it.
    Revoked,
}

impl TokenState {
    /// The wire name.
    pub const fn name(self) -> &'static str {
        match self {
            TokenState::Pending => "pending",
            TokenState::Complete => "complete",
            TokenState::Expired => "expired",
            TokenState::Revoked => "revoked",
        }
    }
}

/// A device a token activated.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenDevice {
    /// Device id.
    pub dev_id: String,
    /// License uuid.
    pub uuid: String,
    /// When it activated, Unix seconds.
    pub activated_at: u64,
    /// How long each phase took, from the device's report once it went online.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timings: Option<PhaseTimings>,
}

/// A failure reported for a token.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenFailure {
    /// License uuid of the reporting device.
    pub uuid: String,
    /// What failed.
    pub code: ErrorCode,
    /// Where it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// How long each phase took until the failure, as the device measured them.
    #[serde(default)]
    pub timings: PhaseTimings,
    /// When, Unix seconds.
    pub at: u64,
}

/// A token's status.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenStatus {
    /// The public part of the token (region and token id, 10 characters).
    pub token: String,
    /// State.
    pub state: TokenState,
    /// Expiry, Unix seconds.
    pub expires_at: u64,
    /// Devices activated with it.
    #[serde(default)]
    pub devices: Vec<TokenDevice>,
    /// Failures reported for it.
    #[serde(default)]
    pub failures: Vec<TokenFailure>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{
        assert_missing_field, assert_round_trip, assert_unknown_field_refused,
    };

    #[test]
    fn token_creation_bodies_round_trip() {
        let req: CreateTokenRequest =
            serde_json::from_str(r#"{"max_devices":20}"#).expect("parses");
        assert_eq!(req.ttl_secs, None);
        assert_round_trip(&req);
        assert_unknown_field_refused::<CreateTokenRequest>(r#"{"ttl":5}"#, "ttl");
        let resp: CreateTokenResponse = serde_json::from_str(
            r#"{"token":"EUab12CD34wxYZ","region":"EU","expires_at":1700000600,"max_devices":1}"#,
        )
        .expect("parses");
        assert!(!format!("{resp:?}").contains("wxYZ"));
        assert_round_trip(&resp);
        assert_missing_field::<CreateTokenResponse>(
            r#"{"token":"x","region":"EU","max_devices":1}"#,
            "expires_at",
        );
    }

    #[test]
    fn token_status_round_trips_and_ignores_unknown_fields() {
        let json = r#"{"token":"EUab12CD34","state":"pending","expires_at":1700000600,"devices":[{"dev_id":"d-1","uuid":"u1","activated_at":1700000100}],"failures":[{"uuid":"u2","code":"passwd_error","phase":"wifi","at":1700000200}],"owner":"ann"}"#;
        let status: TokenStatus = serde_json::from_str(json).expect("parses");
        assert_eq!(status.state, TokenState::Pending);
        for state in [
            TokenState::Pending,
            TokenState::Complete,
            TokenState::Expired,
            TokenState::Revoked,
        ] {
            assert_eq!(
                serde_json::to_value(state).expect("serialises"),
                state.name()
            );
        }
        assert_eq!(status.failures[0].code, ErrorCode::PasswdError);
        assert_round_trip(&status);
        assert_missing_field::<TokenStatus>(r#"{"token":"EUab12CD34","expires_at":1}"#, "state");
    }
}

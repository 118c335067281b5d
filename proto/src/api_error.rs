//! The one error body of the cloud API: `{"error": {"code": "<snake_case>", "message": "…"}}`.

use serde::{Deserialize, Serialize};

use crate::ErrorCode;

/// An error answer.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    /// The error.
    pub error: ApiError,
}

/// Code and message of an error answer.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// Stable snake_case code. The API has codes beyond the pairing ones (such as
    /// `rate_limited` or `device_unknown`), so this is a string.
    pub code: String,
    /// Explanation for people.
    pub message: String,
}

impl ApiErrorBody {
    /// An error body.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: ApiError {
                code: code.into(),
                message: message.into(),
            },
        }
    }

    /// The pairing error code, when the code is one.
    pub fn error_code(&self) -> Option<ErrorCode> {
        ErrorCode::from_name(&self.error.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_missing_field, assert_round_trip};

    #[test]
    fn the_error_body_round_trips_and_maps_pairing_codes() {
        let body: ApiErrorBody =
            serde_json::from_str(r#"{"error":{"code":"token_used","message":"used","hint":"x"}}"#)
                .expect("parses");
        assert_eq!(body.error_code(), Some(ErrorCode::TokenUsed));
        assert_round_trip(&body);
        assert_eq!(
            ApiErrorBody::new("rate_limited", "slow down").error_code(),
            None
        );
        assert_missing_field::<ApiErrorBody>(r#"{"error":{"code":"x"}}"#, "message");
    }
}

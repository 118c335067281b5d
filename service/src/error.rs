//! The API's one error type: every failure becomes `{"error": {"code", "message"}}` with a
//! fitting status. Internal errors are logged and answered with a generic message.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tether_proto::ErrorCode;
use tether_proto::api_error::ApiErrorBody;

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed (body, query or path).
    #[error("{0}")]
    BadRequest(String),
    /// The body is not JSON or not labelled `application/json`.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The body is larger than the limit.
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// No valid credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Valid credentials without the needed role.
    #[error("this needs the admin role")]
    Forbidden,
    /// Nothing of that kind exists for the caller.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// IoT DNS knows no such region.
    #[error("region {0:?} is not served here")]
    RegionUnknown(String),
    /// The signing uuid has no license.
    #[error("no device with that uuid is licensed here")]
    DeviceUnknown,
    /// An operator revoked the device's license: it activates no more.
    #[error("this device's license was revoked")]
    LicenseRevoked,
    /// A pairing failure with its own code.
    #[error("{message}")]
    Pairing {
        /// The code.
        code: ErrorCode,
        /// Detail for people.
        message: String,
    },
    /// A uniqueness conflict outside pairing (such as an existing username).
    #[error("{0}")]
    Conflict(String),
    /// A component bundle failed its checks.
    #[error("{0}")]
    Bundle(#[from] tether_proto::bundle::BundleError),
    /// The service is not set up for this request (a missing setting, named).
    #[error("{0}")]
    NotConfigured(String),
    /// The device is not connected, so it cannot take what was asked now.
    #[error("the device is offline")]
    DeviceOffline,
    /// The device did not acknowledge a message within this many seconds.
    #[error(
        "the device did not acknowledge the message within {0} s (it may have just gone \
         offline, or its node stopped); send it again if it must arrive"
    )]
    NotDelivered(u64),
    /// Too many requests; retry after this many seconds.
    #[error("too many requests; retry in {0} s")]
    RateLimited(u64),
    /// A bug or an unavailable dependency.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// A pairing failure with the code's own description.
    pub fn pairing(code: ErrorCode) -> Self {
        Self::Pairing {
            code,
            message: code.description().to_owned(),
        }
    }

    /// The HTTP status the error is answered with.
    pub fn status(&self) -> StatusCode {
        self.status_and_code().0
    }

    /// The error's stable snake_case code.
    pub fn code(&self) -> &'static str {
        self.status_and_code().1
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            Self::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::RegionUnknown(_) => (StatusCode::NOT_FOUND, "region_unknown"),
            Self::DeviceUnknown => (StatusCode::NOT_FOUND, "device_unknown"),
            Self::LicenseRevoked => (StatusCode::FORBIDDEN, "license_revoked"),
            Self::Pairing { code, .. } => (pairing_status(*code), code.name()),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::Bundle(e) => {
                use tether_proto::bundle::BundleError as B;
                match e {
                    B::Malformed(_) => (StatusCode::BAD_REQUEST, "bundle_malformed"),
                    B::UntrustedKey(_) => (StatusCode::FORBIDDEN, "bundle_untrusted_key"),
                    B::BadSignature => (StatusCode::BAD_REQUEST, "bundle_bad_signature"),
                    B::Corrupted => (StatusCode::BAD_REQUEST, "bundle_corrupted"),
                }
            }
            Self::DeviceOffline => (StatusCode::CONFLICT, "device_offline"),
            Self::NotDelivered(_) => (StatusCode::GATEWAY_TIMEOUT, "not_delivered"),
            Self::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            // The request is valid, the service's state does not allow it: a conflict.
            Self::NotConfigured(_) => (StatusCode::CONFLICT, "not_configured"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

fn pairing_status(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::TokenExpired => StatusCode::GONE,
        ErrorCode::TokenUsed | ErrorCode::DevAlreadyBound | ErrorCode::Busy => StatusCode::CONFLICT,
        ErrorCode::SignatureError | ErrorCode::MqttAuthFailed => StatusCode::UNAUTHORIZED,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::Timeout => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::BAD_REQUEST,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let Self::Internal(e) = &self {
            tracing::error!(error = %format!("{e:#}"), "request failed");
        }
        let body = ApiErrorBody::new(code, self.to_string());
        let mut response = (status, axum::Json(body)).into_response();
        if let Self::RateLimited(secs) = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}

impl From<crate::broker::PublishError> for ApiError {
    fn from(e: crate::broker::PublishError) -> Self {
        match e {
            crate::broker::PublishError::TooLarge(_) => {
                Self::PayloadTooLarge(crate::broker::MAX_DEVICE_PAYLOAD)
            }
            other => Self::Internal(other.into()),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.into())
    }
}

/// The result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

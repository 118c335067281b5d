//! JSON bodies with the API's error shape: a malformed, mistyped, oversized or wrongly
//! labelled body is a 4xx with a message that names the problem.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Largest request body the API accepts.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A JSON body; rejections become [`ApiError`]s. Every body of this API is an object:
/// an array (which serde would also map onto a struct's fields) is refused.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<serde_json::Value>::from_request(req, state).await {
            Ok(axum::Json(value)) => from_object(value).map(Self),
            Err(rejection) => Err(rejection_error(&rejection)),
        }
    }
}

fn from_object<T: DeserializeOwned>(mut value: serde_json::Value) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(ApiError::BadRequest(
            "the body must be a JSON object".into(),
        ));
    }
    if let Some(fields) = value.as_object_mut() {
        fields.values_mut().for_each(integral_number);
    }
    serde_json::from_value(value)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

/// Writes a top-level number such as `3.0` as the integer it is, so that an integer field
/// takes every JSON number JSON Schema calls an integer. Nested values (a command's data
/// points) are passed on as sent.
fn integral_number(value: &mut serde_json::Value) {
    if let Some(f) = value.as_f64().filter(|_| value.is_f64())
        && f.fract() == 0.0
        && f.abs() < 9.0e15
    {
        // Exact: every integer below 2^53 is a float without loss.
        *value = serde_json::Value::from(f as i64);
    }
}

/// A path parameter; a malformed one is a typed 400 (axum's own answer is plain text).
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::BadRequest(rejection.body_text())),
        }
    }
}

fn rejection_error(rejection: &JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
            "the body must be JSON with `Content-Type: application/json`".into(),
        ),
        _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge(MAX_BODY_BYTES)
        }
        other => ApiError::BadRequest(other.body_text()),
    }
}

/// Parses a JSON body that was already read (signed device requests read the bytes first
/// to verify them).
///
/// Devices' bodies are parsed straight into their type (this is the activation path), after
/// checking that they are objects.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::BadRequest(
            "the body must be a JSON object".into(),
        ));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Body {
        n: u32,
    }

    #[test]
    fn integral_floats_fill_integer_fields_and_other_shapes_are_refused() {
        let body: Body = from_object(serde_json::json!({"n": 392.0})).expect("392.0 is 392");
        assert_eq!(body.n, 392);
        assert!(from_object::<Body>(serde_json::json!({"n": 392.5})).is_err());
        assert!(
            from_object::<Body>(serde_json::json!([392])).is_err(),
            "arrays are no objects"
        );
        assert!(parse::<Body>(b" [392]").is_err(), "nor in signed bodies");
        assert_eq!(parse::<Body>(b" {\"n\": 7}").expect("an object").n, 7);
    }
}

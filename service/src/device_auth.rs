//! Signed device requests (DESIGN §4): the [`SignedDevice`] extractor reads the body,
//! finds the secret for the signing uuid (authkey) or dev-id (dev-secret), verifies the
//! `Tether-HMAC` signature and timestamp, and refuses a nonce seen before.

use std::sync::Mutex;

use axum::body::{Bytes, to_bytes};
use axum::extract::{FromRequest, Request};
use axum::http::header::AUTHORIZATION;
use tether_proto::ErrorCode;
use tether_proto::signing::{AuthHeader, MAX_SKEW_SECS, Principal};

use crate::app::AppState;
use crate::error::ApiError;
use crate::expiring::Expiring;
use crate::json::MAX_BODY_BYTES;

/// Remembers nonces for the length of the timestamp window, so each is accepted once per
/// signer. Kept in memory: a restart forgets them, which a replay within the window could
/// exploit only against the same (idempotent) request.
#[derive(Debug, Default)]
pub struct NonceCache {
    seen: Mutex<Expiring<(Principal, String), u64>>,
}

impl NonceCache {
    /// Records a nonce; false if it was seen within the window.
    pub fn first_use(&self, principal: &Principal, nonce: &str, now: u64) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        // Forget nonces whose requests can no longer pass the timestamp check.
        let seen = seen.swept(|_, at| *at + 2 * MAX_SKEW_SECS > now);
        let key = (principal.clone(), nonce.to_owned());
        match seen.get(&key) {
            Some(at) if *at + 2 * MAX_SKEW_SECS > now => false,
            _ => {
                seen.insert(key, now);
                true
            }
        }
    }
}

/// A request whose signature checked out.
#[derive(Debug)]
pub struct SignedDevice {
    /// Who signed.
    pub principal: Principal,
    /// The body that was signed.
    pub body: Bytes,
}

fn signature_error(message: impl Into<String>) -> ApiError {
    ApiError::Pairing {
        code: ErrorCode::SignatureError,
        message: message.into(),
    }
}

impl FromRequest<AppState> for SignedDevice {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| signature_error("a `Tether-HMAC` Authorization header is required"))?;
        let auth = AuthHeader::parse(header).map_err(|e| signature_error(e.to_string()))?;
        let method = req.method().as_str().to_owned();
        let path = req
            .uri()
            .path_and_query()
            .map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned());
        let body = to_bytes(req.into_body(), MAX_BODY_BYTES)
            .await
            .map_err(|_| ApiError::PayloadTooLarge(MAX_BODY_BYTES))?;
        let key = secret_of(state, &auth.principal).await?;
        let now = crate::unix_now();
        auth.verify(key.as_bytes(), &method, &path, &body, now)
            .map_err(|e| signature_error(e.to_string()))?;
        if !state.nonces.first_use(&auth.principal, &auth.nonce, now) {
            return Err(signature_error(
                "this nonce was already used; sign each request afresh",
            ));
        }
        Ok(Self {
            principal: auth.principal,
            body,
        })
    }
}

async fn secret_of(state: &AppState, principal: &Principal) -> Result<String, ApiError> {
    let found: Option<String> = match principal {
        Principal::Uuid(uuid) => {
            sqlx::query_scalar("SELECT authkey FROM licenses WHERE uuid = ?")
                .bind(uuid)
                .fetch_optional(&state.db)
                .await?
        }
        Principal::DevId(dev_id) => {
            sqlx::query_scalar("SELECT dev_secret FROM devices WHERE dev_id = ?")
                .bind(dev_id)
                .fetch_optional(&state.db)
                .await?
        }
    };
    found.ok_or(ApiError::DeviceUnknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_accepted_once_per_signer_within_the_window() {
        let cache = NonceCache::default();
        let a = Principal::Uuid("a".into());
        let b = Principal::Uuid("b".into());
        assert!(cache.first_use(&a, "00", 1000));
        assert!(!cache.first_use(&a, "00", 1001));
        assert!(cache.first_use(&b, "00", 1001));
        assert!(cache.first_use(&a, "00", 1000 + 2 * MAX_SKEW_SECS));
    }
}

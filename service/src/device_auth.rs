//! Signed device requests: the [`SignedDevice`] extractor reads the body, finds the secret
//! for the signing uuid (authkey) or dev-id (dev-secret), verifies the `Tether-HMAC`
//! signature and timestamp, and refuses a nonce seen before, also before a restart.
//! An unknown signer and a wrong signature are answered alike (401 `signature_error`), so
//! a probe learns nothing about which uuids are licensed.

use std::sync::Mutex;

use axum::body::{Bytes, to_bytes};
use axum::extract::{FromRequest, Request};
use axum::http::header::AUTHORIZATION;
use tether_proto::signing::{AuthHeader, MAX_SKEW_SECS, Principal, SignatureError};
use tether_proto::{ErrorCode, Secret};

use crate::app::AppState;
use crate::error::ApiError;
use crate::expiring::Expiring;
use crate::json::MAX_BODY_BYTES;

/// Remembers nonces for the length of the timestamp window, so each is accepted once per
/// signer. This in-memory cache answers repeats at once; the `device_nonces` table
/// (see [`record_durably`]) makes the refusal survive a restart.
#[derive(Debug, Default)]
pub struct NonceCache {
    seen: Mutex<Expiring<(Principal, String), u64>>,
}

impl NonceCache {
    /// Records a nonce; false if it was seen within the window.
    pub fn first_use(&self, principal: &Principal, nonce: &str, now: u64) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        // Forget nonces whose requests can no longer pass the timestamp check.
        let seen = seen.swept(|_, at| *at + NONCE_KEEP_SECS > now);
        let key = (principal.clone(), nonce.to_owned());
        match seen.get(&key) {
            Some(at) if *at + NONCE_KEEP_SECS > now => false,
            _ => {
                seen.insert(key, now);
                true
            }
        }
    }
}

/// How long a nonce must be remembered: a request carrying it passes the timestamp check
/// for `MAX_SKEW_SECS` either side of its `t`.
const NONCE_KEEP_SECS: u64 = 2 * MAX_SKEW_SECS;

/// The route whose nonces are recorded by the activation writer, in the same
/// transaction as the activation (so a busy activation path pays no extra commit).
pub const ACTIVATION_PATH: &str = "/v1/devices/activate";

/// A signed request's nonce, to be kept until it can no longer pass the timestamp check.
#[derive(Debug, Clone)]
pub struct Nonce {
    /// `uuid:<uuid>` or `dev_id:<dev_id>`.
    pub signer: String,
    /// The nonce.
    pub nonce: String,
    /// Unix seconds after which no request with it can pass.
    pub expires_at: i64,
}

impl Nonce {
    /// Records the nonce in `conn`; false if it was recorded before (a replay).
    pub async fn record(&self, conn: &mut sqlx::AnyConnection) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "INSERT INTO device_nonces (signer, nonce, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (signer, nonce) DO NOTHING",
        )
        .bind(&self.signer)
        .bind(&self.nonce)
        .bind(self.expires_at)
        .execute(conn)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

/// The refusal of a replayed request.
pub fn replayed() -> ApiError {
    signature_error("this nonce was already used; sign each request afresh")
}

/// Records a nonce in the database on its own; false if it was recorded before.
async fn record_durably(state: &AppState, nonce: &Nonce) -> Result<bool, ApiError> {
    let mut conn = state.db.acquire().await?;
    Ok(nonce.record(&mut conn).await?)
}

/// Forgets the nonces that expired before `now` (Unix seconds); how many.
pub async fn forget_expired_nonces(db: &crate::db::Db, now: u64) -> sqlx::Result<u64> {
    let done = sqlx::query("DELETE FROM device_nonces WHERE expires_at < $1")
        .bind(crate::db_time(now))
        .execute(db)
        .await?;
    Ok(done.rows_affected())
}

/// Forgets nonces that can no longer pass the timestamp check, every minute, for as long
/// as the database is open, so the table holds about ten minutes of signed requests.
pub fn sweep_nonces(db: crate::db::Db) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
        while !db.is_closed() {
            every.tick().await;
            if let Err(e) = forget_expired_nonces(&db, crate::unix_now()).await
                && !db.is_closed()
            {
                tracing::warn!(error = %e, "failed to forget old nonces");
            }
        }
    });
}

/// A request whose signature checked out.
#[derive(Debug)]
pub struct SignedDevice {
    /// Who signed.
    pub principal: Principal,
    /// The body that was signed.
    pub body: Bytes,
    /// The request's nonce. Already recorded for every route but activation, whose
    /// writer records it with the activation.
    pub nonce: Nonce,
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
        // The route, whatever query the caller added: activation records its nonce itself.
        let activation = req.uri().path() == ACTIVATION_PATH;
        let body = to_bytes(req.into_body(), MAX_BODY_BYTES)
            .await
            .map_err(|_| ApiError::PayloadTooLarge(MAX_BODY_BYTES))?;
        let now = crate::unix_now();
        // An unknown signer is checked against a key nobody has, so it fails exactly as
        // a wrong signature does.
        let key = secret_of(state, &auth.principal).await?;
        let verified = auth.verify(
            key.as_ref()
                .map_or(UNKNOWN_SIGNER_KEY, Secret::expose)
                .as_bytes(),
            &method,
            &path,
            &body,
            now,
        );
        match (verified, key) {
            (Ok(()), Some(_)) => {}
            (Err(e), _) => return Err(signature_error(e.to_string())),
            // Nobody signs with the unknown signer's key; were it guessed, still refuse.
            (Ok(()), None) => return Err(signature_error(SignatureError::Mismatch.to_string())),
        }
        if !state.nonces.first_use(&auth.principal, &auth.nonce, now) {
            return Err(replayed());
        }
        let (field, who) = auth.principal.field();
        let nonce = Nonce {
            signer: format!("{field}:{who}"),
            nonce: auth.nonce.clone(),
            expires_at: crate::db_time(now + NONCE_KEEP_SECS),
        };
        if !activation && !record_durably(state, &nonce).await? {
            return Err(replayed());
        }
        Ok(Self {
            principal: auth.principal,
            body,
            nonce,
        })
    }
}

/// The key an unknown signer's signature is checked against; no device has it.
const UNKNOWN_SIGNER_KEY: &str = "no device signs with this key";

async fn secret_of(state: &AppState, principal: &Principal) -> Result<Option<Secret>, ApiError> {
    let found = match principal {
        Principal::Uuid(uuid) => {
            let read =
                sqlx::query_scalar::<_, String>("SELECT authkey FROM licenses WHERE uuid = $1")
                    .bind(uuid)
                    .fetch_optional(&state.db);
            let load = async { read.await.map(|key| key.map(Secret::new)) };
            state.authkeys.get_or_load(uuid, load).await?
        }
        Principal::DevId(dev_id) => crate::devices::store::dev_secret(&state.db, dev_id).await?,
    };
    Ok(found)
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

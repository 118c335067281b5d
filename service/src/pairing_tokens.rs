//! Pairing tokens: created by a user (`POST /v1/pairing-tokens`), followed with long-poll
//! (`GET …/{token}?wait=N`), revoked (`DELETE`). Only a hash of `token ‖ secret` is
//! stored; the public id (`region ‖ token`) names a token in URLs and logs.

use std::time::Duration;

use anyhow::Context;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use sqlx::SqlitePool;
use subtle::ConstantTimeEq;
use tether_proto::token_status::{
    CreateTokenRequest, CreateTokenResponse, TokenDevice, TokenFailure, TokenState, TokenStatus,
};
use tether_proto::{ErrorCode, PairingToken, Secret};
use tokio::sync::watch;

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::json::ApiJson;
use crate::users::AuthUser;

/// Default lifetime of a token.
pub const DEFAULT_TTL_SECS: u32 = 600;
/// Shortest and longest lifetime a token may be given.
pub const TTL_RANGE: std::ops::RangeInclusive<u32> = 30..=86_400;
/// Most devices one token may activate.
pub const MAX_DEVICES: u32 = 50;
/// Longest long-poll.
pub const MAX_WAIT_SECS: u64 = 60;

/// Wakes long-polls when any token changes (activation, report, revocation). Waiters
/// re-read their own token, so one counter serves them all.
#[derive(Debug)]
pub struct TokenEvents {
    tx: watch::Sender<u64>,
}

impl Default for TokenEvents {
    fn default() -> Self {
        Self {
            tx: watch::Sender::new(0),
        }
    }
}

impl TokenEvents {
    /// Signals a change.
    pub fn notify(&self) {
        self.tx.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }
}

/// A token row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenRow {
    /// `region ‖ token`.
    pub public_id: String,
    /// SHA-256 of `token ‖ secret`.
    pub secret_hash: Vec<u8>,
    /// Creator.
    pub owner_id: i64,
    /// Device limit.
    pub max_devices: i64,
    /// Devices activated.
    pub used: i64,
    /// Expiry.
    pub expires_at: i64,
    /// Revoked by its owner.
    pub revoked: bool,
}

impl TokenRow {
    /// Where the token stands at `now`.
    pub fn state(&self, now: u64) -> TokenState {
        if self.revoked {
            TokenState::Revoked
        } else if self.used >= self.max_devices {
            TokenState::Complete
        } else if now >= crate::from_db_time(self.expires_at) {
            TokenState::Expired
        } else {
            TokenState::Pending
        }
    }

    /// Whether `token` carries this row's secret (constant time).
    pub fn secret_matches(&self, token: &PairingToken) -> bool {
        secret_hash(token)
            .as_slice()
            .ct_eq(&self.secret_hash)
            .into()
    }
}

fn secret_hash(token: &PairingToken) -> Vec<u8> {
    Sha256::digest(token.token_and_secret().as_bytes()).to_vec()
}

/// Loads a token by public id.
pub async fn load(db: &SqlitePool, public_id: &str) -> sqlx::Result<Option<TokenRow>> {
    sqlx::query_as(
        "SELECT public_id, secret_hash, owner_id, max_devices, used, expires_at, revoked
         FROM pairing_tokens WHERE public_id = ?",
    )
    .bind(public_id)
    .fetch_optional(db)
    .await
}

/// Finds the token a device presents, checking its secret. Unknown tokens and wrong
/// secrets are both `token_invalid`, so a guess learns nothing.
pub async fn find_presented(
    db: &SqlitePool,
    presented: &Secret,
) -> Result<(PairingToken, TokenRow), ApiError> {
    let token = PairingToken::parse(presented.expose()).map_err(|e| ApiError::Pairing {
        code: ErrorCode::TokenInvalid,
        message: format!("the pairing token is malformed: {e}"),
    })?;
    match load(db, token.public_id()).await? {
        Some(row) if row.secret_matches(&token) => Ok((token, row)),
        _ => Err(ApiError::pairing(ErrorCode::TokenInvalid)),
    }
}

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/pairing-tokens", post(create_token))
        .route(
            "/v1/pairing-tokens/{token}",
            get(get_token).delete(revoke_token),
        )
}

/// Stores a new token of `owner` for `region`; returns it with its expiry (Unix secs).
/// The caller checks the limits.
pub async fn insert(
    db: &SqlitePool,
    region: &str,
    owner: i64,
    max_devices: u32,
    ttl_secs: u64,
) -> anyhow::Result<(PairingToken, u64)> {
    let token = PairingToken::generate(region).context("failed to generate a token")?;
    let now = crate::unix_now();
    let expires_at = now + ttl_secs;
    sqlx::query(
        "INSERT INTO pairing_tokens (public_id, secret_hash, owner_id, region, max_devices, expires_at, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(token.public_id())
    .bind(secret_hash(&token))
    .bind(owner)
    .bind(token.region())
    .bind(max_devices)
    .bind(crate::db_time(expires_at))
    .bind(crate::db_time(now))
    .execute(db)
    .await
    .context("failed to store the token")?;
    Ok((token, expires_at))
}

async fn create_token(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(req): ApiJson<CreateTokenRequest>,
) -> ApiResult<(StatusCode, Json<CreateTokenResponse>)> {
    state.limits.tokens.check(&user.id.to_string())?;
    let ttl = req.ttl_secs.unwrap_or(DEFAULT_TTL_SECS);
    if !TTL_RANGE.contains(&ttl) {
        return Err(ApiError::BadRequest(format!(
            "ttl_secs must be {}-{}",
            TTL_RANGE.start(),
            TTL_RANGE.end()
        )));
    }
    let max_devices = req.max_devices.unwrap_or(1);
    if !(1..=MAX_DEVICES).contains(&max_devices) {
        return Err(ApiError::BadRequest(format!(
            "max_devices must be 1-{MAX_DEVICES}"
        )));
    }
    let (token, expires_at) = insert(
        &state.db,
        &state.config.region,
        user.id,
        max_devices,
        u64::from(ttl),
    )
    .await?;
    state.metrics.token_issued();
    tracing::info!(
        token = token.public_id(),
        max_devices,
        ttl,
        "pairing token created"
    );
    Ok((
        StatusCode::CREATED,
        Json(CreateTokenResponse {
            token: Secret::new(token.expose()),
            region: token.region().to_owned(),
            expires_at,
            max_devices,
        }),
    ))
}

/// Query of `GET /v1/pairing-tokens/{token}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WaitQuery {
    /// Seconds to wait for a change (0-60).
    wait: Option<u64>,
}

async fn get_token(
    State(state): State<AppState>,
    user: AuthUser,
    Path(token): Path<String>,
    query: Result<Query<WaitQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<TokenStatus>> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let wait = query.wait.unwrap_or(0);
    if wait > MAX_WAIT_SECS {
        return Err(ApiError::BadRequest(format!(
            "wait may be at most {MAX_WAIT_SECS} seconds"
        )));
    }
    let public_id = public_id_of(&token)?;
    // Subscribe before the first read, so a change between the read and the wait is seen.
    let mut changes = state.tokens.subscribe();
    let first = owned_status(&state.db, user.id, &public_id).await?;
    if wait == 0 || first.state != TokenState::Pending {
        return Ok(Json(first));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    loop {
        let changed = tokio::time::timeout_at(deadline, changes.changed()).await;
        let now = owned_status(&state.db, user.id, &public_id).await?;
        let done = now != first || changed.is_err() || matches!(changed, Ok(Err(_)));
        if done {
            return Ok(Json(now));
        }
    }
}

async fn revoke_token(
    State(state): State<AppState>,
    user: AuthUser,
    Path(token): Path<String>,
) -> ApiResult<StatusCode> {
    let public_id = public_id_of(&token)?;
    let updated =
        sqlx::query("UPDATE pairing_tokens SET revoked = 1 WHERE public_id = ? AND owner_id = ?")
            .bind(&public_id)
            .bind(user.id)
            .execute(&state.db)
            .await?;
    if updated.rows_affected() == 0 {
        return Err(ApiError::NotFound("pairing token"));
    }
    state.tokens.notify();
    tracing::info!(token = public_id, "pairing token revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// Accepts the public id (10 characters) or the whole token (14) in a path.
fn public_id_of(text: &str) -> Result<String, ApiError> {
    let public = if text.len() == tether_proto::token::TOKEN_LEN {
        PairingToken::parse(text)
            .map(|t| t.public_id().to_owned())
            .ok()
    } else {
        let ok = text.len() == 10
            && text.as_bytes()[..2].iter().all(u8::is_ascii_uppercase)
            && text.bytes().all(|b| b.is_ascii_alphanumeric());
        ok.then(|| text.to_owned())
    };
    public.ok_or_else(|| ApiError::NotFound("pairing token"))
}

/// A reported failure: uuid, code, phase, message, time.
type FailureRow = (String, String, Option<String>, Option<String>, i64);

/// The status of a token the user owns; anyone else's is "not found".
async fn owned_status(db: &SqlitePool, owner: i64, public_id: &str) -> ApiResult<TokenStatus> {
    let row = load(db, public_id).await?.filter(|r| r.owner_id == owner);
    let row = row.ok_or(ApiError::NotFound("pairing token"))?;
    let devices: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT dev_id, uuid, activated_at FROM activations WHERE token_id = ? ORDER BY id",
    )
    .bind(public_id)
    .fetch_all(db)
    .await?;
    let failures: Vec<FailureRow> = sqlx::query_as(
        "SELECT uuid, code, phase, message, created_at FROM pairing_reports
         WHERE token_id = ? AND outcome = 'failure' AND code IS NOT NULL ORDER BY id",
    )
    .bind(public_id)
    .fetch_all(db)
    .await?;
    Ok(TokenStatus {
        token: row.public_id.clone(),
        state: row.state(crate::unix_now()),
        expires_at: crate::from_db_time(row.expires_at),
        devices: devices
            .into_iter()
            .map(|(dev_id, uuid, at)| TokenDevice {
                dev_id,
                uuid,
                activated_at: crate::from_db_time(at),
            })
            .collect(),
        failures: failures
            .into_iter()
            .filter_map(|(uuid, code, phase, message, at)| {
                Some(TokenFailure {
                    uuid,
                    code: ErrorCode::from_name(&code)?,
                    phase: phase
                        .and_then(|p| serde_json::from_value(serde_json::Value::String(p)).ok()),
                    message,
                    at: crate::from_db_time(at),
                })
            })
            .collect(),
    })
}

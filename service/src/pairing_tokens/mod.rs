//! Pairing tokens: created by a user (`POST /v1/pairing-tokens`), followed with long-poll
//! (`GET …/{token}?wait=N`), revoked (`DELETE`). Only a keyed hash of `token ‖ secret` is
//! stored (`store.rs`); the public id (`region ‖ token`) names a token in URLs and logs.

mod events;
pub mod fanout;
mod store;

pub use events::{MAX_POLLS_PER_USER, TokenEvents};
pub use store::{
    GUESS_WINDOW, MAX_WRONG_SECRETS, TokenRow, find_presented, guess_limit, insert, load, newest_of,
};

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tether_proto::token_status::{
    CreateTokenRequest, CreateTokenResponse, TokenDevice, TokenFailure, TokenState, TokenStatus,
};
use tether_proto::{ErrorCode, PairingToken, Secret};

use crate::app::AppState;
use crate::db::Db;
use crate::error::{ApiError, ApiResult};
use crate::json::{ApiJson, ApiPath};
use crate::users::AuthUser;

/// Default lifetime of a token.
pub const DEFAULT_TTL_SECS: u32 = 600;
/// Shortest and longest lifetime a token may be given.
pub const TTL_RANGE: std::ops::RangeInclusive<u32> = 30..=86_400;
/// Most devices one token may activate.
pub const MAX_DEVICES: u32 = 50;
/// Longest long-poll.
pub const MAX_WAIT_SECS: u64 = 60;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/pairing-tokens", post(create_token))
        .route(
            "/v1/pairing-tokens/{token}",
            get(get_token).delete(revoke_token),
        )
}

/// Create a pairing token (its secret part is shown only here).
#[utoipa::path(post, path = "/v1/pairing-tokens", tag = "pairing tokens", security(("bearer" = [])),
    request_body = CreateTokenRequest,
    responses((status = 201, description = "created", body = CreateTokenResponse), (status = 400, description = "malformed body, query or path", body = tether_proto::api_error::ApiErrorBody), (status = 401, description = "no valid access token", body = tether_proto::api_error::ApiErrorBody), (status = 413, description = "the body is too large", body = tether_proto::api_error::ApiErrorBody), (status = 415, description = "the body is not JSON", body = tether_proto::api_error::ApiErrorBody), (status = 429, description = "too many requests; see Retry-After", body = tether_proto::api_error::ApiErrorBody)))]
pub(crate) async fn create_token(
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
        state.keys.token_hash_key(),
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
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct WaitQuery {
    /// Seconds to wait for a change (0-60).
    #[param(minimum = 0, maximum = 60)]
    wait: Option<u64>,
}

/// A token's state, devices and failures; `wait` long-polls for a change.
#[utoipa::path(get, path = "/v1/pairing-tokens/{token}", tag = "pairing tokens", security(("bearer" = [])),
    params(("token" = String, Path, description = "the public id (10 characters) or the whole token"), WaitQuery),
    responses((status = 200, description = "the token", body = TokenStatus), (status = 400, description = "malformed body, query or path", body = tether_proto::api_error::ApiErrorBody), (status = 401, description = "no valid access token", body = tether_proto::api_error::ApiErrorBody), (status = 404, description = "not found for the caller", body = tether_proto::api_error::ApiErrorBody), (status = 429, description = "too many long-polls at once", body = tether_proto::api_error::ApiErrorBody)))]
pub(crate) async fn get_token(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(token): ApiPath<String>,
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
    if wait == 0 {
        return Ok(Json(owned_status(&state.db, user.id, &public_id).await?));
    }
    // Subscribe before the first read, so a change between the read and the wait is seen.
    let mut poll = state.tokens.poll(user.id, &public_id)?;
    let first = owned_status(&state.db, user.id, &public_id).await?;
    // A complete token still hears from its devices (their reports); one that expired
    // or was revoked has nothing more to wait for.
    if matches!(first.state, TokenState::Expired | TokenState::Revoked) {
        return Ok(Json(first));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    loop {
        let changed = tokio::time::timeout_at(deadline, poll.changes.changed()).await;
        let now = owned_status(&state.db, user.id, &public_id).await?;
        let done = now != first || changed.is_err() || matches!(changed, Ok(Err(_)));
        if done {
            return Ok(Json(now));
        }
    }
}

/// Revoke a token.
#[utoipa::path(delete, path = "/v1/pairing-tokens/{token}", tag = "pairing tokens", security(("bearer" = [])),
    params(("token" = String, Path, description = "the public id or the whole token")),
    responses((status = 204, description = "revoked"), (status = 401, description = "no valid access token", body = tether_proto::api_error::ApiErrorBody), (status = 404, description = "not found for the caller", body = tether_proto::api_error::ApiErrorBody)))]
pub(crate) async fn revoke_token(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(token): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let public_id = public_id_of(&token)?;
    let updated =
        sqlx::query("UPDATE pairing_tokens SET revoked = 1 WHERE public_id = $1 AND owner_id = $2")
            .bind(&public_id)
            .bind(user.id)
            .execute(&state.db)
            .await?;
    if updated.rows_affected() == 0 {
        return Err(ApiError::NotFound("pairing token"));
    }
    state.token_rows.forget(&public_id);
    state.tokens.notify(&public_id);
    tracing::info!(token = public_id, "pairing token revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// Accepts the public id (10 characters) or the whole token (14) in a path.
pub(crate) fn public_id_of(text: &str) -> Result<String, ApiError> {
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

/// A reported failure: uuid, code, phase, message, timings (JSON), time.
type FailureRow = (String, String, Option<String>, Option<String>, String, i64);

/// The status of a token the user owns; anyone else's is "not found".
pub(crate) async fn owned_status(db: &Db, owner: i64, public_id: &str) -> ApiResult<TokenStatus> {
    let row = load(db, public_id).await?.filter(|r| r.owner_id == owner);
    let row = row.ok_or(ApiError::NotFound("pairing token"))?;
    // Each device's timings come from its latest success report, if it sent one.
    let devices: Vec<(String, String, i64, Option<String>)> = sqlx::query_as(
        "SELECT a.dev_id, a.uuid, a.activated_at,
                (SELECT r.timings FROM pairing_reports r
                  WHERE r.token_id = a.token_id AND r.uuid = a.uuid AND r.outcome = 'success'
                  ORDER BY r.id DESC LIMIT 1)
         FROM activations a WHERE a.token_id = $1 ORDER BY a.id",
    )
    .bind(public_id)
    .fetch_all(db)
    .await?;
    let failures: Vec<FailureRow> = sqlx::query_as(
        "SELECT uuid, code, phase, message, timings, created_at FROM pairing_reports
         WHERE token_id = $1 AND outcome = 'failure' AND code IS NOT NULL ORDER BY id",
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
            .map(|(dev_id, uuid, at, timings)| TokenDevice {
                dev_id,
                uuid,
                activated_at: crate::from_db_time(at),
                timings: timings.and_then(|t| serde_json::from_str(&t).ok()),
            })
            .collect(),
        failures: failures
            .into_iter()
            .filter_map(|(uuid, code, phase, message, timings, at)| {
                Some(TokenFailure {
                    uuid,
                    code: ErrorCode::from_name(&code)?,
                    phase: phase
                        .and_then(|p| serde_json::from_value(serde_json::Value::String(p)).ok()),
                    message,
                    timings: serde_json::from_str(&timings).unwrap_or_default(),
                    at: crate::from_db_time(at),
                })
            })
            .collect(),
    })
}

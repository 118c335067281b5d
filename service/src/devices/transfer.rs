//! Ownership transfer without a factory reset, which both owners agree to: the owner
//! offers a device to another account (`POST /v1/devices/{dev_id}/transfer`, one offer per
//! device, [`OFFER_SECS`] to answer), the other accepts or declines it
//! (`POST /v1/transfers/{dev_id}/accept|decline`), and the owner may cancel it
//! (`DELETE /v1/devices/{dev_id}/transfer`); `GET /v1/transfers` lists the offers made to
//! and by the caller. On accept the device changes owner and keeps its binding, session
//! and credentials: nothing changes for the device. An offer whose device changed owner
//! meanwhile (unbound, reset and paired elsewhere) can no longer be accepted.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use sqlx::Row;
use tether_proto::api::{TransferOffer, TransferRequest};

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::json::{ApiJson, ApiPath};
use crate::users::AuthUser;

/// How long an offer waits for an answer: a day.
pub const OFFER_SECS: u64 = 86_400;

/// Offer a device you own to another account.
#[utoipa::path(post, path = "/v1/devices/{dev_id}/transfer", tag = "devices", security(("bearer" = [])),
    params(("dev_id" = String, Path, description = "device id")),
    request_body = TransferRequest,
    responses((status = 201, description = "offered (replacing an earlier offer)", body = TransferOffer), (status = 400, description = "malformed body, or an offer to yourself", body = tether_proto::api_error::ApiErrorBody), (status = 401, description = "no valid access token", body = tether_proto::api_error::ApiErrorBody), (status = 404, description = "no such device for the caller, or no such account", body = tether_proto::api_error::ApiErrorBody)))]
pub(crate) async fn offer(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(dev_id): ApiPath<String>,
    ApiJson(req): ApiJson<TransferRequest>,
) -> ApiResult<(StatusCode, Json<TransferOffer>)> {
    super::owned(&state.db, user.id, &dev_id).await?;
    let to: Option<i64> = sqlx::query_scalar("SELECT id FROM users WHERE username = $1")
        .bind(&req.to)
        .fetch_optional(&state.db)
        .await?;
    let to = to.ok_or(ApiError::NotFound("account"))?;
    if to == user.id {
        return Err(ApiError::BadRequest("the device is yours already".into()));
    }
    let expires_at = crate::unix_now() + OFFER_SECS;
    sqlx::query(
        "INSERT INTO device_transfers (dev_id, from_owner, to_owner, expires_at)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (dev_id) DO UPDATE SET from_owner = excluded.from_owner,
           to_owner = excluded.to_owner, expires_at = excluded.expires_at",
    )
    .bind(&dev_id)
    .bind(user.id)
    .bind(to)
    .bind(crate::db_time(expires_at))
    .execute(&state.db)
    .await?;
    tracing::info!(dev_id, "device offered to another account");
    let from = name_of(&state, user.id).await?;
    Ok((
        StatusCode::CREATED,
        Json(TransferOffer {
            dev_id,
            from,
            to: req.to,
            expires_at,
        }),
    ))
}

/// Withdraw your offer of a device.
#[utoipa::path(delete, path = "/v1/devices/{dev_id}/transfer", tag = "devices", security(("bearer" = [])),
    params(("dev_id" = String, Path, description = "device id")),
    responses((status = 204, description = "withdrawn"), (status = 401, description = "no valid access token", body = tether_proto::api_error::ApiErrorBody), (status = 404, description = "no offer of this device by the caller", body = tether_proto::api_error::ApiErrorBody)))]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(dev_id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    drop_offer(&state, &dev_id, Side::Maker, user.id).await
}

/// The offers made to you and by you that have not lapsed.
#[utoipa::path(get, path = "/v1/transfers", tag = "devices", security(("bearer" = [])),
    responses((status = 200, description = "the offers", body = Vec<TransferOffer>), (status = 401, description = "no valid access token", body = tether_proto::api_error::ApiErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<Json<Vec<TransferOffer>>> {
    let rows = sqlx::query(
        "SELECT t.dev_id, f.username AS from_name, o.username AS to_name, t.expires_at
         FROM device_transfers t JOIN users f ON f.id = t.from_owner
           JOIN users o ON o.id = t.to_owner
         WHERE (t.from_owner = $1 OR t.to_owner = $1) AND t.expires_at > $2
         ORDER BY t.dev_id",
    )
    .bind(user.id)
    .bind(crate::db_time(crate::unix_now()))
    .fetch_all(&state.db)
    .await?;
    let offers = rows
        .iter()
        .map(|r| {
            Ok(TransferOffer {
                dev_id: r.try_get("dev_id")?,
                from: r.try_get("from_name")?,
                to: r.try_get("to_name")?,
                expires_at: crate::from_db_time(r.try_get("expires_at")?),
            })
        })
        .collect::<sqlx::Result<_>>()?;
    Ok(Json(offers))
}

/// Accept a device offered to you: it is yours from now on, bound and online as it was.
#[utoipa::path(post, path = "/v1/transfers/{dev_id}/accept", tag = "devices", security(("bearer" = [])),
    params(("dev_id" = String, Path, description = "device id")),
    responses((status = 204, description = "the device is yours"), (status = 401, description = "no valid access token", body = tether_proto::api_error::ApiErrorBody), (status = 404, description = "no live offer of this device to the caller", body = tether_proto::api_error::ApiErrorBody)))]
pub(crate) async fn accept(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(dev_id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let mut tx = state.db.begin().await?;
    let from: Option<i64> = sqlx::query_scalar(
        "DELETE FROM device_transfers WHERE dev_id = $1 AND to_owner = $2 AND expires_at > $3
         RETURNING from_owner",
    )
    .bind(&dev_id)
    .bind(user.id)
    .bind(crate::db_time(crate::unix_now()))
    .fetch_optional(&mut *tx)
    .await?;
    let from = from.ok_or(ApiError::NotFound("transfer offer"))?;
    // Only if the offer's maker still owns it.
    if !super::store::change_owner(&mut *tx, &dev_id, from, user.id).await? {
        return Err(ApiError::NotFound("transfer offer"));
    }
    tx.commit().await?;
    tracing::info!(dev_id, "device transferred to another account");
    Ok(StatusCode::NO_CONTENT)
}

/// Decline a device offered to you.
#[utoipa::path(post, path = "/v1/transfers/{dev_id}/decline", tag = "devices", security(("bearer" = [])),
    params(("dev_id" = String, Path, description = "device id")),
    responses((status = 204, description = "declined"), (status = 401, description = "no valid access token", body = tether_proto::api_error::ApiErrorBody), (status = 404, description = "no offer of this device to the caller", body = tether_proto::api_error::ApiErrorBody)))]
pub(crate) async fn decline(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(dev_id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    drop_offer(&state, &dev_id, Side::Addressee, user.id).await
}

/// Which side of an offer the caller is on.
#[derive(Clone, Copy)]
enum Side {
    Maker,
    Addressee,
}

/// Drops the offer of `dev_id` that `user` made or was made: 204, or 404 if none.
async fn drop_offer(
    state: &AppState,
    dev_id: &str,
    side: Side,
    user: i64,
) -> ApiResult<StatusCode> {
    let statement = match side {
        Side::Maker => "DELETE FROM device_transfers WHERE dev_id = $1 AND from_owner = $2",
        Side::Addressee => "DELETE FROM device_transfers WHERE dev_id = $1 AND to_owner = $2",
    };
    let done = sqlx::query(statement)
        .bind(dev_id)
        .bind(user)
        .execute(&state.db)
        .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::NotFound("transfer offer"));
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn name_of(state: &AppState, id: i64) -> ApiResult<String> {
    Ok(
        sqlx::query_scalar("SELECT username FROM users WHERE id = $1")
            .bind(id)
            .fetch_one(&state.db)
            .await?,
    )
}

//! A user's devices: list and inspect them (presence, last report, versions), send
//! data-point commands (protocol 5), and unbind (protocol 8, or 11 with `?reset=true`;
//! then the session is closed and the credentials stop working); `transfer.rs` hands a
//! device to another account when both agree.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tether_proto::mqtt::Protocol;

use crate::app::AppState;
use crate::db::Db;
use crate::error::{ApiError, ApiResult};
use crate::json::{ApiJson, ApiPath};
use crate::users::AuthUser;

pub mod store;
pub(crate) mod transfer;

pub use tether_proto::api::{CommandAccepted, CommandRequest, DeviceView};

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/devices", get(list_devices))
        .route(
            "/v1/devices/{dev_id}",
            get(get_device).delete(unbind_device),
        )
        .route("/v1/devices/{dev_id}/commands", post(send_command))
        .route(
            "/v1/devices/{dev_id}/transfer",
            post(transfer::offer).delete(transfer::cancel),
        )
        .route("/v1/transfers", get(transfer::list))
        .route("/v1/transfers/{dev_id}/accept", post(transfer::accept))
        .route("/v1/transfers/{dev_id}/decline", post(transfer::decline))
}

async fn owned(db: &Db, owner: i64, dev_id: &str) -> ApiResult<DeviceView> {
    store::owned(db, owner, dev_id)
        .await?
        .ok_or(ApiError::NotFound("device"))
}

/// The caller's devices.
#[utoipa::path(get, path = "/v1/devices", tag = "devices", security(("bearer" = [])),
    responses((status = 200, description = "the devices", body = Vec<DeviceView>), (status = 401, description = "no valid access token", body = tether_proto::api_error::ApiErrorBody)))]
pub(crate) async fn list_devices(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<Json<Vec<DeviceView>>> {
    Ok(Json(store::of_owner(&state.db, user.id).await?))
}

/// One device, with the state of its newest component rollout (if any) as `rollout`.
#[utoipa::path(get, path = "/v1/devices/{dev_id}", tag = "devices", security(("bearer" = [])),
    params(("dev_id" = String, Path, description = "device id")),
    responses((status = 200, description = "the device, with `rollout`", body = DeviceView), (status = 401, description = "no valid access token", body = tether_proto::api_error::ApiErrorBody), (status = 404, description = "not found for the caller", body = tether_proto::api_error::ApiErrorBody)))]
pub(crate) async fn get_device(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(dev_id): ApiPath<String>,
) -> ApiResult<Json<DeviceView>> {
    let mut device = owned(&state.db, user.id, &dev_id).await?;
    device.rollout = crate::modules::rollout_of(&state.db, &dev_id).await?;
    Ok(Json(device))
}

/// Query of `POST /v1/devices/{dev_id}/commands`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct CommandQuery {
    /// Wait up to this many seconds (1 to 30) for the device to acknowledge the command:
    /// 200 when it did, 504 `not_delivered` when it did not, 409 `device_offline` at once
    /// when it is offline. Without it: 202 once the command is queued to the session.
    pub(crate) wait: Option<u64>,
}

/// Longest `?wait` of a command.
pub const MAX_COMMAND_WAIT_SECS: u64 = 30;

/// Send data points to the device (protocol 5).
#[utoipa::path(post, path = "/v1/devices/{dev_id}/commands", tag = "devices", security(("bearer" = [])),
    params(("dev_id" = String, Path, description = "device id"), CommandQuery),
    request_body = CommandRequest,
    responses((status = 200, description = "with `?wait`: the device acknowledged it", body = CommandAccepted), (status = 202, description = "routed to the device's session, if it is online", body = CommandAccepted), (status = 400, description = "malformed body, query or path", body = tether_proto::api_error::ApiErrorBody), (status = 401, description = "no valid access token", body = tether_proto::api_error::ApiErrorBody), (status = 404, description = "not found for the caller", body = tether_proto::api_error::ApiErrorBody), (status = 409, description = "with `?wait`: the device is offline", body = tether_proto::api_error::ApiErrorBody), (status = 413, description = "the command is larger than a device takes", body = tether_proto::api_error::ApiErrorBody), (status = 415, description = "the body is not JSON", body = tether_proto::api_error::ApiErrorBody), (status = 504, description = "with `?wait`: not acknowledged in time", body = tether_proto::api_error::ApiErrorBody)))]
pub(crate) async fn send_command(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(dev_id): ApiPath<String>,
    query: Result<Query<CommandQuery>, QueryRejection>,
    ApiJson(req): ApiJson<CommandRequest>,
) -> ApiResult<(StatusCode, Json<CommandAccepted>)> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let device = owned(&state.db, user.id, &dev_id).await?;
    if req.data.is_empty() {
        return Err(ApiError::BadRequest(
            "data must name at least one data point".into(),
        ));
    }
    let data = serde_json::Value::Object(req.data);
    let Some(wait) = query.wait else {
        state
            .broker
            .publish(&device.dev_id, Protocol::DpCommand, data)
            .await?;
        return Ok((
            StatusCode::ACCEPTED,
            Json(CommandAccepted {
                dev_id: device.dev_id,
                online: device.online,
                delivered: None,
            }),
        ));
    };
    if !(1..=MAX_COMMAND_WAIT_SECS).contains(&wait) {
        return Err(ApiError::BadRequest(format!(
            "wait must be 1 to {MAX_COMMAND_WAIT_SECS} seconds"
        )));
    }
    if !device.online {
        return Err(ApiError::DeviceOffline);
    }
    let delivered = state
        .broker
        .publish_acknowledged(
            &device.dev_id,
            Protocol::DpCommand,
            data,
            std::time::Duration::from_secs(wait),
        )
        .await?;
    if !delivered {
        return Err(ApiError::NotDelivered(wait));
    }
    Ok((
        StatusCode::OK,
        Json(CommandAccepted {
            dev_id: device.dev_id,
            online: true,
            delivered: Some(true),
        }),
    ))
}

/// Query of `DELETE /v1/devices/{dev_id}`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct UnbindQuery {
    /// Also factory-reset the device (protocol 11 instead of 8).
    #[serde(default)]
    pub(crate) reset: bool,
}

/// Unbind: revoke the credentials, tell the device (protocol 8, or 11 with `reset`), close its session.
#[utoipa::path(delete, path = "/v1/devices/{dev_id}", tag = "devices", security(("bearer" = [])),
    params(("dev_id" = String, Path, description = "device id"), UnbindQuery),
    responses((status = 204, description = "unbound"), (status = 400, description = "malformed body, query or path", body = tether_proto::api_error::ApiErrorBody), (status = 401, description = "no valid access token", body = tether_proto::api_error::ApiErrorBody), (status = 404, description = "not found for the caller", body = tether_proto::api_error::ApiErrorBody)))]
pub(crate) async fn unbind_device(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(dev_id): ApiPath<String>,
    query: Result<Query<UnbindQuery>, QueryRejection>,
) -> ApiResult<StatusCode> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    owned(&state.db, user.id, &dev_id).await?;
    // Deleting the row revokes the device's credentials (logins check its generation)...
    store::delete_owned(&state.db, user.id, &dev_id).await?;
    // ...then a live session hears why (protocol 8) and is closed.
    let notice = if query.reset {
        Protocol::Reset
    } else {
        Protocol::Unbind
    };
    state
        .broker
        .notify_and_close(&dev_id, notice, "device unbound")
        .await;
    tracing::info!(dev_id, "device unbound");
    Ok(StatusCode::NO_CONTENT)
}

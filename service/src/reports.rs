//! Pairing reports (`POST /v1/pairing-reports`): a device tells the cloud how pairing with
//! a token went. Failures show in the token's status for its owner. Reports are limited
//! per signing device and capped per token, and a report's token is checked like an
//! activation's (wrong secrets count against the token), so this is no guessing oracle.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use tether_proto::reports::{Outcome, PairingReport};
use tether_proto::signing::Principal;

use crate::app::AppState;
use crate::device_auth::SignedDevice;
use crate::error::{ApiError, ApiResult};
use crate::pairing_tokens;

/// Longest message kept from a report.
const MAX_MESSAGE: usize = 512;
/// Most reports kept for one token.
pub const MAX_REPORTS_PER_TOKEN: i64 = 200;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/pairing-reports", post(store_report))
}

/// Report how pairing with a token went.
#[utoipa::path(post, path = "/v1/pairing-reports", tag = "devices", security(("tetherHmac" = [])),
    request_body = PairingReport,
    responses((status = 204, description = "stored"), (status = 400, description = "malformed body, query or path", body = tether_proto::api_error::ApiErrorBody), (status = 401, description = "signature_error: the signature, timestamp or nonce is refused", body = tether_proto::api_error::ApiErrorBody), (status = 409, description = "the token has its most reports", body = tether_proto::api_error::ApiErrorBody), (status = 413, description = "the body is too large", body = tether_proto::api_error::ApiErrorBody), (status = 429, description = "too many requests; see Retry-After", body = tether_proto::api_error::ApiErrorBody)))]
pub(crate) async fn store_report(
    State(state): State<AppState>,
    signed: SignedDevice,
) -> ApiResult<StatusCode> {
    let (_, signer) = signed.principal.field();
    state.limits.reports.check(signer)?;
    let report: PairingReport = crate::json::parse(&signed.body)?;
    let uuid = match &signed.principal {
        Principal::Uuid(uuid) => uuid.clone(),
        Principal::DevId(dev_id) => crate::devices::store::uuid(&state.db, dev_id)
            .await?
            .ok_or(ApiError::DeviceUnknown)?,
    };
    if report.outcome == Outcome::Failure && report.code.is_none() {
        return Err(ApiError::BadRequest(
            "a failure report names its code".into(),
        ));
    }
    let (token, _) = pairing_tokens::find_presented(&state, &report.token).await?;
    let kept: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pairing_reports WHERE token_id = $1")
        .bind(token.public_id())
        .fetch_one(&state.db)
        .await?;
    if kept >= MAX_REPORTS_PER_TOKEN {
        return Err(ApiError::Conflict(format!(
            "this token has {MAX_REPORTS_PER_TOKEN} reports already"
        )));
    }
    let message = report
        .message
        .map(|m| m.chars().take(MAX_MESSAGE).collect::<String>());
    let outcome = match report.outcome {
        Outcome::Success => "success",
        Outcome::Failure => "failure",
    };
    sqlx::query(
        "INSERT INTO pairing_reports (token_id, uuid, outcome, code, phase, message, timings, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(token.public_id())
    .bind(&uuid)
    .bind(outcome)
    .bind(report.code.map(|c| c.name()))
    .bind(report.phase.and_then(|p| serde_json::to_value(p).ok()).and_then(|v| v.as_str().map(str::to_owned)))
    .bind(message)
    .bind(serde_json::to_string(&report.timings).map_err(anyhow::Error::from)?)
    .bind(crate::db_time(crate::unix_now()))
    .execute(&state.db)
    .await?;
    state.tokens.notify(token.public_id());
    state
        .metrics
        .pairing_report(outcome, report.code.map(|c| c.name()), &report.timings);
    tracing::info!(
        token = token.public_id(),
        uuid,
        outcome,
        code = report.code.map(|c| c.name()),
        "pairing report"
    );
    Ok(StatusCode::NO_CONTENT)
}

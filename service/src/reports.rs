//! Pairing reports (`POST /v1/pairing-reports`): a device tells the cloud how pairing with
//! a token went. Failures show in the token's status for its owner.

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

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/pairing-reports", post(store_report))
}

async fn store_report(
    State(state): State<AppState>,
    signed: SignedDevice,
) -> ApiResult<StatusCode> {
    let report: PairingReport = crate::json::parse(&signed.body)?;
    let uuid = match &signed.principal {
        Principal::Uuid(uuid) => uuid.clone(),
        Principal::DevId(dev_id) => sqlx::query_scalar("SELECT uuid FROM devices WHERE dev_id = ?")
            .bind(dev_id)
            .fetch_optional(&state.db)
            .await?
            .ok_or(ApiError::DeviceUnknown)?,
    };
    if report.outcome == Outcome::Failure && report.code.is_none() {
        return Err(ApiError::BadRequest(
            "a failure report names its code".into(),
        ));
    }
    let (token, _) = pairing_tokens::find_presented(&state.db, &report.token).await?;
    let message = report
        .message
        .map(|m| m.chars().take(MAX_MESSAGE).collect::<String>());
    let outcome = match report.outcome {
        Outcome::Success => "success",
        Outcome::Failure => "failure",
    };
    sqlx::query(
        "INSERT INTO pairing_reports (token_id, uuid, outcome, code, phase, message, timings, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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
    state.tokens.notify();
    tracing::info!(
        token = token.public_id(),
        uuid,
        outcome,
        code = report.code.map(|c| c.name()),
        "pairing report"
    );
    Ok(StatusCode::NO_CONTENT)
}

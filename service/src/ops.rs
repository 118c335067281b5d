//! Operations endpoints: liveness, readiness, and the public keys that verify device
//! MQTT passwords.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};

use crate::app::AppState;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readiness))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/metrics", get(metrics))
}

/// Ready when the database answers, the broker runs and the service's own MQTT client is
/// connected to it.
async fn readiness(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if let Err(e) = sqlx::query_scalar::<_, i64>("SELECT 1")
        .fetch_one(&state.db)
        .await
    {
        tracing::warn!(error = %e, "database not ready");
        return (StatusCode::SERVICE_UNAVAILABLE, "database unavailable");
    }
    if !state.broker.is_running() {
        return (StatusCode::SERVICE_UNAVAILABLE, "MQTT broker stopped");
    }
    if !state.bridge.is_connected() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "service MQTT client not connected",
        );
    }
    (StatusCode::OK, "ready")
}

async fn jwks(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(state.keys.jwks())
}

async fn metrics(
    State(state): State<AppState>,
) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    let text = state.metrics.render(state.broker.sessions().online());
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        text,
    )
}

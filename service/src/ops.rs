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
        .route("/healthz", get(healthz))
        .route("/readyz", get(readiness))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/metrics", get(metrics))
}

/// Liveness.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()),
    responses((status = 200, description = "alive", body = String, content_type = "text/plain")))]
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the database answers, the broker runs and the service's own MQTT client is
/// connected to it.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()),
    responses((status = 200, description = "ready", body = String, content_type = "text/plain"),
        (status = 503, description = "a part is not ready; the body says which", body = String, content_type = "text/plain")))]
pub(crate) async fn readiness(State(state): State<AppState>) -> (StatusCode, &'static str) {
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

/// Public keys that verify device MQTT passwords (EdDSA).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "operations", security(()),
    responses((status = 200, description = "a JSON Web Key Set", body = tether_proto::api::JwkSet)))]
pub(crate) async fn jwks(State(state): State<AppState>) -> Json<tether_proto::api::JwkSet> {
    Json(state.keys.jwks())
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations", security(()),
    responses((status = 200, description = "metrics in the OpenMetrics text format", body = String, content_type = "application/openmetrics-text")))]
pub(crate) async fn metrics(
    State(state): State<AppState>,
) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    let text = state.metrics.render(state.broker.sessions().online());
    (
        [(
            axum::http::header::CONTENT_TYPE,
            crate::metrics::CONTENT_TYPE,
        )],
        text,
    )
}

//! Activation (`POST /v1/devices/activate`): a device signed with its authkey presents a
//! pairing token; the device becomes the token owner's, gets a dev-id, a dev-secret and
//! MQTT credentials. Also `POST /v1/devices/{dev_id}/mqtt-credentials`, which a device
//! signed with its dev-secret calls for fresh credentials.

mod batch;
mod writer;

pub use writer::Binder;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use tether_proto::activation::{
    ActivateRequest, ActivateResponse, CredentialsRequest, CredentialsResponse, MqttCredentials,
    Topics,
};
use tether_proto::platform::Platform;
use tether_proto::signing::Principal;
use tether_proto::token_status::TokenState;
use tether_proto::{ErrorCode, Secret, mqtt};

use crate::app::AppState;
use crate::device_auth::SignedDevice;
use crate::error::{ApiError, ApiResult};
use crate::json::ApiPath;
use crate::keys::{Acl, DeviceClaims, MQTT_AUDIENCE};
use crate::pairing_tokens;

/// Lifetime of a device's MQTT password unless the service is told otherwise
/// (`--mqtt-credentials-ttl`).
pub const MQTT_CREDENTIALS_SECS: u64 = 24 * 3600;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(crate::device_auth::ACTIVATION_PATH, post(activate_device))
        .route(
            "/v1/devices/{dev_id}/mqtt-credentials",
            post(refresh_credentials),
        )
}

/// Activate a device with a pairing token (signed with the authkey).
#[utoipa::path(post, path = "/v1/devices/activate", tag = "devices", security(("tetherHmac" = [])),
    request_body = ActivateRequest,
    responses((status = 200, description = "activated", body = ActivateResponse),
        (status = 400, description = "malformed body, query or path", body = tether_proto::api_error::ApiErrorBody), (status = 401, description = "signature_error: the signature, timestamp or nonce is refused", body = tether_proto::api_error::ApiErrorBody), (status = 409, description = "token_used or dev_already_bound", body = tether_proto::api_error::ApiErrorBody), (status = 410, description = "token_expired", body = tether_proto::api_error::ApiErrorBody), (status = 413, description = "the body is too large", body = tether_proto::api_error::ApiErrorBody), (status = 429, description = "too many requests; see Retry-After", body = tether_proto::api_error::ApiErrorBody)))]
pub(crate) async fn activate_device(
    State(state): State<AppState>,
    headers: HeaderMap,
    signed: SignedDevice,
) -> ApiResult<Json<ActivateResponse>> {
    let result = match platform(&headers) {
        Ok(platform) => activate(&state, signed, platform).await,
        Err(e) => Err(e),
    };
    state.metrics.activation(match &result {
        Ok(_) => "ok",
        Err(e) => e.code(),
    });
    result
}

/// The platform the device's host says it has (`Tether-Platform`), in its normal form.
fn platform(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(value) = headers.get(tether_proto::platform::HEADER) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|text| Platform::parse(text).ok())
        .map(|p| Some(p.to_string()))
        .ok_or_else(|| {
            ApiError::BadRequest(
                "the tether-platform header is not target=…; engine=native|pulley; compiler=yes|no; runtime=…".into(),
            )
        })
}

async fn activate(
    state: &AppState,
    signed: SignedDevice,
    platform: Option<String>,
) -> ApiResult<Json<ActivateResponse>> {
    let Principal::Uuid(signer) = &signed.principal else {
        return Err(ApiError::Pairing {
            code: ErrorCode::SignatureError,
            message: "activation is signed with the authkey (uuid=…), not a dev-secret".into(),
        });
    };
    let req: ActivateRequest = crate::json::parse(&signed.body)?;
    if &req.uuid != signer {
        return Err(ApiError::Pairing {
            code: ErrorCode::SignatureError,
            message: "the body's uuid is not the signer's".into(),
        });
    }
    state.limits.activation.check(&req.uuid)?;
    let (token, row) = pairing_tokens::find_presented(state, &req.token).await?;
    match row.state(crate::unix_now()) {
        TokenState::Revoked => return Err(revoked()),
        TokenState::Expired => return Err(ApiError::pairing(ErrorCode::TokenExpired)),
        TokenState::Pending | TokenState::Complete => {}
    }

    let uuid = req.uuid.clone();
    let bound = state.binder.bind(row, req, signed.nonce, platform).await?;
    // A session on the credentials this activation replaced ends now, not when it next
    // sends something.
    state
        .broker
        .close_device(&bound.dev_id, "credentials replaced")
        .await;
    state.tokens.notify(token.public_id());
    tracing::info!(token = token.public_id(), dev_id = %bound.dev_id, uuid = %uuid, "device activated");

    let mqtt = credentials(state, &bound.dev_id, bound.generation)?;
    Ok(Json(ActivateResponse {
        topics: Topics {
            inbound: mqtt::in_topic(&bound.dev_id),
            out: mqtt::out_topic(&bound.dev_id),
        },
        dev_id: bound.dev_id,
        dev_secret: bound.dev_secret,
        mqtt,
        server_time: crate::unix_now(),
    }))
}

/// The refusal of a revoked token.
fn revoked() -> ApiError {
    ApiError::Pairing {
        code: ErrorCode::TokenInvalid,
        message: "the pairing token was revoked".into(),
    }
}

/// Fresh MQTT credentials for a device generation.
pub fn credentials(state: &AppState, dev_id: &str, generation: i64) -> ApiResult<MqttCredentials> {
    let now = crate::unix_now();
    let expires_at = now + state.config.mqtt_credentials_secs;
    let claims = DeviceClaims {
        sub: dev_id.to_owned(),
        aud: MQTT_AUDIENCE.into(),
        exp: expires_at,
        iat: now,
        generation,
        acl: Acl {
            publish: vec![mqtt::out_topic(dev_id)],
            subscribe: vec![mqtt::in_topic(dev_id)],
        },
    };
    Ok(MqttCredentials {
        url: state.own_endpoints.mqtt_url.clone(),
        client_id: dev_id.to_owned(),
        username: dev_id.to_owned(),
        password: Secret::new(state.keys.sign(&claims)?),
        expires_at,
    })
}

/// Fresh MQTT credentials (signed with the dev-secret).
#[utoipa::path(post, path = "/v1/devices/{dev_id}/mqtt-credentials", tag = "devices", security(("tetherHmac" = [])),
    params(("dev_id" = String, Path, description = "the signing device")),
    request_body(content = CredentialsRequest, description = "empty, or {}"),
    responses((status = 200, description = "new credentials", body = CredentialsResponse), (status = 400, description = "malformed body, query or path", body = tether_proto::api_error::ApiErrorBody), (status = 401, description = "signature_error: the signature, timestamp or nonce is refused", body = tether_proto::api_error::ApiErrorBody), (status = 404, description = "not found for the caller", body = tether_proto::api_error::ApiErrorBody), (status = 413, description = "the body is too large", body = tether_proto::api_error::ApiErrorBody)))]
pub(crate) async fn refresh_credentials(
    State(state): State<AppState>,
    ApiPath(dev_id): ApiPath<String>,
    signed: SignedDevice,
) -> ApiResult<Json<CredentialsResponse>> {
    if signed.principal != Principal::DevId(dev_id.clone()) {
        return Err(ApiError::Pairing {
            code: ErrorCode::SignatureError,
            message: "credentials are refreshed by the device itself, signed with its dev-secret"
                .into(),
        });
    }
    let _: CredentialsRequest = crate::json::parse(if signed.body.is_empty() {
        b"{}"
    } else {
        &signed.body
    })?;
    let generation = crate::devices::store::generation(&state.db, &dev_id)
        .await?
        .ok_or(ApiError::DeviceUnknown)?;
    Ok(Json(CredentialsResponse {
        mqtt: credentials(&state, &dev_id, generation)?,
        server_time: crate::unix_now(),
    }))
}

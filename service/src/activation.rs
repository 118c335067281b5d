//! Activation (`POST /v1/devices/activate`): a device signed with its authkey presents a
//! pairing token; the device becomes the token owner's, gets a dev-id, a dev-secret and
//! MQTT credentials. Also `POST /v1/devices/{dev_id}/mqtt-credentials`, which a device
//! signed with its dev-secret calls for fresh credentials.

use anyhow::Context;
use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use sqlx::{Sqlite, Transaction};
use tether_proto::activation::{
    ActivateRequest, ActivateResponse, CredentialsRequest, CredentialsResponse, MqttCredentials,
    Topics,
};
use tether_proto::random::{self, ALPHANUMERIC, LOWER_ALPHANUMERIC};
use tether_proto::signing::Principal;
use tether_proto::token_status::TokenState;
use tether_proto::{ErrorCode, Secret, mqtt};

use crate::app::AppState;
use crate::device_auth::SignedDevice;
use crate::error::{ApiError, ApiResult};
use crate::keys::{Acl, DeviceClaims, MQTT_AUDIENCE};
use crate::pairing_tokens::{self, TokenRow};

/// Lifetime of a device's MQTT password.
pub const MQTT_CREDENTIALS_SECS: u64 = 24 * 3600;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/devices/activate", post(activate_device))
        .route(
            "/v1/devices/{dev_id}/mqtt-credentials",
            post(refresh_credentials),
        )
}

async fn activate_device(
    State(state): State<AppState>,
    signed: SignedDevice,
) -> ApiResult<Json<ActivateResponse>> {
    let result = activate(&state, signed).await;
    state.metrics.activation(match &result {
        Ok(_) => "ok",
        Err(e) => e.code(),
    });
    result
}

async fn activate(state: &AppState, signed: SignedDevice) -> ApiResult<Json<ActivateResponse>> {
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
    let (token, row) = pairing_tokens::find_presented(&state.db, &req.token).await?;
    match row.state(crate::unix_now()) {
        TokenState::Revoked => {
            return Err(ApiError::Pairing {
                code: ErrorCode::TokenInvalid,
                message: "the pairing token was revoked".into(),
            });
        }
        TokenState::Expired => return Err(ApiError::pairing(ErrorCode::TokenExpired)),
        TokenState::Pending | TokenState::Complete => {}
    }

    // IMMEDIATE takes the write lock up front: a deferred transaction that reads and then
    // writes fails with SQLITE_BUSY when another activation committed in between.
    let mut tx = state.db.begin_with("BEGIN IMMEDIATE").await?;
    let product: Option<String> =
        sqlx::query_scalar("SELECT product_key FROM licenses WHERE uuid = ?")
            .bind(&req.uuid)
            .fetch_optional(&mut *tx)
            .await?;
    if product.as_deref() != Some(req.product_key.as_str()) {
        return Err(ApiError::BadRequest(
            "product_key does not match the device's licence".into(),
        ));
    }
    let bound = bind_device(&mut tx, &row, &req).await?;
    tx.commit().await?;
    state.tokens.notify();
    tracing::info!(token = token.public_id(), dev_id = %bound.dev_id, uuid = %req.uuid, "device activated");

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

struct Bound {
    dev_id: String,
    dev_secret: Secret,
    generation: i64,
}

/// Counts the activation against the token (once per device and token, so a retried
/// request is not refused as `token_used`) and creates, renews or moves the device.
async fn bind_device(
    tx: &mut Transaction<'_, Sqlite>,
    token: &TokenRow,
    req: &ActivateRequest,
) -> ApiResult<Bound> {
    let existing: Option<(String, i64, i64)> =
        sqlx::query_as("SELECT dev_id, owner_id, generation FROM devices WHERE uuid = ?")
            .bind(&req.uuid)
            .fetch_optional(&mut **tx)
            .await?;
    if let Some((_, owner, _)) = &existing
        && *owner != token.owner_id
        && !req.reset
    {
        return Err(ApiError::pairing(ErrorCode::DevAlreadyBound));
    }
    let counted: Option<i64> =
        sqlx::query_scalar("SELECT id FROM activations WHERE token_id = ? AND uuid = ?")
            .bind(&token.public_id)
            .bind(&req.uuid)
            .fetch_optional(&mut **tx)
            .await?;
    if counted.is_none() {
        // The condition makes concurrent activations race safely: only as many succeed as
        // the token allows, whatever their interleaving.
        let taken = sqlx::query(
            "UPDATE pairing_tokens SET used = used + 1 WHERE public_id = ? AND used < max_devices",
        )
        .bind(&token.public_id)
        .execute(&mut **tx)
        .await?;
        if taken.rows_affected() == 0 {
            return Err(ApiError::pairing(ErrorCode::TokenUsed));
        }
    }

    let now = crate::db_time(crate::unix_now());
    let dev_secret = Secret::new(random::string(ALPHANUMERIC, 32).context("random source")?);
    let (dev_id, generation) = match existing {
        // Same owner: keep the dev-id, rotate the secret and the generation.
        Some((dev_id, owner, generation)) if owner == token.owner_id => (dev_id, generation + 1),
        // Moved after a local reset, or new: a fresh dev-id.
        other => {
            if let Some((old, ..)) = other {
                sqlx::query("DELETE FROM devices WHERE dev_id = ?")
                    .bind(old)
                    .execute(&mut **tx)
                    .await?;
            }
            (
                format!(
                    "d{}",
                    random::string(LOWER_ALPHANUMERIC, 19).context("random source")?
                ),
                1,
            )
        }
    };
    sqlx::query(
        "INSERT INTO devices (dev_id, uuid, owner_id, product_key, dev_secret, generation, sw_ver, module_version, activated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (dev_id) DO UPDATE SET dev_secret = excluded.dev_secret, generation = excluded.generation,
           sw_ver = excluded.sw_ver, module_version = excluded.module_version, activated_at = excluded.activated_at",
    )
    .bind(&dev_id)
    .bind(&req.uuid)
    .bind(token.owner_id)
    .bind(&req.product_key)
    .bind(dev_secret.expose())
    .bind(generation)
    .bind(&req.sw_ver)
    .bind(&req.module_version)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO activations (token_id, uuid, dev_id, activated_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (token_id, uuid) DO UPDATE SET dev_id = excluded.dev_id, activated_at = excluded.activated_at",
    )
    .bind(&token.public_id)
    .bind(&req.uuid)
    .bind(&dev_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(Bound {
        dev_id,
        dev_secret,
        generation,
    })
}

/// Fresh MQTT credentials for a device generation.
pub fn credentials(state: &AppState, dev_id: &str, generation: i64) -> ApiResult<MqttCredentials> {
    let now = crate::unix_now();
    let expires_at = now + MQTT_CREDENTIALS_SECS;
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

async fn refresh_credentials(
    State(state): State<AppState>,
    Path(dev_id): Path<String>,
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
    let generation: i64 = sqlx::query_scalar("SELECT generation FROM devices WHERE dev_id = ?")
        .bind(&dev_id)
        .fetch_optional(&state.db)
        .await?
        .ok_or(ApiError::DeviceUnknown)?;
    Ok(Json(CredentialsResponse {
        mqtt: credentials(&state, &dev_id, generation)?,
        server_time: crate::unix_now(),
    }))
}

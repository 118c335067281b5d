//! Device identities (licenses): a uuid and an authkey per device, issued to a
//! manufacturer for a product, with the setup code for its label, the QR payload that
//! carries it, and the pairing verifier the device keeps in the code's place. The
//! service stores the uuid and authkey only: the setup code, its QR payload and the
//! verifier are shown once, at issue. `POST /v1/licenses` (admin) and
//! `tether-service license issue` share [`issue`]. `admin.rs` lists and revokes them.

pub(crate) mod admin;

use anyhow::Context;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tether_proto::Secret;
use tether_proto::random::{self, ALPHANUMERIC, LOWER_ALPHANUMERIC};
use tether_proto::setup_code::{self, PairingVerifier, QrPayload, SetupCode, SetupCodeError};

use crate::app::AppState;
use crate::db::Db;
use crate::error::{ApiError, ApiResult};
use crate::json::ApiJson;
use crate::users::AuthUser;

/// Length of a product key.
pub const PRODUCT_KEY_LEN: usize = 16;
/// Most licenses one request issues.
pub const MAX_COUNT: u32 = 1000;

/// One device identity.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct License {
    /// 20 lower-case letters and digits.
    pub uuid: String,
    /// 32 letters and digits.
    pub authkey: Secret,
    /// The product.
    pub product_key: String,
    /// The setup code for the label, `12345-67890`.
    pub setup_code: Secret,
    /// The QR payload for the label: `tether:pair?v=1&pk=…&uuid=…&code=…`.
    pub qr: Secret,
    /// What the device keeps instead of the code (`identity.pairing_verifier` in its
    /// host config).
    pub pairing_verifier: String,
}

/// Body of `POST /v1/licenses`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueRequest {
    /// Product the devices belong to; created if new.
    #[schema(pattern = "^[A-Za-z0-9]{16}$")]
    pub product_key: String,
    /// How many identities, 1-1000.
    #[schema(minimum = 1, maximum = 1000)]
    pub count: u32,
}

/// Why licenses could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum LicenseError {
    /// The product key breaks the rules.
    #[error("a product key has {PRODUCT_KEY_LEN} letters or digits")]
    BadProductKey,
    /// The count is out of range.
    #[error("count must be 1-{MAX_COUNT}")]
    BadCount,
    /// Storage failed.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Issues `count` licenses for `product_key`, creating the product if it is new. All or
/// none are stored.
pub async fn issue(pool: &Db, product_key: &str, count: u32) -> Result<Vec<License>, LicenseError> {
    if product_key.len() != PRODUCT_KEY_LEN
        || !product_key.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(LicenseError::BadProductKey);
    }
    if !(1..=MAX_COUNT).contains(&count) {
        return Err(LicenseError::BadCount);
    }
    // Argon2id per code (about 15 ms): off the async threads, on every core.
    let labels = tokio::task::spawn_blocking(move || labels(count))
        .await
        .context("the setup-code task failed")?
        .context("cannot make setup codes")?;
    let now = crate::db_time(crate::unix_now());
    let mut tx = pool
        .begin()
        .await
        .context("failed to start a transaction")?;
    sqlx::query(
        "INSERT INTO products (product_key, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(product_key)
    .bind(now)
    .execute(&mut *tx)
    .await
    .context("failed to store the product")?;
    let mut issued = Vec::with_capacity(count as usize);
    for (code, verifier) in labels {
        let uuid = random::string(LOWER_ALPHANUMERIC, 20).context("random source")?;
        let qr = QrPayload {
            product_key: product_key.to_owned(),
            uuid: uuid.clone(),
            code: code.clone(),
        };
        let license = License {
            uuid,
            authkey: Secret::new(random::string(ALPHANUMERIC, 32).context("random source")?),
            product_key: product_key.to_owned(),
            setup_code: Secret::new(code.to_string()),
            qr: Secret::new(qr.encode()),
            pairing_verifier: verifier.encode(),
        };
        sqlx::query(
            "INSERT INTO licenses (uuid, authkey, product_key, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&license.uuid)
        .bind(license.authkey.expose())
        .bind(product_key)
        .bind(now)
        .execute(&mut *tx)
        .await
        .context("failed to store a license")?;
        issued.push(license);
    }
    tx.commit().await.context("failed to commit the licenses")?;
    Ok(issued)
}

/// `count` setup codes and their verifiers, made on as many threads as there are cores.
fn labels(count: u32) -> Result<Vec<(SetupCode, PairingVerifier)>, SetupCodeError> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let count = count as usize;
    let per_thread = count.div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..count)
            .step_by(per_thread)
            .map(|start| {
                let n = per_thread.min(count - start);
                scope.spawn(move || (0..n).map(|_| setup_code::issue()).collect::<Vec<_>>())
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/licenses",
            post(issue_licenses).get(admin::list_licenses),
        )
        .route("/v1/licenses/{uuid}/revoke", post(admin::revoke_license))
}

/// Issue device identities (authkeys, setup codes and verifiers are shown only here).
#[utoipa::path(post, path = "/v1/licenses", tag = "admin", security(("bearer" = [])),
    request_body = IssueRequest,
    responses((status = 201, description = "issued", body = Vec<License>), (status = 400, description = "malformed body, query or path", body = tether_proto::api_error::ApiErrorBody), (status = 401, description = "no valid access token", body = tether_proto::api_error::ApiErrorBody), (status = 403, description = "needs the admin role", body = tether_proto::api_error::ApiErrorBody), (status = 413, description = "the body is too large", body = tether_proto::api_error::ApiErrorBody), (status = 415, description = "the body is not JSON", body = tether_proto::api_error::ApiErrorBody)))]
pub(crate) async fn issue_licenses(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(req): ApiJson<IssueRequest>,
) -> ApiResult<(StatusCode, Json<Vec<License>>)> {
    user.require_admin()?;
    match issue(&state.db, &req.product_key, req.count).await {
        Ok(licenses) => Ok((StatusCode::CREATED, Json(licenses))),
        Err(LicenseError::Other(e)) => Err(ApiError::Internal(e)),
        Err(e) => Err(ApiError::BadRequest(e.to_string())),
    }
}

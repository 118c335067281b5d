//! Hot update in the cloud: admins upload signed component bundles (checked against the
//! configured module keys) and roll them out to a product or to listed devices. Targeted
//! devices get a protocol 15 notice when they are online, or as soon as they subscribe
//! later; they download the bundle with a signed request and report how it ended.

use std::sync::Arc;

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use tether_proto::bundle::{Bundle, Manifest, PAIRING_WORLD, public_key_from_hex};
use tether_proto::mqtt::Protocol;
use tether_proto::platform::Platform;
use tether_proto::signing::Principal;

use crate::app::AppState;
use crate::broker::Broker;
use crate::db::Db;
use crate::device_auth::SignedDevice;
use crate::error::{ApiError, ApiResult};
use crate::json::{ApiJson, ApiPath};
use crate::users::{AdminUser, AuthUser};

/// Largest bundle accepted: the component limit plus its manifest and signature.
pub const MAX_BUNDLE_BYTES: usize = tether_proto::bundle::MAX_COMPONENT + 8192;

/// The module routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/modules",
            post(upload)
                .get(list)
                .layer(DefaultBodyLimit::max(MAX_BUNDLE_BYTES)),
        )
        .route("/v1/modules/{id}/rollouts", post(create_rollout))
        .route("/v1/modules/{id}/bundle", get(download))
        .route("/v1/devices/{dev_id}/module-status", post(report_status))
}

pub use tether_proto::api::{
    DeviceTargets, ModuleView, ProductTarget, RolloutCreated, RolloutRequest,
};
pub use tether_proto::module::{ModuleStatusReport, RolloutView, UpdateNotice, UpdateOutcome};

/// Store a signed component bundle, checked against the module keys.
#[utoipa::path(post, path = "/v1/modules", tag = "admin", security(("bearer" = [])),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "a bundle from `tether module sign`, up to 16 MiB"),
    responses((status = 201, description = "stored", body = ModuleView),
        (status = 400, description = "malformed body, query or path", body = tether_proto::api_error::ApiErrorBody), (status = 401, description = "no valid access token", body = tether_proto::api_error::ApiErrorBody), (status = 403, description = "needs the admin role, or the bundle's key is not trusted", body = tether_proto::api_error::ApiErrorBody), (status = 409, description = "a module with that sequence exists, or no module keys are configured", body = tether_proto::api_error::ApiErrorBody), (status = 413, description = "the body is too large", body = tether_proto::api_error::ApiErrorBody)))]
pub(crate) async fn upload(
    State(state): State<AppState>,
    _admin: AdminUser,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<ModuleView>)> {
    let trusted = state
        .config
        .module_keys
        .iter()
        .map(|k| public_key_from_hex(k))
        .collect::<Result<Vec<_>, _>>()?;
    if trusted.is_empty() {
        return Err(ApiError::NotConfigured(
            "no module keys are configured (serve --module-key)".into(),
        ));
    }
    let bundle = Bundle::parse(&body)?;
    bundle.verify(&trusted)?;
    let m = &bundle.manifest;
    if m.world != PAIRING_WORLD {
        return Err(ApiError::BadRequest(format!(
            "the bundle is for {}, devices run {PAIRING_WORLD}",
            m.world
        )));
    }
    let variant = Variant::of(m);
    let now = crate::db_time(crate::unix_now());
    let mut tx = state.db.begin().await?;
    let existing: Option<(i64, String, String, String)> = sqlx::query_as(
        "SELECT id, version, min_host_version, sha256 FROM modules WHERE signing_key = $1 AND sequence = $2",
    )
    .bind(&m.key)
    .bind(i64::try_from(m.sequence).unwrap_or(i64::MAX))
    .fetch_optional(&mut *tx)
    .await?;
    let id = match existing {
        Some((id, version, min_host, source)) => {
            if version != m.version || min_host != m.min_host_version || source != m.source_sha256()
            {
                return Err(ApiError::Conflict(format!(
                    "sequence {} of this key is already version {version} of another component; sign with a new sequence",
                    m.sequence
                )));
            }
            id
        }
        None => {
            sqlx::query_scalar::<_, i64>(
                "INSERT INTO modules (version, sequence, world, sha256, size, min_host_version, signing_key, bundle, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
            )
            .bind(&m.version)
            .bind(i64::try_from(m.sequence).unwrap_or(i64::MAX))
            .bind(&m.world)
            .bind(m.source_sha256())
            .bind(i64::try_from(m.size).unwrap_or(i64::MAX))
            .bind(&m.min_host_version)
            .bind(&m.key)
            // The bundles live in module_bundles.
            .bind(Vec::<u8>::new())
            .bind(now)
            .fetch_one(&mut *tx)
            .await?
        }
    };
    let inserted = sqlx::query(
        "INSERT INTO module_bundles (module_id, target, engine, runtime, sha256, size, bundle, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(&variant.target)
    .bind(&variant.engine)
    .bind(&variant.runtime)
    .bind(&m.sha256)
    .bind(i64::try_from(m.size).unwrap_or(i64::MAX))
    .bind(body.as_ref())
    .bind(now)
    .execute(&mut *tx)
    .await;
    match inserted {
        Ok(_) => {}
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            return Err(ApiError::Conflict(format!(
                "module {id} already has its {} bundle",
                variant.label()
            )));
        }
        Err(e) => return Err(e.into()),
    }
    tx.commit().await?;
    tracing::info!(module = id, version = %m.version, sequence = m.sequence, variant = %variant.label(), "module bundle stored");
    let waiting = reopen_waiting(&state.db, id).await?;
    for dev_id in waiting {
        if state.broker.sessions().latest(&dev_id).is_some()
            && let Err(e) = deliver(
                &state.db,
                &state.broker,
                &state.own_endpoints.http_url,
                &dev_id,
            )
            .await
        {
            tracing::warn!(dev_id, error = %format!("{e:#}"), "update notice not sent");
        }
    }
    Ok((StatusCode::CREATED, Json(module(&state.db, id).await?)))
}

/// Which hosts a bundle is for: empty strings for the portable component.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Variant {
    target: String,
    engine: String,
    runtime: String,
}

impl Variant {
    /// The variant a manifest describes.
    fn of(m: &Manifest) -> Self {
        match &m.precompiled {
            None => Self::portable(),
            Some(p) => Self {
                target: p.target.clone(),
                engine: p.engine.name().to_owned(),
                runtime: p.runtime.clone(),
            },
        }
    }

    fn portable() -> Self {
        Self {
            target: String::new(),
            engine: String::new(),
            runtime: String::new(),
        }
    }

    /// The variant a device with `platform` (as its host said at activation) takes;
    /// a device that did not say is taken to have the compiler.
    fn wanted_by(platform: Option<&str>) -> Self {
        match platform.and_then(|p| Platform::parse(p).ok()) {
            Some(p) if !p.compiler => Self {
                target: p.target,
                engine: p.engine.name().to_owned(),
                runtime: p.runtime,
            },
            _ => Self::portable(),
        }
    }

    /// The variant for `dev_id`, from the platform stored at its activation.
    async fn wanted_by_device(db: &Db, dev_id: &str) -> sqlx::Result<Self> {
        let platform = crate::devices::store::platform(db, dev_id).await?;
        Ok(Self::wanted_by(platform.as_deref()))
    }

    fn label(&self) -> String {
        if self.target.is_empty() {
            "portable".to_owned()
        } else {
            format!("{}/{} ({})", self.target, self.engine, self.runtime)
        }
    }
}

/// Devices of `module`'s rollouts that waited for a bundle for their platform go back
/// to pending, now that another bundle is stored.
async fn reopen_waiting(db: &Db, module: i64) -> ApiResult<Vec<String>> {
    let now = crate::db_time(crate::unix_now());
    Ok(sqlx::query_scalar(
        "UPDATE rollout_devices SET state = 'pending', reason = NULL, updated_at = $1
         WHERE state = 'refused' AND reason LIKE 'no_bundle_for_platform:%'
           AND rollout_id IN (SELECT id FROM rollouts WHERE module_id = $2)
         RETURNING dev_id",
    )
    .bind(now)
    .bind(module)
    .fetch_all(db)
    .await?)
}

/// The variants column of [`ModuleView`].
/// (comma-separated: neither targets nor engines hold a comma).
const VARIANTS: &str = "(SELECT string_agg(CASE WHEN b.target = '' THEN 'portable' ELSE b.target || '/' || b.engine END, ',' ORDER BY b.target, b.engine)
    FROM module_bundles b WHERE b.module_id = m.id) AS variants";

/// A row of [`ModuleView`] columns.
struct ModuleRow(ModuleView);

impl sqlx::FromRow<'_, sqlx::any::AnyRow> for ModuleRow {
    fn from_row(row: &sqlx::any::AnyRow) -> sqlx::Result<Self> {
        use sqlx::Row;
        let variants: Option<String> = row.try_get("variants")?;
        Ok(Self(ModuleView {
            id: row.try_get("id")?,
            version: row.try_get("version")?,
            sequence: row.try_get("sequence")?,
            sha256: row.try_get("sha256")?,
            size: row.try_get("size")?,
            created_at: row.try_get("created_at")?,
            variants: variants
                .map(|v| v.split(',').map(str::to_owned).collect())
                .unwrap_or_default(),
        }))
    }
}

pub(crate) async fn module(db: &Db, id: i64) -> ApiResult<ModuleView> {
    let row: Option<ModuleRow> = sqlx::query_as(&format!(
        "SELECT m.id, m.version, m.sequence, m.sha256, m.size, m.created_at, {VARIANTS}
         FROM modules m WHERE m.id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await?;
    row.map(|r| r.0).ok_or(ApiError::NotFound("module"))
}

/// The stored modules.
#[utoipa::path(get, path = "/v1/modules", tag = "admin", security(("bearer" = [])),
    responses((status = 200, description = "the modules", body = Vec<ModuleView>), (status = 401, description = "no valid access token", body = tether_proto::api_error::ApiErrorBody), (status = 403, description = "needs the admin role", body = tether_proto::api_error::ApiErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<Json<Vec<ModuleView>>> {
    user.require_admin()?;
    let modules: Vec<ModuleRow> = sqlx::query_as(&format!(
        "SELECT m.id, m.version, m.sequence, m.sha256, m.size, m.created_at, {VARIANTS}
         FROM modules m ORDER BY m.id"
    ))
    .fetch_all(&state.db)
    .await?;
    Ok(Json(modules.into_iter().map(|r| r.0).collect()))
}

/// Roll a module out to a product's devices or to listed devices.
#[utoipa::path(post, path = "/v1/modules/{id}/rollouts", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, description = "module id")),
    request_body = RolloutRequest,
    responses((status = 201, description = "rolled out", body = RolloutCreated), (status = 400, description = "malformed body, query or path", body = tether_proto::api_error::ApiErrorBody), (status = 401, description = "no valid access token", body = tether_proto::api_error::ApiErrorBody), (status = 403, description = "needs the admin role", body = tether_proto::api_error::ApiErrorBody), (status = 404, description = "not found for the caller", body = tether_proto::api_error::ApiErrorBody), (status = 413, description = "the body is too large", body = tether_proto::api_error::ApiErrorBody), (status = 415, description = "the body is not JSON", body = tether_proto::api_error::ApiErrorBody)))]
pub(crate) async fn create_rollout(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<RolloutRequest>,
) -> ApiResult<(StatusCode, Json<RolloutCreated>)> {
    user.require_admin()?;
    let module = module(&state.db, id).await?;
    let (product_key, targets): (Option<&str>, Vec<String>) = match &req {
        RolloutRequest::Product(target) => (
            Some(&target.product_key),
            crate::devices::store::of_product(&state.db, &target.product_key).await?,
        ),
        RolloutRequest::Devices(DeviceTargets { devices }) if !devices.is_empty() => {
            for dev_id in devices {
                if !crate::devices::store::exists(&state.db, dev_id).await? {
                    return Err(ApiError::NotFound("device"));
                }
            }
            (None, devices.clone())
        }
        RolloutRequest::Devices(_) => {
            return Err(ApiError::BadRequest(
                "give either product_key or a non-empty devices list".into(),
            ));
        }
    };
    let now = crate::db_time(crate::unix_now());
    let mut tx = state.db.begin().await?;
    let rollout: i64 = sqlx::query_scalar(
        "INSERT INTO rollouts (module_id, product_key, created_at) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(id)
    .bind(product_key)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    for dev_id in &targets {
        sqlx::query(
            "INSERT INTO rollout_devices (rollout_id, dev_id, state, updated_at) VALUES ($1, $2, 'pending', $3)",
        )
        .bind(rollout)
        .bind(dev_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    let mut notified = 0;
    for dev_id in &targets {
        if state.broker.sessions().latest(dev_id).is_some()
            && deliver(
                &state.db,
                &state.broker,
                &state.own_endpoints.http_url,
                dev_id,
            )
            .await
            .unwrap_or(false)
        {
            notified += 1;
        }
    }
    tracing::info!(rollout, module = id, version = %module.version, targeted = targets.len(), notified, "rollout created");
    Ok((
        StatusCode::CREATED,
        Json(RolloutCreated {
            rollout_id: rollout,
            module_id: id,
            version: module.version,
            targeted: targets.len(),
            notified,
        }),
    ))
}

/// Sends `dev_id` the notice of its newest pending rollout (adding the device to the
/// rollouts of its product it is not in yet, such as ones made before it was activated).
/// True when a notice went out.
pub async fn deliver(
    db: &Db,
    broker: &Broker,
    api_url: &str,
    dev_id: &str,
) -> anyhow::Result<bool> {
    let now = crate::db_time(crate::unix_now());
    sqlx::query(
        "INSERT INTO rollout_devices (rollout_id, dev_id, state, updated_at)
         SELECT r.id, d.dev_id, 'pending', $1 FROM rollouts r JOIN devices d ON d.product_key = r.product_key
         WHERE d.dev_id = $2
         ON CONFLICT DO NOTHING",
    )
    .bind(now)
    .bind(dev_id)
    .execute(db)
    .await
    .context("failed to add the device to product rollouts")?;
    let pending: Option<(i64, i64, String, i64)> = sqlx::query_as(
        "SELECT rd.rollout_id, m.id, m.version, m.sequence
         FROM rollout_devices rd JOIN rollouts r ON r.id = rd.rollout_id JOIN modules m ON m.id = r.module_id
         WHERE rd.dev_id = $1 AND rd.state IN ('pending', 'notified')
         ORDER BY m.sequence DESC LIMIT 1",
    )
    .bind(dev_id)
    .fetch_optional(db)
    .await
    .context("failed to read pending rollouts")?;
    let Some((rollout, module, version, sequence)) = pending else {
        return Ok(false);
    };
    let wanted = Variant::wanted_by_device(db, dev_id).await?;
    let Some((sha256, size)) = bundle_for(db, module, &wanted).await? else {
        let reason = format!(
            "no_bundle_for_platform: module {module} has no bundle for {}; upload one made by `tether module sign --target`",
            wanted.label()
        );
        sqlx::query(
            "UPDATE rollout_devices SET state = 'refused', reason = $1, updated_at = $2 WHERE rollout_id = $3 AND dev_id = $4",
        )
        .bind(&reason)
        .bind(now)
        .bind(rollout)
        .bind(dev_id)
        .execute(db)
        .await?;
        tracing::warn!(dev_id, module, %reason, "no update notice");
        return Ok(false);
    };
    let notice = UpdateNotice {
        module_id: module,
        version: version.clone(),
        sequence: u64::try_from(sequence).unwrap_or_default(),
        sha256,
        size: u64::try_from(size).unwrap_or_default(),
        url: format!("{api_url}/v1/modules/{module}/bundle"),
    };
    broker
        .publish(
            dev_id,
            Protocol::ComponentUpdate,
            serde_json::to_value(&notice).context("failed to encode the notice")?,
        )
        .await?;
    sqlx::query(
        "UPDATE rollout_devices SET state = 'notified', updated_at = $1 WHERE rollout_id = $2 AND dev_id = $3 AND state = 'pending'",
    )
    .bind(now)
    .bind(rollout)
    .bind(dev_id)
    .execute(db)
    .await?;
    tracing::info!(dev_id, module, %version, "update notice sent");
    Ok(true)
}

/// Selects a module's bundle for one variant: binds the module id, then the variant.
const BUNDLE_OF_VARIANT: &str = "FROM module_bundles b WHERE b.module_id = $1 AND b.target = $2 AND b.engine = $3 AND b.runtime = $4";

/// The hash and size of the bundle of `module` for `wanted`, if stored.
async fn bundle_for(db: &Db, module: i64, wanted: &Variant) -> sqlx::Result<Option<(String, i64)>> {
    sqlx::query_as(&format!("SELECT b.sha256, b.size {BUNDLE_OF_VARIANT}"))
        .bind(module)
        .bind(&wanted.target)
        .bind(&wanted.engine)
        .bind(&wanted.runtime)
        .fetch_optional(db)
        .await
}

/// Delivers waiting notices to devices as they subscribe, until the stream ends.
pub fn deliver_on_subscribe(db: Db, broker: Arc<Broker>, api_url: String) {
    let subscribed = broker.subscriptions();
    tokio::spawn(async move {
        while let Some(dev_id) = subscribed.next().await {
            if let Err(e) = deliver(&db, &broker, &api_url, &dev_id).await {
                tracing::warn!(dev_id, error = %format!("{e:#}"), "update notice not sent");
            }
        }
    });
}

fn signed_dev_id(device: &SignedDevice) -> ApiResult<&str> {
    match &device.principal {
        Principal::DevId(dev_id) => Ok(dev_id),
        Principal::Uuid(_) => Err(ApiError::Unauthorized(
            "sign with the dev-secret of an activated device".into(),
        )),
    }
}

/// Download a bundle rolled out to the signing device.
#[utoipa::path(get, path = "/v1/modules/{id}/bundle", tag = "devices", security(("tetherHmac" = [])),
    params(("id" = i64, Path, description = "module id")),
    responses((status = 200, description = "the bundle", body = Vec<u8>, content_type = "application/octet-stream"), (status = 400, description = "malformed body, query or path", body = tether_proto::api_error::ApiErrorBody), (status = 401, description = "signature_error: the signature, timestamp or nonce is refused", body = tether_proto::api_error::ApiErrorBody), (status = 404, description = "not found for the caller", body = tether_proto::api_error::ApiErrorBody)))]
pub(crate) async fn download(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    device: SignedDevice,
) -> ApiResult<impl IntoResponse> {
    let dev_id = signed_dev_id(&device)?;
    let wanted = Variant::wanted_by_device(&state.db, dev_id).await?;
    // Only a module rolled out to this device, in the variant for its platform.
    let bundle: Option<Vec<u8>> = sqlx::query_scalar(&format!(
        "SELECT b.bundle {BUNDLE_OF_VARIANT} AND EXISTS (
           SELECT 1 FROM rollouts r JOIN rollout_devices rd ON rd.rollout_id = r.id
           WHERE r.module_id = b.module_id AND rd.dev_id = $5)"
    ))
    .bind(id)
    .bind(&wanted.target)
    .bind(&wanted.engine)
    .bind(&wanted.runtime)
    .bind(dev_id)
    .fetch_optional(&state.db)
    .await?;
    let bundle = bundle.ok_or(ApiError::NotFound("module"))?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bundle))
}

/// Report an update outcome.
#[utoipa::path(post, path = "/v1/devices/{dev_id}/module-status", tag = "devices", security(("tetherHmac" = [])),
    params(("dev_id" = String, Path, description = "the signing device")),
    request_body = ModuleStatusReport,
    responses((status = 204, description = "stored"), (status = 400, description = "malformed body, query or path", body = tether_proto::api_error::ApiErrorBody), (status = 401, description = "signature_error: the signature, timestamp or nonce is refused", body = tether_proto::api_error::ApiErrorBody), (status = 403, description = "another device's status", body = tether_proto::api_error::ApiErrorBody), (status = 413, description = "the body is too large", body = tether_proto::api_error::ApiErrorBody)))]
pub(crate) async fn report_status(
    State(state): State<AppState>,
    ApiPath(path_dev_id): ApiPath<String>,
    device: SignedDevice,
) -> ApiResult<StatusCode> {
    let dev_id = signed_dev_id(&device)?;
    if dev_id != path_dev_id {
        return Err(ApiError::Forbidden);
    }
    let report: ModuleStatusReport = serde_json::from_slice(&device.body)
        .map_err(|e| ApiError::BadRequest(format!("invalid body: {e}")))?;
    let at = crate::unix_now();
    let now = crate::db_time(at);
    let outcome = UpdateOutcome {
        version: report.version.clone(),
        sequence: report.sequence,
        result: report.result,
        reason: report.reason.clone(),
        at,
    };
    crate::devices::store::set_module(&state.db, dev_id, &report.running, &outcome).await?;
    sqlx::query(
        "UPDATE rollout_devices SET state = $1, reason = $2, updated_at = $3
         WHERE dev_id = $4 AND rollout_id IN (
           SELECT r.id FROM rollouts r JOIN modules m ON m.id = r.module_id WHERE m.sequence = $5)",
    )
    .bind(report.result.name())
    .bind(&report.reason)
    .bind(now)
    .bind(dev_id)
    .bind(i64::try_from(report.sequence).unwrap_or(i64::MAX))
    .execute(&state.db)
    .await?;
    tracing::info!(dev_id, version = %report.version, result = report.result.name(), running = %report.running, "module status reported");
    Ok(StatusCode::NO_CONTENT)
}

/// The newest rollout of a device, for `GET /v1/devices/{id}`.
pub async fn rollout_of(db: &Db, dev_id: &str) -> ApiResult<Option<RolloutView>> {
    let row: Option<(i64, String, i64, String, Option<String>, i64)> = sqlx::query_as(
        "SELECT m.id, m.version, m.sequence, rd.state, rd.reason, rd.updated_at
         FROM rollout_devices rd JOIN rollouts r ON r.id = rd.rollout_id JOIN modules m ON m.id = r.module_id
         WHERE rd.dev_id = $1 ORDER BY rd.updated_at DESC, m.sequence DESC LIMIT 1",
    )
    .bind(dev_id)
    .fetch_optional(db)
    .await?;
    Ok(row.map(
        |(module_id, version, sequence, state, reason, updated_at)| RolloutView {
            module_id,
            version,
            sequence,
            state,
            reason,
            updated_at,
        },
    ))
}

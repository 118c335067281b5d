//! Licenses for operators (admins): `GET /v1/licenses` lists them with their state
//! (unused, active, revoked), as JSON or as CSV for a spreadsheet (`?format=csv`), and
//! `POST /v1/licenses/{uuid}/revoke` revokes one: its device is unbound at once (its
//! session hears why and is closed; its MQTT password and dev-secret stop working) and
//! it activates no device again. Neither ever shows an authkey or a setup code.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sqlx::Row;
use tether_proto::api::{LicenseState, LicenseView};
use tether_proto::mqtt::Protocol;

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::json::ApiPath;
use crate::users::AuthUser;

/// Most licenses one page lists.
pub const MAX_PAGE: u32 = 10_000;
/// Licenses a page lists when not told.
const DEFAULT_PAGE: u32 = 1_000;

/// Query of `GET /v1/licenses`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// Only this product's.
    pub(crate) product_key: Option<String>,
    /// Only those in this state: `unused`, `active` or `revoked`.
    pub(crate) state: Option<String>,
    /// The page starts after this uuid (the last one of the previous page).
    pub(crate) after: Option<String>,
    /// At most this many (1-10000, default 1000).
    #[param(minimum = 1, maximum = 10000)]
    pub(crate) limit: Option<u32>,
    /// `json` (the default) or `csv`.
    pub(crate) format: Option<String>,
}

/// List licenses with their state (admins).
#[utoipa::path(get, path = "/v1/licenses", tag = "admin", security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, description = "the licenses, ordered by uuid (JSON, or CSV with `format=csv`)", body = Vec<LicenseView>), (status = 400, description = "malformed body, query or path", body = tether_proto::api_error::ApiErrorBody), (status = 401, description = "no valid access token", body = tether_proto::api_error::ApiErrorBody), (status = 403, description = "needs the admin role", body = tether_proto::api_error::ApiErrorBody)))]
pub(crate) async fn list_licenses(
    State(state): State<AppState>,
    user: AuthUser,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    user.require_admin()?;
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let csv = match query.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "format is json or csv, not {other:?}"
            )));
        }
    };
    let licenses = query_licenses(&state.db, &query).await?;
    if csv {
        let body = to_csv(&licenses);
        return Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response());
    }
    Ok(Json(licenses).into_response())
}

/// The licenses `query` selects, in uuid order (the query's format is not looked at).
pub(crate) async fn query_licenses(
    db: &crate::db::Db,
    query: &ListQuery,
) -> ApiResult<Vec<LicenseView>> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(format!("limit is 1-{MAX_PAGE}")));
    }
    let wanted = match query.state.as_deref() {
        None => None,
        Some(name) => Some(LicenseState::from_name(name).ok_or_else(|| {
            ApiError::BadRequest(format!("state is unused, active or revoked, not {name:?}"))
        })?),
    };
    let state_sql = match wanted {
        None => "",
        Some(LicenseState::Revoked) => " AND l.revoked_at IS NOT NULL",
        Some(LicenseState::Active) => " AND l.revoked_at IS NULL AND d.dev_id IS NOT NULL",
        Some(LicenseState::Unused) => " AND l.revoked_at IS NULL AND d.dev_id IS NULL",
    };
    let sql = format!(
        "SELECT l.uuid, l.product_key, l.created_at, l.revoked_at, d.dev_id, u.username
         FROM licenses l LEFT JOIN devices d ON d.uuid = l.uuid
           LEFT JOIN users u ON u.id = d.owner_id
         WHERE ($1 IS NULL OR l.product_key = $1) AND l.uuid > $2{state_sql}
         ORDER BY l.uuid LIMIT $3"
    );
    let rows = sqlx::query(&sql)
        .bind(query.product_key.as_deref())
        .bind(query.after.as_deref().unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(db)
        .await?;
    rows.iter()
        .map(|row| {
            let revoked_at: Option<i64> = row.try_get("revoked_at")?;
            let dev_id: Option<String> = row.try_get("dev_id")?;
            let state = match (revoked_at, &dev_id) {
                (Some(_), _) => LicenseState::Revoked,
                (None, Some(_)) => LicenseState::Active,
                (None, None) => LicenseState::Unused,
            };
            Ok(LicenseView {
                uuid: row.try_get("uuid")?,
                product_key: row.try_get("product_key")?,
                state,
                dev_id,
                owner: row.try_get("username")?,
                created_at: crate::from_db_time(row.try_get("created_at")?),
                revoked_at: revoked_at.map(crate::from_db_time),
            })
        })
        .collect::<sqlx::Result<Vec<_>>>()
        .map_err(ApiError::from)
}

/// Revoke a license (admins): its device is unbound now and it activates no device again.
#[utoipa::path(post, path = "/v1/licenses/{uuid}/revoke", tag = "admin", security(("bearer" = [])),
    params(("uuid" = String, Path, description = "the license's uuid")),
    responses((status = 204, description = "revoked (also when it already was)"), (status = 401, description = "no valid access token", body = tether_proto::api_error::ApiErrorBody), (status = 403, description = "needs the admin role", body = tether_proto::api_error::ApiErrorBody), (status = 404, description = "no such license", body = tether_proto::api_error::ApiErrorBody)))]
pub(crate) async fn revoke_license(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(uuid): ApiPath<String>,
) -> ApiResult<StatusCode> {
    user.require_admin()?;
    let mut tx = state.db.begin().await?;
    // On PostgreSQL this waits for an activation holding the license's row, so either
    // that activation's binding is deleted below or it sees the revocation.
    let found =
        sqlx::query("UPDATE licenses SET revoked_at = COALESCE(revoked_at, $2) WHERE uuid = $1")
            .bind(&uuid)
            .bind(crate::db_time(crate::unix_now()))
            .execute(&mut *tx)
            .await?;
    if found.rows_affected() == 0 {
        return Err(ApiError::NotFound("license"));
    }
    let dev_id = crate::devices::store::delete_by_license(&mut *tx, &uuid).await?;
    tx.commit().await?;
    if let Some(dev_id) = &dev_id {
        state
            .broker
            .notify_and_close(dev_id, Protocol::Unbind, "license revoked")
            .await;
    }
    tracing::info!(uuid, dev_id, "license revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// The licenses as CSV (see [`csv`]).
fn to_csv(licenses: &[LicenseView]) -> String {
    let rows: Vec<Vec<String>> = licenses
        .iter()
        .map(|l| {
            vec![
                l.uuid.clone(),
                l.product_key.clone(),
                l.state.name().to_owned(),
                l.dev_id.clone().unwrap_or_default(),
                l.owner.clone().unwrap_or_default(),
                l.created_at.to_string(),
                l.revoked_at.map(|t| t.to_string()).unwrap_or_default(),
            ]
        })
        .collect();
    csv(
        "uuid,product_key,state,dev_id,owner,created_at,revoked_at",
        &rows,
    )
}

/// CSV (RFC 4180): the `header` line, then one line per row. A field that a spreadsheet
/// would take as a formula is prefixed with `'`.
pub(crate) fn csv(header: &str, rows: &[Vec<String>]) -> String {
    fn field(out: &mut String, value: &str) {
        let guarded;
        let value = if value.starts_with(['=', '+', '-', '@']) {
            guarded = format!("'{value}");
            guarded.as_str()
        } else {
            value
        };
        if value.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&value.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(value);
        }
    }
    let mut out = format!("{header}\r\n");
    for fields in rows {
        for (i, value) in fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            field(&mut out, value);
        }
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_it_must_and_defuses_formulas() {
        let license = |owner: &str| LicenseView {
            uuid: "u1".into(),
            product_key: "p".into(),
            state: LicenseState::Active,
            dev_id: Some("d1".into()),
            owner: Some(owner.into()),
            created_at: 5,
            revoked_at: None,
        };
        let text = to_csv(&[license("ann"), license("a,\"b\""), license("=cmd()")]);
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(
            lines[0],
            "uuid,product_key,state,dev_id,owner,created_at,revoked_at"
        );
        assert_eq!(lines[1], "u1,p,active,d1,ann,5,");
        assert_eq!(lines[2], "u1,p,active,d1,\"a,\"\"b\"\"\",5,");
        assert_eq!(lines[3], "u1,p,active,d1,'=cmd(),5,");
    }
}

//! The device registry's statements, behind one function per named operation the other
//! modules call (activation binds, the broker records presence and reports, modules
//! record update outcomes). The same statements run on SQLite and PostgreSQL; flags are
//! 0/1 integers and JSON documents text on both, decoded here.

use sqlx::any::{AnyExecutor, AnyRow};
use sqlx::{FromRow, Row};
use tether_proto::Secret;
use tether_proto::api::DeviceView;
use tether_proto::module::UpdateOutcome;

use crate::db::Db;

/// The columns of a [`DeviceView`].
const VIEW: &str = "dev_id, uuid, product_key, online, last_seen, last_report, sw_ver, module_version, activated_at, module_outcome, platform";

/// A row of [`VIEW`] columns.
struct ViewRow(DeviceView);

impl FromRow<'_, AnyRow> for ViewRow {
    fn from_row(row: &AnyRow) -> sqlx::Result<Self> {
        let json = |column: &str| -> sqlx::Result<Option<String>> { row.try_get(column) };
        let last_report = json("last_report")?
            .map(|text| serde_json::from_str(&text))
            .transpose()
            .map_err(|e| decode_error("last_report", e))?;
        let module_outcome = json("module_outcome")?
            .map(|text| serde_json::from_str(&text))
            .transpose()
            .map_err(|e| decode_error("module_outcome", e))?;
        Ok(Self(DeviceView {
            dev_id: row.try_get("dev_id")?,
            uuid: row.try_get("uuid")?,
            product_key: row.try_get("product_key")?,
            online: row.try_get::<i64, _>("online")? != 0,
            last_seen: row.try_get("last_seen")?,
            last_report,
            sw_ver: row.try_get("sw_ver")?,
            module_version: row.try_get("module_version")?,
            activated_at: row.try_get("activated_at")?,
            module_outcome,
            platform: row.try_get("platform")?,
            rollout: None,
        }))
    }
}

/// A column whose text is not the JSON it should hold.
pub fn decode_error(column: &str, e: serde_json::Error) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: Box::new(e),
    }
}

/// A device as its owner sees it, if `owner` owns it.
pub async fn owned(db: &Db, owner: i64, dev_id: &str) -> sqlx::Result<Option<DeviceView>> {
    let row: Option<ViewRow> = sqlx::query_as(&format!(
        "SELECT {VIEW} FROM devices WHERE dev_id = $1 AND owner_id = $2"
    ))
    .bind(dev_id)
    .bind(owner)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| r.0))
}

/// The devices `owner` owns, oldest activation first.
pub async fn of_owner(db: &Db, owner: i64) -> sqlx::Result<Vec<DeviceView>> {
    let rows: Vec<ViewRow> = sqlx::query_as(&format!(
        "SELECT {VIEW} FROM devices WHERE owner_id = $1 ORDER BY activated_at, dev_id"
    ))
    .bind(owner)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// Unbinds `dev_id` if `owner` owns it; true when a row went.
pub async fn delete_owned(db: &Db, owner: i64, dev_id: &str) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM devices WHERE dev_id = $1 AND owner_id = $2")
        .bind(dev_id)
        .bind(owner)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Hands device `dev_id` from account `from` to account `to`; whether `from` owned it.
pub async fn change_owner(
    db: impl AnyExecutor<'_>,
    dev_id: &str,
    from: i64,
    to: i64,
) -> sqlx::Result<bool> {
    let done = sqlx::query("UPDATE devices SET owner_id = $3 WHERE dev_id = $1 AND owner_id = $2")
        .bind(dev_id)
        .bind(from)
        .bind(to)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Forgets the device bound with license `uuid`, if any (its license was revoked); its
/// dev-id.
pub async fn delete_by_license(
    db: impl AnyExecutor<'_>,
    uuid: &str,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("DELETE FROM devices WHERE uuid = $1 RETURNING dev_id")
        .bind(uuid)
        .fetch_optional(db)
        .await
}

/// Forgets devices (they moved to another owner after a local reset).
pub async fn delete_all(db: impl AnyExecutor<'_>, dev_ids: &[String]) -> sqlx::Result<()> {
    if dev_ids.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "DELETE FROM devices WHERE dev_id IN ({})",
        crate::db::list(dev_ids.len(), 1)
    );
    let mut query = sqlx::query(&sql);
    for dev_id in dev_ids {
        query = query.bind(dev_id);
    }
    query.execute(db).await?;
    Ok(())
}

/// What an activation binds.
#[derive(Debug)]
pub struct Binding<'a> {
    /// The device id.
    pub dev_id: &'a str,
    /// The license.
    pub uuid: &'a str,
    /// The token's owner.
    pub owner_id: i64,
    /// The product.
    pub product_key: &'a str,
    /// The new dev-secret.
    pub dev_secret: &'a Secret,
    /// The credential generation (MQTT passwords of older ones stop working).
    pub generation: i64,
    /// Firmware version.
    pub sw_ver: &'a str,
    /// Pairing component version.
    pub module_version: &'a str,
    /// The host's platform (`Tether-Platform`), if it said.
    pub platform: Option<&'a str>,
    /// Unix seconds.
    pub activated_at: i64,
}

/// Binds devices, or re-binds them with a new secret and generation, in one statement
/// (each dev-id at most once).
pub async fn bind_all(db: impl AnyExecutor<'_>, all: &[Binding<'_>]) -> sqlx::Result<()> {
    if all.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO devices (dev_id, uuid, owner_id, product_key, dev_secret, generation, sw_ver, module_version, platform, activated_at)
         VALUES {}
         ON CONFLICT (dev_id) DO UPDATE SET dev_secret = excluded.dev_secret, generation = excluded.generation,
           sw_ver = excluded.sw_ver, module_version = excluded.module_version, platform = excluded.platform,
           activated_at = excluded.activated_at",
        crate::db::rows(all.len(), 10, 1)
    );
    let mut query = sqlx::query(&sql);
    for b in all {
        query = query
            .bind(b.dev_id)
            .bind(b.uuid)
            .bind(b.owner_id)
            .bind(b.product_key)
            .bind(b.dev_secret.expose())
            .bind(b.generation)
            .bind(b.sw_ver)
            .bind(b.module_version)
            .bind(b.platform)
            .bind(b.activated_at);
    }
    query.execute(db).await?;
    Ok(())
}

/// One column of a bound device.
async fn column<T>(db: &Db, select: &'static str, dev_id: &str) -> sqlx::Result<Option<T>>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any> + Send + Unpin,
{
    sqlx::query_scalar(select)
        .bind(dev_id)
        .fetch_optional(db)
        .await
}

/// The credential generation of a bound device.
pub async fn generation(db: &Db, dev_id: &str) -> sqlx::Result<Option<i64>> {
    column(
        db,
        "SELECT generation FROM devices WHERE dev_id = $1",
        dev_id,
    )
    .await
}

/// The license uuid of a bound device.
pub async fn uuid(db: &Db, dev_id: &str) -> sqlx::Result<Option<String>> {
    column(db, "SELECT uuid FROM devices WHERE dev_id = $1", dev_id).await
}

/// The dev-secret a bound device signs with.
pub async fn dev_secret(db: &Db, dev_id: &str) -> sqlx::Result<Option<Secret>> {
    let secret: Option<String> = column(
        db,
        "SELECT dev_secret FROM devices WHERE dev_id = $1",
        dev_id,
    )
    .await?;
    Ok(secret.map(Secret::new))
}

/// Whether a device is bound.
pub async fn exists(db: &Db, dev_id: &str) -> sqlx::Result<bool> {
    let found: Option<String> =
        column(db, "SELECT dev_id FROM devices WHERE dev_id = $1", dev_id).await?;
    Ok(found.is_some())
}

/// The platform a bound device's host said it runs, if the device is bound and said.
pub async fn platform(db: &Db, dev_id: &str) -> sqlx::Result<Option<String>> {
    let platform: Option<Option<String>> =
        column(db, "SELECT platform FROM devices WHERE dev_id = $1", dev_id).await?;
    Ok(platform.flatten())
}

/// The devices of a product.
pub async fn of_product(db: &Db, product_key: &str) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT dev_id FROM devices WHERE product_key = $1")
        .bind(product_key)
        .fetch_all(db)
        .await
}

/// Records a session going up or down at `node`; false when the device is not bound, or
/// (going down) its session is now on another node.
pub async fn set_presence(
    db: &Db,
    dev_id: &str,
    online: bool,
    at: i64,
    node: u64,
) -> sqlx::Result<bool> {
    // Offline only from the node that holds the session: a device that moved to another
    // node stays online when its old node reports the old session gone.
    let statement = if online {
        "UPDATE devices SET online = 1, last_seen = $1, session_node = $2 WHERE dev_id = $3"
    } else {
        "UPDATE devices SET online = 0, last_seen = $1 WHERE session_node = $2 AND dev_id = $3"
    };
    let done = sqlx::query(statement)
        .bind(at)
        .bind(node_number(node))
        .bind(dev_id)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks offline every device whose session was on `node`; returns how many were online.
pub async fn mark_all_offline(db: &Db, node: u64) -> sqlx::Result<u64> {
    let done = sqlx::query("UPDATE devices SET online = 0 WHERE online = 1 AND session_node = $1")
        .bind(node_number(node))
        .execute(db)
        .await?;
    Ok(done.rows_affected())
}

/// Records that cluster node `node` is alive at `now`.
pub async fn node_alive(db: &Db, node: u64, now: i64) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO cluster_nodes (id, seen_at) VALUES ($1, $2) \
         ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at",
    )
    .bind(node_number(node))
    .bind(now)
    .execute(db)
    .await?;
    Ok(())
}

/// Marks offline the devices held by cluster nodes not seen alive since `before` (they
/// died, and their devices did not reconnect elsewhere yet); returns how many.
pub async fn mark_offline_on_silent_nodes(db: &Db, before: i64) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "UPDATE devices SET online = 0 WHERE online = 1 AND session_node IN \
         (SELECT id FROM cluster_nodes WHERE seen_at < $1)",
    )
    .bind(before)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// A node id as the database keeps it (ids are at most [`crate::cluster::MAX_NODE_ID`]).
fn node_number(node: u64) -> i64 {
    i64::try_from(node).unwrap_or(i64::MAX)
}

/// Keeps a device's last data-point report.
pub async fn set_last_report(
    db: &Db,
    dev_id: &str,
    report: &serde_json::Value,
    at: i64,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE devices SET last_report = $1, last_seen = $2 WHERE dev_id = $3")
        .bind(report.to_string())
        .bind(at)
        .bind(dev_id)
        .execute(db)
        .await?;
    Ok(())
}

/// Keeps the component version a device runs and its last update outcome.
pub async fn set_module(
    db: &Db,
    dev_id: &str,
    running: &str,
    outcome: &UpdateOutcome,
) -> sqlx::Result<()> {
    let outcome = serde_json::to_string(outcome).map_err(|e| sqlx::Error::Encode(e.into()))?;
    sqlx::query("UPDATE devices SET module_version = $1, module_outcome = $2 WHERE dev_id = $3")
        .bind(running)
        .bind(outcome)
        .bind(dev_id)
        .execute(db)
        .await?;
    Ok(())
}

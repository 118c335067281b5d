//! The `devices` table: every statement that reads or writes it on its own is here, as a
//! named operation the other modules call (activation binds, the broker records
//! presence and reports, modules record update outcomes). Statements are checked against
//! the schema at build time (`sqlx::query!`, with the offline data in `service/.sqlx`);
//! only the view queries, which decode JSON columns into `DeviceView`, are runtime ones.

use sqlx::{SqliteExecutor, SqlitePool};
use tether_proto::Secret;
use tether_proto::api::DeviceView;
use tether_proto::module::UpdateOutcome;

/// The columns of a [`DeviceView`].
const VIEW: &str = "dev_id, uuid, product_key, online, last_seen, last_report, sw_ver, module_version, activated_at, module_outcome, platform";

/// A device as its owner sees it, if `owner` owns it.
pub async fn owned(db: &SqlitePool, owner: i64, dev_id: &str) -> sqlx::Result<Option<DeviceView>> {
    sqlx::query_as(&format!(
        "SELECT {VIEW} FROM devices WHERE dev_id = ? AND owner_id = ?"
    ))
    .bind(dev_id)
    .bind(owner)
    .fetch_optional(db)
    .await
}

/// The devices `owner` owns, oldest activation first.
pub async fn of_owner(db: &SqlitePool, owner: i64) -> sqlx::Result<Vec<DeviceView>> {
    sqlx::query_as(&format!(
        "SELECT {VIEW} FROM devices WHERE owner_id = ? ORDER BY activated_at, dev_id"
    ))
    .bind(owner)
    .fetch_all(db)
    .await
}

/// Unbinds `dev_id` if `owner` owns it; true when a row went.
pub async fn delete_owned(db: &SqlitePool, owner: i64, dev_id: &str) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "DELETE FROM devices WHERE dev_id = ? AND owner_id = ?",
        dev_id,
        owner
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Forgets a device (it moved to another owner after a local reset).
pub async fn delete(db: impl SqliteExecutor<'_>, dev_id: &str) -> sqlx::Result<()> {
    sqlx::query!("DELETE FROM devices WHERE dev_id = ?", dev_id)
        .execute(db)
        .await?;
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

/// Binds a device, or re-binds it with a new secret and generation.
pub async fn bind(db: impl SqliteExecutor<'_>, b: &Binding<'_>) -> sqlx::Result<()> {
    let dev_secret = b.dev_secret.expose();
    sqlx::query!(
        "INSERT INTO devices (dev_id, uuid, owner_id, product_key, dev_secret, generation, sw_ver, module_version, platform, activated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (dev_id) DO UPDATE SET dev_secret = excluded.dev_secret, generation = excluded.generation,
           sw_ver = excluded.sw_ver, module_version = excluded.module_version, platform = excluded.platform,
           activated_at = excluded.activated_at",
        b.dev_id,
        b.uuid,
        b.owner_id,
        b.product_key,
        dev_secret,
        b.generation,
        b.sw_ver,
        b.module_version,
        b.platform,
        b.activated_at,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The credential generation of a bound device.
pub async fn generation(db: &SqlitePool, dev_id: &str) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar!("SELECT generation FROM devices WHERE dev_id = ?", dev_id)
        .fetch_optional(db)
        .await
}

/// The license uuid of a bound device.
pub async fn uuid(db: &SqlitePool, dev_id: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!("SELECT uuid FROM devices WHERE dev_id = ?", dev_id)
        .fetch_optional(db)
        .await
}

/// The dev-secret a bound device signs with.
pub async fn dev_secret(db: &SqlitePool, dev_id: &str) -> sqlx::Result<Option<Secret>> {
    let secret = sqlx::query_scalar!("SELECT dev_secret FROM devices WHERE dev_id = ?", dev_id)
        .fetch_optional(db)
        .await?;
    Ok(secret.map(Secret::new))
}

/// Whether a device is bound.
pub async fn exists(db: &SqlitePool, dev_id: &str) -> sqlx::Result<bool> {
    let found = sqlx::query_scalar!("SELECT dev_id FROM devices WHERE dev_id = ?", dev_id)
        .fetch_optional(db)
        .await?;
    Ok(found.is_some())
}

/// The devices of a product.
pub async fn of_product(db: &SqlitePool, product_key: &str) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!(
        r#"SELECT dev_id AS "dev_id!" FROM devices WHERE product_key = ?"#,
        product_key
    )
    .fetch_all(db)
    .await
}

/// Records a session going up or down; false when the device is not bound.
pub async fn set_presence(
    db: &SqlitePool,
    dev_id: &str,
    online: bool,
    at: i64,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE devices SET online = ?, last_seen = ? WHERE dev_id = ?",
        online,
        at,
        dev_id
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks every device offline; returns how many were online.
pub async fn mark_all_offline(db: &SqlitePool) -> sqlx::Result<u64> {
    let done = sqlx::query!("UPDATE devices SET online = 0 WHERE online = 1")
        .execute(db)
        .await?;
    Ok(done.rows_affected())
}

/// Keeps a device's last data-point report.
pub async fn set_last_report(
    db: &SqlitePool,
    dev_id: &str,
    report: &serde_json::Value,
    at: i64,
) -> sqlx::Result<()> {
    let report = report.to_string();
    sqlx::query!(
        "UPDATE devices SET last_report = ?, last_seen = ? WHERE dev_id = ?",
        report,
        at,
        dev_id
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Keeps the component version a device runs and its last update outcome.
pub async fn set_module(
    db: &SqlitePool,
    dev_id: &str,
    running: &str,
    outcome: &UpdateOutcome,
) -> sqlx::Result<()> {
    let outcome = serde_json::to_string(outcome).map_err(|e| sqlx::Error::Encode(e.into()))?;
    sqlx::query!(
        "UPDATE devices SET module_version = ?, module_outcome = ? WHERE dev_id = ?",
        running,
        outcome,
        dev_id
    )
    .execute(db)
    .await?;
    Ok(())
}

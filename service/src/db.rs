//! The SQLite database in the data dir: WAL, foreign keys, a busy timeout, full fsync on
//! commit, and the migrations in `migrations/` applied at start.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

/// File name of the database inside the data dir.
pub const FILE: &str = "tether.db";

/// Opens (creating if needed) the database in `data_dir` and migrates it.
pub async fn open(data_dir: &Path) -> anyhow::Result<SqlitePool> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("failed to create the data dir {}", data_dir.display()))?;
    let path = data_dir.join(FILE);
    let options = SqliteConnectOptions::from_str("sqlite://")
        .context("sqlite options")?
        .filename(&path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL: a commit that was answered survives power loss, not only a crash.
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await
        .with_context(|| format!("failed to open the database {}", path.display()))?;
    sqlx::migrate!("../migrations")
        .run(&pool)
        .await
        .context("failed to apply the database migrations")?;
    Ok(pool)
}

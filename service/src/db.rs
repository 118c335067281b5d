//! The SQLite database in the data dir: WAL, foreign keys, a busy timeout, full fsync on
//! commit, and the migrations in `migrations/` applied at start. The data dir and the
//! database (which holds authkeys and device secrets) are the owner's alone: created
//! with modes 0700 and 0600 whatever the umask, and tightened when found wider.

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
    private_dir(data_dir)?;
    let path = data_dir.join(FILE);
    private_file(&path)?;
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

/// Creates `dir` (and its parents) with mode 0700, or narrows an existing one to it.
fn private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("failed to create the data dir {}", dir.display()))?;
    narrow(dir, 0o700)
}

/// Creates `path` empty with mode 0600 if it does not exist (SQLite then gives its
/// `-wal` and `-shm` files the same mode), or narrows an existing one to 0600.
fn private_file(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            for suffix in ["", "-wal", "-shm"] {
                let file = path.with_file_name(format!("{FILE}{suffix}"));
                if file.exists() {
                    narrow(&file, 0o600)?;
                }
            }
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("failed to create {}", path.display())),
    }
}

/// Sets `path`'s mode to `mode` when it grants more, saying so.
fn narrow(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
    let current = meta.permissions().mode() & 0o777;
    if current & !mode != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("failed to restrict {}", path.display()))?;
        tracing::warn!(path = %path.display(), from = format!("{current:o}"), to = format!("{mode:o}"), "narrowed the permissions of a private file");
    }
    Ok(())
}

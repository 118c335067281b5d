//! The registry's database: SQLite in the data dir (the default: WAL, foreign keys, a
//! busy timeout, full fsync on commit) or a PostgreSQL server that several service
//! processes share (`--database-url`). Both are reached through sqlx's `Any` driver with
//! the same statements (`$N` placeholders, which both engines take); each engine has its
//! own migrations (`migrations/sqlite`, `migrations/postgres`), applied at start. The data
//! dir and the SQLite file (which holds authkeys and device secrets) are the owner's
//! alone: created with modes 0700 and 0600 whatever the umask, and tightened when found
//! wider.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor};
use tether_proto::Secret;

/// The pool every module queries.
pub type Db = AnyPool;

/// File name of the SQLite database inside the data dir.
pub const FILE: &str = "tether.db";

/// How long `open` keeps trying to reach a PostgreSQL server that does not answer yet
/// (in a deployment the service may start before its database).
const CONNECT_PATIENCE: Duration = Duration::from_secs(60);

/// How long a request waits for a connection before it fails (503 from `/readyz`).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// The engine behind a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// The SQLite file in the data dir: one service process.
    Sqlite,
    /// A PostgreSQL server: any number of service processes.
    Postgres,
}

impl Engine {
    /// The engine of `url` (`sqlite:`, `postgres://` or `postgresql://`).
    pub fn of_url(url: &str) -> anyhow::Result<Self> {
        let scheme = url.split_once(':').map_or("", |(s, _)| s);
        match scheme {
            "sqlite" => Ok(Self::Sqlite),
            "postgres" | "postgresql" => Ok(Self::Postgres),
            _ => bail!("unsupported database URL scheme {scheme:?}: use postgres://USER@HOST/DB"),
        }
    }

    /// The engine of an open pool.
    pub fn of(db: &Db) -> Self {
        Self::of_url(db.connect_options().database_url.as_ref()).unwrap_or(Self::Sqlite)
    }

    /// The statement that opens a write transaction whose reads must not go stale before
    /// its writes: SQLite takes the write lock up front (`BEGIN IMMEDIATE`); PostgreSQL
    /// locks rows as they are written and the writer re-checks with conditional updates.
    pub fn begin_write(self) -> &'static str {
        match self {
            Self::Sqlite => "BEGIN IMMEDIATE",
            Self::Postgres => "BEGIN",
        }
    }
}

/// Opens the registry: the PostgreSQL server at `url` when given, else the SQLite file
/// in `data_dir` (created if needed); then applies the migrations.
pub async fn open(data_dir: &Path, url: Option<&Secret>) -> anyhow::Result<Db> {
    sqlx::any::install_default_drivers();
    // The data dir holds the signing keys whichever engine holds the registry.
    private_dir(data_dir)?;
    let pool = match url {
        None => open_sqlite(data_dir).await?,
        Some(url) => open_postgres(url).await?,
    };
    let migrations = match Engine::of(&pool) {
        Engine::Sqlite => sqlx::migrate!("../migrations/sqlite"),
        Engine::Postgres => sqlx::migrate!("../migrations/postgres"),
    };
    // On PostgreSQL the migrator holds an advisory lock, so nodes starting together
    // apply each migration once.
    migrations
        .run(&pool)
        .await
        .context("failed to apply the database migrations")?;
    Ok(pool)
}

async fn open_sqlite(data_dir: &Path) -> anyhow::Result<Db> {
    let path = data_dir.join(FILE);
    private_file(&path)?;
    let url = format!("sqlite://{}", url_path(&path));
    AnyPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .after_connect(|conn, _| {
            Box::pin(async move {
                // FULL: a commit that was answered survives power loss, not only a crash.
                conn.execute("PRAGMA journal_mode = WAL").await?;
                conn.execute("PRAGMA synchronous = FULL").await?;
                conn.execute("PRAGMA foreign_keys = ON").await?;
                conn.execute("PRAGMA busy_timeout = 10000").await?;
                Ok(())
            })
        })
        .connect(&url)
        .await
        .with_context(|| format!("failed to open the database {}", path.display()))
}

async fn open_postgres(url: &Secret) -> anyhow::Result<Db> {
    let shown = redacted(url.expose());
    if Engine::of_url(url.expose())? != Engine::Postgres {
        bail!("--database-url must be a PostgreSQL URL (postgres://…), not {shown}");
    }
    let started = Instant::now();
    loop {
        let tried = AnyPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(url.expose())
            .await;
        match tried {
            Ok(pool) => {
                tracing::info!(database = %shown, "connected to PostgreSQL");
                return Ok(pool);
            }
            // A server that refuses the login or the database will not change its mind.
            Err(e @ sqlx::Error::Database(_)) => {
                return Err(e).with_context(|| format!("PostgreSQL at {shown} refused"));
            }
            Err(e) if started.elapsed() >= CONNECT_PATIENCE => {
                return Err(e).with_context(|| {
                    format!("PostgreSQL at {shown} did not answer for {CONNECT_PATIENCE:?}")
                });
            }
            Err(e) => {
                tracing::warn!(database = %shown, error = %e, "PostgreSQL is not reachable yet; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// The placeholders of a multi-row statement: `rows` groups of `cols`, numbered from
/// `$first`: `($1, $2), ($3, $4)` for 2 × 2 from 1. Both engines take `$N`.
pub fn rows(rows: usize, cols: usize, first: usize) -> String {
    let mut out = String::with_capacity(rows * cols * 5);
    for row in 0..rows {
        if row > 0 {
            out.push_str(", ");
        }
        out.push('(');
        out.push_str(&list(cols, first + row * cols));
        out.push(')');
    }
    out
}

/// `n` placeholders from `$first`, comma-separated: `$3, $4, $5`.
pub fn list(n: usize, first: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `url` with any password replaced by `***`, for messages and logs.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let hidden = if userinfo.contains(':') { ":***" } else { "" };
            // A password may also come as a query parameter.
            let tail = tail.split_once('?').map_or(tail, |(path, _)| path);
            format!("{scheme}://{user}{hidden}@{host}{tail}")
        }
        None => format!(
            "{scheme}://{}",
            rest.split_once('?').map_or(rest, |(p, _)| p)
        ),
    }
}

/// A file path as the path of a `sqlite://` URL: `%`, `?` and `#` escaped.
fn url_path(path: &Path) -> String {
    path.to_string_lossy()
        .replace('%', "%25")
        .replace('?', "%3F")
        .replace('#', "%23")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show_in_a_redacted_url() {
        assert_eq!(
            redacted("postgres://tether:hunter2@db:5432/tether"),
            "postgres://tether:***@db:5432/tether"
        );
        assert_eq!(
            redacted("postgres://db/tether?password=hunter2"),
            "postgres://db/tether"
        );
        assert_eq!(
            redacted("postgresql://u@h/d?sslmode=require&password=x"),
            "postgresql://u@h/d"
        );
        assert!(!redacted("postgres://a:b:c@h/d").contains("b:c"));
    }

    #[test]
    fn multi_row_placeholders_are_numbered_in_order() {
        assert_eq!(rows(2, 2, 1), "($1, $2), ($3, $4)");
        assert_eq!(rows(1, 3, 5), "($5, $6, $7)");
        assert_eq!(list(3, 2), "$2, $3, $4");
        assert_eq!(rows(0, 3, 1), "");
    }

    #[test]
    fn only_the_two_engines_are_accepted() {
        assert_eq!(
            Engine::of_url("postgres://h/d").ok(),
            Some(Engine::Postgres)
        );
        assert_eq!(
            Engine::of_url("postgresql://h/d").ok(),
            Some(Engine::Postgres)
        );
        assert_eq!(Engine::of_url("sqlite:///x").ok(), Some(Engine::Sqlite));
        assert!(Engine::of_url("mysql://h/d").is_err());
        assert!(Engine::of_url("h/d").is_err());
    }
}

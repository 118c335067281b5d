//! The database engine this test binary runs the service on. The binary `it` keeps the
//! registry in SQLite in each test's data dir; the binary `postgres` is built from the
//! same test files and gives each data dir a fresh database on a PostgreSQL server
//! (`tether_testpg`: one private server per test run). Without PostgreSQL binaries it
//! says so and runs on SQLite, except under `CI=true`, where that fails.

use std::path::Path;

use tether_proto::Secret;
use tether_service::db::Db;

/// Whether this binary is the PostgreSQL one.
pub const POSTGRES: bool = same(env!("CARGO_CRATE_NAME").as_bytes(), b"postgres");

const fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The file in a data dir that names its database, so a restarted service finds it.
const NAME_FILE: &str = "postgres-url";

/// The registry URL for `data_dir`: none on SQLite; on PostgreSQL a database of its own,
/// made on first use.
pub async fn database_url(data_dir: &Path) -> Option<Secret> {
    if !POSTGRES {
        return None;
    }
    let server = match tether_testpg::shared() {
        Ok(server) => server,
        Err(why) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("PostgreSQL is needed under CI=true: {why}")
        }
        Err(why) => {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| eprintln!("SKIPPED on PostgreSQL ({why}): running on SQLite"));
            return None;
        }
    };
    let file = data_dir.join(NAME_FILE);
    if let Ok(url) = std::fs::read_to_string(&file) {
        return Some(Secret::new(url));
    }
    std::fs::create_dir_all(data_dir).expect("data dir");
    let url = server.create_database().await.expect("a fresh database");
    std::fs::write(&file, &url).expect("remember the database");
    Some(Secret::new(url))
}

/// Whether the registry of `data_dir` is the SQLite file in it.
pub fn on_sqlite(data_dir: &Path) -> bool {
    !data_dir.join(NAME_FILE).exists()
}

/// Opens the registry of `data_dir` as the service does.
pub async fn open(data_dir: &Path) -> Db {
    let url = database_url(data_dir).await;
    tether_service::db::open(data_dir, url.as_ref())
        .await
        .expect("the registry opens")
}

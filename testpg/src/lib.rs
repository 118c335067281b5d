//! A throwaway PostgreSQL server for tests and benchmarks, run from the PostgreSQL
//! binaries installed on the machine (Debian: `apt-get install postgresql`; the packaged
//! cluster need not run): `initdb` into a temporary directory, then `postgres` on a free
//! loopback port, as the `postgres` user when the tests run as root (the server refuses
//! root). The server dies with the process that started it (`PR_SET_PDEATHSIG`), so a
//! test run leaves nothing behind. `TETHER_TEST_POSTGRES_URL` points at an existing
//! server instead (it must let that role create databases). Each caller takes a fresh
//! database of its own with [`Server::create_database`].

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// How long a new server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A PostgreSQL server that tests can make databases on.
#[derive(Debug)]
pub struct Server {
    /// A URL of a role that may create databases, ending in `/` (no database).
    base: String,
    /// The server this process started, if it started one.
    own: Option<Own>,
}

#[derive(Debug)]
struct Own {
    child: Child,
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    uid: Option<(u32, u32)>,
    durable: bool,
    _dir: tempfile::TempDir,
}

impl Drop for Own {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server shared by every test of this process, started on first use; `Err` says
/// why there is none (no PostgreSQL binaries, say). Its directory is removed when the
/// process exits (statics are never dropped).
pub fn shared() -> Result<&'static Server, String> {
    static SHARED: OnceLock<Result<Server, String>> = OnceLock::new();
    SHARED
        .get_or_init(|| match std::env::var("TETHER_TEST_POSTGRES_URL") {
            Ok(url) => Ok(Server::existing(&url)),
            Err(_) => {
                let server = Server::start().map_err(|e| format!("{e:#}"))?;
                if let Some(own) = &server.own {
                    remove_at_exit(own._dir.path());
                }
                Ok(server)
            }
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Directories to remove when the process exits.
static AT_EXIT: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

fn remove_at_exit(dir: &Path) {
    extern "C" fn remove_all() {
        let dirs = AT_EXIT.lock().map(|d| d.clone()).unwrap_or_default();
        for dir in dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    REGISTERED.call_once(|| unsafe {
        libc::atexit(remove_all);
    });
    if let Ok(mut dirs) = AT_EXIT.lock() {
        dirs.push(dir.to_path_buf());
    }
}

impl Server {
    /// A server that runs elsewhere, reached at `url` (`postgres://USER[:PASSWORD]@HOST:PORT`).
    pub fn existing(url: &str) -> Self {
        let base = url.split('?').next().unwrap_or(url);
        let base = match base.find("://").map(|i| i + 3) {
            Some(start) => match base[start..].find('/') {
                Some(slash) => base[..start + slash + 1].to_owned(),
                None => format!("{base}/"),
            },
            None => format!("{base}/"),
        };
        Self { base, own: None }
    }

    /// Starts a server of this process's own on a free port, for tests: commits reach
    /// the kernel before they are answered, but are not fsynced.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(false)
    }

    /// Starts a server that fsyncs every commit (PostgreSQL's defaults), for benchmarks
    /// that compare its durability with SQLite's `synchronous = FULL`.
    pub fn start_durable() -> anyhow::Result<Self> {
        Self::start_with(true)
    }

    fn start_with(durable: bool) -> anyhow::Result<Self> {
        let bin = bin_dir()?;
        let dir = tempfile::Builder::new().prefix("tether-pg-").tempdir()?;
        let data = dir.path().join("data");
        // The server refuses to run as root: then it runs as the `postgres` user.
        let uid = if unsafe { libc::geteuid() } == 0 {
            let ids = postgres_user()?;
            std::fs::create_dir(&data)?;
            chown(dir.path(), ids)?;
            chown(&data, ids)?;
            Some(ids)
        } else {
            None
        };
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .args(["-D"])
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        initdb.current_dir(dir.path());
        as_user(&mut initdb, uid, false);
        let out = initdb.output().context("initdb")?;
        if !out.status.success() {
            bail!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let port = free_port()?;
        let mut own = Own {
            child: spawn_server(&bin, &data, port, uid, durable)?,
            bin,
            data,
            port,
            uid,
            durable,
            _dir: dir,
        };
        wait_ready(&mut own)?;
        Ok(Self {
            base: format!("postgres://postgres@127.0.0.1:{port}/"),
            own: Some(own),
        })
    }

    /// The URL of `database` on this server.
    pub fn url(&self, database: &str) -> String {
        format!("{}{database}", self.base)
    }

    /// Creates an empty database with a name no other caller of this process gets;
    /// returns its URL.
    pub async fn create_database(&self) -> anyhow::Result<String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "tether_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = PgConnection::connect(&self.url("postgres"))
            .await
            .context("connecting to PostgreSQL to create a database")?;
        sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .with_context(|| format!("CREATE DATABASE {name}"))?;
        admin.close().await?;
        Ok(self.url(&name))
    }

    /// Stops this process's server abruptly (SIGKILL), as a crash would; `restart`
    /// brings it back on the same port with the same data.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        let own = self
            .own
            .as_mut()
            .context("not a server this process started")?;
        own.child.kill()?;
        own.child.wait()?;
        // A killed postmaster leaves its lock file; the next start checks the pid in it.
        Ok(())
    }

    /// Starts this process's server again after [`Server::kill`].
    pub fn restart(&mut self) -> anyhow::Result<()> {
        let own = self
            .own
            .as_mut()
            .context("not a server this process started")?;
        own.child = spawn_server(&own.bin, &own.data, own.port, own.uid, own.durable)?;
        wait_ready(own)
    }
}

fn spawn_server(
    bin: &Path,
    data: &Path,
    port: u16,
    uid: Option<(u32, u32)>,
    durable: bool,
) -> anyhow::Result<Child> {
    let mut server = Command::new(bin.join("postgres"));
    server
        .arg("-D")
        .arg(data)
        .args(["-p", &port.to_string()])
        .args(["-c", "listen_addresses=127.0.0.1"])
        .args(["-c", "unix_socket_directories="])
        .args(["-c", "max_connections=400"])
        // Tests check behaviour, not durability on power loss: a commit still reaches
        // the kernel before it is answered, so it survives the server being killed.
        .args(["-c", if durable { "fsync=on" } else { "fsync=off" }])
        .current_dir(data.parent().unwrap_or(data))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    as_user(&mut server, uid, true);
    spawn_kept(server).context("starting postgres")
}

/// Spawns `command` from a thread that lives as long as the process: the parent-death
/// signal follows the thread that spawned a child, and a test's thread ends with it.
fn spawn_kept(command: Command) -> std::io::Result<Child> {
    type Request = (Command, std::sync::mpsc::Sender<std::io::Result<Child>>);
    static KEEPER: OnceLock<std::sync::Mutex<std::sync::mpsc::Sender<Request>>> = OnceLock::new();
    let keeper = KEEPER.get_or_init(|| {
        let (requests, incoming) = std::sync::mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("testpg-keeper".into())
            .spawn(move || {
                for (mut command, reply) in incoming {
                    let _ = reply.send(command.spawn());
                }
                // Every sender is gone only at exit; stay so the children stay.
                loop {
                    std::thread::park();
                }
            })
            .expect("a thread");
        std::sync::Mutex::new(requests)
    });
    let (reply, answer) = std::sync::mpsc::channel();
    keeper
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send((command, reply))
        .map_err(|_| std::io::Error::other("the keeper thread is gone"))?;
    answer
        .recv()
        .map_err(|_| std::io::Error::other("the keeper thread is gone"))?
}

fn wait_ready(own: &mut Own) -> anyhow::Result<()> {
    let started = Instant::now();
    while started.elapsed() < START_TIMEOUT {
        if let Some(status) = own.child.try_wait()? {
            bail!("postgres exited at start ({status})");
        }
        let ready = Command::new(own.bin.join("pg_isready"))
            .args(["-h", "127.0.0.1", "-p", &own.port.to_string(), "-q"])
            .status()
            .is_ok_and(|s| s.success());
        if ready {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("postgres did not accept connections within {START_TIMEOUT:?}")
}

/// Runs `command` as `uid` when given, and (for a server) has it die with this process.
fn as_user(command: &mut Command, uid: Option<(u32, u32)>, die_with_parent: bool) {
    if let Some((uid, gid)) = uid {
        command.uid(uid).gid(gid);
    }
    if die_with_parent {
        // Runs after the uid change (which would clear it), just before exec.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

/// The directory of `initdb` and `postgres`: on PATH, or Debian's newest
/// `/usr/lib/postgresql/<major>/bin`.
fn bin_dir() -> anyhow::Result<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|dir| dir.join("initdb").is_file() && dir.join("postgres").is_file());
    if let Some(dir) = on_path {
        // Symlinks on PATH (as /usr/local/bin may hold): the real directory also has
        // pg_isready.
        let initdb = std::fs::canonicalize(dir.join("initdb"))?;
        return Ok(initdb.parent().map_or(dir, Path::to_path_buf));
    }
    let mut majors: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((major, bin))
        })
        .collect();
    majors.sort();
    majors.pop().map(|(_, bin)| bin).context(
        "no PostgreSQL server binaries (initdb, postgres): install Debian's postgresql, or set TETHER_TEST_POSTGRES_URL",
    )
}

/// The uid and gid of the `postgres` user, from `/etc/passwd`.
fn postgres_user() -> anyhow::Result<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&"postgres"))
                .then(|| Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?)))
                .flatten()
        })
        .context("running as root, and there is no postgres user to run the server as (Debian's postgresql package makes one)")
}

fn chown(path: &Path, (uid, gid): (u32, u32)) -> anyhow::Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .with_context(|| format!("chown {}", path.display()))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_server_starts_makes_databases_and_comes_back_after_a_kill() {
        let mut server = match Server::start() {
            Ok(server) => server,
            Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => panic!("{e:#}"),
            Err(e) => return eprintln!("SKIPPED: {e:#}"),
        };
        let url = server.create_database().await.expect("a database");
        let other = server.create_database().await.expect("another");
        assert_ne!(url, other);
        let mut conn = PgConnection::connect(&url).await.expect("connects");
        sqlx::raw_sql("CREATE TABLE t (x BIGINT); INSERT INTO t VALUES (7)")
            .execute(&mut conn)
            .await
            .expect("writes");
        drop(conn);
        server.kill().expect("killed");
        assert!(PgConnection::connect(&url).await.is_err(), "down");
        server.restart().expect("restarted");
        let mut conn = PgConnection::connect(&url).await.expect("connects again");
        let x: i64 = sqlx::query_scalar("SELECT x FROM t")
            .fetch_one(&mut conn)
            .await
            .expect("kept");
        assert_eq!(x, 7);
    }
}

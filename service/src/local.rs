//! A cloud on this machine, for `tether demo`, the tests and the benchmarks: a data dir
//! seeded with accounts and licenses ([`seed`]), the service on free loopback ports that
//! can be stopped and started again on the same addresses ([`LocalCloud`]), and the one
//! poller they all wait with ([`eventually`]).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use tether_proto::Secret;
use tether_proto::signing::{AuthHeader, Principal, new_nonce};
use tokio::sync::oneshot;

use crate::licenses::{self, License};
use crate::users::{self, Role};
use crate::{Application, ServeConfig};

/// An account to create.
#[derive(Debug, Clone)]
pub struct Account<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its password.
    pub password: &'a str,
    /// Its role.
    pub role: Role,
}

/// What [`seed`] made.
#[derive(Debug)]
pub struct Seeded {
    /// The accounts' ids, in the order given.
    pub account_ids: Vec<i64>,
    /// The licenses issued.
    pub licenses: Vec<License>,
}

/// Creates `accounts` and issues `licenses` device licenses of `product_key` in the
/// registry of `data_dir` or `database_url` (created and migrated if new).
pub async fn seed(
    data_dir: &Path,
    database_url: Option<&Secret>,
    accounts: &[Account<'_>],
    product_key: &str,
    licenses: usize,
) -> anyhow::Result<Seeded> {
    let pool = crate::db::open(data_dir, database_url).await?;
    let mut account_ids = Vec::with_capacity(accounts.len());
    for account in accounts {
        let id = users::create(
            &pool,
            account.name,
            &Secret::new(account.password),
            account.role,
        )
        .await
        .with_context(|| format!("cannot create the account {:?}", account.name))?;
        account_ids.push(id);
    }
    let mut issued = Vec::with_capacity(licenses);
    while issued.len() < licenses {
        let batch = (licenses - issued.len()).min(licenses::MAX_COUNT as usize);
        let batch = u32::try_from(batch).context("too many licenses")?;
        issued.extend(
            licenses::issue(&pool, product_key, batch)
                .await
                .context("cannot issue licenses")?,
        );
    }
    pool.close().await;
    Ok(Seeded {
        account_ids,
        licenses: issued,
    })
}

/// The service running in this process until stopped (or dropped).
#[derive(Debug)]
pub struct LocalCloud {
    config: ServeConfig,
    http_addr: SocketAddr,
    mqtt_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl LocalCloud {
    /// Builds and starts the service (port 0 in `config` picks free ports).
    pub async fn start(config: ServeConfig) -> anyhow::Result<Self> {
        let app = Application::build(config.clone()).await?;
        let (http_addr, mqtt_addr) = (app.http_addr(), app.mqtt_addr());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run(async move {
            let _ = stopped.await;
        }));
        Ok(Self {
            config,
            http_addr,
            mqtt_addr,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The API's base URL (`https://` when it serves TLS).
    pub fn api_url(&self) -> String {
        let scheme = if self.config.tls == crate::tls::TlsSource::Off {
            "http"
        } else {
            "https"
        };
        let mut addr = self.http_addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("{scheme}://{addr}")
    }

    /// The local CA's certificate file, when the service runs with one.
    pub fn local_ca(&self) -> Option<std::path::PathBuf> {
        (self.config.tls == crate::tls::TlsSource::LocalCa)
            .then(|| crate::tls::local_ca_file(&self.config.data_dir))
    }

    /// The HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The MQTT address.
    pub fn mqtt_addr(&self) -> SocketAddr {
        self.mqtt_addr
    }

    /// The settings it runs with.
    pub fn config(&self) -> &ServeConfig {
        &self.config
    }

    /// Stops it gracefully and waits until it is down; the service's own error, if it
    /// failed.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.context("the service task failed")?,
            None => Ok(()),
        }
    }

    /// Starts it again on the same data dir and addresses.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await?;
        let mut config = self.config.clone();
        (config.listen, config.mqtt_listen) = (self.http_addr, self.mqtt_addr);
        let again = Self::start(config).await?;
        anyhow::ensure!(
            (again.http_addr, again.mqtt_addr) == (self.http_addr, self.mqtt_addr),
            "the service came back on other addresses"
        );
        *self = again;
        Ok(())
    }
}

impl Drop for LocalCloud {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The path devices activate at.
pub const ACTIVATE: &str = "/v1/devices/activate";

/// An activation request as the license `uuid` sends it: `body` as JSON and the
/// `Authorization` value, signed now with `authkey` and a fresh nonce.
pub fn signed_activation(
    uuid: &str,
    authkey: &str,
    body: &impl serde::Serialize,
) -> anyhow::Result<(Vec<u8>, String)> {
    let body = serde_json::to_vec(body).context("the activation body")?;
    let header = AuthHeader::sign(
        Principal::Uuid(uuid.to_owned()),
        authkey.as_bytes(),
        crate::unix_now(),
        new_nonce().context("no randomness for a nonce")?,
        "POST",
        ACTIVATE,
        &body,
    );
    Ok((body, header.to_string()))
}

/// Calls `probe` every `every` until it answers `Ok` (its value is returned) or `within`
/// has passed (then the last `Err`, the last thing it saw, is returned).
pub async fn eventually<T, L, F>(
    within: Duration,
    every: Duration,
    mut probe: impl FnMut() -> F,
) -> Result<T, L>
where
    F: Future<Output = Result<T, L>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let last = match probe().await {
            Ok(done) => return Ok(done),
            Err(last) => last,
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(last);
        }
        tokio::time::sleep(every).await;
    }
}

/// `--cluster-peers` for `n` nodes on this machine's loopback: each a free port whose
/// successor (for Raft) is free too when asked.
pub fn loopback_cluster_peers(n: usize) -> Vec<String> {
    let mut held = Vec::new();
    let mut peers = Vec::new();
    while peers.len() < n {
        let Ok(grpc) = std::net::TcpListener::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(port) = grpc.local_addr().map(|a| a.port()) else {
            continue;
        };
        if port == u16::MAX {
            continue;
        }
        let Ok(raft) = std::net::TcpListener::bind(("127.0.0.1", port + 1)) else {
            continue;
        };
        peers.push(format!("{}@127.0.0.1:{port}", peers.len() + 1));
        // Held until all are chosen, so no two nodes get the same ports.
        held.push((grpc, raft));
    }
    peers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn eventually_returns_the_first_success_or_the_last_failure() {
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let found = eventually(Duration::from_secs(5), Duration::from_millis(1), || async {
            let n = calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            if n == 3 { Ok(n) } else { Err(n) }
        })
        .await;
        assert_eq!(found, Ok(3));
        let never: Result<(), &str> = eventually(
            Duration::from_millis(20),
            Duration::from_millis(5),
            || async { Err("still not") },
        )
        .await;
        assert_eq!(never, Err("still not"));
    }
}

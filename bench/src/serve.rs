//! The child side of [`crate::procs::Server`]: `tether-bench serve hello|service|service-tls --data
//! DIR` binds free loopback ports, prints `ready http=ADDR [mqtt=ADDR]`, and serves until
//! its stdin closes.

use std::path::Path;

use anyhow::Context;
use axum::Router;
use axum::routing::get;
use tokio::io::AsyncReadExt;

/// Resolves when stdin reaches its end (the bench closed it or exited).
async fn stdin_closed() {
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 64];
    while let Ok(n) = stdin.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}

/// The baseline: a bare axum handler, on the same kind of runtime as the service.
pub async fn hello() -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot listen")?;
    let addr = listener.local_addr().context("bound address")?;
    let app = Router::new().route("/", get(|| async { "hello" }));
    println!("ready http={addr}");
    axum::serve(listener, app)
        .with_graceful_shutdown(stdin_closed())
        .await
        .context("the hello server failed")
}

/// The variable that hands a served service its PostgreSQL URL.
pub const DATABASE_ENV: &str = "TETHER_BENCH_DATABASE_URL";
/// The variables that make a served service a node of a broker cluster: its id, and
/// every node as `--cluster-peers` takes them.
pub const NODE_ENV: &str = "TETHER_BENCH_NODE_ID";
pub const PEERS_ENV: &str = "TETHER_BENCH_CLUSTER_PEERS";

/// The Tether service on `data_dir` (its registry on PostgreSQL when [`DATABASE_ENV`] is
/// set), logging at `info` (its default) to `service.log`
/// there, as it would to a journal in production; over TLS with a local CA when `tls`.
pub async fn service(data_dir: &Path, tls: bool) -> anyhow::Result<()> {
    let node = std::env::var(NODE_ENV).ok();
    let log_name = match &node {
        Some(id) => format!("service-{id}.log"),
        None => "service.log".into(),
    };
    let log = std::fs::File::create(data_dir.join(log_name)).context("cannot create the log")?;
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(log))
        .init();
    let mut config = tether_service::ServeConfig::ephemeral(data_dir);
    config.database_url = std::env::var(DATABASE_ENV)
        .ok()
        .map(tether_proto::Secret::new);
    if tls {
        config.tls = tether_service::tls::TlsSource::LocalCa;
    }
    if let Some(node) = node {
        let peers: Vec<String> = std::env::var(PEERS_ENV)
            .unwrap_or_default()
            .split(',')
            .map(str::to_owned)
            .collect();
        let id = node.parse().context("node id")?;
        config.cluster = tether_service::cluster::ClusterConfig::from_parts(
            Some(id),
            &peers,
            config.database_url.is_some(),
        )?;
    }
    let app = tether_service::Application::build(config).await?;
    println!("ready http={} mqtt={}", app.http_addr(), app.mqtt_addr());
    app.run(stdin_closed()).await
}

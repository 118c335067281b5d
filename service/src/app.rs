//! Assembly of the service: state, routes and middleware, and [`Application`], which binds
//! its listeners at `build` (port 0 works; the bound addresses are readable) and serves
//! until a shutdown future resolves.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::HeaderValue;
use tokio::net::TcpListener;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::broker::{Bridge, Broker};
use crate::config::{RegionEndpoints, ServeConfig};
use crate::db::Db;
use crate::device_auth::NonceCache;
use crate::json::MAX_BODY_BYTES;
use crate::keys::Keys;
use crate::metrics::Metrics;
use crate::pairing_tokens::TokenEvents;
use crate::rate_limit::RateLimits;
use crate::tls::Tls;
use crate::users::{self, Role};

/// Shared state of every handler.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The database.
    pub db: Db,
    /// Writes activations, many to a transaction.
    pub binder: crate::activation::Binder,
    /// The signing key.
    pub keys: Arc<Keys>,
    /// Settings.
    pub config: Arc<ServeConfig>,
    /// This service's own public endpoints.
    pub own_endpoints: RegionEndpoints,
    /// The CA certificates (base64 DER) that verify the own endpoints, for IoT DNS's
    /// `caArr`; empty when TLS is off.
    pub ca_arr: Arc<Vec<String>>,
    /// Wakes token long-polls.
    pub tokens: Arc<TokenEvents>,
    /// Device request nonces seen.
    pub nonces: Arc<NonceCache>,
    /// Licenses' authkeys, for signature checks (they never change).
    pub authkeys: Arc<crate::kept::Kept<tether_proto::Secret>>,
    /// Pairing tokens presented lately (the activation writer re-reads their state).
    pub token_rows: Arc<crate::kept::Kept<crate::pairing_tokens::TokenRow>>,
    /// Rate limits.
    pub limits: Arc<RateLimits>,
    /// Bounds concurrent password checks.
    pub password_checks: Arc<crate::passwords::PasswordChecks>,
    /// The embedded broker.
    pub broker: Arc<Broker>,
    /// The service's own MQTT client.
    pub bridge: Bridge,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The web console's live streams.
    pub console: Arc<crate::console::Console>,
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(users::router())
        .merge(crate::pairing_tokens::router())
        .merge(crate::iot_dns::router())
        .merge(crate::activation::router())
        .merge(crate::licenses::router())
        .merge(crate::devices::router())
        .merge(crate::modules::router())
        .merge(crate::reports::router())
        .merge(crate::ops::router())
        .merge(crate::openapi::router())
        .merge(crate::console::router())
        .fallback(crate::console::not_found)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::track,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            crate::server::REQUEST_TIMEOUT,
        ))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            // The matched route, never the raw path: a path may hold a whole token.
            let route = req
                .extensions()
                .get::<MatchedPath>()
                .map_or("-", |p| p.as_str());
            let id = req
                .extensions()
                .get::<RequestId>()
                .and_then(|id| id.header_value().to_str().ok())
                .unwrap_or("-");
            let trace_id = crate::trace::trace_id_of(req);
            tracing::info_span!("service.request", method = %req.method(), route, request_id = id, trace_id)
        }))
        // Outside the span, so that the span knows the request's trace.
        .layer(axum::middleware::from_fn(crate::trace::context))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(Counter::default()))
        .with_state(state)
}

/// Request ids: a process-unique counter.
#[derive(Debug, Clone, Default)]
struct Counter(Arc<AtomicU64>);

impl MakeRequestId for Counter {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        HeaderValue::from_str(&format!("{n:016x}"))
            .ok()
            .map(RequestId::new)
    }
}

/// A built service, listening and ready to run.
#[derive(Debug)]
pub struct Application {
    http: TcpListener,
    http_addr: SocketAddr,
    tls: Option<Tls>,
    state: AppState,
}

impl Application {
    /// Opens the database, loads the key, creates the bootstrap admin and binds the
    /// listeners.
    pub async fn build(config: ServeConfig) -> anyhow::Result<Self> {
        let db = crate::db::open(&config.data_dir, config.database_url.as_ref()).await?;
        crate::device_auth::sweep_nonces(db.clone());
        let limits = Arc::new(RateLimits::for_db(&db));
        let tokens = Arc::new(TokenEvents::default());
        if let Some(url) = &config.database_url {
            crate::pairing_tokens::fanout::start(tokens.clone(), db.clone(), url);
        }
        crate::rate_limit::sweep_failure_windows(db.clone(), crate::pairing_tokens::GUESS_WINDOW);
        let keys = Keys::load_or_create(&config.data_dir)?;
        if let Some((name, password)) = &config.bootstrap_admin
            && !users::exists(&db, name).await?
        {
            users::create(&db, name, password, Role::Admin)
                .await
                .with_context(|| format!("failed to create the bootstrap admin {name:?}"))?;
            tracing::info!(user = %name, "created the bootstrap admin");
        }
        let http = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("failed to listen on {}", config.listen))?;
        let http_addr = http.local_addr().context("bound address")?;
        let tls = Tls::load(
            &config.tls,
            &config.data_dir,
            &tls_names(&config, http_addr),
        )
        .context("TLS")?;
        if tls.is_none() {
            tracing::warn!(
                "--plain: the API and the broker are served without TLS, so credentials \
                 cross the network in clear"
            );
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        let keys = Arc::new(keys);
        let broker = Broker::start(
            config.mqtt_listen,
            tls.as_ref(),
            (db.clone(), config.database_url.as_ref()),
            keys.clone(),
            config.cluster.as_ref(),
        )
        .await?;
        let bridge = Bridge::start(
            reachable(broker.internal_addr()),
            broker.service_password(),
            db.clone(),
            config.cluster.is_some(),
        )?;
        let own_endpoints = RegionEndpoints {
            http_url: config
                .public_http_url
                .clone()
                .unwrap_or_else(|| format!("{scheme}://{}", reachable(http_addr))),
            mqtt_url: config
                .public_mqtt_url
                .clone()
                .unwrap_or_else(|| reachable(broker.addr()).to_string()),
            mqtt_tls: tls.is_some(),
        };
        let broker = Arc::new(broker);
        crate::modules::deliver_on_subscribe(
            db.clone(),
            broker.clone(),
            own_endpoints.http_url.clone(),
        );
        tracing::info!(http = %http_addr, public_http = %own_endpoints.http_url, "listening");
        let state = AppState {
            binder: crate::activation::Binder::start(db.clone()),
            db,
            keys,
            config: Arc::new(config),
            own_endpoints,
            ca_arr: Arc::new(tls.as_ref().map(Tls::ca_arr).unwrap_or_default()),
            tokens,
            nonces: Arc::default(),
            authkeys: Arc::default(),
            token_rows: Arc::default(),
            limits,
            password_checks: Arc::default(),
            broker,
            bridge,
            metrics: Arc::default(),
            console: Arc::default(),
        };
        Ok(Self {
            http,
            http_addr,
            tls,
            state,
        })
    }

    /// The bound HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The bound MQTT address.
    pub fn mqtt_addr(&self) -> SocketAddr {
        self.state.broker.addr()
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests and closes the
    /// database.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let db = self.state.db.clone();
        let broker = self.state.broker.clone();
        let tls = self.tls.map(|t| t.server);
        let console = self.state.console.clone();
        // The console's live streams end first, so stopping does not wait for them.
        let shutdown = async move {
            shutdown.await;
            console.stop();
        };
        crate::server::serve(self.http, router(self.state), tls, shutdown).await;
        broker.stop().await;
        db.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The names a local CA's server certificate is for: loopback, the listen address, the
/// public URLs' hosts and the configured extra names.
fn tls_names(config: &ServeConfig, http_addr: SocketAddr) -> Vec<String> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if !http_addr.ip().is_unspecified() {
        names.push(http_addr.ip().to_string());
    }
    for url in [&config.public_http_url, &config.public_mqtt_url]
        .into_iter()
        .flatten()
    {
        let rest = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
        let authority = rest.split('/').next().unwrap_or_default();
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => authority
                .rsplit_once(':')
                .map_or(authority, |(host, _)| host),
        };
        names.push(host.to_owned());
    }
    names.extend(config.tls_names.iter().cloned());
    names.retain(|n| !n.is_empty());
    names.sort();
    names.dedup();
    names
}

/// An address others can reach: a wildcard listen address is given as loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    }
}

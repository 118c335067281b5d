//! Messages between the service processes that share one PostgreSQL database: a sender
//! that publishes payloads with `pg_notify` on a channel, and a listener, on a connection
//! of its own, that hands each payload to a callback. A listener that lost its connection
//! reconnects and reports the gap (`None`), since payloads sent meanwhile are lost: the
//! callback then does what every missed message would have done.

use std::convert::Infallible;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tether_proto::Secret;
use tokio::sync::mpsc;

use crate::db::Db;

/// Payloads waiting to be published, per sender.
const QUEUE: usize = 1024;

/// A queue whose payloads are published on `channel`; `what` names them in warnings.
pub fn sender(db: Db, channel: &'static str, what: &'static str) -> mpsc::Sender<String> {
    let (tx, mut queue) = mpsc::channel::<String>(QUEUE);
    tokio::spawn(async move {
        while let Some(payload) = queue.recv().await {
            let sent = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(channel)
                .bind(&payload)
                .execute(&db)
                .await;
            if let Err(e) = sent {
                tracing::warn!(error = %e, "failed to tell the other service processes of a {what}");
            }
        }
    });
    tx
}

/// Calls `on` with each payload sent on `channel` (by any process, this one included),
/// and with `None` after a gap in listening.
pub fn listen(
    url: Secret,
    channel: &'static str,
    what: &'static str,
    on: impl Fn(Option<&str>) + Send + Sync + 'static,
) {
    tokio::spawn(async move {
        loop {
            let Err(e) = listen_once(&url, channel, what, &on).await;
            tracing::warn!(error = %e, "lost the listener for {what}s; reconnecting");
            tokio::time::sleep(Duration::from_secs(1)).await;
            on(None);
        }
    });
}

async fn listen_once(
    url: &Secret,
    channel: &str,
    what: &str,
    on: &impl Fn(Option<&str>),
) -> Result<Infallible, sqlx::Error> {
    let mut listener = PgListener::connect(url.expose()).await?;
    listener.listen(channel).await?;
    tracing::info!("listening for {what}s of the other service processes");
    loop {
        // None: the connection dropped and was made again; payloads may be lost.
        match listener.try_recv().await? {
            Some(message) => on(Some(message.payload())),
            None => on(None),
        }
    }
}

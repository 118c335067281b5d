//! Token changes across service processes that share a PostgreSQL database: each change
//! is published with `pg_notify` on one channel, and every process listens on it and
//! wakes its own long-polls. A listener that lost its connection wakes all of its
//! long-polls once it is back (they read the status again), so a change missed in the
//! gap delays nobody past the reconnection.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tether_proto::Secret;
use tokio::sync::mpsc;

use super::TokenEvents;
use crate::db::Db;

/// The PostgreSQL channel the changes travel on.
const CHANNEL: &str = "tether_token_changes";
/// Changes waiting to be published.
const QUEUE: usize = 1024;

/// Publishes `events`' changes through `db` and wakes them on the others' changes,
/// listening with a connection of its own to `url`.
pub fn start(events: Arc<TokenEvents>, db: Db, url: &Secret) {
    let (changes, mut queue) = mpsc::channel::<String>(QUEUE);
    if !events.send_to_others(changes) {
        return;
    }
    tokio::spawn(async move {
        while let Some(public_id) = queue.recv().await {
            let sent = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(&public_id)
                .execute(&db)
                .await;
            if let Err(e) = sent {
                tracing::warn!(token = public_id, error = %e, "failed to tell the other service processes of a token change");
            }
        }
    });
    let url = url.clone();
    tokio::spawn(async move {
        loop {
            let Err(e) = listen(&events, &url).await;
            tracing::warn!(error = %e, "lost the token change listener; reconnecting");
            tokio::time::sleep(Duration::from_secs(1)).await;
            events.notify_all_here();
        }
    });
}

async fn listen(events: &TokenEvents, url: &Secret) -> Result<Infallible, sqlx::Error> {
    let mut listener = PgListener::connect(url.expose()).await?;
    listener.listen(CHANNEL).await?;
    tracing::info!("listening for token changes of the other service processes");
    loop {
        // None: the connection dropped and was made again; notifications may be lost.
        match listener.try_recv().await? {
            Some(change) => events.notify_here(change.payload()),
            None => events.notify_all_here(),
        }
    }
}

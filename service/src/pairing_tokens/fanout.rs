//! Token changes across service processes that share a PostgreSQL database: each change
//! is published on one channel ([`crate::notify`]), and every process listens on it and
//! wakes its own long-polls. After a gap in listening it wakes all of its long-polls
//! (they read the status again), so a change missed in the gap delays nobody past the
//! reconnection.

use std::sync::Arc;

use tether_proto::Secret;

use super::TokenEvents;
use crate::db::Db;

/// The PostgreSQL channel the changes travel on.
const CHANNEL: &str = "tether_token_changes";

/// Publishes `events`' changes through `db` and wakes them on the others' changes,
/// listening with a connection of its own to `url`.
pub fn start(events: Arc<TokenEvents>, db: Db, url: &Secret) {
    let changes = crate::notify::sender(db, CHANNEL, "token change");
    if !events.send_to_others(changes) {
        return;
    }
    crate::notify::listen(
        url.clone(),
        CHANNEL,
        "token change",
        move |change| match change {
            Some(public_id) => events.notify_here(public_id),
            None => events.notify_all_here(),
        },
    );
}

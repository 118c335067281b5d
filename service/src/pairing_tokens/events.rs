//! Wake-ups for token long-polls: each token has its own channel, created while someone
//! waits on it, so a change wakes only that token's waiters; and each user may hold only
//! a few long-polls at once. When service processes share a database, a change is also
//! sent to the others (see [`super::fanout`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::{mpsc, watch};

use crate::error::ApiError;

/// Most long-polls one user may hold at once.
pub const MAX_POLLS_PER_USER: u32 = 8;

/// The long-poll channels, by public id, and the long-polls held, by user.
#[derive(Debug, Default)]
pub struct TokenEvents {
    channels: Mutex<HashMap<String, watch::Sender<u64>>>,
    polls: Mutex<HashMap<i64, u32>>,
    /// Where changes go for the other service processes, when there are any.
    others: OnceLock<mpsc::Sender<String>>,
}

/// A user's place among the long-polls; given back when dropped.
#[derive(Debug)]
pub struct Poll {
    events: Arc<TokenEvents>,
    user: i64,
    public_id: String,
    /// Changes of the token, from when the poll began.
    pub changes: watch::Receiver<u64>,
}

impl Drop for Poll {
    fn drop(&mut self) {
        {
            let mut polls = self.events.polls.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = polls.get_mut(&self.user) {
                *n -= 1;
                if *n == 0 {
                    polls.remove(&self.user);
                }
            }
        }
        let mut channels = self
            .events
            .channels
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // This receiver is still alive here: the channel goes when it is the last one.
        if channels
            .get(&self.public_id)
            .is_some_and(|tx| tx.receiver_count() <= 1)
        {
            channels.remove(&self.public_id);
        }
    }
}

impl TokenEvents {
    /// Signals a change of one token to its waiters, here and in the other processes.
    pub fn notify(&self, public_id: &str) {
        self.notify_here(public_id);
        if let Some(others) = self.others.get()
            && others.try_send(public_id.to_owned()).is_err()
        {
            // A burst beyond the queue: the others' long-polls still end at their timeout
            // with the current status, only later.
            tracing::warn!(
                token = public_id,
                "token change not sent to the other service processes (queue full)"
            );
        }
    }

    /// Signals a change of one token to this process's waiters, if it has any.
    pub fn notify_here(&self, public_id: &str) {
        let channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = channels.get(public_id) {
            tx.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Wakes every waiter of this process (changes from others may have been missed);
    /// each reads its token's status again.
    pub fn notify_all_here(&self) {
        let channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        for tx in channels.values() {
            tx.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Sends later changes to `others` too; false if a destination was set already.
    pub fn send_to_others(&self, others: mpsc::Sender<String>) -> bool {
        self.others.set(others).is_ok()
    }

    /// Starts a long-poll of `user` on a token, or refuses (429) when the user holds
    /// [`MAX_POLLS_PER_USER`] already.
    pub fn poll(self: &Arc<Self>, user: i64, public_id: &str) -> Result<Poll, ApiError> {
        {
            let mut polls = self.polls.lock().unwrap_or_else(|p| p.into_inner());
            let held = polls.entry(user).or_default();
            if *held >= MAX_POLLS_PER_USER {
                return Err(ApiError::RateLimited(1));
            }
            *held += 1;
        }
        let changes = self
            .channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(public_id.to_owned())
            .or_insert_with(|| watch::Sender::new(0))
            .subscribe();
        Ok(Poll {
            events: self.clone(),
            user,
            public_id: public_id.to_owned(),
            changes,
        })
    }

    /// How many tokens have waiters (for tests and metrics).
    pub fn watched(&self) -> usize {
        self.channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_change_wakes_only_its_token_and_channels_go_with_their_waiters() {
        let events = Arc::new(TokenEvents::default());
        let a = events.poll(1, "EUaaaaaaaa").expect("first poll");
        let mut b = events.poll(2, "EUbbbbbbbb").expect("another user's poll");
        events.notify("EUaaaaaaaa");
        assert!(a.changes.has_changed().expect("open"));
        assert!(!b.changes.has_changed().expect("open"));
        b.changes.mark_unchanged();
        drop(a);
        drop(b);
        assert_eq!(events.watched(), 0);
    }

    #[test]
    fn a_user_holds_a_bounded_number_of_polls() {
        let events = Arc::new(TokenEvents::default());
        let held: Vec<_> = (0..MAX_POLLS_PER_USER)
            .map(|_| events.poll(1, "EUaaaaaaaa").expect("under the cap"))
            .collect();
        assert!(matches!(
            events.poll(1, "EUaaaaaaaa"),
            Err(ApiError::RateLimited(_))
        ));
        assert!(
            events.poll(2, "EUaaaaaaaa").is_ok(),
            "other users are not affected"
        );
        drop(held);
        assert!(
            events.poll(1, "EUaaaaaaaa").is_ok(),
            "places are given back"
        );
    }
}

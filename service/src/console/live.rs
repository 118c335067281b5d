//! Live regions: a Server-Sent Events stream that renders a page's fragment from the
//! database every second (the same rows the API reads, so every service process sharing
//! the database agrees) and sends it only when it changed. A stream ends when the session
//! ends (after telling the page, which reloads), when the service stops, or after
//! [`MAX_STREAM`], when the browser reconnects by itself; each user holds at most
//! [`MAX_STREAMS_PER_USER`] at once.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use maud::Markup;
use tokio::sync::watch;

use super::session::ConsoleUser;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};

/// How often a live region is rendered again.
pub const TICK: Duration = Duration::from_secs(1);
/// Longest a stream lives before the browser is asked to reconnect.
pub const MAX_STREAM: Duration = Duration::from_secs(600);
/// Most streams one user holds at once.
pub const MAX_STREAMS_PER_USER: u32 = 16;

/// The console's shared state: open streams per user, and the service stopping.
#[derive(Debug)]
pub struct Console {
    streams: Mutex<HashMap<i64, u32>>,
    stopping: watch::Sender<bool>,
}

impl Default for Console {
    fn default() -> Self {
        Self {
            streams: Mutex::default(),
            stopping: watch::Sender::new(false),
        }
    }
}

impl Console {
    /// Ends every stream: the service is stopping.
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }
}

/// A user's place among the streams; given back when dropped.
#[derive(Debug)]
struct Slot {
    console: Arc<Console>,
    user: i64,
}

impl Slot {
    fn take(console: &Arc<Console>, user: i64) -> ApiResult<Self> {
        let mut streams = console.streams.lock().unwrap_or_else(|p| p.into_inner());
        let held = streams.entry(user).or_default();
        if *held >= MAX_STREAMS_PER_USER {
            return Err(ApiError::RateLimited(5));
        }
        *held += 1;
        Ok(Self {
            console: console.clone(),
            user,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut streams = self
            .console
            .streams
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = streams.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                streams.remove(&self.user);
            }
        }
    }
}

struct Live<F> {
    state: AppState,
    session: String,
    render: F,
    last: Option<String>,
    first: bool,
    stopping: watch::Receiver<bool>,
    until: tokio::time::Instant,
    _slot: Slot,
}

/// A stream of `update` events carrying `render`'s HTML whenever it changes.
pub fn stream<F, Fut>(
    state: AppState,
    user: &ConsoleUser,
    render: F,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>> + use<F, Fut>>>
where
    F: Fn(AppState) -> Fut + Send + 'static,
    Fut: Future<Output = ApiResult<Markup>> + Send,
{
    let live = Live {
        _slot: Slot::take(&state.console, user.user.id)?,
        stopping: state.console.stopping.subscribe(),
        session: user.session.clone(),
        state,
        render,
        last: None,
        first: true,
        until: tokio::time::Instant::now() + MAX_STREAM,
    };
    let events = futures_util::stream::unfold(live, |mut live| async move {
        let event = next(&mut live).await?;
        Some((Ok(event), live))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// The next event, or `None` when the stream ends.
async fn next<F, Fut>(live: &mut Live<F>) -> Option<Event>
where
    F: Fn(AppState) -> Fut,
    Fut: Future<Output = ApiResult<Markup>>,
{
    loop {
        if live.first {
            live.first = false;
        } else {
            tokio::select! {
                () = tokio::time::sleep(TICK) => {}
                _ = live.stopping.wait_for(|stopping| *stopping) => return None,
            }
        }
        if *live.stopping.borrow() || tokio::time::Instant::now() >= live.until {
            return None;
        }
        match super::session::alive(&live.state.db, &live.session).await {
            Ok(true) => {}
            Ok(false) => {
                live.until = tokio::time::Instant::now();
                return Some(Event::default().event("gone").data("signed out"));
            }
            Err(e) => {
                tracing::warn!(error = %e, "console stream: session check failed");
                return None;
            }
        }
        let html = match (live.render)(live.state.clone()).await {
            Ok(markup) => markup.into_string(),
            Err(ApiError::NotFound(_)) => {
                // It was deleted or handed to another account meanwhile.
                live.until = tokio::time::Instant::now();
                return Some(Event::default().event("gone").data("not found"));
            }
            Err(e) => {
                tracing::warn!(error = %e, "console stream: render failed");
                return None;
            }
        };
        if live.last.as_deref() != Some(html.as_str()) {
            let event = Event::default()
                .event("update")
                .retry(Duration::from_secs(2))
                .data(&html);
            live.last = Some(html);
            return Some(event);
        }
    }
}

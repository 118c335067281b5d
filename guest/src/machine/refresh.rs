//! Looking the endpoints up again: in the background while online, every time IoT DNS's
//! TTL runs out, and before a reconnect when they are stale. This is how a rotated CA
//! reaches a device: over the connection it already trusts, while the cloud still serves
//! the previous CA alongside the new one.

use super::{Action, Clock, Level, Machine, NetState, Timer, log};

/// The earliest background lookup, and the wait when another request is in flight, in
/// seconds.
const MIN_LOOKUP_SECS: u64 = 10;
/// The wait after a failed background lookup, in seconds.
const LOOKUP_RETRY_SECS: u64 = 60;

impl Machine {
    /// The timer of the next background lookup: when the endpoints stop being fresh.
    pub(super) fn plan_endpoint_refresh(&self, clock: Clock) -> Action {
        let left = self
            .endpoints
            .as_ref()
            .map_or(0, |e| e.fresh_until.saturating_sub(clock.unix));
        Action::SetTimer(
            Timer::EndpointRefresh,
            secs_to_ms(left.max(MIN_LOOKUP_SECS)),
        )
    }

    /// Online: asks IoT DNS again while the session goes on (another request in flight
    /// defers it).
    pub(super) fn refresh_endpoints(&mut self) -> Vec<Action> {
        if self.state != NetState::Online {
            return Vec::new();
        }
        let Some(region) = self.endpoints.as_ref().map(|e| e.region.clone()) else {
            return Vec::new();
        };
        if self.inflight.is_some() {
            return vec![Action::SetTimer(
                Timer::EndpointRefresh,
                secs_to_ms(MIN_LOOKUP_SECS),
            )];
        }
        self.start(self.dns_request(&region))
    }

    /// A background lookup failed: the session and the endpoints stay; try later.
    pub(super) fn endpoint_refresh_failed(&self, why: &str) -> Vec<Action> {
        vec![
            log(
                Level::Warn,
                format!("looking up the endpoints again failed ({why}); keeping them"),
            ),
            Action::SetTimer(Timer::EndpointRefresh, secs_to_ms(LOOKUP_RETRY_SECS)),
        ]
    }

    /// Reconnecting after a lost session: stale endpoints are looked up first.
    pub(super) fn reconnect(&mut self, clock: Clock) -> Vec<Action> {
        match &self.endpoints {
            Some(e)
                if self.state == NetState::Offline
                    && self.activation.is_some()
                    && clock.unix >= e.fresh_until =>
            {
                let region = e.region.clone();
                self.look_up(clock, &region)
            }
            _ => self.connect_mqtt(),
        }
    }

    /// The next reconnect looks the endpoints up first (after a TLS failure: the cloud's
    /// CA may have changed).
    pub(super) fn endpoints_stale(&mut self) {
        if let Some(e) = &mut self.endpoints {
            e.fresh_until = 0;
        }
    }
}

/// Seconds as a timer's milliseconds (saturating).
pub(super) fn secs_to_ms(secs: u64) -> u32 {
    u32::try_from(secs.saturating_mul(1000)).unwrap_or(u32::MAX)
}
